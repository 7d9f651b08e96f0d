//! A loopback TCP relay between one gateway and one fake, through which a
//! live run applies the network faults that turmoil applies in the
//! simulation.
//!
//! Each (gateway, fake) pair gets a relay of its own, and the gateway is
//! told the relay's address instead of the fake's. The relay forwards
//! bytes both ways, and follows the link's state:
//!
//! - `partition`: new connections are refused (the relay stops listening);
//!   open ones stall for good, as an established connection across a
//!   turmoil partition hangs (turmoil has no retransmit);
//! - `hold`: nothing is forwarded, on open or new connections, until
//!   `release`, when everything held goes through;
//! - the fake behind it `down` (crashed): refused like the fake, and open
//!   connections reset, as a real process's end resets them;
//! - a new `generation` (the fake bounced): open connections are reset.
//!
//! Every connection the relay opens to the fake is written in the
//! [`PeerBook`] under the gateway's name, by both its ends, so that the
//! fake records who asked. Invariants: it listens on 127.0.0.1 only and dials only the
//! loopback address it was given; a stalled connection holds no buffer
//! beyond one read; nothing waits without the link's state or a peer able
//! to end it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::host::{bind_again, PeerBook};

/// The state of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkState {
    pub partitioned: bool,
    pub held: bool,
    pub down: bool,
    pub generation: u64,
}

impl LinkState {
    fn listening(&self) -> bool {
        !self.partitioned && !self.down
    }
}

/// One relay: where it listens, and its link's state.
pub(crate) struct Relay {
    address: SocketAddr,
    state: watch::Sender<LinkState>,
    task: tokio::task::JoinHandle<()>,
}

/// What a connection does next with the bytes it read.
enum Next {
    Forward,
    Stall,
    Reset,
}

impl Relay {
    /// Starts a relay for `gateway` in front of the fake at `target`, on
    /// the current runtime.
    pub async fn start(gateway: &str, target: SocketAddr, peers: PeerBook) -> io::Result<Relay> {
        let listener = bind_again(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let address = listener.local_addr()?;
        let (state, watcher) = watch::channel(LinkState::default());
        let gateway = gateway.to_string();
        let task = tokio::spawn(accept_loop(
            listener, address, target, watcher, gateway, peers,
        ));
        Ok(Relay {
            address,
            state,
            task,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Changes the link's state; open connections follow at once.
    pub fn update(&self, change: impl FnOnce(&mut LinkState)) {
        self.state.send_modify(change);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    target: SocketAddr,
    mut state: watch::Receiver<LinkState>,
    gateway: String,
    peers: PeerBook,
) {
    let mut listener = Some(listener);
    loop {
        let now = *state.borrow_and_update();
        if !now.listening() {
            // Refuse, as a partitioned or crashed peer does.
            listener = None;
            if state.changed().await.is_err() {
                return;
            }
            continue;
        }
        if listener.is_none() {
            match bind_again(address) {
                Ok(bound) => listener = Some(bound),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            }
        }
        let Some(open) = &listener else { continue };
        tokio::select! {
            biased;
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = open.accept() => {
                if let Ok((inbound, _)) = accepted {
                    let _ = inbound.set_nodelay(true);
                    tokio::spawn(connection(
                        inbound,
                        target,
                        state.clone(),
                        gateway.clone(),
                        peers.clone(),
                    ));
                }
            }
        }
    }
}

/// Waits until the link lets bytes through, and says what to do.
async fn wait_for_link(state: &mut watch::Receiver<LinkState>, generation: u64) -> Next {
    loop {
        let now = *state.borrow_and_update();
        if now.down || now.generation != generation {
            return Next::Reset;
        }
        if now.partitioned {
            return Next::Stall;
        }
        if !now.held {
            return Next::Forward;
        }
        if state.changed().await.is_err() {
            return Next::Reset;
        }
    }
}

/// Closes a connection with a reset, as a process that went away does.
// tokio deprecates `set_linger` because a non-zero linger blocks the thread
// on drop; a zero linger never blocks, it only makes the close a reset.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn connection(
    mut inbound: TcpStream,
    target: SocketAddr,
    mut state: watch::Receiver<LinkState>,
    gateway: String,
    peers: PeerBook,
) {
    let generation = state.borrow().generation;
    match wait_for_link(&mut state, generation).await {
        Next::Forward => {}
        Next::Stall => return stall(&mut inbound, None).await,
        Next::Reset => return reset(inbound),
    }
    let mut outbound = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(_) => return reset(inbound),
    };
    let _ = outbound.set_nodelay(true);
    let ends = outbound.local_addr().ok().zip(outbound.peer_addr().ok());
    if let Some((local, remote)) = ends {
        peers.insert(local, remote, &gateway);
    }
    let next = pump(&mut inbound, &mut outbound, &mut state, generation).await;
    if let Next::Stall = next {
        stall(&mut inbound, Some(&mut outbound)).await;
    }
    // Out of the book while the socket still holds its port: a connection
    // that gets the port next is written in afresh, not unwritten by this
    // one.
    if let Some((local, remote)) = ends {
        peers.remove(local, remote);
    }
    if let Next::Reset = next {
        reset(inbound);
        reset(outbound);
    }
}

/// Forwards both ways until both sides have closed (`Forward`), or the
/// link says to stall or reset.
async fn pump(
    inbound: &mut TcpStream,
    outbound: &mut TcpStream,
    state: &mut watch::Receiver<LinkState>,
    generation: u64,
) -> Next {
    let (mut in_read, mut in_write) = inbound.split();
    let (mut out_read, mut out_write) = outbound.split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    let (mut up_open, mut down_open) = (true, true);
    while up_open || down_open {
        tokio::select! {
            biased;
            changed = state.changed(), if !state.borrow().held => {
                // A partition or a restart reaches idle connections too.
                if changed.is_err() {
                    return Next::Reset;
                }
                match wait_for_link(state, generation).await {
                    Next::Forward => {}
                    other => return other,
                }
            }
            read = in_read.read(&mut up), if up_open => match read {
                Ok(0) => {
                    up_open = false;
                    let _ = out_write.shutdown().await;
                }
                Ok(n) => match wait_for_link(state, generation).await {
                    Next::Forward => {
                        if out_write.write_all(&up[..n]).await.is_err() {
                            return Next::Reset;
                        }
                    }
                    other => return other,
                },
                Err(_) => return Next::Reset,
            },
            read = out_read.read(&mut down), if down_open => match read {
                Ok(0) => {
                    down_open = false;
                    let _ = in_write.shutdown().await;
                }
                Ok(n) => match wait_for_link(state, generation).await {
                    Next::Forward => {
                        if in_write.write_all(&down[..n]).await.is_err() {
                            return Next::Reset;
                        }
                    }
                    other => return other,
                },
                Err(_) => return Next::Reset,
            },
        }
    }
    Next::Forward
}

/// A connection across a partition: nothing goes through any more, in
/// either direction, until the gateway gives up on it; then the fake's side
/// is closed too.
async fn stall(inbound: &mut TcpStream, outbound: Option<&mut TcpStream>) {
    let mut sink = vec![0u8; 16 * 1024];
    let mut other = vec![0u8; 16 * 1024];
    match outbound {
        Some(outbound) => loop {
            tokio::select! {
                read = inbound.read(&mut sink) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                }
                read = outbound.read(&mut other) => {
                    // The fake's side may close; the gateway's side still
                    // hangs, as across a partition.
                    if matches!(read, Ok(0) | Err(_)) {
                        while matches!(inbound.read(&mut sink).await, Ok(n) if n > 0) {}
                        return;
                    }
                }
            }
        },
        None => while matches!(inbound.read(&mut sink).await, Ok(n) if n > 0) {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> Option<Vec<u8>> {
        stream.write_all(text).await.ok()?;
        let mut buf = vec![0u8; text.len()];
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    }

    #[tokio::test]
    async fn forwards_holds_releases_partitions_and_resets() {
        let target = echo_server().await;
        let peers = PeerBook::default();
        let relay = Relay::start("gateway", target, peers.clone())
            .await
            .unwrap();

        let mut open = TcpStream::connect(relay.address()).await.unwrap();
        assert_eq!(round_trip(&mut open, b"one").await.unwrap(), b"one");
        assert_eq!(peers.len(), 1, "the fake's side is in the book");

        // Held: nothing comes back until release, then it does.
        relay.update(|s| s.held = true);
        open.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 3];
        assert!(
            tokio::time::timeout(Duration::from_millis(200), open.read_exact(&mut buf))
                .await
                .is_err()
        );
        relay.update(|s| s.held = false);
        tokio::time::timeout(Duration::from_secs(2), open.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"two");

        // Partitioned: new connections are refused, open ones hang.
        relay.update(|s| s.partitioned = true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(relay.address()).await.is_err());
        assert!(round_trip(&mut open, b"three").await.is_none());

        // Repaired: new connections work again; the stalled one stays so.
        relay.update(|s| s.partitioned = false);
        let mut again = None;
        for _ in 0..50 {
            if let Ok(stream) = TcpStream::connect(relay.address()).await {
                again = Some(stream);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut again = again.expect("the relay listens again after repair");
        assert_eq!(round_trip(&mut again, b"four").await.unwrap(), b"four");

        // The fake restarts: open connections are reset.
        relay.update(|s| s.generation += 1);
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), again.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)));
    }
}
