//! What the domain needs from storage. Implemented for SQLite and PostgreSQL in
//! `tessera-store`, both held to one contract test suite.

use async_trait::async_trait;

use crate::Timestamp;
use crate::apikey::ApiKey;
use crate::audit::{AuditEvent, AuditRecord};
use crate::ids::{ActionId, ApiKeyId, ApplicationId, MessengerId, RefreshTokenId, TenantId, UserId};
use crate::messengers::{Delivery, MessengerConfig};
use crate::password::PasswordHash;
use crate::phone::PhoneNumber;
use crate::signin::{SignIn, Stage};
use crate::tokens::{RefreshToken, StoredSigningKey};
use crate::twofactor::{MethodId, PendingCode, TrustToken, TwoFactorMethod, UserCode};
use crate::user::{LoginId, User};
use crate::verify::{Block, Verification, VerifyAccount, VerifyService};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; names the user-facing field (`user.email`, …).
    #[error("duplicate value for {0}")]
    Conflict(String),
    /// The database cannot be reached (pool exhausted, connection lost, server down):
    /// the one store error that says "try again shortly".
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Concurrent transactions collided (a serialization failure, a deadlock, a busy
    /// SQLite file); the work was rolled back and may be retried as a whole.
    #[error("transaction conflict: {0}")]
    Busy(String),
    /// The database refused the statement itself (a bug, a schema out of step, a broken
    /// constraint other than uniqueness): retrying will not help.
    #[error("query failed: {0}")]
    Query(String),
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
    /// A deactivated application (FusionAuth's soft delete) signs nobody in and
    /// refreshes no tokens until it is reactivated.
    pub active: bool,
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
    /// Creates an application with its OAuth settings; false (and nothing written) when
    /// the id is taken.
    async fn insert_application(&self, app: &Application, client: &crate::oidc::OAuthClient) -> StoreResult<bool>;
    /// Replaces an application's name and OAuth settings; false when the tenant has no
    /// such application.
    async fn update_application(&self, app: &Application, client: &crate::oidc::OAuthClient) -> StoreResult<bool>;
    /// The tenant's applications with their OAuth settings, oldest first.
    async fn applications(&self, tenant: TenantId) -> StoreResult<Vec<(Application, crate::oidc::OAuthClient)>>;
    /// Deactivates or reactivates; false when the tenant has no such application.
    async fn set_application_active(&self, tenant: TenantId, id: ApplicationId, active: bool) -> StoreResult<bool>;
    /// Removes the application in one transaction: its refresh tokens are revoked, its
    /// authorization codes and open two-factor challenges deleted. False when the
    /// tenant has no such application.
    async fn delete_application(&self, tenant: TenantId, id: ApplicationId, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn find_api_key(&self, digest: &str) -> StoreResult<Option<ApiKey>>;
    /// The tenant's keys, oldest first.
    async fn api_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKey>>;
    /// Deletes the key unless it is the tenant's last one (which would lock every
    /// administrator out); false when it is unknown or the last.
    async fn delete_api_key_unless_last(&self, tenant: TenantId, id: ApiKeyId) -> StoreResult<bool>;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureState {
    pub failures: u32,
    /// Until when sign-in is locked, if a lock was set.
    pub locked_until: Option<Timestamp>,
}

impl FailureState {
    pub fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// Failed sign-ins counted per login id (not per user, so unknown names lock alike).
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// The failures recorded for this login id, if any (`None`: a clean record, so a
    /// successful sign-in has nothing to clear).
    async fn login_failures(&self, tenant: TenantId, login_id: &LoginId) -> StoreResult<Option<FailureState>>;
    /// Counts one failure at `now` and returns the failures in the current window. A
    /// window that began before `window_start` is over, and counting starts again at 1.
    async fn record_login_failure(
        &self,
        tenant: TenantId,
        login_id: &LoginId,
        now: Timestamp,
        window_start: Timestamp,
    ) -> StoreResult<u32>;
    /// Counts an attempt before its password is checked, in one statement: the count in
    /// the current window (this attempt included) and the lock, if one holds at `now` (a
    /// locked id's count does not move). So concurrent attempts past the limit are known
    /// before any argon2 work starts.
    async fn reserve_login_attempt(
        &self,
        tenant: TenantId,
        login_id: &LoginId,
        now: Timestamp,
        window_start: Timestamp,
    ) -> StoreResult<(u32, Option<Timestamp>)>;
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
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<bool>;
    /// All signing keys, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    /// Replaces a sealed private key if it is still `old` (re-sealing after rotation).
    async fn replace_sealed_signing_key(&self, kid: &str, old: &str, new: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// One user's most recent events of a kind, newest first.
    async fn user_events(&self, user: UserId, event: &str, limit: u64) -> StoreResult<Vec<AuditRecord>>;
    /// Newest first; returns the page and the total count.
    async fn audit_page(&self, tenant: TenantId, offset: u64, limit: u64) -> StoreResult<(Vec<AuditRecord>, u64)>;
}

#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    /// Fails with `Conflict("methodId")` when the user has a method with that id.
    async fn insert_method(&self, method: &TwoFactorMethod) -> StoreResult<()>;
    /// The user's methods, oldest first.
    async fn methods(&self, user: UserId) -> StoreResult<Vec<TwoFactorMethod>>;
    async fn delete_method(&self, user: UserId, id: &MethodId) -> StoreResult<bool>;
    /// Records `step` as used if it is later than the last one used; false means the
    /// step (or a later one) was used already: a replay.
    async fn advance_totp_step(&self, user: UserId, id: &MethodId, step: i64) -> StoreResult<bool>;
    /// Every sealed TOTP secret, for re-sealing under a new key.
    async fn sealed_secrets(&self) -> StoreResult<Vec<(UserId, MethodId, String)>>;
    /// Replaces a sealed secret if it is still `old`.
    async fn replace_sealed_secret(&self, user: UserId, id: &MethodId, old: &str, new: &str) -> StoreResult<bool>;

    async fn replace_recovery_codes(&self, user: UserId, hashes: &[String], now: Timestamp) -> StoreResult<()>;
    /// Deletes the code with one of these hashes; true when one existed.
    async fn use_recovery_code(&self, user: UserId, hashes: &[String]) -> StoreResult<bool>;
    async fn recovery_code_count(&self, user: UserId) -> StoreResult<u32>;

    /// Stores the code for (user, purpose), replacing an earlier one.
    async fn put_user_code(&self, code: &UserCode) -> StoreResult<()>;
    async fn user_code(&self, user: UserId, purpose: &str) -> StoreResult<Option<UserCode>>;
    async fn record_user_code_failure(&self, user: UserId, purpose: &str) -> StoreResult<u32>;
    /// Deletes the code if its hash is still `hash`; true when it did (single use).
    async fn take_user_code(&self, user: UserId, purpose: &str, hash: &str) -> StoreResult<bool>;

    /// Records a message to the user at `now` unless `limit` were recorded since
    /// `since`; true when recorded (the send may go ahead). Refused sends are not
    /// recorded, so a client that keeps retrying gets through once the window passes.
    async fn try_record_send(&self, user: UserId, now: Timestamp, since: Timestamp, limit: u32) -> StoreResult<bool>;

    async fn insert_trust_token(&self, token: &TrustToken) -> StoreResult<()>;
    async fn trust_token(&self, digest: &str) -> StoreResult<Option<TrustToken>>;
    async fn delete_trust_tokens(&self, user: UserId) -> StoreResult<u64>;

    /// Deletes what can no longer be used at `now`: expired challenges, codes, trust
    /// tokens and refresh tokens, send records older than `sends_before`, fraud-guard
    /// sends older than any window ([`crate::verify::MAX_WINDOW`]), idle limit locks, and
    /// lapsed login-failure windows, action execution records past
    /// [`crate::actions::EXECUTION_RETENTION`]. Returns how many rows went.
    async fn purge_expired(&self, now: Timestamp, sends_before: Timestamp) -> StoreResult<u64>;
}

/// Sign-ins kept between their steps (`crate::signin`).
#[async_trait]
pub trait SignInStore: Send + Sync {
    async fn insert_sign_in(&self, sign_in: &SignIn) -> StoreResult<()>;
    async fn sign_in(&self, digest: &str) -> StoreResult<Option<SignIn>>;
    /// Moves the live sign-in `digest`, still at the stage named `from`, to `next`
    /// (which carries its new id's digest) in one step; false when it was not there
    /// or had moved already, so each step is taken once.
    async fn advance_sign_in(&self, digest: &str, from: &Stage, next: &SignIn, now: Timestamp) -> StoreResult<bool>;
    /// Uses up the resume token with this digest: the redirected sign-in it belongs
    /// to, once; `None` for an unknown or already used token.
    async fn resume_sign_in(&self, resume_digest: &str) -> StoreResult<Option<SignIn>>;
    /// Sets the sign-in's outstanding code, replacing (invalidating) any earlier one.
    async fn set_sign_in_code(&self, digest: &str, code: &PendingCode) -> StoreResult<()>;
    /// Removes the outstanding code if its hash is still `hash`; true when it did.
    async fn take_sign_in_code(&self, digest: &str, hash: &str) -> StoreResult<bool>;
    /// Counts a wrong code; returns the failures so far.
    async fn record_sign_in_failure(&self, digest: &str) -> StoreResult<u32>;
    /// Marks the sign-in used; false when it was used already.
    async fn spend_sign_in(&self, digest: &str) -> StoreResult<bool>;
    /// Records the phone a sign-in waiting for an enrolment sent its code to; false
    /// when it is no longer live at that stage.
    async fn set_sign_in_phone(&self, digest: &str, phone: &PhoneNumber, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait]
pub trait MessengerStore: Send + Sync {
    async fn insert_messenger(&self, m: &MessengerConfig) -> StoreResult<()>;
    async fn messenger(&self, tenant: TenantId, id: MessengerId) -> StoreResult<Option<MessengerConfig>>;
    /// A messenger of any tenant: a vendor's callback names the messenger, not its tenant.
    async fn messenger_by_id(&self, id: MessengerId) -> StoreResult<Option<MessengerConfig>>;
    /// The tenant's messengers, oldest first.
    async fn messengers(&self, tenant: TenantId) -> StoreResult<Vec<MessengerConfig>>;
    async fn update_messenger(&self, m: &MessengerConfig) -> StoreResult<bool>;
    async fn delete_messenger(&self, tenant: TenantId, id: MessengerId) -> StoreResult<bool>;

    async fn insert_delivery(&self, d: &Delivery) -> StoreResult<()>;
    /// Applies a provider's status callback; false when no delivery has that id.
    async fn update_delivery_status(
        &self,
        provider: &str,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Keeps the text a voice call should speak until the provider fetches it
    /// (Plivo asks an answer URL); stored sealed, by the digest of its token.
    async fn put_voice_prompt(&self, digest: &str, sealed_text: &str, expires_at: Timestamp) -> StoreResult<()>;
    /// Returns and deletes the prompt: it is spoken once.
    async fn take_voice_prompt(&self, digest: &str, now: Timestamp) -> StoreResult<Option<String>>;
    /// Newest first, with the total.
    async fn deliveries(&self, tenant: TenantId, offset: u64, limit: u64) -> StoreResult<(Vec<Delivery>, u64)>;
}

/// What a bucketed fraud-guard window counts, for one value (a prefix, an IP, the
/// service itself): sends, or verifications started and approved (conversion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKey {
    Prefix,
    Ip,
    Service,
    Started,
    Approved,
}

impl WindowKey {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKey::Prefix => "prefix",
            WindowKey::Ip => "ip",
            WindowKey::Service => "service",
            WindowKey::Started => "started",
            WindowKey::Approved => "approved",
        }
    }
}

/// One count added to a window: which key and value, and the end of the bucket it
/// falls in ([`crate::verify::bucket_end`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub key: WindowKey,
    pub value: String,
    pub bucket_end: Timestamp,
}

#[async_trait]
pub trait VerifyStore: Send + Sync {
    async fn insert_verify_account(&self, a: &VerifyAccount) -> StoreResult<()>;
    async fn verify_account(&self, sid: &str) -> StoreResult<Option<VerifyAccount>>;

    async fn insert_verify_service(&self, s: &VerifyService) -> StoreResult<()>;
    async fn verify_service(&self, account_sid: &str, sid: &str) -> StoreResult<Option<VerifyService>>;
    async fn verify_services(&self, account_sid: &str) -> StoreResult<Vec<VerifyService>>;
    async fn update_verify_service(&self, s: &VerifyService) -> StoreResult<bool>;
    async fn delete_verify_service(&self, account_sid: &str, sid: &str) -> StoreResult<bool>;

    async fn insert_verification(&self, v: &Verification) -> StoreResult<()>;
    async fn verification(&self, service_sid: &str, sid: &str) -> StoreResult<Option<Verification>>;
    /// The newest pending verification of a number in a service.
    async fn pending_verification(&self, service_sid: &str, to: &str) -> StoreResult<Option<Verification>>;
    /// The newest verification of a number in a service, whatever its status.
    async fn latest_verification(&self, service_sid: &str, to: &str) -> StoreResult<Option<Verification>>;
    /// Saves status, checks and sends, if the row still has `expected_checks` checks
    /// (so two concurrent checks cannot both pass as the fifth).
    async fn update_verification(&self, v: &Verification, expected_checks: u32) -> StoreResult<bool>;

    /// Records one send to a number, which its window counts (the other windows count
    /// their [`Tally`]s).
    async fn record_verify_send(
        &self,
        service_sid: &str,
        number: &str,
        prefix: &str,
        ip: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Sends to a number recorded since `since`, counted up to `at_most`: a limit needs
    /// to know only whether it is reached, so a busy number costs no more than its limit.
    async fn count_number_sends(
        &self,
        service_sid: &str,
        number: &str,
        since: Timestamp,
        at_most: u32,
    ) -> StoreResult<u32>;
    /// Adds one to each tally's bucket.
    async fn add_to_windows(&self, service_sid: &str, tallies: &[Tally]) -> StoreResult<()>;
    /// The sum of a key's buckets that end after `since`.
    async fn count_window(&self, service_sid: &str, key: WindowKey, value: &str, since: Timestamp) -> StoreResult<u32>;
    /// Verifications started and approved since `since` for a prefix (its
    /// [`WindowKey::Started`] and [`WindowKey::Approved`] windows).
    async fn prefix_conversion(&self, service_sid: &str, prefix: &str, since: Timestamp) -> StoreResult<(u32, u32)>;

    async fn insert_block(&self, b: &Block) -> StoreResult<()>;
    async fn active_block(&self, service_sid: &str, prefix: &str, now: Timestamp) -> StoreResult<Option<Block>>;
    /// Newest first.
    async fn blocks(&self, service_sid: &str, limit: u64) -> StoreResult<Vec<Block>>;
}

/// A stored flow: its Studio definition, exactly as imported.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFlow {
    pub sid: String,
    pub tenant_id: TenantId,
    pub friendly_name: String,
    pub definition: serde_json::Value,
    pub created_at: Timestamp,
}

/// One run of a flow, saved after every step so a restart cannot lose it.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRun {
    pub sid: String,
    pub flow_sid: String,
    /// `running`, `ended`, `failed`.
    pub status: String,
    /// The state to run next while `running`.
    pub current: Option<String>,
    pub context: serde_json::Value,
    pub steps: Vec<serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// While `running`: until when the executing instance holds the run (renewed at
    /// every step). `None` for runs from before leases, and for finished ones.
    pub lease_until: Option<Timestamp>,
}

/// A number (E.164) to bind to a flow; `move_from_other` allows taking it from the flow
/// it is bound to now.
#[derive(Clone, Debug)]
pub struct Binding {
    pub number: String,
    pub move_from_other: bool,
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Inserts the flow and, in the same transaction, binds `number` to it (see
    /// [`Binding`]): a refused binding leaves no flow behind.
    async fn insert_flow(&self, f: &StoredFlow, number: Option<&Binding>) -> StoreResult<()>;
    async fn flow(&self, tenant: TenantId, sid: &str) -> StoreResult<Option<StoredFlow>>;
    async fn flows(&self, tenant: TenantId) -> StoreResult<Vec<StoredFlow>>;
    async fn delete_flow(&self, tenant: TenantId, sid: &str) -> StoreResult<bool>;
    /// Binds a number to a flow. Fails with `Conflict("number")` when the number is bound
    /// to another flow and the binding does not say to move it.
    async fn bind_number(&self, tenant: TenantId, flow_sid: &str, binding: &Binding) -> StoreResult<()>;
    /// The tenant's bindings as (number, flow sid), by number; one flow's with `flow_sid`.
    async fn bindings(&self, tenant: TenantId, flow_sid: Option<&str>) -> StoreResult<Vec<(String, String)>>;
    async fn flow_for_number(&self, number: &str) -> StoreResult<Option<StoredFlow>>;
    async fn insert_run(&self, r: &FlowRun) -> StoreResult<()>;
    async fn update_run(&self, r: &FlowRun) -> StoreResult<()>;
    async fn run(&self, sid: &str) -> StoreResult<Option<FlowRun>>;
    /// Newest first.
    async fn runs(&self, flow_sid: &str, limit: u64) -> StoreResult<Vec<FlowRun>>;
    /// Runs still `running` whose lease ran out (or that have none): their instance is gone.
    async fn abandoned_runs(&self, now: Timestamp) -> StoreResult<Vec<FlowRun>>;
    /// Saves `r` (failed) only if the run is still abandoned at `now`; false when its
    /// instance renewed the lease or finished it meanwhile.
    async fn fail_abandoned_run(&self, r: &FlowRun, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Fails with `Conflict` when the tenant has an action of that name.
    async fn insert_action(&self, a: &crate::actions::Action) -> StoreResult<()>;
    async fn action(&self, tenant: TenantId, id: ActionId) -> StoreResult<Option<crate::actions::Action>>;
    /// By name.
    async fn actions(&self, tenant: TenantId) -> StoreResult<Vec<crate::actions::Action>>;
    /// Saves the draft (name, code, dependencies, secrets, deployed version); false when gone.
    async fn update_action(&self, a: &crate::actions::Action) -> StoreResult<bool>;
    /// Deletes the action and its versions; false when there was none.
    async fn delete_action(&self, tenant: TenantId, id: ActionId) -> StoreResult<bool>;
    /// Fails with `Conflict` when the action already has a version of that number.
    async fn insert_action_version(&self, v: &crate::actions::ActionVersion) -> StoreResult<()>;
    /// Newest first.
    async fn action_versions(&self, action: ActionId) -> StoreResult<Vec<crate::actions::ActionVersion>>;
    /// In execution order.
    async fn trigger_bindings(
        &self,
        tenant: TenantId,
        trigger: crate::actions::Trigger,
    ) -> StoreResult<Vec<crate::actions::TriggerBinding>>;
    /// Replaces the whole list, in order.
    async fn replace_trigger_bindings(
        &self,
        tenant: TenantId,
        trigger: crate::actions::Trigger,
        bindings: &[crate::actions::TriggerBinding],
    ) -> StoreResult<()>;
    /// Whether any trigger runs the action.
    async fn action_is_bound(&self, action: ActionId) -> StoreResult<bool>;
    /// The trigger's bound actions with their deployed code, in execution order.
    async fn bound_actions(
        &self,
        tenant: TenantId,
        trigger: crate::actions::Trigger,
    ) -> StoreResult<Vec<crate::actions::BoundAction>>;
    async fn insert_execution(&self, e: &crate::actions::ExecutionRecord) -> StoreResult<()>;
    async fn execution(
        &self,
        tenant: TenantId,
        id: crate::ids::ExecutionId,
    ) -> StoreResult<Option<crate::actions::ExecutionRecord>>;
}

#[async_trait]
pub trait OidcStore: Send + Sync {
    /// An active application's OAuth settings (none for a deactivated one).
    async fn oauth_client(&self, id: ApplicationId) -> StoreResult<Option<crate::oidc::OAuthClient>>;
    async fn insert_code(&self, code: &crate::oidc::AuthCode) -> StoreResult<()>;
    /// Marks the code used and returns it; `None` when unknown or used already.
    async fn take_code(&self, digest: &str) -> StoreResult<Option<crate::oidc::AuthCode>>;
    async fn insert_session(&self, s: &crate::oidc::BrowserSession) -> StoreResult<()>;
    async fn session(&self, digest: &str) -> StoreResult<Option<crate::oidc::BrowserSession>>;
    async fn touch_session(&self, digest: &str, now: Timestamp) -> StoreResult<()>;
    /// Records that the session's user has now passed a second factor too.
    async fn set_session_methods(&self, digest: &str, methods: &crate::signin::AuthMethods) -> StoreResult<()>;
    async fn delete_session(&self, digest: &str) -> StoreResult<bool>;
}

/// Columns of sealed values kept by a single-text key, for `tessera reseal` (TOTP
/// secrets and signing keys have their own methods). Flow definitions and run contexts
/// hold `{"sealed": …}` JSON; the others hold the sealed text itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedColumn {
    MessengerSecrets,
    VoicePrompt,
    VerificationCode,
    FlowDefinition,
    FlowRunContext,
    /// The authenticator key a sign-in shows while it waits for a factor to be enrolled.
    SignInEnrolKey,
    /// An action's secrets.
    ActionSecrets,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 7] = [
        SealedColumn::MessengerSecrets,
        SealedColumn::VoicePrompt,
        SealedColumn::VerificationCode,
        SealedColumn::FlowDefinition,
        SealedColumn::FlowRunContext,
        SealedColumn::SignInEnrolKey,
        SealedColumn::ActionSecrets,
    ];
}

#[async_trait]
pub trait SealedValueStore: Send + Sync {
    /// Every row's key and stored value in the column.
    async fn sealed_values(&self, column: SealedColumn) -> StoreResult<Vec<(String, String)>>;
    /// Replaces a stored value if it is still `old`.
    async fn replace_sealed_value(&self, column: SealedColumn, key: &str, old: &str, new: &str) -> StoreResult<bool>;
    /// Every recovery code's keyed hash (`<key id>.<hex>`): these cannot be re-keyed, so
    /// `reseal` tells which older keys they still need.
    async fn recovery_code_hashes(&self) -> StoreResult<Vec<String>>;
}

/// Limits that count what happened recently and then record one more (send windows,
/// attempt counts) are only limits if no two requests count at the same time.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Inside a unit of work, waits until no other unit holds the named limit, then holds
    /// it until this unit ends (commit or rollback), on every instance sharing the
    /// database. Count, decide and record under it: N concurrent requests against a
    /// limit of L then admit at most L. Outside a unit of work it holds nothing.
    async fn hold_limit(&self, key: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait Store:
    LimitStore
    + TenantStore
    + ApplicationStore
    + ApiKeyStore
    + UserStore
    + LoginAttemptStore
    + TokenStore
    + AuditStore
    + TwoFactorStore
    + SignInStore
    + MessengerStore
    + VerifyStore
    + FlowStore
    + ActionStore
    + OidcStore
    + SealedValueStore
{
    /// Whether the database answers; what `/api/status` reports.
    async fn ping(&self) -> StoreResult<()>;

    /// Starts a unit of work: every method of the returned store runs in one database
    /// transaction, made visible at once by [`Tx::commit`]. Dropped without a commit
    /// (an error part-way, a panic, a cancelled request), nothing it wrote remains.
    /// Called on a unit of work, it joins it: the inner commit is left to the outer one.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;

    /// Runs `f` once what was written through this store is committed: at once outside a
    /// unit of work, at the unit's commit inside one, never if the unit rolls back (the
    /// metrics count only what was kept).
    fn after_commit(&self, f: AfterCommit) {
        f();
    }
}

/// Work that waits for a commit ([`Store::after_commit`]).
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// A unit of work: the whole store, inside one transaction.
#[async_trait]
pub trait Tx: Store {
    /// Makes every write of the unit visible at once. A failed commit wrote nothing.
    async fn commit(&self) -> StoreResult<()>;
}
