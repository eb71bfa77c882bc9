//! Sign-in and the tokens it yields: password login, refresh, logout, revocation.

use serde_json::{Value, json};

use super::{Identity, RequestContext};
use crate::apikey::Admin;
use crate::audit::{AuditKind, AuditRecord};
use crate::ids::{ApplicationId, UserId};
use crate::login::{LoginOutcome, LoginRequest, LoginSuccess};
use crate::oidc::MfaPolicy;
use crate::secret::Secret;
use crate::signin::{AuthMethod, AuthMethods, REFRESH_TOKEN, SecondFactor, second_factor};
use crate::store::Store;
use crate::tokens::{RefreshToken, TokenError};
use crate::twofactor::{Challenge, TwoFactorMethod};
use crate::user::User;
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp, random};

impl Identity {
    pub async fn login(
        &self,
        req: LoginRequest,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        let application = match req.application_id {
            None => self.default_application.clone(),
            Some(id) => match self.store.get_application(id).await? {
                Some(app) if app.active => app,
                Some(_) => {
                    let msg = "The application named by [applicationId] is deactivated.";
                    return Err(ValidationErrors::field("applicationId", "inactive", msg).into());
                }
                None => {
                    let msg = "The [applicationId] property does not name an application.";
                    return Err(ValidationErrors::field("applicationId", "invalid", msg).into());
                }
            },
        };
        let tenant = application.tenant_id;
        let lockout = self.policies.lockout;

        // The attempt is counted before the password is checked (and cleared if it is
        // right), so 50 concurrent guesses run at most `max_failures` argon2 checks.
        let (attempts, locked) =
            self.store.reserve_login_attempt(tenant, &req.login_id, now, now.minus(lockout.window)).await?;
        let locked = locked.or_else(|| (attempts > lockout.max_failures).then(|| now.plus(lockout.lock_for)));
        if let Some(until) = locked {
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
            let failures = attempts;
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
        let methods = self.store.methods(user.id).await?;
        let trusted = !methods.is_empty() && self.is_trusted(&user, req.trust_token.as_ref(), now).await?;
        let passed = AuthMethods::of(&[AuthMethod::Password]);
        let passed = if trusted { passed.with(AuthMethod::TrustedDevice) } else { passed };
        // FusionAuth's login API challenges whoever has a factor (its `whenEnrolled`),
        // whatever the application's policy for the hosted pages.
        let decision = second_factor(MfaPolicy::WhenEnrolled, false, !methods.is_empty(), &passed);
        if decision == SecondFactor::Pass {
            let challenge_id = Secret::new(random::token(32)?);
            let challenge = Challenge {
                digest: challenge_id.digest(),
                user_id: user.id,
                application_id: application.id,
                created_at: now,
                expires_at: now.plus(self.policies.two_factor.challenge_ttl),
                failures: 0,
                spent: false,
                code: None,
                return_to: req.return_to.clone(),
            };
            self.store.insert_challenge(&challenge).await?;
            let detail = json!({"applicationId": application.id.to_string()});
            self.audit(AuditKind::TwoFactorChallenge, Some(user.id), "issued", ctx, detail, now).await?;
            return Ok(LoginOutcome::TwoFactorRequired { challenge_id, methods });
        }
        // With factors but no challenge, a remembered device vouched for the second step.
        let method = if trusted { AuthMethod::TrustedDevice } else { AuthMethod::Password };
        let issued = self.issue_tokens(&user, application.id, req.no_jwt, &passed, now)?;
        let success = self
            .retrying(|| async {
                let tx = self.store.begin().await?;
                let (user, methods) = (user.clone(), methods.clone());
                let mut success =
                    self.complete_login(&*tx, user, methods, application.id, &issued, method, ctx, now).await?;
                tx.commit().await?;
                success.return_to = req.return_to.clone();
                Ok(success)
            })
            .await?;
        Ok(LoginOutcome::Success(Box::new(success)))
    }

    /// The tokens of a sign-in about to succeed. Signed before its unit of work begins:
    /// a signature is the costliest step of a sign-in, and on SQLite the unit holds the
    /// one writer. Unused if the unit does not commit.
    pub(super) fn issue_tokens(
        &self,
        user: &User,
        application_id: ApplicationId,
        no_jwt: bool,
        passed: &AuthMethods,
        now: Timestamp,
    ) -> Result<Issued, CoreError> {
        if no_jwt {
            return Ok(Issued { passed: passed.clone(), token: None, refresh: None });
        }
        let token = self.tokens.issue(user, application_id, now, passed.authentication_type(), now)?;
        let refresh = RefreshToken::generate(user, application_id, passed, self.policies.refresh_ttl, now)?;
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
        self.record(tx, self.event(AuditKind::LoginSuccess, Some(user.id), "success", ctx, detail, now)).await?;
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
        if !record.is_live(now) || !self.application_active(record.application_id).await? {
            return Ok(None);
        }
        let Some(user) = self.store.get_user(record.tenant_id, record.user_id).await?.filter(|u| u.active) else {
            return Ok(None);
        };
        let (jwt, _) = self.tokens.issue(&user, record.application_id, record.created_at, REFRESH_TOKEN, now)?;
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
