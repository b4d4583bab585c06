//! [`FaultProxy`], a TCP proxy that injects the faults of a real network
//! between a service and what it depends on (Postgres, another service):
//! added latency, connections dropped with a reset, a black hole, and a
//! connection reset right after it carries a `COMMIT`, so that the
//! transaction commits and its client never hears so.
//!
//! A black hole holds the bytes it is given and sends them on when it
//! ends, as TCP's retransmissions do once a partition heals: a statement a
//! client sent into the hole, and then gave up on, still reaches the
//! server late. That is the case fencing must survive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Carries them as they come.
    None,
    /// Holds each chunk, in each direction, this long.
    Latency(Duration),
    /// Carries nothing, and holds what it is given until the fault ends;
    /// new connections are accepted and then hear nothing.
    BlackHole,
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped to reset every open connection.
    severed: watch::Sender<u64>,
    /// How many of the next `COMMIT`s get their connection reset.
    commits_to_reset: AtomicUsize,
    /// The fault that follows the last of those resets.
    after_resets: std::sync::Mutex<Fault>,
    commits_reset: AtomicUsize,
    connections: AtomicUsize,
}

/// A fault-injecting TCP proxy on loopback in front of `upstream`.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state
            .severed
            .send_modify(|generation| *generation += 1);
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and carries every connection to
    /// `upstream`, without faults until one is set.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            fault: watch::Sender::new(Fault::None),
            severed: watch::Sender::new(0),
            commits_to_reset: AtomicUsize::new(0),
            after_resets: std::sync::Mutex::new(Fault::None),
            commits_reset: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let accepting = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepting.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(carry(accepting.clone(), client));
            }
        });
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the fault for every connection, open or new.
    pub fn set(&self, fault: Fault) {
        self.state.fault.send_replace(fault);
    }

    /// Resets every open connection now (a dropped link, a restarted
    /// firewall); new ones are carried as before.
    pub fn reset_all(&self) {
        self.state
            .severed
            .send_modify(|generation| *generation += 1);
    }

    /// Resets the connection of each of the next `count` `COMMIT`s once the
    /// server has answered it: the transaction commits, its client hears a
    /// reset.
    pub fn reset_next_commits(&self, count: usize) {
        self.reset_next_commits_then(count, Fault::None);
    }

    /// Like [`reset_next_commits`](Self::reset_next_commits), and sets
    /// `then` once the last of them is cut off: a link that fails for good
    /// right after a commit.
    pub fn reset_next_commits_then(&self, count: usize, then: Fault) {
        *self
            .state
            .after_resets
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = then;
        self.state.commits_to_reset.store(count, Ordering::SeqCst);
    }

    /// How many `COMMIT`s have had their answer cut off so far.
    pub fn commits_reset(&self) -> usize {
        self.state.commits_reset.load(Ordering::SeqCst)
    }

    /// How many connections have been accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Relaxed)
    }
}

/// Carries one connection until either side closes, the proxy resets it,
/// or a cut-off `COMMIT` is answered.
async fn carry(state: Arc<State>, mut client: TcpStream) {
    let mut severed = state.severed.subscribe();
    let mut fault = state.fault.subscribe();
    let connected = tokio::select! {
        _ = severed.changed() => None,
        server = async {
            pass(&mut fault).await;
            TcpStream::connect(state.upstream).await.ok()
        } => server,
    };
    let Some(mut server) = connected else {
        let _ = client.set_zero_linger();
        return;
    };
    let commit_sent = AtomicBool::new(false);
    let cut_off = tokio::sync::Notify::new();
    let closed_by_a_peer = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::select! {
            _ = async {
                tokio::join!(
                    upstream(&state, client_read, server_write, &commit_sent),
                    downstream(&state, server_read, client_write, &commit_sent, &cut_off),
                )
            } => true,
            _ = severed.changed() => false,
            () = cut_off.notified() => false,
        }
    };
    if !closed_by_a_peer {
        // A reset, as a dropped link or a middlebox gives, not a tidy close.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Waits while the link is a black hole, then for the added latency.
async fn pass(fault: &mut watch::Receiver<Fault>) {
    loop {
        let now = *fault.borrow_and_update();
        match now {
            Fault::None => return,
            Fault::Latency(delay) => return tokio::time::sleep(delay).await,
            Fault::BlackHole => {
                if fault.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Client to server; notes a `COMMIT` whose answer is to be cut off.
async fn upstream(
    state: &State,
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    commit_sent: &AtomicBool,
) {
    let mut fault = state.fault.subscribe();
    let mut buffer = vec![0u8; 64 * 1024];
    // The end of the previous chunk, for a `COMMIT` split across two.
    let mut carry_over: Vec<u8> = Vec::new();
    while let Some(read) = next_chunk(&mut from, &mut to, &mut buffer).await {
        pass(&mut fault).await;
        carry_over.extend_from_slice(&buffer[..read]);
        let has_commit = carry_over.windows(6).any(|w| w == b"COMMIT");
        carry_over.drain(..carry_over.len().saturating_sub(5));
        if has_commit && take_one(&state.commits_to_reset) {
            commit_sent.store(true, Ordering::SeqCst);
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Server to client; swallows the answer to a cut-off `COMMIT` and ends the
/// connection instead.
async fn downstream(
    state: &State,
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    commit_sent: &AtomicBool,
    cut_off: &tokio::sync::Notify,
) {
    let mut fault = state.fault.subscribe();
    let mut buffer = vec![0u8; 64 * 1024];
    while let Some(read) = next_chunk(&mut from, &mut to, &mut buffer).await {
        if commit_sent.load(Ordering::SeqCst) {
            state.commits_reset.fetch_add(1, Ordering::SeqCst);
            if state.commits_to_reset.load(Ordering::SeqCst) == 0 {
                let then = *state.after_resets.lock().unwrap_or_else(|p| p.into_inner());
                if then != Fault::None {
                    state.fault.send_replace(then);
                }
            }
            cut_off.notify_one();
            return std::future::pending().await;
        }
        pass(&mut fault).await;
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Reads the next chunk from `from`; at its end (or an error) passes the
/// close on to `to` and answers `None`.
async fn next_chunk(
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
    buffer: &mut [u8],
) -> Option<usize> {
    match from.read(buffer).await {
        Ok(0) | Err(_) => {
            let _ = to.shutdown().await;
            None
        }
        Ok(read) => Some(read),
    }
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
