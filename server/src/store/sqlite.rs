//! Persistence in SQLite: interviews (owner, script position, accumulated `realtime_cost_usd`) and
//! transcript turns of both roles. One connection, used from the store's own thread
//! ([`super::Store`]), never from the async workers.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Turns returned by [`Db::interview`] (the most recent ones), so a reply stays bounded.
pub const MAX_TURNS_RETURNED: usize = 500;
/// Longest text stored per turn, in characters.
pub const MAX_TURN_CHARS: usize = 8192;

/// A database failure, with the operation that failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite refused `op`.
    Sqlite {
        /// What we were doing.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The interview exists and belongs to another user.
    OwnedByOther {
        /// The interview.
        interview_id: String,
    },
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { op, source } => write!(f, "database error while {op}: {source}"),
            Self::OwnedByOther { interview_id } => {
                write!(f, "interview {interview_id} belongs to another user")
            }
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite { source, .. } => Some(source),
            Self::OwnedByOther { .. } => None,
        }
    }
}

fn ctx(op: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError {
    move |source| DbError::Sqlite { op, source }
}

/// One transcript turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    /// What was said or written (user audio is stored as its transcription).
    pub text: String,
    /// `realtime`, `text` or `audio` (the legacy endpoint).
    pub source: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// An interview with its turns, as `GET /api/v1/interviews/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interview {
    /// Interview id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Script lines spoken so far.
    pub question_index: u32,
    /// Accumulated realtime cost, USD.
    pub realtime_cost_usd: f64,
    /// The most recent turns, oldest first.
    pub turns: Vec<Turn>,
}

/// The store.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (and migrates) the database at `path`, or an in-memory one.
    pub fn open(path: Option<&Path>) -> Result<Self, DbError> {
        let conn = match path {
            Some(p) => Connection::open(p).map_err(ctx("opening the database"))?,
            None => Connection::open_in_memory().map_err(ctx("opening an in-memory database"))?,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA foreign_keys=ON;
             CREATE TABLE IF NOT EXISTS interviews (
                 id TEXT PRIMARY KEY,
                 user_id TEXT NOT NULL,
                 created_at_ms INTEGER NOT NULL,
                 question_index INTEGER NOT NULL DEFAULT 0,
                 realtime_cost_usd REAL NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS turns (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 interview_id TEXT NOT NULL REFERENCES interviews(id),
                 role TEXT NOT NULL,
                 text TEXT NOT NULL,
                 source TEXT NOT NULL,
                 created_at_ms INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS turns_by_interview ON turns(interview_id, id);",
        )
        .map_err(ctx("creating the schema"))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the interview for `user_id` if it does not exist; errors if another user owns it.
    /// Returns the script position.
    pub fn ensure_interview(&self, id: &str, user_id: &str, now_ms: u64) -> Result<u32, DbError> {
        let c = self.conn();
        c.execute(
            "INSERT OR IGNORE INTO interviews (id, user_id, created_at_ms) VALUES (?1, ?2, ?3)",
            params![id, user_id, now_ms as i64],
        )
        .map_err(ctx("creating an interview"))?;
        let (owner, idx): (String, u32) = c
            .query_row(
                "SELECT user_id, question_index FROM interviews WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(ctx("reading an interview"))?;
        if owner != user_id {
            return Err(DbError::OwnedByOther {
                interview_id: id.to_string(),
            });
        }
        Ok(idx)
    }

    /// Appends a transcript turn.
    pub fn add_turn(
        &self,
        id: &str,
        role: &str,
        text: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<(), DbError> {
        let text: String = text.chars().take(MAX_TURN_CHARS).collect();
        self.conn()
            .execute(
                "INSERT INTO turns (interview_id, role, text, source, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, role, text, source, now_ms as i64],
            )
            .map_err(ctx("storing a turn"))?;
        Ok(())
    }

    /// Adds `usd` to the interview's `realtime_cost_usd`.
    pub fn add_cost(&self, id: &str, usd: f64) -> Result<(), DbError> {
        self.conn()
            .execute(
                "UPDATE interviews SET realtime_cost_usd = realtime_cost_usd + ?2 WHERE id = ?1",
                params![id, usd],
            )
            .map_err(ctx("adding cost"))?;
        Ok(())
    }

    /// The interview's script position (0 when it does not exist).
    pub fn interview_position(&self, id: &str) -> Result<u32, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT question_index FROM interviews WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(ctx("reading the script position"))?
            .unwrap_or(0))
    }

    /// The interview's accumulated realtime cost (the one column read when a connection ends).
    pub fn cost(&self, id: &str) -> Result<Option<f64>, DbError> {
        self.conn()
            .query_row(
                "SELECT realtime_cost_usd FROM interviews WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(ctx("reading the cost"))
    }

    /// Number of user turns stored for the interview (the per-interview turn cap counts them).
    pub fn user_turns(&self, id: &str) -> Result<u32, DbError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM turns WHERE interview_id = ?1 AND role = 'user'",
                params![id],
                |r| r.get(0),
            )
            .map_err(ctx("counting turns"))
    }

    /// Records the script position.
    pub fn set_question_index(&self, id: &str, index: u32) -> Result<(), DbError> {
        self.conn()
            .execute(
                "UPDATE interviews SET question_index = ?2 WHERE id = ?1",
                params![id, index],
            )
            .map_err(ctx("storing the script position"))?;
        Ok(())
    }

    /// The interview and its most recent turns, if it exists.
    pub fn interview(&self, id: &str) -> Result<Option<Interview>, DbError> {
        let c = self.conn();
        let head = c
            .query_row(
                "SELECT id, user_id, created_at_ms, question_index, realtime_cost_usd FROM interviews WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Interview {
                        id: r.get(0)?,
                        user_id: r.get(1)?,
                        created_at_ms: r.get::<_, i64>(2)? as u64,
                        question_index: r.get(3)?,
                        realtime_cost_usd: r.get(4)?,
                        turns: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(ctx("reading an interview"))?;
        let Some(mut iv) = head else { return Ok(None) };
        let mut st = c
            .prepare(
                "SELECT role, text, source, created_at_ms FROM turns WHERE interview_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(ctx("reading turns"))?;
        let rows = st
            .query_map(params![id, MAX_TURNS_RETURNED as i64], |r| {
                Ok(Turn {
                    role: r.get(0)?,
                    text: r.get(1)?,
                    source: r.get(2)?,
                    created_at_ms: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(ctx("reading turns"))?;
        for t in rows {
            iv.turns.push(t.map_err(ctx("reading a turn"))?);
        }
        iv.turns.reverse();
        Ok(Some(iv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interviews_turns_and_cost_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("rvs-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite3");
        let _ = std::fs::remove_file(&path);
        {
            let db = Db::open(Some(&path)).unwrap();
            assert_eq!(db.ensure_interview("iv", "u", 1).unwrap(), 0);
            assert!(matches!(
                db.ensure_interview("iv", "other", 2),
                Err(DbError::OwnedByOther { .. })
            ));
            db.add_turn("iv", "assistant", "Q1", "realtime", 3).unwrap();
            db.add_turn("iv", "user", "(2.4 s of speech)", "realtime", 4)
                .unwrap();
            db.add_cost("iv", 0.25).unwrap();
            db.add_cost("iv", 0.5).unwrap();
            db.set_question_index("iv", 2).unwrap();
        }
        let db = Db::open(Some(&path)).unwrap();
        let iv = db.interview("iv").unwrap().unwrap();
        assert_eq!(iv.user_id, "u");
        assert_eq!(iv.question_index, 2);
        assert!((iv.realtime_cost_usd - 0.75).abs() < 1e-12);
        assert_eq!(iv.turns.len(), 2);
        assert_eq!(iv.turns[0].text, "Q1");
        assert_eq!(iv.turns[1].role, "user");
        assert!(db.interview("nope").unwrap().is_none());
        assert_eq!(db.user_turns("iv").unwrap(), 1);
        assert_eq!(db.cost("iv").unwrap(), Some(0.75));
        assert_eq!(db.cost("nope").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
