use std::time::Duration;

use tessera_core::actions::{
    Action, ActionResult, ActionVersion, Dependency, ExecutionRecord, Trigger, TriggerBinding,
};
use tessera_core::ids::{ActionId, ActionVersionId, ExecutionId, TenantId};
use tessera_core::store::{ActionStore, StoreError, TwoFactorStore};

use crate::support::*;

fn action(tenant: TenantId, name: &str, trigger: Trigger) -> Action {
    Action {
        id: ActionId::random(),
        tenant_id: tenant,
        name: name.into(),
        trigger,
        trigger_version: "v3".into(),
        runtime: "node22".into(),
        code: "exports.onExecutePostLogin = async () => {};".into(),
        dependencies: vec![Dependency { name: "axios".into(), version: "1.7.0".into() }],
        sealed_secrets: "sealed".into(),
        deployed_version: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn version(a: &Action, number: u32) -> ActionVersion {
    ActionVersion {
        id: ActionVersionId::random(),
        action_id: a.id,
        number,
        code: format!("// v{number}\n{}", a.code),
        dependencies: a.dependencies.clone(),
        runtime: a.runtime.clone(),
        created_at: T0.plus(Duration::from_secs(u64::from(number))),
    }
}

fn bound(a: &Action, name: &str) -> TriggerBinding {
    TriggerBinding { id: format!("b-{name}"), action_id: a.id, display_name: name.into(), created_at: T0 }
}

contract!(actions_round_trip_and_names_are_unique_per_tenant, |c| {
    let a = action(c.tenant, "risk", Trigger::PostLogin);
    c.store.insert_action(&a).await.unwrap();
    assert_eq!(c.store.action(c.tenant, a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(c.store.action(TenantId::random(), a.id).await.unwrap(), None, "another tenant sees nothing");
    let twin = c.store.insert_action(&action(c.tenant, "risk", Trigger::SendPhoneMessage)).await;
    assert!(matches!(twin, Err(StoreError::Conflict(_))), "{twin:?}");
    c.store.insert_action(&action(TenantId::random(), "risk", Trigger::PostLogin)).await.unwrap();

    let mut changed = a.clone();
    changed.code = "exports.onExecutePostLogin = () => 1;".into();
    changed.sealed_secrets = "resealed".into();
    changed.updated_at = T0.plus(Duration::from_secs(5));
    assert!(c.store.update_action(&changed).await.unwrap());
    assert_eq!(c.store.actions(c.tenant).await.unwrap(), [changed.clone()]);

    c.store.insert_action_version(&version(&a, 1)).await.unwrap();
    assert!(c.store.delete_action(c.tenant, a.id).await.unwrap());
    assert!(!c.store.delete_action(c.tenant, a.id).await.unwrap());
    assert!(c.store.action_versions(a.id).await.unwrap().is_empty(), "its versions went with it");
});

contract!(versions_are_numbered_once_and_only_deployed_bound_actions_run_in_order, |c| {
    let (first, second, idle) = (
        action(c.tenant, "first", Trigger::PostLogin),
        action(c.tenant, "second", Trigger::PostLogin),
        action(c.tenant, "idle", Trigger::PostLogin),
    );
    for a in [&first, &second, &idle] {
        c.store.insert_action(a).await.unwrap();
    }
    let (v1, v2) = (version(&first, 1), version(&first, 2));
    c.store.insert_action_version(&v1).await.unwrap();
    c.store.insert_action_version(&v2).await.unwrap();
    let again = c.store.insert_action_version(&version(&first, 2)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "a number is taken once: {again:?}");
    assert_eq!(c.store.action_versions(first.id).await.unwrap(), [v2.clone(), v1.clone()], "newest first");

    let s1 = version(&second, 1);
    c.store.insert_action_version(&s1).await.unwrap();
    for (a, v) in [(&first, &v1), (&second, &s1)] {
        c.store.update_action(&Action { deployed_version: Some(v.id), ..a.clone() }).await.unwrap();
    }
    let order = [bound(&second, "second"), bound(&first, "first"), bound(&idle, "idle")];
    c.store.replace_trigger_bindings(c.tenant, Trigger::PostLogin, &order).await.unwrap();
    assert_eq!(c.store.trigger_bindings(c.tenant, Trigger::PostLogin).await.unwrap(), order);
    assert!(c.store.trigger_bindings(c.tenant, Trigger::SendPhoneMessage).await.unwrap().is_empty());
    let runs = c.store.bound_actions(c.tenant, Trigger::PostLogin).await.unwrap();
    let ran: Vec<(&str, u32)> = runs.iter().map(|b| (b.name.as_str(), b.version.number)).collect();
    assert_eq!(ran, [("second", 1), ("first", 1)], "in order, the deployed version, never an undeployed action");
    assert!(c.store.action_is_bound(idle.id).await.unwrap());

    c.store.replace_trigger_bindings(c.tenant, Trigger::PostLogin, &[bound(&first, "first")]).await.unwrap();
    assert!(!c.store.action_is_bound(second.id).await.unwrap(), "the list is replaced, not appended to");
});

contract!(executions_are_kept_per_tenant, |c| {
    let e = ExecutionRecord {
        id: ExecutionId::random(),
        tenant_id: c.tenant,
        trigger: Trigger::PostLogin,
        status: "partial".into(),
        results: vec![ActionResult {
            action_name: "risk".into(),
            action_id: "a1".into(),
            error: Some("boom".into()),
            logs: vec!["checking".into()],
            started_at: 1,
            ended_at: 2,
        }],
        created_at: T0,
    };
    c.store.insert_execution(&e).await.unwrap();
    assert_eq!(c.store.execution(c.tenant, e.id).await.unwrap(), Some(e.clone()));
    assert_eq!(c.store.execution(TenantId::random(), e.id).await.unwrap(), None);

    // Kept ten days, then purged with the other expired records.
    let day = Duration::from_secs(24 * 3600);
    c.store.purge_expired(T0.plus(day * 10), T0).await.unwrap();
    assert!(c.store.execution(c.tenant, e.id).await.unwrap().is_some(), "ten days old: kept");
    c.store.purge_expired(T0.plus(day * 10).plus(Duration::from_secs(1)), T0).await.unwrap();
    assert_eq!(c.store.execution(c.tenant, e.id).await.unwrap(), None, "older: purged");
});
