//! The real binary, killed with SIGKILL under load, again and again: whatever it
//! acknowledged is there after the restart, no factor is half-written (a method without
//! its recovery codes), and SQLite's file is intact.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_core::Timestamp;
use tessera_core::totp::{TotpParams, step_at, totp_at_step};
use tessera_store::Backend;

use crate::cli::{Running, temp_dir};

const SECRET: &[u8] = b"12345678901234567890";
const ROUNDS: usize = 3;
const WORKERS: usize = 8;
/// Acknowledged writes each round waits for before it pulls the plug.
const WRITES_PER_ROUND: usize = 40;

/// The binary runs on the real clock, so the authenticator code must too.
#[allow(clippy::disallowed_methods)]
fn code_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let step = step_at(Timestamp::from_millis(i64::try_from(now.as_millis()).unwrap()), 30);
    totp_at_step(&TotpParams::default(), SECRET, step)
}

#[derive(Default)]
struct Acknowledged {
    users: Mutex<Vec<String>>,
    factors: Mutex<Vec<String>>,
    count: AtomicUsize,
}

/// Creates users and gives each an authenticator until a request fails (the server is
/// gone); only answers that arrived are recorded as acknowledged.
async fn worker(base: String, key: String, acked: Arc<Acknowledged>, stop: Arc<AtomicBool>, id: usize) {
    let client = tessera_testkit::http_client();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let email = format!("w{id}-{n}-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"user": {"email": email, "password": "correct horse"}});
        let Ok(r) = client.post(format!("{base}/api/user")).header("Authorization", &key).json(&body).send().await
        else {
            return;
        };
        let Ok(created) = r.json::<serde_json::Value>().await else { return };
        let Some(user) = created["user"]["id"].as_str().map(str::to_owned) else { return };
        acked.users.lock().unwrap().push(user.clone());
        acked.count.fetch_add(1, Ordering::SeqCst);
        let body = json!({"method": "authenticator", "secretBase32Encoded": tessera_core::base32::encode(SECRET), "code": code_now()});
        let Ok(r) = client
            .post(format!("{base}/api/user/two-factor/{user}"))
            .header("Authorization", &key)
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        if r.status() != 200 || r.json::<serde_json::Value>().await.is_err() {
            return;
        }
        acked.factors.lock().unwrap().push(user);
        acked.count.fetch_add(1, Ordering::SeqCst);
    }
}

async fn one_column(url: &str, sql: &str) -> Vec<String> {
    let rows = tessera_store::testing::query_text(url, sql).await.unwrap();
    rows.into_iter().map(|r| r[0].clone().unwrap_or_default()).collect()
}

async fn kill_under_load_and_check(dir: &Path, database_url: &str, env: &[(&str, &str)]) {
    let acked = Arc::new(Acknowledged::default());
    let mut key = None;
    for round in 0..ROUNDS {
        let mut server = Running::start(dir, env);
        let key: &String = key.get_or_insert_with(|| server.printed_key.clone().expect("the first start prints a key"));
        let stop = Arc::new(AtomicBool::new(false));
        let goal = acked.count.load(Ordering::SeqCst) + WRITES_PER_ROUND;
        let workers: Vec<_> = (0..WORKERS)
            .map(|id| tokio::spawn(worker(server.base.clone(), key.clone(), acked.clone(), stop.clone(), id)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.count.load(Ordering::SeqCst) < goal {
            assert!(Instant::now() < deadline, "round {round}: the load made too little progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Mid-flight: the workers are still sending.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.unwrap();
        }

        // What the restarted server (and the database beneath it) holds.
        let server = Running::start(dir, env);
        let client = tessera_testkit::http_client();
        let users: Vec<String> = acked.users.lock().unwrap().clone();
        for user in &users {
            let r = client.get(format!("{}/api/user/{user}", server.base)).header("Authorization", key).send().await;
            assert_eq!(r.unwrap().status(), 200, "round {round}: acknowledged user {user} is gone");
        }
        let with_factor = one_column(database_url, "SELECT user_id FROM two_factor_methods").await;
        let factors: Vec<String> = acked.factors.lock().unwrap().clone();
        for user in &factors {
            assert!(with_factor.contains(user), "round {round}: acknowledged factor of {user} is gone");
        }
        let half_written = one_column(
            database_url,
            "SELECT m.user_id FROM two_factor_methods m \
             WHERE (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = m.user_id) <> 10",
        )
        .await;
        assert!(half_written.is_empty(), "round {round}: factors without their recovery codes: {half_written:?}");
        if database_url.starts_with("sqlite") {
            assert_eq!(one_column(database_url, "PRAGMA integrity_check").await, ["ok"], "round {round}");
        }
        drop(server);
        assert!(users.len() >= WRITES_PER_ROUND / 2 * (round + 1), "round {round}: {} users", users.len());
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_under_load_on_sqlite() {
    let dir = temp_dir();
    let url = format!("sqlite://{}", dir.join("tessera-data/tessera.db").display());
    kill_under_load_and_check(&dir, &url, &[("TESSERA_ARGON2_MEMORY_KIB", "1024"), ("TESSERA_ARGON2_ITERATIONS", "1")])
        .await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_under_load_on_postgres() {
    let dir = temp_dir();
    let url = tessera_store::testing::fresh_database_url(Backend::Postgres).await.unwrap();
    let env = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_SEAL_KEY", tessera_testkit::TEST_SEAL_KEY),
        ("TESSERA_ARGON2_MEMORY_KIB", "1024"),
        ("TESSERA_ARGON2_ITERATIONS", "1"),
    ];
    kill_under_load_and_check(&dir, &url, &env).await;
}
