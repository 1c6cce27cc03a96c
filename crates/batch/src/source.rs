//! Data files as a stream of Arrow record batches: Parquet (its own schema), CSV with a
//! header (types inferred from the first 1,000 rows) and JSON lines (likewise), each
//! optionally gzipped (`.csv.gz`, `.jsonl.gz`). Only one batch is in memory at a time.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::BatchError;

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
        let (format, gzipped) = Format::of(path)?;
        let decode = |e: &dyn std::fmt::Display| BatchError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let (schema, batches): (SchemaRef, Box<dyn Iterator<Item = _> + Send>) = match format {
            Format::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                    .map_err(|e| decode(&e))?
                    .with_batch_size(batch_rows);
                let schema = Arc::clone(builder.schema());
                let reader = builder.build().map_err(|e| decode(&e))?;
                (schema, Box::new(reader))
            }
            Format::Csv => {
                let csv = arrow_csv::reader::Format::default().with_header(true);
                let (schema, _) = csv
                    .infer_schema(reader(path, gzipped)?, Some(INFER_ROWS))
                    .map_err(|e| decode(&e))?;
                let schema = Arc::new(schema);
                let reader = arrow_csv::ReaderBuilder::new(Arc::clone(&schema))
                    .with_format(csv)
                    .with_batch_size(batch_rows)
                    .build(reader(path, gzipped)?)
                    .map_err(|e| decode(&e))?;
                (schema, Box::new(reader))
            }
            Format::JsonLines => {
                let (schema, _) = arrow_json::reader::infer_json_schema(
                    BufReader::new(reader(path, gzipped)?),
                    Some(INFER_ROWS),
                )
                .map_err(|e| decode(&e))?;
                let schema = Arc::new(schema);
                let reader = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
                    .with_batch_size(batch_rows)
                    .build(BufReader::new(reader(path, gzipped)?))
                    .map_err(|e| decode(&e))?;
                (schema, Box::new(reader))
            }
        };
        Ok(Source {
            schema,
            path: path.to_owned(),
            batches,
        })
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for Source {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.batches.next()?;
        Some(next.map_err(|e| BatchError::Decode {
            path: self.path.clone(),
            message: e.to_string(),
        }))
    }
}

fn open(path: &Path) -> Result<File, BatchError> {
    File::open(path).map_err(|source| BatchError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The file's bytes, decompressed when gzipped.
fn reader(path: &Path, gzipped: bool) -> Result<Box<dyn BufRead + Send>, BatchError> {
    let file = open(path)?;
    Ok(if gzipped {
        Box::new(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}
