//! The real binary as the Makefile runs it: the "listening" line on stdout, JSON logs on stderr
//! that never contain tokens, message text, transcripts or the connect URL's query, a clear
//! refusal of a short JWT_SECRET, and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_realtime-voice-server");

#[test]
fn refuses_a_short_secret_with_a_clear_message() {
    let out = Command::new(BIN)
        .env("JWT_SECRET", "too-short")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 32"), "{err}");
    assert!(!err.contains("too-short"), "the secret is never printed");
}

/// Why: `--dev` started on `HOST=0.0.0.0` without a word, and the public dev secret was accepted
/// as `JWT_SECRET` outside `--dev`.
#[test]
fn careless_deploys_are_refused() {
    let out = Command::new(BIN)
        .arg("--dev")
        .env("HOST", "0.0.0.0")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dev-insecure-public-host"), "{err}");
    let out = Command::new(BIN)
        .env("JWT_SECRET", realtime_voice_server::config::DEV_JWT_SECRET)
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built-in dev secret"), "{err}");
}

#[tokio::test]
async fn logs_are_json_without_secrets_and_sigterm_exits_cleanly() {
    let mut child = Command::new(BIN)
        .arg("--dev")
        .env("PORT", "0")
        .env_remove("JWT_SECRET")
        .env_remove("DATABASE_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("realtime-voice-server listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: std::net::SocketAddr = url.trim_end_matches('/').parse().unwrap();

    let tok = post_json(
        addr,
        "/dev/token",
        None,
        &json!({"interview_id": "iv-log", "user_id": "log-user"}),
    )
    .await
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_text = "my private answer 12345";
    let r = post_json(
        addr,
        "/api/v1/interviews/iv-log/messages",
        Some(&tok),
        &json!({"text": secret_text}),
    )
    .await;
    assert_eq!(r.status, 200);
    let url = format!("ws://{addr}/api/v1/interviews/iv-log/realtime/connect?token={tok}");
    let mut ws = connect_url(&url).await;
    until(&mut ws, "response.output_audio_transcript.delta").await;
    send(&mut ws, json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": secret_text}]}})).await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    let mut bad = connect_url(&format!(
        "ws://{addr}/api/v1/interviews/iv-log/realtime/connect?token=not-a-token"
    ))
    .await;
    expect_close(&mut bad).await;
    // A live session is closed with 1001 (going away: clients reconnect) on SIGTERM.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        expect_close(&mut ws).await,
        (1001, "server shutting down".into())
    );
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.lines().count() >= 4, "{err}");
    for l in err.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["ts_ms"].is_u64() && v["level"].is_string() && v["msg"].is_string(),
            "{l}"
        );
    }
    for forbidden in [
        tok.as_str(),
        "not-a-token",
        "token=",
        secret_text,
        "Hello, I am",
        "Tell me about",
    ] {
        assert!(
            !err.contains(forbidden),
            "log contains {forbidden:?}:\n{err}"
        );
    }
    assert!(err.contains("\"msg\":\"connection refused\""));
    assert!(err.contains("\"path\":\"/api/v1/interviews/iv-log/messages\""));
    assert!(err.contains("\"msg\":\"stopped\""));
    assert!(
        err.contains("DEV MODE"),
        "a warning line in dev mode:\n{err}"
    );
}

/// Relay mode as a process: the key never appears in the logs, nor transcripts; a refused key
/// gives the ALERT line, and passing COST_ALERT_USD the warning.
#[tokio::test]
async fn relay_logs_alert_on_a_refused_key_and_on_cost_but_never_the_key() {
    let key = "sk-binary-relay-secret-0123456789";
    let mut up_cfg = dev();
    up_cfg.relay.simulated_openai_key = Some(realtime_voice_server::config::ApiKey::new(key));
    let up = start(up_cfg).await;
    let mut child = Command::new(BIN)
        .arg("--dev")
        .env("PORT", "0")
        .env_remove("JWT_SECRET")
        .env_remove("DATABASE_PATH")
        .env("OPENAI_API_KEY", key)
        .env(
            "OPENAI_REALTIME_URL",
            format!("ws://{}/v1/realtime", up.addr),
        )
        .env("COST_ALERT_USD", "0.000001")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .trim_start_matches("realtime-voice-server listening on http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let url = |iv: &str| {
        format!(
            "ws://{addr}/api/v1/interviews/{iv}/realtime/connect?token={}",
            token("dev-user", iv)
        )
    };
    let mut ws = connect_url(&url("iv-relay-log")).await;
    until(&mut ws, "response.output_audio_transcript.delta").await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    // The next upstream handshake is refused as a bad key is.
    let r = post_json(
        up.addr,
        "/dev/upstream/faults",
        None,
        &json!({"refuse_status": 401}),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut refused = connect_url(&url("iv-relay-log-2")).await;
    assert_eq!(
        next_event(&mut refused).await["error"]["code"],
        "upstream_auth_failed"
    );
    assert_eq!(expect_close(&mut refused).await.0, 1011);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    for forbidden in [key, "Hello, I am", "Tell me about", "sk-"] {
        assert!(
            !err.contains(forbidden),
            "log contains {forbidden:?}:\n{err}"
        );
    }
    assert!(
        err.contains("ALERT upstream refused the API key or model"),
        "{err}"
    );
    assert!(
        err.contains("interview cost passed COST_ALERT_USD"),
        "{err}"
    );
    assert!(err.contains("\"msg\":\"response billed\""), "{err}");
}
