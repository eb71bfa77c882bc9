use std::time::Duration;

use tessera_core::ids::ApplicationId;
use tessera_core::oidc::{AuthCode, BrowserSession, MfaPolicy, OAuthClient};
use tessera_core::store::{OidcStore, UserStore};

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
    assert!(c.store.set_oauth_client(&client).await.unwrap());
    assert_eq!(c.store.oauth_client(c.app).await.unwrap(), Some(client.clone()));
    assert!(!c.store.set_oauth_client(&OAuthClient { id: ApplicationId::random(), ..client }).await.unwrap());

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
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
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
        amr: vec!["pwd".into()],
        last_seen: T0,
        expires_at: T0.plus(Duration::from_secs(3600)),
    };
    c.store.insert_session(&s).await.unwrap();
    c.store.touch_session("sd", T0.plus(Duration::from_secs(5))).await.unwrap();
    assert_eq!(c.store.session("sd").await.unwrap().unwrap().last_seen, T0.plus(Duration::from_secs(5)));
    assert!(c.store.delete_session("sd").await.unwrap());
    assert_eq!(c.store.session("sd").await.unwrap(), None);
});
