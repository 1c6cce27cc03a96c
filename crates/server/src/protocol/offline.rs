//! One V2 request body through a model directory, with no server (`ferroserve predict`): the
//! same repository, decoder, router and scheduler as `serve`, so a request that works here
//! works over HTTP, and the answer is the V2 JSON response the server would send.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ferroserve_loader::config::ModelToml;

use crate::codec::{Expected, OutputForm, RequestLimits, decode_request, encode_response};
use crate::error::RepositoryError;
use crate::protocol::status::ApiError;
use crate::repository::Repository;
use crate::router::{Router, Selector};

/// Why a request could not be answered offline.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The model directory has no name or no parent (the repository).
    #[error("{0}: not a model directory inside a model repository")]
    NotAModelDirectory(String),
    /// The model (or, for a composite, a model it routes to) did not load.
    #[error(transparent)]
    Load(#[from] RepositoryError),
    /// The request was refused or failed, as the server would have answered it.
    #[error(transparent)]
    Request(#[from] ApiError),
    /// The tokio runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Answers `body` (a V2 inference request, JSON) with `model_dir`'s `version` (a number or a
/// label; the latest when `None`): the V2 response body, outputs always as JSON.
pub fn predict(
    model_dir: &Path,
    version: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, PredictError> {
    let not_a_model = || PredictError::NotAModelDirectory(model_dir.display().to_string());
    let model = model_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(not_a_model)?;
    let root = model_dir.parent().ok_or_else(not_a_model)?;
    let repository = Arc::new(Repository::new(root, ferroserve_loader::runtimes()));
    // A composite needs the models it routes to: load the whole repository for it.
    match ModelToml::read(model_dir) {
        Ok(Some(ModelToml::Composite(_))) => repository.load_all()?,
        _ => repository.load(&model)?,
    }
    let router = Router::new(repository, None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(router.infer(
        &model,
        Selector::version(version),
        Instant::now(),
        |loaded| {
            let unlimited = RequestLimits {
                max_tensor_elements: usize::MAX,
                max_decoded_bytes: usize::MAX,
            };
            let request = decode_request(body, None, unlimited, Some(Expected::of(loaded)))?;
            Ok::<_, ApiError>((request.into_request()?.0, ()))
        },
        |loaded, response, ()| {
            // The answer goes to a terminal or a file: always JSON.
            Ok(encode_response(
                &loaded.model_name,
                loaded.version,
                response.id.as_deref(),
                &response.outputs,
                &OutputForm::json(),
                &response.parameters,
            ))
        },
    ))?;
    Ok(answer.body)
}
