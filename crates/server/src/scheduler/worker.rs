//! The workers of one model version: each batch becomes a job on the shared [`ComputePool`]
//! that stacks its requests' inputs, calls [`Model::predict`] and answers every request with
//! its own rows of the outputs. At most `instances` of a version's batches run at once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use ferroserve_core::{Model, ModelError, Tensor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::ComputePool;
use super::{Aimd, Entry, Executed};
use crate::error::InferError;
use crate::stats::VersionStats;

/// Requests to run together, and the worker slot they hold.
pub(super) struct Batch {
    pub(super) entries: Vec<Entry>,
    pub(super) permit: OwnedSemaphorePermit,
}

/// The workers of one version: its slots in the compute pool.
pub(super) struct Workers {
    pool: Arc<ComputePool>,
    worker: Arc<Worker>,
    idle: Arc<Semaphore>,
    model: Arc<str>,
}

impl Workers {
    /// Runs `model` on `pool`, `instances` batches at a time.
    pub(super) fn start(
        pool: &Arc<ComputePool>,
        model_name: &Arc<str>,
        model: &Arc<dyn Model>,
        instances: usize,
        stats: &Arc<VersionStats>,
        aimd: &Option<Arc<Aimd>>,
    ) -> Workers {
        Workers {
            pool: Arc::clone(pool),
            worker: Arc::new(Worker {
                model: Arc::clone(model),
                name: Arc::clone(model_name),
                stats: Arc::clone(stats),
                aimd: aimd.clone(),
            }),
            idle: Arc::new(Semaphore::new(instances.max(1))),
            model: Arc::clone(model_name),
        }
    }

    /// Waits for an idle worker.
    pub(super) async fn idle(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.idle)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `batch` on the pool, in the slot it holds.
    pub(super) fn dispatch(&self, batch: Batch) {
        let worker = Arc::clone(&self.worker);
        self.pool.execute(Box::new(move || worker.run(batch)));
    }

    /// The model's name, for errors.
    pub(super) fn model(&self) -> &Arc<str> {
        &self.model
    }
}

/// What a version's jobs run with.
struct Worker {
    model: Arc<dyn Model>,
    name: Arc<str>,
    stats: Arc<VersionStats>,
    aimd: Option<Arc<Aimd>>,
}

impl Worker {
    fn run(&self, Batch { entries, permit }: Batch) {
        let rows: Vec<usize> = entries.iter().map(|e| e.rows).collect();
        let total: usize = rows.iter().sum();
        let span = entries[0].span.clone();
        let _entered = span.enter();
        let (inputs, replies) = stack(entries);
        let started = Instant::now();
        let result = inputs.and_then(|inputs| {
            catch_unwind(AssertUnwindSafe(|| self.model.predict(&inputs))).unwrap_or_else(|panic| {
                Err(ModelError::Panicked {
                    message: ferroserve_core::error::panic_message(panic.as_ref()),
                })
            })
        });
        let infer = started.elapsed();
        if let (Ok(_), Some(aimd)) = (&result, &self.aimd) {
            // Before the worker is free again, so the next batch is sized with this one known.
            aimd.observe(total, infer);
        }
        drop(permit);
        let outputs = result.and_then(|outputs| split(outputs, &rows));
        match &outputs {
            Ok(_) => self.stats.record_execution(total, infer),
            Err(error) => tracing::warn!(%error, model = %self.name, "model execution failed"),
        }
        match outputs {
            Ok(per_request) => {
                for ((reply, arrived), outputs) in replies.into_iter().zip(per_request) {
                    let _ = reply.send(Ok(Executed {
                        outputs,
                        queue: started.saturating_duration_since(arrived),
                        infer,
                        batch_rows: total,
                    }));
                }
            }
            Err(error) => {
                for (reply, _) in replies {
                    let _ = reply.send(Err(InferError::Execution {
                        model: self.name.to_string(),
                        source: error.clone(),
                    }));
                }
            }
        }
    }
}

/// Where each request's answer goes, and when it arrived.
type Replies = Vec<(tokio::sync::oneshot::Sender<super::Reply>, Instant)>;

/// The batch's inputs (each request's stacked in order) and its requests' reply channels.
fn stack(entries: Vec<Entry>) -> (Result<Vec<Tensor>, ModelError>, Replies) {
    let mut replies = Vec::with_capacity(entries.len());
    let mut parts: Vec<Vec<Tensor>> = Vec::new();
    for entry in entries {
        replies.push((entry.reply, entry.arrived));
        parts.push(entry.inputs);
    }
    if parts.len() == 1 {
        return (Ok(parts.pop().expect("one part")), replies);
    }
    let inputs = parts.first().map_or(0, Vec::len);
    let stacked = (0..inputs)
        .map(|i| {
            let column: Vec<Tensor> = parts
                .iter_mut()
                .map(|p| std::mem::replace(&mut p[i], placeholder()))
                .collect();
            Tensor::concat_rows(&column).map_err(|e| batch_error(&e))
        })
        .collect();
    (stacked, replies)
}

/// Each request's rows of every output.
fn split(outputs: Vec<Tensor>, rows: &[usize]) -> Result<Vec<Vec<Tensor>>, ModelError> {
    if rows.len() == 1 {
        return Ok(vec![outputs]);
    }
    let mut per_request: Vec<Vec<Tensor>> = rows.iter().map(|_| Vec::new()).collect();
    for output in outputs {
        for (request, piece) in per_request
            .iter_mut()
            .zip(output.split_rows(rows).map_err(|e| batch_error(&e))?)
        {
            request.push(piece);
        }
    }
    Ok(per_request)
}

fn batch_error(e: &ferroserve_core::ValidationError) -> ModelError {
    ModelError::Execution {
        message: e.to_string(),
    }
}

/// An empty tensor left behind when a request's input moves into the batch.
fn placeholder() -> Tensor {
    Tensor::new("", vec![0], ferroserve_core::TensorData::F32(Vec::new()))
        .expect("an empty tensor is valid")
}
