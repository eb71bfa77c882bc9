//! Verify API storage: accounts, services, verifications, the fraud guard's send
//! windows and its blocks. A number's window counts its timestamped send rows; the
//! others sum bucket rows (`verify_counts`) one upsert keeps. Both live in the
//! database, so several servers on one PostgreSQL see the same numbers.

use std::time::Duration;

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::messaging::Channel;
use tessera_core::phone::PhoneNumber;
use tessera_core::store::{StoreResult, Tally, VerifyStore, WindowKey};
use tessera_core::verify::{Block, FraudGuard, Status, Verification, VerifyAccount, VerifyService};

use crate::db_error;
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

const SERVICE_COLUMNS: &str = "sid, tenant_id, account_sid, friendly_name, code_length, custom_code_enabled, ttl_seconds, guard, created_at, updated_at";

fn service(row: &Row) -> StoreResult<VerifyService> {
    let guard: FraudGuard = serde_json::from_str(&get::<String>(row, "guard")?).map_err(corrupt)?;
    Ok(VerifyService {
        sid: get(row, "sid")?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        account_sid: get(row, "account_sid")?,
        friendly_name: get(row, "friendly_name")?,
        code_length: u32::try_from(get::<i64>(row, "code_length")?).map_err(corrupt)?,
        custom_code_enabled: get::<i64>(row, "custom_code_enabled")? != 0,
        ttl: Duration::from_secs(u64::try_from(get::<i64>(row, "ttl_seconds")?).map_err(corrupt)?),
        guard,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

const VERIFICATION_COLUMNS: &str = "sid, service_sid, account_sid, to_number, channel, status, code_hash, sealed_code, \
                                    checks, sends, prefix, country, created_at, updated_at, expires_at";

fn sends_text(sends: &[(Timestamp, Channel)]) -> String {
    serde_json::Value::from(sends.iter().map(|(t, c)| serde_json::json!([t.millis(), c.as_str()])).collect::<Vec<_>>())
        .to_string()
}

fn verification(row: &Row) -> StoreResult<Verification> {
    let sends: Vec<(i64, String)> = serde_json::from_str(&get::<String>(row, "sends")?).map_err(corrupt)?;
    Ok(Verification {
        sid: get(row, "sid")?,
        service_sid: get(row, "service_sid")?,
        account_sid: get(row, "account_sid")?,
        to: PhoneNumber::from_trusted(get(row, "to_number")?),
        channel: Channel::parse(&get::<String>(row, "channel")?).ok_or_else(|| corrupt("channel"))?,
        status: Status::parse(&get::<String>(row, "status")?).ok_or_else(|| corrupt("status"))?,
        code_hash: get(row, "code_hash")?,
        sealed_code: get(row, "sealed_code")?,
        checks: count(get(row, "checks")?),
        sends: sends
            .into_iter()
            .filter_map(|(t, c)| Channel::parse(&c).map(|c| (Timestamp::from_millis(t), c)))
            .collect(),
        prefix: get(row, "prefix")?,
        country: get::<Option<i64>>(row, "country")?.and_then(|c| u16::try_from(c).ok()),
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
        expires_at: Timestamp::from_millis(get(row, "expires_at")?),
    })
}

fn block(row: &Row) -> StoreResult<Block> {
    Ok(Block {
        service_sid: get(row, "service_sid")?,
        prefix: get(row, "prefix")?,
        reason: get(row, "reason")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        expires_at: Timestamp::from_millis(get(row, "expires_at")?),
    })
}

fn guard_text(g: &FraudGuard) -> String {
    serde_json::to_string(g).unwrap_or_else(|_| "{}".into())
}

#[async_trait]
impl VerifyStore for SqlStore {
    async fn insert_verify_account(&self, a: &VerifyAccount) -> StoreResult<()> {
        db::query("INSERT INTO verify_accounts (sid, tenant_id, token_digest, created_at) VALUES ($1, $2, $3, $4)")
            .bind(a.sid.clone())
            .bind(a.tenant_id.to_string())
            .bind(a.token_digest.clone())
            .bind(a.created_at.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn verify_account(&self, sid: &str) -> StoreResult<Option<VerifyAccount>> {
        let row = db::query("SELECT sid, tenant_id, token_digest, created_at FROM verify_accounts WHERE sid = $1")
            .bind(sid.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(VerifyAccount {
                sid: get(&r, "sid")?,
                tenant_id: get::<String>(&r, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
                token_digest: get(&r, "token_digest")?,
                created_at: Timestamp::from_millis(get(&r, "created_at")?),
            })
        })
        .transpose()
    }

    async fn insert_verify_service(&self, s: &VerifyService) -> StoreResult<()> {
        db::query(format!(
            "INSERT INTO verify_services ({SERVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(s.sid.clone())
        .bind(s.tenant_id.to_string())
        .bind(s.account_sid.clone())
        .bind(s.friendly_name.clone())
        .bind(i64::from(s.code_length))
        .bind(i64::from(s.custom_code_enabled))
        .bind(i64::try_from(s.ttl.as_secs()).unwrap_or(600))
        .bind(guard_text(&s.guard))
        .bind(s.created_at.millis())
        .bind(s.updated_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn verify_service(&self, account_sid: &str, sid: &str) -> StoreResult<Option<VerifyService>> {
        db::query(format!("SELECT {SERVICE_COLUMNS} FROM verify_services WHERE account_sid = $1 AND sid = $2"))
            .bind(account_sid.to_owned())
            .bind(sid.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| service(&r))
            .transpose()
    }

    async fn verify_services(&self, account_sid: &str) -> StoreResult<Vec<VerifyService>> {
        db::query(format!(
            "SELECT {SERVICE_COLUMNS} FROM verify_services WHERE account_sid = $1 ORDER BY created_at, sid"
        ))
        .bind(account_sid.to_owned())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(service)
        .collect()
    }

    async fn update_verify_service(&self, s: &VerifyService) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE verify_services SET friendly_name = $3, code_length = $4, custom_code_enabled = $5, \
             ttl_seconds = $6, guard = $7, updated_at = $8 WHERE account_sid = $1 AND sid = $2",
        )
        .bind(s.account_sid.clone())
        .bind(s.sid.clone())
        .bind(s.friendly_name.clone())
        .bind(i64::from(s.code_length))
        .bind(i64::from(s.custom_code_enabled))
        .bind(i64::try_from(s.ttl.as_secs()).unwrap_or(600))
        .bind(guard_text(&s.guard))
        .bind(s.updated_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_verify_service(&self, account_sid: &str, sid: &str) -> StoreResult<bool> {
        let done = db::query("DELETE FROM verify_services WHERE account_sid = $1 AND sid = $2")
            .bind(account_sid.to_owned())
            .bind(sid.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_verification(&self, v: &Verification) -> StoreResult<()> {
        db::query(format!(
            "INSERT INTO verifications ({VERIFICATION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(v.sid.clone())
        .bind(v.service_sid.clone())
        .bind(v.account_sid.clone())
        .bind(v.to.as_str().to_owned())
        .bind(v.channel.as_str().to_owned())
        .bind(v.status.as_str().to_owned())
        .bind(v.code_hash.clone())
        .bind(v.sealed_code.clone())
        .bind(i64::from(v.checks))
        .bind(sends_text(&v.sends))
        .bind(v.prefix.clone())
        .bind(v.country.map(i64::from))
        .bind(v.created_at.millis())
        .bind(v.updated_at.millis())
        .bind(v.expires_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn verification(&self, service_sid: &str, sid: &str) -> StoreResult<Option<Verification>> {
        db::query(format!("SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE service_sid = $1 AND sid = $2"))
            .bind(service_sid.to_owned())
            .bind(sid.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| verification(&r))
            .transpose()
    }

    async fn pending_verification(&self, service_sid: &str, to: &str) -> StoreResult<Option<Verification>> {
        self.newest_verification(service_sid, to, "AND status = 'pending'").await
    }

    async fn latest_verification(&self, service_sid: &str, to: &str) -> StoreResult<Option<Verification>> {
        self.newest_verification(service_sid, to, "").await
    }

    async fn update_verification(&self, v: &Verification, expected_checks: u32) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE verifications SET status = $3, checks = $4, sends = $5, updated_at = $6 \
             WHERE service_sid = $1 AND sid = $2 AND checks = $7",
        )
        .bind(v.service_sid.clone())
        .bind(v.sid.clone())
        .bind(v.status.as_str().to_owned())
        .bind(i64::from(v.checks))
        .bind(sends_text(&v.sends))
        .bind(v.updated_at.millis())
        .bind(i64::from(expected_checks))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_verify_send(
        &self,
        service_sid: &str,
        number: &str,
        prefix: &str,
        ip: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()> {
        db::query("INSERT INTO verify_sends (service_sid, number, prefix, ip, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(service_sid.to_owned())
            .bind(number.to_owned())
            .bind(prefix.to_owned())
            .bind(ip.map(str::to_owned))
            .bind(at.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn count_number_sends(
        &self,
        service_sid: &str,
        number: &str,
        since: Timestamp,
        at_most: u32,
    ) -> StoreResult<u32> {
        let row = db::query(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM verify_sends \
             WHERE service_sid = $1 AND number = $2 AND at > $3 LIMIT $4) AS w",
        )
        .bind(service_sid.to_owned())
        .bind(number.to_owned())
        .bind(since.millis())
        .bind(i64::from(at_most))
        .fetch_one(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        Ok(count(get(&row, "n")?))
    }

    async fn add_to_windows(&self, service_sid: &str, tallies: &[Tally]) -> StoreResult<()> {
        if tallies.is_empty() {
            return Ok(());
        }
        // One statement for all of a send's windows; each tally is its own row (they
        // differ in kind), so PostgreSQL's one-update-per-row rule holds.
        let rows: Vec<String> =
            (0..tallies.len()).map(|i| format!("($1, ${}, ${}, ${}, 1)", 3 * i + 2, 3 * i + 3, 3 * i + 4)).collect();
        let mut q = db::query(format!(
            "INSERT INTO verify_counts (service_sid, kind, value, bucket_end, n) VALUES {} \
             ON CONFLICT (service_sid, kind, value, bucket_end) DO UPDATE SET n = verify_counts.n + 1",
            rows.join(", ")
        ))
        .bind(service_sid.to_owned());
        for t in tallies {
            q = q.bind(t.key.as_str().to_owned()).bind(t.value.clone()).bind(t.bucket_end.millis());
        }
        q.execute(&mut self.write_conn().await?).await.map_err(db_error)?;
        Ok(())
    }

    async fn count_window(&self, service_sid: &str, key: WindowKey, value: &str, since: Timestamp) -> StoreResult<u32> {
        // PostgreSQL sums BIGINTs as NUMERIC: the cast keeps one integer type on both.
        let row = db::query(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM verify_counts \
             WHERE service_sid = $1 AND kind = $2 AND value = $3 AND bucket_end > $4",
        )
        .bind(service_sid.to_owned())
        .bind(key.as_str().to_owned())
        .bind(value.to_owned())
        .bind(since.millis())
        .fetch_one(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        Ok(count(get(&row, "n")?))
    }

    async fn prefix_conversion(&self, service_sid: &str, prefix: &str, since: Timestamp) -> StoreResult<(u32, u32)> {
        let started = self.count_window(service_sid, WindowKey::Started, prefix, since).await?;
        let approved = self.count_window(service_sid, WindowKey::Approved, prefix, since).await?;
        Ok((started, approved))
    }

    async fn insert_block(&self, b: &Block) -> StoreResult<()> {
        db::query("INSERT INTO fraud_blocks (service_sid, prefix, reason, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(b.service_sid.clone())
            .bind(b.prefix.clone())
            .bind(b.reason.clone())
            .bind(b.created_at.millis())
            .bind(b.expires_at.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn active_block(&self, service_sid: &str, prefix: &str, now: Timestamp) -> StoreResult<Option<Block>> {
        db::query(
            "SELECT service_sid, prefix, reason, created_at, expires_at FROM fraud_blocks \
             WHERE service_sid = $1 AND prefix = $2 AND expires_at > $3 ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(service_sid.to_owned())
        .bind(prefix.to_owned())
        .bind(now.millis())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| block(&r))
        .transpose()
    }

    async fn blocks(&self, service_sid: &str, limit: u64) -> StoreResult<Vec<Block>> {
        db::query(
            "SELECT service_sid, prefix, reason, created_at, expires_at FROM fraud_blocks WHERE service_sid = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(service_sid.to_owned())
        .bind(i64::try_from(limit).unwrap_or(100))
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(block)
        .collect()
    }
}

impl SqlStore {
    /// A number's newest verification in a service, narrowed by `filter` (SQL, ours).
    async fn newest_verification(
        &self,
        service_sid: &str,
        to: &str,
        filter: &'static str,
    ) -> StoreResult<Option<Verification>> {
        db::query(format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE service_sid = $1 AND to_number = $2 {filter} \
             ORDER BY created_at DESC, sid DESC LIMIT 1"
        ))
        .bind(service_sid.to_owned())
        .bind(to.to_owned())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| verification(&r))
        .transpose()
    }
}
