//! Where scored batches go: one Parquet, CSV or JSON-lines file (optionally gzipped), or a
//! directory of `part-NNNNN` files, rolled over every `rows_per_file` rows and, with a
//! partition column, split Hive-style into `COLUMN=value/` directories (the column itself
//! then lives in the directory name, as Spark, DuckDB and pandas expect).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{Schema, SchemaRef};
use flate2::Compression;
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression as ParquetCompression;
use parquet::file::properties::WriterProperties;

use crate::BatchError;
use crate::source::DataFormat;

/// The directory name of a null partition value (Hive's).
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// How the output is laid out.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// A file (its extension says the format) or a directory.
    pub path: PathBuf,
    /// The format of a directory's files (Parquet by default).
    pub format: Option<DataFormat>,
    /// Rows per file in a directory before the next `part-` file starts.
    pub rows_per_file: Option<u64>,
    /// The column whose values name a directory's partitions.
    pub partition_by: Option<String>,
}

/// An open output: writers are created as rows for them arrive.
#[derive(Debug)]
pub struct Sink {
    options: SinkOptions,
    /// The schema of every batch written, and of the files (partition column removed).
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition: Option<usize>,
    format: DataFormat,
    gzip: bool,
    writers: BTreeMap<String, Open>,
    files: Vec<PathBuf>,
}

/// A file being written.
#[derive(Debug)]
struct Open {
    writer: Writer,
    rows: u64,
    part: usize,
}

/// A format's writer.
enum Writer {
    Parquet(Box<ArrowWriter<File>>),
    Csv(Box<arrow_csv::Writer<Box<dyn Write + Send>>>),
    Json(arrow_json::LineDelimitedWriter<Box<dyn Write + Send>>),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writer::Parquet(_) => "Parquet",
            Writer::Csv(_) => "Csv",
            Writer::Json(_) => "Json",
        })
    }
}

impl Sink {
    /// Prepares the output for batches of `schema`.
    pub fn new(options: SinkOptions, schema: SchemaRef) -> Result<Sink, BatchError> {
        let single = DataFormat::of(&options.path).ok();
        let (format, gzip) = match (single, options.format) {
            (Some((format, gzip)), _) => (format, gzip),
            (None, format) => (format.unwrap_or(DataFormat::Parquet), false),
        };
        if single.is_some() && (options.partition_by.is_some() || options.rows_per_file.is_some()) {
            return Err(BatchError::Columns(format!(
                "{}: partitioned or rolled output goes to a directory; name one without a file \
                 extension",
                options.path.display()
            )));
        }
        let partition = match &options.partition_by {
            Some(name) => Some(schema.index_of(name).map_err(|_| {
                BatchError::Columns(format!(
                    "--partition-by {name}: no such output column (keep it with --keep {name})"
                ))
            })?),
            None => None,
        };
        let file_schema = match partition {
            Some(p) => {
                let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
                fields.remove(p);
                Arc::new(Schema::new(fields))
            }
            None => Arc::clone(&schema),
        };
        if single.is_none() {
            std::fs::create_dir_all(&options.path).map_err(|source| BatchError::Io {
                path: options.path.clone(),
                source,
            })?;
        } else if let Some(parent) = options.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| BatchError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        Ok(Sink {
            options,
            schema,
            file_schema,
            partition,
            format,
            gzip,
            writers: BTreeMap::new(),
            files: Vec::new(),
        })
    }

    /// Whether the output is one file.
    fn single(&self) -> bool {
        DataFormat::of(&self.options.path).is_ok()
    }

    /// Writes `batch` (of the sink's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), BatchError> {
        let Some(p) = self.partition else {
            return self.write_to("", batch);
        };
        // Rows of each partition value, in order.
        let column = batch.column(p);
        let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
            .map_err(|e| BatchError::Columns(e.to_string()))?;
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for r in 0..batch.num_rows() {
            let key = if column.is_null(r) {
                NULL_PARTITION.to_owned()
            } else {
                partition_dir_value(&formatter.value(r).to_string())
            };
            groups.entry(key).or_default().push(r as u32);
        }
        for (key, rows) in groups {
            let taken = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))
                .map_err(|e| BatchError::Columns(e.to_string()))?;
            let mut taken = taken;
            taken.remove_column(p);
            self.write_to(&key, &taken)?;
        }
        Ok(())
    }

    /// Writes `batch` to the open file of partition `key`, rolling it over when full.
    fn write_to(&mut self, key: &str, batch: &RecordBatch) -> Result<(), BatchError> {
        let full = self
            .writers
            .get(key)
            .zip(self.options.rows_per_file)
            .is_some_and(|(open, max)| open.rows >= max);
        if full {
            let open = self.writers.remove(key).expect("checked");
            let part = open.part + 1;
            finish(open.writer, &self.options.path)?;
            let writer = self.create(key, part)?;
            self.writers.insert(key.to_owned(), writer);
        }
        if !self.writers.contains_key(key) {
            let writer = self.create(key, 0)?;
            self.writers.insert(key.to_owned(), writer);
        }
        let open = self.writers.get_mut(key).expect("inserted");
        let io = |e: &dyn std::fmt::Display| BatchError::Decode {
            path: PathBuf::from(key),
            message: format!("writing: {e}"),
        };
        match &mut open.writer {
            Writer::Parquet(w) => w.write(batch).map_err(|e| io(&e))?,
            Writer::Csv(w) => w.write(batch).map_err(|e| io(&e))?,
            Writer::Json(w) => w.write(batch).map_err(|e| io(&e))?,
        }
        open.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Opens part `part` of partition `key`.
    fn create(&mut self, key: &str, part: usize) -> Result<Open, BatchError> {
        let path = if self.single() {
            self.options.path.clone()
        } else {
            let mut dir = self.options.path.clone();
            if let (Some(name), false) = (&self.options.partition_by, key.is_empty()) {
                dir = dir.join(format!("{name}={key}"));
            }
            std::fs::create_dir_all(&dir).map_err(|source| BatchError::Io {
                path: dir.clone(),
                source,
            })?;
            dir.join(format!("part-{part:05}.{}", extension(self.format)))
        };
        let file = File::create(&path).map_err(|source| BatchError::Io {
            path: path.clone(),
            source,
        })?;
        let fail = |e: &dyn std::fmt::Display| BatchError::Decode {
            path: path.clone(),
            message: e.to_string(),
        };
        let text = || -> Box<dyn Write + Send> {
            let file = BufWriter::with_capacity(1 << 16, file.try_clone().expect("file handle"));
            if self.gzip {
                Box::new(GzEncoder::new(file, Compression::fast()))
            } else {
                Box::new(file)
            }
        };
        let writer = match self.format {
            DataFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(ParquetCompression::SNAPPY)
                    .build();
                Writer::Parquet(Box::new(
                    ArrowWriter::try_new(file, Arc::clone(&self.file_schema), Some(props))
                        .map_err(|e| fail(&e))?,
                ))
            }
            DataFormat::Csv => Writer::Csv(Box::new(arrow_csv::WriterBuilder::new().build(text()))),
            DataFormat::JsonLines => Writer::Json(arrow_json::LineDelimitedWriter::new(text())),
        };
        self.files.push(path);
        Ok(Open {
            writer,
            rows: 0,
            part,
        })
    }

    /// The schema batches are written with.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Finishes every file; returns the files written.
    pub fn finish(self) -> Result<Vec<PathBuf>, BatchError> {
        for (_, open) in self.writers {
            finish(open.writer, &self.options.path)?;
        }
        Ok(self.files)
    }
}

/// Flushes and closes one file.
fn finish(writer: Writer, output: &Path) -> Result<(), BatchError> {
    let fail = |e: &dyn std::fmt::Display| BatchError::Decode {
        path: output.to_owned(),
        message: format!("finishing: {e}"),
    };
    match writer {
        Writer::Parquet(w) => {
            w.close().map_err(|e| fail(&e))?;
        }
        Writer::Csv(w) => {
            w.into_inner().flush().map_err(|e| fail(&e))?;
        }
        Writer::Json(mut w) => {
            w.finish().map_err(|e| fail(&e))?;
            w.into_inner().flush().map_err(|e| fail(&e))?;
        }
    }
    Ok(())
}

/// The file extension of a format.
fn extension(format: DataFormat) -> &'static str {
    match format {
        DataFormat::Parquet => "parquet",
        DataFormat::Csv => "csv",
        DataFormat::JsonLines => "jsonl",
    }
}

/// A partition value as a directory name: path separators and control characters escaped
/// as `%XX`, as Hive does.
fn partition_dir_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || matches!(c, '/' | '\\' | '%' | '=' | ':') {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        out = format!("%{}", out.len());
    }
    out
}
