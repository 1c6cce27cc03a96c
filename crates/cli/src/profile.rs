//! `ferroserve profile`: writes a model's reference data profile (`profile.json`) from a
//! training sample, for the server's drift monitoring. The model is loaded as the server loads
//! it (runtime, options and signature overrides from `model.toml`) and run on the sampled rows.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::model_path::model_and_version;
use ferroserve_batch::ModelRef;
use ferroserve_batch::profile::{ProfileOptions, profile};
use ferroserve_batch::source::Source;
use ferroserve_core::profile::PROFILE_FILE;
use ferroserve_loader::runtimes;

/// Flags of `ferroserve profile`.
#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    /// A model directory (`models/iris`) or one of its version directories (`models/iris/2`).
    #[arg(long)]
    model: PathBuf,

    /// The training sample: `.parquet`, `.csv` (with a header) or `.jsonl`, optionally `.gz`.
    #[arg(long)]
    data: PathBuf,

    /// The version (number or label) to run when `--model` is a model directory; the latest
    /// by default.
    #[arg(long)]
    version: Option<String>,

    /// The feature columns of a one-input model, comma-separated, in the order the model
    /// takes them; by default every column not `--ignore`d.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,

    /// Columns that are not features (a label, an id), comma-separated.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,

    /// Rows profiled: a uniform sample of the file beyond that (seeded: the same file gives
    /// the same profile).
    #[arg(long, default_value_t = 100_000)]
    max_rows: usize,

    /// Where to write the profile; `<model dir>/profile.json` by default, where every version
    /// of the model finds it (a version directory's own profile.json takes precedence).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Profiles the data and writes the file.
pub(crate) fn run(args: &ProfileArgs) -> anyhow::Result<()> {
    let (model_dir, version) = model_and_version(&args.model, args.version.as_deref())?;
    let loaded = ModelRef {
        dir: model_dir.clone(),
        version,
    }
    .load(&runtimes(), 1)?;
    let options = ProfileOptions {
        columns: args.columns.clone(),
        ignore: args.ignore.clone(),
        max_rows: args.max_rows,
        ..ProfileOptions::default()
    };
    let source = Source::open(&args.data, options.batch_rows)?;
    let profile = profile(loaded.model.as_ref(), &loaded.signature, source, &options)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| model_dir.join(PROFILE_FILE));
    let text = serde_json::to_string(&profile)?;
    std::fs::write(&output, text + "\n")
        .with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "profiled {} rows: {} input features, {} output columns -> {}",
        profile.rows,
        profile.inputs.len(),
        profile.outputs.len(),
        output.display()
    );
    Ok(())
}
