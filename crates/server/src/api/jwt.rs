//! Tokens: validation, refresh, revocation, logout and the public keys.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::secret::Secret;

use tessera_core::service::Refreshed;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, Caller, OptionalJson, bearer, cookie};

/// `GET /api/jwt/validate` with `Authorization: Bearer <jwt>`: 200 with the claims or 401.
pub async fn validate(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<ValidBody>, ApiError> {
    let token = bearer(&headers).or_else(|| cookie(&headers, "access_token")).ok_or(ApiError::Unauthorized)?;
    let jwt = s.identity.validate_jwt(token, s.clock.now()).map_err(|_| ApiError::Unauthorized)?;
    Ok(Json(ValidBody { jwt }))
}

/// A valid token's claims, as FusionAuth answers.
#[derive(Serialize)]
pub struct ValidBody {
    jwt: Value,
}

/// A new access token for a refresh token, which stays the same.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshedBody {
    token: String,
    refresh_token: String,
}

pub async fn jwks(State(s): State<AppState>) -> Json<Value> {
    Json(s.identity.jwks().clone())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

/// `POST /api/jwt/refresh` `{refreshToken}` (or the `refresh_token` cookie).
pub async fn refresh(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    OptionalJson(parsed): OptionalJson<RefreshBody>,
) -> Result<Json<RefreshedBody>, ApiError> {
    let token = parsed
        .refresh_token
        .or_else(|| cookie(&headers, "refresh_token").map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::general("[blank]refreshToken", "You must specify the [refreshToken] property."))?;
    let secret = Secret::new(token);
    match s.identity.refresh(&secret, &ctx, s.clock.now()).await? {
        Refreshed::Token { jwt, .. } => {
            Ok(Json(RefreshedBody { token: jwt, refresh_token: secret.expose().to_owned() }))
        }
        Refreshed::Invalid => Err(ApiError::Unauthorized),
        // As a sign-in an action refuses (FusionAuth's prevented login), with the reason.
        Refreshed::Denied { reason } => {
            Err(ApiError::refused(StatusCode::CONFLICT, "[LoginPreventedException]", reason))
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeQuery {
    user_id: Option<String>,
    token: Option<String>,
}

/// `DELETE /api/jwt/refresh?userId=…` or `?token=…` (admin).
pub async fn revoke(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(q): Query<RevokeQuery>,
) -> Result<StatusCode, ApiError> {
    let now = s.clock.now();
    match (q.user_id, q.token) {
        (Some(user), _) => {
            let id = user.parse().map_err(|_| ApiError::NotFound)?;
            s.identity.revoke_user_tokens(&admin, id, now).await?;
        }
        (None, Some(token)) => s.identity.revoke_refresh_token(&admin, &Secret::new(token), now).await?,
        (None, None) => {
            return Err(ApiError::general("[missing]userId", "Give userId or token to say what to revoke."));
        }
    }
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LogoutBody {
    #[serde(default)]
    global: bool,
    refresh_token: Option<String>,
}

/// `POST /api/logout` `{global, refreshToken}`: revokes the refresh token (or all of
/// the user's with `global`).
pub async fn logout(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    OptionalJson(parsed): OptionalJson<LogoutBody>,
) -> Result<StatusCode, ApiError> {
    let refresh =
        parsed.refresh_token.or_else(|| cookie(&headers, "refresh_token").map(str::to_owned)).map(Secret::new);
    let access = bearer(&headers).or_else(|| cookie(&headers, "access_token"));
    s.identity.logout(refresh.as_ref(), access, parsed.global, &ctx, s.clock.now()).await?;
    Ok(StatusCode::OK)
}
