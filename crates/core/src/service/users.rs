//! User administration.

use std::sync::Arc;

use serde_json::json;

use super::RequestContext;
use super::kernel::{Kernel, retrying};
use crate::apikey::Admin;
use crate::audit::AuditKind;
use crate::ids::{TenantId, UserId};
use crate::password::{PasswordHash, PasswordHasher};
use crate::store::{Store, StoreError};
use crate::user::{LoginId, User, UserInput, ValidUser};
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp};

/// Users of each tenant: FusionAuth's `/api/user`. It runs units of work (a new password
/// with the refresh tokens it revokes), so it takes the store that begins them.
#[derive(Clone)]
pub struct Users {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    kernel: Arc<Kernel>,
}

impl Users {
    pub fn new(store: Arc<dyn Store>, hasher: Arc<dyn PasswordHasher>, kernel: Arc<Kernel>) -> Users {
        Users { store, hasher, kernel }
    }

    /// `skip_verification`: the administrator vouches for the email address
    /// (FusionAuth's `skipVerification`), so it counts as verified.
    pub async fn create(
        &self,
        admin: &Admin,
        id: Option<UserId>,
        input: UserInput,
        skip_verification: bool,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<User, CoreError> {
        let valid = input.validate(&self.kernel.policies.password, true)?;
        let password_hash = match &valid.password {
            Some(p) => Some(self.hasher.hash(p.clone()).await?),
            None => None,
        };
        let mut user = build_user(id.unwrap_or_else(UserId::random), admin.tenant_id, valid, password_hash, now, now);
        user.email_verified = skip_verification && user.email.is_some();
        self.store.insert_user(&user).await.map_err(conflict_to_validation)?;
        self.kernel.audit(AuditKind::UserCreated, Some(user.id), "success", ctx, json!({}), now).await?;
        Ok(user)
    }

    pub async fn get(&self, admin: &Admin, id: UserId) -> Result<User, CoreError> {
        self.store.get_user(admin.tenant_id, id).await?.ok_or(CoreError::NotFound)
    }

    pub async fn find(&self, admin: &Admin, login_id: &str) -> Result<User, CoreError> {
        let login_id = LoginId::parse(login_id).ok_or(CoreError::NotFound)?;
        self.store.find_user_by_login_id(admin.tenant_id, &login_id).await?.ok_or(CoreError::NotFound)
    }

    /// PUT: the body describes the whole user; a missing password leaves it unchanged.
    pub async fn replace(
        &self,
        admin: &Admin,
        id: UserId,
        input: UserInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<User, CoreError> {
        let existing = self.get(admin, id).await?;
        let valid = input.validate(&self.kernel.policies.password, false)?;
        let password_changed = valid.password.is_some();
        let password_hash = match &valid.password {
            Some(p) => Some(self.hasher.hash(p.clone()).await?),
            None => existing.password_hash.clone(),
        };
        let mut user = build_user(id, admin.tenant_id, valid, password_hash, existing.created_at, now);
        // A new address is not known to be the user's.
        user.email_verified = existing.email_verified && user.email.is_some() && user.email == existing.email;
        // One unit: a new password or a deactivation never lands without the refresh
        // tokens it revokes.
        let revoke = password_changed || (existing.active && !user.active);
        retrying(|| async {
            let tx = self.store.begin().await?;
            if !tx.update_user(&user).await.map_err(conflict_to_validation)? {
                return Err(CoreError::NotFound);
            }
            if revoke {
                tx.revoke_user_refresh_tokens(id, now).await?;
            }
            let detail = json!({"passwordChanged": password_changed});
            self.kernel
                .auditor
                .record(&*tx, self.kernel.event(AuditKind::UserUpdated, Some(id), "success", ctx, detail, now))
                .await?;
            Ok(tx.commit().await?)
        })
        .await?;
        Ok(user)
    }

    /// FusionAuth semantics: a plain delete deactivates; `hard` removes the user.
    pub async fn delete(
        &self,
        admin: &Admin,
        id: UserId,
        hard: bool,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let user = self.get(admin, id).await?;
        let deactivated = User { active: false, updated_at: now, ..user };
        // One unit: the user is never gone or deactivated with live refresh tokens.
        retrying(|| async {
            let tx = self.store.begin().await?;
            tx.revoke_user_refresh_tokens(id, now).await?;
            if hard {
                tx.delete_user(admin.tenant_id, id).await?;
            } else {
                tx.update_user(&deactivated).await?;
            }
            let detail = json!({"hardDelete": hard});
            self.kernel
                .auditor
                .record(&*tx, self.kernel.event(AuditKind::UserDeleted, Some(id), "success", ctx, detail, now))
                .await?;
            Ok(tx.commit().await?)
        })
        .await
    }
}

fn build_user(
    id: UserId,
    tenant_id: TenantId,
    v: ValidUser,
    password_hash: Option<PasswordHash>,
    created_at: Timestamp,
    now: Timestamp,
) -> User {
    User {
        id,
        tenant_id,
        email: v.email,
        username: v.username,
        mobile_phone: v.mobile_phone,
        first_name: v.first_name,
        last_name: v.last_name,
        data: v.data,
        active: v.active,
        email_verified: false,
        password_hash,
        created_at,
        updated_at: now,
    }
}

fn conflict_to_validation(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(field) => {
            let msg = format!("A user with this [{field}] already exists.");
            let key = if field.starts_with("user.") { field } else { "user.id".to_owned() };
            ValidationErrors::field(&key, "duplicate", msg).into()
        }
        other => other.into(),
    }
}
