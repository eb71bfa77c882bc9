//! The FusionAuth User API: `/api/user`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::ids::UserId;
use tessera_core::twofactor::TwoFactorMethod;
use tessera_core::user::{User, UserInput};

use crate::api::two_factor::{MethodBody, method_json};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller};

/// `{"user": {…}}`, the envelope FusionAuth uses for requests and answers.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRequest {
    user: Option<UserInput>,
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
    let input = body.user.ok_or_else(missing_user)?;
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
    let input = body.user.ok_or_else(missing_user)?;
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
    let input = body.user.ok_or_else(missing_user)?;
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
    let user = s.users.patch(&admin, parse_id(&id)?, patch, &ctx, s.clock.now()).await?;
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
