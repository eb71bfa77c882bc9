//! What the domain needs from storage. Implemented for SQLite and PostgreSQL in
//! `tessera-store`, both held to one contract test suite.

use async_trait::async_trait;

use crate::Timestamp;
use crate::apikey::ApiKey;
use crate::audit::{AuditEvent, AuditRecord};
use crate::ids::{ApplicationId, RefreshTokenId, TenantId, UserId};
use crate::password::PasswordHash;
use crate::tokens::{RefreshToken, SigningKey};
use crate::user::{LoginId, User};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; names the user-facing field (`user.email`, …).
    #[error("duplicate value for {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row that cannot be turned back into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    pub id: ApplicationId,
    pub tenant_id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

/// What a first start writes: one tenant, its default application and an admin key.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub tenant: Tenant,
    pub application: Application,
    pub api_key: ApiKey,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Writes `bootstrap` in one transaction if no tenant exists yet. Returns false
    /// (and writes nothing) when another process got there first.
    async fn bootstrap(&self, bootstrap: &Bootstrap) -> StoreResult<bool>;
    /// The first tenant created.
    async fn default_tenant(&self) -> StoreResult<Option<Tenant>>;
}

#[async_trait]
pub trait ApplicationStore: Send + Sync {
    async fn get_application(&self, id: ApplicationId) -> StoreResult<Option<Application>>;
    /// The tenant's first application.
    async fn default_application(&self, tenant: TenantId) -> StoreResult<Option<Application>>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn find_api_key(&self, digest: &str) -> StoreResult<Option<ApiKey>>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict("user.email")` or `Conflict("user.username")`.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn get_user(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>>;
    /// Matches the email or the username, ignoring case.
    async fn find_user_by_login_id(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<Option<User>>;
    /// Replaces every field. Returns false when the user does not exist.
    async fn update_user(&self, user: &User) -> StoreResult<bool>;
    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash, now: Timestamp) -> StoreResult<()>;
    async fn delete_user(&self, tenant: TenantId, id: UserId) -> StoreResult<bool>;
}

/// Failed sign-ins counted per login id (not per user, so unknown names lock alike).
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// Until when sign-in for this login id is locked, if it is.
    async fn login_locked_until(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<Option<Timestamp>>;
    /// Counts one failure at `now` and returns the failures in the current window. A
    /// window that began before `window_start` is over, and counting starts again at 1.
    async fn record_login_failure(
        &self,
        tenant: TenantId,
        login_id: &LoginId,
        now: Timestamp,
        window_start: Timestamp,
    ) -> StoreResult<u32>;
    async fn lock_login(&self, tenant: TenantId, login_id: &LoginId, until: Timestamp) -> StoreResult<()>;
    async fn clear_login_failures(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<()>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    async fn find_refresh_token(&self, digest: &str) -> StoreResult<Option<RefreshToken>>;
    async fn revoke_refresh_token(&self, id: RefreshTokenId, now: Timestamp) -> StoreResult<bool>;
    /// Revokes every live refresh token of the user; returns how many.
    async fn revoke_user_refresh_tokens(&self, user: UserId, now: Timestamp) -> StoreResult<u64>;
    /// Installs `key` as the signer for its algorithm unless one is installed already;
    /// returns false (writing nothing) in that case.
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<bool>;
    /// All signing keys, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Newest first; returns the page and the total count.
    async fn audit_page(&self, tenant: TenantId, offset: u64, limit: u64) -> StoreResult<(Vec<AuditRecord>, u64)>;
}

#[async_trait]
pub trait Store:
    TenantStore + ApplicationStore + ApiKeyStore + UserStore + LoginAttemptStore + TokenStore + AuditStore
{
    /// Whether the database answers; what `/api/status` reports.
    async fn ping(&self) -> StoreResult<()>;
}
