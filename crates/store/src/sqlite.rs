//! SQLite: a file beside the server, WAL mode so readers never wait for the writer.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use tessera_core::store::StoreError;

use crate::db::{self, Readers};
use crate::writer::{WriterSlot, WriterState};
use crate::{migration, unavailable};

/// SQLite's connections: one writer, which writes queue for in the process (in order,
/// without SQLite's sleeping busy handler, its page cache warm, units of work committed
/// in batches), and readers beside it.
pub(crate) struct Lite {
    pub(crate) writer: WriterSlot,
    pub(crate) readers: Readers,
    /// For the migrator, which runs on sqlx.
    pub(crate) url: String,
    /// Set by `SqlStore::close`: later statements fail as a closed pool's would.
    pub(crate) closed: AtomicBool,
}

impl Lite {
    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("the SQLite store was closed".into()));
        }
        Ok(())
    }
}

/// Opens the writer and `readers` readers on the file `url` names.
pub(crate) fn open(url: &str, readers: u32) -> Result<Lite, StoreError> {
    // An in-memory database would be a different one on each connection.
    let path = crate::sqlite_file(url).ok_or_else(|| {
        StoreError::Unavailable("SQLite needs a file (e.g. sqlite://tessera-data/tessera.db), not :memory:".into())
    })?;
    create_parent(path)?;
    let open =
        || db::open_lite(path).map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {path}: {e}")));
    let writer = open()?;
    // At least one: a method holding the writer may read beside it.
    let readers = (0..readers.max(1)).map(|_| open()).collect::<Result<Vec<_>, _>>()?;
    Ok(Lite {
        writer: Arc::new(tokio::sync::Mutex::new(WriterState::new(writer))),
        readers: Readers::new(readers),
        url: url.to_owned(),
        closed: AtomicBool::new(false),
    })
}

fn create_parent(file: &str) -> Result<(), StoreError> {
    if let Some(dir) = Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// An sqlx pool on the same file, for the migrator.
pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<AnyPool, StoreError> {
    if let Some(file) = crate::sqlite_file(url) {
        create_parent(file)?;
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

/// The migrations up to and including `until`.
pub(crate) fn migrator(until: i64) -> Migrator {
    let all = vec![
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
        migration(12, "conversion index", include_str!("../migrations/sqlite/0012_conversion_index.sql")),
        migration(13, "window counts", include_str!("../migrations/sqlite/0013_window_counts.sql")),
        migration(14, "challenge code channel", include_str!("../migrations/sqlite/0014_challenge_code_channel.sql")),
        migration(15, "refresh token methods", include_str!("../migrations/sqlite/0015_refresh_token_methods.sql")),
        migration(16, "challenge return to", include_str!("../migrations/sqlite/0016_challenge_return_to.sql")),
        migration(17, "audit actor", include_str!("../migrations/sqlite/0017_audit_actor.sql")),
        migration(18, "sign-ins", include_str!("../migrations/sqlite/0018_sign_ins.sql")),
        migration(19, "sign-in enrolment", include_str!("../migrations/sqlite/0019_sign_in_enrolment.sql")),
        migration(20, "sign-in device", include_str!("../migrations/sqlite/0020_sign_in_device.sql")),
        migration(21, "actions", include_str!("../migrations/sqlite/0021_actions.sql")),
        migration(22, "sign-in scripts", include_str!("../migrations/sqlite/0022_sign_in_scripts.sql")),
    ];
    Migrator::with_migrations(all.into_iter().filter(|m| m.version <= until).collect())
}
