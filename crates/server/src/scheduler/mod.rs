//! [`Scheduler`]: the queue in front of one model version, the dynamic batcher that turns its
//! requests into model calls, and the workers that make them.
//!
//! Shape (Triton's dynamic batcher, Clipper's adaptive batching, TEI's bounded queue):
//! - admission is synchronous: a full queue answers [`InferError::Overloaded`] at once, a
//!   priority outside the model's levels a 400; the queue never grows past `max_queue_size`;
//! - one batcher task per version ([`batcher`]) collects waiting requests ([`queue::Pending`]),
//!   decides when a batch is worth sending (full, a preferred size, or the oldest request has
//!   waited `max_queue_delay`), waits for an idle worker, tops the batch up with whatever
//!   arrived meanwhile and hands it over, so the next batch forms while the current one runs;
//! - up to `instances` batches at once run as jobs ([`worker`]) on the process's
//!   [`ComputePool`] (one thread per core, shared by every version): they stack the requests'
//!   rows, call the pure [`Model::predict`], split the outputs back per request; a panic fails
//!   only that batch;
//! - a request's deadline (`timeout`) is honoured twice: it never enters a batch once expired,
//!   and its caller is answered [`InferError::DeadlineExceeded`] when it passes;
//! - in `adaptive` mode the batch size follows [`adaptive::Aimd`].
//!
//! When the last handle is dropped (the version was unloaded and its requests finished) the
//! batcher serves what is still queued, and its last jobs finish on the pool.

mod adaptive;
mod batcher;
mod pool;
mod queue;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferroserve_core::{Model, Tensor};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Span;

use crate::error::InferError;
use crate::stats::VersionStats;

pub(crate) use adaptive::Aimd;
pub(crate) use pool::ComputePool;

/// How a version's requests are grouped into model calls (`model.toml`, defaults applied).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPolicy {
    /// Most rows in one call; 0 when the model has no batch dimension (one request a call).
    pub max_batch_size: usize,
    /// How batches are sized.
    pub mode: BatchMode,
    /// How long the oldest waiting request may wait for a fuller batch.
    pub max_queue_delay: Duration,
    /// Batch sizes to send as soon as they can be formed (rows), ascending.
    pub preferred_batch_sizes: Vec<usize>,
    /// Concurrent model calls (slots in the compute pool).
    pub instances: usize,
    /// Requests that may wait before new ones are turned away.
    pub max_queue_size: usize,
    /// Priority levels; a request's `priority` is 1 (highest) to this.
    pub priority_levels: usize,
    /// The level of a request that names none.
    pub default_priority: usize,
}

impl Default for BatchPolicy {
    fn default() -> BatchPolicy {
        BatchPolicy {
            max_batch_size: 0,
            mode: BatchMode::Dynamic,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: Vec::new(),
            instances: 1,
            max_queue_size: 1024,
            priority_levels: 1,
            default_priority: 1,
        }
    }
}

/// How batch sizes are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchMode {
    /// Every request is its own call.
    Off,
    /// Batches up to `max_batch_size`.
    Dynamic,
    /// Batches whose size follows the latency objective (AIMD, as Clipper).
    Adaptive {
        /// The longest a batch may take to compute.
        latency_objective: Duration,
    },
}

impl BatchPolicy {
    /// The most rows a batch may hold now.
    fn target(&self, aimd: Option<&Aimd>) -> usize {
        match (self.mode, self.max_batch_size) {
            (_, 0) | (BatchMode::Off, _) => 1,
            (BatchMode::Dynamic, max) => max,
            (BatchMode::Adaptive { .. }, max) => aimd.map_or(max, |a| a.target().min(max)),
        }
    }

    /// Whether `rows` waiting rows make a preferred batch that should go now.
    fn preferred_ready(&self, rows: usize) -> bool {
        self.preferred_batch_sizes
            .first()
            .is_some_and(|&p| rows >= p)
    }

    /// The rows of the batch to form from `rows` batchable rows: the largest preferred size
    /// that fits, else `target`.
    fn batch_limit(&self, target: usize, rows: usize) -> usize {
        self.preferred_batch_sizes
            .iter()
            .rev()
            .find(|&&p| p <= rows.min(target))
            .copied()
            .unwrap_or(target)
    }
}

/// A request as the scheduler takes it.
#[derive(Debug)]
pub struct Request {
    /// Inputs, validated and in signature order.
    pub inputs: Vec<Tensor>,
    /// Rows (1 when the model does not batch).
    pub rows: usize,
    /// Priority level, 1 the highest; the model's default when `None` or 0.
    pub priority: Option<u64>,
    /// How long the caller will wait.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with the default priority and no timeout.
    pub fn new(inputs: Vec<Tensor>, rows: usize) -> Request {
        Request {
            inputs,
            rows,
            priority: None,
            timeout: None,
        }
    }
}

/// A request's outputs, with where its time went.
#[derive(Debug)]
pub struct Executed {
    /// The outputs, in signature order.
    pub outputs: Vec<Tensor>,
    /// Time from admission to the start of its model call.
    pub queue: Duration,
    /// Time of the model call (shared with the batch).
    pub infer: Duration,
    /// Rows in the batch it ran in.
    pub batch_rows: usize,
}

/// What a worker or the batcher sends back to the waiting caller.
type Reply = Result<Executed, InferError>;

/// One admitted request.
#[derive(Debug)]
struct Entry {
    inputs: Vec<Tensor>,
    rows: usize,
    /// Whether the model batches (its inputs may be stacked with others').
    batchable: bool,
    /// Priority level index, 0 the highest.
    priority: usize,
    deadline: Option<Instant>,
    /// Admission time on the scheduler's clock (batch delays).
    enqueued_at: Instant,
    /// Admission time on the wall clock (queue-time statistics, taken on worker threads).
    arrived: std::time::Instant,
    reply: oneshot::Sender<Reply>,
    /// The request's span, entered while its batch runs so logs stay attached to it.
    span: Span,
}

/// Handle to the queue of one model version. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Scheduler {
    inbox: mpsc::UnboundedSender<Entry>,
    /// Requests admitted and not yet in a batch (the inbox plus the batcher's queue).
    queued: Arc<AtomicUsize>,
    policy: Arc<BatchPolicy>,
    model: Arc<str>,
}

impl Scheduler {
    /// Starts the batcher of `model`, whose calls run on `pool`, `policy.instances` at a time.
    /// The batcher runs on the current Tokio runtime, or on a thread of its own outside one.
    pub fn start(
        pool: &Arc<ComputePool>,
        model_name: &str,
        model: &Arc<dyn Model>,
        policy: BatchPolicy,
        stats: &Arc<VersionStats>,
    ) -> std::io::Result<Scheduler> {
        let model_name: Arc<str> = model_name.into();
        let aimd = match policy.mode {
            BatchMode::Adaptive { latency_objective } if policy.max_batch_size > 0 => Some(
                Arc::new(Aimd::new(policy.max_batch_size, latency_objective)),
            ),
            _ => None,
        };
        let workers =
            worker::Workers::start(pool, &model_name, model, policy.instances, stats, &aimd);
        let (inbox, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let policy = Arc::new(policy);
        let batcher = batcher::run(
            receiver,
            Arc::clone(&policy),
            workers,
            aimd,
            Arc::clone(&queued),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(batcher);
            }
            Err(_) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()?;
                std::thread::Builder::new()
                    .name(format!("fs-{model_name}-batcher"))
                    .spawn(move || runtime.block_on(batcher))?;
            }
        }
        Ok(Scheduler {
            inbox,
            queued,
            policy,
            model: model_name,
        })
    }

    /// Runs `request` through the model, in a batch with others when the policy allows.
    pub async fn infer(&self, request: Request) -> Result<Executed, InferError> {
        let levels = self.policy.priority_levels;
        let priority = match request.priority {
            None | Some(0) => self.policy.default_priority,
            Some(p) if p as usize <= levels => p as usize,
            Some(p) => {
                return Err(InferError::Parameter {
                    parameter: "priority".into(),
                    message: format!(
                        "{p} is not a priority level of model '{}' (1 is the highest, {levels} \
                         the lowest)",
                        self.model
                    ),
                });
            }
        };
        let capacity = self.policy.max_queue_size;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(InferError::Overloaded {
                model: self.model.to_string(),
                capacity,
            });
        }
        let now = Instant::now();
        let deadline = request.timeout.map(|t| now + t);
        let (reply, result) = oneshot::channel();
        let entry = Entry {
            inputs: request.inputs,
            rows: request.rows,
            batchable: self.policy.max_batch_size > 0,
            priority: priority - 1,
            deadline,
            enqueued_at: now,
            arrived: std::time::Instant::now(),
            reply,
            span: Span::current(),
        };
        if self.inbox.send(entry).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(self.unavailable());
        }
        let result = match (deadline, request.timeout) {
            (Some(deadline), Some(timeout)) => tokio::time::timeout_at(deadline, result)
                .await
                .map_err(|_| InferError::DeadlineExceeded {
                    model: self.model.to_string(),
                    timeout,
                })?,
            _ => result.await,
        };
        result.unwrap_or_else(|_| Err(self.unavailable()))
    }

    fn unavailable(&self) -> InferError {
        InferError::Unavailable {
            model: self.model.to_string(),
        }
    }

    /// Requests admitted and not yet in a batch: the queue depth.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The policy this scheduler runs.
    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }
}
