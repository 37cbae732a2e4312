//! One scenario per close code (DESIGN.md "Wire contract"), on a virtual clock.

mod session_support;

use realtime_voice::session::{FailReason, Mode, Output, State};
use session_support::*;

#[test]
fn connect_builds_the_url_and_redacts_it() {
    let mut sim = Sim::new("");
    sim.s.connect(0);
    let v = sim.drain();
    let url = v
        .iter()
        .find_map(|o| match o {
            Output::OpenSocket { url, .. } => Some(url.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        url,
        "wss://api.example.com/api/v1/interviews/iv1/realtime/connect?token=tok.SECRET.sig"
    );
    assert!(
        matches!(v[1], Output::StartAudio),
        "voice mode starts audio on connect: {v:?}"
    );
    let dbg = format!("{v:?} {:?} {:?}", sim.s, sim.s.config());
    assert!(!dbg.contains("SECRET"), "token leaked in Debug: {dbg}");
    assert_eq!(
        statuses(&v),
        [("connecting".into(), "connect".into(), None, 0)]
    );
}

#[test]
fn subprotocol_auth_sends_bearer_protocol() {
    let mut sim = Sim::new(r#","authVia":"subprotocol""#);
    sim.s.connect(0);
    let v = sim.drain();
    let (url, protos) = v
        .iter()
        .find_map(|o| match o {
            Output::OpenSocket { url, protocols } => Some((url.clone(), protocols.clone())),
            _ => None,
        })
        .unwrap();
    assert!(!url.contains('?'));
    assert_eq!(protos, ["realtime", "bearer.tok.SECRET.sig"]);
    assert!(!format!("{v:?}").contains("SECRET"));
}

#[test]
fn close_1000_from_server_ends_without_retry() {
    let mut sim = Sim::new("");
    sim.connect_open();
    let v = sim.close(1000, true);
    assert_eq!(sim.state(), State::Closed);
    assert!(v.iter().any(|o| matches!(o, Output::StopAudio)));
    assert_eq!(
        statuses(&v),
        [("closed".into(), "server_closed".into(), Some(1000), 0)]
    );
    assert_eq!(sim.s.poll_timeout(), None);
    assert_eq!(opens(&sim.advance(60_000)), 0);
}

#[test]
fn close_1001_reconnects_with_backoff() {
    let mut sim = Sim::new("");
    sim.connect_open();
    let v = sim.close(1001, true);
    assert_eq!(sim.state(), State::Reconnecting);
    assert_eq!(
        statuses(&v),
        [("reconnecting".into(), "going_away".into(), Some(1001), 1)]
    );
    let at = sim.s.poll_timeout().unwrap();
    assert!(at <= 250, "first retry within base 250 ms, got {at}");
    let v = sim.advance_to(at);
    assert_eq!(opens(&v), 1);
    let v = sim.opened(sim.now);
    assert_eq!(
        statuses(&v),
        [("connected".into(), "reconnected".into(), None, 1)]
    );
    assert_eq!(sim.s.metrics().reconnects, 1);
    assert_eq!(sim.s.metrics().connection_successes, 2);
}

#[test]
fn close_1006_before_open_is_a_rejected_handshake_bounded() {
    let mut sim = Sim::new(r#","maxReconnectAttempts":3"#);
    sim.s.connect(0);
    sim.drain();
    let mut attempts = 1;
    let mut delays = Vec::new();
    loop {
        let v = sim.close(1006, false);
        if sim.state() != State::Connecting {
            // Exhausted: no HTTP fallback configured → failed{network}.
            assert_eq!(sim.state(), State::Failed(FailReason::Network));
            assert_eq!(statuses(&v).last().unwrap().1, "network");
            break;
        }
        assert_eq!(statuses(&v).last().unwrap().1, "handshake_rejected");
        let at = sim.s.poll_timeout().unwrap();
        delays.push(at - sim.now);
        assert_eq!(opens(&sim.advance_to(at)), 1);
        attempts += 1;
    }
    assert_eq!(attempts, 4, "1 try + 3 retries");
    assert_eq!(sim.s.metrics().connection_attempts, 4);
    for (i, d) in delays.iter().enumerate() {
        assert!(*d <= 250 << i, "retry {i} waited {d} ms");
    }
    assert_eq!(opens(&sim.advance(600_000)), 0, "no loop after exhaustion");
}

#[test]
fn close_1006_after_open_reconnects() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.close(1006, true);
    assert_eq!(sim.state(), State::Reconnecting);
    assert_eq!(sim.s.status().reason, Some("connection_lost"));
    let v = sim.advance(250);
    assert_eq!(opens(&v), 1);
}

#[test]
fn close_1008_with_provider_retries_once_with_a_fresh_token_then_fails_auth() {
    let mut sim =
        Sim::with_opts(r#"{"baseUrl":"https://h","interviewId":"i","tokenProvider":true}"#);
    sim.s.connect(0);
    let v = sim.drain();
    assert!(v.iter().any(|o| matches!(o, Output::RequestToken)));
    assert_eq!(opens(&v), 0, "no socket before the token");
    sim.s.handle_token(0, Ok("t1".into()));
    let v = sim.drain();
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::OpenSocket { url, .. } if url.ends_with("token=t1"))));
    // The backend accepts, then closes: no server frame in between.
    sim.s.handle_socket_opened(0);
    sim.drain();
    // Backend accepts, then closes 1008 (expired token): a fresh token after the normal
    // backoff, not at once.
    let v = sim.close(1008, true);
    assert!(
        !v.iter().any(|o| matches!(o, Output::RequestToken)),
        "{v:?}"
    );
    assert_eq!(sim.s.status().reason, Some("token_refresh"));
    assert_eq!(sim.s.status().attempt, 1);
    let at = sim.s.poll_timeout().expect("a backoff timer");
    assert!(at <= 250, "first backoff is within 250 ms: {at}");
    let v = sim.advance_to(at);
    assert!(
        v.iter().any(|o| matches!(o, Output::RequestToken)),
        "asks a fresh token: {v:?}"
    );
    let now = sim.now;
    sim.s.handle_token(now, Ok("t2".into()));
    let v = sim.drain();
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::OpenSocket { url, .. } if url.ends_with("token=t2"))));
    sim.s.handle_socket_opened(now);
    sim.drain();
    let v = sim.close(1008, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Auth));
    assert_eq!(
        statuses(&v).last().unwrap(),
        &("failed".into(), "auth".into(), Some(1008), 1)
    );
    assert_eq!(opens(&sim.advance(600_000)), 0);
    let token_requests = sim
        .log
        .iter()
        .filter(|o| matches!(o, Output::RequestToken))
        .count();
    assert_eq!(
        token_requests, 2,
        "one initial token, one fresh token, no loop"
    );
}

#[test]
fn close_1008_with_static_token_fails_auth_at_once() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.close(1008, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Auth));
    assert_eq!(opens(&sim.advance(600_000)), 0);
}

#[test]
fn token_provider_failure_fails_auth() {
    let mut sim =
        Sim::with_opts(r#"{"baseUrl":"https://h","interviewId":"i","tokenProvider":true}"#);
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_token(0, Err("login expired".into()));
    let v = sim.drain();
    assert_eq!(sim.state(), State::Failed(FailReason::Auth));
    assert!(events(&v)
        .iter()
        .any(|e| e.name() == "error" && e.to_json().contains("token_provider_failed")));
}

#[test]
fn close_1011_and_1013_back_off_and_recover() {
    for code in [1011u16, 1013] {
        let mut sim = Sim::new("");
        sim.connect_open();
        sim.close(code, true);
        assert_eq!(sim.state(), State::Reconnecting, "code {code}");
        // Second failure in a row (handshake), the ceiling doubles.
        let at = sim.s.poll_timeout().unwrap();
        sim.advance_to(at);
        sim.close(code, false);
        let at2 = sim.s.poll_timeout().unwrap();
        assert!(at2 - sim.now <= 500);
        assert_eq!(sim.s.status().attempt, 2);
        sim.advance_to(at2);
        sim.opened(sim.now);
        sim.drain();
        assert_eq!(sim.state(), State::Connected);
    }
}

#[test]
fn close_4403_switches_to_text_at_once() {
    // With HTTP fallback: state text, mode text, no reconnect.
    let mut sim = Sim::new(r#","httpFallback":true"#);
    sim.connect_open();
    let v = sim.close(4403, true);
    assert_eq!(sim.state(), State::Text);
    assert_eq!(sim.s.mode(), Mode::Text);
    assert!(v.iter().any(|o| matches!(o, Output::StopAudio)));
    let modes: Vec<String> = events(&v)
        .iter()
        .filter(|e| e.name() == "mode")
        .map(|e| e.to_json())
        .collect();
    assert_eq!(modes, [r#"{"mode":"text","reason":"realtime_disabled"}"#]);
    assert_eq!(opens(&sim.advance(600_000)), 0);
    // Without: failed{unsupported}, still reported as a text-mode switch.
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.close(4403, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Unsupported));
    assert_eq!(sim.s.mode(), Mode::Text);
}

#[test]
fn close_4409_on_the_first_connect_is_busy_without_retry() {
    let mut sim = Sim::new("");
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_socket_opened(0);
    let v = sim.close(4409, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Busy));
    assert_eq!(
        statuses(&v),
        [("failed".into(), "busy".into(), Some(4409), 0)]
    );
    assert_eq!(sim.s.poll_timeout(), None);
    assert_eq!(opens(&sim.advance(600_000)), 0);
}

#[test]
fn close_4429_backs_off_longer() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.close(4429, true);
    assert_eq!(sim.state(), State::Reconnecting);
    let wait = sim.s.poll_timeout().unwrap() - sim.now;
    // Rate limited: at least half of 4 × base, versus 0..=250 ms for an ordinary first retry.
    assert!((500..=1000).contains(&wait), "4429 wait {wait}");
}

#[test]
fn reconnect_exhaustion_falls_back_to_text_over_http() {
    let mut sim =
        Sim::new(r#","httpFallback":true,"maxReconnectAttempts":2,"reconnectWindowMs":0"#);
    sim.connect_open();
    sim.close(1006, true);
    for _ in 0..2 {
        let at = sim.s.poll_timeout().unwrap();
        sim.advance_to(at);
        sim.close(1006, false);
    }
    assert_eq!(sim.state(), State::Text);
    assert_eq!(sim.s.status().reason, Some("reconnect_exhausted"));
    assert_eq!(sim.s.mode(), Mode::Text);
    let modes: Vec<String> = events(&sim.log)
        .iter()
        .filter(|e| e.name() == "mode")
        .map(|e| e.to_json())
        .collect();
    assert_eq!(modes, [r#"{"mode":"text","reason":"reconnect_exhausted"}"#]);
}

#[test]
fn online_event_retries_at_once_and_offline_does_not_spend_attempts() {
    let mut sim = Sim::new(r#","backoffBaseMs":5000,"backoffMaxMs":5000"#);
    sim.connect_open();
    sim.s.handle_online(sim.now, false);
    sim.close(1006, true);
    let at = sim.s.poll_timeout().unwrap();
    let v = sim.advance_to(at + 20_000);
    assert_eq!(opens(&v), 0, "offline: the due attempt waits");
    assert_eq!(sim.s.metrics().connection_attempts, 1);
    sim.s.handle_online(sim.now, true);
    let v = sim.drain();
    assert_eq!(opens(&v), 1, "online: attempt at once");
    // And while simply waiting for the backoff, online also short-cuts it.
    sim.close(1006, false);
    assert!(sim.s.poll_timeout().is_some());
    sim.s.handle_online(sim.now, true);
    assert_eq!(opens(&sim.drain()), 1);
}

#[test]
fn connect_timeout_counts_as_a_failed_attempt() {
    let mut sim = Sim::new(r#","connectTimeoutMs":2000"#);
    sim.s.connect(0);
    sim.drain();
    let v = sim.advance(2000);
    assert!(v.iter().any(|o| matches!(o, Output::CloseSocket { .. })));
    assert_eq!(sim.s.status().reason, Some("connect_timeout"));
    // A late open of the abandoned socket is ignored.
    sim.opened(sim.now);
    assert_eq!(sim.state(), State::Connecting);
}

#[test]
fn stable_connection_resets_the_attempt_counter() {
    let mut sim = Sim::new(r#","maxReconnectAttempts":1"#);
    for _ in 0..5 {
        if sim.state() == State::Idle {
            sim.connect_open();
        }
        sim.advance(10_000);
        sim.close(1001, true);
        assert_eq!(
            sim.state(),
            State::Reconnecting,
            "1001 after a long healthy session retries"
        );
        let at = sim.s.poll_timeout().unwrap();
        sim.advance_to(at);
        sim.opened(sim.now);
        sim.drain();
    }
}

#[test]
fn disconnect_closes_and_ignores_late_socket_reports() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.disconnect(sim.now);
    let v = sim.drain();
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::CloseSocket { code: 1000, .. })));
    assert!(v.iter().any(|o| matches!(o, Output::StopAudio)));
    assert_eq!(sim.state(), State::Closed);
    sim.close(1006, true);
    sim.s.handle_socket_message(sim.now, r#"{"type":"x"}"#);
    assert!(sim.drain().is_empty());
    assert_eq!(sim.state(), State::Closed);
    // Reconnect after disconnect works.
    sim.connect_open();
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn busy_in_another_tab_fails_without_a_socket() {
    let mut sim = Sim::new("");
    sim.s.handle_busy_elsewhere(0);
    let v = sim.drain();
    assert_eq!(sim.state(), State::Failed(FailReason::Busy));
    assert_eq!(opens(&v), 0);
    assert_eq!(statuses(&v), [("failed".into(), "busy".into(), None, 0)]);
    // Ignored while this tab holds a live connection.
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_busy_elsewhere(0);
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn socket_backlog_is_measured() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_socket_backlog(0);
    sim.s.handle_socket_backlog(70_000);
    sim.s.handle_socket_backlog(12_000);
    let m = sim.s.metrics();
    assert_eq!(m.socket_backpressure_events, 2);
    assert_eq!(m.socket_buffered_max_bytes, 70_000);
}

#[test]
fn an_open_socket_is_connected_only_once_the_server_speaks() {
    let mut sim = Sim::new("");
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_socket_opened(5);
    assert!(
        statuses(&sim.drain()).is_empty(),
        "no status change on a bare open"
    );
    assert_eq!(sim.state(), State::Connecting);
    // A relay that accepts and then refuses (here 4409) never looked connected.
    sim.close(4409, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Busy));
    assert!(!statuses(&sim.log).iter().any(|s| s.0 == "connected"));
    // And the connect timeout still covers a server that opens but never speaks.
    let mut sim = Sim::new(r#","connectTimeoutMs":2000"#);
    sim.s.connect(0);
    sim.s.handle_socket_opened(10);
    let v = sim.advance(2000);
    assert!(v.iter().any(|o| matches!(o, Output::CloseSocket { .. })));
    assert_eq!(sim.s.status().reason, Some("connect_timeout"));
    // The first server frame establishes it.
    let mut sim = Sim::new("");
    sim.s.connect(0);
    sim.drain();
    let v = sim.opened(0);
    assert_eq!(
        statuses(&v),
        [("connected".into(), "connected".into(), None, 0)]
    );
}

/// A relay that says `session.created` and then closes 1008 every time: one token retry
/// through the backoff, then `failed{auth}` — no loop. Only a connection that stayed open
/// `STABLE_AFTER_MS` earns the retry again.
#[test]
fn close_1008_after_the_server_spoke_does_not_loop() {
    let mut sim =
        Sim::with_opts(r#"{"baseUrl":"https://h","interviewId":"i","tokenProvider":true}"#);
    sim.s.connect(0);
    sim.drain();
    let mut closes = 0;
    // Drive the relay: every open speaks and then closes 1008 100 ms later.
    for round in 0..20 {
        let now = sim.now;
        sim.s.handle_token(now, Ok(format!("t{round}")));
        sim.drain();
        sim.opened(now);
        sim.advance(100);
        let v = sim.close(1008, true);
        closes += 1;
        if sim.state() == State::Failed(FailReason::Auth) {
            break;
        }
        assert!(
            !v.iter().any(|o| matches!(o, Output::RequestToken)),
            "the retry waits for the backoff: {v:?}"
        );
        let at = sim
            .s
            .poll_timeout()
            .expect("a backoff timer before the retry");
        let v = sim.advance_to(at);
        assert!(v.iter().any(|o| matches!(o, Output::RequestToken)), "{v:?}");
    }
    assert_eq!(sim.state(), State::Failed(FailReason::Auth));
    assert_eq!(closes, 2, "one retry, then failed");

    // After a healthy connection the retry is available again.
    let mut sim =
        Sim::with_opts(r#"{"baseUrl":"https://h","interviewId":"i","tokenProvider":true}"#);
    sim.s.connect(0);
    sim.drain();
    for round in 0..3 {
        let now = sim.now;
        sim.s.handle_token(now, Ok(format!("t{round}")));
        sim.drain();
        sim.opened(now);
        sim.advance(6_000);
        sim.close(1008, true);
        assert_ne!(
            sim.state(),
            State::Failed(FailReason::Auth),
            "round {round}: 6 s open re-arms the retry"
        );
        let at = sim.s.poll_timeout().expect("a backoff timer");
        sim.advance_to(at);
    }
}
