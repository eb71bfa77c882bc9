//! The OpenID Connect provider's endpoints: discovery, authorize, token, userinfo,
//! logout. Applications (the clients) are set up through `api::applications`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use tessera_core::oidc::{ACR_MFA, SessionPolicy};

use tessera_core::secret::Secret;
use tessera_core::service::{AuthorizeOutcome, BrowserStart, OAuthTokenError};

use crate::api::pages::{self, Cookies};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::bearer;

/// Discovery. The issuer and the endpoints come from configuration (`issuer`,
/// `public_url`, `listen`), never from the request: a `Host` header is the client's to set.
pub async fn discovery(State(s): State<AppState>) -> Json<Discovery> {
    let base = &s.base_url;
    Json(Discovery {
        issuer: s.identity.issuer().to_owned(),
        authorization_endpoint: format!("{base}/oauth2/authorize"),
        token_endpoint: format!("{base}/oauth2/token"),
        userinfo_endpoint: format!("{base}/oauth2/userinfo"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        end_session_endpoint: format!("{base}/oauth2/logout"),
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        grant_types_supported: ["authorization_code", "refresh_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: [s.identity.jwt_algorithm()],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "none"],
        code_challenge_methods_supported: ["S256"],
        scopes_supported: ["openid", "email", "profile", "offline_access"],
        claims_supported: [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "email",
            "preferred_username",
        ],
        acr_values_supported: [ACR_MFA],
        prompt_values_supported: ["login"],
    })
}

/// OpenID Connect Discovery 1.0 §3: what this provider supports and where.
#[derive(Serialize)]
pub struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 2],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    code_challenge_methods_supported: [&'static str; 1],
    scopes_supported: [&'static str; 4],
    claims_supported: [&'static str; 11],
    acr_values_supported: [&'static str; 1],
    prompt_values_supported: [&'static str; 1],
}

/// RFC 6749 §5.2's error body.
#[derive(Serialize)]
pub struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// RFC 6749 §5.1's token answer.
#[derive(Serialize)]
pub struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

pub(crate) fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{base}{}{q}", if base.contains('?') { '&' } else { '?' })
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub fn session_policy() -> SessionPolicy {
    SessionPolicy::default()
}

/// `GET /oauth2/authorize`.
pub async fn authorize(
    State(s): State<AppState>,
    crate::extract::Caller(ctx): crate::extract::Caller,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    let now = s.clock.now();
    let session = match cookies.session(&headers) {
        Some(c) => s.identity.browser_session(&c, &session_policy(), now).await?,
        None => None,
    };
    Ok(match s.identity.authorize(&params, session.as_ref(), &ctx, now).await? {
        AuthorizeOutcome::ErrorPage(message) => pages::error_page(&s, StatusCode::BAD_REQUEST, &message),
        AuthorizeOutcome::RedirectError { redirect_uri, error, description, state } => {
            let mut q = vec![("error", error), ("error_description", description.as_str())];
            if let Some(st) = &state {
                q.push(("state", st));
            }
            see_other(&with_query(&redirect_uri, &q))
        }
        AuthorizeOutcome::Login { application, rule } => {
            let back = uri.path_and_query().map_or("/oauth2/authorize", |p| p.as_str());
            // `prompt=login` must not loop: the sign-in drops it from the way back.
            let back = strip_prompt(back);
            // The sign-in begins here, for this client's application and its rule, bound
            // to this browser; the page it is sent to shows it.
            let csrf = cookies.csrf_or_new(&headers)?;
            let start = BrowserStart { return_to: back.clone(), application: Some(application), rule };
            let sign_in = s.identity.begin_browser_sign_in(&start, &Secret::new(csrf.as_str()), &ctx, now).await?;
            let login = with_query("/login", &[("return_to", back.as_str()), ("signin", sign_in.expose())]);
            pages::with_csrf(see_other(&login), &cookies, &csrf)
        }
        AuthorizeOutcome::Enroll { session, application, rule } => {
            // A sign-in for the session's user waits for a factor, bound to this browser;
            // its page carries only its id, and it leads back here.
            let back = uri.path_and_query().map_or("/oauth2/authorize", |p| p.as_str()).to_owned();
            let csrf = cookies.csrf_or_new(&headers)?;
            let start = BrowserStart { return_to: back, application: Some(application), rule };
            let browser = Secret::new(csrf.as_str());
            let sign_in = s.identity.begin_session_enrolment(&session, &start, &browser, &ctx, now).await?;
            let enrol = with_query("/login/enroll", &[("signin", sign_in.expose())]);
            pages::with_csrf(see_other(&enrol), &cookies, &csrf)
        }
        AuthorizeOutcome::Code { redirect_uri, code, state } => {
            let mut q = vec![("code", code.expose())];
            if let Some(st) = &state {
                q.push(("state", st));
            }
            see_other(&with_query(&redirect_uri, &q))
        }
    })
}

fn strip_prompt(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else { return path_and_query.to_owned() };
    let kept: Vec<&str> = query.split('&').filter(|kv| !kv.starts_with("prompt=")).collect();
    format!("{path}?{}", kept.join("&"))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (status, Json(OAuthErrorBody { error, error_description: description })).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str("Basic realm=\"tessera\"")
    {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn percent_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}"))
        .ok()
        .and_then(|v| v.into_iter().next())
        .map_or_else(|| s.to_owned(), |(_, v)| v)
}

/// `POST /oauth2/token`: client_secret_basic, client_secret_post or none (public + PKCE).
pub async fn token(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let params: HashMap<String, String> =
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default().into_iter().collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.split_once(':').map(|(u, p)| (percent_decode(u), percent_decode(p))));
    let (client_id, secret) = match (&basic, params.get("client_id")) {
        (Some((u, p)), _) => (u.clone(), Some(p.clone())),
        (None, Some(id)) => (id.clone(), params.get("client_secret").cloned()),
        (None, None) => {
            return Ok(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication is required."));
        }
    };
    let answer = s.identity.token(&params, &client_id, secret.as_deref(), s.clock.now()).await?;
    Ok(match answer {
        Ok(t) => {
            let body = TokenBody {
                access_token: t.access_token,
                token_type: "Bearer",
                expires_in: t.expires_in,
                scope: t.scope,
                refresh_token: t.refresh_token.map(|r| r.expose().to_owned()),
                id_token: t.id_token,
            };
            let mut r = Json(body).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(OAuthTokenError::InvalidClient) => {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.")
        }
        Err(OAuthTokenError::InvalidGrant(why)) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
        Err(OAuthTokenError::InvalidRequest(why)) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
        Err(OAuthTokenError::AccessDenied(why)) => oauth_error(StatusCode::FORBIDDEN, "access_denied", &why),
        Err(OAuthTokenError::UnsupportedGrantType) => {
            oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Use authorization_code or refresh_token.")
        }
    })
}

/// `GET|POST /oauth2/userinfo` with the access token.
pub async fn userinfo(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let info = match bearer(&headers) {
        Some(t) => s.identity.userinfo(t, s.clock.now()).await?,
        None => None,
    };
    Ok(match info {
        Some(v) => Json(v).into_response(),
        None => {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            r
        }
    })
}

/// `GET /oauth2/logout`: RP-initiated logout. With an `id_token_hint` we signed, the
/// client is known to be asking and the session ends at once; otherwise the user
/// confirms first (OpenID Connect RP-Initiated Logout §2), so a bare link cannot sign
/// anyone out. The browser is sent back only to an address registered for the client.
pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if s.identity.logout_hint_is_ours(&params) {
        pages::sign_out(&s, &headers, &params).await
    } else {
        pages::logout_confirmation(&s, &headers, &params).await
    }
}
