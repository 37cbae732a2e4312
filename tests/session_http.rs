//! HTTP text requests are tagged (`seq`): a reply for a request no longer in flight (after a
//! disconnect, a failed token, a timeout) is ignored, and a request without a reply fails after
//! `HTTP_TIMEOUT_MS` with an `http_timeout` error instead of blocking the queue for ever.

mod session_support;

use realtime_voice::session::machine::HTTP_TIMEOUT_MS;
use realtime_voice::session::{HttpFailure, Output, State};
use session_support::*;

fn http_requests(v: &[Output]) -> Vec<(u64, String)> {
    v.iter()
        .filter_map(|o| match o {
            Output::HttpText { seq, body_json, .. } => Some((*seq, body_json.clone())),
            _ => None,
        })
        .collect()
}

fn transcripts(v: &[Output]) -> Vec<String> {
    events(v)
        .iter()
        .filter(|e| e.name() == "transcript")
        .map(|e| e.to_json())
        .collect()
}

fn errors(v: &[Output]) -> Vec<String> {
    events(v)
        .iter()
        .filter(|e| e.name() == "error")
        .map(|e| e.to_json())
        .collect()
}

/// A session in text mode over HTTP (realtime disabled by the relay).
fn text_sim(opts: &str) -> Sim {
    let mut sim = Sim::with_opts(opts);
    sim.s.connect(0);
    sim.drain();
    if let Some(Output::RequestToken) = sim.log.iter().find(|o| matches!(o, Output::RequestToken)) {
        sim.s.handle_token(0, Ok("t1".into()));
        sim.drain();
    }
    sim.opened(0);
    sim.close(4403, true);
    assert_eq!(sim.state(), State::Text);
    sim
}

const STATIC: &str =
    r#"{"baseUrl":"https://h","interviewId":"i","token":"tok","httpFallback":true}"#;

#[test]
fn a_stale_reply_after_disconnect_and_reconnect_is_ignored() {
    let mut sim = text_sim(STATIC);
    sim.s.send_text(sim.now, "first").unwrap();
    let old = http_requests(&sim.drain());
    assert_eq!(old.len(), 1);
    sim.s.disconnect(sim.now);
    sim.drain();
    // Back in text mode, a new message goes out at once: the old request was forgotten.
    let mut sim2 = sim;
    sim2.s.connect(sim2.now);
    sim2.drain();
    sim2.opened(sim2.now);
    sim2.close(4403, true);
    sim2.s.send_text(sim2.now, "second").unwrap();
    let new = http_requests(&sim2.drain());
    assert_eq!(new.len(), 1, "not blocked by the forgotten request");
    assert_ne!(new[0].0, old[0].0);
    // The old request's reply arrives late: ignored, the new one still in flight.
    sim2.s
        .handle_http_reply(sim2.now, old[0].0, Ok(r#"{"reply":"old"}"#.into()));
    assert!(sim2.drain().is_empty());
    sim2.s
        .handle_http_reply(sim2.now, new[0].0, Ok(r#"{"reply":"new"}"#.into()));
    let v = sim2.drain();
    assert_eq!(
        transcripts(&v),
        [r#"{"role":"assistant","itemId":"http_1","text":"new","final":true}"#]
    );
}

#[test]
fn a_failed_token_forgets_the_request_in_flight() {
    let mut sim = text_sim(
        r#"{"baseUrl":"https://h","interviewId":"i","tokenProvider":true,"httpFallback":true,"maxReconnectAttempts":0}"#,
    );
    sim.s.send_text(sim.now, "a").unwrap();
    let a = http_requests(&sim.drain());
    assert_eq!(a.len(), 1);
    // A 401 makes the next message ask for a fresh token, which the provider then refuses.
    sim.s
        .handle_http_reply(sim.now, a[0].0, Err(HttpFailure::Status(401)));
    sim.s.send_text(sim.now, "b").unwrap();
    let v = sim.drain();
    assert!(v.iter().any(|o| matches!(o, Output::RequestToken)));
    sim.s.handle_token(sim.now, Err("login expired".into()));
    sim.drain();
    // The stale reply for `a` changes nothing.
    sim.s
        .handle_http_reply(sim.now, a[0].0, Ok(r#"{"reply":"x"}"#.into()));
    assert!(sim.drain().is_empty());
    // A new message goes out with a fresh token and a new tag.
    sim.s.send_text(sim.now, "c").unwrap();
    assert!(sim
        .drain()
        .iter()
        .any(|o| matches!(o, Output::RequestToken)));
    sim.s.handle_token(sim.now, Ok("t2".into()));
    let c = http_requests(&sim.drain());
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, r#"{"text":"c"}"#);
    assert!(c[0].0 > a[0].0);
}

#[test]
fn a_request_without_a_reply_times_out_reported_and_the_queue_moves_on() {
    let mut sim = text_sim(STATIC);
    let t0 = sim.now;
    sim.s.send_text(t0, "one").unwrap();
    sim.s.send_text(t0, "two").unwrap();
    let one = http_requests(&sim.drain());
    assert_eq!(one.len(), 1);
    assert_eq!(sim.s.poll_timeout(), Some(t0 + HTTP_TIMEOUT_MS));
    let v = sim.advance(HTTP_TIMEOUT_MS - 1);
    assert!(v.is_empty(), "not before the deadline: {v:?}");
    let v = sim.advance(1);
    let errs = errors(&v);
    assert_eq!(errs.len(), 1, "{v:?}");
    assert!(errs[0].contains(r#""code":"http_timeout""#), "{}", errs[0]);
    let two = http_requests(&v);
    assert_eq!(two.len(), 1, "the next message goes out");
    assert_eq!(two[0].1, r#"{"text":"two"}"#);
    assert_eq!(
        sim.s.poll_timeout(),
        Some(t0 + 2 * HTTP_TIMEOUT_MS),
        "its own deadline"
    );
    // The timed-out request's late reply is ignored.
    sim.s
        .handle_http_reply(sim.now, one[0].0, Ok(r#"{"reply":"late"}"#.into()));
    assert!(sim.drain().is_empty());
    sim.s
        .handle_http_reply(sim.now, two[0].0, Ok(r#"{"reply":"ok"}"#.into()));
    assert_eq!(transcripts(&sim.drain()).len(), 1);
    assert_eq!(sim.s.poll_timeout(), None, "nothing in flight, no deadline");
}
