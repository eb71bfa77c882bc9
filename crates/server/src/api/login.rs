//! `POST /api/login`: password sign-in in FusionAuth's shape.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::login::{Denial, LoginInput, LoginOutcome, LoginSuccess};
use tessera_core::secret::Secret;
use tessera_core::service::RequestContext;
use tessera_core::twofactor::TwoFactorMethod;

use crate::api::two_factor::method_json;
use crate::api::users::user_json;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, TRUST_COOKIE, cookie};

/// The 200 body of a completed sign-in (password alone, or after the second factor).
pub fn success_response(ok: &LoginSuccess) -> Response {
    let mut body = json!({"user": user_json(&ok.user, &ok.methods)});
    if let Some((token, claims)) = &ok.token {
        body["token"] = json!(token);
        body["tokenExpirationInstant"] = json!(claims.exp * 1000);
    }
    if let Some(refresh) = &ok.refresh_token {
        body["refreshToken"] = json!(refresh.expose());
    }
    if let Some(trust) = &ok.trust_token {
        body["trustToken"] = json!(trust.expose());
    }
    (StatusCode::OK, Json(body)).into_response()
}

pub async fn login(
    State(s): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<ApiJson<LoginInput>, ApiError>,
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
    let request = match input.validate() {
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
        LoginOutcome::Redirect { .. } | LoginOutcome::Denied(Denial::InvalidCredentials | Denial::Expired) => {
            s.metrics.record_login("failure");
            StatusCode::NOT_FOUND.into_response()
        }
        LoginOutcome::Denied(Denial::Locked { until }) => {
            s.metrics.record_login("locked");
            let body = json!({"generalErrors": [{
                "code": "[LoginPreventedException]",
                "message": "Too many failed login attempts. Try again later.",
            }], "lockedUntilInstant": until.millis()});
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        // FusionAuth's answer when something on the account prevents the login.
        LoginOutcome::Denied(Denial::Refused { reason }) => {
            s.metrics.record_login("denied");
            let body = json!({"generalErrors": [{"code": "[LoginPreventedException]", "message": reason}]});
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
    })
}

/// FusionAuth's 242: the password was right, a second factor is needed.
fn two_factor_required(challenge_id: &Secret, methods: &[TwoFactorMethod]) -> Response {
    let body = json!({
        "twoFactorId": challenge_id.expose(),
        "methods": methods.iter().map(|m| method_json(m, true)).collect::<Vec<_>>(),
    });
    let status = StatusCode::from_u16(242).unwrap_or(StatusCode::ACCEPTED);
    (status, Json(body)).into_response()
}
