//! `ferroserve health`: asks a running server whether it is ready (or live), for container
//! health checks in an image that has no shell and no curl (Docker's `HEALTHCHECK`, a
//! Kubernetes `exec` probe). Exit status 0 when the server answers 200, 1 otherwise.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// Flags of `ferroserve health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The server's HTTP port; the one `serve` reads from the same variable by default.
    #[arg(long, env = "FERROSERVE_HTTP_PORT", default_value_t = 8000)]
    http_port: u16,

    /// Check liveness (`/v2/health/live`) instead of readiness (`/v2/health/ready`).
    #[arg(long)]
    live: bool,

    /// Speak HTTPS (the server runs with `--tls-cert`; on by itself when `FERROSERVE_TLS_CERT`
    /// is set). The server's certificate is not checked: the question is whether this process
    /// answers, on this machine.
    #[arg(long)]
    tls: bool,

    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 2.0)]
    timeout_secs: f64,
}

/// Whether the server on this machine answers its health endpoint with 200.
pub(crate) fn run(args: &HealthArgs) -> anyhow::Result<bool> {
    let tls = args.tls || std::env::var_os("FERROSERVE_TLS_CERT").is_some_and(|v| !v.is_empty());
    let scheme = if tls { "https" } else { "http" };
    let path = if args.live {
        "/v2/health/live"
    } else {
        "/v2/health/ready"
    };
    let url = format!("{scheme}://127.0.0.1:{}{path}", args.http_port);
    let timeout = Duration::try_from_secs_f64(args.timeout_secs)
        .context("--timeout-secs: expected a positive number of seconds")?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(true)
        .build()
        .context("building the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let status = runtime.block_on(async { client.get(&url).send().await.map(|r| r.status()) });
    match status {
        Ok(status) if status.is_success() => Ok(true),
        Ok(status) => {
            eprintln!("{url}: {status}");
            Ok(false)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(false)
        }
    }
}
