//! PostgreSQL: for several Tessera processes behind a load balancer. All shared
//! state (lockouts, tokens, keys) lives in the database, so they act as one server.

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use tessera_core::store::StoreError;

use crate::{StoreOptions, migration};

pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
        // sqlx says only "pool timed out": name the server the operator must look at.
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL at {}: {e}", crate::display_url(url)))
        })
}

/// The migrations up to and including `until`.
pub(crate) fn migrator(until: i64) -> Migrator {
    let all = vec![
        migration(1, "init", include_str!("../migrations/postgres/0001_init.sql")),
        migration(2, "two factor", include_str!("../migrations/postgres/0002_two_factor.sql")),
        migration(3, "messengers", include_str!("../migrations/postgres/0003_messengers.sql")),
        migration(4, "voice prompts", include_str!("../migrations/postgres/0004_voice_prompts.sql")),
        migration(5, "verify", include_str!("../migrations/postgres/0005_verify.sql")),
        migration(6, "flows", include_str!("../migrations/postgres/0006_flows.sql")),
        migration(7, "oidc", include_str!("../migrations/postgres/0007_oidc.sql")),
        migration(8, "application active", include_str!("../migrations/postgres/0008_application_active.sql")),
        migration(9, "flow run lease", include_str!("../migrations/postgres/0009_flow_run_lease.sql")),
        migration(10, "email verified", include_str!("../migrations/postgres/0010_email_verified.sql")),
        migration(11, "limit locks", include_str!("../migrations/postgres/0011_limit_locks.sql")),
        migration(12, "conversion index", include_str!("../migrations/postgres/0012_conversion_index.sql")),
        migration(13, "window counts", include_str!("../migrations/postgres/0013_window_counts.sql")),
        migration(14, "challenge code channel", include_str!("../migrations/postgres/0014_challenge_code_channel.sql")),
        migration(15, "refresh token methods", include_str!("../migrations/postgres/0015_refresh_token_methods.sql")),
        migration(16, "challenge return to", include_str!("../migrations/postgres/0016_challenge_return_to.sql")),
        migration(17, "audit actor", include_str!("../migrations/postgres/0017_audit_actor.sql")),
        migration(18, "sign-ins", include_str!("../migrations/postgres/0018_sign_ins.sql")),
        migration(19, "sign-in enrolment", include_str!("../migrations/postgres/0019_sign_in_enrolment.sql")),
        migration(20, "sign-in device", include_str!("../migrations/postgres/0020_sign_in_device.sql")),
        migration(21, "actions", include_str!("../migrations/postgres/0021_actions.sql")),
        migration(22, "sign-in scripts", include_str!("../migrations/postgres/0022_sign_in_scripts.sql")),
    ];
    Migrator::with_migrations(all.into_iter().filter(|m| m.version <= until).collect())
}
