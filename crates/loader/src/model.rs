//! [`EmbeddedModel`]: a model loaded from bytes, with the checks a server would make on each
//! call, for hosts that call it directly (JavaScript, C).

use std::sync::Arc;

use ferroserve_core::{Model, Signature, Tensor, TensorSpec};
use ferroserve_trees::{TreeFormat, onnxml};

use crate::error::EmbedError;
use crate::format::Format;

/// A loaded model: thread-safe, pure, checked on every call.
#[derive(Clone, Debug)]
pub struct EmbeddedModel {
    model: Arc<dyn Model>,
    format: Format,
    engine: &'static str,
}

impl EmbeddedModel {
    /// Loads the model file in `bytes`, read as `format` or, when `None`, as
    /// [`Format::detect`] says.
    pub fn load(bytes: &[u8], format: Option<Format>) -> Result<EmbeddedModel, EmbedError> {
        let format = match format {
            Some(format) => format,
            None => Format::detect(bytes).ok_or(EmbedError::UndetectedFormat)?,
        };
        let failed = |message: String| EmbedError::Load {
            format: format.name(),
            message,
        };
        let trees = |tree_format| {
            ferroserve_trees::load_bytes(bytes, tree_format).map_err(|e| failed(e.to_string()))
        };
        let (model, engine): (Arc<dyn Model>, &'static str) = match format {
            Format::Onnx if onnxml::claims_bytes(bytes) => (
                Arc::new(onnxml::load_bytes(bytes).map_err(failed)?),
                "onnx-ml",
            ),
            Format::Onnx => (
                load_network(bytes).map_err(|e| match e {
                    EmbedError::Load { message, .. } => failed(message),
                    other => other,
                })?,
                "tract",
            ),
            Format::XgboostJson => (trees(TreeFormat::XgboostJson)?, "trees"),
            Format::XgboostUbjson => (trees(TreeFormat::XgboostUbjson)?, "trees"),
            Format::LightGbm => (trees(TreeFormat::LightGbm)?, "trees"),
        };
        Ok(EmbeddedModel {
            model,
            format,
            engine,
        })
    }

    /// What the model takes and returns.
    pub fn signature(&self) -> &Signature {
        self.model.signature()
    }

    /// The format it was loaded from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The engine that runs it: `trees`, `onnx-ml` (ferroserve's ONNX-ML interpreter) or
    /// `tract`.
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// The spec of the input called `name`.
    pub fn input(&self, name: &str) -> Result<&TensorSpec, EmbedError> {
        let signature = self.signature();
        signature
            .inputs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| EmbedError::Input {
                tensor: name.to_owned(),
                message: format!(
                    "the model has no such input; its inputs are {:?}",
                    signature.input_names()
                ),
            })
    }

    /// The shape of `len` elements of the input called `name`, for callers that pass data
    /// without a shape: the input's own shape when it has no dynamic dimension, or its one
    /// dynamic dimension (the batch) sized to hold `len` elements.
    pub fn infer_shape(&self, name: &str, len: usize) -> Result<Vec<usize>, EmbedError> {
        let spec = self.input(name)?;
        let dynamic = spec.shape.iter().filter(|&&d| d < 0).count();
        let fixed: usize = spec
            .shape
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let error = |message: String| EmbedError::Input {
            tensor: name.to_owned(),
            message,
        };
        match dynamic {
            0 if fixed == len => Ok(spec.shape.iter().map(|&d| d as usize).collect()),
            0 => Err(error(format!(
                "{len} values given but shape {:?} needs {fixed}",
                spec.shape
            ))),
            1 if fixed > 0 && len.is_multiple_of(fixed) => Ok(spec
                .shape
                .iter()
                .map(|&d| if d < 0 { len / fixed } else { d as usize })
                .collect()),
            1 => Err(error(format!(
                "{len} values do not fill whole rows of shape {:?} ({fixed} values a row)",
                spec.shape
            ))),
            _ => Err(error(format!(
                "shape {:?} has several dynamic dimensions: pass the shape with the data",
                spec.shape
            ))),
        }
    }

    /// Computes the outputs, in signature order, for `inputs` given in any order. The inputs
    /// are checked against the signature first (names, datatypes, shapes, batch agreement).
    pub fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EmbedError> {
        let signature = self.signature();
        let max_batch = if signature.batchable() { usize::MAX } else { 0 };
        let inputs = signature.validate_inputs(inputs, max_batch)?;
        Ok(self.model.predict(&inputs)?)
    }
}

/// A non-ML ONNX graph, on tract.
#[cfg(feature = "tract")]
fn load_network(bytes: &[u8]) -> Result<Arc<dyn Model>, EmbedError> {
    let model = ferroserve_onnx::load_tract_bytes(bytes).map_err(|message| EmbedError::Load {
        format: "onnx",
        message,
    })?;
    Ok(Arc::new(model))
}

/// A non-ML ONNX graph, refused: this build has no tract.
#[cfg(not(feature = "tract"))]
fn load_network(_: &[u8]) -> Result<Arc<dyn Model>, EmbedError> {
    Err(EmbedError::Unsupported(
        "this ONNX model uses operators outside ai.onnx.ml (a neural network?), and this \
         ferroserve build runs tree ensembles and linear models only: use the full build, \
         which includes tract"
            .to_owned(),
    ))
}
