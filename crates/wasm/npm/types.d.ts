/** The KServe V2 datatypes. */
export type DataType =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64'
  | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'BF16' | 'FP32' | 'FP64' | 'BYTES';

/** One input or output of a model; `-1` in `shape` is a dynamic dimension (the batch). */
export interface TensorSpec {
  name: string;
  datatype: DataType;
  shape: number[];
}

/** What a model takes and returns, in the order it takes and returns them. */
export interface Signature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** The model file formats. A file name with its extension (`model.txt`) also works. */
export type Format = 'onnx' | 'xgboost' | 'xgboost-json' | 'xgboost-ubj' | 'lightgbm' | (string & {});

/** The engine that runs a model. */
export type Engine = 'trees' | 'onnx-ml' | 'tract';

export type TypedArray =
  | Float32Array | Float64Array
  | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

/**
 * An input's elements, row-major: a typed array of the input's datatype (Float32Array for FP32,
 * BigInt64Array for INT64, ...; FP16/BF16 take a Float32Array), or a plain array of numbers
 * (converted), booleans (BOOL) or strings (BYTES). A typed array of another type is refused.
 */
export type InputData = TypedArray | ArrayLike<number | bigint> | boolean[] | (string | Uint8Array)[];

/** An input with its shape; without one, the batch dimension is sized to the data. */
export type Input = InputData | { data: InputData; shape?: number[] };

/** An output: FP16/BF16 come as Float32Array, BOOL as booleans, BYTES as strings (or bytes when not UTF-8). */
export interface Output {
  datatype: DataType;
  shape: number[];
  data: TypedArray | boolean[] | (string | Uint8Array)[];
}

/** Where the `.wasm` module comes from, when not from next to the package's script. */
export type WasmSource = URL | string | Response | BufferSource | WebAssembly.Module;

export interface LoadOptions {
  /** The file's format; detected from its first bytes when absent. */
  format?: Format;
  /** The WebAssembly module, for pages that serve it from elsewhere. */
  wasm?: WasmSource;
}

/** What `ferroserve export --target web` writes next to the model file (`ferroserve.json`). */
export interface Manifest {
  name: string;
  version: string;
  format: Format;
  file: string;
  engine?: Engine;
  signature: Signature;
  [key: string]: unknown;
}

/** A loaded model. Methods run synchronously once loaded; one model may be used for many calls. */
export declare class Model {
  private constructor();
  /** Loads a model file's bytes. */
  static load(bytes: Uint8Array | ArrayBuffer | ArrayBufferView, options?: LoadOptions): Promise<Model>;
  /** Fetches a folder written by `ferroserve export --target web` (URL ending in `/`) or a model file. */
  static fetch(url: string | URL, options?: LoadOptions): Promise<Model>;
  readonly signature: Signature;
  readonly format: Format;
  readonly engine: Engine;
  /** The export manifest, when fetched from an exported folder. */
  readonly manifest: Manifest | null;
  /** Runs the model; throws an Error naming the input and what was expected when inputs do not fit. */
  predict(inputs: Record<string, Input>): Record<string, Output>;
  /** Frees the model's WebAssembly memory now rather than at garbage collection. */
  free(): void;
}

/** Instantiates the WebAssembly module (done by `Model.load` when not called first). */
export declare function initialize(wasm?: WasmSource): Promise<void>;
/** The ferroserve version of this build. */
export declare function version(): Promise<string>;
/** Whether this build runs neural networks (the full build) or tree and linear models only. */
export declare function hasTract(): Promise<boolean>;
