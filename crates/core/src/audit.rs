//! The audit log: security events with who, when, from where and how it ended.

use serde_json::Value;

use crate::Timestamp;
use crate::ids::{TenantId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditKind {
    LoginSuccess,
    LoginFailure,
    LoginLocked,
    UserCreated,
    UserUpdated,
    UserDeleted,
    ApiKeyCreated,
    TokenRefreshed,
    Logout,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSuccess => "login.success",
            AuditKind::LoginFailure => "login.failure",
            AuditKind::LoginLocked => "login.locked",
            AuditKind::UserCreated => "user.created",
            AuditKind::UserUpdated => "user.updated",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::ApiKeyCreated => "api_key.created",
            AuditKind::TokenRefreshed => "token.refreshed",
            AuditKind::Logout => "logout",
        }
    }
}

#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub tenant_id: TenantId,
    pub at: Timestamp,
    pub kind: AuditKind,
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    /// `success`, `failure`, `locked`, …
    pub outcome: &'static str,
    /// Extra context. Never a secret, a code or a password.
    pub detail: Value,
}

/// An event as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Timestamp,
    pub event: String,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub outcome: String,
    pub detail: Value,
}
