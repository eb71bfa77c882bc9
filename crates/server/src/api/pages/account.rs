//! The signed-in user's own page: factors (add, remove with a current code), new
//! recovery codes, recent sign-ins; and signing out.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tessera_core::service::DisableOutcome;
use tessera_core::twofactor::{MethodId, MethodKind, mask_phone};

use super::{
    Cookies, checked, current_session, display_name, factor_form, form_expired, message_page, render, see_other,
    sign_in_expired, with_csrf,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;

#[derive(Serialize)]
struct Factor {
    id: String,
    label: String,
}

#[derive(Serialize)]
struct SignIn {
    at: String,
    ip: Option<String>,
}

async fn account_view(
    s: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(s);
    let Some(session) = current_session(s, &cookies, headers).await? else {
        return Ok(see_other("/login?return_to=%2Faccount"));
    };
    let csrf = cookies.csrf_or_new(headers)?;
    let name = display_name(s, &session).await?;
    let factors: Vec<Factor> = s
        .factors
        .methods(session.user_id)
        .await?
        .into_iter()
        .map(|m| Factor {
            label: match &m.kind {
                MethodKind::Authenticator(_) => "Authenticator app".to_owned(),
                MethodKind::Sms { phone } => format!("Text messages to {}", mask_phone(phone)),
            },
            id: m.id.as_str().to_owned(),
        })
        .collect();
    let sign_ins: Vec<SignIn> = s
        .identity
        .recent_sign_ins(session.user_id, 10)
        .await?
        .into_iter()
        .map(|e| SignIn { at: tessera_core::verify::iso8601(e.at), ip: e.ip })
        .collect();
    let ctx = minijinja::context! { title => "Your account", csrf => &csrf, name, notice, factors => minijinja::Value::from(minijinja::value::Serde(&factors)),
    sign_ins => minijinja::Value::from(minijinja::value::Serde(&sign_ins)), error };
    Ok(with_csrf(render(s, status, "account.html", ctx), &cookies, &csrf))
}

/// `GET /account`: the signed-in user's factors, recovery codes and recent sign-ins.
pub async fn account(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    account_view(&s, &headers, StatusCode::OK, None, None).await
}

/// `POST /account/remove`: removes a factor; a current code proves it is the owner.
pub async fn account_remove(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((cookies, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let Some(session) = current_session(&s, &cookies, &headers).await? else { return Ok(sign_in_expired(&s)) };
    let Some(id) = MethodId::parse(form.get("method_id")) else {
        return account_view(&s, &headers, StatusCode::BAD_REQUEST, None, Some("That second step does not exist."))
            .await;
    };
    let scope = s.identity.scope_session(&session);
    match s.factors.disable_method(&scope, &id, form.get("code"), &ctx, s.clock.now()).await? {
        DisableOutcome::Disabled => account_view(&s, &headers, StatusCode::OK, Some("Removed."), None).await,
        DisableOutcome::WrongCode => {
            let error = Some("That code is not right; nothing was removed.");
            account_view(&s, &headers, StatusCode::UNAUTHORIZED, None, error).await
        }
        DisableOutcome::Locked { .. } => {
            let error = Some("Too many wrong codes; nothing was removed. Try again in a few minutes.");
            account_view(&s, &headers, StatusCode::CONFLICT, None, error).await
        }
        DisableOutcome::NotFound => {
            account_view(&s, &headers, StatusCode::NOT_FOUND, None, Some("That second step does not exist.")).await
        }
    }
}

/// `POST /account/recovery-codes`: ten new codes, shown once; the old ones die.
pub async fn account_recovery_codes(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, session) = match factor_form(&s, &headers, &body).await? {
        Ok(signed_in) => signed_in,
        Err(page) => return Ok(page),
    };
    let scope = s.identity.scope_session(&session);
    match s.factors.regenerate_recovery_codes(&scope, &ctx, s.clock.now()).await? {
        Some(codes) => {
            let ctx = minijinja::context! {
                title => "Save your recovery codes", intro => "Your old codes no longer work.", codes,
                continue_to => "/account", continue_label => "Back to your account",
            };
            Ok(render(&s, StatusCode::OK, "recovery_codes.html", ctx))
        }
        None => {
            let error = Some("Add a second step first; recovery codes recover it.");
            account_view(&s, &headers, StatusCode::BAD_REQUEST, None, error).await
        }
    }
}

/// The parameters of an RP-initiated logout a confirmation carries to its POST, where
/// they are checked again.
const LOGOUT_CARRIED: [&str; 3] = ["client_id", "post_logout_redirect_uri", "state"];

/// `GET /logout`: asks before signing out. A link (or an image on another site) must not
/// be able to end a session, so only the posted form with its CSRF token does.
pub async fn logout_page(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    logout_confirmation(&s, &headers, &HashMap::new()).await
}

/// The confirmation for a browser that holds a session; with none, there is nothing to
/// protect, so the sign-out (and its redirect) happens at once.
pub async fn logout_confirmation(
    s: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(s);
    let Some(session) = current_session(s, &cookies, headers).await? else {
        return sign_out(s, headers, params).await;
    };
    let csrf = cookies.csrf_or_new(headers)?;
    let carry: Vec<(String, String)> =
        LOGOUT_CARRIED.iter().filter_map(|k| params.get(*k).map(|v| ((*k).to_owned(), v.clone()))).collect();
    let name = display_name(s, &session).await?;
    let page = render(
        s,
        StatusCode::OK,
        "logout.html",
        minijinja::context! { title => "Sign out", csrf => &csrf, carry, name },
    );
    Ok(with_csrf(page, &cookies, &csrf))
}

/// `POST /logout`: ends the browser session, then returns to the client when the form
/// carried a registered `post_logout_redirect_uri`.
pub async fn logout_submit(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let Some((_, form)) = checked(&s, &headers, &body) else { return Ok(form_expired(&s)) };
    let params: HashMap<String, String> = LOGOUT_CARRIED
        .iter()
        .filter(|k| !form.get(k).is_empty())
        .map(|k| ((*k).to_owned(), form.get(k).to_owned()))
        .collect();
    sign_out(&s, &headers, &params).await
}

/// Ends the browser's session (if any) and says so, or sends it back to the client.
pub async fn sign_out(
    s: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let cookies = Cookies::new(s);
    if let Some(c) = cookies.session(headers) {
        s.identity.end_browser_session(&c).await?;
    }
    let mut response = match s.identity.post_logout_redirect(params).await? {
        Some(uri) => {
            let state: Vec<(&str, &str)> =
                params.get("state").map(|st| vec![("state", st.as_str())]).unwrap_or_default();
            see_other(&if state.is_empty() { uri } else { crate::api::oidc::with_query(&uri, &state) })
        }
        None => message_page(s, "Signed out", "You are signed out."),
    };
    cookies.clear_session(&mut response);
    Ok(response)
}
