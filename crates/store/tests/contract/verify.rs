use std::time::Duration;

use tessera_core::messaging::Channel;
use tessera_core::phone::PhoneNumber;
use tessera_core::store::{Tally, VerifyStore, WindowKey};
use tessera_core::verify::{Block, FraudGuard, Status, Verification, VerifyAccount, VerifyService, new_sid};

use crate::support::*;

async fn service(c: &Ctx) -> VerifyService {
    let account =
        VerifyAccount { sid: new_sid("AC").unwrap(), tenant_id: c.tenant, token_digest: "d".into(), created_at: T0 };
    c.store.insert_verify_account(&account).await.unwrap();
    assert_eq!(c.store.verify_account(&account.sid).await.unwrap(), Some(account.clone()));
    let s = VerifyService {
        sid: new_sid("VA").unwrap(),
        tenant_id: c.tenant,
        account_sid: account.sid,
        friendly_name: "Acme".into(),
        code_length: 6,
        custom_code_enabled: true,
        ttl: Duration::from_secs(600),
        guard: FraudGuard { allowed_countries: vec![1], ..FraudGuard::default() },
        created_at: T0,
        updated_at: T0,
    };
    c.store.insert_verify_service(&s).await.unwrap();
    s
}

fn verification(s: &VerifyService, to: &str, at: u64) -> Verification {
    let phone = PhoneNumber::parse(to).unwrap();
    Verification {
        sid: new_sid("VE").unwrap(),
        service_sid: s.sid.clone(),
        account_sid: s.account_sid.clone(),
        prefix: tessera_core::verify::prefix_of(&phone),
        to: phone,
        channel: Channel::Sms,
        status: Status::Pending,
        code_hash: "h".into(),
        sealed_code: "v1.k.x".into(),
        checks: 0,
        sends: vec![(T0, Channel::Sms)],
        country: Some(1),
        created_at: T0.plus(Duration::from_secs(at)),
        updated_at: T0,
        expires_at: T0.plus(Duration::from_secs(600)),
    }
}

contract!(services_round_trip_per_account, |c| {
    let s = service(&c).await;
    assert_eq!(c.store.verify_service(&s.account_sid, &s.sid).await.unwrap(), Some(s.clone()));
    assert_eq!(c.store.verify_service("ACother", &s.sid).await.unwrap(), None);
    let mut changed = s.clone();
    changed.friendly_name = "Acme 2".into();
    changed.guard.min_sample = 7;
    assert!(c.store.update_verify_service(&changed).await.unwrap());
    assert_eq!(c.store.verify_services(&s.account_sid).await.unwrap(), vec![changed]);
    assert!(c.store.delete_verify_service(&s.account_sid, &s.sid).await.unwrap());
    assert!(c.store.verify_services(&s.account_sid).await.unwrap().is_empty());
});

contract!(verifications_update_only_from_the_expected_check_count, |c| {
    let s = service(&c).await;
    let v = verification(&s, "+15554443232", 0);
    c.store.insert_verification(&v).await.unwrap();
    assert_eq!(c.store.verification(&s.sid, &v.sid).await.unwrap(), Some(v.clone()));
    assert_eq!(c.store.pending_verification(&s.sid, "+15554443232").await.unwrap().map(|x| x.sid), Some(v.sid.clone()));
    let mut next = v.clone();
    next.checks = 1;
    next.sends.push((T0.plus(Duration::from_secs(5)), Channel::Voice));
    assert!(c.store.update_verification(&next, 0).await.unwrap());
    assert!(!c.store.update_verification(&next, 0).await.unwrap(), "a concurrent check lost");
    let got = c.store.verification(&s.sid, &v.sid).await.unwrap().unwrap();
    assert_eq!((got.checks, got.sends.len(), got.sends[1].1), (1, 2, Channel::Voice));
    next.status = Status::Approved;
    assert!(c.store.update_verification(&next, 1).await.unwrap());
    assert!(c.store.pending_verification(&s.sid, "+15554443232").await.unwrap().is_none());
    let latest = c.store.latest_verification(&s.sid, "+15554443232").await.unwrap().unwrap();
    assert_eq!((latest.sid, latest.status), (v.sid.clone(), Status::Approved), "the newest, whatever its status");
    assert!(c.store.latest_verification(&s.sid, "+15554443299").await.unwrap().is_none());
});

contract!(send_windows_and_conversion_are_counted, |c| {
    let s = service(&c).await;
    for (i, n) in ["+15554440001", "+15554440002", "+15557770001"].iter().enumerate() {
        let p = PhoneNumber::parse(n).unwrap();
        let at = T0.plus(Duration::from_secs(i as u64 * 10));
        c.store.record_verify_send(&s.sid, n, &tessera_core::verify::prefix_of(&p), None, at).await.unwrap();
    }
    let since = |secs: u64| T0.plus(Duration::from_secs(secs)).minus(Duration::from_secs(60));
    assert_eq!(c.store.count_number_sends(&s.sid, "+15557770001", since(0), u32::MAX).await.unwrap(), 1);
    assert_eq!(c.store.count_number_sends(&s.sid, "+15554440001", since(0), u32::MAX).await.unwrap(), 1);
    c.store
        .record_verify_send(&s.sid, "+15557770001", "+1555777", None, T0.plus(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(c.store.count_number_sends(&s.sid, "+15557770001", since(0), u32::MAX).await.unwrap(), 2);
    // Counting stops at the limit asked about.
    assert_eq!(c.store.count_number_sends(&s.sid, "+15557770001", since(0), 1).await.unwrap(), 1);
    assert_eq!(
        c.store.count_number_sends(&s.sid, "+15557770001", since(85), u32::MAX).await.unwrap(),
        1,
        "the first slid out"
    );

    // Bucketed windows: a bucket counts while it ends after the window's start.
    let tally = |key, value: &str, end_secs: u64| Tally {
        key,
        value: value.to_owned(),
        bucket_end: T0.plus(Duration::from_secs(end_secs)),
    };
    let sends = [
        vec![
            tally(WindowKey::Prefix, "+1555444", 1),
            tally(WindowKey::Ip, "1.1.1.1", 1),
            tally(WindowKey::Service, &s.sid, 1),
        ],
        vec![
            tally(WindowKey::Prefix, "+1555444", 1),
            tally(WindowKey::Ip, "1.1.1.1", 1),
            tally(WindowKey::Service, &s.sid, 1),
        ],
        vec![tally(WindowKey::Prefix, "+1555777", 11), tally(WindowKey::Service, &s.sid, 11)],
    ];
    for t in &sends {
        c.store.add_to_windows(&s.sid, t).await.unwrap();
    }
    let at = |secs: u64| T0.plus(Duration::from_secs(secs));
    assert_eq!(c.store.count_window(&s.sid, WindowKey::Prefix, "+1555444", at(0)).await.unwrap(), 2);
    assert_eq!(c.store.count_window(&s.sid, WindowKey::Ip, "1.1.1.1", at(0)).await.unwrap(), 2);
    assert_eq!(c.store.count_window(&s.sid, WindowKey::Ip, "2.2.2.2", at(0)).await.unwrap(), 0);
    assert_eq!(c.store.count_window(&s.sid, WindowKey::Service, &s.sid, at(0)).await.unwrap(), 3);
    assert_eq!(
        c.store.count_window(&s.sid, WindowKey::Service, &s.sid, at(1)).await.unwrap(),
        1,
        "the first bucket ended"
    );
    assert_eq!(c.store.count_window(&s.sid, WindowKey::Service, &s.sid, at(11)).await.unwrap(), 0);
    assert_eq!(c.store.count_window("VAother", WindowKey::Service, &s.sid, at(0)).await.unwrap(), 0, "per service");

    c.store.add_to_windows(&s.sid, &[tally(WindowKey::Started, "+1555444", 2)]).await.unwrap();
    c.store.add_to_windows(&s.sid, &[tally(WindowKey::Started, "+1555444", 2)]).await.unwrap();
    c.store.add_to_windows(&s.sid, &[tally(WindowKey::Started, "+1555444", 3)]).await.unwrap();
    c.store.add_to_windows(&s.sid, &[tally(WindowKey::Approved, "+1555444", 2)]).await.unwrap();
    assert_eq!(c.store.prefix_conversion(&s.sid, "+1555444", T0).await.unwrap(), (3, 1));
    assert_eq!(c.store.prefix_conversion(&s.sid, "+1555444", at(2)).await.unwrap(), (1, 0));
    assert_eq!(c.store.prefix_conversion(&s.sid, "+1555777", T0).await.unwrap(), (0, 0));
});

/// Sends and verifications recorded before the windows were bucketed (migration 13)
/// still count after the upgrade, in one-second buckets.
async fn windows_recorded_before_buckets_count_after_the_upgrade(backend: tessera_store::Backend) {
    let c = ctx_at(backend, 12).await;
    let s = service(&c).await;
    let at = |secs: u64| T0.plus(Duration::from_secs(secs));
    for (n, ip, secs) in
        [("+15554440001", Some("1.1.1.1"), 0), ("+15554440002", None, 0), ("+15557770001", Some("1.1.1.1"), 30)]
    {
        let p = PhoneNumber::parse(n).unwrap();
        c.store.record_verify_send(&s.sid, n, &tessera_core::verify::prefix_of(&p), ip, at(secs)).await.unwrap();
    }
    let mut approved = verification(&s, "+15554440001", 0);
    approved.status = Status::Approved;
    c.store.insert_verification(&approved).await.unwrap();
    c.store.insert_verification(&verification(&s, "+15554440002", 0)).await.unwrap();
    c.store.migrate().await.unwrap();

    let count = |key, value: &'static str, since| {
        let (store, sid) = (&c.store, s.sid.clone());
        async move { store.count_window(&sid, key, value, since).await.unwrap() }
    };
    assert_eq!(count(WindowKey::Prefix, "+1555444", T0.minus(Duration::from_secs(1))).await, 2);
    assert_eq!(count(WindowKey::Prefix, "+1555777", T0).await, 1);
    assert_eq!(count(WindowKey::Ip, "1.1.1.1", T0.minus(Duration::from_secs(1))).await, 2);
    assert_eq!(
        c.store.count_window(&s.sid, WindowKey::Service, &s.sid, T0.minus(Duration::from_secs(1))).await.unwrap(),
        3
    );
    assert_eq!(c.store.count_window(&s.sid, WindowKey::Service, &s.sid, at(1)).await.unwrap(), 1, "one-second buckets");
    assert_eq!(c.store.prefix_conversion(&s.sid, "+1555444", T0.minus(Duration::from_secs(1))).await.unwrap(), (2, 1));
    assert_eq!(c.store.count_number_sends(&s.sid, "+15557770001", T0, u32::MAX).await.unwrap(), 1);
}

#[tokio::test]
async fn windows_recorded_before_buckets_count_after_the_upgrade_sqlite() {
    windows_recorded_before_buckets_count_after_the_upgrade(tessera_store::Backend::Sqlite).await;
}

#[tokio::test]
async fn windows_recorded_before_buckets_count_after_the_upgrade_postgres() {
    windows_recorded_before_buckets_count_after_the_upgrade(tessera_store::Backend::Postgres).await;
}

contract!(blocks_are_active_until_they_expire, |c| {
    let s = service(&c).await;
    let b = Block {
        service_sid: s.sid.clone(),
        prefix: "+1555444".into(),
        reason: "low_conversion".into(),
        created_at: T0,
        expires_at: T0.plus(Duration::from_secs(60)),
    };
    c.store.insert_block(&b).await.unwrap();
    assert_eq!(c.store.active_block(&s.sid, "+1555444", T0).await.unwrap(), Some(b.clone()));
    assert_eq!(c.store.active_block(&s.sid, "+1555444", T0.plus(Duration::from_secs(61))).await.unwrap(), None);
    assert_eq!(c.store.active_block(&s.sid, "+1555777", T0).await.unwrap(), None);
    assert_eq!(c.store.blocks(&s.sid, 10).await.unwrap(), vec![b]);
});
