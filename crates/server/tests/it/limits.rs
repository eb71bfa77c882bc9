//! Limits under concurrency: 50 requests at once against a limit of L admit exactly L,
//! on SQLite, on PostgreSQL, and on two instances sharing PostgreSQL. (The login
//! lockout's is in `login`, the wrong-code limits' in `two_factor`.)

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_server::Config;
use tessera_store::Backend;
use tessera_testkit::{Reply, TestApp, app};

/// The deployments every limit is tried on: one SQLite instance, one PostgreSQL
/// instance, two instances on one PostgreSQL database.
pub async fn deployments(configure: fn(&mut Config)) -> Vec<Vec<TestApp>> {
    let public = |c: &mut Config| c.messaging.public_url = Some("https://auth.example.com".into());
    let sqlite = app().configure(configure).spawn().await;
    let postgres = app().backend(Backend::Postgres).configure(configure).spawn().await;
    let a = app().backend(Backend::Postgres).configure(move |c| (public(c), configure(c)).1).spawn().await;
    let b = app().database_url(&a.database_url).configure(move |c| (public(c), configure(c)).1).spawn().await;
    vec![vec![sqlite], vec![postgres], vec![a, b]]
}

pub fn name(apps: &[TestApp]) -> &'static str {
    match (apps.len(), apps[0].database_url.starts_with("sqlite")) {
        (1, true) => "SQLite",
        (1, false) => "PostgreSQL",
        _ => "two instances on PostgreSQL",
    }
}

/// 50 requests made by `request(app, i)`, spread over the instances, all at once.
pub async fn fifty(apps: &[TestApp], request: impl Fn(&TestApp, usize) -> reqwest::RequestBuilder) -> Vec<Reply> {
    let requests = (0..50).map(|i| request(&apps[i % apps.len()], i)).collect();
    apps[0].all_at_once(requests).await
}

pub fn admitted(replies: &[Reply], ok: u16) -> usize {
    replies.iter().filter(|r| r.status == ok).count()
}

struct Verify {
    account: String,
    token: String,
    service: String,
}

impl Verify {
    async fn new(app: &TestApp, guard: Value) -> Verify {
        let r = app.admin(Method::POST, "/api/verify/account", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let (account, token) = (r.json["accountSid"].as_str().unwrap(), r.json["authToken"].as_str().unwrap());
        let r = app
            .send(
                app.client
                    .post(app.url("/v2/Services"))
                    .basic_auth(account, Some(token))
                    .form(&[("FriendlyName", "Acme")]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let service = r.json["sid"].as_str().unwrap().to_owned();
        let path = format!("/api/verify/{account}/services/{service}/fraud-guard");
        assert_eq!(app.admin(Method::PUT, &path, Some(guard)).await.status, 200);
        Verify { account: account.into(), token: token.into(), service }
    }

    fn start(&self, app: &TestApp, to: &str, ip: &str) -> reqwest::RequestBuilder {
        app.client
            .post(app.url(&format!("/v2/Services/{}/Verifications", self.service)))
            .basic_auth(&self.account, Some(&self.token))
            .header("X-Forwarded-For", ip)
            .form(&[("To", to), ("Channel", "sms")])
    }
}

/// Windows wide enough never to be what stops a test aimed at another one.
fn guard(narrow: Value) -> Value {
    let mut g = json!({
        "perNumber": {"max": 1000, "windowSeconds": 600},
        "perPrefix": {"max": 1000, "windowSeconds": 3600},
        "perIp": {"max": 1000, "windowSeconds": 3600},
        "perService": {"max": 1000, "windowSeconds": 3600},
        "minSample": 1000,
    });
    if let (Value::Object(g), Value::Object(n)) = (&mut g, narrow) {
        g.extend(n);
    }
    g
}

#[tokio::test]
async fn verify_windows_admit_exactly_their_limit_under_concurrency() {
    for apps in deployments(|_| {}).await {
        let on = name(&apps);
        // Per number: the first start and its resends all count.
        let v = Verify::new(&apps[0], guard(json!({"perNumber": {"max": 3, "windowSeconds": 600}}))).await;
        let replies = fifty(&apps, |a, _| v.start(a, "+15554443232", "198.51.100.7")).await;
        assert_eq!(admitted(&replies, 201), 3, "per number, {on}");
        assert!(replies.iter().filter(|r| r.status != 201).all(|r| r.json["code"] == 60203), "{on}");

        // Per prefix: 50 numbers of one prefix, from 50 addresses.
        let v = Verify::new(&apps[0], guard(json!({"perPrefix": {"max": 4, "windowSeconds": 3600}}))).await;
        let replies = fifty(&apps, |a, i| v.start(a, &format!("+1555444{i:04}"), &format!("198.51.100.{i}"))).await;
        assert_eq!(admitted(&replies, 201), 4, "per prefix, {on}");

        // Per IP: 50 numbers in 50 prefixes, from one address.
        let v = Verify::new(&apps[0], guard(json!({"perIp": {"max": 6, "windowSeconds": 3600}}))).await;
        let replies = fifty(&apps, |a, i| v.start(a, &format!("+1555{i:03}0000"), "203.0.113.9")).await;
        assert_eq!(admitted(&replies, 201), 6, "per IP, {on}");

        // Per service: 50 numbers in 50 prefixes, from 50 addresses.
        let v = Verify::new(&apps[0], guard(json!({"perService": {"max": 5, "windowSeconds": 3600}}))).await;
        let replies = fifty(&apps, |a, i| v.start(a, &format!("+1556{i:03}0000"), &format!("198.51.100.{i}"))).await;
        assert_eq!(admitted(&replies, 201), 5, "per service, {on}");

        // Conversion: once 5 verifications of a prefix exist and none was approved, the
        // prefix is blocked; 50 at once do not all slip in before the block.
        let v = Verify::new(
            &apps[0],
            guard(json!({"minSample": 5, "minConversion": 0.5, "blockSeconds": 600, "conversionWindowSeconds": 600})),
        )
        .await;
        let replies = fifty(&apps, |a, i| v.start(a, &format!("+1557444{i:04}"), &format!("198.51.100.{i}"))).await;
        assert_eq!(admitted(&replies, 201), 5, "conversion block, {on}");
        let blocks =
            apps[0].admin(Method::GET, &format!("/api/verify/{}/services/{}/blocks", v.account, v.service), None).await;
        assert_eq!(blocks.json["blocks"].as_array().map(Vec::len), Some(1), "one block, {on}: {}", blocks.text);
    }
}

#[tokio::test]
async fn second_factor_send_limits_admit_exactly_their_limit_under_concurrency() {
    let configure = |c: &mut Config| {
        c.policies.mfa_guard.per_number = tessera_core::verify::Limit { max: 3, window_seconds: 600 };
    };
    for apps in deployments(configure).await {
        let on = name(&apps);
        // Per user: 5 codes a minute, to 50 different numbers.
        let ann = apps[0].create_user("ann@example.com", "correct horse").await;
        let replies = fifty(&apps, |a, i| {
            a.client
                .post(a.url("/api/two-factor/send"))
                .header("Authorization", &a.api_key)
                .json(&json!({"userId": ann, "mobilePhone": format!("+1555333{i:04}")}))
        })
        .await;
        assert_eq!(
            admitted(&replies, 200),
            5,
            "per user, {on}: {:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );

        // Per number (the tenant's guard): 10 users, 5 codes each, one number.
        let mut users = Vec::new();
        for u in 0..10 {
            users.push(apps[0].create_user(&format!("user{u}@example.com"), "correct horse").await);
        }
        let replies = fifty(&apps, |a, i| {
            a.client
                .post(a.url("/api/two-factor/send"))
                .header("Authorization", &a.api_key)
                .json(&json!({"userId": users[i % 10], "mobilePhone": "+15554443232"}))
        })
        .await;
        assert_eq!(admitted(&replies, 200), 3, "per number, {on}");
    }
}

const SECRET: &[u8] = b"12345678901234567890";

/// A new second-step challenge for `login_id` (whose password is "correct horse").
async fn challenge(app: &TestApp, login_id: &str) -> String {
    let r = app.login(login_id, "correct horse").await;
    assert_eq!(r.status, 242, "{}", r.text);
    r.json["twoFactorId"].as_str().unwrap().to_owned()
}

fn second_step(app: &TestApp, id: &str, code: &str) -> reqwest::RequestBuilder {
    app.client.post(app.url("/api/two-factor/login")).json(&json!({"twoFactorId": id, "code": code}))
}

/// A user with an authenticator (`SECRET`) whose enrolment step is past; returns a
/// recovery code.
async fn with_authenticator(apps: &[TestApp], email: &str) -> String {
    let id = apps[0].create_user(email, "correct horse").await;
    let enabled = apps[0].enable_authenticator(&id, SECRET).await;
    for a in apps {
        a.clock.advance(Duration::from_secs(30));
    }
    enabled["recoveryCodes"][0].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn codes_are_used_once_and_wrong_codes_are_limited_under_concurrency() {
    for apps in deployments(|_| {}).await {
        let on = name(&apps);
        let statuses = |r: &[Reply]| r.iter().map(|r| r.status).collect::<Vec<_>>();

        // Wrong codes on one twoFactorId: five are compared, then it is spent.
        with_authenticator(&apps, "ann@example.com").await;
        let id = challenge(&apps[0], "ann@example.com").await;
        let replies = fifty(&apps, |a, _| second_step(a, &id, "000000")).await;
        assert_eq!(admitted(&replies, 421), 5, "wrong codes, {on}: {:?}", statuses(&replies));
        assert_eq!(admitted(&replies, 404), 45, "{on}");

        // One TOTP step signs in once, whichever challenges it is offered to.
        with_authenticator(&apps, "bob@example.com").await;
        let mut ids = Vec::new();
        for _ in 0..50 {
            ids.push(challenge(&apps[0], "bob@example.com").await);
        }
        let code = apps[0].totp(SECRET, 0);
        let replies = fifty(&apps, |a, i| second_step(a, &ids[i], &code)).await;
        assert_eq!(admitted(&replies, 200), 1, "one TOTP code, {on}: {:?}", statuses(&replies));

        // One recovery code signs in once.
        let recovery = with_authenticator(&apps, "cat@example.com").await;
        let mut ids = Vec::new();
        for _ in 0..50 {
            ids.push(challenge(&apps[0], "cat@example.com").await);
        }
        let replies = fifty(&apps, |a, i| second_step(a, &ids[i], &recovery)).await;
        assert_eq!(admitted(&replies, 200), 1, "one recovery code, {on}: {:?}", statuses(&replies));

        // Wrong codes on one verification: five are compared, the rest refused (60202).
        let v = Verify::new(&apps[0], guard(json!({}))).await;
        assert_eq!(apps[0].send(v.start(&apps[0], "+15554443232", "198.51.100.7")).await.status, 201);
        let replies = fifty(&apps, |a, _| {
            a.client
                .post(a.url(&format!("/v2/Services/{}/VerificationCheck", v.service)))
                .basic_auth(&v.account, Some(&v.token))
                .form(&[("To", "+15554443232"), ("Code", "000000")])
        })
        .await;
        assert_eq!(admitted(&replies, 200), 5, "verification checks, {on}: {:?}", statuses(&replies));
        assert!(replies.iter().filter(|r| r.status != 200).all(|r| r.json["code"] == 60202), "{on}");

        // The app's feedback on one verification: one approval is taken (and counted once
        // towards the prefix's conversion), the rest find it no longer pending.
        assert_eq!(apps[0].send(v.start(&apps[0], "+15554443299", "198.51.100.7")).await.status, 201);
        let replies = fifty(&apps, |a, _| {
            a.client
                .post(a.url(&format!("/v2/Services/{}/Verifications/+15554443299", v.service)))
                .basic_auth(&v.account, Some(&v.token))
                .form(&[("Status", "approved")])
        })
        .await;
        assert_eq!(admitted(&replies, 200), 1, "feedback approvals, {on}: {:?}", statuses(&replies));
        let approved = "SELECT COALESCE(SUM(n), 0) FROM verify_counts WHERE kind = 'approved'";
        assert_eq!(apps[0].count(approved).await, 1, "one approval counted, {on}");
    }
}

/// 50 authenticators enrolled at once for one user: one of them is the first factor, so
/// exactly one answer shows recovery codes, and those are the ones stored.
#[tokio::test]
async fn only_one_of_fifty_concurrent_first_factors_gets_recovery_codes() {
    for apps in deployments(|_| {}).await {
        let on = name(&apps);
        let ann = apps[0].create_user("ann@example.com", "correct horse").await;
        let secrets: Vec<Vec<u8>> = (0..50u8).map(|i| (0..20u8).map(|j| i.wrapping_mul(31) ^ j).collect()).collect();
        let replies = fifty(&apps, |a, i| {
            let body = json!({
                "method": "authenticator",
                "secretBase32Encoded": tessera_core::base32::encode(&secrets[i]),
                "code": a.totp(&secrets[i], 0),
            });
            a.client.post(a.url(&format!("/api/user/two-factor/{ann}"))).header("Authorization", &a.api_key).json(&body)
        })
        .await;
        assert_eq!(admitted(&replies, 200), 50, "{on}");
        let with_codes = replies.iter().filter(|r| r.json["recoveryCodes"].as_array().is_some_and(|c| !c.is_empty()));
        assert_eq!(with_codes.count(), 1, "{on}");
        let stored = apps[0].count("SELECT COUNT(*) FROM recovery_codes").await;
        assert_eq!(stored, 10, "{on}");
    }
}
