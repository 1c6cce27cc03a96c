//! ferroserve-server: the model repository, the scheduler in front of each model version, and
//! the protocol front-ends.
//!
//! # Layout
//! - [`repository`]: what is loaded: `<root>/<model>/<version>/`, `model.toml`, version policy,
//!   labels, load/unload with the new version built beside the old one.
//! - [`inference`]: the request and answer inside the server, free of any wire format.
//! - [`router`]: the one request path: resolve, run (model or composite), record, answer.
//! - [`codec`]: KServe V2 inference bodies, JSON and the binary tensor data extension, both
//!   ways (the V2 front-ends and warm-up files speak them).
//! - [`cache`]: a model version's answers kept by their inputs (opt-in).
//! - [`composite`]: models that route to other models (split, shadow, bandit).
//! - [`scheduler`]: per model version, a bounded queue and worker threads running the model.
//! - [`stats`]: per-version counters (Triton's statistics extension).
//! - [`metrics`]: `GET /metrics`, the Prometheus exposition of those counters and more.
//! - [`monitor`]: live data against a model's reference profile (drift, missing values).
//! - [`dashboard`]: `GET /dashboard`, traffic and drift plotted as server-rendered SVG.
//! - [`payload`]: sampled request/response records to rotating files.
//! - [`protocol`]: the KServe V2 HTTP front-end and the one table of error → status.
//! - [`access`]: API keys, scopes and the check of a request's credentials.
//! - [`audit`]: one log line per management action: who, what, how it ended.
//! - [`error`]: the errors of this layer.
//! - [`transport`]: the HTTP listener's connections: cap, timeouts, HTTP/2 limits, shutdown.
//! - [`tls`]: certificates for both listeners, reread when they change; client certificates.
//! - [`serve`]: the entry point: a configuration, a bound listener and a shutdown future.
//! - [`lambda`]: the other entry point: AWS Lambda's runtime API loop instead of listeners.

#![forbid(unsafe_code)]

pub mod access;
pub(crate) mod audit;
pub(crate) mod budget;
pub(crate) mod cache;
pub(crate) mod codec;
pub(crate) mod composite;
pub(crate) mod dashboard;
pub mod error;
pub(crate) mod inference;
pub mod lambda;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod payload;
pub mod protocol;
pub mod remote;
pub mod repository;
pub(crate) mod router;
pub(crate) mod scheduler;
pub(crate) mod stats;
pub mod tls;
pub mod transport;

pub use composite::shared_state::SharedStateUrl;
pub use protocol::offline::{PredictError, predict};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use ferroserve_core::RuntimeRegistry;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::budget::MemoryBudget;
use crate::codec::RequestLimits;
use crate::composite::feedback_id::FeedbackKey;
use crate::protocol::{AppState, HttpSettings, http_router};
use crate::repository::Repository;

/// How the server runs: plain data, filled from flags, environment or tests.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the models are: a directory, or a remote repository served from a local copy.
    pub model_repository: ModelSource,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Most elements one tensor may have.
    pub max_tensor_elements: usize,
    /// Most bytes held at once for requests in flight (bodies and their decoded tensors);
    /// past it requests get 503.
    pub max_inflight_bytes: usize,
    /// Who changes what is loaded after start-up.
    pub model_control: ModelControl,
    /// Whether readiness needs every model to have a ready version (the default), rather than
    /// only the start-up load to have finished.
    pub strict_readiness: bool,
    /// Largest gRPC message accepted or sent, in bytes (gRPC's usual 4 MiB is too small for
    /// batches of images).
    pub grpc_max_message_bytes: usize,
    /// Threads running model calls, shared by every model; one per core when `None`.
    pub compute_threads: Option<usize>,
    /// Whether `/metrics` also has Triton's `nv_inference_*` families.
    pub triton_metric_names: bool,
    /// A folder served as static files over HTTP at the paths the API does not take.
    pub static_dir: Option<PathBuf>,
    /// A file of API keys (`ferroserve keys add`): when set, every endpoint but liveness and
    /// readiness needs a key with the endpoint's scope. Reread when it changes.
    pub api_keys: Option<PathBuf>,
    /// The rate limit of a key without its own, and of each client address on a server
    /// without keys; `None`: unlimited.
    pub default_rate: Option<access::rate::Rate>,
    /// Host names (besides IP literals and `localhost`) a browser may reach management and the
    /// dashboard by on a server without keys; `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// Where state that outlives a load is kept (a bandit's), outside the model repository;
    /// `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    /// Limits on each listener's connections.
    pub connections: transport::ConnectionLimits,
    /// After the shutdown signal, how long requests in flight may take before they are cut
    /// off (Triton's `--exit-timeout-secs`).
    pub exit_timeout: Duration,
    /// TLS on the HTTP, gRPC and metrics listeners; `None`: plain TCP.
    pub tls: Option<tls::TlsFiles>,
    /// JWT bearer tokens, verified against a key set; `None`: none accepted.
    pub jwt: Option<access::jwt::JwtSettings>,
    /// Where bandits share what they learn, and spent feedback ids, with the other replicas
    /// (`redis://host:port/db`); `None`: each replica learns alone.
    pub shared_state: Option<SharedStateUrl>,
    /// The key bandits' feedback ids are signed with (64 hex digits), shared by replicas;
    /// `None`: `feedback.key` in the state directory, made on first use (a random key in
    /// memory without a state directory).
    pub feedback_key: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for serving the directory `model_repository`.
    pub fn new(model_repository: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig::serving(ModelSource::Local(model_repository.into()))
    }

    /// Defaults for serving the repository `source`.
    pub fn serving(source: ModelSource) -> ServerConfig {
        ServerConfig {
            model_repository: source,
            max_request_bytes: 64 * 1024 * 1024,
            max_tensor_elements: 16 * 1024 * 1024,
            max_inflight_bytes: 1024 * 1024 * 1024,
            model_control: ModelControl::None,
            strict_readiness: true,
            grpc_max_message_bytes: 64 * 1024 * 1024,
            compute_threads: None,
            triton_metric_names: false,
            static_dir: None,
            api_keys: None,
            default_rate: None,
            allowed_hosts: Vec::new(),
            state_dir: None,
            connections: transport::ConnectionLimits::default(),
            exit_timeout: Duration::from_secs(30),
            tls: None,
            jwt: None,
            feedback_key: None,
            shared_state: None,
        }
    }
}

/// Where the model repository is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A local directory, served as it is.
    Local(PathBuf),
    /// Object storage or an HTTP(S) tree, copied to a local cache and served from there.
    Remote(remote::RemoteSettings),
}

/// Who changes what is loaded after start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelControl {
    /// Nothing: the models loaded at start-up serve until the process ends.
    None,
    /// The repository API: `POST /v2/repository/models/{m}/{load,unload}`, and label moves.
    Explicit,
    /// The repository is looked at every `interval`: new, changed and removed model
    /// directories and versions are loaded, reloaded and unloaded. Label moves through the
    /// API are allowed too.
    Poll {
        /// Time between two looks.
        interval: std::time::Duration,
    },
}

/// The runtimes this build has, in the order they are tried: the loader's one list, named as
/// the server's API has always named it.
pub use ferroserve_loader::runtimes as runtime_registry;

/// Serves `config` on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns. The listener is bound by the caller (tests bind `127.0.0.1:0`).
/// Models load in the background; `/v2/health/ready` turns 200 once that is done.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_runtimes(config, runtime_registry(), listener, shutdown).await
}

/// [`serve`] with a chosen set of runtimes (embedders adding their own, tests).
pub async fn serve_with_runtimes(
    config: ServerConfig,
    runtimes: RuntimeRegistry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listeners = Listeners {
        http: listener,
        grpc: None,
        metrics: None,
    };
    serve_listeners(config, runtimes, listeners, shutdown).await
}

/// The sockets the server answers on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// KServe V2 and TF Serving over HTTP.
    pub http: TcpListener,
    /// KServe V2 over gRPC, with `grpc.health.v1`.
    pub grpc: Option<TcpListener>,
    /// `/metrics` alone, besides its route on the HTTP port.
    pub metrics: Option<TcpListener>,
}

/// Serves every front-end of `listeners` from one repository until `shutdown` completes, then
/// finishes the requests in flight on each and returns.
pub async fn serve_listeners(
    config: ServerConfig,
    runtimes: RuntimeRegistry,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners {
        http: listener,
        grpc,
        metrics: metrics_listener,
    } = listeners;
    let Started {
        state,
        tls,
        background,
        loaded: _,
    } = start(&config, runtimes)?;
    // One shutdown signal for every front-end. From it, readiness is false and the requests
    // in flight have `exit_timeout` to finish.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_at = Arc::new(std::sync::OnceLock::new());
    let (shutting_down, stop_time) = (Arc::clone(&state.shutting_down), Arc::clone(&stop_at));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_time.set(std::time::Instant::now());
        shutting_down.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop.send(true);
    });
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|&s| s).await;
        }
    };
    let grpc = grpc.map(|listener| {
        let state = state.clone();
        let shutdown = stopping();
        let limit = config.grpc_max_message_bytes;
        protocol::grpc::codec::allow_decoded_bytes(config.max_request_bytes);
        let connections = config.connections;
        let tls = tls.clone();
        tokio::spawn(async move {
            protocol::grpc::serve(state, listener, limit, connections, tls, shutdown)
                .await
                .map_err(std::io::Error::other)
        })
    });
    let metrics_server = metrics_listener.map(|listener| {
        let shutdown = stopping();
        let app = protocol::observability::router(state.clone());
        let (limits, drain) = (config.connections, config.exit_timeout);
        tokio::spawn(transport::serve_http(
            listener,
            app,
            limits,
            tls.clone(),
            shutdown,
            drain,
        ))
    });
    let app = http_router(state);
    let drain = config.exit_timeout;
    transport::serve_http(listener, app, config.connections, tls, stopping(), drain).await?;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    // What is left of the deadline for gRPC (an open ModelStreamInfer would hold it forever).
    let left = || {
        let since = stop_at.get().map_or(Duration::ZERO, |at| at.elapsed());
        drain.saturating_sub(since)
    };
    for task in [grpc, metrics_server].into_iter().flatten() {
        let abort = task.abort_handle();
        match tokio::time::timeout(left(), task).await {
            Ok(result) => result.map_err(std::io::Error::other)??,
            Err(_) => {
                tracing::warn!(
                    ?drain,
                    "a listener still had requests in flight at the shutdown deadline; cut off"
                );
                abort.abort();
            }
        }
    }
    Ok(())
}

/// Loads `config`'s repository, then answers AWS Lambda invocations from the runtime API
/// ([`lambda`]) with the HTTP front-end's routes, until `shutdown` completes.
pub async fn serve_lambda(
    config: ServerConfig,
    runtimes: RuntimeRegistry,
    settings: lambda::LambdaSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), lambda::LambdaError> {
    let Started {
        state,
        background,
        mut loaded,
        ..
    } = start(&config, runtimes)?;
    let _ = loaded.wait_for(|&done| done).await;
    let repository = Arc::clone(&state.repository);
    let result = lambda::run(http_router(state), repository, settings, shutdown).await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    result
}

/// What every front-end shares, started from a configuration: the application state (the
/// repository, loading in the background), TLS, and the tasks that reread files and poll.
struct Started {
    state: AppState,
    tls: Option<Arc<tls::Tls>>,
    /// Background tasks (file watchers, repository loading and polling, drift scoring),
    /// aborted when serving ends.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Turns true once the start-up load of the repository has finished.
    loaded: tokio::sync::watch::Receiver<bool>,
}

/// Builds what [`serve_listeners`] and [`serve_lambda`] share from `config`, and starts loading the
/// repository in the background.
fn start(config: &ServerConfig, runtimes: RuntimeRegistry) -> std::io::Result<Started> {
    let access = match &config.api_keys {
        Some(path) => access::Access::with_key_file(path).map_err(std::io::Error::other)?,
        None => access::Access::open(),
    };
    let mut access = access
        .with_default_rate(config.default_rate)
        .with_allowed_hosts(config.allowed_hosts.clone());
    let mut watchers = Vec::new();
    if let Some(settings) = &config.jwt {
        let jwt = access::jwt::Jwt::new(settings.clone()).map_err(std::io::Error::other)?;
        let jwt = Arc::new(jwt);
        watchers.push(tokio::spawn(Arc::clone(&jwt).refresh(KEY_FILE_CHECK)));
        access = access.with_jwt(jwt);
    }
    let access = Arc::new(access);
    watchers.push(tokio::spawn(Arc::clone(&access).watch(KEY_FILE_CHECK)));
    let tls = match &config.tls {
        Some(files) => {
            let tls = Arc::new(tls::Tls::load(files.clone()).map_err(std::io::Error::other)?);
            watchers.push(tokio::spawn(Arc::clone(&tls).watch(KEY_FILE_CHECK)));
            Some(tls)
        }
        None => None,
    };
    // Before any model loads, so the repository's schedulers get a pool of this size.
    let pool = scheduler::ComputePool::global(config.compute_threads)?;
    tracing::info!(threads = pool.threads(), "compute pool started");
    let repository = match &config.model_repository {
        ModelSource::Local(dir) => Repository::new(dir, runtimes),
        ModelSource::Remote(settings) => {
            let remote = remote::RemoteRepository::open(settings).map_err(std::io::Error::other)?;
            tracing::info!(
                repository = %remote.url(),
                cache = %remote.models_dir().display(),
                "serving a remote model repository from its local copy"
            );
            Repository::remote(Arc::new(remote), runtimes)
        }
    };
    let feedback_key = match (&config.feedback_key, &config.state_dir) {
        (Some(path), _) => FeedbackKey::from_file(path)?,
        (None, Some(dir)) => FeedbackKey::from_file_or_create(&dir.join("feedback.key"))?,
        (None, None) => FeedbackKey::random(),
    };
    let shared_state = match &config.shared_state {
        Some(url) => {
            let state =
                composite::shared_state::SharedState::open(url).map_err(std::io::Error::other)?;
            tracing::info!(
                store = state.shown(),
                "bandits share what they learn through the store"
            );
            Some(Arc::new(state))
        }
        None => None,
    };
    let repository = repository
        .with_state_dir(config.state_dir.clone())
        .with_feedback_key(feedback_key)
        .with_shared_state(shared_state);
    let repository = Arc::new(repository);
    let loading = Arc::clone(&repository);
    let model_control = config.model_control;
    let history = Arc::new(dashboard::history::History::default());
    let drift = tokio::spawn(watch(Arc::clone(&repository), Arc::clone(&history)));
    let (done, loaded) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(async move {
        first_copy(&loading).await;
        let first = Arc::clone(&loading);
        let load = tokio::task::spawn_blocking(move || {
            if let Err(error) = first.load_all() {
                tracing::error!(%error, "cannot read the model repository");
            }
            tracing::info!("model repository loaded");
        });
        let _ = load.await;
        let _ = done.send(true);
        if let ModelControl::Poll { interval } = model_control {
            poll_repository(loading, interval).await;
        }
    });
    watchers.push(drift);
    watchers.push(poller);
    let metrics = Arc::new(metrics::Metrics::new(
        &repository,
        config.triton_metric_names,
        &access,
    ));
    let state = AppState {
        router: router::Router::new(Arc::clone(&repository), Some(Arc::clone(&metrics))),
        metrics,
        history,
        repository,
        budget: MemoryBudget::new(config.max_inflight_bytes.max(2 * config.max_request_bytes)),
        access,
        shutting_down: Arc::default(),
        settings: Arc::new(HttpSettings {
            limits: RequestLimits {
                max_tensor_elements: config.max_tensor_elements,
                max_decoded_bytes: config.max_request_bytes,
            },
            max_request_bytes: config.max_request_bytes,
            model_control_explicit: config.model_control == ModelControl::Explicit,
            label_control: config.model_control != ModelControl::None,
            strict_readiness: config.strict_readiness,
            static_dir: config.static_dir.clone(),
        }),
    };
    Ok(Started {
        state,
        tls,
        background: watchers,
        loaded,
    })
}

/// Runs `job` on the blocking pool every `interval` (the first at once), one run at a time,
/// until the task is dropped: the watchers of files that are reread when they change.
pub(crate) async fn every<T: Send + Sync + 'static>(
    interval: Duration,
    target: Arc<T>,
    job: fn(&T),
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let target = Arc::clone(&target);
        let _ = tokio::task::spawn_blocking(move || job(&target)).await;
    }
}

/// The version a folder of a model names, as the repository reads it: a positive number
/// (`"02"` is version 2; `"0"` is none).
pub(crate) fn version_number(folder: &str) -> Option<u64> {
    folder.parse::<u64>().ok().filter(|&v| v > 0)
}

/// A file's modification time and length, `None` when it cannot be read.
pub(crate) fn file_stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// How often the API key file, the JWKS file and the TLS files are checked for changes.
const KEY_FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How often every monitored version's drift is scored, so that alerts reach the log without
/// anyone asking for a report.
const DRIFT_CHECK_EVERY: u32 = 5;

/// Every [`dashboard::history::SAMPLE_EVERY`], reads the traffic counters for the dashboard,
/// and every [`DRIFT_CHECK_EVERY`] readings scores every monitored version's drift (each
/// report logs the columns that crossed their alert threshold); until the task is aborted.
async fn watch(repository: Arc<Repository>, history: Arc<dashboard::history::History>) {
    let mut ticks = tokio::time::interval(dashboard::history::SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u32.. {
        ticks.tick().await;
        let repository = Arc::clone(&repository);
        let history = Arc::clone(&history);
        let _ = tokio::task::spawn_blocking(move || {
            history.sample(&repository);
            if tick % DRIFT_CHECK_EVERY == 0 {
                for version in repository.ready_versions() {
                    if let Some(monitor) = &version.monitor {
                        monitor.report();
                    }
                }
            }
        })
        .await;
    }
}

/// Brings a remote repository's local copy in line before the start-up load. While that
/// fails and the cache holds no model, tries again every second (readiness stays 503 until
/// then); with models cached, logs the failure and lets the cache serve. Nothing for a local
/// repository.
async fn first_copy(repository: &Arc<Repository>) {
    loop {
        let trying = Arc::clone(repository);
        let synced =
            tokio::task::spawn_blocking(move || (trying.sync_remote(), trying.remote_copy_empty()))
                .await;
        match synced {
            Ok((Ok(()), _)) | Err(_) => return,
            Ok((Err(error), false)) => {
                tracing::error!(%error, "cannot copy the remote model repository; serving what the cache holds");
                return;
            }
            Ok((Err(error), true)) => tracing::error!(
                %error,
                "cannot copy the remote model repository and the cache holds no model: not ready; trying again"
            ),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reloads what changed in the repository every `interval`, one look at a time, until the
/// task is aborted.
async fn poll_repository(repository: Arc<Repository>, interval: std::time::Duration) {
    tracing::info!(?interval, "watching the model repository");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let repository = Arc::clone(&repository);
        let looked = tokio::task::spawn_blocking(move || repository.poll()).await;
        match looked {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot read the model repository"),
            Err(error) => tracing::error!(%error, "repository poll panicked"),
        }
    }
}
