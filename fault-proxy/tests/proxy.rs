//! The proxy's faults against real sockets: one scenario per behaviour.

mod common;

use common::*;
use fault_proxy::{bucket_burst_bytes, FaultProxy, Faults};
use std::io::ErrorKind;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = within("connect", TcpStream::connect(proxy.local_addr()))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

#[tokio::test]
async fn pass_through_is_byte_exact_both_ways_with_half_close() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    assert_eq!(proxy.local_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    let mut client = connect(&proxy).await;
    let mut server = upstream.accept().await;
    wait_until("one connection counted", || proxy.connections() == 1).await;

    // Up: 1 MB then FIN; the server sees exactly those bytes, then EOF.
    let up = pattern(1 << 20);
    let sent = up.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.expect("client write");
        client.shutdown().await.expect("client shutdown");
        client
    });
    let mut received = Vec::new();
    within("server reads to EOF", server.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(
        received == up,
        "up: {} bytes received, {} sent",
        received.len(),
        up.len()
    );
    let mut client = writer.await.unwrap();

    // Down still works on the half-closed connection: 1 MB then FIN.
    let down: Vec<u8> = pattern(1 << 20).into_iter().rev().collect();
    let sent = down.clone();
    let writer = tokio::spawn(async move {
        server.write_all(&sent).await.expect("server write");
        server.shutdown().await.expect("server shutdown");
    });
    let mut received = Vec::new();
    within("client reads to EOF", client.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(received == down, "down: {} bytes received", received.len());
    writer.await.unwrap();
    wait_until("closed connection uncounted", || proxy.connections() == 0).await;
}

#[tokio::test]
async fn echo_of_a_megabyte_is_byte_exact() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let client = connect(&proxy).await;
    let (mut read, mut write) = client.into_split();
    let data = pattern(1 << 20);
    let sent = data.clone();
    let writer = tokio::spawn(async move { write.write_all(&sent).await });
    let mut back = vec![0u8; data.len()];
    within("echo", read.read_exact(&mut back)).await.unwrap();
    writer.await.unwrap().unwrap();
    assert!(back == data);
}

#[tokio::test]
async fn websocket_echo_passes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() || ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = FaultProxy::start(upstream).await.unwrap();
    proxy.set(Faults {
        latency_ms: 10,
        jitter_ms: 10,
        ..Faults::default()
    });
    let url = format!("ws://{}/", proxy.local_addr());
    let (mut ws, _) = within("ws connect", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    for i in 0..20u32 {
        let message = if i % 2 == 0 {
            Message::text(format!("message {i}"))
        } else {
            Message::binary(pattern(3000 + i as usize))
        };
        within("ws send", ws.send(message.clone())).await.unwrap();
        let back = within("ws echo", ws.next())
            .await
            .expect("ws ended")
            .unwrap();
        assert_eq!(back, message);
    }
    within("ws close", ws.close(None)).await.unwrap();
}

#[tokio::test]
async fn blackhole_holds_bytes_both_ways_and_lifting_it_delivers_them() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let mut client = connect(&proxy).await;
    let mut server = upstream.accept().await;

    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    assert!(proxy.faults().blackhole);
    client.write_all(b"up while dead").await.unwrap();
    server.write_all(b"down while dead").await.unwrap();
    assert_silent("server during blackhole", &mut server).await;
    assert_silent("client during blackhole", &mut client).await;

    // A connection made during the blackhole is accepted but goes nowhere.
    let mut late = connect(&proxy).await;
    late.write_all(b"late").await.unwrap();
    upstream.assert_no_connection("during blackhole").await;
    assert_silent("late client during blackhole", &mut late).await;

    proxy.set(Faults::default());
    assert_eq!(
        read_exact("held up bytes", &mut server, 13).await,
        b"up while dead"
    );
    assert_eq!(
        read_exact("held down bytes", &mut client, 15).await,
        b"down while dead"
    );
    let mut late_server = upstream.accept().await;
    assert_eq!(read_exact("late bytes", &mut late_server, 4).await, b"late");
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn blackhole_existing_kills_open_connections_silently_and_new_ones_pass() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let mut client = connect(&proxy).await;
    let mut server = upstream.accept().await;
    client.write_all(b"ping").await.unwrap();
    assert_eq!(read_exact("before", &mut server, 4).await, b"ping");

    proxy.blackhole_existing();
    assert_eq!(
        proxy.faults(),
        Faults::default(),
        "a path change is not a fault setting"
    );
    client.write_all(b"lost").await.unwrap();
    server.write_all(b"lost").await.unwrap();
    // No bytes, no FIN, no RST on either side.
    assert_silent("client of a dead path", &mut client).await;
    assert_silent("server of a dead path", &mut server).await;

    // A new connection passes.
    let mut fresh = connect(&proxy).await;
    let mut fresh_server = upstream.accept().await;
    fresh.write_all(b"new path").await.unwrap();
    assert_eq!(
        read_exact("new connection", &mut fresh_server, 8).await,
        b"new path"
    );
    fresh_server.write_all(b"ok").await.unwrap();
    assert_eq!(
        read_exact("new connection back", &mut fresh, 2).await,
        b"ok"
    );
    assert_eq!(proxy.connections(), 2);

    // Fault changes do not revive a dead connection.
    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    proxy.set(Faults::default());
    assert_silent("dead path after a fault change", &mut client).await;
    assert_eq!(proxy.connections(), 2, "dead connections stay open");

    // Reset still ends it, both sides.
    proxy.reset_all();
    assert!(is_reset(
        read_error("client after reset", &mut client).await.kind()
    ));
    assert!(is_reset(
        read_error("server after reset", &mut server).await.kind()
    ));
    wait_until("all connections closed", || proxy.connections() == 0).await;
}

#[tokio::test]
async fn a_blackholed_path_pushes_back_on_the_sender_and_loses_nothing() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let client = connect(&proxy).await;
    let (mut read, mut write) = client.into_split();
    round_trip_split(&mut read, &mut write).await;

    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    let data = pattern(64 << 20);
    let mut written = 0;
    let mut blocked = false;
    while written < data.len() {
        // `write` is cancel safe: a write that times out wrote nothing.
        let end = (written + 64 * 1024).min(data.len());
        match tokio::time::timeout(QUIET_WINDOW, write.write(&data[written..end])).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("write failed: {e}"),
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(
        blocked,
        "64 MB written into a blackholed path without blocking"
    );
    assert!(
        written < 16 << 20,
        "{written} bytes accepted before blocking: buffers too large"
    );

    // Lifting the blackhole delivers every held byte, in order.
    proxy.set(Faults::default());
    let mut back = vec![0u8; written];
    within("held bytes echoed", read.read_exact(&mut back))
        .await
        .unwrap();
    assert!(
        back == data[..written],
        "the {written} held bytes came back altered"
    );
}

async fn round_trip_split(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) {
    write.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    within("round trip", read.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(&back, b"hello");
}

#[tokio::test]
async fn reset_all_resets_both_sides() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let mut client = connect(&proxy).await;
    let mut server = upstream.accept().await;
    client.write_all(b"x").await.unwrap();
    assert_eq!(read_exact("before", &mut server, 1).await, b"x");

    proxy.reset_all();
    let e = read_error("client after reset", &mut client).await;
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    let e = read_error("server after reset", &mut server).await;
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    wait_until("connection uncounted", || proxy.connections() == 0).await;

    // The proxy keeps serving new connections.
    let mut again = connect(&proxy).await;
    let mut again_server = upstream.accept().await;
    again.write_all(b"y").await.unwrap();
    assert_eq!(read_exact("after reset", &mut again_server, 1).await, b"y");
}

#[tokio::test]
async fn a_reset_from_either_side_resets_the_other() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();

    let mut client = connect(&proxy).await;
    let server = upstream.accept().await;
    server.set_zero_linger().unwrap();
    drop(server);
    let e = read_error("client after the server's RST", &mut client).await;
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");

    let client = connect(&proxy).await;
    let mut server = upstream.accept().await;
    client.set_zero_linger().unwrap();
    drop(client);
    let e = read_error("server after the client's RST", &mut server).await;
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    wait_until("both connections uncounted", || proxy.connections() == 0).await;
}

#[tokio::test]
async fn refuse_resets_new_connections_and_spares_open_ones() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let mut open = connect(&proxy).await;
    let mut open_server = upstream.accept().await;

    proxy.set(Faults {
        refuse: true,
        ..Faults::default()
    });
    // The kernel completes the handshake before the proxy accepts; the proxy then resets it.
    match TcpStream::connect(proxy.local_addr()).await {
        Ok(mut refused) => {
            let e = read_error("refused connection", &mut refused).await;
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        }
        Err(e) => assert!(
            is_reset(e.kind()) || e.kind() == ErrorKind::ConnectionRefused,
            "{e}"
        ),
    }
    upstream.assert_no_connection("refused").await;
    open.write_all(b"still here").await.unwrap();
    assert_eq!(
        read_exact("open connection", &mut open_server, 10).await,
        b"still here"
    );
    assert_eq!(proxy.connections(), 1);

    proxy.set(Faults::default());
    let mut fresh = connect(&proxy).await;
    let mut fresh_server = upstream.accept().await;
    fresh.write_all(b"back").await.unwrap();
    assert_eq!(
        read_exact("after refuse", &mut fresh_server, 4).await,
        b"back"
    );
}

#[tokio::test]
async fn latency_delays_each_direction() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"warm up").await;
    let latency = Duration::from_millis(150);
    proxy.set(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    for _ in 0..3 {
        let start = Instant::now();
        round_trip(&mut client, b"ping").await;
        let took = start.elapsed();
        // Once up, once down.
        assert!(
            took >= 2 * latency,
            "round trip took {took:?}, latency is {latency:?} each way"
        );
    }
}

#[tokio::test]
async fn jitter_never_reorders() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    proxy.set(Faults {
        latency_ms: 5,
        jitter_ms: 40,
        ..Faults::default()
    });
    let client = connect(&proxy).await;
    let (mut read, mut write) = client.into_split();
    const CHUNKS: u32 = 300;
    let writer = tokio::spawn(async move {
        for i in 0..CHUNKS {
            write.write_all(&i.to_be_bytes()).await.unwrap();
            // Pacing, not synchronisation: separate writes become separate chunks in the
            // proxy, each with its own random delay.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        write
    });
    let back = {
        let mut back = vec![0u8; CHUNKS as usize * 4];
        within("numbered chunks echoed", read.read_exact(&mut back))
            .await
            .unwrap();
        back
    };
    let numbers: Vec<u32> = back
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(numbers, (0..CHUNKS).collect::<Vec<_>>());
    writer.await.unwrap();
}

/// Transferring `n` bytes through a cap of `rate` takes at least `(n - burst) / rate`.
fn min_transfer_time(n: usize, rate: u32) -> Duration {
    let burst = bucket_burst_bytes(rate) as usize;
    Duration::from_secs_f64((n - burst) as f64 / f64::from(rate))
}

#[tokio::test]
async fn bandwidth_cap_up_bounds_the_transfer_time() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let rate = 100_000;
    proxy.set(Faults {
        up_bytes_per_s: Some(rate),
        ..Faults::default()
    });
    let mut client = connect(&proxy).await;
    let mut server = upstream.accept().await;
    let n = 150_000;
    let data = pattern(n);
    let sent = data.clone();
    let start = Instant::now();
    let writer = tokio::spawn(async move { client.write_all(&sent).await.map(|()| client) });
    let received = read_exact("capped upload", &mut server, n).await;
    let took = start.elapsed();
    assert!(received == data);
    assert!(
        took >= min_transfer_time(n, rate),
        "{n} bytes at {rate} B/s took {took:?}"
    );
    writer.await.unwrap().unwrap();
}

#[tokio::test]
async fn bandwidth_cap_down_bounds_the_transfer_time_and_leaves_up_alone() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let rate = 100_000;
    proxy.set(Faults {
        down_bytes_per_s: Some(rate),
        ..Faults::default()
    });
    let mut client = connect(&proxy).await;
    let mut server = upstream.accept().await;

    // Up is not capped: a megabyte passes (no time bound asserted, only that it arrives).
    let up = pattern(1 << 20);
    let sent = up.clone();
    let writer = tokio::spawn(async move { client.write_all(&sent).await.map(|()| client) });
    assert!(read_exact("uncapped upload", &mut server, up.len()).await == up);
    let mut client = writer.await.unwrap().unwrap();

    let n = 150_000;
    let data = pattern(n);
    let sent = data.clone();
    let start = Instant::now();
    let writer = tokio::spawn(async move { server.write_all(&sent).await.map(|()| server) });
    let received = read_exact("capped download", &mut client, n).await;
    let took = start.elapsed();
    assert!(received == data);
    assert!(
        took >= min_transfer_time(n, rate),
        "{n} bytes at {rate} B/s took {took:?}"
    );
    writer.await.unwrap().unwrap();
}

#[tokio::test]
async fn dropping_the_proxy_closes_connections_and_the_listener() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let addr = proxy.local_addr();
    let mut live = connect(&proxy).await;
    round_trip(&mut live, b"hi").await;
    let mut dead = connect(&proxy).await;
    round_trip(&mut dead, b"hi").await;
    proxy.blackhole_existing();
    assert!(format!("{proxy:?}").contains("connections: 2"), "{proxy:?}");
    drop(proxy);
    for stream in [&mut live, &mut dead] {
        let mut buf = [0u8; 16];
        let closed = within("close after drop", stream.read(&mut buf)).await;
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    }
    let refused = within("connect after drop", TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "the listener still accepts after drop");
}
