//! The `Messenger` Tessera uses: it reads the tenant's configured messengers, picks
//! those that serve the message's channel and country in order, retries retryable
//! failures with backoff, fails over to the next messenger within one deadline, and
//! records each delivery. With no messenger configured, codes go to the console.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tessera_core::Timestamp;
use tessera_core::ids::{DeliveryId, MessengerId, TenantId};
use tessera_core::messaging::{Channel, Messenger, MessengerError, OutboundMessage, Receipt, Verification};
use tessera_core::messengers::{Delivery, MessengerConfig, MessengerType, route};
use tessera_core::random;
use tessera_core::seal::Sealer;
use tessera_core::secret::Secret;
use tessera_core::store::Store;
use tokio::time::Instant;

use crate::console::ConsoleMessenger;
use crate::generic::Generic;
use crate::plivo::Plivo;
use crate::slack::Slack;
use crate::twilio::Twilio;
use crate::twilio_verify::TwilioVerify;

#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// Everything for one message, failover included, must finish within this.
    pub deadline: Duration,
    /// One call to one provider may take at most this (so a hung provider leaves
    /// time for the next one).
    pub attempt_timeout: Duration,
    /// Calls per messenger, first try included.
    pub max_attempts: u32,
    /// First wait before a retry; doubles each time (unless the provider said
    /// `Retry-After`).
    pub backoff: Duration,
    /// Tessera's public base URL; when set, providers get status-callback URLs.
    pub public_url: Option<String>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            deadline: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Duration::from_millis(200),
            public_url: None,
        }
    }
}

enum Vendor {
    Twilio(Twilio),
    Verify(TwilioVerify),
    Plivo(Plivo),
    Generic(Generic),
    Slack(Slack),
    Console,
}

pub type Now = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub struct Router {
    store: Arc<dyn Store>,
    sealer: Sealer,
    http: reqwest::Client,
    tenant: TenantId,
    console: Arc<ConsoleMessenger>,
    now: Now,
    settings: RouterSettings,
}

fn unusable(m: &MessengerConfig, why: impl std::fmt::Display) -> MessengerError {
    MessengerError::permanent(&m.name, None, format!("messenger {:?} is misconfigured: {why}", m.name))
}

impl Router {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Sealer,
        tenant: TenantId,
        console: Arc<ConsoleMessenger>,
        now: Now,
        settings: RouterSettings,
    ) -> Result<Self, String> {
        Ok(Router { store, sealer, http: crate::http::client()?, tenant, console, now, settings })
    }

    /// Opens a messenger's sealed credentials.
    pub fn secrets(&self, m: &MessengerConfig) -> Result<Map<String, Value>, MessengerError> {
        if m.sealed_secrets.is_empty() {
            return Ok(Map::new());
        }
        let plain = self.sealer.open(&m.sealed_secrets, &m.seal_context()).map_err(|e| unusable(m, e))?;
        serde_json::from_slice(&plain).map_err(|e| unusable(m, e))
    }

    fn vendor(&self, m: &MessengerConfig) -> Result<Vendor, MessengerError> {
        let s = self.secrets(m)?;
        let v = match m.kind {
            MessengerType::Twilio => Twilio::from_config(m, &s).map(Vendor::Twilio),
            MessengerType::TwilioVerify => TwilioVerify::from_config(m, &s).map(Vendor::Verify),
            MessengerType::Plivo => Plivo::from_config(m, &s).map(Vendor::Plivo),
            MessengerType::Generic => Generic::from_config(m, &s).map(Vendor::Generic),
            MessengerType::Slack => Slack::from_config(m, &s).map(Vendor::Slack),
            MessengerType::Console => Ok(Vendor::Console),
        };
        v.map_err(|e| unusable(m, e))
    }

    fn status_callback(&self, m: &MessengerConfig) -> Option<String> {
        let base = self.settings.public_url.as_deref()?.trim_end_matches('/');
        let vendor = match m.kind {
            MessengerType::Twilio => "twilio",
            MessengerType::Plivo => "plivo",
            _ => return None,
        };
        Some(format!("{base}/webhooks/{vendor}/status/{}", m.id))
    }

    /// Stores what a Plivo call should say and returns the answer URL Plivo will
    /// fetch it from (`None` without a public URL).
    async fn voice_prompt(&self, m: &MessengerConfig, msg: &OutboundMessage) -> Result<Option<String>, MessengerError> {
        let Some(base) = self.settings.public_url.as_deref() else { return Ok(None) };
        let fail = |e: String| MessengerError::retryable("tessera", None, e);
        let token = Secret::new(random::token(24).map_err(|e| fail(e.to_string()))?);
        let digest = token.digest();
        let sealed = self
            .sealer
            .seal(msg.text.as_bytes(), &tessera_core::messaging::voice_prompt_context(&digest))
            .map_err(|e| fail(e.to_string()))?;
        let expires = (self.now)().plus(Duration::from_secs(600));
        self.store.put_voice_prompt(&digest, &sealed, expires).await.map_err(|e| fail(e.to_string()))?;
        Ok(Some(format!("{}/webhooks/plivo/answer/{}/{}", base.trim_end_matches('/'), m.id, token.expose())))
    }

    /// The text a call should speak, once, for the answer-URL token Plivo presents.
    pub async fn take_voice_prompt(&self, token: &str) -> Result<Option<String>, MessengerError> {
        let digest = Secret::new(token).digest();
        let fail = |e: String| MessengerError::retryable("tessera", None, e);
        let Some(sealed) =
            self.store.take_voice_prompt(&digest, (self.now)()).await.map_err(|e| fail(e.to_string()))?
        else {
            return Ok(None);
        };
        let text = self
            .sealer
            .open(&sealed, &tessera_core::messaging::voice_prompt_context(&digest))
            .map_err(|e| fail(e.to_string()))?;
        Ok(Some(String::from_utf8_lossy(&text).into_owned()))
    }

    /// The tenant whose messengers deliver `msg`: its own, else the one this server serves.
    fn tenant_of(&self, msg: &OutboundMessage) -> TenantId {
        msg.tenant.unwrap_or(self.tenant)
    }

    async fn configs(&self, tenant: TenantId) -> Result<Vec<MessengerConfig>, MessengerError> {
        self.store
            .messengers(tenant)
            .await
            .map_err(|e| MessengerError::retryable("tessera", None, format!("cannot read messengers: {e}")))
    }

    async fn call(
        &self,
        vendor: &Vendor,
        m: &MessengerConfig,
        msg: &OutboundMessage,
    ) -> Result<Receipt, MessengerError> {
        let cb = self.status_callback(m);
        match vendor {
            Vendor::Twilio(t) => t.send(&self.http, msg, cb.as_deref()).await,
            Vendor::Plivo(p) if msg.channel == Channel::Voice => match self.voice_prompt(m, msg).await? {
                Some(answer_url) => p.call(&self.http, msg, &answer_url).await,
                None => p.send(&self.http, msg, cb.as_deref()).await,
            },
            Vendor::Plivo(p) => p.send(&self.http, msg, cb.as_deref()).await,
            Vendor::Generic(g) => g.send(&self.http, msg, (self.now)()).await,
            Vendor::Slack(s) => s.send(&self.http, msg).await,
            Vendor::Console => self.console.send(msg).await,
            Vendor::Verify(_) => Err(MessengerError::permanent(
                "twilio-verify",
                None,
                "Twilio Verify sends its own codes; it cannot deliver other messages",
            )),
        }
    }

    async fn record(
        &self,
        m: Option<&MessengerConfig>,
        provider: &str,
        msg: &OutboundMessage,
        attempts: u32,
        outcome: &Result<Receipt, MessengerError>,
    ) {
        let now = (self.now)();
        let (status, id, price, code, error) = match outcome {
            Ok(r) => {
                (r.status.clone().unwrap_or_else(|| "sent".into()), r.message_id.clone(), r.price.clone(), None, None)
            }
            Err(e) => ("failed".into(), None, None, e.code.clone(), Some(e.message.clone())),
        };
        let delivery = Delivery {
            id: DeliveryId::random(),
            tenant_id: self.tenant_of(msg),
            messenger_id: m.map(|m| m.id),
            provider: provider.to_owned(),
            to: msg.to.as_str().to_owned(),
            channel: msg.channel,
            purpose: msg.purpose,
            provider_message_id: id,
            status,
            error_code: code,
            error_message: error,
            attempts,
            price: price.as_ref().map(|p| p.0.clone()),
            price_unit: price.map(|p| p.1),
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = self.store.insert_delivery(&delivery).await {
            // The message went (or not) either way; a lost record must not fail the send.
            tracing::warn!(error = %e, "could not record a delivery");
        }
    }

    /// One messenger: retries retryable failures with backoff while the deadline allows.
    /// Every retry sends the same message, so the user never gets two different codes.
    async fn deliver_via(
        &self,
        m: &MessengerConfig,
        msg: &OutboundMessage,
        deadline: Instant,
    ) -> Result<Receipt, MessengerError> {
        let vendor = match self.vendor(m) {
            Ok(v) => v,
            Err(e) => {
                let outcome = Err(e);
                self.record(Some(m), &m.name, msg, 0, &outcome).await;
                return outcome;
            }
        };
        let provider = provider_name(m.kind);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let budget = remaining.min(self.settings.attempt_timeout);
            let outcome = match tokio::time::timeout(budget, self.call(&vendor, m, msg)).await {
                Ok(r) => r.map_err(|e| e.without_code(&msg.code)),
                Err(_) => Err(MessengerError::retryable(
                    provider,
                    None,
                    format!("no answer within {} ms", budget.as_millis()),
                )),
            };
            let retry_wait = match &outcome {
                Err(e) if e.retryable && attempts < self.settings.max_attempts => {
                    let backoff = self.settings.backoff * 2u32.saturating_pow(attempts - 1);
                    let wait = e.retry_after.unwrap_or(backoff);
                    (Instant::now() + wait < deadline).then_some(wait)
                }
                _ => None,
            };
            match retry_wait {
                Some(wait) => {
                    if let Err(e) = &outcome {
                        tracing::info!(messenger = %m.name, error = %e, attempt = attempts, "retrying");
                    }
                    tokio::time::sleep(wait).await;
                }
                None => {
                    self.record(Some(m), provider, msg, attempts, &outcome).await;
                    return outcome;
                }
            }
        }
    }

    /// Sends a test message through one messenger (no failover), for the
    /// configuration API's "send test message".
    pub async fn test(&self, id: MessengerId, msg: &OutboundMessage) -> Result<Receipt, MessengerError> {
        let m = self
            .store
            .messenger(self.tenant_of(msg), id)
            .await
            .map_err(|e| MessengerError::retryable("tessera", None, e.to_string()))?
            .ok_or_else(|| MessengerError::permanent("tessera", None, "no such messenger"))?;
        let deadline = Instant::now() + self.settings.deadline;
        if m.kind == MessengerType::TwilioVerify {
            // Verify cannot carry our text; a started verification proves the setup.
            let v = match self.vendor(&m)? {
                Vendor::Verify(v) => v,
                _ => return Err(unusable(&m, "not a Verify service")),
            };
            let sid = tokio::time::timeout(self.settings.deadline, v.start(&self.http, msg))
                .await
                .map_err(|_| MessengerError::retryable("twilio-verify", None, "no answer"))??;
            return Ok(Receipt::new("twilio-verify", Some(sid)));
        }
        if m.kind == MessengerType::Slack {
            let Vendor::Slack(s) = self.vendor(&m)? else { return Err(unusable(&m, "not Slack")) };
            let outcome = s.post_text(&self.http, &msg.text).await;
            self.record(Some(&m), "slack", msg, 1, &outcome).await;
            return outcome;
        }
        self.deliver_via(&m, msg, deadline).await
    }

    fn verify_owner(&self, configs: &[MessengerConfig], v: &Verification) -> Result<TwilioVerify, MessengerError> {
        let m = configs
            .iter()
            .find(|m| m.id.to_string() == v.owner)
            .ok_or_else(|| MessengerError::permanent("twilio-verify", None, "the Verify messenger was removed"))?;
        match self.vendor(m)? {
            Vendor::Verify(t) => Ok(t),
            _ => Err(unusable(m, "not a Verify service")),
        }
    }
}

fn provider_name(kind: MessengerType) -> &'static str {
    match kind {
        MessengerType::Twilio => crate::twilio::PROVIDER,
        MessengerType::TwilioVerify => crate::twilio_verify::PROVIDER,
        MessengerType::Plivo => crate::plivo::PROVIDER,
        MessengerType::Generic => crate::generic::PROVIDER,
        MessengerType::Slack => crate::slack::PROVIDER,
        MessengerType::Console => "console",
    }
}

/// One error naming every messenger tried and why each failed, so an administrator
/// (or the log) learns which credentials or settings to fix.
fn all_failed(failures: &[(String, MessengerError)]) -> MessengerError {
    let tried: Vec<String> = failures.iter().map(|(name, e)| format!("\"{name}\" ({e})")).collect();
    let retryable = failures.last().is_some_and(|(_, e)| e.retryable);
    let message = if tried.is_empty() {
        "no messenger could send".to_owned()
    } else {
        format!("no messenger could send; tried {}", tried.join("; "))
    };
    MessengerError { retryable, ..MessengerError::permanent("tessera", None, message) }
}

#[async_trait]
impl Messenger for Router {
    async fn send(&self, msg: &OutboundMessage) -> Result<Receipt, MessengerError> {
        let configs = self.configs(self.tenant_of(msg)).await?;
        if configs.is_empty() {
            // Development default: nothing configured, print the code.
            let outcome = self.console.send(msg).await;
            self.record(None, "console", msg, 1, &outcome).await;
            return outcome;
        }
        let candidates: Vec<&MessengerConfig> = route(&configs, &msg.to, msg.channel)
            .into_iter()
            .filter(|m| m.kind != MessengerType::TwilioVerify)
            .collect();
        if candidates.is_empty() {
            let cc = msg.to.country_code().map_or_else(|| "?".into(), |c| format!("+{c}"));
            let text = format!("no messenger sends {} to {cc}", msg.channel.as_str());
            return Err(MessengerError::permanent("tessera", None, text));
        }
        let deadline = Instant::now() + self.settings.deadline;
        let mut failures: Vec<(String, MessengerError)> = Vec::new();
        for m in candidates {
            match self.deliver_via(m, msg, deadline).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::warn!(messenger = %m.name, error = %e, "messenger failed; trying the next");
                    failures.push((m.name.clone(), e));
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(all_failed(&failures))
    }

    async fn start_verification(&self, msg: &OutboundMessage) -> Result<Option<Verification>, MessengerError> {
        let configs = self.configs(self.tenant_of(msg)).await?;
        let candidates = route(&configs, &msg.to, msg.channel);
        let Some(first) = candidates.first().filter(|m| m.kind == MessengerType::TwilioVerify) else {
            return Ok(None);
        };
        let Vendor::Verify(v) = self.vendor(first)? else { return Ok(None) };
        let started = tokio::time::timeout(self.settings.attempt_timeout, v.start(&self.http, msg))
            .await
            .unwrap_or_else(|_| Err(MessengerError::retryable("twilio-verify", None, "no answer")));
        let outcome = started.map(|sid| Receipt::new("twilio-verify", Some(sid)));
        self.record(Some(first), "twilio-verify", msg, 1, &outcome).await;
        match outcome {
            Ok(r) => Ok(Some(Verification { owner: first.id.to_string(), id: r.message_id.unwrap_or_default() })),
            // Fail over to sending our own code through the next messenger, if any.
            Err(e) if candidates.iter().any(|m| m.kind != MessengerType::TwilioVerify) => {
                tracing::warn!(error = %e, "Twilio Verify failed; sending Tessera's own code instead");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    // A verification names its messenger but not its tenant: these find it among the
    // messengers of the tenant this server serves.
    async fn check_verification(&self, v: &Verification, code: &str) -> Result<bool, MessengerError> {
        let configs = self.configs(self.tenant).await?;
        self.verify_owner(&configs, v)?.check(&self.http, &v.id, code).await
    }

    async fn approve_verification(&self, v: &Verification) -> Result<(), MessengerError> {
        let configs = self.configs(self.tenant).await?;
        self.verify_owner(&configs, v)?.approve(&self.http, &v.id).await
    }
}
