//! Messenger configurations and delivery records.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::ids::{MessengerId, TenantId};
use tessera_core::messaging::{Channel, Purpose};
use tessera_core::messengers::{Delivery, MessengerConfig, MessengerType};
use tessera_core::store::{MessengerStore, StoreResult};

use crate::db_error;
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};

fn json<T: serde::de::DeserializeOwned>(row: &Row, col: &str) -> StoreResult<T> {
    serde_json::from_str(&get::<String>(row, col)?).map_err(|e| corrupt(format!("{col}: {e}")))
}

fn channels_text(c: &[Channel]) -> String {
    serde_json::Value::from(c.iter().map(|c| c.as_str()).collect::<Vec<_>>()).to_string()
}

const COLUMNS: &str = "id, tenant_id, kind, name, url, settings, sealed_secrets, channels, priority, country_codes, \
                       preferred_country_codes, created_at, updated_at";

fn messenger(row: &Row) -> StoreResult<MessengerConfig> {
    let channels: Vec<String> = json(row, "channels")?;
    Ok(MessengerConfig {
        id: get::<String>(row, "id")?.parse().map_err(|_| corrupt("messenger id"))?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        kind: MessengerType::parse(&get::<String>(row, "kind")?).ok_or_else(|| corrupt("messenger kind"))?,
        name: get(row, "name")?,
        url: get(row, "url")?,
        settings: json(row, "settings")?,
        sealed_secrets: get(row, "sealed_secrets")?,
        channels: channels.iter().filter_map(|c| Channel::parse(c)).collect(),
        priority: get(row, "priority")?,
        country_codes: json(row, "country_codes")?,
        preferred_country_codes: json(row, "preferred_country_codes")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

fn bind_messenger(q: db::Statement, m: &MessengerConfig) -> db::Statement {
    q.bind(m.id.to_string())
        .bind(m.tenant_id.to_string())
        .bind(m.kind.as_str().to_owned())
        .bind(m.name.clone())
        .bind(m.url.clone())
        .bind(serde_json::Value::Object(m.settings.clone()).to_string())
        .bind(m.sealed_secrets.clone())
        .bind(channels_text(&m.channels))
        .bind(m.priority)
        .bind(serde_json::Value::from(m.country_codes.clone()).to_string())
        .bind(serde_json::Value::from(m.preferred_country_codes.clone()).to_string())
        .bind(m.created_at.millis())
        .bind(m.updated_at.millis())
}

fn purpose(s: &str) -> Purpose {
    [Purpose::Enrollment, Purpose::Test, Purpose::Notification]
        .into_iter()
        .find(|p| p.as_str() == s)
        .unwrap_or(Purpose::SecondFactor)
}

fn delivery(row: &Row) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: get::<String>(row, "id")?.parse().map_err(|_| corrupt("delivery id"))?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        messenger_id: get::<Option<String>>(row, "messenger_id")?.and_then(|s| s.parse().ok()),
        provider: get(row, "provider")?,
        to: get(row, "recipient")?,
        channel: Channel::parse(&get::<String>(row, "channel")?).ok_or_else(|| corrupt("channel"))?,
        purpose: purpose(&get::<String>(row, "purpose")?),
        provider_message_id: get(row, "provider_message_id")?,
        status: get(row, "status")?,
        error_code: get(row, "error_code")?,
        error_message: get(row, "error_message")?,
        attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(u32::MAX),
        price: get(row, "price")?,
        price_unit: get(row, "price_unit")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

#[async_trait]
impl MessengerStore for SqlStore {
    async fn insert_messenger(&self, m: &MessengerConfig) -> StoreResult<()> {
        let q = db::query(format!(
            "INSERT INTO messengers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ));
        bind_messenger(q, m).execute(&mut self.write_conn().await?).await.map_err(write_error)?;
        Ok(())
    }

    async fn messenger(&self, tenant: TenantId, id: MessengerId) -> StoreResult<Option<MessengerConfig>> {
        // Ids are unique across tenants: another tenant's is simply not this tenant's.
        Ok(self.messenger_by_id(id).await?.filter(|m| m.tenant_id == tenant))
    }

    async fn messenger_by_id(&self, id: MessengerId) -> StoreResult<Option<MessengerConfig>> {
        db::query(format!("SELECT {COLUMNS} FROM messengers WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| messenger(&r))
            .transpose()
    }

    async fn messengers(&self, tenant: TenantId) -> StoreResult<Vec<MessengerConfig>> {
        db::query(format!("SELECT {COLUMNS} FROM messengers WHERE tenant_id = $1 ORDER BY created_at, id"))
            .bind(tenant.to_string())
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .iter()
            .map(messenger)
            .collect()
    }

    async fn update_messenger(&self, m: &MessengerConfig) -> StoreResult<bool> {
        let q = db::query(
            "UPDATE messengers SET kind = $3, name = $4, url = $5, settings = $6, sealed_secrets = $7, channels = $8, \
             priority = $9, country_codes = $10, preferred_country_codes = $11, created_at = $12, updated_at = $13 \
             WHERE id = $1 AND tenant_id = $2",
        );
        Ok(bind_messenger(q, m).execute(&mut self.write_conn().await?).await.map_err(write_error)?.rows_affected() == 1)
    }

    async fn delete_messenger(&self, tenant: TenantId, id: MessengerId) -> StoreResult<bool> {
        let done = db::query("DELETE FROM messengers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_delivery(&self, d: &Delivery) -> StoreResult<()> {
        db::query(
            "INSERT INTO deliveries (id, tenant_id, messenger_id, provider, recipient, channel, purpose, \
             provider_message_id, status, error_code, error_message, attempts, price, price_unit, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(d.id.to_string())
        .bind(d.tenant_id.to_string())
        .bind(d.messenger_id.map(|m| m.to_string()))
        .bind(d.provider.clone())
        .bind(d.to.clone())
        .bind(d.channel.as_str().to_owned())
        .bind(d.purpose.as_str().to_owned())
        .bind(d.provider_message_id.clone())
        .bind(d.status.clone())
        .bind(d.error_code.clone())
        .bind(d.error_message.clone())
        .bind(i64::from(d.attempts))
        .bind(d.price.clone())
        .bind(d.price_unit.clone())
        .bind(d.created_at.millis())
        .bind(d.updated_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn update_delivery_status(
        &self,
        provider: &str,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE deliveries SET status = $3, error_code = COALESCE($4, error_code), updated_at = $5 \
             WHERE provider = $1 AND provider_message_id = $2",
        )
        .bind(provider.to_owned())
        .bind(provider_message_id.to_owned())
        .bind(status.to_owned())
        .bind(error_code.map(str::to_owned))
        .bind(now.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_voice_prompt(&self, digest: &str, sealed_text: &str, expires_at: Timestamp) -> StoreResult<()> {
        db::query("INSERT INTO voice_prompts (digest, sealed_text, expires_at) VALUES ($1, $2, $3)")
            .bind(digest.to_owned())
            .bind(sealed_text.to_owned())
            .bind(expires_at.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn take_voice_prompt(&self, digest: &str, now: Timestamp) -> StoreResult<Option<String>> {
        let row = db::query("DELETE FROM voice_prompts WHERE digest = $1 RETURNING sealed_text, expires_at")
            .bind(digest.to_owned())
            .fetch_optional(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        match row {
            Some(r) if get::<i64>(&r, "expires_at")? > now.millis() => Ok(Some(get(&r, "sealed_text")?)),
            _ => Ok(None),
        }
    }

    async fn deliveries(&self, tenant: TenantId, offset: u64, limit: u64) -> StoreResult<(Vec<Delivery>, u64)> {
        let rows = db::query(
            "SELECT * FROM deliveries WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(tenant.to_string())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        let list = rows.iter().map(delivery).collect::<StoreResult<Vec<_>>>()?;
        let total = db::query("SELECT COUNT(*) AS n FROM deliveries WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_one(&mut self.conn().await?)
            .await
            .map_err(db_error)?;
        Ok((list, u64::try_from(get::<i64>(&total, "n")?).unwrap_or(0)))
    }
}
