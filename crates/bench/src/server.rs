//! The server under test: one we start (and can measure) or one given by `--url`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::args::Args;

pub struct Target {
    pub base: String,
    pub api_key: String,
    pub hash_threads: usize,
    /// First start on an empty database and a restart on the same one, in ms.
    pub cold_start: Option<(f64, f64)>,
    child: Option<Child>,
    pid: Option<u32>,
    sampling: Arc<AtomicBool>,
    peak_rss_kb: Arc<AtomicU64>,
}

const API_KEY: &str = "tsk_benchmark_admin_key_0123456789";

/// A fixed seal key for benchmark servers on PostgreSQL (SQLite makes its own).
const SEAL_KEY: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

impl Target {
    pub async fn start(args: &Args) -> Result<Target, String> {
        Target::start_with(args, &[]).await
    }

    /// Starts the server with extra settings (`TESSERA_*` variables).
    pub async fn start_with(args: &Args, settings: &[(&str, &str)]) -> Result<Target, String> {
        let hash_threads = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        if let (Some(url), Some(key)) = (&args.url, &args.api_key) {
            return Ok(Target {
                base: url.trim_end_matches('/').to_owned(),
                api_key: key.clone(),
                hash_threads,
                cold_start: None,
                child: None,
                pid: None,
                sampling: Arc::default(),
                peak_rss_kb: Arc::default(),
            });
        }
        let bin = match &args.server {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("tessera"),
        };
        let dir = std::env::temp_dir().join(format!("tessera-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

        let mut env: Vec<(String, String)> = settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        if let Some(url) = &args.database_url {
            env.push(("TESSERA_DATABASE_URL".into(), url.clone()));
            env.push(("TESSERA_SEAL_KEY".into(), SEAL_KEY.into()));
        }
        let (first_ms, child, base) = spawn(&bin, &dir, &env).await?;
        stop_child(child).await;
        let (restart_ms, child, base2) = spawn(&bin, &dir, &env).await?;
        let _ = base;
        let pid = child.id();
        Ok(Target {
            base: base2,
            api_key: API_KEY.to_owned(),
            hash_threads,
            cold_start: Some((first_ms, restart_ms)),
            child: Some(child),
            pid,
            sampling: Arc::default(),
            peak_rss_kb: Arc::default(),
        })
    }

    /// A handle on an already running server (for tasks that need their own).
    pub fn remote(base: &str, api_key: &str) -> Target {
        Target {
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            hash_threads: 0,
            cold_start: None,
            child: None,
            pid: None,
            sampling: Arc::default(),
            peak_rss_kb: Arc::default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn start_rss_sampling(&self) {
        let Some(pid) = self.pid else { return };
        self.sampling.store(true, Ordering::SeqCst);
        let (on, peak) = (Arc::clone(&self.sampling), Arc::clone(&self.peak_rss_kb));
        std::thread::spawn(move || {
            while on.load(Ordering::SeqCst) {
                if let Some(kb) = status_kb(pid, "VmRSS:") {
                    peak.fetch_max(kb, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }

    pub fn stop_rss_sampling(&self) {
        self.sampling.store(false, Ordering::SeqCst);
    }

    /// Peak RSS sampled during the load, and the kernel's high-water mark, in MB.
    pub fn rss_during_load(&self) -> Option<(f64, f64)> {
        let pid = self.pid?;
        let hwm = status_kb(pid, "VmHWM:")?;
        Some((self.peak_rss_kb.load(Ordering::SeqCst) as f64 / 1024.0, hwm as f64 / 1024.0))
    }

    /// Marks the start of the measured load: says so on stderr (a profiler attached to
    /// the server waits for this line) and returns the CPU seconds used so far (user +
    /// system) by the server and by this load generator, for `print_cpu_per_op`.
    pub fn load_starts(&self) -> Option<(f64, f64)> {
        let server = cpu_seconds_of(&self.pid?.to_string())?;
        eprintln!("load starts (server CPU {server:.1} s so far)");
        Some((server, cpu_seconds_of("self")?))
    }

    /// Prints the server's CPU time per operation since `before` (from `cpu_seconds`),
    /// and the load generator's.
    pub fn print_cpu_per_op(&self, before: Option<(f64, f64)>, ops: u64) {
        if let (Some(before), Some(server)) = (before, self.pid.and_then(|p| cpu_seconds_of(&p.to_string())))
            && let Some(load) = cpu_seconds_of("self")
            && ops > 0
        {
            let total = server - before.0;
            println!(
                "server CPU: {total:.1} s for {ops} operations = {:.0} µs per operation \
                 (load generator: {:.0} µs)",
                total * 1e6 / ops as f64,
                (load - before.1) * 1e6 / ops as f64
            );
        }
    }

    pub async fn stop(mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child).await;
        }
    }
}

/// User plus system CPU seconds of process `pid` (or "self"), from /proc.
fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and
    // 15th of the line, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

async fn spawn(bin: &PathBuf, dir: &PathBuf, env: &[(String, String)]) -> Result<(f64, Child, String), String> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_API_KEY", API_KEY)
        .env("TESSERA_LOG_LEVEL", "warn")
        // Benchmarks send thousands of failed logins on purpose.
        .env("TESSERA_LOGIN_MAX_FAILURES", "1000000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e} (build it: cargo build --release)", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| "server did not start within 30 s")?
            .map_err(|e| e.to_string())?
            .ok_or("server exited during start")?;
        if let Some(addr) = line.strip_prefix("Tessera listening on ") {
            break addr.to_owned();
        }
    };
    // Healthy means /api/status answers 200; poll it with a deadline.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/api/status")).send().await
            && r.status() == 200
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("server never became healthy".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((ms, child, base))
}

async fn stop_child(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
