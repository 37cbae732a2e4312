//! Admission of a realtime connection, after the upgrade so that a browser sees the close code:
//! the token (1008), the `Origin` allow-list (1008), the interview's owner (1008), the feature
//! flag and rollout (4403). The one-socket-per-interview rule and take-back are the
//! [`super::registry`]'s.

use crate::auth;
use crate::http::now_ms;
use crate::store::DbError;
use crate::{rollout, AppState};

use super::Request;

/// Why a connection is refused: close code, reason (never the token), metrics outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Close code.
    pub code: u16,
    /// Close reason.
    pub reason: String,
    /// `realtime_connections_total` outcome label.
    pub outcome: &'static str,
}

impl Refusal {
    fn new(code: u16, reason: impl Into<String>, outcome: &'static str) -> Self {
        Self {
            code,
            reason: reason.into(),
            outcome,
        }
    }
}

/// Checks the token, origin, owner and rollout; returns the user id.
pub async fn admit(st: &AppState, req: &Request) -> Result<String, Refusal> {
    if !auth::valid_id(&req.interview_id) {
        return Err(Refusal::new(1008, "invalid interview id", "auth"));
    }
    let Some(token) = req.token.as_deref() else {
        return Err(Refusal::new(1008, "missing token", "auth"));
    };
    let claims = auth::verify(&st.config, token, now_ms() / 1000)
        .map_err(|e| Refusal::new(1008, e.to_string(), "auth"))?;
    if claims.interview_id != req.interview_id {
        return Err(Refusal::new(1008, "token is for another interview", "auth"));
    }
    if let (Some(list), Some(origin)) = (&st.config.cors_allowed_origins, &req.origin) {
        if !list.iter().any(|o| o == origin) {
            return Err(Refusal::new(1008, "origin not allowed", "auth"));
        }
    }
    let (id, user) = (req.interview_id.clone(), claims.sub.clone());
    match st
        .store
        .call(move |db| db.ensure_interview(&id, &user, now_ms()))
        .await
    {
        Ok(_) => {}
        Err(crate::store::StoreError::Db(DbError::OwnedByOther { .. })) => {
            return Err(Refusal::new(
                1008,
                "interview belongs to another user",
                "auth",
            ))
        }
        Err(e) => {
            crate::log::log(
                crate::log::Level::Error,
                "database error",
                &[("error", e.to_string().into())],
            );
            return Err(Refusal::new(
                super::CLOSE_TRY_LATER,
                super::TRY_LATER_REASON,
                "unavailable",
            ));
        }
    }
    if !rollout::realtime_allowed(
        st.config.enable_realtime,
        st.config.rollout_percent,
        &claims.sub,
    ) {
        return Err(Refusal::new(4403, "realtime disabled", "disabled"));
    }
    Ok(claims.sub)
}

/// A fresh, unguessable session id: `sess_` and 32 lowercase hex digits of 128 random bits. A
/// reconnecting client presents it (`resume`) to take its interview back, so it must not be
/// predictable.
pub fn new_session_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    let mut s = String::with_capacity(37);
    s.push_str("sess_");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_128_bit_hex() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 37);
        assert!(a.starts_with("sess_"));
        assert!(a[5..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }
}
