//! FusionAuth's Application API, for the parts Tessera has: the name, the OAuth
//! configuration (exact redirect URLs, client authentication, PKCE) and the second-factor
//! login policy. Client secrets are stored hashed, so one is in an answer only when it
//! was just made.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_core::ids::ApplicationId;
use tessera_core::oidc::MfaPolicy;
use tessera_core::secret::Secret;
use tessera_core::service::{ApplicationInput, ApplicationRecord};
use tessera_core::validation::ValidationErrors;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller};

#[derive(Deserialize)]
pub struct Body {
    application: ApplicationBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    oauth_configuration: OAuthBody,
    #[serde(default)]
    multi_factor_configuration: MultiFactorBody,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OAuthBody {
    #[serde(rename = "authorizedRedirectURLs", default)]
    authorized_redirect_urls: Vec<String>,
    client_authentication_policy: Option<String>,
    proof_key_for_code_exchange_policy: Option<String>,
    client_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MultiFactorBody {
    login_policy: Option<String>,
}

const CLIENT_AUTH: &str = "application.oauthConfiguration.clientAuthenticationPolicy";
const PKCE: &str = "application.oauthConfiguration.proofKeyForCodeExchangePolicy";
const LOGIN_POLICY: &str = "application.multiFactorConfiguration.loginPolicy";

/// FusionAuth's `loginPolicy`: Disabled, Enabled (when the user has a factor), Required
/// (users without one enroll at their next sign-in).
fn login_policy(p: MfaPolicy) -> &'static str {
    match p {
        MfaPolicy::Never => "Disabled",
        MfaPolicy::WhenEnrolled => "Enabled",
        MfaPolicy::Always => "Required",
    }
}

impl ApplicationBody {
    /// The wire body as the domain's input. A client without authentication must use
    /// PKCE here (`NotRequired` means the same as `NotRequiredWhenUsingPKCE`); PKCE cannot
    /// be demanded of clients with a secret, so asking for it is refused, not ignored.
    fn into_input(self) -> Result<ApplicationInput, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let o = self.oauth_configuration;
        let public = match o.client_authentication_policy.as_deref().unwrap_or("Required") {
            "Required" => false,
            "NotRequired" | "NotRequiredWhenUsingPKCE" => true,
            _ => {
                let msg = "The [clientAuthenticationPolicy] must be Required, NotRequired or NotRequiredWhenUsingPKCE.";
                errors.add(CLIENT_AUTH, "invalid", msg);
                false
            }
        };
        match (public, o.proof_key_for_code_exchange_policy.as_deref()) {
            (_, None) | (true, Some("Required")) => {}
            (false, Some("NotRequired" | "NotRequiredWhenUsingClientAuthentication")) => {}
            (true, Some(_)) => errors.add(PKCE, "invalid", "Clients without a secret must use PKCE: use Required."),
            (false, Some(_)) => errors.add(
                PKCE,
                "notSupported",
                "PKCE is required of clients without a secret and optional for clients with one; \
                 use NotRequired or NotRequiredWhenUsingClientAuthentication.",
            ),
        }
        let mfa_policy = match self.multi_factor_configuration.login_policy.as_deref().unwrap_or("Enabled") {
            "Disabled" => MfaPolicy::Never,
            "Enabled" => MfaPolicy::WhenEnrolled,
            "Required" => MfaPolicy::Always,
            _ => {
                errors.add(LOGIN_POLICY, "invalid", "The [loginPolicy] must be Disabled, Enabled or Required.");
                MfaPolicy::WhenEnrolled
            }
        };
        errors.into_result(|| ApplicationInput {
            name: self.name,
            redirect_uris: o.authorized_redirect_urls,
            public,
            mfa_policy,
            client_secret: o.client_secret.map(Secret::new),
        })
    }
}

/// An application as FusionAuth shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    id: String,
    tenant_id: String,
    name: String,
    active: bool,
    insert_instant: i64,
    oauth_configuration: OAuthView,
    multi_factor_configuration: MultiFactorView,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthView {
    client_id: String,
    #[serde(rename = "authorizedRedirectURLs")]
    authorized_redirect_urls: Vec<String>,
    client_authentication_policy: &'static str,
    proof_key_for_code_exchange_policy: &'static str,
    enabled_grants: [&'static str; 2],
    /// Only when one was just made: it is shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiFactorView {
    login_policy: &'static str,
}

fn wire(r: &ApplicationRecord, secret: Option<&Secret>) -> ApplicationView {
    let (a, c) = (&r.application, &r.client);
    let public = c.secret_digest.is_none();
    ApplicationView {
        id: a.id.to_string(),
        tenant_id: a.tenant_id.to_string(),
        name: a.name.clone(),
        active: a.active,
        insert_instant: a.created_at.millis(),
        oauth_configuration: OAuthView {
            client_id: c.id.to_string(),
            authorized_redirect_urls: c.redirect_uris.clone(),
            client_authentication_policy: if public { "NotRequiredWhenUsingPKCE" } else { "Required" },
            proof_key_for_code_exchange_policy: if public { "Required" } else { "NotRequired" },
            enabled_grants: ["authorization_code", "refresh_token"],
            client_secret: secret.map(|s| s.expose().to_owned()),
        },
        multi_factor_configuration: MultiFactorView { login_policy: login_policy(c.mfa_policy) },
    }
}

#[derive(Serialize)]
pub struct OneApplication {
    application: ApplicationView,
}

#[derive(Serialize)]
pub struct Applications {
    applications: Vec<ApplicationView>,
}

fn one((record, secret): (ApplicationRecord, Option<Secret>)) -> Json<OneApplication> {
    Json(OneApplication { application: wire(&record, secret.as_ref()) })
}

fn path_id(id: &str) -> Result<ApplicationId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// `POST /api/application`: a new application with a generated id.
pub async fn create(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    ApiJson(b): ApiJson<Body>,
) -> Result<Json<OneApplication>, ApiError> {
    let input = b.application.into_input().map_err(ApiError::Invalid)?;
    Ok(one(s.applications.create(&admin, None, input, &ctx, s.clock.now()).await?))
}

/// `POST /api/application/{id}`: a new application with the caller's id.
pub async fn create_with_id(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Body>,
) -> Result<Json<OneApplication>, ApiError> {
    let id = id.parse().map_err(|_| {
        ApiError::Invalid(ValidationErrors::field("applicationId", "invalid", "The [applicationId] must be a UUID."))
    })?;
    let input = b.application.into_input().map_err(ApiError::Invalid)?;
    Ok(one(s.applications.create(&admin, Some(id), input, &ctx, s.clock.now()).await?))
}

/// `PUT /api/application/{id}`: replaces the settings; a secret is kept unless a new one
/// is given. `?reactivate=true` (no body) brings a deactivated application back.
pub async fn update(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Json<OneApplication>, ApiError> {
    let id = path_id(&id)?;
    if q.get("reactivate").is_some_and(|v| v == "true") {
        return Ok(one((s.applications.reactivate(&admin, id, &ctx, s.clock.now()).await?, None)));
    }
    let ApiJson(b) = ApiJson::<Body>::from_request(req, &s).await?;
    let input = b.application.into_input().map_err(ApiError::Invalid)?;
    Ok(one(s.applications.update(&admin, id, input, &ctx, s.clock.now()).await?))
}

/// `DELETE /api/application/{id}`: deactivates; `?hardDelete=true` removes it for good.
pub async fn delete(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let hard = q.get("hardDelete").is_some_and(|v| v == "true");
    s.applications.delete(&admin, path_id(&id)?, hard, &ctx, s.clock.now()).await?;
    Ok(StatusCode::OK)
}

/// `GET /api/application/{id}`.
pub async fn get(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<OneApplication>, ApiError> {
    let record = s.applications.get(&admin, path_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(one((record, None)))
}

/// `GET /api/application`: every application of the tenant.
pub async fn list(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Applications>, ApiError> {
    let applications = s.applications.list(&admin).await?.iter().map(|r| wire(r, None)).collect();
    Ok(Json(Applications { applications }))
}
