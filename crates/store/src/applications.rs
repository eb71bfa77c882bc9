//! Applications and their OAuth client settings (one row each).

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::ids::{ApplicationId, TenantId};
use tessera_core::oidc::{MfaPolicy, OAuthClient};
use tessera_core::store::{Application, ApplicationStore, StoreResult};

use crate::db_error;
use crate::oidc::text_list;
use crate::queries::SqlStore;
use crate::rows::{self, corrupt, get};

pub(crate) const COLUMNS: &str =
    "id, tenant_id, name, created_at, active, client_secret_digest, redirect_uris, mfa_policy";

pub(crate) fn client(row: &Row) -> StoreResult<OAuthClient> {
    Ok(OAuthClient {
        id: get::<String>(row, "id")?.parse().map_err(|_| corrupt("application id"))?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        secret_digest: get(row, "client_secret_digest")?,
        redirect_uris: crate::oidc::list(row, "redirect_uris")?,
        mfa_policy: MfaPolicy::parse(&get::<String>(row, "mfa_policy")?).ok_or_else(|| corrupt("mfa policy"))?,
    })
}

#[async_trait]
impl ApplicationStore for SqlStore {
    async fn get_application(&self, id: ApplicationId) -> StoreResult<Option<Application>> {
        db::query("SELECT id, tenant_id, name, created_at, active FROM applications WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| rows::application(&r))
            .transpose()
    }

    async fn default_application(&self, tenant: TenantId) -> StoreResult<Option<Application>> {
        db::query(
            "SELECT id, tenant_id, name, created_at, active FROM applications WHERE tenant_id = $1 \
             ORDER BY created_at, id LIMIT 1",
        )
        .bind(tenant.to_string())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| rows::application(&r))
        .transpose()
    }

    async fn insert_application(&self, app: &Application, c: &OAuthClient) -> StoreResult<bool> {
        let done = db::query(format!(
            "INSERT INTO applications ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(app.id.to_string())
        .bind(app.tenant_id.to_string())
        .bind(app.name.clone())
        .bind(app.created_at.millis())
        .bind(i64::from(app.active))
        .bind(c.secret_digest.clone())
        .bind(text_list(&c.redirect_uris))
        .bind(c.mfa_policy.as_str().to_owned())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_application(&self, app: &Application, c: &OAuthClient) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE applications SET name = $3, client_secret_digest = $4, redirect_uris = $5, mfa_policy = $6 \
             WHERE id = $1 AND tenant_id = $2",
        )
        .bind(app.id.to_string())
        .bind(app.tenant_id.to_string())
        .bind(app.name.clone())
        .bind(c.secret_digest.clone())
        .bind(text_list(&c.redirect_uris))
        .bind(c.mfa_policy.as_str().to_owned())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn applications(&self, tenant: TenantId) -> StoreResult<Vec<(Application, OAuthClient)>> {
        db::query(format!("SELECT {COLUMNS} FROM applications WHERE tenant_id = $1 ORDER BY created_at, id"))
            .bind(tenant.to_string())
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| Ok((rows::application(r)?, client(r)?)))
            .collect()
    }

    async fn set_application_active(&self, tenant: TenantId, id: ApplicationId, active: bool) -> StoreResult<bool> {
        let done = db::query("UPDATE applications SET active = $3 WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .bind(i64::from(active))
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_application(&self, tenant: TenantId, id: ApplicationId, now: Timestamp) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        let gone = db::query("DELETE FROM applications WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            == 1;
        if !gone {
            return Ok(false);
        }
        let id = id.to_string();
        db::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE application_id = $1 AND revoked_at IS NULL")
            .bind(id.clone())
            .bind(now.millis())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        for table in ["DELETE FROM oauth_codes WHERE client_id = $1", "DELETE FROM sign_ins WHERE application_id = $1"]
        {
            db::query(table).bind(id.clone()).execute(&mut tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
