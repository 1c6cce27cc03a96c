// ferroserve's small WebAssembly build: XGBoost, LightGBM and scikit-learn (ONNX-ML) tree
// ensembles and linear models. Neural networks need the full build (`import ... from 'ferroserve'`).
import * as glue from './wasm/trees/ferroserve_wasm.js';
import { makeApi } from './model.js';

const api = makeApi(glue, new URL('./wasm/trees/ferroserve_wasm_bg.wasm', import.meta.url));

export const { Model, initialize, version, hasTract } = api;
