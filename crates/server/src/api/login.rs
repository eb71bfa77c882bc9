//! `POST /api/login`: password sign-in in FusionAuth's shape. The wire shapes are typed
//! here (a body that parses into the core's `LoginRequest`, answers that serialize),
//! so core keeps domain types only.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::Timestamp;
use tessera_core::login::{Denial, LoginOutcome, LoginRequest, LoginSuccess};
use tessera_core::password::Password;
use tessera_core::secret::Secret;
use tessera_core::service::RequestContext;
use tessera_core::twofactor::TwoFactorMethod;
use tessera_core::user::LoginId;
use tessera_core::validation::ValidationErrors;

use crate::api::two_factor::{MethodBody, method_json};
use crate::api::users::{UserBody, user_json};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, TRUST_COOKIE, cookie};

/// The body of `POST /api/login` as FusionAuth's clients send it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginBody {
    pub login_id: Option<String>,
    pub password: Option<String>,
    pub application_id: Option<String>,
    /// The end user's address, passed by a trusted backend.
    pub ip_address: Option<String>,
    #[serde(default, rename = "noJWT")]
    pub no_jwt: bool,
    /// A remembered device's token; the `fusionauth.trust` cookie takes precedence.
    pub two_factor_trust_id: Option<String>,
}

impl TryFrom<LoginBody> for LoginRequest {
    type Error = ValidationErrors;

    fn try_from(b: LoginBody) -> Result<LoginRequest, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let login_id = b.login_id.as_deref().and_then(LoginId::parse);
        if login_id.is_none() {
            errors.add("loginId", "blank", "You must specify the [loginId] property.");
        }
        let password = b.password.filter(|p| !p.is_empty()).map(Password::new);
        if password.is_none() {
            errors.add("password", "blank", "You must specify the [password] property.");
        }
        let application_id = match b.application_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let parsed = s.parse().ok();
                if parsed.is_none() {
                    errors.add("applicationId", "invalid", "The [applicationId] property is not a valid id.");
                }
                parsed
            }
        };
        match (login_id, password) {
            (Some(login_id), Some(password)) if errors.is_empty() => {
                let trust_token = b.two_factor_trust_id.filter(|t| !t.is_empty()).map(Secret::new);
                let no_jwt = b.no_jwt;
                Ok(LoginRequest {
                    login_id,
                    password,
                    application_id,
                    no_jwt,
                    trust_token,
                    sign_in: None,
                    browser: None,
                })
            }
            _ => Err(errors),
        }
    }
}

/// The 200 body of a completed sign-in (password alone, or after the second factor).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Signed<'a> {
    user: UserBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_expiration_instant: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_token: Option<String>,
}

/// FusionAuth's 242 body: a second factor is needed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TwoFactorRequired {
    two_factor_id: String,
    methods: Vec<MethodBody>,
}

/// FusionAuth's 409 for a login something prevents.
fn prevented(message: String, locked_until: Option<Timestamp>) -> Response {
    let code = "[LoginPreventedException]";
    ApiError::Refused { status: StatusCode::CONFLICT, code, message, locked_until }.into_response()
}

/// The 200 answer of a completed sign-in (password alone, or after the second factor).
pub fn success_response(ok: &LoginSuccess) -> Response {
    let body = Signed {
        user: user_json(&ok.user, &ok.methods),
        token: ok.token.as_ref().map(|(token, _)| token.clone()),
        token_expiration_instant: ok.token.as_ref().map(|(_, c)| c.exp * 1000),
        refresh_token: ok.refresh_token.as_ref().map(|r| r.expose().to_owned()),
        trust_token: ok.trust_token.as_ref().map(|t| t.expose().to_owned()),
    };
    (StatusCode::OK, Json(body)).into_response()
}

pub async fn login(
    State(s): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<ApiJson<LoginBody>, ApiError>,
) -> Result<Response, ApiError> {
    let mut input = match body {
        Ok(ApiJson(input)) => input,
        Err(e) => {
            s.metrics.record_login("invalid");
            return Err(e);
        }
    };
    // FusionAuth: the trust cookie overrides `twoFactorTrustId`.
    if let Some(trust) = cookie(&headers, TRUST_COOKIE) {
        input.two_factor_trust_id = Some(trust.to_owned());
    }
    // FusionAuth lets a trusted backend pass the end user's address in the body.
    let ctx = RequestContext { ip: input.ip_address.clone().or(caller.ip), ..caller };
    let request = match LoginRequest::try_from(input) {
        Ok(r) => r,
        Err(e) => {
            s.metrics.record_login("invalid");
            return Err(ApiError::Invalid(e));
        }
    };
    let outcome = match s.identity.login(request, &ctx, s.clock.now()).await {
        Ok(o) => o,
        Err(e) => {
            s.metrics.record_login("invalid");
            return Err(e.into());
        }
    };
    Ok(match outcome {
        LoginOutcome::Done(ok) => {
            s.metrics.record_login("success");
            success_response(&ok)
        }
        LoginOutcome::NeedFactor { sign_in, methods } => {
            s.metrics.record_login("two_factor_required");
            two_factor_required(&sign_in, &methods)
        }
        // Not asked of the JSON API (it has no browser to send): the pipeline denies instead.
        LoginOutcome::Redirect { .. }
        | LoginOutcome::NeedEnrolment { .. }
        | LoginOutcome::Denied(Denial::InvalidCredentials | Denial::Expired) => {
            s.metrics.record_login("failure");
            StatusCode::NOT_FOUND.into_response()
        }
        LoginOutcome::Denied(Denial::Locked { until }) => {
            s.metrics.record_login("locked");
            prevented("Too many failed login attempts. Try again later.".into(), Some(until))
        }
        // FusionAuth's answer when something on the account prevents the login.
        LoginOutcome::Denied(Denial::Refused { reason }) => {
            s.metrics.record_login("denied");
            prevented(reason, None)
        }
    })
}

/// FusionAuth's 242: the password was right, a second factor is needed.
fn two_factor_required(challenge_id: &Secret, methods: &[TwoFactorMethod]) -> Response {
    let body = TwoFactorRequired {
        two_factor_id: challenge_id.expose().to_owned(),
        methods: methods.iter().map(|m| method_json(m, true)).collect(),
    };
    let status = StatusCode::from_u16(242).unwrap_or(StatusCode::ACCEPTED);
    (status, Json(body)).into_response()
}
