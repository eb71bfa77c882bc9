//! The sign-in pipeline's stages between requests: a sign-in that a script (here a test
//! double of the post-login port the actions will implement) sends to another page and
//! that comes back to `/login/continue`, and one a script refuses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tessera_core::CoreError;
use tessera_core::signin::{AfterFirstFactor, PostLogin, PostLoginCall, PostLoginHook, ScriptState, SignIn};
use tessera_testkit::{TestApp, app};

use crate::forms::{Browser, Page, field};

const AWAY: &str = "https://partner.example/consent?lang=en";

/// Sends every sign-in to [`AWAY`] after the password, and lets it through when it
/// comes back; or refuses every sign-in.
enum Script {
    SendAway,
    Refuse,
}

#[async_trait::async_trait]
impl PostLogin for Script {
    async fn after_first_factor(&self, call: PostLoginCall<'_>) -> Result<(AfterFirstFactor, ScriptState), CoreError> {
        assert_eq!(call.sign_in.user_id, Some(call.user.id), "the sign-in knows its user after the password");
        let decided = match (self, call.resumed.is_some()) {
            (Script::SendAway, false) => AfterFirstFactor::Redirect { url: AWAY.into() },
            (Script::SendAway, true) => AfterFirstFactor::Continue,
            (Script::Refuse, _) => AfterFirstFactor::Deny { reason: "Sign-ins are closed for maintenance.".into() },
        };
        Ok((decided, call.sign_in.scripts.clone()))
    }
}

/// A server running `script` after the password, with ann@example.com (and her id).
async fn with(script: Script) -> (TestApp, String) {
    let hook = PostLoginHook(Arc::new(script));
    let app = app().configure(move |c| c.post_login = Some(hook)).spawn().await;
    let ann = app.create_user("ann@example.com", "correct horse").await;
    (app, ann)
}

/// The password page filled in, from `/login?return_to=/account`.
async fn password(b: &mut Browser<'_>) -> Page {
    let form = b.get("/login?return_to=%2Faccount").await;
    let (csrf, signin) = (field(&form.text, "csrf"), field(&form.text, "signin"));
    b.post(
        "/login",
        &[("csrf", &csrf), ("signin", &signin), ("login_id", "ann@example.com"), ("password", "correct horse")],
    )
    .await
}

/// Where a redirect to [`AWAY`] leads back to: `/login/continue` with its `state`.
fn come_back(away: &Page) -> String {
    let to = away.location.clone().unwrap_or_default();
    assert!(to.starts_with(&format!("{AWAY}&state=")), "sent away with a resume token: {to}");
    format!("/login/continue?state={}", to.rsplit("state=").next().unwrap())
}

#[tokio::test]
async fn a_browser_sign_in_resumes_once_in_its_browser_and_never_with_a_forged_used_or_expired_token() {
    let (app, _) = with(Script::SendAway).await;
    let mut b = Browser::new(&app);
    let away = password(&mut b).await;
    assert_eq!(away.status, 303, "{}", away.text);
    let back = come_back(&away);
    assert_eq!(b.get("/account").await.status, 303, "no session before it comes back");

    let forged = b.get("/login/continue?state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(forged.status, 400, "{}", forged.text);
    assert!(forged.text.contains("cannot be continued"), "{}", forged.text);
    assert_eq!(b.get("/login/continue").await.status, 400, "no token at all");

    let resumed = b.get(&back).await;
    assert_eq!((resumed.status, resumed.location.as_deref()), (303, Some("/account")), "{}", resumed.text);
    assert_eq!(b.get("/account").await.status, 200, "signed in");
    let again = b.get(&back).await;
    assert_eq!(again.status, 400, "a resume token works once: {}", again.text);

    // A resume link followed in another browser signs nobody in, there or (the token is
    // spent) in the browser it was for.
    let mut ann = Browser::new(&app);
    let back = come_back(&password(&mut ann).await);
    let mut elsewhere = Browser::new(&app);
    let stolen = elsewhere.get(&back).await;
    assert_eq!(stolen.status, 400, "{}", stolen.text);
    assert_eq!(elsewhere.get("/account").await.status, 303, "not signed in elsewhere");
    assert_eq!(ann.get(&back).await.status, 400, "and the token is spent");

    // Another sign-in, come back too late: the sign-in (and its token) lasted 30 minutes.
    let mut late = Browser::new(&app);
    let away = password(&mut late).await;
    let back = come_back(&away);
    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    let expired = late.get(&back).await;
    assert_eq!(expired.status, 400, "{}", expired.text);
    assert_eq!(late.get("/account").await.status, 303, "not signed in");
}

/// 50 requests at once with one resume token, from the browser it belongs to, spread
/// over the instances: exactly one signs in.
#[tokio::test]
async fn a_resume_token_signs_in_once_under_concurrency() {
    let send_away = |c: &mut tessera_server::Config| c.post_login = Some(PostLoginHook(Arc::new(Script::SendAway)));
    tessera_providers::install_tls();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for apps in crate::limits::deployments(send_away).await {
        apps[0].create_user("ann@example.com", "correct horse").await;
        let mut b = Browser::new(&apps[0]);
        let back = come_back(&password(&mut b).await);
        let cookie = b.cookie_header();
        let replies =
            crate::limits::fifty(&apps, |app, _| no_redirects.get(app.url(&back)).header("Cookie", cookie.as_str()))
                .await;
        let signed_in = replies.iter().filter(|r| r.status == 303).count();
        let refused = replies.iter().filter(|r| r.status == 400).count();
        assert_eq!((signed_in, refused), (1, 49), "{}", crate::limits::name(&apps));
        let sessions = apps[0].count("SELECT COUNT(*) FROM browser_sessions").await;
        assert_eq!(sessions, 1, "{}: one session", crate::limits::name(&apps));
    }
}

#[tokio::test]
async fn a_resumed_sign_in_still_asks_for_the_second_factor_under_a_new_id() {
    let (app, id) = with(Script::SendAway).await;
    let secret = b"12345678901234567890";
    app.enable_authenticator(&id, secret).await;

    let mut b = Browser::new(&app);
    let away = password(&mut b).await;
    let back = come_back(&away);
    let state = back.rsplit("state=").next().unwrap().to_owned();
    let second = b.get(&back).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert!(second.text.contains("Second step"), "{}", second.text);
    assert_ne!(field(&second.text, "signin"), state, "the resume token is not the second step's id");
    assert_eq!(b.get("/account").await.status, 303, "one factor is not a session yet");

    app.clock.advance(Duration::from_secs(30));
    let csrf = field(&second.text, "csrf");
    let done = b.second_step(&csrf, &second, &app.totp(secret, 0)).await;
    assert_eq!(done.location.as_deref(), Some("/account"), "{}", done.text);
    assert_eq!(b.get("/account").await.status, 200);
}

#[tokio::test]
async fn the_json_api_cannot_be_sent_away_and_a_refusal_is_fusionauths_409() {
    let (app, _) = with(Script::SendAway).await;
    let login = json!({"loginId": "ann@example.com", "password": "correct horse"});
    let r = app.post_json("/api/login", login.clone()).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["generalErrors"][0]["code"], "[LoginPreventedException]");
    assert!(r.json["generalErrors"][0]["message"].as_str().unwrap().contains("cannot be redirected"), "{}", r.text);

    let (closed, _) = with(Script::Refuse).await;
    let r = closed.post_json("/api/login", login).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["generalErrors"][0]["message"], "Sign-ins are closed for maintenance.");
    let mut b = Browser::new(&closed);
    let refused = password(&mut b).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("closed for maintenance"), "{}", refused.text);
    assert_eq!(b.get("/account").await.status, 303, "no session");
    let denied = closed.admin(reqwest::Method::GET, "/api/system/audit-log", None).await;
    assert!(denied.text.contains("login.denied"), "audited: {}", denied.text);
}

/// A sign-in page left open past `sign_in_ttl_seconds` is not signed in with: the page
/// comes back with a new sign-in to the same destination, and that one works.
#[tokio::test]
async fn a_sign_in_page_left_open_too_long_starts_again_to_the_same_place() {
    let app = app().configure(|c| c.policies.sign_in_ttl = Duration::from_secs(600)).spawn().await;
    app.create_user("ann@example.com", "correct horse").await;
    let mut b = Browser::new(&app);
    let form = b.get("/login?return_to=%2Foauth2%2Fauthorize%3Fclient_id%3Dx").await;
    let (csrf, old) = (field(&form.text, "csrf"), field(&form.text, "signin"));
    app.clock.advance(Duration::from_secs(601));
    let with = |signin: &str| {
        [
            ("csrf", csrf.clone()),
            ("signin", signin.to_owned()),
            ("login_id", "ann@example.com".into()),
            ("password", "correct horse".into()),
        ]
    };
    let late = b.post("/login", &with(&old).each_ref().map(|(k, v)| (*k, v.as_str()))).await;
    assert_eq!(late.status, 200, "{}", late.text);
    assert!(late.text.contains("took too long"), "{}", late.text);
    assert_eq!(b.get("/account").await.status, 303, "not signed in");
    let fresh = field(&late.text, "signin");
    assert_ne!(fresh, old);
    let signed = b.post("/login", &with(&fresh).each_ref().map(|(k, v)| (*k, v.as_str()))).await;
    assert_eq!(signed.location.as_deref(), Some("/oauth2/authorize?client_id=x"), "{}", signed.text);
}

/// The sign-in stored for the hosted page `page`.
async fn stored(app: &TestApp, page: &Page) -> SignIn {
    let id = tessera_core::secret::Secret::new(field(&page.text, "signin"));
    app.state.store.sign_in(&id.digest()).await.unwrap().expect("the page's sign-in is stored")
}

#[tokio::test]
async fn a_sign_in_keeps_its_browsers_device_cookie_which_outlives_sign_ins() {
    let app = tessera_testkit::spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;

    // The first page a browser opens gives it a device cookie for 400 days.
    let raw = reqwest::get(app.url("/login")).await.unwrap();
    let set: Vec<_> = raw.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let device_cookie = set.iter().find(|c| c.starts_with("tessera_device=")).expect("a device cookie");
    assert!(device_cookie.contains("Max-Age=34560000") && device_cookie.contains("HttpOnly"), "{device_cookie}");

    let mut b = Browser::new(&app);
    let first = b.get("/login?return_to=%2Faccount").await;
    let device = b.cookie("tessera_device").expect("set with the first page").to_owned();
    let digest = tessera_core::secret::Secret::new(device.clone()).digest();
    let signals = stored(&app, &first).await.signals;
    assert_eq!(signals.device.as_deref(), Some(digest.as_str()), "the first sign-in already knows its device");
    assert!(signals.ip.is_some(), "{signals:?}");

    // Signed in and out again: the next sign-in comes from the same device.
    let (_, signed_in) = b.sign_in_to_account().await;
    assert_eq!(signed_in.location.as_deref(), Some("/account"), "{}", signed_in.text);
    let again = b.get("/login?return_to=%2Faccount").await;
    assert_eq!(b.cookie("tessera_device"), Some(device.as_str()), "the cookie is kept, not renewed");
    assert_eq!(stored(&app, &again).await.signals.device.as_deref(), Some(digest.as_str()));

    // Another browser is another device; a cookie we could not have set is replaced.
    let mut other = Browser::new(&app);
    let theirs = other.get("/login").await;
    assert_ne!(stored(&app, &theirs).await.signals.device.as_deref(), Some(digest.as_str()));
    let mut forger = Browser::new(&app);
    let forged_request = forger.request("/login").header("Cookie", "tessera_device=x");
    let forged = forger.go(forged_request).await;
    let replaced = stored(&app, &forged).await.signals.device.expect("a device");
    assert_ne!(replaced, tessera_core::secret::Secret::new("x".to_owned()).digest());
    assert_ne!(forger.cookie("tessera_device"), Some("x"), "a new cookie is set");
}
