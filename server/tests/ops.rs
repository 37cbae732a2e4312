//! Operations: fault injection (drop, close code, malformed frame, delayed responses), dev-only
//! routes, the received-audio summary, Prometheus metrics, CORS, the CSP on HTML and static files.

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use serde_json::json;

async fn arm(s: &Server, fault: serde_json::Value) {
    let r = post_json(s.addr, "/dev/faults", None, &fault).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn fault_drop_ends_the_tcp_connection_without_a_close_frame_once() {
    let s = start(dev()).await;
    arm(&s, json!({"interview_id": "iv-drop", "drop_after_ms": 300})).await;
    let t0 = Instant::now();
    let mut ws = connect(&s, "u", "iv-drop", "").await;
    let end = loop {
        match next_frame(&mut ws).await {
            Frame::Event(_) => {}
            other => break other,
        }
    };
    assert!(matches!(end, Frame::Dropped(_)), "{end:?}");
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // `once` by default: the next connection is healthy.
    let mut ws = connect(&s, "u", "iv-drop", "").await;
    until(&mut ws, "response.output_audio.delta").await;
}

#[tokio::test]
async fn fault_close_code_and_reason() {
    let s = start(dev()).await;
    arm(&s, json!({"interview_id": "iv-close", "close_code": 1011, "close_reason": "upstream failed", "close_after_ms": 150})).await;
    // Measured from before the connect, so the bound holds whatever the handshake takes.
    let t0 = Instant::now();
    let mut ws = connect(&s, "u", "iv-close", "").await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1011, "upstream failed".into())
    );
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let r = post_json(
        s.addr,
        "/dev/faults",
        None,
        &json!({"interview_id": "x", "close_code": 1006}),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn fault_malformed_frame_then_normal_events() {
    let s = start(dev()).await;
    arm(
        &s,
        json!({"interview_id": "iv-mal", "malformed_frame": true}),
    )
    .await;
    let mut ws = connect(&s, "u", "iv-mal", "").await;
    // session.created and the first response events come first, then the broken frame.
    let mut saw_bad = false;
    for _ in 0..20 {
        match next_frame(&mut ws).await {
            Frame::Text(t) => {
                assert!(serde_json::from_str::<serde_json::Value>(&t).is_err());
                saw_bad = true;
                break;
            }
            Frame::Event(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_bad);
    until(&mut ws, "response.output_audio.delta").await;
}

#[tokio::test]
async fn fault_delay_response_and_persistent_faults() {
    let s = start(dev()).await;
    arm(
        &s,
        json!({"interview_id": "iv-slow", "delay_response_ms": 600, "once": false}),
    )
    .await;
    for _ in 0..2 {
        let t0 = Instant::now();
        let mut ws = connect(&s, "u", "iv-slow", "").await;
        assert_eq!(next_event(&mut ws).await["type"], "session.created");
        let e = next_event(&mut ws).await;
        assert_eq!(e["type"], "response.created");
        assert!(
            t0.elapsed() >= Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
        ws.close(None).await.unwrap();
        while !matches!(
            next_frame(&mut ws).await,
            Frame::Close(_) | Frame::Dropped(_)
        ) {}
        // Let the server release the slot before reconnecting.
        for _ in 0..100 {
            if get(s.addr, "/metrics", None)
                .await
                .body
                .windows(26)
                .any(|w| w == b"realtime_open_websockets 0")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn dev_routes_exist_only_with_their_flags() {
    let mut c = dev();
    c.faults = false;
    let s = start(c.clone()).await;
    let r = post_json(s.addr, "/dev/faults", None, &json!({"interview_id": "a"})).await;
    assert!(r.status == 404 || r.status == 405, "{}", r.status);
    assert_eq!(
        post_json(s.addr, "/dev/token", None, &json!({}))
            .await
            .status,
        200
    );
    c.dev = false;
    let s = start(c).await;
    let r = post_json(s.addr, "/dev/token", None, &json!({})).await;
    assert!(r.status == 404 || r.status == 405, "{}", r.status);
    assert_eq!(
        get(s.addr, "/dev/interviews/a/received", None).await.status,
        404
    );
    assert_eq!(get(s.addr, "/health", None).await.status, 200);
}

#[tokio::test]
async fn dev_token_creates_an_interview_and_ttl_zero_is_expired() {
    let s = start(dev()).await;
    let r = http(
        s.addr,
        "POST",
        "/dev/token",
        &[("Content-Type", "application/json")],
        b"",
    )
    .await
    .json();
    let (tok, iv) = (
        r["token"].as_str().unwrap(),
        r["interview_id"].as_str().unwrap(),
    );
    assert_eq!(r["user_id"], "dev-user");
    let got = get(s.addr, &format!("/api/v1/interviews/{iv}"), Some(tok)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["turns"], json!([]));
    let r = post_json(
        s.addr,
        "/dev/token",
        None,
        &json!({"interview_id": "iv-ttl", "user_id": "ann", "ttl_s": 0}),
    )
    .await
    .json();
    assert_eq!(r["interview_id"], "iv-ttl");
    let url = s.ws_url(
        "iv-ttl",
        &format!("?token={}", r["token"].as_str().unwrap()),
    );
    let mut ws = connect_url(&url).await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("expired"));
}

#[tokio::test]
async fn received_summary_returns_the_audio_as_sent() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-rx", "").await;
    until(&mut ws, "session.created").await;
    send(&mut ws, json!({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": null}}}})).await;
    until(&mut ws, "session.updated").await;
    let mut sent = Vec::new();
    for i in 0..5u8 {
        let chunk: Vec<u8> = (0..4800u32)
            .map(|j| (j as u8).wrapping_mul(i + 1))
            .collect();
        sent.extend_from_slice(&chunk);
        send(&mut ws, append(&chunk)).await;
    }
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    let seen = until(
        &mut ws,
        "conversation.item.input_audio_transcription.completed",
    )
    .await;
    assert_eq!(seen.last().unwrap()["transcript"], "(0.5 s of speech)");
    let r = get(s.addr, "/dev/interviews/iv-rx/received", None)
        .await
        .json();
    assert_eq!(r["appends"], 5);
    assert_eq!(r["samples"], 12_000);
    assert_eq!(r["max_appends_per_s"], 5);
    assert_eq!(
        STANDARD
            .decode(r["pcm16_base64"].as_str().unwrap())
            .unwrap(),
        sent
    );
    assert_eq!(
        get(s.addr, "/dev/interviews/nobody/received", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-m", "").await;
    until(&mut ws, "session.created").await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    send(&mut ws, json!({"type": "nope"})).await;
    until(&mut ws, "error").await;
    for _ in 0..4 {
        send(&mut ws, append(&tone(600, 0.1))).await;
    }
    send(&mut ws, append(&tone(600, 0.0))).await;
    until(&mut ws, "response.output_audio.delta").await;
    let mut bad = connect_url(&s.ws_url("iv-m2", "?token=x")).await;
    expect_close(&mut bad).await;
    let r = get(s.addr, "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let t = String::from_utf8(r.body).unwrap();
    for want in [
        "realtime_open_websockets 1\n",
        "realtime_connections_total{outcome=\"accepted\"} 1\n",
        "realtime_connections_total{outcome=\"auth\"} 1\n",
        "realtime_errors_total{code=\"invalid_value\"} 1\n",
        "realtime_server_closes_total{code=\"1008\"} 1\n",
        "realtime_response_latency_seconds_count 1\n",
        "# TYPE realtime_interview_cost_usd histogram\n",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
}

#[tokio::test]
async fn cors_is_loopback_only_in_dev_and_an_allow_list_otherwise() {
    let s = start(dev()).await;
    let pre = [
        ("Origin", "http://127.0.0.1:9999"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    let r = http(s.addr, "OPTIONS", "/dev/faults", &pre, b"").await;
    assert!(r.status < 300);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:9999")
    );
    let mut c = dev();
    c.cors_allowed_origins = Some(vec!["https://app.example".into()]);
    let s = start(c).await;
    let r = http(
        s.addr,
        "GET",
        "/health",
        &[("Origin", "https://app.example")],
        b"",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = http(
        s.addr,
        "GET",
        "/health",
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    // The WebSocket checks the Origin against the list too.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = s
        .ws_url("iv-o", &format!("?token={}", token("u", "iv-o")))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "origin not allowed".into())
    );
}

#[tokio::test]
async fn static_files_html_gets_the_csp_and_wasm_its_type() {
    let root = std::env::temp_dir().join(format!("rvs-static-{}", std::process::id()));
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(
        root.join("www/index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    std::fs::write(root.join("www/app.js"), "export {}").unwrap();
    std::fs::write(root.join("pkg/x.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let mut c = dev();
    c.static_root = root.clone();
    let s = start(c).await;
    let r = get(s.addr, "/", None).await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval'"));
    assert!(!csp.contains("unsafe-inline"));
    let r = get(s.addr, "/app.js", None).await;
    assert!(r.header("content-security-policy").is_none());
    let r = get(s.addr, "/pkg/x.wasm", None).await;
    assert_eq!(r.header("content-type"), Some("application/wasm"));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_session_past_its_maximum_gets_session_expired_then_1001() {
    let mut c = dev();
    c.limits.session_max_ms = 400;
    let s = start(c).await;
    let t0 = Instant::now();
    let mut ws = connect(&s, "u", "iv-exp", "").await;
    let seen = until(&mut ws, "error").await;
    assert_eq!(seen.last().unwrap()["error"]["code"], "session_expired");
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        expect_close(&mut ws).await,
        (1001, "session expired".into())
    );
}

/// Why: `--dev` answered `ACAO: *` on `/dev/token` and `/dev/interviews/{id}/received` (raw
/// microphone audio), so any web page could mint tokens for any user and read their audio.
#[tokio::test]
async fn dev_routes_answer_no_foreign_origin_and_need_json() {
    let s = start(dev()).await;
    let evil = [("Origin", "https://evil.example")];
    let pre = [
        ("Origin", "https://evil.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    let r = http(s.addr, "OPTIONS", "/dev/token", &pre, b"").await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let tok = post_json(
        s.addr,
        "/dev/token",
        None,
        &json!({"interview_id": "iv-cors"}),
    )
    .await;
    assert_eq!(tok.status, 200);
    let mut ws = connect(&s, "dev-user", "iv-cors", "").await;
    send(&mut ws, append(&tone(100, 0.1))).await;
    let r = http(
        s.addr,
        "GET",
        "/dev/interviews/iv-cors/received",
        &evil,
        b"",
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    // A "simple" cross-site POST (no preflight: text/plain or a form) is refused outright.
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = http(
            s.addr,
            "POST",
            "/dev/token",
            &[("Origin", "https://evil.example"), ("Content-Type", ct)],
            b"{}",
        )
        .await;
        assert_eq!(r.status, 415, "{ct}");
    }
    let r = http(s.addr, "POST", "/dev/token", &[], b"{}").await;
    assert_eq!(r.status, 415);
    // Same-origin and loopback pages work as before.
    let r = http(
        s.addr,
        "POST",
        "/dev/token",
        &[
            ("Origin", "http://localhost:5173"),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
}

/// Why: the demo's CSP had `connect-src 'self' ws: wss: …` in every mode.
#[tokio::test]
async fn production_html_gets_a_strict_csp_framing_and_referrer_rules() {
    let dir = std::env::temp_dir().join(format!("rvs-www-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(
        dir.join("www/index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    let mut c = dev();
    c.dev = false;
    c.faults = false;
    c.static_root = dir.clone();
    c.public_api_origin = Some("https://api.example".into());
    let s = start(c).await;
    let r = get(s.addr, "/", None).await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self' https://api.example wss://api.example;"),
        "{csp}"
    );
    assert!(!csp.contains(" ws: ") && !csp.contains("wss: "), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(
        get(s.addr, "/demo-config.json", None).await.json()["dev"],
        false
    );
    let s = start(dev()).await;
    assert_eq!(
        get(s.addr, "/demo-config.json", None).await.json()["dev"],
        true
    );
    let _ = std::fs::remove_dir_all(&dir);
}
