//! Turning rows back into domain values. A row that does not parse is reported as
//! corrupt rather than silently skipped.

use std::str::FromStr;

use crate::db::{Column, Row};
use tessera_core::Timestamp;
use tessera_core::apikey::ApiKey;
use tessera_core::audit::AuditRecord;
use tessera_core::password::PasswordHash;
use tessera_core::phone::PhoneNumber;
use tessera_core::store::{Application, StoreError, StoreResult, Tenant};
use tessera_core::tokens::{RefreshToken, StoredSigningKey};
use tessera_core::user::{Email, User, Username};

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A column of any type both backends decode alike; a failure names the column.
pub(crate) fn get<T: Column>(row: &Row, col: &str) -> StoreResult<T> {
    row.get::<T>(col).map_err(|e| corrupt(format!("{col}: {e}")))
}

fn text(row: &Row, col: &str) -> StoreResult<String> {
    get::<String>(row, col)
}

fn opt_text(row: &Row, col: &str) -> StoreResult<Option<String>> {
    get::<Option<String>>(row, col)
}

fn int(row: &Row, col: &str) -> StoreResult<i64> {
    get::<i64>(row, col)
}

fn time(row: &Row, col: &str) -> StoreResult<Timestamp> {
    int(row, col).map(Timestamp::from_millis)
}

fn opt_time(row: &Row, col: &str) -> StoreResult<Option<Timestamp>> {
    get::<Option<i64>>(row, col).map(|v| v.map(Timestamp::from_millis))
}

fn id<T: FromStr>(row: &Row, col: &str) -> StoreResult<T> {
    text(row, col)?.parse().map_err(|_| corrupt(format!("{col}: not an id")))
}

pub(crate) fn tenant(row: &Row) -> StoreResult<Tenant> {
    Ok(Tenant { id: id(row, "id")?, name: text(row, "name")?, created_at: time(row, "created_at")? })
}

pub(crate) fn application(row: &Row) -> StoreResult<Application> {
    Ok(Application {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        name: text(row, "name")?,
        created_at: time(row, "created_at")?,
        active: int(row, "active")? != 0,
    })
}

pub(crate) fn api_key(row: &Row) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        digest: text(row, "digest")?,
        description: text(row, "description")?,
        created_at: time(row, "created_at")?,
    })
}

pub(crate) const USER_COLUMNS: &str = "id, tenant_id, email, username, mobile_phone, first_name, last_name, \
     data, active, password_hash, created_at, updated_at, email_verified";

pub(crate) fn user(row: &Row) -> StoreResult<User> {
    let data = match serde_json::from_str(&text(row, "data")?) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(corrupt("users.data is not a JSON object")),
    };
    let password_hash = opt_text(row, "password_hash")?
        .map(|h| PasswordHash::parse(&h).map_err(|_| corrupt("users.password_hash")))
        .transpose()?;
    Ok(User {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        email: opt_text(row, "email")?.map(Email::from_trusted),
        username: opt_text(row, "username")?.map(Username::from_trusted),
        mobile_phone: opt_text(row, "mobile_phone")?.map(PhoneNumber::from_trusted),
        first_name: opt_text(row, "first_name")?,
        last_name: opt_text(row, "last_name")?,
        data,
        active: int(row, "active")? != 0,
        email_verified: int(row, "email_verified")? != 0,
        password_hash,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(crate) fn refresh_token(row: &Row) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        user_id: id(row, "user_id")?,
        application_id: id(row, "application_id")?,
        digest: text(row, "digest")?,
        methods: crate::oidc::methods(row, "amr")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

pub(crate) fn signing_key(row: &Row) -> StoreResult<StoredSigningKey> {
    Ok(StoredSigningKey {
        kid: text(row, "kid")?,
        algorithm: text(row, "algorithm")?.parse().map_err(corrupt)?,
        sealed_private: text(row, "private_der")?,
        public_jwk: serde_json::from_str(&text(row, "public_jwk")?).map_err(corrupt)?,
        created_at: time(row, "created_at")?,
    })
}

pub(crate) fn audit_record(row: &Row) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id: int(row, "id")?,
        at: time(row, "at")?,
        event: text(row, "event")?,
        user_id: opt_text(row, "user_id")?,
        actor: opt_text(row, "actor")?,
        ip: opt_text(row, "ip")?,
        outcome: text(row, "outcome")?,
        detail: serde_json::from_str(&text(row, "detail")?).map_err(corrupt)?,
    })
}

pub(crate) fn opt_timestamp(row: &Row, col: &str) -> StoreResult<Option<Timestamp>> {
    opt_time(row, col)
}

pub(crate) fn count(row: &Row) -> StoreResult<i64> {
    int(row, "n")
}
