//! Two-factor scenarios.
//!
//! `two-factor`: password login → 242 → `/api/two-factor/login` with a TOTP code, as
//! complete logins per second against the argon2 limit.
//! `code-check`: the second step alone, on challenges prepared beforehand.
//!
//! A TOTP time step is accepted once per authenticator, so each user can finish at
//! most two logins per 30 s step (this one and the next); the scenarios set up
//! enough users that no connection ever waits for a fresh step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_core::Timestamp;
use tessera_core::base32;
use tessera_core::password::HashParams;
use tessera_core::totp::{TotpParams, step_at, totp_at_step};
use tokio::sync::Mutex;

use crate::args::Args;
use crate::load::Stats;
use crate::server::Target;
use crate::{argon2_limit, print_stats};

const PASSWORD: &str = "correct horse battery";

struct TotpUser {
    login_id: String,
    secret: Vec<u8>,
    /// The lowest step this user's authenticator still accepts.
    next_step: i64,
}

#[allow(clippy::disallowed_methods)] // the benchmark talks to a server on the real clock
fn now_step() -> i64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    step_at(Timestamp::from_millis(i64::try_from(ms).unwrap_or(0)), 30)
}

impl TotpUser {
    /// A code the server will accept now, if this user has one left in this step.
    fn take_code(&mut self) -> Option<String> {
        let now = now_step();
        let step = self.next_step.max(now);
        if step > now + 1 {
            return None;
        }
        self.next_step = step + 1;
        Some(totp_at_step(&TotpParams::default(), &self.secret, step))
    }
}

async fn post(
    client: &reqwest::Client,
    target: &Target,
    path: &str,
    admin: bool,
    body: &Value,
) -> Result<(u16, Value), String> {
    let mut req = client.post(target.url(path)).json(body);
    if admin {
        req = req.header("Authorization", &target.api_key);
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Creates `n` users, each with an authenticator, `connections` at a time.
async fn setup_users(
    client: &reqwest::Client,
    target: &Target,
    prefix: &str,
    n: usize,
    connections: usize,
) -> Result<Vec<TotpUser>, String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.min(n).max(1) {
        let (client, next, prefix) = (client.clone(), Arc::clone(&next), prefix.to_owned());
        let (base, key) = (target.url(""), target.api_key.clone());
        tasks.push(tokio::spawn(async move {
            let t = Target::remote(&base, &key);
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return Ok::<_, String>(made);
                }
                let login_id = format!("{prefix}{i}@example.com");
                let (status, body) =
                    post(&client, &t, "/api/user", true, &json!({"user": {"email": login_id, "password": PASSWORD}}))
                        .await?;
                if status != 200 {
                    return Err(format!("creating a user: {status} {body}"));
                }
                let id = body["user"]["id"].as_str().unwrap_or_default().to_owned();
                let secret: Vec<u8> = (0..20).map(|j| (i * 31 + j * 7) as u8 ^ 0x5a).collect();
                // Enroll with the previous step's code (inside the ±1 window), leaving
                // this step and the next for logins. A step boundary between our clock
                // and the server's can refuse it once; then try again with a fresh step.
                let mut enrolled = None;
                for _ in 0..2 {
                    let step = now_step() - 1;
                    let code = totp_at_step(&TotpParams::default(), &secret, step);
                    let body = json!({"method": "authenticator", "secretBase32Encoded": base32::encode(&secret), "code": code});
                    let (status, answer) = post(&client, &t, &format!("/api/user/two-factor/{id}"), true, &body).await?;
                    match status {
                        200 => {
                            enrolled = Some(step);
                            break;
                        }
                        421 => continue,
                        _ => return Err(format!("enabling TOTP: {status} {answer}")),
                    }
                }
                let step = enrolled.ok_or("enabling TOTP: the code was refused twice")?;
                made.push(TotpUser { login_id, secret, next_step: step + 1 });
            }
        }));
    }
    let mut users = Vec::new();
    for t in tasks {
        users.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(users)
}

/// Password login that must answer 242; returns the twoFactorId.
async fn password_step(client: &reqwest::Client, target: &Target, login_id: &str) -> Option<String> {
    let (status, body) =
        post(client, target, "/api/login", false, &json!({"loginId": login_id, "password": PASSWORD})).await.ok()?;
    (status == 242).then(|| body["twoFactorId"].as_str().map(str::to_owned)).flatten()
}

async fn code_step(client: &reqwest::Client, target: &Target, id: &str, code: &str) -> bool {
    matches!(
        post(client, target, "/api/two-factor/login", false, &json!({"twoFactorId": id, "code": code})).await,
        Ok((200, _))
    )
}

pub async fn full(args: &Args) -> Result<(), String> {
    let target = Target::start(args).await?;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.connections).build().map_err(|e| e.to_string())?;
    // ~100 logins/s at most, two per user per step, plus a margin.
    let n = if args.users > 0 { args.users } else { (args.seconds as usize * 60).max(args.connections * 4) };
    // (~100 logins/s at most; each user has two codes per 30 s step.)
    let users = setup_users(&client, &target, "tf", n, args.connections).await?;
    let groups = partition(users, args.connections);

    let duration = Duration::from_secs(args.seconds);
    let started = Instant::now();
    target.start_rss_sampling();
    let mut tasks = Vec::new();
    for group in groups {
        let (client, t) = (client.clone(), Target::remote(&target.url(""), &target.api_key));
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let mut i = 0;
            let mut dry_in_a_row = 0;
            while started.elapsed() < duration {
                let mut user = group[i % group.len()].lock().await;
                i += 1;
                let Some(code) = user.take_code() else {
                    dry_in_a_row += 1;
                    if dry_in_a_row >= group.len() {
                        // Every user of this connection used this step's codes: wait
                        // for the next step (counted, so a short run of users shows).
                        s.waits += 1;
                        dry_in_a_row = 0;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    continue;
                };
                dry_in_a_row = 0;
                let t0 = Instant::now();
                let ok = match password_step(&client, &t, &user.login_id).await {
                    Some(id) => code_step(&client, &t, &id, &code).await,
                    None => false,
                };
                if ok { s.record_ok(t0.elapsed()) } else { s.errors += 1 }
            }
            s
        }));
    }
    let stats = collect(tasks, started).await;
    target.stop_rss_sampling();
    let rss = target.rss_during_load();
    let limit = argon2_limit(target.hash_threads, HashParams::default(), duration);
    println!("scenario: two-factor ({} connections, {} s, {} users with TOTP)", args.connections, args.seconds, n);
    print_stats("complete logins (password + TOTP)", &stats);
    if stats.waits > 0 {
        println!("connections waited for a fresh TOTP step {} times: run with more --users", stats.waits);
    }
    println!("argon2id limit: {limit:.1} hashes/s on {} threads", target.hash_threads);
    println!("ratio complete logins/limit: {:.1}%", 100.0 * stats.throughput() / limit);
    if let Some((peak, hwm)) = rss {
        println!("server RSS under load: peak {peak:.1} MB (VmHWM {hwm:.1} MB)");
    }
    target.stop().await;
    Ok(())
}

/// Checks per second `code-check` prepares for: above the target, so the run never
/// runs dry before `--seconds` are over.
const CODE_CHECK_RATE: usize = 6_000;

pub async fn code_check(args: &Args) -> Result<(), String> {
    // Only the second step is measured: cheap password hashing lets tens of thousands
    // of challenges be prepared in a minute instead of an hour.
    let target =
        Target::start_with(args, &[("TESSERA_ARGON2_MEMORY_KIB", "1024"), ("TESSERA_ARGON2_ITERATIONS", "1")]).await?;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.connections).build().map_err(|e| e.to_string())?;
    // Two challenges per user (a user has two codes per step).
    let n = if args.users > 0 { args.users } else { CODE_CHECK_RATE * args.seconds as usize / 2 };
    let users = setup_users(&client, &target, "cc", n, args.connections).await?;

    // Two challenges per user (a user has two codes per step), made with password logins.
    let mut prepared: Vec<(TotpUser, Vec<String>)> = Vec::new();
    let groups = partition(users, args.connections);
    let mut tasks = Vec::new();
    for group in groups {
        let (client, t) = (client.clone(), Target::remote(&target.url(""), &target.api_key));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for u in group {
                let u = Arc::try_unwrap(u).map_err(|_| "shared user".to_owned())?.into_inner();
                let mut ids = Vec::new();
                for _ in 0..2 {
                    ids.push(password_step(&client, &t, &u.login_id).await.ok_or("password step failed")?);
                }
                out.push((u, ids));
            }
            Ok::<_, String>(out)
        }));
    }
    for t in tasks {
        prepared.extend(t.await.map_err(|e| e.to_string())??);
    }
    let total: usize = prepared.iter().map(|(_, ids)| ids.len()).sum();

    // Each connection takes whole users, so one user's steps are used in order.
    let mut buckets: Vec<Vec<(TotpUser, Vec<String>)>> = (0..args.connections).map(|_| Vec::new()).collect();
    for (i, p) in prepared.into_iter().enumerate() {
        buckets[i % args.connections].push(p);
    }
    let cpu_before = target.load_starts();
    target.start_rss_sampling();
    let duration = Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for bucket in buckets {
        let (client, t) = (client.clone(), Target::remote(&target.url(""), &target.api_key));
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            for (mut user, ids) in bucket {
                if started.elapsed() >= duration {
                    break;
                }
                for id in ids {
                    let Some(code) = user.take_code() else {
                        s.errors += 1;
                        continue;
                    };
                    let t0 = Instant::now();
                    if code_step(&client, &t, &id, &code).await { s.record_ok(t0.elapsed()) } else { s.errors += 1 }
                }
            }
            s
        }));
    }
    let stats = collect(tasks, started).await;
    target.stop_rss_sampling();
    println!("scenario: code-check ({} connections, {total} prepared challenges, {n} users)", args.connections);
    print_stats("two-factor code checks (TOTP, tokens issued)", &stats);
    println!("ran for {:.1} s", stats.elapsed.as_secs_f64());
    target.print_cpu_per_op(cpu_before, stats.ok);
    if let Some((peak, _)) = target.rss_during_load() {
        println!("server RSS under load: peak {peak:.1} MB");
    }
    target.stop().await;
    Ok(())
}

fn partition(users: Vec<TotpUser>, parts: usize) -> Vec<Vec<Arc<Mutex<TotpUser>>>> {
    let mut groups: Vec<Vec<Arc<Mutex<TotpUser>>>> = (0..parts.max(1)).map(|_| Vec::new()).collect();
    for (i, u) in users.into_iter().enumerate() {
        groups[i % parts.max(1)].push(Arc::new(Mutex::new(u)));
    }
    groups.retain(|g| !g.is_empty());
    groups
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Stats>>, started: Instant) -> Stats {
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.waits += s.waits;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.elapsed = started.elapsed();
    total
}
