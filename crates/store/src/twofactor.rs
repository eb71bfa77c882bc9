//! Second-factor storage. Counters and single-use values change in one statement each
//! (`UPDATE … WHERE`, `DELETE … WHERE`), so concurrent requests on several servers
//! cannot both use the same code.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::ids::UserId;
use tessera_core::phone::PhoneNumber;
use tessera_core::store::{StoreResult, TwoFactorStore};
use tessera_core::totp::{OtpAlgorithm, TotpParams};
use tessera_core::twofactor::{Authenticator, MethodId, MethodKind, TrustToken, TwoFactorMethod, UserCode};

use crate::db_error;
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};

pub(crate) fn method_id(s: String) -> StoreResult<MethodId> {
    MethodId::parse(&s).ok_or_else(|| corrupt("method id"))
}

pub(crate) fn user_id(s: String) -> StoreResult<UserId> {
    s.parse().map_err(|_| corrupt("user id"))
}

pub(crate) fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The count an `UPDATE … SET failures = failures + 1 … RETURNING failures` left; as
/// many as can be when there was no row (a code or sign-in that is gone counts as spent).
pub(crate) fn failures_after(row: Option<Row>) -> StoreResult<u32> {
    row.map_or(Ok(u32::MAX), |r| Ok(count(get(&r, "failures")?)))
}

fn method(row: &Row) -> StoreResult<TwoFactorMethod> {
    let kind = match get::<String>(row, "kind")?.as_str() {
        "sms" => MethodKind::Sms { phone: PhoneNumber::from_trusted(get(row, "phone")?) },
        "authenticator" => {
            let algorithm =
                OtpAlgorithm::parse(&get::<String>(row, "algorithm")?).ok_or_else(|| corrupt("algorithm"))?;
            let digits = u32::try_from(get::<i64>(row, "digits")?).map_err(corrupt)?;
            let period = u64::try_from(get::<i64>(row, "period")?).map_err(corrupt)?;
            MethodKind::Authenticator(Authenticator {
                sealed_secret: get(row, "secret_sealed")?,
                params: TotpParams { algorithm, digits, period },
                last_step: get(row, "last_step")?,
            })
        }
        other => return Err(corrupt(format!("method kind {other}"))),
    };
    Ok(TwoFactorMethod {
        id: method_id(get(row, "id")?)?,
        user_id: user_id(get(row, "user_id")?)?,
        kind,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
    })
}

#[async_trait]
impl TwoFactorStore for SqlStore {
    async fn insert_method(&self, m: &TwoFactorMethod) -> StoreResult<()> {
        let (phone, sealed, algorithm, digits, period, last_step) = match &m.kind {
            MethodKind::Sms { phone } => (Some(phone.as_str().to_owned()), None, None, None, None, None),
            MethodKind::Authenticator(a) => (
                None,
                Some(a.sealed_secret.clone()),
                Some(a.params.algorithm.as_str().to_owned()),
                Some(i64::from(a.params.digits)),
                Some(i64::try_from(a.params.period).unwrap_or(30)),
                a.last_step,
            ),
        };
        db::query(
            "INSERT INTO two_factor_methods (user_id, id, kind, phone, secret_sealed, algorithm, digits, period, \
             last_step, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(m.user_id.to_string())
        .bind(m.id.as_str().to_owned())
        .bind(m.method_name().to_owned())
        .bind(phone)
        .bind(sealed)
        .bind(algorithm)
        .bind(digits)
        .bind(period)
        .bind(last_step)
        .bind(m.created_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn methods(&self, user: UserId) -> StoreResult<Vec<TwoFactorMethod>> {
        db::query(
            "SELECT user_id, id, kind, phone, secret_sealed, algorithm, digits, period, last_step, created_at \
             FROM two_factor_methods WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user.to_string())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(method)
        .collect()
    }

    async fn delete_method(&self, user: UserId, id: &MethodId) -> StoreResult<bool> {
        let done = db::query("DELETE FROM two_factor_methods WHERE user_id = $1 AND id = $2")
            .bind(user.to_string())
            .bind(id.as_str().to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn advance_totp_step(&self, user: UserId, id: &MethodId, step: i64) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE two_factor_methods SET last_step = $3 \
             WHERE user_id = $1 AND id = $2 AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(user.to_string())
        .bind(id.as_str().to_owned())
        .bind(step)
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn sealed_secrets(&self) -> StoreResult<Vec<(UserId, MethodId, String)>> {
        let rows = db::query(
            "SELECT user_id, id, secret_sealed FROM two_factor_methods WHERE secret_sealed IS NOT NULL ORDER BY user_id, id",
        )
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| Ok((user_id(get(r, "user_id")?)?, method_id(get(r, "id")?)?, get(r, "secret_sealed")?)))
            .collect()
    }

    async fn replace_sealed_secret(&self, user: UserId, id: &MethodId, old: &str, new: &str) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE two_factor_methods SET secret_sealed = $4 WHERE user_id = $1 AND id = $2 AND secret_sealed = $3",
        )
        .bind(user.to_string())
        .bind(id.as_str().to_owned())
        .bind(old.to_owned())
        .bind(new.to_owned())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(&self, user: UserId, hashes: &[String], now: Timestamp) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        db::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        for h in hashes {
            db::query("INSERT INTO recovery_codes (user_id, hash, created_at) VALUES ($1, $2, $3)")
                .bind(user.to_string())
                .bind(h.clone())
                .bind(now.millis())
                .execute(&mut tx)
                .await
                .map_err(write_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn use_recovery_code(&self, user: UserId, hashes: &[String]) -> StoreResult<bool> {
        for h in hashes {
            let done = db::query("DELETE FROM recovery_codes WHERE user_id = $1 AND hash = $2")
                .bind(user.to_string())
                .bind(h.clone())
                .execute(&mut self.write_conn().await?)
                .await
                .map_err(db_error)?;
            if done.rows_affected() == 1 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn recovery_code_count(&self, user: UserId) -> StoreResult<u32> {
        let row = db::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_one(&mut self.conn().await?)
            .await
            .map_err(db_error)?;
        Ok(count(get(&row, "n")?))
    }

    async fn put_user_code(&self, c: &UserCode) -> StoreResult<()> {
        db::query(
            "INSERT INTO user_codes (user_id, purpose, hash, expires_at, failures) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, purpose) DO UPDATE SET hash = $3, expires_at = $4, failures = $5",
        )
        .bind(c.user_id.to_string())
        .bind(c.purpose.clone())
        .bind(c.hash.clone())
        .bind(c.expires_at.millis())
        .bind(i64::from(c.failures))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn user_code(&self, user: UserId, purpose: &str) -> StoreResult<Option<UserCode>> {
        let row = db::query(
            "SELECT user_id, purpose, hash, expires_at, failures FROM user_codes WHERE user_id = $1 AND purpose = $2",
        )
        .bind(user.to_string())
        .bind(purpose.to_owned())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok(UserCode {
                user_id: user_id(get(&r, "user_id")?)?,
                purpose: get(&r, "purpose")?,
                hash: get(&r, "hash")?,
                expires_at: Timestamp::from_millis(get(&r, "expires_at")?),
                failures: count(get(&r, "failures")?),
            })
        })
        .transpose()
    }

    async fn record_user_code_failure(&self, user: UserId, purpose: &str) -> StoreResult<u32> {
        let row = db::query(
            "UPDATE user_codes SET failures = failures + 1 WHERE user_id = $1 AND purpose = $2 RETURNING failures",
        )
        .bind(user.to_string())
        .bind(purpose.to_owned())
        .fetch_optional(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        failures_after(row)
    }

    async fn take_user_code(&self, user: UserId, purpose: &str, hash: &str) -> StoreResult<bool> {
        let done = db::query("DELETE FROM user_codes WHERE user_id = $1 AND purpose = $2 AND hash = $3")
            .bind(user.to_string())
            .bind(purpose.to_owned())
            .bind(hash.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn try_record_send(&self, user: UserId, now: Timestamp, since: Timestamp, limit: u32) -> StoreResult<bool> {
        // Under the user's limit lock: on PostgreSQL a lone INSERT … WHERE (SELECT COUNT)
        // let concurrent sends all see room (each statement sees only committed rows).
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        crate::unit::lock_limit(&mut tx, &format!("send:{user}")).await?;
        let done = db::query(
            "INSERT INTO message_sends (user_id, at) SELECT $1, $2 \
             WHERE (SELECT COUNT(*) FROM message_sends WHERE user_id = $1 AND at > $3) < $4",
        )
        .bind(user.to_string())
        .bind(now.millis())
        .bind(since.millis())
        .bind(i64::from(limit))
        .execute(&mut tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_trust_token(&self, t: &TrustToken) -> StoreResult<()> {
        db::query("INSERT INTO trust_tokens (digest, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(t.digest.clone())
            .bind(t.user_id.to_string())
            .bind(t.created_at.millis())
            .bind(t.expires_at.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn trust_token(&self, digest: &str) -> StoreResult<Option<TrustToken>> {
        let row = db::query("SELECT digest, user_id, created_at, expires_at FROM trust_tokens WHERE digest = $1")
            .bind(digest.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(TrustToken {
                digest: get(&r, "digest")?,
                user_id: user_id(get(&r, "user_id")?)?,
                created_at: Timestamp::from_millis(get(&r, "created_at")?),
                expires_at: Timestamp::from_millis(get(&r, "expires_at")?),
            })
        })
        .transpose()
    }

    async fn delete_trust_tokens(&self, user: UserId) -> StoreResult<u64> {
        let done = db::query("DELETE FROM trust_tokens WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, now: Timestamp, sends_before: Timestamp) -> StoreResult<u64> {
        let statements: [(&'static str, i64); 11] = [
            ("DELETE FROM sign_ins WHERE expires_at < $1", now.millis()),
            ("DELETE FROM user_codes WHERE expires_at < $1", now.millis()),
            ("DELETE FROM trust_tokens WHERE expires_at < $1", now.millis()),
            ("DELETE FROM refresh_tokens WHERE expires_at < $1", now.millis()),
            ("DELETE FROM message_sends WHERE at < $1", sends_before.millis()),
            // No fraud-guard window reaches further back, so counts stay as cheap as
            // the traffic of one window, however long the history.
            ("DELETE FROM verify_sends WHERE at < $1", now.minus(tessera_core::verify::MAX_WINDOW).millis()),
            ("DELETE FROM verify_counts WHERE bucket_end <= $1", now.minus(tessera_core::verify::MAX_WINDOW).millis()),
            // Lock rows hold nothing between units; a unit that finds its row gone makes
            // it again (and one waiting on a deleted row finds the new one).
            ("DELETE FROM limit_locks WHERE $1 > 0", now.millis()),
            ("DELETE FROM voice_prompts WHERE expires_at < $1", now.millis()),
            // What actions did is kept as long as Auth0 keeps it.
            (
                "DELETE FROM action_executions WHERE created_at < $1",
                now.minus(tessera_core::actions::EXECUTION_RETENTION).millis(),
            ),
            // A failure window is over once it is older than any lock it set.
            (
                "DELETE FROM login_failures WHERE (locked_until IS NULL OR locked_until < $1) \
                 AND window_started_at < $1 - 86400000",
                now.millis(),
            ),
        ];
        let mut n = 0;
        for (sql, at) in statements {
            n +=
                db::query(sql).bind(at).execute(&mut self.write_conn().await?).await.map_err(db_error)?.rows_affected();
        }
        Ok(n)
    }
}
