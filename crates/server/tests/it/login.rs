use std::time::Duration;

use serde_json::json;
use tessera_core::password::HashParams;
use tessera_core::user::LoginId;
use tessera_store::Backend;
use tessera_testkit::{TEST_HASH, app, spawn_app};

#[tokio::test]
async fn login_returns_token_refresh_token_and_user() {
    let app = spawn_app().await;
    let id = app.create_user("ann@example.com", "correct horse").await;
    let app_id = app.state.identity.default_application().id.to_string();
    let r = app
        .post_json(
            "/api/login",
            json!({"loginId": "ANN@example.com", "password": "correct horse", "applicationId": app_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["user"]["id"], id.as_str());
    assert!(r.json["refreshToken"].as_str().is_some_and(|t| t.len() >= 43));
    let token = r.json["token"].as_str().unwrap();
    let v = app.send(app.client.get(app.url("/api/jwt/validate")).bearer_auth(token)).await;
    assert_eq!(v.json["jwt"]["sub"], id.as_str());
    assert_eq!(v.json["jwt"]["aud"], app_id.as_str());
    assert_eq!(r.json["tokenExpirationInstant"], json!(v.json["jwt"]["exp"].as_i64().unwrap() * 1000));
}

#[tokio::test]
async fn no_jwt_signs_in_without_tokens() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let r = app
        .post_json("/api/login", json!({"loginId": "ann@example.com", "password": "correct horse", "noJWT": true}))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json.get("token").is_none() && r.json.get("refreshToken").is_none(), "{}", r.text);
    assert_eq!(r.json["user"]["email"], "ann@example.com");
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let hasher = app.state.hasher.clone();

    let before = hasher.verifications();
    let wrong = app.login("ann@example.com", "wrong horse").await;
    let after_wrong = hasher.verifications();
    let unknown = app.login("nobody@example.com", "wrong horse").await;
    let after_unknown = hasher.verifications();

    assert_eq!((wrong.status, wrong.text.as_str()), (404, ""));
    assert_eq!((unknown.status, unknown.text.as_str()), (404, ""));
    // Both answers cost exactly one argon2 verification: the unknown user is checked
    // against a dummy hash, so timing does not reveal which accounts exist.
    assert_eq!(after_wrong - before, 1);
    assert_eq!(after_unknown - after_wrong, 1);
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let app = spawn_app().await;
    let r = app.post_json("/api/login", json!({"password": "x"})).await;
    assert_eq!((r.status, &r.json["fieldErrors"]["loginId"][0]["code"]), (400, &json!("[blank]loginId")));
    let r = app.post_json("/api/login", json!({"loginId": "ann"})).await;
    assert_eq!(r.json["fieldErrors"]["password"][0]["code"], "[blank]password");
    let r = app.post_json("/api/login", json!({"loginId": "ann", "password": "x", "applicationId": "nope"})).await;
    assert_eq!(r.json["fieldErrors"]["applicationId"][0]["code"], "[invalid]applicationId");
    let r = app
        .post_json(
            "/api/login",
            json!({"loginId": "ann", "password": "x", "applicationId": "3f6c9a2e-1b2d-4c3e-9f00-0a1b2c3d4e5f"}),
        )
        .await;
    assert_eq!((r.status, &r.json["fieldErrors"]["applicationId"][0]["code"]), (400, &json!("[invalid]applicationId")));
    let r = app.send(app.client.post(app.url("/api/login")).header("content-type", "application/json").body("[")).await;
    assert_eq!((r.status, &r.json["generalErrors"][0]["code"]), (400, &json!("[invalidJSON]")));
    let r = app.send(app.client.post(app.url("/api/login")).body("loginId=a")).await;
    assert_eq!(r.status, 400, "no JSON content type");
    // The two-factor endpoints' bodies may be empty or undeclared, but not malformed.
    for path in ["/api/two-factor/login", "/api/two-factor/send", "/api/jwt/refresh", "/api/logout"] {
        let r = app.send(app.client.post(app.url(path)).body("{\"twoFactorId\": ")).await;
        assert_eq!((r.status, &r.json["generalErrors"][0]["code"]), (400, &json!("[invalidJSON]")), "{path}");
    }
    let r = app.send(app.client.post(app.url("/api/two-factor/login"))).await;
    assert_eq!((r.status, &r.json["fieldErrors"]["twoFactorId"][0]["code"]), (400, &json!("[blank]twoFactorId")));
}

#[tokio::test]
async fn five_failures_lock_until_the_lock_expires() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    for i in 1..=4 {
        assert_eq!(app.login("ann@example.com", "wrong").await.status, 404, "attempt {i}");
    }
    let fifth = app.login("ann@example.com", "wrong").await;
    assert_eq!(fifth.status, 409, "{}", fifth.text);
    assert_eq!(fifth.json["generalErrors"][0]["code"], "[LoginPreventedException]");
    // Locked means locked, even with the right password.
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 409);
    app.clock.advance(Duration::from_secs(179));
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 409);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200, "the lock expired");
}

#[tokio::test]
async fn unknown_login_ids_lock_like_known_ones() {
    let app = spawn_app().await;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(app.login("ghost@example.com", "guess").await.status);
        }
        v
    };
    assert_eq!(statuses, [404, 404, 404, 404, 409, 409]);
}

#[tokio::test]
async fn only_consecutive_failures_inside_the_window_count() {
    let app = app().configure(|c| c.policies.lockout.max_failures = 3).spawn().await;
    app.create_user("ann@example.com", "correct horse").await;
    for _ in 0..2 {
        assert_eq!(app.login("ann@example.com", "wrong").await.status, 404);
    }
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200, "success resets the count");
    for _ in 0..2 {
        assert_eq!(app.login("ann@example.com", "wrong").await.status, 404);
    }
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.login("ann@example.com", "wrong").await.status, 404, "the window restarted");
    assert_eq!(app.login("ann@example.com", "wrong").await.status, 404);
    assert_eq!(app.login("ann@example.com", "wrong").await.status, 409, "configured limit of 3");
}

#[tokio::test]
async fn hashes_are_upgraded_when_the_policy_changes() {
    let first = spawn_app().await;
    first.create_user("ann@example.com", "correct horse").await;
    let url = first.database_url.clone();
    let login_id = LoginId::parse("ann@example.com").unwrap();
    let tenant = first.state.identity.default_application().tenant_id;
    let stored = first.state.store.find_user_by_login_id(tenant, &login_id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.unwrap().params(), TEST_HASH);
    drop(first);

    let stronger = HashParams { memory_kib: 2048, iterations: 2, parallelism: 1 };
    let second = app().database_url(&url).configure(move |c| c.policies.hash = stronger).spawn().await;
    assert_eq!(second.login("ann@example.com", "wrong").await.status, 404);
    let still_old = second.state.store.find_user_by_login_id(tenant, &login_id).await.unwrap().unwrap();
    assert_eq!(still_old.password_hash.unwrap().params(), TEST_HASH, "a failed login changes nothing");

    assert_eq!(second.login("ann@example.com", "correct horse").await.status, 200);
    let upgraded = second.state.store.find_user_by_login_id(tenant, &login_id).await.unwrap().unwrap();
    let hash = upgraded.password_hash.unwrap();
    assert_eq!(hash.params(), stronger);
    assert!(hash.as_phc().starts_with("$argon2id$v=19$m=2048,t=2,p=1$"));
    assert_eq!(second.login("ann@example.com", "correct horse").await.status, 200, "the new hash verifies");
}

#[tokio::test]
async fn the_default_policy_is_owasp_argon2id() {
    let app = app().configure(|c| c.policies.hash = HashParams::default()).spawn().await;
    let id = app.create_user("ann@example.com", "correct horse").await;
    let user = app.state.store.get_user(app.state.identity.default_application().tenant_id, id.parse().unwrap()).await;
    let phc = user.unwrap().unwrap().password_hash.unwrap().as_phc().to_owned();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200);
}

#[tokio::test]
async fn login_and_lockout_work_on_postgres() {
    let app = app().backend(Backend::Postgres).configure(|c| c.policies.lockout.max_failures = 2).spawn().await;
    app.create_user("ann@example.com", "correct horse").await;
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200);
    assert_eq!(app.login("ann@example.com", "wrong").await.status, 404);
    assert_eq!(app.login("ann@example.com", "wrong").await.status, 409);
    app.clock.advance(Duration::from_secs(181));
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200);
}

/// 50 wrong passwords at once, spread over `apps`: the lockout (5) holds, and no argon2
/// check starts once the limit is reached.
async fn fifty_guesses_at_once(apps: &[&tessera_testkit::TestApp]) {
    apps[0].create_user("ann@example.com", "correct horse").await;
    let before: u64 = apps.iter().map(|a| a.state.hasher.verifications()).sum();
    let guesses = (0..50)
        .map(|i| {
            let a = apps[i % apps.len()];
            a.client
                .post(a.url("/api/login"))
                .json(&serde_json::json!({"loginId": "ann@example.com", "password": "guess"}))
        })
        .collect();
    let replies = apps[0].all_at_once(guesses).await;
    let checked: u64 = apps.iter().map(|a| a.state.hasher.verifications()).sum::<u64>() - before;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(checked <= 5, "{checked} argon2 checks for 50 guesses: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 4, "four plain failures: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 404 || *s == 409), "{statuses:?}");
    assert_eq!(apps[0].login("ann@example.com", "correct horse").await.status, 409, "and the id is locked");
}

#[tokio::test]
async fn fifty_concurrent_wrong_passwords_run_at_most_five_argon2_checks() {
    fifty_guesses_at_once(&[&spawn_app().await]).await;
    fifty_guesses_at_once(&[&app().backend(Backend::Postgres).spawn().await]).await;
    let a = app()
        .backend(Backend::Postgres)
        .configure(|c| c.messaging.public_url = Some("https://auth.example.com".into()))
        .spawn()
        .await;
    let b = app()
        .database_url(&a.database_url)
        .configure(|c| c.messaging.public_url = Some("https://auth.example.com".into()))
        .spawn()
        .await;
    fifty_guesses_at_once(&[&a, &b]).await;
}

/// FusionAuth's own Python client signs in against Tessera: the Login API's 404 and
/// 242, then the Two Factor Login API with the authenticator's code (the wire shapes of
/// `api::login` and `api::two_factor`, proven by the vendor's code).
#[tokio::test]
async fn fusionauths_python_client_signs_in_with_a_second_factor() {
    let app = tessera_testkit::spawn_app().await;
    let id = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890";
    app.enable_authenticator(&id, secret).await;
    // The enabling code's step is used: the sign-in's code is the next one.
    app.clock.advance(std::time::Duration::from_secs(30));
    let code = app.totp(secret, 0);

    let python = tokio::task::spawn_blocking(crate::sdk::python_with_fusionauth).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/fusionauth_login.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script).args([app.base.as_str(), app.api_key.as_str(), "ann@example.com", "correct horse", &code]);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output()).await.expect("in time").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let read: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        read,
        serde_json::json!({
            "wrong": 404, "first": 242, "twoFactorId": true, "methods": ["authenticator"],
            "second": 200, "token": true, "refreshToken": true, "userEmail": "ann@example.com",
            "twoFactorMethods": ["authenticator"],
        })
    );
}
