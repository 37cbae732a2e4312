//! Dev-only record of what the server received on an interview's current or last connection, for
//! browser tests that compare it with the audio they fed in. Bounded: the first 10 s of PCM, the
//! first 64 truncates and error codes, and at most 64 interviews (oldest evicted). Only kept
//! with `--dev`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

/// PCM kept: 10 s at 24 kHz, 16-bit.
pub const MAX_PCM_BYTES: usize = 24_000 * 2 * 10;
/// Truncates and error codes kept per connection.
pub const MAX_ITEMS: usize = 64;
/// Interviews whose summaries are kept (live connections keep theirs until they end).
pub const MAX_INTERVIEWS: usize = 64;

/// What one connection received.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// `input_audio_buffer.append` events received (accepted or not).
    pub appends: u64,
    /// Appends rejected by the rate limiter.
    pub rejected_appends: u64,
    /// Samples accepted.
    pub samples: u64,
    /// Samples accepted on all of the interview's connections so far (shared by its records):
    /// what a reconnecting client sent in total, whichever socket carried it.
    pub interview_samples: Arc<AtomicU64>,
    /// Most appends per second, allowing 100 ms of arrival jitter (sliding 900 ms windows).
    pub max_appends_per_s: u32,
    /// Most appends in one fixed one-second window (raw, aligned to the first append).
    pub max_appends_per_s_raw: u32,
    /// The first [`MAX_PCM_BYTES`] of accepted audio.
    pub pcm: Vec<u8>,
    /// Accepted truncates: (item_id, audio_end_ms).
    pub truncates: Vec<(String, u64)>,
    /// Error codes sent.
    pub errors_sent: Vec<String>,
}

impl Received {
    /// Adds accepted PCM16 bytes.
    pub fn add_pcm(&mut self, bytes: &[u8]) {
        self.samples += (bytes.len() / 2) as u64;
        self.interview_samples
            .fetch_add((bytes.len() / 2) as u64, Ordering::Relaxed);
        let room = MAX_PCM_BYTES.saturating_sub(self.pcm.len());
        self.pcm.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// Records an accepted truncate.
    pub fn add_truncate(&mut self, item_id: &str, audio_end_ms: u64) {
        if self.truncates.len() < MAX_ITEMS {
            self.truncates.push((item_id.to_string(), audio_end_ms));
        }
    }

    /// Records an error code sent.
    pub fn add_error(&mut self, code: &str) {
        if self.errors_sent.len() < MAX_ITEMS {
            self.errors_sent.push(code.to_string());
        }
    }

    /// The JSON summary served by `GET /dev/interviews/{id}/received`.
    pub fn to_json(&self) -> Value {
        json!({
            "appends": self.appends,
            "rejected_appends": self.rejected_appends,
            "samples": self.samples,
            "interview_samples": self.interview_samples.load(Ordering::Relaxed),
            "max_appends_per_s": self.max_appends_per_s,
            "max_appends_per_s_raw": self.max_appends_per_s_raw,
            "pcm16_base64": STANDARD.encode(&self.pcm),
            "truncates": self.truncates.iter().map(|(i, ms)| json!({"item_id": i, "audio_end_ms": ms})).collect::<Vec<_>>(),
            "errors_sent": self.errors_sent,
        })
    }
}

/// Shared handle to one connection's record.
pub type ReceivedHandle = Arc<Mutex<Received>>;

/// Records by interview id.
#[derive(Debug, Default)]
pub struct ReceivedStore {
    inner: Mutex<(HashMap<String, ReceivedHandle>, VecDeque<String>)>,
}

impl ReceivedStore {
    /// Starts a fresh record for a new connection of `interview_id`.
    pub fn start(&self, interview_id: &str) -> ReceivedHandle {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        let h = ReceivedHandle::default();
        if let Some(prev) = map.get(interview_id) {
            let total = prev
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .interview_samples
                .clone();
            h.lock()
                .unwrap_or_else(|p| p.into_inner())
                .interview_samples = total;
        }
        if map.insert(interview_id.to_string(), h.clone()).is_none() {
            order.push_back(interview_id.to_string());
            while order.len() > MAX_INTERVIEWS {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        h
    }

    /// The record of the current or last connection of `interview_id`.
    pub fn get(&self, interview_id: &str) -> Option<Value> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let h = g.0.get(interview_id)?.clone();
        drop(g);
        let r = h.lock().unwrap_or_else(|p| p.into_inner());
        Some(r.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let mut r = Received::default();
        r.add_pcm(&vec![1u8; MAX_PCM_BYTES + 4800]);
        r.add_pcm(&[2u8; 4800]);
        assert_eq!(r.pcm.len(), MAX_PCM_BYTES);
        assert_eq!(r.samples as usize, (MAX_PCM_BYTES + 9600) / 2);
        for _ in 0..100 {
            r.add_error("x");
        }
        assert_eq!(r.errors_sent.len(), MAX_ITEMS);
        let s = ReceivedStore::default();
        for i in 0..(MAX_INTERVIEWS + 10) {
            s.start(&format!("iv{i}"));
        }
        assert!(s.get("iv0").is_none());
        assert!(s.get(&format!("iv{}", MAX_INTERVIEWS + 9)).is_some());
    }

    #[test]
    fn a_new_connection_counts_its_own_samples_and_the_interviews() {
        let s = ReceivedStore::default();
        let first = s.start("iv");
        first.lock().unwrap().add_pcm(&[0u8; 4800]);
        let second = s.start("iv");
        second.lock().unwrap().add_pcm(&[0u8; 960]);
        let v = s.get("iv").unwrap();
        assert_eq!(v["samples"], 480);
        assert_eq!(v["interview_samples"], 2400 + 480);
        assert_eq!(s.start("other").lock().unwrap().samples, 0);
    }
}
