//! The standard `process_*` families (the names every Prometheus client library exports),
//! read from `/proc/self` through the procfs crate at each scrape. Elsewhere than Linux the
//! families are left out.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// Encodes the `process_*` families.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    /// When this process started, in seconds since the Unix epoch (it does not change).
    start_time: Option<f64>,
}

impl ProcessCollector {
    pub(super) fn new() -> Self {
        ProcessCollector {
            start_time: start_time(),
        }
    }
}

#[cfg(target_os = "linux")]
fn start_time() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let boot = procfs::boot_time_secs().ok()?;
    Some(boot as f64 + stat.starttime as f64 / procfs::ticks_per_second() as f64)
}

#[cfg(not(target_os = "linux"))]
fn start_time() -> Option<f64> {
    None
}

#[cfg(target_os = "linux")]
impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        use super::{counters, gauges};
        use procfs::process::{LimitValue, Process};

        let Ok(me) = Process::myself() else {
            return Ok(());
        };
        let none = Vec::new;
        let e = &mut encoder;
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            counters(
                e,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                [(none(), (stat.utime + stat.stime) as f64 / ticks)],
            )?;
            gauges(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                false,
                [(none(), stat.rss * procfs::page_size())],
            )?;
            gauges(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                false,
                [(none(), stat.vsize)],
            )?;
            gauges(
                e,
                "process_threads",
                "Number of OS threads in the process.",
                false,
                [(none(), stat.num_threads)],
            )?;
        }
        if let Ok(fds) = me.fd_count() {
            gauges(
                e,
                "process_open_fds",
                "Number of open file descriptors.",
                false,
                [(none(), fds as u64)],
            )?;
        }
        if let Ok(limits) = me.limits()
            && let LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            gauges(
                e,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                false,
                [(none(), max)],
            )?;
        }
        if let Some(start) = self.start_time {
            gauges(
                e,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                false,
                [(none(), start)],
            )?;
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
impl Collector for ProcessCollector {
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        Ok(())
    }
}
