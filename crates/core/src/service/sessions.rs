//! The tokens a sign-in yields: issuing them, refresh, logout, revocation.

use serde_json::{Value, json};

use super::{Identity, RequestContext};
use crate::apikey::Admin;
use crate::audit::{AuditKind, AuditRecord};
use crate::ids::{ApplicationId, UserId};
use crate::login::LoginSuccess;
use crate::secret::Secret;
use crate::signin::{AfterFirstFactor, AuthMethod, AuthMethods, PostLoginCall, REFRESH_TOKEN, SignIn};
use crate::store::Store;
use crate::tokens::{RefreshToken, TokenError};
use crate::twofactor::TwoFactorMethod;
use crate::user::User;
use crate::{CoreError, Timestamp};

/// What a refresh gave.
#[derive(Debug)]
pub enum Refreshed {
    Token {
        jwt: String,
        user: Box<User>,
    },
    /// Unknown, expired, revoked, or its user or application is gone.
    Invalid,
    /// A post-login action refused it.
    Denied {
        reason: String,
    },
}

impl Identity {
    /// The tokens of a sign-in about to succeed. Signed before its unit of work begins:
    /// a signature is the costliest step of a sign-in, and on SQLite the unit holds the
    /// one writer. Unused if the unit does not commit.
    pub(super) fn issue_tokens(
        &self,
        user: &User,
        application_id: ApplicationId,
        no_jwt: bool,
        passed: &AuthMethods,
        claims: &serde_json::Map<String, Value>,
        now: Timestamp,
    ) -> Result<Issued, CoreError> {
        if no_jwt {
            return Ok(Issued { passed: passed.clone(), token: None, refresh: None });
        }
        let token = self.tokens.issue(user, application_id, now, passed.authentication_type(), claims, now)?;
        let refresh = RefreshToken::generate(user, application_id, passed, self.kernel.policies.refresh_ttl, now)?;
        Ok(Issued { passed: passed.clone(), token: Some(token), refresh: Some(refresh) })
    }

    /// The end of every successful sign-in: the refresh token and the audit entry,
    /// written through `tx`, the sign-in's unit of work.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn complete_login(
        &self,
        tx: &dyn Store,
        user: User,
        methods: Vec<TwoFactorMethod>,
        application_id: ApplicationId,
        issued: &Issued,
        method: AuthMethod,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginSuccess, CoreError> {
        if let Some((_, record)) = &issued.refresh {
            tx.insert_refresh_token(record).await?;
        }
        let detail = json!({"applicationId": application_id.to_string(), "method": method.as_str()});
        self.kernel
            .auditor
            .record(tx, self.kernel.event(AuditKind::LoginSuccess, Some(user.id), "success", ctx, detail, now))
            .await?;
        Ok(LoginSuccess {
            user,
            application_id,
            token: issued.token.clone(),
            refresh_token: issued.refresh.as_ref().map(|(secret, _)| secret.clone()),
            trust_token: None,
            methods,
            passed: issued.passed.clone(),
            return_to: None,
        })
    }

    // ---- tokens ----

    pub fn validate_jwt(&self, token: &str, now: Timestamp) -> Result<Value, TokenError> {
        self.tokens.validate(token, now)
    }

    /// A new access token for a live refresh token: `Invalid` when it is unknown,
    /// expired, revoked, or its user is gone or deactivated; `Denied` when a post-login
    /// action refuses it (they run on a refresh too, as Auth0's do, with the protocol
    /// `oauth2-refresh-token`; they cannot redirect it, and their claims are in the token).
    pub async fn refresh(
        &self,
        refresh: &Secret,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Refreshed, CoreError> {
        let Some(record) = self.store.find_refresh_token(&refresh.digest()).await? else {
            return Ok(Refreshed::Invalid);
        };
        if !record.is_live(now) || !self.applications.is_active(record.application_id).await? {
            return Ok(Refreshed::Invalid);
        }
        let Some(user) = self.store.get_user(record.tenant_id, record.user_id).await?.filter(|u| u.active) else {
            return Ok(Refreshed::Invalid);
        };
        let ctx = &ctx.in_tenant(record.tenant_id);
        // The sign-in this refresh stands for, as the scripts see it; never stored.
        let sign_in = SignIn {
            user_id: Some(user.id),
            passed: record.methods.clone(),
            ..SignIn::begin(String::new(), record.tenant_id, record.application_id, ctx.signals(), now, now)
        };
        let factors = self.store.methods(user.id).await?;
        let call = PostLoginCall {
            sign_in: &sign_in,
            user: &user,
            factors: &factors,
            resumed: None,
            interactive: false,
            state: "",
            protocol: "oauth2-refresh-token",
            now,
        };
        let (decided, scripts) = self.post_login.0.after_first_factor(call).await?;
        let reason = match decided {
            AfterFirstFactor::Continue => None,
            AfterFirstFactor::Deny { reason } => Some(reason),
            AfterFirstFactor::Redirect { .. } => Some("A refresh cannot be redirected.".to_owned()),
        };
        if let Some(reason) = reason {
            let detail = json!({"applicationId": record.application_id.to_string(), "reason": reason});
            self.kernel.audit(AuditKind::TokenRefreshed, Some(user.id), "denied", ctx, detail, now).await?;
            return Ok(Refreshed::Denied { reason });
        }
        let claims = &scripts.access_claims;
        let (jwt, _) =
            self.tokens.issue(&user, record.application_id, record.created_at, REFRESH_TOKEN, claims, now)?;
        self.kernel.audit(AuditKind::TokenRefreshed, Some(user.id), "success", ctx, json!({}), now).await?;
        Ok(Refreshed::Token { jwt, user: Box::new(user) })
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
        self.kernel.audit(AuditKind::Logout, user_id, "success", ctx, json!({"global": global}), now).await
    }

    /// Admin revocation: every refresh token of a user.
    pub async fn revoke_user_tokens(&self, admin: &Admin, user: UserId, now: Timestamp) -> Result<u64, CoreError> {
        self.users.get(admin, user).await?;
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

    /// A user's recent sign-ins (for their account page).
    pub async fn recent_sign_ins(&self, user: UserId, limit: u64) -> Result<Vec<AuditRecord>, CoreError> {
        Ok(self.store.user_events(user, AuditKind::LoginSuccess.as_str(), limit).await?)
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

/// A sign-in's access token and refresh token, made before its unit of work.
pub(super) struct Issued {
    /// The methods the tokens were issued for.
    passed: AuthMethods,
    token: Option<(String, crate::tokens::Claims)>,
    refresh: Option<(Secret, RefreshToken)>,
}
