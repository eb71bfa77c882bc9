//! Prometheus metrics, kept in memory and rendered in the text exposition format.
//! A handful of counters and one histogram do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
    logins: BTreeMap<&'static str, u64>,
    events: BTreeMap<(&'static str, &'static str), u64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let Ok(mut m) = self.inner.lock() else { return };
        *m.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        let h = m.latency.entry((method.to_owned(), route.to_owned())).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// `outcome`: success, failure, locked, invalid.
    pub fn record_login(&self, outcome: &'static str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.logins.entry(outcome).or_default() += 1;
        }
    }

    /// Every audited security event, by name and outcome.
    pub fn record_event(&self, event: &'static str, outcome: &'static str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.events.entry((event, outcome)).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let Ok(m) = self.inner.lock() else {
            return String::new();
        };
        let mut out = String::new();
        out.push_str("# HELP tessera_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        for ((method, route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP tessera_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &m.latency {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (le, c) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "tessera_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {c}");
            }
            let _ = writeln!(out, "tessera_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "tessera_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "tessera_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        out.push_str("# HELP tessera_logins_total Password logins by outcome.\n");
        out.push_str("# TYPE tessera_logins_total counter\n");
        for (outcome, n) in &m.logins {
            let _ = writeln!(out, "tessera_logins_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str("# HELP tessera_security_events_total Audited security events by event and outcome.\n");
        out.push_str("# TYPE tessera_security_events_total counter\n");
        for ((event, outcome), n) in &m.events {
            let _ = writeln!(out, "tessera_security_events_total{{event=\"{event}\",outcome=\"{outcome}\"}} {n}");
        }
        let started = m.events.get(&("verify.pending", "pending")).copied().unwrap_or(0);
        if started > 0 {
            let approved = m.events.get(&("verify.approved", "approved")).copied().unwrap_or(0);
            out.push_str("# HELP tessera_verify_conversion_ratio Verifications approved per verification started, since start.\n");
            out.push_str("# TYPE tessera_verify_conversion_ratio gauge\n");
            let _ = writeln!(out, "tessera_verify_conversion_ratio {}", approved as f64 / started as f64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request("POST", "/api/login", 200, Duration::from_millis(20));
        m.record_request("POST", "/api/login", 200, Duration::from_millis(200));
        m.record_login("success");
        let text = m.render();
        assert!(text.contains("tessera_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"200\"} 2"));
        assert!(text.contains("route=\"/api/login\",le=\"0.025\"} 1"));
        assert!(text.contains("route=\"/api/login\",le=\"0.25\"} 2"));
        assert!(text.contains("tessera_logins_total{outcome=\"success\"} 1"));
    }
}
