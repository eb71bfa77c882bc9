//! Sending codes to phones. The domain composes the message; a `Messenger` (console,
//! Twilio, Plivo, …) delivers it.

use async_trait::async_trait;

use crate::ids::TenantId;
use crate::phone::PhoneNumber;
use crate::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Voice,
}

impl Channel {
    /// FusionAuth's `messageType`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sms" => Some(Channel::Sms),
            "voice" => Some(Channel::Voice),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }
}

/// Why the message is sent; Auth0's `message_options.action` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Enrollment,
    SecondFactor,
    /// "Send test message" from the messenger configuration.
    Test,
    /// A message a flow sends.
    Notification,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Enrollment => "enrollment",
            Purpose::SecondFactor => "second-factor-authentication",
            Purpose::Test => "test",
            Purpose::Notification => "notification",
        }
    }
}

#[derive(Clone, Debug)]
pub struct OutboundMessage {
    pub to: PhoneNumber,
    pub channel: Channel,
    pub purpose: Purpose,
    pub locale: String,
    pub text: String,
    /// The code alone, for providers that format their own message.
    pub code: Secret,
    /// Whose messengers deliver it; `None`: the tenant this server serves.
    pub tenant: Option<TenantId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub provider: String,
    pub message_id: Option<String>,
    /// The provider's status word (`queued`, `sent`, …) when it gave one.
    pub status: Option<String>,
    /// Cost as the provider reported it, e.g. ("-0.0075", "USD").
    pub price: Option<(String, String)>,
}

impl Receipt {
    pub fn new(provider: &str, message_id: Option<String>) -> Self {
        Receipt { provider: provider.to_owned(), message_id, status: None, price: None }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct MessengerError {
    pub provider: String,
    /// The provider's own error code (Twilio `21211`, HTTP status, …).
    pub code: Option<String>,
    /// What went wrong, in words an administrator can act on.
    pub message: String,
    /// A later attempt may succeed (timeouts, 5xx, 429).
    pub retryable: bool,
    /// How long the provider asked us to wait (429 `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl MessengerError {
    pub fn permanent(provider: &str, code: Option<String>, message: impl Into<String>) -> Self {
        MessengerError { provider: provider.into(), code, message: message.into(), retryable: false, retry_after: None }
    }

    pub fn retryable(provider: &str, code: Option<String>, message: impl Into<String>) -> Self {
        MessengerError { provider: provider.into(), code, message: message.into(), retryable: true, retry_after: None }
    }

    /// The error without the one-time code it was sending: a provider's answer may echo
    /// the request, and this message is logged, stored with the delivery and shown to
    /// admins.
    pub fn without_code(mut self, code: &Secret) -> Self {
        if !code.expose().is_empty() {
            self.message = self.message.replace(code.expose(), "[code]");
        }
        self
    }
}

/// A verification service that owns the codes (Twilio Verify): it makes and sends
/// the code and checks it; Tessera keeps only the verification's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Which configured messenger owns it.
    pub owner: String,
    /// The service's id for it (`VE…`).
    pub id: String,
}

impl Verification {
    const PREFIX: &'static str = "verify:";

    /// How a pending code owned by a service is stored in place of a code hash.
    pub fn to_marker(&self) -> String {
        format!("{}{}:{}", Self::PREFIX, self.owner, self.id)
    }

    pub fn from_marker(marker: &str) -> Option<Self> {
        let (owner, id) = marker.strip_prefix(Self::PREFIX)?.split_once(':')?;
        Some(Verification { owner: owner.to_owned(), id: id.to_owned() })
    }
}

#[async_trait]
pub trait Messenger: Send + Sync {
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, MessengerError>;

    /// When a verification service owns the codes for `to`, starts a verification
    /// there instead of Tessera sending its own code. `None`: send our own.
    async fn start_verification(&self, _message: &OutboundMessage) -> Result<Option<Verification>, MessengerError> {
        Ok(None)
    }

    /// Checks a code with the service that owns the verification.
    async fn check_verification(&self, _v: &Verification, _code: &str) -> Result<bool, MessengerError> {
        Ok(false)
    }

    /// Tells the service the verification led to a successful sign-in (Twilio
    /// Verify's `Status=approved` feedback, which its fraud protection learns from).
    async fn approve_verification(&self, _v: &Verification) -> Result<(), MessengerError> {
        Ok(())
    }
}

/// The message text for a code, in the requested locale (falling back to English).
/// Voice reads the digits one by one, twice.
pub fn render(purpose: Purpose, channel: Channel, locale: &str, code: &str, application: &str) -> String {
    let lang = locale.split(['-', '_']).next().unwrap_or("en").to_ascii_lowercase();
    if channel == Channel::Voice {
        let spoken = code.chars().map(String::from).collect::<Vec<_>>().join(", ");
        let line = match lang.as_str() {
            "fr" => format!("Votre code {application} est {spoken}."),
            "de" => format!("Ihr {application}-Code lautet {spoken}."),
            "es" => format!("Su código de {application} es {spoken}."),
            _ => format!("Your {application} code is {spoken}."),
        };
        return format!("{line} {line}");
    }
    match (lang.as_str(), purpose) {
        ("fr", Purpose::Enrollment) => {
            format!("{code} est votre code pour activer la vérification en deux étapes sur {application}.")
        }
        ("fr", Purpose::SecondFactor) => {
            format!("{code} est votre code de connexion {application}. Ne le partagez avec personne.")
        }
        ("de", Purpose::Enrollment) => {
            format!("{code} ist Ihr Code zum Einrichten der Zwei-Faktor-Anmeldung bei {application}.")
        }
        ("de", Purpose::SecondFactor) => {
            format!("{code} ist Ihr {application}-Anmeldecode. Geben Sie ihn niemandem weiter.")
        }
        ("es", Purpose::Enrollment) => {
            format!("{code} es su código para activar la verificación en dos pasos en {application}.")
        }
        ("es", Purpose::SecondFactor) => {
            format!("{code} es su código de acceso a {application}. No lo comparta con nadie.")
        }
        (_, Purpose::Enrollment) => format!("{code} is your code to set up two-step verification for {application}."),
        (_, Purpose::SecondFactor) => format!("{code} is your {application} sign-in code. Don't share it with anyone."),
        (_, Purpose::Test) => format!("Tessera test message for {application}."),
        (_, Purpose::Notification) => code.to_owned(),
    }
}

/// What a Plivo call's prompt is sealed under while it waits to be fetched: the digest of
/// its answer-URL token.
pub fn voice_prompt_context(digest: &str) -> Vec<u8> {
    format!("voice:{digest}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_lose_the_code_they_echo() {
        let e = MessengerError::permanent("generic", None, "HTTP 400: {\"text\":\"Your code is 123456\"}");
        let e = e.without_code(&Secret::new("123456"));
        assert_eq!(e.message, "HTTP 400: {\"text\":\"Your code is [code]\"}");
        let same = MessengerError::permanent("x", None, "no code here").without_code(&Secret::new(""));
        assert_eq!(same.message, "no code here");
    }

    #[test]
    fn renders_per_locale_with_code_and_application() {
        let en = render(Purpose::SecondFactor, Channel::Sms, "en-US", "123456", "Acme");
        assert_eq!(en, "123456 is your Acme sign-in code. Don't share it with anyone.");
        assert!(
            render(Purpose::SecondFactor, Channel::Sms, "fr_FR", "123456", "Acme").contains("code de connexion Acme")
        );
        assert!(
            render(Purpose::Enrollment, Channel::Sms, "xx", "123456", "Acme")
                .starts_with("123456 is your code to set up")
        );
        let voice = render(Purpose::SecondFactor, Channel::Voice, "en", "123", "Acme");
        assert_eq!(voice, "Your Acme code is 1, 2, 3. Your Acme code is 1, 2, 3.");
    }
}
