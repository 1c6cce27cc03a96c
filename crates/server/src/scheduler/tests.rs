//! Scheduler behaviour on paused Tokio time: the batcher's delays and deadlines run on the
//! test's clock, so formation by size and by delay, expiry and priority are exact.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferroserve_core::{Model, ModelError, Signature, Tensor, TensorData};
use tokio::time::Instant;

use super::*;

/// Echoes its input and records every batch it is called with (the first value of each row).
/// With a gate, each call first waits for the test to open it once.
#[derive(Debug)]
struct Recorder {
    signature: Signature,
    batches: Mutex<Vec<Vec<f32>>>,
    gate: Option<Mutex<std_mpsc::Receiver<()>>>,
}

impl Model for Recorder {
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        if let Some(gate) = &self.gate {
            gate.lock().unwrap().recv().unwrap();
        }
        let TensorData::F32(values) = inputs[0].data() else {
            unreachable!()
        };
        if values.contains(&-1.0) {
            panic!("boom");
        }
        self.batches.lock().unwrap().push(values.clone());
        Ok(inputs.to_vec())
    }
}

struct Harness {
    scheduler: Scheduler,
    model: Arc<Recorder>,
    gate: Option<std_mpsc::Sender<()>>,
    stats: Arc<VersionStats>,
}

impl Harness {
    fn new(policy: BatchPolicy, gated: bool) -> Harness {
        let (open, gate) = std_mpsc::channel();
        let model = Arc::new(Recorder {
            signature: Signature::default(),
            batches: Mutex::default(),
            gate: gated.then(|| Mutex::new(gate)),
        });
        let stats = Arc::new(VersionStats::default());
        let dyn_model: Arc<dyn Model> = model.clone();
        // A pool of its own: a gated model blocks its threads, which must not be another
        // test's.
        let pool = Arc::new(ComputePool::new(policy.instances).unwrap());
        let scheduler = Scheduler::start(&pool, "m", &dyn_model, policy, &stats).unwrap();
        Harness {
            scheduler,
            model,
            gate: gated.then_some(open),
            stats,
        }
    }

    /// Starts a request of one row per value, at priority `priority`.
    fn send(
        &self,
        values: &[f32],
        priority: Option<u64>,
        timeout: Option<Duration>,
    ) -> tokio::task::JoinHandle<Result<Executed, InferError>> {
        let scheduler = self.scheduler.clone();
        let request = Request {
            inputs: vec![rows(values)],
            rows: values.len(),
            priority,
            timeout,
        };
        tokio::spawn(async move { scheduler.infer(request).await })
    }

    fn open(&self) {
        self.gate.as_ref().unwrap().send(()).unwrap();
    }

    fn batches(&self) -> Vec<Vec<f32>> {
        self.model.batches.lock().unwrap().clone()
    }
}

fn rows(values: &[f32]) -> Tensor {
    Tensor::new("x", vec![values.len(), 1], TensorData::F32(values.to_vec())).unwrap()
}

fn batching(max: usize, delay_ms: u64) -> BatchPolicy {
    BatchPolicy {
        max_batch_size: max,
        max_queue_delay: Duration::from_millis(delay_ms),
        ..BatchPolicy::default()
    }
}

/// Lets the batcher and the spawned requests run until they wait on something.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Waits (on the real clock: the workers are threads) until `n` batches have run.
async fn batches_run(h: &Harness, n: usize) {
    for _ in 0..2000 {
        if h.batches().len() >= n {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("{} batches ran, expected {n}", h.batches().len());
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_without_waiting_for_the_delay() {
    let h = Harness::new(batching(4, 10_000), false);
    let start = Instant::now();
    let calls: Vec<_> = (0..4).map(|i| h.send(&[i as f32], None, None)).collect();
    for (i, call) in calls.into_iter().enumerate() {
        let out = call.await.unwrap().unwrap();
        assert_eq!(
            out.outputs[0],
            rows(&[i as f32]),
            "each caller gets its own row"
        );
        assert_eq!(out.batch_rows, 4);
    }
    assert_eq!(h.batches(), vec![vec![0.0, 1.0, 2.0, 3.0]]);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_partial_batch_goes_when_the_oldest_request_has_waited_the_delay() {
    let h = Harness::new(batching(8, 10), false);
    let start = Instant::now();
    let calls: Vec<_> = (0..3).map(|i| h.send(&[i as f32], None, None)).collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(h.batches(), vec![vec![0.0, 1.0, 2.0]]);
    assert!(start.elapsed() >= Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn preferred_sizes_go_at_once_and_the_rest_waits() {
    let policy = BatchPolicy {
        preferred_batch_sizes: vec![2],
        ..batching(8, 50)
    };
    let h = Harness::new(policy, false);
    let calls: Vec<_> = (0..3).map(|i| h.send(&[i as f32], None, None)).collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(h.batches(), vec![vec![0.0, 1.0], vec![2.0]]);
}

#[tokio::test(start_paused = true)]
async fn requests_of_several_rows_are_split_back_exactly() {
    let h = Harness::new(batching(16, 5), false);
    let sent: Vec<Vec<f32>> = (0..5)
        .map(|i| (0..=i).map(|j| (10 * i + j) as f32).collect())
        .collect();
    let calls: Vec<_> = sent.iter().map(|v| h.send(v, None, None)).collect();
    for (values, call) in sent.iter().zip(calls) {
        let out = call.await.unwrap().unwrap();
        assert_eq!(out.outputs[0], rows(values));
    }
    assert_eq!(h.batches().len(), 1, "15 rows fit one batch");
    assert_eq!(h.stats.snapshot().execution_count, 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once_and_admitted_requests_still_run() {
    let policy = BatchPolicy {
        max_queue_size: 2,
        ..batching(1, 0)
    };
    let h = Harness::new(policy, true);
    let first = h.send(&[1.0], None, None);
    settle().await; // the first is with the (gated) worker, no longer queued
    let queued: Vec<_> = (0..2)
        .map(|i| h.send(&[2.0 + i as f32], None, None))
        .collect();
    settle().await;
    let rejected = h.send(&[9.0], None, None).await.unwrap().unwrap_err();
    assert!(
        matches!(rejected, InferError::Overloaded { capacity: 2, .. }),
        "{rejected:?}"
    );
    for _ in 0..3 {
        h.open();
    }
    first.await.unwrap().unwrap();
    for call in queued {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_expired_request_never_enters_a_batch() {
    let h = Harness::new(batching(1, 0), true);
    let busy = h.send(&[1.0], None, None);
    settle().await;
    let late = h.send(&[2.0], None, Some(Duration::from_millis(5)));
    let on_time = h.send(&[3.0], None, None);
    let err = late.await.unwrap().unwrap_err();
    assert!(
        matches!(err, InferError::DeadlineExceeded { timeout, .. } if timeout == Duration::from_millis(5)),
        "{err:?}"
    );
    h.open();
    h.open();
    busy.await.unwrap().unwrap();
    on_time.await.unwrap().unwrap();
    assert_eq!(h.batches(), vec![vec![1.0], vec![3.0]]);
}

#[tokio::test(start_paused = true)]
async fn higher_priority_requests_run_first() {
    let policy = BatchPolicy {
        priority_levels: 3,
        default_priority: 3,
        ..batching(1, 0)
    };
    let h = Harness::new(policy, true);
    let busy = h.send(&[0.0], None, None);
    settle().await;
    let low = h.send(&[3.0], None, None);
    let mid = h.send(&[2.0], Some(2), None);
    let high = h.send(&[1.0], Some(1), None);
    settle().await;
    for _ in 0..4 {
        h.open();
    }
    for call in [busy, low, mid, high] {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        h.batches(),
        vec![vec![0.0], vec![1.0], vec![2.0], vec![3.0]]
    );
    let err = h.send(&[1.0], Some(4), None).await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("4 is not a priority level"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_fails_only_its_batch_and_names_the_model() {
    let h = Harness::new(batching(4, 5), false);
    let bad: Vec<_> = [-1.0, 5.0]
        .iter()
        .map(|&v| h.send(&[v], None, None))
        .collect();
    for call in bad {
        let err = call.await.unwrap().unwrap_err();
        assert!(
            err.to_string().contains("model 'm' failed") && err.to_string().contains("boom"),
            "{err}"
        );
    }
    let out = h.send(&[7.0], None, None).await.unwrap().unwrap();
    assert_eq!(out.outputs[0], rows(&[7.0]));
}

#[tokio::test(start_paused = true)]
async fn with_batching_off_every_request_is_its_own_call() {
    let policy = BatchPolicy {
        mode: BatchMode::Off,
        ..batching(8, 10)
    };
    let h = Harness::new(policy, false);
    let calls: Vec<_> = (0..3).map(|i| h.send(&[i as f32], None, None)).collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    batches_run(&h, 3).await;
    assert!(h.batches().iter().all(|b| b.len() == 1));
}

#[tokio::test(start_paused = true)]
async fn the_next_batch_forms_while_the_current_one_runs() {
    let h = Harness::new(batching(8, 0), true);
    let first = h.send(&[0.0], None, None);
    settle().await;
    let waiting: Vec<_> = (1..6).map(|i| h.send(&[i as f32], None, None)).collect();
    settle().await;
    h.open();
    h.open();
    first.await.unwrap().unwrap();
    for call in waiting {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        h.batches(),
        vec![vec![0.0], vec![1.0, 2.0, 3.0, 4.0, 5.0]],
        "the five that waited run as one batch"
    );
}

#[tokio::test]
async fn adaptive_batches_start_at_one_row_and_grow_while_under_the_objective() {
    let policy = BatchPolicy {
        mode: BatchMode::Adaptive {
            latency_objective: Duration::from_secs(1),
        },
        ..batching(64, 0)
    };
    let h = Harness::new(policy, true);
    let first = h.send(&[0.0], None, None);
    settle().await;
    let mut waiting: Vec<_> = (1..40).map(|i| h.send(&[i as f32], None, None)).collect();
    settle().await;
    waiting.insert(0, first);
    for _ in 0..40 {
        h.open();
    }
    for call in waiting {
        call.await.unwrap().unwrap();
    }
    let sizes: Vec<usize> = h.batches().iter().map(Vec::len).collect();
    // Each full batch under the objective raises the target by one row: 1, 2, 3, ...
    assert_eq!(sizes[..4], [1, 2, 3, 4], "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 40);
}
