//! The hosted pages (server-rendered from [`crate::templates`], no JavaScript): sign-in
//! and the second step, enrolment, the account page and sign-out. Each form carries a
//! CSRF token that must match its cookie; errors are shown in words on the page.

mod account;
mod enroll;
mod regions;
mod signin;

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use tessera_core::messaging::Channel;
use tessera_core::oidc::BrowserSession;
use tessera_core::random;
use tessera_core::secret::{Secret, constant_time_eq};

pub use account::{
    account, account_recovery_codes, account_remove, logout_confirmation, logout_page, logout_submit, sign_out,
};
pub use enroll::{enroll_page, enroll_phone_confirm, enroll_phone_send, enroll_submit};
pub use signin::{continue_sign_in, continue_sign_in_form, login_page, login_submit, send_code, two_factor_submit};

use crate::api::oidc::session_policy;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{DeviceCookie, cookie};

/// Cookie names and flags: `__Host-` names and `Secure` when Tessera is served over TLS.
pub struct Cookies {
    secure: bool,
}

impl Cookies {
    pub fn new(s: &AppState) -> Self {
        Cookies { secure: s.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) }
    }

    fn name(&self, base: &str) -> String {
        if self.secure { format!("__Host-{base}") } else { base.to_owned() }
    }

    fn set(&self, response: &mut Response, base: &str, value: &str, max_age: Option<u64>) {
        let mut c = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", self.name(base));
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    pub fn session(&self, headers: &HeaderMap) -> Option<Secret> {
        cookie(headers, &self.name("tessera_session")).map(Secret::new)
    }

    fn set_session(&self, response: &mut Response, value: &Secret) {
        self.set(response, "tessera_session", value.expose(), None);
    }

    pub fn clear_session(&self, response: &mut Response) {
        self.set(response, "tessera_session", "", Some(0));
    }

    pub(crate) fn csrf(&self, headers: &HeaderMap) -> Option<String> {
        cookie(headers, &self.name("tessera_csrf")).map(str::to_owned)
    }

    /// The browser's device cookie, if it is one we could have set.
    fn device(&self, headers: &HeaderMap) -> Option<Secret> {
        let v = cookie(headers, &self.name("tessera_device"))?;
        let ours =
            (16..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ours.then(|| Secret::new(v))
    }

    /// The browser's CSRF token, or a new one (set it with [`with_csrf`]).
    pub(crate) fn csrf_or_new(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        match self.csrf(headers) {
            Some(c) if !c.is_empty() => Ok(c),
            _ => Ok(random::token(24)?),
        }
    }
}

/// A page rendered from its template. Pages are never cached (some show recovery codes)
/// and never framed (a framed sign-in form invites clickjacking).
fn render(s: &AppState, status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    match s.templates.render(template, ctx) {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
            // A sign-in's id may be in the address (the page `/oauth2/authorize` sent the
            // browser to): it goes to no other site.
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
            r
        }
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

pub fn error_page(s: &AppState, status: StatusCode, message: &str) -> Response {
    render(s, status, "message.html", minijinja::context! { title => "Something is not right", error => message })
}

pub fn message_page(s: &AppState, title: &str, message: &str) -> Response {
    render(s, StatusCode::OK, "message.html", minijinja::context! { title, message })
}

/// How long a device cookie lasts: the most browsers keep one (400 days).
const DEVICE_COOKIE_AGE: u64 = 400 * 24 * 3600;

/// Gives every browser that opens a hosted page a long-lived device cookie, which
/// outlives sessions and sign-ins, and hands it to the request (see
/// [`DeviceCookie`]): a sign-in keeps its digest among its signals, so a later one can
/// tell a known device from a new one. It authorises nothing.
pub async fn device_cookie(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let cookies = Cookies::new(&s);
    let (device, new) = match cookies.device(req.headers()) {
        Some(d) => (d, false),
        None => match random::token(24) {
            Ok(t) => (Secret::new(t), true),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    req.extensions_mut().insert(DeviceCookie(device.clone()));
    let mut response = next.run(req).await;
    if new {
        cookies.set(&mut response, "tessera_device", device.expose(), Some(DEVICE_COOKIE_AGE));
    }
    response
}

/// Turns an API error (JSON or an empty body) on a browser route into a page that says
/// what happened in words: the API's own message when it has one.
pub async fn html_errors(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_html = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let said = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
        let general = v["generalErrors"][0]["message"].as_str().map(str::to_owned);
        let field = || v["fieldErrors"].as_object()?.values().next()?[0]["message"].as_str().map(str::to_owned);
        general.or_else(field)
    });
    let message = said.unwrap_or_else(|| {
        match status {
            StatusCode::NOT_FOUND => "That page does not exist.",
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                "You are not allowed to do that. Sign in and try again."
            }
            StatusCode::PAYLOAD_TOO_LARGE => "That form was too large.",
            s if s.is_server_error() => "Something went wrong on our side. Try again in a moment.",
            _ => "That request could not be handled. Go back and try again.",
        }
        .to_owned()
    });
    error_page(&s, status, &message)
}

fn form_expired(s: &AppState) -> Response {
    error_page(s, StatusCode::FORBIDDEN, "This form expired. Go back, reload the page and try again.")
}

fn sign_in_expired(s: &AppState) -> Response {
    error_page(s, StatusCode::UNAUTHORIZED, "Your sign-in expired. Sign in again.")
}

/// Only our own authorize endpoint and account page are places to go back to: no
/// open redirects.
/// A `return_to` (query or form field) is one of our own URLs, encoded: printable ASCII
/// without spaces. Anything else (a CR/LF left the sign-in's redirect without a
/// `Location`) is a malformed request, refused before a handler runs.
pub async fn refuse_bad_return_to(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let clean = |v: &str| v.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let fields = |text: &[u8]| serde_urlencoded::from_bytes::<Vec<(String, String)>>(text).unwrap_or_default();
    let bad = |text: &[u8]| fields(text).iter().any(|(k, v)| k == "return_to" && !clean(v));
    if req.uri().query().is_some_and(|q| bad(q.as_bytes())) {
        return error_page(&s, StatusCode::BAD_REQUEST, "That link is malformed.");
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_page(&s, StatusCode::PAYLOAD_TOO_LARGE, "That form was too large.");
    };
    if bad(&bytes) {
        return error_page(&s, StatusCode::BAD_REQUEST, "That form is malformed.");
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

fn safe_return(to: &str) -> String {
    if to.starts_with("/oauth2/authorize?") || to == "/account" { to.to_owned() } else { "/account".to_owned() }
}

struct Form {
    fields: HashMap<String, String>,
}

impl Form {
    fn parse(body: &[u8]) -> Self {
        Form {
            fields: serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }
    }

    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", String::as_str)
    }

    fn return_to(&self) -> String {
        safe_return(self.get("return_to"))
    }

    /// How to send a code: `channel=voice` for a call, a text otherwise; with the name the
    /// forms use.
    fn channel(&self) -> (Channel, &'static str) {
        if self.get("channel") == "voice" { (Channel::Voice, "voice") } else { (Channel::Sms, "sms") }
    }
}

/// A posted form, if its CSRF token matches its cookie.
fn checked(s: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<(Cookies, Form)> {
    let cookies = Cookies::new(s);
    let form = Form::parse(body);
    let ok = cookies
        .csrf(headers)
        .is_some_and(|c| !c.is_empty() && constant_time_eq(c.as_bytes(), form.get("csrf").as_bytes()));
    ok.then_some((cookies, form))
}

pub(crate) fn with_csrf(mut response: Response, cookies: &Cookies, csrf: &str) -> Response {
    cookies.set(&mut response, "tessera_csrf", csrf, None);
    response
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn current_session(
    s: &AppState,
    cookies: &Cookies,
    headers: &HeaderMap,
) -> Result<Option<BrowserSession>, ApiError> {
    match cookies.session(headers) {
        Some(c) => Ok(s.identity.browser_session(&c, &session_policy(), s.clock.now()).await?),
        None => Ok(None),
    }
}

/// A posted form from a signed-in user who may change their second steps, or the page
/// to show instead: the form expired, the sign-in expired, or a second step is needed.
async fn factor_form(
    s: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Result<(Form, BrowserSession), Response>, ApiError> {
    let Some((cookies, form)) = checked(s, headers, body) else { return Ok(Err(form_expired(s))) };
    let Some(session) = current_session(s, &cookies, headers).await? else { return Ok(Err(sign_in_expired(s))) };
    if !s.factors.session_may_manage_factors(&session).await? {
        return Ok(Err(confirm_first(s)));
    }
    Ok(Ok((form, session)))
}

/// Asks for a sign-in with the second step before factors change.
fn confirm_first(s: &AppState) -> Response {
    let ctx = minijinja::context! {
        title => "Confirm it is you",
        message => "Changing your second steps needs a sign-in that used one.",
        link => "/login?return_to=%2Faccount", link_label => "Sign in again",
    };
    render(s, StatusCode::FORBIDDEN, "message.html", ctx)
}

/// What a user is called on the pages and in authenticator apps.
async fn display_name(s: &AppState, session: &BrowserSession) -> Result<String, ApiError> {
    let user = s.identity.session_user(session).await?.ok_or(ApiError::NotFound)?;
    Ok(user_name(&user))
}

fn user_name(user: &tessera_core::user::User) -> String {
    user.email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or(user.username.as_ref().map(|u| u.as_str().to_owned()))
        .unwrap_or_default()
}

/// What the page says once a code is on its way, with how long it works.
fn sent_notice(s: &AppState, channel: Channel) -> String {
    let minutes = s.identity.policies().two_factor.code_ttl.as_secs().div_ceil(60);
    match channel {
        Channel::Voice => format!("We are calling you with a code. It works for {minutes} minutes."),
        Channel::Sms => format!("We sent a code. It works for {minutes} minutes."),
    }
}

/// The recovery codes, shown once, or a plain confirmation when the user already had
/// codes (a second factor does not replace them).
fn factor_on(s: &AppState, what: &str, codes: Option<Vec<String>>, continue_to: &str) -> Response {
    match codes {
        Some(codes) => render(
            s,
            StatusCode::OK,
            "recovery_codes.html",
            minijinja::context! {
                title => "Save your recovery codes", intro => format!("Your {what} is on."), codes,
                continue_to, continue_label => "Continue",
            },
        ),
        None => render(
            s,
            StatusCode::OK,
            "message.html",
            minijinja::context! {
                title => "Second step added", message => format!("Your {what} is on."),
                link => continue_to, link_label => "Continue",
            },
        ),
    }
}
