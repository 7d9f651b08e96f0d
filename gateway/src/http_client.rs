//! The gateway's HTTP client over real sockets.
//!
//! The gateway calls out only through [`HttpClient`] (from the seam,
//! `mcpsim-sut`): the harness supplies one over turmoil sockets, live mode
//! uses [`ReqwestClient`] over real ones, which streams a response that
//! stays open (an MCP GET stream) chunk by chunk.

pub use mcpsim_sut::http::{BodyChunks, BoxFuture, HttpClient, HttpError, Streamed};

/// [`HttpClient`] over real sockets, for live mode. It cannot run inside
/// turmoil (reqwest dials OS sockets on the real clock).
#[derive(Clone, Debug)]
pub struct ReqwestClient {
    inner: reqwest::Client,
}

impl ReqwestClient {
    pub fn new() -> Self {
        Self::resolving(&std::collections::BTreeMap::new())
    }

    /// A client that dials each of these host names at the address given,
    /// whatever DNS says (live runs give a gateway process the scenario's
    /// names this way, each at a loopback relay).
    pub fn resolving(names: &std::collections::BTreeMap<String, std::net::SocketAddr>) -> Self {
        // No proxy from the environment: a gateway under test talks to the
        // addresses it was given, and a live run's are on loopback.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        for (name, address) in names {
            builder = builder.resolve(name, *address);
        }
        let inner = builder
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

impl ReqwestClient {
    /// Sends a request and returns the response with a builder holding its
    /// status and headers; the body is the caller's to read.
    async fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<(reqwest::Response, http::response::Builder), HttpError> {
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
        Ok((response, builder))
    }
}

impl HttpClient for ReqwestClient {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        Box::pin(async move {
            let (response, builder) = self.execute(request).await?;
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError::Io(without_url(&e)))?;
            builder
                .body(body.to_vec())
                .map_err(|e| HttpError::Io(e.to_string()))
        })
    }

    fn stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Streamed, HttpError>> {
        Box::pin(async move {
            let (response, builder) = self.execute(request).await?;
            let (head, ()) = builder
                .body(())
                .map_err(|e| HttpError::Io(e.to_string()))?
                .into_parts();
            Ok(Streamed {
                head,
                body: Box::new(Chunks(response)),
            })
        })
    }
}

/// A reqwest response read chunk by chunk as it arrives.
struct Chunks(reqwest::Response);

impl BodyChunks for Chunks {
    fn next_chunk(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, HttpError>>> {
        Box::pin(async move {
            match self.0.chunk().await {
                Ok(chunk) => chunk.map(|c| Ok(c.to_vec())),
                Err(e) => Some(Err(HttpError::Io(without_url(&e)))),
            }
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
