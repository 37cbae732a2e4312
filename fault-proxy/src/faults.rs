//! The fault set, and the token bucket that enforces a bandwidth cap.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The faults a [`FaultProxy`](crate::FaultProxy) injects; the default is a clean path.
///
/// Serialised as the control API's JSON (`{"blackhole":false,"latency_ms":100,..}`); missing
/// fields take their defaults, unknown fields are refused (a misspelt fault must not pass
/// silently as "no fault").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// All connections, open and new, go silent both ways: bytes are held (the proxy stops
    /// reading and writing), no FIN, no RST. New connections are accepted but not connected
    /// upstream. Lifting it delivers what was held and resumes forwarding.
    pub blackhole: bool,
    /// New connections are reset (RST) as soon as they are accepted, like a down endpoint.
    /// Open connections are not affected.
    pub refuse: bool,
    /// One-way delay added in each direction, in milliseconds.
    pub latency_ms: u32,
    /// Extra uniform random delay in `0..=jitter_ms` per chunk, in milliseconds. Order is kept
    /// (TCP never reorders): a chunk is never delivered before the one read before it.
    pub jitter_ms: u32,
    /// Client → server bandwidth cap in bytes per second (token bucket, burst
    /// [`bucket_burst_bytes`]).
    pub up_bytes_per_s: Option<u32>,
    /// Server → client bandwidth cap in bytes per second (token bucket, burst
    /// [`bucket_burst_bytes`]).
    pub down_bytes_per_s: Option<u32>,
}

/// The token bucket's capacity (its burst) for a cap of `rate` bytes per second: 100 ms worth
/// of bytes, at least 512 and at most 16 KiB.
///
/// Transferring `n` bytes through a capped direction therefore takes at least
/// `(n - burst) / rate` seconds.
pub fn bucket_burst_bytes(rate: u32) -> u32 {
    (rate / 10).clamp(512, 16 * 1024)
}

/// A token bucket for one direction. The rate is read from the current [`Faults`] before every
/// write, so a cap set or changed mid-connection applies to the next write.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    rate: Option<u32>,
}

impl TokenBucket {
    pub(crate) fn new(now: Instant) -> Self {
        TokenBucket {
            tokens: 0.0,
            last: now,
            rate: None,
        }
    }

    /// The most bytes one write may send under `rate` (`None`: no cap).
    pub(crate) fn max_write(rate: Option<u32>, wanted: usize) -> usize {
        match rate {
            Some(rate) => wanted.min(bucket_burst_bytes(rate) as usize),
            None => wanted,
        }
    }

    /// How long to wait before `n` bytes (at most [`Self::max_write`]) may be written at `rate`;
    /// `None` when they may go now.
    pub(crate) fn wait(&mut self, rate: Option<u32>, n: usize, now: Instant) -> Option<Duration> {
        let Some(rate) = rate.filter(|r| *r > 0) else {
            // A rate of 0 would never refill: treat it as "no cap" rather than a silent blackhole.
            self.rate = None;
            return None;
        };
        let capacity = f64::from(bucket_burst_bytes(rate));
        if self.rate.is_none() {
            // A cap just set starts with a full bucket: the documented burst.
            self.tokens = capacity;
            self.last = now;
        }
        self.rate = Some(rate);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(capacity);
        self.last = now;
        let need = (n as f64).min(capacity);
        if self.tokens >= need {
            None
        } else {
            Some(Duration::from_secs_f64(
                (need - self.tokens) / f64::from(rate),
            ))
        }
    }

    /// Takes `n` written bytes out of the bucket (no-op without a cap).
    pub(crate) fn consume(&mut self, n: usize) {
        if self.rate.is_some() {
            self.tokens -= n as f64;
        }
    }
}

/// A small xorshift64* generator for jitter: no dependency, and tests need no particular
/// sequence, only delays within `0..=jitter`.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        // xorshift must not start at 0.
        Jitter(seed | 1)
    }

    /// A uniform value in `0..=max` (up to a negligible modulo bias).
    pub(crate) fn up_to(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // The result is at most `max`, which is a u32.
        ((r >> 32) % (u64::from(max) + 1)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_json_defaults_missing_fields_and_refuses_unknown_ones() {
        let f: Faults = serde_json::from_str(r#"{"latency_ms":120}"#).unwrap();
        assert_eq!(
            f,
            Faults {
                latency_ms: 120,
                ..Faults::default()
            }
        );
        assert!(serde_json::from_str::<Faults>(r#"{"latencyMs":120}"#).is_err());
        let json = serde_json::to_value(Faults {
            up_bytes_per_s: Some(8000),
            ..Faults::default()
        })
        .unwrap();
        assert_eq!(json["up_bytes_per_s"], 8000);
        assert_eq!(json["down_bytes_per_s"], serde_json::Value::Null);
    }

    #[test]
    fn burst_is_a_tenth_of_a_second_within_bounds() {
        assert_eq!(bucket_burst_bytes(1), 512);
        assert_eq!(bucket_burst_bytes(64_000), 6_400);
        assert_eq!(bucket_burst_bytes(10_000_000), 16 * 1024);
    }

    #[test]
    fn bucket_lets_the_burst_through_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0);
        let rate = Some(10_000); // burst 1000
        assert_eq!(TokenBucket::max_write(rate, 5000), 1000);
        assert_eq!(b.wait(rate, 1000, t0), None);
        b.consume(1000);
        let wait = b.wait(rate, 1000, t0).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Half the wait refills half the tokens.
        let half = b.wait(rate, 1000, t0 + Duration::from_millis(50)).unwrap();
        assert!((half.as_secs_f64() - 0.05).abs() < 1e-9, "{half:?}");
        assert_eq!(b.wait(rate, 1000, t0 + Duration::from_millis(100)), None);
        // Idle time never fills beyond the burst.
        b.consume(1000);
        assert!(b.wait(rate, 1000, t0 + Duration::from_secs(60)).is_none());
        b.consume(1000);
        assert!(b.wait(rate, 1, t0 + Duration::from_secs(60)).is_some());
        // No cap, or a zero cap: never waits.
        assert_eq!(b.wait(None, 1 << 20, t0), None);
        assert_eq!(b.wait(Some(0), 1 << 20, t0), None);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let mut j = Jitter::new(42);
        let values: Vec<u32> = (0..1000).map(|_| j.up_to(10)).collect();
        assert!(values.iter().all(|v| *v <= 10));
        assert!(values.contains(&0) && values.contains(&10));
        assert_eq!(Jitter::new(7).up_to(0), 0);
    }
}
