//! Text fallback: every trigger, and text over the socket or HTTP.

mod session_support;

use realtime_voice::protocol::json;
use realtime_voice::session::{
    AudioFailure, CommandError, FailReason, HttpFailure, Mode, Output, State,
};
use session_support::*;

fn mode_events(v: &[Output]) -> Vec<String> {
    event_jsons(v, "mode")
}

#[test]
fn every_audio_failure_falls_back_to_text_and_keeps_the_socket() {
    for (f, reason) in [
        (AudioFailure::MicDenied, "mic_denied"),
        (AudioFailure::MicAbsent, "mic_absent"),
        (AudioFailure::NoAudioWorklet, "no_audio_worklet"),
        (AudioFailure::AudioContextFailed, "audio_context_failed"),
        (AudioFailure::TrackEnded, "track_ended"),
    ] {
        let mut sim = Sim::new("");
        sim.connect_open();
        sim.s.handle_audio_failed(sim.now, f);
        let v = sim.drain();
        assert_eq!(sim.s.mode(), Mode::Text, "{reason}");
        assert_eq!(
            sim.state(),
            State::Connected,
            "the socket carries text: {reason}"
        );
        assert_eq!(
            mode_events(&v),
            [format!(r#"{{"mode":"text","reason":"{reason}"}}"#)]
        );
        assert!(v.iter().any(|o| matches!(o, Output::StopAudio)));
        // Text now goes over the socket with text output.
        sim.s.send_text(sim.now, "hello").unwrap();
        let v = sim.drain();
        let f = sends(&v);
        assert_eq!(f.len(), 2);
        assert_eq!(frame_type(f[0]), "conversation.item.create");
        assert_eq!(
            f[1],
            r#"{"type":"response.create","response":{"output_modalities":["text"]}}"#
        );
        // Mic samples are no longer streamed.
        sim.s.handle_mic_samples(sim.now, &[0.1; 4800]);
        sim.advance(1000);
        assert!(sends(&sim.drain()).is_empty());
    }
}

#[test]
fn audio_failure_while_connecting_still_connects_for_text() {
    let mut sim = Sim::new("");
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_audio_failed(0, AudioFailure::MicDenied);
    sim.opened(10);
    sim.drain();
    assert_eq!(sim.state(), State::Connected);
    assert_eq!(sim.s.mode(), Mode::Text);
}

#[test]
fn unsupported_device_rate_is_an_audio_failure() {
    let mut sim = Sim::new("");
    sim.s.connect(0);
    sim.s.handle_audio_started(0, 1, 1);
    sim.s.handle_playback_started(0, 24_000);
    let v = sim.drain();
    assert_eq!(sim.s.mode(), Mode::Text);
    assert!(events(&v)
        .iter()
        .any(|e| e.name() == "error" && e.to_json().contains("unsupported_audio_format")));
}

#[test]
fn beta_shape_text_response() {
    let mut sim = Sim::new(r#","protocol":"beta","mode":"text""#);
    sim.connect_open();
    assert!(
        !sim.log.iter().any(|o| matches!(o, Output::StartAudio)),
        "text mode never starts audio"
    );
    sim.s.send_text(sim.now, "hi").unwrap();
    let v = sim.drain();
    assert_eq!(
        sends(&v)[1],
        r#"{"type":"response.create","response":{"modalities":["text"]}}"#
    );
}

#[test]
fn voice_mode_text_asks_for_audio() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.send_text(sim.now, "hi").unwrap();
    let v = sim.drain();
    assert_eq!(
        sends(&v)[1],
        r#"{"type":"response.create","response":{"output_modalities":["audio"]}}"#
    );
}

#[test]
fn text_over_http_when_realtime_is_disabled() {
    let mut sim = Sim::new(r#","httpFallback":true"#);
    sim.connect_open();
    sim.close(4403, true);
    assert_eq!(sim.state(), State::Text);
    sim.s.send_text(sim.now, "what \"now\"?").unwrap();
    sim.s.send_text(sim.now, "second").unwrap();
    let v = sim.drain();
    let reqs: Vec<_> = v
        .iter()
        .filter_map(|o| match o {
            Output::HttpText {
                url,
                token,
                body_json,
                seq,
            } => Some((url.clone(), token.clone(), body_json.clone(), *seq)),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 1, "one request at a time");
    assert_eq!(
        reqs[0].0,
        "https://api.example.com/api/v1/interviews/iv1/messages"
    );
    assert_eq!(reqs[0].1, "tok.SECRET.sig");
    assert_eq!(reqs[0].2, r#"{"text":"what \"now\"?"}"#);
    assert!(!format!("{v:?}").contains("SECRET"));
    let seq1 = reqs[0].3;
    sim.s
        .handle_http_reply(sim.now, seq1, Ok(r#"{"reply":"Fine."}"#.into()));
    let v = sim.drain();
    let tr: Vec<String> = events(&v)
        .iter()
        .filter(|e| e.name() == "transcript")
        .map(|e| e.to_json())
        .collect();
    assert_eq!(
        tr,
        [r#"{"role":"assistant","itemId":"http_1","text":"Fine.","final":true}"#]
    );
    let seq2 = v
        .iter()
        .find_map(|o| match o {
            Output::HttpText { body_json, seq, .. } if body_json == r#"{"text":"second"}"# => {
                Some(*seq)
            }
            _ => None,
        })
        .expect("the second message goes out after the first reply");
    assert_ne!(seq1, seq2, "every request has its own tag");
    sim.s
        .handle_http_reply(sim.now, seq2, Err(HttpFailure::Status(503)));
    let v = sim.drain();
    assert!(events(&v)
        .iter()
        .any(|e| e.name() == "error" && e.to_json().contains("http_503")));
    // A spurious reply is ignored.
    sim.s.handle_http_reply(sim.now, seq2, Ok("{}".into()));
    assert!(sim.drain().is_empty());
}

#[test]
fn http_text_with_a_token_provider_asks_for_a_token() {
    let mut sim = Sim::with_opts(
        r#"{"baseUrl":"https://h","interviewId":"i","tokenProvider":true,"httpFallback":true,"maxReconnectAttempts":0,"reconnectWindowMs":0}"#,
    );
    sim.s.connect(0);
    sim.drain();
    sim.s.handle_token(0, Ok("t1".into()));
    sim.opened(0);
    sim.close(1006, true);
    assert_eq!(sim.state(), State::Text, "0 attempts: exhausted at once");
    // The last token is reused while it works...
    sim.s.send_text(0, "hi").unwrap();
    let v = sim.drain();
    let seq = v
        .iter()
        .find_map(|o| match o {
            Output::HttpText { token, seq, .. } if token == "t1" => Some(*seq),
            _ => None,
        })
        .expect("an HTTP request with the last token");
    // ...and a 401 makes the next request ask the provider for a fresh one.
    sim.s
        .handle_http_reply(0, seq, Err(HttpFailure::Status(401)));
    sim.s.send_text(0, "again").unwrap();
    let v = sim.drain();
    assert!(v.iter().any(|o| matches!(o, Output::RequestToken)));
    assert!(!v.iter().any(|o| matches!(o, Output::HttpText { .. })));
    sim.s.handle_token(0, Ok("t2".into()));
    let v = sim.drain();
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::HttpText { token, .. } if token == "t2")));
}

#[test]
fn text_without_any_transport_is_a_typed_error() {
    let mut sim = Sim::new("");
    assert!(matches!(
        sim.s.send_text(0, "x"),
        Err(CommandError::NoTextTransport { state: State::Idle })
    ));
    sim.connect_open();
    sim.close(4403, true);
    assert_eq!(sim.state(), State::Failed(FailReason::Unsupported));
    let e = sim.s.send_text(0, "x").unwrap_err();
    assert!(e.to_string().contains("httpFallback"), "{e}");
    let big = "x".repeat(5 << 20);
    assert!(matches!(
        sim.s.send_text(0, &big),
        Err(CommandError::TooLong { .. })
    ));
}

#[test]
fn session_update_is_sent_and_resent_after_reconnect() {
    let mut sim = Sim::new(r#","protocol":"beta""#);
    assert!(sim.s.update_session(0, "[]").is_err());
    sim.s
        .update_session(0, r#"{"instructions":"be brief","voice":"alloy"}"#)
        .unwrap();
    let v = sim.connect_open();
    assert_eq!(
        sends(&v),
        [r#"{"type":"session.update","session":{"instructions":"be brief","voice":"alloy"}}"#]
    );
    sim.close(1001, true);
    let at = sim.s.poll_timeout().unwrap();
    sim.advance_to(at);
    let v = sim.opened(sim.now);
    assert_eq!(sends(&v).len(), 1);
    assert_eq!(frame_type(sends(&v)[0]), "session.update");
    let j = json::parse(sends(&v)[0], 4096).unwrap();
    assert!(j.get("session").is_some());
}

#[test]
fn connect_again_after_text_fallback_retries_voice() {
    let mut sim = Sim::new(r#","httpFallback":true"#);
    sim.connect_open();
    sim.close(4403, true);
    assert_eq!(sim.s.mode(), Mode::Text);
    sim.connect_open();
    assert_eq!(sim.s.mode(), Mode::Voice);
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn text_during_an_answer_gets_its_response_once_the_answer_is_done() {
    let mut sim = Sim::answering("");
    sim.drain();
    // The server would refuse a second response now: the item goes, the request waits.
    sim.s.send_text(sim.now, "one").unwrap();
    sim.s.send_text(sim.now, "two").unwrap();
    let v = sim.drain();
    let f = sends(&v);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f
        .iter()
        .all(|f| frame_type(f) == "conversation.item.create"));
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"resp_1","status":"completed"}}"#);
    assert_eq!(response_creates(&v), 1, "one response for both messages");
    sim.msg(r#"{"type":"response.created","response":{"id":"r2"}}"#);
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"r2","status":"completed"}}"#);
    assert_eq!(response_creates(&v), 0, "nothing is owed any more");
    // With no answer in progress the request goes at once.
    sim.s.send_text(sim.now, "three").unwrap();
    assert_eq!(response_creates(&sim.drain()), 1);
}

#[test]
fn text_during_an_answer_cut_short_is_answered_after_the_cancel() {
    let mut sim = Sim::answering("");
    sim.s.send_text(sim.now, "stop, a question").unwrap();
    sim.s.interrupt(sim.now);
    let v = sim.drain();
    assert_eq!(response_creates(&v), 0);
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"resp_1","status":"cancelled"}}"#);
    assert_eq!(response_creates(&v), 1);
}

#[test]
fn a_lost_link_forgets_the_waiting_request() {
    let mut sim = Sim::answering("");
    sim.s.send_text(sim.now, "typed").unwrap();
    // The link is lost before the answer ends: the waiting request goes with it.
    sim.close(1006, true);
    let at = sim.s.poll_timeout().unwrap();
    sim.advance_to(at);
    let now = sim.now;
    sim.opened(now);
    sim.drain();
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"resp_1","status":"completed"}}"#);
    assert_eq!(response_creates(&v), 0, "not owed after the reconnect");
}

#[test]
fn a_response_create_the_server_refuses_as_busy_is_sent_again_after_its_response() {
    let mut sim = Sim::new("");
    sim.connect_open();
    // The server's VAD started a response we have not heard of yet: ours is refused.
    sim.s.send_text(sim.now, "typed").unwrap();
    assert_eq!(response_creates(&sim.drain()), 1);
    // On the wire: its response.created (sent before our frames arrived), then the refusal.
    sim.msg(r#"{"type":"response.created","response":{"id":"resp_1"}}"#);
    sim.msg(r#"{"type":"error","error":{"type":"invalid_request_error","code":"conversation_already_has_active_response","message":"Conversation already has an active response in progress: resp_1"}}"#);
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"resp_1","status":"completed"}}"#);
    assert_eq!(response_creates(&v), 1, "asked for again");
}
