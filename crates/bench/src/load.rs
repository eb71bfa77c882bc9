//! The load loop: N tasks, each one connection, sending back to back until time is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::Target;

#[derive(Default)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    /// Times a connection had to wait for input (e.g. a fresh TOTP step).
    pub waits: u64,
    pub latencies_us: Vec<u64>,
    pub elapsed: Duration,
}

impl Stats {
    pub fn record_ok(&mut self, d: Duration) {
        self.ok += 1;
        self.latencies_us.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// In milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[idx.min(v.len() - 1)] as f64 / 1000.0
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// POSTs `body(connection)` to `/api/login` from `connections` tasks for `duration`.
pub async fn run_load(
    client: &reqwest::Client,
    target: &Target,
    connections: usize,
    duration: Duration,
    body: impl Fn(usize) -> Value,
) -> Stats {
    let url = Arc::new(target.url("/api/login"));
    let started = Instant::now();
    target.start_rss_sampling();
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let (client, url, body) = (client.clone(), Arc::clone(&url), body(i));
            tokio::spawn(async move {
                let mut s = Stats::default();
                while started.elapsed() < duration {
                    let t = Instant::now();
                    match client.post(url.as_str()).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            s.record_ok(t.elapsed());
                        }
                        _ => s.errors += 1,
                    }
                }
                s
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(s);
        }
    }
    total.elapsed = started.elapsed();
    target.stop_rss_sampling();
    total
}
