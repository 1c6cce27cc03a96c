//! [`TreesRuntime`]: loads tree-ensemble files into [`TreeModel`]s.
//!
//! Files, by name: XGBoost `model.json` / `model.ubj` (`Booster.save_model`), LightGBM
//! `model.txt` (`Booster.save_model`). `model.toml`'s `default_model_filename` may name another
//! file; its extension (`.json`, `.ubj`, `.txt`) then says the format.

use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, Runtime};

use crate::model::TreeModel;
use crate::xgboost::FormatError;
use crate::{lightgbm, xgboost};

/// The default file names, in the order they are looked for.
const MODEL_FILES: [&str; 3] = ["model.json", "model.ubj", "model.txt"];

/// The tree-ensemble runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct TreesRuntime;

impl Runtime for TreesRuntime {
    fn name(&self) -> &'static str {
        "trees"
    }

    fn platform(&self) -> &'static str {
        "ferroserve_trees"
    }

    fn model_files(&self) -> &'static [&'static str] {
        &MODEL_FILES
    }

    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let file = match options.model_file.as_deref() {
            Some(file) => file,
            None => MODEL_FILES
                .into_iter()
                .find(|f| dir.join(f).is_file())
                .unwrap_or(MODEL_FILES[0]),
        };
        let path = dir.join(file);
        let bytes = read_model_file(&path)?;
        load_bytes(&bytes, TreeFormat::from_file_name(file)).map_err(|e| LoadError::Engine {
            path: path.clone(),
            message: e.to_string(),
        })
    }
}

/// The tree-ensemble file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeFormat {
    /// XGBoost's JSON (`Booster.save_model("model.json")`).
    XgboostJson,
    /// XGBoost's UBJSON (`Booster.save_model("model.ubj")`).
    XgboostUbjson,
    /// LightGBM's text format (`Booster.save_model("model.txt")`).
    LightGbm,
}

impl TreeFormat {
    /// The format a file name's extension says: `.txt` LightGBM, `.ubj` UBJSON, else JSON.
    pub fn from_file_name(file: &str) -> TreeFormat {
        if file.ends_with(".txt") {
            TreeFormat::LightGbm
        } else if file.ends_with(".ubj") {
            TreeFormat::XgboostUbjson
        } else {
            TreeFormat::XgboostJson
        }
    }
}

/// Loads a model from the bytes of a file in `format`: the same model
/// [`TreesRuntime::load`] makes of that file, for hosts without a file system (wasm, C).
pub fn load_bytes(bytes: &[u8], format: TreeFormat) -> Result<Arc<dyn Model>, FormatError> {
    let model: Arc<dyn Model> = match format {
        TreeFormat::LightGbm => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| FormatError("not UTF-8 text".into()))?;
            let m = lightgbm::parse(text)?;
            // LightGBM folds its initial score into the first tree: no base margin.
            let base_margin = vec![0.0; m.forest.groups];
            Arc::new(TreeModel::<f64>::new(m.forest, m.objective, base_margin))
        }
        TreeFormat::XgboostJson | TreeFormat::XgboostUbjson => {
            let m = if format == TreeFormat::XgboostUbjson {
                xgboost::parse_ubjson(bytes)
            } else {
                xgboost::parse_json(bytes)
            }?;
            Arc::new(TreeModel::<f32>::new(m.forest, m.objective, m.base_margin))
        }
    };
    Ok(model)
}

/// The bytes of a model file, or the I/O error naming it.
pub(crate) fn read_model_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })
}
