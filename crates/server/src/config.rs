//! Configuration: built-in defaults, then `tessera.toml`, then `TESSERA_*` variables.
//! Every key may also be read from a file named by `TESSERA_<KEY>_FILE`, which is how
//! secrets arrive from Docker or Kubernetes secrets. An unknown key is an error that
//! names it: a typo must not silently fall back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera_core::login::LockoutPolicy;
use tessera_core::password::HashParams;
use tessera_core::seal::SealKey;
use tessera_core::secret::Secret;
use tessera_core::service::Policies;
use tessera_core::tokens::JwtAlgorithm;
use tessera_core::twofactor::TwoFactorPolicy;
use tessera_core::user::PasswordRules;
use tessera_core::verify::FraudGuard;
use tessera_providers::RouterSettings;
use toml::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    /// `[[messengers]]` tables in TOML, or a JSON array in the environment.
    Messengers,
}

/// Every key: its type, its default (as TOML) and what it does. The README's
/// configuration table is this list.
const KEYS: &[(&str, Kind, &str, &str)] = &[
    ("listen", Kind::Text, "\"127.0.0.1:9011\"", "address and port to serve on"),
    (
        "database_url",
        Kind::Text,
        "\"sqlite://tessera-data/tessera.db\"",
        "sqlite:… file or postgres://… URL (`?sslmode=require`, or `verify-full` with `sslrootcert=…`, for TLS)",
    ),
    (
        "database_max_connections",
        Kind::Integer,
        "",
        "database connections (default: 4 for SQLite, one of them the writer; 10 for PostgreSQL)",
    ),
    ("api_key", Kind::Text, "", "admin API key to accept (created on first start if absent)"),
    ("issuer", Kind::Text, "", "`iss` of access and ID tokens (default: public_url, else http://<listen>)"),
    ("jwt_algorithm", Kind::Text, "\"EdDSA\"", "EdDSA, ES256 or RS256"),
    ("jwt_ttl_seconds", Kind::Integer, "3600", "access token lifetime"),
    ("refresh_token_ttl_seconds", Kind::Integer, "2592000", "refresh token lifetime (30 days)"),
    ("argon2_memory_kib", Kind::Integer, "19456", "argon2id memory cost"),
    ("argon2_iterations", Kind::Integer, "2", "argon2id time cost"),
    ("argon2_parallelism", Kind::Integer, "1", "argon2id lanes"),
    ("password_hash_threads", Kind::Integer, "0", "hashing threads; 0 = one per CPU core"),
    ("password_min_length", Kind::Integer, "8", "shortest accepted password"),
    ("login_max_failures", Kind::Integer, "5", "failed logins that lock a login id"),
    ("login_failure_window_seconds", Kind::Integer, "60", "window in which failures count"),
    ("login_lock_seconds", Kind::Integer, "180", "how long a lock lasts"),
    ("two_factor_ttl_seconds", Kind::Integer, "300", "how long a two-factor challenge (twoFactorId) lives"),
    (
        "sign_in_ttl_seconds",
        Kind::Integer,
        "1800",
        "how long a hosted sign-in page, or a sign-in sent to another page, stays usable",
    ),
    ("two_factor_max_attempts", Kind::Integer, "5", "wrong codes that spend a challenge"),
    ("two_factor_code_ttl_seconds", Kind::Integer, "300", "how long an SMS or voice code is valid"),
    ("two_factor_send_limit", Kind::Integer, "5", "codes sent to one user per window"),
    ("two_factor_send_window_seconds", Kind::Integer, "60", "window of the send limit"),
    ("totp_window_steps", Kind::Integer, "1", "TOTP steps accepted either side of now"),
    ("totp_issuer", Kind::Text, "\"Tessera\"", "issuer name authenticator apps show"),
    ("trust_token_ttl_seconds", Kind::Integer, "2592000", "how long a remembered device skips the challenge"),
    (
        "seal_key",
        Kind::Text,
        "",
        "AES-256-GCM key `kid:base64` for secrets at rest (SQLite: generated into seal.key beside the database if absent)",
    ),
    ("seal_keys_previous", Kind::Text, "", "earlier seal keys, comma-separated, still accepted for reading"),
    (
        "mfa_allowed_country_codes",
        Kind::Text,
        "",
        "country calling codes second-factor codes may be sent to, comma-separated (empty: all)",
    ),
    (
        "flow_http_allowlist",
        Kind::Text,
        "",
        "hosts or IPs flows may call although they are private or loopback, comma-separated",
    ),
    (
        "trusted_proxies",
        Kind::Text,
        "",
        "IP addresses of proxies whose X-Forwarded-For is believed, comma-separated (empty: the header is ignored)",
    ),
    (
        "messengers",
        Kind::Messengers,
        "",
        "messengers to create or update at start: `[[messengers]]` tables with `id` and the /api/messenger fields (a JSON array in the variable)",
    ),
    (
        "public_url",
        Kind::Text,
        "",
        "Tessera's public base URL (e.g. https://auth.example.com); enables provider status callbacks",
    ),
    (
        "pages_template_dir",
        Kind::Text,
        "",
        "directory of page templates that replace the built-in ones of the same name (crates/server/templates)",
    ),
    ("actions_workers", Kind::Integer, "2", "threads that run actions, each with its own JavaScript runtime"),
    ("actions_queue", Kind::Integer, "256", "actions that may wait for a thread; beyond that a sign-in fails busy"),
    ("actions_timeout_seconds", Kind::Integer, "20", "longest one action may run (Auth0's limit)"),
    ("actions_memory_mib", Kind::Integer, "64", "memory one action may use"),
    (
        "actions_http_allowlist",
        Kind::Text,
        "",
        "hosts or IPs actions may fetch although they are private or loopback, comma-separated",
    ),
    (
        "actions_twilio_api_url",
        Kind::Text,
        "\"https://api.twilio.com\"",
        "where require('twilio') sends messages and calls",
    ),
    (
        "actions_twilio_verify_url",
        Kind::Text,
        "\"https://verify.twilio.com\"",
        "where require('twilio') sends Verify calls",
    ),
    ("actions_plivo_api_url", Kind::Text, "\"https://api.plivo.com\"", "where require('plivo') sends messages"),
    ("messenger_deadline_ms", Kind::Integer, "5000", "longest one message may take, retries and failover included"),
    ("messenger_attempt_timeout_ms", Kind::Integer, "2000", "longest one call to one provider may take"),
    ("messenger_attempts", Kind::Integer, "3", "calls per messenger before failing over (first try included)"),
    ("request_timeout_seconds", Kind::Integer, "30", "longest a request may take"),
    (
        "http_header_read_timeout_seconds",
        Kind::Integer,
        "10",
        "longest a client may take to send a request's headers, from connecting or its first byte",
    ),
    (
        "http_idle_timeout_seconds",
        Kind::Integer,
        "60",
        "how long a keep-alive connection may sit idle between requests",
    ),
    (
        "http_max_connections",
        Kind::Integer,
        "256",
        "connections served at once; more wait to be accepted (keep well below `ulimit -n`)",
    ),
    ("log_format", Kind::Text, "\"text\"", "text or json"),
    ("log_level", Kind::Text, "\"info\"", "tracing filter, e.g. info,tessera=debug"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: String,
    database_url: String,
    database_max_connections: Option<u32>,
    api_key: Option<String>,
    issuer: Option<String>,
    jwt_algorithm: String,
    jwt_ttl_seconds: u64,
    refresh_token_ttl_seconds: u64,
    argon2_memory_kib: u32,
    argon2_iterations: u32,
    argon2_parallelism: u32,
    password_hash_threads: usize,
    password_min_length: usize,
    login_max_failures: u32,
    login_failure_window_seconds: u64,
    login_lock_seconds: u64,
    two_factor_ttl_seconds: u64,
    sign_in_ttl_seconds: u64,
    two_factor_max_attempts: u32,
    two_factor_code_ttl_seconds: u64,
    two_factor_send_limit: u32,
    two_factor_send_window_seconds: u64,
    totp_window_steps: u32,
    totp_issuer: String,
    trust_token_ttl_seconds: u64,
    seal_key: Option<String>,
    seal_keys_previous: Option<String>,
    mfa_allowed_country_codes: Option<String>,
    flow_http_allowlist: Option<String>,
    trusted_proxies: Option<String>,
    messengers: Option<Vec<toml::Table>>,
    public_url: Option<String>,
    pages_template_dir: Option<String>,
    actions_workers: u64,
    actions_queue: u64,
    actions_timeout_seconds: u64,
    actions_memory_mib: u64,
    actions_http_allowlist: Option<String>,
    actions_twilio_api_url: String,
    actions_twilio_verify_url: String,
    actions_plivo_api_url: String,
    messenger_deadline_ms: u64,
    messenger_attempt_timeout_ms: u64,
    messenger_attempts: u32,
    request_timeout_seconds: u64,
    http_header_read_timeout_seconds: u64,
    http_idle_timeout_seconds: u64,
    http_max_connections: u64,
    log_format: String,
    log_level: String,
}

/// A comma-separated list, trimmed, without empty entries.
fn list(v: Option<&str>) -> Vec<String> {
    v.unwrap_or_default().split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The `issuer` key as given; see [`Config::issuer`].
    pub issuer: Option<String>,
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub api_key: Option<Secret>,
    pub policies: Policies,
    /// Threads that run argon2; at most this many hashes are in memory at once.
    pub password_hash_threads: usize,
    /// `None`: generate or load `seal.key` beside a SQLite database.
    pub seal_key: Option<SealKey>,
    pub seal_keys_previous: Vec<SealKey>,
    pub messaging: RouterSettings,
    /// Peers whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Hosts flows may call although private (tests, internal services).
    pub flow_http_allowlist: Vec<String>,
    /// How actions run: threads, limits, what `fetch` may reach, the vendors' URLs.
    pub actions: tessera_scripts::Settings,
    /// Messengers to create or update at start (each with an `id`).
    pub messengers: Vec<serde_json::Value>,
    pub request_timeout: Duration,
    pub connections: crate::connections::ConnectionLimits,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Keep console messages in memory only (tests); not a configuration key.
    pub quiet_console: bool,
    /// What loading noticed but did not refuse (unknown variables), for the log once
    /// logging is set up; not a configuration key.
    pub warnings: Vec<String>,
    /// Templates that replace the built-in hosted pages.
    pub pages_template_dir: Option<PathBuf>,
    /// What runs after the first factor of a sign-in (tests set one; the actions of
    /// the next issue will); not a configuration key.
    pub post_login: Option<tessera_core::signin::PostLoginHook>,
}

impl Config {
    /// Where clients reach Tessera: `public_url`, else the listening address (an
    /// unspecified address is reached as localhost).
    pub fn base_url(&self) -> String {
        if let Some(u) = &self.messaging.public_url {
            return u.clone();
        }
        let ip = self.listen.ip();
        let host = match ip {
            _ if ip.is_unspecified() => "localhost".to_owned(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        format!("http://{host}:{}", self.listen.port())
    }

    /// The `iss` of every token: the `issuer` key, else [`Config::base_url`]. One issuer
    /// for access and ID tokens, since OpenID Connect needs the ID token's `iss` to be
    /// the discovery document's, and an access token should not claim another. Never
    /// taken from a request.
    pub fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| self.base_url())
    }

    /// The defaults alone.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_table(BTreeMap::new())
    }

    /// Defaults, then the TOML file (if given and present), then the environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            let parsed: toml::Table =
                toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            for (k, v) in parsed {
                let Some(kind) = kind_of(&k) else {
                    return Err(ConfigError(format!("unknown key `{k}` in {}", path.display())));
                };
                check_type(kind, &k, &v).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                table.insert(k, v);
            }
        }
        let mut files = Vec::new();
        let mut warnings = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("TESSERA_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if let Some(base) = key.strip_suffix("_file").filter(|b| kind_of(b).is_some()) {
                files.push((base.to_owned(), name.clone(), PathBuf::from(value)));
                continue;
            }
            let Some(kind) = kind_of(&key) else {
                // The environment is shared with the platform (Kubernetes names variables
                // after Services), so an unknown variable is not an error; a near-miss of a
                // key is worth a warning, since the setting the operator meant is not applied.
                if let Some(warning) = unknown_variable(&name, &value) {
                    warnings.push(warning);
                }
                continue;
            };
            table.insert(key, typed(kind, &name, value.trim())?);
        }
        // A `_FILE` variable wins over the plain one: it is the deliberate way to pass secrets.
        for (key, var, path) in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError(format!("{var}: cannot read {}: {e}", path.display())))?;
            let kind = kind_of(&key).unwrap_or(Kind::Text);
            table.insert(key, typed(kind, &var, text.trim_end_matches(['\r', '\n']))?);
        }
        let mut config = Self::from_table(table)?;
        config.warnings = warnings;
        Ok(config)
    }

    fn from_table(mut table: BTreeMap<String, Value>) -> Result<Self, ConfigError> {
        for (key, _, default, _) in KEYS {
            if !default.is_empty() && !table.contains_key(*key) {
                let v: toml::Table =
                    toml::from_str(&format!("v = {default}")).map_err(|e| ConfigError(e.to_string()))?;
                if let Some(v) = v.get("v") {
                    table.insert((*key).to_owned(), v.clone());
                }
            }
        }
        let table: toml::Table = table.into_iter().collect();
        let raw: Raw = table.try_into().map_err(|e: toml::de::Error| ConfigError(e.message().to_owned()))?;
        raw.into_config()
    }

    /// The configuration reference as a Markdown table, for the README.
    pub fn reference() -> String {
        let header = "| key | variable | default | meaning |\n|---|---|---|---|\n";
        header.to_owned()
            + &KEYS
                .iter()
                .map(|(k, _, d, doc)| {
                    format!(
                        "| `{k}` | `TESSERA_{}` | {} | {doc} |\n",
                        k.to_ascii_uppercase(),
                        if d.is_empty() { "—" } else { d }
                    )
                })
                .collect::<String>()
    }
}

/// What to say of a `TESSERA_*` variable that names no key: nothing for a Kubernetes
/// service link, otherwise that it is ignored (and which key it may have meant).
fn unknown_variable(name: &str, value: &str) -> Option<String> {
    if is_service_link(name, value) {
        return None;
    }
    let key = name.trim_start_matches("TESSERA_").to_ascii_lowercase();
    let key = key.strip_suffix("_file").unwrap_or(&key);
    let nearest = KEYS.iter().map(|(k, ..)| (edit_distance(key, k), *k)).min();
    Some(match nearest {
        Some((d, k)) if d <= 2 => {
            format!("ignoring the unknown variable {name}: did you mean TESSERA_{}?", k.to_ascii_uppercase())
        }
        _ => format!("ignoring the unknown variable {name}"),
    })
}

/// The variables Kubernetes injects for every Service in the namespace (here, ones whose
/// name starts with `tessera`): `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT[_{NAME}]`,
/// `{SVC}_PORT=tcp://…` and `{SVC}_PORT_{port}_{TCP|UDP|SCTP}[_PROTO|_PORT|_ADDR]`.
fn is_service_link(name: &str, value: &str) -> bool {
    if name.ends_with("_SERVICE_HOST") || name.ends_with("_SERVICE_PORT") || name.contains("_SERVICE_PORT_") {
        return true;
    }
    if name.ends_with("_PORT") && ["tcp://", "udp://", "sctp://"].iter().any(|p| value.starts_with(p)) {
        return true;
    }
    let Some((_, link)) = name.split_once("_PORT_") else { return false };
    let link = ["_PROTO", "_PORT", "_ADDR"].iter().find_map(|s| link.strip_suffix(s)).unwrap_or(link);
    let mut parts = link.split('_');
    let port = parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let proto = parts.next().is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
    port && proto && parts.next().is_none()
}

/// A `log_level` must be levels or `target=level` directives: tracing would take a
/// misspelt level (`inf`) as a target name and quietly turn every other log off.
fn check_log_filter(filter: &str) -> Result<(), ConfigError> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l.trim()));
    for directive in filter.split(',').map(str::trim) {
        let ok = match directive.split_once('=') {
            None => is_level(directive),
            Some((target, level)) => {
                !target.trim().is_empty() && !target.contains(char::is_whitespace) && is_level(level)
            }
        };
        if !ok {
            return Err(ConfigError(format!(
                "log_level: {directive:?} in {filter:?} is neither a level ({}) nor target=level",
                LEVELS.join(", ")
            )));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| ConfigError(format!("log_level: {filter:?}: {e}")))?;
    Ok(())
}

/// Levenshtein distance, for "did you mean" (keys are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = here;
        }
    }
    row[b.len()]
}

/// A value of the wrong type for its key, said with the key's name (the TOML decoder's
/// own message names only the type).
fn check_type(kind: Kind, key: &str, v: &Value) -> Result<(), String> {
    let (ok, wanted) = match kind {
        Kind::Text => (v.is_str(), "a string (in quotes)"),
        Kind::Integer => (v.is_integer(), "a whole number"),
        Kind::Messengers => (v.is_array(), "an array of [[messengers]] tables"),
    };
    let got = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
        Value::Datetime(d) => d.to_string(),
    };
    if ok { Ok(()) } else { Err(format!("`{key}` must be {wanted}, got {got}")) }
}

fn kind_of(key: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, ..)| *k == key).map(|(_, kind, ..)| *kind)
}

fn typed(kind: Kind, name: &str, value: &str) -> Result<Value, ConfigError> {
    match kind {
        Kind::Text => Ok(Value::String(value.to_owned())),
        Kind::Integer => value
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| ConfigError(format!("{name} must be a whole number, got {value:?}"))),
        Kind::Messengers => {
            let json: serde_json::Value =
                serde_json::from_str(value).map_err(|e| ConfigError(format!("{name} must be a JSON array: {e}")))?;
            Value::try_from(json).map_err(|e| ConfigError(format!("{name}: {e}")))
        }
    }
}

impl Raw {
    fn into_config(self) -> Result<Config, ConfigError> {
        // SQLite has one writer at a time, so more connections only hold more caches
        // (measured: 4 instead of 10 saves 2–8 MB under load at the same throughput).
        let default_pool = if self.database_url.starts_with("postgres") { 10 } else { 4 };
        let listen = self
            .listen
            .parse()
            .map_err(|_| ConfigError(format!("listen: {:?} is not host:port (e.g. 127.0.0.1:9011)", self.listen)))?;
        let hash = HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        };
        hash.validate().map_err(ConfigError)?;
        let jwt_algorithm: JwtAlgorithm = self.jwt_algorithm.parse().map_err(ConfigError)?;
        check_log_filter(&self.log_level)?;
        let log_format = match self.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!("log_format: {other:?} is not text or json")));
            }
        };
        if self.login_max_failures == 0 {
            return Err(ConfigError("login_max_failures must be at least 1".into()));
        }
        let seal_key = match self.seal_key.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => Some(SealKey::parse(k).map_err(|e| ConfigError(format!("seal_key: {e}")))?),
            None => None,
        };
        let seal_keys_previous = self
            .seal_keys_previous
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| SealKey::parse(k).map_err(|e| ConfigError(format!("seal_keys_previous: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let public_url = self.public_url.filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ConfigError(format!("public_url: {u:?} must start with https:// or http://")));
        }
        let mfa_countries = self
            .mfa_allowed_country_codes
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.trim_start_matches('+').parse::<u16>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError("mfa_allowed_country_codes: give calling codes like 1,44,91".into()))?;
        let threads = match self.password_hash_threads {
            0 => std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            n => n,
        };
        Ok(Config {
            listen,
            issuer: self.issuer.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()),
            database_url: self.database_url,
            database_max_connections: self.database_max_connections.unwrap_or(default_pool).max(1),
            api_key: self.api_key.filter(|k| !k.is_empty()).map(Secret::new),
            policies: Policies {
                hash,
                password: PasswordRules { min_length: self.password_min_length, ..PasswordRules::default() },
                lockout: LockoutPolicy {
                    max_failures: self.login_max_failures,
                    window: Duration::from_secs(self.login_failure_window_seconds),
                    lock_for: Duration::from_secs(self.login_lock_seconds),
                },
                issuer: String::new(),
                jwt_algorithm,
                jwt_ttl: Duration::from_secs(self.jwt_ttl_seconds),
                refresh_ttl: Duration::from_secs(self.refresh_token_ttl_seconds),
                sign_in_ttl: Duration::from_secs(self.sign_in_ttl_seconds.max(1)),
                two_factor: TwoFactorPolicy {
                    challenge_ttl: Duration::from_secs(self.two_factor_ttl_seconds),
                    max_attempts: self.two_factor_max_attempts.max(1),
                    code_ttl: Duration::from_secs(self.two_factor_code_ttl_seconds),
                    send_limit: self.two_factor_send_limit,
                    send_window: Duration::from_secs(self.two_factor_send_window_seconds),
                    totp_window: self.totp_window_steps,
                    trust_ttl: Duration::from_secs(self.trust_token_ttl_seconds),
                    issuer: self.totp_issuer,
                    ..TwoFactorPolicy::default()
                },
                mfa_guard: FraudGuard { allowed_countries: mfa_countries, ..FraudGuard::mfa_default() },
            },
            password_hash_threads: threads,
            seal_key,
            seal_keys_previous,
            trusted_proxies: self
                .trusted_proxies
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().map_err(|_| ConfigError(format!("trusted_proxies: {p:?} is not an IP address"))))
                .collect::<Result<_, _>>()?,
            flow_http_allowlist: list(self.flow_http_allowlist.as_deref()),
            actions: tessera_scripts::Settings {
                workers: usize::try_from(self.actions_workers.clamp(1, 64)).unwrap_or(1),
                queue: usize::try_from(self.actions_queue.max(1)).unwrap_or(1),
                timeout: Duration::from_secs(self.actions_timeout_seconds.max(1)),
                memory_limit: usize::try_from(self.actions_memory_mib.clamp(4, 4096) * 1024 * 1024)
                    .unwrap_or(usize::MAX),
                http_allowlist: list(self.actions_http_allowlist.as_deref()),
                vendors: tessera_scripts::VendorUrls {
                    twilio_api: self.actions_twilio_api_url,
                    twilio_verify: self.actions_twilio_verify_url,
                    plivo_api: self.actions_plivo_api_url,
                },
            },
            messengers: self
                .messengers
                .unwrap_or_default()
                .into_iter()
                .map(|t| serde_json::to_value(t).map_err(|e| ConfigError(format!("messengers: {e}"))))
                .collect::<Result<_, _>>()?,
            messaging: RouterSettings {
                deadline: Duration::from_millis(self.messenger_deadline_ms),
                attempt_timeout: Duration::from_millis(self.messenger_attempt_timeout_ms),
                max_attempts: self.messenger_attempts.max(1),
                public_url,
                ..RouterSettings::default()
            },
            request_timeout: Duration::from_secs(self.request_timeout_seconds.max(1)),
            connections: crate::connections::ConnectionLimits {
                header_read_timeout: Duration::from_secs(self.http_header_read_timeout_seconds.max(1)),
                idle_timeout: Duration::from_secs(self.http_idle_timeout_seconds.max(1)),
                max_connections: usize::try_from(self.http_max_connections.max(1)).unwrap_or(usize::MAX),
            },
            log_format,
            log_level: self.log_level,
            quiet_console: false,
            warnings: Vec::new(),
            pages_template_dir: self.pages_template_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
            post_login: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9011");
        assert_eq!(c.database_url, "sqlite://tessera-data/tessera.db");
        assert_eq!(c.policies.hash, HashParams { memory_kib: 19456, iterations: 2, parallelism: 1 });
        assert_eq!(c.policies.lockout, LockoutPolicy::default());
        assert!(c.api_key.is_none());
        assert_eq!(c.database_max_connections, 4, "SQLite");
        let env = |url: &str| vec![("TESSERA_DATABASE_URL".to_owned(), url.to_owned())];
        let pg = Config::load(None, env("postgres://db.example.com/tessera")).unwrap();
        assert_eq!(pg.database_max_connections, 10, "PostgreSQL");
        let mut set = env("postgres://db.example.com/tessera");
        set.push(("TESSERA_DATABASE_MAX_CONNECTIONS".into(), "25".into()));
        assert_eq!(Config::load(None, set).unwrap().database_max_connections, 25);
    }

    #[test]
    fn file_then_environment_then_file_variables() {
        let toml =
            temp_file("tessera.toml", "listen = \"0.0.0.0:8080\"\nlogin_max_failures = 7\njwt_algorithm = \"ES256\"\n");
        let secret = temp_file("key", "tsk_from_file\n");
        let c = Config::load(
            Some(&toml),
            env(&[
                ("TESSERA_LOGIN_MAX_FAILURES", "9"),
                ("TESSERA_API_KEY", "plain"),
                ("TESSERA_API_KEY_FILE", secret.to_str().unwrap()),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.policies.lockout.max_failures, 9);
        assert_eq!(c.policies.jwt_algorithm, JwtAlgorithm::ES256);
        assert_eq!(c.api_key.as_ref().map(Secret::expose), Some("tsk_from_file"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let toml = temp_file("tessera.toml", "lisen = \"x\"\n");
        let e = Config::load(Some(&toml), env(&[])).unwrap_err();
        assert!(e.0.contains("unknown key `lisen`"), "{e}");
    }

    #[test]
    fn unknown_variables_are_ignored_and_near_misses_named() {
        let c = Config::load(None, env(&[("TESSERA_DATABSE_URL", "x"), ("TESSERA_FROBNICATE", "1")])).unwrap();
        assert_eq!(c.database_url, "sqlite://tessera-data/tessera.db", "the misspelt variable is not applied");
        assert_eq!(
            c.warnings,
            [
                "ignoring the unknown variable TESSERA_DATABSE_URL: did you mean TESSERA_DATABASE_URL?",
                "ignoring the unknown variable TESSERA_FROBNICATE"
            ]
        );
        let c = Config::load(None, env(&[("TESSERA_API_KYE_FILE", "/nowhere")])).unwrap();
        assert_eq!(c.warnings, ["ignoring the unknown variable TESSERA_API_KYE_FILE: did you mean TESSERA_API_KEY?"]);
    }

    #[test]
    fn kubernetes_service_links_are_not_configuration() {
        // Exactly what Kubernetes injects into every pod for Services `tessera` (port
        // 9011, named http) and `tessera-db` in the namespace.
        let injected = [
            ("TESSERA_PORT", "tcp://10.96.12.7:9011"),
            ("TESSERA_PORT_9011_TCP", "tcp://10.96.12.7:9011"),
            ("TESSERA_PORT_9011_TCP_PROTO", "tcp"),
            ("TESSERA_PORT_9011_TCP_PORT", "9011"),
            ("TESSERA_PORT_9011_TCP_ADDR", "10.96.12.7"),
            ("TESSERA_SERVICE_HOST", "10.96.12.7"),
            ("TESSERA_SERVICE_PORT", "9011"),
            ("TESSERA_SERVICE_PORT_HTTP", "9011"),
            ("TESSERA_DB_PORT", "tcp://10.96.40.2:5432"),
            ("TESSERA_DB_PORT_5432_TCP", "tcp://10.96.40.2:5432"),
            ("TESSERA_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("TESSERA_DB_PORT_5432_TCP_PORT", "5432"),
            ("TESSERA_DB_PORT_5432_TCP_ADDR", "10.96.40.2"),
            ("TESSERA_DB_SERVICE_HOST", "10.96.40.2"),
            ("TESSERA_DB_SERVICE_PORT", "5432"),
        ];
        let mut vars = injected.to_vec();
        vars.push(("TESSERA_LISTEN", "0.0.0.0:9011"));
        let c = Config::load(None, env(&vars)).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9011");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_log_filter_that_would_silence_everything_is_refused() {
        for good in ["info", "warn,tessera=debug", "tower_http=trace, info", "OFF"] {
            assert!(Config::load(None, env(&[("TESSERA_LOG_LEVEL", good)])).is_ok(), "{good}");
        }
        for bad in ["inf", "info,tessera=loud", "=debug", "info,"] {
            let e = Config::load(None, env(&[("TESSERA_LOG_LEVEL", bad)])).unwrap_err();
            assert!(e.0.starts_with("log_level: "), "{bad}: {e}");
        }
    }

    #[test]
    fn the_readme_documents_every_key() {
        let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
        for row in Config::reference().lines() {
            assert!(readme.contains(row), "README.md lacks the row (run `tessera config-reference`):\n{row}");
        }
    }

    #[test]
    fn messengers_come_from_toml_tables_or_a_json_variable() {
        let toml = temp_file(
            "tessera.toml",
            "[[messengers]]\nid = \"3f6c9a2e-1b2d-4c3e-9f00-0a1b2c3d4e5f\"\ntype = \"Twilio\"\nname = \"main\"\npriority = 1\n",
        );
        let c = Config::load(Some(&toml), env(&[])).unwrap();
        assert_eq!(c.messengers.len(), 1);
        assert_eq!(c.messengers[0]["type"], "Twilio");
        assert_eq!(c.messengers[0]["priority"], 1);
        let c =
            Config::load(None, env(&[("TESSERA_MESSENGERS", r#"[{"id": "x", "type": "Console", "name": "dev"}]"#)]))
                .unwrap();
        assert_eq!(c.messengers[0]["name"], "dev");
        let e = Config::load(None, env(&[("TESSERA_MESSENGERS", "nope")])).unwrap_err();
        assert!(e.0.contains("JSON array"), "{e}");
    }

    #[test]
    fn a_wrong_type_in_the_file_names_the_key() {
        let toml = temp_file("tessera.toml", "jwt_ttl_seconds = \"an hour\"\n");
        let e = Config::load(Some(&toml), env(&[])).unwrap_err();
        assert!(e.0.contains("`jwt_ttl_seconds` must be a whole number, got \"an hour\""), "{e}");
        let toml = temp_file("tessera.toml", "listen = 9011\n");
        let e = Config::load(Some(&toml), env(&[])).unwrap_err();
        assert!(e.0.contains("`listen` must be a string"), "{e}");
    }

    #[test]
    fn the_reference_is_a_table_with_a_header() {
        let r = Config::reference();
        assert!(r.starts_with("| key | variable | default | meaning |\n|---|---|---|---|\n"), "{r}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = Config::load(None, env(&[("TESSERA_LISTEN", "nope")])).unwrap_err();
        assert!(e.0.contains("host:port"), "{e}");
        let e = Config::load(None, env(&[("TESSERA_JWT_TTL_SECONDS", "soon")])).unwrap_err();
        assert!(e.0.contains("TESSERA_JWT_TTL_SECONDS must be a whole number"), "{e}");
        let e = Config::load(None, env(&[("TESSERA_JWT_ALGORITHM", "HS256")])).unwrap_err();
        assert!(e.0.contains("HS256"), "{e}");
        let e = Config::load(None, env(&[("TESSERA_ARGON2_MEMORY_KIB", "1")])).unwrap_err();
        assert!(e.0.contains("argon2"), "{e}");
    }
}
