//! Slack incoming webhooks: `POST {"text": …}` → `200 ok`; errors are plain words.

use serde_json::{Map, Value, json};
use tessera_core::messaging::{MessengerError, OutboundMessage, Receipt};
use tessera_core::messengers::MessengerConfig;

use crate::http::{self, status_error};

pub const PROVIDER: &str = "slack";

pub struct Slack {
    webhook: String,
}

impl Slack {
    pub fn from_config(_config: &MessengerConfig, secrets: &Map<String, Value>) -> Result<Self, String> {
        Ok(Slack {
            webhook: secrets.get("webhookUrl").and_then(Value::as_str).ok_or("webhook URL is missing")?.to_owned(),
        })
    }

    pub async fn post_text(&self, client: &reqwest::Client, text: &str) -> Result<Receipt, MessengerError> {
        let resp = client
            .post(&self.webhook)
            .json(&json!({"text": text}))
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(Receipt::new(PROVIDER, None));
        }
        let why = match body.trim() {
            "invalid_payload" | "no_text" => "Slack rejected the message format",
            "action_prohibited" => "the webhook is not allowed to post here",
            "channel_not_found" => "the webhook's channel no longer exists",
            "channel_is_archived" => "the webhook's channel is archived",
            _ if status.as_u16() == 429 => "Slack is rate limiting this webhook",
            _ => "Slack refused the message",
        };
        Err(status_error(
            PROVIDER,
            status,
            &headers,
            Some(body.trim().to_owned()),
            format!("Slack {}: {why}", body.trim()),
        ))
    }

    pub async fn send(&self, client: &reqwest::Client, msg: &OutboundMessage) -> Result<Receipt, MessengerError> {
        self.post_text(client, &msg.text).await
    }
}
