//! One live socket per interview, with take-back: the interview lock table. A newcomer of the
//! same user that presents the holder's current session id (`resume`) takes the interview over
//! atomically — the holder is told to close 4410 and the newcomer holds the lock at once, so
//! there is never a moment where both or neither hold it. Anyone else is refused (4409).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};

/// Who holds an interview.
#[derive(Debug)]
struct Holder {
    conn: u64,
    user_id: String,
    session_id: String,
    /// Tells the holder's session it was taken over.
    evict: Option<oneshot::Sender<()>>,
    /// Closed (sender dropped) when the holder's slot is dropped, i.e. its session ended.
    gone: watch::Receiver<()>,
}

/// The interview lock table (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    live: Arc<Mutex<HashMap<String, Holder>>>,
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

/// Holds an interview's lock; dropping it frees the interview (unless it was taken over).
#[derive(Debug)]
pub struct Slot {
    registry: Registry,
    interview_id: String,
    conn: u64,
    /// Fires when a newer connection of the same client took the interview over.
    pub evicted: oneshot::Receiver<()>,
    _alive: watch::Sender<()>,
}

/// The outcome of a claim.
#[derive(Debug)]
#[non_exhaustive]
pub enum Claim {
    /// The interview was free.
    Granted(Slot),
    /// The interview was taken over from a previous connection of the same client; `previous_gone`
    /// completes (with an error: its sender is dropped) once that connection's session has ended.
    TookOver {
        /// The new holder's slot.
        slot: Slot,
        /// Ends when the previous holder's session is over.
        previous_gone: watch::Receiver<()>,
        /// The previous holder's connection number.
        previous_conn: u64,
    },
    /// Another connection holds it and the claimant did not prove it is the same client.
    Busy,
}

impl Registry {
    /// Claims `interview_id` for `c`: granted when free, taken over when `c` is the holder's own
    /// client (same user, `resume` equal to the holder's session id), busy otherwise.
    pub fn claim(&self, interview_id: &str, c: Claimant<'_>) -> Claim {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let previous = match live.get_mut(interview_id) {
            None => None,
            Some(h) if h.user_id == c.user_id && c.resume == Some(h.session_id.as_str()) => {
                if let Some(evict) = h.evict.take() {
                    let _ = evict.send(());
                }
                Some((h.gone.clone(), h.conn))
            }
            Some(_) => return Claim::Busy,
        };
        let (evict_tx, evict_rx) = oneshot::channel();
        let (alive_tx, alive_rx) = watch::channel(());
        live.insert(
            interview_id.to_string(),
            Holder {
                conn: c.conn,
                user_id: c.user_id.to_string(),
                session_id: c.session_id.to_string(),
                evict: Some(evict_tx),
                gone: alive_rx,
            },
        );
        let slot = Slot {
            registry: self.clone(),
            interview_id: interview_id.to_string(),
            conn: c.conn,
            evicted: evict_rx,
            _alive: alive_tx,
        };
        match previous {
            None => Claim::Granted(slot),
            Some((previous_gone, previous_conn)) => Claim::TookOver {
                slot,
                previous_gone,
                previous_conn,
            },
        }
    }

    /// Number of interviews held now.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no interview is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `interview_id` is held now.
    pub fn is_held(&self, interview_id: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(interview_id)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(&self.interview_id).map(|h| h.conn) == Some(self.conn) {
            live.remove(&self.interview_id);
        }
    }
}

/// Waits until a watched holder is gone (its sender dropped).
pub async fn gone(mut rx: watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(conn: u64, user: &'a str, sess: &'a str, resume: Option<&'a str>) -> Claimant<'a> {
        Claimant {
            conn,
            user_id: user,
            session_id: sess,
            resume,
        }
    }

    #[test]
    fn one_slot_per_interview() {
        let r = Registry::default();
        let Claim::Granted(a) = r.claim("iv", who(1, "u", "s1", None)) else {
            panic!("free")
        };
        assert!(matches!(
            r.claim("iv", who(2, "u", "s2", None)),
            Claim::Busy
        ));
        assert!(matches!(
            r.claim("other", who(3, "u", "s3", None)),
            Claim::Granted(_)
        ));
        drop(a);
        assert!(matches!(
            r.claim("iv", who(4, "u", "s4", None)),
            Claim::Granted(_)
        ));
    }

    #[tokio::test]
    async fn the_same_client_takes_over_and_the_old_slot_cannot_free_the_new_one() {
        let r = Registry::default();
        let Claim::Granted(mut old) = r.claim("iv", who(1, "u", "s1", Some("junk"))) else {
            panic!("free")
        };
        // Wrong proof, or another user with the right one: busy.
        assert!(matches!(
            r.claim("iv", who(2, "u", "s2", Some("s0"))),
            Claim::Busy
        ));
        assert!(matches!(
            r.claim("iv", who(2, "u", "s2", None)),
            Claim::Busy
        ));
        assert!(matches!(
            r.claim("iv", who(2, "x", "s2", Some("s1"))),
            Claim::Busy
        ));
        let Claim::TookOver {
            slot: new,
            previous_gone,
            previous_conn,
        } = r.claim("iv", who(3, "u", "s3", Some("s1")))
        else {
            panic!("take-back")
        };
        assert_eq!(previous_conn, 1);
        assert!(old.evicted.try_recv().is_ok());
        assert!(r.is_held("iv"));
        drop(old);
        gone(previous_gone).await;
        // The old slot's drop left the new holder in place; the old id no longer works.
        assert!(r.is_held("iv"));
        assert!(matches!(
            r.claim("iv", who(4, "u", "s4", Some("s1"))),
            Claim::Busy
        ));
        drop(new);
        assert!(!r.is_held("iv"));
    }
}
