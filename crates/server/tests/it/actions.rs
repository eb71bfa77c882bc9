//! Actions managed through Auth0's Management API shape: Auth0's own ManagementClient
//! (npm `auth0`) drives it end to end; the rules it cannot show (limits, tenants,
//! secrets at rest, concurrent deploys) are checked over HTTP.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{TestApp, app, spawn_app};

async fn node(app: &TestApp, script: &str) -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk-node");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(format!("{root}/{script}")).current_dir(root).env("BASE", &app.base).env("API_KEY", &app.api_key);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("node finished").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

const CODE: &str = "exports.onExecutePostLogin = async (event, api) => { api.idToken.setCustomClaim('a', 1); };";

async fn create(app: &TestApp, name: &str, code: &str) -> tessera_testkit::Reply {
    let body = json!({"name": name, "supported_triggers": [{"id": "post-login", "version": "v3"}], "code": code});
    app.admin(Method::POST, "/api/v2/actions/actions", Some(body)).await
}

#[tokio::test]
async fn auth0s_management_client_creates_deploys_binds_tests_and_rolls_back_an_action() {
    let app = spawn_app().await;
    let seen = node(&app, "actions.mjs").await;

    assert_eq!(seen["created"]["secrets"][0]["name"], "PARTNER_KEY");
    assert!(seen["created"]["secrets"][0].get("value").is_none(), "a secret's value is never shown: {seen}");
    assert_eq!(seen["created"]["deployed"], Value::Null);
    assert_eq!((seen["first"]["number"].as_u64(), seen["second"]["number"].as_u64()), (Some(1), Some(2)));

    let tested = &seen["tested"];
    assert_eq!(tested["commands"][0]["name"], "idToken.setCustomClaim");
    assert_eq!(tested["commands"][0]["args"], json!(["https://example.com/claim", "first"]));
    assert_eq!(tested["logs"][0], "signing in ann@example.com with [REDACTED]", "{tested}");

    let numbers: Vec<u64> =
        seen["versions"].as_array().unwrap().iter().map(|v| v["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [2, 1], "newest first");
    assert_eq!(seen["versions"][0]["deployed"], true);
    // Rolling back deploys a copy of version 1 as version 3; the draft stays as edited.
    assert_eq!(seen["rolledBack"]["number"], 3);
    assert!(seen["rolledBack"]["code"].as_str().unwrap().contains("'first'"));
    assert_eq!(seen["afterRollBack"]["deployed"], 3);
    assert!(seen["afterRollBack"]["code"].as_str().unwrap().contains("'second'"));
    assert_eq!(seen["afterRollBack"]["all_changes_deployed"], false);

    assert_eq!(seen["bindings"][0]["display_name"], "Add claim");
    assert_eq!(seen["bindings"][0]["action"], seen["created"]["id"]);
    assert_eq!(seen["listed"], json!(["add-claim"]));

    let bad = &seen["badDeploy"];
    assert_eq!(bad["status"], 400, "{bad}");
    let said = bad["body"]["message"].as_str().unwrap();
    assert!(said.contains("SyntaxError") && said.contains("line 2"), "{said}");
    assert_eq!(bad["body"]["errorCode"], "invalid_code");
    assert_eq!(seen["boundDelete"]["status"], 409, "a bound action is not deleted: {seen}");
    assert_eq!(seen["duplicate"]["status"], 409);

    // The deploy that failed left no version; the audit log has the story.
    let log = app.admin(Method::GET, "/api/system/audit-log?numberOfResults=50", None).await.json;
    let kinds: Vec<&str> = log["auditLogs"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    for kind in ["action.created", "action.deployed", "action.bindings_updated", "action.updated", "action.deleted"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn bad_input_gets_auth0s_error_shape_and_nothing_is_half_written() {
    let app = spawn_app().await;
    let unknown_trigger = app
        .admin(
            Method::POST,
            "/api/v2/actions/actions",
            Some(json!({"name": "x", "supported_triggers": [{"id": "pre-user-registration"}], "code": ""})),
        )
        .await;
    assert_eq!(unknown_trigger.status, 400, "{}", unknown_trigger.text);
    assert_eq!(unknown_trigger.json["statusCode"], 400);
    assert_eq!(unknown_trigger.json["errorCode"], "invalid_body");
    assert!(unknown_trigger.json["message"].as_str().unwrap().contains("pre-user-registration"));

    let lodash = app
        .admin(
            Method::POST,
            "/api/v2/actions/actions",
            Some(json!({"name": "x", "supported_triggers": [{"id": "post-login"}],
                        "dependencies": [{"name": "lodash", "version": "4.17.21"}]})),
        )
        .await;
    assert_eq!(lodash.status, 400);
    assert!(lodash.json["message"].as_str().unwrap().contains("lodash"), "{}", lodash.text);

    let too_big = create(&app, "big", &"x".repeat(100 * 1024 + 1)).await;
    assert_eq!(too_big.status, 400);
    let secrets: Vec<Value> = (0..31).map(|i| json!({"name": format!("S{i}"), "value": "v"})).collect();
    let too_many = app
        .admin(
            Method::POST,
            "/api/v2/actions/actions",
            Some(json!({"name": "s", "supported_triggers": [{"id": "post-login"}], "secrets": secrets})),
        )
        .await;
    assert_eq!(too_many.status, 400, "{}", too_many.text);
    let malformed = app
        .send(
            app.client
                .post(app.url("/api/v2/actions/actions"))
                .header("Authorization", format!("Bearer {}", app.api_key))
                .header("Content-Type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!((malformed.status, malformed.json["errorCode"].as_str()), (400, Some("invalid_body")));
    let listed = app.admin(Method::GET, "/api/v2/actions/actions", None).await;
    assert_eq!(listed.json["total"], 0, "nothing refused was kept: {}", listed.text);

    let anonymous = app.send(app.client.get(app.url("/api/v2/actions/actions"))).await;
    assert_eq!(anonymous.status, 401);
    let missing = app.admin(Method::GET, "/api/v2/actions/actions/not-an-id", None).await;
    assert_eq!((missing.status, missing.json["errorCode"].as_str()), (404, Some("inexistent_resource")));

    // An action that never deployed cannot be bound; one with a missing handler cannot deploy.
    let id = create(&app, "draft", CODE).await.json["id"].as_str().unwrap().to_owned();
    let bind = json!({"bindings": [{"ref": {"type": "action_id", "value": id}}]});
    let refused = app.admin(Method::PATCH, "/api/v2/actions/triggers/post-login/bindings", Some(bind)).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.json["message"].as_str().unwrap().contains("not been deployed"));
    let no_handler = create(&app, "nohandler", "exports.somethingElse = () => {};").await.json["id"].clone();
    let deploy = app
        .admin(Method::POST, &format!("/api/v2/actions/actions/{}/deploy", no_handler.as_str().unwrap()), None)
        .await;
    assert_eq!(deploy.status, 400);
    assert!(deploy.json["message"].as_str().unwrap().contains("onExecutePostLogin"), "{}", deploy.text);
    let versions = app
        .admin(Method::GET, &format!("/api/v2/actions/actions/{}/versions", no_handler.as_str().unwrap()), None)
        .await;
    assert_eq!(versions.json["total"], 0);
}

#[tokio::test]
async fn a_trigger_runs_at_most_twenty_actions() {
    let app = spawn_app().await;
    let mut refs = Vec::new();
    for i in 0..21 {
        let id = create(&app, &format!("a{i}"), CODE).await.json["id"].as_str().unwrap().to_owned();
        let deployed = app.admin(Method::POST, &format!("/api/v2/actions/actions/{id}/deploy"), None).await;
        assert_eq!(deployed.status, 202, "{}", deployed.text);
        refs.push(json!({"ref": {"type": "action_id", "value": id}}));
    }
    let path = "/api/v2/actions/triggers/post-login/bindings";
    let too_many = app.admin(Method::PATCH, path, Some(json!({"bindings": refs}))).await;
    assert_eq!(too_many.status, 400, "{}", too_many.text);
    assert!(too_many.json["message"].as_str().unwrap().contains("at most 20"), "{}", too_many.text);
    refs.pop();
    let twenty = app.admin(Method::PATCH, path, Some(json!({"bindings": refs}))).await;
    assert_eq!(twenty.status, 200, "{}", twenty.text);
    assert_eq!(twenty.json["bindings"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_kept_when_an_update_names_them_without_a_value() {
    let app = spawn_app().await;
    let body = json!({"name": "s", "supported_triggers": [{"id": "post-login"}],
                      "code": "exports.onExecutePostLogin = async (event, api) => { api.idToken.setCustomClaim('k', event.secrets.KEY); };",
                      "secrets": [{"name": "KEY", "value": "very-secret-value"}]});
    let created = app.admin(Method::POST, "/api/v2/actions/actions", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(!created.text.contains("very-secret-value"));
    let id = created.json["id"].as_str().unwrap().to_owned();
    let stored =
        tessera_core::store::ActionStore::actions(&*app.state.store, app.state.identity.tenant().id).await.unwrap();
    assert!(!stored[0].sealed_secrets.contains("very-secret-value"), "sealed, not stored in the clear");

    let renamed = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/actions/actions/{id}"),
            Some(json!({"name": "renamed", "secrets": [{"name": "KEY"}, {"name": "OTHER", "value": "x"}]})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let names: Vec<&str> =
        renamed.json["secrets"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["KEY", "OTHER"]);
    let tested =
        app.admin(Method::POST, &format!("/api/v2/actions/actions/{id}/test"), Some(json!({"payload": {}}))).await;
    assert_eq!(tested.json["payload"]["commands"][0]["args"], json!(["k", "very-secret-value"]), "{}", tested.text);
}

#[tokio::test]
async fn another_tenants_key_sees_none_of_these_actions() {
    let app = spawn_app().await;
    let id = create(&app, "mine", CODE).await.json["id"].as_str().unwrap().to_owned();
    let (_, other, _) = app.second_tenant().await;
    let other = other.expose().to_owned();
    let seen = app
        .send(app.client.get(app.url(&format!("/api/v2/actions/actions/{id}"))).header("Authorization", &other))
        .await;
    assert_eq!(seen.status, 404);
    let listed = app.send(app.client.get(app.url("/api/v2/actions/actions")).header("Authorization", &other)).await;
    assert_eq!(listed.json["total"], 0, "{}", listed.text);
}

/// Fifty deploys of one action at once make fifty versions numbered 1 to 50, each once,
/// on SQLite, on PostgreSQL and on two instances sharing it.
async fn concurrent_deploys_number_versions_once(apps: &[&TestApp]) {
    let id = create(apps[0], "busy", CODE).await.json["id"].as_str().unwrap().to_owned();
    let deploys = (0..50)
        .map(|i| {
            let app = apps[i % apps.len()];
            app.client
                .post(app.url(&format!("/api/v2/actions/actions/{id}/deploy")))
                .header("Authorization", format!("Bearer {}", app.api_key))
        })
        .collect();
    let answers = apps[0].all_at_once(deploys).await;
    for a in &answers {
        assert_eq!(a.status, 202, "{}", a.text);
    }
    let mut numbers: Vec<u64> = answers.iter().map(|a| a.json["number"].as_u64().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=50).collect::<Vec<u64>>());
    let versions =
        apps[0].admin(Method::GET, &format!("/api/v2/actions/actions/{id}/versions?per_page=100"), None).await;
    assert_eq!(versions.json["total"], 50);
}

#[tokio::test]
async fn fifty_concurrent_deploys_number_versions_once_on_sqlite() {
    let app = spawn_app().await;
    concurrent_deploys_number_versions_once(&[&app]).await;
}

#[tokio::test]
async fn fifty_concurrent_deploys_number_versions_once_on_postgres_and_two_instances() {
    let one = app().backend(tessera_store::Backend::Postgres).spawn().await;
    let two = app().database_url(&one.database_url).spawn().await;
    concurrent_deploys_number_versions_once(&[&one, &two]).await;
}

/// `script` run with the Python in `python`, its one argument the stand-in's URL.
async fn python(python: std::path::PathBuf, script: &str, url: &str) {
    let out = tokio::process::Command::new(python).args(["-c", script, url]).output().await.expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An action run once through the test endpoint of a server whose vendor modules point
/// at `vendor`.
async fn run_action(vendor: &tessera_testkit::MockVendor, code: &str) -> Value {
    let url = vendor.url.clone();
    let app = app()
        .configure(move |c| {
            c.actions.http_allowlist = vec!["127.0.0.1".into()];
            c.actions.vendors =
                tessera_scripts::VendorUrls { twilio_api: url.clone(), twilio_verify: url.clone(), plivo_api: url };
        })
        .spawn()
        .await;
    let id = create(&app, "vendor", code).await.json["id"].as_str().unwrap().to_owned();
    let r = app.admin(Method::POST, &format!("/api/v2/actions/actions/{id}/test"), Some(json!({"payload": {}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["payload"]["error"], Value::Null, "{}", r.text);
    r.json
}

fn sorted_form(c: &tessera_testkit::Captured) -> Vec<(String, String)> {
    let mut f = c.form();
    f.sort();
    f
}

/// `require('twilio')` sends what Twilio's own client sends: the official `twilio`
/// package and an action, pointed at one stand-in, make the same requests (path, Basic
/// auth, form fields) for a message, a Verify approval and a Verify check.
#[tokio::test]
async fn the_twilio_module_sends_what_twilios_own_client_sends() {
    let vendor = tessera_testkit::MockVendor::start().await;
    vendor.default_reply(tessera_testkit::mock::Reply::json(201, json!({"sid": "SM1", "status": "approved"})));
    let official = "import sys\n\
                    from twilio.http.http_client import TwilioHttpClient\n\
                    from twilio.rest import Client\n\
                    class Local(TwilioHttpClient):\n\
                    \x20   def request(self, method, url, *a, **k):\n\
                    \x20       for host in ('https://api.twilio.com', 'https://verify.twilio.com'):\n\
                    \x20           url = url.replace(host, sys.argv[1])\n\
                    \x20       return super().request(method, url, *a, **k)\n\
                    c = Client('AC123', 'secret-token', http_client=Local())\n\
                    c.messages.create(to='+15550001111', from_='+15550002222', body='Your code is 123456')\n\
                    c.verify.v2.services('VA1').verifications('+15550001111').update(status='approved')\n\
                    c.verify.v2.services('VA1').verification_checks.create(to='+15550001111', code='123456')\n";
    let py = tokio::task::spawn_blocking(crate::sdk::python_with_twilio).await.unwrap();
    python(py, official, &vendor.url).await;
    let code = "const twilio = require('twilio');\n\
                exports.onExecutePostLogin = async () => {\n\
                  const c = twilio('AC123', 'secret-token');\n\
                  await c.messages.create({ to: '+15550001111', from: '+15550002222', body: 'Your code is 123456' });\n\
                  await c.verify.v2.services('VA1').verifications('+15550001111').update({ status: 'approved' });\n\
                  await c.verify.v2.services('VA1').verificationChecks.create({ to: '+15550001111', code: '123456' });\n\
                };";
    run_action(&vendor, code).await;
    let seen = vendor.requests();
    assert_eq!(seen.len(), 6, "three from each");
    for (theirs, ours) in seen[..3].iter().zip(&seen[3..]) {
        assert_eq!((&ours.method, &ours.path), (&theirs.method, &theirs.path));
        assert_eq!(ours.basic_auth(), theirs.basic_auth(), "{}", theirs.path);
        assert_eq!(sorted_form(ours), sorted_form(theirs), "{}", theirs.path);
        assert!(ours.header("content-type").unwrap().starts_with("application/x-www-form-urlencoded"));
    }
}

/// `require('plivo')` sends what Plivo's own client sends for a message: the same path
/// and Basic auth, and every field it sends with the same value (Plivo's client adds
/// optional fields with their defaults: `type`, `method`, `log`, …).
#[tokio::test]
async fn the_plivo_module_sends_what_plivos_own_client_sends() {
    let vendor = tessera_testkit::MockVendor::start().await;
    let answer = json!({"api_id": "a1", "message": "message(s) queued", "message_uuid": ["m1"]});
    vendor.default_reply(tessera_testkit::mock::Reply::json(202, answer));
    let official = "import sys\n\
                    import plivo\n\
                    import plivo.rest.client as rc\n\
                    rc.PLIVO_API = sys.argv[1]\n\
                    rc.PLIVO_API_BASE_URI = sys.argv[1] + '/v1/Account'\n\
                    c = plivo.RestClient('MA1234567890ABCDEFGH', 'plivo-token')\n\
                    c.messages.create(src='+15550002222', dst='+15550001111', text='Your code is 123456')\n";
    let py = tokio::task::spawn_blocking(crate::sdk::python_with_plivo).await.unwrap();
    python(py, official, &vendor.url).await;
    let code = "const plivo = require('plivo');\n\
                exports.onExecutePostLogin = async () => {\n\
                  await new plivo.Client('MA1234567890ABCDEFGH', 'plivo-token').messages.create({\n\
                    src: '+15550002222', dst: '+15550001111', text: 'Your code is 123456' });\n\
                };";
    run_action(&vendor, code).await;
    let seen = vendor.requests();
    assert_eq!(seen.len(), 2, "{:?}", seen.iter().map(|c| &c.path).collect::<Vec<_>>());
    let (theirs, ours) = (&seen[0], &seen[1]);
    assert_eq!((&ours.method, &ours.path), (&theirs.method, &theirs.path));
    assert_eq!(ours.basic_auth(), theirs.basic_auth());
    let (theirs, ours) = (theirs.json(), ours.json());
    for (k, v) in ours.as_object().unwrap() {
        assert_eq!(theirs.get(k), Some(v), "{k}: ours {ours}, theirs {theirs}");
    }
}
