//! The realtime endpoint's admission and limit rules, each seen by a real WebSocket client:
//! 1008 after the upgrade for bad tokens, subprotocol auth, 4409, 4403 with the md5 rollout,
//! 4429, 1009, and error events that leave the connection open.

mod common;

use std::time::Duration;

use common::*;
use realtime_voice_server::config::DEV_JWT_SECRET;
use realtime_voice_server::jwt::{sign, Claims};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[tokio::test]
async fn bad_expired_or_foreign_tokens_close_1008_after_the_upgrade() {
    let s = start(dev()).await;
    let expired = sign(&Claims::new("u", "iv1", now_s() - 60), DEV_JWT_SECRET);
    let wrong_secret = sign(
        &Claims::new("u", "iv1", now_s() + 60),
        "another-secret-that-is-long-enough-000",
    );
    let cases = [
        (s.ws_url("iv1", "?token=garbage"), "malformed token"),
        (s.ws_url("iv1", ""), "missing token"),
        (
            s.ws_url("iv1", &format!("?token={expired}")),
            "token expired",
        ),
        (
            s.ws_url("iv1", &format!("?token={wrong_secret}")),
            "invalid token signature",
        ),
        (
            s.ws_url("iv1", &format!("?token={}", token("u", "iv2"))),
            "token is for another interview",
        ),
    ];
    for (url, reason) in cases {
        // The handshake succeeds (101), so a browser gets the close code, not 1006.
        let mut ws = connect_url(&url).await;
        let (code, why) = expect_close(&mut ws).await;
        assert_eq!(code, 1008, "{reason}");
        assert!(why.contains(reason), "{why:?} should mention {reason:?}");
        assert!(
            !why.contains("ey"),
            "the reason never echoes a token: {why:?}"
        );
    }
    // Another user's interview.
    let mut a = connect(&s, "owner", "iv3", "").await;
    assert_eq!(next_event(&mut a).await["type"], "session.created");
    drop(a);
    let mut b = connect(&s, "intruder", "iv3", "").await;
    let (code, why) = expect_close(&mut b).await;
    assert_eq!(
        (code, why.as_str()),
        (1008, "interview belongs to another user")
    );
}

#[tokio::test]
async fn bearer_subprotocol_is_accepted_and_realtime_is_echoed() {
    let s = start(dev()).await;
    let mut req = s.ws_url("iv-sub", "").into_client_request().unwrap();
    let proto = format!("realtime, bearer.{}", token("u", "iv-sub"));
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&proto).unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "realtime"
    );
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
}

#[tokio::test]
async fn a_second_connection_to_an_interview_closes_4409_and_the_first_lives_on() {
    let s = start(dev()).await;
    let mut first = connect(&s, "u", "iv-dup", "").await;
    assert_eq!(next_event(&mut first).await["type"], "session.created");
    let mut second = connect(&s, "u", "iv-dup", "").await;
    let (code, _) = expect_close(&mut second).await;
    assert_eq!(code, 4409);
    // The first still works.
    send(&mut first, json!({"type": "response.cancel"})).await;
    let seen = until(&mut first, "response.done").await;
    assert_eq!(seen.last().unwrap()["response"]["status"], "cancelled");
    // Once it closes, the interview is free again.
    first.close(None).await.unwrap();
    while !matches!(
        next_frame(&mut first).await,
        Frame::Close(_) | Frame::Dropped(_)
    ) {}
    let mut third = None;
    for _ in 0..50 {
        let mut ws = connect(&s, "u", "iv-dup", "").await;
        match next_frame(&mut ws).await {
            Frame::Event(e) if e["type"] == "session.created" => {
                third = Some(ws);
                break;
            }
            // The server may not have noticed the first close yet.
            Frame::Close(Some((4409, _))) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(third.is_some(), "the slot was never freed");
}

#[tokio::test]
async fn feature_flag_off_closes_4403() {
    let mut c = dev();
    c.enable_realtime = false;
    let s = start(c).await;
    let mut ws = connect(&s, "alice", "iv-off", "").await;
    assert_eq!(
        expect_close(&mut ws).await,
        (4403, "realtime disabled".into())
    );
}

#[tokio::test]
async fn rollout_follows_the_checklist_md5_buckets() {
    // Buckets from Python: int(hashlib.md5(u.encode()).hexdigest(), 16) % 100
    // alice → 0, user-1 → 20, bob → 32, 00000000-0000-0000-0000-000000000000 → 47.
    for (percent, user, allowed) in [
        (33, "bob", true),
        (32, "bob", false),
        (33, "00000000-0000-0000-0000-000000000000", false),
        (48, "00000000-0000-0000-0000-000000000000", true),
        (1, "alice", true),
        (20, "user-1", false),
        (0, "alice", false),
    ] {
        let mut c = dev();
        c.rollout_percent = percent;
        let s = start(c).await;
        let iv = format!("iv-roll-{percent}-{}", user.len());
        let mut ws = connect(&s, user, &iv, "").await;
        match next_frame(&mut ws).await {
            Frame::Event(e) => {
                assert!(allowed, "{user} at {percent}%: got {e}");
                assert_eq!(e["type"], "session.created");
            }
            Frame::Close(Some((code, reason))) => {
                assert!(!allowed, "{user} at {percent}% was refused");
                assert_eq!((code, reason.as_str()), (4403, "realtime disabled"));
            }
            other => panic!("{other:?}"),
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn more_than_ten_appends_per_second_errors_then_persisting_closes_4429() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-rate", "").await;
    until(&mut ws, "session.created").await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    let small = append(&tone(10, 0.0));
    let t0 = tokio::time::Instant::now();
    // 20 appends every 500 ms (40/s); the sleeps pace the sender, they do not wait for the server.
    'bursts: for burst in 0..12u64 {
        tokio::time::sleep_until(t0 + Duration::from_millis(burst * 500)).await;
        for _ in 0..20 {
            let m = tokio_tungstenite::tungstenite::Message::Text(small.to_string().into());
            if futures_util::SinkExt::send(&mut ws, m).await.is_err() {
                break 'bursts;
            }
        }
    }
    let mut errors = 0;
    let code = loop {
        match next_frame(&mut ws).await {
            Frame::Event(e) if e["type"] == "error" => {
                assert_eq!(e["error"]["code"], "rate_limit_exceeded");
                errors += 1;
            }
            Frame::Event(_) => {}
            Frame::Close(Some((code, _))) => break code,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 4429);
    assert_eq!(
        errors, 3,
        "one error per over-limit second, the third closes"
    );
    let r = get(s.addr, "/dev/interviews/iv-rate/received", None)
        .await
        .json();
    // Two bursts of 20 fall within 900 ms of each other.
    assert_eq!(r["max_appends_per_s"], 40);
    // The raw count slides over arrival times: two or three bursts, or parts of them when a loaded
    // machine spreads a burst's arrival over a window's edge.
    let raw = r["max_appends_per_s_raw"].as_u64().unwrap();
    assert!((40..=60).contains(&raw), "{raw}");
    assert!(r["rejected_appends"].as_u64().unwrap() >= 40);
    assert_eq!(
        r["errors_sent"],
        json!([
            "rate_limit_exceeded",
            "rate_limit_exceeded",
            "rate_limit_exceeded"
        ])
    );
}

#[tokio::test]
async fn ten_appends_per_second_paced_or_in_a_catch_up_burst_are_never_limited() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-rate-ok", "").await;
    until(&mut ws, "session.created").await;
    let chunk = append(&tone(100, 0.0));
    let t0 = tokio::time::Instant::now();
    // A catch-up burst of 10, then one every 100 ms.
    for _ in 0..10 {
        send(&mut ws, chunk.clone()).await;
    }
    for i in 0..20u64 {
        tokio::time::sleep_until(t0 + Duration::from_millis(1000 + i * 100)).await;
        send(&mut ws, chunk.clone()).await;
    }
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    let r = get(s.addr, "/dev/interviews/iv-rate-ok/received", None)
        .await
        .json();
    assert_eq!(r["appends"], 30);
    assert_eq!(r["max_appends_per_s"], 10);
    assert_eq!(r["rejected_appends"], 0);
    assert_eq!(r["errors_sent"], json!([]));
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_1009() {
    let mut c = dev();
    c.limits.max_frame_bytes = 64 * 1024;
    let s = start(c).await;
    // Just over the limit (read whole, refused by the server's check) and far over it (refused
    // by the codec while the frame is still arriving).
    for size in [64 * 1024 + 1, 1024 * 1024] {
        let mut ws = connect(&s, "u", &format!("iv-big-{size}"), "").await;
        until(&mut ws, "session.created").await;
        let big = json!({"type": "input_audio_buffer.append", "audio": "A".repeat(size)});
        send(&mut ws, big).await;
        let (code, _) = expect_close(&mut ws).await;
        assert_eq!(code, 1009, "size {size}");
    }
    // Just under the limit is fine.
    let mut ws = connect(&s, "u", "iv-big-ok", "").await;
    until(&mut ws, "session.created").await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    send(&mut ws, append(&tone(600, 0.0))).await;
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    until(&mut ws, "input_audio_buffer.committed").await;
}

#[tokio::test]
async fn bad_frames_get_error_events_and_the_connection_stays() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-bad", "").await;
    until(&mut ws, "session.created").await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    let cases = [
        ("{not json", "invalid_json"),
        (
            r#"{"type":"no.such.event","event_id":"evt_7"}"#,
            "invalid_value",
        ),
        (
            r#"{"type":"input_audio_buffer.append","audio":"%%%"}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"session.update","session":{"input_audio_format":"g711_ulaw"}}"#,
            "invalid_audio_format",
        ),
    ];
    for (frame, code) in cases {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::Text(frame.into()))
            .await
            .unwrap();
        let e = next_event(&mut ws).await;
        assert_eq!(e["type"], "error", "{frame}");
        assert_eq!(e["error"]["code"], code, "{frame}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    // Still open and working.
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}}),
    )
    .await;
    assert_eq!(next_event(&mut ws).await["type"], "session.updated");
    let r = get(s.addr, "/dev/interviews/iv-bad/received", None)
        .await
        .json();
    assert_eq!(
        r["errors_sent"],
        json!([
            "invalid_json",
            "invalid_value",
            "invalid_audio_format",
            "invalid_audio_format",
            "invalid_audio_format"
        ])
    );
}
