//! Traffic over time, for the dashboard's charts: every [`SAMPLE_EVERY`] the counters of each
//! ready version are read, and the rates since the previous reading kept, the last
//! [`POINTS`] of them (ten minutes). Memory is fixed per version; a version that is gone
//! is dropped at the next reading.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::repository::Repository;

/// Time between two readings.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Readings kept per version.
pub(crate) const POINTS: usize = 300;

/// One reading: rates over the interval before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// Requests answered per second.
    pub requests_per_s: f64,
    /// Requests failed per second.
    pub failures_per_s: f64,
    /// Mean end-to-end latency of the answered ones, ms (`None` without any).
    pub mean_latency_ms: Option<f64>,
}

/// The readings of every version.
#[derive(Debug, Default)]
pub struct History {
    series: Mutex<BTreeMap<(String, u64), Series>>,
}

#[derive(Debug, Default)]
struct Series {
    /// The counters at the previous reading: when, successes, failures, summed success ns.
    last: Option<(Instant, u64, u64, u64)>,
    points: VecDeque<Point>,
}

impl History {
    /// Reads every ready version's counters once.
    pub fn sample(&self, repository: &Repository) {
        let now = Instant::now();
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::new();
        for v in repository.ready_versions() {
            let key = (v.model_name.clone(), v.version);
            let s = v.stats.snapshot();
            let counters = (s.success.count, s.fail.count, s.success.ns);
            let entry = series.entry(key.clone()).or_default();
            if let Some((then, ok, failed, ns)) = entry.last {
                let secs = now.duration_since(then).as_secs_f64().max(1e-3);
                // A rebuilt version starts from zero: no rate across the reset.
                if counters.0 >= ok && counters.1 >= failed {
                    let answered = counters.0 - ok;
                    entry.points.push_back(Point {
                        at,
                        requests_per_s: answered as f64 / secs,
                        failures_per_s: (counters.1 - failed) as f64 / secs,
                        mean_latency_ms: (answered > 0)
                            .then(|| (counters.2 - ns) as f64 / answered as f64 / 1e6),
                    });
                    while entry.points.len() > POINTS {
                        entry.points.pop_front();
                    }
                }
            }
            entry.last = Some((now, counters.0, counters.1, counters.2));
            seen.push(key);
        }
        series.retain(|k, _| seen.contains(k));
    }

    /// The readings of `model` `version`, oldest first.
    pub fn points(&self, model: &str, version: u64) -> Vec<Point> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(model.to_owned(), version))
            .map(|s| s.points.iter().copied().collect())
            .unwrap_or_default()
    }
}
