//! Request rates per client: a token bucket per API key (its own rate from the key file, or
//! the server's default) and, on a server without keys, per client address. A bucket holds
//! `burst` tokens and refills at `per_second`; a request takes one, and one that finds none is
//! refused with the time until a token is back (HTTP 429 with `Retry-After`). This is the
//! caller's quota, distinct from overload (a model's full queue, 503).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sustained rate and the burst above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests per second, refilled continuously.
    pub per_second: f64,
    /// The most requests at once after an idle spell (the bucket's size), at least 1.
    pub burst: f64,
}

impl Rate {
    /// `per_second`, with `burst` (default: one second's worth, at least 1).
    pub fn new(per_second: f64, burst: Option<f64>) -> Result<Rate, String> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "rate {per_second}: expected a positive number of requests per second"
            ));
        }
        let burst = burst.unwrap_or(per_second).max(1.0);
        if !burst.is_finite() {
            return Err(format!("burst {burst}: expected a finite number"));
        }
        Ok(Rate { per_second, burst })
    }
}

/// Whose bucket a request draws on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// An API key, by name.
    Key(Arc<str>),
    /// A client address, on a server without keys.
    Address(IpAddr),
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Most buckets kept; past it the full (idle) ones are dropped, so client addresses cannot
/// grow the map without bound.
const MAX_BUCKETS: usize = 100_000;

/// Every client's bucket.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<Client, Bucket>>,
}

impl RateLimits {
    /// Takes a token from `client`'s bucket at `rate`, or says how long until one is back.
    pub fn take(&self, client: Client, rate: Rate) -> Result<(), Duration> {
        self.take_at(client, rate, Instant::now())
    }

    fn take_at(&self, client: Client, rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&client) {
            buckets.retain(|_, b| refilled(b, rate, now) < rate.burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, rate, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate.per_second,
            ))
        }
    }
}

/// The bucket's tokens at `now`, at most `burst`.
fn refilled(bucket: &Bucket, rate: Rate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limits = RateLimits::default();
        let rate = Rate::new(10.0, Some(3.0)).unwrap();
        let key = || Client::Key(Arc::from("k"));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limits.take_at(key(), rate, t0).is_ok());
        }
        let wait = limits.take_at(key(), rate, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Another client has its own bucket.
        let other = Client::Address("127.0.0.1".parse().unwrap());
        assert!(limits.take_at(other, rate, t0).is_ok());
        // 100 ms later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limits.take_at(key(), rate, t1).is_ok());
        assert!(limits.take_at(key(), rate, t1).is_err());
        // After a long idle spell, the burst again, not more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limits.take_at(key(), rate, t2).is_ok());
        }
        assert!(limits.take_at(key(), rate, t2).is_err());
    }

    #[test]
    fn rates_must_be_positive() {
        assert!(Rate::new(0.0, None).is_err());
        assert!(Rate::new(f64::NAN, None).is_err());
        assert_eq!(Rate::new(0.5, None).unwrap().burst, 1.0);
    }
}
