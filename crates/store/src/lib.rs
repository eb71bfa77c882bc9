//! SQLite and PostgreSQL storage for Tessera.
//!
//! One set of portable SQL (`queries`) runs on both databases through sqlx's `Any`
//! driver; what differs per backend (connection setup, migrations, schema) lives in
//! `sqlite` and `postgres`. The contract suite in `tests/contract` holds both to the
//! same behaviour.

mod applications;
mod flows;
mod messengers;
mod oidc;
mod postgres;
mod queries;
mod rows;
mod sealed;
mod sqlite;
pub mod testing;
mod twofactor;
mod unit;
mod verify;

use sqlx::AnyPool;
use tessera_core::store::StoreError;

pub use queries::SqlStore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Unavailable(
                "database_url must start with sqlite: or postgres:// (e.g. sqlite://tessera-data/tessera.db)".into(),
            ))
        }
    }
}

/// The file a `sqlite:` URL names (`None` for other URLs and for `:memory:`).
pub fn sqlite_file(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(path.split('?').next().unwrap_or_default()).filter(|f| *f != ":memory:" && !f.is_empty())
}

/// The URL as it may be shown or logged: a password in it is replaced.
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:••••@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 10 }
    }
}

/// Opens the pools on `url`. Does not migrate; call [`SqlStore::migrate`].
///
/// SQLite takes one writer at a time, so its writes get a pool of their own with one
/// connection: writers queue for it in the process (in order, without SQLite's
/// sleeping busy handler), and its page cache stays warm; reads use the other pool.
/// PostgreSQL writes concurrently and uses one pool for both.
pub async fn open(url: &str, options: &StoreOptions) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let (readers, writer): (AnyPool, AnyPool) = match backend {
        Backend::Sqlite => {
            // The writer counts toward `max_connections`: each connection keeps its own
            // page and statement caches, and memory is what more of them would cost.
            let writer = sqlite::connect(url, 1).await?;
            (sqlite::connect(url, options.max_connections.saturating_sub(1).max(1)).await?, writer)
        }
        Backend::Postgres => {
            let pool = postgres::connect(url, options).await?;
            (pool.clone(), pool)
        }
    };
    Ok(SqlStore::new(readers, writer, backend))
}

pub(crate) fn migration(version: i64, description: &'static str, sql: &'static str) -> sqlx::migrate::Migration {
    use sqlx::migrate::{Migration, MigrationType};
    Migration::new(
        version,
        std::borrow::Cow::Borrowed(description),
        MigrationType::Simple,
        sqlx::SqlStr::from_static(sql),
        false,
    )
}

/// Tells a database that is not there (503, try again) from a transaction that lost a
/// race (retry the unit) and from a statement the database refused (a bug: 500).
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::Database(db) => {
            let code = db.code().unwrap_or_default();
            let code = code.as_ref();
            // PostgreSQL: 40001 serialization failure, 40P01 deadlock, 55P03 lock not
            // available. SQLite (extended codes carry the primary one in the low byte): 5
            // busy, 6 locked; asked of SQLite's errors only, PostgreSQL's are digits too.
            let sqlite_busy = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            if matches!(code, "40001" | "40P01" | "55P03") || sqlite_busy {
                StoreError::Busy(e.to_string())
            // 08: connection exceptions, 53: out of resources, 57P: the server is going down.
            } else if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Query(e.to_string())
            }
        }
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
            StoreError::Unavailable(e.to_string())
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::ColumnIndexOutOfBounds { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Query(e.to_string()),
    }
}

/// For connection setup and migrations: any failure there means no usable database.
pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_file_and_show_no_password() {
        assert_eq!(sqlite_file("sqlite://tessera-data/tessera.db?mode=rwc"), Some("tessera-data/tessera.db"));
        assert_eq!(sqlite_file("sqlite:x.db"), Some("x.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
        assert_eq!(
            display_url("postgres://app:s3cret@db.example.com:5432/tessera"),
            "postgres://app:••••@db.example.com:5432/tessera"
        );
        assert_eq!(display_url("postgres://postgres@127.0.0.1/test"), "postgres://postgres@127.0.0.1/test");
        assert_eq!(display_url("sqlite://tessera-data/tessera.db"), "sqlite://tessera-data/tessera.db");
    }
}
