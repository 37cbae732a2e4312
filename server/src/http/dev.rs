//! Dev-only routes (`--dev`): mint tokens, arm faults (`--faults`), read what a connection
//! received. They answer same-origin pages, loopback pages and `CORS_ALLOWED_ORIGINS` only (see
//! [`super::router`]), and a POST must say `Content-Type: application/json`, which a cross-site
//! form or "simple" request cannot, so the browser always asks the CORS preflight first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{now_ms, ApiError};
use crate::auth::jwt::{self, Claims};
use crate::auth::valid_id;
use crate::faults::Fault;
use crate::log::{log, Level};
use crate::AppState;

/// Default and maximum lifetime of dev tokens, seconds.
pub const DEV_TOKEN_TTL_S: u64 = 900;
const MAX_DEV_TOKEN_TTL_S: u64 = 86_400;
/// Largest body of a dev route.
pub const MAX_DEV_BODY: usize = 8 * 1024;

/// Refuses a POST whose `Content-Type` is not `application/json` (415).
pub async fn require_json(req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() == Method::POST {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "dev routes need Content-Type: application/json",
            ));
        }
    }
    Ok(next.run(req).await)
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

/// `POST /dev/token`: `{interview_id?, user_id?, ttl_s?}` → a token (`ttl_s: 0`: already expired,
/// beyond the leeway).
pub async fn token(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
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
            "ids must be 1-128 characters of [A-Za-z0-9._-], not only dots",
        ));
    }
    let ttl = req
        .ttl_s
        .unwrap_or(DEV_TOKEN_TTL_S)
        .min(MAX_DEV_TOKEN_TTL_S)
        .min(st.config.jwt.max_lifetime_s);
    let now_s = now_ms() / 1000;
    let (iv, user) = (interview_id.clone(), user_id.clone());
    st.store
        .call(move |db| db.ensure_interview(&iv, &user, now_ms()))
        .await?;
    let exp = if ttl == 0 {
        now_s.saturating_sub(st.config.jwt.leeway_s + 1)
    } else {
        now_s + ttl
    };
    let mut claims = Claims::new(user_id.clone(), interview_id.clone(), exp);
    claims.iat = Some(if ttl == 0 { exp } else { now_s });
    claims.aud = st.config.jwt.audience.clone().map(Value::String);
    claims.iss = st.config.jwt.issuer.clone();
    let token = jwt::sign(&claims, &st.config.jwt_secret);
    Ok(Json(json!({
        "token": token,
        "interview_id": interview_id,
        "user_id": user_id,
        "expires_at": exp,
    })))
}

/// `POST /dev/faults`: arms a fault for the interview's next connection(s).
pub async fn faults(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let fault: Fault = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad fault: {e}")))?;
    if !valid_id(&fault.interview_id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid interview id",
        ));
    }
    let id = fault.interview_id.clone();
    st.faults
        .arm(fault)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    log(Level::Info, "fault armed", &[("interview_id", id.into())]);
    Ok(Json(json!({ "ok": true })))
}

/// `GET /dev/interviews/{id}/received`: what the interview's current or last connection received.
pub async fn received(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid interview id",
        ));
    }
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
    fn interview_ids_are_fresh() {
        assert_ne!(new_interview_id(), new_interview_id());
        assert!(valid_id(&new_interview_id()));
    }
}
