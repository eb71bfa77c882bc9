//! The hosted pages beyond the OpenID Connect flow: phone enrolment with the country
//! picker, voice codes, themes, and the headers every page carries.

use reqwest::Method;

use tessera_core::messaging::Channel;
use tessera_testkit::{TestApp, app, spawn_app};

use crate::forms::{Browser, Page, field, hidden_fields, send_action};

/// Signs in (password only: the user has no factor yet) and opens the enrolment page.
async fn signed_in<'a>(app: &'a TestApp) -> (Browser<'a>, String) {
    app.create_user("ann@example.com", "correct horse").await;
    let mut b = Browser::new(app);
    let (csrf, done) = b.sign_in_to_account().await;
    assert_eq!(done.location.as_deref(), Some("/account"), "{}", done.text);
    (b, csrf)
}

async fn send_to(b: &mut Browser<'_>, csrf: &str, region: &str, phone: &str, channel: &str) -> Page {
    b.post(
        "/login/enroll/phone",
        &[("csrf", csrf), ("return_to", "/account"), ("region", region), ("phone", phone), ("channel", channel)],
    )
    .await
}

#[tokio::test]
async fn a_phone_is_enrolled_with_the_country_picker_and_a_national_number() {
    let app = spawn_app().await;
    let (mut b, csrf) = signed_in(&app).await;
    let req = b.request("/login/enroll?return_to=%2Faccount").header("Accept-Language", "en-GB,en;q=0.8");
    let page = b.go(req).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains(r#"<option value="GB" selected>United Kingdom (+44)</option>"#),
        "the browser's country"
    );
    assert!(page.text.contains(r#"<option value="IN">India (+91)</option>"#));
    assert!(page.text.contains(r#"<label for="region">Country</label>"#), "the picker is labelled");

    let sent = send_to(&mut b, &csrf, "GB", "020 7946 0958", "sms").await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert!(sent.text.contains("We sent a code. It works for 5 minutes."), "{}", sent.text);
    assert_eq!(field(&sent.text, "e164"), "+442079460958", "read in the chosen country");
    let message = app.state.console.last_to("+442079460958").expect("a text was sent");
    assert_eq!(message.channel, Channel::Sms);
    let code = app.last_code_to("+442079460958").unwrap();

    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let refused = b
        .post(
            "/login/enroll/phone/confirm",
            &[("csrf", &csrf), ("return_to", "/account"), ("e164", "+442079460958"), ("code", &wrong)],
        )
        .await;
    assert_eq!(refused.status, 401);
    assert!(refused.text.contains("That code is not right"), "{}", refused.text);
    assert!(app.factors_of("ann@example.com").await.is_empty(), "nothing half-enabled");

    let on = b
        .post(
            "/login/enroll/phone/confirm",
            &[("csrf", &csrf), ("return_to", "/account"), ("e164", "+442079460958"), ("code", &code)],
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert!(on.text.contains("Your phone is on."));
    assert_eq!(on.text.matches("<li><code>").count(), 10, "ten recovery codes, shown once: {}", on.text);
    let m = app.factors_of("ann@example.com").await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].phone().map(|p| p.as_str()), Some("+442079460958"));
    let account = b.get("/account").await;
    assert!(account.text.contains("Text messages to"), "{}", account.text);
}

#[tokio::test]
async fn a_wrong_number_is_explained_next_to_the_form_and_nothing_is_sent() {
    let app = spawn_app().await;
    let (mut b, csrf) = signed_in(&app).await;
    let key = field(&b.get("/login/enroll?return_to=%2Faccount").await.text, "secret");
    let fields = [
        ("csrf", csrf.as_str()),
        ("return_to", "/account"),
        ("region", "GB"),
        ("phone", "555"),
        ("channel", "sms"),
        ("app_secret", key.as_str()),
    ];
    let kept = b.post("/login/enroll/phone", &fields).await;
    assert_eq!(field(&kept.text, "secret"), key, "the authenticator key on the page stays");
    for bad in ["555", "0800 FLOWERS", ""] {
        let page = send_to(&mut b, &csrf, "GB", bad, "voice").await;
        assert_eq!(page.status, 400, "{bad}: {}", page.text);
        assert!(page.text.contains(r#"<p role="alert" id="phone-error">That is not a phone number."#), "{}", page.text);
        assert!(page.text.contains(r#"aria-invalid="true""#));
        assert!(page.text.contains(r#"<option value="GB" selected>"#), "the chosen country stays");
        assert!(page.text.contains(r#"value="voice" checked"#), "the chosen channel stays");
    }
    assert!(app.state.console.sent().is_empty());
}

#[tokio::test]
async fn a_phone_can_hear_its_code_and_enrolment_respects_allowed_countries() {
    let app = app().configure(|c| c.policies.mfa_guard.allowed_countries = vec![44]).spawn().await;
    let (mut b, csrf) = signed_in(&app).await;
    let page = b.get("/login/enroll?return_to=%2Faccount").await;
    assert!(page.text.contains(r#"<option value="GB" selected>"#), "the main country of the allowed code");
    assert!(!page.text.contains(r#"<option value="US""#), "only allowed countries are offered");

    let blocked = send_to(&mut b, &csrf, "GB", "+1 555 444 3232", "sms").await;
    assert_eq!(blocked.status, 400);
    assert!(blocked.text.contains("Codes cannot be sent to that number."), "{}", blocked.text);
    assert!(app.state.console.sent().is_empty());

    let called = send_to(&mut b, &csrf, "GB", "07700 900123", "voice").await;
    assert_eq!(called.status, 200, "{}", called.text);
    assert!(called.text.contains("We are calling you with a code."));
    assert_eq!(app.state.console.last_to("+447700900123").unwrap().channel, Channel::Voice);
}

#[tokio::test]
async fn the_second_step_offers_a_call_as_well_as_a_text() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    app.enable_sms(&user, "+15554443232").await;

    let mut b = Browser::new(&app);
    let (csrf, second) = b.sign_in_to_account().await;
    assert!(second.text.contains("Text a code to +1******3232"), "{}", second.text);
    assert!(second.text.contains("Call +1******3232 with a code"), "{}", second.text);
    let challenge = field(&second.text, "signin");
    let send = send_action(&second.text);
    let called = b.post(&send, &[("csrf", &csrf), ("signin", &challenge), ("channel", "voice")]).await;
    assert!(called.text.contains("We are calling you with a code."), "{}", called.text);
    let call = app.state.console.last_to("+15554443232").unwrap();
    assert_eq!(call.channel, Channel::Voice);
    let wrong = b
        .post("/login/two-factor", &[("csrf", &csrf), ("signin", &challenge), ("code", "000000x"), ("trust", "1")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains(r#"name="trust" value="1" checked"#), "the tick is kept: {}", wrong.text);
    let done = b
        .post(
            "/login/two-factor",
            &[("csrf", &csrf), ("signin", &challenge), ("code", call.code.expose()), ("return_to", "/elsewhere")],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/account"), "the spoken code signs in, to where the sign-in began");
}

/// A hosted sign-in's pages carry its id and the CSRF token, nothing else: the
/// destination and the methods passed stay with the sign-in on the server.
#[tokio::test]
async fn a_hosted_sign_in_carries_only_its_id_and_the_csrf_token() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    app.enable_sms(&user, "+15554443232").await;
    let mut b = Browser::new(&app);
    let first = b.get("/login?return_to=%2Foauth2%2Fauthorize%3Fclient_id%3Dx").await;
    assert_eq!(hidden_fields(&first.text), ["csrf", "signin"], "{}", first.text);
    assert!(!first.text.contains("authorize"), "the destination is not in the page: {}", first.text);
    let (csrf, second) = b.sign_in_to_account().await;
    let hidden = hidden_fields(&second.text);
    assert!(!hidden.is_empty(), "{}", second.text);
    assert!(hidden.iter().all(|h| h == "csrf" || h == "signin"), "hidden fields: {hidden:?}");
    assert!(!second.text.contains("/account"), "the destination is not in the page: {}", second.text);

    let challenge = field(&second.text, "signin");
    let sent = b.post(&send_action(&second.text), &[("csrf", &csrf), ("signin", &challenge), ("channel", "sms")]).await;
    let hidden = hidden_fields(&sent.text);
    assert!(hidden.iter().all(|h| h == "csrf" || h == "signin"), "after a send: {hidden:?}");
    let code = app.last_code_to("+15554443232").unwrap();
    let done = b.second_step(&csrf, &sent, &code).await;
    assert_eq!(done.location.as_deref(), Some("/account"));
}

#[tokio::test]
async fn pages_are_neither_cached_nor_framed() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["content-security-policy"], "frame-ancestors 'none'");
}

fn theme_dir(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-theme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_theme_directory_replaces_the_layout_and_a_broken_one_stops_the_start() {
    let layout = r#"<!doctype html><html lang="en"><head><title>{{ title }} · Acme</title></head>
<body class="acme"><main><h1>{{ title }}</h1>{% if error %}<p role="alert">{{ error }}</p>{% endif %}{% block content %}{% endblock %}</main></body></html>"#;
    let dir = theme_dir(&[("base.html", layout)]);
    let themed = dir.clone();
    let app = app().configure(move |c| c.pages_template_dir = Some(themed)).spawn().await;
    let page = app.client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<title>Sign in · Acme</title>") && page.contains(r#"<body class="acme">"#), "{page}");
    assert!(page.contains(r#"<label for="password">Password</label>"#), "the page itself is still built in");

    let broken = theme_dir(&[("login.html", "{% extends \"base.html\" %}{% block content %}{{ oops(}}{% endblock %}")]);
    let mut config = tessera_server::Config::defaults().unwrap();
    config.database_url = app.database_url.clone();
    config.pages_template_dir = Some(broken);
    let clock = std::sync::Arc::new(tessera_testkit::FakeClock::default());
    let e = tessera_server::prepare(&config, clock).await.err().expect("a broken theme stops the start").to_string();
    assert!(e.contains("login.html line 1"), "{e}");
}

#[tokio::test]
async fn changing_factors_needs_a_sign_in_that_used_one() {
    let app = spawn_app().await;
    // Signed in with the password alone; then a factor is added behind the session's back.
    let (mut b, csrf) = signed_in(&app).await;
    let user = app.admin(Method::GET, "/api/user?loginId=ann@example.com", None).await.json["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;

    let codes = b.post("/account/recovery-codes", &[("csrf", &csrf)]).await;
    assert_eq!(codes.status, 403, "a password alone mints no recovery codes: {}", codes.text);
    assert!(codes.text.contains("Confirm it is you"));
    assert_eq!(b.get("/login/enroll?return_to=%2Faccount").await.status, 403);
    let phone = send_to(&mut b, &csrf, "US", "555 444 3232", "sms").await;
    assert_eq!(phone.status, 403, "nor adds a phone");
    assert!(app.state.console.sent().is_empty());

    // Signing in again asks for the second step; then the same changes are allowed.
    let (csrf, second) = b.sign_in_to_account().await;
    let done = b.second_step(&csrf, &second, &app.totp(&secret, 1)).await;
    assert_eq!(done.location.as_deref(), Some("/account"));
    let codes = b.post("/account/recovery-codes", &[("csrf", &csrf)]).await;
    assert_eq!(codes.status, 200, "{}", codes.text);
    assert_eq!(codes.text.matches("<li><code>").count(), 10);

    // A second factor from the account page: no new recovery codes, the old ones stand.
    let sent = send_to(&mut b, &csrf, "US", "555 444 3232", "sms").await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let code = app.last_code_to("+15554443232").unwrap();
    let added = b
        .post(
            "/login/enroll/phone/confirm",
            &[("csrf", &csrf), ("return_to", "/account"), ("e164", "+15554443232"), ("code", &code)],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    assert!(added.text.contains("Second step added") && !added.text.contains("<code>"), "{}", added.text);
    assert_eq!(app.factors_of("ann@example.com").await.len(), 2);
}

#[tokio::test]
async fn a_failure_on_a_page_is_a_page_in_words_not_json() {
    // A theme that compiles but fails when it renders: the server's error, shown as a page.
    let dir = theme_dir(&[(
        "login.html",
        "{% extends \"base.html\" %}{% block content %}{{ no_such_function() }}{% endblock %}",
    )]);
    let app = app().configure(move |c| c.pages_template_dir = Some(dir)).spawn().await;
    let r = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"<p role="alert">Something went wrong on our side (error id "#), "{page}");

    let missing = app.client.get(app.url("/oauth2/authorize")).send().await.unwrap();
    assert!(missing.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "authorize errors are pages");
    let api =
        app.client.get(app.url("/api/user/not-a-user")).header("Authorization", &app.api_key).send().await.unwrap();
    assert!(
        !api.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/html")),
        "the API stays JSON"
    );
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn cookies_are_host_only_and_secure_when_served_over_tls() {
    let plain = spawn_app().await;
    let r = plain.client.get(plain.url("/login")).send().await.unwrap();
    // The CSRF token and the long-lived device cookie.
    let c = set_cookies(&r);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[0].starts_with("tessera_csrf=") && c[1].starts_with("tessera_device="), "{c:?}");
    for cookie in &c {
        assert!(cookie.contains("; HttpOnly; SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "a Secure cookie would never come back over plain HTTP: {cookie}");
    }

    let tls = app().configure(|c| c.messaging.public_url = Some("https://auth.example.com".into())).spawn().await;
    tls.create_user("ann@example.com", "correct horse").await;
    let r = tls.client.get(tls.url("/login")).send().await.unwrap();
    let mut cookies = set_cookies(&r);
    let device = cookies.remove(1);
    assert!(device.starts_with("__Host-tessera_device=") && device.contains("; Secure"), "{device}");
    let csrf_cookie = cookies.remove(0);
    assert!(csrf_cookie.starts_with("__Host-tessera_csrf="), "{csrf_cookie}");
    assert!(csrf_cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"), "{csrf_cookie}");
    let csrf = csrf_cookie.trim_start_matches("__Host-tessera_csrf=").split(';').next().unwrap().to_owned();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = no_redirects
        .post(tls.url("/login"))
        .header("Cookie", format!("__Host-tessera_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("return_to", "/account"),
            ("login_id", "ann@example.com"),
            ("password", "correct horse"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = set_cookies(&signed_in).into_iter().find(|c| c.contains("tessera_session")).unwrap();
    assert!(
        session.starts_with("__Host-tessera_session=") && session.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{session}"
    );
}
