//! What every service shares, and nothing more: the sealer, the policies, the auditor
//! and the tenant a request that names none acts in. Services hold an `Arc<Kernel>`
//! beside the store traits they use.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::{EventHook, Policies, RequestContext};
use crate::audit::{AuditEvent, AuditKind};
use crate::ids::UserId;
use crate::seal::Sealer;
use crate::store::{AuditStore, Store, StoreError, Tenant};
use crate::{CoreError, Timestamp};

pub struct Kernel {
    pub sealer: Sealer,
    pub policies: Policies,
    pub auditor: Auditor,
    /// The tenant this server serves: what a request that names none (a hosted page
    /// before its sign-in, a webhook, the configuration file) acts in.
    pub tenant: Tenant,
}

/// Writes audit events and counts them in metrics (through the event hook).
pub struct Auditor {
    store: Arc<dyn AuditStore>,
    on_event: Option<EventHook>,
}

impl Auditor {
    pub fn new(store: Arc<dyn AuditStore>, on_event: Option<EventHook>) -> Auditor {
        Auditor { store, on_event }
    }

    /// Counts an event in metrics without writing it to the audit log.
    pub fn count(&self, kind: AuditKind, outcome: &'static str) {
        if let Some(hook) = &self.on_event {
            hook(kind, outcome);
        }
    }

    /// Writes an event on its own (not part of a unit of work) and counts it.
    pub async fn write(&self, event: AuditEvent) -> Result<(), CoreError> {
        self.store.append_audit(&event).await?;
        self.count(event.kind, event.outcome);
        Ok(())
    }

    /// Appends the event through `tx` (a unit of work, so it commits with the change it
    /// describes) and counts it once that commits.
    pub async fn record(&self, tx: &dyn Store, event: AuditEvent) -> Result<(), CoreError> {
        tx.append_audit(&event).await?;
        if let Some(hook) = &self.on_event {
            let (hook, kind, outcome) = (hook.clone(), event.kind, event.outcome);
            tx.after_commit(Box::new(move || hook(kind, outcome)));
        }
        Ok(())
    }
}

impl Kernel {
    /// An audit event of the request's tenant (or, for a request that named none, the
    /// tenant this server serves), by the request's actor.
    pub fn event(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        outcome: &'static str,
        ctx: &RequestContext,
        detail: Value,
        now: Timestamp,
    ) -> AuditEvent {
        AuditEvent {
            tenant_id: ctx.tenant.unwrap_or(self.tenant.id),
            at: now,
            kind,
            user_id,
            actor: ctx.actor,
            ip: ctx.ip.clone(),
            outcome,
            detail,
        }
    }

    /// Writes and counts an event of the request.
    pub async fn audit(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        outcome: &'static str,
        ctx: &RequestContext,
        detail: Value,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.auditor.write(self.event(kind, user_id, outcome, ctx, detail, now)).await
    }
}

/// How many times a unit of work is run when concurrent transactions keep colliding.
const UNIT_ATTEMPTS: usize = 3;

/// Runs `unit`, a whole unit of work from `begin` to `commit`, again when the database
/// says it collided with a concurrent one (`StoreError::Busy`: a deadlock, a
/// serialization failure), up to [`UNIT_ATTEMPTS`] times: nothing of it happened.
/// Only for units whose every effect is in the database: nothing may be sent or
/// called before the commit.
pub async fn retrying<T, F, Fut>(unit: F) -> Result<T, CoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, CoreError>>,
{
    let mut attempt = 1;
    loop {
        match unit().await {
            Err(CoreError::Store(StoreError::Busy(detail))) if attempt < UNIT_ATTEMPTS => {
                tracing::debug!(%detail, attempt, "a unit of work collided with another; running it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}
