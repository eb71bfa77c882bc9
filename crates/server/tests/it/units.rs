//! Use cases that write more than once commit once: a failure injected between their
//! writes (the database refusing one insert) leaves the database as it was, on SQLite
//! and PostgreSQL. (OIDC code redemption's is in `oidc`.)

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tessera_store::Backend;
use tessera_testkit::{TestApp, app, spawn_app};

const SECRET: &[u8] = b"12345678901234567890";

async fn both() -> [TestApp; 2] {
    [spawn_app().await, app().backend(Backend::Postgres).spawn().await]
}

#[tokio::test]
async fn a_factor_whose_recovery_codes_could_not_be_stored_is_not_added() {
    for app in both().await {
        let ann = app.create_user("ann@example.com", "correct horse").await;
        app.refuse_inserts_into("recovery_codes").await;
        let body = json!({"method": "authenticator", "secretBase32Encoded": tessera_core::base32::encode(SECRET), "code": app.totp(SECRET, 0)});
        let r = app.admin(Method::POST, &format!("/api/user/two-factor/{ann}"), Some(body)).await;
        assert_eq!(r.status, 500, "{}", r.text);
        assert!(app.factors_of("ann@example.com").await.is_empty(), "no factor without its recovery codes");
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'two_factor.enabled'").await, 0);

        app.allow_inserts_into("recovery_codes").await;
        app.clock.advance(Duration::from_secs(30));
        let enabled = app.enable_authenticator(&ann, SECRET).await;
        assert_eq!(
            enabled["recoveryCodes"].as_array().map(Vec::len),
            Some(10),
            "the first factor still gets its codes"
        );
    }
}

#[tokio::test]
async fn a_factor_removal_that_could_not_be_audited_removes_nothing() {
    for app in both().await {
        let ann = app.create_user("ann@example.com", "correct horse").await;
        app.enable_authenticator(&ann, SECRET).await;
        let method = app.factors_of("ann@example.com").await[0].id.as_str().to_owned();
        app.clock.advance(Duration::from_secs(30));
        app.refuse_inserts_into("audit_log").await;
        let path = format!("/api/user/two-factor/{ann}?methodId={method}&code={}", app.totp(SECRET, 0));
        let r = app.admin(Method::DELETE, &path, None).await;
        assert_eq!(r.status, 500, "{}", r.text);
        app.allow_inserts_into("audit_log").await;
        assert_eq!(app.factors_of("ann@example.com").await.len(), 1, "the factor is still there");
        assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 10, "and so are its recovery codes");
    }
}

#[tokio::test]
async fn a_user_update_that_could_not_revoke_tokens_changes_nothing() {
    for app in both().await {
        let ann = app.create_user("ann@example.com", "correct horse").await;
        let refresh =
            app.login("ann@example.com", "correct horse").await.json["refreshToken"].as_str().unwrap().to_owned();
        app.refuse_inserts_into("audit_log").await;
        let body = json!({"user": {"email": "ann@example.com", "password": "a new password"}});
        let r = app.admin(Method::PUT, &format!("/api/user/{ann}"), Some(body)).await;
        assert_eq!(r.status, 500, "{}", r.text);
        app.allow_inserts_into("audit_log").await;
        assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200, "the old password stands");
        assert_eq!(app.login("ann@example.com", "a new password").await.status, 404);
        let r = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await;
        assert_eq!(r.status, 200, "the refresh token was not revoked: {}", r.text);
    }
}

#[tokio::test]
async fn a_user_deletion_that_could_not_be_audited_deletes_and_revokes_nothing() {
    for app in both().await {
        let ann = app.create_user("ann@example.com", "correct horse").await;
        let refresh =
            app.login("ann@example.com", "correct horse").await.json["refreshToken"].as_str().unwrap().to_owned();
        app.refuse_inserts_into("audit_log").await;
        for path in [format!("/api/user/{ann}"), format!("/api/user/{ann}?hardDelete=true")] {
            let r = app.admin(Method::DELETE, &path, None).await;
            assert_eq!(r.status, 500, "{path}: {}", r.text);
        }
        app.allow_inserts_into("audit_log").await;
        assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200, "still there and active");
        let r = app.post_json("/api/jwt/refresh", json!({"refreshToken": refresh})).await;
        assert_eq!(r.status, 200, "the refresh token was not revoked: {}", r.text);
    }
}

#[tokio::test]
async fn a_second_step_whose_tokens_could_not_be_stored_leaves_the_challenge_open() {
    for app in both().await {
        let ann = app.create_user("ann@example.com", "correct horse").await;
        app.enable_authenticator(&ann, SECRET).await;
        app.clock.advance(Duration::from_secs(30));
        let r = app.login("ann@example.com", "correct horse").await;
        assert_eq!(r.status, 242);
        let id = r.json["twoFactorId"].as_str().unwrap().to_owned();
        app.refuse_inserts_into("refresh_tokens").await;
        let r = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": app.totp(SECRET, 0)})).await;
        assert_eq!(r.status, 500, "{}", r.text);
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'login.success'").await, 0);
        app.allow_inserts_into("refresh_tokens").await;
        app.clock.advance(Duration::from_secs(30));
        let r = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": app.totp(SECRET, 0)})).await;
        assert_eq!(r.status, 200, "the challenge was not spent: {}", r.text);
    }
}

/// The metrics count an audited event once its unit commits, not when it is written:
/// a second step rolled back part-way is no success in `/metrics` either.
#[tokio::test]
async fn an_event_whose_unit_rolled_back_is_not_counted() {
    for app in both().await {
        let ann = app.create_user("ann@example.com", "correct horse").await;
        app.enable_authenticator(&ann, SECRET).await;
        app.clock.advance(Duration::from_secs(30));
        let id = app.login("ann@example.com", "correct horse").await.json["twoFactorId"].as_str().unwrap().to_owned();
        let successes = || async {
            let text = app.send(app.client.get(app.url("/metrics"))).await.text;
            text.lines()
                .find(|l| l.starts_with("tessera_security_events_total{event=\"two_factor.success\""))
                .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        };
        app.refuse_inserts_into("refresh_tokens").await;
        let r = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": app.totp(SECRET, 0)})).await;
        assert_eq!(r.status, 500, "{}", r.text);
        assert_eq!(successes().await, None, "rolled back, not counted");
        app.allow_inserts_into("refresh_tokens").await;
        app.clock.advance(Duration::from_secs(30));
        let r = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": app.totp(SECRET, 0)})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(successes().await.as_deref(), Some("1"), "committed, counted once");
    }
}

#[tokio::test]
async fn a_verification_whose_send_could_not_be_recorded_is_not_started() {
    for app in both().await {
        let r = app.admin(Method::POST, "/api/verify/account", None).await;
        let (account, token) = (r.json["accountSid"].as_str().unwrap(), r.json["authToken"].as_str().unwrap());
        let post = |path: &str, form: &[(&str, &str)]| {
            app.send(app.client.post(app.url(path)).basic_auth(account, Some(token)).form(form))
        };
        let va = post("/v2/Services", &[("FriendlyName", "Acme")]).await.json["sid"].as_str().unwrap().to_owned();
        app.refuse_inserts_into("verify_sends").await;
        let r = post(&format!("/v2/Services/{va}/Verifications"), &[("To", "+15554443232"), ("Channel", "sms")]).await;
        assert_eq!(r.status, 500, "{}", r.text);
        assert_eq!(app.count("SELECT COUNT(*) FROM verifications").await, 0, "no verification without its send");
        assert_eq!(app.messages_sent(), 0, "and nothing was sent");
        app.allow_inserts_into("verify_sends").await;
        let r = post(&format!("/v2/Services/{va}/Verifications"), &[("To", "+15554443232"), ("Channel", "sms")]).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

/// Makes the next `times` inserts into `table` fail as a collision between transactions
/// (PostgreSQL's serialization_failure, 40001). A sequence counts them: it is not rolled
/// back with the transaction that failed.
async fn collide_on_inserts_into(app: &TestApp, table: &str, times: u32) {
    for sql in [
        format!("CREATE SEQUENCE collisions_{table}"),
        format!(
            "CREATE FUNCTION collide_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF nextval('collisions_{table}') <= {times} THEN \
             RAISE EXCEPTION 'injected collision' USING ERRCODE = 'serialization_failure'; END IF; \
             RETURN NEW; END $$"
        ),
        format!(
            "CREATE TRIGGER collide_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION collide_{table}()"
        ),
    ] {
        tessera_store::testing::execute(&app.database_url, &sql).await.unwrap();
    }
}

#[tokio::test]
async fn a_unit_that_collides_with_another_is_run_again() {
    let app = app().backend(Backend::Postgres).spawn().await;
    let ann = app.create_user("ann@example.com", "correct horse").await;
    collide_on_inserts_into(&app, "audit_log", 1).await;
    let body = json!({"user": {"email": "ann@example.com", "password": "a new password"}});
    let r = app.admin(Method::PUT, &format!("/api/user/{ann}"), Some(body)).await;
    assert_eq!(r.status, 200, "the second run went through: {}", r.text);
    assert_eq!(app.login("ann@example.com", "a new password").await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'user.updated'").await, 1, "once");
}

#[tokio::test]
async fn a_unit_that_keeps_colliding_is_given_up_whole() {
    let app = app().backend(Backend::Postgres).spawn().await;
    let ann = app.create_user("ann@example.com", "correct horse").await;
    collide_on_inserts_into(&app, "audit_log", 3).await;
    let body = json!({"user": {"email": "ann@example.com", "password": "a new password"}});
    let r = app.admin(Method::PUT, &format!("/api/user/{ann}"), Some(body)).await;
    assert_eq!(r.status, 500, "three collisions: {}", r.text);
    tessera_store::testing::execute(&app.database_url, "DROP TRIGGER collide_audit_log ON audit_log").await.unwrap();
    assert_eq!(app.login("ann@example.com", "correct horse").await.status, 200, "nothing changed");
    assert_eq!(app.login("ann@example.com", "a new password").await.status, 404);
}

#[tokio::test]
async fn a_second_step_that_collides_is_run_again_and_signs_in_once() {
    let app = app().backend(Backend::Postgres).spawn().await;
    let ann = app.create_user("ann@example.com", "correct horse").await;
    app.enable_authenticator(&ann, SECRET).await;
    app.clock.advance(Duration::from_secs(30));
    let id = app.login("ann@example.com", "correct horse").await.json["twoFactorId"].as_str().unwrap().to_owned();
    collide_on_inserts_into(&app, "refresh_tokens", 1).await;
    let r = app.post_json("/api/two-factor/login", json!({"twoFactorId": id, "code": app.totp(SECRET, 0)})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'login.success'").await, 1, "once");
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 1);
}
