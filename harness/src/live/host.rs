//! A host of a live run: a thread of its own with a tokio runtime, serving
//! on one loopback port, that can be crashed and bounced as turmoil crashes
//! and bounces a simulated host.
//!
//! `crash` drops the host's runtime, and with it its listener, every open
//! connection and every task it spawned; `bounce` does that and then runs
//! the host's life again on the same port. What must survive a restart (a
//! fake's state, the store's rows) lives outside the life, as in the
//! simulation.
//!
//! Invariants: a host binds 127.0.0.1 only; `start` returns once the host
//! listens (or says why it cannot); nothing here waits without a bound: a
//! host whose thread does not end within [`STOP_TIMEOUT`] of being told to
//! stop (a life that never yields to its runtime) is abandoned, its thread
//! left to run until the process ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

/// How long a host may take to listen after it is started.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a host's thread may take to end once it is told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which gateway a connection to a fake came from: the relays write each
/// connection they open, the fakes read it to record who asked, as the
/// simulated network tells them.
///
/// A connection is known by both its ends (the relay's local address and
/// the fake's): the kernel gives one local port to two live connections to
/// different addresses, so a local address alone could name the wrong
/// connection (a gateway's long-lived connection to a fake and one of the
/// operator's to a gateway, say), and its removal unname the other.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerBook(Arc<Mutex<BTreeMap<(SocketAddr, SocketAddr), String>>>);

impl PeerBook {
    /// Names the connection from `from` to `to`.
    pub fn insert(&self, from: SocketAddr, to: SocketAddr, name: &str) {
        self.lock().insert((from, to), name.to_string());
    }

    pub fn remove(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().remove(&(from, to));
    }

    /// The name behind the connection from `from` to `to`, or the address
    /// it came from.
    pub fn name_of(&self, from: SocketAddr, to: SocketAddr) -> String {
        self.lock()
            .get(&(from, to))
            .cloned()
            .unwrap_or_else(|| from.to_string())
    }

    /// How many open connections are in the book.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(SocketAddr, SocketAddr), String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One life of a host: given its listener, runs until the host stops. It
/// is called on the host's own thread, so the future need not be `Send`.
pub(crate) type Life =
    Arc<dyn Fn(tokio::net::TcpListener) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

/// A restartable host on a loopback port.
pub(crate) struct HostThread {
    name: String,
    address: SocketAddr,
    life: Life,
    running: Option<Running>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Binds a loopback port that a previous life of the host may have used a
/// moment ago (its closed connections linger in TIME_WAIT).
pub(crate) fn bind_again(address: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

impl HostThread {
    /// Starts a host on `port` of 127.0.0.1 (0: any free port).
    pub fn start(name: &str, port: u16, life: Life) -> io::Result<HostThread> {
        let mut host = HostThread {
            name: name.to_string(),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            life,
            running: None,
        };
        host.run()?;
        Ok(host)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn run(&mut self) -> io::Result<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel::<io::Result<SocketAddr>>();
        let (life, address) = (self.life.clone(), self.address);
        let thread = std::thread::Builder::new()
            .name(format!("live-{}", self.name))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let listener = match bind_again(address) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = bound_tx.send(listener.local_addr());
                    tokio::select! {
                        biased;
                        _ = stopped => {}
                        _ = life(listener) => {}
                    }
                });
                // Dropping the LocalSet and the runtime drops every task of
                // this life, and every socket those tasks held.
                drop(local);
                drop(runtime);
            })?;
        match bound_rx.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Ok(bound)) => {
                self.address = bound;
                self.running = Some(Running { stop, thread });
                Ok(())
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "host {} did not listen within {LISTEN_TIMEOUT:?}",
                    self.name
                ),
            )),
        }
    }

    /// Stops the host: its listener, connections and tasks go. A thread
    /// stuck inside one poll never sees the stop: after [`STOP_TIMEOUT`] it
    /// is abandoned rather than waited for.
    pub fn crash(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let asked = std::time::Instant::now();
            while !running.thread.is_finished() && asked.elapsed() < STOP_TIMEOUT {
                std::thread::sleep(Duration::from_millis(5));
            }
            if running.thread.is_finished() {
                let _ = running.thread.join();
            }
        }
    }

    /// Restarts the host on the same port with a fresh life.
    pub fn bounce(&mut self) -> io::Result<()> {
        self.crash();
        self.run()
    }
}

impl Drop for HostThread {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Serves `router` over HTTP/1 on `listener`, telling each request which
/// host sent it (from the relays' book), until the host stops. Each
/// connection runs on its own task of the host's `LocalSet`.
pub(crate) async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    peers: PeerBook,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(to) = stream.local_addr() else {
            continue;
        };
        let (router, peers) = (router.clone(), peers.clone());
        // Looked up per request: a relay writes its connection into the
        // book before it forwards the first byte, not before we accept.
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            let peer = mcpsim_fakes::Peer(peers.name_of(from, to));
            request.extensions_mut().insert(peer);
            router.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel gives one local port to two live connections to different
    /// addresses: each keeps its own name, and the end of one leaves the
    /// other's.
    #[test]
    fn connections_sharing_a_local_port_are_told_apart_by_their_far_end() {
        let address = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let peers = PeerBook::default();
        let (shared, docs, gateway) = (address(40_000), address(4101), address(4200));
        peers.insert(shared, docs, "gateway");
        peers.insert(shared, gateway, "operator");
        assert_eq!(peers.name_of(shared, docs), "gateway");
        assert_eq!(peers.name_of(shared, gateway), "operator");
        peers.remove(shared, gateway);
        assert_eq!(peers.name_of(shared, docs), "gateway");
        assert_eq!(peers.name_of(shared, gateway), "127.0.0.1:40000");
        assert_eq!(peers.len(), 1);
    }
}
