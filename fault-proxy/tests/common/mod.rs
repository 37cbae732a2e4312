//! Test peers (an echo server, a server whose connections the test drives) and waits with
//! deadlines.
#![allow(dead_code)] // each test file uses a different part

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a condition that should happen may take before the test fails (generous: the
/// machine is shared and busy).
pub const DEADLINE: Duration = Duration::from_secs(15);

/// How long a test watches for something that must NOT happen (a byte, a FIN, an RST).
pub const QUIET_WINDOW: Duration = Duration::from_millis(700);

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {DEADLINE:?}"),
    }
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Asserts that nothing at all (no byte, no EOF, no error) arrives on `stream` for
/// [`QUIET_WINDOW`].
pub async fn assert_silent(what: &str, stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(QUIET_WINDOW, stream.read(&mut buf)).await {
        Err(_) => {}
        Ok(Ok(0)) => panic!("{what}: got EOF (a FIN), expected silence"),
        Ok(Ok(n)) => panic!("{what}: got {n} bytes, expected silence"),
        Ok(Err(e)) => panic!("{what}: got error {e}, expected silence"),
    }
}

/// Reads exactly `n` bytes within the deadline.
pub async fn read_exact(what: &str, stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    match within(what, stream.read_exact(&mut buf)).await {
        Ok(_) => buf,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Reads until the stream fails, within the deadline, and returns the error.
pub async fn read_error(what: &str, stream: &mut TcpStream) -> io::Error {
    within(what, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => panic!("{what}: got EOF, expected an error"),
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
}

/// Deterministic non-repeating-looking test bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// A server whose accepted connections are handed to the test.
pub struct Upstream {
    pub addr: SocketAddr,
    accepted: mpsc::Receiver<TcpStream>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let (tx, accepted) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if tx.send(stream).await.is_err() {
                    break;
                }
            }
        });
        Upstream { addr, accepted }
    }

    /// The next connection the proxy made, within the deadline.
    pub async fn accept(&mut self) -> TcpStream {
        within("upstream accept", self.accepted.recv())
            .await
            .expect("upstream listener ended")
    }

    /// Asserts that the proxy opens no connection upstream for [`QUIET_WINDOW`].
    pub async fn assert_no_connection(&mut self, what: &str) {
        if tokio::time::timeout(QUIET_WINDOW, self.accepted.recv())
            .await
            .is_ok()
        {
            panic!("{what}: the proxy connected upstream");
        }
    }
}

/// An echo server: every connection returns what it receives, half-closes after the client's
/// FIN, and resets if the client resets.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream));
        }
    });
    addr
}

async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => {
                let _ = stream.shutdown().await;
                return;
            }
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// One echo round trip of `message` on `stream`.
pub async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    within("echo write", stream.write_all(message))
        .await
        .expect("echo write");
    let back = read_exact("echo read", stream, message.len()).await;
    assert_eq!(back, message);
}
