//! The simulated interviewer end to end over a real socket: greeting without speaking first, GA
//! and beta names, server VAD → transcription → paced spoken question, usage and cost arithmetic
//! checked against the audio actually exchanged, persistence (also across a restart), truncate
//! validation, text replies, and the HTTP text and legacy audio endpoints.

mod common;

use std::time::{Duration, Instant};

use common::*;
use realtime_voice_server::interviewer::{GREETING, INSTRUCTIONS, QUESTIONS};
use serde_json::{json, Value};

/// Prices per 1M tokens from the issue-4 table: (text in, cached, out, audio in, cached, out).
const GPT_REALTIME: [f64; 6] = [4.0, 0.4, 16.0, 32.0, 0.4, 64.0];
const PREVIEW_2024_10_01: [f64; 6] = [5.0, 2.5, 20.0, 100.0, 20.0, 200.0];

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

fn text_tokens(s: &str) -> u64 {
    ceil_div(s.chars().count() as u64, 4)
}

fn cost(usage: &Value, p: [f64; 6]) -> f64 {
    let i = &usage["input_token_details"];
    let o = &usage["output_token_details"];
    let n = |v: &Value| v.as_u64().unwrap() as f64;
    (n(&i["text_tokens"]) * p[0]
        + n(&i["audio_tokens"]) * p[3]
        + n(&o["text_tokens"]) * p[2]
        + n(&o["audio_tokens"]) * p[5])
        / 1e6
}

/// Sends 2.4 s of speech and 600 ms of silence as 600 ms appends (audio time, not wall time).
async fn speak(ws: &mut Ws) {
    for _ in 0..4 {
        send(ws, append(&tone(600, 0.1))).await;
    }
    send(ws, append(&tone(600, 0.0))).await;
}

#[tokio::test]
async fn ga_session_greets_then_answers_speech_with_usage_cost_and_persistence() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "candidate", "iv-ga", "").await;
    let t0 = Instant::now();
    let created = next_event(&mut ws).await;
    assert_eq!(created["type"], "session.created");
    let sess = &created["session"];
    assert_eq!(sess["type"], "realtime");
    assert_eq!(sess["model"], "gpt-realtime");
    assert_eq!(
        sess["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    assert_eq!(sess["audio"]["output"]["voice"], "alloy");
    assert_eq!(
        sess["audio"]["input"]["turn_detection"]["type"],
        "server_vad"
    );

    // The interviewer speaks first: audio arrives without the client sending anything.
    let seen = until(&mut ws, "response.output_audio.delta").await;
    assert!(t0.elapsed().as_millis() < 2000);
    let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.delta"
        ]
    );
    let greeting_item = seen[1]["item"]["id"].as_str().unwrap().to_string();
    let mut greeting_samples = delta_samples(seen.last().unwrap());
    // Barge in with speech: server VAD cancels the greeting.
    speak(&mut ws).await;
    let spoke = Instant::now();
    let mut events = Vec::new();
    let done = loop {
        let e = next_event(&mut ws).await;
        if e["type"] == "response.output_audio.delta" && e["item_id"] == greeting_item.as_str() {
            greeting_samples += delta_samples(&e);
        }
        let is_done = e["type"] == "response.done";
        events.push(e);
        if is_done {
            break events.last().unwrap().clone();
        }
    };
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    let greeting_ms = greeting_samples as u64 * 1000 / 24000;
    let gu = &done["response"]["usage"];
    assert_eq!(
        gu["output_token_details"]["audio_tokens"],
        ceil_div(greeting_ms, 50)
    );
    assert_eq!(
        gu["input_token_details"]["text_tokens"],
        text_tokens(INSTRUCTIONS)
    );
    assert_eq!(gu["input_token_details"]["audio_tokens"], 0);
    let greeting_said = done["response"]["output"][0]["content"][0]["transcript"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(greeting_said.starts_with("Hello,"), "{greeting_said:?}");
    assert!(greeting_said.len() < GREETING.len() + QUESTIONS[0].len());

    // Then: speech_stopped, committed, the user item, its transcription, and the next question.
    let mut seen = until(&mut ws, "response.done").await;
    let all: Vec<Value> = events.into_iter().chain(seen.drain(..)).collect();
    let pos = |t: &str| {
        all.iter()
            .position(|e| e["type"] == t)
            .unwrap_or_else(|| panic!("{t} missing"))
    };
    assert!(pos("input_audio_buffer.speech_started") < pos("input_audio_buffer.speech_stopped"));
    assert!(pos("input_audio_buffer.speech_stopped") < pos("input_audio_buffer.committed"));
    let stopped = &all[pos("input_audio_buffer.speech_stopped")];
    assert_eq!(stopped["audio_end_ms"], 2400);
    let started = &all[pos("input_audio_buffer.speech_started")];
    assert_eq!(started["audio_start_ms"], 0);
    let tr = &all[pos("conversation.item.input_audio_transcription.completed")];
    assert_eq!(tr["transcript"], "(2.4 s of speech)");
    let answer: Vec<&Value> = all
        .iter()
        .skip(pos("input_audio_buffer.committed"))
        .collect();
    let samples: usize = answer
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| delta_samples(e))
        .sum();
    let transcript: String = answer
        .iter()
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(transcript, QUESTIONS[1]);
    let done = all.last().unwrap();
    assert_eq!(done["response"]["status"], "completed");
    let u = &done["response"]["usage"];
    let answer_ms = samples as u64 * 1000 / 24000;
    // User audio: 2.4 s of speech + the 500 ms of silence that ended it = 29 tokens (1 per 100 ms).
    assert_eq!(u["input_token_details"]["audio_tokens"], 29);
    assert_eq!(
        u["input_token_details"]["text_tokens"],
        text_tokens(INSTRUCTIONS)
    );
    assert_eq!(
        u["output_token_details"]["audio_tokens"],
        ceil_div(answer_ms, 50)
    );
    assert_eq!(
        u["output_token_details"]["text_tokens"],
        text_tokens(QUESTIONS[1])
    );
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap()
    );
    // Paced in real time: the last 100 ms delta leaves (deltas - 1) × 100 ms after the first.
    let deltas = samples.div_ceil(2400) as u64;
    assert!(spoke.elapsed() >= Duration::from_millis((deltas - 1) * 100));
    let want_cost = cost(gu, GPT_REALTIME) + cost(u, GPT_REALTIME);

    // Persistence: turns of both roles and the accumulated cost.
    let tok = token("candidate", "iv-ga");
    let r = get(s.addr, "/api/v1/interviews/iv-ga", Some(&tok)).await;
    assert_eq!(r.status, 200);
    let iv = r.json();
    let got = iv["realtime_cost_usd"].as_f64().unwrap();
    assert!((got - want_cost).abs() < 1e-12, "{got} vs {want_cost}");
    let turns: Vec<(String, String)> = iv["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["role"].as_str().unwrap().into(),
                t["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        vec![
            ("assistant".into(), greeting_said),
            ("user".into(), "(2.4 s of speech)".into()),
            ("assistant".into(), QUESTIONS[1].into()),
        ]
    );
    // Another user's token cannot read it.
    let r = get(
        s.addr,
        "/api/v1/interviews/iv-ga",
        Some(&token("other", "iv-ga")),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get(s.addr, "/api/v1/interviews/iv-ga", None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn beta_names_by_query_parameter_and_by_configuration() {
    let mut beta_cfg = dev();
    beta_cfg.protocol = realtime_voice_server::ProtocolFlavor::Beta;
    let by_query = start(dev()).await;
    let by_config = start(beta_cfg).await;
    for (s, query) in [(&by_query, "&protocol=beta"), (&by_config, "")] {
        let mut ws = connect(s, "u", "iv-beta", query).await;
        let created = next_event(&mut ws).await;
        assert_eq!(
            created["session"]["model"],
            "gpt-4o-realtime-preview-2024-10-01"
        );
        assert_eq!(created["session"]["modalities"], json!(["text", "audio"]));
        assert_eq!(created["session"]["input_audio_format"], "pcm16");
        assert!(created["session"].get("type").is_none());
        let seen = until(&mut ws, "response.audio.delta").await;
        assert!(seen
            .iter()
            .any(|e| e["type"] == "conversation.item.created"));
        until(&mut ws, "response.audio_transcript.delta").await;
        send(&mut ws, json!({"type": "response.cancel"})).await;
        let seen = until(&mut ws, "response.done").await;
        let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(types.contains(&"response.audio.done"));
        assert!(types.contains(&"response.audio_transcript.done"));
        assert!(!types
            .iter()
            .any(|t| t.contains("output_audio") || *t == "conversation.item.added"));
        let done = seen.last().unwrap();
        assert_eq!(
            done["response"]["status_details"]["reason"],
            "client_cancelled"
        );
        // Priced with the 2024-10-01 table.
        let want = cost(&done["response"]["usage"], PREVIEW_2024_10_01);
        let iv = get(
            s.addr,
            "/api/v1/interviews/iv-beta",
            Some(&token("u", "iv-beta")),
        )
        .await
        .json();
        assert!((iv["realtime_cost_usd"].as_f64().unwrap() - want).abs() < 1e-12);
    }
    // GA on the same server without the parameter.
    let mut ws = connect(&by_query, "u", "iv-ga-too", "").await;
    let seen = until(&mut ws, "response.output_audio.delta").await;
    assert_eq!(seen[0]["session"]["type"], "realtime");
}

#[tokio::test]
async fn truncate_is_checked_against_the_audio_sent() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-trunc", "").await;
    let seen = until(&mut ws, "response.output_audio.delta").await;
    let item = seen.last().unwrap()["item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut samples = delta_samples(seen.last().unwrap());
    let seen = until(&mut ws, "response.output_audio.delta").await;
    samples += delta_samples(seen.last().unwrap());
    send(&mut ws, json!({"type": "response.cancel"})).await;
    for e in until(&mut ws, "response.done").await {
        if e["type"] == "response.output_audio.delta" {
            samples += delta_samples(&e);
        }
    }
    let sent_ms = (samples as u64 * 1000).div_ceil(24000);
    send(&mut ws, json!({"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": sent_ms + 1, "event_id": "c9"})).await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["code"], "invalid_value");
    assert_eq!(e["error"]["param"], "audio_end_ms");
    assert_eq!(e["error"]["event_id"], "c9");
    let played = sent_ms - 40;
    send(&mut ws, json!({"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": played})).await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["type"], "conversation.item.truncated");
    assert_eq!(e["item_id"], item.as_str());
    assert_eq!(e["audio_end_ms"], played);
    send(&mut ws, json!({"type": "conversation.item.truncate", "item_id": "item_unknown", "content_index": 0, "audio_end_ms": 0})).await;
    assert_eq!(next_event(&mut ws).await["error"]["code"], "item_not_found");
    let r = get(s.addr, "/dev/interviews/iv-trunc/received", None)
        .await
        .json();
    assert_eq!(
        r["truncates"],
        json!([{"item_id": item, "audio_end_ms": played}])
    );
    assert_eq!(r["errors_sent"], json!(["invalid_value", "item_not_found"]));
}

#[tokio::test]
async fn text_item_plus_response_create_gives_a_text_only_reply() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "u", "iv-text", "").await;
    until(&mut ws, "response.output_audio.delta").await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    until(&mut ws, "response.done").await;
    send(&mut ws, json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "I write Rust."}]}})).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    let seen = until(&mut ws, "response.done").await;
    let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"conversation.item.added"));
    assert!(!types.iter().any(|t| t.contains("audio")), "{types:?}");
    let text: String = seen
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, QUESTIONS[1]);
    let u = &seen.last().unwrap()["response"]["usage"];
    assert_eq!(
        u["input_token_details"]["text_tokens"],
        text_tokens("I write Rust.") + text_tokens(INSTRUCTIONS)
    );
    assert_eq!(
        u["output_token_details"]["text_tokens"],
        text_tokens(QUESTIONS[1])
    );
    assert_eq!(u["output_token_details"]["audio_tokens"], 0);
}

fn wav(ms: usize) -> Vec<u8> {
    let data = tone(ms, 0.1);
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&24_000u32.to_le_bytes());
    w.extend_from_slice(&48_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

#[tokio::test]
async fn http_text_and_legacy_audio_endpoints_persist_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("rvs-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("persist.sqlite3");
    let _ = std::fs::remove_file(&db);
    let mut c = dev();
    c.database = realtime_voice_server::store::Target::Sqlite(db.clone());
    let s = start(c.clone()).await;
    let tok = token("u", "iv-http");
    let r = post_json(
        s.addr,
        "/api/v1/interviews/iv-http/messages",
        Some(&tok),
        &json!({"text": "Hi"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["reply"], format!("{GREETING} {}", QUESTIONS[0]));
    let r = post_json(
        s.addr,
        "/api/v1/interviews/iv-http/messages",
        None,
        &json!({"text": "Hi"}),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = post_json(
        s.addr,
        "/api/v1/interviews/iv-http/messages",
        Some(&token("u", "other")),
        &json!({"text": "Hi"}),
    )
    .await;
    assert_eq!(r.status, 403);
    // Legacy multipart upload.
    let boundary = "XyZboundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
    body.extend_from_slice(&wav(1500));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let auth = format!("Bearer {tok}");
    let r = http(
        s.addr,
        "POST",
        "/api/v1/interviews/iv-http/audio",
        &[("Content-Type", &ct), ("Authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["transcript"], "(1.5 s of speech)");
    assert_eq!(j["reply"], QUESTIONS[1]);
    s.stop().await;

    // A new server on the same file sees everything, and continues the script.
    let s = start(c).await;
    let iv = get(s.addr, "/api/v1/interviews/iv-http", Some(&tok))
        .await
        .json();
    let texts: Vec<&str> = iv["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    let greeting_q1 = format!("{GREETING} {}", QUESTIONS[0]);
    assert_eq!(
        texts,
        vec![
            "Hi",
            greeting_q1.as_str(),
            "(1.5 s of speech)",
            QUESTIONS[1]
        ]
    );
    assert_eq!(iv["questions_asked"], 2);
    let mut ws = connect(&s, "u", "iv-http", "").await;
    until(&mut ws, "session.created").await;
    let seen = until(&mut ws, "response.output_audio_transcript.delta").await;
    assert_eq!(seen.last().unwrap()["delta"], "Welcome ");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
