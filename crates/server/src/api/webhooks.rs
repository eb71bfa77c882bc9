//! Delivery status callbacks from providers. Each is checked against the messenger's
//! auth token before it may change a record; a missing or wrong signature is a 403.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tessera_core::messengers::MessengerType;
use tessera_providers::signature;

use crate::app::AppState;
use crate::error::ApiError;

/// `application/x-www-form-urlencoded` into pairs, in the order sent.
pub(crate) fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The URL the provider signed: our public URL with the request's path and query.
pub(crate) fn signed_url(s: &AppState, uri: &Uri) -> Option<String> {
    let base = s.public_url.as_deref()?;
    Some(format!("{base}{}", uri.path_and_query().map_or(uri.path(), |p| p.as_str())))
}

/// Says why a vendor's request was refused, so an operator can fix it: `public_url`
/// unset (the signed URL cannot be known), no credentials that could have signed it, or
/// a signature that does not match the URL we checked (the one to configure at the
/// vendor; its query left out of the log).
pub(crate) fn log_rejected(what: &str, url: Option<&str>, credentials: usize) {
    match url {
        None => tracing::warn!(
            "rejected {what}: public_url is unset, so the URL the vendor signed cannot be known; set public_url to the address the vendor calls"
        ),
        Some(_) if credentials == 0 => {
            tracing::warn!("rejected {what}: no messenger is configured whose credentials could have signed it")
        }
        Some(u) => {
            let url = u.split('?').next().unwrap_or_default();
            tracing::warn!(
                %url,
                "rejected {what}: its signature does not match a request to this URL with the configured credentials (is this the URL set at the vendor?)"
            )
        }
    }
}

/// Whether one of `tokens` made the request's `X-Twilio-Signature`.
pub(crate) fn twilio_signed(
    headers: &HeaderMap,
    url: Option<&str>,
    params: &[(String, String)],
    tokens: &[String],
) -> bool {
    let (Some(url), Some(sig)) = (url, headers.get("x-twilio-signature").and_then(|v| v.to_str().ok())) else {
        return false;
    };
    tokens.iter().any(|t| signature::verify_twilio(t, url, params, sig))
}

/// Whether one of `tokens` made the request's `X-Plivo-Signature-V3` (with its nonce).
pub(crate) fn plivo_signed(
    headers: &HeaderMap,
    url: Option<&str>,
    params: &[(String, String)],
    tokens: &[String],
) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let (Some(url), Some(sig), Some(nonce)) = (url, get("x-plivo-signature-v3"), get("x-plivo-signature-v3-nonce"))
    else {
        return false;
    };
    tokens.iter().any(|t| signature::verify_plivo_v3(t, url, nonce, params, sig))
}

async fn auth_token(s: &AppState, id: &str, kind: MessengerType) -> Result<Option<String>, ApiError> {
    let Ok(id) = id.parse() else { return Ok(None) };
    Ok(s.messengers.webhook_secret(id, kind, "authToken").await?)
}

/// Twilio `StatusCallback`: `MessageSid`, `MessageStatus`, `ErrorCode`, signed with
/// `X-Twilio-Signature`.
pub async fn twilio_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = form(&body);
    let tokens: Vec<String> = auth_token(&s, &id, MessengerType::Twilio).await?.into_iter().collect();
    let url = signed_url(&s, &uri);
    if !twilio_signed(&headers, url.as_deref(), &params, &tokens) {
        log_rejected(&format!("a Twilio status callback for messenger {id}"), url.as_deref(), tokens.len());
        return Ok(StatusCode::FORBIDDEN);
    }
    apply_status(&s, "twilio", &params, ("MessageSid", "MessageStatus")).await
}

/// Records what a signed callback says of a delivery; `keys` are the vendor's names for
/// the message id and its status.
async fn apply_status(
    s: &AppState,
    provider: &str,
    params: &[(String, String)],
    keys: (&str, &str),
) -> Result<StatusCode, ApiError> {
    let (Some(id), Some(status)) = (param(params, keys.0), param(params, keys.1)) else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    s.messengers.record_delivery_status(provider, id, status, param(params, "ErrorCode"), s.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Plivo message `url` callback: `MessageUUID`, `Status`, `ErrorCode`, signed with
/// `X-Plivo-Signature-V3` and its nonce.
pub async fn plivo_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = form(&body);
    let tokens: Vec<String> = auth_token(&s, &id, MessengerType::Plivo).await?.into_iter().collect();
    let url = signed_url(&s, &uri);
    if !plivo_signed(&headers, url.as_deref(), &params, &tokens) {
        log_rejected(&format!("a Plivo status callback for messenger {id}"), url.as_deref(), tokens.len());
        return Ok(StatusCode::FORBIDDEN);
    }
    apply_status(&s, "plivo", &params, ("MessageUUID", "Status")).await
}

/// Plivo's answer URL for a voice code: Plivo fetches what to say when the call is
/// answered. Signed like the status callbacks; the prompt is spoken once.
pub async fn plivo_answer(
    State(s): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form(&body);
    let tokens: Vec<String> = auth_token(&s, &id, MessengerType::Plivo).await?.into_iter().collect();
    if !plivo_signed(&headers, signed_url(&s, &uri).as_deref(), &params, &tokens) {
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let xml = match s.router.take_voice_prompt(&token).await.map_err(|e| ApiError::Internal(e.to_string()))? {
        Some(text) => format!("<Response><Speak>{}</Speak></Response>", xml_escape(&text)),
        None => "<Response><Hangup/></Response>".to_owned(),
    };
    Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
