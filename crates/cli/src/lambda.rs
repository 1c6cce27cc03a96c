//! `ferroserve lambda`: serves a model repository as an AWS Lambda function, through the
//! Lambda runtime API instead of listeners (a `bootstrap` for the `provided.al2023` runtime,
//! or a container image's entrypoint). Events from function URLs, API Gateway and load
//! balancers reach the same routes as HTTP requests to `ferroserve serve`; a direct
//! invocation is a V2 or TF Serving inference body.

use std::path::PathBuf;

use clap::Args;
use ferroserve_loader::runtimes;
use ferroserve_server::lambda::LambdaSettings;
use ferroserve_server::{ModelControl, ServerConfig, serve_lambda};

/// Flags of `ferroserve lambda`.
#[derive(Debug, Args)]
pub(crate) struct LambdaArgs {
    /// The model repository, as for `serve`. Lambda runs the function in its task root
    /// (`/var/task`), so the default is the `models` folder packaged beside `bootstrap`. A
    /// remote one (`s3://...`) is cached in /tmp unless --model-cache-dir says otherwise.
    #[arg(
        long,
        env = "FERROSERVE_MODEL_REPOSITORY",
        default_value = "models",
        value_name = "DIR|URL"
    )]
    model_repository: String,

    #[command(flatten)]
    model_cache: crate::model_source::ModelCacheArgs,

    /// The model a direct invocation goes to when its event has no `model_name`; by default
    /// the repository's only model.
    #[arg(long, env = "FERROSERVE_LAMBDA_MODEL")]
    model: Option<String>,

    /// The runtime API's host:port; Lambda sets the variable.
    #[arg(long, env = "AWS_LAMBDA_RUNTIME_API")]
    runtime_api: String,

    /// Threads running model calls; one per core when unset (a function's cores grow with
    /// its memory setting).
    #[arg(long, env = "FERROSERVE_COMPUTE_THREADS")]
    compute_threads: Option<usize>,

    /// Largest request body accepted, in bytes (Lambda's own limit is 6 MB).
    #[arg(long, env = "FERROSERVE_MAX_REQUEST_BYTES", default_value_t = 6 * 1024 * 1024)]
    max_request_bytes: usize,

    /// The ONNX Runtime library, or `off`; as for `serve`.
    #[arg(long, env = "FERROSERVE_ONNXRUNTIME_LIB", value_name = "PATH|off")]
    onnxruntime_lib: Option<PathBuf>,

    /// Log filter (a level, and `target=level` pairs); lines go to stderr, and from there to
    /// CloudWatch.
    #[arg(long, env = "FERROSERVE_LOG", default_value = "info")]
    log: String,
}

/// Answers invocations until Lambda ends the process.
pub(crate) fn run(args: &LambdaArgs) -> anyhow::Result<()> {
    crate::init_logging(&args.log, false)?;
    let model_repository = crate::model_source::model_source(
        &args.model_repository,
        &args.model_cache,
        // The only writable folder in a Lambda execution environment.
        std::path::Path::new("/tmp/ferroserve-model-cache"),
    )?;
    let config = ServerConfig {
        max_request_bytes: args.max_request_bytes,
        compute_threads: args.compute_threads,
        model_control: ModelControl::None,
        // Lambda's file system is read-only but for /tmp, and an execution environment is
        // short-lived: a bandit learns in memory.
        state_dir: None,
        ..ServerConfig::serving(model_repository)
    };
    crate::serve::choose_onnxruntime(args.onnxruntime_lib.as_deref())?;
    let settings = LambdaSettings {
        runtime_api: args.runtime_api.clone(),
        default_model: args.model.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        serve_lambda(config, runtimes(), settings, std::future::pending()).await
    })?;
    Ok(())
}
