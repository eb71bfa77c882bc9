//! Phone numbers, always held in E.164 (`+15554443232`).

use std::fmt;

use phonenumber::Mode;
use serde::Serialize;

#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a phone number in international format (E.164, e.g. +15554443232)")]
pub struct NotAPhoneNumber;

impl PhoneNumber {
    /// Accepts international numbers with the usual punctuation (`+1 (555) 444-3232`).
    /// The country code must exist and the number must have a length that country
    /// uses; we do not demand that the number be assigned, which would reject the
    /// fictional ranges people test with.
    pub fn parse(input: &str) -> Result<Self, NotAPhoneNumber> {
        let trimmed = input.trim();
        if !trimmed.starts_with('+') {
            return Err(NotAPhoneNumber);
        }
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        let allowed = |c: char| c.is_ascii_digit() || " +-().".contains(c);
        if !(8..=15).contains(&digits) || !trimmed.chars().all(allowed) {
            return Err(NotAPhoneNumber);
        }
        let number = phonenumber::parse(None, trimmed).map_err(|_| NotAPhoneNumber)?;
        let e164 = number.format().mode(Mode::E164).to_string();
        if e164.len() != digits + 1 {
            // The parser dropped or reinterpreted digits: not a plain E.164 number.
            return Err(NotAPhoneNumber);
        }
        Ok(PhoneNumber(e164))
    }

    /// A number as people type it in their own country (`020 7946 0958` in `GB`), or
    /// in international format, which wins over the region. `region` is an ISO 3166
    /// alpha-2 code, as a country picker sends it.
    pub fn parse_in_region(region: &str, input: &str) -> Result<Self, NotAPhoneNumber> {
        let trimmed = input.trim();
        if trimmed.starts_with('+') {
            return Self::parse(trimmed);
        }
        let allowed = |c: char| c.is_ascii_digit() || " -().".contains(c);
        if trimmed.is_empty() || !trimmed.chars().all(allowed) {
            return Err(NotAPhoneNumber);
        }
        let id: phonenumber::country::Id = region.to_ascii_uppercase().parse().map_err(|_| NotAPhoneNumber)?;
        let number = phonenumber::parse(Some(id), trimmed).map_err(|_| NotAPhoneNumber)?;
        // Back through the international parser, so both paths accept the same numbers.
        Self::parse(&number.format().mode(Mode::E164).to_string())
    }

    /// For values this type wrote to storage itself.
    pub fn from_trusted(e164: String) -> Self {
        PhoneNumber(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code (`1` for +1…, `91` for +91…), for routing.
    pub fn country_code(&self) -> Option<u16> {
        phonenumber::parse(None, &self.0).ok().map(|n| n.code().value())
    }
}

/// The country calling code of a region (`44` for `GB`), if the numbering plan knows it.
pub fn calling_code(region: &str) -> Option<u16> {
    phonenumber::metadata::DATABASE.by_id(region.to_ascii_uppercase().as_str()).map(|m| m.country_code())
}

/// The main region of a calling code (`GB` for 44, `US` for 1).
pub fn main_region(calling_code: u16) -> Option<&'static str> {
    phonenumber::metadata::DATABASE.region(&calling_code)?.first().copied()
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Phone numbers are personal data: logs get the country code and last two digits.
        let tail = &self.0[self.0.len().saturating_sub(2)..];
        write!(f, "PhoneNumber({}…{tail})", &self.0[..2.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_punctuation_to_e164() {
        assert_eq!(PhoneNumber::parse("+1 (555) 444-3232").map(|p| p.0), Ok("+15554443232".into()));
        assert_eq!(PhoneNumber::parse("+44 20 7946 0958").map(|p| p.0), Ok("+442079460958".into()));
    }

    #[test]
    fn reads_national_numbers_in_the_chosen_region() {
        let parse = |r: &str, n: &str| PhoneNumber::parse_in_region(r, n).map(|p| p.0);
        assert_eq!(parse("GB", "020 7946 0958"), Ok("+442079460958".into()), "the trunk 0 goes");
        assert_eq!(parse("gb", "20 7946 0958"), Ok("+442079460958".into()));
        assert_eq!(parse("US", "(555) 444-3232"), Ok("+15554443232".into()));
        assert_eq!(parse("IN", "98765 43210"), Ok("+919876543210".into()));
        assert_eq!(parse("US", "+44 20 7946 0958"), Ok("+442079460958".into()), "international wins");
        for (region, bad) in [("US", ""), ("US", "555"), ("XX", "5554443232"), ("US", "555-444-3232; drop"), ("", "1")]
        {
            assert_eq!(PhoneNumber::parse_in_region(region, bad), Err(NotAPhoneNumber), "{region} {bad:?}");
        }
    }

    #[test]
    fn knows_calling_codes_of_regions() {
        assert_eq!(calling_code("GB"), Some(44));
        assert_eq!(calling_code("us"), Some(1));
        assert_eq!(calling_code("CA"), Some(1));
        assert_eq!(calling_code("ZZ"), None);
        assert_eq!((main_region(44), main_region(1), main_region(999)), (Some("GB"), Some("US"), None));
    }

    #[test]
    fn knows_its_country_code() {
        assert_eq!(PhoneNumber::parse("+919876543210").ok().and_then(|p| p.country_code()), Some(91));
        assert_eq!(PhoneNumber::parse("+15554443232").ok().and_then(|p| p.country_code()), Some(1));
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for bad in ["", "5554443232", "+", "+1", "hello", "+1 555 444 3232 ext 9", "+999123456789", "+1555444323299999"]
        {
            assert_eq!(PhoneNumber::parse(bad), Err(NotAPhoneNumber), "{bad:?}");
        }
    }
}
