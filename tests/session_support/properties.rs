//! The session's safety and liveness properties, as assertions a driver calls after every input:
//! `tests/session_liveness.rs` (proptest) and the `session_inputs` fuzz target (which includes
//! this file by path, so both check exactly the same thing). Uses only the public API.
#![allow(dead_code)]

use realtime_voice::session::connection::OFFLINE_PROBE_MS;
use realtime_voice::session::devices::{MIC_OPEN_TIMEOUT_MS, MIC_REOPEN_TRIES, MIC_RETRY_MAX_MS};
use realtime_voice::session::{Link, Session, SessionConfig, State, Timer, WayOut};

/// Most outputs a single input may queue: the lossy app events stop at 4096 undrained outputs,
/// and the rest of one input's work (a status, a close, an open, a few sends) is small.
pub const MAX_OUTPUTS_PER_INPUT: usize = 4096 + 256;

/// Checks made after every input, once its outputs are drained:
/// - liveness: a `connecting`/`reconnecting` session has a way out by itself, a timer, and
///   `poll_timeout` is no later than it; so has a microphone being reopened;
/// - consistency: the app-facing state is the one the link implies;
/// - memory: nothing is left undrained, and the mic accounting holds.
pub fn check_after_input(s: &Session, what: &dyn std::fmt::Debug) {
    let state = s.status().state;
    let link = s.link();
    if matches!(state, State::Connecting | State::Reconnecting) {
        let WayOut::Timer(t) = s.way_out() else {
            panic!("liveness: {state:?} without a way out ({link:?}) after {what:?}");
        };
        let u = s.poll_timeout();
        assert!(
            u.is_some_and(|u| u <= t),
            "liveness: {state:?} in {link:?} has its way out at {t} but poll_timeout is {u:?} after {what:?}"
        );
    }
    if s.mic_recovering() {
        let t = s.timer(Timer::Mic);
        let u = s.poll_timeout();
        assert!(
            t.is_some() && u.is_some_and(|u| Some(u) <= t),
            "liveness: a microphone being reopened without a timer ({t:?}, poll_timeout {u:?}) after {what:?}"
        );
    }
    let agrees = match link {
        Link::Idle => state == State::Idle,
        Link::Open(_) => state == State::Connected,
        Link::Ended(_) => matches!(state, State::Closed | State::Text | State::Failed(_)),
        _ => matches!(state, State::Connecting | State::Reconnecting),
    };
    assert!(
        agrees,
        "consistency: status {state:?} with link {link:?} after {what:?}"
    );
    assert_eq!(
        s.pending_outputs(),
        0,
        "memory: outputs left after draining"
    );
    check_mic_accounting(s, what);
}

/// `captured = sent + buffered + dropped + discarded` (ms; `discarded` is what was still
/// buffered when audio stopped). Each figure is rounded down to whole ms on its own, so the sum
/// may fall short of `captured` by up to 3 ms (never exceed it).
pub fn check_mic_accounting(s: &Session, what: &dyn std::fmt::Debug) {
    let m = s.metrics();
    let total = m.sent_audio_ms + m.buffered_audio_ms + m.dropped_audio_ms + m.discarded_audio_ms;
    assert!(
        total <= m.captured_audio_ms && m.captured_audio_ms - total <= 3,
        "accounting: captured {} ms != sent {} + buffered {} + dropped {} + discarded {} ms after {what:?}",
        m.captured_audio_ms,
        m.sent_audio_ms,
        m.buffered_audio_ms,
        m.dropped_audio_ms,
        m.discarded_audio_ms
    );
}

/// After `handle_timeout(now)` (with `now` at or past the previous `poll_timeout`), nothing due
/// at `now` is left un-served: a timer still at or before `now` would make a shell that re-arms
/// from `poll_timeout` spin.
pub fn check_timeout_served(s: &Session, now: u64, before: Option<u64>) {
    let after = s.poll_timeout();
    assert!(
        after.is_none_or(|a| a > now),
        "busy timer: handle_timeout({now}) left poll_timeout at {after:?} (it was {before:?}; link {:?})",
        s.link()
    );
}

/// How long a session left alone (timers only) may stay `connecting`/`reconnecting`: the
/// reconnect window, plus one cycle per attempt and two more (the state in progress, and the
/// attempt that finds the sequence exhausted). A cycle is the longest backoff, a probe while
/// offline, and the attempt's own deadline; a 4429 backoff already running may add up to four
/// times the longest backoff once.
pub fn settle_bound_ms(cfg: &SessionConfig) -> u64 {
    let backoff_max = cfg.backoff.max_ms;
    let cycle = u64::from(cfg.connect_timeout_ms) + backoff_max + OFFLINE_PROBE_MS;
    u64::from(cfg.reconnect_window_ms)
        + (u64::from(cfg.max_reconnect_attempts) + 2) * cycle
        + 4 * backoff_max
        + mic_settle_bound_ms()
}

/// How long a microphone being reopened may go on with timers only: every try unanswered
/// until its deadline, with the longest wait before each.
pub fn mic_settle_bound_ms() -> u64 {
    u64::from(MIC_REOPEN_TRIES) * (MIC_OPEN_TIMEOUT_MS + MIC_RETRY_MAX_MS)
}

/// Progress ("`connect()` always settles"): with no input but the timer (the virtual clock
/// jumps to each `poll_timeout`), the session leaves `connecting`/`reconnecting`, and ends
/// any microphone recovery (reopened or text mode), within [`settle_bound_ms`]. `drain`
/// performs the outputs of each step; every step is checked like an input. Returns the time at
/// which it settled.
pub fn check_settles(
    s: &mut Session,
    mut now: u64,
    drain: &mut dyn FnMut(&mut Session, u64),
) -> u64 {
    let start = now;
    let bound = settle_bound_ms(s.config());
    let mut steps = 0u32;
    while matches!(s.status().state, State::Connecting | State::Reconnecting) || s.mic_recovering()
    {
        let t = s
            .poll_timeout()
            .unwrap_or_else(|| panic!("progress: {:?} with no timer", s.link()));
        now = now.max(t);
        assert!(
            now - start <= bound,
            "progress: still {:?} ({:?}) {} ms after the last input (bound {bound} ms)",
            s.status().state,
            s.link(),
            now - start
        );
        steps += 1;
        assert!(
            steps < 100_000,
            "progress: {steps} timer steps without settling"
        );
        let before = s.poll_timeout();
        s.handle_timeout(now);
        drain(s, now);
        check_timeout_served(s, now, before);
        check_after_input(s, &"timer only");
    }
    now
}
