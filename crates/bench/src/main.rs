//! `tessera-bench`: drives a Tessera server with N concurrent connections for a fixed
//! time and prints throughput, latency percentiles and the server's memory.
//!
//! ```text
//! cargo run --release -p tessera-bench -- login --connections 64 --seconds 20
//! ```
//!
//! Without `--url` it starts `tessera` (the binary beside its own executable) on a
//! fresh SQLite database in a temporary folder, and measures its cold start too.

mod actions;
mod args;
mod load;
mod server;
mod two_factor;
mod verify;

use std::time::Duration;

use serde_json::json;
use tessera_core::password::{HashParams, Workspace};

use crate::args::Args;
use crate::load::{Stats, run_load};
use crate::server::Target;

#[tokio::main]
async fn main() {
    tessera_providers::install_tls();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e == args::HELP => {
            println!("{}", args::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("tessera-bench: {e}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("tessera-bench: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    match args.scenario.as_str() {
        "login" => login(&args).await,
        "login-actions" => actions::run(&args).await,
        "two-factor" => two_factor::full(&args).await,
        "code-check" => two_factor::code_check(&args).await,
        "verify" => verify::run(&args).await,
        other => Err(format!("unknown scenario {other:?}")),
    }
}

async fn login(args: &Args) -> Result<(), String> {
    let target = Target::start(args).await?;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.connections).build().map_err(|e| e.to_string())?;

    // One user per connection, so nothing but the server itself is shared.
    create_users(&client, &target, args.connections).await?;

    // 404 timing: an unknown login id against a wrong password for a real one.
    let unknown = sequential(&client, &target, "nobody@example.com", 100).await?;
    let wrong = sequential(&client, &target, "bench0@example.com", 100).await?;

    let duration = Duration::from_secs(args.seconds);
    let load = run_load(
        &client,
        &target,
        args.connections,
        duration,
        |i| json!({"loginId": format!("bench{i}@example.com"), "password": "correct horse battery"}),
    )
    .await;
    let rss = target.rss_during_load();

    let limit = argon2_limit(target.hash_threads, HashParams::default(), duration);

    println!("scenario: login ({} connections, {} s)", args.connections, args.seconds);
    if let Some(c) = &target.cold_start {
        println!("cold start to healthy: first start {:.1} ms, restart {:.1} ms", c.0, c.1);
    }
    print_stats("login", &load);
    println!("argon2id limit: {:.1} hashes/s on {} threads (m=19456 KiB, t=2, p=1)", limit, target.hash_threads);
    println!("ratio login/limit: {:.1}%", 100.0 * load.throughput() / limit);
    if let Some((peak, hwm)) = rss {
        println!("server RSS under load: peak {:.1} MB (VmHWM {:.1} MB)", peak, hwm);
    }
    println!(
        "404 answer p50: unknown user {:.2} ms, wrong password {:.2} ms",
        unknown.percentile(50.0),
        wrong.percentile(50.0)
    );
    target.stop().await;
    Ok(())
}

/// `bench0@example.com` … `bench{n-1}@example.com`, password "correct horse battery".
pub(crate) async fn create_users(client: &reqwest::Client, target: &Target, n: usize) -> Result<(), String> {
    for i in 0..n {
        let r = client
            .post(target.url("/api/user"))
            .header("Authorization", &target.api_key)
            .json(&json!({"user": {"email": format!("bench{i}@example.com"), "password": "correct horse battery"}}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() && r.status() != 400 {
            return Err(format!("creating users failed: {}", r.status()));
        }
    }
    Ok(())
}

pub(crate) fn print_stats(name: &str, s: &Stats) {
    println!(
        "{name}: {} ok, {} errors, {:.1}/s, p50 {:.1} ms, p99 {:.1} ms",
        s.ok,
        s.errors,
        s.throughput(),
        s.percentile(50.0),
        s.percentile(99.0)
    );
}

/// Failed logins one at a time (the server is configured not to lock during a
/// benchmark), to compare the two kinds of 404.
async fn sequential(client: &reqwest::Client, target: &Target, login_id: &str, n: usize) -> Result<Stats, String> {
    let mut stats = Stats::default();
    let started = std::time::Instant::now();
    for _ in 0..n {
        let t = std::time::Instant::now();
        let r = client
            .post(target.url("/api/login"))
            .json(&json!({"loginId": login_id, "password": "definitely wrong"}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() == 404 {
            stats.record_ok(t.elapsed());
        } else {
            stats.errors += 1;
        }
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Raw argon2id hashes per second on `threads` threads: the ceiling for logins.
pub(crate) fn argon2_limit(threads: usize, params: HashParams, duration: Duration) -> f64 {
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut ws = Workspace::default();
                let mut out = [0u8; 32];
                let mut n = 0u64;
                while started.elapsed() < duration {
                    if ws.raw(&params, b"correct horse battery", b"saltsaltsaltsalt", &mut out).is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / started.elapsed().as_secs_f64()
}
