//! The store: SQLite or Postgres ([`db::Db`], one query layer over [`backend::Backend`]) on a
//! thread of its own. Async code queues work on a bounded channel and awaits the answer, so no
//! statement ever runs on a tokio worker and writes from one session stay in order.

pub mod backend;
pub mod db;

use std::fmt;

use tokio::sync::{mpsc, oneshot};

pub use backend::Target;
pub use db::{Db, DbError, Interview, Turn, MIGRATIONS};

/// Jobs queued at most; a full queue makes callers wait (backpressure), it never drops work.
const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce(&Db) + Send>;

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
    tx: mpsc::Sender<Job>,
}

impl Store {
    /// Starts the store thread on `db`; it ends when the last handle is dropped.
    pub fn start(db: Db) -> Result<Self, std::io::Error> {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || serve(db, rx))?;
        Ok(Self { tx })
    }

    /// Opens `target` (and applies its migrations) on a new store thread: a Postgres client
    /// must not run on an async worker, so even connecting happens there.
    pub async fn open(target: Target) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
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
    /// failure is logged on the store thread (`what` names the operation; never data).
    pub async fn submit(
        &self,
        what: &'static str,
        f: impl FnOnce(&Db) -> Result<(), DbError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let job: Job = Box::new(move |db| {
            if let Err(e) = f(db) {
                crate::log::log(
                    crate::log::Level::Error,
                    "database error",
                    &[("op", what.into()), ("error", e.to_string().into())],
                );
            }
        });
        self.tx.send(job).await.map_err(|_| StoreError::Stopped)
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
        self.tx.send(job).await.map_err(|_| StoreError::Stopped)?;
        answer
            .await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Db)
    }
}

/// The store thread's loop: runs jobs in order until every handle is gone.
fn serve(db: Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        job(&db);
    }
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
