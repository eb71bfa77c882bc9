//! Flows: Studio JSON in, inbound messages signed by the vendor, Slack out.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_providers::signature;
use tessera_testkit::mock::Reply;
use tessera_testkit::{MockVendor, TestApp, app};

const PUBLIC: &str = "https://tessera.example.com";
const NUMBER: &str = "+15550001111";

async fn flows_app(allow_loopback: bool) -> TestApp {
    app()
        .configure(move |c| {
            c.messaging.public_url = Some(PUBLIC.into());
            if allow_loopback {
                c.flow_http_allowlist = vec!["127.0.0.1".into()];
            }
        })
        .spawn()
        .await
}

/// Exactly what Twilio Studio exports for "incoming message → POST to Slack".
pub fn studio_slack_flow(url: &str) -> Value {
    json!({
        "description": "SMS to Slack",
        "states": [
            {"name": "Trigger", "type": "trigger",
             "transitions": [{"event": "incomingMessage", "next": "http_slack"}, {"event": "incomingCall"},
                             {"event": "incomingConversationMessage"}, {"event": "incomingRequest"}, {"event": "incomingParent"}],
             "properties": {"offset": {"x": 0, "y": 0}}},
            {"name": "http_slack", "type": "make-http-request",
             "transitions": [{"event": "success"}, {"event": "failed"}],
             "properties": {"offset": {"x": 100, "y": 250}, "method": "POST", "content_type": "application/json;charset=utf-8",
                            "body": "{\"text\": \"{{trigger.message.Body}}\"}", "url": url}}
        ],
        "initial_state": "Trigger",
        "flags": {"allow_concurrent_calls": true}
    })
}

async fn import(app: &TestApp, def: Value) -> String {
    let r = app.admin(Method::POST, "/api/flow", Some(def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["flow"]["id"].as_str().unwrap().to_owned();
    let b = app.admin(Method::POST, &format!("/api/flow/{id}/number"), Some(json!({"number": NUMBER}))).await;
    assert_eq!(b.status, 200, "{}", b.text);
    id
}

async fn twilio_account(app: &TestApp) {
    let r = app
        .admin(
            Method::POST,
            "/api/messenger",
            Some(json!({"messenger": {"type": "Twilio", "name": "t", "accountSID": "AC123",
            "authToken": "twilio_token", "fromPhoneNumber": NUMBER, "channels": []}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub fn twilio_params(body: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", "SM1"),
        ("AccountSid", "AC123"),
        ("From", "+15557654321"),
        ("To", NUMBER),
        ("Body", body),
        ("NumMedia", "0"),
        ("FromCountry", "US"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

async fn post_twilio(app: &TestApp, params: &[(String, String)], sig: &str) -> tessera_testkit::Reply {
    app.send(app.client.post(app.url("/webhooks/twilio/sms")).header("X-Twilio-Signature", sig).form(params)).await
}

async fn runs(app: &TestApp, flow: &str) -> Vec<Value> {
    app.admin(Method::GET, &format!("/api/flow/{flow}/runs"), None).await.json["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn finished_run(app: &TestApp, flow: &str) -> Value {
    app.eventually("the run to finish", || async {
        runs(app, flow).await.into_iter().next().filter(|r| r["status"] != "running")
    })
    .await
}

#[tokio::test]
async fn a_studio_flow_forwards_a_twilio_sms_to_slack() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    twilio_account(&app).await;
    let flow = import(&app, studio_slack_flow(&format!("{}/services/T1/B1/X1", slack.url))).await;

    let params = twilio_params("Your Acme code is 482913 \"quoted\"");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    let forged = post_twilio(&app, &params, "bm90IHRoZSBzaWduYXR1cmU=").await;
    assert_eq!(forged.status, 403);
    let unsigned = app.send(app.client.post(app.url("/webhooks/twilio/sms")).form(&params)).await;
    assert_eq!(unsigned.status, 403);
    assert!(runs(&app, &flow).await.is_empty(), "nothing ran for forged requests");

    let r = post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>");
    let got = app.eventually("Slack to be called", || async { slack.last() }).await;
    assert_eq!(got.path, "/services/T1/B1/X1");
    assert_eq!(got.json(), json!({"text": "Your Acme code is 482913 \"quoted\""}));

    let run = finished_run(&app, &flow).await;
    assert_eq!(run["status"], "ended");
    assert_eq!(run["trigger"]["message"]["From"], "+15557654321");
    let file = app.database_url.trim_start_matches("sqlite://").to_owned();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    assert!(!bytes.windows(6).any(|w| w == b"482913"), "the forwarded code is sealed in the run record");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!((steps[0]["state"].as_str(), steps[0]["event"].as_str()), (Some("Trigger"), Some("incomingMessage")));
    assert_eq!((steps[1]["event"].as_str(), steps[1]["httpStatus"].as_u64()), (Some("success"), Some(200)));
    assert!(steps[1]["latencyMs"].is_u64());
    let one = app.admin(Method::GET, &format!("/api/flow/run/{}", run["id"].as_str().unwrap()), None).await;
    assert_eq!(one.json["run"]["id"], run["id"]);

    let mut tampered = params.clone();
    tampered[4].1 = "Send money to …".into();
    assert_eq!(post_twilio(&app, &tampered, &signature::twilio("twilio_token", &url, &params)).await.status, 403);
    assert_eq!(slack.requests().len(), 1, "no Slack call for a tampered request");
}

#[tokio::test]
async fn a_plivo_signed_message_runs_the_flow_too() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    let r = app
        .admin(
            Method::POST,
            "/api/messenger",
            Some(json!({"messenger": {"type": "Plivo", "name": "p", "authId": "MA1",
            "authToken": "plivo_token", "src": NUMBER}})),
        )
        .await;
    assert_eq!(r.status, 200);
    import(&app, studio_slack_flow(&slack.url)).await;
    let params: Vec<(String, String)> = [
        ("From", "15557654321"),
        ("To", "15550001111"),
        ("Text", "Code 777111"),
        ("Type", "sms"),
        ("MessageUUID", "u1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let url = format!("{PUBLIC}/webhooks/plivo/sms");
    let send = |sig: String| {
        app.client
            .post(app.url("/webhooks/plivo/sms"))
            .header("X-Plivo-Signature-V3", sig)
            .header("X-Plivo-Signature-V3-Nonce", "n9")
            .form(&params)
    };
    assert_eq!(app.send(send("forged".into())).await.status, 403);
    let r = app.send(send(crate::sdk::plivo_signature("plivo_token", &url, "n9", &params).await)).await;
    assert_eq!((r.status, r.text.as_str()), (200, "<Response></Response>"));
    let got = app.eventually("Slack to be called", || async { slack.last() }).await;
    assert_eq!(got.json(), json!({"text": "Code 777111"}));
}

#[tokio::test]
async fn a_slow_slack_does_not_delay_the_answer_to_the_vendor() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok").after(Duration::from_millis(1500)));
    twilio_account(&app).await;
    let flow = import(&app, studio_slack_flow(&slack.url)).await;
    let params = twilio_params("hello");
    let r = post_twilio(
        &app,
        &params,
        &signature::twilio("twilio_token", &format!("{PUBLIC}/webhooks/twilio/sms"), &params),
    )
    .await;
    assert_eq!(r.status, 200);
    // Answered while Slack is still thinking: the run has not finished yet.
    let now = runs(&app, &flow).await;
    assert_eq!(now[0]["status"], "running", "the vendor got its answer before Slack answered");
    assert_eq!(finished_run(&app, &flow).await["status"], "ended");
}

#[tokio::test]
async fn every_widget_runs_with_liquid_and_studio_names() {
    let app = flows_app(true).await;
    let api = MockVendor::start().await;
    api.default_reply(Reply::json(200, json!({"ok": true, "user": {"name": "Ann"}})));
    twilio_account(&app).await;
    // The Twilio account only signs inbound messages here; replies go to the console.
    let console =
        app.admin(Method::POST, "/api/messenger", Some(json!({"messenger": {"type": "Console", "name": "dev"}}))).await;
    assert_eq!(console.status, 200);
    let def = json!({
        "description": "all widgets",
        "initial_state": "Trigger",
        "states": [
            {"name": "Trigger", "type": "trigger", "properties": {}, "transitions": [{"event": "incomingMessage", "next": "remember"}]},
            {"name": "remember", "type": "set-variables", "properties": {"variables": [{"key": "sender", "value": "{{trigger.message.From}}"}]},
             "transitions": [{"event": "next", "next": "has_code"}]},
            {"name": "has_code", "type": "split-based-on", "properties": {"input": "{{trigger.message.Body}}"},
             "transitions": [{"event": "noMatch", "next": "reply_no"},
                             {"event": "match", "next": "lookup", "conditions": [{"friendly_name": "six digits", "arguments": ["{{trigger.message.Body}}"], "type": "regex", "value": "\\b\\d{6}\\b"}]}]},
            {"name": "lookup", "type": "make-http-request",
             "properties": {"method": "GET", "url": format!("{}/lookup", api.url), "parameters": [{"key": "from", "value": "{{flow.variables.sender}}"}]},
             "transitions": [{"event": "success", "next": "known"}, {"event": "failed", "next": "reply_no"}]},
            {"name": "known", "type": "split-based-on", "properties": {"input": "{{widgets.lookup.parsed.user.name}}"},
             "transitions": [{"event": "noMatch", "next": "reply_no"},
                             {"event": "match", "next": "reply_yes", "conditions": [{"friendly_name": "ann", "arguments": [], "type": "matches_any_of", "value": "bob, ann"}]}]},
            {"name": "reply_yes", "type": "send-message", "properties": {"body": "Hi {{widgets.lookup.parsed.user.name}}, got {{trigger.message.Code}}", "to": "{{contact.channel.address}}", "from": "{{flow.channel.address}}"},
             "transitions": [{"event": "sent"}, {"event": "failed"}]},
            {"name": "reply_no", "type": "send-message", "properties": {"body": "No code found"}, "transitions": [{"event": "sent"}, {"event": "failed"}]}
        ]
    });
    let flow = import(&app, def).await;
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    for body in ["code 123456 here", "nothing"] {
        let params = twilio_params(body);
        assert_eq!(post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await.status, 200);
        finished_run(&app, &flow).await;
        app.clock.advance(Duration::from_secs(1));
    }
    let all = runs(&app, &flow).await;
    let events = |run: &Value| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{}:{}", s["state"].as_str().unwrap(), s["event"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        events(&all[1]),
        [
            "Trigger:incomingMessage",
            "remember:next",
            "has_code:match",
            "lookup:success",
            "known:match",
            "reply_yes:sent"
        ]
    );
    assert_eq!(events(&all[0]), ["Trigger:incomingMessage", "remember:next", "has_code:noMatch", "reply_no:sent"]);
    assert_eq!(all[1]["variables"]["sender"], "+15557654321");
    let lookup = api.last().unwrap();
    assert_eq!((lookup.method.as_str(), lookup.query.as_deref()), ("GET", Some("from=%2B15557654321")));
    let texts: Vec<String> = app.state.console.sent().iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, ["Hi Ann, got 123456", "No code found"], "through the messengers (console here)");
    assert_eq!(app.state.console.sent()[0].to.as_str(), "+15557654321");
}

#[tokio::test]
async fn imports_are_validated_and_errors_name_the_state() {
    let app = flows_app(true).await;
    let mut def = studio_slack_flow("https://hooks.slack.com/services/x");
    def["states"][1]["type"] = json!("run-function");
    let r = app.admin(Method::POST, "/api/flow", Some(def)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["fieldErrors"]["states.http_slack.type"][0]["code"], "[unsupported]states.http_slack.type");
    assert!(r.json["fieldErrors"]["states.http_slack.type"][0]["message"].as_str().unwrap().contains("run-function"));

    let mut def = studio_slack_flow("https://hooks.slack.com/services/x");
    def["states"][0]["transitions"][0]["next"] = json!("ghost");
    def["initial_state"] = json!("Start");
    let r = app.admin(Method::POST, "/api/flow", Some(def)).await;
    assert_eq!(r.json["fieldErrors"]["states.Trigger.transitions"][0]["code"], "[dangling]states.Trigger.transitions");
    assert_eq!(r.json["fieldErrors"]["initial_state"][0]["code"], "[missing]initial_state");

    let mut def = studio_slack_flow("https://hooks.slack.com/services/x");
    def["states"][1]["properties"]["body"] = json!("{{ trigger.message.Body ");
    let r = app.admin(Method::POST, "/api/flow", Some(def)).await;
    assert_eq!(r.json["fieldErrors"]["states.http_slack.body"][0]["code"], "[invalidTemplate]states.http_slack.body");
    let r = app.admin(Method::POST, "/api/flow/FWnope/number", Some(json!({"number": NUMBER}))).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn transient_failures_are_retried_and_private_addresses_refused() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.then(Reply::text(500, "oops"));
    slack.then(Reply::text(429, "rate_limited").header("Retry-After", "0"));
    slack.default_reply(Reply::text(200, "ok"));
    twilio_account(&app).await;
    let flow = import(&app, studio_slack_flow(&slack.url)).await;
    let params = twilio_params("hi");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await;
    let run = finished_run(&app, &flow).await;
    assert_eq!(run["steps"][1]["event"], "success");
    assert_eq!(slack.requests().len(), 3, "500 and 429 were retried");

    // Without the allow-list, a flow cannot reach loopback.
    let strict = flows_app(false).await;
    let target = MockVendor::start().await;
    target.default_reply(Reply::text(200, "ok"));
    twilio_account(&strict).await;
    let flow = import(&strict, studio_slack_flow(&target.url)).await;
    post_twilio(&strict, &params, &signature::twilio("twilio_token", &url, &params)).await;
    let run = finished_run(&strict, &flow).await;
    assert_eq!(run["steps"][1]["event"], "failed");
    assert!(run["steps"][1]["error"].as_str().unwrap().contains("private address"), "{run}");
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn forward_to_slack_in_one_step_optionally_only_the_code() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    twilio_account(&app).await;
    let r = app
        .admin(
            Method::POST,
            "/api/flow/forward-to-slack",
            Some(json!({"number": NUMBER, "webhook": slack.url, "redact": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let params = twilio_params("G-482913 is your Google verification code. Account ann@example.com");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await;
    let got = app.eventually("Slack to be called", || async { slack.last() }).await;
    assert_eq!(got.json(), json!({"text": "482913"}), "everything but the code is redacted");
}

#[tokio::test]
async fn a_flow_that_loops_is_stopped_after_its_step_limit() {
    let app = flows_app(false).await;
    twilio_account(&app).await;
    let def = json!({
        "description": "loops",
        "initial_state": "Trigger",
        "states": [
            {"name": "Trigger", "type": "trigger", "properties": {}, "transitions": [{"event": "incomingMessage", "next": "spin"}]},
            {"name": "spin", "type": "set-variables", "properties": {"variables": [{"key": "n", "value": "1"}]},
             "transitions": [{"event": "next", "next": "spin"}]}
        ]
    });
    let flow = import(&app, def).await;
    let params = twilio_params("hello");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    assert_eq!(post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await.status, 200);
    let run = finished_run(&app, &flow).await;
    assert_eq!(run["status"], "failed");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), tessera_core::flows::MAX_STEPS + 1, "the limit, then the reason");
    assert_eq!(steps.last().unwrap()["error"], "more than 100 steps: the flow loops");
}

/// The flows service scopes every read to the tenant asking: another tenant's key finds
/// neither the flow, nor its runs, nor a run of it, and cannot delete or rebind it.
#[tokio::test]
async fn another_tenants_flows_and_runs_are_not_found() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    twilio_account(&app).await;
    let flow = import(&app, studio_slack_flow(&slack.url)).await;
    let params = twilio_params("hello");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    let r = post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let run = finished_run(&app, &flow).await["id"].as_str().expect("a run").to_owned();

    let (_, key, _) = app.second_tenant().await;
    let as_second =
        |m: Method, path: String| app.client.request(m, app.url(&path)).header("Authorization", key.expose());
    for path in [format!("/api/flow/{flow}"), format!("/api/flow/{flow}/runs"), format!("/api/flow/run/{run}")] {
        let r = app.send(as_second(Method::GET, path.clone())).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    assert_eq!(app.send(as_second(Method::GET, "/api/flow".into())).await.json["flows"], json!([]));
    let deleted = app.send(as_second(Method::DELETE, format!("/api/flow/{flow}"))).await;
    assert_eq!(deleted.status, 404, "{}", deleted.text);
    let bind = as_second(Method::POST, format!("/api/flow/{flow}/number")).json(&json!({"number": "+15550001111"}));
    assert_eq!(app.send(bind).await.status, 404);
    assert_eq!(app.admin(Method::GET, &format!("/api/flow/{flow}"), None).await.status, 200, "still there");
}

#[tokio::test]
async fn runs_interrupted_by_a_restart_are_marked_failed() {
    let first = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    let flow = import(&first, studio_slack_flow(&slack.url)).await;
    let tenant = first.state.identity.tenant().id;
    let stored = first.state.flows.get(tenant, &flow).await.unwrap().unwrap();
    let msg = serde_json::Map::from_iter([("Body".to_owned(), json!("x")), ("From".to_owned(), json!("+15557654321"))]);
    let run = first.state.flows.start_run(&stored, &msg, first.now()).await.unwrap();
    let url = first.database_url.clone();
    drop(first);

    // Within its lease the run may belong to a live instance; past it, it is abandoned.
    let clock = std::sync::Arc::new(tessera_testkit::FakeClock::new());
    let second = app().database_url(&url).clock(clock.clone()).spawn().await;
    let r = second.admin(Method::GET, &format!("/api/flow/run/{}", run.sid), None).await;
    assert_eq!(r.json["run"]["status"], "running", "the lease has not run out");
    drop(second);
    clock.advance(tessera_core::service::flows::RUN_LEASE + Duration::from_secs(1));
    let third = app().database_url(&url).clock(clock).spawn().await;
    let r = third.admin(Method::GET, &format!("/api/flow/run/{}", run.sid), None).await;
    assert_eq!(r.json["run"]["status"], "failed");
    assert_eq!(r.json["run"]["steps"][0]["error"], "interrupted: the instance running it stopped");
    assert!(slack.requests().is_empty());
}

#[tokio::test]
async fn a_second_instance_leaves_the_first_ones_live_runs_alone() {
    let clock = std::sync::Arc::new(tessera_testkit::FakeClock::new());
    let first = app()
        .backend(tessera_store::Backend::Postgres)
        .clock(clock.clone())
        .configure(|c| {
            c.messaging.public_url = Some(PUBLIC.into());
            c.flow_http_allowlist = vec!["127.0.0.1".into()];
        })
        .spawn()
        .await;
    let slack = MockVendor::start().await;
    // Slow enough that the run is mid-step while the second instance starts.
    slack.default_reply(Reply::text(200, "ok").after(Duration::from_secs(3)));
    twilio_account(&first).await;
    let flow = import(&first, studio_slack_flow(&slack.url)).await;
    let params = twilio_params("hello");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    assert_eq!(post_twilio(&first, &params, &signature::twilio("twilio_token", &url, &params)).await.status, 200);
    first.eventually("Slack to be called", || async { slack.last() }).await;

    let second = app().database_url(&first.database_url).clock(clock).spawn().await;
    let live = runs(&second, &flow).await;
    assert_eq!(live[0]["status"], "running", "a rolling restart's new instance fails no live run: {live:?}");
    let done = finished_run(&first, &flow).await;
    assert_eq!(done["status"], "ended", "{done}");
}

#[tokio::test]
async fn http_requests_send_forms_and_headers() {
    let app = flows_app(true).await;
    let api = MockVendor::start().await;
    api.default_reply(Reply::text(201, "created"));
    twilio_account(&app).await;
    let def = json!({
        "description": "form post",
        "initial_state": "Trigger",
        "states": [
            {"name": "Trigger", "type": "trigger", "properties": {}, "transitions": [{"event": "incomingMessage", "next": "post"}]},
            {"name": "post", "type": "make-http-request",
             "properties": {"method": "POST", "url": format!("{}/ticket", api.url), "content_type": "application/x-www-form-urlencoded;charset=utf-8",
                            "parameters": [{"key": "from", "value": "{{trigger.message.From}}"}, {"key": "text", "value": "{{trigger.message.Body}}"}],
                            "headers": [{"key": "X-Source", "value": "tessera-{{flow.channel.address}}"}]},
             "transitions": [{"event": "success"}, {"event": "failed"}]}
        ]
    });
    let flow = import(&app, def).await;
    let params = twilio_params("a & b = c");
    post_twilio(&app, &params, &signature::twilio("twilio_token", &format!("{PUBLIC}/webhooks/twilio/sms"), &params))
        .await;
    assert_eq!(finished_run(&app, &flow).await["steps"][1]["httpStatus"], 201);
    let req = api.last().unwrap();
    assert!(req.header("content-type").unwrap().starts_with("application/x-www-form-urlencoded"));
    assert_eq!(
        req.form(),
        vec![("from".to_owned(), "+15557654321".to_owned()), ("text".to_owned(), "a & b = c".to_owned())]
    );
    assert_eq!(req.header("x-source").as_deref(), Some("tessera-+15550001111"));
}

#[tokio::test]
async fn twilio_signatures_cover_the_url_but_not_the_order_of_the_fields() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    twilio_account(&app).await;
    let flow = import(&app, studio_slack_flow(&slack.url)).await;
    let params = twilio_params("Hello");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    // Signed by the official twilio package, not by our own code.
    let for_other_url =
        crate::sdk::twilio_signature("twilio_token", "https://elsewhere.example.com/webhooks/twilio/sms", &params)
            .await;
    assert_eq!(post_twilio(&app, &params, &for_other_url).await.status, 403, "signed for another URL");
    let with_query = crate::sdk::twilio_signature("twilio_token", &format!("{url}?x=1"), &params).await;
    assert_eq!(post_twilio(&app, &params, &with_query).await.status, 403, "signed for another query");
    assert!(runs(&app, &flow).await.is_empty());

    let genuine = crate::sdk::twilio_signature("twilio_token", &url, &params).await;
    let mut reordered = params.clone();
    reordered.reverse();
    let r = post_twilio(&app, &reordered, &genuine).await;
    assert_eq!(r.status, 200, "the same fields in another order: {}", r.text);
    assert_eq!(finished_run(&app, &flow).await["trigger"]["message"]["Body"], "Hello");
}

/// `X-Tessera-Signature` as the README documents it, computed here rather than by
/// Tessera's own signing code: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn generic_signature(secret: &str, t: i64, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

#[tokio::test]
async fn the_generic_inbound_webhook_checks_its_signature_and_timestamp() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    let r = app
        .admin(
            Method::POST,
            "/api/messenger",
            Some(json!({"messenger": {"type": "Generic", "name": "g", "url": slack.url,
                "signingSecret": "generic_secret", "channels": []}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let flow = import(&app, studio_slack_flow(&format!("{}/services/T/B/X", slack.url))).await;
    let post = |body: &[u8], sig: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/webhooks/generic/sms"))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = sig {
            req = req.header("X-Tessera-Signature", sig);
        }
        app.send(req)
    };
    let body = json!({"from": "+15557654321", "to": NUMBER, "body": "Code 314159"}).to_string();
    let body = body.as_bytes();
    let now = tessera_server::clock::Clock::now(app.clock.as_ref()).seconds();

    assert_eq!(post(body, None).await.status, 403, "unsigned");
    let tampered = json!({"from": "+15557654321", "to": NUMBER, "body": "Send money"}).to_string();
    assert_eq!(
        post(tampered.as_bytes(), Some(generic_signature("generic_secret", now, body))).await.status,
        403,
        "the body was changed after signing"
    );
    assert_eq!(post(body, Some(generic_signature("other_secret", now, body))).await.status, 403, "another secret");
    let mut moved = generic_signature("generic_secret", now, body);
    moved = moved.replacen(&format!("t={now}"), &format!("t={}", now - 1), 1);
    assert_eq!(post(body, Some(moved)).await.status, 403, "the signed time was changed");
    assert_eq!(
        post(body, Some(generic_signature("generic_secret", now - 301, body))).await.status,
        403,
        "signed 301 s ago"
    );
    assert_eq!(
        post(body, Some(generic_signature("generic_secret", now + 301, body))).await.status,
        403,
        "signed 301 s ahead"
    );
    assert!(runs(&app, &flow).await.is_empty(), "nothing ran for refused requests");
    assert!(slack.requests().is_empty());

    let ok = post(body, Some(generic_signature("generic_secret", now - 299, body))).await;
    assert_eq!(ok.status, 204, "signed 299 s ago: {}", ok.text);
    let run = finished_run(&app, &flow).await;
    assert_eq!(run["trigger"]["message"]["Body"], "Code 314159");
    assert_eq!(run["trigger"]["message"]["From"], "+15557654321");
    let got = app.eventually("Slack to be called", || async { slack.last() }).await;
    assert_eq!(got.json(), json!({"text": "Code 314159"}));
    assert_eq!(runs(&app, &flow).await.len(), 1);
}

/// The SQLite file and its write-ahead log, for looking for what must not be there.
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let file = app.database_url.trim_start_matches("sqlite://").to_owned();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn flow_definitions_are_sealed_at_rest() {
    let app = flows_app(true).await;
    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    twilio_account(&app).await;
    let webhook = format!("{}/services/T0SECRET/B0SECRET/XOXB-WEBHOOK-SECRET", slack.url);
    let mut definition = studio_slack_flow(&webhook);
    definition["states"][1]["properties"]["headers"] =
        json!([{"key": "Authorization", "value": "Bearer header-secret-42"}]);
    let flow = import(&app, definition).await;
    let recipe = app
        .admin(
            Method::POST,
            "/api/flow/forward-to-slack",
            Some(json!({"number": "+15550002222", "webhook": "https://hooks.slack.com/services/T1/B1/RECIPE-SECRET"})),
        )
        .await;
    assert_eq!(recipe.status, 200, "{}", recipe.text);

    let bytes = database_bytes(&app);
    for secret in ["XOXB-WEBHOOK-SECRET", "header-secret-42", "RECIPE-SECRET"] {
        assert!(!holds(&bytes, secret), "{secret} is in the database in the clear");
    }
    // Admins still read what they imported, and the flow still runs with it.
    let got = app.admin(Method::GET, &format!("/api/flow/{flow}"), None).await;
    assert_eq!(got.json["flow"]["definition"]["states"][1]["properties"]["url"], webhook.as_str());
    let listed = app.admin(Method::GET, "/api/flow", None).await;
    assert!(listed.text.contains("RECIPE-SECRET"), "{}", listed.text);
    let params = twilio_params("hello");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    assert_eq!(post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await.status, 200);
    let got = app.eventually("Slack to be called", || async { slack.last() }).await;
    assert_eq!(got.header("authorization").as_deref(), Some("Bearer header-secret-42"));
}

#[tokio::test]
async fn numbers_move_between_flows_only_when_asked() {
    let app = flows_app(true).await;
    let def = || studio_slack_flow("https://hooks.slack.com/services/T/B/X");
    let a = app.admin(Method::POST, "/api/flow", Some(json!({"flow": def(), "number": NUMBER}))).await;
    assert_eq!((a.status, &a.json["flow"]["numbers"]), (200, &json!([NUMBER])), "{}", a.text);
    let a = a.json["flow"]["id"].as_str().unwrap().to_owned();

    let taken = app.admin(Method::POST, "/api/flow", Some(json!({"flow": def(), "number": NUMBER}))).await;
    assert_eq!((taken.status, &taken.json["fieldErrors"]["number"][0]["code"]), (400, &json!("[inUse]number")));
    assert!(taken.text.contains(&a), "names the flow that has it: {}", taken.text);
    let bad = app.admin(Method::POST, "/api/flow", Some(json!({"flow": def(), "number": "12"}))).await;
    assert_eq!(bad.json["fieldErrors"]["number"][0]["code"], "[invalid]number");
    let all = app.admin(Method::GET, "/api/flow", None).await;
    assert_eq!(all.json["flows"].as_array().unwrap().len(), 1, "refused imports leave no flow: {}", all.text);

    let c = app.admin(Method::POST, "/api/flow", Some(def())).await.json["flow"]["id"].as_str().unwrap().to_owned();
    let bind_path = format!("/api/flow/{c}/number");
    let bind = |body: serde_json::Value| app.admin(Method::POST, &bind_path, Some(body));
    let refused = bind(json!({"number": NUMBER})).await;
    assert_eq!(refused.json["fieldErrors"]["number"][0]["code"], "[inUse]number");
    assert_eq!(app.admin(Method::GET, &format!("/api/flow/{a}"), None).await.json["flow"]["numbers"], json!([NUMBER]));
    assert_eq!(bind(json!({"number": NUMBER, "moveNumber": true})).await.status, 200);
    assert_eq!(bind(json!({"number": NUMBER})).await.status, 200, "binding it to the flow that has it is no move");
    assert_eq!(app.admin(Method::GET, &format!("/api/flow/{a}"), None).await.json["flow"]["numbers"], json!([]));
    let numbers = app.admin(Method::GET, "/api/flow/numbers", None).await;
    assert_eq!(numbers.json, json!({"numbers": [{"number": NUMBER, "flowId": c}]}));
}

/// A number bound to a second tenant's flow is that tenant's: its Twilio credentials
/// prove the inbound message genuine, its flow runs, and the flow's reply goes through
/// its messengers. A status callback for its messenger is checked with its token.
#[tokio::test]
async fn a_number_bound_to_a_second_tenants_flow_is_that_tenants() {
    let app = flows_app(false).await;
    let (_, key, _) = app.second_tenant().await;
    let as_second = |m: Method, path: &str, body: Value| {
        app.client.request(m, app.url(path)).header("Authorization", key.expose()).json(&body)
    };
    let twilio = json!({"messenger": {"type": "Twilio", "name": "t2", "accountSID": "AC999",
                                      "authToken": "second_token", "fromPhoneNumber": NUMBER, "channels": []}});
    let twilio = app.send(as_second(Method::POST, "/api/messenger", twilio)).await;
    assert_eq!(twilio.status, 200, "{}", twilio.text);
    let sender = MockVendor::start().await;
    sender.default_reply(Reply::json(200, json!({"messageId": "t2-reply"})));
    let generic = json!({"messenger": {"type": "Generic", "name": "t2 sms", "url": format!("{}/hook", sender.url),
                                       "signingSecret": "t2-secret"}});
    assert_eq!(app.send(as_second(Method::POST, "/api/messenger", generic)).await.status, 200);
    let def = json!({
        "description": "Reply",
        "initial_state": "Trigger",
        "states": [
            {"name": "Trigger", "type": "trigger", "properties": {}, "transitions": [{"event": "incomingMessage", "next": "reply"}]},
            {"name": "reply", "type": "send-message", "properties": {"body": "Got it", "to": "{{contact.channel.address}}"},
             "transitions": [{"event": "sent"}, {"event": "failed"}]}
        ]
    });
    let flow = app.send(as_second(Method::POST, "/api/flow", def)).await;
    assert_eq!(flow.status, 200, "{}", flow.text);
    let flow = flow.json["flow"]["id"].as_str().unwrap().to_owned();
    let bound = app.send(as_second(Method::POST, &format!("/api/flow/{flow}/number"), json!({"number": NUMBER}))).await;
    assert_eq!(bound.status, 200, "{}", bound.text);

    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    let mut params = twilio_params("hello");
    params[1].1 = "AC999".into();
    let forged = post_twilio(&app, &params, &signature::twilio("twilio_token", &url, &params)).await;
    assert_eq!(forged.status, 403, "another token does not sign for the second tenant's number");
    let r = post_twilio(&app, &params, &signature::twilio("second_token", &url, &params)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let run = app
        .eventually("the run to finish", || async {
            let runs = app.send(as_second(Method::GET, &format!("/api/flow/{flow}/runs"), json!(null))).await;
            runs.json["runs"][0].clone().as_object().filter(|r| r["status"] != "running").cloned()
        })
        .await;
    assert_eq!(run["status"], "ended", "{run:?}");
    let reply = sender.last().expect("the reply went out").json();
    assert_eq!((reply["recipient"].as_str(), reply["text"].as_str()), (Some("+15557654321"), Some("Got it")));
    assert!(app.last_message_to("+15557654321").is_none(), "not through the first tenant's messengers");

    let id = twilio.json["messenger"]["id"].as_str().unwrap();
    let status_url = format!("{PUBLIC}/webhooks/twilio/status/{id}");
    let status = [("MessageSid", "SMx"), ("MessageStatus", "delivered")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    let callback = |sig: String| {
        app.client
            .post(app.url(&format!("/webhooks/twilio/status/{id}")))
            .header("X-Twilio-Signature", sig)
            .form(&status)
    };
    let wrong = app.send(callback(signature::twilio("twilio_token", &status_url, &status))).await;
    assert_eq!(wrong.status, 403);
    let right = app.send(callback(signature::twilio("second_token", &status_url, &status))).await;
    assert_eq!(right.status, 204, "the second tenant's messenger's token signs its callbacks: {}", right.text);
}
