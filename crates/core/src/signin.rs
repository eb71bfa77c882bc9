//! A sign-in: the methods it passed, typed, and the transaction kept between its steps.
//!
//! A sign-in passes one or more methods. Whether that is multi-factor is decided by the
//! kinds of factor they are (something known, something held), not by whether any method
//! other than a password was used: an SMS code alone, or an SMS and an email code, is one
//! kind of factor however many codes were typed.
//!
//! Between two requests a sign-in is a [`SignIn`] row, found by the digest of its id.
//! Its steps: identify → first factor → decide the second factor (after the scripts that
//! run there, which may send the browser away and resume it) → second factor or
//! enrolment → issue. Each step that moves it on gives it a new id (the old one is spent
//! with the move), so an id seen at one step is worth nothing at the next.

use std::collections::BTreeSet;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::ids::{ApplicationId, TenantId, UserId};
use crate::oidc::MfaPolicy;
use crate::twofactor::PendingCode;
use crate::user::User;
use crate::{CoreError, Timestamp};

/// One way of proving who you are, as passed during a sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthMethod {
    Password,
    /// A code from an authenticator app.
    Totp,
    /// A one-time code sent by text message.
    Sms,
    /// A one-time code read out in a phone call.
    Voice,
    /// A one-time code sent by email.
    Email,
    RecoveryCode,
    /// A device remembered after an earlier second factor (FusionAuth's trust token).
    TrustedDevice,
}

/// The kind of factor a method proves (NIST SP 800-63B §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FactorKind {
    Knowledge,
    Possession,
}

impl AuthMethod {
    /// The stable name used in audit entries and API answers.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Totp => "otp",
            AuthMethod::Sms => "sms",
            AuthMethod::Voice => "voice",
            AuthMethod::Email => "email",
            AuthMethod::RecoveryCode => "recovery-code",
            AuthMethod::TrustedDevice => "trusted-device",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn kind(self) -> FactorKind {
        match self {
            AuthMethod::Password => FactorKind::Knowledge,
            // A recovery code stands in for the second factor it backs up, as in FusionAuth
            // and Auth0: it is kept apart from the password, like a device.
            AuthMethod::Totp
            | AuthMethod::Sms
            | AuthMethod::Voice
            | AuthMethod::Email
            | AuthMethod::RecoveryCode
            | AuthMethod::TrustedDevice => FactorKind::Possession,
        }
    }

    /// Its RFC 8176 `amr` value, if it has one. A remembered device has none of its own.
    fn amr(self) -> Option<&'static str> {
        match self {
            AuthMethod::Password => Some("pwd"),
            AuthMethod::Sms => Some("sms"),
            AuthMethod::Voice => Some("tel"),
            AuthMethod::Totp | AuthMethod::Email | AuthMethod::RecoveryCode => Some("otp"),
            AuthMethod::TrustedDevice => None,
        }
    }
}

const ALL: [AuthMethod; 7] = [
    AuthMethod::Password,
    AuthMethod::Totp,
    AuthMethod::Sms,
    AuthMethod::Voice,
    AuthMethod::Email,
    AuthMethod::RecoveryCode,
    AuthMethod::TrustedDevice,
];

/// What a sign-in needs after the methods it has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondFactor {
    NotNeeded,
    /// A factor the user has must be passed.
    Pass,
    /// A second factor is wanted but the user has none: they must enrol one.
    Enrol,
}

/// The one place that decides whether a sign-in needs a second factor: the
/// application's policy, a step-up the request asked for (`acr_values`), whether the
/// user has a factor, and what the sign-in already passed (a remembered device with the
/// password is two factors). The JSON API and the browser flow both ask it.
pub fn second_factor(policy: MfaPolicy, step_up: bool, has_factor: bool, passed: &AuthMethods) -> SecondFactor {
    let wanted = step_up
        || match policy {
            MfaPolicy::Never => false,
            MfaPolicy::Always => true,
            MfaPolicy::WhenEnrolled => has_factor,
        };
    if !wanted || passed.is_mfa() {
        SecondFactor::NotNeeded
    } else if has_factor {
        SecondFactor::Pass
    } else {
        SecondFactor::Enrol
    }
}

/// Where a sign-in stands between two requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A hosted sign-in page was shown; nobody is identified yet.
    Identify,
    /// The first factor passed; one of the user's factors must be passed next.
    NeedFactor,
    /// The first factor passed; the application wants a second one and the user has
    /// none: one must be enrolled (an authenticator app or a phone) to go on.
    NeedEnrolment,
    /// The browser was sent to `url` (a script's page); the sign-in waits for it to come
    /// back to `/login/continue` with the resume token.
    Redirected { url: String },
    /// Refused, for the reason given to the user.
    Denied { reason: String },
}

impl Stage {
    /// The stable name stored with the sign-in.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Identify => "identify",
            Stage::NeedFactor => "need_factor",
            Stage::NeedEnrolment => "need_enrolment",
            Stage::Redirected { .. } => "redirected",
            Stage::Denied { .. } => "denied",
        }
    }

    /// What the stage carries besides its name (a URL, a reason).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Stage::Redirected { url } => Some(url),
            Stage::Denied { reason } => Some(reason),
            Stage::Identify | Stage::NeedFactor | Stage::NeedEnrolment => None,
        }
    }

    pub fn parse(name: &str, detail: Option<String>) -> Option<Stage> {
        Some(match (name, detail) {
            ("identify", _) => Stage::Identify,
            ("need_factor", _) => Stage::NeedFactor,
            ("need_enrolment", _) => Stage::NeedEnrolment,
            ("redirected", Some(url)) => Stage::Redirected { url },
            ("denied", Some(reason)) => Stage::Denied { reason },
            _ => return None,
        })
    }
}

/// What a sign-in asks of a second factor: its application's policy and whether the
/// request asked for a step-up (`acr_values`). Fixed when the sign-in begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactorRule {
    pub policy: MfaPolicy,
    pub step_up: bool,
}

impl Default for FactorRule {
    /// FusionAuth's login API: whoever has a factor passes it; nobody is made to enrol.
    fn default() -> Self {
        FactorRule { policy: MfaPolicy::WhenEnrolled, step_up: false }
    }
}

impl FactorRule {
    /// The rule of a hosted sign-in for an application (begun by `/oauth2/authorize`).
    /// A user with a factor passes it even where the application's policy is `never`:
    /// what the hosted pages have always done; the MFA policies settle `never` next.
    pub fn for_application(policy: MfaPolicy, step_up: bool) -> FactorRule {
        let policy = if policy == MfaPolicy::Never { MfaPolicy::WhenEnrolled } else { policy };
        FactorRule { policy, step_up }
    }

    /// What `passed` still needs, for a user who has factors or not.
    pub fn decide(&self, has_factor: bool, passed: &AuthMethods) -> SecondFactor {
        second_factor(self.policy, self.step_up, has_factor, passed)
    }
}

/// A factor being set up during a sign-in (stage [`Stage::NeedEnrolment`]): the
/// authenticator key the page shows, sealed, and the phone a code was last sent to.
/// Both stay here, so the page carries neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolling {
    pub sealed_key: String,
    pub phone: Option<crate::phone::PhoneNumber>,
}

/// What a sign-in's enrolment key is sealed under: the sign-in's digest, which does
/// not change while it waits for the enrolment.
pub fn enrol_key_context(digest: &str) -> Vec<u8> {
    format!("sign-in enrolment:{digest}").into_bytes()
}

/// What the request that started a sign-in looked like: kept for the steps after it
/// and for the checks that weigh risk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// For a hosted sign-in, the digest of the browser's CSRF token: only that browser
    /// may resume it, so a resume link sent to someone else signs nobody in there.
    pub browser: Option<String>,
    /// The digest of the browser's long-lived device cookie (hosted pages), which
    /// outlives sessions and sign-ins: how a later sign-in tells a known device from a
    /// new one. When it happened is the sign-in's `created_at`.
    pub device: Option<String>,
}

/// A sign-in in progress (FusionAuth's `twoFactorId` is its id once the password
/// passed). Stored by the digest of its id; the id itself is only ever with the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    pub digest: String,
    pub tenant_id: TenantId,
    pub application_id: ApplicationId,
    /// Known once the first factor passed.
    pub user_id: Option<UserId>,
    /// The methods passed so far.
    pub passed: AuthMethods,
    pub stage: Stage,
    /// The digest of the token that resumes a redirected sign-in, until it is used.
    pub resume_digest: Option<String>,
    /// Where a browser sign-in goes once it is done: kept here, not in the page.
    pub return_to: Option<String>,
    pub signals: Signals,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Wrong codes so far at the second factor.
    pub failures: u32,
    /// Finished: its id signs nobody in again.
    pub spent: bool,
    /// The code last sent for the second factor.
    pub code: Option<PendingCode>,
    /// What a second factor must satisfy.
    pub rule: FactorRule,
    /// At [`Stage::NeedEnrolment`]: the factor being set up.
    pub enrolling: Option<Enrolling>,
    /// What the scripts after the first factor decided so far.
    pub scripts: ScriptState,
}

/// What the scripts after the first factor (post-login actions) decided so far, kept
/// with the sign-in between requests: across a redirect and its resume, and until the
/// second factor is passed and the tokens are issued.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScriptState {
    /// Where a redirected flow resumes: the position of the action that redirected,
    /// whose `onContinuePostLogin` runs when the browser comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<usize>,
    /// Claims for the access token (`api.accessToken.setCustomClaim`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub access_claims: serde_json::Map<String, serde_json::Value>,
    /// Claims for the ID token (`api.idToken.setCustomClaim`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub id_claims: serde_json::Map<String, serde_json::Value>,
    /// `event.transaction.metadata`, carried to the actions after a resume.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ScriptState {
    pub fn is_empty(&self) -> bool {
        *self == ScriptState::default()
    }
}

/// What a [`PostLogin`] is asked about: the sign-in after its first factor.
pub struct PostLoginCall<'a> {
    pub sign_in: &'a SignIn,
    pub user: &'a User,
    /// The user's factors.
    pub factors: &'a [crate::twofactor::TwoFactorMethod],
    /// Coming back to `/login/continue`: that request's query parameters.
    pub resumed: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Whether a browser takes part, so the sign-in can be sent elsewhere.
    pub interactive: bool,
    /// The `state` of this step: the resume token a redirect from here would carry, or
    /// the one that brought the browser back (what `api.redirect.encodeToken` binds a
    /// token to, and `validateToken` checks).
    pub state: &'a str,
    /// Auth0's `event.transaction.protocol`: `oauth2-password` (the login API),
    /// `oidc-basic-profile` (the hosted pages), `oauth2-refresh-token`.
    pub protocol: &'static str,
    pub now: crate::Timestamp,
}

impl SignIn {
    /// A sign-in at its first step (`Identify`) for `application` of `tenant`: nobody
    /// known yet, nothing passed, lasting until `expires_at`.
    pub fn begin(
        digest: String,
        tenant_id: TenantId,
        application_id: ApplicationId,
        signals: Signals,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> SignIn {
        SignIn {
            digest,
            tenant_id,
            application_id,
            user_id: None,
            passed: AuthMethods::default(),
            stage: Stage::Identify,
            resume_digest: None,
            return_to: None,
            signals,
            created_at: now,
            expires_at,
            failures: 0,
            spent: false,
            code: None,
            rule: FactorRule::default(),
            enrolling: None,
            scripts: ScriptState::default(),
        }
    }

    /// A sign-in that has not been used up or timed out.
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.spent && now < self.expires_at
    }
}

/// What the scripts that run after the first factor decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFirstFactor {
    Continue,
    /// Send the browser to `url`; the sign-in resumes at `/login/continue`.
    Redirect {
        url: String,
    },
    Deny {
        reason: String,
    },
}

/// Runs after the first factor of every sign-in, before the second factor is decided,
/// and again (`resumed`) when a sign-in it redirected comes back. Auth0's post-login
/// actions plug in here; with none, every sign-in goes on.
#[async_trait]
pub trait PostLogin: Send + Sync {
    /// What to do, and the scripts' state to keep with the sign-in.
    async fn after_first_factor(&self, call: PostLoginCall<'_>) -> Result<(AfterFirstFactor, ScriptState), CoreError>;
}

/// A [`PostLogin`] as configuration holds it.
#[derive(Clone)]
pub struct PostLoginHook(pub Arc<dyn PostLogin>);

impl fmt::Debug for PostLoginHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostLoginHook")
    }
}

/// `url` with the resume token added as its `state` parameter, as Auth0's redirects do.
pub fn with_state(url: &str, token: &str) -> String {
    let (base, fragment) = url.split_once('#').map_or((url, None), |(b, f)| (b, Some(f)));
    let joint = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    let with = format!("{base}{joint}state={token}");
    match fragment {
        Some(f) => format!("{with}#{f}"),
        None => with,
    }
}

/// FusionAuth's `authenticationType` for a token obtained with a refresh token.
pub const REFRESH_TOKEN: &str = "REFRESH_TOKEN";
/// FusionAuth's `authenticationType` for a sign-in that began with the password.
pub const PASSWORD: &str = "PASSWORD";

/// The methods a sign-in has passed so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthMethods(BTreeSet<AuthMethod>);

impl AuthMethods {
    pub fn of(methods: &[AuthMethod]) -> AuthMethods {
        AuthMethods(methods.iter().copied().collect())
    }

    pub fn with(mut self, method: AuthMethod) -> AuthMethods {
        self.0.insert(method);
        self
    }

    pub fn contains(&self, method: AuthMethod) -> bool {
        self.0.contains(&method)
    }

    /// Multi-factor: at least two distinct kinds of factor.
    pub fn is_mfa(&self) -> bool {
        let kinds: BTreeSet<FactorKind> = self.0.iter().map(|m| m.kind()).collect();
        kinds.len() >= 2
    }

    pub fn iter(&self) -> impl Iterator<Item = AuthMethod> + '_ {
        self.0.iter().copied()
    }

    /// Their stable names, as stored.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|m| m.as_str()).collect()
    }

    /// From stored names. Rows written before the methods were typed hold RFC 8176 `amr`
    /// values instead: `tel` is a voice code and `mfa` is no method of its own.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<AuthMethods, String> {
        let mut methods = AuthMethods::default();
        for name in names {
            match (name, AuthMethod::parse(name)) {
                (_, Some(m)) => methods.0.insert(m),
                ("tel", None) => methods.0.insert(AuthMethod::Voice),
                ("mfa", None) => continue,
                (other, None) => return Err(format!("unknown sign-in method {other:?}")),
            };
        }
        Ok(methods)
    }

    /// FusionAuth's `authenticationType` claim: `PASSWORD` when the password was one of
    /// the methods (with or without a second step, as FusionAuth), else `PASSWORDLESS`.
    pub fn authentication_type(&self) -> &'static str {
        if self.contains(AuthMethod::Password) || self.0.is_empty() { PASSWORD } else { "PASSWORDLESS" }
    }

    /// The ID token's `amr` (RFC 8176): each method's value once, then `mfa` when it is.
    pub fn amr(&self) -> Vec<String> {
        let mut amr: Vec<String> = Vec::new();
        for value in self.0.iter().filter_map(|m| m.amr()) {
            if !amr.iter().any(|a| a == value) {
                amr.push(value.to_owned());
            }
        }
        if self.is_mfa() {
            amr.push("mfa".into());
        }
        amr
    }
}

#[cfg(test)]
mod tests {
    use super::AuthMethod::*;
    use super::*;

    #[test]
    fn one_kind_of_factor_is_never_multi_factor_however_many_codes() {
        for one_kind in
            [&[Password][..], &[Sms], &[Sms, Email], &[Totp, Sms, Voice], &[TrustedDevice], &[RecoveryCode, Totp]]
        {
            assert!(!AuthMethods::of(one_kind).is_mfa(), "{one_kind:?}");
            assert!(!AuthMethods::of(one_kind).amr().contains(&"mfa".to_owned()), "{one_kind:?}");
        }
        for two_kinds in
            [&[Password, Totp][..], &[Password, Sms], &[Password, TrustedDevice], &[Password, RecoveryCode]]
        {
            assert!(AuthMethods::of(two_kinds).is_mfa(), "{two_kinds:?}");
        }
    }

    #[test]
    fn amr_values_are_rfc_8176_and_as_before_for_password_sign_ins() {
        assert_eq!(AuthMethods::of(&[Password]).amr(), ["pwd"]);
        assert_eq!(AuthMethods::of(&[Password, Totp]).amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(AuthMethods::of(&[Password, Sms]).amr(), ["pwd", "sms", "mfa"]);
        assert_eq!(AuthMethods::of(&[Password, RecoveryCode]).amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(AuthMethods::of(&[Password, TrustedDevice]).amr(), ["pwd", "mfa"]);
        assert_eq!(AuthMethods::of(&[Password, Voice]).amr(), ["pwd", "tel", "mfa"]);
        // A passwordless code sign-in is one factor.
        assert_eq!(AuthMethods::of(&[Sms]).amr(), ["sms"]);
    }

    #[test]
    fn one_decision_for_the_second_factor() {
        use MfaPolicy::*;
        let pwd = AuthMethods::of(&[Password]);
        let remembered = AuthMethods::of(&[Password, TrustedDevice]);
        let sms_only = AuthMethods::of(&[Sms]);
        assert_eq!(second_factor(WhenEnrolled, false, true, &pwd), SecondFactor::Pass);
        assert_eq!(second_factor(WhenEnrolled, false, false, &pwd), SecondFactor::NotNeeded);
        assert_eq!(second_factor(WhenEnrolled, false, true, &remembered), SecondFactor::NotNeeded);
        assert_eq!(second_factor(Never, false, true, &pwd), SecondFactor::NotNeeded);
        assert_eq!(second_factor(Never, true, true, &pwd), SecondFactor::Pass, "a step-up asked for");
        assert_eq!(second_factor(Always, false, false, &pwd), SecondFactor::Enrol);
        // One kind of factor never satisfies `always` or a step-up, however it was passed.
        assert_eq!(second_factor(Always, false, true, &sms_only), SecondFactor::Pass);
        assert_eq!(second_factor(Never, true, true, &AuthMethods::of(&[Sms, Email])), SecondFactor::Pass);
    }

    #[test]
    fn a_sign_in_carries_its_applications_rule() {
        use MfaPolicy::*;
        let pwd = AuthMethods::of(&[Password]);
        let json_api = FactorRule::default();
        assert_eq!(json_api.decide(false, &pwd), SecondFactor::NotNeeded, "the login API makes nobody enrol");
        assert_eq!(json_api.decide(true, &pwd), SecondFactor::Pass);
        let required = FactorRule::for_application(Always, false);
        assert_eq!(required.decide(false, &pwd), SecondFactor::Enrol);
        assert_eq!(required.decide(true, &AuthMethods::of(&[Password, Totp])), SecondFactor::NotNeeded);
        // The hosted pages have always asked a user with a factor for it, `never` or not.
        assert_eq!(FactorRule::for_application(Never, false).decide(true, &pwd), SecondFactor::Pass);
        assert_eq!(FactorRule::for_application(Never, false).decide(false, &pwd), SecondFactor::NotNeeded);
        let step_up = FactorRule::for_application(Never, true);
        assert_eq!(step_up.decide(false, &pwd), SecondFactor::Enrol, "a step-up with nothing to pass enrols");
        assert_eq!(step_up.decide(true, &AuthMethods::of(&[Sms, Email])), SecondFactor::Pass);
    }

    #[test]
    fn the_resume_token_goes_in_the_query_before_any_fragment() {
        assert_eq!(with_state("https://a.example/x", "T"), "https://a.example/x?state=T");
        assert_eq!(with_state("https://a.example/x?y=1", "T"), "https://a.example/x?y=1&state=T");
        assert_eq!(with_state("https://a.example/x?", "T"), "https://a.example/x?state=T");
        assert_eq!(with_state("https://a.example/x#top", "T"), "https://a.example/x?state=T#top");
    }

    #[test]
    fn stages_round_trip_by_name_and_detail() {
        for stage in [
            Stage::Identify,
            Stage::NeedFactor,
            Stage::NeedEnrolment,
            Stage::Redirected { url: "https://a.example".into() },
            Stage::Denied { reason: "no".into() },
        ] {
            assert_eq!(Stage::parse(stage.name(), stage.detail().map(str::to_owned)), Some(stage.clone()));
        }
        assert_eq!(Stage::parse("redirected", None), None, "a redirect needs its URL");
        assert_eq!(Stage::parse("teleported", None), None);
    }

    #[test]
    fn the_authentication_type_is_fusionauths() {
        assert_eq!(AuthMethods::of(&[Password, Totp]).authentication_type(), "PASSWORD");
        assert_eq!(AuthMethods::of(&[Email]).authentication_type(), "PASSWORDLESS");
    }

    #[test]
    fn names_round_trip_and_old_amr_lists_read_as_methods() -> Result<(), String> {
        for m in ALL {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(AuthMethod::parse("mfa"), None);
        let all = AuthMethods::of(&ALL);
        assert_eq!(AuthMethods::from_names(all.names()), Ok(all));
        let old = AuthMethods::from_names(["pwd", "otp", "mfa"])?;
        assert_eq!(old, AuthMethods::of(&[Password, Totp]));
        assert_eq!(old.amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(AuthMethods::from_names(["pwd", "tel", "mfa"])?.amr(), ["pwd", "tel", "mfa"]);
        assert!(AuthMethods::from_names(["pwd", "retina"]).is_err());
        Ok(())
    }
}
