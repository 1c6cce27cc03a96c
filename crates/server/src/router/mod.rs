//! The one request path: a model name and version selector in, an answer out. Every
//! front-end (V2 HTTP, V2 gRPC, TF Serving REST, `ferroserve predict`) only decodes, calls
//! [`Router::infer`] and encodes; resolution, composite dispatch, the prediction cache,
//! monitor taps, the payload log and the statistics (success and failure) happen here, once.
//!
//! - [`run`]: a decoded request through a version: a plain model, or the composite's target(s).
//! - [`model`]: a plain model's run: inputs checked, monitor taps, cache, queue, payload log.

mod model;
mod run;

use std::sync::Arc;
use std::time::Instant;

use crate::error::InferError;
use crate::inference::{InferRequest, InferResponse};
use crate::metrics::Metrics;
use crate::repository::{LoadedVersion, Repository};
use crate::stats::Failure;

/// Which version of a model a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector<'a> {
    /// The latest ready version.
    Latest,
    /// A version number, or failing that a label (`/versions/{v}`, gRPC's `model_version`).
    VersionOrLabel(&'a str),
    /// A label only (`/labels/{l}`, gRPC's `label` parameter).
    Label(&'a str),
}

impl<'a> Selector<'a> {
    /// [`Selector::VersionOrLabel`] when given and not empty (gRPC sends `""` for none),
    /// else [`Selector::Latest`].
    pub fn version(version: Option<&'a str>) -> Selector<'a> {
        match version {
            Some(v) if !v.is_empty() => Selector::VersionOrLabel(v),
            _ => Selector::Latest,
        }
    }
}

/// Runs requests against the repository's models; cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct Router {
    repository: Arc<Repository>,
    /// Where requests that never reach a version are counted; `None` where nothing reads
    /// them (`ferroserve predict`).
    metrics: Option<Arc<Metrics>>,
}

impl Router {
    /// A router over `repository`, counting unrouted requests in `metrics`.
    pub fn new(repository: Arc<Repository>, metrics: Option<Arc<Metrics>>) -> Router {
        Router {
            repository,
            metrics,
        }
    }

    /// The repository it routes to.
    pub fn repository(&self) -> &Arc<Repository> {
        &self.repository
    }

    /// Counts a request that failed before reaching a model version (its body too large, its
    /// version named twice, no such model), and passes its error on.
    pub fn unrouted<E: Failure>(&self, error: E) -> E {
        if let Some(metrics) = &self.metrics {
            metrics.count_unrouted(error.failure_reason());
        }
        error
    }

    /// The version `model` and `selector` name now.
    pub fn resolve(
        &self,
        model: &str,
        selector: Selector<'_>,
    ) -> Result<Arc<LoadedVersion>, InferError> {
        match selector {
            Selector::Latest => self.repository.resolve(model, None),
            Selector::VersionOrLabel(v) => self.repository.resolve(model, Some(v)),
            Selector::Label(label) => self.repository.resolve_label(model, label),
        }
    }

    /// One inference, start to end: resolves the version, `decode`s the request against it
    /// (with whatever the front-end keeps for the answer, `W`), runs it, and `encode`s the
    /// answer. The version's statistics count the request once, as a success (with the
    /// encoding as its `compute_output`) or as a failure of any step, decoding included.
    /// `started` is when the request arrived.
    pub async fn infer<W, T, E>(
        &self,
        model: &str,
        selector: Selector<'_>,
        started: Instant,
        decode: impl FnOnce(&LoadedVersion) -> Result<(InferRequest, W), E>,
        encode: impl FnOnce(&LoadedVersion, InferResponse, W) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<InferError> + Failure,
    {
        let version = self
            .resolve(model, selector)
            .map_err(|e| self.unrouted(E::from(e)))?;
        let result: Result<T, E> = async {
            let (request, kept) = decode(&version)?;
            let mut ran = run::run(&self.repository, &version, request, started).await?;
            let encoding = Instant::now();
            let encoded = encode(&version, std::mem::take(&mut ran.response), kept)?;
            version
                .stats
                .record_success(ran.times(started, encoding.elapsed()));
            Ok(encoded)
        }
        .await;
        if let Err(error) = &result {
            version
                .stats
                .record_failure(started.elapsed(), error.failure_reason());
        }
        result
    }
}
