//! The batcher task of one model version: turns the stream of admitted requests into batches
//! and hands each to an idle worker. See the parent module for the policy it follows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::queue::Pending;
use super::worker::{Batch, Workers};
use super::{Aimd, BatchPolicy, Entry};
use crate::error::InferError;

/// Runs until every handle is dropped and the queue is empty.
pub(super) async fn run(
    mut inbox: mpsc::UnboundedReceiver<Entry>,
    policy: Arc<BatchPolicy>,
    workers: Workers,
    aimd: Option<Arc<Aimd>>,
    queued: Arc<AtomicUsize>,
) {
    let mut pending = Pending::new(policy.priority_levels);
    let mut closed = false;
    loop {
        if pending.is_empty() {
            if closed {
                return;
            }
            match inbox.recv().await {
                Some(entry) => pending.push(entry),
                None => return,
            }
        }
        closed |= drain(&mut inbox, &mut pending);
        // Wait until a batch is worth sending, taking arrivals meanwhile.
        loop {
            remove_stale(&mut pending, &queued, &workers);
            if pending.is_empty() {
                break;
            }
            let target = policy.target(aimd.as_deref());
            let rows = pending.batchable_rows(target);
            let due = pending.oldest().map(|t| t + policy.max_queue_delay);
            let now = Instant::now();
            if closed
                || rows >= target
                || policy.preferred_ready(rows)
                || due.is_none_or(|d| d <= now)
            {
                break;
            }
            let wake = due
                .into_iter()
                .chain(pending.earliest_deadline())
                .min()
                .expect("a queued request has a due time");
            tokio::select! {
                biased;
                entry = inbox.recv() => match entry {
                    Some(entry) => {
                        pending.push(entry);
                        closed |= drain(&mut inbox, &mut pending);
                    }
                    None => closed = true,
                },
                () = sleep_until(wake) => {}
            }
        }
        if pending.is_empty() {
            continue;
        }
        // An idle worker; whatever arrives meanwhile may still join the batch.
        let permit = workers.idle().await;
        closed |= drain(&mut inbox, &mut pending);
        remove_stale(&mut pending, &queued, &workers);
        let target = policy.target(aimd.as_deref());
        let limit = policy.batch_limit(target, pending.batchable_rows(target));
        let entries = pending.take_batch(limit);
        queued.fetch_sub(entries.len(), Ordering::AcqRel);
        if !entries.is_empty() {
            workers.dispatch(Batch { entries, permit });
        }
    }
}

/// Moves every request already in the inbox to the queue; whether the inbox is closed.
fn drain(inbox: &mut mpsc::UnboundedReceiver<Entry>, pending: &mut Pending) -> bool {
    loop {
        match inbox.try_recv() {
            Ok(entry) => pending.push(entry),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}

/// Drops requests whose caller left and answers those whose deadline passed.
fn remove_stale(pending: &mut Pending, queued: &AtomicUsize, workers: &Workers) {
    let before = pending.len();
    pending.remove_stale(Instant::now(), |entry| {
        let timeout = entry
            .deadline
            .map(|d| d.saturating_duration_since(entry.enqueued_at))
            .unwrap_or_default();
        let _ = entry.reply.send(Err(InferError::DeadlineExceeded {
            model: workers.model().to_string(),
            timeout,
        }));
    });
    queued.fetch_sub(before - pending.len(), Ordering::AcqRel);
}
