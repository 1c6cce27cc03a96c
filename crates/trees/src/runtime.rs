//! [`TreesRuntime`]: loads tree-ensemble files into [`TreeModel`]s.

use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, Runtime};

use crate::model::TreeModel;
use crate::xgboost;

/// The XGBoost JSON model file name.
const XGBOOST_JSON: &str = "model.json";

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
        &[XGBOOST_JSON]
    }

    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let path = dir.join(options.model_file.as_deref().unwrap_or(XGBOOST_JSON));
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        let model = xgboost::parse_json(&bytes).map_err(|e| LoadError::Engine {
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
