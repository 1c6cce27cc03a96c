//! `ferroserve batch`: scores Parquet, CSV or JSON-lines files through a model into a file or
//! a partitioned directory, on every core, with bounded memory (see `ferroserve_batch::run`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use ferroserve_batch::mapping::ColumnMapping;
use ferroserve_batch::progress::{Progress, ProgressMode, grouped};
use ferroserve_batch::run::{RunOptions, input_files, run};
use ferroserve_batch::sink::SinkOptions;
use ferroserve_batch::source::DataFormat;
use ferroserve_batch::{ModelRef, ScoreOptions};
use ferroserve_loader::runtimes;

/// Flags of `ferroserve batch`.
#[derive(Debug, Args)]
pub(crate) struct BatchArgs {
    /// The model: a model directory (`models/iris`, latest version), a version directory
    /// (`models/iris/2`), or either with `@VERSION` or `@LABEL` (`models/iris@stable`).
    #[arg(long)]
    model: String,

    /// Input files: `.parquet`, `.csv` (with a header) or `.jsonl`, optionally `.gz`;
    /// directories (their data files, recursively) and glob patterns (quoted) too.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<String>,

    /// The output: a file (`out.parquet`, `out.csv`, `out.jsonl[.gz]`) or a directory of
    /// `part-NNNNN` files.
    #[arg(long)]
    output: PathBuf,

    /// The format of a directory output's files.
    #[arg(long, value_enum)]
    output_format: Option<OutputFormat>,

    /// Split a directory output Hive-style by this (kept) column: `COLUMN=value/part-*.parquet`.
    #[arg(long)]
    partition_by: Option<String>,

    /// Start a new file of a directory output every this many rows.
    #[arg(long)]
    rows_per_file: Option<u64>,

    /// The feature columns of a one-input model, comma-separated, in the order it takes them;
    /// by default the columns named like the inputs, else every column not ignored or kept.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,

    /// The columns of one input of a many-input model: `INPUT=COL1,COL2` (repeatable).
    #[arg(long = "map", value_name = "INPUT=COLUMNS")]
    map: Vec<String>,

    /// Columns that are not features (a label), comma-separated.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,

    /// Input columns copied to the output before the predictions (an id), comma-separated.
    #[arg(long, value_delimiter = ',')]
    keep: Vec<String>,

    /// The output columns written (`label,probabilities_1`) or whole outputs
    /// (`probabilities`), comma-separated; every one by default.
    #[arg(long, value_delimiter = ',')]
    outputs: Vec<String>,

    /// Rows per record batch and model call.
    #[arg(long, default_value_t = 65_536)]
    batch_rows: usize,

    /// Threads scoring batches; every core by default.
    #[arg(long)]
    threads: Option<usize>,

    /// Stop at the first row that cannot be scored, instead of giving it an `_error` value
    /// and going on.
    #[arg(long)]
    fail_fast: bool,

    /// Progress reporting: a bar on a terminal, else a line every 5 s.
    #[arg(long, value_enum, default_value_t = ProgressFlag::Auto)]
    progress: ProgressFlag,
}

/// `--output-format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutputFormat {
    Parquet,
    Csv,
    Jsonl,
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProgressFlag {
    Auto,
    Bar,
    Plain,
    Off,
}

/// Runs the batch and prints its summary.
pub(crate) fn run_batch(args: &BatchArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let loaded = ModelRef::parse(&args.model)?.load(&runtimes(), threads)?;
    let inputs = input_files(&args.input)?;
    let map = args
        .map
        .iter()
        .map(|m| {
            let (input, columns) = m
                .split_once('=')
                .with_context(|| format!("--map {m}: expected INPUT=COLUMN,COLUMN,..."))?;
            Ok((
                input.to_owned(),
                columns.split(',').map(str::to_owned).collect(),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = RunOptions {
        inputs,
        output: SinkOptions {
            path: args.output.clone(),
            format: args.output_format.map(|f| match f {
                OutputFormat::Parquet => DataFormat::Parquet,
                OutputFormat::Csv => DataFormat::Csv,
                OutputFormat::Jsonl => DataFormat::JsonLines,
            }),
            rows_per_file: args.rows_per_file,
            partition_by: args.partition_by.clone(),
        },
        score: ScoreOptions {
            mapping: ColumnMapping {
                columns: args.columns.clone(),
                inputs: map,
                ignore: args.ignore.clone(),
            },
            keep: args.keep.clone(),
            outputs: args.outputs.clone(),
        },
        batch_rows: args.batch_rows.max(1),
        threads,
        fail_fast: args.fail_fast,
    };
    let mode = match args.progress {
        ProgressFlag::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
        ProgressFlag::Auto | ProgressFlag::Plain => ProgressMode::Lines,
        ProgressFlag::Bar => ProgressMode::Bar,
        ProgressFlag::Off => ProgressMode::Off,
    };
    let summary = run(&loaded, &options, &mut Progress::new(mode))?;
    let seconds = summary.elapsed.as_secs_f64();
    eprintln!(
        "scored {} rows from {} file(s) with {} version {} ({}) in {:.2} s ({} rows/s, {} \
         threads); {} failed -> {}",
        grouped(summary.rows),
        summary.inputs,
        loaded.name,
        loaded.version,
        loaded.runtime,
        seconds,
        grouped((summary.rows as f64 / seconds.max(1e-9)) as u64),
        threads,
        grouped(summary.failed),
        match summary.outputs.as_slice() {
            [one] => one.display().to_string(),
            many => format!("{} files under {}", many.len(), args.output.display()),
        }
    );
    for f in &summary.failures {
        eprintln!("  {} row {}: {}", f.file.display(), f.row, f.reason);
    }
    if summary.failed > summary.failures.len() as u64 {
        eprintln!(
            "  ... and {} more (the _error column of the output has them all)",
            grouped(summary.failed - summary.failures.len() as u64)
        );
    }
    Ok(())
}
