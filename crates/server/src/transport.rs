//! Connections of the HTTP listener: accepting them within a cap, the timeouts that close a
//! connection that stalls, HTTP/2's stream limit and keep-alive pings, and a graceful shutdown
//! with a deadline. Written on hyper-util's connection builder rather than `axum::serve`,
//! which sets none of these (a client sending its headers a byte a minute held a connection
//! forever). The defaults follow nginx's where nginx has one.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits on the connections of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; past it the listener stops accepting until one closes.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and that an idle keep-alive HTTP/1
    /// connection is kept waiting for the next request.
    pub header_read_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 4_096,
            header_read_timeout: Duration::from_secs(30),
            // nginx's http2_max_concurrent_streams.
            http2_max_streams: 128,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops
/// accepting, lets the requests in flight finish for at most `drain`, and returns (dropping
/// the connections still open).
pub(crate) async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    // Tells connections still waiting for their first bytes that the server is stopping (they
    // are not watched for the graceful shutdown until those bytes come).
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut at_cap_logged = false;
    tokio::pin!(shutdown);
    loop {
        if permits.available_permits() == 0 && !at_cap_logged {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until one closes (--max-connections)"
            );
            at_cap_logged = true;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: say so, and give closing
                    // connections a moment rather than spinning.
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if permits.available_permits() > 0 {
            at_cap_logged = false;
        }
        // Reap the connections that ended.
        while connections.try_join_next().is_some() {}
        // Small responses must not wait on Nagle's algorithm behind the client's delayed ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request = request.map(axum::body::Body::new);
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let first_bytes = limits.header_read_timeout;
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            // A client that connects and sends nothing holds a connection too: the first
            // bytes (which tell HTTP/1 from HTTP/2) get the header timeout.
            let mut first = [0u8; 1];
            let arrived = tokio::select! {
                arrived = tokio::time::timeout(first_bytes, stream.peek(&mut first)) => arrived,
                _ = stopped.wait_for(|&s| s) => return,
            };
            if !matches!(arrived, Ok(Ok(n)) if n > 0) {
                drop(permit);
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = watcher.watch(connection);
            // A client that goes away mid-request is no error of the server's.
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "requests still in flight at the shutdown deadline were cut off"
        );
    }
    // Whatever is still open is cut off here (dropping a JoinSet would do it too).
    connections.shutdown().await;
    Ok(())
}
