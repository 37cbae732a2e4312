//! The two databases behind one small interface: a statement (written once, with `$1`-style
//! placeholders, which SQLite reads as `?1`) runs with [`Param`]s and returns rows of [`Cell`]s.
//! SQLite (rusqlite, the default: a file or memory) or Postgres (the synchronous `postgres`
//! client; `DATABASE_URL=postgres://…`). Both run on the store's own thread. A Postgres
//! connection that broke is reopened at the next statement, which is retried once on it.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::types::ValueRef;

use super::db::DbError;

/// Where the data lives (`DATABASE_URL` / `DATABASE_PATH`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// In-memory SQLite (the default: nothing to set up, nothing kept).
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A Postgres URL (`postgres://user:password@host:port/db`).
    Postgres(String),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => write!(f, "Memory"),
            Self::Sqlite(p) => write!(f, "Sqlite({p:?})"),
            // The URL may carry a password.
            Self::Postgres(_) => write!(f, "Postgres(<redacted>)"),
        }
    }
}

impl Target {
    /// `DATABASE_URL` (`postgres://`, `postgresql://`, `sqlite://path`, `sqlite::memory:`) or
    /// else `DATABASE_PATH` (a SQLite file; empty or `:memory:` for memory).
    pub fn from_env(url: Option<&str>, path: Option<&str>) -> Option<Self> {
        if let Some(u) = url.map(str::trim).filter(|u| !u.is_empty()) {
            if u.starts_with("postgres://") || u.starts_with("postgresql://") {
                return Some(Self::Postgres(u.to_string()));
            }
            return match u.strip_prefix("sqlite://").or(u.strip_prefix("sqlite:")) {
                Some(":memory:") | Some("") => Some(Self::Memory),
                Some(p) => Some(Self::Sqlite(PathBuf::from(p))),
                None => None,
            };
        }
        Some(match path.filter(|p| !p.is_empty() && *p != ":memory:") {
            Some(p) => Self::Sqlite(PathBuf::from(p)),
            None => Self::Memory,
        })
    }

    /// Which database this is, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory | Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// Text.
    Text(&'a str),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Real(f64),
}

/// A column value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
}

impl Cell {
    /// As an integer (a NULL is 0).
    pub fn int(&self) -> i64 {
        match self {
            Self::Int(i) => *i,
            Self::Real(r) => *r as i64,
            _ => 0,
        }
    }

    /// As a double (a NULL is 0).
    pub fn real(&self) -> f64 {
        match self {
            Self::Real(r) => *r,
            Self::Int(i) => *i as f64,
            _ => 0.0,
        }
    }

    /// As text (a NULL is empty).
    pub fn text(self) -> String {
        match self {
            Self::Text(s) => s,
            _ => String::new(),
        }
    }
}

/// An open database.
pub enum Backend {
    /// SQLite.
    Sqlite(rusqlite::Connection),
    /// Postgres: the configuration, and the connection when one is open.
    Postgres {
        /// How to connect.
        config: Box<postgres::Config>,
        /// The connection, reopened after it broke.
        client: Option<Box<postgres::Client>>,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(_) => write!(f, "Backend::Sqlite"),
            Self::Postgres { client, .. } => {
                write!(f, "Backend::Postgres {{ connected: {} }}", client.is_some())
            }
        }
    }
}

/// Postgres: longest wait for a connection, and for one statement.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const PG_STATEMENT_TIMEOUT_MS: u32 = 10_000;

fn sqlite_err(op: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError {
    move |source| DbError::Sqlite { op, source }
}

/// Whether a Postgres error means the server or the connection is gone (no answer, the
/// connection closed, or the server shutting down or starting: SQLSTATE classes 08 and 57P).
fn pg_unavailable(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.as_db_error().is_none_or(|d| {
            let c = d.code().code();
            c.starts_with("08") || c.starts_with("57P")
        })
}

fn pg_err(op: &'static str, e: postgres::Error) -> DbError {
    if pg_unavailable(&e) {
        // No answer from the server: the connection or the server is gone.
        DbError::Unavailable {
            op,
            detail: e.to_string(),
        }
    } else {
        DbError::Postgres { op, source: e }
    }
}

fn sqlite_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a dyn rusqlite::ToSql> {
    params
        .iter()
        .map(|p| -> &dyn rusqlite::ToSql {
            match p {
                Param::Text(s) => s,
                Param::Int(i) => i,
                Param::Real(r) => r,
            }
        })
        .collect()
}

fn pg_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| -> &(dyn postgres::types::ToSql + Sync) {
            match p {
                Param::Text(s) => s,
                Param::Int(i) => i,
                Param::Real(r) => r,
            }
        })
        .collect()
}

fn pg_cell(row: &postgres::Row, i: usize) -> Result<Cell, postgres::Error> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    Ok(if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?
            .map_or(Cell::Null, Cell::Int)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map_or(Cell::Null, |v| Cell::Int(v.into()))
    } else if ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i)?
            .map_or(Cell::Null, Cell::Real)
    } else {
        row.try_get::<_, Option<String>>(i)?
            .map_or(Cell::Null, Cell::Text)
    })
}

impl Backend {
    /// Opens the database (connects, for Postgres).
    pub fn open(target: &Target) -> Result<Self, DbError> {
        match target {
            Target::Memory => Ok(Self::Sqlite(
                rusqlite::Connection::open_in_memory()
                    .map_err(sqlite_err("opening an in-memory database"))?,
            )),
            Target::Sqlite(p) => {
                let c =
                    rusqlite::Connection::open(p).map_err(sqlite_err("opening the database"))?;
                c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
                    .map_err(sqlite_err("setting up the database"))?;
                Ok(Self::Sqlite(c))
            }
            Target::Postgres(url) => {
                let mut config: postgres::Config =
                    url.parse().map_err(|e: postgres::Error| DbError::Config {
                        detail: e.to_string(),
                    })?;
                config
                    .connect_timeout(PG_CONNECT_TIMEOUT)
                    .keepalives(true)
                    .keepalives_idle(Duration::from_secs(30))
                    .options(&format!("-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"))
                    .application_name("realtime-voice-server");
                let mut b = Self::Postgres {
                    config: Box::new(config),
                    client: None,
                };
                b.pg_client("connecting to postgres")?;
                Ok(b)
            }
        }
    }

    /// The Postgres connection, (re)opened if needed.
    fn pg_client(&mut self, op: &'static str) -> Result<&mut postgres::Client, DbError> {
        let Self::Postgres { config, client } = self else {
            return Err(DbError::Config {
                detail: "not a postgres database".into(),
            });
        };
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = None;
            let fresh = config.connect(postgres::NoTls).map_err(|e| pg_err(op, e))?;
            *client = Some(Box::new(fresh));
        }
        client.as_deref_mut().ok_or(DbError::Unavailable {
            op,
            detail: "no connection".into(),
        })
    }

    /// Runs `f` on the Postgres connection; when the connection turns out broken, reopens it and
    /// runs `f` once more (a statement that never reached the server cannot have committed).
    fn pg<T>(
        &mut self,
        op: &'static str,
        mut f: impl FnMut(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, DbError> {
        let first = f(self.pg_client(op)?);
        match first {
            Err(e) if pg_unavailable(&e) => {
                if let Self::Postgres { client, .. } = self {
                    *client = None;
                }
                f(self.pg_client(op)?).map_err(|e| pg_err(op, e))
            }
            r => r.map_err(|e| pg_err(op, e)),
        }
    }

    /// Runs a statement; returns the rows it changed.
    pub fn execute(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, DbError> {
        match self {
            Self::Sqlite(c) => c
                .execute(&sql.replace('$', "?"), sqlite_params(params).as_slice())
                .map(|n| n as u64)
                .map_err(sqlite_err(op)),
            Self::Postgres { .. } => {
                let p = pg_params(params);
                self.pg(op, |c| c.execute(sql, &p))
            }
        }
    }

    /// Runs a query; returns its rows.
    pub fn query(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Cell>>, DbError> {
        match self {
            Self::Sqlite(c) => {
                let mut st = c.prepare(&sql.replace('$', "?")).map_err(sqlite_err(op))?;
                let n = st.column_count();
                let mut rows = st
                    .query(sqlite_params(params).as_slice())
                    .map_err(sqlite_err(op))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(sqlite_err(op))? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(match r.get_ref(i).map_err(sqlite_err(op))? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(v) => Cell::Int(v),
                            ValueRef::Real(v) => Cell::Real(v),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                        });
                    }
                    out.push(row);
                }
                Ok(out)
            }
            Self::Postgres { .. } => {
                let p = pg_params(params);
                self.pg(op, |c| {
                    let rows = c.query(sql, &p)?;
                    rows.iter()
                        .map(|r| (0..r.len()).map(|i| pg_cell(r, i)).collect())
                        .collect()
                })
            }
        }
    }

    /// Applies the migrations not yet applied, each in a transaction, under a lock so that
    /// instances starting together apply each once. Returns the versions applied now.
    pub fn migrate(&mut self, migrations: &[super::db::Migration]) -> Result<Vec<u32>, DbError> {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)";
        let now = crate::http::now_ms() as i64;
        let mut applied = Vec::new();
        match self {
            Self::Sqlite(c) => {
                let op = "migrating the database";
                c.execute_batch(CREATE).map_err(sqlite_err(op))?;
                for m in migrations {
                    let tx = c
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(sqlite_err(op))?;
                    let done: i64 = tx
                        .query_row(
                            "SELECT COUNT(*) FROM schema_migrations WHERE version = ?1",
                            [i64::from(m.version)],
                            |r| r.get(0),
                        )
                        .map_err(sqlite_err(op))?;
                    if done == 0 {
                        tx.execute_batch(m.sqlite).map_err(sqlite_err(op))?;
                        tx.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
                            rusqlite::params![i64::from(m.version), m.name, now],
                        )
                        .map_err(sqlite_err(op))?;
                        applied.push(m.version);
                    }
                    tx.commit().map_err(sqlite_err(op))?;
                }
            }
            Self::Postgres { .. } => {
                let op = "migrating the database";
                let c = self.pg_client(op)?;
                for m in migrations {
                    let mut tx = c.transaction().map_err(|e| pg_err(op, e))?;
                    // One migrator at a time across instances (released at commit).
                    tx.batch_execute("SELECT pg_advisory_xact_lock(7274001)")
                        .map_err(|e| pg_err(op, e))?;
                    tx.batch_execute(CREATE).map_err(|e| pg_err(op, e))?;
                    let done = tx
                        .query_opt(
                            "SELECT version FROM schema_migrations WHERE version = $1",
                            &[&i64::from(m.version)],
                        )
                        .map_err(|e| pg_err(op, e))?
                        .is_some();
                    if !done {
                        tx.batch_execute(m.postgres).map_err(|e| pg_err(op, e))?;
                        tx.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                            &[&i64::from(m.version), &m.name, &now],
                        )
                        .map_err(|e| pg_err(op, e))?;
                        applied.push(m.version);
                    }
                    tx.commit().map_err(|e| pg_err(op, e))?;
                }
            }
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_the_environment() {
        let pg = "postgres://u:secret@db:5432/rv";
        assert_eq!(
            Target::from_env(Some(pg), Some("x.db")),
            Some(Target::Postgres(pg.into()))
        );
        assert!(!format!("{:?}", Target::Postgres(pg.into())).contains("secret"));
        assert_eq!(
            Target::from_env(Some("sqlite:///tmp/a.db"), None),
            Some(Target::Sqlite("/tmp/a.db".into()))
        );
        assert_eq!(
            Target::from_env(Some("sqlite::memory:"), None),
            Some(Target::Memory)
        );
        assert_eq!(Target::from_env(Some("mysql://x"), None), None);
        assert_eq!(
            Target::from_env(None, Some("a.db")),
            Some(Target::Sqlite("a.db".into()))
        );
        assert_eq!(
            Target::from_env(Some(" "), Some(":memory:")),
            Some(Target::Memory)
        );
    }

    #[test]
    fn sqlite_migrations_apply_once() {
        let mut b = Backend::open(&Target::Memory).unwrap();
        assert_eq!(b.migrate(super::super::MIGRATIONS).unwrap(), vec![1]);
        assert!(b.migrate(super::super::MIGRATIONS).unwrap().is_empty());
        let rows = b
            .query(
                "t",
                "SELECT version FROM schema_migrations WHERE version = $1",
                &[Param::Int(1)],
            )
            .unwrap();
        assert_eq!(rows, vec![vec![Cell::Int(1)]]);
    }
}
