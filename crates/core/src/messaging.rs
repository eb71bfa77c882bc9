//! Sending codes to phones. The domain composes the message; a `Messenger` (console,
//! Twilio, Plivo, …) delivers it.

use async_trait::async_trait;

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
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Enrollment => "enrollment",
            Purpose::SecondFactor => "second-factor-authentication",
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub provider: String,
    pub message_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct MessengerError {
    pub provider: String,
    pub message: String,
    /// A later attempt may succeed (timeouts, 5xx, 429).
    pub retryable: bool,
}

#[async_trait]
pub trait Messenger: Send + Sync {
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, MessengerError>;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
