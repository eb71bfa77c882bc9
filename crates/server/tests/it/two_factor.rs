//! Second factors end to end, as a FusionAuth client would drive them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::base32;
use tessera_core::seal::{SealKey, Sealer};
use tessera_testkit::{TEST_SEAL_KEY, TestApp, app, spawn_app};

const PHONE: &str = "+15554443232";

async fn user(app: &TestApp) -> String {
    app.create_user("ann@example.com", "correct horse").await
}

/// Enables an authenticator; returns its secret and the recovery codes (if first).
async fn enable_totp(app: &TestApp, user: &str) -> (Vec<u8>, Value) {
    let s = app.send(app.client.get(app.url("/api/two-factor/secret"))).await;
    assert_eq!(s.status, 200);
    let b32 = s.json["secretBase32Encoded"].as_str().unwrap();
    let secret = base32::decode(b32).unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/api/user/two-factor/{user}"),
            Some(json!({"method": "authenticator", "secretBase32Encoded": b32, "code": app.totp(&secret, 0)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (secret, r.json["recoveryCodes"].clone())
}

/// Password login that must answer 242; returns the twoFactorId and methods.
async fn challenge(app: &TestApp) -> (String, Value) {
    let r = app.login("ann@example.com", "correct horse").await;
    assert_eq!(r.status, 242, "{}", r.text);
    (r.json["twoFactorId"].as_str().unwrap().to_owned(), r.json["methods"].clone())
}

async fn two_factor_login(app: &TestApp, id: &str, code: &str) -> tessera_testkit::Reply {
    app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": code})).await
}

#[tokio::test]
async fn totp_enroll_then_login_242_then_code_200() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, recovery) = enable_totp(&app, &id).await;
    assert_eq!(recovery.as_array().map(Vec::len), Some(10), "first factor returns recovery codes");

    let u = app.admin(Method::GET, &format!("/api/user/{id}"), None).await;
    let m = &u.json["user"]["twoFactor"]["methods"][0];
    assert_eq!(m["method"], "authenticator");
    assert_eq!(m["authenticator"], json!({"algorithm": "HmacSHA1", "codeLength": 6, "timeStep": 30}));

    let (two_factor_id, methods) = challenge(&app).await;
    assert_eq!(methods[0]["id"], m["id"]);
    // The code used to enroll cannot sign in: its time step is spent.
    assert_eq!(two_factor_login(&app, &two_factor_id, &app.totp(&secret, 0)).await.status, 421);
    app.clock.advance(Duration::from_secs(30));
    let ok = two_factor_login(&app, &two_factor_id, &app.totp(&secret, 0)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["user"]["id"], id.as_str());
    let token = ok.json["token"].as_str().unwrap();
    let v = app.send(app.client.get(app.url("/api/jwt/validate")).bearer_auth(token)).await;
    assert_eq!(v.status, 200);
    assert!(ok.json["refreshToken"].is_string());
    assert!(ok.json.get("trustToken").is_none());
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_neighbours_within_the_window() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    app.clock.advance(Duration::from_secs(60));
    let (first, _) = challenge(&app).await;
    let c = app.totp(&secret, 0);
    assert_eq!(two_factor_login(&app, &first, &c).await.status, 200);
    let (second, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &second, &c).await.status, 421, "replayed step");
    assert_eq!(two_factor_login(&app, &second, &app.totp(&secret, -1)).await.status, 421, "older step");
    assert_eq!(two_factor_login(&app, &second, &app.totp(&secret, 2)).await.status, 421, "outside the window");
    assert_eq!(two_factor_login(&app, &second, &app.totp(&secret, 1)).await.status, 200, "next step, within ±1");
}

#[tokio::test]
async fn sms_enroll_then_login_send_code_200() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let enabled = app.enable_sms(&id, "+1 (555) 444-3232").await;
    assert_eq!(enabled["recoveryCodes"].as_array().map(Vec::len), Some(10));
    let enrollment = app.last_message_to(PHONE).unwrap();
    assert!(enrollment.contains("to set up two-step verification for Default"), "{enrollment}");

    let (two_factor_id, methods) = challenge(&app).await;
    assert_eq!(methods[0]["method"], "sms");
    assert_eq!(methods[0]["mobilePhone"], "+1******3232", "masked in the 242 answer");
    let before = app.messages_sent();
    let r =
        app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({"methodId": methods[0]["id"]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.messages_sent(), before + 1);
    let text = app.last_message_to(PHONE).unwrap();
    assert!(text.contains("Default sign-in code"), "{text}");
    let sms_code = app.last_code_to(PHONE).unwrap();
    assert_eq!(sms_code.len(), 6);
    let ok = two_factor_login(&app, &two_factor_id, &sms_code).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let (again, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &again, &sms_code).await.status, 421, "an SMS code works once");
}

#[tokio::test]
async fn voice_and_locale_shape_the_message() {
    let app = spawn_app().await;
    let id = user(&app).await;
    app.enable_sms(&id, PHONE).await;
    let (two_factor_id, _) = challenge(&app).await;
    let r = app
        .send(
            app.client
                .post(app.url(&format!("/api/two-factor/send/{two_factor_id}")))
                .header("Accept-Language", "fr-FR,fr;q=0.9")
                .json(&json!({"messageType": "Voice"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let sent = app.state.console.last_to(PHONE).unwrap();
    assert_eq!(sent.channel, tessera_core::messaging::Channel::Voice);
    assert!(sent.text.starts_with("Votre code Default est"), "{}", sent.text);
    let bad = app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({"messageType": "Pigeon"})).await;
    assert_eq!(bad.json["fieldErrors"]["messageType"][0]["code"], "[invalid]messageType");
}

/// A code sent by a call signs in as a call (`voice`), not as a text.
#[tokio::test]
async fn a_code_sent_by_a_call_is_recorded_as_a_call() {
    let app = spawn_app().await;
    let id = user(&app).await;
    app.enable_sms(&id, PHONE).await;
    let method_of_last_sign_in = || async {
        let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
        let logs = log.json["auditLogs"].as_array().unwrap().clone();
        logs.into_iter().find(|e| e["event"] == "login.success").map(|e| e["data"]["method"].clone())
    };
    for (message_type, method) in [("Voice", "voice"), ("SMS", "sms")] {
        let (two_factor_id, _) = challenge(&app).await;
        let sent =
            app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({"messageType": message_type})).await;
        assert_eq!(sent.status, 200, "{}", sent.text);
        // A call reads the digits one by one: the code as the messenger was given it.
        let code = app.state.console.last_to(PHONE).unwrap().code.expose().to_owned();
        assert_eq!(two_factor_login(&app, &two_factor_id, &code).await.status, 200);
        assert_eq!(method_of_last_sign_in().await, Some(json!(method)), "{message_type}");
    }
}

#[tokio::test]
async fn a_resend_replaces_the_code_but_not_the_failure_count() {
    let app = spawn_app().await;
    let id = user(&app).await;
    app.enable_sms(&id, PHONE).await;
    let (two_factor_id, _) = challenge(&app).await;
    let send = format!("/api/two-factor/send/{two_factor_id}");
    app.post_json(&send, json!({})).await;
    let first = app.last_code_to(PHONE).unwrap();
    app.clock.advance(Duration::from_secs(61));
    app.post_json(&send, json!({})).await;
    let second = app.last_code_to(PHONE).unwrap();
    if first != second {
        assert_eq!(two_factor_login(&app, &two_factor_id, &first).await.status, 421, "the earlier code is dead");
    } else {
        assert_eq!(two_factor_login(&app, &two_factor_id, "000000x").await.status, 421);
    }
    for _ in 0..3 {
        assert_eq!(two_factor_login(&app, &two_factor_id, "999999x").await.status, 421);
    }
    // Four failures so far; a resend must not reset them.
    app.post_json(&send, json!({})).await;
    let third = app.last_code_to(PHONE).unwrap();
    assert_eq!(two_factor_login(&app, &two_factor_id, "999999x").await.status, 421, "fifth failure");
    assert_eq!(two_factor_login(&app, &two_factor_id, &third).await.status, 404, "the challenge is spent");
    assert_eq!(app.post_json(&send, json!({})).await.status, 404);
}

#[tokio::test]
async fn challenges_and_codes_expire() {
    let app = app().configure(|c| c.policies.two_factor.challenge_ttl = Duration::from_secs(600)).spawn().await;
    let id = user(&app).await;
    app.enable_sms(&id, PHONE).await;
    let (two_factor_id, _) = challenge(&app).await;
    app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    let sms_code = app.last_code_to(PHONE).unwrap();
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(two_factor_login(&app, &two_factor_id, &sms_code).await.status, 421, "the code lives 5 minutes");
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(two_factor_login(&app, &two_factor_id, &sms_code).await.status, 404, "the challenge lives 10 here");
    assert_eq!(two_factor_login(&app, "unknown-id", "123456").await.status, 404);

    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    let (two_factor_id, _) = challenge(&app).await;
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(two_factor_login(&app, &two_factor_id, &app.totp(&secret, 0)).await.status, 404, "300 s default");
}

#[tokio::test]
async fn recovery_codes_work_once_and_regenerating_kills_the_old_ones() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (_, codes) = enable_totp(&app, &id).await;
    let codes: Vec<String> = codes.as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let (a, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &a, &codes[0].to_lowercase()).await.status, 200, "case and dash do not matter");
    let (b, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &b, &codes[0]).await.status, 421, "used once");
    assert_eq!(two_factor_login(&app, &b, &codes[1].replace('-', "")).await.status, 200);

    let r = app.admin(Method::POST, &format!("/api/user/two-factor/recovery-code/{id}"), None).await;
    assert_eq!(r.status, 200);
    let fresh = r.json["recoveryCodes"].as_array().unwrap();
    assert_eq!(fresh.len(), 10);
    let (c, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &c, &codes[2]).await.status, 421, "old codes died");
    assert_eq!(two_factor_login(&app, &c, fresh[0].as_str().unwrap()).await.status, 200);
}

#[tokio::test]
async fn a_trusted_device_skips_the_challenge_until_methods_change() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    app.clock.advance(Duration::from_secs(30));
    let (two_factor_id, _) = challenge(&app).await;
    let r = app
        .send(app.client.post(app.url("/api/two-factor/login")).json(&json!({
            "twoFactorId": two_factor_id, "code": app.totp(&secret, 0), "trustComputer": true
        })))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let trust = r.json["trustToken"].as_str().unwrap().to_owned();

    let body = json!({"loginId": "ann@example.com", "password": "correct horse", "twoFactorTrustId": trust});
    assert_eq!(app.post_json("/api/login", body.clone()).await.status, 200, "trusted by id");
    let by_cookie = app
        .send(
            app.client
                .post(app.url("/api/login"))
                .header("Cookie", format!("fusionauth.trust={trust}"))
                .json(&json!({"loginId": "ann@example.com", "password": "correct horse"})),
        )
        .await;
    assert_eq!(by_cookie.status, 200, "trusted by cookie");
    let wrong = json!({"loginId": "ann@example.com", "password": "correct horse", "twoFactorTrustId": "forged"});
    assert_eq!(app.post_json("/api/login", wrong).await.status, 242);

    app.enable_sms(&id, PHONE).await;
    assert_eq!(app.post_json("/api/login", body).await.status, 242, "methods changed: trust revoked");
}

#[tokio::test]
async fn trust_tokens_expire() {
    let app = app().configure(|c| c.policies.two_factor.trust_ttl = Duration::from_secs(3600)).spawn().await;
    let id = user(&app).await;
    let (_, codes) = enable_totp(&app, &id).await;
    let (two_factor_id, _) = challenge(&app).await;
    let r = app
        .post_json(
            "/api/two-factor/login",
            json!({"twoFactorId": two_factor_id, "code": codes[0], "trustComputer": true}),
        )
        .await;
    assert!(r.json["trustToken"].is_string());
    let body =
        json!({"loginId": "ann@example.com", "password": "correct horse", "twoFactorTrustId": r.json["trustToken"]});
    app.clock.advance(Duration::from_secs(3599));
    assert_eq!(app.post_json("/api/login", body.clone()).await.status, 200);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.post_json("/api/login", body).await.status, 242);
}

#[tokio::test]
async fn disabling_needs_a_code_and_the_last_method_takes_recovery_codes_along() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, codes) = enable_totp(&app, &id).await;
    let sms = app.enable_sms(&id, PHONE).await;
    assert!(sms.get("recoveryCodes").is_none(), "only the first factor returns codes");
    let u = app.admin(Method::GET, &format!("/api/user/{id}"), None).await;
    let methods = u.json["user"]["twoFactor"]["methods"].as_array().unwrap().clone();
    assert_eq!(methods.len(), 2);
    let by = |name: &str| methods.iter().find(|m| m["method"] == name).unwrap().clone();
    let (totp, sms) = (by("authenticator"), by("sms"));
    let (totp_id, sms_id) = (totp["id"].as_str().unwrap(), sms["id"].as_str().unwrap());
    assert_eq!(sms["mobilePhone"], PHONE, "admins see the whole number");

    let path = |m: &str, c: &str| format!("/api/user/two-factor/{id}?methodId={m}&code={c}");
    assert_eq!(app.admin(Method::DELETE, &path(sms_id, "000000"), None).await.status, 421);
    // An SMS code sent for managing the method proves possession.
    let r = app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "methodId": sms_id}))).await;
    assert_eq!(r.status, 200);
    let manage = app.last_code_to(PHONE).unwrap();
    assert_eq!(app.admin(Method::DELETE, &path(sms_id, &manage), None).await.status, 200);
    assert_eq!(app.admin(Method::DELETE, &path(sms_id, &manage), None).await.status, 404);

    app.clock.advance(Duration::from_secs(30));
    assert_eq!(app.admin(Method::DELETE, &path(totp_id, &app.totp(&secret, 0)), None).await.status, 200);
    let u = app.admin(Method::GET, &format!("/api/user/{id}"), None).await;
    assert_eq!(u.json["user"]["twoFactor"]["methods"], json!([]));
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200, "no factor, no challenge");
    let scope_user: tessera_core::ids::UserId = id.parse().unwrap();
    assert_eq!(
        tessera_core::store::TwoFactorStore::recovery_code_count(app.state.store.as_ref(), scope_user).await.unwrap(),
        0
    );
    assert!(codes.is_array());
    let r = app.admin(Method::POST, &format!("/api/user/two-factor/recovery-code/{id}"), None).await;
    assert_eq!((r.status, &r.json["generalErrors"][0]["code"]), (400, &json!("[TwoFactorNotEnabled]")));
}

/// A factor change is audited with who made it: the admin key, or the user with their
/// own access token.
#[tokio::test]
async fn factor_changes_name_the_key_or_the_user_that_made_them() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    let (two_factor_id, _) = challenge(&app).await;
    app.clock.advance(Duration::from_secs(30));
    let ok = two_factor_login(&app, &two_factor_id, &app.totp(&secret, 0)).await;
    let token = ok.json["token"].as_str().unwrap().to_owned();
    let own = app
        .send(app.client.post(app.url(&format!("/api/user/two-factor/recovery-code/{id}"))).bearer_auth(&token))
        .await;
    assert_eq!(own.status, 200, "{}", own.text);

    let key_id =
        app.admin(Method::GET, "/api/api-key", None).await.json["apiKeys"][0]["id"].as_str().unwrap().to_owned();
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
    let logs = log.json["auditLogs"].as_array().unwrap();
    let by = |event: &str| logs.iter().find(|e| e["event"] == event).unwrap()["insertUser"].clone();
    assert_eq!(by("two_factor.enabled"), json!(format!("apiKey:{key_id}")));
    assert_eq!(by("two_factor.recovery_codes_regenerated"), json!(format!("user:{id}")));
}

#[tokio::test]
async fn several_authenticators_and_phones() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (_, _) = enable_totp(&app, &id).await;
    let (second, none) = enable_totp(&app, &id).await;
    assert!(none.is_null());
    app.enable_sms(&id, PHONE).await;
    app.enable_sms(&id, "+442079460958").await;
    let dup = app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": PHONE}))).await;
    assert_eq!(dup.status, 200);
    let c = app.last_code_to(PHONE).unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/api/user/two-factor/{id}"),
            Some(json!({"method": "sms", "mobilePhone": PHONE, "code": c})),
        )
        .await;
    assert_eq!(r.json["fieldErrors"]["mobilePhone"][0]["code"], "[duplicate]mobilePhone");

    let (two_factor_id, methods) = challenge(&app).await;
    assert_eq!(methods.as_array().unwrap().len(), 4);
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(two_factor_login(&app, &two_factor_id, &app.totp(&second, 0)).await.status, 200, "the second app works");
}

#[tokio::test]
async fn five_wrong_enrolment_codes_spend_the_code() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let sent = app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": PHONE}))).await;
    assert_eq!(sent.status, 200);
    let code = app.last_code_to(PHONE).unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let path = format!("/api/user/two-factor/{id}");
    let enable = |c: &str| json!({"method": "sms", "mobilePhone": PHONE, "code": c});
    for _ in 0..5 {
        assert_eq!(app.admin(Method::POST, &path, Some(enable(&wrong))).await.status, 421);
    }
    let late = app.admin(Method::POST, &path, Some(enable(&code))).await;
    assert_eq!(late.status, 421, "the right code no longer works after five wrong ones");
    assert!(app.state.factors.methods(id.parse().unwrap()).await.unwrap().is_empty());
}

#[tokio::test]
async fn enabling_checks_the_code_and_the_input() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let s = app.send(app.client.get(app.url("/api/two-factor/secret?account=ann@example.com"))).await;
    assert_eq!(s.json["secretHex"].as_str().map(str::len), Some(40), "160 bits");
    assert!(s.json["otpauthUri"].as_str().unwrap().starts_with("otpauth://totp/Tessera:ann@example.com?secret="));
    assert!(s.json["qrCodeSvg"].as_str().unwrap().contains("<svg"));
    let secret = base32::decode(s.json["secretBase32Encoded"].as_str().unwrap()).unwrap();
    let path = format!("/api/user/two-factor/{id}");

    let wrong = app
        .admin(
            Method::POST,
            &path,
            Some(json!({"method": "authenticator", "secret": s.json["secret"], "code": "000000"})),
        )
        .await;
    assert_eq!((wrong.status, wrong.text.as_str()), (421, ""));
    let by_hex = app
        .admin(
            Method::POST,
            &path,
            Some(json!({"method": "authenticator", "secret": s.json["secretHex"], "code": app.totp(&secret, 0)})),
        )
        .await;
    assert_eq!(by_hex.status, 200, "hex secrets are accepted: {}", by_hex.text);

    let short = app
        .admin(Method::POST, &path, Some(json!({"method": "authenticator", "secret": "AAAA", "code": "123456"})))
        .await;
    assert_eq!(short.json["fieldErrors"]["secret"][0]["code"], "[tooShort]secret");
    let no_code = app.admin(Method::POST, &path, Some(json!({"method": "authenticator", "secret": "AAAA"}))).await;
    assert_eq!(no_code.json["fieldErrors"]["code"][0]["code"], "[blank]code");
    let bad_method = app.admin(Method::POST, &path, Some(json!({"method": "pigeon", "code": "1"}))).await;
    assert_eq!(bad_method.json["fieldErrors"]["method"][0]["code"], "[invalid]method");
    let bad_phone =
        app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": "12"}))).await;
    assert_eq!(bad_phone.json["fieldErrors"]["mobilePhone"][0]["code"], "[invalid]mobilePhone");
    let sms_wrong =
        app.admin(Method::POST, &path, Some(json!({"method": "sms", "mobilePhone": PHONE, "code": "123456"}))).await;
    assert_eq!(sms_wrong.status, 421, "no code was sent to that phone");
    let ghost = app
        .admin(
            Method::POST,
            "/api/user/two-factor/3f6c9a2e-1b2d-4c3e-9f00-0a1b2c3d4e5f",
            Some(json!({"method": "sms", "code": "1"})),
        )
        .await;
    assert_eq!(ghost.status, 404);
    let anonymous = app.send(app.client.post(app.url(&path)).json(&json!({"method": "sms", "code": "1"}))).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn users_manage_their_own_factors_with_their_token_only() {
    let app = spawn_app().await;
    let ann = user(&app).await;
    let bob = app.create_user("bob@example.com", "battery staple").await;
    let token = app.login("ann@example.com", "correct horse").await.json["token"].as_str().unwrap().to_owned();
    let s = app.send(app.client.get(app.url("/api/two-factor/secret"))).await;
    let secret = base32::decode(s.json["secretBase32Encoded"].as_str().unwrap()).unwrap();
    let body = json!({"method": "authenticator", "secretBase32Encoded": s.json["secretBase32Encoded"], "code": app.totp(&secret, 0)});
    let other = app
        .send(app.client.post(app.url(&format!("/api/user/two-factor/{bob}"))).bearer_auth(&token).json(&body))
        .await;
    assert_eq!(other.status, 401, "ann's token does not reach bob's factors");
    let own = app
        .send(app.client.post(app.url(&format!("/api/user/two-factor/{ann}"))).bearer_auth(&token).json(&body))
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
}

#[tokio::test]
async fn sends_are_rate_limited_per_user() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let body = json!({"userId": id, "mobilePhone": PHONE});
    for i in 0..5 {
        assert_eq!(app.admin(Method::POST, "/api/two-factor/send", Some(body.clone())).await.status, 200, "send {i}");
    }
    let limited = app.admin(Method::POST, "/api/two-factor/send", Some(body.clone())).await;
    assert_eq!((limited.status, &limited.json["generalErrors"][0]["code"]), (429, &json!("[TooManyRequests]")));
    assert_eq!(app.messages_sent(), 5, "nothing was sent past the limit");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.admin(Method::POST, "/api/two-factor/send", Some(body)).await.status, 200);
}

#[tokio::test]
async fn secrets_and_codes_are_not_readable_from_the_database() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let (secret, codes) = enable_totp(&app, &id).await;
    app.enable_sms(&id, PHONE).await;
    let (two_factor_id, _) = challenge(&app).await;
    app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    let sms_code = app.last_code_to(PHONE).unwrap();

    let file = app.database_url.trim_start_matches("sqlite://").to_owned();
    let mut bytes = std::fs::read(&file).unwrap();
    if let Ok(wal) = std::fs::read(format!("{file}-wal")) {
        bytes.extend(wal);
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!contains(&secret), "raw TOTP secret");
    assert!(!contains(base32::encode(&secret).as_bytes()), "base32 TOTP secret");
    assert!(!contains(hex.as_bytes()), "hex TOTP secret");
    assert!(!contains(two_factor_id.as_bytes()), "twoFactorId is stored as a digest");
    assert!(!contains(format!("\"{sms_code}\"").as_bytes()) && !contains(format!("|{sms_code}|").as_bytes()));
    for c in codes.as_array().unwrap() {
        let c = c.as_str().unwrap();
        assert!(!contains(c.as_bytes()) && !contains(c.replace('-', "").as_bytes()), "recovery code {c}");
    }
    // The stored SMS code is a keyed hash, not the code.
    let digest = tessera_core::secret::Secret::new(two_factor_id).digest();
    let stored = tessera_core::store::SignInStore::sign_in(app.state.store.as_ref(), &digest).await.unwrap().unwrap();
    let hash = stored.code.unwrap().hash;
    assert!(hash.starts_with("test.") && hash.len() == "test.".len() + 64 && !hash.contains(&sms_code));
}

#[tokio::test]
async fn rotating_the_seal_key_and_resealing() {
    let first = spawn_app().await;
    let id = user(&first).await;
    let (secret, _) = enable_totp(&first, &id).await;
    let url = first.database_url.clone();
    drop(first);

    let new_key = SealKey::generate().unwrap();
    let (k1, k2) = (new_key.clone(), new_key.clone());
    let rotated = app()
        .database_url(&url)
        .configure(move |c| {
            c.seal_key = Some(k1);
            c.seal_keys_previous = vec![SealKey::parse(TEST_SEAL_KEY).unwrap()];
        })
        .spawn()
        .await;
    rotated.clock.advance(Duration::from_secs(30));
    let (a, _) = challenge(&rotated).await;
    assert_eq!(two_factor_login(&rotated, &a, &rotated.totp(&secret, 0)).await.status, 200, "old key still opens");
    let sealer = Sealer::new(k2.clone(), vec![SealKey::parse(TEST_SEAL_KEY).unwrap()]);
    let n = tessera_core::service::reseal(rotated.state.store.as_ref(), &sealer).await.unwrap();
    assert_eq!(n.resealed, 2, "the TOTP secret and the JWT signing key");
    assert_eq!(n.recovery_codes_on_old_keys.get("test"), Some(&10), "recovery codes still need the old key");
    let again = tessera_core::service::reseal(rotated.state.store.as_ref(), &sealer).await.unwrap();
    assert_eq!(again.resealed, 0, "idempotent");
    drop(rotated);

    let only_new = app().database_url(&url).configure(move |c| c.seal_key = Some(k2)).spawn().await;
    only_new.clock.advance(Duration::from_secs(60));
    let (b, _) = challenge(&only_new).await;
    assert_eq!(
        two_factor_login(&only_new, &b, &only_new.totp(&secret, 0)).await.status,
        200,
        "re-sealed under the new key"
    );
}

#[tokio::test]
async fn the_audit_log_and_metrics_see_every_step() {
    let app = spawn_app().await;
    let id = user(&app).await;
    app.enable_sms(&id, PHONE).await;
    let (two_factor_id, _) = challenge(&app).await;
    two_factor_login(&app, &two_factor_id, "000000").await;
    app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    let c = app.last_code_to(PHONE).unwrap();
    app.post_json("/api/two-factor/login", json!({"twoFactorId": two_factor_id, "code": c, "trustComputer": true}))
        .await;

    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=100", None).await;
    let events: Vec<&str> =
        log.json["auditLogs"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    for e in [
        "two_factor.code_sent",
        "two_factor.enabled",
        "two_factor.challenge",
        "two_factor.failure",
        "two_factor.success",
        "two_factor.trust_issued",
    ] {
        assert!(events.contains(&e), "{e} missing from {events:?}");
    }
    assert!(!log.text.contains(&c), "no code in the audit log");
    let metrics = app.send(app.client.get(app.url("/metrics"))).await.text;
    for line in [
        "tessera_security_events_total{event=\"two_factor.challenge\",outcome=\"issued\"} 1",
        "tessera_security_events_total{event=\"two_factor.failure\",outcome=\"failure\"} 1",
        "tessera_security_events_total{event=\"two_factor.code_sent\",outcome=\"sent\"} 2",
        "tessera_security_events_total{event=\"two_factor.enabled\",outcome=\"success\"} 1",
        "tessera_logins_total{outcome=\"two_factor_required\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn two_factor_on_postgres() {
    let app = app().backend(tessera_store::Backend::Postgres).spawn().await;
    let id = user(&app).await;
    let (secret, codes) = enable_totp(&app, &id).await;
    app.enable_sms(&id, PHONE).await;
    app.clock.advance(Duration::from_secs(30));
    let (a, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &a, &app.totp(&secret, 0)).await.status, 200);
    let (b, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &b, &app.totp(&secret, 0)).await.status, 421);
    assert_eq!(two_factor_login(&app, &b, codes[3].as_str().unwrap()).await.status, 200);
}

#[tokio::test]
async fn the_fraud_guard_also_protects_second_factor_sends() {
    let app = app()
        .configure(|c| {
            c.policies.mfa_guard.allowed_countries = vec![1];
            c.policies.mfa_guard.per_prefix = tessera_core::verify::Limit { max: 2, window_seconds: 3600 };
        })
        .spawn()
        .await;
    let id = user(&app).await;
    let denied = app
        .admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": "+442079460958"})))
        .await;
    assert_eq!((denied.status, &denied.json["generalErrors"][0]["code"]), (403, &json!("[Blocked]")));
    assert!(app.last_message_to("+442079460958").is_none(), "nothing went out");
    for n in ["+15554440001", "+15554440002"] {
        assert_eq!(
            app.admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": n}))).await.status,
            200
        );
    }
    app.clock.advance(Duration::from_secs(61)); // past the per-user send limit, not the prefix window
    let pumped = app
        .admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": "+15554440003"})))
        .await;
    assert_eq!(pumped.status, 403, "third code to one prefix in an hour");
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=50", None).await;
    let outcomes: Vec<&str> = log.json["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "verify.blocked")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["prefix_rate", "geo"]);
}

#[tokio::test]
async fn wrong_codes_in_a_row_across_challenges_lock_the_second_factor() {
    let app = app().configure(|c| c.policies.two_factor.account_max_failures = 7).spawn().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    let (first, _) = challenge(&app).await;
    for _ in 0..5 {
        assert_eq!(two_factor_login(&app, &first, "000000").await.status, 421);
    }
    assert_eq!(two_factor_login(&app, &first, "000000").await.status, 404, "that challenge is spent");
    let (second, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &second, "000000").await.status, 421, "sixth in a row");
    let locked = two_factor_login(&app, &second, "000000").await;
    assert_eq!((locked.status, &locked.json["generalErrors"][0]["code"]), (409, &json!("[LoginPreventedException]")));
    app.clock.advance(Duration::from_secs(30));
    let (third, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &third, &app.totp(&secret, 0)).await.status, 409, "even the right code");
    app.clock.advance(Duration::from_secs(3600));
    let (fourth, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &fourth, &app.totp(&secret, 0)).await.status, 200, "the lock expired");
}

/// An app with an authenticator for ann, enrolled at the server's now with a TOTP window
/// of `window` steps; returns the app, ann's id and the secret.
async fn with_totp_window(window: u32) -> (TestApp, String, Vec<u8>) {
    let app = app().configure(move |c| c.policies.two_factor.totp_window = window).spawn().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    (app, id, secret)
}

#[tokio::test]
async fn a_totp_window_of_zero_takes_only_the_current_step() {
    let (app, id, secret) = with_totp_window(0).await;
    app.clock.advance(Duration::from_secs(90));
    let (two_factor_id, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &two_factor_id, &app.totp(&secret, -1)).await.status, 421, "one step behind");
    assert_eq!(two_factor_login(&app, &two_factor_id, &app.totp(&secret, 1)).await.status, 421, "one step ahead");
    assert_eq!(two_factor_login(&app, &two_factor_id, &app.totp(&secret, 0)).await.status, 200, "the current step");

    // Enrolment reads the same setting.
    let second = b"abcdefghijklmnopqrst".to_vec();
    let body = |offset| json!({"method": "authenticator", "secretBase32Encoded": base32::encode(&second), "code": app.totp(&second, offset)});
    let path = format!("/api/user/two-factor/{id}");
    assert_eq!(app.admin(Method::POST, &path, Some(body(1))).await.status, 421, "enrolment: one step ahead");
    assert_eq!(app.admin(Method::POST, &path, Some(body(0))).await.status, 200, "enrolment: the current step");
}

#[tokio::test]
async fn a_totp_window_of_two_takes_codes_two_steps_away() {
    let (app, id, secret) = with_totp_window(2).await;
    app.clock.advance(Duration::from_secs(150)); // five steps after the enrolment's
    let (first, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &first, &app.totp(&secret, -3)).await.status, 421, "three behind is outside");
    assert_eq!(two_factor_login(&app, &first, &app.totp(&secret, 3)).await.status, 421, "three ahead is outside");
    assert_eq!(two_factor_login(&app, &first, &app.totp(&secret, -2)).await.status, 200, "two behind");
    let (second, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &second, &app.totp(&secret, 2)).await.status, 200, "two ahead");

    let other = b"abcdefghijklmnopqrst".to_vec();
    let body = |offset| json!({"method": "authenticator", "secretBase32Encoded": base32::encode(&other), "code": app.totp(&other, offset)});
    let path = format!("/api/user/two-factor/{id}");
    assert_eq!(app.admin(Method::POST, &path, Some(body(3))).await.status, 421, "enrolment: three ahead");
    assert_eq!(app.admin(Method::POST, &path, Some(body(2))).await.status, 200, "enrolment: two ahead");
}

async fn send_code(app: &TestApp, body: Value) -> u16 {
    app.admin(Method::POST, "/api/two-factor/send", Some(body)).await.status
}

#[tokio::test]
async fn enrolment_and_manage_codes_expire_after_the_code_ttl() {
    let app = app().configure(|c| c.policies.two_factor.code_ttl = Duration::from_secs(120)).spawn().await;
    let id = user(&app).await;
    let user_id = id.parse().unwrap();
    let enable_path = format!("/api/user/two-factor/{id}");
    let enable = |code: String| json!({"method": "sms", "mobilePhone": PHONE, "code": code});

    assert_eq!(send_code(&app, json!({"userId": id, "mobilePhone": PHONE})).await, 200);
    let stale = app.last_code_to(PHONE).unwrap();
    app.clock.advance(Duration::from_secs(121));
    assert_eq!(app.admin(Method::POST, &enable_path, Some(enable(stale))).await.status, 421, "enrolment code at 121 s");
    assert!(app.state.factors.methods(user_id).await.unwrap().is_empty(), "no phone was enabled");
    assert_eq!(send_code(&app, json!({"userId": id, "mobilePhone": PHONE})).await, 200);
    let fresh = app.last_code_to(PHONE).unwrap();
    app.clock.advance(Duration::from_secs(119));
    assert_eq!(app.admin(Method::POST, &enable_path, Some(enable(fresh))).await.status, 200, "enrolment code at 119 s");

    let method = app.state.factors.methods(user_id).await.unwrap().remove(0).id;
    let disable = |code: &str| format!("/api/user/two-factor/{id}?methodId={}&code={code}", method.as_str());
    assert_eq!(send_code(&app, json!({"userId": id, "methodId": method.as_str()})).await, 200);
    let stale = app.last_code_to(PHONE).unwrap();
    app.clock.advance(Duration::from_secs(121));
    assert_eq!(app.admin(Method::DELETE, &disable(&stale), None).await.status, 421, "manage code at 121 s");
    assert_eq!(app.state.factors.methods(user_id).await.unwrap().len(), 1, "the phone stays");
    assert_eq!(send_code(&app, json!({"userId": id, "methodId": method.as_str()})).await, 200);
    let fresh = app.last_code_to(PHONE).unwrap();
    app.clock.advance(Duration::from_secs(119));
    assert_eq!(app.admin(Method::DELETE, &disable(&fresh), None).await.status, 200, "manage code at 119 s");
    assert!(app.state.factors.methods(user_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_per_number_window_holds_for_second_factor_sends() {
    let app = app()
        .configure(|c| c.policies.mfa_guard.per_number = tessera_core::verify::Limit { max: 3, window_seconds: 600 })
        .spawn()
        .await;
    let ann = user(&app).await;
    let bob = app.create_user("bob@example.com", "battery staple").await;
    let body = |user: &str, phone: &str| json!({"userId": user, "mobilePhone": phone});
    // Two users, so the per-user send limit (5 a minute) is never what stops them.
    for user in [&ann, &bob, &ann] {
        assert_eq!(send_code(&app, body(user, PHONE)).await, 200);
    }
    let refused = app.admin(Method::POST, "/api/two-factor/send", Some(body(&bob, PHONE))).await;
    assert_eq!(
        (refused.status, &refused.json["generalErrors"][0]["code"]),
        (403, &json!("[Blocked]")),
        "fourth code to one number"
    );
    assert_eq!(app.messages_sent(), 3, "nothing went out past the window");
    assert_eq!(send_code(&app, body(&bob, "+15554443233")).await, 200, "another number has its own window");
    app.clock.advance(Duration::from_secs(601));
    assert_eq!(send_code(&app, body(&bob, PHONE)).await, 200, "the window passed");
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=50", None).await;
    let reasons: Vec<&str> = log.json["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "verify.blocked")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["number_rate"]);
}

/// What the eager messenger does with a code the moment it is handed one.
#[derive(Clone)]
enum TryCode {
    /// Finish this sign-in with it.
    SignIn(String),
    /// Enable the phone it was sent to for this user.
    Enable(String),
}

/// A messenger stand-in (Tessera's Generic type) that, on receiving a code, tries it
/// against Tessera at once and only then answers the send; so a code that is sent before
/// it is stored shows up as a refused try.
struct EagerMessenger {
    url: String,
    next: std::sync::Arc<std::sync::Mutex<Option<TryCode>>>,
    answers: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
}

impl EagerMessenger {
    async fn start(app: &TestApp) -> EagerMessenger {
        use std::sync::{Arc, Mutex};
        let next: Arc<Mutex<Option<TryCode>>> = Arc::default();
        let answers: Arc<Mutex<Vec<u16>>> = Arc::default();
        let (base, key, client) = (app.base.clone(), app.api_key.clone(), app.client.clone());
        let (next_, answers_) = (next.clone(), answers.clone());
        let handler = move |axum::Json(sent): axum::Json<Value>| {
            let (base, key, client, next, answers) =
                (base.clone(), key.clone(), client.clone(), next_.clone(), answers_.clone());
            async move {
                let code = sent["code"].as_str().unwrap_or_default().to_owned();
                let attempt = next.lock().unwrap().clone();
                let req = match attempt {
                    Some(TryCode::SignIn(id)) => client
                        .post(format!("{base}/api/two-factor/login"))
                        .json(&json!({"twoFactorId": id, "code": code})),
                    Some(TryCode::Enable(user)) => client
                        .post(format!("{base}/api/user/two-factor/{user}"))
                        .header("Authorization", key)
                        .json(&json!({"method": "sms", "mobilePhone": sent["recipient"], "code": code})),
                    None => return axum::Json(json!({"messageId": "unexpected"})),
                };
                let status = req.send().await.map_or(0, |r| r.status().as_u16());
                answers.lock().unwrap().push(status);
                axum::Json(json!({"messageId": "eager-1"}))
            }
        };
        let router = axum::Router::new().fallback(axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let m = json!({"messenger": {"type": "Generic", "name": "eager", "url": url, "signingSecret": "eager-secret"}});
        let r = app.admin(Method::POST, "/api/messenger", Some(m)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        EagerMessenger { url, next, answers }
    }

    fn will(&self, attempt: TryCode) {
        *self.next.lock().unwrap() = Some(attempt);
    }

    fn answers(&self) -> Vec<u16> {
        self.answers.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_code_is_stored_before_it_is_sent() {
    let app = spawn_app().await;
    let id = user(&app).await;
    let eager = EagerMessenger::start(&app).await;

    eager.will(TryCode::Enable(id.clone()));
    assert_eq!(send_code(&app, json!({"userId": id, "mobilePhone": PHONE})).await, 200);
    assert_eq!(eager.answers(), [200], "the enrolment code worked the moment it arrived ({})", eager.url);
    assert_eq!(app.state.factors.methods(id.parse().unwrap()).await.unwrap().len(), 1);

    let (two_factor_id, _) = challenge(&app).await;
    eager.will(TryCode::SignIn(two_factor_id.clone()));
    let sent = app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(eager.answers(), [200, 200], "the sign-in code worked the moment it arrived");
    assert_eq!(two_factor_login(&app, &two_factor_id, "000000").await.status, 404, "that sign-in is finished");
}

#[tokio::test]
async fn a_code_that_could_not_be_stored_is_not_sent() {
    let app = spawn_app().await;
    let id = user(&app).await;
    app.enable_sms(&id, PHONE).await;
    let eager = EagerMessenger::start(&app).await;
    let refuse = "CREATE TRIGGER refuse_codes BEFORE UPDATE ON sign_ins \
                  WHEN NEW.code_hash IS NOT NULL BEGIN SELECT RAISE(ABORT, 'injected failure'); END; \
                  CREATE TRIGGER refuse_user_codes BEFORE INSERT ON user_codes \
                  BEGIN SELECT RAISE(ABORT, 'injected failure'); END;";
    tessera_store::testing::execute(&app.database_url, refuse).await.unwrap();

    let (two_factor_id, _) = challenge(&app).await;
    eager.will(TryCode::SignIn(two_factor_id.clone()));
    let sent = app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    assert!(sent.status >= 500, "the store failed, so the send did: {} {}", sent.status, sent.text);
    eager.will(TryCode::Enable(id.clone()));
    let enrol = app
        .admin(Method::POST, "/api/two-factor/send", Some(json!({"userId": id, "mobilePhone": "+15554440001"})))
        .await;
    assert!(enrol.status >= 500, "{} {}", enrol.status, enrol.text);
    assert!(eager.answers().is_empty(), "no code reached the messenger: {:?}", eager.answers());

    // The same sends go out once the database takes the writes again.
    let allow = "DROP TRIGGER refuse_codes; DROP TRIGGER refuse_user_codes;";
    tessera_store::testing::execute(&app.database_url, allow).await.unwrap();
    eager.will(TryCode::SignIn(two_factor_id.clone()));
    let sent = app.post_json(&format!("/api/two-factor/send/{two_factor_id}"), json!({})).await;
    assert_eq!((sent.status, eager.answers()), (200, vec![200]), "{}", sent.text);
}

#[tokio::test]
async fn removing_a_factor_takes_five_wrong_codes_then_locks_like_a_sign_in() {
    let app = app().configure(|c| c.policies.two_factor.account_max_failures = 7).spawn().await;
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    let method = app.state.factors.methods(id.parse().unwrap()).await.unwrap().remove(0).id;
    let path = |code: &str| format!("/api/user/two-factor/{id}?methodId={}&code={code}", method.as_str());
    for i in 0..5 {
        assert_eq!(app.admin(Method::DELETE, &path("000000"), None).await.status, 421, "wrong code {i}");
    }
    app.clock.advance(Duration::from_secs(30));
    let locked = app.admin(Method::DELETE, &path(&app.totp(&secret, 0)), None).await;
    assert_eq!((locked.status, &locked.json["generalErrors"][0]["code"]), (409, &json!("[LoginPreventedException]")));
    assert_eq!(app.state.factors.methods(id.parse().unwrap()).await.unwrap().len(), 1, "not even the right code");

    // The wrong codes count toward the account's run shared with sign-in (7 here).
    let (two_factor_id, _) = challenge(&app).await;
    assert_eq!(two_factor_login(&app, &two_factor_id, "000000").await.status, 421, "sixth in a row");
    assert_eq!(two_factor_login(&app, &two_factor_id, "000000").await.status, 409, "seventh locks the account");
}

#[tokio::test]
async fn fifty_concurrent_codes_to_remove_a_factor_are_at_most_five_guesses() {
    for backend in [tessera_store::Backend::Sqlite, tessera_store::Backend::Postgres] {
        at_most_five_guesses(app().backend(backend).spawn().await).await;
    }
}

async fn at_most_five_guesses(app: TestApp) {
    let id = user(&app).await;
    let (secret, _) = enable_totp(&app, &id).await;
    let method = app.state.factors.methods(id.parse().unwrap()).await.unwrap().remove(0).id;
    let path = format!("/api/user/two-factor/{id}?methodId={}&code=000000", method.as_str());
    let guesses = (0..50).map(|_| app.client.delete(app.url(&path)).header("Authorization", &app.api_key)).collect();
    let statuses: Vec<u16> = app.all_at_once(guesses).await.iter().map(|r| r.status).collect();
    let evaluated = statuses.iter().filter(|s| **s == 421).count();
    assert!(evaluated <= 5, "{evaluated} of 50 guesses were checked: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 421 || *s == 409), "{statuses:?}");

    // The window of a twoFactorId (5 minutes) passes, and the owner's code works again.
    app.clock.advance(Duration::from_secs(301));
    let ok = app.admin(Method::DELETE, &path.replace("000000", &app.totp(&secret, 0)), None).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}
