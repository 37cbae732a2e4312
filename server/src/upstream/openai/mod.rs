//! The relay to OpenAI's GA Realtime API: the second upstream. A [`relay::Relay`] task owns one
//! upstream WebSocket (`OPENAI_REALTIME_URL?model=…`, `Authorization: Bearer`) and outlives the
//! browser's socket by the grace period, so a reconnect re-attaches to the same conversation
//! ([`pool`]); it renews the upstream session before the provider's limit and replays the
//! interview into the new one; it persists transcripts and cost on the way. The server's session
//! policy is in [`policy`].

pub mod policy;
pub mod pool;
pub mod relay;

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::RelayConfig;

/// An open upstream socket.
pub type Link = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for the upstream handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest upstream message accepted (audio deltas are a few tens of kB).
const MAX_UPSTREAM_MESSAGE: usize = 16 << 20;

/// Why an upstream session could not be opened or went away.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The provider refused the key or the model (HTTP 401/403/404 at the handshake, or an
    /// `invalid_api_key` / `model_not_found` error): browser close 1011 + `upstream_auth_failed`.
    Auth {
        /// The HTTP status or error code that said so.
        detail: String,
    },
    /// The provider is rate limiting or overloaded (HTTP 429/503): browser close 1013.
    Overloaded {
        /// The HTTP status.
        status: u16,
    },
    /// Anything else: unreachable, handshake failure, dropped socket: browser close 1011.
    Unavailable {
        /// What happened (no URL query, no key).
        detail: String,
    },
}

impl UpstreamError {
    /// The close code and reason the browser gets.
    pub fn close(&self) -> (u16, &'static str) {
        match self {
            Self::Auth { .. } => (1011, "upstream refused the key or model"),
            Self::Overloaded { .. } => (1013, "upstream overloaded, try again later"),
            Self::Unavailable { .. } => (1011, "upstream unavailable"),
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auth { detail } => write!(f, "upstream refused the key or model ({detail})"),
            Self::Overloaded { status } => write!(f, "upstream overloaded (HTTP {status})"),
            Self::Unavailable { detail } => write!(f, "upstream unavailable: {detail}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Opens an upstream session for `model`.
pub async fn connect(relay: &RelayConfig, model: &str) -> Result<Link, UpstreamError> {
    let sep = if relay.url.contains('?') { '&' } else { '?' };
    let model_q: String = model
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    let url = format!("{}{sep}model={model_q}", relay.url);
    let unavailable = |detail: &str| UpstreamError::Unavailable {
        detail: detail.to_string(),
    };
    let mut req = url
        .into_client_request()
        .map_err(|_| unavailable("OPENAI_REALTIME_URL is not a valid WebSocket URL"))?;
    let key = relay.api_key.as_ref().ok_or_else(|| UpstreamError::Auth {
        detail: "no OPENAI_API_KEY".into(),
    })?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
        UpstreamError::Auth {
            detail: "OPENAI_API_KEY is not a valid header value".into(),
        }
    })?;
    req.headers_mut().insert(header::AUTHORIZATION, auth);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_UPSTREAM_MESSAGE))
        .max_frame_size(Some(MAX_UPSTREAM_MESSAGE));
    match timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(req, Some(config), true),
    )
    .await
    {
        Err(_) => Err(unavailable("handshake timed out")),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            Err(match status {
                401 | 403 | 404 => UpstreamError::Auth {
                    detail: format!("HTTP {status}"),
                },
                429 | 503 => UpstreamError::Overloaded { status },
                s => unavailable(&format!("HTTP {s}")),
            })
        }
        Ok(Err(e)) => Err(unavailable(&io_detail(&e))),
    }
}

/// A short description of a connect error (kinds only: never the URL or headers).
fn io_detail(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) => format!("I/O: {:?}", io.kind()),
        E::Tls(_) => "TLS error".into(),
        E::Url(_) => "bad URL".into(),
        E::Protocol(p) => format!("protocol: {p}"),
        _ => "handshake failed".into(),
    }
}
