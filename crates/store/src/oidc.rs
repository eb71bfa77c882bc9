//! OAuth clients (on the applications table), authorization codes and browser sessions.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::ids::ApplicationId;
use tessera_core::oidc::{AuthCode, BrowserSession, OAuthClient};
use tessera_core::signin::AuthMethods;
use tessera_core::store::{OidcStore, StoreResult};

use crate::applications;
use crate::db_error;
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};

pub(crate) fn list(row: &Row, col: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(&get::<String>(row, col)?).map_err(corrupt)
}

pub(crate) fn text_list(v: &[String]) -> String {
    serde_json::Value::from(v.to_vec()).to_string()
}

/// Sign-in methods, kept by name in the `amr` column (a JSON list).
pub(crate) fn methods(row: &Row, col: &str) -> StoreResult<AuthMethods> {
    let names = list(row, col)?;
    AuthMethods::from_names(names.iter().map(String::as_str)).map_err(corrupt)
}

pub(crate) fn method_names(m: &AuthMethods) -> String {
    serde_json::Value::from(m.names()).to_string()
}

const CODE_COLUMNS: &str =
    "digest, client_id, user_id, redirect_uri, code_challenge, nonce, scope, auth_time, amr, expires_at";

fn code(row: &Row) -> StoreResult<AuthCode> {
    Ok(AuthCode {
        digest: get(row, "digest")?,
        client_id: get::<String>(row, "client_id")?.parse().map_err(|_| corrupt("client id"))?,
        user_id: get::<String>(row, "user_id")?.parse().map_err(|_| corrupt("user id"))?,
        redirect_uri: get(row, "redirect_uri")?,
        code_challenge: get(row, "code_challenge")?,
        nonce: get(row, "nonce")?,
        scope: get(row, "scope")?,
        auth_time: Timestamp::from_millis(get(row, "auth_time")?),
        methods: methods(row, "amr")?,
        expires_at: Timestamp::from_millis(get(row, "expires_at")?),
    })
}

fn session(row: &Row) -> StoreResult<BrowserSession> {
    Ok(BrowserSession {
        digest: get(row, "digest")?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        user_id: get::<String>(row, "user_id")?.parse().map_err(|_| corrupt("user id"))?,
        auth_time: Timestamp::from_millis(get(row, "auth_time")?),
        methods: methods(row, "amr")?,
        last_seen: Timestamp::from_millis(get(row, "last_seen")?),
        expires_at: Timestamp::from_millis(get(row, "expires_at")?),
    })
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn oauth_client(&self, id: ApplicationId) -> StoreResult<Option<OAuthClient>> {
        db::query(format!("SELECT {} FROM applications WHERE id = $1 AND active = 1", applications::COLUMNS))
            .bind(id.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| applications::client(&r))
            .transpose()
    }

    async fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        db::query(format!(
            "INSERT INTO oauth_codes ({CODE_COLUMNS}, used) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)"
        ))
        .bind(c.digest.clone())
        .bind(c.client_id.to_string())
        .bind(c.user_id.to_string())
        .bind(c.redirect_uri.clone())
        .bind(c.code_challenge.clone())
        .bind(c.nonce.clone())
        .bind(c.scope.clone())
        .bind(c.auth_time.millis())
        .bind(method_names(&c.methods))
        .bind(c.expires_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn take_code(&self, digest: &str) -> StoreResult<Option<AuthCode>> {
        // The conditional UPDATE is the single-use guarantee, across servers too.
        let done = db::query("UPDATE oauth_codes SET used = 1 WHERE digest = $1 AND used = 0")
            .bind(digest.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        db::query(format!("SELECT {CODE_COLUMNS} FROM oauth_codes WHERE digest = $1"))
            .bind(digest.to_owned())
            .fetch_optional(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| code(&r))
            .transpose()
    }

    async fn insert_session(&self, s: &BrowserSession) -> StoreResult<()> {
        db::query(
            "INSERT INTO browser_sessions (digest, tenant_id, user_id, auth_time, amr, last_seen, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.digest.clone())
        .bind(s.tenant_id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.auth_time.millis())
        .bind(method_names(&s.methods))
        .bind(s.last_seen.millis())
        .bind(s.expires_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn session(&self, digest: &str) -> StoreResult<Option<BrowserSession>> {
        db::query("SELECT digest, tenant_id, user_id, auth_time, amr, last_seen, expires_at FROM browser_sessions WHERE digest = $1")
            .bind(digest.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| session(&r))
            .transpose()
    }

    async fn touch_session(&self, digest: &str, now: Timestamp) -> StoreResult<()> {
        db::query("UPDATE browser_sessions SET last_seen = $2 WHERE digest = $1")
            .bind(digest.to_owned())
            .bind(now.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn set_session_methods(&self, digest: &str, methods: &AuthMethods) -> StoreResult<()> {
        db::query("UPDATE browser_sessions SET amr = $2 WHERE digest = $1")
            .bind(digest.to_owned())
            .bind(method_names(methods))
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_session(&self, digest: &str) -> StoreResult<bool> {
        let done = db::query("DELETE FROM browser_sessions WHERE digest = $1")
            .bind(digest.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }
}
