//! `ferroserve export`: one model version out of a repository into a folder that a client-side
//! build loads as it is: the model file, unchanged, and `ferroserve.json`, its manifest (name,
//! version, format, file, engine, the smallest WebAssembly build that runs it, signature).
//!
//! The model is loaded twice on the way: as the server loads it (so a version the server would
//! refuse is not exported) and as the WebAssembly and C builds load it (so the folder is known
//! to run there). The JavaScript package's `Model.fetch("<folder>/")` reads the manifest.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use ferroserve_batch::{LoadedModel, ModelRef};
use ferroserve_core::TensorSpec;
use ferroserve_loader::{EmbeddedModel, Format, runtimes};
use serde_json::json;

/// The manifest's file name, next to the model file.
pub(crate) const MANIFEST_FILE: &str = "ferroserve.json";

/// Model file names the runtimes load by default, in the order they are looked for.
const MODEL_FILES: [&str; 4] = ["model.onnx", "model.json", "model.ubj", "model.txt"];

/// What an exported folder is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Target {
    /// The WebAssembly package (browsers and Node): `Model.fetch("<folder>/")`.
    Web,
}

/// Flags of `ferroserve export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The model: a model directory (its latest version), `DIR/VERSION`, or
    /// `DIR@VERSION|LABEL`.
    #[arg(long)]
    model: String,

    /// What the folder is for.
    #[arg(long, value_enum, default_value_t = Target::Web)]
    target: Target,

    /// The folder to write (created; the model file and manifest in it are replaced).
    #[arg(long)]
    output: PathBuf,
}

/// Exports the model version.
pub(crate) fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let Target::Web = args.target;
    let loaded = ModelRef::parse(&args.model)?.load(&runtimes(), 1)?;
    let path = model_file(&loaded)?;
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the model file has no UTF-8 name")?
        .to_owned();
    let format = Format::from_file_name(&file).with_context(|| {
        format!(
            "{}: the WebAssembly build loads .onnx, .json, .ubj and .txt model files",
            path.display()
        )
    })?;
    let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
    let embedded = EmbeddedModel::load(&bytes, Some(format))
        .with_context(|| format!("{}: the WebAssembly build cannot load it", path.display()))?;
    let build = if embedded.engine() == "tract" {
        "full"
    } else {
        "trees"
    };
    let manifest = json!({
        "name": loaded.name,
        "version": loaded.version.to_string(),
        "format": format.name(),
        "file": file,
        "engine": embedded.engine(),
        "build": build,
        "signature": {
            "inputs": specs(&embedded.signature().inputs),
            "outputs": specs(&embedded.signature().outputs),
        },
    });
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("--output {}", args.output.display()))?;
    let write = |name: &str, contents: &[u8]| {
        let target = args.output.join(name);
        std::fs::write(&target, contents).with_context(|| format!("{}", target.display()))
    };
    write(&file, &bytes)?;
    write(
        MANIFEST_FILE,
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    if embedded.signature() != &loaded.signature {
        eprintln!(
            "note: model.toml's [[input]]/[[output]] overrides are not applied in the browser; \
             {MANIFEST_FILE} has the signature the model file itself declares"
        );
    }
    eprintln!(
        "exported {} version {} to {}: {file} ({} bytes, {}, engine {}; runs in the {build} \
         WebAssembly build) and {MANIFEST_FILE}",
        loaded.name,
        loaded.version,
        args.output.display(),
        bytes.len(),
        format.name(),
        embedded.engine(),
    );
    Ok(())
}

/// The version's model file: the one `model.toml` names, or the first default name present.
fn model_file(loaded: &LoadedModel) -> anyhow::Result<PathBuf> {
    if let Some(name) = &loaded.model_file {
        return Ok(loaded.version_dir.join(name));
    }
    MODEL_FILES
        .iter()
        .map(|name| loaded.version_dir.join(name))
        .find(|path| Path::is_file(path))
        .with_context(|| {
            format!(
                "{}: none of {MODEL_FILES:?} is there",
                loaded.version_dir.display()
            )
        })
}

/// `[{name, datatype, shape}]`.
fn specs(specs: &[TensorSpec]) -> serde_json::Value {
    specs
        .iter()
        .map(|s| json!({"name": s.name, "datatype": s.datatype.name(), "shape": s.shape}))
        .collect()
}
