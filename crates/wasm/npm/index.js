// ferroserve's full WebAssembly build: every model ferroserve serves, networks on tract.
// For tree ensembles and linear models only, `import ... from 'ferroserve/trees'` downloads far less.
import * as glue from './wasm/full/ferroserve_wasm.js';
import { makeApi } from './model.js';

const api = makeApi(glue, new URL('./wasm/full/ferroserve_wasm_bg.wasm', import.meta.url));

export const { Model, initialize, version, hasTract } = api;
