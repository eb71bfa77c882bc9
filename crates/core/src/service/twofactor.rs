//! The second step of a sign-in (FusionAuth's two-factor login: the challenge after the
//! password, its codes, remembered devices), and who may manage a user's factors
//! (`UserScope`). Managing factors is `factors.rs`; sending and checking codes, shared
//! by both, is `codes.rs`.

use serde_json::json;

use super::codes::{CodeRequest, Prepared};
use super::kernel::retrying;
use super::sessions::Issued;
use super::{Identity, RequestContext};
use crate::apikey::Admin;
use crate::audit::{Actor, AuditKind};
use crate::ids::{TenantId, UserId};
use crate::login::LoginSuccess;
use crate::messaging::{Channel, Purpose};
use crate::phone::PhoneNumber;
use crate::secret::Secret;
use crate::signin::{AuthMethod, AuthMethods, SignIn, Stage};
use crate::store::Store;
use crate::twofactor::{MethodId, PendingCode, TrustToken, TwoFactorMethod};
use crate::user::{LoginId, User};
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
    pub(super) fn acting(&self, ctx: &RequestContext) -> RequestContext {
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

pub(super) const CHALLENGE_PURPOSE: &str = "challenge";
pub(super) const RECOVERY_PURPOSE: &str = "recovery";
pub(super) const MANAGE_PURPOSE: &str = "manage";

/// Where an account's consecutive second-factor failures are counted (beside the
/// login-id failure counters, under a key no login id can take).
pub(super) fn factor_failures_key(user: UserId) -> LoginId {
    LoginId::internal(format!("2fa:{user}"))
}

/// Where wrong codes offered to manage factors are counted: a session or token can try
/// codes without a password each time, so they get what one twoFactorId gets
/// (`max_attempts` per `challenge_ttl`) on top of the account's run shared with sign-in.
pub(super) fn manage_failures_key(user: UserId) -> LoginId {
    LoginId::internal(format!("2fa-manage:{user}"))
}

pub(super) fn enable_purpose(phone: &PhoneNumber) -> String {
    format!("enable:{}", phone.as_str())
}

impl Identity {
    /// The tokens for passing the challenge with `passed`: its application, and the
    /// claims its post-login actions set before the challenge.
    fn challenge_tokens(
        &self,
        user: &User,
        challenge: &SignIn,
        no_jwt: bool,
        passed: &AuthMethods,
        now: Timestamp,
    ) -> Result<Issued, CoreError> {
        let claims = &challenge.scripts.access_claims;
        self.issue_tokens(user, challenge.application_id, no_jwt, passed, claims, now)
    }

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

    /// The signed-in user of a browser session, if still there.
    pub async fn session_user(&self, session: &crate::oidc::BrowserSession) -> Result<Option<User>, CoreError> {
        Ok(self.store.get_user(session.tenant_id, session.user_id).await?)
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
        let (hash, own) = match self.codes.prepare_code(&req, ctx, now).await? {
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
            Some(code) => self.codes.deliver(&req, &code, ctx, now).await,
            None => Ok(SendOutcome::Sent),
        }
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
        if let Some((method_id, step)) = self.codes.totp_candidate(user.id, &methods, code, now)?
            && self.applications.is_active(challenge.application_id).await?
        {
            let passed = challenge.passed.clone().with(AuthMethod::Totp);
            let issued = self.challenge_tokens(&user, &challenge, req.no_jwt, &passed, now)?;
            let fast = retrying(|| async {
                let tx = self.store.begin().await?;
                let attempts = tx.record_sign_in_failure(&challenge.digest).await?;
                if attempts > max_attempts || !tx.advance_totp_step(user.id, &method_id, step).await? {
                    // Too many attempts, or the step was used: the attempt still counts.
                    tx.commit().await?;
                    return Ok(Err(attempts));
                }
                let (user, methods) = (user.clone(), methods.clone());
                let step = SecondStep { user, methods, challenge: &challenge, account_failures, req: &req, ctx, now };
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
        if counted.is_none() && self.codes.check_totp(user.id, &methods, code, now).await? {
            used = Some(AuthMethod::Totp);
        }
        if used.is_none()
            && let Some(pending) = &challenge.code
            && now < pending.expires_at
            && self.codes.code_matches(&pending.hash, CHALLENGE_PURPOSE, code).await
            && self.store.take_sign_in_code(&challenge.digest, &pending.hash).await?
        {
            used = Some(match pending.channel {
                Channel::Sms => AuthMethod::Sms,
                Channel::Voice => AuthMethod::Voice,
            });
            owned_by_service = Some(pending.hash.clone());
        }
        if used.is_none() && self.codes.use_recovery_code(user.id, code).await? {
            self.kernel.audit(AuditKind::RecoveryCodeUsed, Some(user.id), "success", ctx, json!({}), now).await?;
            used = Some(AuthMethod::RecoveryCode);
        }

        let Some(method) = used else {
            let failures = attempts;
            let spent = failures >= self.kernel.policies.two_factor.max_attempts;
            if spent {
                self.store.spend_sign_in(&challenge.digest).await?;
            }
            let detail = json!({"failures": failures, "challengeSpent": spent});
            self.kernel.audit(AuditKind::TwoFactorFailure, Some(user.id), "failure", ctx, detail, now).await?;
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
                self.kernel.audit(AuditKind::LoginLocked, Some(user.id), "locked", ctx, detail, now).await?;
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
        let issued = self.challenge_tokens(&user, &challenge, req.no_jwt, &passed, now)?;
        let finished = retrying(|| async {
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
            self.codes.approve_if_owned(&stored).await;
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
        self.kernel
            .auditor
            .record(tx, self.kernel.event(AuditKind::TwoFactorSuccess, Some(user_id), "success", ctx, detail, now))
            .await?;
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
            let event = self.kernel.event(AuditKind::TrustTokenIssued, Some(user_id), "success", ctx, json!({}), now);
            self.kernel.auditor.record(tx, event).await?;
            success.trust_token = Some(token);
        }
        Ok(Some(success))
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
