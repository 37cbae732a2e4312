//! The network's fault model, on a virtual clock: offline around every step, a token endpoint
//! that goes down with the network, a path that goes silent without a FIN, the relay still
//! holding our dead socket, dead-link detection and flow control. None of these may end in
//! `failed` (auth or busy) or in a state with nothing pending.

mod session_support;

use realtime_voice::session::{
    FailReason, Link, Output, Session, SessionConfig, State, TokenFailure, WayOut,
};
use session_support::*;

const PROVIDER: &str =
    r#"{"baseUrl":"https://api.example.com","interviewId":"iv1","tokenProvider":true"#;

fn provider(extra: &str) -> Sim {
    Sim::with_opts(&format!("{PROVIDER}{extra}}}"))
}

/// A provider session that connected with token `t1`, spoke for `ms` and lost its link (1006).
fn connected_then_lost(ms: u64) -> Sim {
    let mut sim = provider("");
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_token(0, Ok("t1".into()));
    sim.opened(0);
    sim.advance(ms);
    sim.close(1006, true);
    sim
}

fn token_requests(v: &[Output]) -> usize {
    v.iter()
        .filter(|o| matches!(o, Output::RequestToken))
        .count()
}

fn open_urls(v: &[Output]) -> Vec<String> {
    v.iter()
        .filter_map(|o| match o {
            Output::OpenSocket { url, .. } => Some(url.clone()),
            _ => None,
        })
        .collect()
}

/// Advances in 1 s steps up to `ms`, asserting after each that a connecting or reconnecting
/// session always has a timer (liveness).
fn advance_live(sim: &mut Sim, ms: u64) -> Vec<Output> {
    let end = sim.now + ms;
    let mut v = Vec::new();
    while sim.now < end {
        v.extend(sim.advance((end - sim.now).min(1000)));
        if matches!(sim.state(), State::Connecting | State::Reconnecting) {
            assert!(
                matches!(sim.s.way_out(), WayOut::Timer(_)) && sim.s.poll_timeout().is_some(),
                "stuck in {:?}",
                sim.s.link()
            );
        }
    }
    v
}

#[test]
fn offline_before_the_first_open_connects_once_online() {
    let mut sim = Sim::new("");
    sim.s.connect(0);
    assert_eq!(opens(&sim.drain()), 1);
    // Wi-Fi drops while the candidate clicks "Voice Mode": the socket dies before opening.
    sim.s.handle_online(0, false);
    sim.close(1006, false);
    assert_eq!(sim.state(), State::Connecting);
    let v = advance_live(&mut sim, 20_000);
    assert_eq!(opens(&v), 0, "no attempt is spent while offline");
    assert!(matches!(sim.s.link(), Link::AwaitOnline { .. }));
    // Back online: a new attempt at once, and it connects.
    sim.s.handle_online(sim.now, true);
    assert_eq!(opens(&sim.drain()), 1);
    let now = sim.now;
    sim.opened(now);
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn offline_at_every_step_of_an_attempt_ends_in_a_new_attempt_once_online() {
    // While backing off, while waiting for a token, while opening.
    for step in ["backoff", "token", "opening"] {
        let mut sim = provider("");
        sim.s.connect(0);
        sim.drain();
        sim.s.handle_token(0, Ok("t".into()));
        sim.opened(0);
        sim.advance(10_000);
        sim.close(1006, true);
        assert_eq!(sim.state(), State::Reconnecting);
        match step {
            "backoff" => sim.s.handle_online(sim.now, false),
            "token" => {
                let at = sim.s.poll_timeout().unwrap();
                assert_eq!(token_requests(&sim.advance_to(at)), 1);
                sim.s.handle_online(sim.now, false);
                // The provider's own fetch fails: the network is down.
                sim.s.handle_token_result(
                    sim.now,
                    Err(TokenFailure::Network("Failed to fetch".into())),
                );
            }
            _ => {
                let at = sim.s.poll_timeout().unwrap();
                sim.advance_to(at);
                sim.s.handle_token(sim.now, Ok("t".into()));
                assert_eq!(opens(&sim.drain()), 1);
                sim.s.handle_online(sim.now, false);
            }
        }
        let v = advance_live(&mut sim, 60_000);
        assert!(opens(&v) <= 2, "{step}: offline attempts are only probes");
        assert_eq!(sim.state(), State::Reconnecting, "{step}");
        sim.s.handle_online(sim.now, true);
        let v = sim.drain();
        let asked = token_requests(&v) + opens(&v);
        assert!(
            asked >= 1,
            "{step}: online starts a new attempt at once: {v:?}"
        );
        if token_requests(&v) == 1 {
            sim.s.handle_token(sim.now, Ok("t2".into()));
            assert_eq!(opens(&sim.drain()), 1, "{step}");
        }
        let now = sim.now;
        sim.opened(now);
        assert_eq!(sim.state(), State::Connected, "{step}");
    }
}

#[test]
fn token_provider_failing_with_the_network_is_a_retried_attempt_not_auth() {
    let mut sim = connected_then_lost(30_000);
    // Every reconnect's token request fails for a minute: the endpoint is down with the network.
    // Each attempt then tries the last token (the server would say 1008 if it had expired);
    // the network refuses those sockets too.
    let mut failures = 0;
    while sim.now < 90_000 {
        let at = sim.s.poll_timeout().unwrap();
        let v = sim.advance_to(at);
        if token_requests(&v) == 1 {
            failures += 1;
            let failure = if failures % 2 == 0 {
                TokenFailure::Network("TypeError: Failed to fetch".into())
            } else {
                TokenFailure::Timeout
            };
            sim.s.handle_token_result(sim.now, Err(failure));
            let urls = open_urls(&sim.drain());
            assert_eq!(urls.len(), 1, "the attempt goes on with the last token");
            assert!(urls[0].contains("token=t1"));
            sim.close(1006, false);
        }
        assert_eq!(
            sim.state(),
            State::Reconnecting,
            "never failed for an outage"
        );
    }
    assert!(
        failures >= 8,
        "{failures} attempts in the outage (beyond maxReconnectAttempts)"
    );
    // The network is back.
    let at = sim.s.poll_timeout().unwrap();
    assert_eq!(token_requests(&sim.advance_to(at)), 1);
    sim.s.handle_token(sim.now, Ok("t2".into()));
    sim.drain();
    let now = sim.now;
    sim.opened(now);
    assert_eq!(sim.state(), State::Connected);
    assert_eq!(sim.s.status().reason, Some("reconnected"));
}

#[test]
fn a_provider_hanging_on_a_dead_path_does_not_hold_the_reconnect() {
    let mut sim = connected_then_lost(30_000);
    let at = sim.s.poll_timeout().unwrap();
    assert_eq!(token_requests(&sim.advance_to(at)), 1);
    // The provider's fetch rides a pooled connection that died with the old path: no answer.
    let asked = sim.now;
    let mut urls = Vec::new();
    while urls.is_empty() {
        let at = sim.s.poll_timeout().unwrap();
        urls = open_urls(&sim.advance_to(at));
    }
    assert_eq!(
        sim.now - asked,
        5_000,
        "the token deadline is 5 s, not the connect timeout"
    );
    assert!(urls[0].contains("token=t1"));
    let now = sim.now;
    sim.opened(now);
    assert_eq!(sim.state(), State::Connected);
    // The provider's late answer changes nothing.
    sim.s.handle_token(sim.now, Ok("t2".into()));
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn an_expired_fallback_token_asks_the_provider_again_without_failing() {
    let mut sim = connected_then_lost(30_000);
    let at = sim.s.poll_timeout().unwrap();
    sim.advance_to(at);
    sim.s
        .handle_token_result(sim.now, Err(TokenFailure::Network("offline".into())));
    assert_eq!(opens(&sim.drain()), 1, "fallback to t1");
    // t1 has expired meanwhile: the server refuses it.
    sim.s.handle_socket_opened(sim.now);
    sim.close(1008, true);
    assert_eq!(sim.state(), State::Reconnecting);
    assert_eq!(sim.s.status().reason, Some("token_refresh"));
    let at = sim.s.poll_timeout().unwrap();
    assert_eq!(token_requests(&sim.advance_to(at)), 1);
    sim.s.handle_token(sim.now, Ok("t2".into()));
    let urls = open_urls(&sim.drain());
    assert!(urls[0].contains("token=t2"));
    // A token the provider itself just gave, refused: the one auth retry, then auth.
    sim.s.handle_socket_opened(sim.now);
    sim.close(1008, true);
    assert_eq!(sim.state(), State::Reconnecting);
    let at = sim.s.poll_timeout().unwrap();
    sim.advance_to(at);
    sim.s
        .handle_token_result(sim.now, Err(TokenFailure::Network("offline".into())));
    assert_eq!(
        opens(&sim.drain()),
        0,
        "a refused token is never used as the fallback"
    );
}

#[test]
fn a_provider_that_refuses_fails_auth_at_once_on_the_first_connect_and_after_three_on_a_reconnect()
{
    let mut sim = provider("");
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_token(0, Err("401 from /my/jwt".into()));
    sim.drain();
    assert_eq!(sim.state(), State::Failed(FailReason::Auth));

    let mut sim = connected_then_lost(10_000);
    for n in 1..=3 {
        let at = sim.s.poll_timeout().unwrap();
        assert_eq!(token_requests(&sim.advance_to(at)), 1);
        sim.s.handle_token(sim.now, Err("401 from /my/jwt".into()));
        sim.drain();
        let want = if n < 3 {
            State::Reconnecting
        } else {
            State::Failed(FailReason::Auth)
        };
        assert_eq!(sim.state(), want, "refusal {n}");
    }
}

#[test]
fn a_token_provider_that_never_answers_times_out_and_is_asked_again() {
    let mut sim = provider(r#","connectTimeoutMs":3000"#);
    sim.s.connect(0);
    assert_eq!(token_requests(&sim.drain()), 1);
    let v = sim.advance(3000);
    assert_eq!(sim.s.status().reason, Some("token_timeout"));
    assert_eq!(sim.state(), State::Connecting);
    let at = sim.s.poll_timeout().unwrap();
    let v2 = sim.advance_to(at);
    assert_eq!(token_requests(&v) + token_requests(&v2), 1, "asked again");
    sim.s.handle_token(sim.now, Ok("t".into()));
    assert_eq!(opens(&sim.drain()), 1);
}

#[test]
fn a_silent_path_reconnects_presenting_the_previous_session_id_and_retries_4409() {
    let mut sim = Sim::new(r#","deadLinkTimeoutMs":10000"#);
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_socket_opened(0);
    sim.msg(r#"{"type":"session.created","session":{"id":"sess_0123456789abcdef"}}"#);
    assert_eq!(sim.state(), State::Connected);
    sim.advance(20_000);
    // Mid-answer, the path goes silent (no FIN): a frame is due and never comes.
    sim.msg(r#"{"type":"response.created","response":{"id":"resp_1"}}"#);
    sim.msg(&audio_delta("item_1", 2400));
    let t0 = sim.now;
    let v = sim.advance(10_000);
    assert!(
        v.iter().any(|o| matches!(
            o,
            Output::CloseSocket {
                reason: "dead_link",
                ..
            }
        )),
        "the dead link is dropped within deadLinkTimeoutMs: {v:?}"
    );
    assert!(sim.now - t0 <= 15_000);
    assert_eq!(sim.state(), State::Reconnecting);
    assert_eq!(sim.s.status().reason, Some("dead_link"));
    assert_eq!(sim.s.metrics().dead_links, 1);
    // The reconnect presents the take-back proof.
    let at = sim.s.poll_timeout().unwrap();
    let urls = open_urls(&sim.advance_to(at));
    assert_eq!(urls.len(), 1);
    assert!(
        urls[0].ends_with("&resume=sess_0123456789abcdef"),
        "{}",
        urls[0]
    );
    // A relay without take-back still holds the interview: 4409 is retried, not busy.
    let first_4409 = sim.now;
    sim.s.handle_socket_opened(sim.now);
    sim.close(4409, true);
    assert_eq!(sim.state(), State::Reconnecting);
    assert_eq!(sim.s.status().reason, Some("interview_held"));
    let mut refused = 1;
    loop {
        let at = sim.s.poll_timeout().unwrap();
        let v = sim.advance_to(at);
        if opens(&v) == 0 {
            continue;
        }
        if sim.now - first_4409 >= 25_000 {
            // The relay noticed the dead peer: the interview is back.
            sim.s.handle_socket_opened(sim.now);
            sim.msg(r#"{"type":"session.created","session":{"id":"sess_2"}}"#);
            break;
        }
        sim.s.handle_socket_opened(sim.now);
        sim.close(4409, true);
        refused += 1;
        assert_eq!(sim.state(), State::Reconnecting);
    }
    assert!(refused > 2);
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn a_4409_past_the_held_window_is_busy_and_4410_is_taken_over() {
    let mut sim = Sim::new(r#","backoffBaseMs":1000,"backoffMaxMs":1000"#);
    sim.connect_open();
    sim.advance(10_000);
    sim.close(1006, true);
    let start = sim.now;
    while sim.state() == State::Reconnecting {
        let at = sim.s.poll_timeout().unwrap();
        if opens(&sim.advance_to(at)) == 1 {
            sim.s.handle_socket_opened(sim.now);
            sim.close(4409, true);
        }
        assert!(sim.now - start < 40_000);
    }
    assert_eq!(sim.state(), State::Failed(FailReason::Busy));
    assert!(sim.now - start >= 30_000, "held window is at least 30 s");

    let mut sim = Sim::new("");
    sim.connect_open();
    sim.close(4410, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Busy));
    assert_eq!(sim.s.status().reason, Some("taken_over"));
}

#[test]
fn healthy_counts_from_the_servers_first_frame_not_the_sockets_open() {
    let mut sim = Sim::new(r#","maxReconnectAttempts":2,"reconnectWindowMs":0"#);
    sim.connect_open();
    sim.close(1006, true);
    for _ in 0..2 {
        let at = sim.s.poll_timeout().unwrap();
        sim.advance_to(at);
        // Opens and stays silent for 6 s, then the server speaks and drops 1 s later.
        sim.s.handle_socket_opened(sim.now);
        sim.advance(6_000);
        if sim.state() != State::Reconnecting {
            break;
        }
        sim.msg(SESSION_CREATED);
        sim.advance(1_000);
        sim.close(1006, true);
    }
    assert_eq!(
        sim.s.status().attempt,
        2,
        "connections that spoke for 1 s are not healthy"
    );
}

#[test]
fn a_network_outage_after_a_connection_is_retried_for_the_reconnect_window() {
    let mut sim = Sim::new(r#","maxReconnectAttempts":2,"reconnectWindowMs":120000"#);
    sim.connect_open();
    sim.advance(10_000);
    sim.close(1006, true);
    let lost = sim.now;
    while sim.state() == State::Reconnecting {
        let at = sim.s.poll_timeout().unwrap();
        if opens(&sim.advance_to(at)) == 1 {
            sim.close(1006, false);
        }
    }
    assert!(
        sim.now - lost >= 120_000,
        "gave up after {} ms",
        sim.now - lost
    );
    assert_eq!(sim.state(), State::Failed(FailReason::Network));
    assert_eq!(sim.s.status().reason, Some("reconnect_exhausted"));
}

#[test]
fn an_attempt_that_saw_the_network_go_restarts_when_it_comes_back() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.advance(10_000);
    sim.close(1006, true);
    let at = sim.s.poll_timeout().unwrap();
    assert_eq!(opens(&sim.advance_to(at)), 1);
    sim.s.handle_online(sim.now, false);
    sim.advance(500);
    sim.s.handle_online(sim.now, true);
    let v = sim.drain();
    assert!(v.iter().any(|o| matches!(o, Output::CloseSocket { .. })));
    assert_eq!(opens(&v), 1, "the doomed attempt is replaced at once");
}

#[test]
fn sent_bytes_that_do_not_drain_declare_the_link_dead_but_a_slow_link_is_not() {
    // A slow uplink: the queue drains, slowly.
    let mut sim = Sim::new("");
    sim.connect_open();
    for i in 0..30u32 {
        sim.advance(1000);
        sim.s.handle_socket_buffered(sim.now, 40_000 - i * 1000);
    }
    assert_eq!(sim.state(), State::Connected);
    // A dead path: the same bytes stay queued.
    for _ in 0..9 {
        sim.advance(1000);
        sim.s.handle_socket_buffered(sim.now, 10_000);
    }
    assert_eq!(sim.state(), State::Connected);
    let v = sim.advance(2000);
    assert!(v.iter().any(|o| matches!(
        o,
        Output::CloseSocket {
            reason: "dead_link",
            ..
        }
    )));
    assert_eq!(sim.state(), State::Reconnecting);
}

#[test]
fn flow_control_keeps_audio_in_the_backlog_while_the_socket_is_full() {
    let mut sim = Sim::new(r#","maxBacklogMs":10000"#);
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    let block = vec![0.1f32; 2400];
    // One second of audio flows; then the socket holds 40 kB and does not drain for 5 s.
    for _ in 0..10 {
        sim.s.handle_mic_samples(sim.now, &block);
        sim.advance(100);
    }
    let sent_before = sim.s.metrics().sent_audio_ms;
    sim.s.handle_socket_buffered(sim.now, 40_000);
    let mut appends = 0;
    for _ in 0..50 {
        sim.s.handle_mic_samples(sim.now, &block);
        let v = sim.advance(100);
        sim.s.handle_socket_buffered(sim.now, 40_000 + 1);
        appends += sends(&v)
            .iter()
            .filter(|f| f.contains("input_audio_buffer.append"))
            .count();
    }
    assert_eq!(appends, 0, "nothing is pumped into a full socket");
    let m = sim.s.metrics();
    assert_eq!(m.sent_audio_ms, sent_before);
    assert_eq!(m.dropped_audio_ms, 0, "inside maxBacklogMs nothing is lost");
    assert_eq!(
        m.captured_audio_ms,
        m.sent_audio_ms + m.buffered_audio_ms + m.dropped_audio_ms
    );
    // It drains: the backlog goes out in catch-up chunks within the rate limit.
    sim.s.handle_socket_buffered(sim.now, 0);
    for _ in 0..20 {
        sim.s.handle_mic_samples(sim.now, &block);
        sim.advance(100);
        sim.s.handle_socket_buffered(sim.now, 0);
    }
    let m = sim.s.metrics();
    assert!(m.buffered_audio_ms <= 200, "caught up: {m:?}");
    assert_eq!(m.dropped_audio_ms, 0);
    assert_rate_ok(&append_times(&sim));
}

/// Regression (found by the `session_inputs` fuzz target's liveness checks): a connect timeout
/// whose retry the full jitter draws with no delay left `Backoff { at: now }` behind, so
/// `handle_timeout(now)` returned with a timer still due at `now` (the shell had to arm a 0 ms
/// timer and call again). The retry now starts within the same call.
#[test]
fn a_retry_drawn_with_no_delay_starts_within_the_same_timeout_call() {
    let opts = format!(
        r#"{{{BASE},"connectTimeoutMs":1000,"backoffBaseMs":10,"backoffMaxMs":10,"maxReconnectAttempts":3}}"#
    );
    let mut immediate_retries = 0;
    for seed in 0..64 {
        let cfg = SessionConfig::from_json(&opts).expect("valid options");
        let mut sim = Sim {
            s: Session::new(cfg, seed),
            now: 0,
            log: Vec::new(),
            times: Vec::new(),
        };
        sim.s.connect(0);
        sim.drain();
        // The socket never opens: every attempt times out, until the sequence is exhausted.
        while let Some(t) = sim.s.poll_timeout() {
            sim.now = t;
            sim.s.handle_timeout(t);
            let v = sim.drain();
            let next = sim.s.poll_timeout();
            assert!(
                next.is_none_or(|n| n > t),
                "seed {seed}: handle_timeout({t}) left {next:?} due ({:?})",
                sim.s.link()
            );
            let timed_out = statuses(&v).iter().any(|s| s.1 == "connect_timeout");
            if timed_out && opens(&v) == 1 {
                immediate_retries += 1;
            }
        }
        assert_eq!(
            sim.state(),
            State::Failed(FailReason::Network),
            "seed {seed}"
        );
    }
    // With a 10 ms ceiling about one retry in eleven has no delay: the case was exercised.
    assert!(immediate_retries > 0);
}
