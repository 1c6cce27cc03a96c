// Runs bench/web/index.html in headless Chromium and prints (and writes) its table, with the
// download sizes of both engines' WebAssembly modules.
//
// Prepare: scripts/build-wasm.sh (the shipped `wasm` profile), bench/batch/models.sh (the
// 100-tree model), `npm ci` in bench/web, a release or debug ferroserve binary.
// Usage: node bench/web/run.mjs    env: FERROSERVE_BIN, CHROMIUM, OUT (default bench/results/web-<date>.md)

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = process.env.FERROSERVE_BIN ?? join(root, 'target/release/ferroserve');
const date = new Date().toISOString().slice(0, 10);
const out = process.env.OUT ?? join(root, `bench/results/web-${date}.md`);

for (const need of ['crates/wasm/npm/wasm/full/ferroserve_wasm_bg.wasm', 'target/bench-models/trees/xgboost/model.onnx', 'bench/web/node_modules/onnxruntime-web']) {
  if (!existsSync(join(root, need))) throw new Error(`${need} is missing: see the top of bench/web/run.mjs`);
}

const server = spawn(bin, ['serve', '--static', '.', '--host', '127.0.0.1', '--http-port', '0', '--no-grpc'], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'pipe'],
});
const base = await new Promise((resolve, reject) => {
  let log = '';
  server.stderr.on('data', (chunk) => {
    log += chunk;
    const match = log.match(/listening on (http:\/\/[\d.:]+)/);
    if (match) resolve(match[1]);
  });
  server.on('exit', (code) => reject(new Error(`server exited (${code}): ${log}`)));
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let results;
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`${base}/bench/web/index.html`);
  await page.waitForFunction(() => window.benchDone === true, null, { timeout: 600_000 });
  const error = await page.evaluate(() => window.benchError);
  if (error) throw new Error(error);
  results = await page.evaluate(() => window.results);
} finally {
  await browser.close();
  server.kill('SIGTERM');
}

const size = (path) => {
  const bytes = readFileSync(join(root, path));
  return { path, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
};
const sizes = [
  size('crates/wasm/npm/wasm/full/ferroserve_wasm_bg.wasm'),
  size('crates/wasm/npm/wasm/full/ferroserve_wasm.js'),
  size('crates/wasm/npm/wasm/trees/ferroserve_wasm_bg.wasm'),
  size('bench/web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm'),
  size('bench/web/node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs'),
];
const chromiumVersion = browser.version();
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
const lines = [
  `# In-browser latency: ferroserve WebAssembly vs onnxruntime-web (${date})`,
  '',
  `Chromium ${chromiumVersion}, headless, one tab; both engines single-threaded with SIMD (onnxruntime-web 1.30.0 wasm backend, numThreads = 1).`,
  `Batch 1; each figure is the median over 15 interleaved rounds of the mean call time over 40 ms. onnxruntime-web's \`run\` is awaited (its API is asynchronous).`,
  '',
  '| model | ferroserve engine | ferroserve µs | onnxruntime-web µs | ratio | ferroserve load + first call ms | onnxruntime-web load + first call ms | max abs diff |',
  '|---|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.model} | ${r.engine} | ${r.ferroserve_us.toFixed(1)} | ${r.onnxruntime_web_us.toFixed(1)} | ${(r.onnxruntime_web_us / r.ferroserve_us).toFixed(2)}× | ${r.ferroserve_first_ms.toFixed(1)} | ${r.onnxruntime_web_first_ms.toFixed(1)} | ${r.max_abs_diff.toExponential(1)} |`),
  '',
  '| module | raw | gzip -9 |',
  '|---|---|---|',
  ...sizes.map((s) => `| \`${s.path}\` | ${mb(s.raw)} | ${mb(s.gzip)} |`),
  '',
];
writeFileSync(out, lines.join('\n'));
console.log(lines.join('\n'));
console.error(`written to ${out}`);
