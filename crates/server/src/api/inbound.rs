//! Inbound messages from vendors (and a generic signed JSON form): checked against
//! the configured messengers' credentials, answered at once with an empty reply, and
//! handed to the flow bound to the receiving number in the background.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tessera_core::ids::TenantId;
use tessera_core::messengers::MessengerType;
use tessera_core::store::StoredFlow;
use tessera_providers::signature;

use crate::api::webhooks::{form, log_rejected, param, plivo_signed, signed_url, twilio_signed};
use crate::app::AppState;
use crate::error::ApiError;

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// Whom a message to `to` is for: the tenant whose flow the number is bound to (its
/// messengers' credentials prove the message genuine, its flow runs), else the tenant
/// this server serves (whose messengers still check it; no flow runs).
struct Receiving {
    tenant: TenantId,
    flow: Option<StoredFlow>,
}

async fn receiving(s: &AppState, to: &str) -> Result<Receiving, ApiError> {
    let flow = s.flows.for_number(to).await?;
    let tenant = flow.as_ref().map_or(s.identity.tenant().id, |f| f.tenant_id);
    Ok(Receiving { tenant, flow })
}

/// Secrets of every messenger of a kind of the receiving tenant (a request is genuine
/// if any of them signed it).
async fn secrets_of(
    s: &AppState,
    to: &Receiving,
    kind: MessengerType,
    field: &str,
) -> Result<Vec<(Map<String, Value>, String)>, ApiError> {
    Ok(s.messengers.webhook_secrets(to.tenant, kind, field).await?)
}

/// Saves a run for the message, answers the vendor, and runs the flow afterwards, so
/// a slow step (a slow Slack) never delays the answer.
async fn dispatch(s: &AppState, to: Receiving, message: Map<String, Value>) -> Result<(), ApiError> {
    let Some(flow) = to.flow else {
        tracing::info!(tenant = %to.tenant, "inbound message to a number with no flow");
        return Ok(());
    };
    let run = s.flows.start_run(&flow, &message, s.clock.now()).await?;
    let (flows, effects, clock, tenant) = (s.flows.clone(), s.effects.clone(), s.clock.clone(), flow.tenant_id);
    tokio::spawn(async move {
        let now = move || clock.now();
        if let Err(e) = flows.execute_run(tenant, &run.sid, effects.as_ref(), &now).await {
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
    let to = receiving(&s, param(&params, "To").unwrap_or_default()).await?;
    let tokens: Vec<String> = secrets_of(&s, &to, MessengerType::Twilio, "authToken")
        .await?
        .into_iter()
        .filter(|(settings, _)| settings.get("accountSID").and_then(Value::as_str) == Some(account))
        .map(|(_, token)| token)
        .collect();
    let url = signed_url(&s, &uri);
    if !twilio_signed(&headers, url.as_deref(), &params, &tokens) {
        log_rejected("an inbound Twilio message", url.as_deref(), tokens.len());
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let message: Map<String, Value> = params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    dispatch(&s, to, message).await?;
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
    // Plivo writes numbers without '+'; the flow sees Studio's names and E.164.
    let plus = |n: String| if n.starts_with('+') { n } else { format!("+{n}") };
    let text = |k: &str| param(&params, k).unwrap_or_default().to_owned();
    let to = plus(text("To"));
    let receiver = receiving(&s, &to).await?;
    let tokens: Vec<String> =
        secrets_of(&s, &receiver, MessengerType::Plivo, "authToken").await?.into_iter().map(|(_, t)| t).collect();
    let url = signed_url(&s, &uri);
    if !plivo_signed(&headers, url.as_deref(), &params, &tokens) {
        log_rejected("an inbound Plivo message", url.as_deref(), tokens.len());
        return Ok(StatusCode::FORBIDDEN.into_response());
    }
    let mut message = Map::new();
    message.insert("Body".into(), json!(text("Text")));
    message.insert("From".into(), json!(plus(text("From"))));
    message.insert("To".into(), json!(to));
    message.insert("MessageSid".into(), json!(text("MessageUUID")));
    dispatch(&s, receiver, message).await?;
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
    // The receiving number, read before the signature is checked only to know whose
    // secrets check it.
    let unchecked: Option<Value> = serde_json::from_slice(&body).ok();
    let to = unchecked.as_ref().and_then(|v| v.get("to")).and_then(Value::as_str).unwrap_or_default();
    let receiver = receiving(&s, to).await?;
    let genuine =
        secrets_of(&s, &receiver, MessengerType::Generic, "signingSecret").await?.iter().any(|(_, secret)| {
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
    dispatch(&s, receiver, message).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    tessera_core::secret::constant_time_eq(a, b)
}
