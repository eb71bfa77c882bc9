//! `Identity`: the use cases the HTTP API exposes, each taking `now` and returning a
//! domain outcome for the server to put into wire shape.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::apikey::{Admin, ApiKey};
use crate::audit::{AuditEvent, AuditKind, AuditRecord};
use crate::ids::{ApiKeyId, ApplicationId, TenantId, UserId};
use crate::login::{LockoutPolicy, LoginOutcome, LoginRequest, LoginSuccess};
use crate::password::{HashParams, Password, PasswordHash, PasswordHasher};
use crate::secret::Secret;
use crate::store::{Application, Bootstrap, Store, StoreError, Tenant};
use crate::tokens::{JwtAlgorithm, RefreshToken, SigningKey, TokenError, TokenIssuer};
use crate::user::{LoginId, PasswordRules, User, UserInput, ValidUser, merge_patch};
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp, random};

/// Everything tunable about identity, with FusionAuth-like defaults.
#[derive(Clone, Debug)]
pub struct Policies {
    pub hash: HashParams,
    pub password: PasswordRules,
    pub lockout: LockoutPolicy,
    pub issuer: String,
    pub jwt_algorithm: JwtAlgorithm,
    pub jwt_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            hash: HashParams::default(),
            password: PasswordRules::default(),
            lockout: LockoutPolicy::default(),
            issuer: "tessera".into(),
            jwt_algorithm: JwtAlgorithm::EdDSA,
            jwt_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Who is asking, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub ip: Option<String>,
}

/// What a first start did.
#[derive(Debug)]
pub struct BootstrapReport {
    /// The admin key generated on this start, to print once. `None` when the database
    /// was set up already or the operator supplied the key.
    pub generated_key: Option<Secret>,
}

/// Creates the default tenant, application and admin key on an empty database, and
/// makes sure an operator-supplied key (`TESSERA_API_KEY`) is valid.
pub async fn bootstrap(
    store: &dyn Store,
    configured_key: Option<&Secret>,
    now: Timestamp,
) -> Result<BootstrapReport, CoreError> {
    let mut generated_key = None;
    if store.default_tenant().await?.is_none() {
        let tenant = Tenant { id: TenantId::random(), name: "Default".into(), created_at: now };
        let application =
            Application { id: ApplicationId::random(), tenant_id: tenant.id, name: "Default".into(), created_at: now };
        let (secret, api_key) = match configured_key {
            Some(s) => (None, ApiKey::for_secret(tenant.id, s, "initial admin key (configured)", now)),
            None => {
                let (s, k) = ApiKey::generate(tenant.id, "initial admin key", now)?;
                (Some(s), k)
            }
        };
        let (tenant_id, key_id) = (tenant.id, api_key.id);
        if store.bootstrap(&Bootstrap { tenant, application, api_key }).await? {
            generated_key = secret;
            audit_key_created(store, tenant_id, key_id, "initial admin key", now).await?;
        }
    }
    if let Some(key) = configured_key {
        let tenant =
            store.default_tenant().await?.ok_or_else(|| CoreError::Internal("no tenant after bootstrap".into()))?;
        if store.find_api_key(&key.digest()).await?.is_none() {
            let record = ApiKey::for_secret(tenant.id, key, "admin key (configured)", now);
            match store.insert_api_key(&record).await {
                Ok(()) => audit_key_created(store, tenant.id, record.id, &record.description, now).await?,
                // Another server inserted the same key a moment ago.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(BootstrapReport { generated_key })
}

/// A new admin key for the default tenant (`tessera api-key create`). Returns the key,
/// which is shown once and stored only as a digest.
pub async fn issue_api_key(store: &dyn Store, description: &str, now: Timestamp) -> Result<Secret, CoreError> {
    let tenant =
        store.default_tenant().await?.ok_or_else(|| CoreError::Internal("database not bootstrapped".into()))?;
    let (secret, key) = ApiKey::generate(tenant.id, description, now)?;
    store.insert_api_key(&key).await?;
    audit_key_created(store, tenant.id, key.id, description, now).await?;
    Ok(secret)
}

async fn audit_key_created(
    store: &dyn Store,
    tenant_id: TenantId,
    key_id: ApiKeyId,
    description: &str,
    now: Timestamp,
) -> Result<(), CoreError> {
    let event = AuditEvent {
        tenant_id,
        at: now,
        kind: AuditKind::ApiKeyCreated,
        user_id: None,
        ip: None,
        outcome: "success",
        detail: json!({"keyId": key_id.to_string(), "description": description}),
    };
    Ok(store.append_audit(&event).await?)
}

pub struct Identity {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: TokenIssuer,
    policies: Policies,
    tenant: Tenant,
    default_application: Application,
    /// Verified against when the login id is unknown, so that answer costs what a
    /// wrong password costs.
    dummy_hash: PasswordHash,
}

impl Identity {
    /// Loads (or on first use generates) the signing key and prepares the dummy hash.
    /// Expects [`bootstrap`] to have run.
    pub async fn start(
        store: Arc<dyn Store>,
        hasher: Arc<dyn PasswordHasher>,
        policies: Policies,
        now: Timestamp,
    ) -> Result<Self, CoreError> {
        let tenant =
            store.default_tenant().await?.ok_or_else(|| CoreError::Internal("database not bootstrapped".into()))?;
        let default_application = store
            .default_application(tenant.id)
            .await?
            .ok_or_else(|| CoreError::Internal("tenant has no application".into()))?;
        let mut keys = store.signing_keys().await?;
        if !keys.iter().any(|k| k.algorithm == policies.jwt_algorithm) {
            // Another server starting at the same moment may win; then its key is used.
            store.insert_signing_key(&SigningKey::generate(policies.jwt_algorithm, now)?).await?;
            keys = store.signing_keys().await?;
        }
        let tokens = TokenIssuer::new(policies.issuer.clone(), policies.jwt_ttl, policies.jwt_algorithm, &keys)?;
        let dummy_hash = hasher.hash(Password::new(random::token(24)?)).await?;
        Ok(Identity { store, hasher, tokens, policies, tenant, default_application, dummy_hash })
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn jwks(&self) -> &Value {
        self.tokens.jwks()
    }

    pub fn default_application(&self) -> &Application {
        &self.default_application
    }

    async fn audit(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        outcome: &'static str,
        ctx: &RequestContext,
        detail: Value,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let event =
            AuditEvent { tenant_id: self.tenant.id, at: now, kind, user_id, ip: ctx.ip.clone(), outcome, detail };
        Ok(self.store.append_audit(&event).await?)
    }

    // ---- admin keys ----

    pub async fn authenticate_admin(&self, key: &Secret) -> Result<Option<Admin>, CoreError> {
        Ok(self.store.find_api_key(&key.digest()).await?.map(|k| Admin { tenant_id: k.tenant_id, key_id: k.id }))
    }

    // ---- users ----

    pub async fn create_user(
        &self,
        admin: &Admin,
        id: Option<UserId>,
        input: UserInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<User, CoreError> {
        let valid = input.validate(&self.policies.password, true)?;
        let password_hash = match &valid.password {
            Some(p) => Some(self.hasher.hash(p.clone()).await?),
            None => None,
        };
        let user = build_user(id.unwrap_or_else(UserId::random), admin.tenant_id, valid, password_hash, now, now);
        self.store.insert_user(&user).await.map_err(conflict_to_validation)?;
        self.audit(AuditKind::UserCreated, Some(user.id), "success", ctx, json!({}), now).await?;
        Ok(user)
    }

    pub async fn get_user(&self, admin: &Admin, id: UserId) -> Result<User, CoreError> {
        self.store.get_user(admin.tenant_id, id).await?.ok_or(CoreError::NotFound)
    }

    pub async fn find_user(&self, admin: &Admin, login_id: &str) -> Result<User, CoreError> {
        let login_id = LoginId::parse(login_id).ok_or(CoreError::NotFound)?;
        self.store.find_user_by_login_id(admin.tenant_id, &login_id).await?.ok_or(CoreError::NotFound)
    }

    /// PUT: the body describes the whole user; a missing password leaves it unchanged.
    pub async fn replace_user(
        &self,
        admin: &Admin,
        id: UserId,
        input: UserInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<User, CoreError> {
        let existing = self.get_user(admin, id).await?;
        let valid = input.validate(&self.policies.password, false)?;
        let password_changed = valid.password.is_some();
        let password_hash = match &valid.password {
            Some(p) => Some(self.hasher.hash(p.clone()).await?),
            None => existing.password_hash.clone(),
        };
        let user = build_user(id, admin.tenant_id, valid, password_hash, existing.created_at, now);
        if !self.store.update_user(&user).await.map_err(conflict_to_validation)? {
            return Err(CoreError::NotFound);
        }
        if password_changed || (existing.active && !user.active) {
            self.store.revoke_user_refresh_tokens(id, now).await?;
        }
        let detail = json!({"passwordChanged": password_changed});
        self.audit(AuditKind::UserUpdated, Some(id), "success", ctx, detail, now).await?;
        Ok(user)
    }

    /// PATCH: RFC 7396 merge of the body into the user as it is.
    pub async fn patch_user(
        &self,
        admin: &Admin,
        id: UserId,
        patch: &Value,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<User, CoreError> {
        let existing = self.get_user(admin, id).await?;
        let mut current =
            serde_json::to_value(UserInput::from_user(&existing)).map_err(|e| CoreError::Internal(e.to_string()))?;
        merge_patch(&mut current, patch);
        let input: UserInput = serde_json::from_value(current).map_err(|e| {
            CoreError::Invalid(ValidationErrors::field(
                "user",
                "invalid",
                format!("The [user] object is malformed: {e}"),
            ))
        })?;
        self.replace_user(admin, id, input, ctx, now).await
    }

    /// FusionAuth semantics: a plain delete deactivates; `hard` removes the user.
    pub async fn delete_user(
        &self,
        admin: &Admin,
        id: UserId,
        hard: bool,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let mut user = self.get_user(admin, id).await?;
        self.store.revoke_user_refresh_tokens(id, now).await?;
        if hard {
            self.store.delete_user(admin.tenant_id, id).await?;
        } else {
            user.active = false;
            user.updated_at = now;
            self.store.update_user(&user).await?;
        }
        self.audit(AuditKind::UserDeleted, Some(id), "success", ctx, json!({"hardDelete": hard}), now).await
    }

    // ---- sign-in ----

    pub async fn login(
        &self,
        req: LoginRequest,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        let application = match req.application_id {
            None => self.default_application.clone(),
            Some(id) => match self.store.get_application(id).await? {
                Some(app) => app,
                None => {
                    let msg = "The [applicationId] property does not name an application.";
                    return Err(ValidationErrors::field("applicationId", "invalid", msg).into());
                }
            },
        };
        let tenant = application.tenant_id;
        let lockout = self.policies.lockout;

        if let Some(until) = self.store.login_locked_until(tenant, &req.login_id).await?
            && until > now
        {
            self.audit(AuditKind::LoginLocked, None, "locked", ctx, json!({"loginId": req.login_id.as_str()}), now)
                .await?;
            return Ok(LoginOutcome::Locked { until });
        }

        let user = self.store.find_user_by_login_id(tenant, &req.login_id).await?;
        let candidate = user.filter(|u| u.active).and_then(|u| u.password_hash.clone().map(|h| (u, h)));
        let verified = match candidate {
            Some((user, hash)) => self.hasher.verify(hash.clone(), req.password.clone()).await?.then_some((user, hash)),
            None => {
                // Same work as a real check, so the answer's timing says nothing.
                let _ = self.hasher.verify(self.dummy_hash.clone(), req.password.clone()).await?;
                None
            }
        };

        let Some((user, hash)) = verified else {
            let failures =
                self.store.record_login_failure(tenant, &req.login_id, now, now.minus(lockout.window)).await?;
            if failures >= lockout.max_failures {
                let until = now.plus(lockout.lock_for);
                self.store.lock_login(tenant, &req.login_id, until).await?;
                let detail = json!({"loginId": req.login_id.as_str(), "failures": failures});
                self.audit(AuditKind::LoginLocked, None, "locked", ctx, detail, now).await?;
                return Ok(LoginOutcome::Locked { until });
            }
            let detail = json!({"loginId": req.login_id.as_str(), "failures": failures});
            self.audit(AuditKind::LoginFailure, None, "failure", ctx, detail, now).await?;
            return Ok(LoginOutcome::InvalidCredentials);
        };

        self.store.clear_login_failures(tenant, &req.login_id).await?;
        if hash.needs_rehash(&self.policies.hash) {
            let upgraded = self.hasher.hash(req.password.clone()).await?;
            self.store.set_password_hash(user.id, &upgraded, now).await?;
        }
        let (token, refresh_token) = if req.no_jwt {
            (None, None)
        } else {
            let token = self.tokens.issue(&user, application.id, now, now)?;
            let (secret, record) = RefreshToken::generate(&user, application.id, self.policies.refresh_ttl, now)?;
            self.store.insert_refresh_token(&record).await?;
            (Some(token), Some(secret))
        };
        let detail = json!({"applicationId": application.id.to_string()});
        self.audit(AuditKind::LoginSuccess, Some(user.id), "success", ctx, detail, now).await?;
        Ok(LoginOutcome::Success(Box::new(LoginSuccess { user, application_id: application.id, token, refresh_token })))
    }

    // ---- tokens ----

    pub fn validate_jwt(&self, token: &str, now: Timestamp) -> Result<Value, TokenError> {
        self.tokens.validate(token, now)
    }

    /// A new access token for a live refresh token; `None` when it is unknown,
    /// expired, revoked, or its user is gone or deactivated.
    pub async fn refresh(
        &self,
        refresh: &Secret,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<(String, User)>, CoreError> {
        let Some(record) = self.store.find_refresh_token(&refresh.digest()).await? else {
            return Ok(None);
        };
        if !record.is_live(now) {
            return Ok(None);
        }
        let Some(user) = self.store.get_user(record.tenant_id, record.user_id).await?.filter(|u| u.active) else {
            return Ok(None);
        };
        let (jwt, _) = self.tokens.issue(&user, record.application_id, record.created_at, now)?;
        self.audit(AuditKind::TokenRefreshed, Some(user.id), "success", ctx, json!({}), now).await?;
        Ok(Some((jwt, user)))
    }

    /// Revokes the refresh token, or with `global` every refresh token of its user
    /// (or of the user named by `access_token` when no refresh token is given).
    pub async fn logout(
        &self,
        refresh: Option<&Secret>,
        access_token: Option<&str>,
        global: bool,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let record = match refresh {
            Some(r) => self.store.find_refresh_token(&r.digest()).await?,
            None => None,
        };
        let user_id = match &record {
            Some(r) => Some(r.user_id),
            None => access_token
                .and_then(|t| self.tokens.validate(t, now).ok())
                .and_then(|c| c.get("sub").and_then(Value::as_str).and_then(|s| s.parse().ok())),
        };
        if let Some(r) = &record {
            self.store.revoke_refresh_token(r.id, now).await?;
        }
        if global && let Some(u) = user_id {
            self.store.revoke_user_refresh_tokens(u, now).await?;
        }
        self.audit(AuditKind::Logout, user_id, "success", ctx, json!({"global": global}), now).await
    }

    /// Admin revocation: every refresh token of a user.
    pub async fn revoke_user_tokens(&self, admin: &Admin, user: UserId, now: Timestamp) -> Result<u64, CoreError> {
        self.get_user(admin, user).await?;
        Ok(self.store.revoke_user_refresh_tokens(user, now).await?)
    }

    /// Admin revocation of one refresh token by its value.
    pub async fn revoke_refresh_token(&self, admin: &Admin, token: &Secret, now: Timestamp) -> Result<(), CoreError> {
        match self.store.find_refresh_token(&token.digest()).await? {
            Some(r) if r.tenant_id == admin.tenant_id => {
                self.store.revoke_refresh_token(r.id, now).await?;
                Ok(())
            }
            _ => Err(CoreError::NotFound),
        }
    }

    // ---- audit ----

    pub async fn audit_page(
        &self,
        admin: &Admin,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<AuditRecord>, u64), CoreError> {
        Ok(self.store.audit_page(admin.tenant_id, offset, limit.clamp(1, 500)).await?)
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
