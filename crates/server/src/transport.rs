//! Connections of the HTTP listener: accepting them within a cap, the timeouts that close a
//! connection that stalls, HTTP/2's stream limit and keep-alive pings, and a graceful shutdown
//! with a deadline. Written on hyper-util's connection builder rather than `axum::serve`,
//! which sets none of these (a client sending its headers a byte a minute held a connection
//! forever). The defaults follow nginx's where nginx has one.
//!
//! With TLS, the handshake runs on the connection's task under the header timeout, and a
//! verified client certificate is put in each request's extensions as a
//! [`ClientCertificate`]. For gRPC (served by tonic), [`grpc_incoming`] makes the stream of
//! connections tonic accepts, within the same cap and timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::tls::{ClientCertificate, Listener, Tls};

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

/// Serves `app` on `listener` within `limits` (over TLS when `tls` is set) until `shutdown`
/// completes; then stops accepting, lets the requests in flight finish for at most `drain`,
/// and returns (dropping the connections still open).
pub(crate) async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
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
    let mut acceptor = Acceptor::new(listener, limits.max_connections);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    // Tells connections still waiting for their first bytes that the server is stopping (they
    // are not watched for the graceful shutdown until those bytes come).
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let Some((permit, stream, peer)) = acceptor.next(&mut shutdown).await else {
            break;
        };
        // Reap the connections that ended.
        while connections.try_join_next().is_some() {}
        // Small responses must not wait on Nagle's algorithm behind the client's delayed ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let first_bytes = limits.header_read_timeout;
        let mut stopped = stopped.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            // A client that connects and sends nothing holds a connection too: the first
            // bytes (which tell HTTP/1 from HTTP/2, or start the TLS handshake) get the
            // header timeout.
            let mut first = [0u8; 1];
            let arrived = tokio::select! {
                arrived = tokio::time::timeout(first_bytes, stream.peek(&mut first)) => arrived,
                _ = stopped.wait_for(|&s| s) => return,
            };
            if !matches!(arrived, Ok(Ok(n)) if n > 0) {
                drop(permit);
                return;
            }
            match tls {
                None => {
                    let service = request_service(app, peer, None);
                    drive(&builder, TokioIo::new(stream), service, watcher, peer).await;
                }
                Some(tls) => {
                    let handshake = handshake(&tls, Listener::Http, stream, first_bytes, peer);
                    let Some((stream, certificate)) = handshake.await else {
                        return;
                    };
                    let service = request_service(app, peer, certificate);
                    drive(&builder, TokioIo::new(stream), service, watcher, peer).await;
                }
            }
            drop(permit);
        });
    }
    drop(acceptor);
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

/// Accepts a listener's connections within a cap: each comes with a permit that it holds until
/// it closes; past `max_connections` accepting waits (logged once each time the cap is hit).
struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    max_connections: usize,
    at_cap_logged: bool,
}

impl Acceptor {
    fn new(listener: TcpListener, max_connections: usize) -> Acceptor {
        Acceptor {
            listener,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            max_connections,
            at_cap_logged: false,
        }
    }

    /// The next connection, with its permit and the client's address; `None` once `stop`
    /// completes.
    async fn next(
        &mut self,
        mut stop: impl Future<Output = ()> + Unpin,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, TcpStream, SocketAddr)> {
        loop {
            if self.permits.available_permits() == 0 && !self.at_cap_logged {
                tracing::warn!(
                    max_connections = self.max_connections,
                    "connection limit reached: new connections wait until one closes (--max-connections)"
                );
                self.at_cap_logged = true;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => permit.expect("never closed"),
                () = &mut stop => return None,
            };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut stop => return None,
            };
            if self.permits.available_permits() > 0 {
                self.at_cap_logged = false;
            }
            match accepted {
                Ok((stream, peer)) => return Some((permit, stream, peer)),
                Err(error) => {
                    // Out of file descriptors, most likely: say so, and give closing
                    // connections a moment rather than spinning.
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A connection after its TLS handshake, buffered: HTTP/2 writes a response as several frames
/// (headers, data, trailers) before it flushes, and each write straight into rustls would be a
/// TLS record and a syscall of its own.
type TlsConnection = tokio::io::BufWriter<tokio_rustls::server::TlsStream<TcpStream>>;

/// The TLS handshake of `stream` for `listener`, within `within`: the connection and the client
/// certificate it verified; `None` when the handshake fails (logged at debug: the client's
/// doing) or times out.
async fn handshake(
    tls: &Tls,
    listener: Listener,
    stream: TcpStream,
    within: Duration,
    peer: SocketAddr,
) -> Option<(TlsConnection, Option<ClientCertificate>)> {
    let accepting = tls.acceptor(listener).accept(stream);
    match tokio::time::timeout(within, accepting).await {
        Ok(Ok(stream)) => {
            let certificate = ClientCertificate::from_chain(stream.get_ref().1.peer_certificates());
            Some((tokio::io::BufWriter::new(stream), certificate))
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// The per-connection service: `app`, with the client's address (and certificate) in each
/// request's extensions.
fn request_service(
    app: axum::Router,
    peer: SocketAddr,
    certificate: Option<ClientCertificate>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |request: hyper::Request<_>| {
        let mut request = request.map(axum::body::Body::new);
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo::<SocketAddr>(peer));
        if let Some(certificate) = &certificate {
            extensions.insert(certificate.clone());
        }
        app.clone().oneshot(request)
    })
}

/// Serves one connection until it closes, watched by the graceful shutdown.
async fn drive<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: S,
    watcher: Watcher,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    // A client that goes away mid-request is no error of the server's.
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// A gRPC connection tonic serves: accepted within the cap (its permit held until it
/// closes), its first bytes (and TLS handshake) in within the header timeout, with what tonic
/// puts in each request's extensions about its client ([`GrpcPeer`]).
pub(crate) struct GrpcConnection {
    stream: GrpcStream,
    peer: GrpcPeer,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

enum GrpcStream {
    Plain(TcpStream),
    Tls(Box<TlsConnection>),
}

/// The client of a gRPC connection: its address and verified certificate.
#[derive(Clone, Debug)]
pub(crate) struct GrpcPeer {
    /// The client's address.
    pub(crate) address: SocketAddr,
    /// The certificate it presented (mutual TLS).
    pub(crate) certificate: Option<ClientCertificate>,
}

impl tonic::transport::server::Connected for GrpcConnection {
    type ConnectInfo = GrpcPeer;

    fn connect_info(&self) -> GrpcPeer {
        self.peer.clone()
    }
}

/// Calls `$method` on whichever stream a [`GrpcConnection`] has.
macro_rules! on_stream {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match &mut $self.get_mut().stream {
            GrpcStream::Plain(s) => Pin::new(s).$method($($arg),*),
            GrpcStream::Tls(s) => Pin::new(s.as_mut()).$method($($arg),*),
        }
    };
}

impl AsyncRead for GrpcConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        on_stream!(self, poll_read(cx, buf))
    }
}

impl AsyncWrite for GrpcConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        on_stream!(self, poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_stream!(self, poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_stream!(self, poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        on_stream!(self, poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            GrpcStream::Plain(s) => s.is_write_vectored(),
            GrpcStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connections of `listener` for tonic, within `limits`: at most `max_connections` open
/// (past it accepting waits for one to close, with one warning), each closed unless its first
/// bytes, and its TLS handshake when `tls` is set, come within the header timeout. That
/// waiting runs on a task per connection; one that fails is logged at debug and dropped.
/// Accepting stops when the stream is dropped. (tonic's own incoming has neither a cap nor a
/// timeout; its graceful shutdown stays in charge of the connections handed over.)
pub(crate) fn grpc_incoming(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    limits: ConnectionLimits,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<GrpcConnection>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let mut acceptor = Acceptor::new(listener, limits.max_connections);
    tokio::spawn(async move {
        loop {
            let closed = sender.closed();
            tokio::pin!(closed);
            let Some((permit, stream, address)) = acceptor.next(&mut closed).await else {
                return;
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
            let (tls, sender) = (tls.clone(), sender.clone());
            tokio::spawn(async move {
                let within = limits.header_read_timeout;
                let mut first = [0u8; 1];
                let arrived = tokio::time::timeout(within, stream.peek(&mut first)).await;
                if !matches!(arrived, Ok(Ok(n)) if n > 0) {
                    return;
                }
                let (stream, certificate) = match tls {
                    None => (GrpcStream::Plain(stream), None),
                    Some(tls) => {
                        let handshake = handshake(&tls, Listener::Grpc, stream, within, address);
                        let Some((stream, certificate)) = handshake.await else {
                            return;
                        };
                        (GrpcStream::Tls(Box::new(stream)), certificate)
                    }
                };
                let peer = GrpcPeer {
                    address,
                    certificate,
                };
                let connection = GrpcConnection {
                    stream,
                    peer,
                    _permit: permit,
                };
                let _ = sender.send(Ok(connection)).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
