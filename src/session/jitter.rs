//! The playout delay learnt from measured arrival jitter (NetEq-style): each audio delta's
//! lateness against the playback clock goes into a histogram with forgetting; the target delay
//! is a high percentile of it, raised at once by a later delta (fast attack) and lowered slowly
//! (slow decay), within the configured bounds.
//!
//! Lateness of a delta: its arrival time minus when its audio would be due if the item had
//! started playing at its earliest-arriving point, i.e. `arrival − media_start − origin`, where
//! `media_start` is the audio of the item before it and `origin` the item's smallest
//! `arrival − media_start` so far. A player that starts an item `target` ms after its first
//! audio arrives never runs dry for a delta whose lateness is at most `target`.

/// Width of a histogram bucket, ms.
const BUCKET_MS: u32 = 10;
/// Buckets (the last one takes everything beyond): 0–640 ms.
const BUCKETS: usize = 64;
/// Weight kept by older observations at each new one: a memory of ~1000 deltas (~100 s of
/// speech in 100 ms deltas).
const FORGET: f32 = 0.999;
/// Quantile of the lateness the target covers.
const QUANTILE: f32 = 0.99;
/// Added to the measured lateness: the hop from the main thread to the audio thread, one
/// render quantum and the playback resampler's delay.
pub const MARGIN_MS: u32 = 10;
/// The peak (fast attack) falls by 1 ms per this period towards the quantile: a spike is
/// remembered for minutes (spikes a few minutes apart keep the delay up: no gap for each).
const DECAY_EVERY_MS: u64 = 4_000;

/// Per-item arrival clock: the smallest `arrival − media_start` seen.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ItemClock {
    origin: Option<i64>,
}

impl ItemClock {
    /// Lateness (ms, ≥ 0) of audio starting `media_ms` into the item that arrived at `now_ms`.
    pub fn lateness(&mut self, now_ms: u64, media_ms: u64) -> u64 {
        let rel = now_ms as i64 - media_ms as i64;
        let origin = self.origin.map_or(rel, |o| o.min(rel));
        self.origin = Some(origin);
        (rel - origin) as u64
    }
}

/// The target playout delay, learnt from lateness observations.
#[derive(Debug, Clone)]
pub(super) struct JitterEstimator {
    buckets: [f32; BUCKETS],
    total: f32,
    /// Fast-attack peak (ms, with the margin), and when it last decayed.
    peak_ms: u64,
    peak_at: u64,
    min_ms: u32,
    max_ms: u32,
}

impl JitterEstimator {
    /// An estimator whose target stays within `min_ms..=max_ms` (starting at `min_ms`).
    pub fn new(min_ms: u32, max_ms: u32) -> JitterEstimator {
        JitterEstimator {
            buckets: [0.0; BUCKETS],
            total: 0.0,
            peak_ms: 0,
            peak_at: 0,
            min_ms,
            max_ms: max_ms.max(min_ms),
        }
    }

    /// Records one delta's lateness (ms) at `now_ms`.
    pub fn observe(&mut self, now_ms: u64, lateness_ms: u64) {
        for b in &mut self.buckets {
            *b *= FORGET;
        }
        self.total = self.total * FORGET + 1.0;
        let i = ((lateness_ms / u64::from(BUCKET_MS)) as usize).min(BUCKETS - 1);
        self.buckets[i] += 1.0;
        self.decay(now_ms);
        // Held at the ceiling at most, so the decay starts from what the delay can be.
        let peak = (lateness_ms + u64::from(MARGIN_MS)).min(u64::from(self.max_ms));
        self.peak_ms = self.peak_ms.max(peak);
    }

    fn decay(&mut self, now_ms: u64) {
        let steps = now_ms.saturating_sub(self.peak_at) / DECAY_EVERY_MS;
        if steps > 0 {
            self.peak_at += steps * DECAY_EVERY_MS;
            self.peak_ms = self.peak_ms.saturating_sub(steps);
        }
    }

    /// The lateness (ms) that `QUANTILE` of the remembered deltas stay within: the upper edge
    /// of its bucket. 0 before any observation.
    pub fn quantile_ms(&self) -> u32 {
        if self.total <= 0.0 {
            return 0;
        }
        let want = self.total * QUANTILE;
        let mut cum = 0.0;
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b;
            if cum >= want {
                return (i as u32 + 1) * BUCKET_MS;
            }
        }
        BUCKETS as u32 * BUCKET_MS
    }

    /// The target delay (ms): the quantile plus the margin, or the decaying peak when higher,
    /// clamped to the bounds.
    pub fn target_ms(&self) -> u32 {
        let q = if self.total > 0.0 {
            self.quantile_ms() + MARGIN_MS
        } else {
            0
        };
        let t = u64::from(q).max(self.peak_ms);
        (t.min(u64::from(self.max_ms)) as u32).max(self.min_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_measured_against_the_earliest_point() {
        let mut c = ItemClock::default();
        assert_eq!(c.lateness(1000, 0), 0);
        assert_eq!(c.lateness(1130, 100), 30); // due at 1100
        assert_eq!(c.lateness(1150, 200), 0); // early: the new origin
        assert_eq!(c.lateness(1290, 300), 40); // due at 1250
    }

    #[test]
    fn target_attacks_fast_and_decays_slowly() {
        let mut j = JitterEstimator::new(60, 300);
        assert_eq!(j.target_ms(), 60);
        for k in 0..200 {
            j.observe(k * 100, 5);
        }
        assert_eq!(j.target_ms(), 60, "small jitter stays at the floor");
        j.observe(20_000, 150);
        assert_eq!(
            j.target_ms(),
            160,
            "one late delta raises the target at once"
        );
        for k in 0..600 {
            j.observe(20_100 + k * 100, 5);
        }
        // 60 s later: the peak fell 15 ms; the histogram still holds the outlier below p99.
        assert_eq!(j.target_ms(), 145);
        j.observe(1_000_000, 2_000);
        assert_eq!(j.target_ms(), 300, "bounded by the ceiling");
        for k in 1..=100 {
            j.observe(1_000_000 + k * 400, 5);
        }
        assert_eq!(
            j.target_ms(),
            290,
            "40 s later: decaying from the ceiling, not from 2 s"
        );
    }

    #[test]
    fn the_quantile_follows_a_wide_distribution() {
        let mut j = JitterEstimator::new(0, 1000);
        for k in 0..2000u64 {
            j.observe(0, k % 100); // uniform 0..99 ms, all at t=0 (no decay)
        }
        let q = j.quantile_ms();
        assert!((90..=100).contains(&q), "{q}");
    }
}
