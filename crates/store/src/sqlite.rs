//! SQLite: a file beside the server, WAL mode so readers never wait for the writer.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use tessera_core::store::StoreError;

use crate::{migration, unavailable};

pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<AnyPool, StoreError> {
    if let Some(file) = crate::sqlite_file(url)
        && let Some(dir) = Path::new(file).parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let url = if url.contains("mode=") {
        url.to_owned()
    } else {
        format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
    };
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(unavailable)
}

pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
        migration(2, "two factor", include_str!("../migrations/sqlite/0002_two_factor.sql")),
        migration(3, "messengers", include_str!("../migrations/sqlite/0003_messengers.sql")),
        migration(4, "voice prompts", include_str!("../migrations/sqlite/0004_voice_prompts.sql")),
        migration(5, "verify", include_str!("../migrations/sqlite/0005_verify.sql")),
        migration(6, "flows", include_str!("../migrations/sqlite/0006_flows.sql")),
        migration(7, "oidc", include_str!("../migrations/sqlite/0007_oidc.sql")),
        migration(8, "application active", include_str!("../migrations/sqlite/0008_application_active.sql")),
        migration(9, "flow run lease", include_str!("../migrations/sqlite/0009_flow_run_lease.sql")),
        migration(10, "email verified", include_str!("../migrations/sqlite/0010_email_verified.sql")),
        migration(11, "limit locks", include_str!("../migrations/sqlite/0011_limit_locks.sql")),
    ])
}
