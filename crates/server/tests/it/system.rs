use reqwest::Method;
use serde_json::json;
use tessera_testkit::spawn_app;

#[tokio::test]
async fn status_is_healthy() {
    let app = spawn_app().await;
    let r = app.send(app.client.get(app.url("/api/status"))).await;
    assert_eq!((r.status, &r.json["status"]), (200, &json!("ok")));
}

#[tokio::test]
async fn metrics_count_requests_and_logins_by_outcome() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", "correct horse").await;
    app.login("ann@example.com", "correct horse").await;
    app.login("ann@example.com", "wrong").await;
    app.post_json("/api/login", json!({})).await;
    let text = app.send(app.client.get(app.url("/metrics"))).await.text;
    assert!(text.contains("tessera_logins_total{outcome=\"success\"} 1"), "{text}");
    assert!(text.contains("tessera_logins_total{outcome=\"failure\"} 1"), "{text}");
    assert!(text.contains("tessera_logins_total{outcome=\"invalid\"} 1"), "{text}");
    assert!(
        text.contains("tessera_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tessera_http_request_duration_seconds_count{method=\"POST\",route=\"/api/user\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn audit_log_records_security_events_with_paging() {
    let app = spawn_app().await;
    let id = app.create_user("ann@example.com", "correct horse").await;
    app.send(
        app.client
            .post(app.url("/api/login"))
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&json!({"loginId": "ann@example.com", "password": "wrong"})),
    )
    .await;
    app.login("ann@example.com", "correct horse").await;
    app.admin(Method::PATCH, &format!("/api/user/{id}"), Some(json!({"user": {"firstName": "Ann"}}))).await;

    let r = app.admin(Method::GET, "/api/system/audit-log?startRow=0&numberOfResults=2", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["total"], 5);
    let events: Vec<&str> =
        r.json["auditLogs"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["user.updated", "login.success"]);
    let rest = app.admin(Method::GET, "/api/system/audit-log?startRow=2&numberOfResults=2", None).await;
    let older = rest.json["auditLogs"].as_array().unwrap();
    assert_eq!(older[0]["event"], "login.failure");
    assert_eq!(older[0]["ipAddress"], "203.0.113.9");
    assert_eq!(older[0]["outcome"], "failure");
    assert_eq!(older[1]["event"], "user.created");
    assert_eq!(older[1]["userId"], id.as_str());
    assert!(older[1]["insertInstant"].as_i64().is_some());
    let first = app.admin(Method::GET, "/api/system/audit-log?startRow=4", None).await;
    assert_eq!(first.json["auditLogs"][0]["event"], "api_key.created", "the bootstrap key is audited too");
    assert!(!rest.text.contains("wrong") && !rest.text.contains("horse"), "no passwords in the audit log");
}

/// An administrator's change names the key that made it (FusionAuth's `insertUser`); a
/// sign-in, made by nobody authenticated yet, names none.
#[tokio::test]
async fn audit_events_name_the_api_key_that_acted() {
    let app = spawn_app().await;
    let id = app.create_user("ann@example.com", "correct horse").await;
    app.admin(Method::PATCH, &format!("/api/user/{id}"), Some(json!({"user": {"firstName": "Ann"}}))).await;
    app.login("ann@example.com", "correct horse").await;
    let keys = app.admin(Method::GET, "/api/api-key", None).await;
    let key_id = keys.json["apiKeys"][0]["id"].as_str().unwrap().to_owned();

    let log = app.admin(Method::GET, "/api/system/audit-log", None).await;
    let logs = log.json["auditLogs"].as_array().unwrap();
    let by = |event: &str| logs.iter().find(|e| e["event"] == event).unwrap()["insertUser"].clone();
    assert_eq!(by("user.created"), json!(format!("apiKey:{key_id}")));
    assert_eq!(by("user.updated"), json!(format!("apiKey:{key_id}")));
    assert_eq!(by("login.success"), json!(null), "a sign-in is nobody's act but the user's");
}

/// A second tenant's key acts in that tenant: the events it causes carry that tenant
/// and that key, are in that tenant's audit log, and not in the first tenant's.
#[tokio::test]
async fn an_audit_event_made_with_a_second_tenants_key_carries_that_tenant_and_that_key() {
    let app = spawn_app().await;
    let (second, key, key_id) = app.second_tenant().await;
    let as_second = |m: Method, path: &str| app.client.request(m, app.url(path)).header("Authorization", key.expose());
    let created = app
        .send(
            as_second(Method::POST, "/api/user")
                .json(&json!({"user": {"email": "bo@example.com", "password": "correct horse"}})),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let log = app.send(as_second(Method::GET, "/api/system/audit-log")).await;
    let events = log.json["auditLogs"].as_array().unwrap();
    let made = events.iter().find(|e| e["event"] == "user.created").expect("in the second tenant's log");
    assert_eq!(made["insertUser"], json!(format!("apiKey:{key_id}")));
    assert_eq!(made["userId"], created.json["user"]["id"]);
    let tenant_of = format!(
        "SELECT COUNT(*) FROM audit_log WHERE event = 'user.created' AND tenant_id = '{second}' AND actor = 'apiKey:{key_id}'"
    );
    assert_eq!(app.count(&tenant_of).await, 1, "stored with that tenant and that key");
    let first = app.admin(Method::GET, "/api/system/audit-log", None).await;
    assert!(!first.text.contains("bo@example.com") && !first.text.contains(&key_id.to_string()), "{}", first.text);
}

/// A Verify credential made with a second tenant's key acts in that tenant: its
/// verifications' events (started, approved) are that tenant's, not the server's.
#[tokio::test]
async fn verify_events_carry_the_tenant_of_the_credential() {
    let app = spawn_app().await;
    let (second, key, _) = app.second_tenant().await;
    let account = app.send(app.client.post(app.url("/api/verify/account")).header("Authorization", key.expose())).await;
    assert_eq!(account.status, 200, "{}", account.text);
    let (sid, token) = (account.json["accountSid"].as_str().unwrap(), account.json["authToken"].as_str().unwrap());
    let verify =
        |path: &str, form: &[(&str, &str)]| app.client.post(app.url(path)).basic_auth(sid, Some(token)).form(form);
    let service =
        app.send(verify("/v2/Services", &[("FriendlyName", "Acme")])).await.json["sid"].as_str().unwrap().to_owned();
    let to = "+15554443299";
    let started =
        app.send(verify(&format!("/v2/Services/{service}/Verifications"), &[("To", to), ("Channel", "sms")])).await;
    assert_eq!(started.status, 201, "{}", started.text);
    let code = app.last_code_to(to).unwrap();
    let checked =
        app.send(verify(&format!("/v2/Services/{service}/VerificationCheck"), &[("To", to), ("Code", &code)])).await;
    assert_eq!(checked.json["status"], "approved", "{}", checked.text);
    for event in ["verify.pending", "verify.approved"] {
        let in_second = format!("SELECT COUNT(*) FROM audit_log WHERE event = '{event}' AND tenant_id = '{second}'");
        assert_eq!(app.count(&in_second).await, 1, "{event} in the credential's tenant");
        let anywhere = format!("SELECT COUNT(*) FROM audit_log WHERE event = '{event}'");
        assert_eq!(app.count(&anywhere).await, 1, "{event} nowhere else");
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = tessera_testkit::app().configure(|c| c.trusted_proxies = vec![]).spawn().await;
    app.send(
        app.client
            .post(app.url("/api/login"))
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&json!({"loginId": "a", "password": "b"})),
    )
    .await;
    let log = app.admin(Method::GET, "/api/system/audit-log", None).await;
    assert_eq!(log.json["auditLogs"][0]["ipAddress"], "127.0.0.1", "a client cannot pick its own address");

    let behind = spawn_app().await; // trusts 127.0.0.1 as its proxy
    let chain = "198.51.100.1, 203.0.113.9, 127.0.0.1";
    behind
        .send(
            behind
                .client
                .post(behind.url("/api/login"))
                .header("X-Forwarded-For", chain)
                .json(&json!({"loginId": "a", "password": "b"})),
        )
        .await;
    let log = behind.admin(Method::GET, "/api/system/audit-log", None).await;
    assert_eq!(log.json["auditLogs"][0]["ipAddress"], "203.0.113.9", "the right-most address not a trusted proxy");
}

#[tokio::test]
async fn a_nul_character_anywhere_is_a_400_before_the_database() {
    let app = tessera_testkit::app().backend(tessera_store::Backend::Postgres).spawn().await;
    let login =
        app.post_json("/api/login", serde_json::json!({"loginId": "ann\u{0}@example.com", "password": "x"})).await;
    assert_eq!(
        (login.status, &login.json["generalErrors"][0]["code"]),
        (400, &serde_json::json!("[invalidCharacter]")),
        "{}",
        login.text
    );

    let page = app.send(app.client.get(app.url("/login"))).await;
    let csrf = crate::forms::field(&page.text, "csrf");
    let hosted = app
        .send(app.client.post(app.url("/login")).form(&[
            ("csrf", csrf.as_str()),
            ("return_to", "/"),
            ("login_id", "ann\u{0}"),
            ("password", "x"),
        ]))
        .await;
    assert_eq!(hosted.status, 400, "{}", hosted.text);
    assert!(hosted.text.contains("NUL character"), "a page in words: {}", hosted.text);

    let verify = app.send(app.client.get(app.url("/v2/Services")).basic_auth("AC\u{0}1", Some("token"))).await;
    assert_eq!((verify.status, verify.json["code"].as_i64()), (400, Some(60200)), "{}", verify.text);
    let query = app.admin(reqwest::Method::GET, "/api/user?loginId=ann%00", None).await;
    assert_eq!(query.status, 400, "{}", query.text);
    let path = app.send(app.client.get(app.url("/v2/Services/VA%00")).basic_auth("AC1", Some("token"))).await;
    assert_eq!(path.status, 400, "{}", path.text);
    let fine =
        app.post_json("/api/login", serde_json::json!({"loginId": "ann\\u0000@example.com", "password": "x"})).await;
    assert_eq!(fine.status, 404, "a backslash and the text u0000 is just text");
}

#[tokio::test]
async fn admin_keys_are_listed_and_revoked_but_never_the_last() {
    let app = spawn_app().await;
    let second =
        tessera_core::service::issue_api_key(app.state.store.as_ref(), "ci pipeline", app.now()).await.unwrap();
    let listed = app.admin(Method::GET, "/api/api-key", None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let keys = listed.json["apiKeys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert!(!listed.text.contains("tsk_"), "never the keys themselves: {}", listed.text);
    let ci = keys.iter().find(|k| k["metaData"]["attributes"]["description"] == "ci pipeline").unwrap();
    let ci_id = ci["id"].as_str().unwrap();
    let with_second = |path: &str| app.client.get(app.url(path)).header("Authorization", second.expose());
    assert_eq!(app.send(with_second("/api/api-key")).await.status, 200);

    assert_eq!(app.admin(Method::DELETE, &format!("/api/api-key/{ci_id}"), None).await.status, 200);
    assert_eq!(app.send(with_second("/api/api-key")).await.status, 401, "a revoked key stops working at once");
    assert_eq!(app.admin(Method::DELETE, &format!("/api/api-key/{ci_id}"), None).await.status, 404);
    let own = app.admin(Method::GET, "/api/api-key", None).await.json["apiKeys"][0]["id"].as_str().unwrap().to_owned();
    let last = app.admin(Method::DELETE, &format!("/api/api-key/{own}"), None).await;
    assert_eq!((last.status, &last.json["generalErrors"][0]["code"]), (400, &json!("[LastKey]")));
    let log = app.admin(Method::GET, "/api/system/audit-log", None).await;
    assert!(log.text.contains("api_key.revoked"), "{}", log.text);
}

/// A statement the database refuses is our bug, not an outage: 500 with an error id,
/// never the 503 that tells load balancers and clients to come back later.
#[tokio::test]
async fn a_query_the_database_refuses_is_a_500_not_an_outage() {
    for app in [spawn_app().await, tessera_testkit::app().backend(tessera_store::Backend::Postgres).spawn().await] {
        tessera_store::testing::execute(&app.database_url, "ALTER TABLE verify_accounts RENAME TO gone").await.unwrap();
        let r = app.admin(Method::POST, "/api/verify/account", None).await;
        assert_eq!((r.status, &r.json["generalErrors"][0]["code"]), (500, &json!("[internal]")), "{}", r.text);
        let status = app.send(app.client.get(app.url("/api/status"))).await;
        assert_eq!(status.status, 200, "the database itself is fine");
    }
}
