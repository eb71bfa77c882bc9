//! Sign-in: the password page, then the second step when the user has a factor.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tessera_core::login::{LoginOutcome, LoginRequest, LoginSuccess};
use tessera_core::password::Password;
use tessera_core::secret::Secret;
use tessera_core::service::{SendOutcome, TwoFactorLoginOutcome, TwoFactorLoginRequest};
use tessera_core::twofactor::{MethodId, TwoFactorMethod, mask_phone};
use tessera_core::user::LoginId;

use super::{Cookies, checked, form_expired, render, safe_return, see_other, sent_notice, with_csrf};
use crate::api::oidc::session_policy;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, set_trust_cookie, trust_cookie};

fn login_view(
    s: &AppState,
    status: StatusCode,
    csrf: &str,
    return_to: &str,
    login_id: &str,
    error: Option<&str>,
) -> Response {
    render(s, status, "login.html", minijinja::context! { title => "Sign in", csrf, return_to, login_id, error })
}

#[derive(Serialize)]
struct Phone {
    id: String,
    masked: String,
}

/// What the second step's page carries: the challenge's id and the CSRF token. The
/// rest of the sign-in (its destination among it) is kept with the challenge.
struct Challenge<'a> {
    csrf: &'a str,
    id: &'a str,
    /// "Remember this device" was ticked (kept when the page comes back).
    trust: bool,
}

fn two_factor_view(
    s: &AppState,
    status: StatusCode,
    c: &Challenge<'_>,
    methods: &[TwoFactorMethod],
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let phones: Vec<Phone> = methods
        .iter()
        .filter_map(|m| m.phone().map(|p| Phone { id: m.id.as_str().to_owned(), masked: mask_phone(p) }))
        .collect();
    render(
        s,
        status,
        "two_factor.html",
        minijinja::context! {
            title => "Second step", csrf => c.csrf, challenge => c.id, trust => c.trust,
            phones => minijinja::Value::from(minijinja::value::Serde(&phones)), notice, error,
        },
    )
}

/// `GET /login?return_to=…`.
pub async fn login_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    let csrf = cookies.csrf_or_new(&headers)?;
    let return_to = safe_return(q.get("return_to").map_or("", String::as_str));
    Ok(with_csrf(login_view(&s, StatusCode::OK, &csrf, &return_to, "", None), &cookies, &csrf))
}

async fn signed_in(s: &AppState, cookies: &Cookies, ok: &LoginSuccess, return_to: &str) -> Result<Response, ApiError> {
    let session = s.identity.start_browser_session(ok, &session_policy(), s.clock.now()).await?;
    let mut r = see_other(&safe_return(return_to));
    cookies.set_session(&mut r, &session);
    Ok(r)
}

/// `POST /login`.
pub async fn login_submit(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let (csrf, return_to) = (form.get("csrf"), form.return_to());
    let again = |status, msg: &str| login_view(&s, status, csrf, &return_to, form.get("login_id"), Some(msg));
    let (Some(login_id), false) = (LoginId::parse(form.get("login_id")), form.get("password").is_empty()) else {
        return Ok(again(StatusCode::BAD_REQUEST, "Enter your email or username and your password."));
    };
    let req = LoginRequest {
        login_id,
        password: Password::new(form.get("password")),
        application_id: None,
        no_jwt: true,
        trust_token: trust_cookie(&headers),
        return_to: Some(return_to.clone()),
    };
    Ok(match s.identity.login(req, &ctx, s.clock.now()).await? {
        LoginOutcome::Success(ok) => signed_in(&s, &cookies, &ok, &return_to).await?,
        LoginOutcome::TwoFactorRequired { challenge_id, methods } => {
            let c = Challenge { csrf, id: challenge_id.expose(), trust: false };
            two_factor_view(&s, StatusCode::OK, &c, &methods, None, None)
        }
        LoginOutcome::InvalidCredentials => {
            again(StatusCode::UNAUTHORIZED, "That email, username or password is not right.")
        }
        LoginOutcome::Locked { .. } => {
            again(StatusCode::CONFLICT, "Too many attempts. Wait a few minutes and try again.")
        }
    })
}

/// `POST /login/two-factor`.
pub async fn two_factor_submit(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let trust = form.get("trust") == "1";
    let c = Challenge { csrf: form.get("csrf"), id: form.get("challenge"), trust };
    let req = TwoFactorLoginRequest {
        challenge_id: Secret::new(c.id),
        code: form.get("code").to_owned(),
        trust_computer: trust,
        no_jwt: true,
    };
    Ok(match s.identity.two_factor_login(req, &ctx, s.clock.now()).await? {
        TwoFactorLoginOutcome::Success(ok) => {
            let mut r = signed_in(&s, &cookies, &ok, ok.return_to.as_deref().unwrap_or_default()).await?;
            if let Some(t) = &ok.trust_token {
                set_trust_cookie(&mut r, t, s.identity.policies().two_factor.trust_ttl.as_secs());
            }
            r
        }
        TwoFactorLoginOutcome::WrongCode => {
            let methods = s.identity.challenge_methods(&Secret::new(c.id), s.clock.now()).await?.unwrap_or_default();
            let error = Some("That code is not right. Try again.");
            two_factor_view(&s, StatusCode::UNAUTHORIZED, &c, &methods, None, error)
        }
        TwoFactorLoginOutcome::NotFound => {
            login_view(&s, StatusCode::OK, c.csrf, "", "", Some("That took too long. Sign in again."))
        }
        TwoFactorLoginOutcome::Locked { .. } => {
            super::error_page(&s, StatusCode::CONFLICT, "Too many wrong codes. Try again later.")
        }
    })
}

/// `POST /login/send?method_id=…`: a fresh code by text message or by a call
/// (`channel=voice`) to the phone the button was for.
pub async fn send_code(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((_, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let c = Challenge { csrf: form.get("csrf"), id: form.get("challenge"), trust: false };
    let (channel, _) = form.channel();
    let method = MethodId::parse(q.get("method_id").map_or("", String::as_str));
    let outcome =
        s.identity.send_challenge_code(&Secret::new(c.id), method.as_ref(), channel, "en", &ctx, s.clock.now()).await?;
    let (notice, error) = match outcome {
        SendOutcome::Sent => (Some(sent_notice(&s, channel)), None),
        SendOutcome::RateLimited => (None, Some("Too many codes were sent. Wait a minute.")),
        SendOutcome::NotFound => (None, Some("That took too long. Sign in again.")),
        SendOutcome::Blocked(_) | SendOutcome::Failed(_) => {
            (None, Some("The code could not be sent. Use another method."))
        }
    };
    let methods = s.identity.challenge_methods(&Secret::new(c.id), s.clock.now()).await?.unwrap_or_default();
    Ok(two_factor_view(&s, StatusCode::OK, &c, &methods, notice.as_deref(), error))
}
