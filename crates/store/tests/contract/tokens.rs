use std::time::Duration;
use tessera_core::audit::Actor;
use tessera_core::ids::ApiKeyId;
use tessera_core::signin::{AuthMethod, AuthMethods};

use serde_json::json;
use tessera_core::apikey::ApiKey;
use tessera_core::audit::{AuditEvent, AuditKind};
use tessera_core::ids::{ApplicationId, TenantId};
use tessera_core::seal::{SealKey, Sealer};
use tessera_core::store::{
    ApiKeyStore, Application, ApplicationStore, AuditStore, Bootstrap, Store, Tenant, TenantStore, TokenStore,
    UserStore,
};
use tessera_core::tokens::{JwtAlgorithm, RefreshToken, SigningKey};

use crate::support::*;

contract!(bootstrap_happens_once, |c| {
    let tenant = Tenant { id: TenantId::random(), name: "second".into(), created_at: T0 };
    let application = Application {
        id: ApplicationId::random(),
        tenant_id: tenant.id,
        name: "x".into(),
        created_at: T0,
        active: true,
    };
    let (_, api_key) = ApiKey::generate(tenant.id, "k", T0).unwrap();
    assert!(!c.store.bootstrap(&Bootstrap { tenant, application, api_key }).await.unwrap());
    assert_eq!(c.store.default_tenant().await.unwrap().map(|t| t.id), Some(c.tenant));
    assert_eq!(c.store.default_application(c.tenant).await.unwrap().map(|a| a.id), Some(c.app));
    assert_eq!(c.store.get_application(c.app).await.unwrap().map(|a| a.tenant_id), Some(c.tenant));
    assert!(c.store.get_application(ApplicationId::random()).await.unwrap().is_none());
    c.store.ping().await.unwrap();
});

contract!(api_keys_are_found_by_digest, |c| {
    let (secret, key) = ApiKey::generate(c.tenant, "ops", T0).unwrap();
    c.store.insert_api_key(&key).await.unwrap();
    assert_eq!(c.store.find_api_key(&secret.digest()).await.unwrap(), Some(key));
    assert_eq!(c.store.find_api_key("0000").await.unwrap(), None);
});

contract!(refresh_tokens_revoke_one_or_all, |c| {
    let u = user(c.tenant, "a@example.com");
    c.store.insert_user(&u).await.unwrap();
    let ttl = Duration::from_secs(60);
    let mfa = AuthMethods::of(&[AuthMethod::Password, AuthMethod::Voice]);
    let (s1, t1) = RefreshToken::generate(&u, c.app, &mfa, ttl, T0).unwrap();
    let (s2, t2) = RefreshToken::generate(&u, c.app, &AuthMethods::of(&[AuthMethod::Password]), ttl, T0).unwrap();
    c.store.insert_refresh_token(&t1).await.unwrap();
    c.store.insert_refresh_token(&t2).await.unwrap();
    assert_eq!(c.store.find_refresh_token(&s1.digest()).await.unwrap(), Some(t1.clone()), "with its methods");
    assert!(c.store.revoke_refresh_token(t1.id, T0).await.unwrap());
    assert!(!c.store.revoke_refresh_token(t1.id, T0).await.unwrap(), "already revoked");
    let got = c.store.find_refresh_token(&s1.digest()).await.unwrap().unwrap();
    assert!(!got.is_live(T0));
    assert_eq!(c.store.revoke_user_refresh_tokens(u.id, T0).await.unwrap(), 1);
    assert!(!c.store.find_refresh_token(&s2.digest()).await.unwrap().unwrap().is_live(T0));
    // Deleting the user takes their tokens with them.
    c.store.delete_user(c.tenant, u.id).await.unwrap();
    assert!(c.store.find_refresh_token(&s2.digest()).await.unwrap().is_none());
});

contract!(signing_keys_round_trip_oldest_first, |c| {
    let sealer = Sealer::new(SealKey::generate().unwrap(), vec![]);
    let older = SigningKey::generate(JwtAlgorithm::EdDSA, T0).unwrap().seal(&sealer).unwrap();
    let newer =
        SigningKey::generate(JwtAlgorithm::ES256, T0.plus(Duration::from_secs(1))).unwrap().seal(&sealer).unwrap();
    assert!(c.store.insert_signing_key(&newer).await.unwrap());
    assert!(c.store.insert_signing_key(&older).await.unwrap());
    let rival = SigningKey::generate(JwtAlgorithm::EdDSA, T0).unwrap().seal(&sealer).unwrap();
    assert!(!c.store.insert_signing_key(&rival).await.unwrap(), "one signer per algorithm");
    let keys = c.store.signing_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(), [older.kid.clone(), newer.kid.clone()]);
    assert_eq!(keys[0], older);
    assert_eq!(keys[1].public_jwk, newer.public_jwk);
    assert!(keys[0].sealed_private.starts_with("v1."), "sealed at rest");
    let opened = SigningKey::open(&keys[0], &sealer).unwrap();
    assert!(!opened.private_der.is_empty());
    assert!(c.store.replace_sealed_signing_key(&older.kid, &older.sealed_private, "v1.k2.x").await.unwrap());
    assert!(!c.store.replace_sealed_signing_key(&older.kid, &older.sealed_private, "v1.k3.x").await.unwrap());
});

contract!(audit_log_pages_newest_first, |c| {
    for i in 0..5 {
        let e = AuditEvent {
            tenant_id: c.tenant,
            at: T0.plus(Duration::from_secs(i)),
            kind: AuditKind::LoginFailure,
            user_id: None,
            actor: (i == 3).then(|| Actor::ApiKey(ApiKeyId::random())),
            ip: Some("10.0.0.1".into()),
            outcome: "failure",
            detail: json!({"i": i}),
        };
        c.store.append_audit(&e).await.unwrap();
    }
    let (page, total) = c.store.audit_page(c.tenant, 1, 2).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(page.iter().map(|r| r.detail["i"].clone()).collect::<Vec<_>>(), [json!(3), json!(2)]);
    assert_eq!(page[0].event, "login.failure");
    assert_eq!(page[0].ip.as_deref(), Some("10.0.0.1"));
    assert!(page[0].actor.as_deref().is_some_and(|a| a.starts_with("apiKey:")), "{:?}", page[0].actor);
    assert_eq!(page[1].actor, None);
    let (other, n) = c.store.audit_page(TenantId::random(), 0, 10).await.unwrap();
    assert!(other.is_empty() && n == 0);
    let who = tessera_core::ids::UserId::random();
    for kind in [AuditKind::LoginSuccess, AuditKind::LoginFailure, AuditKind::LoginSuccess] {
        let e = AuditEvent {
            tenant_id: c.tenant,
            at: T0,
            kind,
            user_id: Some(who),
            actor: Some(Actor::User(who)),
            ip: None,
            outcome: "x",
            detail: json!({}),
        };
        c.store.append_audit(&e).await.unwrap();
    }
    assert_eq!(c.store.user_events(who, "login.success", 10).await.unwrap().len(), 2);
    assert_eq!(c.store.user_events(who, "login.success", 1).await.unwrap().len(), 1);
});
