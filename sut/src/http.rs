//! The one door through which a system under test talks HTTP to the world.
//!
//! A gateway never names a socket type: inside the simulation the harness
//! supplies a client over turmoil sockets, on real sockets a gateway may use
//! any client (the reference ships one over reqwest). Bodies are buffered
//! whole, in both directions, for every exchange that ends with a finite
//! body (token requests, MCP POSTs, DELETE). A response that stays open (an
//! MCP server's GET stream) is read in chunks through
//! [`HttpClient::stream`], whose default buffers it whole, so a client that
//! never streams stays correct for everything else.

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

/// The body of a streamed response, read chunk by chunk as it arrives.
pub trait BodyChunks: Send {
    /// The next chunk; `None` once the body ended normally. Dropping the
    /// reader closes the response.
    fn next_chunk(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, HttpError>>>;
}

/// A response whose head has arrived and whose body is read as it comes.
pub struct Streamed {
    pub head: http::response::Parts,
    pub body: Box<dyn BodyChunks>,
}

/// A body already read whole, handed out as one chunk.
struct Whole(Option<Vec<u8>>);

impl BodyChunks for Whole {
    fn next_chunk(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, HttpError>>> {
        let chunk = self.0.take().filter(|c| !c.is_empty()).map(Ok);
        Box::pin(async move { chunk })
    }
}

/// Sends one HTTP request and returns the whole response.
///
/// Implementations must not retry, must not follow redirects and must not add
/// timeouts of their own: retries and timeouts are the caller's decisions.
pub trait HttpClient: Send + Sync + 'static {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>>;

    /// Sends one request and returns as soon as the response head arrives,
    /// with its body to read as it comes. The default sends the request
    /// with [`HttpClient::send`] and hands the whole body out as one chunk:
    /// right for every finite body, and a client that never streams just
    /// never returns for a body that stays open.
    fn stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Streamed, HttpError>> {
        Box::pin(async move {
            let (head, body) = self.send(request).await?.into_parts();
            Ok(Streamed {
                head,
                body: Box::new(Whole(Some(body))),
            })
        })
    }
}

impl<T: HttpClient + ?Sized> HttpClient for std::sync::Arc<T> {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        (**self).send(request)
    }

    fn stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Streamed, HttpError>> {
        (**self).stream(request)
    }
}
