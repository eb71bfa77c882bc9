//! `login-actions`: password sign-ins with three post-login actions bound (one reads
//! `event`, one sets a claim, one `fetch`es a local stand-in), against the same server's
//! plain sign-ins in the same run: the p50 an action flow adds to one sign-in (measured
//! one at a time, where queueing behind argon2 does not hide it), throughput under load
//! with and without, and the server's memory with the engines busy.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::args::Args;
use crate::load::{Stats, run_load};
use crate::server::Target;
use crate::{create_users, print_stats};

const READS_EVENT: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  const methods = event.authentication.methods.map((m) => m.name).join(',');
  if (!event.user.email.endsWith('@example.com') || !methods.includes('pwd')) api.access.deny('unexpected');
};"#;

const SETS_CLAIM: &str = r#"exports.onExecutePostLogin = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/plan', event.user.app_metadata.plan || 'free');
};"#;

fn fetches(port: u16) -> String {
    format!(
        r#"exports.onExecutePostLogin = async (event, api) => {{
  const r = await fetch('http://127.0.0.1:{port}/risk?user=' + event.user.user_id);
  const body = await r.json();
  if (body.risk === 'high') api.access.deny('risky');
}};"#
    )
}

/// A risk service on loopback that always says "low".
async fn stand_in() -> Result<u16, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                let body = r#"{"risk":"low"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(port)
}

async fn admin(
    client: &reqwest::Client,
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Result<Value, String> {
    let r = client
        .request(method, target.url(path))
        .header("Authorization", format!("Bearer {}", target.api_key))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{path}: {status} {v}"));
    }
    Ok(v)
}

async fn bind(client: &reqwest::Client, target: &Target, port: u16) -> Result<(), String> {
    let mut bindings = Vec::new();
    for (name, code) in
        [("reads-event", READS_EVENT.to_owned()), ("sets-claim", SETS_CLAIM.to_owned()), ("fetches", fetches(port))]
    {
        let body = json!({"name": name, "supported_triggers": [{"id": "post-login", "version": "v3"}], "code": code});
        let created = admin(client, target, reqwest::Method::POST, "/api/v2/actions/actions", body).await?;
        let id = created["id"].as_str().ok_or("no action id")?.to_owned();
        admin(client, target, reqwest::Method::POST, &format!("/api/v2/actions/actions/{id}/deploy"), json!({}))
            .await?;
        bindings.push(json!({"ref": {"type": "action_id", "value": id}}));
    }
    let path = "/api/v2/actions/triggers/post-login/bindings";
    admin(client, target, reqwest::Method::PATCH, path, json!({"bindings": bindings})).await?;
    Ok(())
}

/// `n` sign-ins one after another: what one costs when nothing queues.
async fn one_at_a_time(client: &reqwest::Client, target: &Target, n: usize) -> Result<(Stats, Value), String> {
    let mut stats = Stats::default();
    let mut last = Value::Null;
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let r = client
            .post(target.url("/api/login"))
            .json(&json!({"loginId": format!("bench{}@example.com", i % 8), "password": "correct horse battery"}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() == 200 {
            last = r.json().await.unwrap_or(Value::Null);
            stats.record_ok(t.elapsed());
        } else {
            stats.errors += 1;
        }
    }
    stats.elapsed = started.elapsed();
    Ok((stats, last))
}

/// The claims of a JWT, unverified (to see that the actions ran).
fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

pub async fn run(args: &Args) -> Result<(), String> {
    let port = stand_in().await?;
    let target = Target::start_with(args, &[("TESSERA_ACTIONS_HTTP_ALLOWLIST", "127.0.0.1")]).await?;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.connections).build().map_err(|e| e.to_string())?;
    create_users(&client, &target, args.connections.max(8)).await?;
    let body = |i: usize| json!({"loginId": format!("bench{i}@example.com"), "password": "correct horse battery"});
    let duration = Duration::from_secs(args.seconds);

    let (plain_one, _) = one_at_a_time(&client, &target, 100).await?;
    let plain = run_load(&client, &target, args.connections, duration, body).await;
    let plain_rss = target.rss_during_load();

    bind(&client, &target, port).await?;
    let (with_one, last) = one_at_a_time(&client, &target, 100).await?;
    let token = last["token"].as_str().unwrap_or_default();
    if claims(token)["https://example.com/plan"] != "free" {
        return Err(format!("the actions did not run: {last}"));
    }
    let with = run_load(&client, &target, args.connections, duration, body).await;
    let with_rss = target.rss_during_load();

    println!(
        "scenario: login-actions ({} connections, {} s each, three post-login actions)",
        args.connections, args.seconds
    );
    print_stats("one at a time, no actions", &plain_one);
    print_stats("one at a time, three actions", &with_one);
    println!(
        "added per sign-in: p50 {:.2} ms, p99 {:.2} ms",
        with_one.percentile(50.0) - plain_one.percentile(50.0),
        with_one.percentile(99.0) - plain_one.percentile(99.0)
    );
    print_stats("under load, no actions", &plain);
    print_stats("under load, three actions", &with);
    println!("ratio with/without under load: {:.1}%", 100.0 * with.throughput() / plain.throughput().max(1e-9));
    if let (Some((p, _)), Some((w, hwm))) = (plain_rss, with_rss) {
        println!("server RSS under load: no actions peak {p:.1} MB; three actions peak {w:.1} MB (VmHWM {hwm:.1} MB)");
    }
    target.stop().await;
    Ok(())
}
