//! Session glue of the echo guard (`crate::audio::echo_guard`): the reference comes from the
//! playback path (decoded deltas, then played-sample progress), the gate sits in the uplink
//! between the capture resampler and the chunker, and the server VAD's `speech_started` is
//! checked against what the guard saw. Option `echoGuard`: "auto" (the default) gates once the
//! capture is shown to follow what is played, "off" only measures.

use super::metrics::MetricsSnapshot;
use crate::audio::echo_guard::EchoGuard;

/// The guard and its output buffer (reused: no allocation per block once grown).
#[derive(Debug)]
pub(super) struct EchoPath {
    pub guard: EchoGuard,
    out: Vec<i16>,
}

impl EchoPath {
    pub fn new(gating: bool) -> EchoPath {
        EchoPath {
            guard: EchoGuard::new(gating),
            out: Vec::new(),
        }
    }

    /// Captured 24 kHz audio in, what goes on to the chunker out (the same, at once, unless
    /// the guard is guarding).
    pub fn gate(&mut self, pcm: &[i16]) -> &[i16] {
        self.out.clear();
        self.guard.process(pcm, &mut self.out);
        &self.out
    }

    /// Adds the guard's figures to a metrics snapshot.
    pub fn fill_metrics(&self, m: &mut MetricsSnapshot) {
        let s = self.guard.stats();
        m.echo_return_loss_db = s.return_loss_db.map(f64::from);
        m.echo_delay_ms = s.delay_ms.map(u64::from);
        m.echo_guarded_ms = s.guarded_ms;
        m.echo_held_ms = s.held_ms;
        m.suspected_self_interruptions = s.suspected_self_interruptions;
    }
}
