//! [`TreesRuntime`]: loads tree-ensemble files into [`TreeModel`]s.

use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, Runtime};

use crate::model::TreeModel;
use crate::xgboost;

/// The XGBoost JSON model file name.
const XGBOOST_JSON: &str = "model.json";

/// The XGBoost Universal Binary JSON model file name.
const XGBOOST_UBJ: &str = "model.ubj";

/// The tree-ensemble runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct TreesRuntime;

impl Runtime for TreesRuntime {
    fn name(&self) -> &'static str {
        "trees"
    }

    fn platform(&self) -> &'static str {
        "xgboost_json"
    }

    fn model_files(&self) -> &'static [&'static str] {
        &[XGBOOST_JSON, XGBOOST_UBJ]
    }

    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let file = match options.model_file.as_deref() {
            Some(file) => file,
            None if dir.join(XGBOOST_JSON).is_file() => XGBOOST_JSON,
            None => XGBOOST_UBJ,
        };
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        let parsed = if file.ends_with(".ubj") {
            xgboost::parse_ubjson(&bytes)
        } else {
            xgboost::parse_json(&bytes)
        };
        let model = parsed.map_err(|e| LoadError::Engine {
            path,
            message: e.to_string(),
        })?;
        Ok(Arc::new(TreeModel::new(
            model.forest,
            model.objective,
            model.base_margin,
        )))
    }
}
