//! Command-line arguments, parsed by hand: five flags do not need a parser crate.

pub const USAGE: &str =
    "usage: tessera-bench login [--connections N] [--seconds S] [--url URL --api-key KEY] [--server PATH]";

pub struct Args {
    pub scenario: String,
    pub connections: usize,
    pub seconds: u64,
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub server: Option<String>,
    /// Users to set up (two-factor scenarios); 0 picks a size that never runs dry.
    pub users: usize,
}

impl Args {
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let scenario = it.next().ok_or("name a scenario")?;
        let mut a = Args { scenario, connections: 64, seconds: 10, url: None, api_key: None, server: None, users: 0 };
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--connections" => a.connections = value()?.parse().map_err(|_| "--connections: a number")?,
                "--seconds" => a.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
                "--url" => a.url = Some(value()?),
                "--api-key" => a.api_key = Some(value()?),
                "--server" => a.server = Some(value()?),
                "--users" => a.users = value()?.parse().map_err(|_| "--users: a number")?,
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if a.url.is_some() != a.api_key.is_some() {
            return Err("--url and --api-key go together".into());
        }
        Ok(a)
    }
}
