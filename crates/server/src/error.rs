//! `ApiError`: the server's one error type, mapped to HTTP here and nowhere else.
//! Bodies follow FusionAuth's Errors JSON; internal failures get an opaque id for the
//! client while the detail goes to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tessera_core::CoreError;
use tessera_core::store::StoreError;
use tessera_core::validation::{Problem, ValidationErrors};

#[derive(Debug)]
pub enum ApiError {
    /// 400 with field and general errors.
    Invalid(ValidationErrors),
    /// 401, empty: no or a wrong API key, or an invalid token.
    Unauthorized,
    /// 404, empty.
    NotFound,
    /// 503: the database does not answer.
    Unavailable,
    /// 500; the string is logged, never sent.
    Internal(String),
}

impl ApiError {
    pub fn general(code: &str, message: impl Into<String>) -> Self {
        let mut e = ValidationErrors::default();
        e.add_general(code, message);
        ApiError::Invalid(e)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(v) => ApiError::Invalid(v),
            CoreError::NotFound => ApiError::NotFound,
            CoreError::Store(StoreError::Unavailable(detail)) => {
                tracing::error!(%detail, "database unavailable");
                ApiError::Unavailable
            }
            CoreError::Store(other) => ApiError::Internal(other.to_string()),
            CoreError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        CoreError::from(e).into()
    }
}

fn problems(list: &[Problem]) -> Value {
    Value::Array(list.iter().map(|p| json!({"code": p.code, "message": p.message})).collect())
}

pub fn errors_json(e: &ValidationErrors) -> Value {
    let fields: Map<String, Value> = e.fields.iter().map(|(k, v)| (k.clone(), problems(v))).collect();
    json!({"fieldErrors": fields, "generalErrors": problems(&e.general)})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(e) => (StatusCode::BAD_REQUEST, Json(errors_json(&e))).into_response(),
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            ApiError::NotFound => StatusCode::NOT_FOUND.into_response(),
            ApiError::Unavailable => {
                let body = json!({"generalErrors": [{"code": "[unavailable]", "message": "The database is unavailable; try again shortly."}]});
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
            ApiError::Internal(detail) => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(error_id = %id, %detail, "internal error");
                let body = json!({"generalErrors": [{"code": "[internal]", "message": format!("Something went wrong on our side (error id {id}).")}]});
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
        }
    }
}
