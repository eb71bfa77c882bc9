//! The actions engine as an action sees it: Auth0-shaped code in, recorded api calls
//! and logs out; the limits (time, memory, stack, the queue) end a bad action with a
//! clear failure and leave the engine serving the next; `fetch`, `axios` and the
//! vendor modules speak HTTP to a local stand-in and never to a private address that
//! is not allow-listed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_core::actions::{Execution, LogLevel, ScriptFailure, ScriptRunner, Trigger};
use tessera_core::secret::Secret;
use tessera_scripts::{Engine, Settings, VendorUrls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request the stand-in received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server that records each request and answers the next queued
/// `(status, body)` (or 200 `{"ok":true}`).
struct StandIn {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl StandIn {
    async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers: Arc<Mutex<VecDeque<(u16, String)>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (s, a) = (seen.clone(), answers.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (s, a) = (s.clone(), a.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let (method, path) = (first.next().unwrap_or_default(), first.next().unwrap_or_default());
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .collect();
                    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                    s.lock().unwrap().push(Seen { method: method.into(), path: path.into(), headers, body });
                    let (status, answer) = a.lock().unwrap().pop_front().unwrap_or((200, "{\"ok\":true}".to_owned()));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        StandIn { port, seen, answers }
    }

    fn url(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    fn answer(&self, status: u16, body: &str) {
        self.answers.lock().unwrap().push_back((status, body.to_owned()));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn settings(stand_in: Option<&StandIn>) -> Settings {
    let base = stand_in.map_or("https://example.invalid".to_owned(), StandIn::url);
    Settings {
        timeout: Duration::from_millis(1500),
        memory_limit: 16 * 1024 * 1024,
        http_allowlist: if stand_in.is_some() { vec!["localhost".into()] } else { Vec::new() },
        vendors: VendorUrls { twilio_api: base.clone(), twilio_verify: base.clone(), plivo_api: base },
        ..Settings::default()
    }
}

fn post_login(code: &str) -> Execution {
    Execution {
        trigger: Trigger::PostLogin,
        handler: "onExecutePostLogin",
        code: Arc::from(code),
        event: json!({
            "user": {"user_id": "u1", "email": "ann@example.com", "app_metadata": {"plan": "gold"}},
            "request": {"ip": "203.0.113.7", "query": {}},
            "transaction": {"protocol": "oidc-basic-profile"},
        }),
        secrets: vec![("API_KEY".into(), Secret::new("s3cr3t-value"))],
        api_data: json!({"canRedirect": true, "issuer": "https://tessera.example", "state": "st-1"}),
    }
}

async fn run(engine: &Engine, code: &str) -> Result<tessera_core::actions::Executed, ScriptFailure> {
    engine.run(post_login(code)).await
}

fn names(executed: &tessera_core::actions::Executed) -> Vec<&str> {
    executed.calls.iter().map(|c| c.name.as_str()).collect()
}

#[tokio::test]
async fn an_auth0_action_runs_with_async_await_and_its_api_calls_are_recorded_in_order() {
    let engine = Engine::start(settings(None)).unwrap();
    let code = r#"
        exports.onExecutePostLogin = async (event, api) => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          if (event.user.app_metadata.plan !== 'gold') return;
          api.idToken.setCustomClaim('https://example.com/plan', event.user.app_metadata.plan);
          api.accessToken.setCustomClaim('https://example.com/ip', event.request.ip);
          api.transaction.setMetadata('seen', true);
          api.authentication.challengeWith({ type: 'phone', options: { preferredMethod: 'sms' } });
          console.log('key is', event.secrets.API_KEY, 'for', event.user.email);
        };
    "#;
    let done = run(&engine, code).await.unwrap();
    assert_eq!(
        names(&done),
        [
            "idToken.setCustomClaim",
            "accessToken.setCustomClaim",
            "transaction.setMetadata",
            "authentication.challengeWith"
        ]
    );
    assert_eq!(done.calls[0].args, [json!("https://example.com/plan"), json!("gold")]);
    assert_eq!(done.calls[3].args, [json!({"type": "phone", "options": {"preferredMethod": "sms"}})]);
    assert_eq!(done.logs.len(), 1);
    assert_eq!(done.logs[0].message, "key is [REDACTED] for ann@example.com", "secrets never reach the logs");
    assert!(done.took >= Duration::from_millis(20));
}

#[tokio::test]
async fn the_cache_answers_what_was_set_and_records_it_and_a_thrown_secret_is_redacted() {
    let engine = Engine::start(settings(None)).unwrap();
    let code = r#"exports.onExecutePostLogin = async (event, api) => {
        const before = api.cache.get('seen');
        api.cache.set('seen', 'yes', { ttl: 60000 });
        api.idToken.setCustomClaim('before', before === undefined ? 'none' : before.value);
        api.idToken.setCustomClaim('after', api.cache.get('seen').value);
    };"#;
    let done = run(&engine, code).await.unwrap();
    assert_eq!(names(&done), ["cache.set", "idToken.setCustomClaim", "idToken.setCustomClaim"]);
    assert_eq!(done.calls[0].args[..2], [json!("seen"), json!("yes")]);
    assert_eq!((done.calls[1].args[1].clone(), done.calls[2].args[1].clone()), (json!("none"), json!("yes")));
    let mut given = post_login(code);
    given.api_data["cache"] = json!({"seen": {"value": "earlier", "expires_at": 4_102_444_800_000_i64}});
    let done = engine.run(given).await.unwrap();
    assert_eq!(done.calls[1].args[1], json!("earlier"), "an entry the engine was given");

    let leaks = "exports.onExecutePostLogin = (event) => { throw new Error('key ' + event.secrets.API_KEY); };";
    let threw = run(&engine, leaks).await;
    assert!(matches!(&threw, Err(ScriptFailure::Threw { message, .. }) if message == "key [REDACTED]"), "{threw:?}");
}

#[tokio::test]
async fn each_execution_gets_a_fresh_context() {
    let engine = Engine::start(Settings { workers: 1, ..settings(None) }).unwrap();
    let code = r#"
        exports.onExecutePostLogin = async (event, api) => {
          if (globalThis.leftBehind) api.access.deny('saw the last run');
          globalThis.leftBehind = true;
          Object.prototype.polluted = 1;
        };
    "#;
    for _ in 0..3 {
        let done = run(&engine, code).await.unwrap();
        assert!(done.calls.is_empty(), "{:?}", done.calls);
    }
}

#[tokio::test]
async fn a_thrown_error_a_rejected_promise_and_a_missing_handler_fail_with_their_message() {
    let engine = Engine::start(settings(None)).unwrap();
    let threw = run(&engine, "exports.onExecutePostLogin = () => { throw new Error('no access for you'); };").await;
    assert!(matches!(&threw, Err(ScriptFailure::Threw { message, .. }) if message == "no access for you"), "{threw:?}");
    let rejected =
        run(&engine, "exports.onExecutePostLogin = async () => { await null; throw new TypeError('bad'); };").await;
    assert!(matches!(&rejected, Err(ScriptFailure::Threw { message, .. }) if message == "bad"), "{rejected:?}");
    let missing = run(&engine, "exports.somethingElse = () => {};").await;
    assert!(
        matches!(&missing, Err(ScriptFailure::Threw { message, .. }) if message.contains("onExecutePostLogin")),
        "{missing:?}"
    );
    let stuck = run(&engine, "exports.onExecutePostLogin = () => new Promise(() => {});").await;
    assert!(matches!(stuck, Err(ScriptFailure::NeverSettled { .. })), "{stuck:?}");
    let unknown = run(&engine, "exports.onExecutePostLogin = () => { require('fs'); };").await;
    assert!(
        matches!(&unknown, Err(ScriptFailure::Threw { message, .. }) if message.contains("Cannot find module 'fs'")),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn an_endless_loop_a_huge_allocation_and_deep_recursion_end_and_the_engine_serves_on() {
    let engine = Engine::start(Settings { workers: 1, ..settings(None) }).unwrap();
    let started = Instant::now();
    let looped = run(&engine, "exports.onExecutePostLogin = () => { while (true) {} };").await;
    assert!(matches!(looped, Err(ScriptFailure::TimedOut { .. })), "{looped:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "ended by the 1.5 s limit: {:?}", started.elapsed());
    // A loop that catches what stops it is stopped all the same.
    let caught =
        run(&engine, "exports.onExecutePostLogin = () => { for (;;) { try { while (true) {} } catch (e) {} } };").await;
    assert!(matches!(caught, Err(ScriptFailure::TimedOut { .. })), "{caught:?}");
    let waited = run(&engine, "exports.onExecutePostLogin = () => new Promise((r) => setTimeout(r, 60000));").await;
    assert!(matches!(waited, Err(ScriptFailure::TimedOut { .. })), "{waited:?}");

    let hog =
        "exports.onExecutePostLogin = () => { const all = []; while (true) all.push(new Array(100000).fill('x')); };";
    let hogged = run(&engine, hog).await;
    assert!(matches!(hogged, Err(ScriptFailure::OutOfMemory { .. })), "{hogged:?}");
    let string_hog = "exports.onExecutePostLogin = () => { let s = 'x'; while (true) s = s + s; };";
    let hogged = run(&engine, string_hog).await;
    assert!(matches!(hogged, Err(ScriptFailure::OutOfMemory { .. } | ScriptFailure::Threw { .. })), "{hogged:?}");

    let deep = run(&engine, "const f = (n) => f(n + 1) + 1; exports.onExecutePostLogin = () => { f(0); };").await;
    assert!(
        matches!(&deep, Err(ScriptFailure::Threw { message, .. }) if message.to_lowercase().contains("stack")),
        "{deep:?}"
    );

    let fine =
        run(&engine, "exports.onExecutePostLogin = async (e, api) => { api.access.deny('ok'); };").await.unwrap();
    assert_eq!(names(&fine), ["access.deny"], "the engine still runs actions after all that");
}

#[tokio::test]
async fn a_full_queue_refuses_work_instead_of_starting_more_engines() {
    // One thread, room for one more in the queue.
    let engine = Engine::start(Settings { workers: 1, queue: 1, ..settings(None) }).unwrap();
    let slow = "exports.onExecutePostLogin = () => new Promise((r) => setTimeout(r, 300));";
    let (a, b, c) = tokio::join!(run(&engine, slow), run(&engine, slow), run(&engine, slow));
    let busy = [&a, &b, &c].iter().filter(|r| matches!(r, Err(ScriptFailure::Busy))).count();
    let ran = [&a, &b, &c].iter().filter(|r| r.is_ok()).count();
    // One runs and at most one waits (which depends on whether the thread took the first
    // before the others arrived); the rest are refused at once, none fails otherwise.
    assert!(ran >= 1 && busy >= 1 && ran + busy == 3, "{a:?} {b:?} {c:?}");
}

#[tokio::test]
async fn fifty_executions_at_once_all_finish() {
    let engine = Arc::new(Engine::start(settings(None)).unwrap());
    let code =
        "exports.onExecutePostLogin = async (event, api) => { api.idToken.setCustomClaim('n', event.user.user_id); };";
    let runs = (0..50).map(|_| {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(post_login(code)).await })
    });
    for r in futures_join(runs).await {
        assert_eq!(names(&r.unwrap()), ["idToken.setCustomClaim"]);
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn logs_are_cut_to_256_characters_and_bounded_in_number() {
    let engine = Engine::start(settings(None)).unwrap();
    let code = "exports.onExecutePostLogin = () => { console.warn('y'.repeat(1000)); for (let i = 0; i < 500; i++) console.log(i); };";
    let done = run(&engine, code).await.unwrap();
    assert_eq!(done.logs[0].level, LogLevel::Warn);
    assert_eq!(done.logs[0].message.chars().count(), 256);
    assert!(done.logs.len() <= 102, "{}", done.logs.len());
    assert!(done.logs.last().unwrap().message.contains("not kept"));
}

#[tokio::test]
async fn crypto_hashes_as_node_does() {
    let engine = Engine::start(settings(None)).unwrap();
    let code = r#"
        const crypto = require('crypto');
        exports.onExecutePostLogin = async (event, api) => {
          api.idToken.setCustomClaim('sha256', crypto.createHash('sha256').update('abc').digest('hex'));
          api.idToken.setCustomClaim('hmac', crypto.createHmac('sha256', 'key').update('The quick brown fox jumps over the lazy dog').digest('hex'));
          api.idToken.setCustomClaim('b64', crypto.createHash('sha1').update('abc').digest('base64'));
          api.idToken.setCustomClaim('uuid', crypto.randomUUID());
          api.idToken.setCustomClaim('bytes', crypto.randomBytes(16).toString('hex'));
          api.idToken.setCustomClaim('buffer', Buffer.from('héllo').toString('base64'));
        };
    "#;
    let done = run(&engine, code).await.unwrap();
    let claim = |i: usize| done.calls[i].args[1].as_str().unwrap().to_owned();
    assert_eq!(claim(0), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(claim(1), "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    assert_eq!(claim(2), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    assert_eq!(claim(3).len(), 36);
    assert_eq!(claim(4).len(), 32);
    assert_eq!(claim(5), "aMOpbGxv");
}

#[tokio::test]
async fn redirect_tokens_round_trip_and_a_tampered_one_is_refused() {
    let engine = Engine::start(settings(None)).unwrap();
    let encode = r#"exports.onExecutePostLogin = async (event, api) => {
        const token = api.redirect.encodeToken({ secret: event.secrets.API_KEY, payload: { step: 'register' } });
        api.redirect.sendUserTo('https://partner.example/register', { query: { session_token: token } });
    };"#;
    let done = run(&engine, encode).await.unwrap();
    assert_eq!(names(&done), ["redirect.sendUserTo"]);
    let token = done.calls[0].args[1]["query"]["session_token"].as_str().unwrap().to_owned();

    let validate = r#"exports.onContinuePostLogin = async (event, api) => {
        const p = api.redirect.validateToken({ secret: event.secrets.API_KEY });
        api.idToken.setCustomClaim('step', p.step);
        api.idToken.setCustomClaim('sub', p.sub);
    };"#;
    let back = |t: &str| {
        let mut ex = post_login(validate);
        ex.handler = "onContinuePostLogin";
        ex.event["request"]["query"] = json!({ "session_token": t });
        ex
    };
    let ok = engine.run(back(&token)).await.unwrap();
    assert_eq!(ok.calls[0].args[1], json!("register"));
    assert_eq!(ok.calls[1].args[1], json!("u1"));

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replace('A', "B");
    let tampered = engine.run(back(&parts.join("."))).await;
    assert!(matches!(&tampered, Err(ScriptFailure::Threw { .. })), "{tampered:?}");
    let mut other_state = back(&token);
    other_state.api_data["state"] = json!("another sign-in");
    let replayed = engine.run(other_state).await;
    assert!(
        matches!(&replayed, Err(ScriptFailure::Threw { message, .. }) if message.contains("not issued for this sign-in")),
        "{replayed:?}"
    );
}

#[tokio::test]
async fn fetch_and_axios_reach_an_allow_listed_stand_in_and_never_a_private_address() {
    let stand_in = StandIn::start().await;
    let engine = Engine::start(settings(Some(&stand_in))).unwrap();
    stand_in.answer(200, r#"{"score": 7}"#);
    let code = format!(
        r#"const axios = require('axios');
        exports.onExecutePostLogin = async (event, api) => {{
          const r = await fetch('{base}/risk?u=' + event.user.user_id, {{ headers: {{ 'x-key': event.secrets.API_KEY }} }});
          const body = await r.json();
          api.idToken.setCustomClaim('score', body.score);
          const posted = await axios.post('{base}/audit', {{ user: event.user.email }});
          api.idToken.setCustomClaim('status', posted.status);
          try {{ await axios.get('{base}/missing'); }} catch (e) {{ api.idToken.setCustomClaim('failed', e.response.status); }}
        }};"#,
        base = stand_in.url()
    );
    stand_in.answer(201, r#"{"saved": true}"#);
    stand_in.answer(404, r#"{"error": "nope"}"#);
    let done = run(&engine, &code).await.unwrap();
    let claims: Vec<&Value> = done.calls.iter().map(|c| &c.args[1]).collect();
    assert_eq!(claims, [&json!(7), &json!(201), &json!(404)]);
    let seen = stand_in.seen();
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("GET", "/risk?u=u1"));
    assert_eq!(seen[0].header("x-key"), Some("s3cr3t-value"));
    assert_eq!((seen[1].method.as_str(), seen[1].path.as_str()), ("POST", "/audit"));
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert_eq!(serde_json::from_str::<Value>(&seen[1].body).unwrap(), json!({"user": "ann@example.com"}));

    // Without the allow-list, loopback and the cloud metadata address are refused.
    let guarded = Engine::start(settings(None)).unwrap();
    for url in [stand_in.url(), "http://127.0.0.1:9/".to_owned(), "http://169.254.169.254/latest/meta-data/".to_owned()]
    {
        let code = format!("exports.onExecutePostLogin = async () => {{ await fetch('{url}'); }};");
        let refused = run(&guarded, &code).await;
        assert!(
            matches!(&refused, Err(ScriptFailure::Threw { message, .. }) if message.contains("private address")),
            "{url}: {refused:?}"
        );
    }
    assert_eq!(stand_in.seen().len(), 3, "nothing more reached the stand-in");
}

#[tokio::test]
async fn the_twilio_and_plivo_modules_speak_the_vendors_rest_apis() {
    let stand_in = StandIn::start().await;
    let engine = Engine::start(settings(Some(&stand_in))).unwrap();
    stand_in.answer(201, r#"{"sid": "SM1", "status": "queued", "date_created": "now"}"#);
    stand_in.answer(200, r#"{"sid": "VE1", "status": "approved"}"#);
    stand_in.answer(400, r#"{"code": 60200, "message": "Invalid parameter", "more_info": "https://www.twilio.com/docs/errors/60200", "status": 400}"#);
    stand_in.answer(202, r#"{"api_id": "a1", "message": "message(s) queued", "message_uuid": ["m1"]}"#);
    let code = r#"
        const twilio = require('twilio');
        const plivo = require('plivo');
        exports.onExecutePostLogin = async (event, api) => {
          const client = twilio('AC123', event.secrets.API_KEY);
          const m = await client.messages.create({ to: '+15550001111', from: '+15550002222', body: 'Your code is 123456' });
          api.idToken.setCustomClaim('message', m.sid + ' ' + m.status + ' ' + m.dateCreated);
          const v = await new twilio.Twilio('AC123', event.secrets.API_KEY).verify.v2.services('VA1')
            .verifications('+15550001111').update({ status: 'approved' });
          api.idToken.setCustomClaim('verification', v.status);
          try {
            await client.verify.v2.services('VA1').verificationChecks.create({ to: '+1', code: '1' });
          } catch (e) {
            api.idToken.setCustomClaim('error', e.status + ' ' + e.code + ' ' + e.message);
          }
          const p = await new plivo.Client('MA123', 'plivo-token').messages.create({ src: '+15550002222', dst: '+15550001111', text: 'hi' });
          api.idToken.setCustomClaim('plivo', p.messageUuid[0]);
        };
    "#;
    let done = run(&engine, code).await.unwrap();
    let claims: Vec<&Value> = done.calls.iter().map(|c| &c.args[1]).collect();
    assert_eq!(
        claims,
        [&json!("SM1 queued now"), &json!("approved"), &json!("400 60200 Invalid parameter"), &json!("m1")]
    );
    let seen = stand_in.seen();
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    };
    assert_eq!(seen[0].path, "/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(seen[0].header("authorization"), Some(basic("AC123", "s3cr3t-value").as_str()));
    assert_eq!(seen[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = serde_urlencoded_pairs(&seen[0].body);
    assert_eq!(
        form,
        [
            ("To".into(), "+15550001111".into()),
            ("From".into(), "+15550002222".into()),
            ("Body".into(), "Your code is 123456".into())
        ]
    );
    assert_eq!(seen[1].path, "/v2/Services/VA1/Verifications/+15550001111", "the + kept, as Twilio's clients send it");
    assert_eq!(seen[1].body, "Status=approved");
    assert_eq!(seen[2].path, "/v2/Services/VA1/VerificationCheck");
    assert_eq!(seen[3].path, "/v1/Account/MA123/Message/");
    assert_eq!(seen[3].header("authorization"), Some(basic("MA123", "plivo-token").as_str()));
    assert_eq!(
        serde_json::from_str::<Value>(&seen[3].body).unwrap(),
        json!({"src": "+15550002222", "dst": "+15550001111", "text": "hi"})
    );
}

fn serde_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                let mut out = Vec::new();
                let bytes = s.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect()
}

#[tokio::test]
async fn deploying_checks_syntax_exports_and_modules() {
    let engine = Engine::start(settings(None)).unwrap();
    let ok = "exports.onExecutePostLogin = async (event, api) => {};";
    assert_eq!(engine.check(Trigger::PostLogin, ok).await, Ok(()));

    let broken = "exports.onExecutePostLogin = async (event, api) => {\n  const x = ;\n};";
    let p = engine.check(Trigger::PostLogin, broken).await.unwrap_err();
    assert!(p.message.starts_with("SyntaxError"), "{p:?}");
    assert_eq!(p.line, Some(2), "{p:?}");
    assert!(p.column.is_some(), "{p:?}");

    let p = engine.check(Trigger::SendPhoneMessage, ok).await.unwrap_err();
    assert!(p.message.contains("onExecuteSendPhoneMessage"), "{p:?}");

    let p = engine
        .check(Trigger::PostLogin, "const lodash = require('lodash');\nexports.onExecutePostLogin = () => {};")
        .await
        .unwrap_err();
    assert!(p.message.contains("'lodash'") && p.message.contains("axios, crypto, plivo, twilio"), "{p:?}");
    assert_eq!(p.line, Some(1));

    let p = engine.check(Trigger::PostLogin, &"x".repeat(tessera_scripts::CODE_LIMIT + 1)).await.unwrap_err();
    assert!(p.message.contains("at most"), "{p:?}");

    let p = engine.check(Trigger::PostLogin, "while (true) {}").await.unwrap_err();
    assert!(!p.message.is_empty(), "loading that never ends is refused: {p:?}");
}
