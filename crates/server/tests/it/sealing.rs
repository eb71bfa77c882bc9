//! Everything sealed at rest, found by reading the schema itself: each column is
//! classified below, so a new column fails this test until someone says whether it holds
//! sealed values (and then `reseal` must cover it, which the test checks).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tessera_core::seal::{SealKey, Sealer};
use tessera_providers::signature;
use tessera_testkit::mock::Reply;
use tessera_testkit::{MockVendor, TEST_SEAL_KEY, TestApp, app};

/// Columns holding values sealed with the seal key: `tessera reseal` re-seals each.
const SEALED: &[&str] = &[
    "flow_runs.context",
    "flows.definition",
    "messengers.sealed_secrets",
    "signing_keys.private_der",
    "two_factor_methods.secret_sealed",
    "verifications.sealed_code",
    "voice_prompts.sealed_text",
    "sign_ins.enrol_key",
    "actions.secrets",
];

/// Keyed hashes (HMAC under a key derived from the seal key): not re-sealable, and
/// short-lived but for recovery codes, which `reseal` counts by key.
const KEYED_HASHES: &[&str] =
    &["recovery_codes.hash", "sign_ins.code_hash", "user_codes.hash", "verifications.code_hash"];

/// Everything else: nothing sealed in them (digests of tokens are plain SHA-256).
const PLAIN: &[&str] = &[
    "actions.id",
    "actions.tenant_id",
    "actions.name",
    "actions.trigger_id",
    "actions.trigger_version",
    "actions.runtime",
    "actions.code",
    "actions.dependencies",
    "actions.deployed_version_id",
    "actions.created_at",
    "actions.updated_at",
    "action_versions.id",
    "action_versions.action_id",
    "action_versions.number",
    "action_versions.code",
    "action_versions.dependencies",
    "action_versions.runtime",
    "action_versions.created_at",
    "action_bindings.tenant_id",
    "action_bindings.trigger_id",
    "action_bindings.position",
    "action_bindings.id",
    "action_bindings.action_id",
    "action_bindings.display_name",
    "action_bindings.created_at",
    "action_executions.id",
    "action_executions.tenant_id",
    "action_executions.trigger_id",
    "action_executions.status",
    "action_executions.results",
    "action_executions.created_at",
    "api_keys.id",
    "api_keys.tenant_id",
    "api_keys.digest",
    "api_keys.description",
    "api_keys.created_at",
    "applications.id",
    "applications.tenant_id",
    "applications.name",
    "applications.created_at",
    "applications.client_secret_digest",
    "applications.redirect_uris",
    "applications.mfa_policy",
    "applications.active",
    "audit_log.id",
    "audit_log.tenant_id",
    "audit_log.at",
    "audit_log.actor",
    "audit_log.event",
    "audit_log.user_id",
    "audit_log.ip",
    "audit_log.outcome",
    "audit_log.detail",
    "bootstrap.id",
    "bootstrap.tenant_id",
    "browser_sessions.digest",
    "browser_sessions.tenant_id",
    "browser_sessions.user_id",
    "browser_sessions.auth_time",
    "browser_sessions.amr",
    "browser_sessions.last_seen",
    "browser_sessions.expires_at",
    "deliveries.id",
    "deliveries.tenant_id",
    "deliveries.messenger_id",
    "deliveries.provider",
    "deliveries.recipient",
    "deliveries.channel",
    "deliveries.purpose",
    "deliveries.provider_message_id",
    "deliveries.status",
    "deliveries.error_code",
    "deliveries.error_message",
    "deliveries.attempts",
    "deliveries.price",
    "deliveries.price_unit",
    "deliveries.created_at",
    "deliveries.updated_at",
    "flow_numbers.number",
    "flow_numbers.tenant_id",
    "flow_numbers.flow_sid",
    "flow_runs.sid",
    "flow_runs.flow_sid",
    "flow_runs.status",
    "flow_runs.current_state",
    "flow_runs.steps",
    "flow_runs.created_at",
    "flow_runs.lease_until",
    "flow_runs.updated_at",
    "flows.sid",
    "flows.tenant_id",
    "flows.friendly_name",
    "flows.created_at",
    "fraud_blocks.id",
    "fraud_blocks.service_sid",
    "fraud_blocks.prefix",
    "fraud_blocks.reason",
    "fraud_blocks.created_at",
    "fraud_blocks.expires_at",
    "limit_locks.key",
    "login_failures.tenant_id",
    "login_failures.login_id",
    "login_failures.failures",
    "login_failures.window_started_at",
    "login_failures.locked_until",
    "message_sends.id",
    "message_sends.user_id",
    "message_sends.at",
    "messengers.id",
    "messengers.tenant_id",
    "messengers.kind",
    "messengers.name",
    "messengers.url",
    "messengers.settings",
    "messengers.channels",
    "messengers.priority",
    "messengers.country_codes",
    "messengers.preferred_country_codes",
    "messengers.created_at",
    "messengers.updated_at",
    "oauth_codes.digest",
    "oauth_codes.client_id",
    "oauth_codes.user_id",
    "oauth_codes.redirect_uri",
    "oauth_codes.code_challenge",
    "oauth_codes.nonce",
    "oauth_codes.scope",
    "oauth_codes.auth_time",
    "oauth_codes.amr",
    "oauth_codes.expires_at",
    "oauth_codes.used",
    "recovery_codes.user_id",
    "recovery_codes.created_at",
    "refresh_tokens.id",
    "refresh_tokens.tenant_id",
    "refresh_tokens.user_id",
    "refresh_tokens.application_id",
    "refresh_tokens.digest",
    "refresh_tokens.created_at",
    "refresh_tokens.expires_at",
    "refresh_tokens.revoked_at",
    "refresh_tokens.amr",
    "signing_keys.kid",
    "signing_keys.algorithm",
    "signing_keys.signer_for",
    "signing_keys.public_jwk",
    "signing_keys.created_at",
    "sign_ins.digest",
    "sign_ins.tenant_id",
    "sign_ins.application_id",
    "sign_ins.user_id",
    "sign_ins.methods",
    "sign_ins.stage",
    "sign_ins.stage_detail",
    "sign_ins.resume_digest",
    "sign_ins.return_to",
    "sign_ins.ip",
    "sign_ins.user_agent",
    "sign_ins.browser_digest",
    "sign_ins.device_digest",
    "sign_ins.script_state",
    "sign_ins.created_at",
    "sign_ins.expires_at",
    "sign_ins.failures",
    "sign_ins.spent",
    "sign_ins.code_method_id",
    "sign_ins.code_channel",
    "sign_ins.code_expires_at",
    "sign_ins.mfa_policy",
    "sign_ins.step_up",
    "sign_ins.enrol_phone",
    "tenants.id",
    "tenants.name",
    "tenants.created_at",
    "trust_tokens.digest",
    "trust_tokens.user_id",
    "trust_tokens.created_at",
    "trust_tokens.expires_at",
    "two_factor_methods.user_id",
    "two_factor_methods.id",
    "two_factor_methods.kind",
    "two_factor_methods.phone",
    "two_factor_methods.algorithm",
    "two_factor_methods.digits",
    "two_factor_methods.period",
    "two_factor_methods.last_step",
    "two_factor_methods.created_at",
    "user_codes.user_id",
    "user_codes.purpose",
    "user_codes.expires_at",
    "user_codes.failures",
    "users.id",
    "users.tenant_id",
    "users.email",
    "users.username",
    "users.username_lower",
    "users.mobile_phone",
    "users.first_name",
    "users.last_name",
    "users.data",
    "users.active",
    "users.password_hash",
    "users.created_at",
    "users.updated_at",
    "users.email_verified",
    "verifications.sid",
    "verifications.service_sid",
    "verifications.account_sid",
    "verifications.to_number",
    "verifications.channel",
    "verifications.status",
    "verifications.checks",
    "verifications.sends",
    "verifications.prefix",
    "verifications.country",
    "verifications.created_at",
    "verifications.updated_at",
    "verifications.expires_at",
    "verify_accounts.sid",
    "verify_accounts.tenant_id",
    "verify_accounts.token_digest",
    "verify_accounts.created_at",
    "verify_sends.id",
    "verify_sends.service_sid",
    "verify_sends.number",
    "verify_sends.prefix",
    "verify_sends.ip",
    "verify_sends.at",
    "verify_counts.service_sid",
    "verify_counts.kind",
    "verify_counts.value",
    "verify_counts.bucket_end",
    "verify_counts.n",
    "verify_services.sid",
    "verify_services.tenant_id",
    "verify_services.account_sid",
    "verify_services.friendly_name",
    "verify_services.code_length",
    "verify_services.custom_code_enabled",
    "verify_services.ttl_seconds",
    "verify_services.guard",
    "verify_services.created_at",
    "verify_services.updated_at",
    "voice_prompts.digest",
    "voice_prompts.expires_at",
];

const PUBLIC: &str = "https://tessera.example.com";
const NUMBER: &str = "+15550001111";

/// Every `table.column` of the schema.
async fn schema_columns(app: &TestApp) -> BTreeSet<String> {
    let sql = "SELECT m.name || '.' || p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
               WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'";
    let rows = tessera_store::testing::query_text(&app.database_url, sql).await.unwrap();
    rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect()
}

/// The columns holding any value sealed under the key `kid`.
async fn columns_sealed_under(app: &TestApp, columns: &BTreeSet<String>, kid: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for column in columns {
        let (table, name) = column.split_once('.').unwrap();
        let sql = format!("SELECT CAST({name} AS TEXT) FROM {table}");
        let rows = tessera_store::testing::query_text(&app.database_url, &sql).await.unwrap();
        if rows.iter().flatten().flatten().any(|v| v.contains(&format!("v1.{kid}."))) {
            found.insert(column.clone());
        }
    }
    found
}

/// A row in every sealed column: a TOTP secret, a messenger's credentials, a spoken code
/// waiting for Plivo, a Verify code, a flow and one of its runs (and the signing key).
async fn fill_every_sealed_column(app: &TestApp) -> (String, Vec<u8>) {
    let user = app.create_user("ann@example.com", "correct horse").await;
    let secret = b"12345678901234567890".to_vec();
    app.enable_authenticator(&user, &secret).await;

    let plivo = MockVendor::start().await;
    plivo.default_reply(Reply::json(202, json!({"api_id": "a", "message_uuid": ["pu-1"], "request_uuid": "call-1"})));
    let m = json!({"messenger": {"type": "Plivo", "name": "plivo", "url": plivo.url, "authId": "MA999",
                                 "authToken": "plivo_token_5678", "src": "+15550002222"}});
    assert_eq!(app.admin(Method::POST, "/api/messenger", Some(m)).await.status, 200);
    let twilio = json!({"messenger": {"type": "Twilio", "name": "t", "accountSID": "AC123", "authToken": "twilio_token",
                                      "fromPhoneNumber": NUMBER, "channels": []}});
    assert_eq!(app.admin(Method::POST, "/api/messenger", Some(twilio)).await.status, 200);
    let voice = json!({"userId": user, "mobilePhone": "+15554443232", "messageType": "Voice"});
    let r = app.admin(Method::POST, "/api/two-factor/send", Some(voice)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let account = app.admin(Method::POST, "/api/verify/account", None).await.json;
    let (sid, token) = (account["accountSid"].as_str().unwrap(), account["authToken"].as_str().unwrap());
    let verify =
        |path: &str, form: &[(&str, &str)]| app.client.post(app.url(path)).basic_auth(sid, Some(token)).form(form);
    let service =
        app.send(verify("/v2/Services", &[("FriendlyName", "Acme")])).await.json["sid"].as_str().unwrap().to_owned();
    let started = app
        .send(verify(&format!("/v2/Services/{service}/Verifications"), &[("To", "+15554443233"), ("Channel", "sms")]))
        .await;
    assert_eq!(started.status, 201, "{}", started.text);

    let slack = MockVendor::start().await;
    slack.default_reply(Reply::text(200, "ok"));
    let flow = crate::flows::studio_slack_flow(&format!("{}/services/T/B/X", slack.url));
    let flow = app.admin(Method::POST, "/api/flow", Some(flow)).await.json["flow"]["id"].as_str().unwrap().to_owned();
    app.admin(Method::POST, &format!("/api/flow/{flow}/number"), Some(json!({"number": NUMBER}))).await;
    let params = crate::flows::twilio_params("hello");
    let url = format!("{PUBLIC}/webhooks/twilio/sms");
    let sig = signature::twilio("twilio_token", &url, &params);
    let r = app
        .send(app.client.post(app.url("/webhooks/twilio/sms")).header("X-Twilio-Signature", sig).form(&params))
        .await;
    assert_eq!(r.status, 200);
    app.eventually("the run to finish", || async {
        let runs = app.admin(Method::GET, &format!("/api/flow/{flow}/runs"), None).await.json;
        (runs["runs"][0]["status"] == "ended").then_some(())
    })
    .await;
    // An action's secrets.
    let action = json!({"name": "a", "supported_triggers": [{"id": "post-login"}], "code": "",
                        "secrets": [{"name": "KEY", "value": "action-secret"}]});
    let r = app.admin(Method::POST, "/api/v2/actions/actions", Some(action)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // A sign-in waiting for a factor to be enrolled keeps the key its page shows.
    let application = app.state.identity.default_application().id.to_string();
    let required = crate::oidc::application(true, "Required");
    assert_eq!(app.admin(Method::PUT, &format!("/api/application/{application}"), Some(required)).await.status, 200);
    app.create_user("bob@example.com", "correct horse").await;
    let mut b = crate::forms::Browser::new(app);
    let first = b.get(&crate::oidc::authorize_url(&application, "")).await;
    let login = b.get(first.location.as_deref().unwrap()).await;
    let (csrf, signin) = (crate::forms::field(&login.text, "csrf"), crate::forms::field(&login.text, "signin"));
    let fields =
        [("csrf", csrf.as_str()), ("signin", &signin), ("login_id", "bob@example.com"), ("password", "correct horse")];
    let enrol = b.post("/login", &fields).await;
    assert!(enrol.text.contains("Add a second step"), "{}", enrol.text);
    (flow, secret)
}

#[tokio::test]
async fn every_sealed_column_is_known_and_resealed() {
    let first = app()
        .configure(|c| {
            c.messaging.public_url = Some(PUBLIC.into());
            c.flow_http_allowlist = vec!["127.0.0.1".into()];
        })
        .spawn()
        .await;
    let columns = schema_columns(&first).await;
    let known: BTreeSet<String> = SEALED.iter().chain(KEYED_HASHES).chain(PLAIN).map(|c| (*c).to_owned()).collect();
    let unclassified: Vec<&String> = columns.difference(&known).collect();
    assert!(
        unclassified.is_empty(),
        "classify these columns (sealed, keyed hash or plain) in this test: {unclassified:?}"
    );
    let gone: Vec<&String> = known.difference(&columns).collect();
    assert!(gone.is_empty(), "columns no longer in the schema: {gone:?}");

    let (flow, secret) = fill_every_sealed_column(&first).await;
    let sealed_now = columns_sealed_under(&first, &columns, "test").await;
    let sealed: BTreeSet<String> = SEALED.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(sealed_now, sealed, "sealed values are exactly where the list says, and every listed column has one");

    // Rotate: the new key seals, the old one only opens; reseal, then drop the old key.
    let new_key = SealKey::parse("next:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let sealer = Sealer::new(new_key.clone(), vec![SealKey::parse(TEST_SEAL_KEY).unwrap()]);
    let report = tessera_core::service::reseal(first.state.store.as_ref(), &sealer).await.unwrap();
    assert_eq!(report.resealed, 10, "one value in each sealed column, two messengers: {report:?}");
    assert_eq!(report.recovery_codes_on_old_keys.get("test"), Some(&10));
    assert!(columns_sealed_under(&first, &columns, "test").await.is_empty(), "nothing is left under the old key");
    assert_eq!(columns_sealed_under(&first, &columns, "next").await, sealed);
    let url = first.database_url.clone();
    drop(first);

    let only_new = app()
        .database_url(&url)
        .configure(move |c| {
            c.seal_key = Some(new_key);
            c.messaging.public_url = Some(PUBLIC.into());
        })
        .spawn()
        .await;
    let messengers = only_new.admin(Method::GET, "/api/messenger", None).await;
    assert_eq!(messengers.status, 200, "messenger credentials open under the new key: {}", messengers.text);
    let f = only_new.admin(Method::GET, &format!("/api/flow/{flow}"), None).await;
    assert_eq!(f.status, 200, "{}", f.text);
    let runs = only_new.admin(Method::GET, &format!("/api/flow/{flow}/runs"), None).await;
    assert_eq!(runs.json["runs"][0]["trigger"]["message"]["Body"], "hello", "{}", runs.text);
    only_new.clock.advance(Duration::from_secs(60));
    let login = only_new.login("ann@example.com", "correct horse").await;
    let two_factor_id = login.json["twoFactorId"].as_str().unwrap();
    let code = only_new.totp(&secret, 0);
    let ok = only_new.post_json("/api/two-factor/login", json!({"twoFactorId": two_factor_id, "code": code})).await;
    assert_eq!(ok.status, 200, "the TOTP secret opens under the new key: {}", ok.text);
}
