//! [`Scheduler`]: the queue in front of one model version and the workers that run it.
//!
//! Shape (TEI's queue, linkerd's pool): the handle holds a bounded sender; admission is
//! `try_send`, so a full queue answers [`InferError::Overloaded`] at once instead of growing.
//! `instances` worker threads take entries and run the pure [`Model::predict`]; a panic inside a
//! model is caught and fails that request only. When the last handle is dropped (the version was
//! unloaded and its in-flight requests finished) the queue closes and the workers exit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferroserve_core::{Model, ModelError, Tensor};
use tokio::sync::{mpsc, oneshot};
use tracing::Span;

use crate::error::InferError;
use crate::stats::VersionStats;

/// What a worker sends back: the outputs and where the time went, or the model's error.
type Reply = Result<Executed, ModelError>;

/// A request's outputs, with its queue and engine time.
#[derive(Debug)]
pub struct Executed {
    /// The outputs, in signature order.
    pub outputs: Vec<Tensor>,
    /// Time waiting for an instance.
    pub queue: Duration,
    /// Time in the engine.
    pub infer: Duration,
}

/// One queued request.
struct Entry {
    /// Inputs, validated and in signature order.
    inputs: Vec<Tensor>,
    /// Rows in the request (1 when the model does not batch).
    rows: usize,
    /// When it entered the queue, for the queue-time statistic.
    enqueued_at: Instant,
    /// Where the result goes; closed if the client went away.
    reply: oneshot::Sender<Reply>,
    /// The request's span, entered by the worker so its logs stay attached to the request.
    span: Span,
}

/// Handle to the queue of one model version. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Scheduler {
    /// The bounded queue; its capacity is the back-pressure limit.
    queue: mpsc::Sender<Entry>,
    /// For the `Overloaded` message.
    model: Arc<str>,
    capacity: usize,
}

impl Scheduler {
    /// Starts `instances` workers running `model`, behind a queue of `capacity` requests.
    pub fn start(
        model_name: &str,
        model: &Arc<dyn Model>,
        instances: usize,
        capacity: usize,
        stats: &Arc<VersionStats>,
    ) -> std::io::Result<Scheduler> {
        let (queue, receiver) = mpsc::channel(capacity);
        // Workers share one receiver; only the worker holding the lock waits on it, the others
        // wait for the lock. A std Mutex: it is only ever locked from these plain threads.
        let receiver = Arc::new(Mutex::new(receiver));
        for ix in 0..instances.max(1) {
            let receiver = Arc::clone(&receiver);
            let model = Arc::clone(model);
            let stats = Arc::clone(stats);
            std::thread::Builder::new()
                .name(format!("fs-{model_name}-{ix}"))
                .spawn(move || worker(&receiver, model.as_ref(), &stats))?;
        }
        Ok(Scheduler {
            queue,
            model: model_name.into(),
            capacity,
        })
    }

    /// Runs `inputs` (validated, in signature order, `rows` rows) through the model.
    pub async fn infer(&self, inputs: Vec<Tensor>, rows: usize) -> Result<Executed, InferError> {
        let (reply, result) = oneshot::channel();
        let entry = Entry {
            inputs,
            rows,
            enqueued_at: Instant::now(),
            reply,
            span: Span::current(),
        };
        self.queue.try_send(entry).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InferError::Overloaded {
                model: self.model.to_string(),
                capacity: self.capacity,
            },
            mpsc::error::TrySendError::Closed(_) => InferError::Unavailable {
                model: self.model.to_string(),
            },
        })?;
        match result.await {
            Ok(reply) => reply.map_err(InferError::from),
            Err(_) => Err(InferError::Unavailable {
                model: self.model.to_string(),
            }),
        }
    }
}

/// One worker: takes entries until the queue closes.
fn worker(receiver: &Mutex<mpsc::Receiver<Entry>>, model: &dyn Model, stats: &VersionStats) {
    loop {
        let entry = {
            let mut receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
            receiver.blocking_recv()
        };
        let Some(entry) = entry else { return };
        if entry.reply.is_closed() {
            continue;
        }
        let _guard = entry.span.enter();
        let queue = entry.enqueued_at.elapsed();
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| model.predict(&entry.inputs)))
            .unwrap_or_else(|panic| {
                Err(ModelError::Panicked {
                    message: panic_message(panic.as_ref()),
                })
            });
        let infer = started.elapsed();
        let reply = match result {
            Ok(outputs) => {
                stats.record_execution(entry.rows, infer);
                Ok(Executed {
                    outputs,
                    queue,
                    infer,
                })
            }
            Err(error) => {
                tracing::warn!(%error, "model execution failed");
                Err(error)
            }
        };
        let _ = entry.reply.send(reply);
    }
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::{Signature, TensorData};

    #[derive(Debug)]
    struct Echo {
        signature: Signature,
        delay: Duration,
    }

    impl Model for Echo {
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
            std::thread::sleep(self.delay);
            if inputs[0].shape == [0] {
                panic!("boom");
            }
            Ok(inputs.to_vec())
        }
    }

    fn tensor(n: usize) -> Tensor {
        Tensor::new("x", vec![n], TensorData::F32(vec![1.0; n])).unwrap()
    }

    fn start(delay: Duration, capacity: usize) -> (Scheduler, Arc<VersionStats>) {
        let stats = Arc::new(VersionStats::default());
        let model: Arc<dyn Model> = Arc::new(Echo {
            signature: Signature::default(),
            delay,
        });
        (
            Scheduler::start("echo", &model, 1, capacity, &stats).unwrap(),
            stats,
        )
    }

    #[tokio::test]
    async fn runs_and_counts() {
        let (s, stats) = start(Duration::ZERO, 4);
        let out = s.infer(vec![tensor(3)], 3).await.unwrap();
        assert_eq!(out.outputs[0], tensor(3));
        assert_eq!(stats.snapshot().execution_count, 1);
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_request() {
        let (s, _) = start(Duration::ZERO, 4);
        let err = s.infer(vec![tensor(0)], 1).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert!(s.infer(vec![tensor(1)], 1).await.is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_rejects_at_once() {
        // One slow instance and one queue slot: of three concurrent requests at least one finds
        // the queue full, and whichever were admitted still succeed.
        let (s, _) = start(Duration::from_millis(100), 1);
        let calls = (0..3).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.infer(vec![tensor(1)], 1).await })
        });
        let results = futures::future::join_all(calls).await;
        let (ok, rejected): (Vec<_>, Vec<_>) = results
            .into_iter()
            .map(|r| r.unwrap())
            .partition(|r| r.is_ok());
        assert!(!ok.is_empty());
        assert!(!rejected.is_empty());
        for r in rejected {
            assert!(
                matches!(r, Err(InferError::Overloaded { capacity: 1, .. })),
                "{r:?}"
            );
        }
    }
}
