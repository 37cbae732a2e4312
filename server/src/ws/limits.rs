//! Limits on what a client may send: appends per second (a GCRA, per connection), bytes per
//! append, and per-interview budgets that survive reconnects (token buckets: milliseconds of
//! audio, and each client event type; kept by [`crate::coord::Coord`], in memory or in Redis).
//! Rejections in consecutive one-second windows close the connection with 4429. Pure: time
//! enters as `now_ms`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::Limits;

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
///
/// With a stall tolerance ([`AppendRateLimiter::with_stall_tolerance`]) the slots of a silent
/// stretch are kept, up to that long: a path that stalls (no FIN, TCP retransmitting) delivers
/// what the client sent meanwhile in one burst when it recovers, and a client that kept to
/// `limit` on its own clock is not punished for the network's bunching. The connection still
/// starts with one second's burst, and a sustained higher rate is still limited once the kept
/// slots are spent; the long-run rate stays `limit` per second.
#[derive(Debug, Clone)]
pub struct AppendRateLimiter {
    limit: u64,
    persist_windows: u32,
    /// Slots of silence kept on top of the one-second burst, ms.
    stall_ms: u64,
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
            stall_ms: 0,
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

    /// Keeps the slots of up to `stall_ms` of silence for a catch-up burst (see the type's doc).
    pub fn with_stall_tolerance(mut self, stall_ms: u64) -> Self {
        self.stall_ms = stall_ms;
        self
    }

    /// Records one append at `now_ms`.
    pub fn on_append(&mut self, now_ms: u64) -> RateDecision {
        if self.origin_ms.is_none() {
            // The first second's burst only: the stall credit is earned by silence, not given.
            self.tat = (now_ms + self.stall_ms) * self.limit;
        }
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
        let tolerance =
            (1000 - 1000 / self.limit + JITTER_TOLERANCE_MS + self.stall_ms) * self.limit;
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

/// A token bucket: `rate_per_s` tokens per second up to `burst`, in exact integer arithmetic
/// (milli-tokens).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Milli-tokens available.
    level: u64,
    /// Milli-tokens gained per ms.
    rate_per_ms: u64,
    /// Milli-tokens at most.
    capacity: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate_per_s`.
    pub fn new(rate_per_s: u64, burst: u64, now_ms: u64) -> Self {
        let capacity = burst.max(1).saturating_mul(1000);
        Self {
            level: capacity,
            rate_per_ms: rate_per_s,
            capacity,
            last_ms: now_ms,
        }
    }

    /// Takes `tokens` if that many are available at `now_ms`.
    pub fn take(&mut self, now_ms: u64, tokens: u64) -> bool {
        let gained = now_ms
            .saturating_sub(self.last_ms)
            .saturating_mul(self.rate_per_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.level = self.level.saturating_add(gained).min(self.capacity);
        let want = tokens.saturating_mul(1000);
        if want <= self.level {
            self.level -= want;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full at `now_ms` (then forgetting it loses nothing).
    pub fn is_full(&self, now_ms: u64) -> bool {
        let gained = now_ms
            .saturating_sub(self.last_ms)
            .saturating_mul(self.rate_per_ms);
        self.level.saturating_add(gained) >= self.capacity
    }
}

/// Budgets remembered at most by [`Budgets`] (full buckets are forgotten first: a full bucket is
/// the same as a new one).
pub const MAX_BUDGETS: usize = 16_384;

/// The budgets kept per interview, across its connections (and, with Redis, across instances).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Budget {
    /// Milliseconds of input audio (`RATE_LIMIT_AUDIO_*`).
    Audio,
    /// `conversation.item.create` events.
    TextItems,
    /// `response.create` events.
    Responses,
    /// `session.update` events.
    SessionUpdates,
    /// Every other client frame.
    Other,
}

impl Budget {
    /// Short name (a Redis key part).
    pub fn name(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::TextItems => "text",
            Self::Responses => "responses",
            Self::SessionUpdates => "updates",
            Self::Other => "other",
        }
    }

    /// `(tokens per second, burst in tokens)`: audio in milliseconds refilled at
    /// `audio_realtime_factor` × real time holding `audio_burst_ms`; events at their rate per
    /// second holding five seconds' worth (at least 5).
    pub fn spec(self, l: &Limits) -> (u64, u64) {
        let events = |per_s: u32| {
            let r = u64::from(per_s.max(1));
            (r, (5 * r).max(5))
        };
        match self {
            // Rate in ms of audio per second of wall time, so 1.5× is 1500.
            Self::Audio => (
                (l.audio_realtime_factor.max(0.0) * 1000.0).round() as u64,
                l.audio_burst_ms,
            ),
            Self::TextItems => events(l.text_items_per_s),
            Self::Responses => events(l.responses_per_s),
            Self::SessionUpdates => events(l.session_updates_per_s),
            Self::Other => events(l.other_events_per_s),
        }
    }
}

/// The per-interview budgets of one process: token buckets keyed by interview and [`Budget`], so
/// a reconnect does not reset them. The clock (`now_ms`) is the server's monotonic one. The
/// in-memory half of [`crate::coord::Coord`]; Redis keeps the same buckets for several instances.
#[derive(Debug, Default)]
pub struct Budgets {
    buckets: Mutex<HashMap<(String, Budget), TokenBucket>>,
}

impl Budgets {
    /// Takes `amount` from the interview's `budget`; false when it would exceed it.
    pub fn take(
        &self,
        limits: &Limits,
        interview_id: &str,
        budget: Budget,
        now_ms: u64,
        amount: u64,
    ) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = (interview_id.to_string(), budget);
        if !b.contains_key(&key) && b.len() >= MAX_BUDGETS {
            b.retain(|_, v| !v.is_full(now_ms));
            if b.len() >= MAX_BUDGETS {
                // Every budget is in use: forget one (bounded memory beats exactness here).
                if let Some(k) = b.keys().next().cloned() {
                    b.remove(&k);
                }
            }
        }
        let (per_s, burst) = budget.spec(limits);
        b.entry(key)
            .or_insert_with(|| TokenBucket::new(per_s, burst, now_ms))
            .take(now_ms, amount)
    }

    /// Budgets remembered.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no budget is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The kinds of client events with a budget of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// `input_audio_buffer.append` carrying about this many decoded bytes.
    Append {
        /// Decoded audio bytes (from the base64 length).
        bytes: usize,
    },
    /// `conversation.item.create`.
    TextItem,
    /// `response.create`.
    ResponseCreate,
    /// `session.update`.
    SessionUpdate,
    /// Anything else, unknown and invalid frames included.
    Other,
}

impl EventKind {
    /// The kind of an event of type `ty` whose `audio` field (appends) is `audio_b64`.
    pub fn of(ty: Option<&str>, audio_b64: Option<&str>) -> Self {
        match ty {
            Some("input_audio_buffer.append") => Self::Append {
                bytes: audio_b64.map_or(0, base64_decoded_len),
            },
            Some("conversation.item.create") => Self::TextItem,
            Some("response.create") => Self::ResponseCreate,
            Some("session.update") => Self::SessionUpdate,
            _ => Self::Other,
        }
    }
}

/// Bytes that base64 text of this length decodes to (exact for valid padded base64).
pub fn base64_decoded_len(s: &str) -> usize {
    let pad = s.bytes().rev().take(2).filter(|&b| b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(pad)
}

/// What the connection's limits decided about one client event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Apply it.
    Allow,
    /// Drop it; when `notify`, answer with an `error` of `code` (one per kind and window).
    Reject {
        /// OpenAI's error code.
        code: &'static str,
        /// The error message.
        message: String,
        /// Send the error (false for further rejections of the same window).
        notify: bool,
    },
    /// Abuse persisted: send the error, then close 4429.
    Close {
        /// The error message.
        message: String,
    },
}

/// Consecutive one-second windows (aligned to the connection's start) with rejections.
#[derive(Debug, Clone, Default)]
struct Persistence {
    last_window: Option<u64>,
    consecutive: u32,
    notified: u8,
}

impl Persistence {
    /// Records a rejection of a kind (`bit`) at `now_ms`: (first of this kind in the window,
    /// consecutive windows with rejections).
    fn on_reject(&mut self, now_ms: u64, bit: u8) -> (bool, u32) {
        let w = now_ms / 1000;
        if self.last_window != Some(w) {
            self.consecutive = match self.last_window {
                Some(p) if p + 1 == w => self.consecutive + 1,
                _ => 1,
            };
            self.last_window = Some(w);
            self.notified = 0;
        }
        let first = self.notified & bit == 0;
        self.notified |= bit;
        (first, self.consecutive)
    }
}

/// What [`ConnectionLimits::begin`] needs before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gate {
    /// Decided by the connection's own limits.
    Decided(Verdict),
    /// Take `amount` from the interview's shared `budget`, then call [`ConnectionLimits::finish`].
    Ask {
        /// Which budget.
        budget: Budget,
        /// How much (ms of audio, or 1 event).
        amount: u64,
    },
}

/// The limits of one connection: the append rate (per connection, so a reconnect's catch-up
/// burst passes), the bytes per append, and the one-error-per-window / 4429 bookkeeping; the
/// per-interview [`Budget`]s are asked of the caller (they live in [`crate::coord::Coord`]).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    limits: Limits,
    appends: AppendRateLimiter,
    persistence: Persistence,
}

impl ConnectionLimits {
    /// Fresh limits for a connection that starts at `now_ms` (connection clock).
    pub fn new(limits: Limits, _now_ms: u64) -> Self {
        Self {
            appends: AppendRateLimiter::new(limits.appends_per_s, limits.persist_windows)
                .with_stall_tolerance(limits.append_stall_ms),
            persistence: Persistence::default(),
            limits,
        }
    }

    /// The append counter (for the dev record's appends-per-second figures).
    pub fn appends(&self) -> &AppendRateLimiter {
        &self.appends
    }

    /// Decides about one event of `kind` at `now_ms` (connection clock); `take` takes an amount
    /// from the interview's shared budget and says whether it was available.
    pub fn check(
        &mut self,
        now_ms: u64,
        kind: EventKind,
        take: impl FnOnce(Budget, u64) -> bool,
    ) -> Verdict {
        match self.begin(now_ms, kind) {
            Gate::Decided(v) => v,
            Gate::Ask { budget, amount } => {
                let granted = take(budget, amount);
                self.finish(now_ms, kind, granted)
            }
        }
    }

    /// The first half of [`ConnectionLimits::check`], for callers whose budgets answer
    /// asynchronously: the connection's own limits, then which shared budget to ask.
    pub fn begin(&mut self, now_ms: u64, kind: EventKind) -> Gate {
        let l = self.limits;
        let budget = match kind {
            EventKind::Append { bytes } => {
                match self.appends.on_append(now_ms) {
                    RateDecision::Allow => {}
                    RateDecision::Reject { first_in_window } => {
                        return Gate::Decided(Verdict::Reject {
                            code: "rate_limit_exceeded",
                            message: format!(
                                "More than {} input_audio_buffer.append events per second; audio dropped.",
                                l.appends_per_s
                            ),
                            notify: first_in_window,
                        })
                    }
                    RateDecision::Close { windows } => {
                        return Gate::Decided(Verdict::Close {
                            message: format!(
                                "More than {} appends per second for {windows} consecutive seconds.",
                                l.appends_per_s
                            ),
                        })
                    }
                }
                if bytes > l.max_append_bytes {
                    let message = format!(
                        "An append of {bytes} bytes of audio exceeds the {} bytes allowed per append; audio dropped.",
                        l.max_append_bytes
                    );
                    return Gate::Decided(self.refuse(now_ms, 1, message));
                }
                // 48 bytes per ms at 24 kHz PCM16.
                return Gate::Ask {
                    budget: Budget::Audio,
                    amount: (bytes as u64).div_ceil(48),
                };
            }
            EventKind::TextItem => Budget::TextItems,
            EventKind::ResponseCreate => Budget::Responses,
            EventKind::SessionUpdate => Budget::SessionUpdates,
            EventKind::Other => Budget::Other,
        };
        Gate::Ask { budget, amount: 1 }
    }

    /// The second half of [`ConnectionLimits::check`]: whether the shared budget granted it.
    pub fn finish(&mut self, now_ms: u64, kind: EventKind, granted: bool) -> Verdict {
        if granted {
            return Verdict::Allow;
        }
        let l = self.limits;
        let (bit, message) = match kind {
            EventKind::Append { .. } => (
                2,
                format!(
                    "Input audio arrives faster than {}× real time (after a {} s burst); audio dropped.",
                    l.audio_realtime_factor,
                    l.audio_burst_ms as f64 / 1000.0
                ),
            ),
            EventKind::TextItem => (
                4,
                format!(
                    "More than {} conversation.item.create events per second.",
                    l.text_items_per_s
                ),
            ),
            EventKind::ResponseCreate => (
                8,
                format!(
                    "More than {} response.create events per second.",
                    l.responses_per_s
                ),
            ),
            EventKind::SessionUpdate => (
                16,
                format!(
                    "More than {} session.update events per second.",
                    l.session_updates_per_s
                ),
            ),
            EventKind::Other => (
                32,
                format!(
                    "More than {} client events per second.",
                    l.other_events_per_s
                ),
            ),
        };
        self.refuse(now_ms, bit, message)
    }

    /// A refusal of kind `bit`: one error per kind and window, 4429 when it persists.
    fn refuse(&mut self, now_ms: u64, bit: u8, message: String) -> Verdict {
        let (first, windows) = self.persistence.on_reject(now_ms, bit);
        if windows >= self.limits.persist_windows.max(1) && first {
            return Verdict::Close { message };
        }
        let code = if bit == 1 {
            "invalid_value"
        } else {
            "rate_limit_exceeded"
        };
        Verdict::Reject {
            code,
            message,
            notify: first,
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
    fn a_stall_delivers_its_appends_in_one_burst_and_passes() {
        let mut l = AppendRateLimiter::new(10, 3).with_stall_tolerance(10_000);
        // Paced for 10 s, then the path stalls for 5 s: the 50 appends sent meanwhile arrive at
        // once when it recovers, and the client goes on at its pace.
        for i in 0..100u64 {
            assert_eq!(l.on_append(i * 100), RateDecision::Allow, "append {i}");
        }
        for i in 0..50u64 {
            assert_eq!(l.on_append(15_000), RateDecision::Allow, "held append {i}");
        }
        for i in 0..100u64 {
            assert_eq!(
                l.on_append(15_000 + i * 100),
                RateDecision::Allow,
                "after {i}"
            );
        }
        // The same burst without the tolerance loses most of the held audio.
        let mut strict = AppendRateLimiter::new(10, 3);
        for i in 0..100u64 {
            strict.on_append(i * 100);
        }
        let passed = (0..50)
            .filter(|_| strict.on_append(15_000) == RateDecision::Allow)
            .count();
        assert!(passed < 20, "{passed}");
    }

    #[test]
    fn the_stall_credit_is_earned_by_silence_and_bounded() {
        let mut l = AppendRateLimiter::new(10, 3).with_stall_tolerance(10_000);
        // A new connection gets one second's burst, as without the tolerance.
        for _ in 0..13 {
            assert_eq!(l.on_append(1000), RateDecision::Allow);
        }
        assert!(matches!(l.on_append(1000), RateDecision::Reject { .. }));
        // A minute of silence keeps at most 10 s of slots: 113 pass, the 114th does not.
        for i in 0..113 {
            assert_eq!(l.on_append(61_000), RateDecision::Allow, "append {i}");
        }
        assert!(matches!(l.on_append(61_000), RateDecision::Reject { .. }));
        // A sustained 20 per second is limited once the credit is spent, and then closed.
        let mut fast = AppendRateLimiter::new(10, 3).with_stall_tolerance(10_000);
        let closed =
            (0..1000u64).find(|i| matches!(fast.on_append(i * 50), RateDecision::Close { .. }));
        assert_eq!(closed.map(|i| i * 50 / 1000), Some(3));
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

    fn limits() -> Limits {
        Limits::default()
    }

    fn append_of(ms: u64) -> EventKind {
        EventKind::Append {
            bytes: (ms * 48) as usize,
        }
    }

    #[test]
    fn audio_at_ten_times_real_time_in_ten_appends_per_second_is_limited() {
        // The old limit counted events only: ten one-second appends per second passed.
        let budgets = Budgets::default();
        let l = limits();
        let mut c = ConnectionLimits::new(l, 0);
        let mut accepted_ms = 0;
        let mut close_at = None;
        for i in 0..200u64 {
            let now = i * 100;
            match c.check(now, append_of(1000), |b, n| {
                budgets.take(&l, "iv", b, now, n)
            }) {
                Verdict::Allow => accepted_ms += 1000,
                Verdict::Close { .. } => {
                    close_at = Some(now);
                    break;
                }
                Verdict::Reject { code, .. } => assert_eq!(code, "rate_limit_exceeded"),
            }
        }
        // The 12 s burst passes, then 1.5 s of audio per second; persistent abuse closes.
        let close_at = close_at.expect("persistent abuse closes");
        assert!(close_at <= 5000, "{close_at}");
        assert!(
            accepted_ms <= 12_000 + 1500 * (close_at / 1000 + 1),
            "{accepted_ms}"
        );
    }

    #[test]
    fn real_time_audio_and_a_ten_second_catch_up_pass_and_the_budget_survives_reconnects() {
        let budgets = Budgets::default();
        let l = limits();
        let mut c = ConnectionLimits::new(l, 0);
        // A 10 s backlog in 1 s chunks at 10 per second, then real time for a minute.
        for i in 0..10u64 {
            let now = i * 100;
            assert_eq!(
                c.check(now, append_of(1000), |b, n| budgets
                    .take(&l, "iv", b, now, n)),
                Verdict::Allow
            );
        }
        for i in 0..600u64 {
            let now = 1000 + i * 100;
            assert_eq!(
                c.check(now, append_of(100), |b, n| budgets
                    .take(&l, "iv", b, now, n)),
                Verdict::Allow,
                "{i}"
            );
        }
        // A new connection of the same interview does not get a fresh burst.
        let now = 61_000;
        assert!(budgets.take(&l, "iv", Budget::Audio, now, 6_000));
        let mut c2 = ConnectionLimits::new(l, 0);
        let v = c2.check(0, append_of(10_000), |b, n| {
            budgets.take(&l, "iv", b, now, n)
        });
        assert!(matches!(v, Verdict::Reject { notify: true, .. }), "{v:?}");
        // Another interview has its own budget.
        assert!(budgets.take(&l, "other", Budget::Audio, now, 10_000));
    }

    #[test]
    fn oversized_appends_and_every_event_type_have_a_budget() {
        let l = limits();
        let mut c = ConnectionLimits::new(l, 0);
        let v = c.check(
            0,
            EventKind::Append {
                bytes: l.max_append_bytes + 2,
            },
            |_, _| true,
        );
        assert!(
            matches!(
                v,
                Verdict::Reject {
                    code: "invalid_value",
                    notify: true,
                    ..
                }
            ),
            "{v:?}"
        );
        for kind in [
            EventKind::TextItem,
            EventKind::ResponseCreate,
            EventKind::SessionUpdate,
            EventKind::Other,
        ] {
            let budgets = Budgets::default();
            let mut c = ConnectionLimits::new(l, 0);
            let mut passed = 0;
            let first = loop {
                match c.check(10, kind, |b, n| budgets.take(&l, "iv", b, 10, n)) {
                    Verdict::Allow => passed += 1,
                    v => break v,
                }
            };
            assert!((5..=50).contains(&passed), "{kind:?}: {passed}");
            assert!(
                matches!(first, Verdict::Reject { notify: true, .. }),
                "{first:?}"
            );
            // One error per window, then 4429 when it persists.
            let mut closed = false;
            let mut notified = 1;
            for t in 0..5000u64 {
                match c.check(10 + t, kind, |b, n| budgets.take(&l, "iv", b, 10 + t, n)) {
                    Verdict::Close { .. } => {
                        closed = true;
                        break;
                    }
                    Verdict::Reject { notify: true, .. } => notified += 1,
                    _ => {}
                }
            }
            assert!(closed, "{kind:?}");
            assert_eq!(notified, 2, "{kind:?}");
        }
    }

    #[test]
    fn budgets_are_bounded() {
        let b = Budgets::default();
        let l = limits();
        for i in 0..(MAX_BUDGETS + 10) {
            b.take(&l, &format!("iv{i}"), Budget::Audio, 0, 100);
        }
        assert!(b.len() <= MAX_BUDGETS);
        assert_eq!(base64_decoded_len("AAAA"), 3);
        assert_eq!(base64_decoded_len("AAA="), 2);
        assert_eq!(base64_decoded_len("AA=="), 1);
    }
}
