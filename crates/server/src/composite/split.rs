//! `kind = "split"`: each request goes to one variant, drawn by weight. With `sticky_by`, the
//! draw is a hash of the caller's key instead, so the same key always lands on the same
//! variant (on every replica, across restarts) while the weights stay as configured.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngExt;
use serde_json::{Value, json};

use super::Target;
use crate::inference::RequestContext;

/// A weighted split between targets.
#[derive(Debug)]
pub struct Split {
    /// Targets with their cumulative share of 1 (the last is 1), in config order.
    variants: Vec<(Target, f64)>,
    sticky_by: Option<String>,
    served: Vec<AtomicU64>,
}

impl Split {
    /// A split over `variants` (target, weight); weights are checked positive in sum.
    pub fn new(variants: Vec<(Target, f64)>, sticky_by: Option<String>) -> Split {
        let total: f64 = variants.iter().map(|(_, w)| w).sum();
        let mut cumulative = 0.0;
        let variants: Vec<(Target, f64)> = variants
            .into_iter()
            .map(|(t, w)| {
                cumulative += w / total;
                (t, cumulative)
            })
            .collect();
        let served = variants.iter().map(|_| AtomicU64::new(0)).collect();
        Split {
            variants,
            sticky_by,
            served,
        }
    }

    /// The variant for this request, and its index.
    pub fn choose(&self, context: &RequestContext) -> (usize, &Target) {
        let key = self.sticky_by.as_deref().and_then(|k| context.lookup(k));
        let u = match key {
            Some(key) => unit_hash(key.as_bytes()),
            None => rand::rng().random::<f64>(),
        };
        let ix = self
            .variants
            .iter()
            .position(|(_, c)| u < *c)
            .unwrap_or(self.variants.len() - 1);
        self.served[ix].fetch_add(1, Ordering::Relaxed);
        (ix, &self.variants[ix].0)
    }

    /// Requests served per variant (target, count), for the metrics.
    pub fn served(&self) -> Vec<(String, u64)> {
        self.variants
            .iter()
            .zip(&self.served)
            .map(|((target, _), served)| (target.to_string(), served.load(Ordering::Relaxed)))
            .collect()
    }

    /// Requests served per variant, for the statistics.
    pub fn describe(&self) -> Value {
        let mut previous = 0.0;
        let variants: Vec<Value> = self
            .variants
            .iter()
            .zip(&self.served)
            .map(|((target, cumulative), served)| {
                let share = cumulative - previous;
                previous = *cumulative;
                json!({
                    "target": target.to_string(),
                    "share": share,
                    "served": served.load(Ordering::Relaxed),
                })
            })
            .collect();
        json!({ "kind": "split", "sticky_by": self.sticky_by, "variants": variants })
    }
}

/// `bytes` hashed to [0, 1). FNV-1a, written out because its output is fixed by its
/// definition: std's hasher may change between Rust releases, and a sticky assignment must
/// not move when the server is rebuilt. The final multiply spreads FNV's weak low bits.
fn unit_hash(bytes: &[u8]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(weights: &[f64], sticky: bool) -> Split {
        Split::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| (Target::parse(&format!("m@{}", i + 1)).unwrap(), *w))
                .collect(),
            sticky.then(|| "user".to_owned()),
        )
    }

    fn context(user: &str) -> RequestContext {
        let mut c = RequestContext::default();
        c.parameters
            .insert("user".into(), Value::String(user.into()));
        c
    }

    #[test]
    fn random_draws_follow_the_weights() {
        let s = split(&[90.0, 10.0, 0.0], false);
        let mut counts = [0; 3];
        for _ in 0..20_000 {
            counts[s.choose(&RequestContext::default()).0] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[1] as f64 / 20_000.0;
        assert!((0.08..0.12).contains(&share), "{counts:?}");
    }

    #[test]
    fn the_same_key_always_gets_the_same_variant_and_keys_follow_the_weights() {
        let s = split(&[50.0, 50.0], true);
        let mut counts = [0; 2];
        for user in 0..4000 {
            let key = format!("user-{user}");
            let first = s.choose(&context(&key)).0;
            for _ in 0..3 {
                assert_eq!(s.choose(&context(&key)).0, first);
            }
            counts[first] += 1;
        }
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
        // A header of the same name works when the parameter is absent.
        let mut by_header = RequestContext::default();
        by_header.headers.push(("user".into(), "user-7".into()));
        assert_eq!(s.choose(&by_header).0, s.choose(&context("user-7")).0);
        // Fixed by definition: this must never change between builds.
        assert_eq!(unit_hash(b"user-1"), unit_hash(b"user-1"));
        assert!((0.0..1.0).contains(&unit_hash(b"")));
    }
}
