//! Coordination of interviews between connections and server instances: the one-socket-per-
//! interview lock with take-back, the per-interview budgets ([`Budget`]) and which instance holds
//! an interview's relay. [`Coord::Memory`] serves one process (the default: nothing to run);
//! [`Coord::Redis`] (`REDIS_URL`) lets several instances share them: the lock is a lease the
//! owning instance renews, a take-back of a socket held by another instance is a message to that
//! instance, budgets are token buckets in Redis.
//!
//! Both variants keep a local table of the slots this process holds (the channels that evict a
//! session and tell when it is gone); the memory variant's table is the lock itself.

pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};

use crate::config::Limits;
use crate::ws::limits::Budget;

/// Why coordination failed (Redis unreachable or refusing).
#[derive(Debug)]
#[non_exhaustive]
pub enum CoordError {
    /// Redis answered with an error or the connection failed.
    Redis(::redis::RedisError),
    /// Redis did not answer in time.
    Timeout,
    /// Redis answered something this server did not write.
    Unexpected(String),
}

impl std::fmt::Display for CoordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "redis error: {e}"),
            Self::Timeout => write!(f, "redis did not answer in time"),
            Self::Unexpected(s) => write!(f, "unexpected answer from redis: {s}"),
        }
    }
}

impl std::error::Error for CoordError {}

impl From<::redis::RedisError> for CoordError {
    fn from(e: ::redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// Who asks for an interview.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    /// Connection number (unique per process).
    pub conn: u64,
    /// The token's subject.
    pub user_id: &'a str,
    /// The session id this connection will report.
    pub session_id: &'a str,
    /// The previous connection's session id the client presented, if any.
    pub resume: Option<&'a str>,
}

/// A slot this process holds: the channels of its session.
#[derive(Debug)]
struct Local {
    conn: u64,
    user_id: String,
    session_id: String,
    /// Tells the holder's session it was taken over.
    evict: Option<oneshot::Sender<()>>,
    /// Closed (sender dropped) when the holder's slot is dropped, i.e. its session ended.
    gone: watch::Receiver<()>,
}

/// The slots held by this process, by interview.
#[derive(Debug, Default)]
struct LocalTable {
    slots: Mutex<HashMap<String, Local>>,
}

impl LocalTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new holder and returns its slot's channels.
    fn insert(
        map: &mut HashMap<String, Local>,
        interview_id: &str,
        c: &Claimant<'_>,
    ) -> (oneshot::Receiver<()>, watch::Sender<()>) {
        let (evict_tx, evict_rx) = oneshot::channel();
        let (alive_tx, alive_rx) = watch::channel(());
        map.insert(
            interview_id.to_string(),
            Local {
                conn: c.conn,
                user_id: c.user_id.to_string(),
                session_id: c.session_id.to_string(),
                evict: Some(evict_tx),
                gone: alive_rx,
            },
        );
        (evict_rx, alive_tx)
    }

    /// Evicts the local holder `conn` of `interview_id` (if it is still the holder) and returns
    /// the receiver that ends with its session.
    fn evict(&self, interview_id: &str, conn: u64) -> Option<watch::Receiver<()>> {
        let mut map = self.lock();
        let h = map.get_mut(interview_id).filter(|h| h.conn == conn)?;
        if let Some(e) = h.evict.take() {
            let _ = e.send(());
        }
        Some(h.gone.clone())
    }

    /// Forgets `interview_id` if `conn` still holds it; true when it did.
    fn remove(&self, interview_id: &str, conn: u64) -> bool {
        let mut map = self.lock();
        if map.get(interview_id).map(|h| h.conn) == Some(conn) {
            map.remove(interview_id);
            return true;
        }
        false
    }
}

/// Holds an interview's lock; dropping it frees the interview (unless it was taken over).
#[derive(Debug)]
pub struct Slot {
    coord: Coord,
    interview_id: String,
    conn: u64,
    /// Fires when a newer connection of the same client took the interview over (or, with
    /// Redis, when the lease was lost to another holder).
    pub evicted: oneshot::Receiver<()>,
    _alive: watch::Sender<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.coord.release(&self.interview_id, self.conn);
    }
}

/// Completes once a taken-over holder's session is over.
#[derive(Debug)]
#[non_exhaustive]
pub enum PreviousGone {
    /// The holder ran in this process.
    Local(watch::Receiver<()>),
    /// The holder runs in another instance, which answers when its session is over.
    Remote(oneshot::Receiver<()>),
    /// The holder's instance did not receive the eviction (it is gone): nothing to wait for.
    Unreachable,
}

impl PreviousGone {
    /// Waits until the previous holder's session is over.
    pub async fn wait(self) {
        match self {
            Self::Local(mut rx) => while rx.changed().await.is_ok() {},
            Self::Remote(rx) => {
                let _ = rx.await;
            }
            Self::Unreachable => {}
        }
    }
}

/// The outcome of a claim.
#[derive(Debug)]
#[non_exhaustive]
pub enum Claim {
    /// The interview was free.
    Granted(Slot),
    /// The interview was taken over from a previous connection of the same client.
    TookOver {
        /// The new holder's slot.
        slot: Slot,
        /// Ends when the previous holder's session is over.
        previous_gone: PreviousGone,
        /// The previous holder's connection number (in its own instance).
        previous_conn: u64,
        /// Whether the previous holder ran in another instance.
        remote: bool,
    },
    /// Another connection holds it and the claimant did not prove it is the same client.
    Busy,
}

/// The coordination backend (cheap to clone).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Coord {
    /// One process: everything in memory.
    Memory(Arc<memory::Memory>),
    /// Several instances sharing a Redis.
    Redis(Arc<redis::RedisCoord>),
}

impl Default for Coord {
    fn default() -> Self {
        Self::Memory(Arc::default())
    }
}

impl Coord {
    /// Connects to Redis at `url` (leases of `lease_ms`), or the in-memory backend without one.
    pub async fn open(url: Option<&str>, lease_ms: u64) -> Result<Self, CoordError> {
        match url {
            None => Ok(Self::default()),
            Some(u) => Ok(Self::Redis(redis::RedisCoord::connect(u, lease_ms).await?)),
        }
    }

    /// Claims `interview_id` for `c`: granted when free, taken over when `c` is the holder's own
    /// client (same user, `resume` equal to the holder's session id), busy otherwise. An error
    /// means the lock cannot be known now (Redis away): refuse the connection, retryably.
    pub async fn claim(&self, interview_id: &str, c: Claimant<'_>) -> Result<Claim, CoordError> {
        match self {
            Self::Memory(m) => Ok(m.claim(self, interview_id, c)),
            Self::Redis(r) => r.claim(self, interview_id, c).await,
        }
    }

    fn release(&self, interview_id: &str, conn: u64) {
        match self {
            Self::Memory(m) => {
                m.local.remove(interview_id, conn);
            }
            Self::Redis(r) => r.release(interview_id, conn),
        }
    }

    /// Takes `amount` from the interview's shared `budget`. With Redis away the answer is yes
    /// (a session in progress goes on; the per-connection append rate still applies).
    pub async fn take(
        &self,
        limits: &Limits,
        interview_id: &str,
        budget: Budget,
        now_ms: u64,
        amount: u64,
    ) -> bool {
        match self {
            Self::Memory(m) => m.budgets.take(limits, interview_id, budget, now_ms, amount),
            Self::Redis(r) => r.take(limits, interview_id, budget, amount).await,
        }
    }

    /// Records that this instance holds the relay (upstream session) of `interview_id`.
    pub fn relay_started(&self, interview_id: &str) {
        if let Self::Redis(r) = self {
            r.relay_started(interview_id);
        }
    }

    /// Records that this instance's relay of `interview_id` ended.
    pub fn relay_ended(&self, interview_id: &str) {
        if let Self::Redis(r) = self {
            r.relay_ended(interview_id);
        }
    }

    /// A browser of `interview_id` found no relay here: if another instance holds one (within
    /// its grace period), tell it to stop, since this instance opens its own with the interview
    /// replayed (re-attach needs the same instance: sticky sessions). True when there was one.
    pub async fn stop_relay_elsewhere(&self, interview_id: &str) -> bool {
        match self {
            Self::Memory(_) => false,
            Self::Redis(r) => r.stop_relay_elsewhere(interview_id).await,
        }
    }

    /// Interview ids whose relay another instance asked this one to stop (Redis only; the
    /// server stops them as they arrive).
    pub fn relay_stops(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(r) => Some(r.relay_stops()),
        }
    }

    /// Waits for the lock releases in flight (at shutdown).
    pub async fn settle(&self) {
        if let Self::Redis(r) = self {
            r.settle().await;
        }
    }

    /// Whether the backend answers (readiness).
    pub async fn ready(&self) -> Result<(), CoordError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(r) => r.ping().await,
        }
    }

    /// Interviews held by this process now.
    pub fn held_here(&self) -> usize {
        self.local().lock().len()
    }

    /// Whether this process holds `interview_id` now.
    pub fn is_held_here(&self, interview_id: &str) -> bool {
        self.local().lock().contains_key(interview_id)
    }

    fn local(&self) -> &LocalTable {
        match self {
            Self::Memory(m) => &m.local,
            Self::Redis(r) => &r.local,
        }
    }

    fn slot(
        &self,
        interview_id: &str,
        conn: u64,
        evicted: oneshot::Receiver<()>,
        alive: watch::Sender<()>,
    ) -> Slot {
        Slot {
            coord: self.clone(),
            interview_id: interview_id.to_string(),
            conn,
            evicted,
            _alive: alive,
        }
    }
}
