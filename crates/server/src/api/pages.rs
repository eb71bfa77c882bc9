//! The hosted sign-in pages (server-rendered, no JavaScript): password, then the
//! second factor when the user has one; each form carries a CSRF token that must match
//! its cookie. Errors are shown in words on the page.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tessera_core::login::{LoginOutcome, LoginRequest, LoginSuccess};
use tessera_core::messaging::Channel;
use tessera_core::password::Password;
use tessera_core::random;
use tessera_core::secret::{Secret, constant_time_eq};
use tessera_core::service::{SendOutcome, TwoFactorLoginOutcome, TwoFactorLoginRequest};
use tessera_core::twofactor::{MethodKind, TwoFactorMethod, mask_phone};
use tessera_core::user::LoginId;

use crate::api::oidc::session_policy;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, cookie, set_trust_cookie, trust_cookie};

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

    fn csrf(&self, headers: &HeaderMap) -> Option<String> {
        cookie(headers, &self.name("tessera_csrf")).map(str::to_owned)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    (status, Html(html)).into_response()
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(status, "Something is not right", &format!("<p role=\"alert\">{}</p>", escape(message)))
}

pub fn message_page(title: &str, message: &str) -> Response {
    page(StatusCode::OK, title, &format!("<p>{}</p>", escape(message)))
}

/// Only our own authorize endpoint and account page are places to go back to: no
/// open redirects.
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
}

/// A posted form, if its CSRF token matches its cookie.
fn checked(s: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<(Cookies, Form)> {
    let cookies = Cookies::new(s);
    let form = Form::parse(body);
    csrf_ok(&cookies, headers, &form).then_some((cookies, form))
}

fn form_expired() -> Response {
    error_page(StatusCode::FORBIDDEN, "This form expired. Go back, reload the page and try again.")
}

fn sign_in_expired() -> Response {
    error_page(StatusCode::UNAUTHORIZED, "Your sign-in expired. Sign in again.")
}

fn csrf_ok(cookies: &Cookies, headers: &HeaderMap, form: &Form) -> bool {
    cookies.csrf(headers).is_some_and(|c| !c.is_empty() && constant_time_eq(c.as_bytes(), form.get("csrf").as_bytes()))
}

fn login_form(csrf: &str, return_to: &str, error: Option<&str>, login_id: &str) -> String {
    let err = error.map(|e| format!("<p role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    format!(
        "{err}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"return_to\" value=\"{rt}\">\
         <label for=\"login_id\">Email or username</label><input id=\"login_id\" name=\"login_id\" autocomplete=\"username\" value=\"{li}\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        csrf = escape(csrf),
        rt = escape(return_to),
        li = escape(login_id)
    )
}

fn two_factor_form(
    csrf: &str,
    return_to: &str,
    challenge: &str,
    methods: &[TwoFactorMethod],
    notice: Option<&str>,
) -> String {
    let note = notice.map(|n| format!("<p role=\"status\">{}</p>", escape(n))).unwrap_or_default();
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"return_to\" value=\"{}\">\
         <input type=\"hidden\" name=\"challenge\" value=\"{}\">",
        escape(csrf),
        escape(return_to),
        escape(challenge)
    );
    let sends: String = methods
        .iter()
        .filter_map(|m| match &m.kind {
            MethodKind::Sms { phone } => Some(format!(
                "<form method=\"post\" action=\"/login/send\">{hidden}<input type=\"hidden\" name=\"method_id\" value=\"{}\">\
                 <button type=\"submit\">Text a code to {}</button></form>",
                escape(m.id.as_str()),
                escape(&mask_phone(phone))
            )),
            MethodKind::Authenticator(_) => None,
        })
        .collect();
    format!(
        "{note}<form method=\"post\" action=\"/login/two-factor\">{hidden}\
         <label for=\"code\">Code from your authenticator app, a text message, or a recovery code</label>\
         <input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" required>\
         <label><input type=\"checkbox\" name=\"trust\" value=\"1\"> Remember this device</label>\
         <button type=\"submit\">Continue</button></form>{sends}"
    )
}

fn with_csrf(mut response: Response, cookies: &Cookies, csrf: &str) -> Response {
    cookies.set(&mut response, "tessera_csrf", csrf, None);
    response
}

/// `GET /login?return_to=…`.
pub async fn login_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    let csrf = match cookies.csrf(&headers) {
        Some(c) if !c.is_empty() => c,
        _ => random::token(24)?,
    };
    let return_to = safe_return(q.get("return_to").map_or("", String::as_str));
    let body = login_form(&csrf, &return_to, None, "");
    Ok(with_csrf(page(StatusCode::OK, "Sign in", &body), &cookies, &csrf))
}

async fn signed_in(s: &AppState, cookies: &Cookies, ok: &LoginSuccess, return_to: &str) -> Result<Response, ApiError> {
    let session = s.identity.start_browser_session(ok, &session_policy(), s.clock.now()).await?;
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&safe_return(return_to)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
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
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired()) };
    let (csrf, return_to) = (form.get("csrf"), safe_return(form.get("return_to")));
    let again =
        |status, msg: &str| page(status, "Sign in", &login_form(csrf, &return_to, Some(msg), form.get("login_id")));
    let (Some(login_id), false) = (LoginId::parse(form.get("login_id")), form.get("password").is_empty()) else {
        return Ok(again(StatusCode::BAD_REQUEST, "Enter your email or username and your password."));
    };
    let trust = trust_cookie(&headers);
    let req = LoginRequest {
        login_id,
        password: Password::new(form.get("password")),
        application_id: None,
        no_jwt: true,
        trust_token: trust,
    };
    Ok(match s.identity.login(req, &ctx, s.clock.now()).await? {
        LoginOutcome::Success(ok) => signed_in(&s, &cookies, &ok, &return_to).await?,
        LoginOutcome::TwoFactorRequired { challenge_id, methods } => page(
            StatusCode::OK,
            "Second step",
            &two_factor_form(csrf, &return_to, challenge_id.expose(), &methods, None),
        ),
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
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired()) };
    let (csrf, return_to, challenge) = (form.get("csrf"), safe_return(form.get("return_to")), form.get("challenge"));
    let req = TwoFactorLoginRequest {
        challenge_id: Secret::new(challenge),
        code: form.get("code").to_owned(),
        trust_computer: form.get("trust") == "1",
        no_jwt: true,
    };
    Ok(match s.identity.two_factor_login(req, &ctx, s.clock.now()).await? {
        TwoFactorLoginOutcome::Success(ok) => {
            let mut r = signed_in(&s, &cookies, &ok, &return_to).await?;
            if let Some(t) = &ok.trust_token {
                set_trust_cookie(&mut r, t, s.identity.policies().two_factor.trust_ttl.as_secs());
            }
            r
        }
        TwoFactorLoginOutcome::WrongCode => {
            let methods =
                s.identity.challenge_methods(&Secret::new(challenge), s.clock.now()).await?.unwrap_or_default();
            page(
                StatusCode::UNAUTHORIZED,
                "Second step",
                &two_factor_form(csrf, &return_to, challenge, &methods, Some("That code is not right. Try again.")),
            )
        }
        TwoFactorLoginOutcome::NotFound => page(
            StatusCode::OK,
            "Sign in",
            &login_form(csrf, &return_to, Some("That took too long. Sign in again."), ""),
        ),
        TwoFactorLoginOutcome::Locked { .. } => {
            error_page(StatusCode::CONFLICT, "Too many wrong codes. Try again later.")
        }
    })
}

/// `POST /login/send`: a fresh code by text message.
pub async fn send_code(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((_, form)) = checked(&s, &headers, &body) else { return Ok(form_expired()) };
    let (csrf, return_to, challenge) = (form.get("csrf"), safe_return(form.get("return_to")), form.get("challenge"));
    let method = tessera_core::twofactor::MethodId::parse(form.get("method_id"));
    let outcome = s
        .identity
        .send_challenge_code(&Secret::new(challenge), method.as_ref(), Channel::Sms, "en", &ctx, s.clock.now())
        .await?;
    let notice = match outcome {
        SendOutcome::Sent => "We sent a code. It works for 5 minutes.",
        SendOutcome::RateLimited => "Too many codes were sent. Wait a minute.",
        SendOutcome::NotFound => "That took too long. Sign in again.",
        SendOutcome::Blocked(_) | SendOutcome::Failed(_) => "The code could not be sent. Use another method.",
    };
    let methods = s.identity.challenge_methods(&Secret::new(challenge), s.clock.now()).await?.unwrap_or_default();
    Ok(page(StatusCode::OK, "Second step", &two_factor_form(csrf, &return_to, challenge, &methods, Some(notice))))
}

fn enroll_form(csrf: &str, return_to: &str, secret_b32: &str, uri: &str, error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let qr = tessera_core::totp::qr_svg(uri).unwrap_or_default();
    format!(
        "{err}<p>This application asks for a second step when you sign in. Scan the code with an authenticator app \
         (or type the key), then enter the code it shows.</p><figure>{qr}<figcaption>Key: <code>{key}</code></figcaption></figure>\
         <form method=\"post\" action=\"/login/enroll\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{rt}\"><input type=\"hidden\" name=\"secret\" value=\"{key}\">\
         <label for=\"code\">Code from the app</label><input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required>\
         <button type=\"submit\">Turn on</button></form>",
        key = escape(secret_b32),
        csrf = escape(csrf),
        rt = escape(return_to)
    )
}

async fn current_session(
    s: &AppState,
    cookies: &Cookies,
    headers: &HeaderMap,
) -> Result<Option<tessera_core::oidc::BrowserSession>, ApiError> {
    match cookies.session(headers) {
        Some(c) => Ok(s.identity.browser_session(&c, &session_policy(), s.clock.now()).await?),
        None => Ok(None),
    }
}

/// `GET /login/enroll?return_to=…`: an authenticator app for a signed-in user who must
/// have a second factor and has none.
pub async fn enroll_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    let return_to = safe_return(q.get("return_to").map_or("", String::as_str));
    let Some(session) = current_session(&s, &cookies, &headers).await? else {
        return Ok(page(
            StatusCode::OK,
            "Sign in",
            &login_form(&random::token(24)?, &return_to, Some("Sign in first."), ""),
        ));
    };
    let csrf = match cookies.csrf(&headers) {
        Some(c) if !c.is_empty() => c,
        _ => random::token(24)?,
    };
    let secret = tessera_core::base32::encode(&tessera_core::twofactor::new_totp_secret()?);
    let user = s.store.get_user(session.tenant_id, session.user_id).await?.ok_or(ApiError::NotFound)?;
    let account = user
        .email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or(user.username.as_ref().map(|u| u.as_str().to_owned()))
        .unwrap_or_default();
    let uri = tessera_core::totp::otpauth_uri(s.identity.totp_issuer(), &account, &secret, &s.identity.totp_params());
    Ok(with_csrf(
        page(StatusCode::OK, "Add a second step", &enroll_form(&csrf, &return_to, &secret, &uri, None)),
        &cookies,
        &csrf,
    ))
}

/// `POST /login/enroll`: checks the app's code, turns the factor on, shows the recovery
/// codes once, and marks the session as two-factor.
pub async fn enroll_submit(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired()) };
    let return_to = safe_return(form.get("return_to"));
    let Some(session) = current_session(&s, &cookies, &headers).await? else { return Ok(sign_in_expired()) };
    let Some(secret) = tessera_core::base32::decode(form.get("secret")) else {
        return Ok(error_page(StatusCode::BAD_REQUEST, "The key was damaged. Reload the page and try again."));
    };
    let scope = s.identity.scope_session(&session);
    match s.identity.enable_authenticator(&scope, &secret, form.get("code").trim(), &ctx, s.clock.now()).await {
        Ok(tessera_core::service::EnableOutcome::Enabled { recovery_codes, .. }) => {
            s.identity.upgrade_browser_session(&session, "otp").await?;
            let codes: String = recovery_codes
                .unwrap_or_default()
                .iter()
                .map(|c| format!("<li><code>{}</code></li>", escape(c)))
                .collect();
            let body = format!(
                "<p>Your authenticator app is on. Keep these recovery codes somewhere safe: each works once if you lose the app. \
                 They are shown only now.</p><ul>{codes}</ul><p><a href=\"{}\">Continue</a></p>",
                escape(&return_to)
            );
            Ok(page(StatusCode::OK, "Save your recovery codes", &body))
        }
        Ok(tessera_core::service::EnableOutcome::WrongCode) => {
            let uri = tessera_core::totp::otpauth_uri(
                s.identity.totp_issuer(),
                "",
                form.get("secret"),
                &s.identity.totp_params(),
            );
            let body = enroll_form(
                form.get("csrf"),
                &return_to,
                form.get("secret"),
                &uri,
                Some("That code is not right. Check the app's clock and try the next code."),
            );
            Ok(page(StatusCode::UNAUTHORIZED, "Add a second step", &body))
        }
        Err(tessera_core::CoreError::Invalid(_)) => {
            Ok(error_page(StatusCode::BAD_REQUEST, "The key was damaged. Reload the page and try again."))
        }
        Err(e) => Err(e.into()),
    }
}

fn account_body(
    csrf: &str,
    email: &str,
    methods: &[TwoFactorMethod],
    sign_ins: &[tessera_core::audit::AuditRecord],
    notice: Option<&str>,
) -> String {
    let note = notice.map(|n| format!("<p role=\"status\">{}</p>", escape(n))).unwrap_or_default();
    let factors: String = methods
        .iter()
        .map(|m| {
            let what = match &m.kind {
                MethodKind::Authenticator(_) => "Authenticator app".to_owned(),
                MethodKind::Sms { phone } => format!("Text messages to {}", mask_phone(phone)),
            };
            format!(
                "<li>{}<form method=\"post\" action=\"/account/remove\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"method_id\" value=\"{}\"><label>Current code <input name=\"code\" autocomplete=\"one-time-code\" required></label>\
                 <button type=\"submit\">Remove</button></form></li>",
                escape(&what),
                escape(csrf),
                escape(m.id.as_str())
            )
        })
        .collect();
    let recent: String = sign_ins
        .iter()
        .map(|e| {
            format!(
                "<li>{} from {}</li>",
                escape(&tessera_core::verify::iso8601(e.at)),
                escape(e.ip.as_deref().unwrap_or("an unknown address"))
            )
        })
        .collect();
    format!(
        "{note}<p>Signed in as {}.</p><h2>Second steps</h2><ul>{factors}</ul><p><a href=\"/login/enroll?return_to=%2Faccount\">Add an authenticator app</a></p>\
         <form method=\"post\" action=\"/account/recovery-codes\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">New recovery codes</button></form>\
         <h2>Recent sign-ins</h2><ul>{recent}</ul><p><a href=\"/logout\">Sign out</a></p>",
        escape(email),
        escape(csrf)
    )
}

async fn account_page_for(
    s: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&str>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(s);
    let Some(session) = current_session(s, &cookies, headers).await? else {
        let mut r = StatusCode::SEE_OTHER.into_response();
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/login?return_to=%2Faccount"));
        return Ok(r);
    };
    let csrf = match cookies.csrf(headers) {
        Some(c) if !c.is_empty() => c,
        _ => random::token(24)?,
    };
    let user = s.store.get_user(session.tenant_id, session.user_id).await?.ok_or(ApiError::NotFound)?;
    let name = user
        .email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or(user.username.as_ref().map(|u| u.as_str().to_owned()))
        .unwrap_or_default();
    let methods = s.identity.methods(user.id).await?;
    let sign_ins = s.identity.recent_sign_ins(user.id, 10).await?;
    let body = account_body(&csrf, &name, &methods, &sign_ins, notice);
    Ok(with_csrf(page(status, "Your account", &body), &cookies, &csrf))
}

/// `GET /account`: the signed-in user's factors, recovery codes and recent sign-ins.
pub async fn account(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    account_page_for(&s, &headers, StatusCode::OK, None).await
}

/// `POST /account/remove`: removes a factor; a current code proves it is the owner.
pub async fn account_remove(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired()) };
    let Some(session) = current_session(&s, &cookies, &headers).await? else { return Ok(sign_in_expired()) };
    let Some(id) = tessera_core::twofactor::MethodId::parse(form.get("method_id")) else {
        return account_page_for(&s, &headers, StatusCode::BAD_REQUEST, Some("That second step does not exist.")).await;
    };
    let scope = s.identity.scope_session(&session);
    let outcome = s.identity.disable_method(&scope, &id, form.get("code"), &ctx, s.clock.now()).await?;
    let (status, notice) = match outcome {
        tessera_core::service::DisableOutcome::Disabled => (StatusCode::OK, "Removed."),
        tessera_core::service::DisableOutcome::WrongCode => {
            (StatusCode::UNAUTHORIZED, "That code is not right; nothing was removed.")
        }
        tessera_core::service::DisableOutcome::NotFound => (StatusCode::NOT_FOUND, "That second step does not exist."),
    };
    account_page_for(&s, &headers, status, Some(notice)).await
}

/// `POST /account/recovery-codes`: ten new codes, shown once; the old ones die.
pub async fn account_recovery_codes(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, _)) = checked(&s, &headers, &body) else { return Ok(form_expired()) };
    let Some(session) = current_session(&s, &cookies, &headers).await? else { return Ok(sign_in_expired()) };
    let scope = s.identity.scope_session(&session);
    match s.identity.regenerate_recovery_codes(&scope, &ctx, s.clock.now()).await? {
        Some(codes) => {
            let list: String = codes.iter().map(|c| format!("<li><code>{}</code></li>", escape(c))).collect();
            Ok(page(
                StatusCode::OK,
                "Save your recovery codes",
                &format!(
                    "<p>Your old codes no longer work. These are shown only now.</p><ul>{list}</ul><p><a href=\"/account\">Back to your account</a></p>"
                ),
            ))
        }
        None => {
            account_page_for(
                &s,
                &headers,
                StatusCode::BAD_REQUEST,
                Some("Add a second step first; recovery codes recover it."),
            )
            .await
        }
    }
}

/// `GET /logout`: ends the browser session.
pub async fn logout_page(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    if let Some(c) = cookies.session(&headers) {
        s.identity.end_browser_session(&c).await?;
    }
    let mut r = message_page("Signed out", "You are signed out.");
    cookies.clear_session(&mut r);
    Ok(r)
}
