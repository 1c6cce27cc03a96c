//! Data files as a stream of Arrow record batches: Parquet (its own schema), CSV with a
//! header (types inferred from the first 1,000 rows) and JSON lines (likewise), each
//! optionally gzipped (`.csv.gz`, `.jsonl.gz`). Only one batch is in memory at a time. Text
//! records pass through a [`Screen`] first, so that a malformed one fails its row, not the
//! file ([`Source::take_rejected`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::BatchError;
use crate::screen::{Rejections, Screen, json_key_order};

/// Rows read to infer the column types of a CSV or JSON-lines file.
const INFER_ROWS: usize = 1_000;

/// A file's format, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// The format of `path` and whether it is gzipped.
    pub fn of(path: &Path) -> Result<(Format, bool), BatchError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let (stem, gzipped) = match name.strip_suffix(".gz") {
            Some(stem) => (stem.to_owned(), true),
            None => (name, false),
        };
        let format = match stem.rsplit('.').next() {
            Some("parquet") | Some("pq") if !gzipped => Format::Parquet,
            Some("csv") => Format::Csv,
            Some("jsonl") | Some("ndjson") | Some("json") => Format::JsonLines,
            _ => {
                return Err(BatchError::UnknownFormat {
                    path: path.to_owned(),
                });
            }
        };
        Ok((format, gzipped))
    }
}

/// An open data file: its schema and its batches, read as they are pulled.
pub struct Source {
    /// The columns.
    pub schema: SchemaRef,
    path: PathBuf,
    batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>,
    progress: Progress,
    rows: u64,
    /// Malformed records the text screen replaced, not yet handed out with their batch.
    rejections: Rejections,
    /// Those of the batch `next` returned last: `(row in the batch, why)`.
    rejected: Vec<(usize, String)>,
}

/// How far through its file a source is.
#[derive(Debug)]
enum Progress {
    /// Parquet: rows read of the rows its metadata counts.
    Rows(u64),
    /// Text: bytes of the (possibly compressed) file read, of its size.
    Bytes { read: Arc<AtomicU64>, size: u64 },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens `path`, reading `batch_rows` rows per batch.
    pub fn open(path: &Path, batch_rows: usize) -> Result<Source, BatchError> {
        Source::open_with_text(path, batch_rows, &[])
    }

    /// Opens `path`, reading the CSV or JSON-lines columns named in `as_text` as text whatever
    /// their values look like: the batch scorer parses those itself, so that one unparsable
    /// value fails its row, not the file. Parquet columns keep their stored types.
    pub fn open_with_text(
        path: &Path,
        batch_rows: usize,
        as_text: &[String],
    ) -> Result<Source, BatchError> {
        let (format, gzipped) = Format::of(path)?;
        let decode = |e: &dyn std::fmt::Display| BatchError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let textual = |schema: Schema| -> SchemaRef {
            Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| {
                        if as_text.iter().any(|n| n == f.name()) {
                            Field::new(f.name(), DataType::Utf8, true)
                        } else {
                            f.as_ref().clone()
                        }
                    })
                    .collect::<Vec<_>>(),
            ))
        };
        let read = Arc::new(AtomicU64::new(0));
        let rejections = Rejections::default();
        let size = std::fs::metadata(path)
            .map_err(|source| BatchError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        let bytes = Progress::Bytes {
            read: Arc::clone(&read),
            size,
        };
        let (schema, batches, progress): (SchemaRef, Box<dyn Iterator<Item = _> + Send>, _) =
            match format {
                Format::Parquet => {
                    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                        .map_err(|e| decode(&e))?
                        .with_batch_size(batch_rows);
                    let schema = Arc::clone(builder.schema());
                    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
                    let reader = builder.build().map_err(|e| decode(&e))?;
                    (schema, Box::new(reader), Progress::Rows(total))
                }
                Format::Csv => {
                    let csv = arrow_csv::reader::Format::default().with_header(true);
                    let inferred = Screen::csv(reader(path, gzipped, None)?, Rejections::default());
                    let (schema, _) = csv
                        .infer_schema(inferred, Some(INFER_ROWS))
                        .map_err(|e| decode(&e))?;
                    let schema = textual(schema);
                    let screened =
                        Screen::csv(reader(path, gzipped, Some(read))?, Arc::clone(&rejections));
                    let reader = arrow_csv::ReaderBuilder::new(Arc::clone(&schema))
                        .with_format(csv)
                        .with_batch_size(batch_rows)
                        .build(screened)
                        .map_err(|e| decode(&e))?;
                    (schema, Box::new(reader), bytes)
                }
                Format::JsonLines => {
                    let inferred =
                        Screen::json_lines(reader(path, gzipped, None)?, Rejections::default());
                    let (schema, _) = arrow_json::reader::infer_json_schema(
                        BufReader::new(inferred),
                        Some(INFER_ROWS),
                    )
                    .map_err(|e| decode(&e))?;
                    let order = json_key_order(reader(path, gzipped, None)?, INFER_ROWS)
                        .map_err(|e| decode(&e))?;
                    let schema = textual(in_key_order(&schema, &order));
                    let screened = Screen::json_lines(
                        reader(path, gzipped, Some(read))?,
                        Arc::clone(&rejections),
                    );
                    let reader = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
                        .with_batch_size(batch_rows)
                        // Numbers and booleans in a text column are read as their text.
                        .with_coerce_primitive(true)
                        .build(BufReader::new(screened))
                        .map_err(|e| decode(&e))?;
                    (schema, Box::new(reader), bytes)
                }
            };
        Ok(Source {
            schema,
            path: path.to_owned(),
            batches,
            progress,
            rows: 0,
            rejections,
            rejected: Vec::new(),
        })
    }

    /// The rows of the batch [`Iterator::next`] returned last whose records were malformed
    /// (a CSV record with another number of fields than the header, a JSON line that is not
    /// one object): `(row in the batch, why)`. They were read as empty records, so the scorer
    /// must fail them ([`crate::Scorer::score_marked`]).
    pub fn take_rejected(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.rejected)
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The share of the file read so far, 0 to 1.
    pub fn fraction_read(&self) -> f64 {
        let fraction = match &self.progress {
            Progress::Rows(0) => 1.0,
            Progress::Rows(total) => self.rows as f64 / *total as f64,
            Progress::Bytes { size: 0, .. } => 1.0,
            Progress::Bytes { read, size } => read.load(Ordering::Relaxed) as f64 / *size as f64,
        };
        fraction.clamp(0.0, 1.0)
    }
}

impl Iterator for Source {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.batches.next()?;
        Some(match next {
            Ok(batch) => {
                let (start, end) = (self.rows, self.rows + batch.num_rows() as u64);
                let mut log = self.rejections.lock().expect("not poisoned");
                self.rejected.clear();
                while let Some(r) = log.front().filter(|r| r.record < end) {
                    self.rejected
                        .push(((r.record - start) as usize, r.reason.clone()));
                    log.pop_front();
                }
                drop(log);
                self.rows = end;
                Ok(batch)
            }
            Err(e) => Err(BatchError::Decode {
                path: self.path.clone(),
                message: e.to_string(),
            }),
        })
    }
}

/// `schema`'s fields in the order of `keys` (those not among them after, as they were).
fn in_key_order(schema: &Schema, keys: &[String]) -> Schema {
    let place = |name: &String| keys.iter().position(|k| k == name).unwrap_or(keys.len());
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.sort_by_key(|f| place(f.name()));
    Schema::new(fields)
}

/// A reader that counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open(path: &Path) -> Result<File, BatchError> {
    File::open(path).map_err(|source| BatchError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The file's bytes, decompressed when gzipped; the file's bytes read are added to `read`.
fn reader(
    path: &Path,
    gzipped: bool,
    read: Option<Arc<AtomicU64>>,
) -> Result<Box<dyn BufRead + Send>, BatchError> {
    let file = Counting {
        inner: open(path)?,
        read: read.unwrap_or_default(),
    };
    Ok(if gzipped {
        Box::new(BufReader::new(MultiGzDecoder::new(BufReader::new(file))))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}
