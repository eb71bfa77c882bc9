//! Managing a user's factors (FusionAuth's `/api/user/two-factor` and the account
//! pages): enabling an authenticator or a phone after a code proves it, disabling one
//! after a code proves possession, recovery codes. Each change to a user's factors is
//! one unit of work holding that user's factors.

use std::sync::Arc;

use serde_json::json;

use super::RequestContext;
use super::applications::Applications;
use super::codes::{CodeRequest, Codes};
use super::kernel::{Kernel, retrying};
use super::twofactor::{
    DisableOutcome, EnableOutcome, MANAGE_PURPOSE, RECOVERY_PURPOSE, SendOutcome, UserScope, enable_purpose,
    factor_failures_key, manage_failures_key,
};
use crate::audit::AuditKind;
use crate::ids::UserId;
use crate::messaging::{Channel, Purpose};
use crate::phone::PhoneNumber;
use crate::store::{Store, Tx};
use crate::totp::{self, TotpParams};
use crate::twofactor::{self as tf, Authenticator, MethodId, MethodKind, OtpCode, TwoFactorMethod};
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp};

/// Whether a code proved that the caller holds one of the user's factors.
enum Possession {
    Proven,
    Wrong,
    Locked { until: Timestamp },
}

/// A user's second factors and recovery codes.
#[derive(Clone)]
pub struct Factors {
    store: Arc<dyn Store>,
    kernel: Arc<Kernel>,
    codes: Codes,
    /// Codes that prove a phone name the default application.
    applications: Applications,
}

impl Factors {
    pub fn new(store: Arc<dyn Store>, kernel: Arc<Kernel>, codes: Codes, applications: Applications) -> Factors {
        Factors { store, kernel, codes, applications }
    }

    /// Whether a browser session may change its user's second steps: only one that
    /// passed a second step, once the user has any. A password alone (a session from
    /// before a factor was added through the API, say) must not add a phone or mint
    /// recovery codes.
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
        let application = self.applications.default_application().name.clone();
        self.send_enrollment_code_naming(scope, phone, channel, locale, &application, ctx, now).await
    }

    /// The same, the message naming `application` (a sign-in's, when it enrols a factor).
    #[allow(clippy::too_many_arguments)] // a send's inputs; grouping them would only rename them
    pub(super) async fn send_enrollment_code_naming(
        &self,
        scope: &UserScope,
        phone: &PhoneNumber,
        channel: Channel,
        locale: &str,
        application: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let ctx = &scope.acting(ctx);
        let req = CodeRequest {
            tenant: scope.tenant_id,
            user: scope.user_id,
            to: phone,
            purpose: Purpose::Enrollment,
            channel,
            locale,
            application,
        };
        self.codes.put_user_code_and_send(enable_purpose(phone), &req, ctx, now).await
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
        self.codes.put_user_code_and_send(MANAGE_PURPOSE.into(), &req, ctx, now).await
    }

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
        let recovery_codes = retrying(|| async {
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
        self.kernel
            .auditor
            .record(tx, self.kernel.event(AuditKind::FactorEnabled, Some(user), "success", ctx, detail, now))
            .await?;
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
            self.kernel.audit(AuditKind::TwoFactorFailure, Some(scope.user_id), "failure", ctx, detail, now).await?;
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
        if !self.codes.take_user_code(scope.user_id, &enable_purpose(&phone), code.trim(), now).await? {
            let detail = json!({"method": "sms", "stage": "enable"});
            self.kernel.audit(AuditKind::TwoFactorFailure, Some(scope.user_id), "failure", ctx, detail, now).await?;
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
        retrying(|| async {
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
            self.kernel
                .auditor
                .record(&*tx, self.kernel.event(AuditKind::FactorDisabled, Some(user), "success", ctx, detail, now))
                .await?;
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
        let proven = self.codes.check_totp(user, methods, code, now).await?
            || self.codes.take_user_code(user, MANAGE_PURPOSE, code, now).await?
            || self.codes.use_recovery_code(user, code).await?;
        if proven {
            self.store.clear_login_failures(tenant, &manage_key).await?;
            if account.is_some() {
                self.store.clear_login_failures(tenant, &account_key).await?;
            }
            return Ok(Possession::Proven);
        }
        let detail = json!({"stage": stage, "attempts": attempts});
        self.kernel.audit(AuditKind::TwoFactorFailure, Some(user), "failure", ctx, detail, now).await?;
        let in_a_row = self.store.record_login_failure(tenant, &account_key, now, Timestamp::from_millis(0)).await?;
        if in_a_row >= p.account_max_failures {
            let until = now.plus(p.account_lock_for);
            self.store.lock_login(tenant, &account_key, until).await?;
            let detail = json!({"secondFactor": true, "failuresInARow": in_a_row, "stage": stage});
            self.kernel.audit(AuditKind::LoginLocked, Some(user), "locked", ctx, detail, now).await?;
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
        retrying(|| async {
            let tx = self.factors_unit(user).await?;
            if tx.methods(user).await?.is_empty() {
                return Ok(None);
            }
            let codes = self.new_recovery_codes(&*tx, user, now).await?;
            let event =
                self.kernel.event(AuditKind::RecoveryCodesRegenerated, Some(user), "success", ctx, json!({}), now);
            self.kernel.auditor.record(&*tx, event).await?;
            tx.commit().await?;
            Ok(Some(codes))
        })
        .await
    }
}
