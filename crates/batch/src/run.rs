//! `ferroserve batch`: input files through a model into an output, on every core.
//!
//! One thread reads record batches (files in order), `threads` workers score them through a
//! shared [`Scorer`], and the calling thread writes the scored batches in input order. At
//! most `2 × threads + 2` batches are in flight (read, scoring or waiting their turn to be
//! written), so memory is bounded by the batch size, never by the file's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, RecordBatch};

use crate::BatchError;
use crate::model::LoadedModel;
use crate::progress::Progress;
use crate::score::{ERROR_COLUMN, ScoreOptions, Scorer};
use crate::sink::{Sink, SinkOptions};
use crate::source::{DataFormat, Source};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The input files, in order (see [`input_files`]).
    pub inputs: Vec<PathBuf>,
    /// Where and how to write.
    pub output: SinkOptions,
    /// Columns to inputs, and columns kept.
    pub score: ScoreOptions,
    /// Rows per record batch (and per model call).
    pub batch_rows: usize,
    /// Worker threads scoring batches.
    pub threads: usize,
    /// Stop at the first row that cannot be scored instead of isolating it.
    pub fail_fast: bool,
}

/// A row that was not scored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFailure {
    /// Its file.
    pub file: PathBuf,
    /// Its row in the file, counting from 1 (the header of a CSV file not counted).
    pub row: u64,
    /// Why.
    pub reason: String,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Rows read.
    pub rows: u64,
    /// Rows not scored.
    pub failed: u64,
    /// The first few of those.
    pub failures: Vec<RowFailure>,
    /// Files read.
    pub inputs: usize,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Failures kept for the summary.
const FAILURES_SHOWN: usize = 10;

/// A batch read: its order, file and first row.
struct Work {
    seq: u64,
    file: usize,
    first_row: u64,
    batch: RecordBatch,
    /// Rows whose records were malformed: `(row, why)`.
    rejected: Vec<(usize, String)>,
}

/// A batch scored (or the error that stops the run).
struct Done {
    seq: u64,
    file: usize,
    first_row: u64,
    result: Result<crate::Scored, BatchError>,
}

/// Expands the `--input` arguments: files as they are, directories to the data files under
/// them (recursively, sorted), and glob patterns to their sorted matches.
pub fn input_files(args: &[String]) -> Result<Vec<PathBuf>, BatchError> {
    let mut files = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            if files.len() == before {
                return Err(BatchError::Columns(format!(
                    "{arg}: no .parquet, .csv or .jsonl files in this directory"
                )));
            }
        } else if arg.contains(['*', '?', '[']) {
            let mut matched: Vec<PathBuf> = glob::glob(arg)
                .map_err(|e| BatchError::Columns(format!("--input {arg}: {e}")))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matched.is_empty() {
                return Err(BatchError::Columns(format!(
                    "--input {arg}: no file matches"
                )));
            }
            matched.sort();
            files.extend(matched);
        } else {
            if !path.is_file() {
                return Err(BatchError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            files.push(path.to_owned());
        }
    }
    Ok(files)
}

/// The data files under `dir`, sorted, skipping hidden and `_`-prefixed names (`_SUCCESS`).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BatchError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| BatchError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if DataFormat::of(&path).is_ok() {
            out.push(path);
        }
    }
    Ok(())
}

/// Opens `path` with the model's feature columns read as text when it is CSV or JSON lines,
/// and binds a scorer to its columns.
fn open_scored(
    loaded: &LoadedModel,
    path: &Path,
    options: &RunOptions,
) -> Result<(Source, Scorer), BatchError> {
    let name = path.display().to_string();
    let source = Source::open(path, options.batch_rows)?;
    let features = Scorer::feature_columns(loaded, &source.schema, &options.score, &name)?;
    let source = Source::open_with_text(path, options.batch_rows, &features)?;
    let scorer = Scorer::new(loaded, &source.schema, &options.score, &name)?;
    Ok((source, scorer))
}

/// Scores every row of the inputs into the output.
pub fn run(
    loaded: &LoadedModel,
    options: &RunOptions,
    progress: &mut Progress,
) -> Result<Summary, BatchError> {
    let started = Instant::now();
    if options.inputs.is_empty() {
        return Err(BatchError::Columns("no input files".into()));
    }
    // Every file is opened (and its columns checked) before anything is written.
    let mut scorers = Vec::new();
    let mut sources = Vec::new();
    for path in &options.inputs {
        let (source, scorer) = open_scored(loaded, path, options)?;
        sources.push(source);
        scorers.push(Arc::new(scorer));
    }
    let schema = scorers[0].schema();
    for (s, path) in scorers.iter().zip(&options.inputs).skip(1) {
        let names = |schema: &arrow_schema::Schema| {
            schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        };
        if names(&s.schema()) != names(&schema) {
            return Err(BatchError::Columns(format!(
                "{}: its output columns {:?} differ from those of {} {:?}",
                path.display(),
                names(&s.schema()),
                options.inputs[0].display(),
                names(&schema)
            )));
        }
    }
    let mut sink = Sink::new(options.output.clone(), Arc::clone(&schema))?;
    let sizes: Vec<u64> = options
        .inputs
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    progress.start(sizes.iter().sum());

    let threads = options.threads.max(1);
    let in_flight = 2 * threads + 2;
    let (work_tx, work_rx) = sync_channel::<Work>(threads);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<Done>(in_flight);
    // A batch may be read only with a ticket; the writer hands one back per batch written.
    let (ticket_tx, ticket_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        ticket_tx.send(()).expect("capacity");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let read_fraction = Arc::new(Mutex::new((0usize, 0.0f64)));

    std::thread::scope(|scope| {
        // Reader.
        let reader_stop = Arc::clone(&stop);
        let reader_done = done_tx.clone();
        let reader_fraction = Arc::clone(&read_fraction);
        scope.spawn(move || {
            let mut seq = 0;
            for (file, mut source) in sources.into_iter().enumerate() {
                let mut first_row = 0;
                loop {
                    if reader_stop.load(Ordering::Relaxed) || ticket_rx.recv().is_err() {
                        return;
                    }
                    let Some(batch) = source.next() else { break };
                    *reader_fraction.lock().expect("not poisoned") = (file, source.fraction_read());
                    match batch {
                        Ok(batch) => {
                            let rows = batch.num_rows() as u64;
                            let work = Work {
                                seq,
                                file,
                                first_row,
                                batch,
                                rejected: source.take_rejected(),
                            };
                            if work_tx.send(work).is_err() {
                                return;
                            }
                            first_row += rows;
                        }
                        Err(e) => {
                            let _ = reader_done.send(Done {
                                seq,
                                file,
                                first_row,
                                result: Err(e),
                            });
                            return;
                        }
                    }
                    seq += 1;
                }
            }
        });
        // Workers.
        for _ in 0..threads {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            let scorers = &scorers;
            scope.spawn(move || worker(&work_rx, &done_tx, scorers));
        }
        // Only the workers hold the work queue now: when they stop, the reader stops too.
        drop(work_rx);
        drop(done_tx);
        // Writer: this thread.
        let result = write_in_order(
            &done_rx,
            &ticket_tx,
            &mut sink,
            options,
            progress,
            &sizes,
            &read_fraction,
        );
        stop.store(true, Ordering::Relaxed);
        // Unblock the reader (waiting for a ticket) and the workers (waiting to hand over).
        drop(ticket_tx);
        drop(done_rx);
        result
    })
    .and_then(|(rows, failed, failures)| {
        let outputs = sink.finish()?;
        progress.finish(rows);
        Ok(Summary {
            rows,
            failed,
            failures,
            inputs: options.inputs.len(),
            outputs,
            elapsed: started.elapsed(),
        })
    })
}

/// Scores batches until the work runs out.
fn worker(work: &Mutex<Receiver<Work>>, done: &SyncSender<Done>, scorers: &[Arc<Scorer>]) {
    loop {
        let next = work.lock().expect("not poisoned").recv();
        let Ok(w) = next else { return };
        let result = scorers[w.file].score_marked(&w.batch, &w.rejected);
        let done_item = Done {
            seq: w.seq,
            file: w.file,
            first_row: w.first_row,
            result,
        };
        if done.send(done_item).is_err() {
            return;
        }
    }
}

/// Writes scored batches in input order; returns rows, rows failed and the first failures.
#[allow(clippy::too_many_arguments)]
fn write_in_order(
    done: &Receiver<Done>,
    tickets: &SyncSender<()>,
    sink: &mut Sink,
    options: &RunOptions,
    progress: &mut Progress,
    sizes: &[u64],
    read_fraction: &Mutex<(usize, f64)>,
) -> Result<(u64, u64, Vec<RowFailure>), BatchError> {
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let (mut rows, mut failed) = (0u64, 0u64);
    let mut failures = Vec::new();
    let schema = sink.schema();
    for d in done.iter() {
        waiting.insert(d.seq, d);
        while let Some(d) = waiting.remove(&next) {
            next += 1;
            let scored = d.result?;
            let batch = &scored.batch;
            if scored.failed > 0 {
                let errors = batch
                    .column_by_name(ERROR_COLUMN)
                    .expect("the scorer adds it");
                let errors = arrow_array::cast::AsArray::as_string::<i32>(errors.as_ref());
                for r in (0..batch.num_rows()).filter(|&r| errors.is_valid(r)) {
                    let failure = RowFailure {
                        file: options.inputs[d.file].clone(),
                        row: d.first_row + r as u64 + 1,
                        reason: errors.value(r).to_owned(),
                    };
                    if options.fail_fast {
                        return Err(BatchError::Columns(format!(
                            "{} row {}: {} (without --fail-fast, such rows are reported in \
                             the {ERROR_COLUMN} column and the run goes on)",
                            failure.file.display(),
                            failure.row,
                            failure.reason
                        )));
                    }
                    if failures.len() < FAILURES_SHOWN {
                        failures.push(failure);
                    }
                }
            }
            let batch = conform(batch, &schema)?;
            sink.write(&batch)?;
            rows += batch.num_rows() as u64;
            failed += scored.failed as u64;
            let (file, fraction) = *read_fraction.lock().expect("not poisoned");
            let bytes: u64 =
                sizes[..file].iter().sum::<u64>() + (sizes[file] as f64 * fraction) as u64;
            progress.update(rows, failed, bytes);
            // A batch written: another may be read.
            let _ = tickets.try_send(());
        }
    }
    Ok((rows, failed, failures))
}

/// `batch` with its columns cast to `schema`'s types (files of one run may be typed apart:
/// an id inferred as integers in one CSV file and as text in the next).
fn conform(
    batch: &RecordBatch,
    schema: &arrow_schema::SchemaRef,
) -> Result<RecordBatch, BatchError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                arrow_cast::cast(c, f.data_type()).map_err(|e| {
                    BatchError::Columns(format!(
                        "column '{}' is {} in one input file and {} in another: {e}",
                        f.name(),
                        f.data_type(),
                        c.data_type()
                    ))
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| BatchError::Columns(e.to_string()))
}
