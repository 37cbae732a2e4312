//! The in-memory backend: one process. The local table is the lock itself: a newcomer of the
//! same user that presents the holder's current session id (`resume`) takes the interview over
//! atomically — the holder is told to close 4410 and the newcomer holds the lock at once, so
//! there is never a moment where both or neither hold it. Anyone else is refused (4409).

use super::{Claim, Claimant, Coord, LocalTable, PreviousGone};
use crate::ws::limits::Budgets;

/// The lock table and the budgets of one process.
#[derive(Debug, Default)]
pub struct Memory {
    pub(super) local: LocalTable,
    pub(super) budgets: Budgets,
}

impl Memory {
    pub(super) fn claim(&self, coord: &Coord, interview_id: &str, c: Claimant<'_>) -> Claim {
        let mut map = self.local.lock();
        let previous = match map.get_mut(interview_id) {
            None => None,
            Some(h) if h.user_id == c.user_id && c.resume == Some(h.session_id.as_str()) => {
                if let Some(evict) = h.evict.take() {
                    let _ = evict.send(());
                }
                Some((h.gone.clone(), h.conn))
            }
            Some(_) => return Claim::Busy,
        };
        let (evicted, alive) = LocalTable::insert(&mut map, interview_id, &c);
        drop(map);
        let slot = coord.slot(interview_id, c.conn, evicted, alive);
        match previous {
            None => Claim::Granted(slot),
            Some((gone, previous_conn)) => Claim::TookOver {
                slot,
                previous_gone: PreviousGone::Local(gone),
                previous_conn,
                remote: false,
            },
        }
    }
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

    async fn claim(r: &Coord, iv: &str, c: Claimant<'_>) -> Claim {
        r.claim(iv, c).await.expect("memory never fails")
    }

    #[tokio::test]
    async fn one_slot_per_interview() {
        let r = Coord::default();
        let Claim::Granted(a) = claim(&r, "iv", who(1, "u", "s1", None)).await else {
            panic!("free")
        };
        assert!(matches!(
            claim(&r, "iv", who(2, "u", "s2", None)).await,
            Claim::Busy
        ));
        assert!(matches!(
            claim(&r, "other", who(3, "u", "s3", None)).await,
            Claim::Granted(_)
        ));
        drop(a);
        assert!(matches!(
            claim(&r, "iv", who(4, "u", "s4", None)).await,
            Claim::Granted(_)
        ));
    }

    #[tokio::test]
    async fn the_same_client_takes_over_and_the_old_slot_cannot_free_the_new_one() {
        let r = Coord::default();
        let Claim::Granted(mut old) = claim(&r, "iv", who(1, "u", "s1", Some("junk"))).await else {
            panic!("free")
        };
        // Wrong proof, or another user with the right one: busy.
        for c in [
            who(2, "u", "s2", Some("s0")),
            who(2, "u", "s2", None),
            who(2, "x", "s2", Some("s1")),
        ] {
            assert!(matches!(claim(&r, "iv", c).await, Claim::Busy));
        }
        let Claim::TookOver {
            slot: new,
            previous_gone,
            previous_conn,
            remote,
        } = claim(&r, "iv", who(3, "u", "s3", Some("s1"))).await
        else {
            panic!("take-back")
        };
        assert_eq!((previous_conn, remote), (1, false));
        assert!(old.evicted.try_recv().is_ok());
        assert!(r.is_held_here("iv"));
        drop(old);
        previous_gone.wait().await;
        // The old slot's drop left the new holder in place; the old id no longer works.
        assert!(r.is_held_here("iv"));
        assert!(matches!(
            claim(&r, "iv", who(4, "u", "s4", Some("s1"))).await,
            Claim::Busy
        ));
        drop(new);
        assert!(!r.is_held_here("iv"));
    }
}
