//! Throwaway databases for tests and benchmarks: a SQLite file in a temporary folder,
//! or a fresh schema in the PostgreSQL named by `TEST_POSTGRES_URL` (default: the
//! local `test` database). A missing PostgreSQL is an error, never a skip.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, Executor, Row};
use tessera_core::store::StoreError;

use crate::{Backend, unavailable};

pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const SCHEMA_PREFIX: &str = "tessera_t_";
/// Schemas older than this are left over from runs that died; they are dropped.
const STALE_AFTER_SECS: u64 = 3600;

pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
}

#[allow(clippy::disallowed_methods)] // names and ages throwaway schemas; no domain logic
fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A database URL nobody else uses.
pub async fn fresh_database_url(backend: Backend) -> Result<String, StoreError> {
    let unique = uuid_like();
    match backend {
        Backend::Sqlite => {
            let dir: PathBuf = std::env::temp_dir().join(format!("tessera-test-{unique}"));
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok(format!("sqlite://{}", dir.join("tessera.db").display()))
        }
        Backend::Postgres => {
            let base = postgres_url();
            sqlx::any::install_default_drivers();
            let pool = AnyPool::connect(&base).await.map_err(|e| {
                StoreError::Unavailable(format!("PostgreSQL at {base} is required for these tests: {e}"))
            })?;
            drop_stale_schemas(&pool).await?;
            let schema = format!("{SCHEMA_PREFIX}{}_{unique}", unix_secs());
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.map_err(unavailable)?;
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        }
    }
}

async fn drop_stale_schemas(pool: &AnyPool) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT nspname::text AS name FROM pg_namespace WHERE nspname LIKE 'tessera\\_t\\_%'")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    let now = unix_secs();
    for row in rows {
        let name: String = row.try_get("name").map_err(unavailable)?;
        let born = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|b| now.saturating_sub(b) > STALE_AFTER_SECS) {
            // Another run may drop it at the same moment; that is fine.
            let _ = pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).await;
        }
    }
    Ok(())
}

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom_fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), StoreError> {
    tessera_core::random::fill(buf).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Runs statements against a test database behind the store's back, for tests that make
/// the database misbehave (a trigger that refuses a write) to see what Tessera does then.
pub async fn execute(url: &str, sql: &str) -> Result<(), StoreError> {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await.map_err(unavailable)?;
    let done = pool.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.map(|_| ()).map_err(unavailable);
    pool.close().await;
    done
}

/// Runs a query behind the store's back and returns every row as text (NULL as `None`);
/// select text columns, or `CAST(… AS TEXT)`.
pub async fn query_text(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, StoreError> {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await.map_err(unavailable)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&pool).await.map_err(unavailable);
    pool.close().await;
    rows?
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<Option<String>, _>(i).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect()
        })
        .collect()
}
