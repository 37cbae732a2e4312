//! HS256 JSON Web Tokens: the backend's bearer tokens (`sub`, `interview_id`, `exp`).
//!
//! Hand-rolled on `hmac` + `sha2` + `base64` because only HS256 is ever needed; the signature
//! check is constant-time (`Mac::verify_slice`).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The claims the backend issues and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Interview the token grants access to.
    pub interview_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch (bounds the token's lifetime when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Audience: a string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl Claims {
    /// Claims with only the three the backend always needs.
    pub fn new(sub: impl Into<String>, interview_id: impl Into<String>, exp: u64) -> Self {
        Self {
            sub: sub.into(),
            interview_id: interview_id.into(),
            exp,
            iat: None,
            aud: None,
            iss: None,
        }
    }

    /// Whether `aud` names `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        match &self.aud {
            Some(serde_json::Value::String(s)) => s == audience,
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(audience)),
            _ => false,
        }
    }
}

/// Checks beyond the signature: audience, issuer, lifetime, clock-skew leeway.
#[derive(Debug, Clone, Default)]
pub struct Rules<'a> {
    /// Required `aud`, if any.
    pub audience: Option<&'a str>,
    /// Required `iss`, if any.
    pub issuer: Option<&'a str>,
    /// Longest accepted lifetime (`exp - iat`, or `exp - now` without `iat`), s; 0 = unbounded.
    pub max_lifetime_s: u64,
    /// Tolerated clock skew, s.
    pub leeway_s: u64,
}

/// Why a token was refused (the reason goes into the 1008 close frame; never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three dot-separated base64url parts.
    Malformed,
    /// The header is not `{"alg":"HS256"}`.
    UnsupportedAlgorithm,
    /// Signature mismatch.
    BadSignature,
    /// Claims missing or of the wrong type.
    BadClaims,
    /// `exp` is in the past.
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The server's clock.
        now: u64,
    },
    /// `iat` is in the future beyond the leeway.
    IssuedInFuture,
    /// The token lives longer than the server accepts.
    LifetimeTooLong {
        /// The token's lifetime, s.
        lifetime_s: u64,
        /// The bound, s.
        max_s: u64,
    },
    /// `aud` missing or for another audience.
    WrongAudience,
    /// `iss` missing or another issuer.
    WrongIssuer,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => write!(f, "malformed token"),
            Self::UnsupportedAlgorithm => write!(f, "unsupported token algorithm"),
            Self::BadSignature => write!(f, "invalid token signature"),
            Self::BadClaims => write!(f, "invalid token claims"),
            Self::Expired { exp, now } => {
                write!(f, "token expired ({}s ago)", now.saturating_sub(*exp))
            }
            Self::IssuedInFuture => write!(f, "token issued in the future"),
            Self::LifetimeTooLong { lifetime_s, max_s } => write!(
                f,
                "token lifetime {lifetime_s}s exceeds the {max_s}s this server accepts"
            ),
            Self::WrongAudience => write!(f, "token is for another audience"),
            Self::WrongIssuer => write!(f, "token is from another issuer"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Signs `claims` with HS256.
pub fn sign(claims: &Claims, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serialising a struct of strings and an integer cannot fail.
    let body = serde_json::to_vec(claims).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(body);
    let signing_input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(
        mac(secret, signing_input.as_bytes())
            .finalize()
            .into_bytes(),
    );
    format!("{signing_input}.{sig}")
}

/// Verifies signature, algorithm and expiry (`now_s`, seconds since the epoch, no leeway) and
/// returns the claims.
pub fn verify(token: &str, secret: &str, now_s: u64) -> Result<Claims, JwtError> {
    verify_with(token, secret, now_s, &Rules::default())
}

/// Verifies signature, algorithm, expiry, and the `rules` (audience, issuer, lifetime, leeway).
pub fn verify_with(
    token: &str,
    secret: &str,
    now_s: u64,
    rules: &Rules<'_>,
) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| JwtError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    mac(secret, signing_input.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| JwtError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::BadClaims)?;
    if claims.exp.saturating_add(rules.leeway_s) <= now_s {
        return Err(JwtError::Expired {
            exp: claims.exp,
            now: now_s,
        });
    }
    if claims
        .iat
        .is_some_and(|iat| iat > now_s.saturating_add(rules.leeway_s))
    {
        return Err(JwtError::IssuedInFuture);
    }
    if rules.max_lifetime_s > 0 {
        let from = claims.iat.unwrap_or(now_s);
        let lifetime_s = claims.exp.saturating_sub(from);
        if lifetime_s > rules.max_lifetime_s.saturating_add(rules.leeway_s) {
            return Err(JwtError::LifetimeTooLong {
                lifetime_s,
                max_s: rules.max_lifetime_s,
            });
        }
    }
    if let Some(a) = rules.audience {
        if !claims.has_audience(a) {
            return Err(JwtError::WrongAudience);
        }
    }
    if let Some(i) = rules.issuer {
        if claims.iss.as_deref() != Some(i) {
            return Err(JwtError::WrongIssuer);
        }
    }
    Ok(claims)
}

fn mac(secret: &str, data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(data);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn claims(exp: u64) -> Claims {
        Claims::new("user-1", "iv-1", exp)
    }

    #[test]
    fn audience_issuer_lifetime_and_leeway() {
        let rules = Rules {
            audience: Some("api"),
            issuer: Some("auth.example"),
            max_lifetime_s: 3600,
            leeway_s: 30,
        };
        let mut c = claims(10_000);
        c.iat = Some(9_000);
        c.aud = Some(serde_json::json!(["other", "api"]));
        c.iss = Some("auth.example".into());
        let t = sign(&c, SECRET);
        assert_eq!(verify_with(&t, SECRET, 9_500, &rules), Ok(c.clone()));
        // 20 s after expiry: within the leeway; 30 s: not.
        assert!(verify_with(&t, SECRET, 10_020, &rules).is_ok());
        assert!(matches!(
            verify_with(&t, SECRET, 10_030, &rules),
            Err(JwtError::Expired { .. })
        ));
        assert_eq!(
            verify_with(&t, SECRET, 8_900, &rules),
            Err(JwtError::IssuedInFuture)
        );
        let mut long = c.clone();
        long.exp = 9_000 + 7200;
        assert!(matches!(
            verify_with(&sign(&long, SECRET), SECRET, 9_500, &rules),
            Err(JwtError::LifetimeTooLong { max_s: 3600, .. })
        ));
        let mut no_iat = claims(9_500 + 7200);
        no_iat.aud = c.aud.clone();
        no_iat.iss = c.iss.clone();
        assert!(matches!(
            verify_with(&sign(&no_iat, SECRET), SECRET, 9_500, &rules),
            Err(JwtError::LifetimeTooLong { .. })
        ));
        let mut wrong = c.clone();
        wrong.aud = Some(serde_json::json!("web"));
        assert_eq!(
            verify_with(&sign(&wrong, SECRET), SECRET, 9_500, &rules),
            Err(JwtError::WrongAudience)
        );
        let mut wrong = c.clone();
        wrong.iss = None;
        assert_eq!(
            verify_with(&sign(&wrong, SECRET), SECRET, 9_500, &rules),
            Err(JwtError::WrongIssuer)
        );
    }

    #[test]
    fn round_trip_and_rejections() {
        let t = sign(&claims(2000), SECRET);
        assert_eq!(verify(&t, SECRET, 1000), Ok(claims(2000)));
        assert_eq!(
            verify(&t, SECRET, 2000),
            Err(JwtError::Expired {
                exp: 2000,
                now: 2000
            })
        );
        assert_eq!(
            verify(&t, "another-secret-another-secret-xx", 1000),
            Err(JwtError::BadSignature)
        );
        assert_eq!(verify("a.b", SECRET, 1000), Err(JwtError::Malformed));
        // Tamper with the payload: signature no longer matches.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9999)).unwrap());
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), SECRET, 1000),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn verifies_a_token_made_by_another_implementation() {
        // Made with Python's hmac/hashlib/base64 (different header and key order than ours).
        let t = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOiA0MTAyNDQ0ODAwLCAiaW50ZXJ2aWV3X2lkIjogImkiLCAic3ViIjogInUifQ.yvUEAnGbMWypvjQX_owjcsalyXTUeIs1U8dy_S9PsvM";
        let c = verify(t, SECRET, 0).unwrap();
        assert_eq!(c, Claims::new("u", "i", 4102444800));
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(
            verify(&none_alg, SECRET, 0),
            Err(JwtError::UnsupportedAlgorithm)
        );
    }
}
