//! Flows as use cases: import (validated), bind numbers, start runs from inbound
//! messages, execute them step by step with every step saved, and fail runs a restart
//! interrupted rather than lose them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::flows::{self, Flow, FlowEffects, MAX_STEPS};
use crate::ids::TenantId;
use crate::phone::PhoneNumber;
use crate::seal::Sealer;
use crate::store::{Binding, FlowRun, FlowStore, StoreError, StoredFlow};
use crate::validation::ValidationErrors;
use crate::verify::new_sid;
use crate::{CoreError, Timestamp};

/// Studio flows, the one service for them: import, numbers, runs. It takes only the
/// flow store, and every read is scoped to the tenant asking (a flow or run of another
/// tenant is not found).
#[derive(Clone)]
pub struct Flows {
    store: Arc<dyn FlowStore>,
    sealer: Sealer,
}

impl Flows {
    pub fn new(store: Arc<dyn FlowStore>, sealer: Sealer) -> Flows {
        Flows { store, sealer }
    }

    /// Validates and stores a Studio flow definition (sealed: see [`sealed_definition`]),
    /// with its number bound in the same transaction: bad input or a refused move leaves
    /// nothing behind.
    pub async fn import(
        &self,
        tenant: TenantId,
        definition: Value,
        name: Option<String>,
        number: Option<NumberRequest<'_>>,
        now: Timestamp,
    ) -> Result<StoredFlow, CoreError> {
        Flow::parse(&definition)?;
        let number = number.map(|n| parse_number(n.number).map(|p| (p, n.move_from_other))).transpose()?;
        let friendly_name = name
            .or_else(|| definition.get("description").and_then(Value::as_str).map(str::to_owned))
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "Flow".into());
        let stored = StoredFlow { sid: new_sid("FW")?, tenant_id: tenant, friendly_name, definition, created_at: now };
        let binding = number.as_ref().map(|(p, m)| Binding { number: p.as_str().to_owned(), move_from_other: *m });
        if let Err(e) = self.store.insert_flow(&sealed_definition(&stored, &self.sealer)?, binding.as_ref()).await {
            return Err(match &number {
                Some((p, _)) => explain_conflict(&*self.store, tenant, p, e).await,
                None => e.into(),
            });
        }
        Ok(stored)
    }

    pub async fn get(&self, tenant: TenantId, sid: &str) -> Result<Option<StoredFlow>, CoreError> {
        self.store.flow(tenant, sid).await?.map(|f| opened_flow(f, &self.sealer)).transpose()
    }

    pub async fn list(&self, tenant: TenantId) -> Result<Vec<StoredFlow>, CoreError> {
        self.store.flows(tenant).await?.into_iter().map(|f| opened_flow(f, &self.sealer)).collect()
    }

    /// False when the tenant has no such flow.
    pub async fn delete(&self, tenant: TenantId, sid: &str) -> Result<bool, CoreError> {
        Ok(self.store.delete_flow(tenant, sid).await?)
    }

    /// A flow's latest runs, contexts opened; `NotFound` for another tenant's flow.
    pub async fn runs(&self, tenant: TenantId, flow_sid: &str, limit: u64) -> Result<Vec<FlowRun>, CoreError> {
        self.store.flow(tenant, flow_sid).await?.ok_or(CoreError::NotFound)?;
        self.store.runs(flow_sid, limit).await?.into_iter().map(|r| opened(r, &self.sealer)).collect()
    }

    /// One run, its context opened; `NotFound` for a run of another tenant's flow.
    pub async fn run(&self, tenant: TenantId, run_sid: &str) -> Result<FlowRun, CoreError> {
        let run = opened(self.store.run(run_sid).await?.ok_or(CoreError::NotFound)?, &self.sealer)?;
        self.store.flow(tenant, &run.flow_sid).await?.ok_or(CoreError::NotFound)?;
        Ok(run)
    }

    /// The flow bound to an inbound message's number.
    pub async fn for_number(&self, number: &str) -> Result<Option<StoredFlow>, CoreError> {
        self.store.flow_for_number(number).await?.map(|f| opened_flow(f, &self.sealer)).transpose()
    }

    pub async fn bind_number(
        &self,
        tenant: TenantId,
        flow_sid: &str,
        request: NumberRequest<'_>,
    ) -> Result<PhoneNumber, CoreError> {
        let number = parse_number(request.number)?;
        self.store.flow(tenant, flow_sid).await?.ok_or(CoreError::NotFound)?;
        let binding = Binding { number: number.as_str().to_owned(), move_from_other: request.move_from_other };
        if let Err(e) = self.store.bind_number(tenant, flow_sid, &binding).await {
            return Err(explain_conflict(&*self.store, tenant, &number, e).await);
        }
        Ok(number)
    }

    /// The numbers bound to one flow, or (`None`) every binding of the tenant as
    /// (number, flow sid).
    pub async fn bindings(&self, tenant: TenantId, flow_sid: Option<&str>) -> Result<Vec<(String, String)>, CoreError> {
        Ok(self.store.bindings(tenant, flow_sid).await?)
    }

    /// The common case as one step: every SMS to `number` posted to a Slack webhook, or
    /// (with `redact`) only the code found in it.
    pub async fn forward_to_slack(
        &self,
        tenant: TenantId,
        number: NumberRequest<'_>,
        webhook: &str,
        redact: bool,
        now: Timestamp,
    ) -> Result<StoredFlow, CoreError> {
        if !(webhook.starts_with("https://") || webhook.starts_with("http://")) {
            return Err(ValidationErrors::field("webhook", "invalid", "The [webhook] must be an http(s) URL.").into());
        }
        let text = if redact { "{{trigger.message.Code}}" } else { "{{trigger.message.Body}}" };
        let definition = json!({
            "description": format!("Forward SMS to {} to Slack", number.number),
            "states": [
                {"name": "Trigger", "type": "trigger", "properties": {"offset": {"x": 0, "y": 0}},
                 "transitions": [{"event": "incomingMessage", "next": "post_to_slack"}, {"event": "incomingCall"}, {"event": "incomingRequest"}]},
                {"name": "post_to_slack", "type": "make-http-request",
                 "properties": {"offset": {"x": 0, "y": 200}, "method": "POST", "content_type": "application/json;charset=utf-8",
                                "body": format!("{{\"text\": \"{text}\"}}"), "url": webhook},
                 "transitions": [{"event": "success"}, {"event": "failed"}]}
            ],
            "initial_state": "Trigger",
            "flags": {"allow_concurrent_calls": true}
        });
        self.import(tenant, definition, None, Some(number), now).await
    }

    /// A run for an inbound message, saved before anything is done.
    pub async fn start_run(
        &self,
        flow: &StoredFlow,
        message: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<FlowRun, CoreError> {
        let parsed = Flow::parse(&flow.definition)?;
        let run = FlowRun {
            sid: new_sid("FN")?,
            flow_sid: flow.sid.clone(),
            status: "running".into(),
            current: Some(parsed.initial.clone()),
            context: flows::message_context(&flow.sid, message),
            steps: Vec::new(),
            created_at: now,
            updated_at: now,
            lease_until: Some(now.plus(RUN_LEASE)),
        };
        self.store.insert_run(&sealed(&run, &self.sealer)?).await?;
        Ok(run)
    }

    /// Runs a saved run to its end, saving after each step.
    pub async fn execute_run(
        &self,
        tenant: TenantId,
        run_sid: &str,
        effects: &dyn FlowEffects,
        now: &(dyn Fn() -> Timestamp + Send + Sync),
    ) -> Result<FlowRun, CoreError> {
        let mut run = opened(self.store.run(run_sid).await?.ok_or(CoreError::NotFound)?, &self.sealer)?;
        let stored = self.get(tenant, &run.flow_sid).await?;
        let flow = match stored.map(|f| Flow::parse(&f.definition)) {
            Some(Ok(f)) => f,
            _ => {
                run.status = "failed".into();
                run.steps.push(json!({"error": "the flow was removed or no longer validates"}));
                run.current = None;
                run.updated_at = now();
                save(&*self.store, &mut run, &self.sealer).await?;
                return Ok(run);
            }
        };
        while let Some(current) = run.current.clone() {
            if run.steps.len() >= MAX_STEPS {
                run.status = "failed".into();
                run.steps.push(json!({"error": format!("more than {MAX_STEPS} steps: the flow loops")}));
                run.current = None;
                break;
            }
            let (record, next) = flows::step(&flow, tenant, &current, &mut run.context, effects).await;
            let failed = record.event == "failed" && next.is_none();
            run.steps.push(record.to_json());
            run.current = next;
            if run.current.is_none() {
                run.status = if failed { "failed" } else { "ended" }.into();
            }
            run.updated_at = now();
            save(&*self.store, &mut run, &self.sealer).await?;
        }
        if run.status == "running" {
            run.status = "ended".into();
        }
        run.updated_at = now();
        save(&*self.store, &mut run, &self.sealer).await?;
        Ok(run)
    }

    /// Runs whose instance stopped or died mid-way (their lease ran out) are marked failed,
    /// with why. At start and periodically; a run another live instance is executing keeps
    /// its lease and is left alone.
    pub async fn fail_interrupted_runs(&self, now: Timestamp) -> Result<usize, CoreError> {
        let mut failed = 0;
        for mut run in self.store.abandoned_runs(now).await? {
            run.status = "failed".into();
            run.steps.push(json!({"error": "interrupted: the instance running it stopped", "state": run.current}));
            run.current = None;
            run.updated_at = now;
            if self.store.fail_abandoned_run(&run, now).await? {
                failed += 1;
            }
        }
        Ok(failed)
    }
}

/// A number to bind to a flow, as the caller gave it; `move_from_other` allows taking it
/// from the flow it is bound to now (never done silently).
pub struct NumberRequest<'a> {
    pub number: &'a str,
    pub move_from_other: bool,
}

fn parse_number(number: &str) -> Result<PhoneNumber, CoreError> {
    PhoneNumber::parse(number)
        .map_err(|e| ValidationErrors::field("number", "invalid", format!("The [number] is {e}.")).into())
}

/// A refused move, in words that say which flow has the number and how to move it.
async fn explain_conflict(store: &dyn FlowStore, tenant: TenantId, number: &PhoneNumber, e: StoreError) -> CoreError {
    if !matches!(&e, StoreError::Conflict(f) if f == "number") {
        return e.into();
    }
    let holder = store
        .bindings(tenant, None)
        .await
        .ok()
        .and_then(|b| b.into_iter().find(|(n, _)| n == number.as_str()).map(|(_, flow)| format!("flow {flow}")));
    let msg = format!(
        "The number {} is bound to {} already; ask to move it (\"moveNumber\": true, or --move).",
        number.as_str(),
        holder.unwrap_or_else(|| "another tenant's flow".into())
    );
    ValidationErrors::field("number", "inUse", msg).into()
}

/// What a flow's definition is sealed under: its sid, so a sealed definition cannot be
/// moved to another flow (or taken for a run's context).
pub fn definition_context(flow_sid: &str) -> Vec<u8> {
    format!("flow:{flow_sid}").into_bytes()
}

/// A definition holds credentials as plain parts of its JSON (a Slack webhook URL, an
/// `Authorization` header, a token in a query string or a body template), wherever the
/// author put them; so the whole definition is sealed at rest, as messenger credentials
/// are.
fn sealed_definition(flow: &StoredFlow, sealer: &Sealer) -> Result<StoredFlow, CoreError> {
    let mut f = flow.clone();
    let sealed = sealer.seal(flow.definition.to_string().as_bytes(), &definition_context(&flow.sid))?;
    f.definition = json!({ SEALED: sealed });
    Ok(f)
}

/// A flow as stored, with its definition opened (one stored before definitions were
/// sealed is returned as it is; `tessera reseal` seals it).
pub fn opened_flow(mut flow: StoredFlow, sealer: &Sealer) -> Result<StoredFlow, CoreError> {
    if let Some(s) = sealed_part(&flow.definition) {
        let plain = sealer.open(s, &definition_context(&flow.sid))?;
        flow.definition =
            serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(format!("flow definition: {e}")))?;
    }
    Ok(flow)
}

/// The sealed text of a stored definition or run context, if it is sealed.
pub fn sealed_part(stored: &Value) -> Option<&str> {
    stored.as_object().filter(|o| o.len() == 1).and_then(|o| o.get(SEALED)).and_then(Value::as_str)
}

const SEALED: &str = "sealed";

/// A run's context holds the message that started it (often a one-time code, which is
/// what forwarding flows are for) and what HTTP steps answered: sealed at rest.
fn sealed(run: &FlowRun, sealer: &Sealer) -> Result<FlowRun, CoreError> {
    let mut r = run.clone();
    r.context = json!({ SEALED: sealer.seal(run.context.to_string().as_bytes(), run.sid.as_bytes())? });
    Ok(r)
}

/// A run as stored, with its context opened.
pub fn opened(mut run: FlowRun, sealer: &Sealer) -> Result<FlowRun, CoreError> {
    if let Some(s) = sealed_part(&run.context) {
        let plain = sealer.open(s, run.sid.as_bytes())?;
        run.context =
            serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(format!("flow run context: {e}")))?;
    }
    Ok(run)
}

/// How long an instance holds a running run without saving a step. Every step (one
/// HTTP call at most, bounded by its timeouts and retries) renews it; another instance
/// fails the run only once it ran out.
pub const RUN_LEASE: Duration = Duration::from_secs(120);

/// Saves the run, renewing its lease while it runs.
async fn save(store: &dyn FlowStore, run: &mut FlowRun, sealer: &Sealer) -> Result<(), CoreError> {
    run.lease_until = (run.status == "running").then(|| run.updated_at.plus(RUN_LEASE));
    Ok(store.update_run(&sealed(run, sealer)?).await?)
}
