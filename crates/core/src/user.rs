//! Users and the rules for what a valid user is.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Timestamp;
use crate::ids::{TenantId, UserId};
use crate::password::{Password, PasswordHash};
use crate::phone::PhoneNumber;
use crate::validation::ValidationErrors;

/// An email address, lower-cased: addresses are compared without regard to case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// A deliberately modest check (one `@`, a dotted domain, no spaces): the only
    /// real proof of an address is a message that arrives.
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        let (local, domain) = s.split_once('@')?;
        let ok = !local.is_empty()
            && s.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        ok.then(|| Email(s.to_lowercase()))
    }

    pub fn from_trusted(s: String) -> Self {
        Email(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A username as the user chose it; uniqueness ignores case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        let ok = !s.is_empty() && s.chars().count() <= 191 && !s.chars().any(char::is_control);
        ok.then(|| Username(s.to_owned()))
    }

    pub fn from_trusted(s: String) -> Self {
        Username(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a person types to sign in: an email address or a username. Normalised the
/// way both are stored, so one lookup finds either.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoginId(String);

impl LoginId {
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        (!s.is_empty() && s.len() <= 254).then(|| LoginId(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A counter key of Tessera's own, in the same table as login ids.
    pub(crate) fn internal(key: String) -> Self {
        LoginId(key)
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub mobile_phone: Option<PhoneNumber>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub data: Map<String, Value>,
    pub active: bool,
    /// The email address is known to be the user's (FusionAuth's `verified`, the ID
    /// token's `email_verified`). Tessera does not send verification mail yet, so only an
    /// administrator's `skipVerification` sets it; changing the address clears it.
    pub email_verified: bool,
    pub password_hash: Option<PasswordHash>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user as a client describes it: every field optional, nothing checked yet (the
/// server reads it from FusionAuth's JSON).
#[derive(Clone, Debug, Default)]
pub struct UserInput {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub mobile_phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub data: Option<Value>,
    pub active: Option<bool>,
}

/// A user description that passed every rule.
#[derive(Clone, Debug)]
pub struct ValidUser {
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub password: Option<Password>,
    pub mobile_phone: Option<PhoneNumber>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub data: Map<String, Value>,
    pub active: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordRules {
    pub min_length: usize,
    pub max_length: usize,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules { min_length: 8, max_length: 256 }
    }
}

const NAME_MAX: usize = 255;

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl UserInput {
    /// Checks every rule and reports every problem at once, under `user.<field>`.
    /// `password_required` is true when creating a user.
    pub fn validate(self, rules: &PasswordRules, password_required: bool) -> Result<ValidUser, ValidationErrors> {
        let mut errors = ValidationErrors::default();

        let email = present(&self.email).and_then(|raw| {
            let parsed = Email::parse(raw);
            if parsed.is_none() {
                errors.add("user.email", "notEmail", "The [user.email] property is not a valid email address.");
            }
            parsed
        });
        let username = present(&self.username).and_then(|raw| {
            let parsed = Username::parse(raw);
            if parsed.is_none() {
                errors.add("user.username", "tooLong", "The [user.username] property is longer than 191 characters.");
            }
            parsed
        });
        if present(&self.email).is_none() && present(&self.username).is_none() {
            errors.add("user.email", "blank", "You must specify either the [user.email] or [user.username] property.");
        }

        let password = match self.password.as_deref() {
            None | Some("") if password_required => {
                errors.add("user.password", "blank", "You must specify the [user.password] property.");
                None
            }
            None | Some("") => None,
            Some(p) => {
                let p = Password::new(p);
                if p.char_len() < rules.min_length {
                    errors.add(
                        "user.password",
                        "tooShort",
                        format!("The [user.password] property must be at least {} characters.", rules.min_length),
                    );
                } else if p.char_len() > rules.max_length {
                    errors.add(
                        "user.password",
                        "tooLong",
                        format!("The [user.password] property must be at most {} characters.", rules.max_length),
                    );
                }
                Some(p)
            }
        };

        let mobile_phone = present(&self.mobile_phone).and_then(|raw| match PhoneNumber::parse(raw) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.add("user.mobilePhone", "invalid", format!("The [user.mobilePhone] property is {e}."));
                None
            }
        });

        let mut name = |field: &str, v: &Option<String>| {
            let v = present(v).map(str::to_owned);
            if v.as_ref().is_some_and(|v| v.chars().count() > NAME_MAX) {
                errors.add(field, "tooLong", format!("The [{field}] property is longer than {NAME_MAX} characters."));
            }
            v
        };
        let first_name = name("user.firstName", &self.first_name);
        let last_name = name("user.lastName", &self.last_name);

        let data = match self.data {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                errors.add("user.data", "invalid", "The [user.data] property must be a JSON object.");
                Map::new()
            }
        };

        errors.into_result(|| ValidUser {
            email,
            username,
            password,
            mobile_phone,
            first_name,
            last_name,
            data,
            active: self.active.unwrap_or(true),
        })
    }
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces. This is what PATCH means for a user.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A description as the server reads it from FusionAuth's field names.
    fn input(v: Value) -> UserInput {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        UserInput {
            email: text("email"),
            username: text("username"),
            password: text("password"),
            mobile_phone: text("mobilePhone"),
            first_name: text("firstName"),
            last_name: text("lastName"),
            data: v.get("data").cloned(),
            active: v.get("active").and_then(Value::as_bool),
        }
    }

    #[test]
    fn email_or_username_is_required() {
        let e = input(json!({"password": "longenough"})).validate(&PasswordRules::default(), true);
        let e = e.err().map(|e| e.fields).unwrap_or_default();
        assert_eq!(e["user.email"][0].code, "[blank]user.email");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let e = input(json!({"email": "nope", "password": "short", "mobilePhone": "12", "data": [1]}))
            .validate(&PasswordRules::default(), true)
            .err()
            .map(|e| e.fields)
            .unwrap_or_default();
        let codes: Vec<_> = e.values().flatten().map(|p| p.code.as_str()).collect();
        assert_eq!(
            codes,
            ["[invalid]user.data", "[notEmail]user.email", "[invalid]user.mobilePhone", "[tooShort]user.password"]
        );
    }

    #[test]
    fn valid_user_is_normalised() {
        let u =
            input(json!({"email": " Ann@Example.COM ", "password": "longenough", "mobilePhone": "+1 555 444 3232"}))
                .validate(&PasswordRules::default(), true);
        let u = u.ok();
        assert_eq!(u.as_ref().and_then(|u| u.email.clone()).map(|e| e.0), Some("ann@example.com".into()));
        assert_eq!(u.and_then(|u| u.mobile_phone).map(|p| p.as_str().to_owned()), Some("+15554443232".into()));
    }

    #[test]
    fn password_is_optional_on_update() {
        assert!(input(json!({"username": "ann"})).validate(&PasswordRules::default(), false).is_ok());
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }
}
