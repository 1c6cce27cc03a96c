//! `ferroserve._ferroserve`: the Python extension module. The same model versions the server
//! loads, called from Python on numpy arrays ([`Model::predict`]) or on Arrow record batches
//! without copying them ([`Model::predict_arrow`], the Arrow C data interface via
//! `arrow-pyarrow`), with the GIL released while the model runs.
//!
//! [`cached_model`] keeps one model per path per process: Spark's and Ray's Python workers call
//! it for every batch and load the model once.
//!
//! The Python side (`python/ferroserve/`) adds `ferroserve.spark.score`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::RecordBatch;
use arrow_pyarrow::PyArrowType;
use arrow_schema::Schema;
use ferroserve_batch::mapping::ColumnMapping;
use ferroserve_batch::{BatchError, LoadedModel, ModelRef, ScoreOptions, Scorer};
use ferroserve_core::{DataType, Tensor, TensorData, TensorSpec};
use ferroserve_loader::runtimes;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

/// Models loaded in this process (by [`Model::load`] and [`cached_model`]).
static LOADS: AtomicUsize = AtomicUsize::new(0);

/// Scorers kept per model: one per input schema and column choice seen.
const SCORERS_KEPT: usize = 8;

/// A model version, loaded as the server loads it; thread-safe and immutable.
#[pyclass(frozen, module = "ferroserve")]
struct Model {
    loaded: LoadedModel,
    path: String,
    /// Scorers bound to the schemas `predict_arrow` has seen, newest last.
    scorers: Mutex<Vec<(String, Arc<Scorer>)>>,
}

/// A Python exception for a batch-layer error.
#[allow(clippy::needless_pass_by_value)] // by value to fit `map_err`
fn py_error(e: BatchError) -> PyErr {
    match e {
        BatchError::Io { .. } => PyOSError::new_err(e.to_string()),
        BatchError::Model(_) => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

impl Model {
    fn open(path: &str, threads: usize) -> PyResult<Model> {
        let loaded = ModelRef::parse(path)
            .and_then(|r| r.load(&runtimes(), threads))
            .map_err(py_error)?;
        LOADS.fetch_add(1, Ordering::Relaxed);
        Ok(Model {
            loaded,
            path: path.to_owned(),
            scorers: Mutex::new(Vec::new()),
        })
    }

    /// A scorer for batches of `schema`, made once per schema and column choice.
    fn scorer(
        &self,
        schema: &Schema,
        columns: Option<Vec<String>>,
        keep: Option<Vec<String>>,
        map: Option<HashMap<String, Vec<String>>>,
        outputs: Option<Vec<String>>,
    ) -> PyResult<Arc<Scorer>> {
        let mut inputs: Vec<(String, Vec<String>)> = map.unwrap_or_default().into_iter().collect();
        inputs.sort();
        let options = ScoreOptions {
            mapping: ColumnMapping {
                columns,
                inputs,
                ignore: Vec::new(),
            },
            keep: keep.unwrap_or_default(),
            outputs: outputs.unwrap_or_default(),
        };
        let key = format!(
            "{schema:?}|{:?}|{:?}|{:?}",
            options.mapping, options.keep, options.outputs
        );
        let mut scorers = self.scorers.lock().expect("not poisoned");
        if let Some((_, s)) = scorers.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(s));
        }
        let scorer =
            Arc::new(Scorer::new(&self.loaded, schema, &options, "the batch").map_err(py_error)?);
        if scorers.len() >= SCORERS_KEPT {
            scorers.remove(0);
        }
        scorers.push((key, Arc::clone(&scorer)));
        Ok(scorer)
    }
}

#[pymethods]
impl Model {
    /// Loads a model: a model directory (latest version), a version directory, or either
    /// with `@VERSION` / `@LABEL`. `threads`: how many calls will run at once (1 by default).
    #[staticmethod]
    #[pyo3(signature = (path, threads = 1))]
    fn load(py: Python<'_>, path: &str, threads: usize) -> PyResult<Model> {
        py.detach(|| Model::open(path, threads.max(1)))
    }

    /// The path it was loaded from.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The model's name (its directory's).
    #[getter]
    fn name(&self) -> &str {
        &self.loaded.name
    }

    /// The version loaded.
    #[getter]
    fn version(&self) -> u64 {
        self.loaded.version
    }

    /// The runtime that runs it (`"trees"`, `"onnx (tract)"`, ...).
    #[getter]
    fn runtime(&self) -> &str {
        &self.loaded.runtime
    }

    /// `{"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}`, V2's names.
    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let specs = |specs: &[TensorSpec]| -> PyResult<Bound<'py, PyList>> {
            let list = PyList::empty(py);
            for s in specs {
                let d = PyDict::new(py);
                d.set_item("name", &s.name)?;
                d.set_item("datatype", s.datatype.to_string())?;
                d.set_item("shape", s.shape.clone())?;
                list.append(d)?;
            }
            Ok(list)
        };
        let d = PyDict::new(py);
        d.set_item("inputs", specs(&self.loaded.signature.inputs)?)?;
        d.set_item("outputs", specs(&self.loaded.signature.outputs)?)?;
        Ok(d)
    }

    /// Runs the model on `{input name: array}` (anything numpy can turn into an array of the
    /// input's datatype); returns `{output name: numpy array}`.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let signature = &self.loaded.signature;
        let mut tensors = Vec::with_capacity(inputs.len());
        for (name, value) in inputs.iter() {
            let name: String = name.extract()?;
            let spec = signature
                .inputs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "the model has no input '{name}' (inputs: {})",
                        signature.input_names().join(", ")
                    ))
                })?;
            tensors.push(to_tensor(py, spec, &value)?);
        }
        let batchable = signature.batchable();
        let tensors = signature
            .validate_inputs(tensors, if batchable { usize::MAX } else { 0 })
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let model = Arc::clone(&self.loaded.model);
        let outputs = py
            .detach(|| model.predict(&tensors))
            .map_err(|e| PyRuntimeError::new_err(format!("the model failed: {e}")))?;
        let d = PyDict::new(py);
        for (spec, tensor) in signature.outputs.iter().zip(outputs) {
            d.set_item(&spec.name, to_numpy(py, tensor)?)?;
        }
        Ok(d)
    }

    /// Scores an Arrow record batch (pyarrow, or any Arrow C data interface producer) without
    /// copying it: `columns` (the feature columns of a one-input model), or `map` (`{input:
    /// [columns]}`), else the columns named like the inputs; `keep` columns are passed through.
    /// Returns a pyarrow RecordBatch: the kept columns, the outputs (`name` or `name_k`; only
    /// those named in `outputs`, columns or whole tensors, when given) and `_error` (why a
    /// row was not scored, null when it was).
    #[pyo3(signature = (batch, columns = None, keep = None, map = None, outputs = None))]
    fn predict_arrow(
        &self,
        py: Python<'_>,
        batch: PyArrowType<RecordBatch>,
        columns: Option<Vec<String>>,
        keep: Option<Vec<String>>,
        map: Option<HashMap<String, Vec<String>>>,
        outputs: Option<Vec<String>>,
    ) -> PyResult<PyArrowType<RecordBatch>> {
        let batch = batch.0;
        let scorer = self.scorer(&batch.schema(), columns, keep, map, outputs)?;
        let scored = py.detach(|| scorer.score(&batch)).map_err(py_error)?;
        Ok(PyArrowType(scored.batch))
    }

    /// The schema `predict_arrow` returns for batches of `schema` (for Spark's `mapInArrow`).
    #[allow(clippy::needless_pass_by_value)] // pyo3 hands arguments over owned
    #[pyo3(signature = (schema, columns = None, keep = None, map = None, outputs = None))]
    fn output_schema(
        &self,
        schema: PyArrowType<Schema>,
        columns: Option<Vec<String>>,
        keep: Option<Vec<String>>,
        map: Option<HashMap<String, Vec<String>>>,
        outputs: Option<Vec<String>>,
    ) -> PyResult<PyArrowType<Schema>> {
        let scorer = self.scorer(&schema.0, columns, keep, map, outputs)?;
        Ok(PyArrowType(scorer.schema().as_ref().clone()))
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(name={:?}, version={}, runtime={:?})",
            self.loaded.name, self.loaded.version, self.loaded.runtime
        )
    }

    /// Pickled as its path: unpickling (on a Ray or Spark worker) loads it there, once.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let module = py.import("ferroserve")?;
        Ok((module.getattr("cached_model")?, (self.path.clone(),)))
    }
}

/// `value` as a tensor of `spec`'s datatype.
fn to_tensor(py: Python<'_>, spec: &TensorSpec, value: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let numpy = py.import("numpy")?;
    let bad = |e: PyErr| {
        PyValueError::new_err(format!(
            "input '{}': cannot be read as an array of {}: {e}",
            spec.name, spec.datatype
        ))
    };
    if spec.datatype == DataType::Bytes {
        let array = numpy
            .call_method1("asarray", (value, "object"))
            .map_err(bad)?;
        let shape: Vec<usize> = array.getattr("shape")?.extract()?;
        let items = array.call_method0("ravel")?.call_method0("tolist")?;
        let mut data = ferroserve_core::ByteStrings::new();
        for item in items.cast::<PyList>()?.iter() {
            if let Ok(s) = item.cast::<PyString>() {
                data.push(s.to_cow()?.as_bytes());
            } else if let Ok(b) = item.cast::<PyBytes>() {
                data.push(b.as_bytes());
            } else {
                data.push(item.str()?.to_cow()?.as_bytes());
            }
        }
        return Tensor::new(&spec.name, shape, TensorData::Bytes(data))
            .map_err(|e| PyValueError::new_err(e.to_string()));
    }
    let dtype = match spec.datatype {
        DataType::Bool => "bool",
        DataType::Uint8 => "uint8",
        DataType::Uint16 => "uint16",
        DataType::Uint32 => "uint32",
        DataType::Uint64 => "uint64",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Fp16 | DataType::Bf16 | DataType::Fp32 => "float32",
        DataType::Fp64 | DataType::Bytes => "float64",
    };
    let array = numpy
        .call_method1("ascontiguousarray", (value, dtype))
        .map_err(bad)?;
    macro_rules! read {
        ($t:ty, $variant:ident) => {{
            let a: PyReadonlyArrayDyn<'_, $t> = array.extract()?;
            let shape = a.shape().to_vec();
            let data = a
                .as_slice()
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            (shape, TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match spec.datatype {
        DataType::Bool => read!(bool, Bool),
        DataType::Uint8 => read!(u8, U8),
        DataType::Uint16 => read!(u16, U16),
        DataType::Uint32 => read!(u32, U32),
        DataType::Uint64 => read!(u64, U64),
        DataType::Int8 => read!(i8, I8),
        DataType::Int16 => read!(i16, I16),
        DataType::Int32 => read!(i32, I32),
        DataType::Int64 => read!(i64, I64),
        DataType::Fp16 => {
            let (shape, data) = read!(f32, F32);
            let TensorData::F32(v) = data else {
                unreachable!()
            };
            let v = v.into_iter().map(half::f16::from_f32).collect();
            (shape, TensorData::F16(v))
        }
        DataType::Bf16 => {
            let (shape, data) = read!(f32, F32);
            let TensorData::F32(v) = data else {
                unreachable!()
            };
            let v = v.into_iter().map(half::bf16::from_f32).collect();
            (shape, TensorData::Bf16(v))
        }
        DataType::Fp32 => read!(f32, F32),
        DataType::Fp64 | DataType::Bytes => read!(f64, F64),
    };
    Tensor::new(&spec.name, shape, data).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A tensor as a numpy array of its shape (FP16/BF16 as float32, BYTES as an object array of
/// `bytes`).
fn to_numpy<'py>(py: Python<'py>, tensor: Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = tensor.shape.clone();
    macro_rules! array {
        ($v:expr) => {
            PyArray1::from_vec(py, $v).reshape(shape)?.into_any()
        };
    }
    Ok(match tensor.into_data() {
        TensorData::Bool(v) => array!(v),
        TensorData::U8(v) => array!(v),
        TensorData::U16(v) => array!(v),
        TensorData::U32(v) => array!(v),
        TensorData::U64(v) => array!(v),
        TensorData::I8(v) => array!(v),
        TensorData::I16(v) => array!(v),
        TensorData::I32(v) => array!(v),
        TensorData::I64(v) => array!(v),
        TensorData::F16(v) => array!(v.into_iter().map(f32::from).collect::<Vec<_>>()),
        TensorData::Bf16(v) => array!(v.into_iter().map(f32::from).collect::<Vec<_>>()),
        TensorData::F32(v) => array!(v),
        TensorData::F64(v) => array!(v),
        TensorData::Bytes(v) => {
            let items = PyList::new(py, v.iter().map(|b| PyBytes::new(py, b)))?;
            py.import("numpy")?
                .call_method1("array", (items, "object"))?
                .call_method1("reshape", (shape,))?
        }
    })
}

/// The process's models by path.
fn cache() -> &'static Mutex<HashMap<String, Py<Model>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Py<Model>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The model at `path`, loaded on the first call in this process and shared after: what
/// Spark's and Ray's workers call for every batch.
#[pyfunction]
fn cached_model(py: Python<'_>, path: &str) -> PyResult<Py<Model>> {
    if let Some(m) = cache().lock().expect("not poisoned").get(path) {
        return Ok(m.clone_ref(py));
    }
    // Loaded outside the lock (and the GIL); two threads racing both load, one is kept.
    let model = Py::new(py, py.detach(|| Model::open(path, 1))?)?;
    let mut cache = cache().lock().expect("not poisoned");
    Ok(cache.entry(path.to_owned()).or_insert(model).clone_ref(py))
}

/// How many models this process has loaded (tests check Spark loads one per worker).
#[pyfunction]
fn loads() -> usize {
    LOADS.load(Ordering::Relaxed)
}

/// The extension module.
#[pymodule]
fn _ferroserve(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(cached_model, m)?)?;
    m.add_function(wrap_pyfunction!(loads, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
