//! `/api/flow`: import Studio flows, bind numbers, read runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::service::flows::NumberRequest;
use tessera_core::store::{FlowRun, StoredFlow};
use tessera_core::validation::ValidationErrors;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson};

/// A flow with the numbers bound to it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowView {
    id: String,
    friendly_name: String,
    /// The Studio JSON as imported.
    definition: Value,
    numbers: Vec<String>,
    insert_instant: i64,
}

impl FlowView {
    /// `f`, with its numbers taken from `bindings` (all, or the flow's).
    fn of(f: &StoredFlow, bindings: &[(String, String)]) -> FlowView {
        let numbers = bindings.iter().filter(|(_, flow)| *flow == f.sid).map(|(n, _)| n.clone()).collect();
        FlowView {
            id: f.sid.clone(),
            friendly_name: f.friendly_name.clone(),
            definition: f.definition.clone(),
            numbers,
            insert_instant: f.created_at.millis(),
        }
    }
}

#[derive(Serialize)]
pub struct OneFlow {
    flow: FlowView,
}

/// The flow as answered after a change, with its numbers.
async fn answer(s: &AppState, tenant: tessera_core::ids::TenantId, f: &StoredFlow) -> Result<Json<OneFlow>, ApiError> {
    let bound = s.flows.bindings(tenant, Some(&f.sid)).await?;
    Ok(Json(OneFlow { flow: FlowView::of(f, &bound) }))
}

/// A run: where it is, what it was given and what each step did.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    id: String,
    flow_id: String,
    status: String,
    current_state: Option<String>,
    trigger: Option<Value>,
    variables: Option<Value>,
    steps: Vec<Value>,
    insert_instant: i64,
    last_update_instant: i64,
}

impl From<&FlowRun> for RunView {
    fn from(r: &FlowRun) -> Self {
        RunView {
            id: r.sid.clone(),
            flow_id: r.flow_sid.clone(),
            status: r.status.clone(),
            current_state: r.current.clone(),
            trigger: r.context.get("trigger").cloned(),
            variables: r.context.pointer("/flow/variables").cloned(),
            steps: r.steps.clone(),
            insert_instant: r.created_at.millis(),
            last_update_instant: r.updated_at.millis(),
        }
    }
}

#[derive(Serialize)]
pub struct Flows {
    flows: Vec<FlowView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    flow_id: String,
    number: String,
}

#[derive(Serialize)]
pub struct Numbers {
    numbers: Vec<Binding>,
}

#[derive(Serialize)]
pub struct Runs {
    runs: Vec<RunView>,
}

#[derive(Serialize)]
pub struct OneRun {
    run: RunView,
}

/// `POST /api/flow`: the Studio JSON as exported, or `{"flow": {…}, "friendlyName": …,
/// "number": …, "moveNumber": …}`; the flow and its number are stored in one
/// transaction, and a number bound to another flow moves only with `moveNumber: true`.
pub async fn import(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<OneFlow>, ApiError> {
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

pub async fn list(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Flows>, ApiError> {
    let all = s.flows.list(admin.tenant_id).await?;
    let bound = s.flows.bindings(admin.tenant_id, None).await?;
    Ok(Json(Flows { flows: all.iter().map(|f| FlowView::of(f, &bound)).collect() }))
}

/// `GET /api/flow/numbers`: every number bound to a flow.
pub async fn numbers(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Numbers>, ApiError> {
    let bound = s.flows.bindings(admin.tenant_id, None).await?;
    let numbers = bound.into_iter().map(|(number, flow_id)| Binding { flow_id, number }).collect();
    Ok(Json(Numbers { numbers }))
}

pub async fn get(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<OneFlow>, ApiError> {
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
) -> Result<Json<Binding>, ApiError> {
    let number = b.number.ok_or_else(|| {
        ApiError::Invalid(ValidationErrors::field("number", "blank", "You must specify the [number]."))
    })?;
    let request = NumberRequest { number: &number, move_from_other: b.move_number };
    let n = s.flows.bind_number(admin.tenant_id, &id, request).await?;
    Ok(Json(Binding { flow_id: id, number: n.as_str().to_owned() }))
}

pub async fn runs(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Runs>, ApiError> {
    let runs = s.flows.runs(admin.tenant_id, &id, 100).await?;
    Ok(Json(Runs { runs: runs.iter().map(RunView::from).collect() }))
}

pub async fn run(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<OneRun>, ApiError> {
    let r = s.flows.run(admin.tenant_id, &id).await?;
    Ok(Json(OneRun { run: RunView::from(&r) }))
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
) -> Result<Json<OneFlow>, ApiError> {
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
