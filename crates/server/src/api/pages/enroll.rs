//! Adding a second step: an authenticator app (QR code and key, then a code it shows),
//! or a phone (country picker and number, then the code texted or spoken to it). Used
//! when an application's policy forces a factor and from the account page.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::CoreError;
use tessera_core::oidc::BrowserSession;
use tessera_core::phone::PhoneNumber;
use tessera_core::secret::Secret;
use tessera_core::service::{BrowserStart, EnableOutcome, EnrolOutcome, NewFactor, SendOutcome};
use tessera_core::signin::AuthMethod;
use tessera_core::twofactor::mask_phone;

use super::signin::with_session;
use super::{
    Cookies, Form, checked, confirm_first, current_session, display_name, error_page, factor_form, factor_on,
    form_expired, regions, render, safe_return, sent_notice, user_name, with_csrf,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;

/// What the enrolment page shows besides the key: the phone form as it was filled
/// in, and an error next to the part that failed.
#[derive(Default)]
pub(super) struct Filled<'a> {
    secret: Option<&'a str>,
    region: Option<String>,
    phone: &'a str,
    channel: &'a str,
    app_error: Option<&'a str>,
    phone_error: Option<&'a str>,
}

/// Whose enrolment a page is: a signed-in user's (from the account page, or sent here
/// by `/oauth2/authorize`), whose forms carry where to go back to and the key shown;
/// or a sign-in's, whose forms carry only its id (the sign-in keeps the rest).
enum Held<'a> {
    Session { return_to: &'a str },
    SignIn { id: &'a str },
}

impl Held<'_> {
    fn fields(&self) -> (&str, &str) {
        match self {
            Held::Session { return_to } => (return_to, ""),
            Held::SignIn { id } => ("", id),
        }
    }
}

#[allow(clippy::too_many_arguments)] // one page's parts; a struct would only rename them
async fn enroll_view(
    s: &AppState,
    status: StatusCode,
    account: &str,
    key: &str,
    csrf: &str,
    held: Held<'_>,
    headers: &HeaderMap,
    filled: Filled<'_>,
) -> Result<Response, ApiError> {
    let uri = tessera_core::totp::otpauth_uri(s.factors.totp_issuer(), account, key, &s.factors.totp_params());
    let qr_svg = minijinja::Value::from_safe_string(tessera_core::totp::qr_svg(&uri).unwrap_or_default());
    let allowed = &s.identity.policies().mfa_guard.allowed_countries;
    let choices = regions::choices(allowed);
    let region = filled.region.unwrap_or_else(|| regions::guess(headers, &choices, allowed));
    let (return_to, signin) = held.fields();
    Ok(render(
        s,
        status,
        "enroll.html",
        minijinja::context! {
            title => "Add a second step", csrf, return_to, signin, secret => key, qr_svg,
            regions => minijinja::Value::from(minijinja::value::Serde(&choices)), region,
            phone => filled.phone, channel => filled.channel, app_error => filled.app_error,
            phone_error => filled.phone_error,
        },
    ))
}

/// A signed-in user's enrolment page: a fresh key unless the page comes back with one.
async fn session_enroll_view(
    s: &AppState,
    status: StatusCode,
    session: &BrowserSession,
    csrf: &str,
    return_to: &str,
    headers: &HeaderMap,
    filled: Filled<'_>,
) -> Result<Response, ApiError> {
    let key = match filled.secret {
        Some(k) => k.to_owned(),
        None => tessera_core::base32::encode(&tessera_core::twofactor::new_totp_secret()?),
    };
    let account = display_name(s, session).await?;
    enroll_view(s, status, &account, &key, csrf, Held::Session { return_to }, headers, filled).await
}

/// The enrolment page of sign-in `id` (its key, its user), for the browser holding the
/// CSRF token `browser`; a sign-in that cannot go on says so and offers a new one.
pub(super) async fn sign_in_enrolment(
    s: &AppState,
    status: StatusCode,
    id: &Secret,
    browser: &Secret,
    headers: &HeaderMap,
    filled: Filled<'_>,
) -> Result<Response, ApiError> {
    let Some(view) = s.identity.enrolment_view(id, browser, s.clock.now()).await? else {
        return Ok(error_page(s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE));
    };
    let key = tessera_core::base32::encode(&view.key);
    let account = user_name(&view.user);
    let held = Held::SignIn { id: id.expose() };
    enroll_view(s, status, &account, &key, browser.expose(), held, headers, filled).await
}

const CANNOT_CONTINUE: &str = "This sign-in cannot be continued. Sign in again.";

/// A posted enrolment form of a sign-in (it carries `signin`): the form, the sign-in's
/// id and the browser's CSRF token. `None` for a signed-in user's form.
fn sign_in_form(form: &Form) -> Option<(Secret, Secret)> {
    let id = form.get("signin");
    (!id.is_empty()).then(|| (Secret::new(id), Secret::new(form.get("csrf"))))
}

/// `GET /login/enroll?return_to=…`: for a signed-in user; `?signin=…`: a sign-in's
/// enrolment page again (from its phone code page's "use another number").
pub async fn enroll_page(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    if let Some(id) = q.get("signin").filter(|id| !id.is_empty()) {
        // Only the browser the sign-in was begun in has its CSRF token.
        let Some(csrf) = cookies.csrf(&headers).filter(|c| !c.is_empty()) else {
            return Ok(error_page(&s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE));
        };
        let browser = Secret::new(csrf);
        return sign_in_enrolment(&s, StatusCode::OK, &Secret::new(id.as_str()), &browser, &headers, Filled::default())
            .await;
    }
    let return_to = safe_return(q.get("return_to").map_or("", String::as_str));
    let csrf = cookies.csrf_or_new(&headers)?;
    let Some(session) = current_session(&s, &cookies, &headers).await? else {
        // Signed in, the way back leads here again.
        let start = BrowserStart::to(&return_to);
        let signin = s.identity.begin_browser_sign_in(&start, &Secret::new(csrf.as_str()), &ctx, s.clock.now()).await?;
        let page = minijinja::context! { title => "Sign in", csrf => &csrf, signin => signin.expose(), error => "Sign in first." };
        return Ok(with_csrf(render(&s, StatusCode::OK, "login.html", page), &cookies, &csrf));
    };
    if !s.factors.session_may_manage_factors(&session).await? {
        return Ok(confirm_first(&s));
    }
    let page =
        session_enroll_view(&s, StatusCode::OK, &session, &csrf, &return_to, &headers, Filled::default()).await?;
    Ok(with_csrf(page, &cookies, &csrf))
}

/// A sign-in's enrolment finished: the browser session begins, and the recovery codes
/// are shown once before going on to where the sign-in leads. `Err` with what to say
/// when the code was wrong (or the phone a factor already).
async fn enrolled(
    s: &AppState,
    cookies: &Cookies,
    what: &str,
    outcome: EnrolOutcome,
) -> Result<Result<Response, &'static str>, ApiError> {
    Ok(match outcome {
        EnrolOutcome::Done { success, recovery_codes } => {
            let continue_to = safe_return(success.return_to.as_deref().unwrap_or_default());
            Ok(with_session(s, cookies, &success, factor_on(s, what, recovery_codes, &continue_to)).await?)
        }
        EnrolOutcome::WrongCode => Err(WRONG_CODE),
        EnrolOutcome::Duplicate => Err(DUPLICATE_PHONE),
        EnrolOutcome::Expired => Ok(error_page(s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE)),
    })
}

const WRONG_APP_CODE: &str = "That code is not right. Check the app's clock and try the next code.";
const WRONG_CODE: &str = "That code is not right, or it expired. Try again or send a new code.";
const DUPLICATE_PHONE: &str = "That number is already one of your second steps.";

/// `POST /login/enroll`: checks the app's code, turns the factor on, shows the recovery
/// codes once, and marks the session as two-factor (or, in a sign-in, signs in).
pub async fn enroll_submit(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    if let Some((id, browser)) = sign_in_form(&form) {
        let code = form.get("code");
        let outcome =
            s.identity.enrol_in_sign_in(&id, &browser, NewFactor::Authenticator { code }, &ctx, s.clock.now()).await?;
        return match enrolled(&s, &cookies, "authenticator app", outcome).await? {
            Ok(page) => Ok(page),
            Err(_) => {
                let filled = Filled { app_error: Some(WRONG_APP_CODE), ..Filled::default() };
                sign_in_enrolment(&s, StatusCode::UNAUTHORIZED, &id, &browser, &headers, filled).await
            }
        };
    }
    let (form, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let return_to = form.return_to();
    let damaged = || error_page(&s, StatusCode::BAD_REQUEST, "The key was damaged. Reload the page and try again.");
    let Some(secret) = tessera_core::base32::decode(form.get("secret")) else { return Ok(damaged()) };
    let scope = s.identity.scope_session(&session);
    match s.factors.enable_authenticator(&scope, &secret, form.get("code").trim(), &ctx, s.clock.now()).await {
        Ok(EnableOutcome::Enabled { recovery_codes, .. }) => {
            s.identity.upgrade_browser_session(&session, AuthMethod::Totp).await?;
            Ok(factor_on(&s, "authenticator app", recovery_codes, &return_to))
        }
        Ok(EnableOutcome::WrongCode) => {
            let filled =
                Filled { secret: Some(form.get("secret")), app_error: Some(WRONG_APP_CODE), ..Filled::default() };
            let csrf = form.get("csrf");
            session_enroll_view(&s, StatusCode::UNAUTHORIZED, &session, csrf, &return_to, &headers, filled).await
        }
        Err(CoreError::Invalid(_)) => Ok(damaged()),
        Err(e) => Err(e.into()),
    }
}

/// What a refused phone number or send says, with its status.
fn send_refused(outcome: &SendOutcome) -> (StatusCode, &'static str) {
    match outcome {
        SendOutcome::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too many codes were sent. Wait a minute."),
        SendOutcome::Blocked(_) => {
            (StatusCode::BAD_REQUEST, "Codes cannot be sent to that number. Use an authenticator app instead.")
        }
        SendOutcome::Sent | SendOutcome::NotFound | SendOutcome::Failed(_) => (
            StatusCode::BAD_GATEWAY,
            "The code could not be sent. Check the number, or use an authenticator app instead.",
        ),
    }
}

const NOT_A_NUMBER: &str = "That is not a phone number. Choose the country and enter the number as you dial it there, \
                            or start with + and the country code.";

/// `POST /login/enroll/phone`: reads the number in the chosen country and sends a code
/// to it (again, from the code page's "Send a new code").
pub async fn enroll_phone_send(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((_, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let (channel, channel_name) = form.channel();
    let region = form.get("region");
    let filled = |phone_error| Filled {
        region: (!region.is_empty()).then(|| region.to_owned()),
        phone: form.get("phone"),
        channel: channel_name,
        phone_error: Some(phone_error),
        ..Filled::default()
    };
    if let Some((id, browser)) = sign_in_form(&form) {
        // A new code to the number kept with the sign-in comes without one.
        let phone = match form.get("phone") {
            "" => None,
            typed => match PhoneNumber::parse_in_region(region, typed) {
                Ok(p) => Some(p),
                Err(_) => {
                    let status = StatusCode::BAD_REQUEST;
                    return sign_in_enrolment(&s, status, &id, &browser, &headers, filled(NOT_A_NUMBER)).await;
                }
            },
        };
        let now = s.clock.now();
        let (outcome, phone) =
            s.identity.send_enrolment_code(&id, &browser, phone.as_ref(), channel, "en", &ctx, now).await?;
        return match (outcome, phone) {
            (SendOutcome::Sent, Some(phone)) => {
                let notice = sent_notice(&s, channel);
                let held = Held::SignIn { id: id.expose() };
                Ok(code_view(&s, StatusCode::OK, browser.expose(), held, &phone, channel_name, Some(&notice), None))
            }
            (SendOutcome::NotFound, _) => Ok(error_page(&s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE)),
            (outcome, _) => {
                let (status, message) = send_refused(&outcome);
                sign_in_enrolment(&s, status, &id, &browser, &headers, filled(message)).await
            }
        };
    }
    let (form, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let (csrf, return_to) = (form.get("csrf"), form.return_to());
    let refused = |status, message| {
        // The authenticator key on the page stays: it may have been scanned already.
        let secret = form.get("app_secret");
        let filled = Filled {
            secret: tessera_core::base32::decode(secret).is_some_and(|k| k.len() >= 16).then_some(secret),
            ..filled(message)
        };
        session_enroll_view(&s, status, &session, csrf, &return_to, &headers, filled)
    };
    let Ok(phone) = PhoneNumber::parse_in_region(region, form.get("phone")) else {
        return refused(StatusCode::BAD_REQUEST, NOT_A_NUMBER).await;
    };
    let scope = s.identity.scope_session(&session);
    let outcome = s.factors.send_enrollment_code(&scope, &phone, channel, "en", &ctx, s.clock.now()).await?;
    if let SendOutcome::Sent = outcome {
        let notice = sent_notice(&s, channel);
        let held = Held::Session { return_to: &return_to };
        return Ok(code_view(&s, StatusCode::OK, csrf, held, &phone, channel_name, Some(&notice), None));
    }
    let (status, message) = send_refused(&outcome);
    refused(status, message).await
}

#[allow(clippy::too_many_arguments)] // one page's fields; a struct would only rename them
fn code_view(
    s: &AppState,
    status: StatusCode,
    csrf: &str,
    held: Held<'_>,
    phone: &PhoneNumber,
    channel: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (e164, masked) = (phone.as_str(), mask_phone(phone));
    let (return_to, signin) = held.fields();
    let ctx = minijinja::context! { title => "Enter the code", csrf, return_to, signin, e164, masked, channel, notice, error };
    render(s, status, "enroll_phone_code.html", ctx)
}

/// `POST /login/enroll/phone/confirm`: the code proves the phone; it becomes a factor.
pub async fn enroll_phone_confirm(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    if let Some((id, browser)) = sign_in_form(&form) {
        let code = form.get("code");
        let now = s.clock.now();
        let outcome = s.identity.enrol_in_sign_in(&id, &browser, NewFactor::Phone { code }, &ctx, now).await?;
        let message = match enrolled(&s, &cookies, "phone", outcome).await? {
            Ok(page) => return Ok(page),
            Err(message) => message,
        };
        if message == DUPLICATE_PHONE {
            let filled = Filled { phone_error: Some(message), ..Filled::default() };
            return sign_in_enrolment(&s, StatusCode::CONFLICT, &id, &browser, &headers, filled).await;
        }
        let view = s.identity.enrolment_view(&id, &browser, now).await?;
        let Some(phone) = view.and_then(|v| v.phone) else {
            return Ok(error_page(&s, StatusCode::BAD_REQUEST, CANNOT_CONTINUE));
        };
        let held = Held::SignIn { id: id.expose() };
        let channel = form.channel().1;
        return Ok(code_view(
            &s,
            StatusCode::UNAUTHORIZED,
            browser.expose(),
            held,
            &phone,
            channel,
            None,
            Some(message),
        ));
    }
    let (form, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let (csrf, return_to) = (form.get("csrf"), form.return_to());
    let Ok(phone) = PhoneNumber::parse(form.get("e164")) else {
        return Ok(error_page(&s, StatusCode::BAD_REQUEST, "The number was damaged. Start again."));
    };
    let scope = s.identity.scope_session(&session);
    match s.factors.enable_sms(&scope, phone.clone(), form.get("code"), &ctx, s.clock.now()).await {
        Ok(EnableOutcome::Enabled { recovery_codes, .. }) => {
            s.identity.upgrade_browser_session(&session, AuthMethod::Sms).await?;
            Ok(factor_on(&s, "phone", recovery_codes, &return_to))
        }
        Ok(EnableOutcome::WrongCode) => {
            let held = Held::Session { return_to: &return_to };
            let channel = form.channel().1;
            Ok(code_view(&s, StatusCode::UNAUTHORIZED, csrf, held, &phone, channel, None, Some(WRONG_CODE)))
        }
        Err(CoreError::Invalid(_)) => {
            let filled = Filled { phone_error: Some(DUPLICATE_PHONE), ..Filled::default() };
            session_enroll_view(&s, StatusCode::CONFLICT, &session, csrf, &return_to, &headers, filled).await
        }
        Err(e) => Err(e.into()),
    }
}
