//! The one place that reads the wall clock. Everything else is handed `now`.

use std::time::{SystemTime, UNIX_EPOCH};

use tessera_core::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // this is the clock
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}
