//! Units of work (`Store::begin`), the limit lock, and errors that say what went wrong.

use std::sync::Arc;

use sqlx::Connection;
use tessera_core::store::{Store, StoreError, Tally, TwoFactorStore, UserStore, VerifyStore, WindowKey};

use crate::support::*;

contract!(a_unit_is_invisible_until_committed_and_then_all_there, |c| {
    let (a, b) = (user(c.tenant, "a@example.com"), user(c.tenant, "b@example.com"));
    let tx = c.store.begin().await.unwrap();
    tx.insert_user(&a).await.unwrap();
    tx.insert_user(&b).await.unwrap();
    assert!(tx.get_user(c.tenant, a.id).await.unwrap().is_some(), "the unit reads its own writes");
    assert!(c.store.get_user(c.tenant, a.id).await.unwrap().is_none(), "others do not, yet");
    tx.commit().await.unwrap();
    assert!(c.store.get_user(c.tenant, a.id).await.unwrap().is_some());
    assert!(c.store.get_user(c.tenant, b.id).await.unwrap().is_some());
    assert!(matches!(tx.commit().await, Err(StoreError::Query(_))), "a unit commits once");
});

contract!(a_unit_dropped_without_commit_leaves_nothing, |c| {
    let kept = user(c.tenant, "kept@example.com");
    c.store.insert_user(&kept).await.unwrap();
    let a = user(c.tenant, "a@example.com");
    {
        let tx = c.store.begin().await.unwrap();
        tx.insert_user(&a).await.unwrap();
        // A method with a transaction of its own runs inside the unit, as a savepoint.
        assert!(tx.delete_user(c.tenant, kept.id).await.unwrap());
        // An error part-way: the unit is dropped, never committed.
    }
    assert!(c.store.get_user(c.tenant, a.id).await.unwrap().is_none());
    assert!(c.store.get_user(c.tenant, kept.id).await.unwrap().is_some(), "the delete was rolled back too");
    // The connection went back to the pool clean: the next unit works.
    let tx = c.store.begin().await.unwrap();
    tx.insert_user(&a).await.unwrap();
    tx.commit().await.unwrap();
    assert!(c.store.get_user(c.tenant, a.id).await.unwrap().is_some());
});

contract!(a_unit_begun_inside_a_unit_joins_it, |c| {
    let a = user(c.tenant, "a@example.com");
    let outer = c.store.begin().await.unwrap();
    let inner = outer.begin().await.unwrap();
    inner.insert_user(&a).await.unwrap();
    inner.commit().await.unwrap();
    assert!(c.store.get_user(c.tenant, a.id).await.unwrap().is_none(), "the inner commit is the outer's to make");
    drop(inner);
    drop(outer);
    assert!(c.store.get_user(c.tenant, a.id).await.unwrap().is_none(), "and the outer rolled back");
});

// 8 units at once each count the sends in the window and record one if there are
// fewer than 3: under the limit lock exactly 3 get through.
contract!(units_holding_a_limit_count_and_record_one_at_a_time, |c| {
    let store = Arc::new(c.store.clone());
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let tasks = (0..8).map(|_| {
        let (store, start) = (store.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            let tx = store.begin().await.unwrap();
            tx.hold_limit("test:window").await.unwrap();
            let n = tx.count_number_sends("VA1", "+15550000000", T0, u32::MAX).await.unwrap();
            // Another round trip between count and record: the others count meanwhile.
            tx.count_number_sends("VA1", "+15550000001", T0, u32::MAX).await.unwrap();
            let admitted = n < 3;
            if admitted {
                tx.record_verify_send("VA1", "+15550000000", "+1555", None, T0.plus(std::time::Duration::from_secs(1)))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            admitted
        })
    });
    let tasks: Vec<_> = tasks.collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += u32::from(t.await.unwrap());
    }
    assert_eq!(admitted, 3);
    assert_eq!(c.store.count_number_sends("VA1", "+15550000000", T0, u32::MAX).await.unwrap(), 3);
});

contract!(a_query_the_database_refuses_is_not_an_outage, |c| {
    let mut raw = sqlx::AnyConnection::connect(&c.url).await.unwrap();
    sqlx::query("DROP TABLE verify_sends").execute(&mut raw).await.unwrap();
    let e = c.store.count_number_sends("VA1", "+15550000000", T0, u32::MAX).await.unwrap_err();
    assert!(matches!(e, StoreError::Query(_)), "{e:?}");
    c.store.ping().await.unwrap();
    c.store.close().await;
    let e = c.store.ping().await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "a closed pool is: {e:?}");
});

contract!(sends_older_than_any_window_and_idle_limit_locks_are_purged, |c| {
    let hour = std::time::Duration::from_secs(3600);
    c.store.record_verify_send("VA1", "+15550000001", "+1555000", None, T0).await.unwrap();
    c.store.record_verify_send("VA1", "+15550000001", "+1555000", None, T0.plus(hour)).await.unwrap();
    for at in [T0, T0.plus(hour)] {
        let bucket_end = tessera_core::verify::bucket_end(at, std::time::Duration::from_secs(60));
        c.store
            .add_to_windows("VA1", &[Tally { key: WindowKey::Service, value: "VA1".into(), bucket_end }])
            .await
            .unwrap();
    }
    let tx = c.store.begin().await.unwrap();
    tx.hold_limit("test:purged").await.unwrap();
    tx.commit().await.unwrap();
    let now = T0.plus(tessera_core::verify::MAX_WINDOW).plus(std::time::Duration::from_secs(1));
    c.store.purge_expired(now, T0).await.unwrap();
    let since_ever = tessera_core::Timestamp::from_millis(0);
    assert_eq!(c.store.count_number_sends("VA1", "+15550000001", since_ever, u32::MAX).await.unwrap(), 1);
    assert_eq!(c.store.count_window("VA1", WindowKey::Service, "VA1", since_ever).await.unwrap(), 1, "and its bucket");
    let mut raw = sqlx::AnyConnection::connect(&c.url).await.unwrap();
    let (locks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM limit_locks").fetch_one(&mut raw).await.unwrap();
    assert_eq!(locks, 0);
});

/// Another process holding SQLite's write lock past `busy_timeout` is a collision to
/// retry (`Busy`), not an outage and not a bad query.
#[tokio::test]
async fn a_sqlite_file_locked_by_another_process_is_busy() {
    let c = crate::support::ctx(tessera_store::Backend::Sqlite).await;
    let mut other = sqlx::AnyConnection::connect(&c.url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut other).await.unwrap();
    let e = c.store.record_verify_send("VA1", "+15550000001", "+1555000", None, T0).await.unwrap_err();
    assert!(matches!(e, StoreError::Busy(_)), "{e:?}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    c.store.record_verify_send("VA1", "+15550000001", "+1555000", None, T0).await.unwrap();
}
