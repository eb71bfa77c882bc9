//! `Identity`: the use cases the HTTP API exposes, each taking `now` and returning a
//! domain outcome for the server to put into wire shape.

mod actions;
mod applications;
mod codes;
mod enrolment;
mod factors;
pub mod flows;
mod fraud;
mod kernel;
mod messengers;
mod oidc;
mod post_login;
mod reseal;
mod sessions;
mod signin;
mod twofactor;
mod users;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

pub use self::actions::{
    ActionError, ActionFailure, ActionInput, ActionRef, ActionView, Actions, SecretInput, TestRun, TriggerCall,
    TriggerRun,
};
pub use self::applications::{ApplicationInput, ApplicationRecord, Applications};
pub use self::codes::Codes;
pub use self::enrolment::{EnrolOutcome, EnrolmentView, NewFactor};
pub use self::factors::Factors;
pub use self::fraud::FraudGuards;
pub use self::kernel::{Auditor, Kernel};
pub use self::messengers::Messengers;
pub use self::oidc::{AuthorizeOutcome, TokenError as OAuthTokenError, TokenResponse};
pub use self::post_login::ActionsPostLogin;
pub use self::reseal::{ResealReport, reseal};
pub use self::sessions::Refreshed;
pub use self::signin::BrowserStart;
pub use self::twofactor::{
    DisableOutcome, EnableOutcome, SendOutcome, TwoFactorLoginOutcome, TwoFactorLoginRequest, UserScope,
};
pub use self::users::Users;
pub use self::verify::{CheckInput, ServiceInput, StartInput, VerifyApi, VerifyError, VerifyFailure, VerifyResult};
use crate::apikey::{Admin, ApiKey};
use crate::audit::{AuditEvent, AuditKind};
use crate::ids::{ApiKeyId, ApplicationId, TenantId};
use crate::login::LockoutPolicy;
use crate::messaging::Messenger;
use crate::password::{HashParams, Password, PasswordHash, PasswordHasher};
use crate::seal::Sealer;
use crate::secret::Secret;
use crate::store::{Application, Bootstrap, Store, StoreError, Tenant};
use crate::tokens::{JwtAlgorithm, SigningKey, TokenIssuer};
use crate::twofactor::TwoFactorPolicy;
use crate::user::PasswordRules;
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
    /// How long a hosted sign-in page's sign-in lasts before its password is entered,
    /// and a redirected one before it comes back.
    pub sign_in_ttl: Duration,
    pub two_factor: TwoFactorPolicy,
    /// The fraud guard on second-factor sends (one per tenant).
    pub mfa_guard: crate::verify::FraudGuard,
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
            sign_in_ttl: Duration::from_secs(30 * 60),
            two_factor: TwoFactorPolicy::default(),
            mfa_guard: crate::verify::FraudGuard::mfa_default(),
        }
    }
}

/// Who is asking, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub ip: Option<String>,
    /// The client's `User-Agent`, kept with a sign-in among its signals.
    pub user_agent: Option<String>,
    /// Who is acting, if the request authenticated someone (an admin key).
    pub actor: Option<crate::audit::Actor>,
    /// The tenant the request acts in, once known: an admin key's, a Verify
    /// credential's, a sign-in's application's. Audit events carry it.
    pub tenant: Option<TenantId>,
    /// The digest of the browser's device cookie, on the hosted pages.
    pub device: Option<String>,
}

impl RequestContext {
    /// The same request, acting in `tenant` (what a sign-in's application belongs to).
    pub fn in_tenant(&self, tenant: TenantId) -> RequestContext {
        RequestContext { tenant: Some(tenant), ..self.clone() }
    }

    /// What a sign-in keeps of the request that started it.
    pub fn signals(&self) -> crate::signin::Signals {
        crate::signin::Signals {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            browser: None,
            device: self.device.clone(),
        }
    }

    /// The same request, made by `actor`.
    pub fn acting(&self, actor: crate::audit::Actor) -> RequestContext {
        RequestContext { actor: Some(actor), ..self.clone() }
    }
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
        let application = Application {
            id: ApplicationId::random(),
            tenant_id: tenant.id,
            name: "Default".into(),
            created_at: now,
            active: true,
        };
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

/// The tenant's admin keys (digests only: a key is shown once, when made).
pub async fn api_keys(store: &dyn Store) -> Result<Vec<ApiKey>, CoreError> {
    let tenant =
        store.default_tenant().await?.ok_or_else(|| CoreError::Internal("database not bootstrapped".into()))?;
    Ok(store.api_keys(tenant.id).await?)
}

#[derive(Debug, PartialEq, Eq)]
pub enum RevokeKey {
    Revoked,
    NotFound,
    /// The tenant's only key: revoking it would leave no way in.
    LastKey,
}

/// Revokes an admin key (at once: it is looked up on every request), never the last.
pub async fn revoke_api_key(
    store: &dyn Store,
    id: ApiKeyId,
    ctx: &RequestContext,
    now: Timestamp,
) -> Result<RevokeKey, CoreError> {
    let tenant =
        store.default_tenant().await?.ok_or_else(|| CoreError::Internal("database not bootstrapped".into()))?;
    let keys = store.api_keys(tenant.id).await?;
    if !keys.iter().any(|k| k.id == id) {
        return Ok(RevokeKey::NotFound);
    }
    if !store.delete_api_key_unless_last(tenant.id, id).await? {
        return Ok(RevokeKey::LastKey);
    }
    let event = AuditEvent {
        tenant_id: tenant.id,
        at: now,
        kind: AuditKind::ApiKeyRevoked,
        user_id: None,
        actor: ctx.actor,
        ip: ctx.ip.clone(),
        outcome: "success",
        detail: json!({"keyId": id.to_string()}),
    };
    store.append_audit(&event).await?;
    Ok(RevokeKey::Revoked)
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
        actor: None,
        ip: None,
        outcome: "success",
        detail: json!({"keyId": key_id.to_string(), "description": description}),
    };
    Ok(store.append_audit(&event).await?)
}

/// Called with every audited event; the server counts them as metrics.
pub type EventHook = Arc<dyn Fn(AuditKind, &'static str) + Send + Sync>;

/// What `Identity` works with.
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub sealer: Sealer,
    pub messenger: Arc<dyn Messenger>,
    pub on_event: Option<EventHook>,
    /// The scripts run after the first factor, if any.
    pub post_login: Option<crate::signin::PostLoginHook>,
    /// Runs actions.
    pub scripts: Arc<dyn crate::actions::ScriptRunner>,
}

pub struct Identity {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    /// The sealer, policies, auditor and default tenant every service shares.
    kernel: Arc<Kernel>,
    /// What runs after the first factor: the post-login actions, or a test's stand-in.
    post_login: crate::signin::PostLoginHook,
    tokens: TokenIssuer,
    /// Messengers: configuration and the webhooks' secrets.
    messengers: Messengers,
    users: Users,
    /// Sending and checking second-factor codes.
    codes: Codes,
    factors: Factors,
    verify: VerifyApi,
    applications: Applications,
    /// Actions: their management and their runs.
    actions: Actions,
    /// Verified against when the login id is unknown, so that answer costs what a
    /// wrong password costs.
    dummy_hash: PasswordHash,
}

impl Identity {
    /// Loads (or on first use generates) the signing key and prepares the dummy hash.
    /// Expects [`bootstrap`] to have run.
    pub async fn start(deps: Deps, policies: Policies, now: Timestamp) -> Result<Self, CoreError> {
        let Deps { store, hasher, sealer, messenger, on_event, post_login, scripts } = deps;
        let tenant =
            store.default_tenant().await?.ok_or_else(|| CoreError::Internal("database not bootstrapped".into()))?;
        let default_application = store
            .default_application(tenant.id)
            .await?
            .ok_or_else(|| CoreError::Internal("tenant has no application".into()))?;
        let mut stored = store.signing_keys().await?;
        if !stored.iter().any(|k| k.algorithm == policies.jwt_algorithm) {
            // Another server starting at the same moment may win; then its key is used.
            store.insert_signing_key(&SigningKey::generate(policies.jwt_algorithm, now)?.seal(&sealer)?).await?;
            stored = store.signing_keys().await?;
        }
        let keys = stored.iter().map(|k| SigningKey::open(k, &sealer)).collect::<Result<Vec<_>, _>>()?;
        let tokens = TokenIssuer::new(policies.issuer.clone(), policies.jwt_ttl, policies.jwt_algorithm, &keys)?;
        let dummy_hash = hasher.hash(Password::new(random::token(24)?)).await?;
        let auditor = Auditor::new(store.clone(), on_event);
        let kernel = Arc::new(Kernel { sealer, policies, auditor, tenant });
        let messengers = Messengers::new(store.clone(), kernel.clone());
        let guards = FraudGuards::new(store.clone(), kernel.clone());
        let users = Users::new(store.clone(), hasher.clone(), kernel.clone());
        let applications = Applications::new(store.clone(), kernel.clone(), default_application);
        let codes = Codes::new(store.clone(), kernel.clone(), messenger.clone(), guards.clone());
        let factors = Factors::new(store.clone(), kernel.clone(), codes.clone(), applications.clone());
        let verify = VerifyApi::new(store.clone(), kernel.clone(), guards.clone(), messenger.clone());
        let actions = Actions::new(store.clone(), kernel.clone(), scripts);
        let post_login = post_login.unwrap_or_else(|| {
            crate::signin::PostLoginHook(Arc::new(ActionsPostLogin::new(actions.clone(), applications.clone())))
        });
        Ok(Identity {
            actions,
            store,
            hasher,
            kernel,
            post_login,
            tokens,
            messengers,
            users,
            codes,
            factors,
            verify,
            applications,
            dummy_hash,
        })
    }

    pub fn policies(&self) -> &Policies {
        &self.kernel.policies
    }

    /// The messengers' service.
    pub fn messengers(&self) -> &Messengers {
        &self.messengers
    }

    /// User administration.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// A user's second factors and recovery codes.
    pub fn factors(&self) -> &Factors {
        &self.factors
    }

    /// Actions: their management and their runs.
    pub fn actions(&self) -> &Actions {
        &self.actions
    }

    /// The Verify API's service.
    pub fn verify(&self) -> &VerifyApi {
        &self.verify
    }

    pub fn jwks(&self) -> &Value {
        self.tokens.jwks()
    }

    pub fn tenant(&self) -> &Tenant {
        &self.kernel.tenant
    }

    pub fn default_application(&self) -> &Application {
        self.applications.default_application()
    }

    /// Applications and their OAuth clients.
    pub fn applications(&self) -> &Applications {
        &self.applications
    }

    /// Counts an event in metrics without writing it to the audit log.
    /// An admin key revoked through the API: audited as by the command, and counted.
    pub async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<RevokeKey, CoreError> {
        let outcome = revoke_api_key(self.store.as_ref(), id, ctx, now).await?;
        if outcome == RevokeKey::Revoked {
            self.kernel.auditor.count(AuditKind::ApiKeyRevoked, "success");
        }
        Ok(outcome)
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, CoreError> {
        api_keys(self.store.as_ref()).await
    }

    // ---- admin keys ----

    pub async fn authenticate_admin(&self, key: &Secret) -> Result<Option<Admin>, CoreError> {
        Ok(self.store.find_api_key(&key.digest()).await?.map(|k| Admin { tenant_id: k.tenant_id, key_id: k.id }))
    }
}
