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

    pub async fn send(
        &self,
        client: &reqwest::Client,
        msg: &OutboundMessage,
        status_callback: Option<&str>,
    ) -> Result<Receipt, MessengerError> {
        if msg.channel == Channel::Voice {
            // A Plivo call needs an answer URL serving XML; Tessera does not host one yet.
            return Err(MessengerError::permanent(PROVIDER, None, "voice through Plivo is not supported yet"));
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
        let resp = client
            .post(format!("{}/v1/Account/{}/Message/", self.base, self.auth_id))
            .basic_auth(&self.auth_id, Some(&self.auth_token))
            .json(&body)
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
        let id = answer.get("message_uuid").and_then(|v| v.get(0)).and_then(Value::as_str).map(str::to_owned);
        let mut receipt = Receipt::new(PROVIDER, id);
        receipt.status = Some("queued".into());
        Ok(receipt)
    }
}
