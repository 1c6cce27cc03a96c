// The package's API as a JavaScript user meets it: loading, signatures, input forms, and the
// errors for bad input (which tensor, what was expected). Build first: scripts/build-wasm.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import { Model, version, hasTract } from '../index.js';
import * as trees from '../trees.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const read = (...path) => readFileSync(join(root, ...path));
const iris = () => read('examples/models/iris_logreg/1/model.onnx');
const mlp = () => read('examples/models/digits_mlp/1/model.onnx');
const xgb = () => read('tests/fixtures/trees/xgboost/binary_logistic/model.json');

test('the builds say what they are', async () => {
  assert.match(await version(), /^\d+\.\d+\.\d+/);
  assert.equal(await hasTract(), true);
  assert.equal(await trees.hasTract(), false);
});

test('signature, format and engine describe the model', async () => {
  const model = await Model.load(iris());
  assert.equal(model.format, 'onnx');
  assert.equal(model.engine, 'onnx-ml');
  assert.deepEqual(model.signature.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }]);
  assert.deepEqual(model.signature.outputs.map((o) => o.name), ['label', 'probabilities']);
  const net = await Model.load(mlp(), { format: 'onnx' });
  assert.equal(net.engine, 'tract');
  const booster = await Model.load(new Uint8Array(xgb()).buffer);
  assert.equal(booster.format, 'xgboost');
  assert.equal(booster.engine, 'trees');
});

test('inputs may be typed arrays, plain arrays, or {data, shape}', async () => {
  const model = await Model.load(iris());
  const row = [5.1, 3.5, 1.4, 0.2];
  const a = model.predict({ input: Float32Array.from(row) });
  const b = model.predict({ input: row });
  const c = model.predict({ input: { data: Float32Array.from([...row, ...row]), shape: [2, 4] } });
  assert.deepEqual(a.label.shape, [1]);
  assert.equal(a.label.datatype, 'INT64');
  assert.ok(a.label.data instanceof BigInt64Array);
  assert.equal(a.label.data[0], 0n);
  assert.ok(a.probabilities.data instanceof Float32Array);
  assert.deepEqual(a.probabilities.shape, [1, 3]);
  assert.deepEqual(Array.from(b.probabilities.data), Array.from(a.probabilities.data));
  assert.deepEqual(c.label.shape, [2]);
  assert.deepEqual(Array.from(c.probabilities.data.slice(0, 3)), Array.from(a.probabilities.data));
});

test('bad input is refused with the tensor and what was expected', async () => {
  const model = await Model.load(iris());
  const error = (inputs) => {
    try {
      model.predict(inputs);
    } catch (e) {
      assert.ok(e instanceof Error, String(e));
      return e.message;
    }
    assert.fail(`accepted ${JSON.stringify(inputs)}`);
  };
  assert.match(error({ features: [1, 2, 3, 4] }), /'features'.*inputs are \["input"\]/);
  assert.match(error({ input: Float64Array.from([1, 2, 3, 4]) }), /'input' is FP32: pass a Float32Array or an array of numbers, not Float64Array/);
  assert.match(error({ input: [1, 2, 3] }), /'input'.*3 values do not fill whole rows of shape \[-1, 4\]/);
  assert.match(error({ input: { data: [1, 2, 3, 4], shape: [2, 4] } }), /'input'.*shape \[2, 4\] needs 8 elements but 4/);
  assert.match(error({ input: { data: [1, 2, 3, 4], shape: [1, 2, 2] } }), /'input'.*\[1, 2, 2\].*\[-1, 4\]/);
  assert.match(error({ input: [1, 2, 'x', 4] }), /'input': element 2 is string, not a number/);
  assert.match(error({}), /missing input 'input'/);
  assert.throws(() => model.predict(null), /expected an object/);
  // The model is still fine afterwards.
  assert.equal(model.predict({ input: [5.1, 3.5, 1.4, 0.2] }).label.data[0], 0n);
});

test('a freed model says so', async () => {
  const model = await Model.load(iris());
  model.free();
  model.free();
  assert.throws(() => model.predict({ input: [1, 2, 3, 4] }), /this model was freed/);
  assert.throws(() => model.signature, /this model was freed/);
});

test('bad model files and formats are refused clearly', async () => {
  await assert.rejects(Model.load(new Uint8Array([1, 2, 3])), /cannot tell the model's format/);
  await assert.rejects(Model.load(xgb(), { format: 'pickle' }), /unknown model format 'pickle'/);
  await assert.rejects(Model.load(xgb().subarray(0, 100), { format: 'xgboost' }), /the xgboost model does not load/);
  await assert.rejects(Model.load(mlp().subarray(0, 1000), { format: 'onnx' }), /the onnx model does not load/);
  await assert.rejects(Model.load('model.json'), /Uint8Array or ArrayBuffer/);
});

test('the trees build refuses networks and points to the full build', async () => {
  await assert.rejects(trees.Model.load(mlp()), /trees build|full build/);
  const model = await trees.Model.load(iris());
  assert.equal(model.predict({ input: [5.1, 3.5, 1.4, 0.2] }).label.data[0], 0n);
});
