//! Test harness: `spawn_app()` runs the real server in-process on a free port with a
//! fresh database and a fake clock, and hands back a client pointed at it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

pub mod mock;
pub use mock::{Captured, MockVendor};
use tessera_core::Timestamp;
use tessera_core::ids::{ApiKeyId, TenantId};
use tessera_core::password::HashParams;
use tessera_core::seal::SealKey;
use tessera_core::secret::Secret;
use tessera_server::clock::Clock;
use tessera_server::{AppState, Config};
use tessera_store::Backend;
use tokio::sync::oneshot;

/// A clock tests move by hand.
pub struct FakeClock(AtomicI64);

impl FakeClock {
    /// 2026-01-01T00:00:00Z.
    pub const START: i64 = 1_767_225_600_000;

    pub fn new() -> Self {
        FakeClock(AtomicI64::new(Self::START))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

pub const TEST_SEAL_KEY: &str = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Cheap argon2 settings so suites stay fast; tests about the real policy set their own.
pub const TEST_HASH: HashParams = HashParams { memory_kib: 1024, iterations: 1, parallelism: 1 };

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub api_key: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub clock: Arc<FakeClock>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP client for tests (TLS provider chosen first, as reqwest requires).
pub fn http_client() -> reqwest::Client {
    tessera_providers::install_tls();
    reqwest::Client::new()
}

pub struct AppBuilder {
    backend: Backend,
    database_url: Option<String>,
    config: Box<dyn FnOnce(&mut Config) + Send>,
    clock: Option<Arc<FakeClock>>,
}

pub fn app() -> AppBuilder {
    AppBuilder { backend: Backend::Sqlite, database_url: None, config: Box::new(|_| {}), clock: None }
}

/// The server on a fresh SQLite database.
pub async fn spawn_app() -> TestApp {
    app().spawn().await
}

impl AppBuilder {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Share a database with another app (several instances, or a restart).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    pub fn clock(mut self, clock: Arc<FakeClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn configure(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.config = Box::new(f);
        self
    }

    pub async fn spawn(self) -> TestApp {
        let database_url = match self.database_url {
            Some(u) => u,
            None => tessera_store::testing::fresh_database_url(self.backend).await.expect("test database"),
        };
        let api_key = "tsk_test_admin_key_0123456789".to_owned();
        let mut config = Config::defaults().expect("default config");
        config.database_url = database_url.clone();
        config.api_key = Some(Secret::new(api_key.clone()));
        config.policies.hash = TEST_HASH;
        config.password_hash_threads = 2;
        config.database_max_connections = 5;
        config.quiet_console = true;
        // Tests stand behind a pretend proxy on loopback, so they can set client addresses.
        config.trusted_proxies = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        // One key for every app in a test, so instances sharing a database agree.
        config.seal_key = Some(SealKey::parse(TEST_SEAL_KEY).expect("test seal key"));
        // Bound first, so the issuer and advertised endpoints name the real port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        config.listen = addr;
        (self.config)(&mut config);

        let clock = self.clock.unwrap_or_default();
        let prepared = tessera_server::prepare(&config, clock.clone()).await.expect("server starts");
        let state = prepared.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tessera_server::serve(listener, prepared, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp {
            addr,
            base: format!("http://{addr}"),
            api_key,
            database_url,
            client: http_client(),
            clock,
            state,
            shutdown: Some(tx),
        }
    }
}

/// A response read whole: status, raw body, and the body as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

async fn read_reply(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, text, json }
}

impl TestApp {
    /// The server's now (its fake clock).
    pub fn now(&self) -> Timestamp {
        Clock::now(self.clock.as_ref())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        read_reply(req).await
    }

    /// Sends every request at once, each on its own task, and returns the replies in
    /// the order given: how limits are tested under concurrency.
    pub async fn all_at_once(&self, requests: Vec<reqwest::RequestBuilder>) -> Vec<Reply> {
        let tasks: Vec<_> = requests.into_iter().map(|r| tokio::spawn(read_reply(r))).collect();
        let mut replies = Vec::with_capacity(tasks.len());
        for t in tasks {
            replies.push(t.await.expect("request task"));
        }
        replies
    }

    /// An admin call with the app's API key.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path)).header("Authorization", &self.api_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(&body)).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, email: &str, password: &str) -> String {
        let r = self
            .admin(reqwest::Method::POST, "/api/user", Some(json!({"user": {"email": email, "password": password}})))
            .await;
        assert_eq!(r.status, 200, "create user: {}", r.text);
        r.json["user"]["id"].as_str().expect("id").to_owned()
    }

    /// Turns on text messages to `phone` for `user` the way a client does (send the
    /// enrolment code, read it from the console messenger, enable); returns the answer,
    /// which holds the recovery codes when this was the first factor.
    pub async fn enable_sms(&self, user: &str, phone: &str) -> Value {
        let sent = self
            .admin(reqwest::Method::POST, "/api/two-factor/send", Some(json!({"userId": user, "mobilePhone": phone})))
            .await;
        assert_eq!(sent.status, 200, "{}", sent.text);
        let e164 = tessera_core::phone::PhoneNumber::parse(phone).expect("a phone number");
        let code = self.last_code_to(e164.as_str()).expect("enrolment code sent");
        let body = json!({"method": "sms", "mobilePhone": phone, "code": code});
        let r = self.admin(reqwest::Method::POST, &format!("/api/user/two-factor/{user}"), Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json
    }

    /// The code an authenticator app with `secret` shows `offset` 30-second steps from the
    /// server's now (default TOTP settings).
    pub fn totp(&self, secret: &[u8], offset: i64) -> String {
        let step = tessera_core::totp::step_at(Clock::now(self.clock.as_ref()), 30);
        tessera_core::totp::totp_at_step(&tessera_core::totp::TotpParams::default(), secret, step + offset)
    }

    /// Turns on an authenticator app with `secret` for `user`, confirmed with the code of
    /// the server's now; returns the answer (recovery codes when it was the first factor).
    pub async fn enable_authenticator(&self, user: &str, secret: &[u8]) -> Value {
        let body = json!({"method": "authenticator", "secretBase32Encoded": tessera_core::base32::encode(secret), "code": self.totp(secret, 0)});
        let r = self.admin(reqwest::Method::POST, &format!("/api/user/two-factor/{user}"), Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json
    }

    /// The second factors of the user with this login id.
    pub async fn factors_of(&self, login_id: &str) -> Vec<tessera_core::twofactor::TwoFactorMethod> {
        let found = self.admin(reqwest::Method::GET, &format!("/api/user?loginId={login_id}"), None).await;
        let id = found.json["user"]["id"].as_str().expect("a user with that login id").parse().expect("a user id");
        self.state.factors.methods(id).await.expect("the factors")
    }

    pub async fn login(&self, login_id: &str, password: &str) -> Reply {
        self.post_json("/api/login", json!({"loginId": login_id, "password": password})).await
    }

    /// The text of the last message the console messenger sent to `phone`.
    pub fn last_message_to(&self, phone: &str) -> Option<String> {
        self.state.console.last_to(phone).map(|m| m.text)
    }

    /// The code in the last message to `phone` (the first run of digits).
    pub fn last_code_to(&self, phone: &str) -> Option<String> {
        let text = self.last_message_to(phone)?;
        let code: String = text.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
        (!code.is_empty()).then_some(code)
    }

    /// Polls `check` until it returns `Some`, for at most 10 s.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes the database refuse every insert into `table`, as a full disk or a lost
    /// connection would part-way through a use case (a trigger, made behind the
    /// server's back); [`TestApp::allow_inserts_into`] takes it away.
    pub async fn refuse_inserts_into(&self, table: &str) {
        let statements = if self.database_url.starts_with("sqlite") {
            vec![format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )]
        } else {
            vec![
                "CREATE OR REPLACE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                    .to_owned(),
                format!(
                    "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
                ),
            ]
        };
        for sql in statements {
            tessera_store::testing::execute(&self.database_url, &sql).await.expect("a refusing trigger");
        }
    }

    pub async fn allow_inserts_into(&self, table: &str) {
        let sql = if self.database_url.starts_with("sqlite") {
            format!("DROP TRIGGER refuse_{table}")
        } else {
            format!("DROP TRIGGER refuse_{table} ON {table}")
        };
        tessera_store::testing::execute(&self.database_url, &sql).await.expect("the trigger dropped");
    }

    /// One number from the database behind the server's back (`SELECT COUNT(*) …`).
    /// A second tenant and an admin key of its own: `(tenant, key, key id)`. No API makes
    /// tenants yet, so the tenant is written as a later release would.
    pub async fn second_tenant(&self) -> (TenantId, Secret, ApiKeyId) {
        let tenant = TenantId::random();
        let insert = format!("INSERT INTO tenants (id, name, created_at) VALUES ('{tenant}', 'second', 0)");
        tessera_store::testing::execute(&self.database_url, &insert).await.expect("a second tenant");
        let (key, record) = tessera_core::apikey::ApiKey::generate(tenant, "second tenant's key", self.now()).unwrap();
        tessera_core::store::ApiKeyStore::insert_api_key(self.state.store.as_ref(), &record).await.expect("its key");
        (tenant, key, record.id)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let rows = tessera_store::testing::query_text(&self.database_url, &format!("SELECT CAST(({sql}) AS TEXT)"))
            .await
            .expect("a count");
        rows[0][0].as_deref().and_then(|n| n.parse().ok()).expect("a number")
    }

    /// How many messages the console messenger has sent.
    pub fn messages_sent(&self) -> usize {
        self.state.console.sent().len()
    }
}
