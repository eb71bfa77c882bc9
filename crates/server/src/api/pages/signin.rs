//! Sign-in: the password page, then the second step when the user has a factor.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tessera_core::login::{Denial, LoginOutcome, LoginRequest, LoginSuccess};
use tessera_core::password::Password;
use tessera_core::secret::Secret;
use tessera_core::service::{BrowserStart, SendOutcome, TwoFactorLoginOutcome, TwoFactorLoginRequest};
use tessera_core::twofactor::{MethodId, TwoFactorMethod, mask_phone};
use tessera_core::user::LoginId;

use super::{Cookies, checked, form_expired, render, safe_return, see_other, sent_notice, with_csrf};
use crate::api::oidc::session_policy;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, set_trust_cookie, trust_cookie};

/// The password page. Its form carries the sign-in's id and the CSRF token; the
/// sign-in keeps the rest (`return_to` is in the context only for themes written
/// before, which post it back: such a form still works, see `login_submit`).
struct LoginForm<'a> {
    csrf: &'a str,
    sign_in: &'a str,
    login_id: &'a str,
}

fn login_view(s: &AppState, status: StatusCode, f: &LoginForm<'_>, error: Option<&str>) -> Response {
    let (csrf, signin, login_id) = (f.csrf, f.sign_in, f.login_id);
    render(s, status, "login.html", minijinja::context! { title => "Sign in", csrf, signin, login_id, error })
}

#[derive(Serialize)]
struct Phone {
    id: String,
    masked: String,
}

/// What the second step's page carries: the sign-in's id and the CSRF token. The rest
/// of the sign-in (its destination, the methods passed) is kept on the server.
struct SecondStep<'a> {
    csrf: &'a str,
    id: &'a str,
    /// "Remember this device" was ticked (kept when the page comes back).
    trust: bool,
}

fn two_factor_view(
    s: &AppState,
    status: StatusCode,
    c: &SecondStep<'_>,
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
            title => "Second step", csrf => c.csrf, signin => c.id, challenge => c.id, trust => c.trust,
            phones => minijinja::Value::from(minijinja::value::Serde(&phones)), notice, error,
        },
    )
}

/// `GET /login?return_to=…`: a sign-in begins, and keeps where it leads. Sent here by
/// `/oauth2/authorize`, the page shows the sign-in begun there (`signin`), if it is this
/// browser's and still waits for its password.
pub async fn login_page(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    let csrf = cookies.csrf_or_new(&headers)?;
    let browser = Secret::new(csrf.as_str());
    let now = s.clock.now();
    let begun = q.get("signin").filter(|id| !id.is_empty()).map(|id| Secret::new(id.as_str()));
    let sign_in = match begun {
        Some(id) if s.identity.browser_sign_in_open(&id, &browser, now).await? => id,
        // Another browser's, used or timed out: one of this browser's own, to the
        // same place.
        Some(id) => s.identity.restart_browser_sign_in(&id, &browser, &ctx, now).await?,
        None => {
            let start = BrowserStart::to(&safe_return(q.get("return_to").map_or("", String::as_str)));
            s.identity.begin_browser_sign_in(&start, &browser, &ctx, now).await?
        }
    };
    let form = LoginForm { csrf: &csrf, sign_in: sign_in.expose(), login_id: "" };
    Ok(with_csrf(login_view(&s, StatusCode::OK, &form, None), &cookies, &csrf))
}

/// The end of a hosted sign-in: a browser session, and on to where it was going.
async fn signed_in(s: &AppState, cookies: &Cookies, ok: &LoginSuccess) -> Result<Response, ApiError> {
    let r = see_other(&safe_return(ok.return_to.as_deref().unwrap_or_default()));
    with_session(s, cookies, ok, r).await
}

/// `response`, with the browser session a hosted sign-in just ended in (and the
/// remembered device, if asked for).
pub(super) async fn with_session(
    s: &AppState,
    cookies: &Cookies,
    ok: &LoginSuccess,
    mut response: Response,
) -> Result<Response, ApiError> {
    let session = s.identity.start_browser_session(ok, &session_policy(), s.clock.now()).await?;
    cookies.set_session(&mut response, &session);
    if let Some(t) = &ok.trust_token {
        set_trust_cookie(&mut response, t, s.identity.policies().two_factor.trust_ttl.as_secs());
    }
    Ok(response)
}

/// What a step of the hosted sign-in led to, as a page (or a redirect).
async fn outcome_page(
    s: &AppState,
    cookies: &Cookies,
    headers: &HeaderMap,
    csrf: &str,
    outcome: LoginOutcome,
) -> Result<Response, ApiError> {
    Ok(match outcome {
        LoginOutcome::Done(ok) => signed_in(s, cookies, &ok).await?,
        LoginOutcome::NeedFactor { sign_in, methods } => {
            let c = SecondStep { csrf, id: sign_in.expose(), trust: false };
            two_factor_view(s, StatusCode::OK, &c, &methods, None, None)
        }
        LoginOutcome::NeedEnrolment { sign_in } => {
            let browser = Secret::new(csrf);
            super::enroll::sign_in_enrolment(s, StatusCode::OK, &sign_in, &browser, headers, Default::default()).await?
        }
        LoginOutcome::Redirect { url } => see_other(&url),
        LoginOutcome::Denied(Denial::Refused { reason }) => super::error_page(s, StatusCode::FORBIDDEN, &reason),
        LoginOutcome::Denied(_) => super::error_page(s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE),
    })
}

/// The sign-in a second-step form is for (`challenge` in themes from before).
fn sign_in_field(form: &super::Form) -> &str {
    match form.get("signin") {
        "" => form.get("challenge"),
        id => id,
    }
}

const CANNOT_CONTINUE: &str = "This sign-in cannot be continued. Sign in again.";

/// `POST /login`.
pub async fn login_submit(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let now = s.clock.now();
    // The page's sign-in. A form without one (a theme from before sign-ins were kept,
    // or a sign-in form on another of the site's pages) starts one with the
    // destination it posted.
    let sign_in = match form.get("signin") {
        "" => {
            let start = BrowserStart::to(&form.return_to());
            s.identity.begin_browser_sign_in(&start, &Secret::new(form.get("csrf")), &ctx, now).await?
        }
        id => Secret::new(id),
    };
    let csrf = form.get("csrf");
    let again = |status, id: &Secret, msg: &str| {
        let f = LoginForm { csrf, sign_in: id.expose(), login_id: form.get("login_id") };
        login_view(&s, status, &f, Some(msg))
    };
    let (Some(login_id), false) = (LoginId::parse(form.get("login_id")), form.get("password").is_empty()) else {
        return Ok(again(StatusCode::BAD_REQUEST, &sign_in, "Enter your email or username and your password."));
    };
    let req = LoginRequest {
        login_id,
        password: Password::new(form.get("password")),
        application_id: None,
        no_jwt: true,
        trust_token: trust_cookie(&headers),
        sign_in: Some(sign_in.clone()),
        browser: Some(Secret::new(csrf)),
    };
    Ok(match s.identity.login(req, &ctx, now).await? {
        LoginOutcome::Denied(Denial::InvalidCredentials) => {
            again(StatusCode::UNAUTHORIZED, &sign_in, "That email, username or password is not right.")
        }
        LoginOutcome::Denied(Denial::Locked { .. }) => {
            again(StatusCode::CONFLICT, &sign_in, "Too many attempts. Wait a few minutes and try again.")
        }
        LoginOutcome::Denied(Denial::Expired) => {
            let fresh = s.identity.restart_browser_sign_in(&sign_in, &Secret::new(csrf), &ctx, now).await?;
            again(StatusCode::OK, &fresh, "That took too long. Sign in again.")
        }
        outcome => outcome_page(&s, &cookies, &headers, csrf, outcome).await?,
    })
}

/// `GET /login/continue?state=…`: a sign-in sent to another page (by a script) comes
/// back. The token in `state` works once, and only while the sign-in lasts.
pub async fn continue_sign_in(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let state = q.get("state").map_or("", String::as_str);
    if state.is_empty() {
        return Ok(super::error_page(&s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE));
    }
    let cookies = Cookies::new(&s);
    let csrf = cookies.csrf_or_new(&headers)?;
    // The browser it left from still has its CSRF token (a new one here means another browser).
    let browser = cookies.csrf(&headers).map(Secret::new);
    // What came back with it (a token of the page it went to, say) is for the scripts.
    let given: serde_json::Map<String, serde_json::Value> =
        q.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let outcome =
        s.identity.continue_sign_in(&Secret::new(state), browser.as_ref(), given, &ctx, s.clock.now()).await?;
    Ok(with_csrf(outcome_page(&s, &cookies, &headers, &csrf, outcome).await?, &cookies, &csrf))
}

/// `POST /login/continue`: the same, with `state` and what the page sends back in a
/// form (Auth0 advises posting a token back, so it is not left in an address).
pub async fn continue_sign_in_form(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    continue_sign_in(state, caller, headers, Query(fields)).await
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
    let c = SecondStep { csrf: form.get("csrf"), id: sign_in_field(&form), trust };
    let req = TwoFactorLoginRequest {
        challenge_id: Secret::new(c.id),
        code: form.get("code").to_owned(),
        trust_computer: trust,
        no_jwt: true,
    };
    Ok(match s.identity.two_factor_login(req, &ctx, s.clock.now()).await? {
        TwoFactorLoginOutcome::Success(ok) => signed_in(&s, &cookies, &ok).await?,
        TwoFactorLoginOutcome::WrongCode => {
            let methods = s.identity.challenge_methods(&Secret::new(c.id), s.clock.now()).await?.unwrap_or_default();
            let error = Some("That code is not right. Try again.");
            two_factor_view(&s, StatusCode::UNAUTHORIZED, &c, &methods, None, error)
        }
        TwoFactorLoginOutcome::NotFound => {
            let fresh = s
                .identity
                .restart_browser_sign_in(&Secret::new(c.id), &Secret::new(c.csrf), &ctx, s.clock.now())
                .await?;
            let f = LoginForm { csrf: c.csrf, sign_in: fresh.expose(), login_id: "" };
            login_view(&s, StatusCode::OK, &f, Some("That took too long. Sign in again."))
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
    let c = SecondStep { csrf: form.get("csrf"), id: sign_in_field(&form), trust: false };
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
