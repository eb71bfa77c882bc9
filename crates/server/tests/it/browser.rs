//! The hosted pages in headless Chromium (Debian's `chromium`, driven by npm
//! `playwright-core`; `scripts/test` installs both). Screenshots are kept under
//! `target/browser-artifacts/`.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tessera_testkit::{TestApp, spawn_app};

use crate::oidc::{CB, CHALLENGE, application, claims, query, redeem};

fn authorize(client_id: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback\
         &scope=openid&state=s1&nonce=n1&code_challenge={CHALLENGE}&code_challenge_method=S256"
    )
}

async fn browse(app: &TestApp, name: &str, env: &[(&str, String)]) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser");
    let artifacts = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/browser-artifacts");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(format!("{root}/signin.mjs"))
        .current_dir(root)
        .env("BASE", &app.base)
        .env("ARTIFACTS", format!("{artifacts}/{name}"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("the browser finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout.trim().to_owned()
}

async fn amr_after(app: &TestApp, callback: &str, client_id: &str) -> serde_json::Value {
    assert!(callback.starts_with(CB), "{callback}");
    let t = redeem(app, client_id, &query(callback)["code"]).await;
    assert_eq!(t.status, 200, "{}", t.text);
    claims(t.json["id_token"].as_str().unwrap())["amr"].clone()
}

async fn client(app: &TestApp, policy: &str) -> String {
    let id = app.state.identity.default_application().id.to_string();
    let r = app.admin(Method::PUT, &format!("/api/application/{id}"), Some(application(true, policy))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

#[tokio::test]
async fn password_and_authenticator_sign_in_in_chromium() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;
    let client_id = client(&app, "Enabled").await;
    let callback = browse(
        &app,
        "totp",
        &[
            ("AUTHORIZE", authorize(&client_id)),
            ("LOGIN_ID", "ann@example.com".into()),
            ("PASSWORD", "correct horse".into()),
            ("TOTP_CODE", app.totp(&secret, 1)),
        ],
    )
    .await;
    assert_eq!(amr_after(&app, &callback, &client_id).await, json!(["pwd", "otp", "mfa"]));
}

#[tokio::test]
async fn a_forced_factor_is_enrolled_in_chromium() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let client_id = client(&app, "Required").await;
    // What the authenticator app would show for the key on the page, at the server's time.
    let now = tessera_server::clock::Clock::now(app.clock.as_ref());
    let codes = axum::Router::new().route(
        "/code",
        axum::routing::get(move |q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
            let secret = tessera_core::base32::decode(q.get("key").map_or("", String::as_str)).unwrap_or_default();
            tessera_core::totp::totp_at_step(
                &tessera_core::totp::TotpParams::default(),
                &secret,
                tessera_core::totp::step_at(now, 30),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let code_url = format!("http://{}/code", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, codes).await });
    let callback = browse(
        &app,
        "enroll",
        &[
            ("AUTHORIZE", authorize(&client_id)),
            ("LOGIN_ID", "ann@example.com".into()),
            ("PASSWORD", "correct horse".into()),
            ("ENROLL", "1".into()),
            ("ENROLL_CODE_URL", code_url),
        ],
    )
    .await;
    assert_eq!(amr_after(&app, &callback, &client_id).await, json!(["pwd", "otp", "mfa"]));
    let methods = app.factors_of("ann@example.com").await;
    assert_eq!(methods.len(), 1, "the factor is on the account");
}

#[tokio::test]
async fn a_forced_phone_is_enrolled_with_the_country_picker_in_chromium() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let client_id = client(&app, "Required").await;
    let code_url = code_endpoint(&app, "+442079460958").await;
    let callback = browse(
        &app,
        "enroll-phone",
        &[
            ("AUTHORIZE", authorize(&client_id)),
            ("LOGIN_ID", "ann@example.com".into()),
            ("PASSWORD", "correct horse".into()),
            ("ENROLL", "phone".into()),
            ("ENROLL_REGION", "GB".into()),
            ("ENROLL_PHONE", "020 7946 0958".into()),
            ("CODE_URL", code_url),
        ],
    )
    .await;
    assert_eq!(amr_after(&app, &callback, &client_id).await, json!(["pwd", "sms", "mfa"]));
    let methods = app.factors_of("ann@example.com").await;
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0].phone().map(|p| p.as_str()), Some("+442079460958"), "read as a UK number");
}

/// A local endpoint that answers the last code the console messenger sent to `phone`.
async fn code_endpoint(app: &TestApp, phone: &'static str) -> String {
    let console = app.state.console.clone();
    let route = axum::Router::new().route(
        "/code",
        axum::routing::get(move || {
            let console = console.clone();
            async move {
                let text = console.last_to(phone).map(|m| m.text).unwrap_or_default();
                text.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect::<String>()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/code", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, route).await });
    url
}

async fn with_sms(app: &TestApp, phone: &'static str) -> Vec<String> {
    let user = app.create_user("ann@example.com", "correct horse").await;
    let on = app.enable_sms(&user, phone).await;
    on["recoveryCodes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn password_and_sms_sign_in_then_a_remembered_device_in_chromium() {
    let app = spawn_app().await;
    with_sms(&app, "+15554443232").await;
    let client_id = client(&app, "Enabled").await;
    let code_url = code_endpoint(&app, "+15554443232").await;
    let out = browse(
        &app,
        "sms",
        &[
            ("AUTHORIZE", authorize(&client_id)),
            ("LOGIN_ID", "ann@example.com".into()),
            ("PASSWORD", "correct horse".into()),
            ("CODE_URL", code_url),
            ("TRUST", "1".into()),
        ],
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(amr_after(&app, lines[0], &client_id).await, json!(["pwd", "sms", "mfa"]));
    assert_eq!(
        amr_after(&app, lines[1], &client_id).await,
        json!(["pwd", "mfa"]),
        "the remembered device stood in for the second step"
    );
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_in_chromium() {
    let app = spawn_app().await;
    let codes = with_sms(&app, "+15554443232").await;
    let client_id = client(&app, "Enabled").await;
    let env = |code: &str| {
        vec![
            ("AUTHORIZE", authorize(&client_id)),
            ("LOGIN_ID", "ann@example.com".to_owned()),
            ("PASSWORD", "correct horse".to_owned()),
            ("TOTP_CODE", code.to_owned()),
        ]
    };
    let callback = browse(&app, "recovery", &env(&codes[0])).await;
    assert_eq!(amr_after(&app, &callback, &client_id).await, json!(["pwd", "otp", "mfa"]));
    let count = app.factors_of("ann@example.com").await.len();
    assert_eq!(count, 1);
}
