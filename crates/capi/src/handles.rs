//! The opaque handles C holds: [`FerroserveModel`] (a loaded model with its signature in C
//! form) and [`FerroserveOutputs`] (the tensors of one prediction), with their safe Rust
//! operations; `ffi` turns those into the C functions.

use std::ffi::{CStr, CString};

use ferroserve_core::Tensor;
use ferroserve_loader::{EmbeddedModel, Format};

use crate::convert::OwnedTensor;
use crate::error::Error;
use crate::types::FerroserveTensor;

/// A loaded model. Created by `ferroserve_model_load` or `ferroserve_model_load_file`, freed
/// by `ferroserve_model_free`. Predictions may run on several threads at once.
#[derive(Debug)]
pub struct FerroserveModel {
    model: EmbeddedModel,
    inputs: Vec<OwnedTensor>,
    outputs: Vec<OwnedTensor>,
    format: &'static CStr,
    engine: CString,
}

/// The C name of `format`.
fn format_name(format: Format) -> &'static CStr {
    match format {
        Format::Onnx => c"onnx",
        Format::XgboostJson => c"xgboost",
        Format::XgboostUbjson => c"xgboost-ubj",
        Format::LightGbm => c"lightgbm",
    }
}

impl FerroserveModel {
    /// The model in `bytes`, read as the format named `format` or, when `None`, as its first
    /// bytes show.
    pub fn load(bytes: &[u8], format: Option<&str>) -> Result<FerroserveModel, Error> {
        let format = format.map(Format::parse).transpose()?;
        FerroserveModel::new(EmbeddedModel::load(bytes, format)?)
    }

    /// The model in the file at `path`, read as the format named `format`, else as the file
    /// name's extension says, else as its first bytes show. Messages start with the path.
    pub fn load_file(path: &str, format: Option<&str>) -> Result<FerroserveModel, Error> {
        let at = |e: Error| e.context(&format!("model file '{path}'"));
        let format = match format {
            Some(name) => Some(Format::parse(name).map_err(|e| at(e.into()))?),
            None => Format::from_file_name(path),
        };
        let bytes = std::fs::read(path)
            .map_err(|e| at(Error::load_failed(format!("cannot be read: {e}"))))?;
        let model = EmbeddedModel::load(&bytes, format).map_err(|e| at(e.into()))?;
        FerroserveModel::new(model).map_err(at)
    }

    /// Wraps a loaded model, preparing the C form of its signature.
    fn new(model: EmbeddedModel) -> Result<FerroserveModel, Error> {
        let signature = model.signature();
        let specs = |specs: &[ferroserve_core::TensorSpec]| {
            specs
                .iter()
                .map(OwnedTensor::from_spec)
                .collect::<Result<Vec<_>, _>>()
        };
        let inputs = specs(&signature.inputs)?;
        let outputs = specs(&signature.outputs)?;
        let engine = CString::new(model.engine()).unwrap_or_default();
        Ok(FerroserveModel {
            format: format_name(model.format()),
            inputs,
            outputs,
            engine,
            model,
        })
    }

    /// The descriptions of the inputs.
    pub fn inputs(&self) -> &[OwnedTensor] {
        &self.inputs
    }

    /// The descriptions of the outputs.
    pub fn outputs(&self) -> &[OwnedTensor] {
        &self.outputs
    }

    /// Input (`kind` "input") or output description `index` of `list`, as C reads it.
    pub fn describe(
        list: &[OwnedTensor],
        kind: &str,
        index: usize,
    ) -> Result<FerroserveTensor, Error> {
        list.get(index).map(OwnedTensor::view).ok_or_else(|| {
            Error::invalid_argument(format!(
                "{kind} index {index} is out of range: the model has {} {kind}s",
                list.len()
            ))
        })
    }

    /// The format's name: `onnx`, `xgboost`, `xgboost-ubj` or `lightgbm`.
    pub fn format(&self) -> &CStr {
        self.format
    }

    /// The engine's name: `trees`, `onnx-ml` or `tract`.
    pub fn engine(&self) -> &CStr {
        &self.engine
    }

    /// The outputs for `inputs` (checked against the signature first).
    pub fn predict(&self, inputs: Vec<Tensor>) -> Result<FerroserveOutputs, Error> {
        let tensors = self
            .model
            .predict(inputs)?
            .into_iter()
            .map(OwnedTensor::from_tensor)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FerroserveOutputs { tensors })
    }
}

/// The outputs of one prediction, in the model's output order; they own their data. Freed by
/// `ferroserve_outputs_free`.
#[derive(Debug)]
pub struct FerroserveOutputs {
    tensors: Vec<OwnedTensor>,
}

impl FerroserveOutputs {
    /// The number of outputs.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Output `index`.
    pub fn get(&self, index: usize) -> Result<&OwnedTensor, Error> {
        self.tensors.get(index).ok_or_else(|| {
            Error::invalid_argument(format!(
                "output index {index} is out of range: there are {} outputs",
                self.tensors.len()
            ))
        })
    }

    /// The output called `name`.
    pub fn find(&self, name: &str) -> Result<&OwnedTensor, Error> {
        self.tensors
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.tensors.iter().map(OwnedTensor::name).collect();
                Error::invalid_argument(format!(
                    "no output is called '{name}': the outputs are {names:?}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FerroserveStatus;
    use ferroserve_core::TensorData;
    use std::path::PathBuf;

    fn fixture(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/trees")
            .join(path)
    }

    #[test]
    fn a_tree_model_loads_describes_itself_and_predicts() {
        let path = fixture("xgboost/multi_softprob/model.json");
        let model = FerroserveModel::load_file(path.to_str().unwrap(), None).unwrap();
        assert_eq!(model.format(), c"xgboost");
        assert_eq!(model.engine(), c"trees");
        assert_eq!(model.inputs()[0].name(), "input");
        assert_eq!(model.inputs()[0].shape(), [-1, 4]);
        let names: Vec<&str> = model.outputs().iter().map(OwnedTensor::name).collect();
        assert_eq!(names, ["label", "probabilities"]);
        let err = FerroserveModel::describe(model.inputs(), "input", 1).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::InvalidArgument);
        assert!(err.message.contains("has 1 inputs"), "{}", err.message);

        let x = Tensor::new("input", vec![2, 4], TensorData::F32(vec![0.5; 8])).unwrap();
        let outputs = model.predict(vec![x]).unwrap();
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs.find("probabilities").unwrap().shape(), [2, 3]);
        assert_eq!(outputs.get(0).unwrap().name(), "label");
        let err = outputs.find("logits").unwrap_err();
        assert!(
            err.message.contains("'logits'") && err.message.contains("probabilities"),
            "{}",
            err.message
        );
        assert_eq!(
            outputs.get(2).unwrap_err().status,
            FerroserveStatus::InvalidArgument
        );

        let wrong = Tensor::new("features", vec![2, 4], TensorData::F32(vec![0.5; 8])).unwrap();
        let err = model.predict(vec![wrong]).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::InvalidInput);
        assert!(err.message.contains("'features'"), "{}", err.message);
    }

    #[test]
    fn load_failures_name_the_file_and_the_problem() {
        let err = FerroserveModel::load_file("/nonexistent/model.json", None).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::LoadFailed);
        assert!(
            err.message.contains("/nonexistent/model.json"),
            "{}",
            err.message
        );
        let path = fixture("xgboost/multi_softprob/model.json");
        let err = FerroserveModel::load_file(path.to_str().unwrap(), Some("pickle")).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::InvalidArgument);
        assert!(err.message.contains("'pickle'"), "{}", err.message);
        let err = FerroserveModel::load(b"garbage", None).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::LoadFailed);
        let err = FerroserveModel::load(b"garbage", Some("lightgbm")).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::LoadFailed);
        assert!(err.message.contains("lightgbm"), "{}", err.message);
    }
}
