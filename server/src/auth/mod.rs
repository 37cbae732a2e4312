//! Authentication: HS256 bearer tokens ([`jwt`]) checked with the server's rules (audience,
//! issuer, lifetime, leeway from [`crate::config::JwtRules`]), and the id syntax shared by every
//! route.

pub mod jwt;

use crate::config::Config;
use jwt::{Claims, JwtError, Rules};

/// Verifies `token` with the configured secret and rules at `now_s` (seconds since the epoch).
pub fn verify(config: &Config, token: &str, now_s: u64) -> Result<Claims, JwtError> {
    let rules = Rules {
        audience: config.jwt.audience.as_deref(),
        issuer: config.jwt.issuer.as_deref(),
        max_lifetime_s: config.jwt.max_lifetime_s,
        leeway_s: config.jwt.leeway_s,
    };
    jwt::verify_with(token, &config.jwt_secret, now_s, &rules)
}

/// Whether `id` is an acceptable interview or user id: 1–128 of `[A-Za-z0-9._-]`, and not made of
/// dots only (`.` and `..` would be path segments, not names).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.bytes().all(|b| b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(valid_id("iv_0123abcd"));
        assert!(valid_id("a.b"));
        assert!(valid_id(".a"));
        assert!(!valid_id(""));
        assert!(!valid_id("."));
        assert!(!valid_id(".."));
        assert!(!valid_id("..."));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(&"a".repeat(129)));
    }
}
