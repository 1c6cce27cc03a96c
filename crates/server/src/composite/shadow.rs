//! `kind = "shadow"`: the primary answers; a fraction of requests is also sent to each shadow
//! after the answer is on its way, in a task of its own, so a shadow's latency or failure never
//! reaches the caller. At most `max_in_flight` mirrored requests run at once (default 1):
//! shadows share the compute threads with the primary, and a slow shadow must not take them
//! all; a request drawn for mirroring while that many are running is skipped and counted. Each shadow's outputs are compared with the primary's, output by output:
//! integers, booleans and strings exactly, floating point within `atol + rtol * |primary|`.
//! The agreement rate and the latest disagreements are in the statistics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferroserve_core::{Tensor, TensorData};
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Target;
use crate::error::InferError;
use crate::inference::{InferRequest, InferResponse};

/// Disagreements kept per shadow, for the statistics.
const KEPT_DISAGREEMENTS: usize = 20;

/// A primary and its shadows.
#[derive(Debug)]
pub struct Shadow {
    /// The target that answers.
    pub primary: Target,
    shadows: Vec<ShadowTarget>,
    fraction: f64,
    rtol: f64,
    atol: f64,
    mirrored: AtomicU64,
    skipped: AtomicU64,
    in_flight: Arc<Semaphore>,
}

/// What one shadow did, as counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowCounts {
    /// The shadow target.
    pub target: String,
    /// Answers compared with the primary's.
    pub compared: u64,
    /// Of those, the ones that agreed within the tolerance.
    pub agreed: u64,
    /// Mirrored requests the shadow failed.
    pub failed: u64,
}

/// One shadow and what it did.
#[derive(Debug)]
struct ShadowTarget {
    target: Target,
    compared: AtomicU64,
    agreed: AtomicU64,
    failed: AtomicU64,
    disagreements: Mutex<VecDeque<Value>>,
}

impl Shadow {
    /// A shadow composite.
    pub fn new(
        primary: Target,
        shadows: Vec<Target>,
        fraction: f64,
        (rtol, atol): (f64, f64),
        max_in_flight: usize,
    ) -> Shadow {
        Shadow {
            primary,
            shadows: shadows
                .into_iter()
                .map(|target| ShadowTarget {
                    target,
                    compared: AtomicU64::new(0),
                    agreed: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    disagreements: Mutex::new(VecDeque::new()),
                })
                .collect(),
            fraction,
            rtol,
            atol,
            mirrored: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Whether this request is mirrored: drawn with probability `fraction`, and fewer than
    /// `max_in_flight` mirrors running. The permit is held until the mirror finishes.
    pub fn mirror_this_one(&self) -> Option<OwnedSemaphorePermit> {
        let drawn = self.fraction >= 1.0 || rand::rng().random::<f64>() < self.fraction;
        if !drawn {
            return None;
        }
        match Arc::clone(&self.in_flight).try_acquire_owned() {
            Ok(permit) => {
                self.mirrored.fetch_add(1, Ordering::Relaxed);
                Some(permit)
            }
            Err(_) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The shadow targets, by index.
    pub fn shadows(&self) -> impl Iterator<Item = (usize, &Target)> {
        self.shadows.iter().map(|s| &s.target).enumerate()
    }

    /// Records shadow `ix`'s outputs against the primary's for request `id`.
    pub fn record(&self, ix: usize, id: Option<&str>, primary: &[Tensor], shadow: &[Tensor]) {
        let s = &self.shadows[ix];
        s.compared.fetch_add(1, Ordering::Relaxed);
        match self.difference(primary, shadow) {
            None => {
                s.agreed.fetch_add(1, Ordering::Relaxed);
            }
            Some(difference) => {
                let mut kept = s.disagreements.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == KEPT_DISAGREEMENTS {
                    kept.pop_front();
                }
                kept.push_back(json!({ "id": id, "difference": difference }));
            }
        }
    }

    /// Records that shadow `ix` failed on a mirrored request.
    pub fn record_failure(&self, ix: usize, error: &str) {
        let s = &self.shadows[ix];
        s.failed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(shadow = %s.target, error, "shadow request failed");
    }

    /// Sends a copy of `request` to each shadow through `send` (which runs one target) and
    /// records how their answers compare with the `primary`'s. Meant for a task of its own:
    /// nothing here reaches the caller.
    pub(crate) async fn mirror<F, Fut>(&self, request: InferRequest, primary: &[Tensor], send: F)
    where
        F: Fn(Target, InferRequest) -> Fut,
        Fut: Future<Output = Result<InferResponse, InferError>>,
    {
        for (ix, target) in self.shadows() {
            match send(target.clone(), request.clone()).await {
                Ok(answer) => self.record(ix, request.id.as_deref(), primary, &answer.outputs),
                Err(error) => self.record_failure(ix, &error.to_string()),
            }
        }
    }

    /// Where `shadow` differs from `primary`, if anywhere.
    fn difference(&self, primary: &[Tensor], shadow: &[Tensor]) -> Option<String> {
        for p in primary {
            let Some(s) = shadow.iter().find(|s| s.name == p.name) else {
                return Some(format!("no output '{}'", p.name));
            };
            if p.shape != s.shape {
                return Some(format!(
                    "output '{}': shape {:?} vs {:?}",
                    p.name, p.shape, s.shape
                ));
            }
            if let Some(at) = self.first_mismatch(p.data(), s.data()) {
                return Some(format!("output '{}': element {at} differs", p.name));
            }
        }
        None
    }

    /// The first element where two buffers disagree.
    fn first_mismatch(&self, a: &TensorData, b: &TensorData) -> Option<usize> {
        let close = |x: f64, y: f64| (x - y).abs() <= self.atol + self.rtol * x.abs();
        fn floats(d: &TensorData) -> Option<Vec<f64>> {
            Some(match d {
                TensorData::F16(v) => v.iter().map(|x| f64::from(x.to_f32())).collect(),
                TensorData::Bf16(v) => v.iter().map(|x| f64::from(x.to_f32())).collect(),
                TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
                TensorData::F64(v) => v.clone(),
                _ => return None,
            })
        }
        match (floats(a), floats(b)) {
            (Some(x), Some(y)) => x
                .iter()
                .zip(&y)
                .position(|(&p, &q)| !(close(p, q) || (p.is_nan() && q.is_nan()))),
            // Integers, booleans, strings: exactly (a datatype change is a mismatch at 0).
            _ => (a != b).then(|| first_index_of_difference(a, b)),
        }
    }

    /// Requests mirrored, and drawn but skipped because `max_in_flight` were running.
    pub fn mirrored_and_skipped(&self) -> (u64, u64) {
        (
            self.mirrored.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }

    /// What each shadow did, for the metrics.
    pub fn counts(&self) -> Vec<ShadowCounts> {
        self.shadows
            .iter()
            .map(|s| ShadowCounts {
                target: s.target.to_string(),
                compared: s.compared.load(Ordering::Relaxed),
                agreed: s.agreed.load(Ordering::Relaxed),
                failed: s.failed.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Mirroring and agreement per shadow, for the statistics.
    pub fn describe(&self) -> Value {
        let shadows: Vec<Value> = self
            .shadows
            .iter()
            .map(|s| {
                let compared = s.compared.load(Ordering::Relaxed);
                let agreed = s.agreed.load(Ordering::Relaxed);
                json!({
                    "target": s.target.to_string(),
                    "compared": compared,
                    "agreed": agreed,
                    "agreement": (compared > 0).then(|| agreed as f64 / compared as f64),
                    "failed": s.failed.load(Ordering::Relaxed),
                    "recent_disagreements": s.disagreements.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "kind": "shadow",
            "primary": self.primary.to_string(),
            "fraction": self.fraction,
            "mirrored": self.mirrored.load(Ordering::Relaxed),
            "skipped_busy": self.skipped.load(Ordering::Relaxed),
            "shadows": shadows,
        })
    }
}

/// The first element index where two non-float buffers differ (0 if their types differ).
fn first_index_of_difference(a: &TensorData, b: &TensorData) -> usize {
    macro_rules! first {
        ($($v:ident),*) => {
            match (a, b) {
                $((TensorData::$v(x), TensorData::$v(y)) => {
                    x.iter().zip(y).position(|(p, q)| p != q).unwrap_or(x.len().min(y.len()))
                })*
                _ => 0,
            }
        };
    }
    first!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadow() -> Shadow {
        Shadow::new(
            Target::parse("m@1").unwrap(),
            vec![Target::parse("m@2").unwrap()],
            1.0,
            (1e-3, 1e-5),
            usize::MAX >> 4,
        )
    }

    fn t(name: &str, data: TensorData) -> Tensor {
        let n = data.len();
        Tensor::new(name, vec![n], data).unwrap()
    }

    #[test]
    fn agreement_is_counted_with_tolerance_for_floats_only() {
        let s = shadow();
        let p = [
            t("p", TensorData::F32(vec![0.5, 0.25])),
            t("l", TensorData::I64(vec![1, 2])),
        ];
        let close = [
            t("p", TensorData::F32(vec![0.5001, 0.25])),
            t("l", TensorData::I64(vec![1, 2])),
        ];
        let far = [
            t("p", TensorData::F32(vec![0.6, 0.25])),
            t("l", TensorData::I64(vec![1, 2])),
        ];
        let other_label = [
            t("p", TensorData::F32(vec![0.5, 0.25])),
            t("l", TensorData::I64(vec![1, 3])),
        ];
        s.record(0, Some("a"), &p, &close);
        s.record(0, Some("b"), &p, &far);
        s.record(0, Some("c"), &p, &other_label);
        s.record(0, Some("d"), &p, &p[..1]);
        let d = s.describe();
        let first = &d["shadows"][0];
        assert_eq!(first["compared"], 4);
        assert_eq!(first["agreed"], 1);
        assert_eq!(first["agreement"], 0.25);
        let recent = first["recent_disagreements"].as_array().unwrap();
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0]["id"], "b");
        assert!(
            recent[0]["difference"]
                .as_str()
                .unwrap()
                .contains("output 'p': element 0")
        );
        assert!(
            recent[1]["difference"]
                .as_str()
                .unwrap()
                .contains("output 'l': element 1")
        );
        assert!(
            recent[2]["difference"]
                .as_str()
                .unwrap()
                .contains("no output 'l'")
        );
    }

    #[test]
    fn a_fraction_of_requests_is_mirrored() {
        let mut s = shadow();
        s.fraction = 0.25;
        let mut permits = Vec::new();
        for _ in 0..8000 {
            permits.extend(s.mirror_this_one());
        }
        assert!((1700..2300).contains(&permits.len()), "{}", permits.len());
        s.fraction = 0.0;
        assert!(!(0..1000).any(|_| s.mirror_this_one().is_some()));
    }

    #[test]
    fn no_more_than_max_in_flight_mirrors_run_at_once() {
        let mut s = shadow();
        s.in_flight = Arc::new(Semaphore::new(1));
        let first = s.mirror_this_one();
        assert!(first.is_some());
        assert!(s.mirror_this_one().is_none());
        drop(first);
        assert!(s.mirror_this_one().is_some());
        assert_eq!(s.describe()["skipped_busy"], 1);
    }
}
