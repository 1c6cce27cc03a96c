//! Data files as a stream of Arrow record batches: Parquet (its own schema), CSV with a
//! header (types inferred from the first 1,000 rows) and JSON lines (likewise), each
//! optionally gzipped (`.csv.gz`, `.jsonl.gz`). Only one batch is in memory at a time. In the
//! text formats nothing fails the file that fails one row ([`Source::take_rejected`]): records
//! pass through a [`Screen`] first, and the columns are read as text, then cast to their
//! inferred types batch by batch, a value that does not cast failing its row.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::BatchError;
use crate::screen::{Prefetch, Rejections, Screen, json_key_order};

/// Rows read to infer the column types of a CSV or JSON-lines file.
const INFER_ROWS: usize = 1_000;

/// A file's format, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl DataFormat {
    /// The format of `path` and whether it is gzipped.
    pub fn of(path: &Path) -> Result<(DataFormat, bool), BatchError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let (stem, gzipped) = match name.strip_suffix(".gz") {
            Some(stem) => (stem.to_owned(), true),
            None => (name, false),
        };
        let format = match stem.rsplit('.').next() {
            Some("parquet") | Some("pq") if !gzipped => DataFormat::Parquet,
            Some("csv") => DataFormat::Csv,
            Some("jsonl") | Some("ndjson") | Some("json") => DataFormat::JsonLines,
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
    progress: ReadProgress,
    rows: u64,
    /// Malformed records the text screen replaced, not yet handed out with their batch.
    rejections: Rejections,
    /// Those of the batch `next` returned last: `(row in the batch, why)`.
    rejected: Vec<(usize, String)>,
    /// Text formats: the columns read as text and cast to their inferred type per batch,
    /// `(index, type)`; a value that does not cast fails its row.
    typed: Vec<(usize, DataType)>,
}

/// How far through its file a source is.
#[derive(Debug)]
enum ReadProgress {
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
        let (format, gzipped) = DataFormat::of(path)?;
        let decode = |e: &dyn std::fmt::Display| BatchError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        };
        // Text formats: the feature columns stay text (the scorer parses them); every other
        // column of a scalar type is read as text too and cast back per batch, so that a value
        // of the wrong type fails its row ([`Source::typed`]).
        let textual = |schema: Schema| -> (SchemaRef, SchemaRef, Vec<(usize, DataType)>) {
            let mut typed = Vec::new();
            let (mut read, mut seen) = (Vec::new(), Vec::new());
            for (i, f) in schema.fields().iter().enumerate() {
                if as_text.iter().any(|n| n == f.name()) {
                    read.push(Field::new(f.name(), DataType::Utf8, true));
                    seen.push(Field::new(f.name(), DataType::Utf8, true));
                } else if f.data_type().is_primitive() || f.data_type() == &DataType::Boolean {
                    typed.push((i, f.data_type().clone()));
                    read.push(Field::new(f.name(), DataType::Utf8, true));
                    seen.push(f.as_ref().clone().with_nullable(true));
                } else {
                    read.push(f.as_ref().clone());
                    seen.push(f.as_ref().clone());
                }
            }
            (
                Arc::new(Schema::new(read)),
                Arc::new(Schema::new(seen)),
                typed,
            )
        };
        let read = Arc::new(AtomicU64::new(0));
        let rejections = Rejections::default();
        let mut typed_columns = Vec::new();
        let size = std::fs::metadata(path)
            .map_err(|source| BatchError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        let bytes = ReadProgress::Bytes {
            read: Arc::clone(&read),
            size,
        };
        let (schema, batches, progress): (SchemaRef, Box<dyn Iterator<Item = _> + Send>, _) =
            match format {
                DataFormat::Parquet => {
                    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                        .map_err(|e| decode(&e))?
                        .with_batch_size(batch_rows);
                    let schema = Arc::clone(builder.schema());
                    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
                    let reader = builder.build().map_err(|e| decode(&e))?;
                    (schema, Box::new(reader), ReadProgress::Rows(total))
                }
                DataFormat::Csv => {
                    let csv = arrow_csv::reader::Format::default().with_header(true);
                    let inferred = Screen::csv(reader(path, gzipped, None)?, Rejections::default());
                    let (schema, _) = csv
                        .infer_schema(inferred, Some(INFER_ROWS))
                        .map_err(|e| decode(&e))?;
                    let (text, schema, typed) = textual(schema);
                    typed_columns = typed;
                    let screened = prefetch(
                        Screen::csv(reader(path, gzipped, Some(read))?, Arc::clone(&rejections)),
                        path,
                    )?;
                    let reader = arrow_csv::ReaderBuilder::new(text)
                        .with_format(csv)
                        .with_batch_size(batch_rows)
                        .build(screened)
                        .map_err(|e| decode(&e))?;
                    (schema, Box::new(reader), bytes)
                }
                DataFormat::JsonLines => {
                    let inferred =
                        Screen::json_lines(reader(path, gzipped, None)?, Rejections::default());
                    let (schema, _) = arrow_json::reader::infer_json_schema(
                        BufReader::new(inferred),
                        Some(INFER_ROWS),
                    )
                    .map_err(|e| decode(&e))?;
                    let order = json_key_order(reader(path, gzipped, None)?, INFER_ROWS)
                        .map_err(|e| decode(&e))?;
                    let (text, schema, typed) = textual(in_key_order(&schema, &order));
                    typed_columns = typed;
                    let screened = prefetch(
                        Screen::json_lines(
                            reader(path, gzipped, Some(read))?,
                            Arc::clone(&rejections),
                        ),
                        path,
                    )?;
                    let reader = arrow_json::ReaderBuilder::new(text)
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
            typed: typed_columns,
        })
    }

    /// The rows of the batch [`Iterator::next`] returned last whose records were malformed
    /// (a CSV record with another number of fields than the header, a JSON line that is not
    /// one object): `(row in the batch, why)`. They were read as empty records, so the scorer
    /// must fail them ([`crate::Scorer::score_marked`]).
    pub fn take_rejected(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.rejected)
    }

    /// `batch` (read with the typed columns as text) with those columns cast to their types;
    /// a row with a value that does not cast (`abc` in an integer column) is rejected, its
    /// value null. An empty text is a missing value, not an error.
    fn typed_batch(&mut self, batch: RecordBatch) -> Result<RecordBatch, BatchError> {
        if self.typed.is_empty() {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        for (i, data_type) in &self.typed {
            let text = columns[*i].as_string::<i32>().clone();
            let cast = arrow_cast::cast(&text, data_type).map_err(|e| BatchError::Decode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            if cast.null_count() > text.null_count() {
                let name = self.schema.field(*i).name();
                for (row, value) in text.iter().enumerate() {
                    match value {
                        Some(v) if !v.is_empty() && cast.is_null(row) => self.rejected.push((
                            row,
                            format!("column '{name}': '{v}' is not of its type, {data_type}"),
                        )),
                        _ => {}
                    }
                }
            }
            columns[*i] = cast;
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| BatchError::Decode {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The share of the file read so far, 0 to 1.
    pub fn fraction_read(&self) -> f64 {
        let fraction = match &self.progress {
            ReadProgress::Rows(0) => 1.0,
            ReadProgress::Rows(total) => self.rows as f64 / *total as f64,
            ReadProgress::Bytes { size: 0, .. } => 1.0,
            ReadProgress::Bytes { read, size } => {
                read.load(Ordering::Relaxed) as f64 / *size as f64
            }
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
                self.rejected.clear();
                let batch = match self.typed_batch(batch) {
                    Ok(batch) => batch,
                    Err(e) => return Some(Err(e)),
                };
                let (start, end) = (self.rows, self.rows + batch.num_rows() as u64);
                let mut log = self.rejections.lock().expect("not poisoned");
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

/// `screen` read on a thread of its own ([`Prefetch`]).
fn prefetch(screen: impl Read + Send + 'static, path: &Path) -> Result<Prefetch, BatchError> {
    Prefetch::spawn(screen).map_err(|source| BatchError::Io {
        path: path.to_owned(),
        source,
    })
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
