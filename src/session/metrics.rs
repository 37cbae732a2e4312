//! Session metrics: fixed-size counters and a bounded latency window (nothing grows with time).

use super::config::EchoCanceller;
use crate::protocol::json;

/// The last `capacity` latency samples in a ring, for p50/p95/p99.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    ring: Vec<u32>,
    next: usize,
    len: usize,
}

impl LatencyWindow {
    /// A window of `capacity` samples (at least 1), allocated once.
    pub fn new(capacity: usize) -> LatencyWindow {
        LatencyWindow {
            ring: vec![0; capacity.max(1)],
            next: 0,
            len: 0,
        }
    }

    /// Records one sample, overwriting the oldest when full.
    pub fn push(&mut self, ms: u64) {
        self.ring[self.next] = u32::try_from(ms).unwrap_or(u32::MAX);
        self.next = (self.next + 1) % self.ring.len();
        self.len = (self.len + 1).min(self.ring.len());
    }

    /// Number of samples held (at most the capacity).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The window's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// Nearest-rank percentiles (p in 0..=100) of the samples held, in one sort.
    pub fn percentiles<const N: usize>(&self, ps: [u32; N]) -> [Option<u64>; N] {
        let mut out = [None; N];
        if self.len == 0 {
            return out;
        }
        let mut v: Vec<u32> = self.ring[..self.len].to_vec();
        heapsort(&mut v);
        for (o, p) in out.iter_mut().zip(ps) {
            // Nearest rank: ceil(p/100 × n), 1-based.
            let rank = (u64::from(p) * self.len as u64).div_ceil(100).max(1) as usize;
            *o = Some(u64::from(v[rank.min(self.len) - 1]));
        }
        out
    }
}

/// In-place heapsort: O(n log n), a few hundred bytes of wasm instead of `sort_unstable`'s
/// several KB (the window holds at most 4096 samples, sorted at most once per metrics event).
fn heapsort(v: &mut [u32]) {
    fn sift_down(v: &mut [u32], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for i in (0..n / 2).rev() {
        sift_down(v, i, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// A copy of the session's metrics at one instant; `to_json` gives the app's `metrics` event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// AI response latency (end of user speech or commit → first audio delta), p50, ms.
    pub latency_p50_ms: Option<u64>,
    /// p95 of the same.
    pub latency_p95_ms: Option<u64>,
    /// p99 of the same.
    pub latency_p99_ms: Option<u64>,
    /// Number of latency samples in the window.
    pub latency_samples: usize,
    /// `connect()` → first audio delta, ms (first connection of this session).
    pub time_to_first_audio_ms: Option<u64>,
    /// `connect()` → the player's first report of assistant audio played, ms: what a user waits
    /// for the first sound, the audio devices' start-up included (the player reports about
    /// every 50 ms; the device's output latency is not included).
    pub time_to_first_sound_ms: Option<u64>,
    /// Capture → send delay of the last chunk sent, ms.
    pub capture_to_send_last_ms: Option<u64>,
    /// Largest capture → send delay seen, ms.
    pub capture_to_send_max_ms: u64,
    /// Mean capture → send delay, ms.
    pub capture_to_send_avg_ms: Option<u64>,
    /// Playback underruns reported by the player (a gap inside an item's audio).
    pub underruns: u64,
    /// Late deltas the player bridged by repeating the last pitch period (no gap heard; the
    /// late audio plays after it).
    pub concealments: u64,
    /// Times the assistant was turned down because the microphone got loud over it
    /// (`bargeInDuck`).
    pub barge_in_ducks: u32,
    /// Underruns per minute since the player first started.
    pub underruns_per_min: f64,
    /// The playout delay now, ms (learnt from arrival jitter).
    pub prebuffer_ms: u64,
    /// The playout delay applied at item starts, p50 and p95 over the last 256 items, ms:
    /// the latency playback adds.
    pub prebuffer_p50_ms: Option<u64>,
    /// p95 of the same.
    pub prebuffer_p95_ms: Option<u64>,
    /// The arrival jitter the playout delay covers (p99 of the audio deltas' lateness), ms.
    pub arrival_jitter_ms: u64,
    /// AI audio dropped because audio took too long to start (more than 20 s held).
    pub dropped_playback_ms: u64,
    /// Microphone audio taken in since the session was created, ms (24 kHz samples / 24).
    pub captured_audio_ms: u64,
    /// Microphone audio handed to the socket, ms.
    pub sent_audio_ms: u64,
    /// Times the browser suspended or interrupted audio while the session used it.
    pub audio_interruptions: u64,
    /// Mic audio waiting to be sent, ms.
    pub buffered_audio_ms: u64,
    /// Mic audio dropped because the backlog bound was exceeded, ms.
    pub dropped_audio_ms: u64,
    /// Mic audio still in the backlog when audio stopped (disconnect, failure, text mode),
    /// discarded on purpose, ms: with it, `captured = sent + buffered + dropped + discarded`.
    pub discarded_audio_ms: u64,
    /// Echo guard: estimated echo return loss (reference played → echo captured), dB.
    pub echo_return_loss_db: Option<f64>,
    /// Echo guard: estimated echo delay, ms.
    pub echo_delay_ms: Option<u64>,
    /// Echo guard: microphone audio sent as silence because the echo explained it, ms.
    pub echo_guarded_ms: u64,
    /// Echo guard: microphone audio held in its pre-roll line now, ms.
    pub echo_held_ms: u64,
    /// The server's VAD started speech while the assistant spoke and the audio was echo.
    pub suspected_self_interruptions: u64,
    /// Echo guard: whether it judges the raw microphone (`echoCanceller: "none"`, or
    /// `echoGuard: "raw"` while the browser captures it beside the processed one).
    pub echo_guard_raw: bool,
    /// The echo canceller in use: `browser` or `wasm` (`echoCanceller`; `browser` again after
    /// the wasm one failed).
    pub echo_canceller: EchoCanceller,
    /// The wasm echo canceller: how much quieter its output was than the microphone over the
    /// last second, dB (the echo removed, when only echo was there).
    pub aec_attenuation_db: Option<f64>,
    /// The wasm echo canceller's estimate of the echo path's delay, ms.
    pub aec_delay_ms: Option<u64>,
    /// Socket opens attempted.
    pub connection_attempts: u64,
    /// Socket opens that succeeded.
    pub connection_successes: u64,
    /// Reconnects (attempts after a connection was lost or refused).
    pub reconnects: u64,
    /// Code of the last close.
    pub last_close_code: Option<u16>,
    /// Reason of the last close (clipped to 123 bytes, the WebSocket limit).
    pub last_close_reason: Option<String>,
    /// Bytes of frames handed to the socket.
    pub bytes_sent: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Times the socket had bytes queued after a send (`bufferedAmount` > 0).
    pub socket_backpressure_events: u64,
    /// Largest `bufferedAmount` seen, bytes.
    pub socket_buffered_max_bytes: u64,
    /// Open links declared dead by the client (a frame due never came, or sent bytes did not
    /// drain within `deadLinkTimeoutMs`).
    pub dead_links: u64,
    /// Malformed frames received.
    pub protocol_errors: u64,
    /// App events dropped because the output queue was full (the shell stopped draining).
    pub events_dropped: u64,
    /// Model name used for pricing.
    pub model: Option<String>,
    /// Estimated cost in USD so far.
    pub cost_usd: f64,
    /// True when some usage lacked a split and the cost is an upper bound.
    pub cost_is_upper_bound: bool,
    /// True when the model has no price (cost stays 0).
    pub cost_unknown_model: bool,
    /// Input tokens so far.
    pub input_tokens: u64,
    /// Output tokens so far.
    pub output_tokens: u64,
}

impl MetricsSnapshot {
    /// The snapshot as a JSON object with camelCase keys.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(640);
        self.write_json(&mut s);
        s
    }

    /// Appends the snapshot as a JSON object with camelCase keys.
    pub fn write_json(&self, s: &mut String) {
        fn opt(s: &mut String, k: &str, v: Option<u64>) {
            s.push_str(k);
            match v {
                Some(n) => json::write_u64(s, n),
                None => s.push_str("null"),
            }
        }
        opt(s, "{\"latencyP50Ms\":", self.latency_p50_ms);
        opt(s, ",\"latencyP95Ms\":", self.latency_p95_ms);
        opt(s, ",\"latencyP99Ms\":", self.latency_p99_ms);
        opt(s, ",\"latencySamples\":", Some(self.latency_samples as u64));
        opt(s, ",\"timeToFirstAudioMs\":", self.time_to_first_audio_ms);
        opt(s, ",\"timeToFirstSoundMs\":", self.time_to_first_sound_ms);
        opt(s, ",\"captureToSendLastMs\":", self.capture_to_send_last_ms);
        opt(
            s,
            ",\"captureToSendMaxMs\":",
            Some(self.capture_to_send_max_ms),
        );
        opt(s, ",\"captureToSendAvgMs\":", self.capture_to_send_avg_ms);
        opt(s, ",\"underruns\":", Some(self.underruns));
        opt(s, ",\"concealments\":", Some(self.concealments));
        opt(
            s,
            ",\"bargeInDucks\":",
            Some(u64::from(self.barge_in_ducks)),
        );
        opt(
            s,
            ",\"audioInterruptions\":",
            Some(self.audio_interruptions),
        );
        opt(s, ",\"droppedPlaybackMs\":", Some(self.dropped_playback_ms));
        opt(s, ",\"prebufferMs\":", Some(self.prebuffer_ms));
        opt(s, ",\"prebufferP50Ms\":", self.prebuffer_p50_ms);
        opt(s, ",\"prebufferP95Ms\":", self.prebuffer_p95_ms);
        opt(s, ",\"arrivalJitterMs\":", Some(self.arrival_jitter_ms));
        s.push_str(",\"underrunsPerMin\":");
        json::write_fixed(s, self.underruns_per_min, 2);
        opt(s, ",\"capturedAudioMs\":", Some(self.captured_audio_ms));
        opt(s, ",\"sentAudioMs\":", Some(self.sent_audio_ms));
        opt(s, ",\"bufferedAudioMs\":", Some(self.buffered_audio_ms));
        opt(s, ",\"droppedAudioMs\":", Some(self.dropped_audio_ms));
        opt(s, ",\"discardedAudioMs\":", Some(self.discarded_audio_ms));
        s.push_str(",\"echoReturnLossDb\":");
        match self.echo_return_loss_db {
            Some(v) if v.is_finite() => json::write_fixed(s, v, 1),
            _ => s.push_str("null"),
        }
        opt(s, ",\"echoDelayMs\":", self.echo_delay_ms);
        opt(s, ",\"echoGuardedMs\":", Some(self.echo_guarded_ms));
        opt(s, ",\"echoHeldMs\":", Some(self.echo_held_ms));
        opt(
            s,
            ",\"suspectedSelfInterruptions\":",
            Some(self.suspected_self_interruptions),
        );
        s.push_str(if self.echo_guard_raw {
            ",\"echoGuardRaw\":true"
        } else {
            ",\"echoGuardRaw\":false"
        });
        s.push_str(",\"echoCanceller\":\"");
        s.push_str(self.echo_canceller.as_str());
        s.push_str("\",\"aecAttenuationDb\":");
        match self.aec_attenuation_db {
            Some(v) if v.is_finite() => json::write_fixed(s, v, 1),
            _ => s.push_str("null"),
        }
        opt(s, ",\"aecDelayMs\":", self.aec_delay_ms);
        opt(
            s,
            ",\"connectionAttempts\":",
            Some(self.connection_attempts),
        );
        opt(
            s,
            ",\"connectionSuccesses\":",
            Some(self.connection_successes),
        );
        opt(s, ",\"reconnects\":", Some(self.reconnects));
        opt(
            s,
            ",\"lastCloseCode\":",
            self.last_close_code.map(u64::from),
        );
        s.push_str(",\"lastCloseReason\":");
        match &self.last_close_reason {
            Some(r) => json::write_str(s, r),
            None => s.push_str("null"),
        }
        opt(s, ",\"bytesSent\":", Some(self.bytes_sent));
        opt(s, ",\"framesSent\":", Some(self.frames_sent));
        opt(s, ",\"framesReceived\":", Some(self.frames_received));
        opt(
            s,
            ",\"socketBackpressureEvents\":",
            Some(self.socket_backpressure_events),
        );
        opt(
            s,
            ",\"socketBufferedMaxBytes\":",
            Some(self.socket_buffered_max_bytes),
        );
        opt(s, ",\"deadLinks\":", Some(self.dead_links));
        opt(s, ",\"protocolErrors\":", Some(self.protocol_errors));
        opt(s, ",\"eventsDropped\":", Some(self.events_dropped));
        s.push_str(",\"model\":");
        match &self.model {
            Some(m) => json::write_str(s, m),
            None => s.push_str("null"),
        }
        s.push_str(",\"costUsd\":");
        json::write_fixed(s, self.cost_usd, 9);
        s.push_str(",\"costIsUpperBound\":");
        s.push_str(if self.cost_is_upper_bound {
            "true"
        } else {
            "false"
        });
        s.push_str(",\"costUnknownModel\":");
        s.push_str(if self.cost_unknown_model {
            "true"
        } else {
            "false"
        });
        opt(s, ",\"inputTokens\":", Some(self.input_tokens));
        opt(s, ",\"outputTokens\":", Some(self.output_tokens));
        s.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank_over_a_bounded_ring() {
        let mut w = LatencyWindow::new(100);
        assert_eq!(w.percentiles([50]), [None]);
        for ms in 1..=100 {
            w.push(ms);
        }
        assert_eq!(w.percentiles([50, 95, 99]), [Some(50), Some(95), Some(99)]);
        // 100 more samples push the first 100 out.
        for ms in 1001..=1100 {
            w.push(ms);
        }
        assert_eq!(w.len(), 100);
        assert_eq!(w.percentiles([50, 100]), [Some(1050), Some(1100)]);
    }

    #[test]
    fn heapsort_sorts() {
        let mut x: u32 = 7;
        for n in [0usize, 1, 2, 3, 10, 257] {
            let mut v: Vec<u32> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    x % 1000
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            heapsort(&mut v);
            assert_eq!(v, want);
        }
    }

    #[test]
    fn snapshot_json_parses() {
        let s = MetricsSnapshot {
            last_close_reason: Some("bye \"now\"".into()),
            cost_usd: 0.0125,
            ..MetricsSnapshot::default()
        };
        let j = s.to_json();
        let v = json::parse(&j, 1 << 16).unwrap();
        assert_eq!(
            v.get("lastCloseReason").and_then(|v| v.as_str()),
            Some("bye \"now\"")
        );
        assert_eq!(v.get("costUsd").and_then(|v| v.as_f64()), Some(0.0125));
        assert_eq!(v.get("latencyP50Ms"), Some(&json::Value::Null));
    }
}
