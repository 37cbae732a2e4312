//! One proxied connection: connecting upstream, the two directions, and the per-connection modes
//! (dead after a path change, reset).

use crate::faults::{Faults, Jitter, TokenBucket};
use crate::{QUEUE_CHUNKS, READ_CHUNK_BYTES, SOCKET_BUFFER_BYTES};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A connection's own state, set by [`crate::FaultProxy::blackhole_existing`] and
/// [`crate::FaultProxy::reset_all`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forwarding under the shared [`Faults`].
    Normal,
    /// The path died: nothing is read or written ever again, sockets stay open (no FIN, no RST).
    Dead,
    /// Reset both sides (RST) and end.
    Reset,
}

/// A connect that never completes should not keep a client waiting forever: after this the
/// client is reset, as it would be by a real proxy whose upstream is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A chunk read from one side, to be written to the other at `deliver_at`.
#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    deliver_at: Instant,
}

/// Which way a direction carries bytes: it selects the bandwidth cap.
#[derive(Clone, Copy, Debug)]
enum Direction {
    Up,
    Down,
}

impl Direction {
    fn cap(self, faults: &Faults) -> Option<u32> {
        match self {
            Direction::Up => faults.up_bytes_per_s,
            Direction::Down => faults.down_bytes_per_s,
        }
    }
}

/// Runs one accepted connection to its end: a clean close of both directions, a reset, or (for a
/// dead connection) a reset or the task being aborted when the proxy is dropped.
pub(crate) async fn run(
    client: TcpStream,
    upstream: SocketAddr,
    faults: watch::Receiver<Faults>,
    mut mode: watch::Receiver<Mode>,
    seed: u64,
) {
    // A blackholed path carries no SYN either: connect upstream only once the blackhole lifts.
    let connect = async {
        let mut f = faults.clone();
        until_not_blackholed(&mut f).await;
        tokio::time::timeout(CONNECT_TIMEOUT, connect_upstream(upstream)).await
    };
    let mut server = tokio::select! {
        connected = connect => match connected {
            Ok(Ok(server)) => server,
            _ => return reset(&client),
        },
        m = until_not_normal(&mut mode) => {
            if m == Mode::Dead {
                until_reset(&mut mode).await;
            }
            return reset(&client);
        }
    };
    let mut client = client;
    // Nagle on the proxy's own sockets would add delays the faults do not ask for.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let ended = tokio::select! {
        forwarded = forward(&mut client, &mut server, &faults, seed) => match forwarded {
            // Both directions closed cleanly (FIN both ways): drop the sockets normally.
            Ok(()) => return,
            // One side reset (or failed): reset the other.
            Err(_) => Mode::Reset,
        },
        m = until_not_normal(&mut mode) => m,
    };
    // Leaving `forward` dropped its queues: a dead path never delivers what it held.
    if ended == Mode::Dead {
        until_reset(&mut mode).await;
    }
    reset(&client);
    reset(&server);
}

/// Connects to `upstream` with the proxy's small socket buffers.
async fn connect_upstream(upstream: SocketAddr) -> io::Result<TcpStream> {
    let socket = if upstream.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.connect(upstream).await
}

/// Makes the coming close of `stream` send an RST (SO_LINGER 0). The caller drops the stream.
fn reset(stream: &TcpStream) {
    // If this fails the socket is already broken; a close is then the best left to do.
    let _ = stream.set_zero_linger();
}

/// Forwards both directions until both have closed cleanly (`Ok`) or either side fails (`Err`).
async fn forward(
    client: &mut TcpStream,
    server: &mut TcpStream,
    faults: &watch::Receiver<Faults>,
    seed: u64,
) -> io::Result<()> {
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let (up_tx, up_rx) = mpsc::channel(QUEUE_CHUNKS);
    let (down_tx, down_rx) = mpsc::channel(QUEUE_CHUNKS);
    tokio::try_join!(
        read_side(client_read, up_tx, faults.clone(), seed),
        write_side(server_write, up_rx, faults.clone(), Direction::Up),
        read_side(server_read, down_tx, faults.clone(), seed.rotate_left(32)),
        write_side(client_write, down_rx, faults.clone(), Direction::Down),
    )?;
    Ok(())
}

/// Reads one side into the queue, stamping each chunk with its delivery time. Stops reading while
/// blackholed or while the queue is full (backpressure). Returns at EOF, which closes the queue.
async fn read_side(
    mut src: ReadHalf<'_>,
    tx: mpsc::Sender<Chunk>,
    mut faults: watch::Receiver<Faults>,
    seed: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut jitter = Jitter::new(seed);
    let mut last_delivery = Instant::now();
    loop {
        if faults.borrow_and_update().blackhole {
            changed(&mut faults).await;
            continue;
        }
        // Room in the queue first, so that a full queue leaves the bytes in the kernel.
        let permit = tokio::select! {
            permit = tx.reserve() => permit.map_err(|_| queue_closed())?,
            () = changed(&mut faults) => continue,
        };
        // Both futures are cancel safe: a read that loses the race consumed nothing.
        let n = tokio::select! {
            read = src.read(&mut buf) => read?,
            () = changed(&mut faults) => continue,
        };
        if n == 0 {
            return Ok(());
        }
        let f = *faults.borrow();
        let delay = u64::from(f.latency_ms) + u64::from(jitter.up_to(f.jitter_ms));
        // Never before the previous chunk: jitter delays, it does not reorder.
        last_delivery = last_delivery.max(Instant::now() + Duration::from_millis(delay));
        permit.send(Chunk {
            data: buf[..n].to_vec(),
            deliver_at: last_delivery,
        });
    }
}

/// Writes queued chunks to the other side at their delivery times, under the direction's cap;
/// holds them while blackholed. After the queue closes (the source's FIN) and everything queued
/// was written, half-closes the destination (shutdown write).
async fn write_side(
    mut dst: WriteHalf<'_>,
    mut rx: mpsc::Receiver<Chunk>,
    mut faults: watch::Receiver<Faults>,
    direction: Direction,
) -> io::Result<()> {
    let mut bucket = TokenBucket::new(std::time::Instant::now());
    while let Some(chunk) = rx.recv().await {
        tokio::time::sleep_until(chunk.deliver_at).await;
        let mut sent = 0;
        while sent < chunk.data.len() {
            let f = *faults.borrow_and_update();
            if f.blackhole {
                changed(&mut faults).await;
                continue;
            }
            let cap = direction.cap(&f);
            let piece = &chunk.data[sent..];
            let piece = &piece[..TokenBucket::max_write(cap, piece.len())];
            if let Some(wait) = bucket.wait(cap, piece.len(), std::time::Instant::now()) {
                // A fault change (a new cap, a blackhole) is looked at before the wait ends.
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = changed(&mut faults) => {}
                }
                continue;
            }
            // `write` is cancel safe: if the fault change wins, nothing was written.
            tokio::select! {
                written = dst.write(piece) => {
                    let n = written?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    bucket.consume(n);
                    sent += n;
                }
                () = changed(&mut faults) => {}
            }
        }
    }
    dst.shutdown().await
}

fn queue_closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other direction's writer ended",
    )
}

/// Waits for the next change of the fault set. If the proxy is gone this never returns (the
/// proxy aborts its connections when dropped).
async fn changed(faults: &mut watch::Receiver<Faults>) {
    if faults.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn until_not_blackholed(faults: &mut watch::Receiver<Faults>) {
    if faults.wait_for(|f| !f.blackhole).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits until the connection leaves [`Mode::Normal`] and returns the new mode.
async fn until_not_normal(mode: &mut watch::Receiver<Mode>) -> Mode {
    let seen = mode.wait_for(|m| *m != Mode::Normal).await.map(|m| *m);
    match seen {
        Ok(m) => m,
        Err(_) => std::future::pending().await,
    }
}

async fn until_reset(mode: &mut watch::Receiver<Mode>) {
    if mode.wait_for(|m| *m == Mode::Reset).await.is_err() {
        std::future::pending::<()>().await;
    }
}
