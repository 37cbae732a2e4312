//! HTTP routes: health, metrics, the dev endpoints (token, faults, received audio), the REST API
//! (interview, text messages, legacy audio upload) and the static demo with a strict CSP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::services::ServeDir;

use crate::db::DbError;
use crate::faults::Fault;
use crate::interviewer::{script_line, QUESTIONS};
use crate::jwt::{self, Claims};
use crate::log::{log, Level};
use crate::AppState;

/// The Content-Security-Policy sent with every HTML response.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws: wss: http://127.0.0.1:* http://localhost:*; style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; worker-src 'self'";
/// Largest legacy audio upload.
pub const MAX_AUDIO_UPLOAD: usize = 16 << 20;
/// Longest text message accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 8192;
/// Default and maximum lifetime of dev tokens, seconds.
pub const DEV_TOKEN_TTL_S: u64 = 900;
const MAX_DEV_TOKEN_TTL_S: u64 = 86_400;

/// Builds the application router.
pub fn router(st: Arc<AppState>) -> Router {
    let cfg = &st.config;
    let mut r = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/interviews/{id}/realtime/connect",
            get(crate::ws::connect),
        )
        .route("/api/v1/interviews/{id}", get(get_interview))
        .route("/api/v1/interviews/{id}/messages", post(post_message))
        .route(
            "/api/v1/interviews/{id}/audio",
            post(post_audio).layer(DefaultBodyLimit::max(MAX_AUDIO_UPLOAD)),
        );
    if cfg.dev {
        r = r
            .route("/dev/token", post(dev_token))
            .route("/dev/interviews/{id}/received", get(dev_received));
        if cfg.faults {
            r = r.route("/dev/faults", post(dev_faults));
        }
    }
    // ServeDir guesses `.wasm` as application/wasm through mime_guess.
    let r = r
        .nest_service("/pkg", ServeDir::new(cfg.static_root.join("pkg")))
        .fallback_service(ServeDir::new(cfg.static_root.join("www")))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(access_log));
    let r = match cors_layer(cfg.dev, cfg.cors_allowed_origins.as_deref()) {
        Some(c) => r.layer(c),
        None => r,
    };
    r.with_state(st)
}

/// CORS: the allow-list when CORS_ALLOWED_ORIGINS is set; any origin in dev otherwise; none
/// (same-origin only) in production without a list.
fn cors_layer(dev: bool, origins: Option<&[String]>) -> Option<CorsLayer> {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    match origins {
        Some(list) => {
            let vals: Vec<HeaderValue> = list
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            Some(base.allow_origin(AllowOrigin::list(vals)))
        }
        None if dev => Some(base.allow_origin(Any)),
        None => None,
    }
}

/// Logs API and dev requests: method, path (never the query string: it may hold a token),
/// status and duration. Health checks and static files are not logged.
async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    let logged = path.starts_with("/api/") || path.starts_with("/dev/");
    let method = req.method().to_string();
    let t0 = std::time::Instant::now();
    let res = next.run(req).await;
    if logged {
        log(
            Level::Info,
            "http",
            &[
                ("method", method.into()),
                ("path", path.into()),
                ("status", res.status().as_u16().into()),
                ("ms", (t0.elapsed().as_millis() as u64).into()),
            ],
        );
    }
    res
}

async fn security_headers(mut res: Response) -> Response {
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = res.headers_mut();
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// An error answered as JSON `{"error": ...}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::OwnedByOther { .. } => Self::new(StatusCode::FORBIDDEN, e.to_string()),
            _ => {
                log(
                    Level::Error,
                    "database error",
                    &[("error", e.to_string().into())],
                );
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database error")
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether `id` is an acceptable interview or user id (1–128 of `[A-Za-z0-9._-]`).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks `Authorization: Bearer <jwt>` for interview `id`.
fn bearer(st: &AppState, headers: &HeaderMap, id: &str) -> Result<Claims, ApiError> {
    if !valid_id(id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid interview id",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    let claims = jwt::verify(token.trim(), &st.config.jwt_secret, now_ms() / 1000)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if claims.interview_id != id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token is for another interview",
        ));
    }
    Ok(claims)
}

async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

async fn get_interview(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = bearer(&st, &headers, &id)?;
    let iv = st
        .db
        .interview(&id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such interview"))?;
    if iv.user_id != claims.sub {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "interview belongs to another user",
        ));
    }
    Ok(Json(json!({
        "id": iv.id,
        "user_id": iv.user_id,
        "created_at_ms": iv.created_at_ms,
        "questions_asked": iv.question_index.min(QUESTIONS.len() as u32),
        "realtime_cost_usd": iv.realtime_cost_usd,
        "turns": iv.turns,
    })))
}

#[derive(Debug, Deserialize)]
struct MessageBody {
    text: String,
}

/// The next scripted line for a non-realtime turn, advancing the stored script position.
fn next_reply(st: &AppState, id: &str, index: u32) -> Result<String, ApiError> {
    let reply = script_line(index, false);
    st.db
        .set_question_index(id, index.saturating_add(1).min(QUESTIONS.len() as u32 + 1))?;
    Ok(reply)
}

async fn post_message(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let claims = bearer(&st, &headers, &id)?;
    let msg: MessageBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected JSON {{\"text\": string}}: {e}"),
        )
    })?;
    let text = msg.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("text must have 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    let now = now_ms();
    let index = st.db.ensure_interview(&id, &claims.sub, now)?;
    st.db.add_turn(&id, "user", text, "text", now)?;
    let reply = next_reply(&st, &id, index)?;
    st.db.add_turn(&id, "assistant", &reply, "text", now)?;
    Ok(Json(json!({ "reply": reply })))
}

/// Duration of a PCM WAV file in ms, from its header, if it is one.
pub fn wav_duration_ms(b: &[u8]) -> Option<u64> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut byte_rate = None;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]) as usize;
        let body = pos + 8;
        if id == b"fmt " && body + 12 <= b.len() {
            byte_rate =
                Some(
                    u32::from_le_bytes([b[body + 8], b[body + 9], b[body + 10], b[body + 11]])
                        as u64,
                );
        }
        if id == b"data" {
            let data = len.min(b.len() - body) as u64;
            return byte_rate.filter(|r| *r > 0).map(|r| data * 1000 / r);
        }
        pos = body + len + (len & 1);
    }
    None
}

async fn post_audio(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let claims = bearer(&st, &headers, &id)?;
    let mut audio: Option<Bytes> = None;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("bad multipart body: {e}"))
        })?;
        let Some(field) = field else { break };
        let is_audio = field.name() == Some("audio") || field.file_name().is_some();
        let data = field.bytes().await.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("bad multipart field: {e}"))
        })?;
        if is_audio && audio.is_none() {
            audio = Some(data);
        }
    }
    let audio = audio.filter(|a| !a.is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "expected a non-empty multipart field named \"audio\"",
        )
    })?;
    let transcript = match wav_duration_ms(&audio) {
        Some(ms) => crate::interviewer::transcript_for(ms),
        None => format!("({} KiB of audio)", audio.len().div_ceil(1024)),
    };
    let now = now_ms();
    let index = st.db.ensure_interview(&id, &claims.sub, now)?;
    st.db.add_turn(&id, "user", &transcript, "audio", now)?;
    let reply = next_reply(&st, &id, index)?;
    st.db.add_turn(&id, "assistant", &reply, "audio", now)?;
    Ok(Json(json!({ "transcript": transcript, "reply": reply })))
}

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    interview_id: Option<String>,
    user_id: Option<String>,
    ttl_s: Option<u64>,
}

/// A fresh interview id: `iv_` + 16 hex digits of SHA-256 over time, a counter and the pid.
fn new_interview_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("iv_{hex}")
}

async fn dev_token(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: TokenRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("bad token request: {e}"))
        })?
    };
    let interview_id = req.interview_id.unwrap_or_else(new_interview_id);
    let user_id = req.user_id.unwrap_or_else(|| "dev-user".to_string());
    if !valid_id(&interview_id) || !valid_id(&user_id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ids must be 1-128 characters of [A-Za-z0-9._-]",
        ));
    }
    let ttl = req
        .ttl_s
        .unwrap_or(DEV_TOKEN_TTL_S)
        .min(MAX_DEV_TOKEN_TTL_S);
    let now = now_ms();
    st.db.ensure_interview(&interview_id, &user_id, now)?;
    // exp is checked as `exp <= now` → expired, so ttl_s = 0 gives an already-expired token.
    let exp = now / 1000 + ttl;
    let token = jwt::sign(
        &Claims {
            sub: user_id.clone(),
            interview_id: interview_id.clone(),
            exp,
        },
        &st.config.jwt_secret,
    );
    Ok(Json(json!({
        "token": token,
        "interview_id": interview_id,
        "user_id": user_id,
        "expires_at": exp,
    })))
}

async fn dev_faults(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let fault: Fault = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad fault: {e}")))?;
    let id = fault.interview_id.clone();
    st.faults
        .arm(fault)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    log(Level::Info, "fault armed", &[("interview_id", id.into())]);
    Ok(Json(json!({ "ok": true })))
}

async fn dev_received(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.received.get(&id).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no connection seen for this interview",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_duration() {
        let mut w = Vec::new();
        let data = vec![0u8; 48_000];
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
        assert_eq!(wav_duration_ms(&w), Some(1000));
        assert_eq!(wav_duration_ms(b"OggS...."), None);
    }

    #[test]
    fn ids() {
        assert!(valid_id("iv_0123abcd"));
        assert!(!valid_id(""));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(&"a".repeat(129)));
        assert_ne!(new_interview_id(), new_interview_id());
    }
}
