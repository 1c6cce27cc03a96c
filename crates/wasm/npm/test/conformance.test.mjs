// The shared numeric conformance cases through the WebAssembly builds, in Node: the same model
// files and oracles the Rust tests use (tests/fixtures/trees: XGBoost, LightGBM and
// scikit-learn's own predictions; examples/oracles: onnxruntime's answers for the example
// networks), with the same tolerances. Tree and linear cases run through both builds; the
// networks through the full one. Build first: scripts/build-wasm.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const fixtures = join(root, 'tests/fixtures/trees');
const json = (...path) => JSON.parse(readFileSync(join(...path), 'utf8'));

// Nothing may touch the network: the module comes from the package folder, models from bytes.
globalThis.fetch = () => {
  throw new Error('ferroserve must not fetch anything in these tests');
};

const builds = {
  full: await import('../index.js'),
  trees: await import('../trees.js'),
};

function cases(library) {
  const dir = join(fixtures, library);
  const names = readdirSync(dir).filter((n) => existsSync(join(dir, n, 'expected.json'))).sort();
  assert.ok(names.length >= 10, `${library}: fixtures missing`);
  return names.map((name) => ({ name, dir: join(dir, name) }));
}

/** A case's rows: shape [32, F], null = missing (NaN). */
function rows(dir) {
  const r = json(dir, 'rows.json');
  return { shape: r.shape, data: Float32Array.from(r.data, (v) => (v === null ? NaN : v)) };
}

const numbers = (values) => values.map((v) => (v === null ? NaN : Number(v)));

function assertClose(got, want, tolerance, what) {
  assert.equal(got.length, want.length, `${what}: lengths`);
  for (let i = 0; i < want.length; i++) {
    const [a, b] = [Number(got[i]), want[i]];
    const limit = typeof tolerance === 'function' ? tolerance(b) : tolerance;
    assert.ok(Math.abs(a - b) <= limit || (Number.isNaN(a) && Number.isNaN(b)), `${what}[${i}]: ${a} vs ${b}`);
  }
}

const argmaxRows = (p, classes) => {
  const out = [];
  for (let r = 0; r < p.length / classes; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (p[r * classes + c] > p[r * classes + best]) best = c;
    out.push(best);
  }
  return out;
};

async function predictRows(api, file, dir, format) {
  const model = await api.Model.load(readFileSync(join(dir, file)), format ? { format } : {});
  const input = model.signature.inputs[0].name;
  return { model, outputs: model.predict({ [input]: rows(dir) }) };
}

/** XGBoost and LightGBM against the library's `predict`, as crates/trees/tests/fidelity.rs. */
async function checkBoosterCase(api, library, { name, dir }) {
  const tolerance = library === 'xgboost' ? 1e-5 : 1e-6;
  const files = library === 'xgboost' ? ['model.json', 'model.ubj'] : ['model.txt'];
  const expected = json(dir, 'expected.json');
  const want = numbers(expected.predict);
  for (const file of files) {
    const { model, outputs } = await predictRows(api, file, dir);
    const what = `${library}/${name}/${file}`;
    const names = model.signature.outputs.map((o) => o.name).join(',');
    if (names === 'label,probabilities' && expected.objective === 'multi:softmax') {
      assert.deepEqual(Array.from(outputs.label.data, Number), want, `${what}: labels`);
    } else if (names === 'label,probabilities') {
      const p = Array.from(outputs.probabilities.data);
      const n = 32;
      const binary = want.length === n;
      const probabilities = binary ? p.filter((_, i) => i % 2 === 1) : p;
      assertClose(probabilities, want, tolerance, what);
      const full = binary ? want.flatMap((q) => [1 - q, q]) : want;
      assert.deepEqual(Array.from(outputs.label.data, Number), argmaxRows(full, p.length / n), `${what}: labels`);
    } else {
      assert.equal(names, 'predictions', what);
      assertClose(outputs.predictions.data, want, tolerance, what);
    }
    model.free();
  }
}

/** scikit-learn through ONNX-ML against its own predictions, as crates/trees/tests/onnxml.rs. */
async function checkOnnxMlCase(api, { name, dir }) {
  const { model, outputs } = await predictRows(api, 'model.onnx', dir, 'onnx');
  assert.equal(model.engine, 'onnx-ml', name);
  const expected = json(dir, 'expected.json');
  const [first, second] = model.signature.outputs.map((o) => outputs[o.name]);
  if (expected.kind === 'classifier') {
    const labels = Array.from(first.data, (v) => (typeof v === 'string' ? v : Number(v)));
    assert.deepEqual(labels, expected.label, `${name}: labels`);
    assertClose(second.data, numbers(expected.probabilities), 1e-5, `${name}: probabilities`);
  } else {
    assertClose(first.data, numbers(expected.predict), (b) => 1e-5 + 1e-6 * Math.abs(b), name);
  }
  model.free();
}

for (const [buildName, api] of Object.entries(builds)) {
  for (const library of ['xgboost', 'lightgbm']) {
    test(`${buildName} build: ${library} cases match the library`, async () => {
      for (const c of cases(library)) await checkBoosterCase(api, library, c);
    });
  }
  test(`${buildName} build: scikit-learn ONNX-ML cases match scikit-learn`, async () => {
    for (const c of cases('onnxml')) await checkOnnxMlCase(api, c);
  });
}

const TYPED = { FP32: Float32Array, FP64: Float64Array, INT64: BigInt64Array, INT32: Int32Array };

/** The example models against onnxruntime's answers, as crates/onnx/tests/oracles.rs. */
for (const name of ['iris_logreg', 'digits_mlp', 'cnn']) {
  test(`full build: ${name} matches onnxruntime`, async () => {
    const model = await builds.full.Model.load(readFileSync(join(root, 'examples/models', name, '1/model.onnx')));
    const request = json(root, 'examples/oracles', name, 'request.json');
    const inputs = {};
    for (const t of request.inputs) {
      inputs[t.name] = { data: TYPED[t.datatype].from(t.data), shape: t.shape };
    }
    const outputs = model.predict(inputs);
    for (const want of json(root, 'examples/oracles', name, 'expected.json').outputs) {
      const got = outputs[want.name];
      assert.ok(got, `${name}: output ${want.name} missing`);
      assert.equal(got.datatype, want.datatype, `${name}/${want.name}: datatype`);
      assert.deepEqual(got.shape, want.shape, `${name}/${want.name}: shape`);
      if (want.datatype.startsWith('FP')) {
        assertClose(got.data, want.data, (b) => 1e-5 * Math.abs(b) + 1e-6, `${name}/${want.name}`);
      } else {
        assert.deepEqual(Array.from(got.data, Number), want.data, `${name}/${want.name}`);
      }
    }
    model.free();
  });
}

test('a row alone gives what it gives inside a batch', async () => {
  const dir = join(fixtures, 'xgboost', 'multi_softprob');
  const { model, outputs } = await predictRows(builds.full, 'model.json', dir);
  const batch = rows(dir);
  const width = batch.shape[1];
  const all = outputs.probabilities.data;
  const classes = all.length / batch.shape[0];
  for (const row of [0, 7, 31]) {
    const one = model.predict({ input: batch.data.slice(row * width, (row + 1) * width) });
    assert.deepEqual(one.probabilities.shape, [1, classes]);
    assert.deepEqual(Array.from(one.probabilities.data), Array.from(all.slice(row * classes, (row + 1) * classes)));
  }
});
