//! The session's timers, keyed by what they are for. Each deadline is derived from the state
//! that owns it (the connection's per-state data, the uplink's chunker, the HTTP request in
//! flight), so a timer cannot outlive its reason; `Session::poll_timeout` is the earliest.

/// What a timer is for; `handle_timeout` serves every kind that is due, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The connection state's own deadline: backoff over, offline probe, token or connect
    /// timeout.
    Link,
    /// The open link is declared dead: a server frame was due, or sent bytes did not drain.
    DeadLink,
    /// The next microphone chunk is ready to send (or flow control re-checks the socket).
    Audio,
    /// The next periodic `metrics` event.
    Metrics,
    /// The HTTP text request in flight times out.
    Http,
    /// A tool handler's deadline.
    Tool,
    /// The next try to reopen a lost microphone, or the deadline of the one in progress.
    Mic,
}

impl Timer {
    /// Every kind, in the order `handle_timeout` serves them.
    pub const ALL: [Timer; 7] = [
        Timer::Link,
        Timer::DeadLink,
        Timer::Audio,
        Timer::Metrics,
        Timer::Http,
        Timer::Tool,
        Timer::Mic,
    ];
}
