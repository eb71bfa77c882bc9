//! The Verify v2 API as Twilio's clients use it: form bodies, Basic auth, Twilio's
//! JSON and error codes, and the fraud guard.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{TestApp, app, spawn_app};

struct Verify<'a> {
    app: &'a TestApp,
    account: String,
    token: String,
}

impl<'a> Verify<'a> {
    async fn new(app: &'a TestApp) -> Verify<'a> {
        let r = app.admin(Method::POST, "/api/verify/account", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        Verify {
            app,
            account: r.json["accountSid"].as_str().unwrap().into(),
            token: r.json["authToken"].as_str().unwrap().into(),
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> tessera_testkit::Reply {
        self.post_from(path, form, "198.51.100.7").await
    }

    async fn post_from(&self, path: &str, form: &[(&str, &str)], ip: &str) -> tessera_testkit::Reply {
        let req = self
            .app
            .client
            .post(self.app.url(path))
            .basic_auth(&self.account, Some(&self.token))
            .header("X-Forwarded-For", ip)
            .form(form);
        self.app.send(req).await
    }

    async fn get(&self, path: &str) -> tessera_testkit::Reply {
        self.app.send(self.app.client.get(self.app.url(path)).basic_auth(&self.account, Some(&self.token))).await
    }

    async fn service(&self, form: &[(&str, &str)]) -> String {
        let r = self.post("/v2/Services", form).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["sid"].as_str().unwrap().to_owned()
    }

    async fn start(&self, va: &str, to: &str) -> tessera_testkit::Reply {
        self.post(&format!("/v2/Services/{va}/Verifications"), &[("To", to), ("Channel", "sms")]).await
    }

    async fn check(&self, va: &str, to: &str, code: &str) -> tessera_testkit::Reply {
        self.post(&format!("/v2/Services/{va}/VerificationCheck"), &[("To", to), ("Code", code)]).await
    }

    async fn guard(&self, va: &str, guard: Value) {
        let r = self
            .app
            .admin(Method::PUT, &format!("/api/verify/{}/services/{va}/fraud-guard", self.account), Some(guard))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

fn error(r: &tessera_testkit::Reply) -> (u16, i64, String) {
    (r.status, r.json["code"].as_i64().unwrap_or(0), r.json["message"].as_str().unwrap_or_default().to_owned())
}

fn code_sent_to(app: &TestApp, to: &str) -> String {
    let text = app.last_message_to(to).expect("a code was sent");
    text.rsplit(' ').next().unwrap().to_owned()
}

const TO: &str = "+15554443232";

#[tokio::test]
async fn services_follow_twilio_rules() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let r = v.post("/v2/Services", &[("FriendlyName", "Acme"), ("CodeLength", "8")]).await;
    assert_eq!(r.status, 201);
    let va = r.json["sid"].as_str().unwrap().to_owned();
    assert!(va.starts_with("VA") && va.len() == 34);
    assert_eq!((r.json["friendly_name"].as_str(), r.json["code_length"].as_i64()), (Some("Acme"), Some(8)));
    assert_eq!(r.json["account_sid"], v.account.as_str());
    assert!(r.json["url"].as_str().unwrap().ends_with(&format!("/v2/Services/{va}")));

    assert_eq!(
        error(&v.post("/v2/Services", &[("CodeLength", "6")]).await),
        (400, 60200, "Invalid parameter: FriendlyName".into())
    );
    for bad in ["3", "11", "six"] {
        assert_eq!(error(&v.post("/v2/Services", &[("FriendlyName", "x"), ("CodeLength", bad)]).await).1, 60200);
    }
    let long = "x".repeat(33);
    assert_eq!(error(&v.post("/v2/Services", &[("FriendlyName", &long)]).await).1, 60200);

    let got = v.get(&format!("/v2/Services/{va}")).await;
    assert_eq!(got.json["sid"], va.as_str());
    let updated = v.post(&format!("/v2/Services/{va}"), &[("FriendlyName", "Acme 2")]).await;
    assert_eq!(updated.json["friendly_name"], "Acme 2");
    assert_eq!(v.get("/v2/Services").await.json["services"].as_array().unwrap().len(), 1);

    let other = Verify::new(&app).await;
    assert_eq!(error(&other.get(&format!("/v2/Services/{va}")).await).1, 20404, "services belong to their account");
    let anonymous = app.send(app.client.get(app.url(&format!("/v2/Services/{va}")))).await;
    assert_eq!(error(&anonymous), (401, 20003, "Authentication Error - invalid username".into()));
    let wrong = app.send(app.client.get(app.url("/v2/Services")).basic_auth(&v.account, Some("nope"))).await;
    assert_eq!(wrong.status, 401);

    let gone = app
        .send(app.client.delete(app.url(&format!("/v2/Services/{va}"))).basic_auth(&v.account, Some(&v.token)))
        .await;
    assert_eq!(gone.status, 204);
    assert_eq!(error(&v.get(&format!("/v2/Services/{va}")).await).1, 20404);
}

#[tokio::test]
async fn start_resend_check_and_approve() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme"), ("CodeLength", "8")]).await;
    let r = v.start(&va, "+1 555 444 3232").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ve = r.json["sid"].as_str().unwrap().to_owned();
    assert!(ve.starts_with("VE"));
    assert_eq!(
        (r.json["status"].as_str(), r.json["valid"].as_bool(), r.json["to"].as_str()),
        (Some("pending"), Some(false), Some(TO))
    );
    assert_eq!(r.json["channel"], "sms");
    assert_eq!(r.json["send_code_attempts"].as_array().unwrap().len(), 1);
    let text = app.last_message_to(TO).unwrap();
    assert!(text.starts_with("Your Acme verification code is: "), "{text}");
    let code = code_sent_to(&app, TO);
    assert_eq!(code.len(), 8);

    // A resend inside the validity window sends the same code.
    app.clock.advance(Duration::from_secs(30));
    let again = v.start(&va, TO).await;
    assert_eq!(again.json["sid"], ve.as_str(), "same verification");
    assert_eq!(again.json["send_code_attempts"].as_array().unwrap().len(), 2);
    assert_eq!(code_sent_to(&app, TO), code, "same code");

    let wrong = v.check(&va, TO, "00000000").await;
    assert_eq!(
        (wrong.status, wrong.json["status"].as_str(), wrong.json["valid"].as_bool()),
        (200, Some("pending"), Some(false))
    );
    let ok =
        v.post(&format!("/v2/Services/{va}/VerificationCheck"), &[("VerificationSid", &ve), ("Code", &code)]).await;
    assert_eq!(
        (ok.status, ok.json["status"].as_str(), ok.json["valid"].as_bool()),
        (200, Some("approved"), Some(true))
    );
    assert_eq!(
        error(&v.check(&va, TO, &code).await),
        (404, 20404, "The requested resource was not found".into()),
        "approved is done"
    );
    let fetched = v.get(&format!("/v2/Services/{va}/Verifications/{ve}")).await;
    assert_eq!(fetched.json["status"], "approved");
}

#[tokio::test]
async fn an_approved_verification_is_done_by_its_sid_too() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    let ve = v.start(&va, TO).await.json["sid"].as_str().unwrap().to_owned();
    let code = code_sent_to(&app, TO);
    let by_sid = |code: &str| {
        let form = [("VerificationSid", ve.clone()), ("Code", code.to_owned())];
        let path = format!("/v2/Services/{va}/VerificationCheck");
        let v = &v;
        async move { v.post(&path, &form.iter().map(|(k, c)| (*k, c.as_str())).collect::<Vec<_>>()).await }
    };
    assert_eq!(by_sid(&code).await.json["status"], "approved");
    let again = by_sid(&code).await;
    assert_eq!(
        error(&again),
        (404, 20404, "The requested resource was not found".into()),
        "approved is done: {}",
        again.text
    );
    assert_eq!(error(&by_sid("000000").await).1, 20404, "a wrong code after approval too");
    assert_eq!(v.get(&format!("/v2/Services/{va}/Verifications/{ve}")).await.json["status"], "approved");
}

#[tokio::test]
async fn five_checks_then_max_attempts_reached() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    let ve = v.start(&va, TO).await.json["sid"].as_str().unwrap().to_owned();
    let code = code_sent_to(&app, TO);
    for i in 1..=5 {
        let r = v.check(&va, TO, "999999x").await;
        assert_eq!((r.status, r.json["status"].as_str()), (200, Some("pending")), "check {i}");
    }
    let sixth =
        v.post(&format!("/v2/Services/{va}/VerificationCheck"), &[("VerificationSid", &ve), ("Code", &code)]).await;
    assert_eq!(error(&sixth), (429, 60202, "Max check attempts reached".into()), "even the right code");
    assert_eq!(error(&v.check(&va, TO, &code).await).1, 60202, "by the number too");
    assert_eq!(v.get(&format!("/v2/Services/{va}/Verifications/{ve}")).await.json["status"], "max_attempts_reached");
}

#[tokio::test]
async fn five_sends_per_number_per_ten_minutes() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    for i in 0..5 {
        assert_eq!(v.start(&va, TO).await.status, 201, "send {i}");
    }
    let sixth = v.start(&va, TO).await;
    assert_eq!(error(&sixth), (429, 60203, "Max send attempts reached".into()));
    assert_eq!(v.start(&va, "+15554443233").await.status, 201, "another number is not limited");
    app.clock.advance(Duration::from_secs(601));
    let later = v.start(&va, TO).await;
    assert_eq!(later.status, 201, "the window passed");
}

#[tokio::test]
async fn codes_expire_and_bad_parameters_are_named() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    let ve = v.start(&va, TO).await.json["sid"].as_str().unwrap().to_owned();
    let code = code_sent_to(&app, TO);
    app.clock.advance(Duration::from_secs(601));
    assert_eq!(error(&v.check(&va, TO, &code).await).1, 20404, "expired after 10 minutes");
    assert_eq!(v.get(&format!("/v2/Services/{va}/Verifications/{ve}")).await.json["status"], "expired");

    let start = |form: Vec<(&'static str, &'static str)>| {
        let v = &v;
        let va = va.clone();
        async move { error(&v.post(&format!("/v2/Services/{va}/Verifications"), &form).await) }
    };
    assert_eq!(start(vec![("To", "12"), ("Channel", "sms")]).await, (400, 60200, "Invalid parameter: To".into()));
    assert_eq!(start(vec![("To", TO), ("Channel", "email")]).await.2, "Invalid parameter: Channel");
    assert_eq!(start(vec![("To", TO)]).await.2, "Invalid parameter: Channel");
    assert_eq!(
        start(vec![("To", TO), ("Channel", "sms"), ("CustomCode", "1234")]).await.2,
        "Invalid parameter: CustomCode"
    );
    assert_eq!(
        error(&v.post(&format!("/v2/Services/{va}/VerificationCheck"), &[("To", TO)]).await).2,
        "Invalid parameter: Code"
    );
    assert_eq!(
        error(&v.post(&format!("/v2/Services/{va}/VerificationCheck"), &[("Code", "1")]).await).2,
        "Invalid parameter: To"
    );
    assert_eq!(error(&v.start("VA00000000000000000000000000000000", TO).await).1, 20404);

    let custom = v.service(&[("FriendlyName", "Custom"), ("CustomCodeEnabled", "true")]).await;
    let r = v
        .post(
            &format!("/v2/Services/{custom}/Verifications"),
            &[("To", "+15554449999"), ("Channel", "call"), ("CustomCode", "424242")],
        )
        .await;
    assert_eq!((r.status, r.json["channel"].as_str()), (201, Some("call")));
    assert!(app.last_message_to("+15554449999").unwrap().contains("4, 2, 4, 2, 4, 2"), "the custom code is read out");
    assert_eq!(v.check(&custom, "+15554449999", "424242").await.json["status"], "approved");
}

#[tokio::test]
async fn feedback_approves_or_cancels() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    v.start(&va, TO).await;
    let r = v.post(&format!("/v2/Services/{va}/Verifications/{}", "%2B15554443232"), &[("Status", "approved")]).await;
    assert_eq!(
        (r.status, r.json["status"].as_str(), r.json["valid"].as_bool()),
        (200, Some("approved"), Some(true)),
        "{}",
        r.text
    );

    let ve = v.start(&va, "+15554440001").await.json["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        error(&v.post(&format!("/v2/Services/{va}/Verifications/{ve}"), &[("Status", "done")]).await).2,
        "Invalid parameter: Status"
    );
    let canceled = v.post(&format!("/v2/Services/{va}/Verifications/{ve}"), &[("Status", "canceled")]).await;
    assert_eq!(canceled.json["status"], "canceled");
    assert_eq!(error(&v.check(&va, "+15554440001", "123456").await).1, 20404, "canceled is done");
    assert_eq!(
        error(&v.post(&format!("/v2/Services/{va}/Verifications/{ve}"), &[("Status", "approved")]).await).1,
        20404
    );
}

#[tokio::test]
async fn geo_permissions_deny_whole_countries() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    v.guard(&va, json!({"allowedCountries": [1]})).await;
    assert_eq!(v.start(&va, TO).await.status, 201);
    let denied = v.start(&va, "+442079460958").await;
    assert_eq!((denied.status, denied.json["code"].as_i64()), (403, Some(60605)));
    assert!(app.last_message_to("+442079460958").is_none(), "nothing was sent");
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=50", None).await;
    let blocked =
        log.json["auditLogs"].as_array().unwrap().iter().find(|e| e["event"] == "verify.blocked").cloned().unwrap();
    assert_eq!(blocked["outcome"], "geo");
}

#[tokio::test]
async fn low_conversion_blocks_a_prefix_until_the_block_expires() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    v.guard(&va, json!({"minSample": 5, "minConversion": 0.5, "blockSeconds": 600, "conversionWindowSeconds": 600}))
        .await;
    // Pumping: numbers in +1555444 never convert. Real users in +1555777 half do.
    for i in 0..5 {
        assert_eq!(v.start(&va, &format!("+155544400{i:02}")).await.status, 201);
        let honest = format!("+155577700{i:02}");
        assert_eq!(v.start(&va, &honest).await.status, 201);
        if i % 2 == 0 {
            let code = code_sent_to(&app, &honest);
            assert_eq!(v.check(&va, &honest, &code).await.json["status"], "approved");
        } else {
            v.post(
                &format!("/v2/Services/{va}/Verifications/{}", honest.replace('+', "%2B")),
                &[("Status", "approved")],
            )
            .await;
        }
    }
    let blocked = v.start(&va, "+15554440099").await;
    assert_eq!((blocked.status, blocked.json["code"].as_i64()), (403, Some(60410)), "{}", blocked.text);
    assert_eq!(v.start(&va, "+15554440098").await.json["code"], 60410, "the whole prefix");
    assert_eq!(v.start(&va, "+15557770099").await.status, 201, "converting traffic keeps flowing");

    let blocks = app.admin(Method::GET, &format!("/api/verify/{}/services/{va}/blocks", v.account), None).await;
    let b = &blocks.json["blocks"][0];
    assert_eq!(b["prefix"], "+1555444");
    assert_eq!(b["reason"], "low_conversion: 0 of 5 approved for +1555444");
    let metrics = app.send(app.client.get(app.url("/metrics"))).await.text;
    assert!(
        metrics.contains("tessera_security_events_total{event=\"verify.blocked\",outcome=\"low_conversion\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_security_events_total{event=\"verify.approved\",outcome=\"approved\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("tessera_security_events_total{event=\"verify.sent\",outcome=\"new\"} 11"), "{metrics}");
    assert!(metrics.contains("tessera_verify_conversion_ratio 0.4545"), "5 approved of 11 started: {metrics}");

    app.clock.advance(Duration::from_secs(601));
    assert_eq!(v.start(&va, "+15554440099").await.status, 201, "the block expired");
}

#[tokio::test]
async fn rate_limits_per_prefix_ip_and_service() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    v.guard(&va, json!({"perIp": {"max": 2, "windowSeconds": 60}, "perPrefix": {"max": 3, "windowSeconds": 60}, "perService": {"max": 5, "windowSeconds": 60}})).await;
    let start = |to: String, ip: &'static str| {
        let v = &v;
        let path = format!("/v2/Services/{va}/Verifications");
        async move { v.post_from(&path, &[("To", &to), ("Channel", "sms")], ip).await }
    };
    assert_eq!(start("+15550000001".into(), "203.0.113.1").await.status, 201);
    assert_eq!(start("+15551110001".into(), "203.0.113.1").await.status, 201);
    assert_eq!(start("+15552220001".into(), "203.0.113.1").await.json["code"], 60410, "third from one IP");
    assert_eq!(start("+15550000002".into(), "203.0.113.2").await.status, 201);
    assert_eq!(start("+15550000003".into(), "203.0.113.3").await.status, 201);
    assert_eq!(start("+15550000004".into(), "203.0.113.4").await.json["code"], 60410, "fourth to one prefix");
    assert_eq!(start("+15553330001".into(), "203.0.113.5").await.status, 201);
    assert_eq!(start("+15554440001".into(), "203.0.113.6").await.json["code"], 60410, "sixth in the service");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(start("+15554440001".into(), "203.0.113.6").await.status, 201, "windows slide");
}

#[tokio::test]
async fn two_instances_on_postgres_share_limits_and_blocks() {
    let clock = std::sync::Arc::new(tessera_testkit::FakeClock::new());
    let a = app().backend(tessera_store::Backend::Postgres).clock(clock.clone()).spawn().await;
    let b = app().database_url(&a.database_url).clock(clock.clone()).spawn().await;
    let va_ = Verify::new(&a).await;
    let vb = Verify { app: &b, account: va_.account.clone(), token: va_.token.clone() };
    let va = va_.service(&[("FriendlyName", "Acme")]).await;
    for (i, v) in [&va_, &vb, &va_, &vb, &va_].into_iter().enumerate() {
        assert_eq!(v.start(&va, TO).await.status, 201, "send {i}");
    }
    assert_eq!(vb.start(&va, TO).await.json["code"], 60203, "B counts A's sends");

    va_.guard(&va, json!({"minSample": 3, "minConversion": 0.5})).await;
    for i in 0..3 {
        assert_eq!(vb.start(&va, &format!("+14155550{i:03}")).await.status, 201);
    }
    assert_eq!(va_.start(&va, "+14155550999").await.json["code"], 60410, "A blocks on B's traffic");
    assert_eq!(vb.start(&va, "+14155550998").await.json["code"], 60410, "and B sees A's block");
}

#[tokio::test]
async fn verify_sends_go_through_the_messengers() {
    let app = spawn_app().await;
    let mock = tessera_testkit::MockVendor::start().await;
    mock.default_reply(tessera_testkit::mock::Reply::json(201, json!({"sid": "SM1", "status": "queued"})));
    let r = app
        .admin(Method::POST, "/api/messenger", Some(json!({"messenger": {"type": "Twilio", "name": "t", "url": mock.url, "accountSID": "AC1", "authToken": "tok", "fromPhoneNumber": "+15550001111"}})))
        .await;
    assert_eq!(r.status, 200);
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    assert_eq!(v.start(&va, TO).await.status, 201);
    let body = mock.last().unwrap().field("Body").unwrap();
    let code = body.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(v.check(&va, TO, &code).await.json["status"], "approved");

    mock.default_reply(tessera_testkit::mock::Reply::json(400, json!({"code": 21211, "message": "bad"})));
    let failed = v.start(&va, "+15554443299").await;
    assert_eq!((failed.status, failed.json["code"].as_i64()), (502, Some(60001)), "{}", failed.text);
}

#[tokio::test]
async fn the_official_twilio_python_sdk_works_against_tessera() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let python = tokio::task::spawn_blocking(crate::sdk::python_with_twilio).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/twilio_verify.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .env("TESSERA_URL", &app.base)
        .env("ACCOUNT_SID", &v.account)
        .env("AUTH_TOKEN", &v.token)
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(120), run).await.expect("the SDK script finished in time").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_fraud_guard_window_longer_than_a_week_is_refused() {
    let app = spawn_app().await;
    let v = Verify::new(&app).await;
    let va = v.service(&[("FriendlyName", "Acme")]).await;
    let path = format!("/api/verify/{}/services/{va}/fraud-guard", v.account);
    let r = app.admin(Method::PUT, &path, Some(json!({"perIp": {"max": 5, "windowSeconds": 8 * 24 * 3600}}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["fieldErrors"]["perIp.windowSeconds"][0]["code"], "[outOfRange]perIp.windowSeconds");
    let r = app.admin(Method::PUT, &path, Some(json!({"conversionWindowSeconds": 0}))).await;
    assert_eq!(
        r.json["fieldErrors"]["conversionWindowSeconds"][0]["code"], "[outOfRange]conversionWindowSeconds",
        "{}",
        r.text
    );
    let r = app.admin(Method::PUT, &path, Some(json!({"perIp": {"max": 5, "windowSeconds": 7 * 24 * 3600}}))).await;
    assert_eq!(r.status, 200, "a week is allowed: {}", r.text);
}
