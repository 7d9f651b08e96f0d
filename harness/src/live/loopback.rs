//! HTTP on real sockets, to 127.0.0.1 only, with the scenario's host names.
//!
//! [`Loopback`] is the [`HttpClient`] of a live run: the operator's, and the
//! one an in-process gateway is given for its upstreams. It dials a name of
//! the scenario (`http://ws/mcp`) at the loopback address that name has in
//! its [`Names`] book (the gateway's relay to that fake, say), so URLs,
//! traces and rows read as they do in the simulation. A name that is not in
//! the book is dialed only if it is a loopback address itself; anything
//! else is refused, so a live run never sends a byte off this machine.
//!
//! Like the simulation's client, it opens a fresh connection per request,
//! follows no redirect and adds no timeout of its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mcpsim_sut::{BoxFuture, HttpClient, HttpError, Streamed};

use crate::net::{exchange, stream_exchange, Io};

/// Host names and the loopback addresses they stand for.
#[derive(Clone, Debug, Default)]
pub struct Names(Arc<RwLock<BTreeMap<String, SocketAddr>>>);

impl Names {
    pub fn insert(&self, name: &str, address: SocketAddr) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), address);
    }

    pub fn get(&self, name: &str) -> Option<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    /// Where `host:port` of a URL goes: the book's address for a known
    /// name, the address itself for a loopback one, and nowhere otherwise.
    fn resolve(&self, host: &str, port: Option<u16>) -> io::Result<SocketAddr> {
        if let Some(address) = self.get(host) {
            return Ok(address);
        }
        let ip = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            other => other.parse::<IpAddr>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "unknown host (live runs dial loopback only)",
                )
            })?,
        };
        if !ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a loopback address (live runs dial loopback only)",
            ));
        }
        Ok(SocketAddr::new(ip, port.unwrap_or(80)))
    }
}

/// [`HttpClient`] over real loopback sockets.
#[derive(Clone, Debug)]
pub struct Loopback {
    inner: Client<LoopbackConnector, Full<Bytes>>,
}

impl Loopback {
    /// A client that dials the names in `names`. Build and use it inside a
    /// tokio runtime: its connection tasks run there.
    pub fn new(names: Names) -> Self {
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(0)
            .build(LoopbackConnector { names });
        Loopback { inner }
    }
}

impl HttpClient for Loopback {
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

#[derive(Clone, Debug)]
struct LoopbackConnector {
    names: Names,
}

impl tower::Service<http::Uri> for LoopbackConnector {
    type Response = TokioIo<Io<tokio::net::TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let names = self.names.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL has no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let address = names.resolve(host, uri.port_u16())?;
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(Io(stream)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_and_loopback_addresses_resolve() {
        let names = Names::default();
        let relay: SocketAddr = "127.0.0.1:4100".parse().unwrap();
        names.insert("ws", relay);
        assert_eq!(names.resolve("ws", None).unwrap(), relay);
        assert_eq!(
            names.resolve("127.0.0.1", Some(9)).unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(
            names.resolve("localhost", None).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert!(names.resolve("example.com", None).is_err());
        assert!(names.resolve("10.0.0.1", Some(80)).is_err());
    }
}
