//! Fault injection for tests (only with `--dev --faults`): per-interview faults armed over HTTP and
//! taken by the next realtime connection of that interview.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

/// Most interviews with an armed fault at once (bounded memory).
pub const MAX_ARMED: usize = 1024;

/// A fault to apply to a realtime connection (the JSON body of `POST /dev/faults`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The interview whose next connection(s) get the fault.
    pub interview_id: String,
    /// Drop the TCP connection without a close frame after this many ms.
    pub drop_after_ms: Option<u64>,
    /// Close with this code (after `close_after_ms`, default 0).
    pub close_code: Option<u16>,
    /// Reason for `close_code`.
    pub close_reason: Option<String>,
    /// Delay before `close_code` is sent.
    pub close_after_ms: Option<u64>,
    /// Send one non-JSON text frame right after `session.created`.
    pub malformed_frame: Option<bool>,
    /// Delay the start of every response by this many ms.
    pub delay_response_ms: Option<u64>,
    /// Apply to the next connection only (default true); false keeps it armed until replaced.
    pub once: Option<bool>,
}

/// Why a fault was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultError {
    /// `close_code` outside 1000..=4999 or one that may not be sent (1005, 1006, 1015).
    BadCloseCode(u16),
    /// Too many interviews have armed faults.
    TooMany {
        /// The bound.
        max: usize,
    },
    /// Empty interview id.
    NoInterview,
}

impl std::fmt::Display for FaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadCloseCode(c) => write!(f, "close_code {c} cannot be sent"),
            Self::TooMany { max } => write!(f, "more than {max} armed faults"),
            Self::NoInterview => write!(f, "interview_id is required"),
        }
    }
}

impl std::error::Error for FaultError {}

/// Armed faults by interview id.
#[derive(Debug, Default)]
pub struct FaultRegistry {
    armed: Mutex<HashMap<String, Fault>>,
}

impl FaultRegistry {
    /// Arms (or replaces) the fault for its interview.
    pub fn arm(&self, fault: Fault) -> Result<(), FaultError> {
        if fault.interview_id.is_empty() {
            return Err(FaultError::NoInterview);
        }
        if let Some(c) = fault.close_code {
            if !(1000..=4999).contains(&c) || matches!(c, 1004 | 1005 | 1006 | 1015) {
                return Err(FaultError::BadCloseCode(c));
            }
        }
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        if armed.len() >= MAX_ARMED && !armed.contains_key(&fault.interview_id) {
            return Err(FaultError::TooMany { max: MAX_ARMED });
        }
        armed.insert(fault.interview_id.clone(), fault);
        Ok(())
    }

    /// The fault for a new connection of `interview_id`, removed unless `once` is false.
    pub fn take(&self, interview_id: &str) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let keep = armed.get(interview_id)?.once == Some(false);
        if keep {
            armed.get(interview_id).cloned()
        } else {
            armed.remove(interview_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_by_default() {
        let r = FaultRegistry::default();
        r.arm(Fault {
            interview_id: "a".into(),
            drop_after_ms: Some(10),
            ..Fault::default()
        })
        .unwrap();
        assert_eq!(r.take("a").unwrap().drop_after_ms, Some(10));
        assert!(r.take("a").is_none());
        r.arm(Fault {
            interview_id: "b".into(),
            once: Some(false),
            ..Fault::default()
        })
        .unwrap();
        assert!(r.take("b").is_some());
        assert!(r.take("b").is_some());
        assert_eq!(
            r.arm(Fault {
                interview_id: "c".into(),
                close_code: Some(1006),
                ..Fault::default()
            }),
            Err(FaultError::BadCloseCode(1006))
        );
    }
}
