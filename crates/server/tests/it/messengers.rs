//! Messengers against local stand-ins of each vendor's API: what is sent on the wire,
//! how vendor errors read, retries, failover, routing, Verify, and status callbacks.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_providers::signature;
use tessera_testkit::mock::Reply;
use tessera_testkit::{MockVendor, TestApp, app, spawn_app};

const PHONE: &str = "+15554443232";

async fn add(app: &TestApp, messenger: Value) -> Value {
    let r = app.admin(Method::POST, "/api/messenger", Some(json!({"messenger": messenger}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["messenger"].clone()
}

fn twilio(mock: &MockVendor) -> Value {
    json!({"type": "Twilio", "name": "twilio", "url": mock.url, "accountSID": "AC123",
           "authToken": "tok_secret_abcd1234", "fromPhoneNumber": "+15550001111"})
}

fn plivo(mock: &MockVendor) -> Value {
    json!({"type": "Plivo", "name": "plivo", "url": mock.url, "authId": "MA999", "authToken": "plivo_token_5678", "src": "+15550002222"})
}

fn twilio_ok(sid: &str) -> Reply {
    Reply::json(201, json!({"sid": sid, "status": "queued", "price": "-0.00750", "price_unit": "USD"}))
}

async fn test_send(app: &TestApp, id: &str, phone: &str) -> tessera_testkit::Reply {
    app.admin(Method::POST, &format!("/api/messenger/{id}/test"), Some(json!({"mobilePhone": phone}))).await
}

/// Enrolls an SMS factor; returns the user id.
async fn enrolled(app: &TestApp, code_of: impl Fn() -> String) -> String {
    let user = app.create_user("ann@example.com", "correct horse").await;
    let r = app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": user, "mobilePhone": PHONE}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .admin(
            Method::POST,
            &format!("/api/user/two-factor/{user}"),
            Some(json!({"method": "sms", "mobilePhone": PHONE, "code": code_of()})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    user
}

fn digits(text: &str) -> String {
    text.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn twilio_sms_speaks_the_messages_api_and_delivers_the_login_code() {
    let app = spawn_app().await;
    let mock = MockVendor::start().await;
    mock.default_reply(twilio_ok("SM123"));
    let m = add(&app, twilio(&mock)).await;
    assert_eq!(m["authToken"], "••••1234", "masked");
    assert_eq!(m["accountSID"], "AC123");

    let last_body = || mock.last().map(|r| r.field("Body").unwrap_or_default()).unwrap_or_default();
    enrolled(&app, || digits(&last_body())).await;
    let req = mock.last().unwrap();
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/2010-04-01/Accounts/AC123/Messages.json"));
    assert_eq!(req.basic_auth(), Some(("AC123".into(), "tok_secret_abcd1234".into())));
    assert!(req.header("content-type").unwrap().starts_with("application/x-www-form-urlencoded"));
    let fields: Vec<String> = req.form().into_iter().map(|(k, _)| k).collect();
    assert_eq!(fields, ["To", "From", "Body"], "no StatusCallback without public_url");
    assert_eq!(req.field("To").as_deref(), Some(PHONE));
    assert_eq!(req.field("From").as_deref(), Some("+15550001111"));

    app.clock.advance(Duration::from_secs(1)); // so the deliveries sort by time
    let r = app.login("ann@example.com", "correct horse").await;
    let id = r.json["twoFactorId"].as_str().unwrap().to_owned();
    assert_eq!(app.post_json(&format!("/api/two-factor/send/{id}"), json!({})).await.status, 200);
    let code = digits(&last_body());
    let ok = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": code})).await;
    assert_eq!(ok.status, 200, "the code that reached Twilio signs in");
    assert_eq!(app.messages_sent(), 0, "nothing went to the console");

    let d = app.admin(Method::GET, "/api/messenger/deliveries", None).await;
    assert_eq!(d.json["total"], 2);
    let latest = &d.json["deliveries"][0];
    assert_eq!((latest["provider"].as_str(), latest["providerMessageId"].as_str()), (Some("twilio"), Some("SM123")));
    assert_eq!(
        (latest["status"].as_str(), latest["price"].as_str(), latest["priceUnit"].as_str()),
        (Some("queued"), Some("-0.00750"), Some("USD"))
    );
    assert_eq!(latest["purpose"], "second-factor-authentication");
    assert!(!d.text.contains(&code), "delivery records hold no codes");
}

#[tokio::test]
async fn twilio_api_keys_messaging_services_and_voice_calls() {
    let app = spawn_app().await;
    let mock = MockVendor::start().await;
    mock.default_reply(twilio_ok("SM1"));
    let m = add(&app, json!({"type": "Twilio", "name": "svc", "url": mock.url, "accountSID": "AC9", "apiKeySid": "SK1",
                              "apiKeySecret": "key_secret", "messagingServiceSid": "MG1", "fromPhoneNumber": "+15550001111"}))
        .await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["messageId"], "SM1");
    let req = mock.last().unwrap();
    assert_eq!(req.basic_auth(), Some(("SK1".into(), "key_secret".into())), "API key auth");
    assert_eq!(req.field("MessagingServiceSid").as_deref(), Some("MG1"));
    assert_eq!(req.field("From"), None, "a messaging service replaces From");

    let user = app.create_user("ann@example.com", "correct horse").await;
    let r = app
        .admin(
            Method::POST,
            "/api/two-factor/send",
            Some(json!({"userId": user, "mobilePhone": PHONE, "messageType": "Voice"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let call = mock.last().unwrap();
    assert_eq!(call.path, "/2010-04-01/Accounts/AC9/Calls.json");
    assert_eq!(call.field("From").as_deref(), Some("+15550001111"));
    let twiml = call.field("Twiml").unwrap();
    assert!(twiml.starts_with("<Response><Say language=\"en-US\">") && twiml.ends_with("</Say></Response>"), "{twiml}");
    let spoken = twiml.matches(", ").count();
    assert_eq!(spoken, 10, "six digits read one by one, twice: {twiml}");
}

#[tokio::test]
async fn twilio_errors_read_as_words_and_only_transient_ones_are_retried() {
    let app = spawn_app().await;
    let cases = [
        (400, 21211, "Twilio 21211: the 'To' number is not a valid phone number"),
        (401, 20003, "Twilio 20003: authentication failed"),
        (400, 21608, "Twilio 21608: the number is unverified on a trial account"),
        (400, 21610, "Twilio 21610: the recipient has unsubscribed"),
    ];
    for (status, code, words) in cases {
        let mock = MockVendor::start().await;
        mock.default_reply(Reply::json(
            status,
            json!({"code": code, "message": "x", "more_info": "https://www.twilio.com/docs/errors", "status": status}),
        ));
        let m = add(&app, twilio(&mock)).await;
        let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
        assert_eq!(r.status, 400);
        let message = r.json["generalErrors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(words), "{message}");
        assert_eq!(r.json["generalErrors"][0]["code"], format!("[MessengerError]{code}"));
        assert_eq!(mock.requests().len(), 1, "{code} is permanent: no retry");
    }

    // 429 with Retry-After, then success.
    let mock = MockVendor::start().await;
    mock.then(Reply::json(429, json!({"code": 20429, "message": "Too Many Requests"})).header("Retry-After", "0"));
    mock.default_reply(twilio_ok("SM2"));
    let m = add(&app, twilio(&mock)).await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!((r.status, mock.requests().len()), (200, 2), "{}", r.text);

    // 500 every time: three attempts, then a clear error.
    let mock = MockVendor::start().await;
    mock.default_reply(Reply::json(500, json!({"message": "oops"})));
    let m = add(&app, twilio(&mock)).await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!((r.status, mock.requests().len()), (400, 3));
    let bodies: Vec<String> = mock.requests().iter().map(|q| q.field("Body").unwrap()).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "retries resend the same message");
}

#[tokio::test]
async fn a_provider_that_hangs_times_out_and_is_retried() {
    let app = app()
        .configure(|c| {
            c.messaging.attempt_timeout = Duration::from_millis(300);
            c.messaging.deadline = Duration::from_secs(3);
            c.messaging.max_attempts = 2;
        })
        .spawn()
        .await;
    let mock = MockVendor::start().await;
    mock.then(twilio_ok("SLOW").after(Duration::from_secs(2)));
    mock.default_reply(twilio_ok("FAST"));
    let m = add(&app, twilio(&mock)).await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["messageId"], "FAST");
    assert_eq!(mock.requests().len(), 2);

    let mock = MockVendor::start().await;
    mock.default_reply(twilio_ok("SLOW").after(Duration::from_secs(2)));
    let m = add(&app, twilio(&mock)).await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!(r.status, 400);
    assert!(r.json["generalErrors"][0]["message"].as_str().unwrap().contains("no answer within 300 ms"), "{}", r.text);
}

#[tokio::test]
async fn plivo_speaks_its_message_api() {
    let app = app().configure(|c| c.messaging.public_url = Some("https://tessera.example.com".into())).spawn().await;
    let mock = MockVendor::start().await;
    mock.default_reply(Reply::json(
        202,
        json!({"api_id": "a1", "message": "message(s) queued", "message_uuid": ["uuid-1"]}),
    ));
    let m = add(&app, plivo(&mock)).await;
    assert_eq!(m["authToken"], "••••5678");
    let id = m["id"].as_str().unwrap();
    let r = test_send(&app, id, PHONE).await;
    assert_eq!((r.status, r.json["messageId"].as_str()), (200, Some("uuid-1")), "{}", r.text);
    let req = mock.last().unwrap();
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/Account/MA999/Message/"));
    assert_eq!(req.basic_auth(), Some(("MA999".into(), "plivo_token_5678".into())));
    let body = req.json();
    assert_eq!(body["src"], "15550002222");
    assert_eq!(body["dst"], "15554443232");
    assert_eq!(body["type"], "sms");
    assert!(body["text"].as_str().unwrap().starts_with("Tessera test message"));
    assert_eq!(body["url"], format!("https://tessera.example.com/webhooks/plivo/status/{id}"));
    assert_eq!(body["method"], "POST");

    for (status, body, words) in [
        (401, json!({"api_id": "a", "error": "not authorized"}), "Plivo 401: authentication failed"),
        (400, json!({"api_id": "a", "error": "invalid dst number"}), "Plivo 400: invalid dst number"),
    ] {
        let mock = MockVendor::start().await;
        mock.default_reply(Reply::json(status, body));
        let m = add(&app, plivo(&mock)).await;
        let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
        assert!(r.json["generalErrors"][0]["message"].as_str().unwrap().starts_with(words), "{}", r.text);
        assert_eq!(mock.requests().len(), 1);
    }
}

#[tokio::test]
async fn the_generic_messenger_posts_signed_json() {
    let app = spawn_app().await;
    let mock = MockVendor::start().await;
    mock.default_reply(Reply::json(200, json!({"messageId": "g-1"})));
    let m = add(
        &app,
        json!({"type": "Generic", "name": "mine", "url": format!("{}/hook", mock.url), "signingSecret": "shh-secret"}),
    )
    .await;
    assert_eq!(m["signingSecret"], "••••cret");
    let last_code =
        || mock.last().map(|r| r.json()["code"].as_str().unwrap_or_default().to_owned()).unwrap_or_default();
    enrolled(&app, last_code).await;
    let req = mock.last().unwrap();
    assert_eq!(req.path, "/hook");
    let body = req.json();
    assert_eq!(body["recipient"], PHONE);
    assert_eq!(body["messageType"], "sms");
    assert_eq!(body["action"], "enrollment");
    assert_eq!(body["locale"], "en");
    assert!(body["text"].as_str().unwrap().contains(body["code"].as_str().unwrap()));
    let now = tessera_server::clock::Clock::now(app.clock.as_ref()).seconds();
    assert_eq!(req.header("x-tessera-signature"), Some(signature::generic("shh-secret", now, &req.body)));

    let failing = MockVendor::start().await;
    failing.default_reply(Reply::text(400, "bad recipient"));
    let m = add(&app, json!({"type": "Generic", "name": "strict", "url": failing.url, "signingSecret": "s3cretvalue"}))
        .await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert!(r.json["generalErrors"][0]["message"].as_str().unwrap().contains("HTTP 400: bad recipient"), "{}", r.text);
    assert_eq!(failing.requests().len(), 1);
}

#[tokio::test]
async fn slack_webhooks_get_text_and_their_errors_are_explained() {
    let app = spawn_app().await;
    let mock = MockVendor::start().await;
    mock.default_reply(Reply::text(200, "ok"));
    let hook = format!("{}/services/T000/B000/XXXXSECRET", mock.url);
    let m = add(&app, json!({"type": "Slack", "name": "ops", "url": hook})).await;
    assert_eq!(m["url"], "••••CRET", "the webhook URL is a credential");
    assert_eq!(m["channels"], json!([]), "Slack does not deliver codes");
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let req = mock.last().unwrap();
    assert_eq!(req.path, "/services/T000/B000/XXXXSECRET");
    assert!(req.json()["text"].as_str().unwrap().starts_with("Tessera test message"));

    let gone = MockVendor::start().await;
    gone.default_reply(Reply::text(404, "channel_not_found"));
    let m = add(&app, json!({"type": "Slack", "name": "old", "url": gone.url})).await;
    let r = test_send(&app, m["id"].as_str().unwrap(), PHONE).await;
    assert_eq!(
        r.json["generalErrors"][0]["message"],
        "Slack channel_not_found: the webhook's channel no longer exists"
    );
}

#[tokio::test]
async fn when_the_first_messenger_fails_the_next_delivers_and_that_code_signs_in() {
    let app = spawn_app().await;
    let broken = MockVendor::start().await;
    broken.default_reply(Reply::json(500, json!({"message": "down"})));
    let backup = MockVendor::start().await;
    backup.default_reply(Reply::json(
        202,
        json!({"api_id": "a", "message": "message(s) queued", "message_uuid": ["u-9"]}),
    ));
    add(&app, json!({"priority": 0, "type": "Twilio", "name": "primary", "url": broken.url, "accountSID": "AC1", "authToken": "t", "fromPhoneNumber": "+15550001111"})).await;
    let mut p = plivo(&backup);
    p["priority"] = json!(1);
    add(&app, p).await;

    let backup_code = || {
        digits(
            backup
                .last()
                .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
                .as_str(),
        )
    };
    enrolled(&app, backup_code).await;
    let r = app.login("ann@example.com", "correct horse").await;
    let id = r.json["twoFactorId"].as_str().unwrap().to_owned();
    assert_eq!(app.post_json(&format!("/api/two-factor/send/{id}"), json!({})).await.status, 200);
    let ok = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": backup_code()})).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(broken.requests().len(), 6, "three attempts for each of the two sends");

    let d = app.admin(Method::GET, "/api/messenger/deliveries", None).await;
    let rows = d.json["deliveries"].as_array().unwrap();
    let failed = rows.iter().find(|r| r["provider"] == "twilio").unwrap();
    assert_eq!((failed["status"].as_str(), failed["attempts"].as_u64()), (Some("failed"), Some(3)));
    let sent = rows.iter().find(|r| r["provider"] == "plivo").unwrap();
    assert_eq!(sent["providerMessageId"], "u-9");
}

#[tokio::test]
async fn messengers_are_chosen_by_country() {
    let app = spawn_app().await;
    let us = MockVendor::start().await;
    us.default_reply(twilio_ok("SM-US"));
    let india = MockVendor::start().await;
    india.default_reply(Reply::json(202, json!({"message_uuid": ["u-in"]})));
    let uk = MockVendor::start().await;
    uk.default_reply(twilio_ok("SM-UK"));
    add(&app, twilio(&us)).await;
    let mut p = plivo(&india);
    p["priority"] = json!(5);
    p["preferredCountryCodes"] = json!([91]);
    add(&app, p).await;
    let mut t = twilio(&uk);
    t["name"] = json!("uk only");
    t["priority"] = json!(-10);
    t["countryCodes"] = json!([44]);
    add(&app, t).await;

    for (i, phone) in ["+919876543210", "+15554443232", "+442079460958"].into_iter().enumerate() {
        let user = app.create_user(&format!("u{i}@example.com"), "correct horse").await;
        let r =
            app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": user, "mobilePhone": phone}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(india.requests().len(), 1, "+91 prefers Plivo");
    assert_eq!(india.last().unwrap().json()["dst"], "919876543210");
    assert_eq!(us.requests().len(), 1, "+1 goes to the general Twilio");
    assert_eq!(uk.requests().len(), 1, "+44 goes to the UK-only messenger, which ranks first there");
    assert_eq!(uk.last().unwrap().field("To").as_deref(), Some("+442079460958"));
}

#[tokio::test]
async fn twilio_verify_owns_the_codes_and_gets_approved_feedback() {
    let app = spawn_app().await;
    let verify = MockVendor::start().await;
    verify.on(
        "/v2/Services/VA123/Verifications",
        Reply::json(201, json!({"sid": "VE1", "status": "pending", "valid": false})),
    );
    verify.on(
        "/v2/Services/VA123/VerificationCheck",
        Reply::json(200, json!({"sid": "VE1", "status": "approved", "valid": true})),
    );
    verify.on("/v2/Services/VA123/Verifications/VE1", Reply::json(200, json!({"sid": "VE1", "status": "approved"})));
    add(&app, json!({"type": "TwilioVerify", "name": "verify", "url": verify.url, "accountSID": "AC1", "authToken": "vtoken", "serviceSid": "VA123"})).await;

    enrolled(&app, || "123456".into()).await;
    let paths: Vec<String> = verify.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v2/Services/VA123/Verifications",
            "/v2/Services/VA123/VerificationCheck",
            "/v2/Services/VA123/Verifications/VE1"
        ]
    );
    let start = &verify.requests()[0];
    assert_eq!(start.basic_auth(), Some(("AC1".into(), "vtoken".into())));
    assert_eq!((start.field("To").as_deref(), start.field("Channel").as_deref()), (Some(PHONE), Some("sms")));
    assert_eq!(verify.requests()[1].field("VerificationSid").as_deref(), Some("VE1"));
    assert_eq!(verify.requests()[1].field("Code").as_deref(), Some("123456"));

    let r = app.login("ann@example.com", "correct horse").await;
    assert_eq!(r.status, 242);
    let id = r.json["twoFactorId"].as_str().unwrap().to_owned();
    assert_eq!(app.post_json(&format!("/api/two-factor/send/{id}"), json!({})).await.status, 200);
    let before = verify.requests().len();
    let ok = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": "654321"})).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let after: Vec<_> = verify.requests()[before..].to_vec();
    assert_eq!(after[0].path, "/v2/Services/VA123/VerificationCheck");
    assert_eq!(after[0].field("Code").as_deref(), Some("654321"));
    let feedback = after.last().unwrap();
    assert_eq!(feedback.path, "/v2/Services/VA123/Verifications/VE1");
    assert_eq!(feedback.field("Status").as_deref(), Some("approved"), "the approved feedback Fraud Guard learns from");
    assert_eq!(app.messages_sent(), 0);
}

#[tokio::test]
async fn a_wrong_code_at_twilio_verify_is_421() {
    let app = spawn_app().await;
    let verify = MockVendor::start().await;
    verify.on("/v2/Services/VA9/Verifications", Reply::json(201, json!({"sid": "VE9", "status": "pending"})));
    verify.on("/v2/Services/VA9/VerificationCheck", Reply::json(200, json!({"sid": "VE9", "status": "approved"})));
    add(&app, json!({"type": "TwilioVerify", "name": "v", "url": verify.url, "accountSID": "AC1", "authToken": "t", "serviceSid": "VA9"})).await;
    verify.on("/v2/Services/VA9/Verifications/VE9", Reply::json(200, json!({"status": "approved"})));
    enrolled(&app, || "111111".into()).await;
    // From now on Twilio says the codes are wrong (pending) or the verification is gone (404).
    let wrong = MockVendor::start().await;
    wrong.on("/v2/Services/VA9/Verifications", Reply::json(201, json!({"sid": "VE10", "status": "pending"})));
    wrong.then(Reply::json(200, json!({"sid": "VE10", "status": "pending", "valid": false})));
    wrong.then(Reply::json(404, json!({"code": 20404, "message": "not found", "status": 404})));
    let list = app.admin(Method::GET, "/api/messenger", None).await;
    let vid = list.json["messengers"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .admin(Method::PATCH, &format!("/api/messenger/{vid}"), Some(json!({"messenger": {"url": wrong.url}})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.login("ann@example.com", "correct horse").await;
    let id = r.json["twoFactorId"].as_str().unwrap().to_owned();
    app.post_json(&format!("/api/two-factor/send/{id}"), json!({})).await;
    assert_eq!(app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": "000000"})).await.status, 421);
    assert_eq!(app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": "000001"})).await.status, 421);
    let letters = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": "ABCDE-FGHIJ"})).await;
    assert_eq!(letters.status, 421);
    let checks = wrong.requests().iter().filter(|r| r.path.ends_with("VerificationCheck")).count();
    assert_eq!(checks, 2, "a non-numeric code never costs a Verify check");
}

/// A code that proves a phone before it becomes a factor, owned by Twilio Verify: 50
/// wrong codes at once are counted before they are compared, so Verify is asked to
/// check at most five of them, and the code is gone after.
#[tokio::test]
async fn fifty_wrong_enrolment_codes_at_once_cost_at_most_five_verify_checks() {
    for apps in crate::limits::deployments(|_| {}).await {
        let (app, name) = (&apps[0], crate::limits::name(&apps));
        let verify = MockVendor::start().await;
        verify.on("/v2/Services/VA7/Verifications", Reply::json(201, json!({"sid": "VE7", "status": "pending"})));
        verify.on(
            "/v2/Services/VA7/VerificationCheck",
            Reply::json(200, json!({"sid": "VE7", "status": "pending", "valid": false})),
        );
        add(app, json!({"type": "TwilioVerify", "name": "v", "url": verify.url, "accountSID": "AC1", "authToken": "t", "serviceSid": "VA7"})).await;
        let ann = app.create_user("ann@example.com", "correct horse").await;
        let to = json!({"userId": ann, "mobilePhone": PHONE});
        let sent = app.admin(Method::POST, "/api/two-factor/send", Some(to)).await;
        assert_eq!(sent.status, 200, "{name}: {}", sent.text);
        let body = json!({"method": "sms", "mobilePhone": PHONE, "code": "000000"});
        let replies = crate::limits::fifty(&apps, |a, _| {
            a.client
                .post(a.url(&format!("/api/user/two-factor/{ann}")))
                .header("Authorization", &app.api_key)
                .json(&body)
        })
        .await;
        assert!(
            replies.iter().all(|r| r.status == 421),
            "{name}: {:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        let checks = verify.requests().iter().filter(|r| r.path.ends_with("VerificationCheck")).count();
        assert!((1..=5).contains(&checks), "{name}: {checks} codes were sent to Verify to check");
        assert!(app.factors_of("ann@example.com").await.is_empty(), "{name}");
    }
}

async fn latest_status(app: &TestApp) -> Value {
    app.admin(Method::GET, "/api/messenger/deliveries", None).await.json["deliveries"][0]["status"].clone()
}

#[tokio::test]
async fn status_callbacks_update_deliveries_only_when_signed() {
    let public = "https://tessera.example.com";
    let app = app().configure(move |c| c.messaging.public_url = Some(public.into())).spawn().await;
    let mock = MockVendor::start().await;
    mock.default_reply(twilio_ok("SM777"));
    let m = add(&app, twilio(&mock)).await;
    let id = m["id"].as_str().unwrap();
    assert_eq!(test_send(&app, id, PHONE).await.status, 200);
    let callback = format!("{public}/webhooks/twilio/status/{id}");
    assert_eq!(mock.last().unwrap().field("StatusCallback").as_deref(), Some(callback.as_str()));

    let params =
        vec![("MessageSid".to_owned(), "SM777".to_owned()), ("MessageStatus".to_owned(), "delivered".to_owned())];
    let sig = signature::twilio("tok_secret_abcd1234", &callback, &params);
    let post = |sig: Option<String>, params: Vec<(String, String)>| {
        let mut req = app.client.post(app.url(&format!("/webhooks/twilio/status/{id}"))).form(&params);
        if let Some(s) = sig {
            req = req.header("X-Twilio-Signature", s);
        }
        req
    };
    assert_eq!(app.send(post(None, params.clone())).await.status, 403, "unsigned");
    let tampered =
        vec![("MessageSid".to_owned(), "SM777".to_owned()), ("MessageStatus".to_owned(), "failed".to_owned())];
    assert_eq!(app.send(post(Some(sig.clone()), tampered)).await.status, 403, "tampered");
    assert_eq!(latest_status(&app).await, "queued");
    assert_eq!(app.send(post(Some(sig), params)).await.status, 204);
    assert_eq!(latest_status(&app).await, "delivered");

    // Plivo: X-Plivo-Signature-V3 with its nonce.
    let pmock = MockVendor::start().await;
    pmock.default_reply(Reply::json(202, json!({"message_uuid": ["pu-1"]})));
    let pm = add(&app, plivo(&pmock)).await;
    let pid = pm["id"].as_str().unwrap();
    assert_eq!(test_send(&app, pid, PHONE).await.status, 200);
    let url = format!("{public}/webhooks/plivo/status/{pid}");
    let params = vec![("MessageUUID".to_owned(), "pu-1".to_owned()), ("Status".to_owned(), "delivered".to_owned())];
    let sig = crate::sdk::plivo_signature("plivo_token_5678", &url, "nonce-1", &params).await;
    let send = |sig: &str, nonce: &str| {
        app.client
            .post(app.url(&format!("/webhooks/plivo/status/{pid}")))
            .header("X-Plivo-Signature-V3", sig)
            .header("X-Plivo-Signature-V3-Nonce", nonce)
            .form(&params)
    };
    assert_eq!(app.send(send(&sig, "nonce-2")).await.status, 403, "signature made for another nonce");
    assert_eq!(app.send(send(&format!("old, {sig}"), "nonce-1")).await.status, 204);
    let d = app.admin(Method::GET, "/api/messenger/deliveries", None).await;
    let row = d.json["deliveries"].as_array().unwrap().iter().find(|r| r["provider"] == "plivo").unwrap().clone();
    assert_eq!(row["status"], "delivered");
}

#[tokio::test]
async fn the_configuration_api_validates_masks_and_keeps_secrets() {
    let app = spawn_app().await;
    let r =
        app.admin(Method::POST, "/api/messenger", Some(json!({"messenger": {"type": "Twilio", "name": "t"}}))).await;
    assert_eq!(r.status, 400);
    for f in ["messenger.accountSID", "messenger.authToken", "messenger.fromPhoneNumber"] {
        assert_eq!(r.json["fieldErrors"][f][0]["code"], format!("[blank]{f}"), "{}", r.text);
    }
    let r = app.admin(Method::POST, "/api/messenger", Some(json!({"messenger": {"type": "Fax", "name": "f"}}))).await;
    assert_eq!(r.json["fieldErrors"]["messenger.type"][0]["code"], "[invalid]messenger.type");
    let unauthenticated = app.send(app.client.get(app.url("/api/messenger"))).await;
    assert_eq!(unauthenticated.status, 401);

    let mock = MockVendor::start().await;
    mock.default_reply(twilio_ok("SM1"));
    let m = add(&app, twilio(&mock)).await;
    let id = m["id"].as_str().unwrap().to_owned();
    let got = app.admin(Method::GET, &format!("/api/messenger/{id}"), None).await;
    assert_eq!(got.json["messenger"], m);
    assert!(!got.text.contains("tok_secret"), "never returned in full");

    // PATCH the name: the token stays and still works.
    let r = app
        .admin(Method::PATCH, &format!("/api/messenger/{id}"), Some(json!({"messenger": {"name": "renamed"}})))
        .await;
    assert_eq!((r.status, &r.json["messenger"]["name"]), (200, &json!("renamed")));
    assert_eq!(test_send(&app, &id, PHONE).await.status, 200);
    assert_eq!(mock.last().unwrap().basic_auth().unwrap().1, "tok_secret_abcd1234");
    // PUT with a new token replaces it.
    let mut replaced = twilio(&mock);
    replaced["authToken"] = json!("brand_new_token_9999");
    let r = app.admin(Method::PUT, &format!("/api/messenger/{id}"), Some(json!({"messenger": replaced}))).await;
    assert_eq!(r.json["messenger"]["authToken"], "••••9999");
    let mut retyped = twilio(&mock);
    retyped["type"] = json!("Plivo");
    let r = app.admin(Method::PUT, &format!("/api/messenger/{id}"), Some(json!({"messenger": retyped}))).await;
    assert_eq!(r.status, 400, "the type cannot change");

    let list = app.admin(Method::GET, "/api/messenger", None).await;
    assert_eq!(list.json["messengers"].as_array().unwrap().len(), 1);
    let file = app.database_url.trim_start_matches("sqlite://").to_owned();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    assert!(!bytes.windows(14).any(|w| w == b"brand_new_toke"), "tokens are sealed at rest");
    assert_eq!(app.admin(Method::DELETE, &format!("/api/messenger/{id}"), None).await.status, 200);
    assert_eq!(app.admin(Method::GET, &format!("/api/messenger/{id}"), None).await.status, 404);

    // Each change is in the audit log, newest first; credentials never are.
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
    let events: Vec<&str> = log.json["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str().filter(|e| e.starts_with("messenger.")))
        .collect();
    assert_eq!(events, ["messenger.deleted", "messenger.updated", "messenger.updated", "messenger.created"]);
    assert!(!log.text.contains("tok_secret") && !log.text.contains("brand_new"), "{}", log.text);
}

#[tokio::test]
async fn messengers_from_configuration_are_created_then_updated_at_each_start() {
    let mock = MockVendor::start().await;
    mock.default_reply(twilio_ok("SM-CONF"));
    let id = "0d7c2f5e-5a86-4d55-9c6f-2f0f3c8c1a11";
    let mut seeded = twilio(&mock);
    seeded["id"] = json!(id);
    let first_seed = seeded.clone();
    let first = app().configure(move |c| c.messengers = vec![first_seed]).spawn().await;
    let got = first.admin(Method::GET, &format!("/api/messenger/{id}"), None).await;
    assert_eq!((got.status, &got.json["messenger"]["name"]), (200, &json!("twilio")));
    assert_eq!(test_send(&first, id, PHONE).await.status, 200);
    let url = first.database_url.clone();
    drop(first);

    seeded["name"] = json!("renamed in tessera.toml");
    let second = app().database_url(&url).configure(move |c| c.messengers = vec![seeded]).spawn().await;
    let list = second.admin(Method::GET, "/api/messenger", None).await;
    let all = list.json["messengers"].as_array().unwrap();
    assert_eq!(all.len(), 1, "updated, not duplicated");
    assert_eq!(all[0]["name"], "renamed in tessera.toml");

    let mut config = tessera_server::Config::defaults().unwrap();
    config.database_url = url;
    config.seal_key = Some(tessera_core::seal::SealKey::parse(tessera_testkit::TEST_SEAL_KEY).unwrap());
    config.messengers = vec![json!({"type": "Twilio", "name": "no id"})];
    let clock: std::sync::Arc<dyn tessera_server::clock::Clock> =
        std::sync::Arc::new(tessera_testkit::FakeClock::new());
    let err = tessera_server::prepare(&config, clock.clone()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("messengers[0]: give each configured messenger an `id`"), "{err}");
    config.messengers = vec![json!({"id": id, "type": "Twilio", "name": "broken", "accountSID": "AC1"})];
    let err = tessera_server::prepare(&config, clock).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("messengers[0]:") && err.contains("fromPhoneNumber"), "{err}");
}

#[tokio::test]
async fn plivo_voice_calls_fetch_what_to_say_from_tessera_once() {
    let public = "https://tessera.example.com";
    let app = app().configure(move |c| c.messaging.public_url = Some(public.into())).spawn().await;
    let mock = MockVendor::start().await;
    mock.on(
        "/v1/Account/MA999/Call/",
        Reply::json(201, json!({"api_id": "a", "message": "call fired", "request_uuid": "call-1"})),
    );
    let m = add(&app, plivo(&mock)).await;
    let id = m["id"].as_str().unwrap().to_owned();
    let user = app.create_user("ann@example.com", "correct horse").await;
    let r = app
        .admin(
            Method::POST,
            "/api/two-factor/send",
            Some(json!({"userId": user, "mobilePhone": PHONE, "messageType": "Voice"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let call = mock.last().unwrap();
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/Account/MA999/Call/"));
    assert_eq!(call.basic_auth(), Some(("MA999".into(), "plivo_token_5678".into())));
    let body = call.json();
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str(), body["answer_method"].as_str()),
        (Some("15550002222"), Some("15554443232"), Some("POST"))
    );
    let answer_url = body["answer_url"].as_str().unwrap().to_owned();
    let prefix = format!("{public}/webhooks/plivo/answer/{id}/");
    assert!(answer_url.starts_with(&prefix), "{answer_url}");

    let path = answer_url.trim_start_matches(public).to_owned();
    let params = vec![("CallUUID".to_owned(), "call-1".to_owned()), ("From".to_owned(), "15550002222".to_owned())];
    let fetch = |sig: String| {
        app.client
            .post(app.url(&path))
            .header("X-Plivo-Signature-V3", sig)
            .header("X-Plivo-Signature-V3-Nonce", "n1")
            .form(&params)
    };
    assert_eq!(app.send(fetch("forged".into())).await.status, 403);
    let sig = crate::sdk::plivo_signature("plivo_token_5678", &answer_url, "n1", &params).await;
    let xml = app.send(fetch(sig.clone())).await;
    assert_eq!(xml.status, 200);
    assert!(xml.text.starts_with("<Response><Speak>Your Default code is "), "{}", xml.text);
    let code: String =
        xml.text.split("</Speak>").next().unwrap().chars().filter(char::is_ascii_digit).take(6).collect();
    let again = app.send(fetch(sig)).await;
    assert_eq!(again.text, "<Response><Hangup/></Response>", "the prompt is spoken once");
    let r = app
        .admin(
            Method::POST,
            &format!("/api/user/two-factor/{user}"),
            Some(json!({"method": "sms", "mobilePhone": PHONE, "code": code})),
        )
        .await;
    assert_eq!(r.status, 200, "the spoken code enables the factor: {}", r.text);
}

#[tokio::test]
async fn when_every_messenger_fails_the_error_names_each_and_why() {
    let app = spawn_app().await;
    // A phone enrolled while the console messenger still printed codes.
    let user = app.create_user("ann@example.com", "correct horse").await;
    app.enable_sms(&user, PHONE).await;
    let bad_credentials = MockVendor::start().await;
    bad_credentials.default_reply(Reply::json(
        401,
        json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
    ));
    let unreachable = MockVendor::start().await;
    unreachable.default_reply(Reply::json(400, json!({"error": "src is not a Plivo number"})));
    add(
        &app,
        json!({"type": "Twilio", "name": "twilio-placeholder", "url": bad_credentials.url, "accountSID": "ACxxxxxxxx",
                      "authToken": "your_auth_token", "fromPhoneNumber": "+15550001111", "priority": 1}),
    )
    .await;
    add(
        &app,
        json!({"type": "Plivo", "name": "plivo-backup", "url": unreachable.url, "authId": "MA1", "authToken": "t",
                      "src": "+15550002222", "priority": 2}),
    )
    .await;

    let r = app
        .admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": user, "mobilePhone": "+15554443233"})))
        .await;
    assert_eq!(r.status, 503);
    let message = r.json["generalErrors"][0]["message"].as_str().unwrap();
    assert!(message.contains("\"twilio-placeholder\"") && message.contains("20003"), "{message}");
    assert!(message.contains("\"plivo-backup\"") && message.contains("400"), "{message}");
    assert!(!message.contains("your_auth_token"), "{message}");

    let v = app.admin(Method::POST, "/api/verify/account", None).await.json;
    let (sid, token) = (v["accountSid"].as_str().unwrap(), v["authToken"].as_str().unwrap());
    let post =
        |path: &str, form: &[(&str, &str)]| app.client.post(app.url(path)).basic_auth(sid, Some(token)).form(form);
    let va = app.send(post("/v2/Services", &[("FriendlyName", "Acme")])).await.json["sid"].as_str().unwrap().to_owned();
    let started =
        app.send(post(&format!("/v2/Services/{va}/Verifications"), &[("To", PHONE), ("Channel", "sms")])).await;
    assert_eq!(started.status, 502);
    let message = started.json["message"].as_str().unwrap();
    assert!(message.contains("\"twilio-placeholder\"") && message.contains("\"plivo-backup\""), "{message}");
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
    let verify: Vec<(&str, &str)> = log.json["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("verify."))
        .map(|e| (e["event"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(verify, [("verify.failed", "failed")], "a send that failed is not audited as pending");

    // A sign-in in progress is told only that the code could not be sent.
    let login = app.login("ann@example.com", "correct horse").await;
    let two_factor_id = login.json["twoFactorId"].as_str().unwrap();
    let sent = app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    assert_eq!(sent.status, 503, "{}", sent.text);
    assert!(!sent.text.contains("twilio-placeholder"), "{}", sent.text);
}

/// A second tenant's codes and test messages go through that tenant's messengers, and
/// their deliveries are that tenant's: the router picks messengers by the message's tenant.
#[tokio::test]
async fn a_second_tenants_messages_go_through_its_own_messengers() {
    let app = spawn_app().await;
    let mine = MockVendor::start().await;
    mine.default_reply(Reply::json(200, json!({"messageId": "t2-1"})));
    let (_, key, _) = app.second_tenant().await;
    let as_second = |m: Method, path: &str, body: Value| {
        app.client.request(m, app.url(path)).header("Authorization", key.expose()).json(&body)
    };
    let generic = json!({"messenger": {"type": "Generic", "name": "second's", "url": format!("{}/hook", mine.url), "signingSecret": "t2-secret"}});
    let m = app.send(as_second(Method::POST, "/api/messenger", generic)).await;
    assert_eq!(m.status, 200, "{}", m.text);
    let id = m.json["messenger"]["id"].as_str().unwrap().to_owned();

    let tested =
        app.send(as_second(Method::POST, &format!("/api/messenger/{id}/test"), json!({"mobilePhone": PHONE}))).await;
    assert_eq!(tested.status, 200, "the second tenant's messenger is found for its test: {}", tested.text);
    assert_eq!(mine.last().unwrap().json()["action"], "test");

    let bo = app
        .send(as_second(
            Method::POST,
            "/api/user",
            json!({"user": {"email": "bo@example.com", "password": "correct horse"}}),
        ))
        .await;
    let bo = bo.json["user"]["id"].as_str().unwrap().to_owned();
    let sent =
        app.send(as_second(Method::POST, "/api/two-factor/send", json!({"userId": bo, "mobilePhone": PHONE}))).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(
        mine.last().unwrap().json()["action"],
        "enrollment",
        "the code went through the second tenant's messenger"
    );
    assert!(app.last_code_to(PHONE).is_none(), "not through the first tenant's (the console)");

    let theirs = app.send(as_second(Method::GET, "/api/messenger/deliveries", json!(null))).await;
    assert_eq!(theirs.json["total"], 2, "{}", theirs.text);
    let ours = app.admin(Method::GET, "/api/messenger/deliveries", None).await;
    assert_eq!(ours.json["total"], 0, "{}", ours.text);
}
