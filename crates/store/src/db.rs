//! One way to run a statement on either database.
//!
//! PostgreSQL goes through sqlx. SQLite goes through rusqlite, called in place on the
//! task that asks: a statement on a warm page cache takes microseconds, while sqlx's
//! SQLite driver hands every statement to a connection thread and back, and those two
//! thread switches per statement were most of a sign-in's CPU (BENCHMARKS.md, "Store
//! session"). The store's SQL is the same text on both (`$n` placeholders); only the
//! connection it runs on differs.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::Value as LiteValue;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Row as _};

/// A value bound to a statement. Typed even when NULL: PostgreSQL wants to know. The
/// store keeps integers and text only (times as milliseconds, ids and JSON as text).
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

/// What may be bound to a statement.
pub(crate) trait Param {
    fn value(self) -> Value;
}

macro_rules! param {
    ($t:ty, $v:ident, $e:expr) => {
        impl Param for $t {
            fn value(self) -> Value {
                let $v = self;
                $e
            }
        }
    };
}

param!(i64, v, Value::Int(Some(v)));
param!(Option<i64>, v, Value::Int(v));
param!(String, v, Value::Text(Some(v)));
param!(Option<String>, v, Value::Text(v));

/// A statement and its arguments, not yet run.
pub(crate) struct Statement {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

pub(crate) fn query(sql: impl Into<Cow<'static, str>>) -> Statement {
    Statement { sql: sql.into(), args: Vec::new() }
}

/// How many rows a statement changed.
pub(crate) struct Done(u64);

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

/// The connection a statement runs on.
pub(crate) enum Target<'a> {
    Any(&'a mut AnyConnection),
    Lite(&'a mut rusqlite::Connection),
    /// Any idle SQLite reader, taken for this one statement.
    LiteRead(&'a Readers),
    /// A unit of work already committed: nothing runs.
    Done,
}

/// Something statements can run on: a connection, a unit of work, a transaction.
pub(crate) trait Exec: Send {
    fn target(&mut self) -> Target<'_>;
}

impl Statement {
    pub(crate) fn bind(mut self, v: impl Param) -> Self {
        self.args.push(v.value());
        self
    }

    pub(crate) async fn execute<E: Exec + ?Sized>(self, on: &mut E) -> Result<Done, DbError> {
        match on.target() {
            Target::Any(c) => Ok(Done(self.any().execute(c).await?.rows_affected())),
            Target::Lite(c) => Ok(Done(lite_execute(c, &self)?)),
            Target::LiteRead(r) => Ok(Done(r.with(|c| lite_execute(c, &self))?)),
            Target::Done => Err(committed()),
        }
    }

    pub(crate) async fn fetch_all<E: Exec + ?Sized>(self, on: &mut E) -> Result<Vec<Row>, DbError> {
        match on.target() {
            Target::Any(c) => Ok(self.any().fetch_all(c).await?.into_iter().map(Row::Any).collect()),
            Target::Lite(c) => Ok(lite_rows(c, &self)?),
            Target::LiteRead(r) => Ok(r.with(|c| lite_rows(c, &self))?),
            Target::Done => Err(committed()),
        }
    }

    pub(crate) async fn fetch_optional<E: Exec + ?Sized>(self, on: &mut E) -> Result<Option<Row>, DbError> {
        match on.target() {
            Target::Any(c) => Ok(self.any().fetch_optional(c).await?.map(Row::Any)),
            Target::Lite(c) => Ok(lite_rows(c, &self)?.into_iter().next()),
            Target::LiteRead(r) => Ok(r.with(|c| lite_rows(c, &self))?.into_iter().next()),
            Target::Done => Err(committed()),
        }
    }

    pub(crate) async fn fetch_one<E: Exec + ?Sized>(self, on: &mut E) -> Result<Row, DbError> {
        self.fetch_optional(on).await?.ok_or(DbError::Sqlx(sqlx::Error::RowNotFound))
    }

    fn any(self) -> sqlx::query::Query<'static, Any, AnyArguments> {
        let mut q = match self.sql {
            Cow::Borrowed(s) => sqlx::query(s),
            Cow::Owned(s) => sqlx::query(sqlx::AssertSqlSafe(s)),
        };
        for a in self.args {
            q = match a {
                Value::Int(v) => q.bind(v),
                Value::Text(v) => q.bind(v),
            };
        }
        q
    }
}

/// A statement on a unit of work that was committed: a bug in the caller.
fn committed() -> DbError {
    DbError::Lite(rusqlite::Error::InvalidQuery)
}

/// Prepares (from the connection's statement cache) and binds. `$n` is a named
/// parameter to SQLite, numbered by first appearance; the name says which argument.
fn lite_prepare<'c>(c: &'c rusqlite::Connection, s: &Statement) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut st = c.prepare_cached(&s.sql)?;
    for i in 1..=st.parameter_count() {
        let n = st
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$').or_else(|| name.strip_prefix('?')))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(i);
        let arg = s.args.get(n.wrapping_sub(1)).ok_or(rusqlite::Error::InvalidParameterCount(n, s.args.len()))?;
        match arg {
            Value::Int(Some(v)) => st.raw_bind_parameter(i, v)?,
            Value::Text(Some(v)) => st.raw_bind_parameter(i, v)?,
            Value::Int(None) | Value::Text(None) => st.raw_bind_parameter(i, rusqlite::types::Null)?,
        }
    }
    Ok(st)
}

fn lite_execute(c: &rusqlite::Connection, s: &Statement) -> rusqlite::Result<u64> {
    let mut st = lite_prepare(c, s)?;
    let mut rows = st.raw_query();
    while rows.next()?.is_some() {}
    Ok(c.changes())
}

fn lite_rows(c: &rusqlite::Connection, s: &Statement) -> rusqlite::Result<Vec<Row>> {
    let mut st = lite_prepare(c, s)?;
    let names: Arc<[String]> = st.column_names().into_iter().map(str::to_owned).collect();
    let mut out = Vec::new();
    let mut rows = st.raw_query();
    while let Some(r) = rows.next()? {
        let vals = (0..names.len()).map(|i| r.get::<_, LiteValue>(i)).collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(Row::Lite { names: names.clone(), vals });
    }
    Ok(out)
}

/// A row from either database.
pub(crate) enum Row {
    Any(AnyRow),
    Lite { names: Arc<[String]>, vals: Vec<LiteValue> },
}

impl Row {
    /// The column `col`, or why it is not a `T`.
    pub(crate) fn get<T: Column>(&self, col: &str) -> Result<T, String> {
        match self {
            Row::Any(r) => T::from_any(r, col),
            Row::Lite { names, vals } => {
                let i = names.iter().position(|n| n == col).ok_or_else(|| format!("no column {col}"))?;
                T::from_lite(&vals[i])
            }
        }
    }
}

/// A column type both databases decode alike.
pub(crate) trait Column: Sized {
    fn from_any(row: &AnyRow, col: &str) -> Result<Self, String>;
    fn from_lite(v: &LiteValue) -> Result<Self, String>;
}

fn mismatch(want: &str, v: &LiteValue) -> String {
    format!("expected {want}, found {:?}", v.data_type())
}

macro_rules! column {
    ($t:ty, $want:literal, |$v:ident| $lite:expr) => {
        impl Column for $t {
            fn from_any(row: &AnyRow, col: &str) -> Result<Self, String> {
                row.try_get::<$t, _>(col).map_err(|e| e.to_string())
            }
            fn from_lite($v: &LiteValue) -> Result<Self, String> {
                $lite.ok_or_else(|| mismatch($want, $v))
            }
        }
        impl Column for Option<$t> {
            fn from_any(row: &AnyRow, col: &str) -> Result<Self, String> {
                row.try_get::<Option<$t>, _>(col).map_err(|e| e.to_string())
            }
            fn from_lite(v: &LiteValue) -> Result<Self, String> {
                match v {
                    LiteValue::Null => Ok(None),
                    v => <$t>::from_lite(v).map(Some),
                }
            }
        }
    };
}

column!(i64, "an integer", |v| match v {
    LiteValue::Integer(i) => Some(*i),
    _ => None,
});
column!(String, "text", |v| match v {
    LiteValue::Text(s) => Some(s.clone()),
    _ => None,
});

/// Why a statement failed, in its driver's words; `crate::db_error` reads it.
#[derive(Debug)]
pub(crate) enum DbError {
    Sqlx(sqlx::Error),
    Lite(rusqlite::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sqlx(e)
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Lite(e)
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Sqlx(e) => e.fmt(f),
            DbError::Lite(e) => e.fmt(f),
        }
    }
}

/// SQLite's read connections. In WAL mode readers never wait for the writer, and a
/// statement holds one only while it runs (never across an await), so a few suffice.
pub(crate) struct Readers {
    conns: Vec<Mutex<rusqlite::Connection>>,
    next: AtomicUsize,
}

impl Readers {
    pub(crate) fn new(conns: Vec<rusqlite::Connection>) -> Self {
        Readers { conns: conns.into_iter().map(Mutex::new).collect(), next: AtomicUsize::new(0) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> R) -> R {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        for k in 0..n {
            if let Ok(mut c) = self.conns[(start + k) % n].try_lock() {
                return f(&mut c);
            }
        }
        // All busy: wait for one. A statement takes microseconds, so this is short.
        f(&mut self.conns[start % n].lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A store method's own transaction: a savepoint inside a unit of work, or a whole
/// transaction. Dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx<'c> {
    Any(sqlx::Transaction<'c, Any>),
    Lite(LiteTx<'c>),
}

pub(crate) struct LiteTx<'c> {
    pub(crate) conn: &'c mut rusqlite::Connection,
    pub(crate) savepoint: bool,
    pub(crate) open: bool,
}

impl<'c> LiteTx<'c> {
    pub(crate) fn begin(conn: &'c mut rusqlite::Connection, savepoint: bool) -> rusqlite::Result<Self> {
        conn.execute_batch(if savepoint { "SAVEPOINT tessera_tx" } else { crate::writer::BEGIN_WRITE })?;
        Ok(LiteTx { conn, savepoint, open: true })
    }
}

impl Drop for LiteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let undo = if self.savepoint { "ROLLBACK TO tessera_tx; RELEASE tessera_tx" } else { "ROLLBACK" };
            let _ = self.conn.execute_batch(undo);
        }
    }
}

impl Tx<'_> {
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Any(t) => Ok(t.commit().await?),
            Tx::Lite(mut t) => {
                t.conn.execute_batch(if t.savepoint { "RELEASE tessera_tx" } else { "COMMIT" })?;
                t.open = false;
                Ok(())
            }
        }
    }
}

impl Exec for Tx<'_> {
    fn target(&mut self) -> Target<'_> {
        match self {
            Tx::Any(t) => Target::Any(t),
            Tx::Lite(t) => Target::Lite(t.conn),
        }
    }
}

/// Opens one SQLite connection with the settings every connection needs.
pub(crate) fn open_lite(path: &str) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags as F;
    let flags = F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_CREATE | F::SQLITE_OPEN_URI | F::SQLITE_OPEN_NO_MUTEX;
    let c = rusqlite::Connection::open_with_flags(path, flags)?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
         PRAGMA journal_size_limit = 67108864;",
    )?;
    // Every statement the store runs, prepared once per connection.
    c.set_prepared_statement_cache_capacity(256);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (std::path::PathBuf, rusqlite::Connection) {
        let dir = std::env::temp_dir().join(format!("tessera-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open_lite(dir.join("t.db").to_str().unwrap()).unwrap();
        (dir, conn)
    }

    #[tokio::test]
    async fn dollar_placeholders_bind_by_their_number_in_any_order() {
        let (_dir, mut conn) = scratch();
        let mut on = Tx::Lite(LiteTx { conn: &mut conn, savepoint: false, open: false });
        let row = query("SELECT $2 AS two, $1 AS one, $2 AS again, $3 AS missing")
            .bind(1_i64)
            .bind("x".to_owned())
            .bind(None::<String>)
            .fetch_one(&mut on)
            .await
            .unwrap();
        assert_eq!(row.get::<String>("two").unwrap(), "x");
        assert_eq!(row.get::<i64>("one").unwrap(), 1);
        assert_eq!(row.get::<String>("again").unwrap(), "x");
        assert_eq!(row.get::<Option<String>>("missing").unwrap(), None);
        assert!(row.get::<i64>("two").is_err(), "text is not an integer");
        assert!(row.get::<i64>("absent").is_err());
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_leaves_nothing_and_a_savepoint_only_its_own() {
        let (_dir, mut conn) = scratch();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let insert = |x: i64| query("INSERT INTO t (x) VALUES ($1)").bind(x);
        {
            let mut outer = Tx::Lite(LiteTx::begin(&mut conn, false).unwrap());
            insert(1).execute(&mut outer).await.unwrap();
            let Tx::Lite(o) = &mut outer else { unreachable!() };
            {
                let mut inner = Tx::Lite(LiteTx::begin(o.conn, true).unwrap());
                insert(2).execute(&mut inner).await.unwrap();
            }
            outer.commit().await.unwrap();
        }
        {
            let mut dropped = Tx::Lite(LiteTx::begin(&mut conn, false).unwrap());
            insert(3).execute(&mut dropped).await.unwrap();
        }
        let rows: Vec<i64> =
            conn.prepare("SELECT x FROM t").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        assert_eq!(rows, vec![1]);
    }
}
