// The numeric conformance cases through the WebAssembly builds, in Node: every case of the
// manifest, tests/conformance/cases.json (read by every harness; its `about` lines describe
// it), on each build's surface (`wasm-full`, `wasm-trees`), each model file loaded from bytes
// with its format detected, each compared output against the manifest's expectation with its
// named tolerance. A case the manifest says a build cannot load is printed with the reason.
// Build first: scripts/build-wasm.sh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

const manifest = json(root, 'tests/conformance/cases.json');

/** The (case, model) pairs a surface runs; the others are reported with their reason. */
function runs(surface) {
  const entry = manifest.surfaces[surface];
  assert.ok(entry, `cases.json: no surface ${surface}`);
  const out = [];
  for (const c of manifest.cases) {
    if (c.skip?.[surface]) {
      console.log(`${surface}: skipping ${c.name}: ${c.skip[surface]}`);
      continue;
    }
    for (const model of c.models) {
      const reason = entry.why_not[model.format];
      if (reason) console.log(`${surface}: skipping ${c.name} (${model.format}): ${reason}`);
      else out.push({ c, model });
    }
  }
  assert.ok(out.length > 0, `${surface}: no case to run`);
  return out;
}

const numbers = (values) => values.map((v) => (v === null ? NaN : Number(v)));
const at = (value, pointer) =>
  pointer ? pointer.split('/').slice(1).reduce((v, key) => v?.[key.replaceAll('~1', '/').replaceAll('~0', '~')], value) : value;

/** A case's inputs: { name (or null: the model's input at that position), shape, data }. */
function inputs(c) {
  return c.inputs.map((input) => {
    const t = at(json(root, input.file), input.at ?? '');
    return { name: t.name ?? null, shape: t.shape, data: Float32Array.from(t.data, (v) => (v === null ? NaN : v)) };
  });
}

function argmaxRows(scores, rows) {
  const width = scores.length / rows;
  const out = [];
  for (let r = 0; r < rows; r++) {
    const row = width === 1 ? [1 - scores[r], scores[r]] : scores.slice(r * width, (r + 1) * width);
    let best = 0;
    for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
    out.push(best);
  }
  return out;
}

/** A case's compared outputs, resolved as crates/conformance resolves them. */
function checks(c, rows) {
  return c.outputs.map((o) => {
    const found = at(json(root, o.file ?? c.expected), o.at ?? '');
    const tensor = !Array.isArray(found);
    let want = tensor ? found.data : found;
    want = typeof want[0] === 'string' ? want : numbers(want);
    if (o.derive === 'argmax') want = argmaxRows(want, rows);
    else assert.equal(o.derive, undefined, `${c.name}: cannot derive ${o.derive}`);
    const tolerance = manifest.tolerances[o.tolerance];
    assert.ok(tolerance, `${c.name}: no tolerance ${o.tolerance}`);
    return { output: o.name, want, column: o.column, tensor: tensor ? found : null, tolerance, toleranceName: o.tolerance };
  });
}

function assertCheck(check, got, what) {
  what = `${what} ${check.output}`;
  if (check.tensor) {
    assert.equal(got.datatype, check.tensor.datatype, `${what}: datatype`);
    assert.deepEqual(got.shape, check.tensor.shape, `${what}: shape`);
  }
  if (typeof check.want[0] === 'string') {
    assert.deepEqual(Array.from(got.data), check.want, what);
    return;
  }
  let values = Array.from(got.data, Number);
  if (check.column) {
    assert.equal(values.length % check.column.of, 0, `${what}: not ${check.column.of} columns`);
    values = values.filter((_, i) => i % check.column.of === check.column.index);
  }
  assert.equal(values.length, check.want.length, `${what}: lengths`);
  const { abs, rel } = check.tolerance;
  for (let i = 0; i < values.length; i++) {
    const [a, b] = [values[i], check.want[i]];
    const ok = Number.isNaN(a) || Number.isNaN(b) ? Number.isNaN(a) && Number.isNaN(b) : Math.abs(a - b) <= abs + rel * Math.abs(b);
    assert.ok(ok, `${what}[${i}]: ${a} vs ${b} (tolerance ${check.toleranceName})`);
  }
}

for (const [buildName, api] of Object.entries(builds)) {
  for (const { c, model } of runs(`wasm-${buildName}`)) {
    const label = c.models.length > 1 ? `${c.name} [${model.format}]` : c.name;
    test(`${buildName} build: ${label}`, async () => {
      // ONNX-ML graphs with the format named, and run by the tree interpreter; others detected.
      const options = model.format === 'onnx-ml' ? { format: 'onnx' } : {};
      const loaded = await api.Model.load(readFileSync(join(root, model.file)), options);
      if (model.format === 'onnx-ml') assert.equal(loaded.engine, 'onnx-ml', label);
      const feeds = {};
      const tensors = inputs(c);
      tensors.forEach((t, i) => {
        feeds[t.name ?? loaded.signature.inputs[i].name] = { data: t.data, shape: t.shape };
      });
      const outputs = loaded.predict(feeds);
      for (const check of checks(c, tensors[0].shape[0])) {
        const got = outputs[check.output];
        assert.ok(got, `${label}: output ${check.output} missing`);
        assertCheck(check, got, label);
      }
      loaded.free();
    });
  }
}

/** A fixture's rows: shape [32, F], null = missing (NaN). */
function rows(dir) {
  const r = json(dir, 'rows.json');
  return { shape: r.shape, data: Float32Array.from(r.data, (v) => (v === null ? NaN : v)) };
}

async function predictRows(api, file, dir) {
  const model = await api.Model.load(readFileSync(join(dir, file)));
  const input = model.signature.inputs[0].name;
  return { model, outputs: model.predict({ [input]: rows(dir) }) };
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
