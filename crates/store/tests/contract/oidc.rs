use std::time::Duration;

use tessera_core::ids::{ApplicationId, TenantId};
use tessera_core::oidc::{AuthCode, BrowserSession, MfaPolicy, OAuthClient};
use tessera_core::signin::{AuthMethod, AuthMethods};
use tessera_core::store::{Application, ApplicationStore, OidcStore, TokenStore, UserStore};
use tessera_core::tokens::RefreshToken;

use crate::support::*;

contract!(oauth_clients_codes_and_sessions, |c| {
    let client = OAuthClient {
        id: c.app,
        tenant_id: c.tenant,
        secret_digest: Some("digest".into()),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        mfa_policy: MfaPolicy::Always,
    };
    assert_eq!(
        c.store.oauth_client(c.app).await.unwrap().map(|x| x.mfa_policy),
        Some(MfaPolicy::WhenEnrolled),
        "the default"
    );
    let app = c.store.get_application(c.app).await.unwrap().unwrap();
    let renamed = Application { name: "Renamed".into(), ..app.clone() };
    assert!(c.store.update_application(&renamed, &client).await.unwrap());
    assert_eq!(c.store.oauth_client(c.app).await.unwrap(), Some(client.clone()));
    assert_eq!(c.store.get_application(c.app).await.unwrap().map(|a| a.name), Some("Renamed".into()));
    let stranger = Application { id: ApplicationId::random(), ..app.clone() };
    assert!(!c.store.update_application(&stranger, &OAuthClient { id: stranger.id, ..client.clone() }).await.unwrap());
    let other_tenant = Application { tenant_id: TenantId::random(), ..renamed.clone() };
    assert!(!c.store.update_application(&other_tenant, &client).await.unwrap(), "only within its tenant");

    let u = user(c.tenant, "a@example.com");
    c.store.insert_user(&u).await.unwrap();
    let code = AuthCode {
        digest: "cd".into(),
        client_id: c.app,
        user_id: u.id,
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        nonce: Some("n".into()),
        scope: "openid".into(),
        auth_time: T0,
        methods: AuthMethods::of(&[AuthMethod::Password, AuthMethod::Totp]),
        expires_at: T0.plus(Duration::from_secs(60)),
    };
    c.store.insert_code(&code).await.unwrap();
    assert_eq!(c.store.take_code("cd").await.unwrap(), Some(code));
    assert_eq!(c.store.take_code("cd").await.unwrap(), None, "single use");

    let s = BrowserSession {
        digest: "sd".into(),
        tenant_id: c.tenant,
        user_id: u.id,
        auth_time: T0,
        methods: AuthMethods::of(&[AuthMethod::Password]),
        last_seen: T0,
        expires_at: T0.plus(Duration::from_secs(3600)),
    };
    c.store.insert_session(&s).await.unwrap();
    c.store.touch_session("sd", T0.plus(Duration::from_secs(5))).await.unwrap();
    assert_eq!(c.store.session("sd").await.unwrap().unwrap().last_seen, T0.plus(Duration::from_secs(5)));
    let stepped_up = AuthMethods::of(&[AuthMethod::Password, AuthMethod::Sms]);
    c.store.set_session_methods("sd", &stepped_up).await.unwrap();
    let read = c.store.session("sd").await.unwrap().unwrap();
    assert_eq!((&read.methods, read.has_mfa()), (&stepped_up, true));
    // A session stored before methods were typed holds RFC 8176 amr values.
    tessera_store::testing::execute(&c.url, r#"UPDATE browser_sessions SET amr = '["pwd","tel","mfa"]'"#)
        .await
        .unwrap();
    let old = c.store.session("sd").await.unwrap().unwrap();
    assert_eq!(old.methods, AuthMethods::of(&[AuthMethod::Password, AuthMethod::Voice]));
    assert!(c.store.delete_session("sd").await.unwrap());
    assert_eq!(c.store.session("sd").await.unwrap(), None);
});

contract!(applications_are_created_once_and_listed_with_their_clients, |c| {
    let id = ApplicationId::random();
    let app = Application {
        id,
        tenant_id: c.tenant,
        name: "Second".into(),
        created_at: T0.plus(Duration::from_secs(1)),
        active: true,
    };
    let client = OAuthClient {
        id,
        tenant_id: c.tenant,
        secret_digest: None,
        redirect_uris: vec!["https://spa.example.com/cb".into(), "http://localhost:3000/cb".into()],
        mfa_policy: MfaPolicy::Never,
    };
    assert!(c.store.insert_application(&app, &client).await.unwrap());
    let again = Application { name: "Duplicate".into(), ..app.clone() };
    assert!(!c.store.insert_application(&again, &client).await.unwrap(), "an id is created once");
    assert_eq!(c.store.get_application(id).await.unwrap(), Some(app.clone()), "nothing overwritten");
    let all = c.store.applications(c.tenant).await.unwrap();
    assert_eq!(all.len(), 2, "the bootstrap application and this one");
    assert_eq!(all[0].0.id, c.app, "oldest first");
    assert_eq!(all[1], (app, client));
    assert!(c.store.applications(TenantId::random()).await.unwrap().is_empty());
});

contract!(applications_are_deactivated_and_deleted_with_what_hangs_off_them, |c| {
    let id = ApplicationId::random();
    let app = Application { id, tenant_id: c.tenant, name: "Gone".into(), created_at: T0, active: true };
    let client = OAuthClient {
        id,
        tenant_id: c.tenant,
        secret_digest: None,
        redirect_uris: vec!["https://gone.example.com/cb".into()],
        mfa_policy: MfaPolicy::WhenEnrolled,
    };
    assert!(c.store.insert_application(&app, &client).await.unwrap());

    assert!(!c.store.set_application_active(TenantId::random(), id, false).await.unwrap(), "only within its tenant");
    assert!(c.store.set_application_active(c.tenant, id, false).await.unwrap());
    assert_eq!(c.store.oauth_client(id).await.unwrap(), None, "a deactivated client signs nobody in");
    assert_eq!(c.store.get_application(id).await.unwrap().map(|a| a.active), Some(false));
    let listed = c.store.applications(c.tenant).await.unwrap();
    assert_eq!(listed.iter().find(|(a, _)| a.id == id).map(|(a, _)| a.active), Some(false), "still listed");
    assert!(c.store.set_application_active(c.tenant, id, true).await.unwrap());
    assert_eq!(c.store.oauth_client(id).await.unwrap(), Some(client));

    let u = user(c.tenant, "gone@example.com");
    c.store.insert_user(&u).await.unwrap();
    let (_, token) =
        RefreshToken::generate(&u, id, &tessera_core::signin::AuthMethods::default(), Duration::from_secs(3600), T0)
            .unwrap();
    c.store.insert_refresh_token(&token).await.unwrap();
    let (_, other_app_token) =
        RefreshToken::generate(&u, c.app, &tessera_core::signin::AuthMethods::default(), Duration::from_secs(3600), T0)
            .unwrap();
    c.store.insert_refresh_token(&other_app_token).await.unwrap();
    let code = AuthCode {
        digest: "gone-code".into(),
        client_id: id,
        user_id: u.id,
        redirect_uri: "https://gone.example.com/cb".into(),
        code_challenge: None,
        nonce: None,
        scope: "openid".into(),
        auth_time: T0,
        methods: AuthMethods::of(&[AuthMethod::Password]),
        expires_at: T0.plus(Duration::from_secs(60)),
    };
    c.store.insert_code(&code).await.unwrap();

    assert!(!c.store.delete_application(TenantId::random(), id, T0).await.unwrap(), "only within its tenant");
    let later = T0.plus(Duration::from_secs(10));
    assert!(c.store.delete_application(c.tenant, id, later).await.unwrap());
    assert_eq!(c.store.get_application(id).await.unwrap(), None);
    let revoked = c.store.find_refresh_token(&token.digest).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(later), "its refresh tokens are revoked");
    let kept = c.store.find_refresh_token(&other_app_token.digest).await.unwrap().unwrap();
    assert_eq!(kept.revoked_at, None, "other applications' tokens stay");
    assert_eq!(c.store.take_code("gone-code").await.unwrap(), None, "its codes are gone");
    assert!(!c.store.delete_application(c.tenant, id, later).await.unwrap(), "once");
});
