//! `ferroserve serve`: flags (each also read from a `FERROSERVE_*` variable), logging, the
//! listener, and shutdown on SIGTERM or Ctrl-C after the requests in flight finish.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ferroserve_loader::runtimes;
use ferroserve_server::access::jwt::JwtSettings;
use ferroserve_server::access::rate::Rate;
use ferroserve_server::tls::TlsFiles;
use ferroserve_server::transport::ConnectionLimits;
use ferroserve_server::{Listeners, ServerConfig, SharedStateUrl, serve_listeners};
use tokio::net::TcpListener;

/// Who may load and unload models at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelControl {
    /// Models are loaded at start-up; the repository load/unload and label endpoints answer 403.
    None,
    /// As `none`, and `POST /v2/repository/models/{m}/{load,unload,labels}` are enabled.
    Explicit,
    /// The repository is watched (`--repository-poll-secs`): new and changed versions load
    /// beside the serving ones and swap in; removed ones unload. Labels move through the API.
    Poll,
}

/// What `/v2/health/ready` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Readiness {
    /// Every model in the repository has a ready version.
    AllModels,
    /// The start-up load finished, whatever loaded.
    Started,
}

/// The Linux scheduling policy of the threads that read requests and write answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum IoScheduling {
    /// `SCHED_BATCH`: a request arriving while a model computes on the same core waits for the
    /// computation's time slice (a few ms at most) instead of preempting it, so a saturated
    /// core reads many requests per wake-up and switches context far less often.
    Batch,
    /// The default policy (`SCHED_OTHER`): every arriving request preempts a computation.
    Normal,
}

/// Flags of `ferroserve serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The model repository: one directory per model, holding numbered version directories
    /// (`<model>/1/model.onnx`) and an optional `<model>/model.toml`. A local directory, or
    /// the same tree in object storage (`s3://bucket/prefix`, `gs://`, `az://`) or on an
    /// HTTP(S) server (`https://host/path`, with an `index.json`), copied to
    /// --model-cache-dir; credentials come from the store's usual environment variables and
    /// instance credentials.
    #[arg(
        long,
        env = "FERROSERVE_MODEL_REPOSITORY",
        default_value = "examples/models",
        value_name = "DIR|URL"
    )]
    model_repository: String,

    #[command(flatten)]
    model_cache: crate::model_source::ModelCacheArgs,

    /// Port of the HTTP (KServe V2) endpoint; 0 picks a free port (logged at start-up).
    #[arg(long, env = "FERROSERVE_HTTP_PORT", default_value_t = 8000)]
    http_port: u16,

    /// Port of the gRPC (KServe V2 `inference.GRPCInferenceService` and `grpc.health.v1`)
    /// endpoint; 0 picks a free port (logged at start-up).
    #[arg(long, env = "FERROSERVE_GRPC_PORT", default_value_t = 8001)]
    grpc_port: u16,

    /// Serve HTTP only.
    #[arg(long, env = "FERROSERVE_NO_GRPC")]
    no_grpc: bool,

    /// Also serve `GET /metrics` alone on this port (as Triton does on 8002), for a scraper
    /// kept apart from inference clients; `/metrics` is on the HTTP port either way. 0 picks
    /// a free port.
    #[arg(long, env = "FERROSERVE_METRICS_PORT")]
    metrics_port: Option<u16>,

    /// Also export Triton's `nv_inference_*` metric families, so Triton dashboards work
    /// unchanged.
    #[arg(long, env = "FERROSERVE_METRICS_TRITON_NAMES")]
    metrics_triton_names: bool,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "FERROSERVE_GRPC_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024 * 1024)]
    grpc_max_message_bytes: usize,

    /// Address to listen on; 127.0.0.1 keeps the server local to this machine.
    #[arg(long, env = "FERROSERVE_HOST", default_value = "0.0.0.0")]
    host: IpAddr,

    /// Whether models may be loaded and unloaded through the repository API.
    #[arg(long, env = "FERROSERVE_MODEL_CONTROL", value_enum, default_value_t = ModelControl::None)]
    model_control: ModelControl,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "FERROSERVE_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_request_bytes: usize,

    /// Most elements one input tensor may have; larger ones get 400 before any allocation.
    #[arg(long, env = "FERROSERVE_MAX_TENSOR_ELEMENTS", default_value_t = 16 * 1024 * 1024)]
    max_tensor_elements: usize,

    /// Most bytes held at once for inference requests in flight: their bodies and decoded
    /// tensors, on every protocol. Past it requests get 503 (gRPC UNAVAILABLE) at once
    /// instead of the process running out of memory; at least twice --max-request-bytes.
    #[arg(long, env = "FERROSERVE_MAX_INFLIGHT_BYTES", default_value_t = 1024 * 1024 * 1024)]
    max_inflight_bytes: usize,

    /// Seconds between two looks at the repository with `--model-control poll` (fractions
    /// allowed).
    #[arg(long, env = "FERROSERVE_REPOSITORY_POLL_SECS", default_value_t = 15.0)]
    repository_poll_secs: f64,

    /// When `/v2/health/ready` answers 200: once every model has a ready version
    /// (`all-models`), or once the start-up load finished (`started`).
    #[arg(long, env = "FERROSERVE_READINESS", value_enum, default_value_t = Readiness::AllModels)]
    readiness: Readiness,

    /// Threads running model calls, shared by every model (a model's `instances` caps how many
    /// of them its calls take at once). Default: one per core.
    #[arg(long, env = "FERROSERVE_COMPUTE_THREADS")]
    compute_threads: Option<usize>,

    /// Scheduling policy of the request threads (Linux). `batch` keeps a busy core computing
    /// and reads the requests that arrived meanwhile in one go (+7-12% on a compute-bound
    /// model when server and model share a core); `normal` lets each request preempt the
    /// model call. Only matters when the cores are saturated.
    #[arg(long, env = "FERROSERVE_IO_SCHEDULING", value_enum, default_value_t = IoScheduling::Batch)]
    io_scheduling: IoScheduling,

    /// The ONNX Runtime library (`libonnxruntime.so`) to run ONNX models on, or `off` for
    /// tract only. Unset: looked for next to the binary, in `.tools/onnxruntime/lib` (where
    /// `scripts/fetch-onnxruntime.sh` puts it) and the system library directories; ONNX
    /// models run on tract when it is not found.
    #[arg(long, env = "FERROSERVE_ONNXRUNTIME_LIB", value_name = "PATH|off")]
    onnxruntime_lib: Option<PathBuf>,

    /// A folder served as static files at every path the API does not take, such as a web page
    /// running models in the browser with the WebAssembly build (`examples/web`).
    #[arg(long = "static", env = "FERROSERVE_STATIC", value_name = "DIR")]
    static_dir: Option<PathBuf>,

    /// A file of API keys (`ferroserve keys add` writes it): every endpoint but
    /// `/v2/health/*` and gRPC health then needs `Authorization: Bearer <key>` (or
    /// `x-api-key`) with the endpoint's scope. Changes to the file apply within a second.
    #[arg(long, env = "FERROSERVE_API_KEYS", value_name = "FILE")]
    api_keys: Option<PathBuf>,

    /// Requests per second each API key may send (keys with a `rate` of their own keep it);
    /// without --api-keys, each client address. Past it: 429 with `Retry-After` (gRPC
    /// RESOURCE_EXHAUSTED). Health endpoints are not limited.
    #[arg(long, env = "FERROSERVE_RATE_LIMIT", value_name = "RPS")]
    rate_limit: Option<f64>,

    /// Requests at once after an idle spell under --rate-limit (default: one second's worth).
    #[arg(long, env = "FERROSERVE_RATE_BURST", requires = "rate_limit")]
    rate_burst: Option<f64>,

    /// Host names a browser may use to reach management calls and the dashboard when there are
    /// no --api-keys (IP addresses and `localhost` always may; `*`: any). Guards against DNS
    /// rebinding; name here the DNS names operators use for this server.
    #[arg(long, env = "FERROSERVE_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,

    /// Where state that outlives a restart is kept (a bandit's learning), one folder per
    /// model; never inside the model repository, which may be read-only.
    #[arg(long, env = "FERROSERVE_STATE_DIR", default_value = "ferroserve-state")]
    state_dir: PathBuf,

    /// Connections open at once on each listener (HTTP, gRPC, metrics); past it, new ones wait
    /// until one closes. Keep it under the process's file descriptor limit (`ulimit -n`).
    #[arg(long, env = "FERROSERVE_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,

    /// Seconds a client has to send a request's headers (on gRPC, its first bytes and TLS
    /// handshake), and an idle HTTP/1 keep-alive connection is kept; then the connection is
    /// closed.
    #[arg(
        long,
        env = "FERROSERVE_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 30
    )]
    header_read_timeout_secs: u64,

    /// After SIGTERM: readiness turns false at once, requests in flight (and open gRPC
    /// streams) have this many seconds to finish, then are cut off.
    #[arg(long, env = "FERROSERVE_EXIT_TIMEOUT_SECS", default_value_t = 30)]
    exit_timeout_secs: u64,

    /// TLS on every listener (HTTP, gRPC, metrics): the server's certificate chain, PEM, leaf
    /// first. Reread when it changes, without a restart. TLS 1.2 and 1.3; HTTP/2 by ALPN.
    #[arg(long, env = "FERROSERVE_TLS_CERT", value_name = "PEM")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "FERROSERVE_TLS_KEY", value_name = "PEM")]
    tls_key: Option<PathBuf>,

    /// Mutual TLS: CA certificates (PEM) every client certificate must chain to. A client
    /// certificate's subject (or common name) maps to an --api-keys entry with
    /// `subject = "..."`, which gives its name and scopes.
    #[arg(long, env = "FERROSERVE_TLS_CLIENT_CA", value_name = "PEM")]
    tls_client_ca: Option<PathBuf>,

    /// JWT bearer tokens (RS256, ES256, EdDSA) are accepted, verified against this JSON Web
    /// Key Set: a file (reread when it changes) or an http(s) URL (fetched every 5 minutes,
    /// and when a token names an unknown key id). The token's `sub` names the caller.
    #[arg(long, env = "FERROSERVE_JWKS", value_name = "FILE|URL")]
    jwks: Option<String>,

    /// The `iss` every JWT must have.
    #[arg(long, env = "FERROSERVE_JWT_ISSUER", requires = "jwks")]
    jwt_issuer: Option<String>,

    /// An audience every JWT's `aud` must hold (without it, tokens that have an audience
    /// are refused).
    #[arg(long, env = "FERROSERVE_JWT_AUDIENCE", requires = "jwks")]
    jwt_audience: Option<String>,

    /// The JWT claim holding the scopes: a space-separated string or an array.
    #[arg(long, env = "FERROSERVE_JWT_SCOPE_CLAIM", default_value = "scope")]
    jwt_scope_claim: String,

    /// The JWT claim listing the models a token may run inference on (absent: every model).
    #[arg(long, env = "FERROSERVE_JWT_MODELS_CLAIM", default_value = "models")]
    jwt_models_claim: String,

    /// The key bandits sign their answers' feedback ids with: a file of 64 hex digits
    /// (`openssl rand -hex 32`). Give every replica the same file so each takes the others'
    /// ids. Default: `feedback.key` in --state-dir, made on first start.
    #[arg(long, env = "FERROSERVE_FEEDBACK_KEY_FILE", value_name = "FILE")]
    feedback_key_file: Option<PathBuf>,

    /// A store shared by replicas (`redis://[:password@]host[:port][/db]`): bandits learn
    /// together through it (any replica may take an answer's feedback) and a feedback id is
    /// spent for all of them. Without it, each replica learns alone. Put the password in the
    /// environment variable, not on the command line.
    #[arg(long = "state", env = "FERROSERVE_STATE", value_name = "URL")]
    shared_state: Option<String>,

    /// Log filter, as `RUST_LOG` (`info`, `ferroserve_server=debug`).
    #[arg(long, env = "FERROSERVE_LOG", default_value = "info")]
    log: String,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    crate::init_logging(&args.log, true)?;
    let model_repository = crate::model_source::model_source(
        &args.model_repository,
        &args.model_cache,
        &args.state_dir.join("model-cache"),
    )?;
    if let Some(dir) = &args.static_dir {
        anyhow::ensure!(dir.is_dir(), "--static {}: not a directory", dir.display());
    }
    let config = ServerConfig {
        model_repository,
        max_request_bytes: args.max_request_bytes,
        max_tensor_elements: args.max_tensor_elements,
        max_inflight_bytes: args.max_inflight_bytes,
        model_control: match args.model_control {
            ModelControl::None => ferroserve_server::ModelControl::None,
            ModelControl::Explicit => ferroserve_server::ModelControl::Explicit,
            ModelControl::Poll => ferroserve_server::ModelControl::Poll {
                interval: poll_interval(args.repository_poll_secs)?,
            },
        },
        strict_readiness: args.readiness == Readiness::AllModels,
        grpc_max_message_bytes: args.grpc_max_message_bytes,
        compute_threads: args.compute_threads,
        triton_metric_names: args.metrics_triton_names,
        static_dir: args.static_dir.clone(),
        api_keys: args.api_keys.clone(),
        default_rate: args
            .rate_limit
            .map(|rps| Rate::new(rps, args.rate_burst))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--rate-limit: {e}"))?,
        allowed_hosts: args.allowed_hosts.clone(),
        state_dir: Some(args.state_dir.clone()),
        connections: ConnectionLimits {
            max_connections: args.max_connections,
            header_read_timeout: std::time::Duration::from_secs(
                args.header_read_timeout_secs.max(1),
            ),
            ..ConnectionLimits::default()
        },
        exit_timeout: std::time::Duration::from_secs(args.exit_timeout_secs),
        tls: tls_files(args)?,
        jwt: args.jwks.as_ref().map(|jwks| JwtSettings {
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            scope_claim: args.jwt_scope_claim.clone(),
            models_claim: args.jwt_models_claim.clone(),
            ..JwtSettings::new(jwks.clone())
        }),
        feedback_key: args.feedback_key_file.clone(),
        shared_state: args.shared_state.clone().map(SharedStateUrl::new),
    };
    tracing::info!(?config, "starting ferroserve {}", env!("CARGO_PKG_VERSION"));
    if config.api_keys.is_none() && config.jwt.is_none() && !args.host.is_loopback() {
        tracing::warn!(
            host = %args.host,
            "no --api-keys or --jwks: every endpoint, including metrics{}, is open to anyone who can reach {}; \
             give --api-keys (ferroserve keys add) or bind --host 127.0.0.1",
            if args.model_control == ModelControl::None { "" } else { " and model control" },
            args.host
        );
    }
    choose_onnxruntime(args.onnxruntime_lib.as_deref())?;
    let io_scheduling = args.io_scheduling;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || set_io_scheduling(io_scheduling))
        .build()?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        let listener = TcpListener::bind((args.host, args.http_port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.http_port))?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
        let grpc = if args.no_grpc {
            None
        } else {
            let grpc = TcpListener::bind((args.host, args.grpc_port))
                .await
                .with_context(|| format!("cannot listen on {}:{}", args.host, args.grpc_port))?;
            let scheme = if config.tls.is_some() {
                "grpcs"
            } else {
                "grpc"
            };
            tracing::info!("listening on {scheme}://{}", grpc.local_addr()?);
            Some(grpc)
        };
        let metrics = match args.metrics_port {
            None => None,
            Some(port) => {
                let metrics = TcpListener::bind((args.host, port))
                    .await
                    .with_context(|| format!("cannot listen on {}:{port}", args.host))?;
                tracing::info!("metrics on {scheme}://{}/metrics", metrics.local_addr()?);
                Some(metrics)
            }
        };
        let listeners = Listeners {
            http: listener,
            grpc,
            metrics,
        };
        serve_listeners(config, runtimes(), listeners, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `--tls-cert`, `--tls-key` and `--tls-client-ca`: the first two together or not at all, the
/// third only with them.
fn tls_files(args: &ServeArgs) -> anyhow::Result<Option<TlsFiles>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        })),
        (None, None) if args.tls_client_ca.is_none() => Ok(None),
        (None, None) => anyhow::bail!("--tls-client-ca needs --tls-cert and --tls-key"),
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both"),
    }
}

/// `--repository-poll-secs` as a duration: positive and finite.
fn poll_interval(secs: f64) -> anyhow::Result<std::time::Duration> {
    anyhow::ensure!(
        secs.is_finite() && secs > 0.0,
        "--repository-poll-secs {secs}: expected a positive number of seconds"
    );
    // At least 1 ms: a positive count of seconds too small for a Duration would round to 0,
    // which tokio's interval refuses.
    Ok(std::time::Duration::from_secs_f64(secs.max(0.001)))
}

/// Puts the calling thread (one of the runtime's) under `policy`; a failure is logged once and
/// the thread keeps the default policy.
fn set_io_scheduling(policy: IoScheduling) {
    if policy == IoScheduling::Normal {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        use thread_priority::{ThreadPriority, ThreadPriorityOsValue};
        static WARNED: AtomicBool = AtomicBool::new(false);
        // Nice 0, the default: SCHED_BATCH changes how wake-ups preempt, not the CPU share.
        let result = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Os(ThreadPriorityOsValue::default()),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        );
        if let Err(e) = result
            && !WARNED.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "--io-scheduling batch: cannot set SCHED_BATCH ({e:?}); using the default policy"
            );
        }
    }
}

/// Loads the ONNX Runtime library before any model: a library the user named must load;
/// one looked for may be missing (ONNX models then run on tract, when the build has it).
#[cfg(feature = "onnxruntime")]
pub(crate) fn choose_onnxruntime(flag: Option<&std::path::Path>) -> anyhow::Result<()> {
    use ferroserve_onnx::onnxruntime::{LibraryChoice, library};
    let choice = match flag {
        None => LibraryChoice::Search,
        Some(p) if p.as_os_str() == "off" => LibraryChoice::Disabled,
        Some(p) => LibraryChoice::Path(p.to_owned()),
    };
    let named = matches!(choice, LibraryChoice::Path(_));
    match library::initialize(choice) {
        Ok(info) => tracing::info!(
            path = %info.path.display(),
            "ONNX Runtime {} loaded: ONNX models run on it (pin one with runtime = \"tract\")",
            info.version
        ),
        Err(reason) if named => anyhow::bail!("--onnxruntime-lib: {reason}"),
        Err(reason) if cfg!(feature = "tract") => {
            tracing::info!(%reason, "ONNX models run on tract");
        }
        Err(reason) => tracing::warn!(
            %reason,
            "no ONNX Runtime, and this build has no tract: ONNX networks will not load \
             (tree ensembles and ONNX-ML models still do)"
        ),
    }
    Ok(())
}

/// A build without ONNX Runtime: `--onnxruntime-lib` may only be `off`.
#[cfg(not(feature = "onnxruntime"))]
pub(crate) fn choose_onnxruntime(flag: Option<&std::path::Path>) -> anyhow::Result<()> {
    match flag {
        Some(path) if path.as_os_str() != "off" => {
            anyhow::bail!("--onnxruntime-lib: this build of ferroserve has no ONNX Runtime support")
        }
        _ => Ok(()),
    }
}

/// A future that completes on SIGTERM or Ctrl-C (SIGINT). The handlers are installed here,
/// before the server announces its address, so a signal sent as soon as the server is up
/// drains it instead of killing it.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    })
}
