//! The one door through which a system under test talks HTTP to the world.
//!
//! A gateway never names a socket type: inside the simulation the harness
//! supplies a client over turmoil sockets, on real sockets a gateway may use
//! any client (the reference ships one over reqwest). Bodies are buffered
//! whole, in both directions, because every exchange a gateway makes with
//! its upstreams (token requests, MCP POSTs, DELETE) ends with a finite body.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, so that the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an exchange produced no HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The connection could not be opened (refused, unknown host, partition).
    Connect(String),
    /// The connection broke while the request or the response was in flight.
    Io(String),
    /// The request could not be built (bad URL, bad header).
    Request(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(why) => write!(f, "connection failed: {why}"),
            HttpError::Io(why) => write!(f, "connection broke: {why}"),
            HttpError::Request(why) => write!(f, "bad request: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Sends one HTTP request and returns the whole response.
///
/// Implementations must not retry, must not follow redirects and must not add
/// timeouts of their own: retries and timeouts are the caller's decisions.
pub trait HttpClient: Send + Sync + 'static {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>>;
}

impl<T: HttpClient + ?Sized> HttpClient for std::sync::Arc<T> {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        (**self).send(request)
    }
}
