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
use tessera_core::service::{EnableOutcome, SendOutcome};
use tessera_core::signin::AuthMethod;
use tessera_core::twofactor::mask_phone;

use super::{
    Cookies, confirm_first, current_session, display_name, error_page, factor_form, factor_on, regions, render,
    safe_return, sent_notice, with_csrf,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;

/// What the enrolment page shows besides a fresh key: the phone form as it was filled
/// in, and an error next to the part that failed.
#[derive(Default)]
struct Filled<'a> {
    secret: Option<&'a str>,
    region: Option<String>,
    phone: &'a str,
    channel: &'a str,
    app_error: Option<&'a str>,
    phone_error: Option<&'a str>,
}

async fn enroll_view(
    s: &AppState,
    status: StatusCode,
    session: &BrowserSession,
    csrf: &str,
    return_to: &str,
    headers: &HeaderMap,
    filled: Filled<'_>,
) -> Result<Response, ApiError> {
    let secret = match filled.secret {
        Some(k) => k.to_owned(),
        None => tessera_core::base32::encode(&tessera_core::twofactor::new_totp_secret()?),
    };
    let account = display_name(s, session).await?;
    let uri = tessera_core::totp::otpauth_uri(s.identity.totp_issuer(), &account, &secret, &s.identity.totp_params());
    let qr_svg = minijinja::Value::from_safe_string(tessera_core::totp::qr_svg(&uri).unwrap_or_default());
    let allowed = &s.identity.policies().mfa_guard.allowed_countries;
    let choices = regions::choices(allowed);
    let region = filled.region.unwrap_or_else(|| regions::guess(headers, &choices, allowed));
    Ok(render(
        s,
        status,
        "enroll.html",
        minijinja::context! {
            title => "Add a second step", csrf, return_to, secret, qr_svg, regions => minijinja::Value::from(minijinja::value::Serde(&choices)), region,
            phone => filled.phone, channel => filled.channel, app_error => filled.app_error,
            phone_error => filled.phone_error,
        },
    ))
}

/// `GET /login/enroll?return_to=…`: for a signed-in user.
pub async fn enroll_page(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(&s);
    let return_to = safe_return(q.get("return_to").map_or("", String::as_str));
    let csrf = cookies.csrf_or_new(&headers)?;
    let Some(session) = current_session(&s, &cookies, &headers).await? else {
        // Signed in, the way back leads here again.
        let signin =
            s.identity.begin_browser_sign_in(&return_to, &Secret::new(csrf.as_str()), &ctx, s.clock.now()).await?;
        let page = minijinja::context! { title => "Sign in", csrf => &csrf, signin => signin.expose(), error => "Sign in first." };
        return Ok(with_csrf(render(&s, StatusCode::OK, "login.html", page), &cookies, &csrf));
    };
    if !s.identity.session_may_manage_factors(&session).await? {
        return Ok(confirm_first(&s));
    }
    let page = enroll_view(&s, StatusCode::OK, &session, &csrf, &return_to, &headers, Filled::default()).await?;
    Ok(with_csrf(page, &cookies, &csrf))
}

/// `POST /login/enroll`: checks the app's code, turns the factor on, shows the recovery
/// codes once, and marks the session as two-factor.
pub async fn enroll_submit(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (form, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let return_to = form.return_to();
    let damaged = || error_page(&s, StatusCode::BAD_REQUEST, "The key was damaged. Reload the page and try again.");
    let Some(secret) = tessera_core::base32::decode(form.get("secret")) else { return Ok(damaged()) };
    let scope = s.identity.scope_session(&session);
    match s.identity.enable_authenticator(&scope, &secret, form.get("code").trim(), &ctx, s.clock.now()).await {
        Ok(EnableOutcome::Enabled { recovery_codes, .. }) => {
            s.identity.upgrade_browser_session(&session, AuthMethod::Totp).await?;
            Ok(factor_on(&s, "authenticator app", recovery_codes, &return_to))
        }
        Ok(EnableOutcome::WrongCode) => {
            let filled = Filled {
                secret: Some(form.get("secret")),
                app_error: Some("That code is not right. Check the app's clock and try the next code."),
                ..Filled::default()
            };
            enroll_view(&s, StatusCode::UNAUTHORIZED, &session, form.get("csrf"), &return_to, &headers, filled).await
        }
        Err(CoreError::Invalid(_)) => Ok(damaged()),
        Err(e) => Err(e.into()),
    }
}

/// `POST /login/enroll/phone`: reads the number in the chosen country and sends a code
/// to it (again, from the code page's "Send a new code").
pub async fn enroll_phone_send(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (form, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let (csrf, return_to) = (form.get("csrf"), form.return_to());
    let (channel, channel_name) = form.channel();
    let region = form.get("region");
    let refused = |status, message| {
        // The authenticator key on the page stays: it may have been scanned already.
        let secret = form.get("app_secret");
        let filled = Filled {
            secret: tessera_core::base32::decode(secret).is_some_and(|k| k.len() >= 16).then_some(secret),
            region: (!region.is_empty()).then(|| region.to_owned()),
            phone: form.get("phone"),
            channel: channel_name,
            phone_error: Some(message),
            ..Filled::default()
        };
        enroll_view(&s, status, &session, csrf, &return_to, &headers, filled)
    };
    let Ok(phone) = PhoneNumber::parse_in_region(region, form.get("phone")) else {
        let message = "That is not a phone number. Choose the country and enter the number as you dial it there, \
                       or start with + and the country code.";
        return refused(StatusCode::BAD_REQUEST, message).await;
    };
    let scope = s.identity.scope_session(&session);
    let outcome = s.identity.send_enrollment_code(&scope, &phone, channel, "en", &ctx, s.clock.now()).await?;
    let (status, message) = match outcome {
        SendOutcome::Sent => {
            let notice = sent_notice(&s, channel);
            return Ok(code_view(&s, StatusCode::OK, csrf, &return_to, &phone, channel_name, Some(&notice), None));
        }
        SendOutcome::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too many codes were sent. Wait a minute."),
        SendOutcome::Blocked(_) => {
            (StatusCode::BAD_REQUEST, "Codes cannot be sent to that number. Use an authenticator app instead.")
        }
        SendOutcome::NotFound | SendOutcome::Failed(_) => (
            StatusCode::BAD_GATEWAY,
            "The code could not be sent. Check the number, or use an authenticator app instead.",
        ),
    };
    refused(status, message).await
}

#[allow(clippy::too_many_arguments)] // one page's fields; a struct would only rename them
fn code_view(
    s: &AppState,
    status: StatusCode,
    csrf: &str,
    return_to: &str,
    phone: &PhoneNumber,
    channel: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (e164, masked) = (phone.as_str(), mask_phone(phone));
    let ctx = minijinja::context! { title => "Enter the code", csrf, return_to, e164, masked, channel, notice, error };
    render(s, status, "enroll_phone_code.html", ctx)
}

/// `POST /login/enroll/phone/confirm`: the code proves the phone; it becomes a factor.
pub async fn enroll_phone_confirm(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (form, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let (csrf, return_to) = (form.get("csrf"), form.return_to());
    let Ok(phone) = PhoneNumber::parse(form.get("e164")) else {
        return Ok(error_page(&s, StatusCode::BAD_REQUEST, "The number was damaged. Start again."));
    };
    let scope = s.identity.scope_session(&session);
    match s.identity.enable_sms(&scope, phone.clone(), form.get("code"), &ctx, s.clock.now()).await {
        Ok(EnableOutcome::Enabled { recovery_codes, .. }) => {
            s.identity.upgrade_browser_session(&session, AuthMethod::Sms).await?;
            Ok(factor_on(&s, "phone", recovery_codes, &return_to))
        }
        Ok(EnableOutcome::WrongCode) => {
            let error = Some("That code is not right, or it expired. Try again or send a new code.");
            Ok(code_view(&s, StatusCode::UNAUTHORIZED, csrf, &return_to, &phone, form.channel().1, None, error))
        }
        Err(CoreError::Invalid(_)) => {
            let filled =
                Filled { phone_error: Some("That number is already one of your second steps."), ..Filled::default() };
            enroll_view(&s, StatusCode::CONFLICT, &session, csrf, &return_to, &headers, filled).await
        }
        Err(e) => Err(e.into()),
    }
}
