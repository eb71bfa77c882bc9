//! Second-factor codes, sent and checked: the send limit and fraud guard in front of
//! every send, codes owned by a verification service (Twilio Verify) or by us (stored
//! as keyed hashes), TOTP steps taken once, recovery codes used once. The sign-in's
//! second step and the management of factors both use them.

use std::sync::Arc;

use serde_json::json;

use super::RequestContext;
use super::fraud::FraudGuards;
use super::kernel::Kernel;
use super::twofactor::{RECOVERY_PURPOSE, SendOutcome};
use crate::audit::AuditKind;
use crate::ids::{TenantId, UserId};
use crate::messaging::{self, Channel, Messenger, OutboundMessage, Purpose, Verification};
use crate::phone::PhoneNumber;
use crate::secret::Secret;
use crate::store::Store;
use crate::totp;
use crate::twofactor::{self as tf, MethodId, MethodKind, OtpCode, TwoFactorMethod, UserCode};
use crate::{CoreError, Timestamp};

/// Where a code goes and why.
pub(super) struct CodeRequest<'a> {
    /// The user's tenant: its messengers deliver the code.
    pub(super) tenant: TenantId,
    pub(super) user: UserId,
    pub(super) to: &'a PhoneNumber,
    pub(super) purpose: Purpose,
    pub(super) channel: Channel,
    pub(super) locale: &'a str,
    /// The name the message gives: the application a sign-in is for, else the default.
    pub(super) application: &'a str,
}

pub(super) enum Prepared {
    /// A verification service owns the code; store its marker.
    Verification(Verification),
    /// Our own code: store its hash, then send it.
    Own(String),
    Refused(SendOutcome),
}

#[derive(Clone)]
pub struct Codes {
    store: Arc<dyn Store>,
    kernel: Arc<Kernel>,
    messenger: Arc<dyn Messenger>,
    guards: FraudGuards,
}

impl Codes {
    pub fn new(
        store: Arc<dyn Store>,
        kernel: Arc<Kernel>,
        messenger: Arc<dyn Messenger>,
        guards: FraudGuards,
    ) -> Codes {
        Codes { store, kernel, messenger, guards }
    }

    /// Rate limit, then either a verification service (Twilio Verify) takes over and
    /// its marker is returned, or a fresh code of our own is. The caller stores what it
    /// gets *before* anything is delivered, so whatever arrives is what is accepted.
    pub(super) async fn prepare_code(
        &self,
        req: &CodeRequest<'_>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Prepared, CoreError> {
        let p = &self.kernel.policies.two_factor;
        if !self.store.try_record_send(req.user, now, now.minus(p.send_window), p.send_limit).await? {
            let detail = json!({"channel": req.channel.as_str()});
            self.kernel.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "rate_limited", ctx, detail, now).await?;
            return Ok(Prepared::Refused(SendOutcome::RateLimited));
        }
        if let Some(refusal) = self.guards.guard_mfa_send(req.to, ctx, now).await? {
            return Ok(Prepared::Refused(SendOutcome::Blocked(refusal.detail)));
        }
        match self.messenger.start_verification(&self.message(req, "")).await {
            Ok(Some(v)) => {
                let detail = json!({"channel": req.channel.as_str(), "purpose": req.purpose.as_str(), "provider": "twilio-verify"});
                self.kernel.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "sent", ctx, detail, now).await?;
                Ok(Prepared::Verification(v))
            }
            Ok(None) => Ok(Prepared::Own(tf::numeric_code(p.code_digits)?)),
            Err(e) => {
                let detail = json!({"channel": req.channel.as_str(), "error": e.to_string()});
                self.kernel.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "failed", ctx, detail, now).await?;
                Ok(Prepared::Refused(SendOutcome::Failed(e.to_string())))
            }
        }
    }

    pub(super) fn message(&self, req: &CodeRequest<'_>, code: &str) -> OutboundMessage {
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
    pub(super) async fn deliver(
        &self,
        req: &CodeRequest<'_>,
        code: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<SendOutcome, CoreError> {
        let outcome = match self.messenger.send(&self.message(req, code)).await {
            Ok(receipt) => {
                let detail = json!({"channel": req.channel.as_str(), "purpose": req.purpose.as_str(), "provider": receipt.provider});
                self.kernel.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "sent", ctx, detail, now).await?;
                SendOutcome::Sent
            }
            Err(e) => {
                let detail = json!({"channel": req.channel.as_str(), "error": e.to_string()});
                self.kernel.audit(AuditKind::TwoFactorCodeSent, Some(req.user), "failed", ctx, detail, now).await?;
                SendOutcome::Failed(e.to_string())
            }
        };
        Ok(outcome)
    }

    pub(super) async fn put_user_code_and_send(
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
    pub(super) async fn code_matches(&self, stored: &str, purpose: &str, code: &str) -> bool {
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
    pub(super) async fn approve_if_owned(&self, stored: &str) {
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
        if now >= stored.expires_at {
            return Ok(false);
        }
        // The attempt is counted before the code is compared (one atomic increment), so of
        // 50 guesses at once at most `max_attempts` are compared; past it the code is dropped.
        let max = self.kernel.policies.two_factor.max_attempts;
        let attempts = self.store.record_user_code_failure(user, purpose).await?;
        if attempts <= max && self.code_matches(&stored.hash, purpose, code).await {
            let taken = self.store.take_user_code(user, purpose, &stored.hash).await?;
            if taken {
                self.approve_if_owned(&stored.hash).await;
            }
            return Ok(taken);
        }
        if attempts >= max {
            self.store.take_user_code(user, purpose, &stored.hash).await?;
        }
        Ok(false)
    }

    /// A TOTP code from any of the user's authenticators, each step accepted once.
    pub(super) async fn check_totp(
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

    pub(super) async fn use_recovery_code(&self, user: UserId, code: &str) -> Result<bool, CoreError> {
        let normalized = tf::normalize_recovery_code(code);
        if normalized.len() != 10 {
            return Ok(false);
        }
        Ok(self.store.use_recovery_code(user, &self.kernel.sealer.code_hashes(RECOVERY_PURPOSE, &normalized)).await?)
    }

    /// The authenticator and step a TOTP code matches, without using the step.
    pub(super) fn totp_candidate(
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
}
