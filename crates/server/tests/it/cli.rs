//! The real `tessera` binary, as a new user runs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tessera(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir).env_clear().env("TESSERA_LOG_LEVEL", "warn");
    c
}

pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) printed_key: Option<String>,
}

/// A server a test forgot to stop (or that panicked) does not outlive it.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// `tessera serve` in `dir`, as the README runs it: what it prints goes to
    /// `tessera.log` there (the admin key, console messages), its logs to `stderr.log`.
    pub(crate) fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Running {
        let mut cmd = tessera(dir);
        let out = std::fs::File::create(dir.join("tessera.log")).unwrap();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        cmd.arg("serve").env("TESSERA_LISTEN", "127.0.0.1:0").stdout(out).stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let printed = std::fs::read_to_string(dir.join("tessera.log")).unwrap_or_default();
            let line = |prefix: &str| printed.lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned));
            if let Some(base) = line("Tessera listening on ") {
                let printed_key = line("Admin API key (shown once, keep it safe): ");
                return Running { child, base, printed_key };
            }
            if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not print its address in time: {printed}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait (with a deadline) for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn first_start_prints_a_working_key_and_sigterm_stops_cleanly() {
    let dir = temp_dir();
    let server = Running::start(&dir, &[]);
    let key = server.printed_key.clone().expect("first start prints the admin key");
    assert!(key.starts_with("tsk_"));
    assert!(dir.join("tessera-data/tessera.db").exists(), "SQLite file under ./tessera-data/");

    let client = tessera_testkit::http_client();
    let status = client.get(format!("{}/api/status", server.base)).send().await.unwrap();
    assert_eq!(status.status(), 200);
    let created = client
        .post(format!("{}/api/user", server.base))
        .header("Authorization", &key)
        .json(&json!({"user": {"email": "ann@example.com", "password": "correct horse"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let login = client
        .post(format!("{}/api/login", server.base))
        .json(&json!({"loginId": "ann@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(server.stop().success(), "graceful shutdown exits 0");

    // A second start keeps the data and prints no new key.
    let again = Running::start(&dir, &[]);
    assert_eq!(again.printed_key, None);
    let r = client
        .get(format!("{}/api/user?loginId=ann@example.com", again.base))
        .header("Authorization", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // `api-key create` against the same database yields another working key.
    let out = tessera(&dir).args(["api-key", "create", "--description", "ci"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(second_key.starts_with("tsk_") && second_key != key);
    let r = client
        .get(format!("{}/api/user?loginId=ann@example.com", again.base))
        .header("Authorization", &second_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Keys are listed (never shown again) and revoked by id.
    let out = tessera(&dir).args(["api-key", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(!listed.contains("tsk_"), "{listed}");
    let ci = listed.lines().find(|l| l.ends_with("\tci")).unwrap().split('\t').next().unwrap().to_owned();
    let out = tessera(&dir).args(["api-key", "revoke", &ci]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = client
        .get(format!("{}/api/user?loginId=ann@example.com", again.base))
        .header("Authorization", &second_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the revoked key no longer works");
    assert!(again.stop().success());
}

#[tokio::test]
async fn debug_logs_name_routes_never_paths_or_queries() {
    let dir = temp_dir();
    let server = Running::start(&dir, &[("TESSERA_LOG_LEVEL", "debug,sqlx=warn")]);
    let key = server.printed_key.clone().unwrap();
    let client = tessera_testkit::http_client();
    let user = uuid::Uuid::new_v4();
    let url = format!("{}/api/user/two-factor/{user}?methodId=ABCD&code=987654", server.base);
    let r = client.delete(url).header("Authorization", &key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let hint = client.get(format!("{}/oauth2/logout?id_token_hint=HINT-SECRET-42", server.base)).send().await.unwrap();
    assert_eq!(hint.status(), 200);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(log.contains(r#"route="/api/user/two-factor/{user_id}""#), "debug request logs are on: {log}");
    assert!(!log.contains("\u{1b}["), "no terminal colours in a log file");
    for secret in ["987654", "HINT-SECRET-42", &user.to_string()] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

#[tokio::test]
async fn an_operator_key_from_a_file_is_used_instead_of_a_generated_one() {
    let dir = temp_dir();
    std::fs::write(dir.join("key"), "tsk_operator_chosen_key_123\n").unwrap();
    let key_file = dir.join("key").display().to_string();
    let server = Running::start(&dir, &[("TESSERA_API_KEY_FILE", &key_file)]);
    assert_eq!(server.printed_key, None, "nothing to print: the operator chose the key");
    let r = tessera_testkit::http_client()
        .get(format!("{}/api/system/audit-log", server.base))
        .header("Authorization", "tsk_operator_chosen_key_123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(server.stop().success());
}

#[tokio::test]
async fn kubernetes_service_links_do_not_stop_the_start() {
    let dir = temp_dir();
    // What Kubernetes injects into every pod for a Service named `tessera`.
    let injected = [
        ("TESSERA_PORT", "tcp://10.96.12.7:9011"),
        ("TESSERA_PORT_9011_TCP", "tcp://10.96.12.7:9011"),
        ("TESSERA_PORT_9011_TCP_PROTO", "tcp"),
        ("TESSERA_PORT_9011_TCP_PORT", "9011"),
        ("TESSERA_PORT_9011_TCP_ADDR", "10.96.12.7"),
        ("TESSERA_SERVICE_HOST", "10.96.12.7"),
        ("TESSERA_SERVICE_PORT", "9011"),
        ("TESSERA_SERVICE_PORT_HTTP", "9011"),
    ];
    let server = Running::start(&dir, &injected);
    let status = tessera_testkit::http_client().get(format!("{}/api/status", server.base)).send().await.unwrap();
    assert_eq!(status.status(), 200);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(!log.contains("ignoring"), "service links are not worth a warning: {log}");
}

#[tokio::test]
async fn a_start_that_cannot_listen_creates_nothing_and_the_next_prints_the_key() {
    let dir = temp_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tessera(&dir).arg("serve").env("TESSERA_LISTEN", &addr).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Admin API key"));
    assert!(!dir.join("tessera-data/tessera.db").exists(), "no database, so no admin key was made and lost");
    drop(taken);

    let server = Running::start(&dir, &[]);
    assert!(
        server.printed_key.as_deref().is_some_and(|k| k.starts_with("tsk_")),
        "the first real start prints the key"
    );
    assert!(server.stop().success());
}

#[test]
fn migrate_and_config_errors() {
    let dir = temp_dir();
    let out = tessera(&dir).arg("migrate").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Migrations applied.");

    // A misspelt variable is not applied; the start says so and goes on.
    let out = tessera(&dir).arg("migrate").env("TESSERA_LISTN", "127.0.0.1:1").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ignoring the unknown variable TESSERA_LISTN: did you mean TESSERA_LISTEN?"), "{stderr}");

    let out = tessera(&dir).arg("serve").env("TESSERA_LOG_LEVEL", "inf").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a log filter that would silence every log stops the start");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("log_level: \"inf\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(dir.join("tessera.toml"), "listen = \"127.0.0.1:0\"\ndatabase = \"x\"\n").unwrap();
    let out = tessera(&dir).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown key `database`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn commands_in_the_wrong_directory_make_no_database() {
    let dir = temp_dir();
    for args in [
        &["api-key", "create"][..],
        &["reseal"],
        &["flow", "forward-to-slack", "--number", "+15550001111", "--webhook", "https://hooks.slack.com/x"],
    ] {
        let out = tessera(&dir).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("using the database sqlite://tessera-data/tessera.db"), "{args:?}: {stderr}");
        assert!(stderr.contains("there is no database at tessera-data/tessera.db"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: no key printed");
    }
    assert!(!dir.join("tessera-data").exists(), "nothing was created");

    let out = tessera(&dir).arg("migrate").output().unwrap();
    assert!(out.status.success());
    let out = tessera(&dir).args(["api-key", "create"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not set up yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn flows_are_imported_and_recipes_made_from_the_command_line() {
    let dir = temp_dir();
    let first = Running::start(&dir, &[]);
    let key = first.printed_key.clone().unwrap();
    assert!(first.stop().success());
    let good = dir.join("flow.json");
    std::fs::write(
        &good,
        json!({"description": "d", "initial_state": "Trigger", "states": [
            {"name": "Trigger", "type": "trigger", "properties": {}, "transitions": [{"event": "incomingMessage"}]}]})
        .to_string(),
    )
    .unwrap();
    let out = tessera(&dir).args(["flow", "import"]).arg(&good).args(["--number", "+15550001111"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first_flow = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(first_flow.starts_with("FW"));

    // The number is taken: refused (naming the flow that has it) unless asked to move it,
    // and a refused or malformed --number leaves no flow behind.
    let out = tessera(&dir).args(["flow", "import"]).arg(&good).args(["--number", "+15550001111"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("is bound to flow {first_flow} already")), "{stderr}");
    let out = tessera(&dir).args(["flow", "import"]).arg(&good).args(["--number", "12"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[number]"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tessera(&dir)
        .args(["flow", "import"])
        .arg(&good)
        .args(["--number", "+15550001111", "--move"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let moved_to = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let bad = dir.join("bad.json");
    std::fs::write(&bad, json!({"initial_state": "A", "states": [{"name": "A", "type": "run-function"}]}).to_string())
        .unwrap();
    let out = tessera(&dir).args(["flow", "import"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("State [A] has type [run-function]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = tessera(&dir)
        .args([
            "flow",
            "forward-to-slack",
            "--number",
            "+15550002222",
            "--webhook",
            "https://hooks.slack.com/services/T/B/X",
            "--redact",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let server = Running::start(&dir, &[]);
    let client = tessera_testkit::http_client();
    let get = |path: &str| client.get(format!("{}{path}", server.base)).header("Authorization", &key).send();
    let flows: serde_json::Value = get("/api/flow").await.unwrap().json().await.unwrap();
    assert_eq!(flows["flows"].as_array().unwrap().len(), 3, "no orphan from the refused imports: {flows}");
    let numbers: serde_json::Value = get("/api/flow/numbers").await.unwrap().json().await.unwrap();
    assert_eq!(numbers["numbers"][0], json!({"number": "+15550001111", "flowId": moved_to}));
    assert_eq!(numbers["numbers"].as_array().unwrap().len(), 2);
    assert!(server.stop().success());
}

#[tokio::test]
async fn refused_webhooks_say_why_in_the_log() {
    let dir = temp_dir();
    let server = Running::start(&dir, &[]);
    let key = server.printed_key.clone().unwrap();
    let client = tessera_testkit::http_client();
    let m = json!({"messenger": {"type": "Twilio", "name": "t", "accountSID": "AC1", "authToken": "tok",
                                 "fromPhoneNumber": "+15550001111", "channels": []}});
    let r = client.post(format!("{}/api/messenger", server.base)).header("Authorization", &key).json(&m).send().await;
    assert_eq!(r.unwrap().status(), 200);
    let inbound = [("AccountSid", "AC1"), ("From", "+15557654321"), ("To", "+15550001111"), ("Body", "hi")];
    let post = |base: &str| {
        client
            .post(format!("{base}/webhooks/twilio/sms"))
            .header("X-Twilio-Signature", "bm9wZQ==")
            .form(&inbound)
            .send()
    };
    assert_eq!(post(&server.base).await.unwrap().status(), 403);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(log.contains("rejected an inbound Twilio message: public_url is unset"), "{log}");

    let server = Running::start(&dir, &[("TESSERA_PUBLIC_URL", "https://tessera.example.com")]);
    assert_eq!(post(&server.base).await.unwrap().status(), 403);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(log.contains("https://tessera.example.com/webhooks/twilio/sms"), "the URL that was checked: {log}");
    assert!(log.contains("does not match"), "{log}");
}

/// The README's walk-through, pasted as a reader would: every `sh` block from
/// "## Walk-through" to "## API", in order, in one shell, against a fresh server.
fn walk_through(readme: &str) -> String {
    let section = readme.split("\n## Walk-through").nth(1).unwrap().split("\n## API").next().unwrap();
    let mut script = String::from("set -euo pipefail\n");
    let mut in_block = false;
    for line in section.lines() {
        match (in_block, line) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, l) => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    script
}

#[tokio::test]
async fn the_readme_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let script = walk_through(&readme);
    assert!(script.lines().count() > 30, "the walk-through was found: {script}");
    let dir = temp_dir();
    let server = Running::start(&dir, &[]);
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BASE", &server.base)
        .env("TESSERA", BIN)
        .env("TESSERA_LOG_LEVEL", "warn")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the walk-through finished").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nscript:\n{script}");
    // What the blocks print, in order: the token's subject, a key id, ten recovery codes,
    // the trusted sign-in's user, then Verify's pending and approved.
    let printed: Vec<&str> = stdout.lines().collect();
    assert!(printed.contains(&"10"), "ten recovery codes: {stdout}");
    assert!(printed.windows(2).any(|w| w == ["pending", "approved"]), "Verify approved the code: {stdout}");
    assert!(printed.contains(&"Sign-ins from this address are blocked."), "the action's test run denied: {stdout}");
    assert!(printed.contains(&"gate"), "the action was bound: {stdout}");
    assert!(printed.contains(&server.base.as_str()), "the issuer: {stdout}");
    assert!(server.stop().success());
}

#[test]
fn the_license_matches_the_manifest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""), "the workspace's license");
    let license = std::fs::read_to_string(root.join("LICENSE")).expect("a LICENSE file");
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
}
