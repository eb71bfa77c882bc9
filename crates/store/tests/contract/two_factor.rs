use std::time::Duration;
use tessera_core::messaging::Channel;

use tessera_core::ids::{ApplicationId, UserId};
use tessera_core::oidc::MfaPolicy;
use tessera_core::phone::PhoneNumber;
use tessera_core::signin::{AuthMethod, AuthMethods, Enrolling, FactorRule, ScriptState, SignIn, Signals, Stage};
use tessera_core::store::{SignInStore, StoreError, TwoFactorStore, UserStore};
use tessera_core::totp::TotpParams;
use tessera_core::twofactor::{
    Authenticator, MethodId, MethodKind, PendingCode, TrustToken, TwoFactorMethod, UserCode,
};

use crate::support::*;

async fn a_user(c: &Ctx) -> UserId {
    let u = user(c.tenant, &format!("{}@example.com", UserId::random()));
    c.store.insert_user(&u).await.unwrap();
    u.id
}

fn totp(user: UserId, id: &str, at: u64) -> TwoFactorMethod {
    TwoFactorMethod {
        id: MethodId::parse(id).unwrap(),
        user_id: user,
        kind: MethodKind::Authenticator(Authenticator {
            sealed_secret: format!("v1.k.{id}"),
            params: TotpParams::default(),
            last_step: Some(10),
        }),
        created_at: T0.plus(Duration::from_secs(at)),
    }
}

fn challenge(c: &Ctx, user: UserId, app: ApplicationId, digest: &str) -> SignIn {
    SignIn {
        digest: digest.into(),
        tenant_id: c.tenant,
        application_id: app,
        user_id: Some(user),
        passed: AuthMethods::of(&[AuthMethod::Password]),
        stage: Stage::NeedFactor,
        resume_digest: None,
        return_to: Some("/account?tab=factors".into()),
        signals: Signals {
            ip: Some("203.0.113.9".into()),
            user_agent: Some("Mozilla/5.0".into()),
            browser: Some("b1".into()),
            device: Some("d1".into()),
        },
        created_at: T0,
        expires_at: T0.plus(Duration::from_secs(300)),
        failures: 0,
        spent: false,
        code: None,
        rule: FactorRule::default(),
        enrolling: None,
        scripts: ScriptState {
            resume_at: Some(1),
            access_claims: serde_json::json!({"https://example.com/plan": "gold"}).as_object().unwrap().clone(),
            ..ScriptState::default()
        },
    }
}

contract!(methods_round_trip_in_order_and_ids_are_unique_per_user, |c| {
    let u = a_user(&c).await;
    let sms = TwoFactorMethod {
        id: MethodId::parse("SMS1").unwrap(),
        user_id: u,
        kind: MethodKind::Sms { phone: PhoneNumber::parse("+15554443232").unwrap() },
        created_at: T0.plus(Duration::from_secs(5)),
    };
    c.store.insert_method(&sms).await.unwrap();
    c.store.insert_method(&totp(u, "TOTP1", 1)).await.unwrap();
    let got = c.store.methods(u).await.unwrap();
    assert_eq!(got, vec![totp(u, "TOTP1", 1), sms.clone()]);
    assert_eq!(c.store.insert_method(&totp(u, "TOTP1", 9)).await, Err(StoreError::Conflict("methodId".into())));
    let other = a_user(&c).await;
    c.store.insert_method(&totp(other, "TOTP1", 1)).await.unwrap();
    assert!(c.store.delete_method(u, &sms.id).await.unwrap());
    assert!(!c.store.delete_method(u, &sms.id).await.unwrap());
    assert_eq!(c.store.methods(u).await.unwrap().len(), 1);
});

contract!(totp_steps_only_move_forward, |c| {
    let u = a_user(&c).await;
    let id = MethodId::parse("T").unwrap();
    c.store.insert_method(&totp(u, "T", 0)).await.unwrap();
    assert!(!c.store.advance_totp_step(u, &id, 10).await.unwrap(), "step 10 was used at enrolment");
    assert!(!c.store.advance_totp_step(u, &id, 9).await.unwrap());
    assert!(c.store.advance_totp_step(u, &id, 11).await.unwrap());
    assert!(!c.store.advance_totp_step(u, &id, 11).await.unwrap(), "replay");
    assert!(c.store.advance_totp_step(u, &id, 13).await.unwrap());
});

contract!(sealed_secrets_are_replaced_only_if_unchanged, |c| {
    let u = a_user(&c).await;
    c.store.insert_method(&totp(u, "T", 0)).await.unwrap();
    let all = c.store.sealed_secrets().await.unwrap();
    assert_eq!(all, vec![(u, MethodId::parse("T").unwrap(), "v1.k.T".to_owned())]);
    let id = MethodId::parse("T").unwrap();
    assert!(!c.store.replace_sealed_secret(u, &id, "stale", "new").await.unwrap());
    assert!(c.store.replace_sealed_secret(u, &id, "v1.k.T", "v1.k2.T").await.unwrap());
    assert_eq!(c.store.sealed_secrets().await.unwrap()[0].2, "v1.k2.T");
});

contract!(challenges_count_failures_hold_one_code_and_spend_once, |c| {
    let u = a_user(&c).await;
    c.store.insert_sign_in(&challenge(&c, u, c.app, "d1")).await.unwrap();
    assert_eq!(c.store.sign_in("d1").await.unwrap(), Some(challenge(&c, u, c.app, "d1")));
    assert_eq!(c.store.sign_in("nope").await.unwrap(), None);
    let code = |h: &str| PendingCode {
        method_id: MethodId::parse("S").unwrap(),
        channel: Channel::Voice,
        hash: h.into(),
        expires_at: T0,
    };
    c.store.set_sign_in_code("d1", &code("h1")).await.unwrap();
    c.store.set_sign_in_code("d1", &code("h2")).await.unwrap();
    let read = c.store.sign_in("d1").await.unwrap().unwrap().code;
    assert_eq!(read, Some(code("h2")), "the code, how it was sent and until when");
    assert!(!c.store.take_sign_in_code("d1", "h1").await.unwrap(), "replaced by the resend");
    assert!(c.store.take_sign_in_code("d1", "h2").await.unwrap());
    assert!(!c.store.take_sign_in_code("d1", "h2").await.unwrap(), "single use");
    assert_eq!(c.store.record_sign_in_failure("d1").await.unwrap(), 1);
    assert_eq!(c.store.record_sign_in_failure("d1").await.unwrap(), 2);
    assert!(c.store.spend_sign_in("d1").await.unwrap());
    assert!(!c.store.spend_sign_in("d1").await.unwrap());
    let got = c.store.sign_in("d1").await.unwrap().unwrap();
    assert!(got.spent && got.failures == 2 && got.code.is_none());
});

contract!(a_sign_in_moves_on_once_from_the_stage_it_is_at_and_resumes_once, |c| {
    let u = a_user(&c).await;
    let started = SignIn {
        user_id: None,
        passed: AuthMethods::default(),
        stage: Stage::Identify,
        ..challenge(&c, u, c.app, "s1")
    };
    c.store.insert_sign_in(&started).await.unwrap();
    assert_eq!(c.store.sign_in("s1").await.unwrap(), Some(started.clone()), "nobody known yet");
    let later = T0.plus(Duration::from_secs(1));
    let redirected = SignIn {
        digest: "s2".into(),
        user_id: Some(u),
        stage: Stage::Redirected { url: "https://example.com/more?x=1".into() },
        resume_digest: Some("r1".into()),
        expires_at: T0.plus(Duration::from_secs(600)),
        ..challenge(&c, u, c.app, "s2")
    };
    assert!(c.store.advance_sign_in("s1", &Stage::Identify, &redirected, later).await.unwrap());
    assert!(
        !c.store.advance_sign_in("s1", &Stage::Identify, &redirected, later).await.unwrap(),
        "the old id is gone with the move"
    );
    assert_eq!(c.store.sign_in("s1").await.unwrap(), None);
    let stored = c.store.sign_in("s2").await.unwrap().unwrap();
    assert_eq!(stored, SignIn { return_to: started.return_to.clone(), ..redirected.clone() });
    let wrong_stage = SignIn { digest: "s3".into(), stage: Stage::NeedFactor, ..redirected.clone() };
    assert!(!c.store.advance_sign_in("s2", &Stage::NeedFactor, &wrong_stage, later).await.unwrap());

    assert_eq!(c.store.resume_sign_in("forged").await.unwrap(), None);
    let resumed = c.store.resume_sign_in("r1").await.unwrap().unwrap();
    assert_eq!((resumed.digest.as_str(), resumed.resume_digest), ("s2", None));
    assert_eq!(c.store.resume_sign_in("r1").await.unwrap(), None, "a resume token works once");

    let too_late = T0.plus(Duration::from_secs(600));
    assert!(
        !c.store.advance_sign_in("s2", &redirected.stage, &wrong_stage, too_late).await.unwrap(),
        "an expired sign-in goes nowhere"
    );
    assert!(c.store.advance_sign_in("s2", &redirected.stage, &wrong_stage, later).await.unwrap());
    assert!(c.store.spend_sign_in("s3").await.unwrap());
    let done = SignIn { digest: "s4".into(), ..wrong_stage.clone() };
    assert!(!c.store.advance_sign_in("s3", &Stage::NeedFactor, &done, later).await.unwrap(), "a spent one neither");
});

contract!(a_sign_in_keeps_its_rule_and_the_factor_it_enrols, |c| {
    let u = a_user(&c).await;
    let rule = FactorRule { policy: MfaPolicy::Always, step_up: true };
    let started = SignIn { stage: Stage::Identify, rule, ..challenge(&c, u, c.app, "e1") };
    c.store.insert_sign_in(&started).await.unwrap();
    let phone = PhoneNumber::parse("+442079460958").unwrap();
    let later = T0.plus(Duration::from_secs(1));
    assert!(!c.store.set_sign_in_phone("e1", &phone, later).await.unwrap(), "not waiting for an enrolment");
    let enrolling = SignIn {
        digest: "e2".into(),
        stage: Stage::NeedEnrolment,
        enrolling: Some(Enrolling { sealed_key: "v1.k.key".into(), phone: None }),
        ..started.clone()
    };
    assert!(c.store.advance_sign_in("e1", &Stage::Identify, &enrolling, later).await.unwrap());
    assert_eq!(c.store.sign_in("e2").await.unwrap(), Some(enrolling.clone()), "the rule and the key are kept");
    assert!(c.store.set_sign_in_phone("e2", &phone, later).await.unwrap());
    let got = c.store.sign_in("e2").await.unwrap().unwrap();
    assert_eq!(got.enrolling, Some(Enrolling { sealed_key: "v1.k.key".into(), phone: Some(phone.clone()) }));
    assert!(
        !c.store.set_sign_in_phone("e2", &phone, T0.plus(Duration::from_secs(300))).await.unwrap(),
        "an expired sign-in takes no phone"
    );
    assert!(c.store.spend_sign_in("e2").await.unwrap());
    assert!(!c.store.set_sign_in_phone("e2", &phone, later).await.unwrap(), "a spent one neither");
});

contract!(recovery_codes_are_replaced_and_used_once, |c| {
    let u = a_user(&c).await;
    let hashes: Vec<String> = (0..10).map(|i| format!("k.{i}")).collect();
    c.store.replace_recovery_codes(u, &hashes, T0).await.unwrap();
    assert_eq!(c.store.recovery_code_count(u).await.unwrap(), 10);
    assert!(c.store.use_recovery_code(u, &["x".into(), "k.3".into()]).await.unwrap());
    assert!(!c.store.use_recovery_code(u, &["k.3".into()]).await.unwrap());
    let other = a_user(&c).await;
    assert!(!c.store.use_recovery_code(other, &["k.4".into()]).await.unwrap(), "codes belong to their user");
    c.store.replace_recovery_codes(u, &["n.1".into()], T0).await.unwrap();
    assert!(!c.store.use_recovery_code(u, &["k.4".into()]).await.unwrap(), "old codes died");
    assert_eq!(c.store.recovery_code_count(u).await.unwrap(), 1);
});

contract!(user_codes_are_single_use_and_count_failures, |c| {
    let u = a_user(&c).await;
    let code =
        |h: &str| UserCode { user_id: u, purpose: "enable:+1".into(), hash: h.into(), expires_at: T0, failures: 0 };
    c.store.put_user_code(&code("h1")).await.unwrap();
    assert_eq!(c.store.record_user_code_failure(u, "enable:+1").await.unwrap(), 1);
    c.store.put_user_code(&code("h2")).await.unwrap();
    let got = c.store.user_code(u, "enable:+1").await.unwrap().unwrap();
    assert_eq!((got.hash.as_str(), got.failures), ("h2", 0), "a new code resets its own count");
    assert!(!c.store.take_user_code(u, "enable:+1", "h1").await.unwrap());
    assert!(c.store.take_user_code(u, "enable:+1", "h2").await.unwrap());
    assert!(c.store.user_code(u, "enable:+1").await.unwrap().is_none());
});

contract!(sends_are_limited_in_a_sliding_window, |c| {
    let u = a_user(&c).await;
    let at = |s: u64| T0.plus(Duration::from_secs(s));
    for s in 0..3 {
        assert!(c.store.try_record_send(u, at(s), at(s).minus(Duration::from_secs(60)), 3).await.unwrap());
    }
    assert!(!c.store.try_record_send(u, at(10), at(10).minus(Duration::from_secs(60)), 3).await.unwrap());
    assert!(!c.store.try_record_send(u, at(59), at(59).minus(Duration::from_secs(60)), 3).await.unwrap());
    assert!(
        c.store.try_record_send(u, at(60), at(60).minus(Duration::from_secs(60)), 3).await.unwrap(),
        "the first slid out"
    );
    assert!(
        !c.store.try_record_send(u, at(60), at(60).minus(Duration::from_secs(60)), 3).await.unwrap(),
        "and the window is full again"
    );
    let other = a_user(&c).await;
    assert!(c.store.try_record_send(other, at(10), at(0), 3).await.unwrap());
});

contract!(trust_tokens_and_purging, |c| {
    let u = a_user(&c).await;
    let t =
        TrustToken { digest: "t1".into(), user_id: u, created_at: T0, expires_at: T0.plus(Duration::from_secs(10)) };
    c.store.insert_trust_token(&t).await.unwrap();
    assert_eq!(c.store.trust_token("t1").await.unwrap(), Some(t));
    c.store.insert_sign_in(&challenge(&c, u, c.app, "old")).await.unwrap();
    let purged = c.store.purge_expired(T0.plus(Duration::from_secs(5)), T0).await.unwrap();
    assert_eq!(purged, 0, "nothing has expired yet");
    let purged = c.store.purge_expired(T0.plus(Duration::from_secs(301)), T0).await.unwrap();
    assert_eq!(purged, 2, "the challenge and the trust token");
    assert!(c.store.sign_in("old").await.unwrap().is_none());
    let t2 =
        TrustToken { digest: "t2".into(), user_id: u, created_at: T0, expires_at: T0.plus(Duration::from_secs(999)) };
    c.store.insert_trust_token(&t2).await.unwrap();
    assert_eq!(c.store.delete_trust_tokens(u).await.unwrap(), 1);
});

/// A two-factor challenge open when the server was upgraded (migration 18) carries on as
/// a sign-in waiting for its second factor, with what it held.
async fn challenges_open_at_the_upgrade_carry_on_as_sign_ins(backend: tessera_store::Backend) {
    let c = crate::support::ctx_at(backend, 17).await;
    let u = a_user(&c).await;
    let insert = format!(
        "INSERT INTO two_factor_challenges (digest, user_id, application_id, created_at, expires_at, failures, \
         spent, code_method_id, code_channel, code_hash, code_expires_at, return_to) \
         VALUES ('open', '{u}', '{}', {}, {}, 2, 0, 'S', 'voice', 'k.h', {}, '/account')",
        c.app,
        T0.millis(),
        T0.plus(Duration::from_secs(300)).millis(),
        T0.plus(Duration::from_secs(60)).millis(),
    );
    tessera_store::testing::execute(&c.url, &insert).await.unwrap();
    c.store.migrate().await.unwrap();

    let carried = c.store.sign_in("open").await.unwrap().unwrap();
    let code = PendingCode {
        method_id: MethodId::parse("S").unwrap(),
        channel: Channel::Voice,
        hash: "k.h".into(),
        expires_at: T0.plus(Duration::from_secs(60)),
    };
    assert_eq!(
        carried,
        SignIn {
            digest: "open".into(),
            tenant_id: c.tenant,
            application_id: c.app,
            user_id: Some(u),
            passed: AuthMethods::of(&[AuthMethod::Password]),
            stage: Stage::NeedFactor,
            resume_digest: None,
            return_to: Some("/account".into()),
            signals: Signals::default(),
            created_at: T0,
            expires_at: T0.plus(Duration::from_secs(300)),
            failures: 2,
            spent: false,
            code: Some(code),
            rule: FactorRule::default(),
            enrolling: None,
            scripts: ScriptState::default(),
        }
    );
}

#[tokio::test]
async fn challenges_open_at_the_upgrade_carry_on_as_sign_ins_sqlite() {
    challenges_open_at_the_upgrade_carry_on_as_sign_ins(tessera_store::Backend::Sqlite).await;
}

#[tokio::test]
async fn challenges_open_at_the_upgrade_carry_on_as_sign_ins_postgres() {
    challenges_open_at_the_upgrade_carry_on_as_sign_ins(tessera_store::Backend::Postgres).await;
}

type Attempt = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// Runs the 50 attempts `attempt(0..50)` at once; how many succeeded.
async fn fifty_at_once(attempt: impl Fn(usize) -> Attempt) -> usize {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (run, start) = (attempt(i), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                run.await
            })
        })
        .collect();
    let mut succeeded = 0;
    for t in tasks {
        succeeded += usize::from(t.await.unwrap());
    }
    succeeded
}

// 50 concurrent attempts at each one-time move of a sign-in: exactly one takes it.
contract!(each_move_of_a_sign_in_is_taken_once_by_fifty_at_once, |c| {
    let u = a_user(&c).await;
    let store = std::sync::Arc::new(c.store.clone());
    let later = T0.plus(Duration::from_secs(1));
    let redirected = SignIn {
        stage: Stage::Redirected { url: "https://example.com/more".into() },
        resume_digest: Some("r".into()),
        ..challenge(&c, u, c.app, "s")
    };
    c.store.insert_sign_in(&redirected).await.unwrap();

    let resumed = fifty_at_once(|_| {
        let s = store.clone();
        Box::pin(async move { s.resume_sign_in("r").await.unwrap().is_some() })
    })
    .await;
    assert_eq!(resumed, 1, "a resume token is used once");

    let advanced = fifty_at_once(|i| {
        let (s, from) = (store.clone(), redirected.clone());
        Box::pin(async move {
            let next = SignIn { digest: format!("n{i}"), stage: Stage::NeedFactor, ..from.clone() };
            s.advance_sign_in("s", &from.stage, &next, later).await.unwrap()
        })
    })
    .await;
    assert_eq!(advanced, 1, "a step is taken once");
    assert_eq!(c.store.sign_in("s").await.unwrap(), None, "the old id went with the step");
    let mut now_at = None;
    for i in 0..50 {
        if c.store.sign_in(&format!("n{i}")).await.unwrap().is_some() {
            now_at = Some(format!("n{i}"));
        }
    }
    let now_at = now_at.expect("the sign-in under its new id");

    let spent = fifty_at_once(|_| {
        let (s, d) = (store.clone(), now_at.clone());
        Box::pin(async move { s.spend_sign_in(&d).await.unwrap() })
    })
    .await;
    assert_eq!(spent, 1, "a sign-in is spent once");
});
