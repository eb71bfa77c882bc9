use tessera_core::store::{Binding, FlowRun, FlowStore, StoreError, StoredFlow};

use crate::support::*;

fn flow(c: &Ctx, sid: &str) -> StoredFlow {
    StoredFlow {
        sid: sid.into(),
        tenant_id: c.tenant,
        friendly_name: "f".into(),
        definition: serde_json::json!({"sealed": "x"}),
        created_at: T0,
    }
}

fn number(n: &str, move_from_other: bool) -> Binding {
    Binding { number: n.into(), move_from_other }
}

contract!(numbers_move_only_when_asked_and_a_refused_import_leaves_nothing, |c| {
    c.store.insert_flow(&flow(&c, "FWa"), Some(&number("+15550001111", false))).await.unwrap();
    let taken = c.store.insert_flow(&flow(&c, "FWb"), Some(&number("+15550001111", false))).await;
    assert!(matches!(taken, Err(StoreError::Conflict(ref f)) if f == "number"), "{taken:?}");
    assert!(c.store.flow(c.tenant, "FWb").await.unwrap().is_none(), "the refused import left no flow");
    c.store.insert_flow(&flow(&c, "FWc"), None).await.unwrap();
    let refused = c.store.bind_number(c.tenant, "FWc", &number("+15550001111", false)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    c.store.bind_number(c.tenant, "FWa", &number("+15550001111", false)).await.unwrap();
    c.store.bind_number(c.tenant, "FWc", &number("+15550001111", true)).await.unwrap();
    assert_eq!(c.store.bindings(c.tenant, None).await.unwrap(), [("+15550001111".to_owned(), "FWc".to_owned())]);
    assert!(c.store.bindings(c.tenant, Some("FWa")).await.unwrap().is_empty());
});

contract!(only_runs_whose_lease_ran_out_are_abandoned, |c| {
    c.store.insert_flow(&flow(&c, "FWa"), None).await.unwrap();
    let run = |sid: &str, lease: Option<i64>| FlowRun {
        sid: sid.into(),
        flow_sid: "FWa".into(),
        status: "running".into(),
        current: Some("Trigger".into()),
        context: serde_json::json!({}),
        steps: vec![],
        created_at: T0,
        updated_at: T0,
        lease_until: lease.map(tessera_core::Timestamp::from_millis),
    };
    let at = |ms: i64| tessera_core::Timestamp::from_millis(T0.millis() + ms);
    c.store.insert_run(&run("FNlive", Some(at(60_000).millis()))).await.unwrap();
    c.store.insert_run(&run("FNgone", Some(at(-1).millis()))).await.unwrap();
    c.store.insert_run(&run("FNold", None)).await.unwrap();
    let mut abandoned: Vec<String> = c.store.abandoned_runs(T0).await.unwrap().into_iter().map(|r| r.sid).collect();
    abandoned.sort();
    assert_eq!(abandoned, ["FNgone", "FNold"]);
    let failed = FlowRun { status: "failed".into(), ..run("FNlive", None) };
    assert!(!c.store.fail_abandoned_run(&failed, T0).await.unwrap(), "a live run is not failed");
    assert!(c.store.fail_abandoned_run(&failed, at(60_001)).await.unwrap(), "once its lease ran out, it is");
});
