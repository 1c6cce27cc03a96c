//! Payload logging: a sampled share of a model's requests, each written as one JSON line
//! (request id, model, version, latency, inputs and outputs as V2 JSON tensors; for a request
//! a composite routed here, the composite and the variant it chose) to rotating files, for
//! audits, retraining and the analysis of experiments.
//!
//! The request path never waits on the disk: a sampled record goes into a bounded channel
//! with `try_send`, and a thread of the version's own writes it; a full channel drops the
//! record and counts it, as does one that would take the queued records past
//! [`QUEUE_BYTES`]. Files are `<directory>/<model>-<version>-<start ms>-<nnnnnn>.jsonl`,
//! rotated at `max_file_bytes`; beyond `max_files` the oldest of the model's files in the
//! directory are removed, whichever version or run of the server wrote them. The records are
//! raw inputs: the directory is made `0700` and the files `0600`, and `model.toml` can keep
//! named tensors out ([`Privacy`]: `drop`, `redact`, `hash`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferroserve_core::Tensor;
use rand::RngExt;
use serde::Serialize;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::access::keys::hex;
use crate::codec::TensorJson;
use crate::repository::config::PayloadLogConfig;

/// Records waiting for the writer before new ones are dropped.
const QUEUE: usize = 4_096;

/// Bytes of records waiting for the writer before new ones are dropped (large tensors make
/// large records, so a count alone does not bound the memory).
const QUEUE_BYTES: usize = 64 << 20;

/// The payload log of one model version.
#[derive(Debug)]
pub struct PayloadLog {
    model: String,
    version: u64,
    rate: f64,
    sender: SyncSender<String>,
    counts: Arc<Counts>,
    directory: PathBuf,
    /// Bytes of the records in the queue.
    queued: Arc<AtomicUsize>,
    privacy: Privacy,
}

/// What of the named tensors a record may hold.
#[derive(Debug, Default)]
struct Privacy {
    drop: Vec<String>,
    redact: Vec<String>,
    hash: Vec<String>,
    hash_key: Vec<u8>,
}

impl Privacy {
    fn new(config: &PayloadLogConfig) -> Result<Privacy, String> {
        let lists = [
            ("drop", &config.drop),
            ("redact", &config.redact),
            ("hash", &config.hash),
        ];
        for (i, (list, names)) in lists.iter().enumerate() {
            for (other, others) in &lists[i + 1..] {
                if let Some(name) = names.iter().find(|n| others.contains(n)) {
                    return Err(format!(
                        "[payload_log] '{name}' is in both {list} and {other}"
                    ));
                }
            }
        }
        Ok(Privacy {
            drop: config.drop.clone(),
            redact: config.redact.clone(),
            hash: config.hash.clone(),
            hash_key: config.hash_key.clone().unwrap_or_default().into_bytes(),
        })
    }

    /// `tensors` as a record holds them.
    fn apply<'a>(&self, tensors: impl Iterator<Item = &'a Tensor>) -> Vec<Logged<'a>> {
        tensors
            .filter(|t| !self.drop.contains(&t.name))
            .map(|t| {
                if self.redact.contains(&t.name) {
                    Logged::Redacted {
                        name: &t.name,
                        datatype: t.datatype().name(),
                        shape: &t.shape,
                        data: "redacted",
                    }
                } else if self.hash.contains(&t.name) {
                    Logged::Hashed {
                        name: &t.name,
                        datatype: t.datatype().name(),
                        shape: &t.shape,
                        hashed: self.hashes(t),
                    }
                } else {
                    Logged::Plain(TensorJson::new(t, false))
                }
            })
            .collect()
    }

    /// Each value of `tensor` (as its JSON text, a string's own text) as the first 16 hex
    /// digits of its HMAC-SHA256.
    fn hashes(&self, tensor: &Tensor) -> Vec<String> {
        let json = serde_json::to_value(TensorJson::new(tensor, false)).unwrap_or_default();
        let Some(values) = json["data"].as_array() else {
            return Vec::new();
        };
        let keyed =
            Hmac::<Sha256>::new_from_slice(&self.hash_key).expect("HMAC takes any key length");
        values
            .iter()
            .map(|value| {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let mut mac = keyed.clone();
                mac.update(text.as_bytes());
                hex(&mac.finalize().into_bytes()[..8])
            })
            .collect()
    }
}

/// A tensor as a record holds it.
#[derive(Serialize)]
#[serde(untagged)]
enum Logged<'a> {
    /// As sent or answered.
    Plain(TensorJson<'a>),
    /// Its data left out.
    Redacted {
        name: &'a str,
        datatype: &'static str,
        shape: &'a [usize],
        data: &'static str,
    },
    /// Its values hashed.
    Hashed {
        name: &'a str,
        datatype: &'static str,
        shape: &'a [usize],
        hashed: Vec<String>,
    },
}

/// What the log did since load.
#[derive(Debug, Default)]
pub struct Counts {
    /// Records written.
    pub written: AtomicU64,
    /// Records dropped because the writer was behind.
    pub dropped: AtomicU64,
    /// Records lost to a write error.
    pub failed: AtomicU64,
}

/// One request as logged.
#[derive(Serialize)]
struct Record<'a> {
    /// Milliseconds since the Unix epoch.
    timestamp_ms: u64,
    id: Option<&'a str>,
    model: &'a str,
    version: u64,
    /// The split, bandit, shadow or ensemble that routed the request here.
    #[serde(skip_serializing_if = "Option::is_none")]
    composite: Option<&'a str>,
    /// The variant it chose: this model and version, as `model@version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    latency_us: u64,
    inputs: Vec<Logged<'a>>,
    outputs: Vec<Logged<'a>>,
}

impl PayloadLog {
    /// The log of `model` `version` as `config` says, its writer thread started; `None` when
    /// the rate is 0.
    pub fn start(
        model: &str,
        version: u64,
        config: &PayloadLogConfig,
    ) -> Result<Option<PayloadLog>, String> {
        let rate = config.rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!(
                "[payload_log] rate = {rate}: must be within 0 and 1"
            ));
        }
        if rate == 0.0 {
            return Ok(None);
        }
        let privacy = Privacy::new(config)?;
        let directory = config
            .directory
            .clone()
            .unwrap_or_else(|| PathBuf::from("payload-logs").join(model));
        private_directory(&directory)
            .map_err(|e| format!("[payload_log] directory {}: {e}", directory.display()))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let writer = Writer {
            directory: directory.clone(),
            model: model.to_owned(),
            queued: Arc::clone(&queued),
            prefix: format!("{model}-{version}-{}", now_ms()),
            max_file_bytes: config.max_file_bytes.unwrap_or(64 << 20).max(1),
            max_files: config.max_files.unwrap_or(10).max(1),
            counts: Arc::clone(&counts),
        };
        std::thread::Builder::new()
            .name(format!("fs-{model}-payloads"))
            .spawn(move || writer.run(&receiver))
            .map_err(|e| format!("cannot start the payload log writer: {e}"))?;
        Ok(Some(PayloadLog {
            model: model.to_owned(),
            version,
            rate,
            sender,
            counts,
            directory,
            queued,
            privacy,
        }))
    }

    /// Whether to log this request (drawn with probability `rate`).
    pub fn sample(&self) -> bool {
        self.rate >= 1.0 || rand::rng().random::<f64>() < self.rate
    }

    /// Queues one record (`via`: the composite that routed the request here); never blocks
    /// (a full queue drops it, counted).
    pub fn record(
        &self,
        id: Option<&str>,
        via: Option<&str>,
        latency: Duration,
        inputs: &[Tensor],
        outputs: &[&Tensor],
    ) {
        let record = Record {
            timestamp_ms: now_ms(),
            id,
            model: &self.model,
            version: self.version,
            composite: via,
            variant: via.map(|_| format!("{}@{}", self.model, self.version)),
            latency_us: latency.as_micros() as u64,
            inputs: self.privacy.apply(inputs.iter()),
            outputs: self.privacy.apply(outputs.iter().copied()),
        };
        let Ok(line) = serde_json::to_string(&record) else {
            return;
        };
        let bytes = line.len();
        let queued = self.queued.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > QUEUE_BYTES {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(bytes, Ordering::Relaxed);
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// What the log did since load.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Where the files go.
    pub fn directory(&self) -> &Path {
        &self.directory
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Creates `directory` (and its parents) if missing, and makes it readable by its owner only.
fn private_directory(directory: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A new log file, readable and writable by its owner only.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The payload log files of `model` in `directory`, oldest first (by modification time, then
/// name): `<model>-<version>-<start ms>-<n>.jsonl`, whichever version or run wrote them.
fn model_files(directory: &Path, model: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Strip `-<version>-<start ms>-<n>.jsonl` and compare what is left.
            let Some(stem) = name.strip_suffix(".jsonl") else {
                return false;
            };
            let mut parts = stem.rsplitn(4, '-');
            let numbers = parts
                .by_ref()
                .take(3)
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
            numbers.count() == 3 && parts.next() == Some(model)
        })
        .map(|entry| {
            let modified = entry.metadata().and_then(|m| m.modified());
            (modified.unwrap_or(UNIX_EPOCH), entry.path())
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, path)| path).collect()
}

/// The writer thread's state: the files it rotates through.
struct Writer {
    directory: PathBuf,
    /// The model, whose files in the directory `max_files` counts.
    model: String,
    /// Bytes of the records in the queue; the writer takes off what it receives.
    queued: Arc<AtomicUsize>,
    prefix: String,
    max_file_bytes: u64,
    max_files: usize,
    counts: Arc<Counts>,
}

impl Writer {
    /// Writes lines until every sender is gone (the version was unloaded), flushing whenever
    /// the queue runs dry so that a reader sees records within moments.
    fn run(&self, receiver: &Receiver<String>) {
        let mut n = 0usize;
        let mut current: Option<(BufWriter<File>, u64)> = None;
        while let Ok(first) = receiver.recv() {
            let mut next = Some(first);
            while let Some(line) = next.take() {
                self.queued.fetch_sub(line.len(), Ordering::Relaxed);
                if current
                    .as_ref()
                    .is_none_or(|(_, size)| *size >= self.max_file_bytes)
                {
                    if let Some((mut old, _)) = current.take() {
                        let _ = old.flush();
                    }
                    // Zero-padded: the files sort by name in the order they were written.
                    let path = self.directory.join(format!("{}-{n:06}.jsonl", self.prefix));
                    n += 1;
                    match create_private(&path) {
                        Ok(f) => {
                            let files = model_files(&self.directory, &self.model);
                            let excess = files.len().saturating_sub(self.max_files);
                            for old in files.iter().filter(|f| **f != path).take(excess) {
                                let _ = std::fs::remove_file(old);
                            }
                            current = Some((BufWriter::new(f), 0));
                        }
                        Err(error) => {
                            tracing::error!(path = %path.display(), %error, "cannot create a payload log file");
                            self.counts.failed.fetch_add(1, Ordering::Relaxed);
                            next = receiver.try_recv().ok();
                            continue;
                        }
                    }
                }
                let (file, size) = current.as_mut().expect("opened above");
                match writeln!(file, "{line}") {
                    Ok(()) => {
                        *size += line.len() as u64 + 1;
                        self.counts.written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot write a payload log record");
                        self.counts.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next = receiver.try_recv().ok();
            }
            if let Some((file, _)) = current.as_mut() {
                let _ = file.flush();
            }
        }
    }
}
