//! A decoded request through a version: a plain model runs it ([`super::model`]); a
//! composite hands it to the target it chooses (split, bandit, a shadow's primary, mirrored
//! to the shadows in the background) or walks its ensemble graph, each target counting the
//! request in its own statistics too.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::model;
use crate::composite::{Composite, Target};
use crate::error::InferError;
use crate::inference::{Answered, InferRequest};
use crate::repository::{Executor, LoadedVersion, Repository};
use crate::stats::Failure;

/// Runs `request` on `version`: its model, or the composite's target(s).
pub(super) async fn run(
    repository: &Arc<Repository>,
    version: &LoadedVersion,
    request: InferRequest,
    started: Instant,
) -> Result<Answered, InferError> {
    match &version.executor {
        Executor::Model(scheduler) => {
            model::run_logged(version, scheduler, request, started, None).await
        }
        Executor::Composite(composite) => {
            run_composite(repository, composite, request, started, &version.model_name).await
        }
    }
}

/// A composite's request: to the variant it chooses (a shadow's primary), whose statistics
/// count it too; the variant is named in the response parameter `variant`.
async fn run_composite(
    repository: &Arc<Repository>,
    composite: &Arc<Composite>,
    request: InferRequest,
    started: Instant,
    name: &str,
) -> Result<Answered, InferError> {
    let mut mirror = None;
    let mut feedback_id = None;
    let target = match composite.as_ref() {
        Composite::Ensemble(ensemble) => {
            let step = |target: Target, step_request: InferRequest| async move {
                run_target(repository, &target, step_request, Instant::now(), name)
                    .await
                    .map(|ran| ran.response)
            };
            return ensemble.run(name, request, started, step).await;
        }
        Composite::Split(split) => split.choose(&request.context).1.clone(),
        Composite::Bandit(bandit) => {
            let (_, target, id) = bandit.choose(name);
            feedback_id = Some(id);
            target.clone()
        }
        Composite::Shadow(shadow) => {
            if let Some(permit) = shadow.mirror_this_one() {
                mirror = Some((request.clone(), permit));
            }
            shadow.primary.clone()
        }
    };
    let mut ran = run_target(repository, &target, request, started, name).await?;
    if let (Some((copy, permit)), Composite::Shadow(_)) = (mirror, composite.as_ref()) {
        let primary = ran.response.outputs.clone();
        let repository = Arc::clone(repository);
        let composite = Arc::clone(composite);
        let name = name.to_owned();
        tokio::spawn(async move {
            let Composite::Shadow(shadow) = composite.as_ref() else {
                return;
            };
            let send = |target: Target, copy: InferRequest| {
                let (repository, name) = (&repository, &name);
                async move {
                    run_target(repository, &target, copy, Instant::now(), name)
                        .await
                        .map(|ran| ran.response)
                }
            };
            shadow.mirror(copy, &primary, send).await;
            drop(permit);
        });
    }
    let parameters = &mut ran.response.parameters;
    parameters.insert("variant".into(), Value::String(target.to_string()));
    if let Some(id) = feedback_id {
        parameters.insert("feedback_id".into(), Value::String(id));
    }
    Ok(ran)
}

/// Runs `request` on the plain model `target` names now for the composite `via`, counted in
/// its statistics (and its payload log).
async fn run_target(
    repository: &Repository,
    target: &Target,
    request: InferRequest,
    started: Instant,
    via: &str,
) -> Result<Answered, InferError> {
    let version = repository.resolve_target(target)?;
    let Executor::Model(scheduler) = &version.executor else {
        return Err(InferError::Composite {
            model: via.to_owned(),
            message: format!("its target {target} is a composite; targets must be plain models"),
        });
    };
    match model::run_logged(&version, scheduler, request, started, Some(via)).await {
        Ok(ran) => {
            let times = ran.times(started, std::time::Duration::ZERO);
            version.stats.record_success(times);
            Ok(ran)
        }
        Err(error) => {
            version
                .stats
                .record_failure(started.elapsed(), error.failure_reason());
            Err(error)
        }
    }
}
