//! Connection limits: the per-connection append rate limiter and the one-socket-per-interview
//! registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Arrival jitter tolerated by the rate limiter on top of a one-second burst, ms: frames sent at
/// most `limit` per second may arrive bunched by up to this much without being limited.
pub const JITTER_TOLERANCE_MS: u64 = 300;

/// Arrival jitter allowed for in the reported appends-per-second figure, ms: it counts appends in
/// sliding windows of `1000 - MEASURE_JITTER_MS` ms, so a client that sends at most `limit` in
/// any second of its own clock reports at most `limit` when its frames arrive up to this much
/// bunched, while 11 in one burst, or 12 or more per second paced, still show.
pub const MEASURE_JITTER_MS: u64 = 100;
/// Arrival times kept for the sliding count (bounded: a flood reports this many at most).
const MAX_TRACKED: usize = 64;

/// What the rate limiter decided about one `input_audio_buffer.append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateDecision {
    /// Within the limit.
    Allow,
    /// Over the limit: reject the append; `first_in_window` says whether this is the first
    /// rejection of the current one-second window (send one `error` event per window, not one
    /// per append).
    Reject {
        /// True for the first rejected append of the current window.
        first_in_window: bool,
    },
    /// Appends were rejected in `windows` consecutive one-second windows: close with 4429.
    Close {
        /// Consecutive windows with rejections.
        windows: u32,
    },
}

/// The append rate limit: `limit` per second as a GCRA (virtual scheduling: one emission every
/// `1000 / limit` ms) whose tolerance is one second's worth of appends plus
/// [`JITTER_TOLERANCE_MS`]. So the long-run rate is exactly `limit` per second; a client that
/// keeps to `limit` in any second of its own clock — paced, or in a catch-up burst of `limit` —
/// is never limited, even when its frames arrive bunched; a burst of more than `limit` + 3, or a
/// sustained higher rate, is. "Persists" means rejections in `persist_windows` consecutive
/// one-second windows (aligned to the connection's first append). Also counts raw appends per
/// window for reporting.
#[derive(Debug, Clone)]
pub struct AppendRateLimiter {
    limit: u64,
    persist_windows: u32,
    origin_ms: Option<u64>,
    /// Theoretical arrival time, in ms × limit (exact integer arithmetic).
    tat: u64,
    window: u64,
    count: u32,
    max_per_window: u32,
    last_reject_window: Option<u64>,
    consecutive: u32,
    recent: std::collections::VecDeque<u64>,
    max_sliding: u32,
}

impl AppendRateLimiter {
    /// A limiter allowing `limit` appends per second, closing after `persist_windows` bad windows.
    pub fn new(limit: u32, persist_windows: u32) -> Self {
        Self {
            limit: u64::from(limit.max(1)),
            persist_windows: persist_windows.max(1),
            origin_ms: None,
            tat: 0,
            window: 0,
            count: 0,
            max_per_window: 0,
            last_reject_window: None,
            consecutive: 0,
            recent: std::collections::VecDeque::with_capacity(MAX_TRACKED),
            max_sliding: 0,
        }
    }

    /// Records one append at `now_ms`.
    pub fn on_append(&mut self, now_ms: u64) -> RateDecision {
        let origin = *self.origin_ms.get_or_insert(now_ms);
        let window = now_ms.saturating_sub(origin) / 1000;
        if window != self.window {
            self.window = window;
            self.count = 0;
        }
        self.count += 1;
        self.max_per_window = self.max_per_window.max(self.count);
        let span = 1000 - MEASURE_JITTER_MS;
        while self
            .recent
            .front()
            .is_some_and(|&t| t + span <= now_ms || self.recent.len() >= MAX_TRACKED)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now_ms);
        self.max_sliding = self.max_sliding.max(self.recent.len() as u32);
        // Scaled by `limit` so the emission interval (1000 / limit ms) is an integer: 1000.
        let t = now_ms * self.limit;
        let tat = self.tat.max(t);
        let tolerance = (1000 - 1000 / self.limit + JITTER_TOLERANCE_MS) * self.limit;
        if tat <= t + tolerance {
            self.tat = tat + 1000;
            return RateDecision::Allow;
        }
        if self.last_reject_window == Some(window) {
            return RateDecision::Reject {
                first_in_window: false,
            };
        }
        self.consecutive = match self.last_reject_window {
            Some(w) if w + 1 == window => self.consecutive + 1,
            _ => 1,
        };
        self.last_reject_window = Some(window);
        if self.consecutive >= self.persist_windows {
            return RateDecision::Close {
                windows: self.consecutive,
            };
        }
        RateDecision::Reject {
            first_in_window: true,
        }
    }

    /// The most appends received in one fixed one-second window so far (raw count, rejected
    /// ones included; arrival jitter can make an honest 10/s sender show 11).
    pub fn max_per_window(&self) -> u32 {
        self.max_per_window
    }

    /// The most appends received in any sliding window of `1000 - MEASURE_JITTER_MS` ms:
    /// "appends per second" with an allowance for arrival jitter (see [`MEASURE_JITTER_MS`]).
    pub fn max_per_second(&self) -> u32 {
        self.max_sliding
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
    fn ten_per_second_with_arrival_jitter_is_fine_forever() {
        let mut l = AppendRateLimiter::new(10, 3);
        // Sent every 100 ms, each arrival delayed by a pseudo-random 0..250 ms.
        let mut x: u64 = 12345;
        for i in 0..6000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = (x >> 33) % 250;
            assert_eq!(
                l.on_append(i * 100 + jitter),
                RateDecision::Allow,
                "append {i}"
            );
        }
        // Raw per-window counts do show the bunching.
        assert!(l.max_per_window() >= 11);
    }

    #[test]
    fn reported_rate_allows_for_arrival_jitter_but_shows_violations() {
        let mut honest = AppendRateLimiter::new(10, 3);
        let mut x: u64 = 99;
        for i in 0..600u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            honest.on_append(i * 100 + (x >> 33) % MEASURE_JITTER_MS);
        }
        assert_eq!(honest.max_per_second(), 10);
        let mut burst = AppendRateLimiter::new(10, 3);
        for _ in 0..11 {
            burst.on_append(5000);
        }
        assert_eq!(burst.max_per_second(), 11);
        let mut fast = AppendRateLimiter::new(10, 3);
        for i in 0..60u64 {
            fast.on_append(i * 1000 / 12);
        }
        assert!(fast.max_per_second() >= 11, "{}", fast.max_per_second());
        let mut flood = AppendRateLimiter::new(10, 3);
        for _ in 0..1000 {
            flood.on_append(0);
        }
        assert_eq!(flood.max_per_second(), MAX_TRACKED as u32);
    }

    #[test]
    fn a_catch_up_burst_of_ten_then_real_time_is_fine() {
        let mut l = AppendRateLimiter::new(10, 3);
        for _ in 0..10 {
            assert_eq!(l.on_append(0), RateDecision::Allow);
        }
        // The client's next second starts at 1000 on its clock; the frames arrive 300 ms early.
        for _ in 0..10 {
            assert_eq!(l.on_append(700), RateDecision::Allow);
        }
        for i in 0..100u64 {
            assert_eq!(l.on_append(2000 + i * 100), RateDecision::Allow);
        }
    }

    #[test]
    fn twenty_per_second_is_rejected_once_per_window_then_closed() {
        let mut l = AppendRateLimiter::new(10, 3);
        let mut decisions = Vec::new();
        for i in 0..100u64 {
            decisions.push((i * 50, l.on_append(i * 50)));
        }
        let firsts: Vec<u64> = decisions
            .iter()
            .filter(|(_, d)| {
                matches!(
                    d,
                    RateDecision::Reject {
                        first_in_window: true
                    }
                )
            })
            .map(|(t, _)| *t / 1000)
            .collect();
        // The burst allowance (13) lasts until 1.25 s; then windows 1 and 2 get one error each.
        assert_eq!(firsts, vec![1, 2]);
        let close: Vec<u64> = decisions
            .iter()
            .filter(|(_, d)| matches!(d, RateDecision::Close { windows: 3 }))
            .map(|(t, _)| *t / 1000)
            .collect();
        assert_eq!(close, vec![3]);
        // Long-run: 10 per second plus the burst allowance got through in the first 3 s.
        let allowed = decisions
            .iter()
            .filter(|(t, d)| *t < 3000 && *d == RateDecision::Allow)
            .count();
        assert!((40..=44).contains(&allowed), "{allowed}");
        assert_eq!(l.max_per_window(), 20);
    }

    #[test]
    fn a_burst_of_thirteen_passes_the_fourteenth_does_not() {
        let mut l = AppendRateLimiter::new(10, 3);
        for _ in 0..13 {
            assert_eq!(l.on_append(1000), RateDecision::Allow);
        }
        assert_eq!(
            l.on_append(1000),
            RateDecision::Reject {
                first_in_window: true
            }
        );
        // 100 ms later one more slot is free.
        assert_eq!(l.on_append(1100), RateDecision::Allow);
    }

    #[test]
    fn a_clean_window_resets_persistence() {
        let mut l = AppendRateLimiter::new(10, 2);
        for _ in 0..20 {
            l.on_append(0);
        }
        assert_eq!(l.consecutive, 1);
        // Window 1: quiet. Window 2: over again → only one consecutive bad window, no close.
        for _ in 0..20 {
            assert!(!matches!(l.on_append(2000), RateDecision::Close { .. }));
        }
        assert_eq!(l.consecutive, 1);
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
