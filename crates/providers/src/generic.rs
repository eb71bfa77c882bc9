//! The generic HTTP messenger: a signed JSON POST to a URL the user owns, so any
//! vendor can be plugged in. The body carries the recipient, the text and the code;
//! `X-Tessera-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` proves it
//! came from this Tessera.

use serde_json::{Map, Value, json};
use tessera_core::Timestamp;
use tessera_core::messaging::{MessengerError, OutboundMessage, Receipt};
use tessera_core::messengers::MessengerConfig;

use crate::http::{self, status_error};
use crate::signature;

pub const PROVIDER: &str = "generic";
pub const SIGNATURE_HEADER: &str = "X-Tessera-Signature";

pub struct Generic {
    url: String,
    secret: String,
}

impl Generic {
    pub fn from_config(config: &MessengerConfig, secrets: &Map<String, Value>) -> Result<Self, String> {
        Ok(Generic {
            url: config.url.clone().ok_or("url is missing")?,
            secret: secrets.get("signingSecret").and_then(Value::as_str).ok_or("signingSecret is missing")?.to_owned(),
        })
    }

    pub async fn send(
        &self,
        client: &reqwest::Client,
        msg: &OutboundMessage,
        now: Timestamp,
    ) -> Result<Receipt, MessengerError> {
        let body = json!({
            "recipient": msg.to.as_str(),
            "text": msg.text,
            "code": msg.code.expose(),
            "messageType": msg.channel.as_str(),
            "action": msg.purpose.as_str(),
            "locale": msg.locale,
        })
        .to_string();
        let resp = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature::generic(&self.secret, now.seconds(), body.as_bytes()))
            .body(body)
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let snippet: String = text.chars().take(200).collect();
            let message = format!("the endpoint answered HTTP {}: {snippet}", status.as_u16());
            return Err(status_error(PROVIDER, status, &headers, None, message));
        }
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("messageId").and_then(Value::as_str).map(str::to_owned));
        Ok(Receipt::new(PROVIDER, id))
    }
}
