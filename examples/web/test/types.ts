// Compiled (not run) by `tsc --noEmit` in scripts/test-web.sh: the package's TypeScript types
// accept what its README shows, and reject what its API refuses.
import { Model, initialize, version, hasTract, type Output, type Signature } from '../vendor/ferroserve/index.js';
import * as trees from '../vendor/ferroserve/trees.js';

export async function usage(bytes: Uint8Array): Promise<number> {
  await initialize();
  const v: string = await version();
  const full: boolean = await hasTract();
  const model = await Model.load(bytes, { format: 'onnx' });
  const fetched = await trees.Model.fetch('models/iris_logreg/');
  const signature: Signature = model.signature;
  const engine: 'trees' | 'onnx-ml' | 'tract' = model.engine;
  const out: Record<string, Output> = model.predict({
    input: new Float32Array([5.1, 3.5, 1.4, 0.2]),
    other: { data: [1, 2, 3, 4], shape: [1, 4] },
    labels: ['a', 'b'],
  });
  const probabilities = out.probabilities.data;
  fetched.free();
  // @ts-expect-error: predict takes an object of inputs, not an array
  model.predict([new Float32Array(4)]);
  // @ts-expect-error: the model file is bytes, not a path
  await Model.load('model.onnx');
  return signature.inputs.length + probabilities.length + v.length + engine.length + Number(full);
}
