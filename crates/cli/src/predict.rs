//! `ferroserve predict`: one V2 request body through a model directory, no server. The same
//! repository, validation and scheduler code as `serve`, so a request that works here works
//! over HTTP.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::model_path::model_and_version;

/// Flags of `ferroserve predict`.
#[derive(Debug, Args)]
pub(crate) struct PredictArgs {
    /// A model directory (`models/iris`, holding version directories and an optional
    /// `model.toml`) or one version directory (`models/iris/2`).
    #[arg(long)]
    model: PathBuf,

    /// A KServe V2 inference request body (JSON); `-` reads standard input.
    #[arg(long)]
    input: PathBuf,

    /// The version or label to use when `--model` is a model directory; the latest by default.
    #[arg(long)]
    version: Option<String>,
}

/// Prints the V2 response (JSON) for the request.
pub(crate) fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let body = if args.input == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        buf
    } else {
        std::fs::read(&args.input).with_context(|| format!("--input {}", args.input.display()))?
    };
    let (model_dir, version) = model_and_version(&args.model, args.version.as_deref())?;
    let response = ferroserve_server::predict(&model_dir, version.as_deref(), &body)?;
    let json: serde_json::Value = serde_json::from_slice(&response)?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
