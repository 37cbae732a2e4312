//! The network fault lab: a loopback TCP proxy that injects real network faults between test
//! clients (browsers, native tests) and the reference server.
//!
//! The faults are the network's, not the protocol's: a path that goes silent without a FIN
//! (blackhole), a connection reset (RST), a port that refuses, one-way latency with jitter, and a
//! bandwidth cap per direction. The proxy does not parse what it forwards (WebSocket, HTTP), so
//! the client sees exactly what a bad network would show it.
//!
//! # Data flow
//!
//! ```text
//!            FaultProxy (127.0.0.1:0)                       upstream
//! client ──► accept ─► refuse? RST ─┐
//!                                   └► connection task ─► connect (after any blackhole lifts)
//!            client socket ─ reader ─► bounded queue ─► writer (delay, bucket) ─► server socket
//!            client socket ◄─ writer (delay, bucket) ◄─ bounded queue ◄─ reader ─ server socket
//! ```
//!
//! Each direction is a reader that stamps every chunk with its delivery time
//! (`max(previous, now + latency + rand(0..=jitter))`) and a writer that waits for that time and
//! for the direction's token bucket. Queues are bounded ([`QUEUE_CHUNKS`] chunks of at most
//! [`READ_CHUNK_BYTES`]); when one is full the reader stops reading, so backpressure reaches the
//! sender through TCP's own window, as on a real slow path. The proxy's sockets have small kernel
//! buffers ([`SOCKET_BUFFER_BYTES`]) so that this happens within seconds.
//!
//! The fault set ([`Faults`]) is shared by every connection through a `watch` channel: a change
//! applies at once to open connections. Each connection also has its own mode (normal, dead,
//! reset) for [`FaultProxy::blackhole_existing`] and [`FaultProxy::reset_all`].
//!
//! The binary (`src/main.rs`) serves [`control`], an HTTP JSON API that browser tests and the E2E
//! suite drive with `fetch`.

mod conn;
pub mod control;
mod faults;
mod proxy;

pub use faults::{bucket_burst_bytes, Faults};
pub use proxy::{FaultProxy, MAX_CONNECTIONS};

/// Kernel send and receive buffer size (SO_SNDBUF/SO_RCVBUF) of the proxy's sockets, both sides.
///
/// Small on purpose: on a blackholed or throttled path the sender's writes block (a browser's
/// WebSocket `bufferedAmount` grows) within seconds of audio streaming, as on a real dead path,
/// instead of after megabytes of loopback-sized buffers. Linux doubles the value it is given.
pub const SOCKET_BUFFER_BYTES: u32 = 64 * 1024;

/// Largest chunk read from a socket at once; one queue entry holds at most this many bytes.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Capacity, in chunks, of each direction's queue between reader and writer. With
/// [`READ_CHUNK_BYTES`] this bounds the bytes a connection holds in user space (per direction).
pub const QUEUE_CHUNKS: usize = 64;
