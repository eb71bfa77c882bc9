//! Units of work, and where every query gets its connection.
//!
//! A `SqlStore` either draws a connection from the pool for each statement, or, when
//! it was handed out by [`Store::begin`], runs every statement on one open transaction.
//! Store methods do not care which: they execute on [`SqlStore::conn`].

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Transaction};
use tessera_core::store::{AfterCommit, LimitStore, Store, StoreError, StoreResult, Tx};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::db::{self, Exec, LiteTx, Readers, Target};
use crate::queries::Engine;
use crate::writer::{UnitWriter, Writer};
use crate::{SqlStore, db_error};

/// A unit of work's open transaction.
pub(crate) enum UnitTx {
    Any(Transaction<'static, Any>),
    /// SQLite's writer, held for the unit's work: a savepoint in a batch that is
    /// committed with the units queued beside it (`crate::writer`).
    Lite(UnitWriter),
}

/// The open transaction a unit of work's store shares; `None` once committed.
pub(crate) type Shared = Arc<Mutex<Option<UnitTx>>>;

/// Where a unit of work's statements go, and whether this handle owns the commit.
#[derive(Clone)]
pub(crate) struct Unit {
    pub(crate) tx: Shared,
    /// A unit begun inside another joins it: its commit is the outer one's to make.
    pub(crate) joined: bool,
    /// What waits for the commit (shared with the units that joined this one).
    pub(crate) after_commit: Arc<std::sync::Mutex<Vec<AfterCommit>>>,
}

/// A connection for one statement (or one method's own transaction).
pub(crate) enum Conn<'a> {
    Pooled(PoolConnection<Any>),
    InUnit(MappedMutexGuard<'a, UnitTx>),
    LiteRead(&'a Readers),
    LiteWrite(Writer),
}

impl Exec for Conn<'_> {
    fn target(&mut self) -> Target<'_> {
        match self {
            Conn::Pooled(c) => Target::Any(c),
            Conn::InUnit(t) => match &mut **t {
                UnitTx::Any(t) => Target::Any(t),
                UnitTx::Lite(w) => w.conn().map_or(Target::Done, Target::Lite),
            },
            Conn::LiteRead(r) => Target::LiteRead(r),
            Conn::LiteWrite(w) => Target::Lite(w.conn()),
        }
    }
}

impl SqlStore {
    /// The connection the next read runs on: the unit of work's, or a reader.
    pub(crate) async fn conn(&self) -> StoreResult<Conn<'_>> {
        self.conn_for(false).await
    }

    /// The connection the next write runs on: the unit of work's, or the writer.
    pub(crate) async fn write_conn(&self) -> StoreResult<Conn<'_>> {
        self.conn_for(true).await
    }

    async fn conn_for(&self, write: bool) -> StoreResult<Conn<'_>> {
        if self.unit.is_some() {
            return self.unit_conn().await;
        }
        match &self.engine {
            Engine::Any(pool) => Ok(Conn::Pooled(pool.acquire().await.map_err(db_error)?)),
            Engine::Lite(lite) => {
                lite.check_open()?;
                Ok(if write {
                    Conn::LiteWrite(Writer::hold(&lite.writer).await)
                } else {
                    Conn::LiteRead(&lite.readers)
                })
            }
        }
    }

    async fn unit_conn(&self) -> StoreResult<Conn<'_>> {
        let unit = self.unit.as_ref().ok_or_else(|| StoreError::Query("not in a unit of work".into()))?;
        MutexGuard::try_map(unit.tx.lock().await, Option::as_mut)
            .map(Conn::InUnit)
            .map_err(|_| StoreError::Query("the unit of work was already committed".into()))
    }

    /// A transaction of one store method on `conn`: a savepoint inside a unit of work,
    /// else a transaction of its own.
    pub(crate) async fn begin_on<'c>(&self, conn: &'c mut Conn<'_>) -> StoreResult<db::Tx<'c>> {
        let savepoint = self.unit.is_some();
        match conn.target() {
            Target::Any(c) => Ok(db::Tx::Any(c.begin().await.map_err(db_error)?)),
            Target::Lite(c) => Ok(db::Tx::Lite(LiteTx::begin(c, savepoint).map_err(db_error)?)),
            Target::LiteRead(_) => Err(StoreError::Query("a transaction on a read connection".into())),
            Target::Done => Err(StoreError::Query("the unit of work was already committed".into())),
        }
    }

    async fn begin_unit(&self) -> StoreResult<SqlStore> {
        if let Some(unit) = &self.unit {
            return Ok(self.with_unit(Unit {
                tx: unit.tx.clone(),
                joined: true,
                after_commit: unit.after_commit.clone(),
            }));
        }
        let tx = match &self.engine {
            Engine::Any(pool) => UnitTx::Any(pool.begin().await.map_err(db_error)?),
            Engine::Lite(lite) => {
                lite.check_open()?;
                // Rolled back (its savepoint) if the unit is dropped uncommitted.
                UnitTx::Lite(UnitWriter::begin(&lite.writer).await?)
            }
        };
        let after_commit = Arc::new(std::sync::Mutex::new(Vec::new()));
        Ok(self.with_unit(Unit { tx: Arc::new(Mutex::new(Some(tx))), joined: false, after_commit }))
    }
}

/// Takes the row lock of `key` in `limit_locks` until `conn`'s transaction ends. One
/// upsert on both databases: PostgreSQL makes a second writer of the row wait for the
/// first to finish; on SQLite the unit already holds the one write lock
/// (`BEGIN IMMEDIATE`), and this write keeps it.
pub(crate) async fn lock_limit<E: Exec + ?Sized>(on: &mut E, key: &str) -> StoreResult<()> {
    db::query("INSERT INTO limit_locks (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET key = excluded.key")
        .bind(key.to_owned())
        .execute(on)
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
        lock_limit(&mut self.write_conn().await?, key).await
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        db::query("SELECT 1").execute(&mut self.conn().await?).await.map_err(db_error)?;
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.begin_unit().await?))
    }

    fn after_commit(&self, f: AfterCommit) {
        match &self.unit {
            Some(unit) => unit.after_commit.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(f),
            None => f(),
        }
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
            Some(UnitTx::Any(tx)) => tx.commit().await.map_err(db_error)?,
            Some(UnitTx::Lite(w)) => w.commit().await?,
            None => return Err(StoreError::Query("the unit of work was already committed".into())),
        }
        let waiting = std::mem::take(&mut *unit.after_commit.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for f in waiting {
            f();
        }
        Ok(())
    }
}
