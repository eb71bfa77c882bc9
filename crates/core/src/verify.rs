//! Phone verification in the shape of Twilio Verify v2: services, verifications and
//! their statuses, and the fraud guard's rules. Pure rules here; the use cases are in
//! `service::verify`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::messaging::Channel;
use crate::phone::PhoneNumber;
use crate::{CoreError, Timestamp, random};

/// Twilio-style ids: two letters and 32 hex digits (`VA…`, `VE…`, `AC…`).
pub fn new_sid(prefix: &str) -> Result<String, CoreError> {
    let mut b = [0u8; 16];
    random::fill(&mut b)?;
    Ok(format!("{prefix}{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// ISO 8601 in UTC, as Twilio writes dates (`2026-11-23T05:20:00Z`).
pub fn iso8601(t: Timestamp) -> String {
    let secs = t.seconds();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A Verify API credential: the account sid is the user name, the token the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyAccount {
    pub sid: String,
    pub tenant_id: TenantId,
    pub token_digest: String,
    pub created_at: Timestamp,
}

/// A sliding-window limit: at most `max` in `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    pub max: u32,
    pub window_seconds: u64,
}

impl Limit {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_seconds)
    }
}

/// Windows are counted in buckets this many to a window (at least a second wide), so a
/// count reads a few hundred rows however busy the key, and overstates by at most a
/// bucket: a six-hundredth of the window, on the side of the limit.
const BUCKETS_PER_WINDOW: u64 = 600;

/// The end of the bucket `at` falls in, for a window of `window`: buckets are aligned
/// to their width, so every send in one shares the row. A window beginning at `since`
/// counts the buckets ending after `since`, which include every send after it.
pub fn bucket_end(at: Timestamp, window: Duration) -> Timestamp {
    let width = i64::try_from((window.as_millis() / u128::from(BUCKETS_PER_WINDOW)).max(1000)).unwrap_or(i64::MAX);
    Timestamp::from_millis(at.millis().div_euclid(width).saturating_mul(width).saturating_add(width))
}

/// The fraud guard of one service. Defaults follow Twilio's published ones where it
/// has them (5 sends per number per 10 minutes) and are conservative elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FraudGuard {
    /// Country calling codes verifications may go to; empty means all.
    pub allowed_countries: Vec<u16>,
    pub per_number: Limit,
    pub per_prefix: Limit,
    pub per_ip: Limit,
    pub per_service: Limit,
    /// Conversion tracking: look back this far…
    pub conversion_window_seconds: u64,
    /// …and once a prefix has at least this many verifications…
    pub min_sample: u32,
    /// …block it when fewer than this share were approved…
    pub min_conversion: f64,
    /// …for this long.
    pub block_seconds: u64,
}

impl Default for FraudGuard {
    fn default() -> Self {
        FraudGuard {
            allowed_countries: Vec::new(),
            per_number: Limit { max: 5, window_seconds: 600 },
            per_prefix: Limit { max: 100, window_seconds: 3600 },
            per_ip: Limit { max: 50, window_seconds: 3600 },
            per_service: Limit { max: 10_000, window_seconds: 3600 },
            conversion_window_seconds: 3600,
            min_sample: 20,
            min_conversion: 0.2,
            block_seconds: 3600,
        }
    }
}

impl FraudGuard {
    /// For second-factor sends, where a per-user limit (5 a minute) already applies:
    /// the per-number window is looser than Verify's.
    pub fn mfa_default() -> Self {
        FraudGuard { per_number: Limit { max: 10, window_seconds: 600 }, ..FraudGuard::default() }
    }

    /// Windows longer than [`MAX_WINDOW`] are refused: sends older than that are purged,
    /// so a window's count never grows with history.
    pub fn validate(&self) -> Result<(), crate::validation::ValidationErrors> {
        let mut errors = crate::validation::ValidationErrors::default();
        let windows = [
            ("perNumber.windowSeconds", self.per_number.window_seconds),
            ("perPrefix.windowSeconds", self.per_prefix.window_seconds),
            ("perIp.windowSeconds", self.per_ip.window_seconds),
            ("perService.windowSeconds", self.per_service.window_seconds),
            ("conversionWindowSeconds", self.conversion_window_seconds),
        ];
        for (field, seconds) in windows {
            if seconds == 0 || seconds > MAX_WINDOW.as_secs() {
                let message = format!("The [{field}] must be between 1 and {} seconds.", MAX_WINDOW.as_secs());
                errors.add(field, "outOfRange", message);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    pub fn allows_country(&self, country: Option<u16>) -> bool {
        self.allowed_countries.is_empty() || country.is_some_and(|c| self.allowed_countries.contains(&c))
    }

    /// Whether a prefix's history says "pumping": enough volume, too few approvals.
    pub fn low_conversion(&self, started: u32, approved: u32) -> bool {
        started >= self.min_sample && f64::from(approved) < self.min_conversion * f64::from(started)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VerifyService {
    pub sid: String,
    pub tenant_id: TenantId,
    pub account_sid: String,
    pub friendly_name: String,
    pub code_length: u32,
    pub custom_code_enabled: bool,
    /// How long a code is valid (Twilio: 10 minutes).
    pub ttl: Duration,
    pub guard: FraudGuard,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Canceled,
    MaxAttemptsReached,
    Expired,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Canceled => "canceled",
            Status::MaxAttemptsReached => "max_attempts_reached",
            Status::Expired => "expired",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Pending,
            Status::Approved,
            Status::Canceled,
            Status::MaxAttemptsReached,
            Status::Expired,
            Status::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Checks allowed per verification, and sends per number per window (Twilio's 5 and 5).
pub const MAX_CHECKS: u32 = 5;

/// The longest window a fraud guard may count over; older sends are purged.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    pub sid: String,
    pub service_sid: String,
    pub account_sid: String,
    pub to: PhoneNumber,
    pub channel: Channel,
    pub status: Status,
    /// Keyed hash, for checking.
    pub code_hash: String,
    /// The code sealed, so a resend within the validity window sends the same code.
    pub sealed_code: String,
    pub checks: u32,
    /// When each code delivery was attempted, and through which channel.
    pub sends: Vec<(Timestamp, Channel)>,
    pub prefix: String,
    pub country: Option<u16>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Verification {
    /// Pending and within its validity window at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.status == Status::Pending && now < self.expires_at
    }
}

/// The number without its last four digits: the unit fraud guard counts and blocks.
pub fn prefix_of(phone: &PhoneNumber) -> String {
    let s = phone.as_str();
    s[..s.len().saturating_sub(4)].to_owned()
}

/// A recorded block: which prefix (or number, or IP), why, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub service_sid: String,
    pub prefix: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_ends_after_every_send_it_holds_and_short_windows_count_by_the_second() {
        let at = Timestamp::from_millis(1_700_000_000_123);
        let minute = bucket_end(at, Duration::from_secs(60));
        assert_eq!(minute.millis(), 1_700_000_001_000, "one-second buckets below ten minutes");
        let hour = bucket_end(at, Duration::from_secs(3600));
        assert_eq!(hour.millis() % 6000, 0, "six-second buckets for an hour");
        assert!(hour.millis() > at.millis() && hour.millis() - at.millis() <= 6000);
        let week = bucket_end(at, MAX_WINDOW);
        assert!(week.millis() > at.millis() && week.millis() - at.millis() <= 1_008_000);
        assert_eq!(bucket_end(Timestamp::from_millis(1_700_000_000_999), Duration::from_secs(60)), minute);
        assert_ne!(bucket_end(Timestamp::from_millis(1_700_000_001_000), Duration::from_secs(60)), minute);
    }

    #[test]
    fn dates_are_iso8601_utc() {
        assert_eq!(iso8601(Timestamp::from_millis(0)), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(Timestamp::from_millis(1_795_412_109_346)), "2026-11-23T05:35:09Z");
        assert_eq!(iso8601(Timestamp::from_millis(951_782_400_000)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn sids_look_like_twilio_ones() {
        let sid = new_sid("VA").unwrap_or_default();
        assert!(is_sid(&sid, "VA"), "{sid}");
        assert!(!is_sid(&sid, "VE"));
        assert!(!is_sid("VA123", "VA"));
    }

    #[test]
    fn conversion_blocks_only_with_enough_sample() {
        let g = FraudGuard::default();
        assert!(!g.low_conversion(19, 0), "too few to judge");
        assert!(g.low_conversion(20, 3));
        assert!(!g.low_conversion(20, 4), "20% is enough");
        assert!(!g.low_conversion(100, 50));
    }

    #[test]
    fn prefixes_drop_the_last_four_digits() {
        let p = PhoneNumber::parse("+15554443232").unwrap_or_else(|_| PhoneNumber::from_trusted(String::new()));
        assert_eq!(prefix_of(&p), "+1555444");
    }

    #[test]
    fn geo_permissions() {
        let g = FraudGuard { allowed_countries: vec![1, 44], ..FraudGuard::default() };
        assert!(g.allows_country(Some(44)));
        assert!(!g.allows_country(Some(91)));
        assert!(FraudGuard::default().allows_country(Some(91)));
    }
}
