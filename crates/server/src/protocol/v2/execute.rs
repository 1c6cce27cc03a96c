//! Running a decoded V2 request against a model version, shared by every V2 front-end and by
//! `ferroserve predict`: through the version's queue, or, for a composite, through the target
//! it routes to (and, for a shadow, its mirrors in the background).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_core::Tensor;
use rand::RngExt;
use serde_json::{Map, Value};

use crate::cache::PredictionCache;
use crate::composite::ensemble::{self, Ensemble, StepSpec};
use crate::composite::{Composite, RequestContext, Target};
use crate::error::InferError;
use crate::protocol::status::{ApiError, failure_reason};
use crate::protocol::v2::codec::{
    EncodedResponse, ProtocolError, RequestedOutput, V2Request, encode_response,
};
use crate::repository::{Executor, LoadedVersion, Repository};
use crate::scheduler::{Request, Scheduler};
use crate::stats::RequestTimes;

/// A V2 request that ran: the outputs asked for (each with whether it goes back binary) and
/// where its time went, to be encoded by the front-end and then [`Ran::finish`]ed.
#[derive(Debug)]
pub struct Ran {
    /// The client's request id.
    pub id: Option<String>,
    /// The selected outputs, in the order asked for.
    pub outputs: Vec<(Tensor, bool)>,
    /// Response parameters (a composite names the variant that answered).
    pub parameters: Map<String, Value>,
    started: Instant,
    compute_input: std::time::Duration,
    queue: std::time::Duration,
    infer: std::time::Duration,
}

impl Ran {
    /// Records the success in the version's statistics; `encoding` started when the front-end
    /// began encoding the answer.
    pub fn finish(&self, version: &LoadedVersion, encoding: Instant) {
        version.stats.record_success(RequestTimes {
            total: self.started.elapsed(),
            queue: self.queue,
            compute_input: self.compute_input,
            compute_infer: self.infer,
            compute_output: encoding.elapsed(),
        });
    }
}

/// Validates `request` against `version`, runs it and encodes the outputs asked for.
/// `started` is when the request arrived; a success is recorded in the version's statistics
/// here, a failure by the caller.
pub async fn execute(
    repository: &Arc<Repository>,
    version: &LoadedVersion,
    request: V2Request,
    context: &RequestContext,
    started: Instant,
) -> Result<EncodedResponse, ApiError> {
    let ran = run(repository, version, request, context, started).await?;
    let encoding = Instant::now();
    let encoded = encode_response(
        &version.model_name,
        version.version,
        ran.id.as_deref(),
        &ran.outputs,
        &ran.parameters,
    );
    ran.finish(version, encoding);
    Ok(encoded)
}

/// Validates `request` against `version` and runs it; the outputs asked for. Shared by every
/// V2 front-end (HTTP, gRPC) and TF Serving's.
pub async fn run(
    repository: &Arc<Repository>,
    version: &LoadedVersion,
    request: V2Request,
    context: &RequestContext,
    started: Instant,
) -> Result<Ran, ApiError> {
    match &version.executor {
        Executor::Model(scheduler) => {
            run_model_logged(version, scheduler, request, started, None).await
        }
        Executor::Composite(composite) => {
            let name = version.model_name.as_str();
            run_composite(repository, composite, request, context, started, name).await
        }
    }
}

/// Runs `request` on the plain model `version` and, when its payload log draws the request,
/// logs it; `via` names the composite that routed it here (the record then names the
/// composite and the variant).
async fn run_model_logged(
    version: &LoadedVersion,
    scheduler: &Scheduler,
    request: V2Request,
    started: Instant,
    via: Option<&str>,
) -> Result<Ran, ApiError> {
    // A logged request keeps a copy of its inputs (only when drawn).
    let logged = version
        .payload_log
        .as_ref()
        .filter(|log| log.sample())
        .map(|log| (log, request.inputs.clone(), request.id.clone()));
    let ran = run_model(version, scheduler, request, started).await;
    if let (Some((log, inputs, id)), Ok(ran)) = (logged, &ran) {
        let outputs: Vec<&Tensor> = ran.outputs.iter().map(|(t, _)| t).collect();
        let id = ran.id.as_deref().or(id.as_deref());
        log.record(id, via, started.elapsed(), &inputs, &outputs);
    }
    ran
}

/// A composite's request: to the variant it chooses (a shadow's primary), whose statistics
/// count it too; the variant is named in the response parameter `variant`.
async fn run_composite(
    repository: &Arc<Repository>,
    composite: &Arc<Composite>,
    mut request: V2Request,
    context: &RequestContext,
    started: Instant,
    name: &str,
) -> Result<Ran, ApiError> {
    if let Composite::Ensemble(ensemble) = composite.as_ref() {
        return run_ensemble(repository, ensemble, request, started, name).await;
    }
    let mut mirror = None;
    let target = match composite.as_ref() {
        Composite::Split(split) => split.choose(context).1.clone(),
        Composite::Bandit(bandit) => {
            // Feedback names the request, so every bandit answer carries an id.
            let id = request
                .id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(new_request_id);
            request.id = Some(id.clone());
            bandit.choose(&id).1.clone()
        }
        Composite::Shadow(shadow) => {
            if let Some(permit) = shadow.mirror_this_one() {
                mirror = Some((request.clone(), permit));
            }
            shadow.primary.clone()
        }
        Composite::Ensemble(_) => unreachable!("ran above"),
    };
    let mut ran = run_target(repository, &target, request, started, Some(name)).await?;
    if let Some((copy, permit)) = mirror {
        let primary: Vec<Tensor> = ran.outputs.iter().map(|(t, _)| t.clone()).collect();
        let repository = Arc::clone(repository);
        let composite = Arc::clone(composite);
        let name = name.to_owned();
        tokio::spawn(async move {
            mirror_to_shadows(repository, composite, copy, primary, &name).await;
            drop(permit);
        });
    }
    ran.parameters
        .insert("variant".into(), Value::String(target.to_string()));
    Ok(ran)
}

/// An ensemble's request: each step once its inputs exist (the steps ready together run
/// concurrently), the combiners as soon as theirs do, then the outputs asked for.
async fn run_ensemble(
    repository: &Repository,
    ensemble: &Ensemble,
    request: V2Request,
    started: Instant,
    name: &str,
) -> Result<Ran, ApiError> {
    let V2Request {
        id,
        inputs,
        outputs: requested,
        binary_output,
        priority,
        timeout,
        parameters,
    } = request;
    let signature = &ensemble.signature;
    let inputs = signature
        .validate_inputs(inputs, usize::MAX)
        .map_err(InferError::from)?;
    let compute_input = started.elapsed();
    let mut tensors: BTreeMap<String, Tensor> =
        inputs.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut pending: Vec<&(Target, StepSpec)> = ensemble.steps.iter().collect();
    let mut combined = vec![false; ensemble.combines.len()];
    let infer_started = Instant::now();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, s)| s.inputs.values().all(|t| tensors.contains_key(t)));
        pending = waiting;
        if ready.is_empty() {
            return Err(InferError::Unavailable {
                model: "ensemble (a step waits on a tensor no step produced)".into(),
            }
            .into());
        }
        let runs = ready.iter().map(|(target, step)| {
            let step_inputs = step
                .inputs
                .iter()
                .map(|(name, tensor)| {
                    let mut t = tensors[tensor].clone();
                    t.name.clone_from(name);
                    t
                })
                .collect();
            let step_request = V2Request {
                id: id.clone(),
                inputs: step_inputs,
                priority,
                timeout,
                parameters: parameters.clone(),
                ..V2Request::default()
            };
            run_target(repository, target, step_request, Instant::now(), Some(name))
        });
        for ((_, step), ran) in ready.iter().zip(futures::future::join_all(runs).await) {
            // The step's own error: it names the model (and its status is the step's).
            let ran = ran?;
            for (mut t, _) in ran.outputs {
                if let Some(tensor) = step.outputs.get(&t.name) {
                    t.name.clone_from(tensor);
                    tensors.insert(tensor.clone(), t);
                }
            }
        }
        // Combiners whose inputs now exist, in order (one may read another's output).
        for (ix, c) in ensemble.combines.iter().enumerate() {
            if !combined[ix] && c.inputs.iter().all(|i| tensors.contains_key(i)) {
                let parts: Vec<&Tensor> = c.inputs.iter().map(|i| &tensors[i]).collect();
                let out = ensemble::combine(c.op, &c.output, &parts).map_err(|message| {
                    InferError::Execution {
                        model: "ensemble".into(),
                        source: ferroserve_core::ModelError::Execution { message },
                    }
                })?;
                tensors.insert(c.output.clone(), out);
                combined[ix] = true;
            }
        }
    }
    let infer = infer_started.elapsed();
    let outputs = select_outputs(signature, &requested, binary_output)?
        .into_iter()
        .map(|(ix, binary)| {
            let name = &signature.outputs[ix].name;
            let t = tensors
                .remove(name)
                .ok_or_else(|| InferError::Unavailable {
                    model: format!("ensemble (no step produced '{name}')"),
                })?;
            Ok((t, binary))
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Ran {
        id,
        outputs,
        parameters: Map::new(),
        started,
        compute_input,
        queue: Duration::ZERO,
        infer,
    })
}

/// Runs `request` on the plain model `target` names now for the composite `via`, counted in
/// its statistics (and its payload log).
async fn run_target(
    repository: &Repository,
    target: &Target,
    request: V2Request,
    started: Instant,
    via: Option<&str>,
) -> Result<Ran, ApiError> {
    let version = target.resolve(repository)?;
    let Executor::Model(scheduler) = &version.executor else {
        return Err(InferError::Unavailable {
            model: format!("{target} (a composite cannot be a composite's target)"),
        }
        .into());
    };
    match run_model_logged(&version, scheduler, request, started, via).await {
        Ok(ran) => {
            ran.finish(&version, Instant::now());
            Ok(ran)
        }
        Err(error) => {
            version
                .stats
                .record_failure(started.elapsed(), failure_reason(&error));
            Err(error)
        }
    }
}

/// Sends a copy of a request to each shadow and records how their answers compare with the
/// primary's. Runs in its own task: nothing here reaches the caller.
async fn mirror_to_shadows(
    repository: Arc<Repository>,
    composite: Arc<Composite>,
    request: V2Request,
    primary: Vec<Tensor>,
    name: &str,
) {
    let Composite::Shadow(shadow) = composite.as_ref() else {
        return;
    };
    for (ix, target) in shadow.shadows() {
        let copy = request.clone();
        match run_target(&repository, target, copy, Instant::now(), Some(name)).await {
            Ok(ran) => {
                let outputs: Vec<Tensor> = ran.outputs.into_iter().map(|(t, _)| t).collect();
                shadow.record(ix, request.id.as_deref(), &primary, &outputs);
            }
            Err(error) => shadow.record_failure(ix, &error.to_string()),
        }
    }
}

/// A request id for a caller that gave none: 16 random hex digits.
fn new_request_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// The outputs a request asks for, as indices into `signature`'s outputs with whether each
/// goes back binary: all of them when it names none; each at most once.
fn select_outputs(
    signature: &ferroserve_core::Signature,
    requested: &[RequestedOutput],
    binary_output: bool,
) -> Result<Vec<(usize, bool)>, ApiError> {
    if let Some(dup) = requested
        .iter()
        .enumerate()
        .find(|(i, o)| requested[..*i].iter().any(|p| p.name == o.name))
    {
        return Err(ProtocolError::Json {
            message: format!("output '{}' is requested more than once", dup.1.name),
        }
        .into());
    }
    if requested.is_empty() {
        return Ok((0..signature.outputs.len())
            .map(|i| (i, binary_output))
            .collect());
    }
    requested
        .iter()
        .map(|o| {
            let ix = signature.output_index(&o.name).map_err(InferError::from)?;
            Ok((ix, o.binary.unwrap_or(binary_output)))
        })
        .collect()
}

/// Validates `request` against the model `version` and runs it through its queue.
async fn run_model(
    version: &LoadedVersion,
    scheduler: &Scheduler,
    request: V2Request,
    started: Instant,
) -> Result<Ran, ApiError> {
    let V2Request {
        id,
        inputs,
        outputs: requested,
        binary_output,
        priority,
        timeout,
        parameters: _,
    } = request;
    let signature = &version.signature;
    let selection = select_outputs(signature, &requested, binary_output)?;
    let inputs = signature
        .validate_inputs(inputs, version.max_batch_size)
        .map_err(InferError::from)?;
    let rows = match version.max_batch_size {
        0 => 1,
        _ => inputs.first().and_then(Tensor::batch_size).unwrap_or(1),
    };
    let compute_input = started.elapsed();
    if let Some(monitor) = &version.monitor {
        monitor.observe_inputs(&inputs);
    }

    // The prediction cache: an answer kept for exactly these inputs skips the queue.
    let lookup = Instant::now();
    let cached = version.cache.as_ref().map(|cache| {
        let key = PredictionCache::key(&inputs);
        let hit = cache.get(&key);
        (cache, key, hit)
    });
    let (all_outputs, queue, infer) = match cached {
        Some((_, _, Some(hit))) => {
            version.stats.record_cache(true, lookup.elapsed());
            (Vec::clone(&hit), Duration::ZERO, Duration::ZERO)
        }
        miss => {
            let looked = lookup.elapsed();
            let executed = scheduler
                .infer(Request {
                    inputs,
                    rows,
                    priority,
                    timeout,
                })
                .await?;
            if let Some((cache, key, None)) = miss {
                let storing = Instant::now();
                cache.put(key, Arc::new(executed.outputs.clone()));
                version
                    .stats
                    .record_cache(false, looked + storing.elapsed());
            }
            (executed.outputs, executed.queue, executed.infer)
        }
    };

    if let Some(monitor) = &version.monitor {
        monitor.observe_outputs(&all_outputs);
    }
    let mut outputs: Vec<Option<Tensor>> = all_outputs.into_iter().map(Some).collect();
    let selected: Vec<(Tensor, bool)> = selection
        .iter()
        .map(|&(ix, binary)| {
            (
                outputs[ix].take().expect("each output is selected once"),
                binary,
            )
        })
        .collect();
    Ok(Ran {
        id,
        outputs: selected,
        parameters: Map::new(),
        started,
        compute_input,
        queue,
        infer,
    })
}
