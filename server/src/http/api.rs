//! The REST API: the saved interview, text messages, legacy audio upload, metrics. The bearer
//! token is checked by [`require_bearer`] before the handler runs, so nothing of the body is
//! read for a request without a valid token; database work runs on the store thread.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{now_ms, ApiError};
use crate::auth::jwt::Claims;
use crate::auth::{self, valid_id};
use crate::store::{Db, DbError};
use crate::upstream::simulated::{script_line, transcript_for, QUESTIONS};
use crate::AppState;

/// Largest legacy audio upload.
pub const MAX_AUDIO_UPLOAD: usize = 16 << 20;
/// Longest text message accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 8192;

/// Checks `Authorization: Bearer <jwt>` for the interview in the path, before the body is read;
/// the handler gets the [`Claims`] as an extension.
pub async fn require_bearer(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid interview id",
        ));
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    let claims = auth::verify(&st.config, token.trim(), now_ms() / 1000)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if claims.interview_id != id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token is for another interview",
        ));
    }
    req.extensions_mut().insert(claims);
    Ok(next.run(req).await)
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

/// `GET /api/v1/interviews/{id}`.
pub async fn get_interview(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(claims): Extension<Claims>,
) -> Result<Json<Value>, ApiError> {
    let iv = st
        .store
        .call(move |db| db.interview(&id))
        .await?
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

/// A user turn from a non-realtime route and the next scripted reply, stored together; `None`
/// when the interview reached its turn cap.
fn exchange(
    db: &Db,
    id: &str,
    user_id: &str,
    text: &str,
    source: &str,
    max_turns: u32,
) -> Result<Option<String>, DbError> {
    let now = now_ms();
    let index = db.ensure_interview(id, user_id, now)?;
    if db.user_turns(id)? >= max_turns {
        return Ok(None);
    }
    db.add_turn(id, "user", text, source, now)?;
    let reply = script_line(index, false);
    db.set_question_index(id, index.saturating_add(1).min(QUESTIONS.len() as u32 + 1))?;
    db.add_turn(id, "assistant", &reply, source, now)?;
    Ok(Some(reply))
}

fn turn_cap(max: u32) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("this interview reached its limit of {max} turns"),
    )
}

/// `POST /api/v1/interviews/{id}/messages`: `{text}` → `{reply}`.
pub async fn post_message(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(claims): Extension<Claims>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let msg: MessageBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected JSON {{\"text\": string}}: {e}"),
        )
    })?;
    let text = msg.text.trim().to_string();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("text must have 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    let max = st.config.limits.max_turns_per_interview;
    let reply = st
        .store
        .call(move |db| exchange(db, &id, &claims.sub, &text, "text", max))
        .await?
        .ok_or_else(|| turn_cap(max))?;
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

/// `POST /api/v1/interviews/{id}/audio`: multipart `audio` → `{transcript, reply}`.
pub async fn post_audio(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(claims): Extension<Claims>,
    mut multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
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
        Some(ms) => transcript_for(ms),
        None => format!("({} KiB of audio)", audio.len().div_ceil(1024)),
    };
    let max = st.config.limits.max_turns_per_interview;
    let said = transcript.clone();
    let reply = st
        .store
        .call(move |db| exchange(db, &id, &claims.sub, &said, "audio", max))
        .await?
        .ok_or_else(|| turn_cap(max))?;
    Ok(Json(json!({ "transcript": transcript, "reply": reply })))
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
}
