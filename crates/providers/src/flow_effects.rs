//! What flows do outside themselves: HTTP calls (with a timeout, retries for 429 and
//! 5xx, and [`Outbound`]'s guard against private addresses) and messages through the messengers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Router;
use crate::outbound::Outbound;
use async_trait::async_trait;
use tessera_core::flows::{BodyType, FlowEffects, HttpCall, HttpMethod, HttpOutcome};
use tessera_core::ids::TenantId;
use tessera_core::messaging::{Channel, Messenger, OutboundMessage, Purpose};
use tessera_core::phone::PhoneNumber;
use tessera_core::secret::Secret;

pub struct Effects {
    http: reqwest::Client,
    router: Arc<Router>,
    /// Private and loopback addresses are refused unless allow-listed.
    outbound: Outbound,
    timeout: Duration,
    attempts: u32,
}

impl Effects {
    pub fn new(router: Arc<Router>, allow: Vec<String>) -> Result<Self, String> {
        let outbound = Outbound::new(allow, "flow_http_allowlist");
        let http = outbound.client()?;
        Ok(Effects { http, router, outbound, timeout: Duration::from_secs(5), attempts: 3 })
    }
}

impl Effects {
    fn request(&self, call: &HttpCall) -> reqwest::RequestBuilder {
        let mut req = match call.method {
            HttpMethod::Get => self.http.get(&call.url).query(&call.form),
            HttpMethod::Post => self.http.post(&call.url),
        };
        if call.method == HttpMethod::Post {
            req = match (call.body_type, &call.body) {
                (BodyType::Json, Some(b)) => {
                    req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.clone())
                }
                (BodyType::Form, Some(b)) if call.form.is_empty() => {
                    req.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(b.clone())
                }
                (_, _) if !call.form.is_empty() => req.form(&call.form),
                (_, None) => req,
                (BodyType::Form, Some(b)) => req.body(b.clone()),
            };
        }
        for (k, v) in &call.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req.timeout(self.timeout)
    }
}

#[async_trait]
impl FlowEffects for Effects {
    async fn http(&self, call: HttpCall) -> HttpOutcome {
        let started = Instant::now();
        if let Err(e) = self.outbound.check(&call.url).await {
            return HttpOutcome { error: Some(e), ..HttpOutcome::default() };
        }
        let mut outcome = HttpOutcome::default();
        for attempt in 1..=self.attempts {
            outcome.attempts = attempt;
            match self.request(&call).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    outcome.content_type = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    outcome.status = Some(status);
                    outcome.body = resp.text().await.unwrap_or_default();
                    outcome.error = None;
                    let retryable = status == 429 || status >= 500;
                    if !retryable || attempt == self.attempts {
                        break;
                    }
                    let wait =
                        retry_after.map_or(Duration::from_millis(200 * 2u64.pow(attempt - 1)), Duration::from_secs);
                    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                }
                Err(e) => {
                    outcome.error = Some(crate::http::describe(&e));
                    outcome.status = None;
                    if attempt == self.attempts {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
                }
            }
        }
        outcome.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        outcome
    }

    async fn send_message(
        &self,
        tenant: TenantId,
        to: &str,
        _from: Option<&str>,
        body: &str,
    ) -> Result<Option<String>, String> {
        let to = PhoneNumber::parse(to).map_err(|e| format!("'to' {to:?}: {e}"))?;
        let msg = OutboundMessage {
            to,
            channel: Channel::Sms,
            purpose: Purpose::Notification,
            locale: "en".into(),
            text: body.to_owned(),
            code: Secret::new(""),
            // Through the flow's tenant's messengers.
            tenant: Some(tenant),
        };
        self.router.send(&msg).await.map(|r| r.message_id).map_err(|e| e.to_string())
    }
}
