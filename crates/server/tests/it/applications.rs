//! FusionAuth's Application API: applications as OAuth clients with hashed secrets,
//! exact redirect URLs and a second-factor login policy.

use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{TestApp, spawn_app};

fn body(name: &str, auth: &str, login_policy: &str) -> Value {
    json!({"application": {
        "name": name,
        "oauthConfiguration": {
            "authorizedRedirectURLs": ["https://app.example.com/callback"],
            "clientAuthenticationPolicy": auth,
        },
        "multiFactorConfiguration": {"loginPolicy": login_policy},
    }})
}

/// What `/oauth2/token` thinks of these client credentials: a made-up refresh token
/// is `invalid_grant` for a client that authenticated and `invalid_client` otherwise.
async fn client_authenticates(app: &TestApp, id: &str, secret: &str) -> bool {
    let r = app
        .send(
            app.client
                .post(app.url("/oauth2/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "not-a-real-token")]),
        )
        .await;
    match r.json["error"].as_str() {
        Some("invalid_grant") => true,
        Some("invalid_client") => false,
        other => panic!("unexpected {other:?}: {}", r.text),
    }
}

#[tokio::test]
async fn an_application_is_created_with_a_secret_shown_once() {
    let app = spawn_app().await;
    // Later than the bootstrap application, so the list's order is defined.
    app.clock.advance(std::time::Duration::from_secs(1));
    let r = app.admin(Method::POST, "/api/application", Some(body("Billing", "Required", "Required"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = &r.json["application"];
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["name"], "Billing");
    assert_eq!(a["oauthConfiguration"]["clientId"], id.as_str());
    assert_eq!(a["oauthConfiguration"]["authorizedRedirectURLs"], json!(["https://app.example.com/callback"]));
    assert_eq!(a["oauthConfiguration"]["clientAuthenticationPolicy"], "Required");
    assert_eq!(a["multiFactorConfiguration"]["loginPolicy"], "Required");
    let secret = a["oauthConfiguration"]["clientSecret"].as_str().expect("shown when made").to_owned();
    assert!(secret.len() >= 43, "{secret}");

    let stored = app.state.store.oauth_client(id.parse().unwrap()).await.unwrap().unwrap();
    assert_ne!(stored.secret_digest.as_deref(), Some(secret.as_str()), "kept hashed");
    assert_eq!(stored.mfa_policy, tessera_core::oidc::MfaPolicy::Always);
    assert!(client_authenticates(&app, &id, &secret).await);
    assert!(!client_authenticates(&app, &id, "wrong-secret").await);

    let got = app.admin(Method::GET, &format!("/api/application/{id}"), None).await;
    assert_eq!(got.status, 200);
    assert!(got.json["application"]["oauthConfiguration"].get("clientSecret").is_none(), "never shown again");
    let all = app.admin(Method::GET, "/api/application", None).await;
    let names: Vec<&str> =
        all.json["applications"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[1], "Billing", "the bootstrap application comes first");

    let anonymous = app.send(app.client.get(app.url("/api/application"))).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(app.admin(Method::GET, &format!("/api/application/{}", uuid::Uuid::new_v4()), None).await.status, 404);
}

#[tokio::test]
async fn a_moved_client_keeps_its_id_and_secret() {
    let app = spawn_app().await;
    let id = "3c219e58-ed0e-4b18-ad48-f4f92793ae32";
    let secret = "GRiX6hQq2VcGFfO7RvRu3bBXptkVKKuCDE0cGMG1T6w";
    let mut b = body("Moved", "Required", "Enabled");
    b["application"]["oauthConfiguration"]["clientSecret"] = json!(secret);
    let r = app.admin(Method::POST, &format!("/api/application/{id}"), Some(b.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["application"]["id"], id);
    assert!(r.json["application"]["oauthConfiguration"].get("clientSecret").is_none(), "the caller knows it");
    assert!(client_authenticates(&app, id, secret).await, "the old secret works unchanged");

    b["application"]["name"] = json!("Other");
    let again = app.admin(Method::POST, &format!("/api/application/{id}"), Some(b)).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json["fieldErrors"]["applicationId"][0]["code"], "[duplicate]applicationId");
    let kept = app.admin(Method::GET, &format!("/api/application/{id}"), None).await;
    assert_eq!(kept.json["application"]["name"], "Moved", "nothing overwritten");
    let bad_id = app.admin(Method::POST, "/api/application/not-a-uuid", Some(body("X", "Required", "Enabled"))).await;
    assert_eq!(bad_id.json["fieldErrors"]["applicationId"][0]["code"], "[invalid]applicationId");
}

#[tokio::test]
async fn bad_settings_are_refused_by_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let mut b = body("  ", "Sometimes", "Often");
    b["application"]["oauthConfiguration"]["authorizedRedirectURLs"] =
        json!(["https://app.example.com/cb#frag", "/relative", "https://ok.example.com/cb"]);
    let r = app.admin(Method::POST, "/api/application", Some(b)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let f = &r.json["fieldErrors"];
    assert_eq!(
        f["application.oauthConfiguration.clientAuthenticationPolicy"][0]["code"],
        "[invalid]application.oauthConfiguration.clientAuthenticationPolicy"
    );
    assert_eq!(
        f["application.multiFactorConfiguration.loginPolicy"][0]["code"],
        "[invalid]application.multiFactorConfiguration.loginPolicy"
    );

    let mut b = body("  ", "Required", "Enabled");
    b["application"]["oauthConfiguration"]["authorizedRedirectURLs"] =
        json!(["https://app.example.com/cb#frag", "/relative", "https://ok.example.com/cb"]);
    b["application"]["oauthConfiguration"]["clientSecret"] = json!("short");
    let r = app.admin(Method::POST, "/api/application", Some(b)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let f = &r.json["fieldErrors"];
    assert_eq!(f["application.name"][0]["code"], "[blank]application.name");
    let uris = f["application.oauthConfiguration.authorizedRedirectURLs"].as_array().unwrap();
    assert_eq!(uris.len(), 2, "one error per bad URL: {uris:?}");
    assert!(uris[0]["message"].as_str().unwrap().contains("fragment"), "{uris:?}");
    assert_eq!(
        f["application.oauthConfiguration.clientSecret"][0]["code"],
        "[tooShort]application.oauthConfiguration.clientSecret"
    );

    let mut pkce = body("PKCE", "Required", "Enabled");
    pkce["application"]["oauthConfiguration"]["proofKeyForCodeExchangePolicy"] = json!("Required");
    let r = app.admin(Method::POST, "/api/application", Some(pkce)).await;
    assert_eq!(
        r.json["fieldErrors"]["application.oauthConfiguration.proofKeyForCodeExchangePolicy"][0]["code"],
        "[notSupported]application.oauthConfiguration.proofKeyForCodeExchangePolicy",
        "refused rather than silently not enforced"
    );
    let all = app.admin(Method::GET, "/api/application", None).await;
    assert_eq!(all.json["applications"].as_array().unwrap().len(), 1, "only the bootstrap application");
}

#[tokio::test]
async fn an_update_replaces_the_settings_and_keeps_or_drops_the_secret() {
    let app = spawn_app().await;
    let r = app.admin(Method::POST, "/api/application", Some(body("Web", "Required", "Enabled"))).await;
    let id = r.json["application"]["id"].as_str().unwrap().to_owned();
    let secret = r.json["application"]["oauthConfiguration"]["clientSecret"].as_str().unwrap().to_owned();

    let renamed =
        app.admin(Method::PUT, &format!("/api/application/{id}"), Some(body("Web 2", "Required", "Disabled"))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.json["application"]["name"], "Web 2");
    assert_eq!(renamed.json["application"]["multiFactorConfiguration"]["loginPolicy"], "Disabled");
    assert!(renamed.json["application"]["oauthConfiguration"].get("clientSecret").is_none());
    assert!(client_authenticates(&app, &id, &secret).await, "the secret is kept");

    let public =
        app.admin(Method::PUT, &format!("/api/application/{id}"), Some(body("SPA", "NotRequired", "Enabled"))).await;
    assert_eq!(public.status, 200, "{}", public.text);
    let o = &public.json["application"]["oauthConfiguration"];
    assert_eq!(o["clientAuthenticationPolicy"], "NotRequiredWhenUsingPKCE", "PKCE stands in for the secret");
    assert_eq!(o["proofKeyForCodeExchangePolicy"], "Required");
    let stored = app.state.store.oauth_client(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.secret_digest, None, "a public client has no secret");

    let missing = app
        .admin(
            Method::PUT,
            &format!("/api/application/{}", uuid::Uuid::new_v4()),
            Some(body("X", "Required", "Enabled")),
        )
        .await;
    assert_eq!(missing.status, 404);
}

async fn login(app: &TestApp, application_id: &str) -> tessera_testkit::Reply {
    let body = json!({"loginId": "ann@example.com", "password": "correct horse", "applicationId": application_id});
    app.send(app.client.post(app.url("/api/login")).json(&body)).await
}

async fn refresh(app: &TestApp, token: &str) -> u16 {
    app.send(app.client.post(app.url("/api/jwt/refresh")).json(&json!({"refreshToken": token}))).await.status
}

#[tokio::test]
async fn a_deleted_application_signs_nobody_in_until_reactivated_and_a_hard_delete_is_final() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let r = app.admin(Method::POST, "/api/application", Some(body("Shop", "Required", "Enabled"))).await;
    let id = r.json["application"]["id"].as_str().unwrap().to_owned();
    let secret = r.json["application"]["oauthConfiguration"]["clientSecret"].as_str().unwrap().to_owned();
    let first = login(&app, &id).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let refresh_token = first.json["refreshToken"].as_str().unwrap().to_owned();

    let soft = app.admin(Method::DELETE, &format!("/api/application/{id}"), None).await;
    assert_eq!(soft.status, 200, "{}", soft.text);
    let shown = app.admin(Method::GET, &format!("/api/application/{id}"), None).await;
    assert_eq!(shown.json["application"]["active"], false, "deactivated, not gone");
    let refused = login(&app, &id).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json["fieldErrors"]["applicationId"][0]["code"], "[inactive]applicationId");
    assert_eq!(refresh(&app, &refresh_token).await, 401, "its tokens do not refresh");
    assert!(!client_authenticates(&app, &id, &secret).await, "nor does it act as an OAuth client");

    let back = app.admin(Method::PUT, &format!("/api/application/{id}?reactivate=true"), None).await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(back.json["application"]["active"], true);
    assert_eq!(login(&app, &id).await.status, 200);
    assert_eq!(refresh(&app, &refresh_token).await, 200, "reactivated, its tokens work again");
    assert!(client_authenticates(&app, &id, &secret).await);

    let hard = app.admin(Method::DELETE, &format!("/api/application/{id}?hardDelete=true"), None).await;
    assert_eq!(hard.status, 200);
    assert_eq!(app.admin(Method::GET, &format!("/api/application/{id}"), None).await.status, 404);
    assert_eq!(refresh(&app, &refresh_token).await, 401);
    assert_eq!(app.admin(Method::DELETE, &format!("/api/application/{id}"), None).await.status, 404);
    assert_eq!(app.admin(Method::PUT, &format!("/api/application/{id}?reactivate=true"), None).await.status, 404);

    // Every change is in the audit log, outcome and all; the secret never is.
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
    let ours: Vec<(String, String)> = log.json["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("application."))
        .map(|e| (e["event"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("application.deleted", "deleted"),
        ("application.updated", "success"),
        ("application.deleted", "deactivated"),
        ("application.created", "success"),
    ];
    assert_eq!(ours, expected.map(|(e, o)| (e.to_owned(), o.to_owned())), "newest first");
    assert!(!log.text.contains(&secret), "no client secret in the audit log");

    let default_id = app.state.identity.default_application().id.to_string();
    let keep = app.admin(Method::DELETE, &format!("/api/application/{default_id}?hardDelete=true"), None).await;
    assert_eq!(keep.status, 400);
    assert_eq!(keep.json["fieldErrors"]["applicationId"][0]["code"], "[cannotDelete]applicationId");
    assert_eq!(app.send(app.client.delete(app.url(&format!("/api/application/{default_id}")))).await.status, 401);
}

#[tokio::test]
async fn a_second_step_begun_before_deactivation_does_not_finish() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    app.enable_sms(&user, "+15554443232").await;
    let r = app.admin(Method::POST, "/api/application", Some(body("Shop", "Required", "Enabled"))).await;
    let id = r.json["application"]["id"].as_str().unwrap().to_owned();

    let started = login(&app, &id).await;
    assert_eq!(started.status, 242, "{}", started.text);
    let challenge = started.json["twoFactorId"].as_str().unwrap().to_owned();
    let sent = app.send(app.client.post(app.url(&format!("/api/two-factor/send/{challenge}"))).json(&json!({}))).await;
    assert_eq!(sent.status, 200);
    let code = app.last_code_to("+15554443232").unwrap();
    assert_eq!(app.admin(Method::DELETE, &format!("/api/application/{id}"), None).await.status, 200);
    let finish = json!({"twoFactorId": challenge, "code": code});
    let r = app.send(app.client.post(app.url("/api/two-factor/login")).json(&finish)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.json.get("token").is_none());
}

/// A code sent for a sign-in names the application it is for; a code outside a sign-in
/// (proving a new phone) names the default one.
#[tokio::test]
async fn a_sign_in_code_names_the_application_it_is_for() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    app.enable_sms(&user, "+15554443232").await;
    let enrolment = app.state.console.last_to("+15554443232").unwrap().text;
    assert!(enrolment.contains("Default"), "{enrolment}");

    let r = app.admin(Method::POST, "/api/application", Some(body("Acme Portal", "Required", "Enabled"))).await;
    let application_id = r.json["application"]["id"].as_str().unwrap().to_owned();
    let challenge = login(&app, &application_id).await;
    assert_eq!(challenge.status, 242, "{}", challenge.text);
    let two_factor_id = challenge.json["twoFactorId"].as_str().unwrap();
    let sent = app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let text = app.state.console.last_to("+15554443232").unwrap().text;
    assert!(text.contains("Acme Portal"), "{text}");
}
