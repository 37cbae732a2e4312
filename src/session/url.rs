//! The backend's URLs: the realtime socket and the HTTP text endpoint, built from `baseUrl`, plus
//! redaction so a URL with its token never reaches an event, an error or `Debug` output.

use std::fmt::{self, Write as _};

use crate::text::{write_parts, Message, Part::*};

/// A validated `baseUrl`: scheme mapped to ws/wss, host, optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    secure: bool,
    /// `host[:port]`, as given.
    authority: String,
    /// Path prefix without a trailing slash (may be empty).
    prefix: String,
}

/// Why `baseUrl` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `http://`, `https://`, `ws://` or `wss://`.
    Scheme,
    /// No host after the scheme.
    NoHost,
    /// Has user info (`user@host`), a query or a fragment.
    Extra(&'static str),
    /// Plain `ws://`/`http://` to a host other than localhost without `allowInsecureTransport`.
    Insecure {
        /// The host that would be reached without TLS.
        host: String,
    },
}

impl Message for UrlError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match self {
            UrlError::Scheme => out.write_str("must start with https://, wss://, http:// or ws://"),
            UrlError::NoHost => out.write_str("has no host"),
            UrlError::Extra(what) => write_parts(out, &[S("must not contain "), S(what)]),
            UrlError::Insecure { host } => write_parts(
                out,
                &[
                    S("uses an unencrypted scheme for host "),
                    S(host),
                    S("; only localhost, 127.0.0.1 and [::1] may, unless allowInsecureTransport is true"),
                ],
            ),
        }
    }
}

crate::text::display_by_message!(UrlError);

impl std::error::Error for UrlError {}

impl BaseUrl {
    /// Validates `base`; `allow_insecure` lets `ws://`/`http://` reach any host.
    pub fn parse(base: &str, allow_insecure: bool) -> Result<BaseUrl, UrlError> {
        let lower = base.get(..6).unwrap_or(base).to_ascii_lowercase();
        let (secure, rest) = if lower.starts_with("https:") {
            (true, base.get(6..).unwrap_or(""))
        } else if lower.starts_with("wss:") {
            (true, base.get(4..).unwrap_or(""))
        } else if lower.starts_with("http:") {
            (false, base.get(5..).unwrap_or(""))
        } else if lower.starts_with("ws:") {
            (false, base.get(3..).unwrap_or(""))
        } else {
            return Err(UrlError::Scheme);
        };
        let rest = rest.strip_prefix("//").ok_or(UrlError::Scheme)?;
        if rest.contains('?') {
            return Err(UrlError::Extra("a query"));
        }
        if rest.contains('#') {
            return Err(UrlError::Extra("a fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at_checked(i).unwrap_or((rest, "")),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::Extra("user info"));
        }
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(UrlError::NoHost);
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Extra("spaces or control characters"));
        }
        let host = host_of(authority);
        if !secure && !allow_insecure && !is_loopback(host) {
            return Err(UrlError::Insecure {
                host: host.to_string(),
            });
        }
        Ok(BaseUrl {
            secure,
            authority: authority.to_string(),
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `ws(s)://host/prefix/api/v1/interviews/{id}/realtime/connect` (no query).
    pub fn socket_url(&self, interview_id: &str) -> String {
        let mut s = String::from(if self.secure { "wss://" } else { "ws://" });
        s.push_str(&self.authority);
        s.push_str(&self.prefix);
        s.push_str("/api/v1/interviews/");
        percent_encode_into(&mut s, interview_id);
        s.push_str("/realtime/connect");
        s
    }

    /// `http(s)://host/prefix/api/v1/interviews/{id}/messages`, for text over HTTP.
    pub fn messages_url(&self, interview_id: &str) -> String {
        let mut s = String::from(if self.secure { "https://" } else { "http://" });
        s.push_str(&self.authority);
        s.push_str(&self.prefix);
        s.push_str("/api/v1/interviews/");
        percent_encode_into(&mut s, interview_id);
        s.push_str("/messages");
        s
    }
}

/// The host without port (IPv6 keeps its brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => authority.get(..=i).unwrap_or(authority),
            None => authority,
        }
    } else {
        authority.split(':').next().unwrap_or(authority)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// Appends `s` percent-encoded except RFC 3986 unreserved characters.
pub fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The URL without its query and fragment: what may appear in logs, events and `Debug`.
pub fn redact(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url.get(..end).unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_schemes_and_builds_paths() {
        let b = BaseUrl::parse("https://api.example.com/prefix/", false).unwrap();
        assert_eq!(
            b.socket_url("iv 1/x"),
            "wss://api.example.com/prefix/api/v1/interviews/iv%201%2Fx/realtime/connect"
        );
        assert_eq!(
            b.messages_url("42"),
            "https://api.example.com/prefix/api/v1/interviews/42/messages"
        );
        let l = BaseUrl::parse("ws://127.0.0.1:8080", false).unwrap();
        assert_eq!(
            l.socket_url("a"),
            "ws://127.0.0.1:8080/api/v1/interviews/a/realtime/connect"
        );
        assert!(BaseUrl::parse("http://[::1]:9/", false).is_ok());
        assert!(BaseUrl::parse("ws://LOCALHOST", false).is_ok());
    }

    #[test]
    fn refuses_bad_and_insecure_urls() {
        assert_eq!(BaseUrl::parse("ftp://x", false), Err(UrlError::Scheme));
        assert_eq!(BaseUrl::parse("https://", false), Err(UrlError::NoHost));
        assert_eq!(
            BaseUrl::parse("https://a@b", false),
            Err(UrlError::Extra("user info"))
        );
        assert_eq!(
            BaseUrl::parse("https://b/?t=1", false),
            Err(UrlError::Extra("a query"))
        );
        assert_eq!(
            BaseUrl::parse("ws://example.com", false),
            Err(UrlError::Insecure {
                host: "example.com".into()
            })
        );
        assert!(BaseUrl::parse("ws://example.com", true).is_ok());
        assert!(BaseUrl::parse("ws://127.0.0.1.evil.com", false).is_err());
    }

    #[test]
    fn redaction_drops_the_query() {
        assert_eq!(redact("wss://h/p?token=abc"), "wss://h/p");
        assert_eq!(redact("wss://h/p"), "wss://h/p");
    }
}
