//! The enrolment stage of a hosted sign-in: an application whose policy requires a
//! second factor, a user who has none. The sign-in (begun by `/oauth2/authorize`)
//! waits under a new id for a factor to be set up; its pages carry only that id and the
//! CSRF token, it belongs to the browser it began in, it ends after too many wrong
//! codes, and it finishes once however many submissions race.

use reqwest::Method;
use tessera_testkit::TestApp;

use crate::forms::{Browser, Page, field, hidden_fields, link, shown_key};
use crate::oidc::{CB, application, authorize_url, claims, query, redeem};

/// Makes the default application require a second factor; its id.
async fn requiring_a_factor(app: &TestApp) -> String {
    let id = app.state.identity.default_application().id.to_string();
    let r = app.admin(Method::PUT, &format!("/api/application/{id}"), Some(application(true, "Required"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

/// Authorize, then the password: the enrolment page, and the browser's CSRF token.
async fn to_enrolment(b: &mut Browser<'_>, client_id: &str) -> (String, Page) {
    let first = b.get(&authorize_url(client_id, "")).await;
    let login = first.location.unwrap();
    assert!(login.starts_with("/login?return_to="), "{login}");
    let form = b.get(&login).await;
    let (csrf, signin) = (field(&form.text, "csrf"), field(&form.text, "signin"));
    let fields =
        [("csrf", csrf.as_str()), ("signin", &signin), ("login_id", "ann@example.com"), ("password", "correct horse")];
    let page = b.post("/login", &fields).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Add a second step"), "{}", page.text);
    (csrf, page)
}

/// The code an authenticator app shows now for the key on `page`.
fn app_code(app: &TestApp, page: &Page) -> String {
    let key = tessera_core::base32::decode(&shown_key(&page.text)).unwrap();
    let step = tessera_core::totp::step_at(tessera_server::clock::Clock::now(app.clock.as_ref()), 30);
    tessera_core::totp::totp_at_step(&tessera_core::totp::TotpParams::default(), &key, step)
}

fn only_id_and_csrf(page: &Page) {
    let hidden = hidden_fields(&page.text);
    assert!(!hidden.is_empty() && hidden.iter().all(|f| f == "csrf" || f == "signin"), "{hidden:?}");
}

#[tokio::test]
async fn an_enrolment_belongs_to_its_browser_and_ends_after_too_many_wrong_codes() {
    let app = tessera_testkit::spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let client_id = requiring_a_factor(&app).await;

    // The sign-in `/oauth2/authorize` began is this browser's: the link to its page,
    // opened elsewhere, shows another sign-in (and this one's id is worth nothing there).
    let mut b = Browser::new(&app);
    let first = b.get(&authorize_url(&client_id, "")).await;
    let login = first.location.unwrap();
    let mine = field(&b.get(&login).await.text, "signin");
    let mut other = Browser::new(&app);
    let theirs = other.get(&login).await;
    assert_eq!(theirs.status, 200);
    assert_ne!(field(&theirs.text, "signin"), mine, "another browser gets a sign-in of its own");
    let csrf = field(&theirs.text, "csrf");
    let stolen = other
        .post(
            "/login",
            &[("csrf", &csrf), ("signin", &mine), ("login_id", "ann@example.com"), ("password", "correct horse")],
        )
        .await;
    assert_ne!(stolen.status, 303, "{}", stolen.text);
    assert!(!stolen.text.contains("Add a second step"), "nobody signed in with another browser's sign-in");

    let (csrf, page) = to_enrolment(&mut b, &client_id).await;
    only_id_and_csrf(&page);
    let enrolment = field(&page.text, "signin");
    let elsewhere = other
        .post(
            "/login/enroll",
            &[("csrf", &field(&theirs.text, "csrf")), ("signin", &enrolment), ("code", &app_code(&app, &page))],
        )
        .await;
    assert_eq!(elsewhere.status, 400, "the enrolment is the browser's it began in: {}", elsewhere.text);

    // Five wrong codes and the sign-in is over: the right one no longer helps.
    for _ in 0..5 {
        let wrong = b.post("/login/enroll", &[("csrf", &csrf), ("signin", &enrolment), ("code", "000000")]).await;
        assert_ne!(wrong.status, 200, "{}", wrong.text);
    }
    let late =
        b.post("/login/enroll", &[("csrf", &csrf), ("signin", &enrolment), ("code", &app_code(&app, &page))]).await;
    assert_eq!(late.status, 400, "{}", late.text);
    assert!(late.text.contains("cannot be continued"), "{}", late.text);
    assert!(app.factors_of("ann@example.com").await.is_empty(), "no factor was added");
    assert_eq!(app.count("SELECT COUNT(*) FROM browser_sessions").await, 0, "nobody signed in");
}

#[tokio::test]
async fn a_phone_is_enrolled_in_a_sign_in_whose_pages_carry_only_its_id() {
    let app = tessera_testkit::spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let client_id = requiring_a_factor(&app).await;
    let mut b = Browser::new(&app);
    let (csrf, page) = to_enrolment(&mut b, &client_id).await;
    let enrolment = field(&page.text, "signin");

    let bad = b
        .post("/login/enroll/phone", &[("csrf", &csrf), ("signin", &enrolment), ("region", "GB"), ("phone", "12")])
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("not a phone number"), "{}", bad.text);
    assert_eq!(shown_key(&bad.text), shown_key(&page.text), "the same key, kept with the sign-in");

    let fields = [
        ("csrf", csrf.as_str()),
        ("signin", &enrolment),
        ("region", "GB"),
        ("phone", "020 7946 0958"),
        ("channel", "sms"),
    ];
    let sent = b.post("/login/enroll/phone", &fields).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    only_id_and_csrf(&sent);
    let first = app.last_code_to("+442079460958").expect("a code was texted");
    let text = app.last_message_to("+442079460958").unwrap();
    assert!(text.contains("Sample app"), "the message names the sign-in's application: {text}");
    // "Send a new code" posts no number: the sign-in keeps it.
    let again = b.post("/login/enroll/phone", &[("csrf", &csrf), ("signin", &enrolment), ("channel", "sms")]).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let code = app.last_code_to("+442079460958").unwrap();
    assert_ne!(code, first, "a new code");

    let wrong =
        b.post("/login/enroll/phone/confirm", &[("csrf", &csrf), ("signin", &enrolment), ("code", &first)]).await;
    assert_eq!(wrong.status, 401, "the first code was replaced: {}", wrong.text);
    only_id_and_csrf(&wrong);
    let done = b.post("/login/enroll/phone/confirm", &[("csrf", &csrf), ("signin", &enrolment), ("code", &code)]).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.text.matches("<li><code>").count(), 10, "ten recovery codes, shown once");
    let back = b.get(&link(&done.text)).await;
    let to_client = back.location.unwrap();
    assert!(to_client.starts_with(CB), "{to_client}");
    let t = redeem(&app, &client_id, &query(&to_client)["code"]).await;
    assert_eq!(claims(t.json["id_token"].as_str().unwrap())["amr"], serde_json::json!(["pwd", "sms", "mfa"]));
    let factors = app.factors_of("ann@example.com").await;
    assert_eq!(factors.len(), 1);
    assert_eq!(factors[0].phone().map(|p| p.as_str()), Some("+442079460958"));
}

/// An enrolment page reached in `app` by a browser: what a request needs to submit a
/// code to it from that browser, and the right code.
struct Waiting {
    csrf: String,
    enrolment: String,
    right: String,
    cookie: String,
}

async fn waiting(app: &TestApp) -> Waiting {
    app.create_user("ann@example.com", "correct horse").await;
    let client_id = requiring_a_factor(app).await;
    let mut b = Browser::new(app);
    let (csrf, page) = to_enrolment(&mut b, &client_id).await;
    let (enrolment, right) = (field(&page.text, "signin"), app_code(app, &page));
    Waiting { csrf, enrolment, right, cookie: b.cookie_header() }
}

/// 50 submissions of `code` to the enrolment at once, spread over the instances.
async fn fifty_submissions(apps: &[TestApp], w: &Waiting, code: &str) -> Vec<tessera_testkit::Reply> {
    tessera_providers::install_tls();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("csrf", w.csrf.as_str()), ("signin", &w.enrolment), ("code", code)];
    crate::limits::fifty(apps, |app, _| {
        no_redirects.post(app.url("/login/enroll")).header("Cookie", w.cookie.as_str()).form(&form)
    })
    .await
}

/// 50 submissions of the right code at once, from the browser it belongs to, spread over
/// the instances: one factor is added and one sign-in finishes.
#[tokio::test]
async fn an_enrolment_finishes_once_under_concurrency() {
    for apps in crate::limits::deployments(|_| {}).await {
        let name = crate::limits::name(&apps);
        let w = waiting(&apps[0]).await;
        let replies = fifty_submissions(&apps, &w, &w.right).await;
        let enrolled = replies.iter().filter(|r| r.status == 200).count();
        let refused = replies.iter().filter(|r| r.status == 400).count();
        assert_eq!((enrolled, refused), (1, 49), "{name}");
        assert_eq!(apps[0].factors_of("ann@example.com").await.len(), 1, "{name}: one factor");
        assert_eq!(apps[0].count("SELECT COUNT(*) FROM browser_sessions").await, 1, "{name}: one session");
        assert_eq!(apps[0].count("SELECT COUNT(*) FROM recovery_codes").await, 10, "{name}: one set of codes");
    }
}

/// 50 wrong codes at once: each attempt is counted before its code is looked at, so at
/// most five are compared (and audited), and the enrolment is over after them.
#[tokio::test]
async fn fifty_wrong_enrolment_codes_at_once_compare_at_most_five() {
    for apps in crate::limits::deployments(|_| {}).await {
        let name = crate::limits::name(&apps);
        let w = waiting(&apps[0]).await;
        let wrong = if w.right == "000000" { "111111" } else { "000000" };
        let replies = fifty_submissions(&apps, &w, wrong).await;
        assert!(replies.iter().all(|r| r.status == 401 || r.status == 400), "{name}");
        let compared = apps[0]
            .count("SELECT COUNT(*) FROM audit_log WHERE event = 'two_factor.failure' AND detail LIKE '%enrol%'")
            .await;
        assert!((1..=5).contains(&compared), "{name}: {compared} codes compared");
        let late = fifty_submissions(&apps[..1], &w, &w.right).await;
        assert!(late.iter().all(|r| r.status == 400), "{name}: the enrolment is over");
        assert!(apps[0].factors_of("ann@example.com").await.is_empty(), "{name}");
    }
}

/// A browser signed in with a password alone reaches an application that requires a
/// second factor: a sign-in for its user waits for one to be enrolled (its page, too,
/// carries only the id and the CSRF token), and leads back to the application.
#[tokio::test]
async fn a_signed_in_user_enrols_in_a_sign_in_when_an_application_requires_a_factor() {
    let app = tessera_testkit::spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    let mut b = Browser::new(&app);
    let (csrf, signed_in) = b.sign_in_to_account().await;
    assert_eq!(signed_in.location.as_deref(), Some("/account"), "{}", signed_in.text);
    let client_id = requiring_a_factor(&app).await;

    let first = b.get(&authorize_url(&client_id, "")).await;
    let to = first.location.unwrap();
    assert!(to.starts_with("/login/enroll?signin="), "{to}");
    let mut elsewhere = Browser::new(&app);
    assert_eq!(elsewhere.get(&to).await.status, 400, "the link is worth nothing in another browser");
    let page = b.get(&to).await;
    assert_eq!(page.status, 200, "{}", page.text);
    only_id_and_csrf(&page);
    let enrolment = field(&page.text, "signin");
    let done =
        b.post("/login/enroll", &[("csrf", &csrf), ("signin", &enrolment), ("code", &app_code(&app, &page))]).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.text.matches("<li><code>").count(), 10, "ten recovery codes, shown once");
    let back = b.get(&link(&done.text)).await;
    let to_client = back.location.unwrap();
    assert!(to_client.starts_with(CB), "{to_client}");
    let t = redeem(&app, &client_id, &query(&to_client)["code"]).await;
    assert_eq!(claims(t.json["id_token"].as_str().unwrap())["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
}

/// An enrolment lasts as long as a sign-in (`sign_in_ttl_seconds`, 30 minutes): the
/// right code after that signs nobody in and adds no factor.
#[tokio::test]
async fn an_enrolment_left_too_long_is_over() {
    let app = tessera_testkit::spawn_app().await;
    let w = waiting(&app).await;
    app.clock.advance(std::time::Duration::from_secs(30 * 60 + 1));
    let form = [("csrf", w.csrf.as_str()), ("signin", &w.enrolment), ("code", &w.right)];
    let late = app.send(app.client.post(app.url("/login/enroll")).header("Cookie", &w.cookie).form(&form)).await;
    assert_eq!(late.status, 400, "{}", late.text);
    assert!(app.factors_of("ann@example.com").await.is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM browser_sessions").await, 0, "nobody signed in");
}
