//! The sign-in pipeline: identify → first factor → the scripts after it → decide the
//! second factor → (second factor, `twofactor.rs`) → issue. Every way in (the JSON
//! API, the hosted pages, a redirected sign-in coming back) runs these steps and gets
//! one [`LoginOutcome`]; the HTTP adapters only turn it into their answer.
//!
//! A step that moves a stored sign-in on does so with `advance_sign_in` (stage checked,
//! new id) or spends it in the unit of work that issues the tokens, so two requests
//! racing with one id cannot both go on.

use serde_json::json;

use super::kernel::retrying;
use super::sessions::Issued;
use super::{Identity, RequestContext};
use crate::audit::AuditKind;
use crate::ids::{ApplicationId, TenantId};
use crate::login::{Denial, LoginOutcome, LoginRequest};
use crate::secret::{Secret, constant_time_eq};
use crate::signin::{
    AfterFirstFactor, AuthMethod, AuthMethods, Enrolling, FactorRule, PostLoginCall, SecondFactor, SignIn, Stage,
    enrol_key_context, with_state,
};
use crate::store::Application;
use crate::twofactor::TwoFactorMethod;
use crate::user::User;
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp, random};

/// How a hosted sign-in begins: where it leads once done, the application it is for
/// (the default when `None`) and what it asks of a second factor.
#[derive(Clone, Debug)]
pub struct BrowserStart {
    pub return_to: String,
    pub application: Option<ApplicationId>,
    pub rule: FactorRule,
}

impl BrowserStart {
    /// A sign-in page opened on its own (the account page's, say): FusionAuth's rule.
    pub fn to(return_to: &str) -> BrowserStart {
        BrowserStart { return_to: return_to.to_owned(), application: None, rule: FactorRule::default() }
    }
}

/// Whether `browser` (a CSRF token) is the one the hosted sign-in was begun in. A
/// sign-in begun by the JSON API has no browser and needs none.
pub(super) fn same_browser(sign_in: &SignIn, browser: Option<&Secret>) -> bool {
    match (&sign_in.signals.browser, browser) {
        (None, _) => true,
        (Some(left), Some(back)) => constant_time_eq(left.as_bytes(), back.digest().as_bytes()),
        (Some(_), None) => false,
    }
}

/// A sign-in whose first factor just passed, on its way to a decision.
struct Passed {
    sign_in: SignIn,
    /// Whether `sign_in` is stored (at its stage, under its digest) or new.
    stored: bool,
    user: User,
    methods: Vec<TwoFactorMethod>,
    no_jwt: bool,
    /// A browser is there to be redirected (the hosted pages).
    interactive: bool,
    /// Back at `/login/continue`: that request's query parameters.
    resumed: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Identity {
    /// `GET /login`, or `/oauth2/authorize` sending a browser to sign in: a hosted
    /// sign-in begins. Its id goes in the page; where it leads, what it asks of a second
    /// factor and the request's signals stay here. `browser` is the browser's CSRF
    /// token: only that browser may continue it.
    pub async fn begin_browser_sign_in(
        &self,
        start: &BrowserStart,
        browser: &Secret,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Secret, CoreError> {
        let (id, sign_in) = self.browser_sign_in(start, browser, ctx, now).await?;
        self.store.insert_sign_in(&sign_in).await?;
        Ok(id)
    }

    /// A hosted sign-in's id and its row, not stored yet: for `start`'s application, rule
    /// and destination, bound to `browser`.
    async fn browser_sign_in(
        &self,
        start: &BrowserStart,
        browser: &Secret,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(Secret, SignIn), CoreError> {
        let application = self.application_for(start.application).await?;
        let id = Secret::new(random::token(32)?);
        let mut sign_in = self.new_sign_in(id.digest(), &application, ctx, now);
        sign_in.return_to = Some(start.return_to.clone());
        sign_in.rule = start.rule;
        sign_in.signals.browser = Some(browser.digest());
        Ok((id, sign_in))
    }

    /// A signed-in browser reached an application that wants a second factor its user
    /// does not have: a sign-in for that user, with what the session passed, waits for
    /// one to be enrolled (its page carries only the id), then leads to `start.return_to`.
    pub async fn begin_session_enrolment(
        &self,
        session: &crate::oidc::BrowserSession,
        start: &BrowserStart,
        browser: &Secret,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Secret, CoreError> {
        let (id, mut sign_in) = self.browser_sign_in(start, browser, ctx, now).await?;
        sign_in.user_id = Some(session.user_id);
        sign_in.passed = session.methods.clone();
        sign_in.stage = Stage::NeedEnrolment;
        sign_in.enrolling = Some(self.enrolling(&sign_in.digest)?);
        self.store.insert_sign_in(&sign_in).await?;
        Ok(id)
    }

    /// Whether `id` is a hosted sign-in the browser `browser` began that still waits
    /// for its password: the page `/oauth2/authorize` sent the browser to shows it.
    pub async fn browser_sign_in_open(&self, id: &Secret, browser: &Secret, now: Timestamp) -> Result<bool, CoreError> {
        let found = self.store.sign_in(&id.digest()).await?;
        Ok(found.is_some_and(|s| s.is_live(now) && s.stage == Stage::Identify && same_browser(&s, Some(browser))))
    }

    /// A new hosted sign-in in place of `old`, which timed out or was used: to the same
    /// destination, for the same application and rule, while its row is still there;
    /// else to the account page.
    pub async fn restart_browser_sign_in(
        &self,
        old: &Secret,
        browser: &Secret,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Secret, CoreError> {
        let start = match self.store.sign_in(&old.digest()).await? {
            Some(s) => BrowserStart {
                return_to: s.return_to.unwrap_or_else(|| "/account".into()),
                application: Some(s.application_id),
                rule: s.rule,
            },
            None => BrowserStart::to("/account"),
        };
        self.begin_browser_sign_in(&start, browser, ctx, now).await
    }

    fn new_sign_in(&self, digest: String, app: &Application, ctx: &RequestContext, now: Timestamp) -> SignIn {
        let expires_at = now.plus(self.kernel.policies.sign_in_ttl);
        SignIn::begin(digest, app.tenant_id, app.id, ctx.signals(), now, expires_at)
    }

    /// The password step (`POST /api/login`, `POST /login`).
    pub async fn login(
        &self,
        req: LoginRequest,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        // Identify: the sign-in (a hosted page's, still waiting for its password) and
        // the application it is for.
        let started = match &req.sign_in {
            Some(id) => {
                let found = self.store.sign_in(&id.digest()).await?;
                let open = |s: &SignIn| s.is_live(now) && s.stage == Stage::Identify;
                match found.filter(|s| open(s) && same_browser(s, req.browser.as_ref())) {
                    Some(s) => Some(s),
                    None => return Ok(LoginOutcome::Denied(Denial::Expired)),
                }
            }
            None => None,
        };
        let application =
            self.application_for(req.application_id.or(started.as_ref().map(|s| s.application_id))).await?;
        let ctx = &ctx.in_tenant(application.tenant_id);

        // First factor: the password.
        let user = match self.password_step(&req, application.tenant_id, ctx, now).await? {
            Ok(user) => user,
            Err(denial) => return Ok(LoginOutcome::Denied(denial)),
        };
        let methods = self.store.methods(user.id).await?;
        let trusted = !methods.is_empty() && self.is_trusted(&user, req.trust_token.as_ref(), now).await?;
        let passed = AuthMethods::of(&[AuthMethod::Password]);
        let passed = if trusted { passed.with(AuthMethod::TrustedDevice) } else { passed };
        let stored = started.is_some();
        let mut sign_in = match started {
            Some(s) => s,
            // Not stored yet: the step that stores it gives it its id.
            None => self.new_sign_in(String::new(), &application, ctx, now),
        };
        sign_in.user_id = Some(user.id);
        sign_in.passed = passed;
        let step = Passed { sign_in, stored, user, methods, no_jwt: req.no_jwt, interactive: stored, resumed: None };
        self.after_first_factor(step, ctx, now).await
    }

    /// The application a sign-in is for: the one named, else the default; a named one
    /// must exist and be active.
    async fn application_for(&self, id: Option<ApplicationId>) -> Result<Application, CoreError> {
        let Some(id) = id.filter(|id| *id != self.applications.default_application().id) else {
            return Ok(self.applications.default_application().clone());
        };
        match self.store.get_application(id).await? {
            Some(app) if app.active => Ok(app),
            Some(_) => {
                let msg = "The application named by [applicationId] is deactivated.";
                Err(ValidationErrors::field("applicationId", "inactive", msg).into())
            }
            None => {
                let msg = "The [applicationId] property does not name an application.";
                Err(ValidationErrors::field("applicationId", "invalid", msg).into())
            }
        }
    }

    /// The first factor: the login id's lockout, then the password. The attempt is
    /// counted before the password is checked (and cleared if it is right), so 50
    /// concurrent guesses run at most `max_failures` argon2 checks; an unknown user costs
    /// a check of a dummy hash, so the answer's timing says nothing.
    async fn password_step(
        &self,
        req: &LoginRequest,
        tenant: TenantId,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<User, Denial>, CoreError> {
        let lockout = self.kernel.policies.lockout;
        let login_id = &req.login_id;
        let (attempts, locked) =
            self.store.reserve_login_attempt(tenant, login_id, now, now.minus(lockout.window)).await?;
        let locked = locked.or_else(|| (attempts > lockout.max_failures).then(|| now.plus(lockout.lock_for)));
        if let Some(until) = locked {
            self.kernel
                .audit(AuditKind::LoginLocked, None, "locked", ctx, json!({"loginId": login_id.as_str()}), now)
                .await?;
            return Ok(Err(Denial::Locked { until }));
        }

        let user = self.store.find_user_by_login_id(tenant, login_id).await?;
        let candidate = user.filter(|u| u.active).and_then(|u| u.password_hash.clone().map(|h| (u, h)));
        let verified = match candidate {
            Some((user, hash)) => self.hasher.verify(hash.clone(), req.password.clone()).await?.then_some((user, hash)),
            None => {
                let _ = self.hasher.verify(self.dummy_hash.clone(), req.password.clone()).await?;
                None
            }
        };
        let Some((user, hash)) = verified else {
            let detail = json!({"loginId": login_id.as_str(), "failures": attempts});
            if attempts >= lockout.max_failures {
                let until = now.plus(lockout.lock_for);
                self.store.lock_login(tenant, login_id, until).await?;
                self.kernel.audit(AuditKind::LoginLocked, None, "locked", ctx, detail, now).await?;
                return Ok(Err(Denial::Locked { until }));
            }
            self.kernel.audit(AuditKind::LoginFailure, None, "failure", ctx, detail, now).await?;
            return Ok(Err(Denial::InvalidCredentials));
        };

        self.store.clear_login_failures(tenant, login_id).await?;
        if hash.needs_rehash(&self.kernel.policies.hash) {
            let upgraded = self.hasher.hash(req.password.clone()).await?;
            self.store.set_password_hash(user.id, &upgraded, now).await?;
        }
        Ok(Ok(user))
    }

    /// `/login/continue?state=…`: a redirected sign-in comes back, in the browser
    /// (`browser`, its CSRF token) it left from. The resume token is used up here,
    /// whatever happens next: a token tried in another browser is spent, failing closed.
    pub async fn continue_sign_in(
        &self,
        state: &Secret,
        browser: Option<&Secret>,
        query: serde_json::Map<String, serde_json::Value>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        let Some(sign_in) = self.store.resume_sign_in(&state.digest()).await? else {
            return Ok(LoginOutcome::Denied(Denial::Expired));
        };
        if !sign_in.is_live(now) || sign_in.signals.browser.is_none() || !same_browser(&sign_in, browser) {
            return Ok(LoginOutcome::Denied(Denial::Expired));
        }
        let ctx = &ctx.in_tenant(sign_in.tenant_id);
        let Some(user) = self.challenge_user(&sign_in).await? else {
            return Ok(LoginOutcome::Denied(Denial::Expired));
        };
        let methods = self.store.methods(user.id).await?;
        let resumed = Some(query);
        let step = Passed { sign_in, stored: true, user, methods, no_jwt: true, interactive: true, resumed };
        self.after_first_factor(step, ctx, now).await
    }

    /// After the first factor: the scripts, then the one decision on the second factor,
    /// then either the challenge or the tokens.
    async fn after_first_factor(
        &self,
        mut step: Passed,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        if let Some(outcome) = self.post_login(&mut step, ctx, now).await? {
            return Ok(outcome);
        }
        // The sign-in's rule: FusionAuth's login API (and a sign-in page opened on its
        // own) challenge whoever has a factor; one begun by `/oauth2/authorize` carries
        // the application's policy and the step-up asked for.
        match step.sign_in.rule.decide(!step.methods.is_empty(), &step.sign_in.passed) {
            SecondFactor::Pass => self.need_factor(step, ctx, now).await,
            SecondFactor::NotNeeded => self.issue(step, ctx, now).await,
            SecondFactor::Enrol if step.interactive => self.need_enrolment(step, ctx, now).await,
            // Only a browser can enrol a factor; the JSON API's rule never asks it to.
            SecondFactor::Enrol => self.issue(step, ctx, now).await,
        }
    }

    /// The scripts that run after the first factor (`PostLogin`): `None` to go on, or
    /// where they sent the sign-in (a redirect to resume from, a denial).
    async fn post_login(
        &self,
        step: &mut Passed,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<LoginOutcome>, CoreError> {
        // The token a redirect would be resumed with, made first so the scripts can bind
        // their own tokens to it; coming back, the one that was used.
        let token = Secret::new(random::token(32)?);
        let came_back = step.resumed.as_ref().and_then(|q| q.get("state")).and_then(|v| v.as_str());
        let call = PostLoginCall {
            sign_in: &step.sign_in,
            user: &step.user,
            factors: &step.methods,
            resumed: step.resumed.as_ref(),
            interactive: step.interactive,
            state: came_back.unwrap_or(token.expose()),
            protocol: if step.interactive { "oidc-basic-profile" } else { "oauth2-password" },
            now,
        };
        let (decided, scripts) = self.post_login.0.after_first_factor(call).await?;
        step.sign_in.scripts = scripts;
        let step = &*step;
        let url = match decided {
            AfterFirstFactor::Continue => return Ok(None),
            AfterFirstFactor::Deny { reason } => return Ok(Some(self.deny(step, reason, ctx, now).await?)),
            AfterFirstFactor::Redirect { .. } if !step.interactive => {
                // No browser to send anywhere (Auth0 refuses the same way).
                let reason = "This sign-in cannot be redirected: it has no browser.".to_owned();
                return Ok(Some(self.deny(step, reason, ctx, now).await?));
            }
            AfterFirstFactor::Redirect { url } => url,
        };
        let next = SignIn {
            // A new id with the step, as every step gives; the browser comes back with
            // the resume token, not with it.
            digest: Secret::new(random::token(32)?).digest(),
            resume_digest: Some(token.digest()),
            stage: Stage::Redirected { url: url.clone() },
            ..step.sign_in.clone()
        };
        if !self.move_on(step, next, now).await? {
            return Ok(Some(LoginOutcome::Denied(Denial::Expired)));
        }
        let detail = json!({"applicationId": step.sign_in.application_id.to_string(), "to": url});
        self.kernel.audit(AuditKind::SignInRedirected, Some(step.user.id), "redirected", ctx, detail, now).await?;
        Ok(Some(LoginOutcome::Redirect { url: with_state(&url, token.expose()) }))
    }

    /// A second factor is needed: the sign-in waits for it under a new id (FusionAuth's
    /// `twoFactorId`).
    async fn need_factor(&self, step: Passed, ctx: &RequestContext, now: Timestamp) -> Result<LoginOutcome, CoreError> {
        let id = Secret::new(random::token(32)?);
        let next = SignIn {
            digest: id.digest(),
            stage: Stage::NeedFactor,
            resume_digest: None,
            expires_at: now.plus(self.kernel.policies.two_factor.challenge_ttl),
            ..step.sign_in.clone()
        };
        if !self.move_on(&step, next, now).await? {
            return Ok(LoginOutcome::Denied(Denial::Expired));
        }
        let detail = json!({"applicationId": step.sign_in.application_id.to_string()});
        self.kernel.audit(AuditKind::TwoFactorChallenge, Some(step.user.id), "issued", ctx, detail, now).await?;
        Ok(LoginOutcome::NeedFactor { sign_in: id, methods: step.methods })
    }

    /// No factor to pass but one is wanted: the sign-in waits under a new id for one to
    /// be enrolled, with the authenticator key its page shows kept (sealed) here.
    async fn need_enrolment(
        &self,
        step: Passed,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        let id = Secret::new(random::token(32)?);
        let digest = id.digest();
        let enrolling = self.enrolling(&digest)?;
        let next = SignIn {
            digest,
            stage: Stage::NeedEnrolment,
            resume_digest: None,
            expires_at: now.plus(self.kernel.policies.sign_in_ttl),
            enrolling: Some(enrolling),
            ..step.sign_in.clone()
        };
        if !self.move_on(&step, next, now).await? {
            return Ok(LoginOutcome::Denied(Denial::Expired));
        }
        let detail = json!({"applicationId": step.sign_in.application_id.to_string()});
        self.kernel.audit(AuditKind::EnrolmentRequired, Some(step.user.id), "required", ctx, detail, now).await?;
        Ok(LoginOutcome::NeedEnrolment { sign_in: id })
    }

    /// A fresh authenticator key for the enrolment page of the sign-in `digest`, sealed
    /// under that digest (which does not change while it waits).
    fn enrolling(&self, digest: &str) -> Result<Enrolling, CoreError> {
        let key = crate::twofactor::new_totp_secret()?;
        Ok(Enrolling { sealed_key: self.kernel.sealer.seal(&key, &enrol_key_context(digest))?, phone: None })
    }

    /// Issue: the tokens, in one unit with the stored sign-in spent (a second request
    /// with its id finds it spent) and the audit entry.
    async fn issue(&self, step: Passed, ctx: &RequestContext, now: Timestamp) -> Result<LoginOutcome, CoreError> {
        // With factors but no challenge, a remembered device vouched for the second step.
        let trusted = step.sign_in.passed.contains(AuthMethod::TrustedDevice);
        let method = if trusted { AuthMethod::TrustedDevice } else { AuthMethod::Password };
        let app = step.sign_in.application_id;
        let issued: Issued = self.issue_tokens(
            &step.user,
            app,
            step.no_jwt,
            &step.sign_in.passed,
            &step.sign_in.scripts.access_claims,
            now,
        )?;
        let finished = retrying(|| async {
            let tx = self.store.begin().await?;
            if step.stored && !tx.spend_sign_in(&step.sign_in.digest).await? {
                return Ok(None);
            }
            let (user, methods) = (step.user.clone(), step.methods.clone());
            let mut success = self.complete_login(&*tx, user, methods, app, &issued, method, ctx, now).await?;
            tx.commit().await?;
            success.return_to = step.sign_in.return_to.clone();
            Ok(Some(success))
        })
        .await?;
        Ok(match finished {
            Some(success) => LoginOutcome::Done(Box::new(success)),
            None => LoginOutcome::Denied(Denial::Expired),
        })
    }

    /// Stores the sign-in's next state: moved on from its stored stage (false when
    /// another request moved it first, or it expired), or inserted.
    async fn move_on(&self, step: &Passed, next: SignIn, now: Timestamp) -> Result<bool, CoreError> {
        if step.stored {
            Ok(self.store.advance_sign_in(&step.sign_in.digest, &step.sign_in.stage, &next, now).await?)
        } else {
            self.store.insert_sign_in(&next).await?;
            Ok(true)
        }
    }

    async fn deny(
        &self,
        step: &Passed,
        reason: String,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<LoginOutcome, CoreError> {
        if step.stored {
            let next = SignIn { stage: Stage::Denied { reason: reason.clone() }, ..step.sign_in.clone() };
            self.store.advance_sign_in(&step.sign_in.digest, &step.sign_in.stage, &next, now).await?;
        }
        let detail = json!({"applicationId": step.sign_in.application_id.to_string(), "reason": reason});
        self.kernel.audit(AuditKind::LoginDenied, Some(step.user.id), "denied", ctx, detail, now).await?;
        Ok(LoginOutcome::Denied(Denial::Refused { reason }))
    }
}
