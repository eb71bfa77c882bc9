//! SQLite and PostgreSQL storage for Tessera.
//!
//! One set of portable SQL (`queries` and its siblings) runs on both databases through
//! one statement facade (`db`): sqlx's `Any` driver for PostgreSQL, rusqlite in place for
//! SQLite. What differs per backend (connections, migrations, schema) lives in `sqlite`,
//! `postgres` and `unit`. The contract suite in `tests/contract` holds both to the
//! same behaviour.

mod actions;
mod applications;
mod db;
mod flows;
mod messengers;
mod oidc;
mod postgres;
mod queries;
mod rows;
mod sealed;
mod signins;
mod sqlite;
pub mod testing;
mod twofactor;
mod unit;
mod verify;
mod writer;

use std::sync::Arc;

use tessera_core::store::StoreError;

use db::DbError;
use queries::Engine;
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

/// Opens the connections to `url`. Does not migrate; call [`SqlStore::migrate`].
///
/// SQLite takes one writer at a time, so its writes get a connection of their own
/// (`sqlite::Lite`); reads use the others. PostgreSQL writes concurrently and uses one
/// pool for both.
pub async fn open(url: &str, options: &StoreOptions) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let engine = match Backend::of_url(url)? {
        // The writer counts toward `max_connections`: each connection keeps its own
        // page and statement caches, and memory is what more of them would cost.
        Backend::Sqlite => Engine::Lite(Arc::new(sqlite::open(url, options.max_connections.saturating_sub(1))?)),
        Backend::Postgres => Engine::Any(postgres::connect(url, options).await?),
    };
    Ok(SqlStore::new(engine))
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
pub(crate) fn db_error(e: impl Into<DbError>) -> StoreError {
    match e.into() {
        DbError::Sqlx(e) => sqlx_error(e),
        DbError::Lite(e) => sqlite_error(e),
    }
}

fn sqlx_error(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::Database(db) => {
            let code = db.code().unwrap_or_default();
            let code = code.as_ref();
            // 40001 serialization failure, 40P01 deadlock, 55P03 lock not available.
            if matches!(code, "40001" | "40P01" | "55P03") {
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

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => StoreError::Busy(e.to_string()),
            C::CannotOpen | C::SystemIoFailure | C::DiskFull | C::PermissionDenied | C::ReadOnly | C::OutOfMemory => {
                StoreError::Unavailable(e.to_string())
            }
            C::DatabaseCorrupt | C::NotADatabase => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Query(e.to_string()),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
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
