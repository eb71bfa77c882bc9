//! Putting the server together: storage, hashing pool and identity service into an
//! `AppState`, routes and middleware into a `Router`, and serving it until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tessera_core::audit::AuditKind;
use tessera_core::service::flows::Flows;
use tessera_core::service::{Applications, Factors, Messengers, Users, VerifyApi};
use tessera_core::service::{BootstrapReport, Deps, Identity, Policies, bootstrap};
use tessera_core::store::Store;
use tessera_core::{CoreError, store::StoreError};
use tessera_providers::{ConsoleMessenger, Router as MessageRouter};
use tessera_store::StoreOptions;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::clock::Clock;
use crate::config::Config;
use crate::hashing::HashPool;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub identity: Arc<Identity>,
    /// The development messenger; tests read codes from it.
    pub console: Arc<ConsoleMessenger>,
    /// Delivers messages through the configured messengers.
    pub router: Arc<MessageRouter>,
    /// Tessera's public base URL, for checking webhook signatures.
    pub public_url: Option<String>,
    /// Where clients reach Tessera: `public_url`, else the listening address. The OpenID
    /// endpoints are advertised under it.
    pub base_url: String,
    /// Seals and opens secrets at rest.
    pub sealer: tessera_core::seal::Sealer,
    /// Studio flows: import, numbers, runs.
    pub flows: Flows,
    /// Messengers: configuration, deliveries, the secrets webhooks are checked against.
    pub messengers: Messengers,
    /// The Verify API, with its fraud guard.
    pub verify: VerifyApi,
    /// User administration.
    pub users: Users,
    /// Applications and their OAuth clients.
    pub applications: Applications,
    /// A user's second factors and recovery codes.
    pub factors: Factors,
    /// Actions: management (Auth0's API) and runs.
    pub actions: tessera_core::service::Actions,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    /// HTTP calls and messages of flows.
    pub effects: Arc<tessera_providers::flow_effects::Effects>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub hasher: Arc<HashPool>,
    /// The hosted pages, built in or themed.
    pub templates: Arc<crate::templates::Templates>,
}

/// A server ready to listen, and what its first start did.
pub struct Prepared {
    pub state: AppState,
    pub bootstrap: BootstrapReport,
    pub request_timeout: std::time::Duration,
    pub connections: crate::connections::ConnectionLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Core(#[from] CoreError),
    #[error("{0}")]
    Config(String),
}

/// Opens and migrates the database, bootstraps it on first start, and starts the
/// hashing pool and identity service.
pub async fn prepare(config: &Config, clock: Arc<dyn Clock>) -> Result<Prepared, StartError> {
    // First: a broken theme should stop the start before anything else happens.
    let templates = Arc::new(
        crate::templates::Templates::load(config.pages_template_dir.as_deref())
            .map_err(|e| StartError::Config(e.to_string()))?,
    );
    let options = StoreOptions { max_connections: config.database_max_connections };
    let store = tessera_store::open(&config.database_url, &options).await?;
    store.migrate().await?;
    if store.backend() == tessera_store::Backend::Postgres {
        let tls = store.connection_uses_tls().await?;
        let host = config.database_url.parse::<axum::http::Uri>().ok().and_then(|u| u.host().map(str::to_owned));
        let local = host.as_deref().is_none_or(|h| ["localhost", "127.0.0.1", "[::1]", "::1"].contains(&h));
        if tls || local {
            tracing::info!(tls, "connected to PostgreSQL");
        } else {
            tracing::warn!("the connection to PostgreSQL is not encrypted; add sslmode=require to database_url");
        }
    }
    let store: Arc<dyn Store> = Arc::new(store);
    let report = bootstrap(store.as_ref(), config.api_key.as_ref(), clock.now()).await?;
    let hasher = Arc::new(HashPool::new(config.password_hash_threads, config.policies.hash)?);
    let sealer = crate::sealing::sealer(config).map_err(StartError::Config)?;
    let console = Arc::new(if config.quiet_console { ConsoleMessenger::quiet() } else { ConsoleMessenger::default() });
    let metrics = Arc::new(Metrics::default());
    let events = Arc::clone(&metrics);
    let tenant = store.default_tenant().await?.ok_or_else(|| StartError::Config("database has no tenant".into()))?;
    let now_clock = Arc::clone(&clock);
    let router = Arc::new(
        MessageRouter::new(
            Arc::clone(&store),
            sealer.clone(),
            tenant.id,
            console.clone(),
            Arc::new(move || now_clock.now()),
            config.messaging.clone(),
        )
        .map_err(StartError::Config)?,
    );
    let deps = Deps {
        store: Arc::clone(&store),
        hasher: hasher.clone(),
        sealer: sealer.clone(),
        messenger: router.clone(),
        on_event: Some(Arc::new(move |kind: AuditKind, outcome| events.record_event(kind.as_str(), outcome))),
        post_login: config.post_login.clone(),
        scripts: Arc::new(tessera_scripts::Engine::start(config.actions.clone()).map_err(StartError::Config)?),
    };
    if config.database_url.starts_with("postgres") && config.issuer.is_none() && config.messaging.public_url.is_none() {
        // Several instances on one database must agree on `iss`, or each refuses the others' tokens.
        tracing::warn!(
            issuer = %config.issuer(),
            "neither public_url nor issuer is set: tokens name this instance's address, so other instances behind the same load balancer will refuse them"
        );
    }
    let policies = Policies { issuer: config.issuer(), ..config.policies.clone() };
    let identity = Identity::start(deps, policies, clock.now()).await?;
    for (i, m) in config.messengers.iter().enumerate() {
        let id = m.get("id").and_then(|v| v.as_str()).and_then(|v| v.parse().ok()).ok_or_else(|| {
            StartError::Config(format!(
                "messengers[{i}]: give each configured messenger an `id` (a UUID) so restarts update it"
            ))
        })?;
        let input = api::messengers::configured(m).map_err(|e| StartError::Config(format!("messengers[{i}]: {e}")))?;
        identity.messengers().seed(id, input, clock.now()).await.map_err(|e| match e {
            CoreError::Invalid(v) => {
                let detail: Vec<String> = v.fields.values().flatten().map(|p| p.message.clone()).collect();
                StartError::Config(format!("messengers[{i}]: {}", detail.join(" ")))
            }
            other => StartError::Core(other),
        })?;
    }
    let public_url = config.messaging.public_url.clone();
    let effects = Arc::new(
        tessera_providers::flow_effects::Effects::new(router.clone(), config.flow_http_allowlist.clone())
            .map_err(StartError::Config)?,
    );
    let flows = Flows::new(store.clone(), sealer.clone());
    let interrupted = flows.fail_interrupted_runs(clock.now()).await?;
    if interrupted > 0 {
        tracing::warn!(runs = interrupted, "failed flow runs whose instance stopped");
    }
    let trusted_proxies = Arc::new(config.trusted_proxies.clone());
    let messengers = identity.messengers().clone();
    let verify = identity.verify().clone();
    let users = identity.users().clone();
    let applications = identity.applications().clone();
    let factors = identity.factors().clone();
    let actions = identity.actions().clone();
    let state = AppState {
        actions,
        identity: Arc::new(identity),
        messengers,
        verify,
        users,
        applications,
        factors,
        console,
        router,
        public_url,
        base_url: config.base_url(),
        sealer,
        flows,
        trusted_proxies,
        effects,
        store,
        clock,
        metrics,
        hasher,
        templates,
    };
    Ok(Prepared { state, bootstrap: report, request_timeout: config.request_timeout, connections: config.connections })
}

pub fn router(state: AppState, request_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/api/login", post(api::login::login))
        .route("/api/user", post(api::users::create).get(api::users::search))
        .route(
            "/api/user/{id}",
            post(api::users::create_with_id)
                .get(api::users::get)
                .put(api::users::replace)
                .patch(api::users::patch)
                .delete(api::users::delete),
        )
        .route("/api/two-factor/send/{two_factor_id}", post(api::two_factor::send_for_challenge))
        .route("/api/two-factor/send", post(api::two_factor::send_for_user))
        .route("/api/two-factor/login", post(api::two_factor::login))
        .route("/api/two-factor/secret", get(api::two_factor::secret))
        .route("/api/user/two-factor/{user_id}", post(api::two_factor::enable).delete(api::two_factor::disable))
        .route("/api/user/two-factor/recovery-code/{user_id}", post(api::two_factor::regenerate_recovery_codes))
        .route("/api/v2/actions/actions", get(api::actions::list).post(api::actions::create))
        .route(
            "/api/v2/actions/actions/{id}",
            get(api::actions::get).patch(api::actions::update).delete(api::actions::delete),
        )
        .route("/api/v2/actions/actions/{id}/deploy", post(api::actions::deploy))
        .route("/api/v2/actions/actions/{id}/test", post(api::actions::test))
        .route("/api/v2/actions/actions/{id}/versions", get(api::actions::versions))
        .route("/api/v2/actions/actions/{id}/versions/{version}", get(api::actions::version))
        .route("/api/v2/actions/actions/{id}/versions/{version}/deploy", post(api::actions::deploy_version))
        .route("/api/v2/actions/triggers", get(api::actions::triggers))
        .route(
            "/api/v2/actions/triggers/{trigger}/bindings",
            get(api::actions::bindings).patch(api::actions::update_bindings),
        )
        .route("/api/v2/actions/executions/{id}", get(api::actions::execution))
        .route("/api/messenger", post(api::messengers::create).get(api::messengers::list))
        .route("/api/messenger/deliveries", get(api::messengers::deliveries))
        .route(
            "/api/messenger/{id}",
            post(api::messengers::create_with_id)
                .get(api::messengers::get)
                .put(api::messengers::replace)
                .patch(api::messengers::patch)
                .delete(api::messengers::delete),
        )
        .route("/api/messenger/{id}/test", post(api::messengers::test))
        .route("/webhooks/twilio/status/{id}", post(api::webhooks::twilio_status))
        .route("/webhooks/plivo/status/{id}", post(api::webhooks::plivo_status))
        .route("/webhooks/plivo/answer/{id}/{token}", post(api::webhooks::plivo_answer))
        .route("/v2/Services", post(api::verify::create_service).get(api::verify::list_services))
        .route(
            "/v2/Services/{sid}",
            get(api::verify::get_service).post(api::verify::update_service).delete(api::verify::delete_service),
        )
        .route("/v2/Services/{sid}/Verifications", post(api::verify::start))
        .route("/v2/Services/{sid}/Verifications/{target}", get(api::verify::fetch).post(api::verify::update))
        .route("/v2/Services/{sid}/VerificationCheck", post(api::verify::check))
        .route("/api/verify/account", post(api::verify::create_account))
        .route("/api/verify/{account}/services/{sid}/fraud-guard", axum::routing::put(api::verify::set_fraud_guard))
        .route("/api/verify/{account}/services/{sid}/blocks", get(api::verify::blocks))
        .route("/api/flow", post(api::flows::import).get(api::flows::list))
        .route("/api/flow/forward-to-slack", post(api::flows::forward_to_slack))
        .route("/api/flow/numbers", get(api::flows::numbers))
        .route("/api/flow/run/{id}", get(api::flows::run))
        .route("/api/flow/{id}", get(api::flows::get).delete(api::flows::delete))
        .route("/api/flow/{id}/number", post(api::flows::bind))
        .route("/api/flow/{id}/runs", get(api::flows::runs))
        .route("/webhooks/twilio/sms", post(api::inbound::twilio_sms))
        .route("/webhooks/plivo/sms", post(api::inbound::plivo_sms))
        .route("/webhooks/generic/sms", post(api::inbound::generic_sms))
        .route("/.well-known/openid-configuration", get(api::oidc::discovery))
        .route("/oauth2/token", post(api::oidc::token))
        .route("/oauth2/userinfo", get(api::oidc::userinfo).post(api::oidc::userinfo))
        .route("/api/application", post(api::applications::create).get(api::applications::list))
        .route(
            "/api/application/{id}",
            post(api::applications::create_with_id)
                .get(api::applications::get)
                .put(api::applications::update)
                .delete(api::applications::delete),
        )
        .route("/api/jwt/validate", get(api::jwt::validate))
        .route("/api/jwt/refresh", post(api::jwt::refresh).delete(api::jwt::revoke))
        .route("/api/logout", post(api::jwt::logout))
        .route("/.well-known/jwks.json", get(api::jwt::jwks))
        .route("/api/system/audit-log", get(api::system::audit_log))
        .route("/api/api-key", get(api::system::api_keys))
        .route("/api/api-key/{id}", axum::routing::delete(api::system::revoke_api_key))
        .route("/api/status", get(api::system::status))
        .route("/metrics", get(api::system::metrics))
        .layer(middleware::from_fn(crate::nul::refuse_nul))
        .merge(browser_routes(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The route template, never the path or query: they carry codes
            // (`?code=` on FusionAuth's DELETE two-factor), tokens and personal ids.
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
            tracing::debug_span!("request", method = %req.method(), route)
        }))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(RequestBodyLimitLayer::new(1024 * 1024))
        .with_state(state)
}

/// What a person's browser opens: the hosted pages and the browser-facing OpenID
/// Connect endpoints. An error here is a page in words, never the API's JSON.
fn browser_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(api::oidc::authorize))
        .route("/oauth2/logout", get(api::oidc::logout))
        .route("/login", get(api::pages::login_page).post(api::pages::login_submit))
        .route("/login/continue", get(api::pages::continue_sign_in).post(api::pages::continue_sign_in_form))
        .route("/login/two-factor", post(api::pages::two_factor_submit))
        .route("/login/send", post(api::pages::send_code))
        .route("/login/enroll", get(api::pages::enroll_page).post(api::pages::enroll_submit))
        .route("/login/enroll/phone", post(api::pages::enroll_phone_send))
        .route("/login/enroll/phone/confirm", post(api::pages::enroll_phone_confirm))
        .route("/account", get(api::pages::account))
        .route("/account/remove", post(api::pages::account_remove))
        .route("/account/recovery-codes", post(api::pages::account_recovery_codes))
        .route("/logout", get(api::pages::logout_page).post(api::pages::logout_submit))
        .route_layer(middleware::from_fn_with_state(state.clone(), api::pages::refuse_bad_return_to))
        .route_layer(middleware::from_fn(crate::nul::refuse_nul))
        .route_layer(middleware::from_fn_with_state(state.clone(), api::pages::device_cookie))
        .route_layer(middleware::from_fn_with_state(state, api::pages::html_errors))
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    // The route template, not the path, so user ids do not explode the label set.
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let response = next.run(req).await;
    state.metrics.record_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    prepared: Prepared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let purger = tokio::spawn(purge_periodically(prepared.state.clone()));
    let app = router(prepared.state, prepared.request_timeout);
    let result = crate::connections::serve(listener, app, prepared.connections, shutdown).await;
    purger.abort();
    result
}

/// Every minute, flow runs whose instance died are failed (their lease ran out); every
/// ten, expired challenges, codes and tokens are purged (they are refused on read
/// anyway; this only keeps the tables small). Any server may run it; both are idempotent.
async fn purge_periodically(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    for tick in 0u64.. {
        every.tick().await;
        let now = state.clock.now();
        match state.flows.fail_interrupted_runs(now).await {
            Ok(n) if n > 0 => tracing::warn!(runs = n, "failed flow runs whose instance stopped"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "failing abandoned flow runs failed"),
        }
        if tick % 10 != 0 {
            continue;
        }
        let day_ago = now.minus(std::time::Duration::from_secs(24 * 3600));
        match state.store.purge_expired(now, day_ago).await {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "purged expired records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
    }
}
