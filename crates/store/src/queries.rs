//! The storage traits over portable SQL. Placeholders are `$n`, which both SQLite and
//! PostgreSQL read positionally; upserts use `ON CONFLICT`, which both support.

use async_trait::async_trait;
use std::sync::Arc;

use sqlx::AnyPool;
use tessera_core::Timestamp;
use tessera_core::apikey::ApiKey;
use tessera_core::audit::{AuditEvent, AuditRecord};
use tessera_core::ids::{ApiKeyId, RefreshTokenId, TenantId, UserId};
use tessera_core::password::PasswordHash;
use tessera_core::store::{
    ApiKeyStore, AuditStore, Bootstrap, FailureState, LoginAttemptStore, StoreError, StoreResult, Tenant, TenantStore,
    TokenStore, UserStore,
};
use tessera_core::tokens::{RefreshToken, StoredSigningKey};
use tessera_core::user::{LoginId, User};

use crate::db::{self, DbError};
use crate::unit::Unit;
use crate::{Backend, db_error, postgres, rows, sqlite};

#[derive(Clone)]
pub struct SqlStore {
    pub(crate) engine: Engine,
    /// Set on the store a unit of work hands out ([`Store::begin`]).
    pub(crate) unit: Option<Unit>,
}

/// The connections statements run on.
#[derive(Clone)]
pub(crate) enum Engine {
    /// PostgreSQL: one pool for reads and writes.
    Any(AnyPool),
    Lite(Arc<sqlite::Lite>),
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("backend", &self.backend()).field("in_unit", &self.unit.is_some()).finish()
    }
}

impl SqlStore {
    pub(crate) fn new(engine: Engine) -> Self {
        SqlStore { engine, unit: None }
    }

    pub(crate) fn with_unit(&self, unit: Unit) -> Self {
        SqlStore { engine: self.engine.clone(), unit: Some(unit) }
    }

    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Any(_) => Backend::Postgres,
            Engine::Lite(_) => Backend::Sqlite,
        }
    }

    /// Applies pending migrations. Safe to run from several processes at once: on
    /// PostgreSQL the migrator holds an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_to(i64::MAX).await
    }

    /// Runs the migrations up to and including `version`: tests build a database as an
    /// older release left it, fill it, and migrate the rest.
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let failed = |e: sqlx::migrate::MigrateError| StoreError::Unavailable(format!("migration failed: {e}"));
        match &self.engine {
            Engine::Any(pool) => postgres::migrator(version).run(pool).await.map_err(failed),
            Engine::Lite(lite) => {
                // sqlx's migrator keeps its bookkeeping (`_sqlx_migrations`) as before;
                // it gets a connection of its own for the run.
                let pool = sqlite::connect(&lite.url, 1).await?;
                let done = sqlite::migrator(version).run(&pool).await.map_err(failed);
                pool.close().await;
                done
            }
        }
    }

    pub async fn close(&self) {
        match &self.engine {
            Engine::Any(pool) => pool.close().await,
            Engine::Lite(lite) => lite.closed.store(true, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Whether this store's connections to the database are encrypted (SQLite has none).
    pub async fn connection_uses_tls(&self) -> Result<bool, StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(false);
        }
        let row = db::query(
            "SELECT CAST(CASE WHEN ssl THEN 1 ELSE 0 END AS BIGINT) AS tls FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        Ok(row.map(|r| rows::get::<i64>(&r, "tls")).transpose()?.unwrap_or(0) == 1)
    }
}

type Q = db::Statement;

/// Maps a uniqueness violation to the field the user would recognise.
pub(crate) fn write_error(e: impl Into<DbError>) -> StoreError {
    let what = match e.into() {
        DbError::Sqlx(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            format!("{} {}", db.constraint().unwrap_or_default(), db.message())
        }
        // SQLite's message names the table and columns: "UNIQUE constraint failed: users.email".
        DbError::Lite(rusqlite::Error::SqliteFailure(f, Some(message)))
            if matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            message
        }
        other => return db_error(other),
    };
    let field = if what.contains("email") {
        "user.email"
    } else if what.contains("username") {
        "user.username"
    } else if what.contains("digest") {
        "digest"
    } else if what.contains("two_factor_methods") {
        "methodId"
    } else {
        "id"
    };
    StoreError::Conflict(field.to_owned())
}

fn bind_user(q: Q, u: &User) -> Q {
    q.bind(u.id.to_string())
        .bind(u.tenant_id.to_string())
        .bind(u.email.as_ref().map(|e| e.as_str().to_owned()))
        .bind(u.username.as_ref().map(|n| n.as_str().to_owned()))
        .bind(u.username.as_ref().map(|n| n.as_str().to_lowercase()))
        .bind(u.mobile_phone.as_ref().map(|p| p.as_str().to_owned()))
        .bind(u.first_name.clone())
        .bind(u.last_name.clone())
        .bind(serde_json::Value::Object(u.data.clone()).to_string())
        .bind(i64::from(u.active))
        .bind(u.password_hash.as_ref().map(|h| h.as_phc().to_owned()))
        .bind(u.created_at.millis())
        .bind(u.updated_at.millis())
        .bind(i64::from(u.email_verified))
}

#[async_trait]
impl TenantStore for SqlStore {
    async fn bootstrap(&self, b: &Bootstrap) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        // The single-row `bootstrap` table decides which of several racing processes
        // sets the database up; the others see zero rows inserted and write nothing.
        let claimed = db::query("INSERT INTO bootstrap (id, tenant_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(b.tenant.id.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            == 1;
        if !claimed {
            return Ok(false);
        }
        db::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(b.tenant.id.to_string())
            .bind(b.tenant.name.clone())
            .bind(b.tenant.created_at.millis())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        db::query("INSERT INTO applications (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(b.application.id.to_string())
            .bind(b.application.tenant_id.to_string())
            .bind(b.application.name.clone())
            .bind(b.application.created_at.millis())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        insert_api_key_query(&b.api_key).execute(&mut tx).await.map_err(write_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn default_tenant(&self) -> StoreResult<Option<Tenant>> {
        db::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id LIMIT 1")
            .fetch_optional(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| rows::tenant(&r))
            .transpose()
    }
}

fn insert_api_key_query(k: &ApiKey) -> Q {
    db::query("INSERT INTO api_keys (id, tenant_id, digest, description, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(k.id.to_string())
        .bind(k.tenant_id.to_string())
        .bind(k.digest.clone())
        .bind(k.description.clone())
        .bind(k.created_at.millis())
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        insert_api_key_query(key).execute(&mut self.write_conn().await?).await.map_err(write_error)?;
        Ok(())
    }

    async fn find_api_key(&self, digest: &str) -> StoreResult<Option<ApiKey>> {
        db::query("SELECT id, tenant_id, digest, description, created_at FROM api_keys WHERE digest = $1")
            .bind(digest.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| rows::api_key(&r))
            .transpose()
    }

    async fn api_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKey>> {
        db::query(
            "SELECT id, tenant_id, digest, description, created_at FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant.to_string())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(rows::api_key)
        .collect()
    }

    async fn delete_api_key_unless_last(&self, tenant: TenantId, id: ApiKeyId) -> StoreResult<bool> {
        // One statement: two concurrent revocations cannot both leave the tenant keyless.
        let done = db::query(
            "DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2 \
             AND (SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1) > 1",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let q = db::query(
            "INSERT INTO users (id, tenant_id, email, username, username_lower, mobile_phone, first_name, \
             last_name, data, active, password_hash, created_at, updated_at, email_verified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        );
        bind_user(q, user).execute(&mut self.write_conn().await?).await.map_err(write_error)?;
        Ok(())
    }

    async fn get_user(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>> {
        db::query(format!("SELECT {} FROM users WHERE tenant_id = $1 AND id = $2", rows::USER_COLUMNS))
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn find_user_by_login_id(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<Option<User>> {
        // An email match wins over a username that happens to look like one.
        db::query(format!(
            "SELECT {} FROM users WHERE tenant_id = $1 AND (email = $2 OR username_lower = $2) \
             ORDER BY CASE WHEN email = $2 THEN 0 ELSE 1 END LIMIT 1",
            rows::USER_COLUMNS
        ))
        .bind(tenant.to_string())
        .bind(login_id.as_str().to_owned())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| rows::user(&r))
        .transpose()
    }

    async fn update_user(&self, user: &User) -> StoreResult<bool> {
        let q = db::query(
            "UPDATE users SET email = $3, username = $4, username_lower = $5, mobile_phone = $6, \
             first_name = $7, last_name = $8, data = $9, active = $10, password_hash = $11, \
             created_at = $12, updated_at = $13, email_verified = $14 WHERE id = $1 AND tenant_id = $2",
        );
        let done = bind_user(q, user).execute(&mut self.write_conn().await?).await.map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash, now: Timestamp) -> StoreResult<()> {
        db::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(hash.as_phc().to_owned())
            .bind(now.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_user(&self, tenant: TenantId, id: UserId) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        db::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        let done = db::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl LoginAttemptStore for SqlStore {
    async fn login_failures(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<Option<FailureState>> {
        let row = db::query("SELECT failures, locked_until FROM login_failures WHERE tenant_id = $1 AND login_id = $2")
            .bind(tenant.to_string())
            .bind(login_id.as_str().to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(FailureState {
                failures: u32::try_from(rows::get::<i64>(&r, "failures")?).unwrap_or(u32::MAX),
                locked_until: rows::opt_timestamp(&r, "locked_until")?,
            })
        })
        .transpose()
    }

    async fn record_login_failure(
        &self,
        tenant: TenantId,
        login_id: &LoginId,
        now: Timestamp,
        window_start: Timestamp,
    ) -> StoreResult<u32> {
        // One statement, so concurrent failures on several servers all count.
        let row = db::query(
            "INSERT INTO login_failures (tenant_id, login_id, failures, window_started_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (tenant_id, login_id) DO UPDATE SET \
               failures = CASE WHEN login_failures.window_started_at < $4 THEN 1 \
                               ELSE login_failures.failures + 1 END, \
               window_started_at = CASE WHEN login_failures.window_started_at < $4 THEN $3 \
                                        ELSE login_failures.window_started_at END \
             RETURNING failures",
        )
        .bind(tenant.to_string())
        .bind(login_id.as_str().to_owned())
        .bind(now.millis())
        .bind(window_start.millis())
        .fetch_one(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        let n = rows::get::<i64>(&row, "failures")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn reserve_login_attempt(
        &self,
        tenant: TenantId,
        login_id: &LoginId,
        now: Timestamp,
        window_start: Timestamp,
    ) -> StoreResult<(u32, Option<Timestamp>)> {
        let row = db::query(
            "INSERT INTO login_failures (tenant_id, login_id, failures, window_started_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (tenant_id, login_id) DO UPDATE SET \
               failures = CASE WHEN login_failures.locked_until > $3 THEN login_failures.failures \
                               WHEN login_failures.window_started_at < $4 THEN 1 \
                               ELSE login_failures.failures + 1 END, \
               window_started_at = CASE WHEN login_failures.locked_until > $3 THEN login_failures.window_started_at \
                                        WHEN login_failures.window_started_at < $4 THEN $3 \
                                        ELSE login_failures.window_started_at END \
             RETURNING failures, locked_until",
        )
        .bind(tenant.to_string())
        .bind(login_id.as_str().to_owned())
        .bind(now.millis())
        .bind(window_start.millis())
        .fetch_one(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        let n = rows::get::<i64>(&row, "failures")?;
        let locked = rows::get::<Option<i64>>(&row, "locked_until")?;
        Ok((u32::try_from(n).unwrap_or(u32::MAX), locked.map(Timestamp::from_millis).filter(|u| *u > now)))
    }

    async fn lock_login(&self, tenant: TenantId, login_id: &LoginId, until: Timestamp) -> StoreResult<()> {
        db::query("UPDATE login_failures SET locked_until = $3, failures = 0 WHERE tenant_id = $1 AND login_id = $2")
            .bind(tenant.to_string())
            .bind(login_id.as_str().to_owned())
            .bind(until.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn clear_login_failures(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<()> {
        db::query("DELETE FROM login_failures WHERE tenant_id = $1 AND login_id = $2")
            .bind(tenant.to_string())
            .bind(login_id.as_str().to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

const REFRESH_COLUMNS: &str = "id, tenant_id, user_id, application_id, digest, amr, created_at, expires_at, revoked_at";

#[async_trait]
impl TokenStore for SqlStore {
    async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
        db::query(
            "INSERT INTO refresh_tokens (id, tenant_id, user_id, application_id, digest, created_at, expires_at, \
             revoked_at, amr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.id.to_string())
        .bind(t.tenant_id.to_string())
        .bind(t.user_id.to_string())
        .bind(t.application_id.to_string())
        .bind(t.digest.clone())
        .bind(t.created_at.millis())
        .bind(t.expires_at.millis())
        .bind(t.revoked_at.map(Timestamp::millis))
        .bind(crate::oidc::method_names(&t.methods))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn find_refresh_token(&self, digest: &str) -> StoreResult<Option<RefreshToken>> {
        db::query(format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE digest = $1"))
            .bind(digest.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| rows::refresh_token(&r))
            .transpose()
    }

    async fn revoke_refresh_token(&self, id: RefreshTokenId, now: Timestamp) -> StoreResult<bool> {
        let done = db::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.to_string())
            .bind(now.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_refresh_tokens(&self, user: UserId, now: Timestamp) -> StoreResult<u64> {
        let done = db::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user.to_string())
            .bind(now.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<bool> {
        let done = db::query(
            "INSERT INTO signing_keys (kid, algorithm, signer_for, private_der, public_jwk, created_at) \
             VALUES ($1, $2, $2, $3, $4, $5) ON CONFLICT (signer_for) DO NOTHING",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.as_str().to_owned())
        .bind(key.sealed_private.clone())
        .bind(key.public_jwk.to_string())
        .bind(key.created_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_sealed_signing_key(&self, kid: &str, old: &str, new: &str) -> StoreResult<bool> {
        let done = db::query("UPDATE signing_keys SET private_der = $3 WHERE kid = $1 AND private_der = $2")
            .bind(kid.to_owned())
            .bind(old.to_owned())
            .bind(new.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        db::query(
            "SELECT kid, algorithm, private_der, public_jwk, created_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(rows::signing_key)
        .collect()
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        db::query(
            "INSERT INTO audit_log (tenant_id, at, event, user_id, ip, outcome, detail, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.tenant_id.to_string())
        .bind(e.at.millis())
        .bind(e.kind.as_str().to_owned())
        .bind(e.user_id.map(|u| u.to_string()))
        .bind(e.ip.clone())
        .bind(e.outcome.to_owned())
        .bind(e.detail.to_string())
        .bind(e.actor.map(|a| a.as_string()))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn user_events(&self, user: UserId, event: &str, limit: u64) -> StoreResult<Vec<AuditRecord>> {
        db::query(
            "SELECT id, at, event, user_id, actor, ip, outcome, detail FROM audit_log WHERE user_id = $1 AND event = $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(user.to_string())
        .bind(event.to_owned())
        .bind(i64::try_from(limit).unwrap_or(10))
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(rows::audit_record)
        .collect()
    }

    async fn audit_page(&self, tenant: TenantId, offset: u64, limit: u64) -> StoreResult<(Vec<AuditRecord>, u64)> {
        let page = db::query(
            "SELECT id, at, event, user_id, actor, ip, outcome, detail FROM audit_log WHERE tenant_id = $1 \
             ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(tenant.to_string())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(rows::audit_record)
        .collect::<StoreResult<Vec<_>>>()?;
        let total = db::query("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_one(&mut self.conn().await?)
            .await
            .map_err(db_error)?;
        Ok((page, u64::try_from(rows::count(&total)?).unwrap_or(0)))
    }
}
