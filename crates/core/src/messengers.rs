//! Configured messengers (which provider accounts deliver codes, for which channels
//! and countries, in which order) and the record of every delivery.

use serde_json::{Map, Value, json};

use crate::Timestamp;
use crate::ids::{DeliveryId, MessengerId, TenantId};
use crate::messaging::{Channel, Purpose};
use crate::phone::PhoneNumber;
use crate::validation::ValidationErrors;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessengerType {
    Twilio,
    TwilioVerify,
    Plivo,
    Generic,
    Slack,
    Console,
}

impl MessengerType {
    pub const ALL: [MessengerType; 6] = [
        MessengerType::Twilio,
        MessengerType::TwilioVerify,
        MessengerType::Plivo,
        MessengerType::Generic,
        MessengerType::Slack,
        MessengerType::Console,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessengerType::Twilio => "Twilio",
            MessengerType::TwilioVerify => "TwilioVerify",
            MessengerType::Plivo => "Plivo",
            MessengerType::Generic => "Generic",
            MessengerType::Slack => "Slack",
            MessengerType::Console => "Console",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// Settings that are secrets: sealed at rest, masked in answers.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            MessengerType::Twilio | MessengerType::TwilioVerify => &["authToken", "apiKeySecret"],
            MessengerType::Plivo => &["authToken"],
            MessengerType::Generic => &["signingSecret"],
            // The webhook URL is the credential: whoever has it can post.
            MessengerType::Slack => &["webhookUrl"],
            MessengerType::Console => &[],
        }
    }

    /// Settings that are not secrets.
    pub fn plain_fields(self) -> &'static [&'static str] {
        match self {
            MessengerType::Twilio => &["accountSID", "apiKeySid", "fromPhoneNumber", "messagingServiceSid"],
            MessengerType::TwilioVerify => &["accountSID", "apiKeySid", "serviceSid"],
            MessengerType::Plivo => &["authId", "src", "powerpackUUID"],
            MessengerType::Generic | MessengerType::Slack | MessengerType::Console => &[],
        }
    }

    fn default_url(self) -> Option<&'static str> {
        match self {
            MessengerType::Twilio => Some("https://api.twilio.com"),
            MessengerType::TwilioVerify => Some("https://verify.twilio.com"),
            MessengerType::Plivo => Some("https://api.plivo.com"),
            MessengerType::Generic | MessengerType::Slack | MessengerType::Console => None,
        }
    }
}

/// A messenger as stored. Secrets are one sealed JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct MessengerConfig {
    pub id: MessengerId,
    pub tenant_id: TenantId,
    pub kind: MessengerType,
    pub name: String,
    pub url: Option<String>,
    pub settings: Map<String, Value>,
    pub sealed_secrets: String,
    /// Which channels it serves; empty means none (e.g. Slack, for notifications only).
    pub channels: Vec<Channel>,
    /// Lower goes first.
    pub priority: i64,
    /// Only these country calling codes (empty: any).
    pub country_codes: Vec<u16>,
    /// Goes first for these country calling codes.
    pub preferred_country_codes: Vec<u16>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a messenger's credentials are sealed under: its id, so they cannot be moved to
/// another messenger.
pub fn seal_context(messenger_id: &str) -> Vec<u8> {
    format!("messenger:{messenger_id}").into_bytes()
}

impl MessengerConfig {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn seal_context(&self) -> Vec<u8> {
        seal_context(&self.id.to_string())
    }

    fn serves(&self, channel: Channel, country: Option<u16>) -> bool {
        self.channels.contains(&channel)
            && (self.country_codes.is_empty() || country.is_some_and(|c| self.country_codes.contains(&c)))
    }
}

/// The messengers to try for a message, in order: those preferred for the number's
/// country first, then by priority (then by age, so the order is stable).
pub fn route<'a>(configs: &'a [MessengerConfig], to: &PhoneNumber, channel: Channel) -> Vec<&'a MessengerConfig> {
    let country = to.country_code();
    let mut candidates: Vec<&MessengerConfig> = configs.iter().filter(|m| m.serves(channel, country)).collect();
    candidates.sort_by_key(|m| {
        let preferred = country.is_some_and(|c| m.preferred_country_codes.contains(&c));
        (!preferred, m.priority, m.created_at, m.id)
    });
    candidates
}

/// A messenger as a client describes it, nothing checked yet (the server reads it from
/// FusionAuth's `{messenger: {type, name, url, …}}`): the provider's settings and
/// secrets are in `rest`, by their wire names.
#[derive(Clone, Debug, Default)]
pub struct MessengerInput {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub url: Option<String>,
    pub channels: Option<Vec<String>>,
    pub priority: Option<i64>,
    pub country_codes: Option<Vec<u16>>,
    pub preferred_country_codes: Option<Vec<u16>>,
    pub rest: Map<String, Value>,
}

/// A validated messenger description; secrets still in the clear, to be sealed.
#[derive(Clone, Debug)]
pub struct ValidMessenger {
    pub kind: MessengerType,
    pub name: String,
    pub url: Option<String>,
    pub settings: Map<String, Value>,
    pub secrets: Map<String, Value>,
    pub channels: Vec<Channel>,
    pub priority: i64,
    pub country_codes: Vec<u16>,
    pub preferred_country_codes: Vec<u16>,
}

impl MessengerInput {
    /// `existing_secrets`: on update, secrets the client did not resend are kept.
    pub fn validate(self, existing_secrets: Option<&Map<String, Value>>) -> Result<ValidMessenger, ValidationErrors> {
        let mut e = ValidationErrors::default();
        let kind = match self.kind.as_deref() {
            Some(k) => MessengerType::parse(k),
            None => None,
        };
        let Some(kind) = kind else {
            let names: Vec<&str> = MessengerType::ALL.iter().map(|t| t.as_str()).collect();
            e.add("messenger.type", "invalid", format!("The [messenger.type] must be one of {}.", names.join(", ")));
            return Err(e);
        };
        let name = self.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if name.is_none() {
            e.add("messenger.name", "blank", "You must specify the [messenger.name] property.");
        }
        let text = |k: &str| self.rest.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let mut settings = Map::new();
        for k in kind.plain_fields() {
            if let Some(v) = text(k) {
                settings.insert((*k).to_owned(), json!(v));
            }
        }
        let mut secrets = existing_secrets.cloned().unwrap_or_default();
        for k in kind.secret_fields() {
            if let Some(v) = text(k) {
                secrets.insert((*k).to_owned(), json!(v));
            }
        }
        let url =
            self.url.as_deref().map(str::trim).filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_owned());
        if kind == MessengerType::Slack
            && let Some(u) = &url
        {
            // FusionAuth-style `url` for the Slack webhook: it is a secret, so it moves.
            secrets.insert("webhookUrl".into(), json!(u));
        }
        let url = if kind == MessengerType::Slack { None } else { url.or(kind.default_url().map(str::to_owned)) };
        if let Some(u) = &url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            e.add("messenger.url", "invalid", "The [messenger.url] must be an http:// or https:// URL.");
        }
        let has = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
        let require = |e: &mut ValidationErrors, ok: bool, field: &str, msg: &str| {
            if !ok {
                e.add(&format!("messenger.{field}"), "blank", msg);
            }
        };
        match kind {
            MessengerType::Twilio | MessengerType::TwilioVerify => {
                require(
                    &mut e,
                    has(&settings, "accountSID"),
                    "accountSID",
                    "You must specify the [messenger.accountSID].",
                );
                let key_pair = has(&settings, "apiKeySid") && has(&secrets, "apiKeySecret");
                require(
                    &mut e,
                    has(&secrets, "authToken") || key_pair,
                    "authToken",
                    "Give [messenger.authToken], or [messenger.apiKeySid] with [messenger.apiKeySecret].",
                );
                if kind == MessengerType::Twilio {
                    let from = has(&settings, "fromPhoneNumber") || has(&settings, "messagingServiceSid");
                    require(
                        &mut e,
                        from,
                        "fromPhoneNumber",
                        "Give [messenger.fromPhoneNumber] or [messenger.messagingServiceSid].",
                    );
                    if let Some(f) = settings.get("fromPhoneNumber").and_then(Value::as_str)
                        && PhoneNumber::parse(f).is_err()
                    {
                        e.add(
                            "messenger.fromPhoneNumber",
                            "invalid",
                            "The [messenger.fromPhoneNumber] is not an E.164 number.",
                        );
                    }
                } else {
                    require(
                        &mut e,
                        has(&settings, "serviceSid"),
                        "serviceSid",
                        "You must specify the Verify [messenger.serviceSid] (VA…).",
                    );
                }
            }
            MessengerType::Plivo => {
                require(&mut e, has(&settings, "authId"), "authId", "You must specify the [messenger.authId].");
                require(&mut e, has(&secrets, "authToken"), "authToken", "You must specify the [messenger.authToken].");
                let from = has(&settings, "src") || has(&settings, "powerpackUUID");
                require(&mut e, from, "src", "Give [messenger.src] or [messenger.powerpackUUID].");
            }
            MessengerType::Generic => {
                require(&mut e, url.is_some(), "url", "You must specify the [messenger.url] to post to.");
                require(
                    &mut e,
                    has(&secrets, "signingSecret"),
                    "signingSecret",
                    "You must specify the [messenger.signingSecret] used to sign requests.",
                );
            }
            MessengerType::Slack => {
                require(
                    &mut e,
                    has(&secrets, "webhookUrl"),
                    "url",
                    "You must specify the Slack incoming webhook [messenger.url].",
                );
            }
            MessengerType::Console => {}
        }
        let default_channels: &[Channel] = match kind {
            MessengerType::Slack => &[],
            MessengerType::Twilio | MessengerType::Plivo | MessengerType::Console => &[Channel::Sms, Channel::Voice],
            MessengerType::TwilioVerify | MessengerType::Generic => &[Channel::Sms, Channel::Voice],
        };
        let channels = match &self.channels {
            None => default_channels.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|c| {
                    let parsed = Channel::parse(c);
                    if parsed.is_none() {
                        e.add("messenger.channels", "invalid", format!("Unknown channel {c:?}: use sms or voice."));
                    }
                    parsed
                })
                .collect(),
        };
        e.into_result(|| ValidMessenger {
            kind,
            name: name.unwrap_or_default(),
            url,
            settings,
            secrets,
            channels,
            priority: self.priority.unwrap_or(0),
            country_codes: self.country_codes.unwrap_or_default(),
            preferred_country_codes: self.preferred_country_codes.unwrap_or_default(),
        })
    }
}

/// `••••1234`: enough to recognise a credential, not to use it.
pub fn mask(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if secret.chars().count() <= 8 { "••••".into() } else { format!("••••{tail}") }
}

/// One attempt to deliver a message through one messenger, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub messenger_id: Option<MessengerId>,
    pub provider: String,
    pub to: String,
    pub channel: Channel,
    pub purpose: Purpose,
    pub provider_message_id: Option<String>,
    /// `sent`, `queued`, `delivered`, `failed`, `undelivered`, …
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        name: &str,
        priority: i64,
        countries: &[u16],
        preferred: &[u16],
        channels: &[Channel],
    ) -> MessengerConfig {
        MessengerConfig {
            id: MessengerId::random(),
            tenant_id: TenantId::random(),
            kind: MessengerType::Console,
            name: name.into(),
            url: None,
            settings: Map::new(),
            sealed_secrets: String::new(),
            channels: channels.to_vec(),
            priority,
            country_codes: countries.to_vec(),
            preferred_country_codes: preferred.to_vec(),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn routes_by_country_preference_then_priority() {
        let both = [Channel::Sms, Channel::Voice];
        let configs = vec![
            config("twilio", 1, &[], &[], &both),
            config("plivo", 2, &[], &[91], &both),
            config("india-only", 0, &[91], &[], &[Channel::Sms]),
            config("slack", 0, &[], &[], &[]),
        ];
        let names = |to: &str, ch| -> Vec<String> {
            let p = PhoneNumber::parse(to).unwrap_or_else(|_| PhoneNumber::from_trusted(String::new()));
            route(&configs, &p, ch).iter().map(|m| m.name.clone()).collect()
        };
        assert_eq!(names("+919876543210", Channel::Sms), ["plivo", "india-only", "twilio"]);
        assert_eq!(names("+15554443232", Channel::Sms), ["twilio", "plivo"]);
        assert_eq!(names("+919876543210", Channel::Voice), ["plivo", "twilio"]);
    }

    #[test]
    fn validation_names_what_each_provider_needs() {
        let input = |v: Value| {
            let mut rest = v.as_object().cloned().unwrap_or_default();
            let kind = rest.remove("type").and_then(|t| t.as_str().map(str::to_owned));
            let name = rest.remove("name").and_then(|t| t.as_str().map(str::to_owned));
            let url = rest.remove("url").and_then(|t| t.as_str().map(str::to_owned));
            MessengerInput { kind, name, url, rest, ..MessengerInput::default() }
        };
        let e = input(json!({"type": "Twilio", "name": "t"})).validate(None).err().unwrap_or_default();
        let fields: Vec<&str> = e.fields.keys().map(String::as_str).collect();
        assert_eq!(fields, ["messenger.accountSID", "messenger.authToken", "messenger.fromPhoneNumber"]);
        let ok = input(json!({"type": "twilio", "name": "t", "accountSID": "AC1", "authToken": "tok", "fromPhoneNumber": "+15550001111"}))
            .validate(None);
        let ok = ok.ok();
        assert_eq!(ok.as_ref().map(|v| v.url.clone()), Some(Some("https://api.twilio.com".into())));
        assert_eq!(ok.as_ref().and_then(|v| v.secrets.get("authToken").cloned()), Some(json!("tok")));
        assert!(ok.is_some_and(|v| !v.settings.contains_key("authToken")), "secrets are kept apart");
        let e = input(json!({"type": "Fax", "name": "f"})).validate(None).err().unwrap_or_default();
        assert!(e.fields.contains_key("messenger.type"));
        let slack = input(json!({"type": "Slack", "name": "s", "url": "https://hooks.slack.com/services/T/B/X"}))
            .validate(None);
        let slack = slack.ok();
        assert_eq!(slack.as_ref().map(|s| s.url.clone()), Some(None), "the webhook URL is a secret, not a url");
        assert!(slack.is_some_and(|s| s.channels.is_empty()));
    }

    #[test]
    fn masks_keep_only_a_tail() {
        assert_eq!(mask("a1b2c3d4e5f6"), "••••e5f6");
        assert_eq!(mask("short"), "••••");
    }
}
