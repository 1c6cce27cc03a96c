//! The `ferroserve` command.
//!
//! - `ferroserve serve`: serve a model repository over the KServe V2 HTTP protocol.
//! - `ferroserve predict`: run one V2 request body through a model, with no server.
//! - `ferroserve batch`: score data files through a model, on every core.
//! - `ferroserve profile`: a model's reference data profile, for drift monitoring.
//! - `ferroserve export`: a model version into a folder the WebAssembly build loads.
//! - `ferroserve keys`: add, list and remove the API keys `serve --api-keys` accepts.
//! - `ferroserve lambda`: serve a model repository as an AWS Lambda function.
//! - `ferroserve health`: whether the server on this machine is ready, for container checks.
//! - `ferroserve index`: the `index.json` that lets a repository be served over HTTP(S).

#![forbid(unsafe_code)]

#[cfg(feature = "files")]
mod batch;
#[cfg(feature = "files")]
mod export;
mod health;
mod index;
mod keys;
mod lambda;
mod model_path;
mod model_source;
mod predict;
#[cfg(feature = "files")]
mod profile;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A model server: scikit-learn, XGBoost, LightGBM and ONNX models from a versioned repository,
/// served over KServe V2 (HTTP and gRPC) and TF Serving REST, and scored in batch from files.
#[derive(Debug, Parser)]
#[command(name = "ferroserve", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a model repository over HTTP (KServe V2 / Triton-compatible).
    Serve(Box<serve::ServeArgs>),
    /// Run one V2 inference request body (JSON) through a model and print the response.
    Predict(predict::PredictArgs),
    /// Score Parquet, CSV or JSON-lines files through a model, on every core.
    #[cfg(feature = "files")]
    Batch(batch::BatchArgs),
    /// Write a model's reference data profile (for drift monitoring) from a training sample.
    #[cfg(feature = "files")]
    Profile(profile::ProfileArgs),
    /// Copy a model version and its manifest into a folder for the browser/Node build.
    #[cfg(feature = "files")]
    Export(export::ExportArgs),
    /// Add, list or remove API keys in a key file (`serve --api-keys`).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve a model repository as an AWS Lambda function (the runtime API loop).
    Lambda(lambda::LambdaArgs),
    /// Exit 0 when the server on this machine is ready (or live), 1 when not: a container
    /// health check for images without a shell.
    Health(health::HealthArgs),
    /// Write `index.json` at a model repository's root, so the folder can be served as a
    /// read-only `--model-repository https://...` (every file's size and SHA-256).
    Index(index::IndexArgs),
}

/// Log lines to stderr, filtered by `filter` (`--log`: a level, and `target=level` pairs, as
/// `RUST_LOG`), with colours only when `ansi` and stderr is a terminal. `Targets` rather than
/// `EnvFilter`: the same syntax but for span filters, without a regex engine in the binary.
fn init_logging(filter: &str, ansi: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let targets: tracing_subscriber::filter::Targets = filter.parse().context("--log")?;
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(lines)
        .with(targets)
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Predict(args) => predict::run(&args),
        #[cfg(feature = "files")]
        Command::Profile(args) => profile::run(&args),
        #[cfg(feature = "files")]
        Command::Batch(args) => batch::run_batch(&args),
        #[cfg(feature = "files")]
        Command::Export(args) => export::run(&args),
        Command::Keys(command) => keys::run(&command),
        Command::Lambda(args) => lambda::run(&args),
        Command::Index(args) => index::run(&args),
        Command::Health(args) => match health::run(&args) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
