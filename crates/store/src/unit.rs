//! Units of work, and where every query gets its connection.
//!
//! A `SqlStore` either draws a connection from the pool for each statement, or, when
//! it was handed out by [`Store::begin`], runs every statement on one open transaction.
//! Store methods do not care which: they execute on [`SqlStore::conn`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Transaction};
use tessera_core::store::{LimitStore, Store, StoreError, StoreResult, Tx};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::{Backend, SqlStore, db_error};

/// The open transaction a unit of work's store shares; `None` once committed.
pub(crate) type Shared = Arc<Mutex<Option<Transaction<'static, Any>>>>;

/// Where a unit of work's statements go, and whether this handle owns the commit.
#[derive(Clone)]
pub(crate) struct Unit {
    pub(crate) tx: Shared,
    /// A unit begun inside another joins it: its commit is the outer one's to make.
    pub(crate) joined: bool,
}

/// A connection for one statement (or one method's own transaction).
pub(crate) enum Conn<'a> {
    Pooled(PoolConnection<Any>),
    InUnit(MappedMutexGuard<'a, Transaction<'static, Any>>),
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::InUnit(t) => t,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::InUnit(t) => t,
        }
    }
}

/// SQLite starts a deferred transaction as a reader and fails (busy, without waiting)
/// when it later writes after another connection did; `BEGIN IMMEDIATE` takes the
/// write lock first and waits for it under `busy_timeout` instead.
const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";

impl SqlStore {
    /// The connection the next read runs on: the unit of work's, or a reader.
    pub(crate) async fn conn(&self) -> StoreResult<Conn<'_>> {
        self.conn_from(&self.pool).await
    }

    /// The connection the next write runs on: the unit of work's, or the writer.
    pub(crate) async fn write_conn(&self) -> StoreResult<Conn<'_>> {
        self.conn_from(&self.writer).await
    }

    async fn conn_from(&self, pool: &sqlx::AnyPool) -> StoreResult<Conn<'_>> {
        match &self.unit {
            None => Ok(Conn::Pooled(pool.acquire().await.map_err(db_error)?)),
            Some(unit) => MutexGuard::try_map(unit.tx.lock().await, Option::as_mut)
                .map(Conn::InUnit)
                .map_err(|_| StoreError::Query("the unit of work was already committed".into())),
        }
    }

    /// A transaction of one store method on `conn`: a savepoint inside a unit of work,
    /// else a transaction of its own (taking SQLite's write lock at once).
    pub(crate) async fn begin_on<'c>(&self, conn: &'c mut Conn<'_>) -> StoreResult<Transaction<'c, Any>> {
        let conn: &mut AnyConnection = conn;
        let tx = match (&self.unit, self.backend()) {
            (None, Backend::Sqlite) => conn.begin_with(SQLITE_BEGIN).await,
            _ => conn.begin().await,
        };
        tx.map_err(db_error)
    }

    async fn begin_unit(&self) -> StoreResult<SqlStore> {
        if let Some(unit) = &self.unit {
            return Ok(self.with_unit(Unit { tx: unit.tx.clone(), joined: true }));
        }
        let tx = match self.backend() {
            Backend::Sqlite => self.writer.begin_with(SQLITE_BEGIN).await,
            Backend::Postgres => self.writer.begin().await,
        }
        .map_err(db_error)?;
        Ok(self.with_unit(Unit { tx: Arc::new(Mutex::new(Some(tx))), joined: false }))
    }
}

/// Takes the row lock of `key` in `limit_locks` until `conn`'s transaction ends. One
/// upsert on both databases: PostgreSQL makes a second writer of the row wait for the
/// first to finish; on SQLite the unit already holds the one write lock
/// (`BEGIN IMMEDIATE`), and this write keeps it.
pub(crate) async fn lock_limit(conn: &mut AnyConnection, key: &str) -> StoreResult<()> {
    sqlx::query("INSERT INTO limit_locks (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET key = excluded.key")
        .bind(key.to_owned())
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl LimitStore for SqlStore {
    async fn hold_limit(&self, key: &str) -> StoreResult<()> {
        if self.unit.is_none() {
            return Ok(());
        }
        lock_limit(&mut *self.write_conn().await?, key).await
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&mut *self.conn().await?).await.map_err(db_error)?;
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.begin_unit().await?))
    }
}

#[async_trait]
impl Tx for SqlStore {
    async fn commit(&self) -> StoreResult<()> {
        let Some(unit) = &self.unit else { return Ok(()) };
        if unit.joined {
            return Ok(());
        }
        let tx = unit.tx.lock().await.take();
        match tx {
            Some(tx) => tx.commit().await.map_err(db_error),
            None => Err(StoreError::Query("the unit of work was already committed".into())),
        }
    }
}
