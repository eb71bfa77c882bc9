use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::tokens::JwtAlgorithm;
use tessera_testkit::{TestApp, app, spawn_app};

async fn signed_in(app: &TestApp) -> (String, String) {
    app.create_user("ann@example.com", "correct horse").await;
    let r = app.login("ann@example.com", "correct horse").await;
    assert_eq!(r.status, 200, "{}", r.text);
    (r.json["token"].as_str().unwrap().to_owned(), r.json["refreshToken"].as_str().unwrap().to_owned())
}

async fn validate(app: &TestApp, token: &str) -> u16 {
    app.send(app.client.get(app.url("/api/jwt/validate")).bearer_auth(token)).await.status
}

fn header(jwt: &str) -> Value {
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

#[tokio::test]
async fn tokens_are_signed_with_a_published_key() {
    let app = spawn_app().await;
    let (token, _) = signed_in(&app).await;
    let h = header(&token);
    assert_eq!(h["alg"], "EdDSA");
    let jwks = app.send(app.client.get(app.url("/.well-known/jwks.json"))).await;
    let keys = jwks.json["keys"].as_array().unwrap();
    let key = keys.iter().find(|k| k["kid"] == h["kid"]).expect("the token's kid is in the JWKS");
    assert_eq!((key["kty"].as_str(), key["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    assert!(key.get("d").is_none(), "no private part: {key}");
}

#[tokio::test]
async fn es256_and_rs256_are_available() {
    for (alg, kty) in [(JwtAlgorithm::ES256, "EC"), (JwtAlgorithm::RS256, "RSA")] {
        let app = app().configure(move |c| c.policies.jwt_algorithm = alg).spawn().await;
        let (token, _) = signed_in(&app).await;
        assert_eq!(header(&token)["alg"], alg.as_str());
        assert_eq!(validate(&app, &token).await, 200);
        let jwks = app.send(app.client.get(app.url("/.well-known/jwks.json"))).await;
        assert!(jwks.json["keys"].as_array().unwrap().iter().any(|k| k["kty"] == kty && k["alg"] == alg.as_str()));
    }
}

#[tokio::test]
async fn validate_rejects_bad_tampered_and_expired_tokens() {
    let app = spawn_app().await;
    let (token, _) = signed_in(&app).await;
    assert_eq!(validate(&app, &token).await, 200);
    let no_header = app.send(app.client.get(app.url("/api/jwt/validate"))).await;
    assert_eq!((no_header.status, no_header.text.as_str()), (401, ""));
    assert_eq!(validate(&app, "garbage").await, 401);

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("someone-else");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(validate(&app, &parts.join(".")).await, 401, "a changed claim breaks the signature");

    let other = spawn_app().await;
    let (foreign, _) = signed_in(&other).await;
    assert_eq!(validate(&app, &foreign).await, 401, "another server's key is not ours");

    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(validate(&app, &token).await, 401, "expired after the 1 h default");
}

#[tokio::test]
async fn refresh_issues_new_tokens_until_revoked() {
    let app = spawn_app().await;
    let (_, refresh) = signed_in(&app).await;
    app.clock.advance(Duration::from_secs(3601));
    let r = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = r.json["token"].as_str().unwrap();
    assert_eq!(validate(&app, fresh).await, 200);
    assert_eq!(r.json["refreshToken"], refresh.as_str());

    let by_cookie = app
        .send(app.client.post(app.url("/api/jwt/refresh")).header("Cookie", format!("refresh_token={refresh}")))
        .await;
    assert_eq!(by_cookie.status, 200);

    let logout = app.post_json("/api/logout", json!({"refreshToken": refresh})).await;
    assert_eq!(logout.status, 200);
    let after = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await;
    assert_eq!(after.status, 401, "revoked by logout");

    let blank = app.post_json("/api/jwt/refresh", json!({})).await;
    assert_eq!((blank.status, &blank.json["generalErrors"][0]["code"]), (400, &json!("[blank]refreshToken")));
    let unknown = app.post_json("/api/jwt/refresh", json!({"refreshToken": "nope"})).await;
    assert_eq!(unknown.status, 401);
}

/// FusionAuth's `authenticationType`: `PASSWORD` for a sign-in with the password (with or
/// without a second step), `REFRESH_TOKEN` for a token a refresh token bought.
#[tokio::test]
async fn tokens_say_how_they_were_obtained() {
    let app = spawn_app().await;
    let (token, refresh) = signed_in(&app).await;
    assert_eq!(crate::oidc::claims(&token)["authenticationType"], "PASSWORD");
    let r = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(crate::oidc::claims(r.json["token"].as_str().unwrap())["authenticationType"], "REFRESH_TOKEN");
}

#[tokio::test]
async fn refresh_tokens_expire_and_die_with_their_user() {
    let app = spawn_app().await;
    let (_, refresh) = signed_in(&app).await;
    app.clock.advance(Duration::from_secs(30 * 24 * 3600 + 1));
    assert_eq!(app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await.status, 401);

    let app = spawn_app().await;
    let (_, refresh) = signed_in(&app).await;
    let id = app.admin(Method::GET, "/api/user?loginId=ann@example.com", None).await.json["user"]["id"].clone();
    app.admin(Method::DELETE, &format!("/api/user/{}", id.as_str().unwrap()), None).await;
    assert_eq!(app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await.status, 401);
}

#[tokio::test]
async fn global_logout_and_admin_revocation_end_every_session() {
    let app = spawn_app().await;
    let (token, first) = signed_in(&app).await;
    let second = app.login("ann@example.com", "correct horse").await.json["refreshToken"].as_str().unwrap().to_owned();
    let r = app.send(app.client.post(app.url("/api/logout")).bearer_auth(&token).json(&json!({"global": true}))).await;
    assert_eq!(r.status, 200);
    for t in [&first, &second] {
        assert_eq!(app.post_json("/api/jwt/refresh", json!({"refreshToken": t})).await.status, 401);
    }

    let third = app.login("ann@example.com", "correct horse").await.json["refreshToken"].as_str().unwrap().to_owned();
    let id = app.admin(Method::GET, "/api/user?loginId=ann@example.com", None).await.json["user"]["id"].clone();
    let revoke = app.admin(Method::DELETE, &format!("/api/jwt/refresh?userId={}", id.as_str().unwrap()), None).await;
    assert_eq!(revoke.status, 200);
    assert_eq!(app.post_json("/api/jwt/refresh", json!({"refreshToken": third})).await.status, 401);

    let fourth = app.login("ann@example.com", "correct horse").await.json["refreshToken"].as_str().unwrap().to_owned();
    let one = app.admin(Method::DELETE, &format!("/api/jwt/refresh?token={fourth}"), None).await;
    assert_eq!(one.status, 200);
    assert_eq!(app.post_json("/api/jwt/refresh", json!({"refreshToken": fourth})).await.status, 401);
    let unauthenticated = app.send(app.client.delete(app.url("/api/jwt/refresh?token=x"))).await;
    assert_eq!(unauthenticated.status, 401);
}

#[tokio::test]
async fn changing_the_password_revokes_refresh_tokens() {
    let app = spawn_app().await;
    let (_, refresh) = signed_in(&app).await;
    let id = app.admin(Method::GET, "/api/user?loginId=ann@example.com", None).await.json["user"]["id"].clone();
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/user/{}", id.as_str().unwrap()),
            Some(json!({"user": {"password": "brand new pw"}})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await.status, 401);
}
