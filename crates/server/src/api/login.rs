//! `POST /api/login`: password sign-in in FusionAuth's shape.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::login::{LoginInput, LoginOutcome};
use tessera_core::service::RequestContext;

use crate::api::users::user_json;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub async fn login(
    State(s): State<AppState>,
    Caller(caller): Caller,
    body: Result<ApiJson<LoginInput>, ApiError>,
) -> Result<Response, ApiError> {
    let input = match body {
        Ok(ApiJson(input)) => input,
        Err(e) => {
            s.metrics.record_login("invalid");
            return Err(e);
        }
    };
    // FusionAuth lets a trusted backend pass the end user's address in the body.
    let ctx = RequestContext { ip: input.ip_address.clone().or(caller.ip) };
    let request = match input.validate() {
        Ok(r) => r,
        Err(e) => {
            s.metrics.record_login("invalid");
            return Err(ApiError::Invalid(e));
        }
    };
    let outcome = s.identity.login(request, &ctx, s.clock.now()).await;
    let response = match outcome {
        Ok(LoginOutcome::Success(ok)) => {
            s.metrics.record_login("success");
            let mut body = json!({"user": user_json(&ok.user)});
            if let Some((token, claims)) = &ok.token {
                body["token"] = json!(token);
                body["tokenExpirationInstant"] = json!(claims.exp * 1000);
            }
            if let Some(refresh) = &ok.refresh_token {
                body["refreshToken"] = json!(refresh.expose());
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(LoginOutcome::InvalidCredentials) => {
            s.metrics.record_login("failure");
            StatusCode::NOT_FOUND.into_response()
        }
        Ok(LoginOutcome::Locked { until }) => {
            s.metrics.record_login("locked");
            let body = json!({"generalErrors": [{
                "code": "[LoginPreventedException]",
                "message": "Too many failed login attempts. Try again later.",
            }], "lockedUntilInstant": until.millis()});
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        Err(e) => {
            s.metrics.record_login("invalid");
            return Err(e.into());
        }
    };
    Ok(response)
}
