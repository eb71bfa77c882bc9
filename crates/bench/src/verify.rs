//! Verify scenarios.
//!
//! `verify`: start + check (Verify API, console messenger) as verifications per second
//! and latency at N connections; then a pumping simulation: a 0%-conversion prefix
//! and a 50%-conversion prefix sending side by side, reporting how many pumped sends
//! got through before the fraud guard blocked the prefix, and how the honest traffic
//! fared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::args::Args;
use crate::load::Stats;
use crate::print_stats;
use crate::server::Target;

struct Account {
    sid: String,
    token: String,
}

async fn form(
    client: &reqwest::Client,
    target: &Target,
    a: &Account,
    path: &str,
    body: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let r = client
        .post(target.url(path))
        .basic_auth(&a.sid, Some(&a.token))
        .form(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn account(client: &reqwest::Client, target: &Target) -> Result<Account, String> {
    let r = client
        .post(target.url("/api/verify/account"))
        .header("Authorization", &target.api_key)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    Ok(Account {
        sid: v["accountSid"].as_str().ok_or("no account")?.to_owned(),
        token: v["authToken"].as_str().ok_or("no token")?.to_owned(),
    })
}

async fn service(client: &reqwest::Client, target: &Target, a: &Account, guard: Value) -> Result<String, String> {
    let (status, body) =
        form(client, target, a, "/v2/Services", &[("FriendlyName", "Bench"), ("CustomCodeEnabled", "true")]).await?;
    if status != 201 {
        return Err(format!("creating a service: {status} {body}"));
    }
    let sid = body["sid"].as_str().ok_or("no sid")?.to_owned();
    let r = client
        .put(target.url(&format!("/api/verify/{}/services/{sid}/fraud-guard", a.sid)))
        .header("Authorization", &target.api_key)
        .json(&guard)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("setting the fraud guard: {}", r.status()));
    }
    Ok(sid)
}

pub async fn run(args: &Args) -> Result<(), String> {
    let target = Target::start(args).await?;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.connections).build().map_err(|e| e.to_string())?;
    let a = Arc::new(account(&client, &target).await?);

    // Throughput: limits raised so only the server's speed counts.
    let wide = json!({"perNumber": {"max": 5, "windowSeconds": 600}, "perPrefix": {"max": 1000000, "windowSeconds": 60},
                      "perIp": {"max": 1000000, "windowSeconds": 60}, "perService": {"max": 1000000, "windowSeconds": 60},
                      "minSample": 1000000});
    let va = Arc::new(service(&client, &target, &a, wide).await?);
    let next = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs(args.seconds);
    let cpu_before = target.load_starts();
    let started = Instant::now();
    target.start_rss_sampling();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (client, a, va, next) = (client.clone(), Arc::clone(&a), Arc::clone(&va), Arc::clone(&next));
        let t = Target::remote(&target.url(""), &target.api_key);
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            while started.elapsed() < duration {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let to = format!("+1202{:07}", n % 10_000_000);
                let t0 = Instant::now();
                let start = form(&client, &t, &a, &format!("/v2/Services/{va}/Verifications"), &[("To", &to), ("Channel", "sms"), ("CustomCode", "424242")]).await;
                let ok = match start {
                    Ok((201, _)) => matches!(
                        form(&client, &t, &a, &format!("/v2/Services/{va}/VerificationCheck"), &[("To", &to), ("Code", "424242")]).await,
                        Ok((200, ref b)) if b["status"] == "approved"
                    ),
                    _ => false,
                };
                if ok { s.record_ok(t0.elapsed()) } else { s.errors += 1 }
            }
            s
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            stats.ok += s.ok;
            stats.errors += s.errors;
            stats.latencies_us.extend(s.latencies_us);
        }
    }
    stats.elapsed = started.elapsed();
    target.stop_rss_sampling();
    println!("scenario: verify ({} connections, {} s)", args.connections, args.seconds);
    print_stats("verifications (start + check)", &stats);
    target.print_cpu_per_op(cpu_before, stats.ok);
    if let Some((peak, _)) = target.rss_during_load() {
        println!("server RSS under load: peak {peak:.1} MB");
    }

    pumping(&client, &target, &a).await?;
    target.stop().await;
    Ok(())
}

/// A pumping attack on one prefix beside honest traffic on another, one request at
/// a time each, with the default conversion rule (20 verifications, 20% approved).
async fn pumping(client: &reqwest::Client, target: &Target, a: &Account) -> Result<(), String> {
    let guard = json!({"perNumber": {"max": 5, "windowSeconds": 600}, "perPrefix": {"max": 1000000, "windowSeconds": 60},
                       "perIp": {"max": 1000000, "windowSeconds": 60}, "perService": {"max": 1000000, "windowSeconds": 60}});
    let va = service(client, target, a, guard).await?;
    let (mut pumped_through, mut pumped_blocked, mut honest_through, mut honest_blocked) = (0, 0, 0, 0);
    let mut first_block = None;
    for i in 0..200u32 {
        // The attacker: premium-rate numbers nobody verifies.
        let bad = format!("+1900555{:04}", i);
        let (status, body) = form(
            client,
            target,
            a,
            &format!("/v2/Services/{va}/Verifications"),
            &[("To", &bad), ("Channel", "sms"), ("CustomCode", "111111")],
        )
        .await?;
        match status {
            201 => pumped_through += 1,
            403 if body["code"] == 60410 => {
                pumped_blocked += 1;
                first_block.get_or_insert(i);
            }
            other => return Err(format!("pumped send answered {other}: {body}")),
        }
        // Real users: half of them type the code.
        let good = format!("+1202777{:04}", i);
        let (status, _) = form(
            client,
            target,
            a,
            &format!("/v2/Services/{va}/Verifications"),
            &[("To", &good), ("Channel", "sms"), ("CustomCode", "222222")],
        )
        .await?;
        if status == 201 {
            honest_through += 1;
            if i % 2 == 0 {
                form(
                    client,
                    target,
                    a,
                    &format!("/v2/Services/{va}/VerificationCheck"),
                    &[("To", &good), ("Code", "222222")],
                )
                .await?;
            }
        } else {
            honest_blocked += 1;
        }
    }
    println!(
        "pumping: {pumped_through} of 200 sends to a 0%-conversion prefix got through ({} before the block), {pumped_blocked} blocked",
        first_block.unwrap_or(200)
    );
    println!("pumping: honest 50%-conversion prefix: {honest_through} of 200 sent, {honest_blocked} blocked");
    Ok(())
}
