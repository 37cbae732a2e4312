//! Load report (not a timed test): N concurrent simulated interview sessions on loopback, each
//! streaming microphone audio at real-time pace (one 100 ms append every 100 ms) for S seconds.
//! A session listens to the greeting, then speaks 2 s, stays silent until the answer is over,
//! and speaks again. Reports the connection success rate and the AI response latency:
//! end of the user's speech → first audio delta of the answer (this includes the server VAD's
//! 500 ms of silence, as a user would experience it), and speech_stopped → first audio delta.
//!
//! ```text
//! cargo run --release -p realtime-voice-server --example load -- [--sessions 200] [--seconds 30] [--url ws://127.0.0.1:8080]
//! ```
//! Without `--url` the server runs in-process (dev config, in-memory SQLite). With `--url`, the
//! target must use the same JWT secret (JWT_SECRET, or the dev secret when unset) and be on loopback.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use realtime_voice_server::config::DEV_JWT_SECRET;
use realtime_voice_server::jwt::{sign, Claims};
use realtime_voice_server::{serve, Config};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::{interval, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Default)]
struct Report {
    attempted: u64,
    connected: u64,
    failed_reasons: Vec<String>,
    end_of_speech_to_audio_ms: Vec<u64>,
    stopped_to_audio_ms: Vec<u64>,
    responses_completed: u64,
    appends_sent: u64,
    audio_received_ms: u64,
    errors: Vec<String>,
    closes: Vec<u16>,
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

fn pcm(amp: f64, phase0: usize) -> String {
    let mut b = Vec::with_capacity(4800);
    for i in 0..2400 {
        let t = (phase0 + i) as f64 / 24000.0;
        let s = amp * 32767.0 * (2.0 * std::f64::consts::PI * 180.0 * t).sin();
        b.extend_from_slice(&(s as i16).to_le_bytes());
    }
    serde_json::json!({"type": "input_audio_buffer.append", "audio": STANDARD.encode(b)})
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for the current response (the greeting or an answer) to finish.
    Listening,
    /// Speaking; chunks left.
    Speaking(u32),
}

async fn session(base: String, secret: String, n: usize, seconds: u64, report: Arc<Mutex<Report>>) {
    let interview = format!("load-{n}-{}", std::process::id());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 3600;
    let token = sign(
        &Claims::new(format!("user-{n}"), interview.clone(), exp),
        &secret,
    );
    let url = format!("{base}/api/v1/interviews/{interview}/realtime/connect?token={token}");
    report.lock().await.attempted += 1;
    let mut ws = match timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            report
                .lock()
                .await
                .failed_reasons
                .push(format!("handshake: {e}"));
            return;
        }
        Err(_) => {
            report
                .lock()
                .await
                .failed_reasons
                .push("handshake timeout".into());
            return;
        }
    };
    match timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("\"session.created\"") => {
            report.lock().await.connected += 1;
        }
        other => {
            report
                .lock()
                .await
                .failed_reasons
                .push(format!("no session.created: {other:?}"));
            return;
        }
    }
    let loud = pcm(0.1, 0);
    let quiet = pcm(0.0, 0);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tick = interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut phase = Phase::Listening;
    let mut speech_end: Option<Instant> = None;
    let mut stopped_at: Option<Instant> = None;
    let mut waiting_first_audio = false;
    let (mut e2a, mut s2a, mut done, mut appends, mut audio_samples) =
        (vec![], vec![], 0u64, 0u64, 0u64);
    let mut errors = vec![];
    let mut close_code = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let frame = match phase {
                    Phase::Speaking(left) => {
                        phase = if left <= 1 {
                            speech_end = Some(Instant::now());
                            waiting_first_audio = true;
                            Phase::Listening
                        } else {
                            Phase::Speaking(left - 1)
                        };
                        &loud
                    }
                    Phase::Listening => &quiet,
                };
                if ws.send(Message::Text(frame.as_str().into())).await.is_err() {
                    break;
                }
                appends += 1;
            }
            m = ws.next() => {
                let Some(Ok(m)) = m else { break };
                let t = match m {
                    Message::Text(t) => t,
                    Message::Close(c) => {
                        close_code = c.map(|c| u16::from(c.code));
                        break;
                    }
                    _ => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                match v["type"].as_str().unwrap_or("") {
                    "input_audio_buffer.speech_stopped" => stopped_at = Some(Instant::now()),
                    "response.output_audio.delta" | "response.audio.delta" => {
                        audio_samples += (v["delta"].as_str().map_or(0, str::len) / 4 * 3 / 2) as u64;
                        if waiting_first_audio {
                            waiting_first_audio = false;
                            let now = Instant::now();
                            if let Some(se) = speech_end.take() {
                                e2a.push(now.duration_since(se).as_millis() as u64);
                            }
                            if let Some(st) = stopped_at.take() {
                                s2a.push(now.duration_since(st).as_millis() as u64);
                            }
                        }
                    }
                    "response.done" => {
                        done += 1;
                        if phase == Phase::Listening && !waiting_first_audio {
                            phase = Phase::Speaking(20);
                        }
                    }
                    "error" => errors.push(v["error"]["code"].as_str().unwrap_or("?").to_string()),
                    _ => {}
                }
            }
            _ = sleep_until(end) => break,
        }
    }
    let _ = ws.close(None).await;
    let mut r = report.lock().await;
    r.end_of_speech_to_audio_ms.extend(e2a);
    r.stopped_to_audio_ms.extend(s2a);
    r.responses_completed += done;
    r.appends_sent += appends;
    r.audio_received_ms += audio_samples * 1000 / 24000;
    r.errors.extend(errors);
    if let Some(c) = close_code {
        r.closes.push(c);
    }
}

#[tokio::main]
async fn main() {
    let sessions: usize = arg("--sessions")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(30);
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| DEV_JWT_SECRET.to_string());
    let base = match arg("--url") {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("cannot bind: {e}");
                    std::process::exit(1);
                }
            };
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tokio::spawn(async move {
                if let Err(e) = serve(Config::dev_default(), listener).await {
                    eprintln!("server: {e}");
                }
            });
            format!("ws://{addr}")
        }
    };
    println!("load: {sessions} sessions × {seconds} s against {base}");
    let report = Arc::new(Mutex::new(Report::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..sessions {
        tasks.push(tokio::spawn(session(
            base.clone(),
            secret.clone(),
            n,
            seconds,
            report.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = started.elapsed();
    let mut r = report.lock().await;
    let rate = r.connected as f64 / r.attempted.max(1) as f64 * 100.0;
    println!("wall time: {:.1} s", wall.as_secs_f64());
    println!(
        "connections: {}/{} ({rate:.1}% success)",
        r.connected, r.attempted
    );
    for f in r.failed_reasons.iter().take(5) {
        println!("  failure: {f}");
    }
    let n = r.end_of_speech_to_audio_ms.len();
    let (p50, p95, p99, max) = (
        pct(&mut r.end_of_speech_to_audio_ms, 50.0),
        pct(&mut r.end_of_speech_to_audio_ms, 95.0),
        pct(&mut r.end_of_speech_to_audio_ms, 99.0),
        pct(&mut r.end_of_speech_to_audio_ms, 100.0),
    );
    println!("end of speech → first audio delta ({n} answers; includes 500 ms VAD silence): p50 {p50} ms, p95 {p95} ms, p99 {p99} ms, max {max} ms");
    let m = r.stopped_to_audio_ms.len();
    let (q50, q95, q99) = (
        pct(&mut r.stopped_to_audio_ms, 50.0),
        pct(&mut r.stopped_to_audio_ms, 95.0),
        pct(&mut r.stopped_to_audio_ms, 99.0),
    );
    println!("speech_stopped → first audio delta ({m}): p50 {q50} ms, p95 {q95} ms, p99 {q99} ms");
    println!(
        "responses completed: {}; appends sent: {} ({:.2}/s per session); assistant audio received: {:.0} s",
        r.responses_completed,
        r.appends_sent,
        r.appends_sent as f64 / r.connected.max(1) as f64 / seconds as f64,
        r.audio_received_ms as f64 / 1000.0
    );
    let mut codes: Vec<&String> = r.errors.iter().collect();
    codes.sort();
    codes.dedup();
    println!(
        "error events: {} {:?}; server closes: {:?}",
        r.errors.len(),
        codes,
        r.closes
    );
}
