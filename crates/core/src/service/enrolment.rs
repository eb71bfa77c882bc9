//! The enrolment stage of a sign-in: the application wants a second factor, the user
//! has none, so one is set up (an authenticator app, or a phone proved by a code) and
//! the sign-in finishes with it. The page carries only the sign-in's id and the CSRF
//! token; the key it shows and the phone a code went to are kept with the sign-in.
//!
//! Finishing is one unit of work: the sign-in is spent, the factor and its recovery
//! codes are added, the tokens and audit entries written. Two submissions racing with
//! one id add one factor and sign in once.

use serde_json::json;

use super::kernel::retrying;
use super::sessions::Issued;
use super::signin::same_browser;
use super::twofactor::{SendOutcome, UserScope, enable_purpose};
use super::{Identity, RequestContext};
use crate::audit::{Actor, AuditKind};
use crate::login::LoginSuccess;
use crate::messaging::Channel;
use crate::phone::PhoneNumber;
use crate::secret::Secret;
use crate::signin::{AuthMethod, SignIn, Stage, enrol_key_context};
use crate::totp;
use crate::twofactor::{self as tf, Authenticator, MethodId, MethodKind, OtpCode, TwoFactorMethod};
use crate::user::User;
use crate::{CoreError, Timestamp};

/// What the enrolment page shows: the key to scan or type, for whom, and the phone a
/// code was last sent to.
pub struct EnrolmentView {
    pub key: Vec<u8>,
    pub user: User,
    pub phone: Option<PhoneNumber>,
}

/// The factor a sign-in's enrolment submits.
#[derive(Clone, Copy, Debug)]
pub enum NewFactor<'a> {
    /// The code the authenticator app shows for the sign-in's key.
    Authenticator { code: &'a str },
    /// The code sent to the sign-in's phone.
    Phone { code: &'a str },
}

#[derive(Debug)]
pub enum EnrolOutcome {
    /// The factor is on and the user signed in; the recovery codes are shown once.
    Done {
        success: Box<LoginSuccess>,
        recovery_codes: Option<Vec<String>>,
    },
    WrongCode,
    /// The phone is one of the user's factors already.
    Duplicate,
    /// No such sign-in waiting for an enrolment in this browser (spent, timed out, out
    /// of attempts, or never).
    Expired,
}

/// A sign-in at the enrolment stage with its user.
struct Waiting {
    sign_in: SignIn,
    user: User,
}

impl Identity {
    async fn waiting_enrolment(
        &self,
        id: &Secret,
        browser: &Secret,
        now: Timestamp,
    ) -> Result<Option<Waiting>, CoreError> {
        let max = self.kernel.policies.two_factor.max_attempts;
        let found = self.store.sign_in(&id.digest()).await?.filter(|s| {
            s.is_live(now)
                && s.stage == Stage::NeedEnrolment
                && s.failures < max
                && s.signals.browser.is_some()
                && same_browser(s, Some(browser))
        });
        let Some(sign_in) = found else { return Ok(None) };
        let Some(user) = self.challenge_user(&sign_in).await? else { return Ok(None) };
        Ok(Some(Waiting { sign_in, user }))
    }

    fn enrolment_key(&self, sign_in: &SignIn) -> Result<Vec<u8>, CoreError> {
        let sealed = sign_in.enrolling.as_ref().map(|e| e.sealed_key.as_str()).unwrap_or_default();
        self.kernel.sealer.open(sealed, &enrol_key_context(&sign_in.digest))
    }

    /// What the enrolment page of sign-in `id` shows, if `browser` may see it.
    pub async fn enrolment_view(
        &self,
        id: &Secret,
        browser: &Secret,
        now: Timestamp,
    ) -> Result<Option<EnrolmentView>, CoreError> {
        let Some(w) = self.waiting_enrolment(id, browser, now).await? else { return Ok(None) };
        let key = self.enrolment_key(&w.sign_in)?;
        let phone = w.sign_in.enrolling.and_then(|e| e.phone);
        Ok(Some(EnrolmentView { key, user: w.user, phone }))
    }

    /// Sends the code that proves a phone, to `phone` (kept with the sign-in) or, with
    /// `None`, again to the phone kept.
    #[allow(clippy::too_many_arguments)] // a send's inputs; grouping them would only rename them
    pub async fn send_enrolment_code(
        &self,
        id: &Secret,
        browser: &Secret,
        phone: Option<&PhoneNumber>,
        channel: Channel,
        locale: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(SendOutcome, Option<PhoneNumber>), CoreError> {
        let Some(w) = self.waiting_enrolment(id, browser, now).await? else {
            return Ok((SendOutcome::NotFound, None));
        };
        let phone = match phone {
            Some(p) => {
                if !self.store.set_sign_in_phone(&w.sign_in.digest, p, now).await? {
                    return Ok((SendOutcome::NotFound, None));
                }
                p.clone()
            }
            None => match w.sign_in.enrolling.and_then(|e| e.phone) {
                Some(p) => p,
                None => return Ok((SendOutcome::NotFound, None)),
            },
        };
        let scope = scope_of(&w.user);
        // The message names the application the sign-in is for.
        let application = self.applications.name_of(w.sign_in.application_id).await?;
        let outcome =
            self.factors.send_enrollment_code_naming(&scope, &phone, channel, locale, &application, ctx, now).await?;
        Ok((outcome, Some(phone)))
    }

    /// Turns the factor on and finishes the sign-in with it.
    pub async fn enrol_in_sign_in(
        &self,
        id: &Secret,
        browser: &Secret,
        factor: NewFactor<'_>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<EnrolOutcome, CoreError> {
        let Some(Waiting { sign_in, user }) = self.waiting_enrolment(id, browser, now).await? else {
            return Ok(EnrolOutcome::Expired);
        };
        let ctx = &ctx.in_tenant(sign_in.tenant_id).acting(Actor::User(user.id));
        // The attempt is counted before the code is looked at (one atomic increment): of
        // 50 codes at once, at most `max_attempts` are compared, and past that the
        // sign-in is over.
        let attempts = self.store.record_sign_in_failure(&sign_in.digest).await?;
        if attempts > self.kernel.policies.two_factor.max_attempts {
            return Ok(EnrolOutcome::Expired);
        }
        let method_id = MethodId::generate()?;
        let proved = match factor {
            NewFactor::Authenticator { code } => {
                let key = self.enrolment_key(&sign_in)?;
                let params = self.factors.totp_params();
                let window = self.kernel.policies.two_factor.totp_window;
                let step = OtpCode::parse(code.trim(), params.digits)
                    .and_then(|otp| totp::matching_step(&params, &key, otp.as_str(), now, window));
                match step {
                    Some(step) => {
                        let sealed_secret = self.kernel.sealer.seal(&key, &tf::secret_context(user.id, &method_id))?;
                        // The enrolment code's step counts as used: it cannot sign in again.
                        let a = Authenticator { sealed_secret, params, last_step: Some(step) };
                        Some((MethodKind::Authenticator(a), AuthMethod::Totp))
                    }
                    None => None,
                }
            }
            NewFactor::Phone { code } => {
                let Some(phone) = sign_in.enrolling.as_ref().and_then(|e| e.phone.clone()) else {
                    return Ok(EnrolOutcome::WrongCode);
                };
                if self.store.methods(user.id).await?.iter().any(|m| m.phone() == Some(&phone)) {
                    return Ok(EnrolOutcome::Duplicate);
                }
                let purpose = enable_purpose(&phone);
                self.codes
                    .take_user_code(user.id, &purpose, code.trim(), now)
                    .await?
                    .then_some((MethodKind::Sms { phone }, AuthMethod::Sms))
            }
        };
        let Some((kind, passed_with)) = proved else {
            let detail = json!({"method": passed_with_name(factor), "stage": "enrol"});
            self.kernel.audit(AuditKind::TwoFactorFailure, Some(user.id), "failure", ctx, detail, now).await?;
            return Ok(EnrolOutcome::WrongCode);
        };
        let method = TwoFactorMethod { id: method_id, user_id: user.id, kind, created_at: now };
        let passed = sign_in.passed.clone().with(passed_with);
        let app = sign_in.application_id;
        let issued: Issued = self.issue_tokens(&user, app, true, &passed, &Default::default(), now)?;
        let finished = retrying(|| async {
            let tx = self.factors.factors_unit(user.id).await?;
            if !tx.spend_sign_in(&sign_in.digest).await? {
                return Ok(None);
            }
            let recovery_codes = self.factors.add_method_in(&*tx, &method, ctx, now).await?;
            let methods = tx.methods(user.id).await?;
            let mut success =
                self.complete_login(&*tx, user.clone(), methods, app, &issued, passed_with, ctx, now).await?;
            tx.commit().await?;
            success.return_to = sign_in.return_to.clone();
            Ok(Some((success, recovery_codes)))
        })
        .await?;
        Ok(match finished {
            Some((success, recovery_codes)) => EnrolOutcome::Done { success: Box::new(success), recovery_codes },
            None => EnrolOutcome::Expired,
        })
    }
}

/// A user managing their own factors in their sign-in.
fn scope_of(user: &User) -> UserScope {
    UserScope { tenant_id: user.tenant_id, user_id: user.id, actor: Actor::User(user.id) }
}

fn passed_with_name(factor: NewFactor<'_>) -> &'static str {
    match factor {
        NewFactor::Authenticator { .. } => "authenticator",
        NewFactor::Phone { .. } => "sms",
    }
}
