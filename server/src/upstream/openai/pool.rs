//! Live relays by interview: how a reconnecting browser finds the upstream session it left. An
//! entry lives as long as its relay task (attached, or detached within the grace period); a
//! browser presenting `&resume=<the session id it last had>` re-attaches, any other connection
//! replaces the entry (the old relay is told to stop). Bounded by the interviews with a live or
//! recently left socket.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::relay::ToRelay;

/// A relay's entry.
#[derive(Debug)]
struct Entry {
    generation: u64,
    /// The session id the browser last attached to it got (its take-back proof).
    browser_session: String,
    tx: mpsc::Sender<ToRelay>,
}

/// The table.
#[derive(Debug, Default)]
pub struct RelayPool {
    inner: Mutex<(u64, HashMap<String, Entry>)>,
}

/// The outcome of [`RelayPool::claim`].
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolClaim {
    /// Re-attach to this relay (it keeps its upstream session).
    Reattach(mpsc::Sender<ToRelay>),
    /// Open a new relay; a previous one (if any) was told to stop.
    Fresh,
}

impl RelayPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<String, Entry>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A browser with `browser_session` (its new id) connects to `interview`, presenting
    /// `resume`.
    pub fn claim(&self, interview: &str, resume: Option<&str>, browser_session: &str) -> PoolClaim {
        let mut g = self.lock();
        let matches = g
            .1
            .get(interview)
            .is_some_and(|e| resume.is_some_and(|r| r == e.browser_session) && !e.tx.is_closed());
        if matches {
            if let Some(e) = g.1.get_mut(interview) {
                e.browser_session = browser_session.to_string();
                return PoolClaim::Reattach(e.tx.clone());
            }
        }
        if let Some(old) = g.1.remove(interview) {
            let _ = old.tx.try_send(ToRelay::Stop);
        }
        PoolClaim::Fresh
    }

    /// Registers a new relay; returns its generation (for [`RelayPool::remove`]).
    pub fn insert(&self, interview: &str, browser_session: &str, tx: mpsc::Sender<ToRelay>) -> u64 {
        let mut g = self.lock();
        g.0 += 1;
        let generation = g.0;
        if let Some(old) = g.1.insert(
            interview.to_string(),
            Entry {
                generation,
                browser_session: browser_session.to_string(),
                tx,
            },
        ) {
            let _ = old.tx.try_send(ToRelay::Stop);
        }
        generation
    }

    /// Removes the entry of relay `generation` (a newer one is left alone); true when it did.
    pub fn remove(&self, interview: &str, generation: u64) -> bool {
        let mut g = self.lock();
        if g.1
            .get(interview)
            .is_some_and(|e| e.generation == generation)
        {
            g.1.remove(interview);
            return true;
        }
        false
    }

    /// Stops the relay of `interview`, if any (its browser is attached to another instance).
    pub fn stop(&self, interview: &str) {
        if let Some(old) = self.lock().1.remove(interview) {
            let _ = old.tx.try_send(ToRelay::Stop);
        }
    }

    /// Whether a relay of `interview` is live here.
    pub fn contains(&self, interview: &str) -> bool {
        self.lock().1.contains_key(interview)
    }

    /// Live relays.
    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    /// Whether no relay is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
