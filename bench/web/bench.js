// In-browser latency at batch 1: ferroserve's WebAssembly build against onnxruntime-web (its
// wasm backend, one thread, SIMD) on the same ONNX files, interleaved round by round in one
// tab. Served from the repository root (bench/web/run.mjs does it), so the paths below are the
// repository's. Results go to window.results.
import * as ferroserve from '/crates/wasm/npm/index.js';
import * as ort from '/bench/web/node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs';

ort.env.wasm.numThreads = 1;

const ROUNDS = 15;
const ROUND_MS = 40;

const bytesOf = async (url) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
};

const DIGIT = [
  0, 0, 0.4375, 1, 0.875, 0.1875, 0, 0, 0, 0, 0.5625, 0.875, 0.6875, 0.9375, 0, 0,
  0, 0, 0.0625, 0.3125, 0, 0.9375, 0.3125, 0, 0, 0, 0, 0, 0, 1, 0.3125, 0,
  0, 0, 0, 0, 0.1875, 1, 0.25, 0, 0, 0, 0, 0.0625, 0.75, 0.875, 0.0625, 0,
  0, 0, 0.3125, 0.75, 1, 1, 0.875, 0.0625, 0, 0, 0.5, 1, 0.875, 0.625, 0.8125, 0.1875,
];

const MODELS = [
  { name: 'digits MLP (64 in, hidden 64+32, 10 out)', url: '/examples/models/digits_mlp/1/model.onnx', shape: [1, 64], data: async () => DIGIT },
  { name: 'CNN (8x8 digits)', url: '/examples/models/cnn/1/model.onnx', shape: [1, 1, 8, 8], data: async () => DIGIT },
  {
    name: 'XGBoost 100 trees depth 8 (ONNX-ML)',
    url: '/target/bench-models/trees/xgboost/model.onnx',
    shape: [1, 20],
    data: async () => Array.from(new Float32Array((await bytesOf('/target/bench-models/trees/rows.f32')).buffer, 0, 20)),
  },
];

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

/** Mean ms per call of a synchronous `call`, over `ms` milliseconds (at least 3 calls). */
function meanSync(call, ms) {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (calls < 3 || now - start < ms) {
    call();
    calls += 1;
    now = performance.now();
  }
  return (now - start) / calls;
}

/** The same for an asynchronous `call`, awaited one at a time. */
async function meanAsync(call, ms) {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (calls < 3 || now - start < ms) {
    await call();
    calls += 1;
    now = performance.now();
  }
  return (now - start) / calls;
}

async function bench(spec) {
  const bytes = await bytesOf(spec.url);
  const values = Float32Array.from(await spec.data());

  let start = performance.now();
  const model = await ferroserve.Model.load(bytes);
  const name = model.signature.inputs[0].name;
  const fsInputs = { [name]: { data: values, shape: spec.shape } };
  const fsOut = model.predict(fsInputs);
  const fsFirst = performance.now() - start;
  const engine = model.engine;

  start = performance.now();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', values, spec.shape) };
  const ortOut = await session.run(feeds);
  const ortFirst = performance.now() - start;

  // The two must compute the same thing: the largest difference over the float outputs.
  let maxDiff = 0;
  for (const [outName, out] of Object.entries(fsOut)) {
    const other = ortOut[outName];
    if (!other || !(out.data instanceof Float32Array) || !(other.data instanceof Float32Array)) continue;
    for (let i = 0; i < out.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out.data[i] - other.data[i]));
  }

  for (let i = 0; i < 100; i++) model.predict(fsInputs);
  for (let i = 0; i < 100; i++) await session.run(feeds);
  const fsRounds = [];
  const ortRounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    fsRounds.push(meanSync(() => model.predict(fsInputs), ROUND_MS));
    ortRounds.push(await meanAsync(() => session.run(feeds), ROUND_MS));
  }
  model.free();
  await session.release();
  return {
    model: spec.name,
    engine,
    ferroserve_us: median(fsRounds) * 1000,
    onnxruntime_web_us: median(ortRounds) * 1000,
    ferroserve_first_ms: fsFirst,
    onnxruntime_web_first_ms: ortFirst,
    max_abs_diff: maxDiff,
  };
}

const status = document.querySelector('#status');
const table = document.querySelector('#results');
window.results = [];
try {
  table.innerHTML = '<tr><th>model</th><th>engine</th><th>ferroserve µs</th><th>onnxruntime-web µs</th><th>ferroserve load+first ms</th><th>ort-web load+first ms</th><th>max |diff|</th></tr>';
  for (const spec of MODELS) {
    status.textContent = `running ${spec.name}…`;
    const r = await bench(spec);
    window.results.push(r);
    const row = table.insertRow();
    for (const v of [r.model, r.engine, r.ferroserve_us.toFixed(1), r.onnxruntime_web_us.toFixed(1), r.ferroserve_first_ms.toFixed(1), r.onnxruntime_web_first_ms.toFixed(1), r.max_abs_diff.toExponential(1)]) {
      row.insertCell().textContent = v;
    }
  }
  status.textContent = 'done';
} catch (error) {
  status.textContent = `failed: ${error.message}`;
  window.benchError = String(error.stack ?? error);
}
window.benchDone = true;
