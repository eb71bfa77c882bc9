//! Inbound messages from vendors (and a generic signed JSON form): checked against
//! the configured messengers' credentials, answered at once with an empty reply, and
//! handed to the flow bound to the receiving number in the background.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tessera_core::messengers::MessengerType;
use tessera_core::service::flows;
use tessera_providers::signature;

use crate::app::AppState;
use crate::error::ApiError;

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn signed_url(s: &AppState, uri: &Uri) -> Option<String> {
    Some(format!("{}{}", s.public_url.as_deref()?, uri.path_and_query().map_or(uri.path(), |p| p.as_str())))
}

/// Secrets of every messenger of a kind (a request is genuine if any of them signed it).
async fn secrets_of(
    s: &AppState,
    kind: MessengerType,
    field: &str,
) -> Result<Vec<(Map<String, Value>, String)>, ApiError> {
    let all = s.store.messengers(s.identity.tenant().id).await?;
    let mut out = Vec::new();
    for m in all.iter().filter(|m| m.kind == kind) {
        let secrets = s.router.secrets(m).map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Some(v) = secrets.get(field).and_then(Value::as_str) {
            out.push((m.settings.clone(), v.to_owned()));
        }
    }
    Ok(out)
}

/// Saves a run for the message, answers the vendor, and runs the flow afterwards, so
/// a slow step (a slow Slack) never delays the answer.
async fn dispatch(s: &AppState, to: &str, message: Map<String, Value>) -> Result<(), ApiError> {
    let Some(flow) = s.store.flow_for_number(to).await? else {
        tracing::info!(%to, "inbound message to a number with no flow");
        return Ok(());
    };
    let run = flows::start_run(s.store.as_ref(), &flow, &message, s.clock.now()).await?;
    let (store, effects, clock, tenant) = (s.store.clone(), s.effects.clone(), s.clock.clone(), flow.tenant_id);
    tokio::spawn(async move {
        let now = move || clock.now();
        if let Err(e) = flows::execute_run(store.as_ref(), tenant, &run.sid, effects.as_ref(), &now).await {
            tracing::warn!(run = %run.sid, error = %e, "flow run failed");
        }
    });
    Ok(())
}

fn xml(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// `POST /webhooks/twilio/sms`: Twilio's inbound message, signed with the account's
/// auth token (`X-Twilio-Signature`).
pub async fn twilio_sms(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form(&body);
    let account = param(&params, "AccountSid").unwrap_or_default();
    let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    let (Some(url), Some(sig)) = (signed_url(&s, &uri), sig) else { return Ok(StatusCode::FORBIDDEN.into_response()) };
    let genuine = secrets_of(&s, MessengerType::Twilio, "authToken")
        .await?
        .iter()
        .filter(|(settings, _)| settings.get("accountSID").and_then(Value::as_str) == Some(account.as_str()))
        .any(|(_, token)| signature::verify_twilio(token, &url, &params, sig));
    if !genuine {
        tracing::warn!("rejected an inbound Twilio message with a bad signature");
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let message: Map<String, Value> = params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let to = param(&params, "To").unwrap_or_default();
    dispatch(&s, &to, message).await?;
    Ok(xml(EMPTY_TWIML))
}

/// `POST /webhooks/plivo/sms`: Plivo's inbound message (`From`, `To`, `Text`, …),
/// signed with `X-Plivo-Signature-V3`.
pub async fn plivo_sms(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form(&body);
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let (Some(url), Some(sig), Some(nonce)) =
        (signed_url(&s, &uri), get("x-plivo-signature-v3"), get("x-plivo-signature-v3-nonce"))
    else {
        return Ok(StatusCode::FORBIDDEN.into_response());
    };
    let genuine = secrets_of(&s, MessengerType::Plivo, "authToken")
        .await?
        .iter()
        .any(|(_, token)| signature::verify_plivo_v3(token, &url, nonce, &params, sig));
    if !genuine {
        tracing::warn!("rejected an inbound Plivo message with a bad signature");
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    // Plivo writes numbers without '+'; the flow sees Studio's names and E.164.
    let plus = |n: String| if n.starts_with('+') { n } else { format!("+{n}") };
    let to = plus(param(&params, "To").unwrap_or_default());
    let mut message = Map::new();
    message.insert("Body".into(), json!(param(&params, "Text").unwrap_or_default()));
    message.insert("From".into(), json!(plus(param(&params, "From").unwrap_or_default())));
    message.insert("To".into(), json!(to));
    message.insert("MessageSid".into(), json!(param(&params, "MessageUUID").unwrap_or_default()));
    dispatch(&s, &to, message).await?;
    Ok(xml("<Response></Response>"))
}

/// `POST /webhooks/generic/sms` `{from, to, body}`, signed like the generic messenger's
/// own requests (`X-Tessera-Signature: t=…,v1=…`, within 5 minutes).
pub async fn generic_sms(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let Some(sig) = headers.get("x-tessera-signature").and_then(|v| v.to_str().ok()) else {
        return Ok(StatusCode::FORBIDDEN.into_response());
    };
    let t: i64 = sig.split(',').find_map(|p| p.strip_prefix("t=")).and_then(|t| t.parse().ok()).unwrap_or(0);
    if (s.clock.now().seconds() - t).abs() > 300 {
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let genuine = secrets_of(&s, MessengerType::Generic, "signingSecret").await?.iter().any(|(_, secret)| {
        let expected = signature::generic(secret, t, &body);
        subtle_eq(expected.as_bytes(), sig.as_bytes())
    });
    if !genuine {
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::general("[invalidJSON]", e.to_string()))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut message = Map::new();
    message.insert("Body".into(), json!(text("body")));
    message.insert("From".into(), json!(text("from")));
    message.insert("To".into(), json!(text("to")));
    dispatch(&s, &text("to"), message).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    tessera_core::secret::constant_time_eq(a, b)
}
