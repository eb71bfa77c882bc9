//! Post-login actions in the sign-in, as a team moving from Auth0 would write them:
//! bound through the management API, run after the password on the JSON API and the
//! hosted pages, their claims in the tokens (after a second factor too), their denials
//! and exceptions ending the sign-in, and a redirect that resumes at `/login/continue`
//! in `onContinuePostLogin` with a token the action signed.

use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{TestApp, spawn_app};

use crate::forms::{Browser, Page, field};
use crate::oidc::claims;

/// Creates, deploys and binds `actions` (name, code) to post-login, in order.
async fn bind(app: &TestApp, actions: &[(&str, &str)]) {
    let mut bindings = Vec::new();
    for (name, code) in actions {
        let body = json!({"name": name, "supported_triggers": [{"id": "post-login", "version": "v3"}], "code": code,
                          "secrets": [{"name": "SIGNING", "value": "a-long-signing-secret"}]});
        let created = app.admin(Method::POST, "/api/v2/actions/actions", Some(body)).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.json["id"].as_str().unwrap().to_owned();
        let deployed = app.admin(Method::POST, &format!("/api/v2/actions/actions/{id}/deploy"), None).await;
        assert_eq!(deployed.status, 202, "{}", deployed.text);
        bindings.push(json!({"ref": {"type": "action_id", "value": id}, "display_name": name}));
    }
    let r = app
        .admin(Method::PATCH, "/api/v2/actions/triggers/post-login/bindings", Some(json!({"bindings": bindings})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn login() -> Value {
    json!({"loginId": "ann@example.com", "password": "correct horse"})
}

const CLAIMS: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  api.transaction.setMetadata('plan', event.user.app_metadata.plan || 'free');
  api.accessToken.setCustomClaim('https://example.com/email', event.user.email);
};"#;

const READS_METADATA: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  const pwd = event.authentication.methods.find((m) => m.name === 'pwd');
  api.accessToken.setCustomClaim('https://example.com/plan', event.transaction.metadata.plan);
  api.accessToken.setCustomClaim('https://example.com/pwd', !!pwd);
  api.accessToken.setCustomClaim('sub', 'someone-else');
};"#;

#[tokio::test]
async fn actions_run_in_order_after_the_password_and_their_claims_are_in_the_token() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    bind(&app, &[("claims", CLAIMS), ("reads-metadata", READS_METADATA)]).await;
    let r = app.post_json("/api/login", login()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = claims(r.json["token"].as_str().unwrap());
    assert_eq!(token["https://example.com/email"], "ann@example.com");
    assert_eq!(token["https://example.com/plan"], "free", "the second action saw the first's metadata");
    assert_eq!(token["https://example.com/pwd"], true, "event.authentication.methods names the password");
    assert_eq!(token["sub"], r.json["user"]["id"], "a script cannot replace a claim Tessera sets");

    // Each sign-in is recorded as an execution of both actions.
    let executions = app.count("SELECT COUNT(*) FROM action_executions WHERE status = 'final'").await;
    assert_eq!(executions, 1);
}

#[tokio::test]
async fn claims_survive_the_second_factor() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;
    bind(&app, &[("claims", CLAIMS)]).await;
    let r = app.post_json("/api/login", login()).await;
    assert_eq!(r.status, 242, "{}", r.text);
    // The next step's code: enabling the authenticator used the current one.
    let code = app.totp(&secret, 1);
    let done =
        app.post_json("/api/two-factor/login", json!({"twoFactorId": r.json["twoFactorId"], "code": code})).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(claims(done.json["token"].as_str().unwrap())["https://example.com/email"], "ann@example.com");
}

#[tokio::test]
async fn a_denial_an_exception_or_an_unsupported_call_ends_the_sign_in_with_its_reason() {
    for (code, said) in [
        (
            "exports.onExecutePostLogin = async (event, api) => { api.access.deny('Your account is under review.'); };",
            "Your account is under review.",
        ),
        (
            "exports.onExecutePostLogin = async () => { throw new Error('risk service said no'); };",
            "risk service said no",
        ),
        ("exports.onExecutePostLogin = async () => { while (true) {} };", "execution time"),
        (
            "exports.onExecutePostLogin = async (event, api) => { api.authentication.challengeWith({ type: 'otp' }); };",
            "challengeWith",
        ),
    ] {
        let app =
            tessera_testkit::app().configure(|c| c.actions.timeout = std::time::Duration::from_secs(1)).spawn().await;
        app.create_user("ann@example.com", "correct horse").await;
        bind(&app, &[("gate", code)]).await;
        let r = app.post_json("/api/login", login()).await;
        assert_eq!(r.status, 409, "{code}: {}", r.text);
        let message = r.json["generalErrors"][0]["message"].as_str().unwrap();
        assert!(message.contains(said), "{code}: {message}");
        assert!(r.json.get("token").is_none());
        // Later actions do not run after a denial; the record says it ended early.
        let partial = app.count("SELECT COUNT(*) FROM action_executions").await;
        assert_eq!(partial, 1, "{code}");
    }
}

const REGISTER: &str = "https://partner.example/register";

/// Sends a user without a phone to the partner's page with a signed token, and lets
/// them in when they come back with a token the page echoed, setting what it says.
const REDIRECTS: &str = r#"
exports.onExecutePostLogin = async (event, api) => {
  if (event.user.user_metadata.registered) return;
  const token = api.redirect.encodeToken({
    secret: event.secrets.SIGNING,
    expiresInSeconds: 120,
    payload: { email: event.user.email },
  });
  api.redirect.sendUserTo('https://partner.example/register', { query: { session_token: token } });
};
exports.onContinuePostLogin = async (event, api) => {
  const payload = api.redirect.validateToken({ secret: event.secrets.SIGNING, tokenParameterName: 'session_token' });
  api.transaction.setMetadata('registered_as', payload.email);
};"#;

/// Runs after the redirecting action, once the browser is back.
const AFTER: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  if (event.transaction.metadata.registered_as !== event.user.email) api.access.deny('not registered');
};"#;

async fn sent_away(app: &TestApp, b: &mut Browser<'_>) -> (String, String) {
    let form = b.get("/login?return_to=%2Faccount").await;
    let (csrf, signin) = (field(&form.text, "csrf"), field(&form.text, "signin"));
    let away: Page = b
        .post(
            "/login",
            &[("csrf", &csrf), ("signin", &signin), ("login_id", "ann@example.com"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(away.status, 303, "{}", away.text);
    let to = reqwest::Url::parse(away.location.as_deref().unwrap()).unwrap();
    assert_eq!(format!("{}://{}{}", to.scheme(), to.host_str().unwrap(), to.path()), REGISTER);
    let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    let _ = app;
    (q["state"].clone(), q["session_token"].clone())
}

#[tokio::test]
async fn a_redirect_resumes_in_on_continue_post_login_with_the_token_it_signed() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    bind(&app, &[("register", REDIRECTS), ("after", AFTER)]).await;

    let mut b = Browser::new(&app);
    let (state, token) = sent_away(&app, &mut b).await;
    let claims_in_token = claims(&token);
    assert_eq!(claims_in_token["email"], "ann@example.com");
    assert_eq!(claims_in_token["state"], state, "the token is bound to this sign-in's state");
    let back = b.post("/login/continue", &[("state", &state), ("session_token", &token)]).await;
    assert_eq!(back.status, 303, "{}", back.text);
    assert_eq!(back.location.as_deref(), Some("/account"), "{}", back.text);
    assert_eq!(b.get("/account").await.status, 200, "signed in");

    // A token altered on the way, or one signed with another secret, signs nobody in.
    let mut other = Browser::new(&app);
    let (state, token) = sent_away(&app, &mut other).await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let tampered = other.post("/login/continue", &[("state", &state), ("session_token", &parts.join("."))]).await;
    assert_ne!(tampered.location.as_deref(), Some("/account"), "{}", tampered.text);
    assert_eq!(other.get("/account").await.status, 303, "no session");
    // The state is spent, so the right token cannot be tried again with it either.
    let again = other.post("/login/continue", &[("state", &state), ("session_token", &token)]).await;
    assert_ne!(again.location.as_deref(), Some("/account"), "{}", again.text);
}

/// `payload` as an HS256 token under the actions' secret, as the partner's page would
/// sign one.
fn signed(payload: &Value) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let body = format!("{}.{}", b64(r#"{"alg":"HS256","typ":"JWT"}"#), b64(&payload.to_string()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"a-long-signing-secret").unwrap();
    mac.update(body.as_bytes());
    format!("{body}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn an_expired_redirect_token_is_refused() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    bind(&app, &[("register", REDIRECTS)]).await;
    let mut b = Browser::new(&app);
    let (state, token) = sent_away(&app, &mut b).await;
    // Two minutes of validity: the token's own `exp`.
    let payload = claims(&token);
    let (iat, exp) = (payload["iat"].as_i64().unwrap(), payload["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 120);
    // Signed again as it was, it works (so what differs below is only the expiry)...
    let back = b.post("/login/continue", &[("state", &state), ("session_token", &signed(&payload))]).await;
    assert_eq!(back.location.as_deref(), Some("/account"), "{}", back.text);
    // ...signed with an `exp` already past, it does not.
    let mut late = Browser::new(&app);
    let (state, token) = sent_away(&app, &mut late).await;
    let mut payload = claims(&token);
    payload["exp"] = json!(payload["iat"].as_i64().unwrap() - 1);
    let expired = late.post("/login/continue", &[("state", &state), ("session_token", &signed(&payload))]).await;
    assert_ne!(expired.location.as_deref(), Some("/account"), "{}", expired.text);
    assert_eq!(late.get("/account").await.status, 303, "no session");
    // And the untouched token, brought back after its two minutes by the server's clock.
    let mut slow = Browser::new(&app);
    let (state, token) = sent_away(&app, &mut slow).await;
    app.clock.advance(std::time::Duration::from_secs(121));
    let too_late = slow.post("/login/continue", &[("state", &state), ("session_token", &token)]).await;
    assert_ne!(too_late.location.as_deref(), Some("/account"), "{}", too_late.text);
    assert!(too_late.text.contains("The token expired"), "{}", too_late.text);
}

/// Names the protocol in a claim; refuses refreshes of users marked blocked.
const ON_REFRESH: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/protocol', event.transaction.protocol);
  if (event.transaction.protocol === 'oauth2-refresh-token' && event.user.user_metadata.blocked) {
    api.access.deny('refresh blocked');
  }
};"#;

#[tokio::test]
async fn actions_run_on_a_refresh_with_its_protocol_and_may_refuse_it() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    bind(&app, &[("on-refresh", ON_REFRESH)]).await;
    let r = app.post_json("/api/login", login()).await;
    assert_eq!(claims(r.json["token"].as_str().unwrap())["https://example.com/protocol"], "oauth2-password");
    let refresh_token = r.json["refreshToken"].as_str().unwrap().to_owned();
    let refreshed = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh_token})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let token = claims(refreshed.json["token"].as_str().unwrap());
    assert_eq!(token["https://example.com/protocol"], "oauth2-refresh-token");

    // The OpenID Connect refresh grant runs them too.
    let (client_id, _) = crate::oidc::client(&app, true, "Enabled").await;
    let mut b = Browser::new(&app);
    let code = crate::oidc::sign_in(&mut b, &client_id, "", None).await;
    let tokens = crate::oidc::redeem(&app, &client_id, &code).await;
    let oidc_refresh = tokens.json["refresh_token"].as_str().unwrap().to_owned();

    let blocked = json!({"user": {"data": {"user_metadata": {"blocked": true}}}});
    assert_eq!(app.admin(Method::PATCH, &format!("/api/user/{user}"), Some(blocked)).await.status, 200);
    let refused = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh_token})).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.json["generalErrors"][0]["message"], "refresh blocked");
    let grant = [("grant_type", "refresh_token"), ("refresh_token", oidc_refresh.as_str()), ("client_id", &client_id)];
    let refused = crate::oidc::exchange(&app, &grant).await;
    assert_eq!((refused.status, refused.json["error"].as_str()), (403, Some("access_denied")), "{}", refused.text);
    assert_eq!(refused.json["error_description"], "refresh blocked");
    let audit = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=50", None).await;
    assert!(audit.text.contains("\"denied\""), "the refused refresh is audited: {}", audit.text);
}

const SETS_METADATA: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/plan', event.user.app_metadata.plan || 'none');
  api.user.setAppMetadata('plan', 'gold');
  api.user.setUserMetadata('theme', null);
  api.user.setUserMetadata('seen', (event.user.user_metadata.seen || 0) + 1);
  if (event.user.user_metadata.seen >= 1) api.access.deny('second visit');
};"#;

#[tokio::test]
async fn metadata_an_action_sets_is_written_once_and_seen_at_the_next_sign_in() {
    let app = spawn_app().await;
    let user = app.create_user("ann@example.com", "correct horse").await;
    let data = json!({"user": {"data": {"user_metadata": {"theme": "dark"}, "other": 1}}});
    assert_eq!(app.admin(Method::PATCH, &format!("/api/user/{user}"), Some(data)).await.status, 200);
    bind(&app, &[("metadata", SETS_METADATA)]).await;

    let first = app.post_json("/api/login", login()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(claims(first.json["token"].as_str().unwrap())["https://example.com/plan"], "none");
    let stored = app.admin(Method::GET, &format!("/api/user/{user}"), None).await.json;
    assert_eq!(stored["user"]["data"]["app_metadata"], json!({"plan": "gold"}));
    assert_eq!(stored["user"]["data"]["user_metadata"], json!({"seen": 1}), "theme deleted by null");
    assert_eq!(stored["user"]["data"]["other"], 1, "the rest of data is left alone");

    // The next sign-in sees what was written; its denial does not undo its own writes.
    let second = app.post_json("/api/login", login()).await;
    assert_eq!(second.status, 409, "{}", second.text);
    let stored = app.admin(Method::GET, &format!("/api/user/{user}"), None).await.json;
    assert_eq!(stored["user"]["data"]["user_metadata"], json!({"seen": 2}));
}

/// Fifty sign-ins at once (fifty users: one login id's attempts in flight count towards
/// its lockout) through a bound action, spread over the instances: every one gets its
/// own claim, and every run is recorded once.
async fn fifty_sign_ins_through_an_action(apps: &[&TestApp]) {
    for i in 0..50 {
        apps[0].create_user(&format!("user{i}@example.com"), "correct horse").await;
    }
    bind(apps[0], &[("claims", CLAIMS)]).await;
    let requests = (0..50)
        .map(|i| {
            let app = apps[i % apps.len()];
            let body = json!({"loginId": format!("user{i}@example.com"), "password": "correct horse"});
            app.client.post(app.url("/api/login")).json(&body)
        })
        .collect();
    let answers = apps[0].all_at_once(requests).await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.status, 200, "{}", a.text);
        let email = format!("user{i}@example.com");
        assert_eq!(claims(a.json["token"].as_str().unwrap())["https://example.com/email"], email.as_str());
    }
    assert_eq!(apps[0].count("SELECT COUNT(*) FROM action_executions WHERE status = 'final'").await, 50);
}

#[tokio::test]
async fn fifty_sign_ins_through_an_action_at_once_on_sqlite() {
    let app = spawn_app().await;
    fifty_sign_ins_through_an_action(&[&app]).await;
}

#[tokio::test]
async fn fifty_sign_ins_through_an_action_at_once_on_postgres_and_two_instances() {
    let one = tessera_testkit::app().backend(tessera_store::Backend::Postgres).spawn().await;
    let two = tessera_testkit::app().database_url(&one.database_url).spawn().await;
    fifty_sign_ins_through_an_action(&[&one, &two]).await;
}

/// Each sign-in records itself under a key of its own in app_metadata.
const RECORDS_ITSELF: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  api.user.setAppMetadata('signin-' + require('crypto').randomUUID(), true);
};"#;

/// Fifty sign-ins of one user at once, each merging its own key into the user's
/// metadata, spread over the instances: the merges are one unit each under the user's
/// lock, so none is lost.
async fn fifty_metadata_merges(apps: &[&TestApp]) {
    let user = apps[0].create_user("ann@example.com", "correct horse").await;
    bind(apps[0], &[("records-itself", RECORDS_ITSELF)]).await;
    let requests = (0..50)
        .map(|i| {
            let app = apps[i % apps.len()];
            app.client.post(app.url("/api/login")).json(&login())
        })
        .collect();
    for a in apps[0].all_at_once(requests).await {
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let stored = apps[0].admin(Method::GET, &format!("/api/user/{user}"), None).await.json;
    assert_eq!(stored["user"]["data"]["app_metadata"].as_object().unwrap().len(), 50, "no merge lost");
}

/// The lockout counts attempts in flight; fifty at once of one login id are let be here.
fn many_attempts(c: &mut tessera_server::config::Config) {
    c.policies.lockout.max_failures = 100;
}

#[tokio::test]
async fn fifty_concurrent_metadata_merges_lose_none_on_sqlite() {
    let app = tessera_testkit::app().configure(many_attempts).spawn().await;
    fifty_metadata_merges(&[&app]).await;
}

#[tokio::test]
async fn fifty_concurrent_metadata_merges_lose_none_on_postgres_and_two_instances() {
    let one = tessera_testkit::app().backend(tessera_store::Backend::Postgres).configure(many_attempts).spawn().await;
    let two = tessera_testkit::app().database_url(&one.database_url).configure(many_attempts).spawn().await;
    fifty_metadata_merges(&[&one, &two]).await;
}
