//! Request extractors that speak our error format.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tessera_core::apikey::Admin;
use tessera_core::audit::Actor;
use tessera_core::ids::TenantId;
use tessera_core::secret::Secret;
use tessera_core::service::RequestContext;

use crate::app::AppState;
use crate::error::ApiError;

/// JSON body whose parse errors come back as a 400 `[invalidJSON]` general error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let message = match &rejection {
                    JsonRejection::MissingJsonContentType(_) => {
                        "The request must have the header Content-Type: application/json.".to_owned()
                    }
                    other => format!("The request body is not valid JSON for this API: {}", other.body_text()),
                };
                Err(ApiError::general("[invalidJSON]", message))
            }
        }
    }
}

/// A caller that presented a valid admin API key in `Authorization`.
pub struct AdminAuth(pub Admin);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
            .filter(|v| !v.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        match state.identity.authenticate_admin(&Secret::new(key)).await? {
            Some(admin) => {
                // For `Caller`, which comes after it in a handler's arguments: the audit
                // log names the key that acted.
                parts.extensions.insert(Actor::ApiKey(admin.key_id));
                parts.extensions.insert(admin.tenant_id);
                Ok(AdminAuth(admin))
            }
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// The browser's long-lived device cookie, put among the request's extensions by the
/// hosted pages' layer ([`crate::api::pages::device_cookie`]) so [`Caller`] carries it.
#[derive(Clone)]
pub struct DeviceCookie(pub Secret);

/// Who sent the request, for the audit log and per-IP limits: the peer address, or,
/// when the peer is a trusted proxy (`trusted_proxies`), the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy. An untrusted client
/// cannot choose its address by sending the header.
pub struct Caller(pub RequestContext);

impl FromRequestParts<AppState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let actor = parts.extensions.get::<Actor>().copied();
        // Put there by the extractor that authenticated the request, which comes first.
        let tenant = parts.extensions.get::<TenantId>().copied();
        // Kept with a sign-in among its signals; cut short so a huge header costs nothing.
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect::<String>());
        // Put there by the hosted pages' device-cookie layer.
        let device = parts.extensions.get::<DeviceCookie>().map(|d| d.0.digest());
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = match peer {
            Some(p) if s.trusted_proxies.contains(&p) => {
                client_behind_proxies(&parts.headers, &s.trusted_proxies).unwrap_or(p)
            }
            Some(p) => p,
            None => return Ok(Caller(RequestContext { ip: None, user_agent, actor, tenant, device })),
        };
        Ok(Caller(RequestContext { ip: Some(ip.to_string()), user_agent, actor, tenant, device }))
    }
}

fn client_behind_proxies(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let v = headers.get("x-forwarded-for")?.to_str().ok()?;
    v.split(',').rev().filter_map(|hop| hop.trim().parse::<IpAddr>().ok()).find(|ip| !trusted.contains(ip))
}

/// The bearer token of `Authorization: Bearer …` (FusionAuth also accepts `JWT …`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("JWT ")).map(str::trim).filter(|t| !t.is_empty())
}

/// A cookie's value from the `Cookie` header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The remembered-device cookie, named as FusionAuth names it so its hosted pages
/// and its login API share one trust token.
pub const TRUST_COOKIE: &str = "fusionauth.trust";

/// The trust token a browser presents, if any.
pub fn trust_cookie(headers: &HeaderMap) -> Option<Secret> {
    cookie(headers, TRUST_COOKIE).map(|t| Secret::new(t.to_owned()))
}

/// Remember this device for `ttl` seconds.
pub fn set_trust_cookie(response: &mut axum::response::Response, token: &Secret, ttl: u64) {
    let c = format!("{TRUST_COOKIE}={}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax", token.expose());
    if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
}

/// A JSON body that may be empty (`T::default()`): endpoints whose input may come
/// from a cookie or whose fields are all optional, and FusionAuth's two-factor endpoints,
/// whose clients do not always declare the body's type. A body that is there must be
/// JSON of the right shape: otherwise the same 400 `[invalidJSON]` as [`ApiJson`].
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::general("[invalidJSON]", format!("The request body could not be read: {e}")))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&body)
            .map(OptionalJson)
            .map_err(|e| ApiError::general("[invalidJSON]", format!("The request body is not valid JSON: {e}")))
    }
}

/// `?startRow=&numberOfResults=` paging, FusionAuth's names; 25 rows by default.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    #[serde(default)]
    pub start_row: u64,
    #[serde(default = "default_page_size")]
    pub number_of_results: u64,
}

fn default_page_size() -> u64 {
    25
}
