//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with SHA-1, SHA-256 and
//! SHA-512, as authenticator apps compute them.

use hmac::{Hmac, Mac};
use serde::Serialize;

use crate::Timestamp;
use crate::secret::constant_time_eq;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OtpAlgorithm {
    #[serde(rename = "HmacSHA1")]
    Sha1,
    #[serde(rename = "HmacSHA256")]
    Sha256,
    #[serde(rename = "HmacSHA512")]
    Sha512,
}

impl OtpAlgorithm {
    /// FusionAuth's name, also what we store.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "HmacSHA1",
            OtpAlgorithm::Sha256 => "HmacSHA256",
            OtpAlgorithm::Sha512 => "HmacSHA512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HmacSHA1" | "SHA1" => Some(OtpAlgorithm::Sha1),
            "HmacSHA256" | "SHA256" => Some(OtpAlgorithm::Sha256),
            "HmacSHA512" | "SHA512" => Some(OtpAlgorithm::Sha512),
            _ => None,
        }
    }

    /// The name in `otpauth://` URIs.
    fn uri_name(self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "SHA1",
            OtpAlgorithm::Sha256 => "SHA256",
            OtpAlgorithm::Sha512 => "SHA512",
        }
    }
}

/// How codes are made: algorithm, digits and time step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    pub period: u64,
}

impl Default for TotpParams {
    /// What every authenticator app supports: SHA-1, 6 digits, 30 s.
    fn default() -> Self {
        TotpParams { algorithm: OtpAlgorithm::Sha1, digits: 6, period: 30 }
    }
}

fn mac(algorithm: OtpAlgorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    macro_rules! run {
        ($h:ty) => {{
            match <Hmac<$h> as Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                // HMAC takes keys of any length; this arm is unreachable in practice.
                Err(_) => Vec::new(),
            }
        }};
    }
    match algorithm {
        OtpAlgorithm::Sha1 => run!(sha1::Sha1),
        OtpAlgorithm::Sha256 => run!(sha2::Sha256),
        OtpAlgorithm::Sha512 => run!(sha2::Sha512),
    }
}

/// RFC 4226 §5.3: dynamic truncation of the HMAC of the counter.
pub fn hotp(algorithm: OtpAlgorithm, secret: &[u8], counter: u64, digits: u32) -> String {
    let h = mac(algorithm, secret, &counter.to_be_bytes());
    let Some(&last) = h.last() else { return String::new() };
    let offset = usize::from(last & 0x0f);
    let Some(window) = h.get(offset..offset + 4) else { return String::new() };
    let binary = u32::from_be_bytes([window[0] & 0x7f, window[1], window[2], window[3]]);
    let code = u64::from(binary) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The time step that `now` falls in.
pub fn step_at(now: Timestamp, period: u64) -> i64 {
    now.seconds().div_euclid(i64::try_from(period.max(1)).unwrap_or(30))
}

pub fn totp_at_step(params: &TotpParams, secret: &[u8], step: i64) -> String {
    hotp(params.algorithm, secret, u64::try_from(step).unwrap_or(0), params.digits)
}

/// The step within `now` ± `window` steps whose code equals `code`, if any. Every
/// candidate is computed and compared in constant time.
pub fn matching_step(params: &TotpParams, secret: &[u8], code: &str, now: Timestamp, window: u32) -> Option<i64> {
    let current = step_at(now, params.period);
    let w = i64::from(window);
    let mut found = None;
    for step in (current - w)..=(current + w) {
        if step >= 0 && constant_time_eq(totp_at_step(params, secret, step).as_bytes(), code.as_bytes()) {
            found = found.or(Some(step));
        }
    }
    found
}

/// What authenticator apps scan: `otpauth://totp/Issuer:account?secret=…&issuer=…`.
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str, params: &TotpParams) -> String {
    let label = format!("{}:{}", percent(issuer), percent(account));
    format!(
        "otpauth://totp/{label}?secret={secret_base32}&issuer={}&algorithm={}&digits={}&period={}",
        percent(issuer),
        params.algorithm.uri_name(),
        params.digits,
        params.period
    )
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An SVG QR code of `text`, for enrollment pages.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(OtpAlgorithm::Sha1, b"12345678901234567890", counter as u64, 6), *want);
        }
    }

    #[test]
    fn rfc6238_totp_vectors_for_all_three_algorithms() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            let now = Timestamp::from_millis(t * 1000);
            for (alg, secret, want) in [
                (OtpAlgorithm::Sha1, &sha1, c1),
                (OtpAlgorithm::Sha256, &sha256, c256),
                (OtpAlgorithm::Sha512, &sha512, c512),
            ] {
                let p = TotpParams { algorithm: alg, digits: 8, period: 30 };
                assert_eq!(totp_at_step(&p, secret, step_at(now, 30)), want, "{alg:?} at {t}");
                assert_eq!(matching_step(&p, secret, want, now, 0), Some(step_at(now, 30)));
            }
        }
    }

    #[test]
    fn window_accepts_neighbouring_steps_only() {
        let p = TotpParams::default();
        let secret = b"12345678901234567890";
        let now = Timestamp::from_millis(1_700_000_000_000);
        let step = step_at(now, 30);
        let prev = totp_at_step(&p, secret, step - 1);
        let far = totp_at_step(&p, secret, step - 2);
        assert_eq!(matching_step(&p, secret, &prev, now, 1), Some(step - 1));
        assert_eq!(matching_step(&p, secret, &prev, now, 0), None);
        assert_eq!(matching_step(&p, secret, &far, now, 1), None);
    }

    #[test]
    fn uri_is_what_apps_scan() {
        let uri = otpauth_uri("Tessera", "ann@example.com", "JBSWY3DPEHPK3PXP", &TotpParams::default());
        assert_eq!(
            uri,
            "otpauth://totp/Tessera:ann@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Tessera&algorithm=SHA1&digits=6&period=30"
        );
        assert!(qr_svg(&uri).is_some_and(|svg| svg.contains("<svg")));
    }
}
