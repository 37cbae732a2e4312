//! The queries of the store, each written once for SQLite and Postgres ([`super::backend`]):
//! interviews (owner, script position, accumulated `realtime_cost_usd`, never NULL) and
//! transcript turns of both roles, and the versioned schema ([`MIGRATIONS`]). Used from the
//! store's own thread ([`super::Store`]), never from the async workers.

use std::sync::Mutex;

use serde::Serialize;

use super::backend::{Backend, Cell, Param, Target};

/// Turns returned by [`Db::interview`] (the most recent ones), so a reply stays bounded.
pub const MAX_TURNS_RETURNED: usize = 500;
/// Longest text stored per turn, in characters.
pub const MAX_TURN_CHARS: usize = 8192;

/// One schema version: its statements for each database.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version number (applied in increasing order, each once).
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// SQLite statements.
    pub sqlite: &'static str,
    /// Postgres statements.
    pub postgres: &'static str,
}

/// The schema, version by version (`schema_migrations` records what was applied). Version 1
/// uses `IF NOT EXISTS`, so a SQLite file from before versioning is adopted as it is.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "interviews and turns",
    sqlite: "CREATE TABLE IF NOT EXISTS interviews (
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
    postgres: "CREATE TABLE IF NOT EXISTS interviews (
                 id TEXT PRIMARY KEY,
                 user_id TEXT NOT NULL,
                 created_at_ms BIGINT NOT NULL,
                 question_index BIGINT NOT NULL DEFAULT 0,
                 realtime_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS turns (
                 id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 interview_id TEXT NOT NULL REFERENCES interviews(id),
                 role TEXT NOT NULL,
                 text TEXT NOT NULL,
                 source TEXT NOT NULL,
                 created_at_ms BIGINT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS turns_by_interview ON turns(interview_id, id);",
}];

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
    /// Postgres refused `op`.
    Postgres {
        /// What we were doing.
        op: &'static str,
        /// The server's error.
        source: postgres::Error,
    },
    /// The database could not be reached during `op` (connection refused or broken).
    Unavailable {
        /// What we were doing.
        op: &'static str,
        /// Why (never the URL).
        detail: String,
    },
    /// `DATABASE_URL` could not be used.
    Config {
        /// Why.
        detail: String,
    },
    /// The interview exists and belongs to another user.
    OwnedByOther {
        /// The interview.
        interview_id: String,
    },
}

impl DbError {
    /// Whether the database was unreachable (retry later) rather than refusing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { op, source } => write!(f, "database error while {op}: {source}"),
            Self::Postgres { op, source } => write!(f, "database error while {op}: {source}"),
            Self::Unavailable { op, detail } => {
                write!(f, "database unavailable while {op}: {detail}")
            }
            Self::Config { detail } => write!(f, "DATABASE_URL is not usable: {detail}"),
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
            Self::Postgres { source, .. } => Some(source),
            _ => None,
        }
    }
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
    backend: Mutex<Backend>,
}

fn text(s: &str) -> Param<'_> {
    Param::Text(s)
}

impl Db {
    /// Opens `target` and applies the pending migrations.
    pub fn open_target(target: &Target) -> Result<Self, DbError> {
        let mut backend = Backend::open(target)?;
        backend.migrate(MIGRATIONS)?;
        Ok(Self {
            backend: Mutex::new(backend),
        })
    }

    /// Opens (and migrates) the SQLite database at `path`, or an in-memory one.
    pub fn open(path: Option<&std::path::Path>) -> Result<Self, DbError> {
        Self::open_target(&match path {
            Some(p) => Target::Sqlite(p.to_path_buf()),
            None => Target::Memory,
        })
    }

    /// Applies the pending migrations of `target` without serving (the `migrate` subcommand);
    /// returns the versions applied now.
    pub fn migrate(target: &Target) -> Result<Vec<u32>, DbError> {
        Backend::open(target)?.migrate(MIGRATIONS)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Backend> {
        self.backend.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first column of the first row, if any.
    fn one(
        &self,
        op: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Cell>, DbError> {
        Ok(self
            .db()
            .query(op, sql, params)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next()))
    }

    /// Creates the interview for `user_id` if it does not exist; errors if another user owns it.
    /// Returns the script position.
    pub fn ensure_interview(&self, id: &str, user_id: &str, now_ms: u64) -> Result<u32, DbError> {
        let mut db = self.db();
        db.execute(
            "creating an interview",
            "INSERT INTO interviews (id, user_id, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            &[text(id), text(user_id), Param::Int(now_ms as i64)],
        )?;
        let row = db
            .query(
                "reading an interview",
                "SELECT user_id, question_index FROM interviews WHERE id = $1",
                &[text(id)],
            )?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut cells = row.into_iter();
        let owner = cells.next().map(Cell::text).unwrap_or_default();
        let idx = cells.next().map_or(0, |c| c.int());
        if owner != user_id {
            return Err(DbError::OwnedByOther {
                interview_id: id.to_string(),
            });
        }
        Ok(idx.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// Appends a transcript turn.
    pub fn add_turn(
        &self,
        id: &str,
        role: &str,
        text_: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<(), DbError> {
        let t: String = text_.chars().take(MAX_TURN_CHARS).collect();
        self.db().execute(
            "storing a turn",
            "INSERT INTO turns (interview_id, role, text, source, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[text(id), text(role), text(&t), text(source), Param::Int(now_ms as i64)],
        )?;
        Ok(())
    }

    /// Adds `usd` to the interview's `realtime_cost_usd`.
    pub fn add_cost(&self, id: &str, usd: f64) -> Result<(), DbError> {
        self.db().execute(
            "adding cost",
            "UPDATE interviews SET realtime_cost_usd = realtime_cost_usd + $2 WHERE id = $1",
            &[text(id), Param::Real(usd)],
        )?;
        Ok(())
    }

    /// The interview's script position (0 when it does not exist).
    pub fn interview_position(&self, id: &str) -> Result<u32, DbError> {
        let v = self.one(
            "reading the script position",
            "SELECT question_index FROM interviews WHERE id = $1",
            &[text(id)],
        )?;
        Ok(v.map_or(0, |c| c.int().clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// The interview's accumulated realtime cost (the one column read when a connection ends).
    pub fn cost(&self, id: &str) -> Result<Option<f64>, DbError> {
        Ok(self
            .one(
                "reading the cost",
                "SELECT realtime_cost_usd FROM interviews WHERE id = $1",
                &[text(id)],
            )?
            .map(|c| c.real()))
    }

    /// Number of user turns stored for the interview (the per-interview turn cap counts them).
    pub fn user_turns(&self, id: &str) -> Result<u32, DbError> {
        let n = self.one(
            "counting turns",
            "SELECT COUNT(*) FROM turns WHERE interview_id = $1 AND role = 'user'",
            &[text(id)],
        )?;
        Ok(n.map_or(0, |c| c.int().clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// Records the script position.
    pub fn set_question_index(&self, id: &str, index: u32) -> Result<(), DbError> {
        self.db().execute(
            "storing the script position",
            "UPDATE interviews SET question_index = $2 WHERE id = $1",
            &[text(id), Param::Int(i64::from(index))],
        )?;
        Ok(())
    }

    /// The interview and its most recent turns, if it exists.
    pub fn interview(&self, id: &str) -> Result<Option<Interview>, DbError> {
        let mut db = self.db();
        let head = db
            .query(
                "reading an interview",
                "SELECT id, user_id, created_at_ms, question_index, realtime_cost_usd FROM interviews WHERE id = $1",
                &[text(id)],
            )?
            .into_iter()
            .next();
        let Some(head) = head else { return Ok(None) };
        let mut h = head.into_iter();
        let mut next = || h.next().unwrap_or(Cell::Null);
        let mut iv = Interview {
            id: next().text(),
            user_id: next().text(),
            created_at_ms: next().int().max(0) as u64,
            question_index: next().int().clamp(0, i64::from(u32::MAX)) as u32,
            realtime_cost_usd: next().real(),
            turns: Vec::new(),
        };
        let rows = db.query(
            "reading turns",
            "SELECT role, text, source, created_at_ms FROM turns WHERE interview_id = $1 ORDER BY id DESC LIMIT $2",
            &[text(id), Param::Int(MAX_TURNS_RETURNED as i64)],
        )?;
        for r in rows {
            let mut c = r.into_iter();
            let mut next = || c.next().unwrap_or(Cell::Null);
            iv.turns.push(Turn {
                role: next().text(),
                text: next().text(),
                source: next().text(),
                created_at_ms: next().int().max(0) as u64,
            });
        }
        iv.turns.reverse();
        Ok(Some(iv))
    }

    /// Whether the database answers (readiness).
    pub fn ping(&self) -> Result<(), DbError> {
        self.db().query("checking the database", "SELECT 1", &[])?;
        Ok(())
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
