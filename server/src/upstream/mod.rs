//! The model side of a realtime session. Today one implementation: the [`simulated`] interviewer,
//! sans-IO, which the WebSocket session loop ([`crate::ws`]) drives with client events and the
//! clock and whose [`simulated::Output`]s it carries out. A relay to OpenAI's GA realtime API
//! would be a second implementation producing the same outputs from the upstream's events, so the
//! session loop, the limits and the persistence stay as they are.

pub mod events;
pub mod simulated;
pub mod usage;
