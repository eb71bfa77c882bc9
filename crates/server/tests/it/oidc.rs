//! OpenID Connect: the code flow with PKCE through the hosted sign-in, as a client
//! library would drive it (plain HTTP here; browser tests come with the pages).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{TestApp, spawn_app};

use crate::forms::{Browser, field, hidden_fields, link, shown_key};

pub const CB: &str = "https://app.example.com/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap().into_iter().collect()
}

pub fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// FusionAuth's application body: an OAuth client for the sample app's callback.
pub fn application(public: bool, login_policy: &str) -> Value {
    let auth = if public { "NotRequiredWhenUsingPKCE" } else { "Required" };
    json!({"application": {
        "name": "Sample app",
        "oauthConfiguration": {"authorizedRedirectURLs": [CB], "clientAuthenticationPolicy": auth},
        "multiFactorConfiguration": {"loginPolicy": login_policy},
    }})
}

pub async fn client(app: &TestApp, public: bool, policy: &str) -> (String, Option<String>) {
    let id = app.state.identity.default_application().id.to_string();
    let r = app.admin(Method::PUT, &format!("/api/application/{id}"), Some(application(public, policy))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (id, r.json["application"]["oauthConfiguration"]["clientSecret"].as_str().map(str::to_owned))
}

pub fn authorize_url(client_id: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20email&state=st8&nonce=n0nce&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        "https%3A%2F%2Fapp.example.com%2Fcallback"
    )
}

/// Authorize → sign-in page → password (→ second factor) → back to authorize → code.
pub async fn sign_in(b: &mut Browser<'_>, client_id: &str, extra: &str, second: Option<String>) -> String {
    let first = b.get(&authorize_url(client_id, extra)).await;
    assert_eq!(first.status, 303);
    let login = first.location.unwrap();
    assert!(login.starts_with("/login?return_to="), "{login}");
    let form = b.get(&login).await;
    assert_eq!(form.status, 200);
    let csrf = field(&form.text, "csrf");
    let signin = field(&form.text, "signin");
    let mut after = b
        .post(
            "/login",
            &[("csrf", &csrf), ("signin", &signin), ("login_id", "ann@example.com"), ("password", "correct horse")],
        )
        .await;
    if let Some(code) = second {
        assert_eq!(after.status, 200, "{}", after.text);
        assert!(after.text.contains("Second step"));
        let second_step = field(&after.text, "signin");
        assert_ne!(second_step, signin, "the sign-in's id changes with the step");
        after = b.post("/login/two-factor", &[("csrf", &csrf), ("signin", &second_step), ("code", &code)]).await;
    }
    assert_eq!(after.status, 303, "{}", after.text);
    let back = b.get(after.location.as_deref().unwrap()).await;
    assert_eq!(back.status, 303);
    let to_client = back.location.unwrap();
    assert!(to_client.starts_with(CB), "{to_client}");
    let q = query(&to_client);
    assert_eq!(q["state"], "st8");
    q["code"].clone()
}

/// Redeems an authorization code the way the sample public client does (PKCE).
pub async fn redeem(app: &TestApp, client_id: &str, code: &str) -> tessera_testkit::Reply {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CB),
        ("client_id", client_id),
        ("code_verifier", VERIFIER),
    ];
    exchange(app, &form).await
}

pub async fn exchange(app: &TestApp, form: &[(&str, &str)]) -> tessera_testkit::Reply {
    app.send(app.client.post(app.url("/oauth2/token")).form(form)).await
}

#[tokio::test]
async fn discovery_describes_the_provider() {
    let app = spawn_app().await;
    let d = app.send(app.client.get(app.url("/.well-known/openid-configuration"))).await;
    assert_eq!(d.json["issuer"], app.base.as_str());
    assert_eq!(d.json["authorization_endpoint"], format!("{}/oauth2/authorize", app.base));
    assert_eq!(d.json["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d.json["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
    let jwks = app.send(app.client.get(d.json["jwks_uri"].as_str().unwrap())).await;
    assert!(jwks.json["keys"].as_array().is_some_and(|k| !k.is_empty()));
}

#[tokio::test]
async fn the_issuer_comes_from_configuration_not_the_host_header() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let (client_id, _) = client(&app, true, "Disabled").await;
    let forged =
        app.send(app.client.get(app.url("/.well-known/openid-configuration")).header("Host", "evil.example")).await;
    assert_eq!(forged.json["issuer"], app.base.as_str(), "a Host header does not move the issuer");
    for endpoint in
        ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"]
    {
        let url = forged.json[endpoint].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/", app.base)), "{endpoint}: {url}");
    }

    // Access and ID tokens name the same issuer as discovery.
    let mut b = Browser::new(&app);
    let code = sign_in(&mut b, &client_id, "", None).await;
    let tokens = redeem(&app, &client_id, &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(claims(tokens.json["id_token"].as_str().unwrap())["iss"], app.base.as_str());
    assert_eq!(claims(tokens.json["access_token"].as_str().unwrap())["iss"], app.base.as_str());
    let api = app.login("ann@example.com", "correct horse").await;
    assert_eq!(claims(api.json["token"].as_str().unwrap())["iss"], app.base.as_str(), "the Login API's token too");

    let behind_proxy = tessera_testkit::app()
        .configure(|c| c.messaging.public_url = Some("https://auth.example.com".into()))
        .spawn()
        .await;
    let d = behind_proxy.send(behind_proxy.client.get(behind_proxy.url("/.well-known/openid-configuration"))).await;
    assert_eq!(d.json["issuer"], "https://auth.example.com");
    assert_eq!(d.json["token_endpoint"], "https://auth.example.com/oauth2/token");
    let named = tessera_testkit::app().configure(|c| c.issuer = Some("https://id.example.com".into())).spawn().await;
    let d = named.send(named.client.get(named.url("/.well-known/openid-configuration"))).await;
    assert_eq!(d.json["issuer"], "https://id.example.com", "the issuer key wins");
    assert_eq!(d.json["token_endpoint"], format!("{}/oauth2/token", named.base), "endpoints stay where we listen");
}

#[tokio::test]
async fn the_code_flow_with_pkce_signs_in_refreshes_and_logs_out() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let (client_id, _) = client(&app, true, "Enabled").await;
    let mut b = Browser::new(&app);
    let code = sign_in(&mut b, &client_id, "", None).await;

    let t = redeem(&app, &client_id, &code).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.json["token_type"], "Bearer");
    let id = claims(t.json["id_token"].as_str().unwrap());
    assert_eq!(
        (id["iss"].as_str(), id["aud"].as_str(), id["nonce"].as_str()),
        (Some(app.base.as_str()), Some(client_id.as_str()), Some("n0nce"))
    );
    assert_eq!(id["amr"], json!(["pwd"]));
    assert!(id["auth_time"].as_i64().is_some());
    assert_eq!(id["email"], "ann@example.com");

    let access = t.json["access_token"].as_str().unwrap();
    let info = app.send(app.client.get(app.url("/oauth2/userinfo")).bearer_auth(access)).await;
    assert_eq!((info.status, info.json["email"].as_str()), (200, Some("ann@example.com")));
    assert_eq!(app.send(app.client.get(app.url("/oauth2/userinfo")).bearer_auth("nope")).await.status, 401);

    let again = redeem(&app, &client_id, &code).await;
    assert_eq!((again.status, again.json["error"].as_str()), (400, Some("invalid_grant")), "a code works once");

    let refreshed = exchange(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t.json["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(refreshed.json["access_token"].is_string());

    // SSO: a second authorize reuses the browser session, no password asked.
    let silent = b.get(&authorize_url(&client_id, "")).await;
    assert!(silent.location.as_deref().unwrap().starts_with(CB));

    // Without an id_token_hint the user confirms: a bare link signs no one out.
    let ask = b.get(&format!("/oauth2/logout?client_id={client_id}&post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&state=bye")).await;
    assert_eq!(ask.status, 200, "{}", ask.text);
    let still = b.get(&authorize_url(&client_id, "")).await;
    assert!(still.location.as_deref().unwrap().starts_with(CB), "still signed in after the GET");
    let carried: Vec<(&str, String)> = ["csrf", "client_id", "post_logout_redirect_uri", "state"]
        .into_iter()
        .map(|k| (k, field(&ask.text, k)))
        .collect();
    let form: Vec<(&str, &str)> = carried.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = b.post("/logout", &form).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("https://app.example.com/callback?state=bye")));
    let after = b.get(&authorize_url(&client_id, "")).await;
    assert!(after.location.unwrap().starts_with("/login"), "signed out");
    let elsewhere = b
        .get(&format!(
            "/oauth2/logout?client_id={client_id}&post_logout_redirect_uri=https%3A%2F%2Fevil.example.com%2F"
        ))
        .await;
    assert_eq!(elsewhere.status, 200, "an unregistered address is not followed");

    // An id_token_hint names the client instead of client_id, even once expired; a
    // forged hint, or one for another client than client_id, is not followed.
    let id_token = t.json["id_token"].as_str().unwrap();
    app.clock.advance(Duration::from_secs(24 * 3600));
    let back = "post_logout_redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback";
    let hinted = b.get(&format!("/oauth2/logout?id_token_hint={id_token}&{back}")).await;
    assert_eq!(hinted.location.as_deref(), Some(CB), "{}", hinted.text);
    let (head, rest) = id_token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"aud": client_id})).unwrap());
    let forged = b.get(&format!("/oauth2/logout?id_token_hint={head}.{forged_claims}.{sig}&{back}")).await;
    assert_eq!(forged.status, 200, "a forged hint is not followed");
    let other = uuid::Uuid::new_v4();
    let mismatched = b.get(&format!("/oauth2/logout?id_token_hint={id_token}&client_id={other}&{back}")).await;
    assert_eq!(mismatched.status, 200, "a hint for another client voids the request");
}

#[tokio::test]
async fn single_sign_on_is_audited_and_email_verified_follows_the_user_record() {
    let app = spawn_app().await;
    let created = app
        .admin(
            Method::POST,
            "/api/user",
            Some(json!({"user": {"email": "ann@example.com", "password": "correct horse"}, "skipVerification": true})),
        )
        .await;
    assert_eq!(created.json["user"]["verified"], true, "the administrator vouched for the address");
    let bob = app.create_user("bob@example.com", "battery staple").await;
    let bob_json = app.admin(Method::GET, &format!("/api/user/{bob}"), None).await;
    assert_eq!(bob_json.json["user"]["verified"], false, "nothing verified bob's address");

    let (client_id, _) = client(&app, true, "Disabled").await;
    let mut b = Browser::new(&app);
    let code = sign_in(&mut b, &client_id, "", None).await;
    let t = redeem(&app, &client_id, &code).await;
    assert_eq!(claims(t.json["id_token"].as_str().unwrap())["email_verified"], true);
    let info = app
        .send(app.client.get(app.url("/oauth2/userinfo")).bearer_auth(t.json["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(info.json["email_verified"], true);

    // Later, the session alone signs ann in: that sign-in is audited too.
    app.clock.advance(Duration::from_secs(600));
    let silent = b.get(&authorize_url(&client_id, "")).await;
    assert!(silent.location.as_deref().unwrap().starts_with(CB));
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
    let outcomes: Vec<&str> = log.json["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "oauth.authorized")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["session", "login"], "newest first");

    // A new address is not verified.
    let id = created.json["user"]["id"].as_str().unwrap();
    let patched =
        app.admin(Method::PATCH, &format!("/api/user/{id}"), Some(json!({"user": {"email": "ann@new.example"}}))).await;
    assert_eq!(patched.json["user"]["verified"], false, "{}", patched.text);
}

#[tokio::test]
async fn bad_requests_get_the_errors_rfc6749_and_rfc7636_name() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let (client_id, secret) = client(&app, false, "Disabled").await;
    let secret = secret.expect("a confidential client gets a secret");
    let mut b = Browser::new(&app);

    let wrong_redirect = b.get(&format!("/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fevil.example.com&scope=openid")).await;
    assert_eq!(
        (wrong_redirect.status, wrong_redirect.location),
        (400, None),
        "never redirected to an unregistered address"
    );
    let token_flow = b.get(&format!("/oauth2/authorize?response_type=token&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&scope=openid&state=s")).await;
    assert_eq!(query(token_flow.location.as_deref().unwrap())["error"], "unsupported_response_type");

    let code = sign_in(&mut b, &client_id, "", None).await;
    let base = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)];
    let bad_secret =
        app.send(app.client.post(app.url("/oauth2/token")).basic_auth(&client_id, Some("wrong")).form(&base)).await;
    assert_eq!((bad_secret.status, bad_secret.json["error"].as_str()), (401, Some("invalid_client")));
    let mut wrong_verifier = base.to_vec();
    wrong_verifier.push(("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    let r = app
        .send(app.client.post(app.url("/oauth2/token")).basic_auth(&client_id, Some(&secret)).form(&wrong_verifier))
        .await;
    assert_eq!((r.status, r.json["error"].as_str()), (400, Some("invalid_grant")), "{}", r.text);
    let replay =
        app.send(app.client.post(app.url("/oauth2/token")).basic_auth(&client_id, Some(&secret)).form(&base)).await;
    assert_eq!(replay.json["error"], "invalid_grant", "the failed attempt spent the code");

    let code = sign_in(&mut b, &client_id, "&prompt=login", None).await;
    app.clock.advance(Duration::from_secs(61));
    let mut late = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    late.push(("client_id", &client_id));
    late.push(("client_secret", &secret));
    let r = exchange(&app, &late).await;
    assert_eq!(r.json["error"], "invalid_grant", "codes live 60 s");
    let r = exchange(&app, &[("grant_type", "password"), ("client_id", &client_id), ("client_secret", &secret)]).await;
    assert_eq!(r.json["error"], "unsupported_grant_type");

    let no_csrf =
        b.post("/login", &[("return_to", "/"), ("login_id", "ann@example.com"), ("password", "correct horse")]).await;
    assert_eq!(no_csrf.status, 403, "forms need their CSRF token");
}

/// A token request for the sample public client, with the fields given.
async fn exchange_code(app: &TestApp, client_id: &str, code: &str, extra: &[(&str, &str)]) -> tessera_testkit::Reply {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("client_id", client_id)];
    form.extend_from_slice(extra);
    exchange(app, &form).await
}

fn invalid_grant(r: &tessera_testkit::Reply) -> (u16, Option<&str>) {
    (r.status, r.json["error"].as_str())
}

#[tokio::test]
async fn the_token_endpoint_wants_the_redirect_uri_the_code_was_issued_for() {
    const OTHER_CB: &str = "https://app.example.com/other-callback";
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let client_id = app.state.identity.default_application().id.to_string();
    let mut body = application(true, "Disabled");
    body["application"]["oauthConfiguration"]["authorizedRedirectURLs"] = json!([CB, OTHER_CB]);
    let r = app.admin(Method::PUT, &format!("/api/application/{client_id}"), Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut b = Browser::new(&app);

    // Registered for the client, but not the address this code was issued for (RFC 6749 §4.1.3).
    let code = sign_in(&mut b, &client_id, "", None).await;
    let r = exchange_code(&app, &client_id, &code, &[("redirect_uri", OTHER_CB), ("code_verifier", VERIFIER)]).await;
    assert_eq!(invalid_grant(&r), (400, Some("invalid_grant")), "another registered redirect_uri: {}", r.text);
    let code = sign_in(&mut b, &client_id, "&prompt=login", None).await;
    let r = exchange_code(&app, &client_id, &code, &[("code_verifier", VERIFIER)]).await;
    assert_eq!(invalid_grant(&r), (400, Some("invalid_grant")), "no redirect_uri: {}", r.text);
    let code = sign_in(&mut b, &client_id, "&prompt=login", None).await;
    let r = exchange_code(&app, &client_id, &code, &[("redirect_uri", CB), ("code_verifier", VERIFIER)]).await;
    assert_eq!(r.status, 200, "the same redirect_uri: {}", r.text);
    assert!(r.json["id_token"].is_string());
}

#[tokio::test]
async fn a_public_client_needs_the_code_verifier_of_its_challenge() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let (client_id, secret) = client(&app, true, "Disabled").await;
    assert!(secret.is_none(), "a public client has no secret to fall back on");
    let mut b = Browser::new(&app);

    let code = sign_in(&mut b, &client_id, "", None).await;
    let r = exchange_code(&app, &client_id, &code, &[("redirect_uri", CB)]).await;
    assert_eq!(invalid_grant(&r), (400, Some("invalid_grant")), "no code_verifier: {}", r.text);
    let code = sign_in(&mut b, &client_id, "&prompt=login", None).await;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
    let r = exchange_code(&app, &client_id, &code, &[("redirect_uri", CB), ("code_verifier", wrong)]).await;
    assert_eq!(invalid_grant(&r), (400, Some("invalid_grant")), "a wrong code_verifier: {}", r.text);
    let code = sign_in(&mut b, &client_id, "&prompt=login", None).await;
    let r = redeem(&app, &client_id, &code).await;
    assert_eq!(r.status, 200, "the right code_verifier: {}", r.text);
}

#[tokio::test]
async fn a_user_with_a_factor_passes_it_and_the_id_token_says_so() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;
    let (client_id, _) = client(&app, true, "Enabled").await;
    let mut b = Browser::new(&app);
    let code =
        sign_in(&mut b, &client_id, &format!("&acr_values={}", "urn%3Atessera%3Amfa"), Some(app.totp(&secret, 1)))
            .await;
    let t = redeem(&app, &client_id, &code).await;
    let id = claims(t.json["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["acr"], "urn:tessera:mfa");
}

#[tokio::test]
async fn max_age_idle_sessions_and_required_factors() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let (client_id, _) = client(&app, true, "Enabled").await;
    let mut b = Browser::new(&app);
    sign_in(&mut b, &client_id, "", None).await;

    app.clock.advance(Duration::from_secs(120));
    let fresh_enough = b.get(&authorize_url(&client_id, "&max_age=300")).await;
    assert!(fresh_enough.location.unwrap().starts_with(CB));
    let too_old = b.get(&authorize_url(&client_id, "&max_age=60")).await;
    assert!(too_old.location.unwrap().starts_with("/login"), "max_age asks for a new sign-in");

    app.clock.advance(Duration::from_secs(31 * 60));
    let idle = b.get(&authorize_url(&client_id, "")).await;
    assert!(idle.location.unwrap().starts_with("/login"), "30 minutes idle ends the session");

    // However active, a session ends 12 hours after sign-in.
    sign_in(&mut b, &client_id, "", None).await;
    for _ in 0..28 {
        app.clock.advance(Duration::from_secs(25 * 60));
        let active = b.get(&authorize_url(&client_id, "")).await;
        assert!(active.location.unwrap().starts_with(CB), "activity within 30 minutes keeps the session");
    }
    app.clock.advance(Duration::from_secs(25 * 60));
    let old = b.get(&authorize_url(&client_id, "")).await;
    assert!(old.location.unwrap().starts_with("/login"), "12 hours after sign-in the session is over");

    // `always` with no factor enrolled: enrollment, not a sign-in loop.
    let (client_id, _) = client(&app, true, "Required").await;
    let first = b.get(&authorize_url(&client_id, "")).await;
    let login = b.get(first.location.as_deref().unwrap()).await;
    let csrf = field(&login.text, "csrf");
    let signin = field(&login.text, "signin");
    let form = [
        ("csrf", csrf.as_str()),
        ("signin", signin.as_str()),
        ("login_id", "ann@example.com"),
        ("password", "correct horse"),
    ];
    // The sign-in itself asks for a factor: its enrolment stage, under a new id, holding
    // the key the page shows (the page's forms carry only the id and the CSRF token).
    let page = b.post("/login", &form).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Add a second step") && page.text.contains("<svg"), "a QR code to scan");
    let enrolment = field(&page.text, "signin");
    assert_ne!(enrolment, signin, "the sign-in's id changes with the step");
    let hidden = hidden_fields(&page.text);
    assert!(hidden.iter().all(|f| f == "csrf" || f == "signin"), "{hidden:?}");
    let key = shown_key(&page.text);
    let secret = tessera_core::base32::decode(&key).unwrap();
    let step = tessera_core::totp::step_at(tessera_server::clock::Clock::now(app.clock.as_ref()), 30);
    let totp = tessera_core::totp::totp_at_step(&tessera_core::totp::TotpParams::default(), &secret, step);
    let wrong_code = b.post("/login/enroll", &[("csrf", &csrf), ("signin", &enrolment), ("code", "000000")]).await;
    assert_eq!(wrong_code.status, 401);
    assert_eq!(shown_key(&wrong_code.text), key, "the same key, kept with the sign-in");
    let done = b.post("/login/enroll", &[("csrf", &csrf), ("signin", &enrolment), ("code", &totp)]).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.text.matches("<li><code>").count(), 10, "ten recovery codes, shown once");
    let again = b.post("/login/enroll", &[("csrf", &csrf), ("signin", &enrolment), ("code", &totp)]).await;
    assert_eq!(again.status, 400, "the enrolment is spent: {}", again.text);
    let back_to = link(&done.text);
    assert!(back_to.starts_with("/oauth2/authorize?"), "{back_to}");
    let back = b.get(&back_to).await;
    let to_client = back.location.unwrap();
    assert!(to_client.starts_with(CB), "{to_client}");
    let code = query(&to_client)["code"].clone();
    let t = redeem(&app, &client_id, &code).await;
    assert_eq!(claims(t.json["id_token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    // A new sign-in: the one above was used up.
    let signin = field(&b.get("/login").await.text, "signin");
    let wrong = b
        .post("/login", &[("csrf", &csrf), ("signin", &signin), ("login_id", "ann@example.com"), ("password", "nope")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("is not right"), "errors in words, not JSON");
}

#[tokio::test]
async fn a_real_openid_connect_client_library_completes_the_flow() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let (client_id, _) = client(&app, true, "Enabled").await;
    let python = tokio::task::spawn_blocking(crate::sdk::python_with_authlib).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/oidc_client.py");
    let server_now = tessera_server::clock::Clock::now(app.clock.as_ref()).seconds().to_string();
    let run = |args: Vec<String>| {
        let (python, server_now) = (python.clone(), server_now.clone());
        async move {
            let mut cmd = tokio::process::Command::new(python);
            cmd.arg(script).args(args).env("SERVER_NOW", server_now);
            let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("in time").unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
            stdout
        }
    };
    let started: Value =
        serde_json::from_str(&run(vec!["start".into(), app.base.clone(), client_id.clone(), CB.into()]).await).unwrap();

    // The browser part: the authorization URL, the sign-in pages, back to the client.
    let mut b = Browser::new(&app);
    let first = b.get(started["url"].as_str().unwrap()).await;
    let form = b.get(first.location.as_deref().unwrap()).await;
    let (csrf, signin) = (field(&form.text, "csrf"), field(&form.text, "signin"));
    let after = b
        .post(
            "/login",
            &[("csrf", &csrf), ("signin", &signin), ("login_id", "ann@example.com"), ("password", "correct horse")],
        )
        .await;
    let back = b.get(after.location.as_deref().unwrap()).await;
    let callback = back.location.unwrap();
    assert!(callback.starts_with(CB));

    let s = |k: &str| started[k].as_str().unwrap().to_owned();
    let finished = run(vec![
        "finish".into(),
        app.base.clone(),
        client_id,
        CB.into(),
        callback,
        s("state"),
        s("verifier"),
        s("nonce"),
    ])
    .await;
    let (ok, logout) = finished.trim_end().split_once('\n').unwrap_or((finished.trim_end(), ""));
    assert_eq!(ok, "OK", "{finished}");

    // The logout URL the client made, followed by the browser that holds the session.
    assert!(logout.starts_with(&format!("{}/oauth2/logout?id_token_hint=", app.base)), "{logout}");
    let out = b.get(logout).await;
    assert_eq!(out.status, 303, "{}", out.text);
    assert_eq!(out.location.as_deref(), Some(format!("{CB}?state=bye").as_str()), "back to the app");
    let again = b.get(started["url"].as_str().unwrap()).await;
    assert!(again.location.unwrap().starts_with("/login?"), "the provider session is over");
}

#[tokio::test]
async fn a_return_to_with_a_line_break_is_a_malformed_request() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let mut b = Browser::new(&app);
    let link = b.get("/login?return_to=%2Foauth2%2Fauthorize%3Fx%0D%0ASet-Cookie%3A%20a%3Db").await;
    assert_eq!(link.status, 400, "{}", link.text);
    let form = b.get("/login").await;
    let csrf = field(&form.text, "csrf");
    let evil = "/oauth2/authorize?x\r\nSet-Cookie: a=b";
    let posted = b
        .post(
            "/login",
            &[("csrf", &csrf), ("return_to", evil), ("login_id", "ann@example.com"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(posted.status, 400, "{}", posted.text);
    assert!(posted.text.contains("malformed"), "{}", posted.text);
    assert_eq!(b.get("/account").await.status, 303, "no session was started");
}

#[tokio::test]
async fn the_account_page_stops_checking_codes_after_five_wrong_ones() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;
    let mut b = Browser::new(&app);
    let (csrf, second) = b.sign_in_to_account().await;
    b.second_step(&csrf, &second, &app.totp(&secret, 1)).await;
    let page = b.get("/account").await;
    let (csrf, method_id) = (field(&page.text, "csrf"), field(&page.text, "method_id"));
    for i in 0..5 {
        let wrong = b.post("/account/remove", &[("csrf", &csrf), ("method_id", &method_id), ("code", "000000")]).await;
        assert_eq!(wrong.status, 401, "wrong code {i}");
    }
    app.clock.advance(Duration::from_secs(60));
    let right = app.totp(&secret, 0);
    let locked = b.post("/account/remove", &[("csrf", &csrf), ("method_id", &method_id), ("code", &right)]).await;
    assert_eq!(locked.status, 409, "{}", locked.text);
    assert!(locked.text.contains("Too many wrong codes; nothing was removed."), "{}", locked.text);
    assert_eq!(app.factors_of("ann@example.com").await.len(), 1);
}

#[tokio::test]
async fn the_account_page_lists_and_manages_factors() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;

    let mut b = Browser::new(&app);
    let anonymous = b.get("/account").await;
    assert_eq!(anonymous.location.as_deref(), Some("/login?return_to=%2Faccount"));
    let (csrf, second) = b.sign_in_to_account().await;
    let done = b.second_step(&csrf, &second, &app.totp(&secret, 1)).await;
    assert_eq!(done.location.as_deref(), Some("/account"));

    let page = b.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Signed in as ann@example.com"));
    assert!(page.text.contains("Authenticator app"));
    assert!(page.text.contains("<li>2026-01-01T00:00:00Z from 127.0.0.1</li>"), "{}", page.text);
    let csrf = field(&page.text, "csrf");
    let codes = b.post("/account/recovery-codes", &[("csrf", &csrf)]).await;
    assert_eq!(codes.text.matches("<li><code>").count(), 10);

    let method_id = field(&page.text, "method_id");
    let wrong = b.post("/account/remove", &[("csrf", &csrf), ("method_id", &method_id), ("code", "000000")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("nothing was removed"));
    app.clock.advance(Duration::from_secs(60));
    let removed =
        b.post("/account/remove", &[("csrf", &csrf), ("method_id", &method_id), ("code", &app.totp(&secret, 0))]).await;
    assert!(removed.text.contains("Removed."), "{}", removed.text);
    assert!(!removed.text.contains("Authenticator app<form"));

    let ask = b.get("/logout").await;
    assert!(ask.text.contains("Sign out ann@example.com?"), "{}", ask.text);
    assert_eq!(b.get("/account").await.status, 200, "a GET signs no one out");
    let forged = b.post("/logout", &[("csrf", "not-the-token")]).await;
    assert_eq!(forged.status, 403, "another site's form cannot sign out");
    assert_eq!(b.get("/account").await.status, 200);
    let out = b.post("/logout", &[("csrf", &field(&ask.text, "csrf"))]).await;
    assert!(out.text.contains("You are signed out."), "{}", out.text);
    assert_eq!(b.get("/account").await.status, 303, "signed out means signed out");
}

/// Redemption is one unit: a code is spent exactly when its refresh token is stored,
/// so a failure in between leaves the code good for one more try, and only one.
#[tokio::test]
async fn a_code_whose_tokens_could_not_be_stored_is_not_spent() {
    for app in [spawn_app().await, tessera_testkit::app().backend(tessera_store::Backend::Postgres).spawn().await] {
        app.create_user("ann@example.com", "correct horse").await;
        let (client_id, _) = client(&app, true, "Disabled").await;
        let code = sign_in(&mut Browser::new(&app), &client_id, "", None).await;
        app.refuse_inserts_into("refresh_tokens").await;
        assert_eq!(redeem(&app, &client_id, &code).await.status, 500);
        app.allow_inserts_into("refresh_tokens").await;
        let tokens = redeem(&app, &client_id, &code).await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        let again = redeem(&app, &client_id, &code).await;
        assert_eq!((again.status, again.json["error"].as_str()), (400, Some("invalid_grant")), "then it is spent");
    }
}

/// 50 redemptions of one code at once, spread over the instances: one gets tokens.
#[tokio::test]
async fn a_code_redeemed_fifty_times_at_once_gives_tokens_once() {
    use crate::limits::{admitted, deployments, fifty, name};
    for apps in deployments(|_| {}).await {
        apps[0].create_user("ann@example.com", "correct horse").await;
        let (client_id, _) = client(&apps[0], true, "Disabled").await;
        let code = sign_in(&mut Browser::new(&apps[0]), &client_id, "", None).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("client_id", client_id.as_str()),
            ("code_verifier", VERIFIER),
        ];
        let replies = fifty(&apps, |a, _| a.client.post(a.url("/oauth2/token")).form(&form)).await;
        assert_eq!(admitted(&replies, 200), 1, "{}", name(&apps));
        assert!(replies.iter().filter(|r| r.status != 200).all(|r| r.json["error"] == "invalid_grant"));
    }
}
