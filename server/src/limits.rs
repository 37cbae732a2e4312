//! Connection limits: the per-connection append rate limiter and the one-socket-per-interview
//! registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the rate limiter decided about one `input_audio_buffer.append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateDecision {
    /// Within the limit.
    Allow,
    /// Over the limit in this window: reject the append; `first_in_window` says whether this is
    /// the first rejection of the window (send one `error` event per window, not one per append).
    Reject {
        /// True for the first rejected append of the current window.
        first_in_window: bool,
    },
    /// The limit was exceeded in `windows` consecutive windows: close with 4429.
    Close {
        /// Consecutive over-limit windows.
        windows: u32,
    },
}

/// Fixed one-second windows (like a Redis `INCR` + `EXPIRE 1` limiter), aligned to the first append
/// of the connection. "Persists" means over the limit in `persist_windows` consecutive windows.
#[derive(Debug, Clone)]
pub struct AppendRateLimiter {
    limit: u32,
    persist_windows: u32,
    window_start_ms: Option<u64>,
    count: u32,
    consecutive_over: u32,
    max_per_window: u32,
}

impl AppendRateLimiter {
    /// A limiter allowing `limit` appends per second, closing after `persist_windows` bad windows.
    pub fn new(limit: u32, persist_windows: u32) -> Self {
        Self {
            limit,
            persist_windows: persist_windows.max(1),
            window_start_ms: None,
            count: 0,
            consecutive_over: 0,
            max_per_window: 0,
        }
    }

    /// Records one append at `now_ms`.
    pub fn on_append(&mut self, now_ms: u64) -> RateDecision {
        let start = *self.window_start_ms.get_or_insert(now_ms);
        let elapsed = now_ms.saturating_sub(start);
        if elapsed >= 1000 {
            let windows_passed = elapsed / 1000;
            let was_over = self.count > self.limit;
            // A skipped (empty) window breaks the run of over-limit windows.
            if !was_over || windows_passed > 1 {
                self.consecutive_over = 0;
            }
            self.window_start_ms = Some(start + windows_passed * 1000);
            self.count = 0;
        }
        self.count += 1;
        self.max_per_window = self.max_per_window.max(self.count);
        if self.count <= self.limit {
            return RateDecision::Allow;
        }
        let first = self.count == self.limit + 1;
        if first {
            self.consecutive_over += 1;
            if self.consecutive_over >= self.persist_windows {
                return RateDecision::Close {
                    windows: self.consecutive_over,
                };
            }
        }
        RateDecision::Reject {
            first_in_window: first,
        }
    }

    /// The most appends seen in any one window so far.
    pub fn max_per_window(&self) -> u32 {
        self.max_per_window
    }
}

/// The set of interviews with a live realtime socket: a second connection is refused (4409).
#[derive(Debug, Clone, Default)]
pub struct ConnectionRegistry {
    live: Arc<Mutex<HashMap<String, u64>>>,
}

/// Holds an interview's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    registry: ConnectionRegistry,
    interview_id: String,
    conn_id: u64,
}

impl ConnectionRegistry {
    /// Claims the interview for connection `conn_id`, or `None` if another connection holds it.
    pub fn try_claim(&self, interview_id: &str, conn_id: u64) -> Option<ConnectionSlot> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.contains_key(interview_id) {
            return None;
        }
        live.insert(interview_id.to_string(), conn_id);
        Some(ConnectionSlot {
            registry: self.clone(),
            interview_id: interview_id.to_string(),
            conn_id,
        })
    }

    /// Number of interviews with a live socket.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no socket is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(&self.interview_id) == Some(&self.conn_id) {
            live.remove(&self.interview_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_per_second_is_fine_forever() {
        let mut l = AppendRateLimiter::new(10, 3);
        for i in 0..600u64 {
            assert_eq!(l.on_append(i * 100), RateDecision::Allow, "append {i}");
        }
        assert_eq!(l.max_per_window(), 10);
    }

    #[test]
    fn eleventh_in_a_window_is_rejected_once_then_persisting_closes() {
        let mut l = AppendRateLimiter::new(10, 3);
        // 20 appends per second: every window goes over.
        let mut decisions = Vec::new();
        for i in 0..60u64 {
            decisions.push(l.on_append(i * 50));
        }
        let firsts: Vec<usize> = decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                matches!(
                    d,
                    RateDecision::Reject {
                        first_in_window: true
                    }
                )
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(firsts, vec![10, 30]);
        assert_eq!(decisions[50], RateDecision::Close { windows: 3 });
        // Rejected appends count too: the figure is what the client sent.
        assert_eq!(l.max_per_window(), 20);
    }

    #[test]
    fn a_good_window_resets_persistence() {
        let mut l = AppendRateLimiter::new(10, 2);
        for i in 0..11u64 {
            l.on_append(i * 10);
        }
        // Second window: within the limit.
        for i in 0..5u64 {
            assert_eq!(l.on_append(1000 + i * 10), RateDecision::Allow);
        }
        // Third window over again: only one consecutive bad window, so a reject, not a close.
        let mut last = RateDecision::Allow;
        for i in 0..11u64 {
            last = l.on_append(2000 + i * 10);
        }
        assert_eq!(
            last,
            RateDecision::Reject {
                first_in_window: true
            }
        );
    }

    #[test]
    fn registry_allows_one_slot_per_interview() {
        let r = ConnectionRegistry::default();
        let a = r.try_claim("iv", 1).unwrap();
        assert!(r.try_claim("iv", 2).is_none());
        assert!(r.try_claim("other", 3).is_some());
        drop(a);
        assert!(r.try_claim("iv", 4).is_some());
    }
}
