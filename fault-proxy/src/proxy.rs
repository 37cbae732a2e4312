//! The proxy: its listener, the shared fault set and the registry of open connections.

use crate::conn::{self, Mode};
use crate::faults::Faults;
use crate::SOCKET_BUFFER_BYTES;
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Most connections one proxy keeps open at once; beyond it new connections are reset. Dead
/// connections (see [`FaultProxy::blackhole_existing`]) stay open until reset, so without a bound
/// a long test session that keeps reconnecting would grow without limit.
pub const MAX_CONNECTIONS: usize = 256;

/// A loopback TCP proxy to one upstream address that injects the current [`Faults`].
///
/// Dropping it stops the listener and closes every connection (dead ones included).
pub struct FaultProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

/// What the proxy handle, the accept loop and the connection tasks share.
struct Shared {
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    /// Open connections by id, each with the sender of its [`Mode`].
    connections: Mutex<HashMap<u64, watch::Sender<Mode>>>,
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, watch::Sender<Mode>>> {
        // The map stays consistent even if a holder panicked: each operation is one insert,
        // remove or iteration.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_mode_of_all(&self, mode: Mode) {
        for sender in self.connections().values() {
            sender.send_if_modified(|m| {
                // A reset connection stays reset; a dead one may still be reset.
                let change = *m != Mode::Reset && *m != mode;
                if change {
                    *m = mode;
                }
                change
            });
        }
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards each accepted connection to `upstream`.
    ///
    /// Must be called within a tokio runtime; the proxy runs on it until dropped.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let socket = TcpSocket::new_v4()?;
        // Set on the listener so that accepted sockets inherit them and the advertised window
        // is small from the handshake on.
        socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
        socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let listener = socket.listen(1024)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: watch::Sender::new(Faults::default()),
            connections: Mutex::new(HashMap::new()),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            local_addr,
            shared,
            accept_task,
        })
    }

    /// The address clients connect to (127.0.0.1 and the port the system chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Replaces the fault set; applies to existing and new connections at once.
    pub fn set(&self, faults: Faults) {
        self.shared.faults.send_replace(faults);
    }

    /// The current fault set.
    pub fn faults(&self) -> Faults {
        *self.shared.faults.borrow()
    }

    /// Path change: every connection open now goes silent in both directions (bytes held, never
    /// delivered, no FIN, no RST, sockets kept open); connections accepted later pass normally.
    ///
    /// Those connections stay dead until [`reset_all`](Self::reset_all) or drop, whatever the
    /// fault set becomes.
    pub fn blackhole_existing(&self) {
        self.shared.set_mode_of_all(Mode::Dead);
    }

    /// Resets (RST: SO_LINGER 0 then close) every connection open now, both sides.
    pub fn reset_all(&self) {
        self.shared.set_mode_of_all(Mode::Reset);
    }

    /// Connections currently open (accepted and not yet closed).
    pub fn connections(&self) -> usize {
        self.shared.connections().len()
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("local_addr", &self.local_addr)
            .field("upstream", &self.shared.upstream)
            .field("faults", &self.faults())
            .field("connections", &self.connections())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns the listener and the connection tasks (a JoinSet, which aborts
        // them when dropped): aborting it closes everything.
        self.accept_task.abort();
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.connections().remove(&self.id);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut next_id: u64 = 0;
    let seed_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // Out of descriptors or an aborted handshake: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if shared.faults.borrow().refuse || shared.connections().len() >= MAX_CONNECTIONS {
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let (mode_tx, mode_rx) = watch::channel(Mode::Normal);
        shared.connections().insert(id, mode_tx);
        let registered = Registered {
            shared: Arc::clone(&shared),
            id,
        };
        let faults = shared.faults.subscribe();
        let upstream = shared.upstream;
        let seed = seed_base ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.spawn(async move {
            let _registered = registered;
            conn::run(stream, upstream, faults, mode_rx, seed).await;
        });
    }
}
