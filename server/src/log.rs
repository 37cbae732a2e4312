//! Structured JSON logs: one object per line on stderr. Callers pass only identifiers, codes
//! and figures — never transcripts, tokens or the connect URL's query string.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// Normal operation.
    Info,
    /// Something a client did wrong, or a degraded condition.
    Warn,
    /// A server-side failure.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Writes one JSON log line: `{"ts_ms", "level", "msg", ...fields}`.
pub fn log(level: Level, msg: &str, fields: &[(&str, Value)]) {
    eprintln!("{}", line(level, msg, fields));
}

/// The JSON text of a log line (without the newline); public for tests of what gets logged.
pub fn line(level: Level, msg: &str, fields: &[(&str, Value)]) -> String {
    let mut m = Map::new();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    m.insert("ts_ms".into(), ts.into());
    m.insert("level".into(), level.as_str().into());
    m.insert("msg".into(), msg.into());
    for (k, v) in fields {
        m.insert((*k).to_string(), v.clone());
    }
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_objects() {
        let l = line(Level::Warn, "closed", &[("code", 1008.into())]);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "closed");
        assert_eq!(v["code"], 1008);
    }
}
