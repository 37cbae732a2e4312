//! The model side of a realtime session, two implementations behind the WebSocket session:
//! the [`simulated`] interviewer (default, no key), sans-IO, which the session loop
//! ([`crate::ws`]) drives with client events and the clock and whose outputs it carries out; and
//! the [`openai`] relay to OpenAI's GA Realtime API (`REALTIME_UPSTREAM=openai`, the default when
//! `OPENAI_API_KEY` is set), a task per interview that forwards frames, keeps the upstream
//! across browser reconnects and renews it before the provider's session limit. Both see the
//! same client checks (limits, budgets, audio format) and persist turns and cost the same way.

pub mod events;
pub mod openai;
pub mod simulated;
pub mod usage;
