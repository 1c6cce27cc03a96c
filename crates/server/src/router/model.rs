//! A plain model's run: inputs checked against the signature, the monitor's taps, the
//! prediction cache (a hit skips the queue), the version's queue, and the payload log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_core::Tensor;

use crate::cache::PredictionCache;
use crate::error::InferError;
use crate::inference::{Answered, InferRequest, InferResponse};
use crate::repository::LoadedVersion;
use crate::scheduler::{Request, Scheduler};

/// Runs `request` on the plain model `version` and, when its payload log draws the request,
/// logs it; `via` names the composite that routed it here (the record then names the
/// composite and the variant).
pub(super) async fn run_logged(
    version: &LoadedVersion,
    scheduler: &Scheduler,
    request: InferRequest,
    started: Instant,
    via: Option<&str>,
) -> Result<Answered, InferError> {
    // A logged request keeps a copy of its inputs (only when drawn).
    let logged = version
        .payload_log
        .as_ref()
        .filter(|log| log.sample())
        .map(|log| (log, request.inputs.clone(), request.id.clone()));
    let ran = run(version, scheduler, request, started).await;
    if let (Some((log, inputs, id)), Ok(ran)) = (logged, &ran) {
        let outputs: Vec<&Tensor> = ran.response.outputs.iter().collect();
        let id = ran.response.id.as_deref().or(id.as_deref());
        log.record(id, via, started.elapsed(), &inputs, &outputs);
    }
    ran
}

/// Validates `request` against the model `version` and runs it through its queue, unless
/// the cache holds the answer.
async fn run(
    version: &LoadedVersion,
    scheduler: &Scheduler,
    request: InferRequest,
    started: Instant,
) -> Result<Answered, InferError> {
    let signature = &version.signature;
    let selection = request.output_indices(signature)?;
    let InferRequest {
        id,
        inputs,
        priority,
        timeout,
        ..
    } = request;
    let inputs = signature.validate_inputs(inputs, version.max_batch_size)?;
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
    let selected = selection
        .iter()
        .map(|&ix| outputs[ix].take().expect("each output is selected once"))
        .collect();
    Ok(Answered {
        response: InferResponse {
            id,
            outputs: selected,
            parameters: serde_json::Map::new(),
        },
        compute_input,
        queue,
        infer,
    })
}
