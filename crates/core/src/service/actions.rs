//! `Actions`: managing actions as Auth0's Management API does (drafts, immutable numbered
//! versions, a trigger's ordered bindings, test runs, execution records) and running a
//! trigger's bound actions for the sign-in and the messengers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::RequestContext;
use super::kernel::{Kernel, retrying};
use crate::actions::{
    Action, ActionResult, ActionSecret, ActionVersion, BUILT_IN_MODULES, BoundAction, CodeProblem, Dependency,
    Executed, Execution, ExecutionRecord, ScriptFailure, ScriptRunner, Trigger, TriggerBinding, limits,
    secrets_context,
};
use crate::audit::AuditKind;
use crate::ids::{ActionId, ActionVersionId, ExecutionId, TenantId};
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::{CoreError, Timestamp};

/// Why a management request is refused, for the server to put in Auth0's error shape.
#[derive(Debug, PartialEq, Eq)]
pub enum ActionError {
    /// 400: the body does not describe a valid action.
    Invalid(String),
    /// 400: the code cannot be deployed (syntax, exports, modules), with where.
    Code(CodeProblem),
    /// 404
    NotFound(&'static str),
    /// 409: a name taken, an action still bound.
    Conflict(String),
}

#[derive(Debug)]
pub enum ActionFailure {
    Action(ActionError),
    Core(CoreError),
}

impl From<ActionError> for ActionFailure {
    fn from(e: ActionError) -> Self {
        ActionFailure::Action(e)
    }
}

impl<E: Into<CoreError>> From<E> for ActionFailure {
    fn from(e: E) -> Self {
        ActionFailure::Core(e.into())
    }
}

type Answer<T> = Result<T, ActionFailure>;

fn invalid<T>(message: impl Into<String>) -> Answer<T> {
    Err(ActionError::Invalid(message.into()).into())
}

/// A secret as given: a value, or none to keep the one the action has by that name.
#[derive(Clone, Debug, Default)]
pub struct SecretInput {
    pub name: String,
    pub value: Option<String>,
}

/// What creating or changing an action gives; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct ActionInput {
    pub name: Option<String>,
    /// The trigger and its version (`post-login`, `v3`).
    pub trigger: Option<(String, String)>,
    pub code: Option<String>,
    pub runtime: Option<String>,
    pub dependencies: Option<Vec<Dependency>>,
    pub secrets: Option<Vec<SecretInput>>,
}

/// An action as the API shows it: the secrets by name only, the deployed version.
#[derive(Clone, Debug)]
pub struct ActionView {
    pub action: Action,
    pub secrets: Vec<(String, i64)>,
    pub deployed: Option<ActionVersion>,
}

impl ActionView {
    /// The draft is what runs.
    pub fn all_changes_deployed(&self) -> bool {
        self.deployed.as_ref().is_some_and(|v| {
            v.code == self.action.code && v.dependencies == self.action.dependencies && v.runtime == self.action.runtime
        })
    }
}

/// A binding as given: the action by id or by name, and what to call it in the flow.
#[derive(Clone, Debug)]
pub enum ActionRef {
    Id(String),
    Name(String),
}

/// What a test run gives back: the `api` calls and logs, or why it failed.
#[derive(Clone, Debug)]
pub struct TestRun {
    pub outcome: Result<Executed, ScriptFailure>,
}

#[derive(Clone)]
pub struct Actions {
    store: Arc<dyn Store>,
    kernel: Arc<Kernel>,
    runner: Arc<dyn ScriptRunner>,
}

const RUNTIME: &str = "node22";

fn check_dependencies(deps: &[Dependency]) -> Answer<()> {
    for d in deps {
        if !BUILT_IN_MODULES.contains(&d.name.as_str()) {
            return invalid(format!(
                "The dependency '{}' is not available; actions may use only the built-in modules: {}",
                d.name,
                BUILT_IN_MODULES.join(", ")
            ));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Answer<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > limits::NAME {
        return invalid(format!("name must be 1 to {} characters", limits::NAME));
    }
    Ok(name.to_owned())
}

fn check_code(code: &str) -> Answer<()> {
    if code.len() > limits::CODE {
        return invalid(format!("code is {} bytes; an action may have at most {}", code.len(), limits::CODE));
    }
    Ok(())
}

impl Actions {
    pub fn new(store: Arc<dyn Store>, kernel: Arc<Kernel>, runner: Arc<dyn ScriptRunner>) -> Actions {
        Actions { store, kernel, runner }
    }

    /// Merges what post-login actions set into the user's `app_metadata` and
    /// `user_metadata` (kept in `data`; `null` deletes a key), in one unit under the
    /// user's lock. Refused (with why) past Auth0's 32 KB for either.
    pub async fn merge_user_metadata(
        &self,
        tenant: TenantId,
        user: crate::ids::UserId,
        app: serde_json::Map<String, Value>,
        user_md: serde_json::Map<String, Value>,
        now: Timestamp,
    ) -> Result<Result<(), String>, CoreError> {
        retrying(|| async {
            let tx = self.store.begin().await?;
            tx.hold_limit(&format!("user-metadata:{user}")).await?;
            let Some(mut stored) = tx.get_user(tenant, user).await? else { return Ok(Ok(())) };
            for (field, changes) in [("app_metadata", &app), ("user_metadata", &user_md)] {
                if changes.is_empty() {
                    continue;
                }
                let mut merged = stored.data.get(field).and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in changes {
                    if v.is_null() {
                        merged.remove(k);
                    } else {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                let size = serde_json::to_string(&merged).map_or(usize::MAX, |t| t.len());
                if size > limits::METADATA {
                    return Ok(Err(format!(
                        "An action set {field} to {size} bytes; at most {} are kept.",
                        limits::METADATA
                    )));
                }
                stored.data.insert(field.to_owned(), Value::Object(merged));
            }
            stored.updated_at = now;
            tx.update_user(&stored).await?;
            tx.commit().await?;
            Ok(Ok(()))
        })
        .await
    }

    /// The `iss` of the tokens actions make (`api.redirect.encodeToken`).
    pub fn issuer(&self) -> &str {
        &self.kernel.policies.issuer
    }

    fn open_secrets(&self, a: &Action) -> Result<Vec<ActionSecret>, CoreError> {
        let plain = self.kernel.sealer.open(&a.sealed_secrets, &secrets_context(&a.id.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(format!("action {} secrets: {e}", a.id)))
    }

    fn seal_secrets(&self, id: ActionId, secrets: &[ActionSecret]) -> Result<String, CoreError> {
        let plain = serde_json::to_vec(secrets).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.kernel.sealer.seal(&plain, &secrets_context(&id.to_string()))
    }

    /// The secrets after `given`: the whole list is replaced; a secret given without a
    /// value keeps the value it had.
    fn merged_secrets(&self, old: &[ActionSecret], given: &[SecretInput], now: Timestamp) -> Answer<Vec<ActionSecret>> {
        if given.len() > limits::SECRETS_PER_ACTION {
            return invalid(format!("an action may have at most {} secrets", limits::SECRETS_PER_ACTION));
        }
        let mut out: Vec<ActionSecret> = Vec::new();
        for s in given {
            if s.name.is_empty() || s.name.chars().count() > limits::SECRET_NAME {
                return invalid(format!("a secret's name must be 1 to {} characters", limits::SECRET_NAME));
            }
            if out.iter().any(|o| o.name == s.name) {
                return invalid(format!("the secret '{}' is given twice", s.name));
            }
            let value = match (&s.value, old.iter().find(|o| o.name == s.name)) {
                (Some(v), _) => v.clone(),
                (None, Some(kept)) => kept.value.clone(),
                (None, None) => return invalid(format!("the secret '{}' needs a value", s.name)),
            };
            if value.chars().count() > limits::SECRET_VALUE {
                return invalid(format!("a secret's value may have at most {} characters", limits::SECRET_VALUE));
            }
            let unchanged = old.iter().find(|o| o.name == s.name && o.value == value);
            let updated_at = unchanged.map_or(now.millis(), |o| o.updated_at);
            out.push(ActionSecret { name: s.name.clone(), value, updated_at });
        }
        Ok(out)
    }

    async fn view(&self, action: Action) -> Answer<ActionView> {
        let secrets = self.open_secrets(&action)?.into_iter().map(|s| (s.name, s.updated_at)).collect();
        let deployed = match action.deployed_version {
            Some(v) => self.store.action_versions(action.id).await?.into_iter().find(|x| x.id == v),
            None => None,
        };
        Ok(ActionView { action, secrets, deployed })
    }

    async fn find(&self, tenant: TenantId, id: &str) -> Answer<Action> {
        let Ok(id) = id.parse::<ActionId>() else { return Err(ActionError::NotFound("action").into()) };
        self.store.action(tenant, id).await?.ok_or(ActionFailure::Action(ActionError::NotFound("action")))
    }

    pub async fn create(
        &self,
        tenant: TenantId,
        input: ActionInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<ActionView> {
        let Some(name) = input.name.as_deref() else { return invalid("name is required") };
        let name = check_name(name)?;
        let Some((trigger_id, trigger_version)) = input.trigger else {
            return invalid("supported_triggers must name one trigger");
        };
        let Some(trigger) = Trigger::parse(&trigger_id) else {
            return invalid(format!(
                "the trigger '{trigger_id}' is not supported; supported: post-login, send-phone-message, custom-phone-provider"
            ));
        };
        let code = input.code.unwrap_or_default();
        check_code(&code)?;
        let dependencies = input.dependencies.unwrap_or_default();
        check_dependencies(&dependencies)?;
        let id = ActionId::random();
        let secrets = self.merged_secrets(&[], input.secrets.as_deref().unwrap_or_default(), now)?;
        let action = Action {
            id,
            tenant_id: tenant,
            name,
            trigger,
            trigger_version,
            runtime: input.runtime.unwrap_or_else(|| RUNTIME.into()),
            code,
            dependencies,
            sealed_secrets: self.seal_secrets(id, &secrets)?,
            deployed_version: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_action(&action).await {
            Err(StoreError::Conflict(_)) => {
                return Err(ActionError::Conflict(format!("An action named '{}' already exists.", action.name)).into());
            }
            other => other?,
        }
        let detail = json!({"actionId": id.to_string(), "name": action.name, "trigger": trigger.id()});
        self.kernel.audit(AuditKind::ActionCreated, None, "success", &ctx.in_tenant(tenant), detail, now).await?;
        self.view(action).await
    }

    pub async fn get(&self, tenant: TenantId, id: &str) -> Answer<ActionView> {
        let action = self.find(tenant, id).await?;
        self.view(action).await
    }

    /// The tenant's actions, those for `trigger` only when given.
    pub async fn list(&self, tenant: TenantId, trigger: Option<&str>, name: Option<&str>) -> Answer<Vec<ActionView>> {
        let mut out = Vec::new();
        for a in self.store.actions(tenant).await? {
            if trigger.is_some_and(|t| a.trigger.id() != t) || name.is_some_and(|n| a.name != n) {
                continue;
            }
            out.push(self.view(a).await?);
        }
        Ok(out)
    }

    pub async fn update(
        &self,
        tenant: TenantId,
        id: &str,
        input: ActionInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<ActionView> {
        let mut action = self.find(tenant, id).await?;
        if let Some(name) = input.name.as_deref() {
            action.name = check_name(name)?;
        }
        if let Some((trigger, _)) = &input.trigger
            && trigger != action.trigger.id()
        {
            return invalid("an action's trigger cannot change; create another action");
        }
        if let Some(code) = input.code {
            check_code(&code)?;
            action.code = code;
        }
        if let Some(deps) = input.dependencies {
            check_dependencies(&deps)?;
            action.dependencies = deps;
        }
        if let Some(runtime) = input.runtime {
            action.runtime = runtime;
        }
        if let Some(given) = &input.secrets {
            let secrets = self.merged_secrets(&self.open_secrets(&action)?, given, now)?;
            action.sealed_secrets = self.seal_secrets(action.id, &secrets)?;
        }
        action.updated_at = now;
        match self.store.update_action(&action).await {
            Err(StoreError::Conflict(_)) => {
                return Err(ActionError::Conflict(format!("An action named '{}' already exists.", action.name)).into());
            }
            Ok(false) => return Err(ActionError::NotFound("action").into()),
            other => {
                other?;
            }
        }
        let detail = json!({"actionId": action.id.to_string(), "name": action.name});
        self.kernel.audit(AuditKind::ActionUpdated, None, "success", &ctx.in_tenant(tenant), detail, now).await?;
        self.view(action).await
    }

    /// Deletes an action no trigger runs; `force` unbinds it first (Auth0's `force`).
    pub async fn delete(
        &self,
        tenant: TenantId,
        id: &str,
        force: bool,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<()> {
        let action = self.find(tenant, id).await?;
        let outcome = retrying(|| async {
            let tx = self.store.begin().await?;
            tx.hold_limit(&format!("actions:{tenant}")).await?;
            if tx.action_is_bound(action.id).await? {
                if !force {
                    return Ok(Err(ActionError::Conflict(
                        "The action is bound to a trigger; unbind it first (or delete with force=true).".into(),
                    )));
                }
                let kept: Vec<TriggerBinding> = tx
                    .trigger_bindings(tenant, action.trigger)
                    .await?
                    .into_iter()
                    .filter(|b| b.action_id != action.id)
                    .collect();
                tx.replace_trigger_bindings(tenant, action.trigger, &kept).await?;
            }
            let gone = tx.delete_action(tenant, action.id).await?;
            let detail = json!({"actionId": action.id.to_string(), "name": action.name});
            let event =
                self.kernel.event(AuditKind::ActionDeleted, None, "success", &ctx.in_tenant(tenant), detail, now);
            self.kernel.auditor.record(&*tx, event).await?;
            tx.commit().await?;
            Ok(if gone { Ok(()) } else { Err(ActionError::NotFound("action")) })
        })
        .await?;
        Ok(outcome?)
    }

    /// Makes the next numbered version from `code`, and deploys it.
    async fn new_version(
        &self,
        action: &Action,
        source: Source<'_>,
        outcome: &'static str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<ActionVersion> {
        let Source { code, dependencies, runtime } = source;
        if let Err(problem) = self.runner.check(action.trigger, code).await {
            return Err(ActionError::Code(problem).into());
        }
        let tenant = action.tenant_id;
        let version = retrying(|| async {
            let tx = self.store.begin().await?;
            // Numbers are taken one deploy at a time, on every instance.
            tx.hold_limit(&format!("action-versions:{}", action.id)).await?;
            let Some(current) = tx.action(tenant, action.id).await? else { return Ok(None) };
            let number = tx.action_versions(action.id).await?.first().map_or(1, |v| v.number + 1);
            let version = ActionVersion {
                id: ActionVersionId::random(),
                action_id: action.id,
                number,
                code: code.to_owned(),
                dependencies: dependencies.to_vec(),
                runtime: runtime.to_owned(),
                created_at: now,
            };
            tx.insert_action_version(&version).await?;
            tx.update_action(&Action { deployed_version: Some(version.id), updated_at: now, ..current }).await?;
            let detail = json!({"actionId": action.id.to_string(), "version": number});
            let event =
                self.kernel.event(AuditKind::ActionDeployed, None, outcome, &ctx.in_tenant(tenant), detail, now);
            self.kernel.auditor.record(&*tx, event).await?;
            tx.commit().await?;
            Ok(Some(version))
        })
        .await?;
        version.ok_or(ActionFailure::Action(ActionError::NotFound("action")))
    }

    /// Deploys the draft as a new version, once its code loads.
    pub async fn deploy(
        &self,
        tenant: TenantId,
        id: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<ActionVersion> {
        let action = self.find(tenant, id).await?;
        let draft = action.clone();
        let source = Source { code: &draft.code, dependencies: &draft.dependencies, runtime: &draft.runtime };
        self.new_version(&action, source, "deployed", ctx, now).await
    }

    /// Deploys a copy of an older version as the newest (Auth0's roll back).
    pub async fn redeploy(
        &self,
        tenant: TenantId,
        id: &str,
        version: &str,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<ActionVersion> {
        let action = self.find(tenant, id).await?;
        let old = self.version(tenant, id, version).await?;
        let source = Source { code: &old.code, dependencies: &old.dependencies, runtime: &old.runtime };
        self.new_version(&action, source, "rolled_back", ctx, now).await
    }

    pub async fn versions(&self, tenant: TenantId, id: &str) -> Answer<Vec<ActionVersion>> {
        let action = self.find(tenant, id).await?;
        Ok(self.store.action_versions(action.id).await?)
    }

    pub async fn version(&self, tenant: TenantId, id: &str, version: &str) -> Answer<ActionVersion> {
        let action = self.find(tenant, id).await?;
        let found = self.store.action_versions(action.id).await?.into_iter().find(|v| v.id.to_string() == version);
        found.ok_or(ActionFailure::Action(ActionError::NotFound("version")))
    }

    pub async fn bindings(&self, tenant: TenantId, trigger: &str) -> Answer<Vec<(TriggerBinding, ActionView)>> {
        let Some(trigger) = Trigger::parse(trigger) else { return Err(ActionError::NotFound("trigger").into()) };
        let mut out = Vec::new();
        for b in self.store.trigger_bindings(tenant, trigger).await? {
            if let Some(a) = self.store.action(tenant, b.action_id).await? {
                out.push((b, self.view(a).await?));
            }
        }
        Ok(out)
    }

    /// Replaces the trigger's actions, in the order given. Each must be an action for
    /// this trigger that has a deployed version.
    pub async fn bind(
        &self,
        tenant: TenantId,
        trigger: &str,
        refs: Vec<(ActionRef, Option<String>)>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Answer<Vec<(TriggerBinding, ActionView)>> {
        let Some(trigger) = Trigger::parse(trigger) else { return Err(ActionError::NotFound("trigger").into()) };
        if refs.len() > limits::BINDINGS_PER_TRIGGER {
            return invalid(format!("a trigger may run at most {} actions", limits::BINDINGS_PER_TRIGGER));
        }
        let all = self.store.actions(tenant).await?;
        let mut bindings = Vec::new();
        for (r, display) in refs {
            let found = match &r {
                ActionRef::Id(id) => all.iter().find(|a| a.id.to_string() == *id),
                ActionRef::Name(name) => all.iter().find(|a| a.name == *name),
            };
            let Some(a) = found else {
                let which = match r {
                    ActionRef::Id(v) | ActionRef::Name(v) => v,
                };
                return invalid(format!("no action '{which}'"));
            };
            if a.trigger != trigger {
                return invalid(format!("the action '{}' is for {}, not {}", a.name, a.trigger.id(), trigger.id()));
            }
            if a.deployed_version.is_none() {
                return invalid(format!("the action '{}' has not been deployed", a.name));
            }
            if bindings.iter().any(|b: &TriggerBinding| b.action_id == a.id) {
                return invalid(format!("the action '{}' is bound twice", a.name));
            }
            bindings.push(TriggerBinding {
                id: uuid::Uuid::new_v4().to_string(),
                action_id: a.id,
                display_name: display.unwrap_or_else(|| a.name.clone()),
                created_at: now,
            });
        }
        retrying(|| async {
            let tx = self.store.begin().await?;
            tx.hold_limit(&format!("actions:{tenant}")).await?;
            tx.replace_trigger_bindings(tenant, trigger, &bindings).await?;
            let names: Vec<String> = bindings.iter().map(|b| b.display_name.clone()).collect();
            let detail = json!({"trigger": trigger.id(), "actions": names});
            let event = self.kernel.event(
                AuditKind::ActionBindingsUpdated,
                None,
                "success",
                &ctx.in_tenant(tenant),
                detail,
                now,
            );
            self.kernel.auditor.record(&*tx, event).await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
        self.bindings(tenant, trigger.id()).await
    }

    /// Runs the draft against `event` (Auth0's Test): the `api` calls it made and its logs.
    pub async fn test(&self, tenant: TenantId, id: &str, event: Value, now: Timestamp) -> Answer<TestRun> {
        let action = self.find(tenant, id).await?;
        let secrets = self.open_secrets(&action)?;
        let execution = Execution {
            trigger: action.trigger,
            handler: action.trigger.handler(),
            code: Arc::from(action.code.as_str()),
            event,
            secrets: secrets.into_iter().map(|s| (s.name, Secret::new(s.value))).collect(),
            api_data: json!({"canRedirect": true, "issuer": self.kernel.policies.issuer, "state": "test",
                             "now": now.millis()}),
        };
        Ok(TestRun { outcome: self.runner.run(execution).await })
    }

    pub async fn execution(&self, tenant: TenantId, id: &str) -> Answer<ExecutionRecord> {
        let Ok(id) = id.parse::<ExecutionId>() else { return Err(ActionError::NotFound("execution").into()) };
        self.store.execution(tenant, id).await?.ok_or(ActionFailure::Action(ActionError::NotFound("execution")))
    }

    /// Runs the trigger's bound actions in order with `event` (each sees the event as
    /// the ones before it left `transaction.metadata`), stopping at the first that
    /// fails or that `stops` says ends the flow. The run is recorded as an execution.
    pub async fn run_trigger(
        &self,
        tenant: TenantId,
        call: TriggerCall,
        stops: impl Fn(&Executed) -> bool + Send,
        now: Timestamp,
    ) -> Result<TriggerRun, CoreError> {
        let bound = self.bound(tenant, call.trigger).await?;
        self.run_bound(tenant, bound, call, stops, now).await
    }

    /// The trigger's bound actions, in order, with their deployed code.
    pub async fn bound(&self, tenant: TenantId, trigger: Trigger) -> Result<Vec<BoundAction>, CoreError> {
        Ok(self.store.bound_actions(tenant, trigger).await?)
    }

    /// [`Actions::run_trigger`] with the bound actions already read.
    pub async fn run_bound(
        &self,
        tenant: TenantId,
        bound: Vec<BoundAction>,
        call: TriggerCall,
        stops: impl Fn(&Executed) -> bool + Send,
        now: Timestamp,
    ) -> Result<TriggerRun, CoreError> {
        let TriggerCall { trigger, handler, mut event, api_data, resume_at } = call;
        let mut run = TriggerRun { id: ExecutionId::random(), ran: Vec::new(), failure: None };
        if bound.is_empty() {
            return Ok(run);
        }
        let mut results = Vec::new();
        let start = resume_at.unwrap_or(0);
        for (position, b) in bound.into_iter().enumerate().skip(start) {
            // A resumed flow goes on in the action that left it (`onContinuePostLogin`).
            let handler = match (resume_at, trigger.resume_handler()) {
                (Some(at), Some(resume)) if at == position => resume,
                _ => handler,
            };
            let plain =
                self.kernel.sealer.open(&b.sealed_secrets, &secrets_context(&b.version.action_id.to_string()))?;
            let secrets: Vec<ActionSecret> =
                serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(e.to_string()))?;
            let execution = Execution {
                trigger,
                handler,
                code: Arc::from(b.version.code.as_str()),
                event: event.clone(),
                secrets: secrets.into_iter().map(|s| (s.name, Secret::new(s.value))).collect(),
                api_data: api_data.clone(),
            };
            let outcome = self.runner.run(execution).await;
            let (logs, error, took) = match &outcome {
                Ok(done) => (done.logs.clone(), None, done.took),
                Err(f) => (f.logs().to_vec(), Some(f.description()), std::time::Duration::ZERO),
            };
            let took_ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
            results.push(ActionResult {
                action_name: b.name.clone(),
                action_id: b.version.action_id.to_string(),
                error: error.clone(),
                logs: logs.iter().map(|l| format!("{}: {}", l.level.as_str(), l.message)).collect(),
                started_at: now.millis(),
                ended_at: now.millis() + took_ms,
            });
            match outcome {
                Ok(done) => {
                    for call in &done.calls {
                        if call.name == "transaction.setMetadata"
                            && let (Some(k), Some(v)) = (call.args.first().and_then(Value::as_str), call.args.get(1))
                        {
                            event["transaction"]["metadata"][k] = v.clone();
                        }
                    }
                    let stop = stops(&done);
                    run.ran.push(Ran { position, name: b.name, done });
                    if stop {
                        break;
                    }
                }
                Err(f) => {
                    run.failure = Some((b.name, f));
                    break;
                }
            }
        }
        let status = if run.failure.is_some() { "partial" } else { "final" };
        let record =
            ExecutionRecord { id: run.id, tenant_id: tenant, trigger, status: status.into(), results, created_at: now };
        self.store.insert_execution(&record).await?;
        Ok(run)
    }
}

/// What code a new version is made of.
struct Source<'a> {
    code: &'a str,
    dependencies: &'a [Dependency],
    runtime: &'a str,
}

/// A run of a trigger's actions: which function of each, with what.
#[derive(Clone, Debug)]
pub struct TriggerCall {
    pub trigger: Trigger,
    pub handler: &'static str,
    pub event: Value,
    pub api_data: Value,
    /// Resume at this position (a redirected post-login flow coming back).
    pub resume_at: Option<usize>,
}

/// One action of a trigger's run that finished: where it is in the flow and what it did.
#[derive(Debug)]
pub struct Ran {
    pub position: usize,
    pub name: String,
    pub done: Executed,
}

/// What a run of a trigger's actions did: each action's calls, in order, and the
/// failure that ended it, if one did.
#[derive(Debug)]
pub struct TriggerRun {
    pub id: ExecutionId,
    pub ran: Vec<Ran>,
    pub failure: Option<(String, ScriptFailure)>,
}
