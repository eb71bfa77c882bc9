//! Configuring messengers: FusionAuth's `/api/messenger` use cases. Credentials are
//! sealed on the way in and only ever shown masked.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::RequestContext;
use super::kernel::Kernel;
use crate::apikey::Admin;
use crate::audit::AuditKind;
use crate::ids::{MessengerId, TenantId};
use crate::messaging::{Channel, OutboundMessage, Purpose};
use crate::messengers::{MessengerConfig, MessengerInput, MessengerType, ValidMessenger, mask};
use crate::phone::PhoneNumber;
use crate::secret::Secret;
use crate::store::MessengerStore;
use crate::validation::ValidationErrors;
use crate::{CoreError, Timestamp};

/// The messengers of each tenant: their configuration (FusionAuth's `/api/messenger`),
/// the deliveries they made, and the secrets a vendor's webhook is checked against.
/// It takes only the messenger store.
#[derive(Clone)]
pub struct Messengers {
    store: Arc<dyn MessengerStore>,
    kernel: Arc<Kernel>,
}

impl Messengers {
    pub fn new(store: Arc<dyn MessengerStore>, kernel: Arc<Kernel>) -> Messengers {
        Messengers { store, kernel }
    }

    fn open_secrets(&self, m: &MessengerConfig) -> Result<Map<String, Value>, CoreError> {
        if m.sealed_secrets.is_empty() {
            return Ok(Map::new());
        }
        let plain = self.kernel.sealer.open(&m.sealed_secrets, &m.seal_context())?;
        serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(format!("messenger secrets: {e}")))
    }

    /// The `field` secret (an auth token) of the messenger a vendor's callback names (of
    /// whichever tenant), if it is one of `kind`: what proves the callback genuine.
    pub async fn webhook_secret(
        &self,
        id: MessengerId,
        kind: MessengerType,
        field: &str,
    ) -> Result<Option<String>, CoreError> {
        let Some(m) = self.store.messenger_by_id(id).await?.filter(|m| m.kind == kind) else {
            return Ok(None);
        };
        Ok(self.open_secrets(&m)?.get(field).and_then(Value::as_str).map(str::to_owned))
    }

    /// Every messenger of `kind` of `tenant` (the receiving number's) that has a `field`
    /// secret, with its settings: an inbound message is genuine if one of them signed it.
    pub async fn webhook_secrets(
        &self,
        tenant: TenantId,
        kind: MessengerType,
        field: &str,
    ) -> Result<Vec<(Map<String, Value>, String)>, CoreError> {
        let mut out = Vec::new();
        for m in self.store.messengers(tenant).await?.into_iter().filter(|m| m.kind == kind) {
            if let Some(v) = self.open_secrets(&m)?.get(field).and_then(Value::as_str) {
                out.push((m.settings.clone(), v.to_owned()));
            }
        }
        Ok(out)
    }

    /// What a signed status callback says of a delivery (`provider` names the vendor,
    /// `id` its message id); false when no delivery has that id.
    pub async fn record_delivery_status(
        &self,
        provider: &str,
        id: &str,
        status: &str,
        error_code: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, CoreError> {
        Ok(self.store.update_delivery_status(provider, id, status, error_code, now).await?)
    }

    fn build(
        &self,
        id: MessengerId,
        admin: &Admin,
        v: ValidMessenger,
        created_at: Timestamp,
        now: Timestamp,
    ) -> Result<MessengerConfig, CoreError> {
        let mut m = MessengerConfig {
            id,
            tenant_id: admin.tenant_id,
            kind: v.kind,
            name: v.name,
            url: v.url,
            settings: v.settings,
            sealed_secrets: String::new(),
            channels: v.channels,
            priority: v.priority,
            country_codes: v.country_codes,
            preferred_country_codes: v.preferred_country_codes,
            created_at,
            updated_at: now,
        };
        if !v.secrets.is_empty() {
            let plain = Value::Object(v.secrets).to_string();
            m.sealed_secrets = self.kernel.sealer.seal(plain.as_bytes(), &m.seal_context())?;
        }
        Ok(m)
    }

    /// The messenger's secrets, masked (the last few characters shown): what the API
    /// shows of them, by name.
    pub fn masked_secrets(&self, m: &MessengerConfig) -> Result<Vec<(String, String)>, CoreError> {
        Ok(self.open_secrets(m)?.into_iter().map(|(k, v)| (k, mask(v.as_str().unwrap_or_default()))).collect())
    }

    pub async fn create(
        &self,
        admin: &Admin,
        id: Option<MessengerId>,
        input: MessengerInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<MessengerConfig, CoreError> {
        let valid = input.validate(None)?;
        let m = self.build(id.unwrap_or_else(MessengerId::random), admin, valid, now, now)?;
        self.store.insert_messenger(&m).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                ValidationErrors::field("messengerId", "duplicate", "A messenger with this id already exists.").into()
            }
            other => CoreError::from(other),
        })?;
        self.kernel.audit(AuditKind::MessengerCreated, None, "success", ctx, messenger_detail(&m), now).await?;
        Ok(m)
    }

    pub async fn get(&self, admin: &Admin, id: MessengerId) -> Result<MessengerConfig, CoreError> {
        self.store.messenger(admin.tenant_id, id).await?.ok_or(CoreError::NotFound)
    }

    pub async fn list(&self, admin: &Admin) -> Result<Vec<MessengerConfig>, CoreError> {
        Ok(self.store.messengers(admin.tenant_id).await?)
    }

    /// PUT: the whole description; credentials not resent are kept.
    pub async fn replace(
        &self,
        admin: &Admin,
        id: MessengerId,
        input: MessengerInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<MessengerConfig, CoreError> {
        let existing = self.get(admin, id).await?;
        let secrets = self.open_secrets(&existing)?;
        let valid = input.validate(Some(&secrets))?;
        if valid.kind != existing.kind {
            let msg = "The [messenger.type] cannot change; create a new messenger instead.";
            return Err(ValidationErrors::field("messenger.type", "invalid", msg).into());
        }
        let m = self.build(id, admin, valid, existing.created_at, now)?;
        self.store.update_messenger(&m).await?;
        self.kernel.audit(AuditKind::MessengerUpdated, None, "success", ctx, messenger_detail(&m), now).await?;
        Ok(m)
    }

    /// A messenger from configuration at start: created, or updated if it exists.
    pub async fn seed(
        &self,
        id: MessengerId,
        input: MessengerInput,
        now: Timestamp,
    ) -> Result<MessengerConfig, CoreError> {
        let admin =
            Admin { tenant_id: self.kernel.tenant.id, key_id: crate::ids::ApiKeyId::from_uuid(uuid::Uuid::nil()) };
        // From the configuration file: no caller, so no address in the audit entry.
        let ctx = RequestContext::default();
        match self.store.messenger(self.kernel.tenant.id, id).await? {
            Some(_) => self.replace(&admin, id, input, &ctx, now).await,
            None => self.create(&admin, Some(id), input, &ctx, now).await,
        }
    }

    pub async fn delete(
        &self,
        admin: &Admin,
        id: MessengerId,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        if !self.store.delete_messenger(admin.tenant_id, id).await? {
            return Err(CoreError::NotFound);
        }
        let detail = json!({"messengerId": id.to_string()});
        self.kernel.audit(AuditKind::MessengerDeleted, None, "success", ctx, detail, now).await
    }

    /// The message "send test message" sends, through the messenger `m` of the admin's tenant.
    pub fn test_message(&self, admin: &Admin, to: PhoneNumber, channel: Channel, name: &str) -> OutboundMessage {
        OutboundMessage {
            tenant: Some(admin.tenant_id),
            to,
            channel,
            purpose: Purpose::Test,
            locale: "en".into(),
            text: format!("Tessera test message: the messenger \"{name}\" works."),
            code: Secret::new(""),
        }
    }

    pub async fn deliveries(
        &self,
        admin: &Admin,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<crate::messengers::Delivery>, u64), CoreError> {
        Ok(self.store.deliveries(admin.tenant_id, offset, limit.clamp(1, 500)).await?)
    }
}

/// What the audit log says of a messenger: which one, never its credentials.
fn messenger_detail(m: &MessengerConfig) -> Value {
    json!({"messengerId": m.id.to_string(), "type": m.kind.as_str(), "name": m.name})
}
