// The `Model` class over one wasm-bindgen module. Shared by index.js (the full build: every
// model, networks on tract) and trees.js (tree ensembles and linear models only, a fraction of
// the download). The wasm module is fetched and instantiated once, on first use; nothing else
// touches the network.

const isNode = () =>
  typeof process !== 'undefined' && process.versions != null && process.versions.node != null;

/** The public API over `glue` (a wasm-bindgen `--target web` module) and its `.wasm` file. */
export function makeApi(glue, wasmUrl) {
  let ready = null;

  /**
   * Instantiates the WebAssembly module. Called by `Model.load`; call it yourself to start the
   * download early, or to pass the module from elsewhere (bytes, a Response, a
   * WebAssembly.Module, or a URL) when the `.wasm` file is not served next to this script.
   */
  function initialize(source) {
    if (ready === null) {
      ready = (async () => {
        let module = source;
        if (module === undefined && isNode()) {
          const { readFile } = await import('node:fs/promises');
          module = await readFile(wasmUrl);
        }
        await glue.default({ module_or_path: module === undefined ? wasmUrl : module });
      })();
      ready.catch(() => {
        ready = null;
      });
    }
    return ready;
  }

  const toBytes = (bytes) => {
    if (bytes instanceof Uint8Array) return bytes;
    if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
    if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    throw new TypeError('Model.load: expected the model file as a Uint8Array or ArrayBuffer');
  };

  const fetchBytes = async (url, what) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${what} ${url}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };

  class Model {
    #raw;
    #manifest;

    /** The wasm-side model, or an error once `free` was called. */
    get #live() {
      if (this.#raw === null) throw new Error('this model was freed (Model.free)');
      return this.#raw;
    }

    /** Use `Model.load` or `Model.fetch`. */
    constructor(raw, manifest) {
      this.#raw = raw;
      this.#manifest = manifest ?? null;
    }

    /** Loads a model file's bytes: `onnx`, `xgboost` (JSON), `xgboost-ubj` or `lightgbm`, detected when `format` is not given. */
    static async load(bytes, options = {}) {
      await initialize(options.wasm);
      return new Model(glue.WasmModel.load(toBytes(bytes), options.format ?? undefined));
    }

    /**
     * Fetches and loads a model: a folder written by `ferroserve export --target web` (its
     * `ferroserve.json` names the file and format), or a model file's URL.
     */
    static async fetch(url, options = {}) {
      const base = new URL(String(url), globalThis.location?.href);
      if (base.pathname.endsWith('/')) {
        const manifestUrl = new URL('ferroserve.json', base);
        const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(manifestUrl, 'manifest')));
        const bytes = await fetchBytes(new URL(manifest.file, base), 'model file');
        await initialize(options.wasm);
        return new Model(glue.WasmModel.load(bytes, options.format ?? manifest.format), manifest);
      }
      const bytes = await fetchBytes(base, 'model file');
      const name = base.pathname.split('/').pop();
      return Model.load(bytes, { ...options, format: options.format ?? name });
    }

    /** `{inputs, outputs}`, each tensor's `{name, datatype, shape}` (-1 = any size). */
    get signature() {
      return this.#live.signature;
    }

    /** The format the model was read as. */
    get format() {
      return this.#live.format;
    }

    /** The engine running it: `trees`, `onnx-ml` or `tract`. */
    get engine() {
      return this.#live.engine;
    }

    /** What `ferroserve export` wrote next to the model (name, version, labels), when fetched from such a folder. */
    get manifest() {
      return this.#manifest;
    }

    /** Runs the model on `{inputName: data | {data, shape}}`; returns `{outputName: {datatype, shape, data}}`. */
    predict(inputs) {
      if (inputs === null || typeof inputs !== 'object') {
        throw new TypeError('predict: expected an object mapping input names to data');
      }
      return this.#live.predict(inputs);
    }

    /** Frees the model's WebAssembly memory now, rather than when it is garbage-collected. */
    free() {
      this.#raw?.free();
      this.#raw = null;
    }
  }

  return {
    Model,
    initialize,
    version: async () => {
      await initialize();
      return glue.version();
    },
    hasTract: async () => {
      await initialize();
      return glue.hasTract();
    },
  };
}
