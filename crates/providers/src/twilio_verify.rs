//! Twilio Verify as the owner of the codes: it makes, sends and checks them.
//! `POST {url}/v2/Services/{VA}/Verifications`, `…/VerificationCheck`, and the
//! `Status=approved` feedback on `…/Verifications/{VE}`.

use serde_json::{Map, Value};
use tessera_core::messaging::{Channel, MessengerError, OutboundMessage};
use tessera_core::messengers::MessengerConfig;

use crate::http;
use crate::twilio::{credentials, error_from};

pub const PROVIDER: &str = "twilio-verify";

pub struct TwilioVerify {
    base: String,
    service: String,
    user: String,
    password: String,
}

impl TwilioVerify {
    pub fn from_config(config: &MessengerConfig, secrets: &Map<String, Value>) -> Result<Self, String> {
        let (user, password) = credentials(config, secrets)?;
        Ok(TwilioVerify {
            base: config.url.clone().unwrap_or_else(|| "https://verify.twilio.com".into()),
            service: config.setting("serviceSid").ok_or("serviceSid is missing")?.to_owned(),
            user,
            password,
        })
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<Value, MessengerError> {
        let resp = client
            .post(format!("{}/v2/Services/{}/{path}", self.base, self.service))
            .basic_auth(&self.user, Some(&self.password))
            .form(form)
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &e))?;
        if !resp.status().is_success() {
            let mut e = error_from(resp).await;
            e.provider = PROVIDER.into();
            return Err(e);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    /// Starts a verification; returns its `VE…` sid.
    pub async fn start(&self, client: &reqwest::Client, msg: &OutboundMessage) -> Result<String, MessengerError> {
        let channel = match msg.channel {
            Channel::Sms => "sms",
            Channel::Voice => "call",
        };
        let form =
            [("To", msg.to.as_str().to_owned()), ("Channel", channel.to_owned()), ("Locale", msg.locale.clone())];
        let body = self.post(client, "Verifications", &form).await?;
        body.get("sid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| MessengerError::permanent(PROVIDER, None, "Twilio Verify answered without a sid"))
    }

    /// True when Twilio approves the code. A wrong code is `pending`; an expired or
    /// finished verification is a 404 (20404): both are simply "no".
    pub async fn check(&self, client: &reqwest::Client, sid: &str, code: &str) -> Result<bool, MessengerError> {
        let form = [("VerificationSid", sid.to_owned()), ("Code", code.to_owned())];
        match self.post(client, "VerificationCheck", &form).await {
            Ok(body) => Ok(body.get("status").and_then(Value::as_str) == Some("approved")),
            Err(e) if e.code.as_deref() == Some("20404") || e.code.as_deref() == Some("404") => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn approve(&self, client: &reqwest::Client, sid: &str) -> Result<(), MessengerError> {
        self.post(client, &format!("Verifications/{sid}"), &[("Status", "approved".to_owned())]).await.map(|_| ())
    }
}
