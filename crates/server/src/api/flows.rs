//! `/api/flow`: import Studio flows, bind numbers, read runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::service::flows::NumberRequest;
use tessera_core::store::{FlowRun, StoredFlow};
use tessera_core::validation::ValidationErrors;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson};

/// A flow with the numbers bound to it (taken from `bindings`: all, or the flow's).
fn flow_json(f: &StoredFlow, bindings: &[(String, String)]) -> Value {
    let numbers: Vec<&str> = bindings.iter().filter(|(_, flow)| *flow == f.sid).map(|(n, _)| n.as_str()).collect();
    json!({"id": f.sid, "friendlyName": f.friendly_name, "definition": f.definition, "numbers": numbers,
           "insertInstant": f.created_at.millis()})
}

/// The flow as answered after a change, with its numbers.
async fn answer(s: &AppState, tenant: tessera_core::ids::TenantId, f: &StoredFlow) -> Result<Json<Value>, ApiError> {
    let bound = s.flows.bindings(tenant, Some(&f.sid)).await?;
    Ok(Json(json!({"flow": flow_json(f, &bound)})))
}

pub fn run_json(r: &FlowRun) -> Value {
    json!({"id": r.sid, "flowId": r.flow_sid, "status": r.status, "currentState": r.current,
           "trigger": r.context.get("trigger"), "variables": r.context.pointer("/flow/variables"),
           "steps": r.steps, "insertInstant": r.created_at.millis(), "lastUpdateInstant": r.updated_at.millis()})
}

/// `POST /api/flow`: the Studio JSON as exported, or `{"flow": {…}, "friendlyName": …,
/// "number": …, "moveNumber": …}`; the flow and its number are stored in one
/// transaction, and a number bound to another flow moves only with `moveNumber: true`.
pub async fn import(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let (definition, name, number) = match body.get("flow") {
        Some(f) if f.is_object() => (f.clone(), text("friendlyName"), text("number")),
        _ => (body.clone(), None, None),
    };
    let move_from_other = body.get("moveNumber").and_then(Value::as_bool).unwrap_or(false);
    let request = number.as_deref().map(|number| NumberRequest { number, move_from_other });
    let flow = s.flows.import(admin.tenant_id, definition, name, request, s.clock.now()).await?;
    answer(&s, admin.tenant_id, &flow).await
}

pub async fn list(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Value>, ApiError> {
    let all = s.flows.list(admin.tenant_id).await?;
    let bound = s.flows.bindings(admin.tenant_id, None).await?;
    Ok(Json(json!({"flows": all.iter().map(|f| flow_json(f, &bound)).collect::<Vec<_>>()})))
}

/// `GET /api/flow/numbers`: every number bound to a flow.
pub async fn numbers(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Value>, ApiError> {
    let bound = s.flows.bindings(admin.tenant_id, None).await?;
    let numbers: Vec<Value> = bound.iter().map(|(n, f)| json!({"number": n, "flowId": f})).collect();
    Ok(Json(json!({"numbers": numbers})))
}

pub async fn get(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let f = s.flows.get(admin.tenant_id, &id).await?.ok_or(ApiError::NotFound)?;
    answer(&s, admin.tenant_id, &f).await
}

pub async fn delete(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if s.flows.delete(admin.tenant_id, &id).await? { Ok(StatusCode::OK) } else { Err(ApiError::NotFound) }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberBody {
    number: Option<String>,
    #[serde(default)]
    move_number: bool,
}

/// `POST /api/flow/{id}/number` `{number, moveNumber?}`: messages to that number start
/// this flow. A number bound to another flow moves only with `moveNumber: true`.
pub async fn bind(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NumberBody>,
) -> Result<Json<Value>, ApiError> {
    let number = b.number.ok_or_else(|| {
        ApiError::Invalid(ValidationErrors::field("number", "blank", "You must specify the [number]."))
    })?;
    let request = NumberRequest { number: &number, move_from_other: b.move_number };
    let n = s.flows.bind_number(admin.tenant_id, &id, request).await?;
    Ok(Json(json!({"flowId": id, "number": n.as_str()})))
}

pub async fn runs(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let runs = s.flows.runs(admin.tenant_id, &id, 100).await?;
    Ok(Json(json!({"runs": runs.iter().map(run_json).collect::<Vec<_>>()})))
}

pub async fn run(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = s.flows.run(admin.tenant_id, &id).await?;
    Ok(Json(json!({"run": run_json(&r)})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackBody {
    number: Option<String>,
    webhook: Option<String>,
    #[serde(default)]
    redact: bool,
    #[serde(default)]
    move_number: bool,
}

/// `POST /api/flow/forward-to-slack` `{number, webhook, redact?, moveNumber?}`.
pub async fn forward_to_slack(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    ApiJson(b): ApiJson<SlackBody>,
) -> Result<Json<Value>, ApiError> {
    let mut e = ValidationErrors::default();
    if b.number.is_none() {
        e.add("number", "blank", "You must specify the [number].");
    }
    if b.webhook.is_none() {
        e.add("webhook", "blank", "You must specify the Slack [webhook] URL.");
    }
    let (Some(number), Some(webhook)) = (b.number, b.webhook) else { return Err(ApiError::Invalid(e)) };
    let request = NumberRequest { number: &number, move_from_other: b.move_number };
    let f = s.flows.forward_to_slack(admin.tenant_id, request, &webhook, b.redact, s.clock.now()).await?;
    answer(&s, admin.tenant_id, &f).await
}
