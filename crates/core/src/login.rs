//! Password sign-in: what a request must hold (parsed: the wire shapes are the
//! server's) and what it can end in.

use std::time::Duration;

use crate::Timestamp;
use crate::ids::ApplicationId;
use crate::password::Password;
use crate::secret::Secret;
use crate::tokens::Claims;
use crate::twofactor::TwoFactorMethod;
use crate::user::{LoginId, User};

/// Consecutive failures that lock a login id, within what window, and for how long.
/// FusionAuth's defaults: 5 failures in 60 s lock for 3 minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy { max_failures: 5, window: Duration::from_secs(60), lock_for: Duration::from_secs(180) }
    }
}

#[derive(Clone, Debug)]
pub struct LoginRequest {
    pub login_id: LoginId,
    pub password: Password,
    pub application_id: Option<ApplicationId>,
    pub no_jwt: bool,
    pub trust_token: Option<Secret>,
    /// The hosted pages' sign-in this request continues (started when the page was
    /// shown; it holds the destination). The JSON API starts one only if it needs a
    /// second step.
    pub sign_in: Option<Secret>,
    /// The browser's CSRF token, for a hosted sign-in: only the browser the sign-in
    /// was begun in may continue it.
    pub browser: Option<Secret>,
}

/// Where a sign-in stands after a step: what the JSON API, the hosted pages and
/// `/oauth2/authorize` each turn into their own answer.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    Done(Box<LoginSuccess>),
    /// One of the user's factors must be passed, with the sign-in's new id: FusionAuth's
    /// 242 and its `twoFactorId`.
    NeedFactor {
        sign_in: Secret,
        methods: Vec<TwoFactorMethod>,
    },
    /// The application wants a second factor and the user has none: one must be
    /// enrolled, in the sign-in with this new id (only a browser can: the hosted pages).
    NeedEnrolment {
        sign_in: Secret,
    },
    /// The browser goes to `url` (which carries the resume token as `state`) and comes
    /// back to `/login/continue`.
    Redirect {
        url: String,
    },
    Denied(Denial),
}

/// Why a sign-in ended without signing anyone in.
#[derive(Debug, PartialEq, Eq)]
pub enum Denial {
    /// Unknown login id, wrong password, or a deactivated user: one answer for all.
    InvalidCredentials,
    Locked {
        until: Timestamp,
    },
    /// Refused after the first factor (by a script), for this reason.
    Refused {
        reason: String,
    },
    /// The sign-in the request continues is spent, expired or unknown.
    Expired,
}

#[derive(Debug)]
pub struct LoginSuccess {
    pub user: User,
    pub application_id: ApplicationId,
    /// Absent when the client asked for `noJWT`.
    pub token: Option<(String, Claims)>,
    pub refresh_token: Option<Secret>,
    /// Issued when the second factor was passed with "trust this computer".
    pub trust_token: Option<Secret>,
    /// The user's second factors, for the answer's `user.twoFactor`.
    pub methods: Vec<TwoFactorMethod>,
    /// The methods the user passed: the password, and the second step's if any.
    pub passed: crate::signin::AuthMethods,
    /// Where a browser sign-in goes now (kept with its transaction).
    pub return_to: Option<String>,
}
