use std::time::Duration;

use tessera_core::store::LoginAttemptStore;
use tessera_core::user::LoginId;

use crate::support::*;

contract!(failures_count_within_a_window_and_restart_after_it, |c| {
    let id = LoginId::parse("ann@example.com").unwrap();
    let window = Duration::from_secs(60);
    let at = |s: u64| T0.plus(Duration::from_secs(s));
    for (i, s) in [0u64, 10, 20].into_iter().enumerate() {
        let n = c.store.record_login_failure(c.tenant, &id, at(s), at(s).minus(window)).await.unwrap();
        assert_eq!(n as usize, i + 1);
    }
    // 61 s after the window opened, counting starts again.
    let n = c.store.record_login_failure(c.tenant, &id, at(61), at(61).minus(window)).await.unwrap();
    assert_eq!(n, 1);
    c.store.clear_login_failures(c.tenant, &id).await.unwrap();
    let n = c.store.record_login_failure(c.tenant, &id, at(62), at(62).minus(window)).await.unwrap();
    assert_eq!(n, 1);
});

contract!(locks_are_kept_and_cleared, |c| {
    let id = LoginId::parse("bob").unwrap();
    assert_eq!(c.store.login_failures(c.tenant, &id).await.unwrap(), None);
    c.store.record_login_failure(c.tenant, &id, T0, T0).await.unwrap();
    let state = c.store.login_failures(c.tenant, &id).await.unwrap().unwrap();
    assert_eq!((state.failures, state.locked_until), (1, None));
    let until = T0.plus(Duration::from_secs(180));
    c.store.lock_login(c.tenant, &id, until).await.unwrap();
    let state = c.store.login_failures(c.tenant, &id).await.unwrap().unwrap();
    assert_eq!((state.locked_at(T0), state.locked_at(until)), (Some(until), None));
    c.store.clear_login_failures(c.tenant, &id).await.unwrap();
    assert_eq!(c.store.login_failures(c.tenant, &id).await.unwrap(), None);
});

contract!(concurrent_failures_are_all_counted, |c| {
    let id = LoginId::parse("race").unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (store, tenant, id) = (c.store.clone(), c.tenant, id.clone());
        tasks.push(tokio::spawn(async move { store.record_login_failure(tenant, &id, T0, T0).await.unwrap() }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<u32>>());
});

contract!(an_attempt_is_counted_before_it_is_checked_and_a_lock_freezes_the_count, |c| {
    let id = LoginId::parse("ann@example.com").unwrap();
    let at = |s: i64| tessera_core::Timestamp::from_millis(T0.millis() + s * 1000);
    assert_eq!(c.store.reserve_login_attempt(c.tenant, &id, at(0), at(-60)).await.unwrap(), (1, None));
    assert_eq!(c.store.reserve_login_attempt(c.tenant, &id, at(1), at(-59)).await.unwrap(), (2, None));
    c.store.lock_login(c.tenant, &id, at(100)).await.unwrap();
    assert_eq!(
        c.store.reserve_login_attempt(c.tenant, &id, at(2), at(-58)).await.unwrap(),
        (0, Some(at(100))),
        "locked"
    );
    assert_eq!(
        c.store.reserve_login_attempt(c.tenant, &id, at(101), at(41)).await.unwrap(),
        (1, None),
        "after the lock"
    );
});
