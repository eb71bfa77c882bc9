//! Plivo SMS: `POST {url}/v1/Account/{auth_id}/Message/`, JSON, HTTP Basic auth with
//! the auth id and token; `src` or a Powerpack.

use serde_json::{Map, Value, json};
use tessera_core::messaging::{Channel, MessengerError, OutboundMessage, Receipt};
use tessera_core::messengers::MessengerConfig;

use crate::http::{self, status_error};

pub const PROVIDER: &str = "plivo";

pub struct Plivo {
    base: String,
    auth_id: String,
    auth_token: String,
    src: Option<String>,
    powerpack: Option<String>,
}

impl Plivo {
    pub fn from_config(config: &MessengerConfig, secrets: &Map<String, Value>) -> Result<Self, String> {
        Ok(Plivo {
            base: config.url.clone().unwrap_or_else(|| "https://api.plivo.com".into()),
            auth_id: config.setting("authId").ok_or("authId is missing")?.to_owned(),
            auth_token: secrets.get("authToken").and_then(Value::as_str).ok_or("authToken is missing")?.to_owned(),
            src: config.setting("src").map(str::to_owned),
            powerpack: config.setting("powerpackUUID").map(str::to_owned),
        })
    }

    /// A call whose answer URL (served by Tessera, see the router) speaks the text.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        msg: &OutboundMessage,
        answer_url: &str,
    ) -> Result<Receipt, MessengerError> {
        let Some(from) = &self.src else {
            return Err(MessengerError::permanent(PROVIDER, None, "voice calls need a src number"));
        };
        let body = json!({
            "from": from.trim_start_matches('+'),
            "to": msg.to.as_str().trim_start_matches('+'),
            "answer_url": answer_url,
            "answer_method": "POST",
        });
        let answer = self.post(client, "Call/", &body).await?;
        let id = answer.get("request_uuid").and_then(Value::as_str).map(str::to_owned);
        let mut receipt = Receipt::new(PROVIDER, id);
        receipt.status = Some("queued".into());
        Ok(receipt)
    }

    async fn post(&self, client: &reqwest::Client, resource: &str, body: &Value) -> Result<Value, MessengerError> {
        let resp = client
            .post(format!("{}/v1/Account/{}/{resource}", self.base, self.auth_id))
            .basic_auth(&self.auth_id, Some(&self.auth_token))
            .json(body)
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &e))?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let text = answer.get("error").and_then(Value::as_str).unwrap_or("request failed");
            let message = match status.as_u16() {
                401 => format!("Plivo 401: authentication failed: check the auth id and token ({text})"),
                s => format!("Plivo {s}: {text}"),
            };
            return Err(status_error(PROVIDER, status, &headers, None, message));
        }
        Ok(answer)
    }

    pub async fn send(
        &self,
        client: &reqwest::Client,
        msg: &OutboundMessage,
        status_callback: Option<&str>,
    ) -> Result<Receipt, MessengerError> {
        if msg.channel == Channel::Voice {
            return Err(MessengerError::permanent(
                PROVIDER,
                None,
                "voice through Plivo needs public_url (Plivo fetches what to say from Tessera)",
            ));
        }
        // Plivo numbers go without the leading '+'.
        let mut body = json!({"dst": msg.to.as_str().trim_start_matches('+'), "text": msg.text, "type": "sms"});
        match (&self.powerpack, &self.src) {
            (Some(pp), _) => body["powerpack_uuid"] = json!(pp),
            (None, Some(src)) => body["src"] = json!(src.trim_start_matches('+')),
            (None, None) => return Err(MessengerError::permanent(PROVIDER, None, "no src number or Powerpack")),
        }
        if let Some(cb) = status_callback {
            body["url"] = json!(cb);
            body["method"] = json!("POST");
        }
        let answer = self.post(client, "Message/", &body).await?;
        let id = answer.get("message_uuid").and_then(|v| v.get(0)).and_then(Value::as_str).map(str::to_owned);
        let mut receipt = Receipt::new(PROVIDER, id);
        receipt.status = Some("queued".into());
        Ok(receipt)
    }
}
