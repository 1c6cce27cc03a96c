//! How a batch run reports progress: a bar with rows/s and ETA on a terminal (indicatif),
//! plain lines every few seconds otherwise (logs, CI), or nothing.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Which kind of reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar redrawn in place (stderr).
    Bar,
    /// A line on stderr every few seconds.
    Lines,
    /// Nothing.
    Off,
}

/// The progress of one run; position is measured in input bytes (rows for Parquet are
/// converted by each file's share read), so the ETA spans files of every format.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    total: u64,
}

impl Progress {
    /// Reporting of the kind `mode`.
    pub fn new(mode: ProgressMode) -> Progress {
        Progress {
            mode,
            bar: None,
            started: Instant::now(),
            last_line: Instant::now(),
            total: 0,
        }
    }

    /// The run starts: `total` input bytes to read.
    pub fn start(&mut self, total: u64) {
        self.total = total;
        self.started = Instant::now();
        self.last_line = Instant::now();
        if self.mode == ProgressMode::Bar {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {percent:>3}% {msg} [{elapsed_precise}, ETA {eta}]",
                )
                .expect("a valid template"),
            );
            self.bar = Some(bar);
        }
    }

    /// `rows` written so far (`failed` of them not scored), `bytes` of input read.
    pub fn update(&mut self, rows: u64, failed: u64, bytes: u64) {
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(bytes);
                    bar.set_message(format!(
                        "{} rows, {}/s{}",
                        grouped(rows),
                        grouped(rate as u64),
                        if failed > 0 {
                            format!(", {} failed", grouped(failed))
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            ProgressMode::Lines if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                let share = bytes as f64 / self.total.max(1) as f64;
                let eta = if share > 0.0 {
                    self.started.elapsed().as_secs_f64() * (1.0 - share) / share
                } else {
                    f64::NAN
                };
                eprintln!(
                    "batch: {} rows ({:.0}%), {} rows/s, {} failed, ETA {:.0} s",
                    grouped(rows),
                    100.0 * share,
                    grouped(rate as u64),
                    grouped(failed),
                    eta
                );
            }
            _ => {}
        }
    }

    /// The run is over.
    pub fn finish(&mut self, _rows: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `n` with thousands separators: `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }
}
