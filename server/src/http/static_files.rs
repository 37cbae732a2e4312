//! The demo (`STATIC_ROOT/www` at `/`) and the package (`STATIC_ROOT/pkg` at `/pkg`), the headers
//! every response carries (CSP on HTML, `frame-ancestors 'none'`, `Referrer-Policy`,
//! `nosniff`), and `/demo-config.json`, which tells the demo page whether the server runs in dev
//! mode (the page honours `?backend=` only then, or for its own origin).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::services::ServeDir;

use crate::config::Config;
use crate::AppState;

/// The Content-Security-Policy of HTML responses. Production: the page may connect to its own
/// origin and `PUBLIC_API_ORIGIN` only. Dev: also any ws/wss URL and loopback HTTP (the demo's
/// `?backend=`, the tests).
pub fn csp(config: &Config) -> String {
    let connect = if config.dev {
        "'self' ws: wss: http://127.0.0.1:* http://localhost:*".to_string()
    } else {
        match &config.public_api_origin {
            Some(o) => {
                let ws = o
                    .replacen("https://", "wss://", 1)
                    .replacen("http://", "ws://", 1);
                format!("'self' {o} {ws}")
            }
            None => "'self'".to_string(),
        }
    };
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src {connect}; \
         style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
         worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

/// Adds the static routes to `r`.
pub fn serve(r: Router<Arc<AppState>>, config: &Config) -> Router<Arc<AppState>> {
    // ServeDir guesses `.wasm` as application/wasm through mime_guess.
    r.nest_service("/pkg", ServeDir::new(config.static_root.join("pkg")))
        .fallback_service(ServeDir::new(config.static_root.join("www")))
}

/// The header values [`security_headers`] sets, computed once from the configuration.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    csp: HeaderValue,
}

impl SecurityHeaders {
    /// From the configuration (an unrepresentable origin falls back to `'self'` only).
    pub fn new(config: &Config) -> Self {
        let csp = HeaderValue::from_str(&csp(config)).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
        });
        Self { csp }
    }
}

/// CSP on HTML; `nosniff` and `Referrer-Policy: no-referrer` (a page URL may carry a token) on
/// everything.
pub async fn security_headers(State(h): State<SecurityHeaders>, mut res: Response) -> Response {
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let hs = res.headers_mut();
    if html {
        hs.insert(header::CONTENT_SECURITY_POLICY, h.csp.clone());
        hs.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    hs.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    hs.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// `GET /demo-config.json`: `{dev}`.
pub async fn demo_config(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "dev": st.config.dev }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_csp_lists_self_and_the_api_origin_only() {
        let mut c = Config::dev_default();
        assert!(csp(&c).contains("connect-src 'self' ws: wss:"));
        c.dev = false;
        let p = csp(&c);
        assert!(p.contains("connect-src 'self';"), "{p}");
        assert!(!p.contains("ws:") && !p.contains("127.0.0.1"), "{p}");
        assert!(p.contains("frame-ancestors 'none'"));
        c.public_api_origin = Some("https://api.example".into());
        let p = csp(&c);
        assert!(
            p.contains("connect-src 'self' https://api.example wss://api.example;"),
            "{p}"
        );
    }
}
