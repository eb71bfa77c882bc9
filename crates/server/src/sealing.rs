//! Where the AEAD key for secrets at rest comes from: configuration, or for a SQLite
//! database without one, a `seal.key` file generated beside the database on first
//! start (so the zero-configuration start still seals). PostgreSQL deployments run
//! several servers, which must share one key, so there it must be configured.

use std::io::Write;
use std::path::{Path, PathBuf};

use tessera_core::seal::{SealKey, Sealer};

use crate::config::Config;

pub fn sealer(config: &Config) -> Result<Sealer, String> {
    let current = match &config.seal_key {
        Some(k) => k.clone(),
        None => key_file_for(&config.database_url).map(|path| load_or_create(&path)).unwrap_or_else(|| {
            Err("seal_key must be configured with PostgreSQL (every server needs the same key): \
                     generate one with `tessera seal-key generate` and set TESSERA_SEAL_KEY"
                .into())
        })?,
    };
    Ok(Sealer::new(current, config.seal_keys_previous.clone()))
}

fn key_file_for(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    Some(Path::new(file).parent().unwrap_or(Path::new(".")).join("seal.key"))
}

fn load_or_create(path: &Path) -> Result<SealKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => SealKey::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SealKey::generate().map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut f) => {
                    f.write_all(format!("{}\n", key.expose()).as_bytes())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    tracing::warn!(path = %path.display(), "generated a seal key for secrets at rest; back it up with the database");
                    Ok(key)
                }
                // Another process created it a moment ago: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
