//! `ApiError`: the server's one error type, mapped to HTTP here and nowhere else.
//! Bodies follow FusionAuth's Errors JSON; internal failures get an opaque id for the
//! client while the detail goes to the log.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tessera_core::store::StoreError;
use tessera_core::validation::{Problem, ValidationErrors};
use tessera_core::{CoreError, Timestamp};

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
    /// A request understood and refused, with FusionAuth's general error `code` (a rate
    /// limit, a block, a sign-in prevented until `locked_until`).
    Refused { status: StatusCode, code: &'static str, message: String, locked_until: Option<Timestamp> },
}

impl ApiError {
    pub fn general(code: &str, message: impl Into<String>) -> Self {
        let mut e = ValidationErrors::default();
        e.add_general(code, message);
        ApiError::Invalid(e)
    }

    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Refused { status, code, message: message.into(), locked_until: None }
    }
}

/// FusionAuth's Errors JSON, the body of every error answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Errors {
    #[serde(skip_serializing_if = "Option::is_none")]
    field_errors: Option<BTreeMap<String, Vec<ProblemBody>>>,
    general_errors: Vec<ProblemBody>,
    /// Until when a prevented sign-in stays prevented.
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until_instant: Option<i64>,
}

#[derive(Serialize)]
struct ProblemBody {
    code: String,
    message: String,
}

impl Errors {
    /// One general error.
    pub fn general(code: &str, message: impl Into<String>) -> Errors {
        let general_errors = vec![ProblemBody { code: code.to_owned(), message: message.into() }];
        Errors { field_errors: None, general_errors, locked_until_instant: None }
    }
}

impl From<&ValidationErrors> for Errors {
    fn from(e: &ValidationErrors) -> Errors {
        let list = |ps: &[Problem]| {
            ps.iter().map(|p| ProblemBody { code: p.code.clone(), message: p.message.clone() }).collect::<Vec<_>>()
        };
        Errors {
            field_errors: Some(e.fields.iter().map(|(k, v)| (k.clone(), list(v))).collect()),
            general_errors: list(&e.general),
            locked_until_instant: None,
        }
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

pub fn errors_json(e: &ValidationErrors) -> Value {
    serde_json::to_value(Errors::from(e)).unwrap_or(Value::Null)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(e) => (StatusCode::BAD_REQUEST, Json(Errors::from(&e))).into_response(),
            ApiError::Refused { status, code, message, locked_until } => {
                let body = Errors {
                    locked_until_instant: locked_until.map(Timestamp::millis),
                    ..Errors::general(code, message)
                };
                (status, Json(body)).into_response()
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            ApiError::NotFound => StatusCode::NOT_FOUND.into_response(),
            ApiError::Unavailable => {
                let body = Errors::general("[unavailable]", "The database is unavailable; try again shortly.");
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
            ApiError::Internal(detail) => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(error_id = %id, %detail, "internal error");
                let body = Errors::general("[internal]", format!("Something went wrong on our side (error id {id})."));
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
        }
    }
}
