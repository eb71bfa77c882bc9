//! The audit log: security events with who, when, from where and how it ended.

use serde_json::Value;

use crate::Timestamp;
use crate::ids::{ApiKeyId, TenantId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditKind {
    LoginSuccess,
    LoginFailure,
    LoginLocked,
    /// Refused after the first factor (by a script), with the reason.
    LoginDenied,
    /// Sent to a script's page after the first factor, to come back and resume.
    SignInRedirected,
    UserCreated,
    UserUpdated,
    UserDeleted,
    ApiKeyCreated,
    ApiKeyRevoked,
    TokenRefreshed,
    Logout,
    TwoFactorChallenge,
    /// The application wants a second factor and the user has none: the sign-in waits
    /// for one to be enrolled.
    EnrolmentRequired,
    TwoFactorCodeSent,
    TwoFactorSuccess,
    TwoFactorFailure,
    FactorEnabled,
    FactorDisabled,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    TrustTokenIssued,
    VerifyPending,
    /// A new verification whose code could not be delivered (outcome `failed`), or a
    /// resend that could not (`resend_failed`).
    VerifyFailed,
    VerifyApproved,
    VerifyCanceled,
    VerifyExpired,
    VerifyMaxAttempts,
    VerifyBlocked,
    /// Counted in metrics only: every code sent by the Verify API, resends included.
    VerifySent,
    ApplicationCreated,
    /// Settings replaced, or a deactivated application reactivated.
    ApplicationUpdated,
    /// Deactivated (outcome `deactivated`) or removed (`deleted`).
    ApplicationDeleted,
    MessengerCreated,
    MessengerUpdated,
    MessengerDeleted,
    ActionCreated,
    ActionUpdated,
    ActionDeleted,
    /// A new version deployed (outcome `deployed`) or an old one deployed again (`rolled_back`).
    ActionDeployed,
    /// A trigger's list of actions replaced.
    ActionBindingsUpdated,
    /// An application got a sign-in through `/oauth2/authorize` (an authorization code):
    /// outcome `session` when the browser session alone sufficed (single sign-on), `login`
    /// right after a sign-in.
    OAuthAuthorized,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSuccess => "login.success",
            AuditKind::LoginFailure => "login.failure",
            AuditKind::LoginLocked => "login.locked",
            AuditKind::LoginDenied => "login.denied",
            AuditKind::SignInRedirected => "login.redirected",
            AuditKind::UserCreated => "user.created",
            AuditKind::UserUpdated => "user.updated",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::ApiKeyCreated => "api_key.created",
            AuditKind::ApiKeyRevoked => "api_key.revoked",
            AuditKind::TokenRefreshed => "token.refreshed",
            AuditKind::Logout => "logout",
            AuditKind::TwoFactorChallenge => "two_factor.challenge",
            AuditKind::EnrolmentRequired => "two_factor.enrolment_required",
            AuditKind::TwoFactorCodeSent => "two_factor.code_sent",
            AuditKind::TwoFactorSuccess => "two_factor.success",
            AuditKind::TwoFactorFailure => "two_factor.failure",
            AuditKind::FactorEnabled => "two_factor.enabled",
            AuditKind::FactorDisabled => "two_factor.disabled",
            AuditKind::RecoveryCodeUsed => "two_factor.recovery_code_used",
            AuditKind::RecoveryCodesRegenerated => "two_factor.recovery_codes_regenerated",
            AuditKind::TrustTokenIssued => "two_factor.trust_issued",
            AuditKind::VerifyPending => "verify.pending",
            AuditKind::VerifyFailed => "verify.failed",
            AuditKind::VerifyApproved => "verify.approved",
            AuditKind::VerifyCanceled => "verify.canceled",
            AuditKind::VerifyExpired => "verify.expired",
            AuditKind::VerifyMaxAttempts => "verify.max_attempts_reached",
            AuditKind::VerifyBlocked => "verify.blocked",
            AuditKind::VerifySent => "verify.sent",
            AuditKind::ApplicationCreated => "application.created",
            AuditKind::ApplicationUpdated => "application.updated",
            AuditKind::ApplicationDeleted => "application.deleted",
            AuditKind::MessengerCreated => "messenger.created",
            AuditKind::MessengerUpdated => "messenger.updated",
            AuditKind::MessengerDeleted => "messenger.deleted",
            AuditKind::ActionCreated => "action.created",
            AuditKind::ActionUpdated => "action.updated",
            AuditKind::ActionDeleted => "action.deleted",
            AuditKind::ActionDeployed => "action.deployed",
            AuditKind::ActionBindingsUpdated => "action.bindings_updated",
            AuditKind::OAuthAuthorized => "oauth.authorized",
        }
    }
}

#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub tenant_id: TenantId,
    pub at: Timestamp,
    pub kind: AuditKind,
    /// Whom the event concerns.
    pub user_id: Option<UserId>,
    /// Who acted, when the request said (an administrator's key).
    pub actor: Option<Actor>,
    pub ip: Option<String>,
    /// `success`, `failure`, `locked`, …
    pub outcome: &'static str,
    /// Extra context. Never a secret, a code or a password.
    pub detail: Value,
}

/// Who made a request: an API key, or a signed-in user acting for themself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    User(UserId),
}

impl Actor {
    /// `apiKey:{id}` or `user:{id}`: what the audit log keeps and shows.
    pub fn as_string(&self) -> String {
        match self {
            Actor::ApiKey(id) => format!("apiKey:{id}"),
            Actor::User(id) => format!("user:{id}"),
        }
    }
}

/// An event as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Timestamp,
    pub event: String,
    pub user_id: Option<String>,
    /// [`Actor::as_string`], as stored.
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub outcome: String,
    pub detail: Value,
}
