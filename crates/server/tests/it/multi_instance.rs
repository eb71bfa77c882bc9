//! Several servers on one PostgreSQL database behave as one.

use std::sync::Arc;

use tessera_store::Backend;
use tessera_testkit::{AppBuilder, FakeClock, app};

/// Instances behind one load balancer share its URL, so their tokens name one issuer.
fn behind_the_balancer() -> AppBuilder {
    app().configure(|c| c.messaging.public_url = Some("https://auth.example.com".into()))
}

#[tokio::test]
async fn two_instances_share_users_tokens_and_lockouts() {
    let clock = Arc::new(FakeClock::new());
    let a = behind_the_balancer().backend(Backend::Postgres).clock(clock.clone()).spawn().await;
    let b = behind_the_balancer().database_url(&a.database_url).clock(clock.clone()).spawn().await;

    a.create_user("ann@example.com", "correct horse").await;
    let r = b.login("ann@example.com", "correct horse").await;
    assert_eq!(r.status, 200, "a user created on A signs in on B: {}", r.text);
    let token = r.json["token"].as_str().unwrap();
    let v = a.send(a.client.get(a.url("/api/jwt/validate")).bearer_auth(token)).await;
    assert_eq!(v.status, 200, "B's token validates on A: both sign with the same key");
    let jwks_a = a.send(a.client.get(a.url("/.well-known/jwks.json"))).await.json;
    let jwks_b = b.send(b.client.get(b.url("/.well-known/jwks.json"))).await.json;
    assert_eq!(jwks_a, jwks_b);

    // Failures alternate between instances and still add up to one lock.
    for (i, s) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(s.login("ann@example.com", "wrong").await.status, 404, "attempt {i}");
    }
    assert_eq!(b.login("ann@example.com", "wrong").await.status, 409);
    assert_eq!(a.login("ann@example.com", "correct horse").await.status, 409, "A sees the lock B set");

    let refresh = r.json["refreshToken"].as_str().unwrap();
    assert_eq!(a.post_json("/api/logout", serde_json::json!({"refreshToken": refresh})).await.status, 200);
    let after = b.post_json("/api/jwt/refresh", serde_json::json!({"refreshToken": refresh})).await;
    assert_eq!(after.status, 401, "revoked on A means revoked on B");
}

#[tokio::test]
async fn instances_starting_together_bootstrap_once() {
    let url = tessera_store::testing::fresh_database_url(Backend::Postgres).await.unwrap();
    let (a, b, c) = tokio::join!(
        behind_the_balancer().database_url(&url).spawn(),
        behind_the_balancer().database_url(&url).spawn(),
        behind_the_balancer().database_url(&url).spawn()
    );
    let tenants: Vec<_> = [&a, &b, &c].iter().map(|s| s.state.identity.default_application().tenant_id).collect();
    assert!(tenants.windows(2).all(|w| w[0] == w[1]), "one tenant: {tenants:?}");
    a.create_user("ann@example.com", "correct horse").await;
    let token = c.login("ann@example.com", "correct horse").await.json["token"].as_str().unwrap().to_owned();
    for s in [&a, &b] {
        assert_eq!(s.send(s.client.get(s.url("/api/jwt/validate")).bearer_auth(&token)).await.status, 200);
    }
}
