//! Shared helpers of the server's integration tests: start the real server in-process on an
//! ephemeral port, connect with tokio-tungstenite, read events with timeouts, and make plain
//! HTTP/1.1 requests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use realtime_voice_server::config::DEV_JWT_SECRET;
use realtime_voice_server::jwt::{sign, Claims};
use realtime_voice_server::{serve_with_shutdown, Config};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous bound for anything that should happen "now".
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server; dropping it shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, t).await;
        }
    }

    pub fn ws_url(&self, interview: &str, query: &str) -> String {
        format!(
            "ws://{}/api/v1/interviews/{interview}/realtime/connect{query}",
            self.addr
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts the server with `config` on 127.0.0.1:0.
pub async fn start(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_with_shutdown(config, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("server");
    });
    Server {
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

/// The dev configuration.
pub fn dev() -> Config {
    Config::dev_default()
}

/// Seconds since the epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `user` and `interview` valid for an hour, signed with the dev secret.
pub fn token(user: &str, interview: &str) -> String {
    sign(
        &Claims::new(user, interview, now_s() + 3600),
        DEV_JWT_SECRET,
    )
}

/// Connects to `interview` with `?token=`.
pub async fn connect(s: &Server, user: &str, interview: &str, extra_query: &str) -> Ws {
    let url = s.ws_url(
        interview,
        &format!("?token={}{extra_query}", token(user, interview)),
    );
    let (ws, _) = tokio::time::timeout(WAIT, connect_async(url))
        .await
        .expect("connect timeout")
        .expect("handshake");
    ws
}

/// Connects with a raw URL, returning the handshake outcome.
pub async fn connect_url(url: &str) -> Ws {
    let req = url.into_client_request().unwrap();
    let (ws, _) = tokio::time::timeout(WAIT, connect_async(req))
        .await
        .expect("connect timeout")
        .expect("handshake must succeed (the server accepts, then closes)");
    ws
}

/// What the next frame was.
#[derive(Debug)]
pub enum Frame {
    Event(Value),
    Text(String),
    Close(Option<(u16, String)>),
    /// The stream ended or errored without a close frame.
    Dropped(String),
}

/// The next frame (skipping pings), within [`WAIT`].
pub async fn next_frame(ws: &mut Ws) -> Frame {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame");
        return match m {
            None => Frame::Dropped("end of stream".into()),
            Some(Err(e)) => Frame::Dropped(e.to_string()),
            Some(Ok(Message::Text(t))) => match serde_json::from_str(t.as_str()) {
                Ok(v) => Frame::Event(v),
                Err(_) => Frame::Text(t.to_string()),
            },
            Some(Ok(Message::Close(c))) => Frame::Close(
                c.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string())),
            ),
            Some(Ok(_)) => continue,
        };
    }
}

/// The next JSON event; panics on anything else.
pub async fn next_event(ws: &mut Ws) -> Value {
    match next_frame(ws).await {
        Frame::Event(v) => v,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Reads events until one of type `ty`, returning all read (the match last).
pub async fn until(ws: &mut Ws, ty: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let e = next_event(ws).await;
        let done = e["type"] == ty;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

/// Reads until the close frame and returns its code and reason (events before it are skipped).
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match next_frame(ws).await {
            Frame::Close(Some(c)) => return c,
            Frame::Close(None) => panic!("close frame without a code"),
            Frame::Dropped(e) => panic!("dropped without a close frame: {e}"),
            _ => {}
        }
    }
}

/// Sends a JSON event.
pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// PCM16 LE of a 220 Hz tone at `amp` (0..1) for `ms`.
pub fn tone(ms: usize, amp: f64) -> Vec<u8> {
    let mut b = Vec::with_capacity(ms * 48);
    for i in 0..ms * 24 {
        let s = (amp * 32767.0 * (i as f64 * 2.0 * std::f64::consts::PI * 220.0 / 24000.0).sin())
            as i16;
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// An `input_audio_buffer.append` of `pcm`.
pub fn append(pcm: &[u8]) -> Value {
    json!({"type": "input_audio_buffer.append", "audio": STANDARD.encode(pcm)})
}

/// Decoded samples of an audio delta event.
pub fn delta_samples(e: &Value) -> usize {
    STANDARD.decode(e["delta"].as_str().unwrap()).unwrap().len() / 2
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP request with `Connection: close`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.expect("tcp connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("http timeout")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(p) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..p]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[p + 2..p + 2 + n]);
        b = &b[p + 2 + n + 2..];
    }
}

/// POST JSON with optional bearer token.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> HttpResponse {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    http(addr, "POST", path, &h, body.to_string().as_bytes()).await
}

/// GET with optional bearer token.
pub async fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> HttpResponse {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut h = vec![];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    http(addr, "GET", path, &h, b"").await
}
