//! Reconnect delays: exponential backoff with full jitter, bounded attempts.
//!
//! Attempt `n` (1-based) waits a uniform random delay in `0..=min(max, base × 2^(n-1))` ("full
//! jitter", which spreads a crowd of clients reconnecting after a server restart). After a
//! `4429` (rate limited) close the ceiling is four times higher and the delay at least half of it.

use super::rng::Rng;

/// Backoff parameters (from the session config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay, ms (default 250).
    pub base_ms: u64,
    /// Largest ceiling, ms (default 8000).
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 250,
            max_ms: 8000,
        }
    }
}

impl Backoff {
    /// The ceiling for retry number `attempt` (1-based): `min(max, base × 2^(attempt-1))`.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(32);
        self.base_ms.saturating_mul(1u64 << shift).min(self.max_ms)
    }

    /// The delay before retry number `attempt`, full jitter.
    pub fn delay_ms(&self, attempt: u32, rng: &mut Rng) -> u64 {
        rng.below_or_eq(self.ceiling_ms(attempt))
    }

    /// The delay after a rate-limit close (4429): in `[c/2, c]` with `c = 4 × ceiling`, so the
    /// client really backs off instead of retrying at once by luck of the jitter.
    pub fn rate_limited_delay_ms(&self, attempt: u32, rng: &mut Rng) -> u64 {
        let c = self
            .ceiling_ms(attempt)
            .saturating_mul(4)
            .max(self.base_ms * 4);
        c / 2 + rng.below_or_eq(c - c / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_max() {
        let b = Backoff::default();
        let c: Vec<u64> = (1..=8).map(|n| b.ceiling_ms(n)).collect();
        assert_eq!(c, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(b.ceiling_ms(200), 8000);
    }

    #[test]
    fn delays_stay_within_ceiling_and_spread() {
        let b = Backoff::default();
        let mut rng = Rng::new(42);
        let d: Vec<u64> = (0..200).map(|_| b.delay_ms(3, &mut rng)).collect();
        assert!(d.iter().all(|&x| x <= 1000));
        assert!(d.iter().any(|&x| x < 300) && d.iter().any(|&x| x > 700));
        for _ in 0..100 {
            let r = b.rate_limited_delay_ms(1, &mut rng);
            assert!((500..=1000).contains(&r), "{r}");
        }
    }
}
