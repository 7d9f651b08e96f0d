//! The one door through which the gateway talks HTTP to the outside world.
//!
//! The gateway never names a socket type: the harness supplies a client over
//! turmoil sockets, live mode supplies [`ReqwestClient`] over real ones. Bodies
//! are buffered whole, in both directions, because every exchange the gateway
//! makes (token requests, MCP POSTs, DELETE) ends with a finite body.

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
/// timeouts of their own: retries and timeouts are the gateway's decisions.
pub trait HttpClient: Send + Sync + 'static {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>>;
}

/// [`HttpClient`] over real sockets, for live mode. It cannot run inside
/// turmoil (reqwest dials OS sockets on the real clock).
#[derive(Clone, Debug)]
pub struct ReqwestClient {
    inner: reqwest::Client,
}

impl ReqwestClient {
    pub fn new() -> Self {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client without TLS always builds");
        ReqwestClient { inner }
    }
}

impl Default for ReqwestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient for ReqwestClient {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
                .map_err(|e| HttpError::Request(e.to_string()))?;
            let response = self.inner.execute(request).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect(without_url(&e))
                } else {
                    HttpError::Io(without_url(&e))
                }
            })?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError::Io(without_url(&e)))?;
            builder
                .body(body.to_vec())
                .map_err(|e| HttpError::Io(e.to_string()))
        })
    }
}

/// reqwest's messages carry the URL, which may hold credentials in its query;
/// keep only the kind of failure.
fn without_url(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut source = error.source();
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| "request failed".to_string())
}
