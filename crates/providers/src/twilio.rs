//! Twilio Programmable Messaging (SMS) and Voice (a call that reads the code).
//! `POST {url}/2010-04-01/Accounts/{AccountSid}/Messages.json` and `…/Calls.json`,
//! form-encoded, HTTP Basic auth with the Account SID and Auth Token (or an API key).

use serde_json::{Map, Value};
use tessera_core::messaging::{Channel, MessengerError, OutboundMessage, Receipt};
use tessera_core::messengers::MessengerConfig;

use crate::http::{self, status_error};

pub const PROVIDER: &str = "twilio";

pub struct Twilio {
    base: String,
    account_sid: String,
    user: String,
    password: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
}

/// Twilio credentials: the auth token, or an API key SID and secret.
pub fn credentials(config: &MessengerConfig, secrets: &Map<String, Value>) -> Result<(String, String), String> {
    let secret = |k: &str| secrets.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let account = config.setting("accountSID").ok_or("accountSID is missing")?.to_owned();
    match (config.setting("apiKeySid"), secret("apiKeySecret"), secret("authToken")) {
        (Some(key), Some(key_secret), _) => Ok((key.to_owned(), key_secret)),
        (_, _, Some(token)) => Ok((account, token)),
        _ => Err("an auth token or API key is missing".into()),
    }
}

/// What an administrator should understand from Twilio's error codes.
pub fn explain(code: i64, fallback: &str) -> String {
    let text = match code {
        20003 => "authentication failed: check the Account SID and Auth Token (or API key)",
        20404 => "not found: check the Account SID or Service SID",
        20429 => "too many requests",
        21211 => "the 'To' number is not a valid phone number",
        21408 => "sending to this region is not enabled on the account (Geo permissions)",
        21608 => "the number is unverified on a trial account",
        21610 => "the recipient has unsubscribed (replied STOP)",
        21612 => "Twilio cannot route to this number from the 'From' number",
        21614 => "the 'To' number cannot receive SMS (not a mobile number)",
        21606 => "the 'From' number cannot send SMS",
        21659 => "the 'From' number is not a Twilio number of this account",
        60200 => "invalid parameter",
        60203 => "too many codes sent to this number (Twilio Verify limit)",
        60410 => "the destination prefix is blocked by Twilio Fraud Guard",
        60605 => "verifications to this country are not allowed",
        _ => return format!("Twilio {code}: {fallback}"),
    };
    format!("Twilio {code}: {text}")
}

/// Twilio's JSON error body (`{code, message, more_info, status}`) to our error.
pub async fn error_from(resp: reqwest::Response) -> MessengerError {
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body.get("code").and_then(Value::as_i64);
    let message = body.get("message").and_then(Value::as_str).unwrap_or("request failed");
    let text = match code {
        Some(c) => explain(c, message),
        None => format!("Twilio HTTP {}: {message}", status.as_u16()),
    };
    status_error(PROVIDER, status, &headers, code.map(|c| c.to_string()), text)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Twilio {
    pub fn from_config(config: &MessengerConfig, secrets: &Map<String, Value>) -> Result<Self, String> {
        let (user, password) = credentials(config, secrets)?;
        Ok(Twilio {
            base: config.url.clone().unwrap_or_else(|| "https://api.twilio.com".into()),
            account_sid: config.setting("accountSID").ok_or("accountSID is missing")?.to_owned(),
            user,
            password,
            from: config.setting("fromPhoneNumber").map(str::to_owned),
            messaging_service_sid: config.setting("messagingServiceSid").map(str::to_owned),
        })
    }

    pub async fn send(
        &self,
        client: &reqwest::Client,
        msg: &OutboundMessage,
        status_callback: Option<&str>,
    ) -> Result<Receipt, MessengerError> {
        let mut form: Vec<(&str, String)> = vec![("To", msg.to.as_str().to_owned())];
        let resource = match msg.channel {
            Channel::Sms => {
                match (&self.messaging_service_sid, &self.from) {
                    (Some(sid), _) => form.push(("MessagingServiceSid", sid.clone())),
                    (None, Some(from)) => form.push(("From", from.clone())),
                    (None, None) => {
                        return Err(MessengerError::permanent(PROVIDER, None, "no From number or Messaging Service"));
                    }
                }
                form.push(("Body", msg.text.clone()));
                "Messages.json"
            }
            Channel::Voice => {
                let Some(from) = &self.from else {
                    return Err(MessengerError::permanent(PROVIDER, None, "voice calls need a From number"));
                };
                form.push(("From", from.clone()));
                let lang = if msg.locale.contains('-') { msg.locale.clone() } else { "en-US".into() };
                form.push((
                    "Twiml",
                    format!(
                        "<Response><Say language=\"{}\">{}</Say></Response>",
                        xml_escape(&lang),
                        xml_escape(&msg.text)
                    ),
                ));
                "Calls.json"
            }
        };
        if let Some(cb) = status_callback {
            form.push(("StatusCallback", cb.to_owned()));
        }
        let url = format!("{}/2010-04-01/Accounts/{}/{resource}", self.base, self.account_sid);
        let resp = client
            .post(url)
            .basic_auth(&self.user, Some(&self.password))
            .form(&form)
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &e))?;
        if !resp.status().is_success() {
            return Err(error_from(resp).await);
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut receipt = Receipt::new(PROVIDER, text("sid"));
        receipt.status = text("status");
        if let (Some(price), Some(unit)) = (text("price"), text("price_unit")) {
            receipt.price = Some((price, unit));
        }
        Ok(receipt)
    }
}
