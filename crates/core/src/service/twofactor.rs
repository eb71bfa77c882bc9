//! Second factors: the challenge after the password, enrolling and removing factors,
//! recovery codes and remembered devices.

use serde_json::json;

use super::{Identity, RequestContext};
use crate::apikey::Admin;
use crate::audit::{Actor, AuditKind};
use crate::ids::{TenantId, UserId};
use crate::login::LoginSuccess;
use crate::messaging::{self, Channel, OutboundMessage, Purpose, Verification};
use crate::phone::PhoneNumber;
use crate::secret::Secret;
use crate::signin::{AuthMethod, SignIn, Stage};
use crate::store::{Store, Tx};
use crate::totp::{self, TotpParams};
use crate::twofactor::{
    self as tf, Authenticator, MethodId, MethodKind, OtpCode, PendingCode, TrustToken, TwoFactorMethod, UserCode,
};
use crate::user::{LoginId, User};
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp, random};

/// Permission to manage one user's factors: an admin key for the user's tenant, or
/// the user's own access token. Only `Identity` makes one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UserScope {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// Who it was granted to, for the audit log.
    pub actor: Actor,
}

impl UserScope {
    /// The request as made by whoever the scope was granted to (the key, or the user),
    /// in the user's tenant: what a use case holding the scope audits with.
    fn acting(&self, ctx: &RequestContext) -> RequestContext {
        ctx.acting(self.actor).in_tenant(self.tenant_id)
    }
}

pub struct TwoFactorLoginRequest {
    pub challenge_id: Secret,
    pub code: String,
    pub trust_computer: bool,
    pub no_jwt: bool,
}

#[derive(Debug)]
pub enum TwoFactorLoginOutcome {
    Success(Box<LoginSuccess>),
    /// FusionAuth's 421.
    WrongCode,
    /// Too many wrong codes in a row for this account (across challenges).
    Locked {
        until: Timestamp,
    },
    /// Unknown, expired or spent challenge.
    NotFound,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    NotFound,
    RateLimited,
    /// The fraud guard refused (geo permissions, a blocked prefix, a window).
    Blocked(String),
    /// The messenger could not deliver; the text is for the log and the admin.
    Failed(String),
}

#[derive(Debug)]
pub enum EnableOutcome {
    /// `recovery_codes` when this was the user's first factor.
    Enabled {
        method: TwoFactorMethod,
        recovery_codes: Option<Vec<String>>,
    },
    WrongCode,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DisableOutcome {
    Disabled,
    WrongCode,
    /// Too many wrong codes: no code is checked until then.
    Locked {
        until: Timestamp,
    },
    NotFound,
}

/// Whether a code proved that the caller holds one of the user's factors.
enum Possession {
    Proven,
    Wrong,
    Locked { until: Timestamp },
}

/// Where a code goes and why.
struct CodeRequest<'a> {
    /// The user's tenant: its messengers deliver the code.
    tenant: TenantId,
    user: UserId,
    to: &'a PhoneNumber,
    purpose: Purpose,
    channel: Channel,
    locale: &'a str,
    /// The name the message gives: the application a sign-in is for, else the default.
    application: &'a str,
}

enum Prepared {
    /// A verification service owns the code; store its marker.
    Verification(Verification),
    /// Our own code: store its hash, then send it.
    Own(String),
    Refused(SendOutcome),
}

const CHALLENGE_PURPOSE: &str = "challenge";
const RECOVERY_PURPOSE: &str = "recovery";
const MANAGE_PURPOSE: &str = "manage";

/// Where an account's consecutive second-factor failures are counted (beside the
/// login-id failure counters, under a key no login id can take).
fn factor_failures_key(user: UserId) -> LoginId {
    LoginId::internal(format!("2fa:{user}"))
}

/// Where wrong codes offered to manage factors are counted: a session or token can try
/// codes without a password each time, so they get what one twoFactorId gets
/// (`max_attempts` per `challenge_ttl`) on top of the account's run shared with sign-in.
fn manage_failures_key(user: UserId) -> LoginId {
    LoginId::internal(format!("2fa-manage:{user}"))
}

pub(super) fn enable_purpose(phone: &PhoneNumber) -> String {
    format!("enable:{}", phone.as_str())
}

impl Identity {
    // ---- who may manage a user's factors ----

    pub async fn scope_admin(&self, admin: &Admin, user: UserId) -> Result<UserScope, CoreError> {
        self.users.get(admin, user).await?;
        Ok(UserScope { tenant_id: admin.tenant_id, user_id: user, actor: Actor::ApiKey(admin.key_id) })
    }

    /// The user's own access token grants access to their own factors only.
    pub fn scope_bearer(&self, jwt: &str, user: UserId, now: Timestamp) -> Option<UserScope> {
        let claims = self.validate_jwt(jwt, now).ok()?;
        let sub: UserId = claims.get("sub")?.as_str()?.parse().ok()?;
        let tenant_id: TenantId = claims.get("tid")?.as_str()?.parse().ok()?;
        (sub == user).then_some(UserScope { tenant_id, user_id: user, actor: Actor::User(user) })
    }

    /// A signed-in browser manages its own user's factors.
    pub fn scope_session(&self, session: &crate::oidc::BrowserSession) -> UserScope {
        UserScope { tenant_id: session.tenant_id, user_id: session.user_id, actor: Actor::User(session.user_id) }
    }

    /// Whether a browser session may change its user's second steps: only one that
    /// passed a second step, once the user has any. A password alone (a session from
    /// before a factor was added through the API, say) must not add a phone or mint
    /// recovery codes.
    /// The signed-in user of a browser session, if still there.
    pub async fn session_user(&self, session: &crate::oidc::BrowserSession) -> Result<Option<User>, CoreError> {
        Ok(self.store.get_user(session.tenant_id, session.user_id).await?)
    }

    pub async fn session_may_manage_factors(&self, session: &crate::oidc::BrowserSession) -> Result<bool, CoreError> {
        Ok(session.has_mfa() || self.store.methods(session.user_id).await?.is_empty())
    }

    pub async fn methods(&self, user: UserId) -> Result<Vec<TwoFactorMethod>, CoreError> {
        Ok(self.store.methods(user).await?)
    }

    pub async fn recovery_code_count(&self, scope: &UserScope) -> Result<u32, CoreError> {
        Ok(self.store.recovery_code_count(scope.user_id).await?)
    }

    /// The TOTP settings new authenticators get, and the issuer apps show.
    pub fn totp_params(&self) -> TotpParams {
        TotpParams::default()
    }

    pub fn totp_issuer(&self) -> &str {
        &self.kernel.policies.two_factor.issuer
    }

    pub(super) async fn is_trusted(
        &self,
        user: &User,
        token: Option<&Secret>,
        now: Timestamp,
    ) -> Result<bool, CoreError> {
        let Some(token) = token else { return Ok(false) };
        Ok(self.store.trust_token(&token.digest()).await?.is_some_and(|t| t.user_id == user.id && now < t.expires_at))
    }

    /// The sign-in `id` names if it waits for a second factor (FusionAuth's
    /// `twoFactorId`): live, at that stage, and not out of attempts.
    async fn live_challenge(&self, id: &Secret, now: Timestamp) -> Result<Option<SignIn>, CoreError> {
        let max = self.kernel.policies.two_factor.max_attempts;
        let found = self.store.sign_in(&id.digest()).await?;
        Ok(found.filter(|c| c.is_live(now) && c.stage == Stage::NeedFactor && c.failures < max))
    }

    pub(super) async fn challenge_user(&self, c: &SignIn) -> Result<Option<User>, CoreError> {
        let Some(user) = c.user_id else { return Ok(None) };
        Ok(self.store.get_user(c.tenant_id, user).await?.filter(|u| u.active))
    }

    // ---- sending codes ----

    /// Rate limit, then either a verification service (Twilio Verify) takes over and
    /// its marker is returned, or a fresh code of our own is. The caller stores what it
    /// gets *before* anything is delivered, so whatever arrives is what is accepted.
    async fn prepare_code(
        &self,
        req: &CodeRequest<'_>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Prepared, CoreError> {
        let p = &self.kernel.policies.two_factor;
        if !self.store.try_record_send(req.user, now, now.minus(p.send_window), p.send_limit).await? {
            let detail = json!({"channel": req.channel.as_str()});
            self.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "rate_limited", ctx, detail, now).await?;
            return Ok(Prepared::Refused(SendOutcome::RateLimited));
        }
        if let Some(refusal) = self.guards.guard_mfa_send(req.to, ctx, now).await? {
            return Ok(Prepared::Refused(SendOutcome::Blocked(refusal.detail)));
        }
        match self.messenger.start_verification(&self.message(req, "")).await {
            Ok(Some(v)) => {
                let detail = json!({"channel": req.channel.as_str(), "purpose": req.purpose.as_str(), "provider": "twilio-verify"});
                self.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "sent", ctx, detail, now).await?;
                Ok(Prepared::Verification(v))
            }
            Ok(None) => Ok(Prepared::Own(tf::numeric_code(p.code_digits)?)),
            Err(e) => {
                let detail = json!({"channel": req.channel.as_str(), "error": e.to_string()});
                self.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "failed", ctx, detail, now).await?;
                Ok(Prepared::Refused(SendOutcome::Failed(e.to_string())))
            }
        }
    }

    fn message(&self, req: &CodeRequest<'_>, code: &str) -> OutboundMessage {
        OutboundMessage {
            to: req.to.clone(),
            channel: req.channel,
            purpose: req.purpose,
            locale: req.locale.to_owned(),
            text: messaging::render(req.purpose, req.channel, req.locale, code, req.application),
            code: Secret::new(code),
            tenant: Some(req.tenant),
        }
    }

    /// Sends our own (already stored) code.
    async fn deliver(
        &self,
        req: &CodeRequest<'_>,
        code: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let outcome = match self.messenger.send(&self.message(req, code)).await {
            Ok(receipt) => {
                let detail = json!({"channel": req.channel.as_str(), "purpose": req.purpose.as_str(), "provider": receipt.provider});
                self.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "sent", ctx, detail, now).await?;
                SendOutcome::Sent
            }
            Err(e) => {
                let detail = json!({"channel": req.channel.as_str(), "error": e.to_string()});
                self.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "failed", ctx, detail, now).await?;
                SendOutcome::Failed(e.to_string())
            }
        };
        Ok(outcome)
    }

    /// `POST /api/two-factor/send/{twoFactorId}`: a fresh code for an SMS method of the
    /// challenge's user. It replaces the previous code; failures are not reset.
    pub async fn send_challenge_code(
        &self,
        challenge_id: &Secret,
        method_id: Option<&MethodId>,
        channel: Channel,
        locale: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let Some(challenge) = self.live_challenge(challenge_id, now).await? else { return Ok(SendOutcome::NotFound) };
        let ctx = &ctx.in_tenant(challenge.tenant_id);
        let Some(user) = self.challenge_user(&challenge).await? else { return Ok(SendOutcome::NotFound) };
        let methods = self.store.methods(user.id).await?;
        let method = methods.iter().filter(|m| m.phone().is_some()).find(|m| method_id.is_none_or(|id| &m.id == id));
        let Some(method) = method else { return Ok(SendOutcome::NotFound) };
        let Some(phone) = method.phone() else { return Ok(SendOutcome::NotFound) };
        let application = self.applications.name_of(challenge.application_id).await?;
        let req = CodeRequest {
            tenant: user.tenant_id,
            user: user.id,
            to: phone,
            purpose: Purpose::SecondFactor,
            channel,
            locale,
            application: &application,
        };
        let (hash, own) = match self.prepare_code(&req, ctx, now).await? {
            Prepared::Refused(outcome) => return Ok(outcome),
            Prepared::Verification(v) => (v.to_marker(), None),
            Prepared::Own(code) => (self.kernel.sealer.hash_code(CHALLENGE_PURPOSE, &code), Some(code)),
        };
        let pending = PendingCode {
            method_id: method.id.clone(),
            channel,
            hash,
            expires_at: now.plus(self.kernel.policies.two_factor.code_ttl),
        };
        self.store.set_sign_in_code(&challenge.digest, &pending).await?;
        match own {
            Some(code) => self.deliver(&req, &code, ctx, now).await,
            None => Ok(SendOutcome::Sent),
        }
    }

    /// `POST /api/two-factor/send` with a phone: the code that proves the phone before
    /// it becomes a factor.
    pub async fn send_enrollment_code(
        &self,
        scope: &UserScope,
        phone: &PhoneNumber,
        channel: Channel,
        locale: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let ctx = &scope.acting(ctx);
        let application = &self.applications.default_application().name;
        let req = CodeRequest {
            tenant: scope.tenant_id,
            user: scope.user_id,
            to: phone,
            purpose: Purpose::Enrollment,
            channel,
            locale,
            application,
        };
        self.put_user_code_and_send(enable_purpose(phone), &req, ctx, now).await
    }

    /// `POST /api/two-factor/send` with a method id: a code to an existing SMS method,
    /// used to prove possession before disabling it.
    pub async fn send_method_code(
        &self,
        scope: &UserScope,
        method_id: &MethodId,
        channel: Channel,
        locale: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let ctx = &scope.acting(ctx);
        let methods = self.store.methods(scope.user_id).await?;
        let Some(phone) = methods.iter().find(|m| &m.id == method_id).and_then(|m| m.phone().cloned()) else {
            return Ok(SendOutcome::NotFound);
        };
        let application = &self.applications.default_application().name;
        let req = CodeRequest {
            tenant: scope.tenant_id,
            user: scope.user_id,
            to: &phone,
            purpose: Purpose::SecondFactor,
            channel,
            locale,
            application,
        };
        self.put_user_code_and_send(MANAGE_PURPOSE.into(), &req, ctx, now).await
    }

    async fn put_user_code_and_send(
        &self,
        purpose: String,
        req: &CodeRequest<'_>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let (hash, own) = match self.prepare_code(req, ctx, now).await? {
            Prepared::Refused(outcome) => return Ok(outcome),
            Prepared::Verification(v) => (v.to_marker(), None),
            Prepared::Own(code) => (self.kernel.sealer.hash_code(&purpose, &code), Some(code)),
        };
        let record = UserCode {
            user_id: req.user,
            hash,
            purpose,
            expires_at: now.plus(self.kernel.policies.two_factor.code_ttl),
            failures: 0,
        };
        self.store.put_user_code(&record).await?;
        match own {
            Some(code) => self.deliver(req, &code, ctx, now).await,
            None => Ok(SendOutcome::Sent),
        }
    }

    /// Whether `code` matches a stored code hash, or (for a code owned by a
    /// verification service) whether the service approves it.
    async fn code_matches(&self, stored: &str, purpose: &str, code: &str) -> bool {
        match Verification::from_marker(stored) {
            None => self.kernel.sealer.verify_code(stored, purpose, code),
            // Only digits are worth one of the service's limited checks.
            Some(_) if !code.bytes().all(|b| b.is_ascii_digit()) || code.is_empty() => false,
            Some(v) => match self.messenger.check_verification(&v, code).await {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(error = %e, "verification check failed");
                    false
                }
            },
        }
    }

    /// Feedback to a verification service that its code led to a sign-in.
    async fn approve_if_owned(&self, stored: &str) {
        if let Some(v) = Verification::from_marker(stored)
            && let Err(e) = self.messenger.approve_verification(&v).await
        {
            tracing::warn!(error = %e, "could not send verification feedback");
        }
    }

    /// Checks and consumes a user code; counts a failure otherwise and drops the code
    /// after too many.
    pub(super) async fn take_user_code(
        &self,
        user: UserId,
        purpose: &str,
        code: &str,
        now: Timestamp,
    ) -> Result<bool, CoreError> {
        let Some(stored) = self.store.user_code(user, purpose).await? else { return Ok(false) };
        if now < stored.expires_at && self.code_matches(&stored.hash, purpose, code).await {
            let taken = self.store.take_user_code(user, purpose, &stored.hash).await?;
            if taken {
                self.approve_if_owned(&stored.hash).await;
            }
            return Ok(taken);
        }
        if self.store.record_user_code_failure(user, purpose).await? >= self.kernel.policies.two_factor.max_attempts {
            self.store.take_user_code(user, purpose, &stored.hash).await?;
        }
        Ok(false)
    }

    // ---- checking codes ----

    /// A TOTP code from any of the user's authenticators, each step accepted once.
    async fn check_totp(
        &self,
        user: UserId,
        methods: &[TwoFactorMethod],
        code: &str,
        now: Timestamp,
    ) -> Result<bool, CoreError> {
        for m in methods {
            let MethodKind::Authenticator(a) = &m.kind else { continue };
            let Some(otp) = OtpCode::parse(code, a.params.digits) else { continue };
            let secret = self.kernel.sealer.open(&a.sealed_secret, &tf::secret_context(user, &m.id))?;
            let window = self.kernel.policies.two_factor.totp_window;
            if let Some(step) = totp::matching_step(&a.params, &secret, otp.as_str(), now, window)
                && self.store.advance_totp_step(user, &m.id, step).await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn use_recovery_code(&self, user: UserId, code: &str) -> Result<bool, CoreError> {
        let normalized = tf::normalize_recovery_code(code);
        if normalized.len() != 10 {
            return Ok(false);
        }
        Ok(self.store.use_recovery_code(user, &self.kernel.sealer.code_hashes(RECOVERY_PURPOSE, &normalized)).await?)
    }

    /// The factors a live challenge can be answered with, so a page shown again (after a
    /// wrong code, or after sending one) still offers every way in. `None` once the
    /// challenge is spent, expired or locked.
    pub async fn challenge_methods(
        &self,
        challenge_id: &Secret,
        now: Timestamp,
    ) -> Result<Option<Vec<TwoFactorMethod>>, CoreError> {
        let Some(challenge) = self.live_challenge(challenge_id, now).await? else { return Ok(None) };
        let Some(user) = self.challenge_user(&challenge).await? else { return Ok(None) };
        Ok(Some(self.store.methods(user.id).await?))
    }

    /// `POST /api/two-factor/login`.
    pub async fn two_factor_login(
        &self,
        req: TwoFactorLoginRequest,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<TwoFactorLoginOutcome, CoreError> {
        let Some(challenge) = self.live_challenge(&req.challenge_id, now).await? else {
            return Ok(TwoFactorLoginOutcome::NotFound);
        };
        let ctx = &ctx.in_tenant(challenge.tenant_id);
        let Some(user) = self.challenge_user(&challenge).await? else { return Ok(TwoFactorLoginOutcome::NotFound) };
        let account_key = factor_failures_key(user.id);
        let account_failures = self.store.login_failures(user.tenant_id, &account_key).await?;
        if let Some(until) = account_failures.and_then(|f| f.locked_at(now)) {
            return Ok(TwoFactorLoginOutcome::Locked { until });
        }
        let code = req.code.trim();
        let methods = self.store.methods(user.id).await?;
        let max_attempts = self.kernel.policies.two_factor.max_attempts;

        // The common case, a current authenticator code, in one unit of work: the attempt
        // counted, the TOTP step taken, the challenge spent and the tokens written commit
        // together (one commit, and on SQLite one turn at the writer, instead of three).
        let mut counted = None;
        if let Some((method_id, step)) = self.totp_candidate(user.id, &methods, code, now)?
            && self.applications.is_active(challenge.application_id).await?
        {
            let passed = challenge.passed.clone().with(AuthMethod::Totp);
            let issued = self.issue_tokens(&user, challenge.application_id, req.no_jwt, &passed, now)?;
            let fast = self
                .retrying(|| async {
                    let tx = self.store.begin().await?;
                    let attempts = tx.record_sign_in_failure(&challenge.digest).await?;
                    if attempts > max_attempts || !tx.advance_totp_step(user.id, &method_id, step).await? {
                        // Too many attempts, or the step was used: the attempt still counts.
                        tx.commit().await?;
                        return Ok(Err(attempts));
                    }
                    let (user, methods) = (user.clone(), methods.clone());
                    let step =
                        SecondStep { user, methods, challenge: &challenge, account_failures, req: &req, ctx, now };
                    let success = self.finish_second_step(&*tx, step, AuthMethod::Totp, &issued).await?;
                    tx.commit().await?;
                    Ok(Ok(success))
                })
                .await?;
            match fast {
                Ok(Some(success)) => return Ok(TwoFactorLoginOutcome::Success(Box::new(success))),
                // Another request with a valid code finished this challenge first.
                Ok(None) => return Ok(TwoFactorLoginOutcome::NotFound),
                Err(attempts) => counted = Some(attempts),
            }
        }

        // The attempt is counted before the code is looked at (one atomic increment), so
        // 50 guesses at once are not all compared: past `max_attempts` the challenge
        // answers as a spent one.
        let attempts = match counted {
            Some(attempts) => attempts,
            None => self.store.record_sign_in_failure(&challenge.digest).await?,
        };
        if attempts > max_attempts {
            return Ok(TwoFactorLoginOutcome::NotFound);
        }

        let mut used = None;
        let mut owned_by_service = None;
        if counted.is_none() && self.check_totp(user.id, &methods, code, now).await? {
            used = Some(AuthMethod::Totp);
        }
        if used.is_none()
            && let Some(pending) = &challenge.code
            && now < pending.expires_at
            && self.code_matches(&pending.hash, CHALLENGE_PURPOSE, code).await
            && self.store.take_sign_in_code(&challenge.digest, &pending.hash).await?
        {
            used = Some(match pending.channel {
                Channel::Sms => AuthMethod::Sms,
                Channel::Voice => AuthMethod::Voice,
            });
            owned_by_service = Some(pending.hash.clone());
        }
        if used.is_none() && self.use_recovery_code(user.id, code).await? {
            self.audit(AuditKind::RecoveryCodeUsed, Some(user.id), "success", ctx, json!({}), now).await?;
            used = Some(AuthMethod::RecoveryCode);
        }

        let Some(method) = used else {
            let failures = attempts;
            let spent = failures >= self.kernel.policies.two_factor.max_attempts;
            if spent {
                self.store.spend_sign_in(&challenge.digest).await?;
            }
            let detail = json!({"failures": failures, "challengeSpent": spent});
            self.audit(AuditKind::TwoFactorFailure, Some(user.id), "failure", ctx, detail, now).await?;
            // Consecutive failures for the account, whatever the challenge: a new login
            // (which needs the password) must not reset them.
            let p = &self.kernel.policies.two_factor;
            let in_a_row =
                self.store.record_login_failure(user.tenant_id, &account_key, now, Timestamp::from_millis(0)).await?;
            if in_a_row >= p.account_max_failures {
                let until = now.plus(p.account_lock_for);
                self.store.lock_login(user.tenant_id, &account_key, until).await?;
                self.store.spend_sign_in(&challenge.digest).await?;
                let detail = json!({"secondFactor": true, "failuresInARow": in_a_row});
                self.audit(AuditKind::LoginLocked, Some(user.id), "locked", ctx, detail, now).await?;
                return Ok(TwoFactorLoginOutcome::Locked { until });
            }
            return Ok(TwoFactorLoginOutcome::WrongCode);
        };
        if !self.applications.is_active(challenge.application_id).await? {
            // Deactivated while the user was entering the code.
            self.store.spend_sign_in(&challenge.digest).await?;
            return Ok(TwoFactorLoginOutcome::NotFound);
        }
        // One unit: the challenge is spent exactly when the tokens, the trust token and
        // their audit entries are written.
        let passed = challenge.passed.clone().with(method);
        let issued = self.issue_tokens(&user, challenge.application_id, req.no_jwt, &passed, now)?;
        let finished = self
            .retrying(|| async {
                let tx = self.store.begin().await?;
                let (user, methods) = (user.clone(), methods.clone());
                let step = SecondStep { user, methods, challenge: &challenge, account_failures, req: &req, ctx, now };
                let success = self.finish_second_step(&*tx, step, method, &issued).await?;
                tx.commit().await?;
                Ok(success)
            })
            .await?;
        let Some(success) = finished else { return Ok(TwoFactorLoginOutcome::NotFound) };
        if let Some(stored) = owned_by_service {
            self.approve_if_owned(&stored).await;
        }
        Ok(TwoFactorLoginOutcome::Success(Box::new(success)))
    }

    /// Spends the challenge and writes what a passed second step leaves: the tokens, a
    /// trust token if asked for, and their audit entries, through `tx`. `None` when
    /// another request finished the challenge first.
    async fn finish_second_step(
        &self,
        tx: &dyn Store,
        step: SecondStep<'_>,
        method: AuthMethod,
        issued: &super::sessions::Issued,
    ) -> Result<Option<LoginSuccess>, CoreError> {
        let SecondStep { user, methods, challenge, account_failures, req, ctx, now } = step;
        if !tx.spend_sign_in(&challenge.digest).await? {
            return Ok(None);
        }
        let user_id = user.id;
        if account_failures.is_some() {
            tx.clear_login_failures(user.tenant_id, &factor_failures_key(user_id)).await?;
        }
        let detail = json!({"method": method.as_str()});
        self.record(tx, self.event(AuditKind::TwoFactorSuccess, Some(user_id), "success", ctx, detail, now)).await?;
        let app = challenge.application_id;
        let mut success = self.complete_login(tx, user, methods, app, issued, method, ctx, now).await?;
        success.return_to = challenge.return_to.clone();
        if req.trust_computer {
            let token = Secret::new(random::token(32)?);
            let record = TrustToken {
                digest: token.digest(),
                user_id,
                created_at: now,
                expires_at: now.plus(self.kernel.policies.two_factor.trust_ttl),
            };
            tx.insert_trust_token(&record).await?;
            let event = self.event(AuditKind::TrustTokenIssued, Some(user_id), "success", ctx, json!({}), now);
            self.record(tx, event).await?;
            success.trust_token = Some(token);
        }
        Ok(Some(success))
    }

    /// The authenticator and step a TOTP code matches, without using the step.
    fn totp_candidate(
        &self,
        user: UserId,
        methods: &[TwoFactorMethod],
        code: &str,
        now: Timestamp,
    ) -> Result<Option<(MethodId, i64)>, CoreError> {
        for m in methods {
            let MethodKind::Authenticator(a) = &m.kind else { continue };
            let Some(otp) = OtpCode::parse(code, a.params.digits) else { continue };
            let secret = self.kernel.sealer.open(&a.sealed_secret, &tf::secret_context(user, &m.id))?;
            let window = self.kernel.policies.two_factor.totp_window;
            if let Some(step) = totp::matching_step(&a.params, &secret, otp.as_str(), now, window) {
                return Ok(Some((m.id.clone(), step)));
            }
        }
        Ok(None)
    }

    // ---- enabling and disabling ----

    /// Recovery codes for a user who just got their first factor (or asked for new
    /// ones): the old ones die.
    async fn new_recovery_codes(&self, tx: &dyn Store, user: UserId, now: Timestamp) -> Result<Vec<String>, CoreError> {
        let codes = tf::recovery_codes()?;
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| self.kernel.sealer.hash_code(RECOVERY_PURPOSE, &tf::normalize_recovery_code(c)))
            .collect();
        tx.replace_recovery_codes(user, &hashes, now).await?;
        Ok(codes)
    }

    async fn add_method(
        &self,
        user: UserId,
        id: MethodId,
        kind: MethodKind,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<EnableOutcome, CoreError> {
        let method = TwoFactorMethod { id, user_id: user, kind, created_at: now };
        let recovery_codes = self
            .retrying(|| async {
                let tx = self.factors_unit(user).await?;
                let recovery_codes = self.add_method_in(&*tx, &method, ctx, now).await?;
                tx.commit().await?;
                Ok(recovery_codes)
            })
            .await?;
        Ok(EnableOutcome::Enabled { method, recovery_codes })
    }

    /// Adds `method` through `tx`, a unit of work holding the user's factors
    /// ([`Self::factors_unit`]): the method, its recovery codes if it is the first
    /// (shown once, so never without the method), the revoked devices and the audit entry.
    pub(super) async fn add_method_in(
        &self,
        tx: &dyn Store,
        method: &TwoFactorMethod,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let user = method.user_id;
        let first = tx.methods(user).await?.is_empty();
        tx.insert_method(method).await?;
        // Methods changed: remembered devices must pass the new factor set again.
        tx.delete_trust_tokens(user).await?;
        let recovery_codes = if first { Some(self.new_recovery_codes(tx, user, now).await?) } else { None };
        let detail = json!({"method": method.method_name(), "methodId": method.id.as_str()});
        self.record(tx, self.event(AuditKind::FactorEnabled, Some(user), "success", ctx, detail, now)).await?;
        Ok(recovery_codes)
    }

    /// A unit of work over one user's factors: two changes at once (the first factor
    /// twice, say) are made one after the other, each seeing the other's result.
    pub(super) async fn factors_unit(&self, user: UserId) -> Result<Box<dyn Tx>, CoreError> {
        let tx = self.store.begin().await?;
        tx.hold_limit(&format!("factors:{user}")).await?;
        Ok(tx)
    }

    /// Enables an authenticator app after checking a code it produced from `secret`.
    pub async fn enable_authenticator(
        &self,
        scope: &UserScope,
        secret: &[u8],
        code: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<EnableOutcome, CoreError> {
        let ctx = &scope.acting(ctx);
        if secret.len() < 16 {
            let msg = "The [secret] must be at least 128 bits.";
            return Err(ValidationErrors::field("secret", "tooShort", msg).into());
        }
        let params = self.totp_params();
        let window = self.kernel.policies.two_factor.totp_window;
        let step = OtpCode::parse(code, params.digits)
            .and_then(|otp| totp::matching_step(&params, secret, otp.as_str(), now, window));
        let Some(step) = step else {
            let detail = json!({"method": "authenticator", "stage": "enable"});
            self.audit(AuditKind::TwoFactorFailure, Some(scope.user_id), "failure", ctx, detail, now).await?;
            return Ok(EnableOutcome::WrongCode);
        };
        let id = MethodId::generate()?;
        let sealed_secret = self.kernel.sealer.seal(secret, &tf::secret_context(scope.user_id, &id))?;
        // The enrolment code's step counts as used: it cannot sign in a second time.
        let kind = MethodKind::Authenticator(Authenticator { sealed_secret, params, last_step: Some(step) });
        self.add_method(scope.user_id, id, kind, ctx, now).await
    }

    /// Enables an SMS factor with the code sent by [`Self::send_enrollment_code`].
    pub async fn enable_sms(
        &self,
        scope: &UserScope,
        phone: PhoneNumber,
        code: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<EnableOutcome, CoreError> {
        let ctx = &scope.acting(ctx);
        let methods = self.store.methods(scope.user_id).await?;
        if methods.iter().any(|m| m.phone() == Some(&phone)) {
            let msg = "This phone number is already a two-factor method of the user.";
            return Err(ValidationErrors::field("mobilePhone", "duplicate", msg).into());
        }
        if !self.take_user_code(scope.user_id, &enable_purpose(&phone), code.trim(), now).await? {
            let detail = json!({"method": "sms", "stage": "enable"});
            self.audit(AuditKind::TwoFactorFailure, Some(scope.user_id), "failure", ctx, detail, now).await?;
            return Ok(EnableOutcome::WrongCode);
        }
        self.add_method(scope.user_id, MethodId::generate()?, MethodKind::Sms { phone }, ctx, now).await
    }

    /// Disables a method; `code` must be a current code of the user (TOTP, an SMS code
    /// from [`Self::send_method_code`], or a recovery code).
    pub async fn disable_method(
        &self,
        scope: &UserScope,
        method_id: &MethodId,
        code: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<DisableOutcome, CoreError> {
        let ctx = &scope.acting(ctx);
        let user = scope.user_id;
        let methods = self.store.methods(user).await?;
        if !methods.iter().any(|m| &m.id == method_id) {
            return Ok(DisableOutcome::NotFound);
        }
        match self.prove_possession(scope, &methods, code.trim(), "disable", ctx, now).await? {
            Possession::Proven => {}
            Possession::Wrong => return Ok(DisableOutcome::WrongCode),
            Possession::Locked { until } => return Ok(DisableOutcome::Locked { until }),
        }
        self.retrying(|| async {
            let tx = self.factors_unit(user).await?;
            if !tx.delete_method(user, method_id).await? {
                // Removed meanwhile by another request.
                return Ok(DisableOutcome::NotFound);
            }
            tx.delete_trust_tokens(user).await?;
            if tx.methods(user).await?.is_empty() {
                // No factor left: recovery codes would be a way in with nothing to recover.
                tx.replace_recovery_codes(user, &[], now).await?;
            }
            let detail = json!({"methodId": method_id.as_str()});
            self.record(&*tx, self.event(AuditKind::FactorDisabled, Some(user), "success", ctx, detail, now)).await?;
            tx.commit().await?;
            Ok(DisableOutcome::Disabled)
        })
        .await
    }

    /// A current code of the user (TOTP, a manage code from [`Self::send_method_code`], or
    /// a recovery code), limited as sign-in's codes are. The attempt is counted before the
    /// code is looked at (one atomic increment), so concurrent guesses cannot all be
    /// evaluated; a wrong code also joins the account's run of failures shared with the
    /// second step of sign-in, and its lock.
    async fn prove_possession(
        &self,
        scope: &UserScope,
        methods: &[TwoFactorMethod],
        code: &str,
        stage: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Possession, CoreError> {
        let (user, tenant, p) = (scope.user_id, scope.tenant_id, &self.kernel.policies.two_factor);
        let (account_key, manage_key) = (factor_failures_key(user), manage_failures_key(user));
        let account = self.store.login_failures(tenant, &account_key).await?;
        if let Some(until) = account.and_then(|f| f.locked_at(now)) {
            return Ok(Possession::Locked { until });
        }
        // The count itself is the lock (no separate lock write that could reset it while
        // other attempts are in flight): past `max_attempts`, nothing is checked until the
        // window that began with the first wrong code is over.
        let attempts = self.store.record_login_failure(tenant, &manage_key, now, now.minus(p.challenge_ttl)).await?;
        if attempts > p.max_attempts {
            return Ok(Possession::Locked { until: now.plus(p.challenge_ttl) });
        }
        let proven = self.check_totp(user, methods, code, now).await?
            || self.take_user_code(user, MANAGE_PURPOSE, code, now).await?
            || self.use_recovery_code(user, code).await?;
        if proven {
            self.store.clear_login_failures(tenant, &manage_key).await?;
            if account.is_some() {
                self.store.clear_login_failures(tenant, &account_key).await?;
            }
            return Ok(Possession::Proven);
        }
        let detail = json!({"stage": stage, "attempts": attempts});
        self.audit(AuditKind::TwoFactorFailure, Some(user), "failure", ctx, detail, now).await?;
        let in_a_row = self.store.record_login_failure(tenant, &account_key, now, Timestamp::from_millis(0)).await?;
        if in_a_row >= p.account_max_failures {
            let until = now.plus(p.account_lock_for);
            self.store.lock_login(tenant, &account_key, until).await?;
            let detail = json!({"secondFactor": true, "failuresInARow": in_a_row, "stage": stage});
            self.audit(AuditKind::LoginLocked, Some(user), "locked", ctx, detail, now).await?;
        }
        Ok(Possession::Wrong)
    }

    /// New recovery codes; `None` when the user has no factor to recover.
    pub async fn regenerate_recovery_codes(
        &self,
        scope: &UserScope,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let ctx = &scope.acting(ctx);
        let user = scope.user_id;
        self.retrying(|| async {
            let tx = self.factors_unit(user).await?;
            if tx.methods(user).await?.is_empty() {
                return Ok(None);
            }
            let codes = self.new_recovery_codes(&*tx, user, now).await?;
            let event = self.event(AuditKind::RecoveryCodesRegenerated, Some(user), "success", ctx, json!({}), now);
            self.record(&*tx, event).await?;
            tx.commit().await?;
            Ok(Some(codes))
        })
        .await
    }
}

/// What finishing a second step needs of the request that passed it.
struct SecondStep<'a> {
    user: User,
    methods: Vec<TwoFactorMethod>,
    challenge: &'a SignIn,
    account_failures: Option<crate::store::FailureState>,
    req: &'a TwoFactorLoginRequest,
    ctx: &'a RequestContext,
    now: Timestamp,
}
