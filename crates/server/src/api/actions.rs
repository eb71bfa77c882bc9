//! Auth0's Management API for actions under `/api/v2/actions` (`Authorization: Bearer
//! <admin key>`): actions, their versions, deploys and roll-backs, a trigger's bindings,
//! test runs and execution records, in Auth0's JSON shapes and error bodies
//! (`{statusCode, error, message, errorCode}`), so Auth0's own clients drive it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::actions::{
    ActionVersion, Dependency, Executed, ExecutionRecord, LogLine, ScriptFailure, Trigger, TriggerBinding,
};
use tessera_core::service::{ActionError, ActionFailure, ActionInput, ActionRef, ActionView, SecretInput};
use tessera_core::verify::iso8601;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller};

/// An Auth0-shaped error answer.
pub struct Auth0Error {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Auth0Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Auth0Error { status, code, message: message.into() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    status_code: u16,
    error: &'static str,
    message: String,
    error_code: &'static str,
}

impl IntoResponse for Auth0Error {
    fn into_response(self) -> Response {
        let error = self.status.canonical_reason().unwrap_or("Error");
        let body = ErrorBody { status_code: self.status.as_u16(), error, message: self.message, error_code: self.code };
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body; a malformed one is refused in Auth0's shape with what is wrong.
pub struct Auth0Json<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for Auth0Json<T> {
    type Rejection = Auth0Error;

    async fn from_request(req: axum::extract::Request, s: &AppState) -> Result<Self, Auth0Error> {
        match ApiJson::<T>::from_request(req, s).await {
            Ok(ApiJson(v)) => Ok(Auth0Json(v)),
            Err(ApiError::Invalid(v)) => {
                let said = v.general.iter().chain(v.fields.values().flatten()).next().map(|p| p.message.clone());
                Err(Auth0Error::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    said.unwrap_or_else(|| "The body is not valid JSON.".into()),
                ))
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// Everything but Auth0's own errors goes through the server's one mapping (401, 503,
/// 500 with an error id), then into Auth0's shape.
impl From<ApiError> for Auth0Error {
    fn from(e: ApiError) -> Self {
        let response = e.into_response();
        let status = response.status();
        let (code, message) = match status {
            StatusCode::UNAUTHORIZED => ("invalid_token", "Missing or invalid API key."),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "The database is unavailable; try again shortly."),
            StatusCode::NOT_FOUND => ("inexistent_resource", "Not found."),
            StatusCode::BAD_REQUEST => ("invalid_body", "The request is not valid."),
            _ => ("internal_error", "Something went wrong on our side; the log has the details."),
        };
        Auth0Error::new(status, code, message)
    }
}

impl From<ActionFailure> for Auth0Error {
    fn from(f: ActionFailure) -> Self {
        match f {
            ActionFailure::Action(ActionError::Invalid(m)) => {
                Auth0Error::new(StatusCode::BAD_REQUEST, "invalid_body", m)
            }
            ActionFailure::Action(ActionError::Code(p)) => {
                Auth0Error::new(StatusCode::BAD_REQUEST, "invalid_code", format!("The code cannot be deployed: {p}"))
            }
            ActionFailure::Action(ActionError::NotFound(what)) => {
                Auth0Error::new(StatusCode::NOT_FOUND, "inexistent_resource", format!("The {what} does not exist."))
            }
            ActionFailure::Action(ActionError::Conflict(m)) => Auth0Error::new(StatusCode::CONFLICT, "conflict", m),
            ActionFailure::Core(e) => ApiError::from(e).into(),
        }
    }
}

type Answer<T> = Result<T, Auth0Error>;

/// The admin key, with a refusal in Auth0's shape.
pub struct Admin(tessera_core::apikey::Admin);

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = Auth0Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> Result<Self, Auth0Error> {
        AdminAuth::from_request_parts(parts, s).await.map(|AdminAuth(a)| Admin(a)).map_err(Auth0Error::from)
    }
}

// ---- wire shapes ----

#[derive(Deserialize, Serialize, Clone)]
pub struct TriggerRef {
    id: String,
    #[serde(default = "v3")]
    version: String,
}

fn v3() -> String {
    "v3".into()
}

#[derive(Deserialize)]
struct SecretIn {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct DependencyIn {
    name: String,
    #[serde(default)]
    version: String,
}

/// `POST /actions/actions` and `PATCH /actions/actions/{id}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    name: Option<String>,
    supported_triggers: Option<Vec<TriggerRef>>,
    code: Option<String>,
    runtime: Option<String>,
    dependencies: Option<Vec<DependencyIn>>,
    secrets: Option<Vec<SecretIn>>,
    /// Auth0's create can deploy at once.
    deploy: Option<bool>,
}

impl ActionBody {
    fn input(self) -> Answer<(ActionInput, bool)> {
        let trigger = match self.supported_triggers {
            Some(list) if list.len() != 1 => {
                return Err(Auth0Error::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "supported_triggers must name exactly one trigger",
                ));
            }
            Some(list) => list.into_iter().next().map(|t| (t.id, t.version)),
            None => None,
        };
        let input = ActionInput {
            name: self.name,
            trigger,
            code: self.code,
            runtime: self.runtime,
            dependencies: self
                .dependencies
                .map(|d| d.into_iter().map(|d| Dependency { name: d.name, version: d.version }).collect()),
            secrets: self
                .secrets
                .map(|s| s.into_iter().map(|s| SecretInput { name: s.name, value: s.value }).collect()),
        };
        Ok((input, self.deploy.unwrap_or(false)))
    }
}

#[derive(Serialize)]
pub struct SecretOut {
    name: String,
    updated_at: String,
}

#[derive(Serialize)]
pub struct VersionOut {
    id: String,
    action_id: String,
    number: u32,
    code: String,
    dependencies: Vec<Dependency>,
    runtime: String,
    deployed: bool,
    status: &'static str,
    errors: Vec<Value>,
    supported_triggers: Vec<TriggerRef>,
    created_at: String,
    updated_at: String,
    built_at: String,
}

#[derive(Serialize)]
pub struct ActionOut {
    id: String,
    name: String,
    supported_triggers: Vec<TriggerRef>,
    all_changes_deployed: bool,
    code: String,
    dependencies: Vec<Dependency>,
    runtime: String,
    secrets: Vec<SecretOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployed_version: Option<VersionOut>,
    status: &'static str,
    created_at: String,
    updated_at: String,
}

fn triggers_of(trigger: Trigger, version: &str) -> Vec<TriggerRef> {
    vec![TriggerRef { id: trigger.id().into(), version: version.into() }]
}

fn version_out(v: &ActionVersion, trigger: Trigger, trigger_version: &str, deployed: bool) -> VersionOut {
    let at = iso8601(v.created_at);
    VersionOut {
        id: v.id.to_string(),
        action_id: v.action_id.to_string(),
        number: v.number,
        code: v.code.clone(),
        dependencies: v.dependencies.clone(),
        runtime: v.runtime.clone(),
        deployed,
        status: "built",
        errors: Vec::new(),
        supported_triggers: triggers_of(trigger, trigger_version),
        created_at: at.clone(),
        updated_at: at.clone(),
        built_at: at,
    }
}

fn action_out(v: &ActionView) -> ActionOut {
    let a = &v.action;
    ActionOut {
        id: a.id.to_string(),
        name: a.name.clone(),
        supported_triggers: triggers_of(a.trigger, &a.trigger_version),
        all_changes_deployed: v.all_changes_deployed(),
        code: a.code.clone(),
        dependencies: a.dependencies.clone(),
        runtime: a.runtime.clone(),
        secrets: v
            .secrets
            .iter()
            .map(|(name, at)| SecretOut {
                name: name.clone(),
                updated_at: iso8601(tessera_core::Timestamp::from_millis(*at)),
            })
            .collect(),
        deployed_version: v.deployed.as_ref().map(|d| version_out(d, a.trigger, &a.trigger_version, true)),
        status: "built",
        created_at: iso8601(a.created_at),
        updated_at: iso8601(a.updated_at),
    }
}

/// A page of a list, as Auth0 pages them.
#[derive(Serialize)]
pub struct Paged<T: Serialize> {
    #[serde(flatten)]
    items: T,
    total: usize,
    page: usize,
    per_page: usize,
}

#[derive(Serialize)]
pub struct ActionList {
    actions: Vec<ActionOut>,
}

#[derive(Serialize)]
pub struct VersionList {
    versions: Vec<VersionOut>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
    #[serde(rename = "actionName")]
    action_name: Option<String>,
    deployed: Option<bool>,
    page: Option<usize>,
    per_page: Option<usize>,
}

/// Auth0's offset paging: `page` from 0, `per_page` up to 100 (50 by default).
fn paged<T>(all: Vec<T>, page: Option<usize>, per_page: Option<usize>) -> (Vec<T>, usize, usize, usize) {
    let total = all.len();
    let (page, per_page) = (page.unwrap_or(0), per_page.unwrap_or(50).clamp(1, 100));
    let items = all.into_iter().skip(page.saturating_mul(per_page)).take(per_page).collect();
    (items, total, page, per_page)
}

// ---- actions ----

pub async fn list(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Query(q): Query<ListQuery>,
) -> Answer<Json<Paged<ActionList>>> {
    let all = s.actions.list(admin.tenant_id, q.trigger_id.as_deref(), q.action_name.as_deref()).await?;
    let all: Vec<ActionOut> =
        all.iter().filter(|v| q.deployed.is_none_or(|d| d == v.deployed.is_some())).map(action_out).collect();
    let (actions, total, page, per_page) = paged(all, q.page, q.per_page);
    Ok(Json(Paged { items: ActionList { actions }, total, page, per_page }))
}

pub async fn create(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Caller(ctx): Caller,
    body: Auth0Json<ActionBody>,
) -> Answer<Response> {
    let (input, deploy) = body.0.input()?;
    let now = s.clock.now();
    let created = s.actions.create(admin.tenant_id, input, &ctx, now).await?;
    let view = if deploy {
        s.actions.deploy(admin.tenant_id, &created.action.id.to_string(), &ctx, now).await?;
        s.actions.get(admin.tenant_id, &created.action.id.to_string()).await?
    } else {
        created
    };
    Ok((StatusCode::CREATED, Json(action_out(&view))).into_response())
}

pub async fn get(State(s): State<AppState>, Admin(admin): Admin, Path(id): Path<String>) -> Answer<Json<ActionOut>> {
    Ok(Json(action_out(&s.actions.get(admin.tenant_id, &id).await?)))
}

pub async fn update(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Auth0Json<ActionBody>,
) -> Answer<Json<ActionOut>> {
    let (input, _) = body.0.input()?;
    Ok(Json(action_out(&s.actions.update(admin.tenant_id, &id, input, &ctx, s.clock.now()).await?)))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    force: Option<bool>,
}

pub async fn delete(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Answer<StatusCode> {
    s.actions.delete(admin.tenant_id, &id, q.force.unwrap_or(false), &ctx, s.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deploys the draft; answers the new version (Auth0 answers 202: the build is
/// asynchronous there, done by the time it answers here).
pub async fn deploy(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Answer<Response> {
    let version = s.actions.deploy(admin.tenant_id, &id, &ctx, s.clock.now()).await?;
    let action = s.actions.get(admin.tenant_id, &id).await?.action;
    let out = version_out(&version, action.trigger, &action.trigger_version, true);
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}

pub async fn versions(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Answer<Json<Paged<VersionList>>> {
    let view = s.actions.get(admin.tenant_id, &id).await?;
    let a = &view.action;
    let all: Vec<VersionOut> = s
        .actions
        .versions(admin.tenant_id, &id)
        .await?
        .iter()
        .map(|v| version_out(v, a.trigger, &a.trigger_version, a.deployed_version == Some(v.id)))
        .collect();
    let (versions, total, page, per_page) = paged(all, q.page, q.per_page);
    Ok(Json(Paged { items: VersionList { versions }, total, page, per_page }))
}

pub async fn version(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path((id, version)): Path<(String, String)>,
) -> Answer<Json<VersionOut>> {
    let a = s.actions.get(admin.tenant_id, &id).await?.action;
    let v = s.actions.version(admin.tenant_id, &id, &version).await?;
    Ok(Json(version_out(&v, a.trigger, &a.trigger_version, a.deployed_version == Some(v.id))))
}

/// Deploys a copy of an older version as the newest: Auth0's roll back.
pub async fn deploy_version(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Caller(ctx): Caller,
    Path((id, version)): Path<(String, String)>,
) -> Answer<Response> {
    let v = s.actions.redeploy(admin.tenant_id, &id, &version, &ctx, s.clock.now()).await?;
    let a = s.actions.get(admin.tenant_id, &id).await?.action;
    Ok((StatusCode::ACCEPTED, Json(version_out(&v, a.trigger, &a.trigger_version, true))).into_response())
}

#[derive(Deserialize)]
pub struct TestBody {
    #[serde(default)]
    payload: Value,
}

#[derive(Serialize)]
pub struct Command {
    name: String,
    args: Vec<Value>,
}

#[derive(Serialize)]
pub struct TestError {
    id: &'static str,
    msg: String,
}

#[derive(Serialize)]
pub struct TestStats {
    total_request_duration_ms: u128,
}

/// What a test run did: the `api` commands, the logs, the error that ended it.
#[derive(Serialize)]
pub struct TestPayload {
    commands: Vec<Command>,
    logs: Vec<String>,
    error: Option<TestError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<TestStats>,
}

#[derive(Serialize)]
pub struct TestOut {
    payload: TestPayload,
}

fn logs(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.message.clone()).collect()
}

/// Runs the draft against the payload as `event`: what it asked of `api`, and its logs.
pub async fn test(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    body: Auth0Json<TestBody>,
) -> Answer<Json<TestOut>> {
    let event = if body.0.payload.is_object() { body.0.payload } else { Value::Object(Default::default()) };
    let run = s.actions.test(admin.tenant_id, &id, event, s.clock.now()).await?;
    let commands = |done: &Executed| -> Vec<Command> {
        done.calls.iter().map(|c| Command { name: c.name.clone(), args: c.args.clone() }).collect()
    };
    let payload = match &run.outcome {
        Ok(done) => TestPayload {
            commands: commands(done),
            logs: logs(&done.logs),
            error: None,
            stats: Some(TestStats { total_request_duration_ms: done.took.as_millis() }),
        },
        Err(f) => TestPayload {
            commands: Vec::new(),
            logs: logs(f.logs()),
            error: Some(TestError { id: failure_id(f), msg: f.description() }),
            stats: None,
        },
    };
    Ok(Json(TestOut { payload }))
}

fn failure_id(f: &ScriptFailure) -> &'static str {
    match f {
        ScriptFailure::Threw { .. } => "error",
        ScriptFailure::TimedOut { .. } => "timeout",
        ScriptFailure::OutOfMemory { .. } => "out_of_memory",
        ScriptFailure::NeverSettled { .. } => "never_settled",
        ScriptFailure::Busy => "resource_exhausted",
    }
}

// ---- triggers and bindings ----

#[derive(Serialize)]
pub struct TriggerOut {
    id: &'static str,
    version: &'static str,
    status: &'static str,
    runtimes: [&'static str; 1],
    default_runtime: &'static str,
    compatible_triggers: [(); 0],
}

#[derive(Serialize)]
pub struct TriggerList {
    triggers: Vec<TriggerOut>,
}

pub async fn triggers(Admin(_): Admin) -> Json<TriggerList> {
    let triggers = Trigger::ALL
        .iter()
        .map(|t| TriggerOut {
            id: t.id(),
            version: if *t == Trigger::PostLogin { "v3" } else { "v2" },
            status: "CURRENT",
            runtimes: ["node22"],
            default_runtime: "node22",
            compatible_triggers: [],
        })
        .collect();
    Json(TriggerList { triggers })
}

#[derive(Serialize)]
pub struct BindingOut {
    id: String,
    trigger_id: String,
    display_name: String,
    action: ActionOut,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
pub struct BindingList {
    bindings: Vec<BindingOut>,
}

fn binding_out(b: &TriggerBinding, trigger: &str, a: &ActionView) -> BindingOut {
    BindingOut {
        id: b.id.clone(),
        trigger_id: trigger.to_owned(),
        display_name: b.display_name.clone(),
        action: action_out(a),
        created_at: iso8601(b.created_at),
        updated_at: iso8601(b.created_at),
    }
}

pub async fn bindings(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(trigger): Path<String>,
) -> Answer<Json<Paged<BindingList>>> {
    let list = s.actions.bindings(admin.tenant_id, &trigger).await?;
    let bindings: Vec<BindingOut> = list.iter().map(|(b, a)| binding_out(b, &trigger, a)).collect();
    let total = bindings.len();
    Ok(Json(Paged { items: BindingList { bindings }, total, page: 0, per_page: total.max(1) }))
}

#[derive(Deserialize)]
struct BindingRefIn {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct BindingIn {
    #[serde(rename = "ref")]
    reference: BindingRefIn,
    display_name: Option<String>,
}

#[derive(Deserialize)]
pub struct BindingsBody {
    #[serde(default)]
    bindings: Vec<BindingIn>,
}

/// Replaces the trigger's actions, in the order given.
pub async fn update_bindings(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Caller(ctx): Caller,
    Path(trigger): Path<String>,
    body: Auth0Json<BindingsBody>,
) -> Answer<Json<BindingList>> {
    let mut refs = Vec::new();
    for b in body.0.bindings {
        let r = match b.reference.kind.as_str() {
            "action_id" => ActionRef::Id(b.reference.value),
            "action_name" => ActionRef::Name(b.reference.value),
            other => {
                return Err(Auth0Error::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("ref.type must be action_id or action_name, not {other:?}"),
                ));
            }
        };
        refs.push((r, b.display_name));
    }
    let list = s.actions.bind(admin.tenant_id, &trigger, refs, &ctx, s.clock.now()).await?;
    let bindings = list.iter().map(|(b, a)| binding_out(b, &trigger, a)).collect();
    Ok(Json(BindingList { bindings }))
}

// ---- executions ----

#[derive(Serialize)]
pub struct ResultOut {
    action_name: String,
    error: Option<TestError>,
    started_at: String,
    ended_at: String,
    logs: Vec<String>,
}

#[derive(Serialize)]
pub struct ExecutionOut {
    id: String,
    trigger_id: &'static str,
    status: String,
    results: Vec<ResultOut>,
    created_at: String,
    updated_at: String,
}

fn execution_out(e: &ExecutionRecord) -> ExecutionOut {
    let at = |ms: i64| iso8601(tessera_core::Timestamp::from_millis(ms));
    let results = e
        .results
        .iter()
        .map(|r| ResultOut {
            action_name: r.action_name.clone(),
            error: r.error.as_ref().map(|m| TestError { id: "error", msg: m.clone() }),
            started_at: at(r.started_at),
            ended_at: at(r.ended_at),
            logs: r.logs.clone(),
        })
        .collect();
    ExecutionOut {
        id: e.id.to_string(),
        trigger_id: e.trigger.id(),
        status: e.status.clone(),
        results,
        created_at: iso8601(e.created_at),
        updated_at: iso8601(e.created_at),
    }
}

pub async fn execution(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Answer<Json<ExecutionOut>> {
    Ok(Json(execution_out(&s.actions.execution(admin.tenant_id, &id).await?)))
}
