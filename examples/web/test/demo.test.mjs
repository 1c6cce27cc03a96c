// The demo page as a user meets it: `ferroserve serve --static examples/web` on a free port,
// the page opened in headless Chromium (Debian's, driven by playwright-core), both models
// loaded and predicting in the page, the expected classes for known inputs, no console errors,
// and a screenshot. Prepare with scripts/build-web-demo.sh; scripts/test-web.sh does it all.
//
// env: FERROSERVE_BIN (default target/debug/ferroserve), CHROMIUM (default /usr/bin/chromium),
//      SCREENSHOT (default target/web-demo.png)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = process.env.FERROSERVE_BIN ?? join(root, 'target/debug/ferroserve');
const screenshot = process.env.SCREENSHOT ?? join(root, 'target/web-demo.png');

let server;
let base;
let browser;

/** Starts the server on a free port and resolves with its address, from its log. */
function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(
      bin,
      ['serve', '--static', 'examples/web', '--model-repository', 'examples/models', '--host', '127.0.0.1', '--http-port', '0', '--no-grpc'],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${log}`)), 60_000);
    server.stderr.on('data', (chunk) => {
      log += chunk;
      const match = log.match(/listening on (http:\/\/[\d.:]+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`server exited (${code}):\n${log}`)));
  });
}

before(async () => {
  base = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // As root in a container, and with no network: no sandbox, no background connections.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

test('the demo page loads both models and predicts as the user edits', { timeout: 120_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
  const outside = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith('data:')) outside.push(request.url());
  });

  await page.goto(`${base}/`);
  await page.waitForSelector('#status[data-state="ready"], #status[data-state="error"]', { timeout: 60_000 });
  assert.equal(await page.textContent('#status'), 'Ready.', await page.textContent('#status'));

  // Iris: the default measurements are a setosa; long, wide petals are a virginica.
  assert.equal(await page.textContent('#iris-class'), 'setosa');
  await page.locator('input[name="petal_length"]').fill('6.0');
  await page.locator('input[name="petal_width"]').fill('2.2');
  assert.equal(await page.textContent('#iris-class'), 'virginica');
  assert.match(await page.textContent('#iris-latency'), /^[\d.]+ (µs|ms)$/);

  // Digits: the oracle's first digit is a 2; then a stroke drawn with the mouse predicts too.
  await page.click('#digit-example');
  assert.equal(await page.textContent('#digit-class'), '2');
  assert.match(await page.textContent('#digit-latency'), /^[\d.]+ (µs|ms)$/);
  await page.click('#digit-clear');
  const box = await page.locator('#digit-canvas').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 20);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height - 20, { steps: 12 });
  await page.mouse.up();
  assert.match(await page.textContent('#digit-class'), /^\d$/);
  await page.click('#digit-example');

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(problems, [], 'console errors or warnings');
  assert.deepEqual(outside, [], 'requests outside the page\'s own server');
  await page.close();
});

test('a missing file under --static answers 404, and the API still answers beside it', async () => {
  const missing = await fetch(`${base}/nothing-here.js`);
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /error/);
  const wasm = await fetch(`${base}/vendor/ferroserve/wasm/full/ferroserve_wasm_bg.wasm`, { method: 'HEAD' });
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  const ready = await fetch(`${base}/v2/health/live`);
  assert.equal(ready.status, 200);
});
