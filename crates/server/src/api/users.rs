//! The FusionAuth User API: `/api/user`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::ids::UserId;
use tessera_core::twofactor::TwoFactorMethod;
use tessera_core::user::{User, UserInput, merge_patch};
use tessera_core::validation::ValidationErrors;

use crate::api::two_factor::{MethodBody, method_json};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller};

/// A user as a client sends it, in FusionAuth's field names: every field optional,
/// nothing checked yet (core's `UserInput::validate` does that).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing)]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mobile_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
}

impl UserFields {
    /// The user as it is, as a client would send it back unchanged: PATCH merges its
    /// body into this.
    fn of(u: &User) -> UserFields {
        UserFields {
            email: u.email.as_ref().map(|e| e.as_str().to_owned()),
            username: u.username.as_ref().map(|e| e.as_str().to_owned()),
            password: None,
            mobile_phone: u.mobile_phone.as_ref().map(|p| p.as_str().to_owned()),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            data: Some(Value::Object(u.data.clone())),
            active: Some(u.active),
        }
    }
}

impl From<UserFields> for UserInput {
    fn from(f: UserFields) -> UserInput {
        UserInput {
            email: f.email,
            username: f.username,
            password: f.password,
            mobile_phone: f.mobile_phone,
            first_name: f.first_name,
            last_name: f.last_name,
            data: f.data,
            active: f.active,
        }
    }
}

/// `{"user": {…}}`, the envelope FusionAuth uses for requests and answers.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRequest {
    user: Option<UserFields>,
    /// FusionAuth's: the administrator vouches for the email address.
    #[serde(default)]
    skip_verification: bool,
}

fn missing_user() -> ApiError {
    ApiError::general("[missing]user", "The request must contain a [user] object.")
}

/// A user as FusionAuth's APIs answer it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserBody<'a> {
    id: String,
    tenant_id: String,
    active: bool,
    data: &'a Map<String, Value>,
    insert_instant: i64,
    last_update_instant: i64,
    password_change_required: bool,
    verified: bool,
    two_factor: TwoFactorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mobile_phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
}

#[derive(Serialize)]
pub struct TwoFactorBody {
    methods: Vec<MethodBody>,
}

pub fn user_json<'a>(u: &'a User, methods: &[TwoFactorMethod]) -> UserBody<'a> {
    UserBody {
        id: u.id.to_string(),
        tenant_id: u.tenant_id.to_string(),
        active: u.active,
        data: &u.data,
        insert_instant: u.created_at.millis(),
        last_update_instant: u.updated_at.millis(),
        password_change_required: false,
        verified: u.email_verified,
        two_factor: TwoFactorBody { methods: methods.iter().map(|m| method_json(m, false)).collect() },
        email: u.email.as_ref().map(|e| e.as_str()),
        username: u.username.as_ref().map(|n| n.as_str()),
        mobile_phone: u.mobile_phone.as_ref().map(|p| p.as_str()),
        first_name: u.first_name.as_deref(),
        last_name: u.last_name.as_deref(),
    }
}

/// FusionAuth's `{user: …}` answer.
#[derive(Serialize)]
pub struct OneUser<'a> {
    user: UserBody<'a>,
}

async fn envelope(s: &AppState, u: &User) -> Result<Response, ApiError> {
    let methods = s.factors.methods(u.id).await?;
    Ok(Json(OneUser { user: user_json(u, &methods) }).into_response())
}

fn parse_id(id: &str) -> Result<UserId, ApiError> {
    // An id that cannot exist is simply not found, as FusionAuth answers.
    id.parse().map_err(|_| ApiError::NotFound)
}

pub async fn create(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    ApiJson(body): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let input = body.user.ok_or_else(missing_user)?.into();
    let user = s.users.create(&admin, None, input, body.skip_verification, &ctx, s.clock.now()).await?;
    envelope(&s, &user).await
}

pub async fn create_with_id(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let id: UserId =
        id.parse().map_err(|_| ApiError::general("[invalid]userId", "The user id in the URL is not a valid UUID."))?;
    let input = body.user.ok_or_else(missing_user)?.into();
    let user = s.users.create(&admin, Some(id), input, body.skip_verification, &ctx, s.clock.now()).await?;
    envelope(&s, &user).await
}

pub async fn get(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    envelope(&s, &s.users.get(&admin, parse_id(&id)?).await?).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    login_id: Option<String>,
    email: Option<String>,
    username: Option<String>,
}

/// `GET /api/user?loginId=…` (or `email=` / `username=`).
pub async fn search(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(q): Query<SearchQuery>,
) -> Result<Response, ApiError> {
    let login_id = q.login_id.or(q.email).or(q.username).ok_or_else(|| {
        ApiError::general("[missing]loginId", "Give a user id in the path, or loginId, email or username.")
    })?;
    envelope(&s, &s.users.find(&admin, &login_id).await?).await
}

pub async fn replace(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let input = body.user.ok_or_else(missing_user)?.into();
    let user = s.users.replace(&admin, parse_id(&id)?, input, &ctx, s.clock.now()).await?;
    envelope(&s, &user).await
}

pub async fn patch(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let patch = body.get("user").filter(|u| u.is_object()).ok_or_else(missing_user)?;
    // RFC 7396: the body merged into the user as it is, then replaced as a PUT would.
    let id = parse_id(&id)?;
    let existing = s.users.get(&admin, id).await?;
    let mut current = serde_json::to_value(UserFields::of(&existing)).map_err(|e| ApiError::Internal(e.to_string()))?;
    merge_patch(&mut current, patch);
    let fields: UserFields = serde_json::from_value(current).map_err(|e| {
        ApiError::Invalid(ValidationErrors::field("user", "invalid", format!("The [user] object is malformed: {e}")))
    })?;
    let user = s.users.replace(&admin, id, fields.into(), &ctx, s.clock.now()).await?;
    envelope(&s, &user).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteQuery {
    #[serde(default)]
    hard_delete: bool,
}

pub async fn delete(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    s.users.delete(&admin, parse_id(&id)?, q.hard_delete, &ctx, s.clock.now()).await?;
    Ok(StatusCode::OK)
}
