//! `ferroserve predict`: one V2 request body through a model directory, no server. The same
//! repository, validation and scheduler code as `serve`, so a request that works here works
//! over HTTP.

use ferroserve_loader::config::ModelToml;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::model_path::model_and_version;
use ferroserve_loader::runtimes;
use ferroserve_server::codec::{
    Expected, OutputForm, RequestLimits, decode_request, encode_response,
};
use ferroserve_server::protocol::status::ApiError;
use ferroserve_server::repository::Repository;
use ferroserve_server::router::{Router, Selector};

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
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let model = name_of(&model_dir).context("--model has no directory name")?;
    let root = model_dir
        .parent()
        .context("--model has no parent directory")?;
    let repository = std::sync::Arc::new(Repository::new(root, runtimes()));
    // A composite needs the models it routes to: load the whole repository for it.
    match ModelToml::read(&model_dir) {
        Ok(Some(ModelToml::Composite(_))) => repository.load_all()?,
        _ => repository.load(&model)?,
    }
    let router = Router::new(repository, None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let response = runtime.block_on(router.infer(
        &model,
        Selector::version(version.as_deref()),
        Instant::now(),
        |loaded| {
            let request = decode_request(
                &body,
                None,
                RequestLimits {
                    max_tensor_elements: usize::MAX,
                    max_decoded_bytes: usize::MAX,
                },
                Some(Expected::of(loaded)),
            )?;
            Ok::<_, ApiError>((request.into_request()?.0, ()))
        },
        |loaded, response, ()| {
            // The response goes to a terminal or a file: always JSON.
            Ok(encode_response(
                &loaded.model_name,
                loaded.version,
                response.id.as_deref(),
                &response.outputs,
                &OutputForm::json(),
                &response.parameters,
            ))
        },
    ))?;
    let json: serde_json::Value = serde_json::from_slice(&response.body)?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
