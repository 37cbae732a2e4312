//! The store: SQLite or Postgres ([`db::Db`], one query layer over [`backend::Backend`]) on a
//! thread of its own. Async code queues work on a bounded channel and awaits the answer, so no
//! statement ever runs on a tokio worker and writes from one session stay in order. Writes that
//! fail because the database is unreachable are held (in order, bounded) and stored when it is
//! back, so a session that goes on through an outage loses nothing.

pub mod backend;
pub mod db;

use std::fmt;

use tokio::sync::{mpsc, oneshot};

pub use backend::Target;
pub use db::{Db, DbError, Interview, Turn, MIGRATIONS};

/// Jobs queued at most; a full queue makes callers wait (backpressure), it never drops work.
const QUEUE: usize = 1024;

/// Writes held at most while the database is unreachable (then further ones are dropped and
/// logged).
pub const MAX_HELD_WRITES: usize = 4096;
/// How often held writes are retried while no other work arrives.
const RETRY_HELD: std::time::Duration = std::time::Duration::from_millis(250);

type Job = Box<dyn FnOnce(&Db) + Send>;
type Write = Box<dyn Fn(&Db) -> Result<(), DbError> + Send>;

/// What the store thread runs.
enum Work {
    /// A call: runs once, answers its caller.
    Job(Job),
    /// A write: may be held and retried while the database is unreachable.
    Write(&'static str, Write),
}

/// Why a store call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused.
    Db(DbError),
    /// The store thread is gone (the server is stopping).
    Stopped,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Db(e) => write!(f, "{e}"),
            Self::Stopped => write!(f, "the store has stopped"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Db(e) => Some(e),
            Self::Stopped => None,
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

/// Handle to the store thread (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Work>,
}

impl Store {
    /// Starts the store thread on `db`; it ends when the last handle is dropped.
    pub fn start(db: Db) -> Result<Self, std::io::Error> {
        let (tx, rx) = mpsc::channel::<Work>(QUEUE);
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || serve(db, rx))?;
        Ok(Self { tx })
    }

    /// Opens `target` (and applies its migrations) on a new store thread: a Postgres client
    /// must not run on an async worker, so even connecting happens there.
    pub async fn open(target: Target) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Work>(QUEUE);
        let (opened_tx, opened) = oneshot::channel();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || match Db::open_target(&target) {
                Ok(db) => {
                    let _ = opened_tx.send(Ok(()));
                    serve(db, rx);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(|_| StoreError::Stopped)?;
        opened.await.map_err(|_| StoreError::Stopped)??;
        Ok(Self { tx })
    }

    /// Queues `f` (a write) without waiting for it to run: waits only for room in the queue. A
    /// failure is logged on the store thread (`what` names the operation; never data); while the
    /// database is unreachable the write is held and retried (`f` may run more than once, so it
    /// must only fail as a whole, as one statement does).
    pub async fn submit(
        &self,
        what: &'static str,
        f: impl Fn(&Db) -> Result<(), DbError> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.tx
            .send(Work::Write(what, Box::new(f)))
            .await
            .map_err(|_| StoreError::Stopped)
    }

    /// Runs `f` on the store thread after everything queued before it, and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = reply.send(f(db));
        });
        self.tx
            .send(Work::Job(job))
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer
            .await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Db)
    }
}

/// The store thread's loop: runs work in order until every handle is gone. Held writes go
/// first, before anything queued after them.
fn serve(db: Db, mut rx: mpsc::Receiver<Work>) {
    let mut held = Held::default();
    loop {
        let work = if held.writes.is_empty() {
            match rx.blocking_recv() {
                Some(w) => w,
                None => return,
            }
        } else {
            match rx.try_recv() {
                Ok(w) => w,
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(RETRY_HELD);
                    held.flush(&db);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    held.flush(&db);
                    return;
                }
            }
        };
        held.flush(&db);
        match work {
            Work::Job(job) => job(&db),
            Work::Write(what, f) if held.writes.is_empty() => {
                if let Err(e) = f(&db) {
                    held.failed(what, f, e);
                }
            }
            Work::Write(what, f) => held.hold(what, f),
        }
    }
}

/// Writes waiting for the database to come back, oldest first.
#[derive(Default)]
struct Held {
    writes: std::collections::VecDeque<(&'static str, Write)>,
}

impl Held {
    /// A write failed: held when the database is unreachable, else logged.
    fn failed(&mut self, what: &'static str, f: Write, e: DbError) {
        if e.is_unavailable() {
            if self.writes.is_empty() {
                log_db(
                    crate::log::Level::Warn,
                    "database unavailable; holding writes",
                    what,
                    &e,
                );
            }
            self.hold(what, f);
        } else {
            log_db(crate::log::Level::Error, "database error", what, &e);
        }
    }

    fn hold(&mut self, what: &'static str, f: Write) {
        if self.writes.len() >= MAX_HELD_WRITES {
            crate::log::log(
                crate::log::Level::Error,
                "database unavailable; write dropped",
                &[("op", what.into()), ("held", self.writes.len().into())],
            );
            return;
        }
        self.writes.push_back((what, f));
    }

    /// Retries the held writes in order; stops at the first that still cannot reach the database.
    fn flush(&mut self, db: &Db) {
        let had = self.writes.len();
        while let Some((what, f)) = self.writes.front() {
            match f(db) {
                Ok(()) => {}
                Err(e) if e.is_unavailable() => return,
                Err(e) => log_db(crate::log::Level::Error, "database error", what, &e),
            }
            self.writes.pop_front();
        }
        if had > 0 {
            crate::log::log(
                crate::log::Level::Info,
                "database back; held writes stored",
                &[("writes", had.into())],
            );
        }
    }
}

fn log_db(level: crate::log::Level, msg: &str, what: &'static str, e: &DbError) {
    crate::log::log(
        level,
        msg,
        &[("op", what.into()), ("error", e.to_string().into())],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_in_order_off_the_runtime() {
        let store = Store::start(Db::open(None).unwrap()).unwrap();
        store
            .call(|db| db.ensure_interview("iv", "u", 1).map(|_| ()))
            .await
            .unwrap();
        let here = std::thread::current().id();
        let there = store
            .call(move |db| {
                db.add_turn("iv", "user", "hi", "text", 2)?;
                Ok(std::thread::current().id())
            })
            .await
            .unwrap();
        assert_ne!(here, there);
        assert_eq!(store.call(|db| db.user_turns("iv")).await.unwrap(), 1);
        assert!(matches!(
            store.call(|db| db.ensure_interview("iv", "other", 3)).await,
            Err(StoreError::Db(DbError::OwnedByOther { .. }))
        ));
    }
}
