//! HTTP over turmoil's simulated network, in both directions.
//!
//! [`SimHttpClient`] is the gateway's [`HttpClient`] inside the simulation:
//! hyper-util's legacy client dialing `turmoil::net::TcpStream`. [`serve`]
//! runs an axum router on a `turmoil::net::TcpListener` with hyper's HTTP/1
//! server. Invariants: nothing here reads the wall clock (hyper's `date:`
//! header is off, every hyper timer is tokio's paused clock), nothing draws
//! randomness or iterates a hash map, and no error message carries a URL,
//! because a URL's query may hold a secret.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mcpsim_sut::http::{BodyChunks, BoxFuture, HttpClient, HttpError, Streamed};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Duration;
use tower::ServiceExt;

/// [`HttpClient`] over turmoil sockets.
///
/// Build it inside the host that uses it (in the host's setup closure), so
/// that its pooled connections and background tasks live on that host's
/// runtime and die with it on `crash`.
///
/// Plain `http://` only: the simulated network has no TLS. Like every
/// [`HttpClient`], it neither follows redirects nor adds timeouts. hyper-util
/// does resend a request whose pooled connection turned out closed before the
/// request was written; that request never reached a server, so no server can
/// observe the difference.
#[derive(Clone, Debug)]
pub struct SimHttpClient {
    inner: Client<SimConnector, Full<Bytes>>,
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where hyper-util's connection tasks run. A bounce drops a host's tokio
/// runtime, and the runtime drops its tasks in an order set by tokio's
/// process-wide task ids; a dropped socket sends a FIN that draws a latency
/// from the world's RNG, so that order would leak into the run whenever two
/// worlds share a process. A host's `LocalSet` drops its tasks in the order
/// they were spawned, so connection tasks are handed to a driver there.
#[derive(Clone)]
enum SimExecutor {
    Tokio(TokioExecutor),
    Local(tokio::sync::mpsc::UnboundedSender<Task>),
}

impl std::fmt::Debug for SimExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SimExecutor::Tokio(_) => "Tokio",
            SimExecutor::Local(_) => "Local",
        })
    }
}

impl<F> hyper::rt::Executor<F> for SimExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        match self {
            SimExecutor::Tokio(executor) => executor.execute(future),
            SimExecutor::Local(tasks) => {
                // Without its driver (the host went away) nothing runs.
                let _ = tasks.send(Box::pin(future));
            }
        }
    }
}

/// Runs a [`SimHttpClient::local`] client's connection tasks on the host's
/// `LocalSet`: spawn it with `tokio::task::spawn_local` in the host.
pub struct LocalDriver(tokio::sync::mpsc::UnboundedReceiver<Task>);

impl LocalDriver {
    pub async fn run(mut self) {
        while let Some(task) = self.0.recv().await {
            tokio::task::spawn_local(task);
        }
    }
}

impl SimHttpClient {
    /// A client that keeps idle connections pooled per host, as hyper-util
    /// does by default. Pool expiry runs on tokio's (simulated) clock.
    pub fn new() -> Self {
        Self::with_max_idle_per_host(usize::MAX)
    }

    /// A client that opens a fresh connection for every request and closes
    /// it afterwards.
    pub fn without_pool() -> Self {
        Self::with_max_idle_per_host(0)
    }

    /// A client without a pool whose connection tasks run on the host's
    /// `LocalSet` through the returned driver, so that a host restart drops
    /// them in a deterministic order.
    pub fn local() -> (Self, LocalDriver) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Client::builder(SimExecutor::Local(tx))
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(0)
            .build(SimConnector);
        (SimHttpClient { inner }, LocalDriver(rx))
    }

    fn with_max_idle_per_host(max_idle: usize) -> Self {
        // Without `pool_timer` the pool measures idle time with
        // `std::time::Instant`, the real clock. The client builder's `timer`
        // only drives HTTP/2, which this client never speaks.
        let inner = Client::builder(SimExecutor::Tokio(TokioExecutor::new()))
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(max_idle)
            .build(SimConnector);
        SimHttpClient { inner }
    }
}

impl Default for SimHttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient for SimHttpClient {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        Box::pin(exchange(&self.inner, request))
    }

    fn stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Streamed, HttpError>> {
        Box::pin(stream_exchange(&self.inner, request))
    }
}

/// One exchange through a hyper-util client that returns at the response
/// head, its body read frame by frame as it arrives (an MCP GET stream).
/// The simulation's client and the live one share it.
pub(crate) async fn stream_exchange<C>(
    client: &Client<C, Full<Bytes>>,
    request: http::Request<Vec<u8>>,
) -> Result<Streamed, HttpError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (head, body) = response_head(client, request).await?.into_parts();
    Ok(Streamed {
        head,
        body: Box::new(Frames(body)),
    })
}

/// A hyper body read frame by frame; trailers are skipped.
struct Frames(hyper::body::Incoming);

impl BodyChunks for Frames {
    fn next_chunk(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, HttpError>>> {
        Box::pin(async move {
            loop {
                match self.0.frame().await? {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => return Some(Ok(data.to_vec())),
                        Err(_) => continue,
                    },
                    Err(error) => return Some(Err(HttpError::Io(describe(&error)))),
                }
            }
        })
    }
}

/// One exchange through a hyper-util client: the request checked, sent,
/// and the whole response read, with errors described by kind only. The
/// simulation's client and the live one share it.
pub(crate) async fn exchange<C>(
    client: &Client<C, Full<Bytes>>,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, HttpError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (parts, body) = response_head(client, request).await?.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|error| HttpError::Io(describe(&error)))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

/// The request checked and sent, up to the response head; errors
/// described by kind only.
async fn response_head<C>(
    client: &Client<C, Full<Bytes>>,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<hyper::body::Incoming>, HttpError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    check_request(&request)?;
    let request = request.map(|body| Full::new(Bytes::from(body)));
    client.request(request).await.map_err(|error| {
        if error.is_connect() {
            HttpError::Connect(describe(&error))
        } else {
            HttpError::Io(describe(&error))
        }
    })
}

/// Rejects what hyper-util would reject with a vague error, or what would
/// dial somewhere unintended, naming the problem but never the URL.
fn check_request(request: &http::Request<Vec<u8>>) -> Result<(), HttpError> {
    let uri = request.uri();
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return Err(HttpError::Request(
            "only absolute http:// URLs can be dialed in the simulation".to_string(),
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(HttpError::Request("URL has no host".to_string()));
    }
    if request.method() == http::Method::CONNECT {
        return Err(HttpError::Request("CONNECT is not supported".to_string()));
    }
    Ok(())
}

/// Describes a client error by its kinds alone: hyper's fixed descriptions
/// and the I/O error kind, never a message that could quote the request.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut hyper_description = None;
    let mut io_kind = None;
    let mut source = Some(error);
    while let Some(current) = source {
        if let Some(hyper_error) = current.downcast_ref::<hyper::Error>() {
            // hyper's Display is a fixed description without the cause.
            hyper_description = Some(hyper_error.to_string());
        }
        if let Some(io_error) = current.downcast_ref::<io::Error>() {
            io_kind = Some(io_error.kind());
        }
        source = current.source();
    }
    let io_description = io_kind.map(|kind| match kind {
        // turmoil answers a name missing from its DNS with `NotFound`.
        io::ErrorKind::NotFound => "unknown host".to_string(),
        kind => kind.to_string(),
    });
    match (hyper_description, io_description) {
        (Some(hyper), Some(io)) => format!("{hyper}: {io}"),
        (Some(hyper), None) => hyper,
        (None, Some(io)) => io,
        // hyper-util's own Display names only its error kind.
        (None, None) => error.to_string(),
    }
}

/// Dials `host:port` over turmoil; the port defaults to 80, because turmoil
/// resolves only complete socket addresses.
#[derive(Clone, Copy, Debug)]
struct SimConnector;

impl tower::Service<http::Uri> for SimConnector {
    type Response = TokioIo<Io<turmoil::net::TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL has no host"))?;
            // `Uri::host` keeps the brackets of an IPv6 literal.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host, port)).await?;
            Ok(TokioIo::new(Io(stream)))
        })
    }
}

/// A stream that hyper-util's pool can hold (a turmoil stream in the
/// simulation, a tokio one live): the newtype exists to implement
/// [`Connection`].
pub(crate) struct Io<S>(pub S);

impl<S> Connection for Io<S> {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Io<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Io<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Serves `router` over HTTP/1 on turmoil port `port` of the current host,
/// until the host stops. Fails only if the port cannot be bound.
///
/// Each connection runs on its own task. When the peer closes a connection,
/// hyper drops the handler future that was serving it, which is how a
/// client's cancellation reaches a server in the simulation.
///
/// Unlike `axum::serve`, responses carry no `date:` header (hyper would read
/// the real clock for it) and the server never times out a connection on its
/// own: closing idle connections is left to clients, as with `axum::serve`.
pub async fn serve(port: u16, router: axum::Router) -> Result<(), Box<dyn StdError>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .auto_date_header(false)
        // hyper's default closes a connection after 30 s without a complete
        // request head, idle keep-alive connections included; that would race
        // pooled clients on simulated time, and `axum::serve` does not do it.
        .header_read_timeout(None);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // turmoil reports no fatal accept errors; wait one default
                // tick rather than spin, since a busy host stops simulated time.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let router = router.clone();
        // Each request says which host sent it, as the network knows it,
        // so that the fakes can record who asked.
        let peer = mcpsim_fakes::Peer(turmoil::reverse_lookup(peer.ip()).unwrap_or_default());
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            request.extensions_mut().insert(peer.clone());
            router.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        // On the host's LocalSet: dropped in spawn order when the host
        // restarts (see `SimExecutor`).
        tokio::task::spawn_local(async move {
            // A connection that breaks is the peer's business; the handler
            // future has been dropped by then.
            let _ = connection.await;
        });
    }
}
