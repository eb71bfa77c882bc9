//! Second factors: authenticator apps, SMS codes, recovery codes, the challenge that
//! a password login becomes when a user has a factor, and remembered devices.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::ids::UserId;
use crate::messaging::Channel;
use crate::phone::PhoneNumber;
use crate::totp::TotpParams;
use crate::{CoreError, Timestamp, base32, random};

/// A method's id within its user, short like FusionAuth's (`2KSZ`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MethodId(String);

impl MethodId {
    pub fn generate() -> Result<Self, CoreError> {
        let mut b = [0u8; 5];
        random::fill(&mut b)?;
        Ok(MethodId(base32::encode(&b)))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| MethodId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticator {
    /// The TOTP seed, sealed with the AEAD key (context: user id and method id).
    pub sealed_secret: String,
    pub params: TotpParams,
    /// The last time step accepted, so no code is accepted twice.
    pub last_step: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodKind {
    Authenticator(Authenticator),
    Sms { phone: PhoneNumber },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwoFactorMethod {
    pub id: MethodId,
    pub user_id: UserId,
    pub kind: MethodKind,
    pub created_at: Timestamp,
}

impl TwoFactorMethod {
    /// FusionAuth's `method` value.
    pub fn method_name(&self) -> &'static str {
        match self.kind {
            MethodKind::Authenticator(_) => "authenticator",
            MethodKind::Sms { .. } => "sms",
        }
    }

    pub fn phone(&self) -> Option<&PhoneNumber> {
        match &self.kind {
            MethodKind::Sms { phone } => Some(phone),
            MethodKind::Authenticator(_) => None,
        }
    }
}

/// What seals a TOTP secret to its row.
pub fn secret_context(user: UserId, method: &MethodId) -> Vec<u8> {
    format!("totp:{user}:{}", method.as_str()).into_bytes()
}

/// A code sent for a challenge; only its keyed hash is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    pub method_id: MethodId,
    /// A text or a call: which factor a sign-in that passes it used.
    pub channel: Channel,
    pub hash: String,
    pub expires_at: Timestamp,
}

/// A code sent outside a challenge: to enable an SMS factor (`enable:<phone>`) or to
/// prove possession when disabling one (`manage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCode {
    pub user_id: UserId,
    pub purpose: String,
    pub hash: String,
    pub expires_at: Timestamp,
    pub failures: u32,
}

/// A remembered device: skips the challenge for its user until it expires or the
/// user's methods change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustToken {
    pub digest: String,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct TwoFactorPolicy {
    pub challenge_ttl: Duration,
    pub max_attempts: u32,
    pub code_ttl: Duration,
    pub code_digits: u32,
    pub send_limit: u32,
    pub send_window: Duration,
    /// Steps either side of now that a TOTP code may come from.
    pub totp_window: u32,
    pub trust_ttl: Duration,
    /// The name authenticator apps show.
    pub issuer: String,
    /// Wrong codes in a row, across challenges, before the account's second factor
    /// locks (NIST SP 800-63B: at most 100).
    pub account_max_failures: u32,
    pub account_lock_for: Duration,
}

impl Default for TwoFactorPolicy {
    fn default() -> Self {
        TwoFactorPolicy {
            challenge_ttl: Duration::from_secs(300),
            max_attempts: 5,
            code_ttl: Duration::from_secs(300),
            code_digits: 6,
            send_limit: 5,
            send_window: Duration::from_secs(60),
            totp_window: 1,
            trust_ttl: Duration::from_secs(30 * 24 * 3600),
            issuer: "Tessera".into(),
            account_max_failures: 100,
            account_lock_for: Duration::from_secs(3600),
        }
    }
}

/// A numeric code from the OS CSPRNG, without modulo bias.
pub fn numeric_code(digits: u32) -> Result<String, CoreError> {
    let modulus = 10u32.pow(digits.clamp(4, 9));
    let limit = u32::MAX - (u32::MAX % modulus);
    loop {
        let mut b = [0u8; 4];
        random::fill(&mut b)?;
        let n = u32::from_be_bytes(b);
        if n < limit {
            return Ok(format!("{:0width$}", n % modulus, width = digits.clamp(4, 9) as usize));
        }
    }
}

pub const RECOVERY_CODES: usize = 10;

/// Ten codes like `K3PXQ-7TBWN`: 50 bits each, in an alphabet without 0/O or 1/I.
pub fn recovery_codes() -> Result<Vec<String>, CoreError> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut b = [0u8; 7];
            random::fill(&mut b)?;
            let s = base32::encode(&b);
            Ok(format!("{}-{}", &s[0..5], &s[5..10]))
        })
        .collect()
}

/// How a typed recovery code is compared: upper case, no dashes or spaces.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// `+1******1212`: enough for a person to recognise their phone, in FusionAuth's shape.
pub fn mask_phone(phone: &PhoneNumber) -> String {
    let s = phone.as_str();
    if s.len() <= 6 {
        return "*".repeat(s.len());
    }
    format!("{}{}{}", &s[..2], "*".repeat(s.len() - 6), &s[s.len() - 4..])
}

/// A new 160-bit TOTP secret (NIST asks for at least 112).
pub fn new_totp_secret() -> Result<Vec<u8>, CoreError> {
    let mut b = vec![0u8; 20];
    random::fill(&mut b)?;
    Ok(b)
}

/// A TOTP code as typed: digits only, of the configured length.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

impl OtpCode {
    pub fn parse(input: &str, digits: u32) -> Option<Self> {
        let s: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        (s.len() == digits as usize && s.bytes().all(|b| b.is_ascii_digit())).then_some(OtpCode(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_codes_have_the_length_asked() {
        for _ in 0..200 {
            let c = numeric_code(6).unwrap_or_default();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalise() {
        let codes = recovery_codes().unwrap_or_default();
        assert_eq!(codes.len(), 10);
        let mut uniq = codes.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 10);
        assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
        assert_eq!(normalize_recovery_code(" k3pxq-7tbwn "), "K3PXQ7TBWN");
    }

    #[test]
    fn masks_like_fusionauth() {
        let p = PhoneNumber::parse("+15554441212").unwrap_or_else(|_| PhoneNumber::from_trusted(String::new()));
        assert_eq!(mask_phone(&p), "+1******1212");
    }

    #[test]
    fn otp_codes_are_digits_of_the_right_length() {
        assert!(OtpCode::parse("123 456", 6).is_some());
        assert!(OtpCode::parse("12345", 6).is_none());
        assert!(OtpCode::parse("12345a", 6).is_none());
        assert_eq!(format!("{:?}", OtpCode::parse("123456", 6)), "Some(OtpCode([redacted]))");
    }
}
