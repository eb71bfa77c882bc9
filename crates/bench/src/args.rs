//! Command-line arguments, parsed by hand: five flags do not need a parser crate.

pub const USAGE: &str = "\
usage: tessera-bench SCENARIO [--connections N] [--seconds S] [--users N] [--database-url URL] [--url URL --api-key KEY] [--server PATH]

scenarios:
  login        password sign-ins (argon2-bound), with unknown-user and wrong-password timing
  login-actions  password sign-ins without, then with three post-login actions bound
  two-factor   password sign-in, then the TOTP second step
  code-check   the second step alone (pre-made challenges)
  verify       Verify API start and check

options:
  --connections N      concurrent connections (default 64)
  --seconds S          how long to load (default 10)
  --users N            users to set up for two-factor scenarios (default: enough never to run dry;
                       code-check: enough for 6,000 checks/s over --seconds)
  --database-url URL   the database of the server it starts (default: a fresh SQLite file;
                       postgres://… for PostgreSQL: give each run its own database)
  --url URL            load a running server instead of starting one (with --api-key)
  --api-key KEY        that server's admin key
  --server PATH        the tessera binary to start (default: the one beside tessera-bench)";

/// What `parse` answers to `--help`: not an error, the caller prints the usage.
pub const HELP: &str = "help";

pub struct Args {
    pub scenario: String,
    pub connections: usize,
    pub seconds: u64,
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub server: Option<String>,
    /// Users to set up (two-factor scenarios); 0 picks a size that never runs dry.
    pub users: usize,
    /// The started server's database; `None` is a fresh SQLite file.
    pub database_url: Option<String>,
}

impl Args {
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let scenario = it.next().ok_or("name a scenario")?;
        if matches!(scenario.as_str(), "--help" | "-h" | "help") {
            return Err(HELP.into());
        }
        let mut a = Args {
            scenario,
            connections: 64,
            seconds: 10,
            url: None,
            api_key: None,
            server: None,
            users: 0,
            database_url: None,
        };
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--connections" => a.connections = value()?.parse().map_err(|_| "--connections: a number")?,
                "--seconds" => a.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
                "--url" => a.url = Some(value()?),
                "--api-key" => a.api_key = Some(value()?),
                "--server" => a.server = Some(value()?),
                "--users" => a.users = value()?.parse().map_err(|_| "--users: a number")?,
                "--database-url" => a.database_url = Some(value()?),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if a.url.is_some() != a.api_key.is_some() {
            return Err("--url and --api-key go together".into());
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_asked_for_not_an_error() {
        for flag in ["--help", "-h", "help"] {
            assert_eq!(Args::parse([flag.to_owned()].into_iter()).err().as_deref(), Some(HELP));
        }
        assert!(Args::parse(["login".to_owned(), "--seconds".to_owned(), "3".to_owned()].into_iter()).is_ok());
    }
}
