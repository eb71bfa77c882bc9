//! `tessera`: run the server, apply migrations, or create an admin API key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera_core::service::flows;
use tessera_server::clock::{Clock, SystemClock};
use tessera_server::{Config, prepare, serve};
use tessera_store::StoreOptions;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Self-hosted authentication and multi-factor server")]
struct Cli {
    /// Configuration file [default: ./tessera.toml when it exists]
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (creates the database and an admin key on first start).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage admin API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Print the configuration keys as a Markdown table.
    ConfigReference,
    /// Manage the key that seals secrets at rest.
    SealKey {
        #[command(subcommand)]
        action: SealKeyAction,
    },
    /// Manage flows (Twilio Studio definitions run on inbound messages).
    Flow {
        #[command(subcommand)]
        action: FlowAction,
    },
    /// Re-seal every stored secret under the current seal key (after rotating it:
    /// set the new `seal_key`, move the old one to `seal_keys_previous`, run this).
    Reseal,
}

#[derive(Subcommand)]
enum FlowAction {
    /// Import a Studio flow definition (JSON file), optionally binding a number to it.
    Import {
        /// The flow as Twilio Studio exports it.
        file: PathBuf,
        /// A number (E.164) whose inbound messages start the flow.
        #[arg(long)]
        number: Option<String>,
        /// Take the number from the flow it is bound to now (refused otherwise).
        #[arg(long = "move", requires = "number")]
        move_number: bool,
        /// The flow's name (default: its description).
        #[arg(long)]
        name: Option<String>,
    },
    /// Post every SMS that reaches NUMBER to a Slack incoming webhook.
    ForwardToSlack {
        /// The number (E.164) whose messages are forwarded.
        #[arg(long)]
        number: String,
        /// The Slack incoming-webhook URL.
        #[arg(long)]
        webhook: String,
        /// Take the number from the flow it is bound to now (refused otherwise).
        #[arg(long = "move")]
        move_number: bool,
        /// Post only the code found in each message.
        #[arg(long)]
        redact: bool,
    },
}

#[derive(Subcommand)]
enum SealKeyAction {
    /// Print a new random key (`kid:base64`) for `seal_key`.
    Generate,
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create an admin API key and print it (it is not shown again).
    Create {
        /// What the key is for, shown when keys are listed.
        #[arg(long, default_value = "created with tessera api-key create")]
        description: String,
    },
    /// List the admin keys: id, created, description (never the keys themselves).
    List,
    /// Revoke an admin key by its id (the last one cannot be revoked).
    Revoke {
        /// The key's id, as `api-key list` shows it.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ConfigReference => {
            print!("{}", Config::reference());
            return ExitCode::SUCCESS;
        }
        Command::SealKey { action: SealKeyAction::Generate } => {
            return match tessera_core::seal::SealKey::generate() {
                Ok(k) => {
                    println!("{}", k.expose());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tessera: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let file = cli.config.clone().or_else(|| {
        let default = PathBuf::from("tessera.toml");
        default.exists().then_some(default)
    });
    let config = match Config::load(file.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    tessera_server::telemetry::init(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tessera: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve => {
            // Bind first: a start that cannot listen must not bootstrap the database
            // (and make an admin key it never gets to print).
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            let addr = listener.local_addr()?;
            // With port 0 the issuer and endpoints name the port actually taken.
            let config = Config { listen: addr, ..config };
            let prepared = prepare(&config, Arc::clone(&clock)).await?;
            let shutdown = shutdown_signal();
            if let Some(key) = &prepared.bootstrap.generated_key {
                println!("Created the default tenant and application.");
                println!("Admin API key (shown once, keep it safe): {}", key.expose());
            }
            println!("Tessera listening on http://{addr}");
            tracing::info!(%addr, database = backend_name(&config.database_url), "listening");
            serve(listener, prepared, shutdown).await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            let store = open(&config).await?;
            store.migrate().await?;
            println!("Migrations applied.");
        }
        Command::ApiKey { action: ApiKeyAction::List } => {
            let store = open_existing(&config).await?;
            for k in tessera_core::service::api_keys(&store).await? {
                println!("{}\t{}\t{}", k.id, tessera_core::verify::iso8601(k.created_at), k.description);
            }
        }
        Command::ApiKey { action: ApiKeyAction::Revoke { id } } => {
            let store = open_existing(&config).await?;
            let id = id.parse().map_err(|_| format!("{id:?} is not a key id (see `tessera api-key list`)"))?;
            match tessera_core::service::revoke_api_key(&store, id, &Default::default(), clock.now()).await? {
                tessera_core::service::RevokeKey::Revoked => println!("Revoked."),
                tessera_core::service::RevokeKey::NotFound => return Err("no admin key has that id".into()),
                tessera_core::service::RevokeKey::LastKey => {
                    return Err("that is the only admin key: create another first".into());
                }
            }
        }
        Command::ApiKey { action: ApiKeyAction::Create { description } } => {
            let store = open_existing(&config).await?;
            let key = tessera_core::service::issue_api_key(&store, &description, clock.now()).await?;
            println!("{}", key.expose());
        }
        Command::Reseal => {
            let store = open_existing(&config).await?;
            let sealer = tessera_server::sealing::sealer(&config)?;
            let report = tessera_core::service::reseal(&store, &sealer).await?;
            println!("Re-sealed {} values under key {}.", report.resealed, sealer.current_id());
            for (kid, n) in &report.recovery_codes_on_old_keys {
                println!(
                    "{n} recovery codes are keyed with key {kid}: keep it in seal_keys_previous until those users make new codes."
                );
            }
        }
        Command::Flow { action } => {
            let store = open_existing(&config).await?;
            let tenant = tessera_core::store::TenantStore::default_tenant(&store).await?.ok_or("no tenant")?.id;
            let sealer = tessera_server::sealing::sealer(&config)?;
            let flows = flows::Flows::new(std::sync::Arc::new(store), sealer);
            let flow = match action {
                FlowAction::Import { file, number, move_number, name } => {
                    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                    let definition: serde_json::Value =
                        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
                    let request =
                        number.as_deref().map(|number| flows::NumberRequest { number, move_from_other: move_number });
                    flows.import(tenant, definition, name, request, clock.now()).await.map_err(explain)?
                }
                FlowAction::ForwardToSlack { number, webhook, redact, move_number } => {
                    let request = flows::NumberRequest { number: &number, move_from_other: move_number };
                    flows.forward_to_slack(tenant, request, &webhook, redact, clock.now()).await.map_err(explain)?
                }
            };
            println!("{}", flow.sid);
        }
        Command::ConfigReference | Command::SealKey { .. } => {}
    }
    Ok(())
}

/// Validation errors as lines a person can read.
fn explain(e: tessera_core::CoreError) -> String {
    match e {
        tessera_core::CoreError::Invalid(v) => {
            v.fields.values().flatten().chain(&v.general).map(|p| p.message.clone()).collect::<Vec<_>>().join("\n")
        }
        other => other.to_string(),
    }
}

async fn open(config: &Config) -> Result<tessera_store::SqlStore, tessera_core::store::StoreError> {
    tessera_store::open(&config.database_url, &StoreOptions { max_connections: 2 }).await
}

/// For commands that work on an installation (`api-key`, `reseal`, `flow`): the
/// database must exist and be set up. Run in the wrong directory, they would otherwise
/// make a new, empty one beside it (and, with it, an admin key nobody sees).
async fn open_existing(config: &Config) -> Result<tessera_store::SqlStore, Box<dyn std::error::Error>> {
    let shown = tessera_store::display_url(&config.database_url);
    eprintln!("tessera: using the database {shown}");
    if let Some(file) = tessera_store::sqlite_file(&config.database_url)
        && !std::path::Path::new(file).exists()
    {
        return Err(format!(
            "there is no database at {file}: run this where `tessera serve` keeps its data, \
             or name yours with --config or TESSERA_DATABASE_URL"
        )
        .into());
    }
    let store = open(config).await?;
    store.migrate().await?;
    if tessera_core::store::TenantStore::default_tenant(&store).await?.is_none() {
        return Err(format!("the database {shown} is not set up yet: start `tessera serve` on it once").into());
    }
    Ok(store)
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") { "sqlite" } else { "postgres" }
}

/// SIGTERM (what service managers send) or Ctrl-C, registered for SIGTERM and Ctrl-C at once (not when first awaited), so a signal that
/// arrives just after the start was announced stops the server gracefully.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
