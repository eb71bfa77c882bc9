//! Sign-ins between their steps. Every move of one (a new stage, a spent id, a used
//! resume token) is one `UPDATE … WHERE` on the state it moves from, so of two requests
//! racing for the same step exactly one takes it, on one server or several.

use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::messaging::Channel;
use tessera_core::oidc::MfaPolicy;
use tessera_core::phone::PhoneNumber;
use tessera_core::signin::{Enrolling, FactorRule, ScriptState, SignIn, Signals, Stage};
use tessera_core::store::{SignInStore, StoreResult};
use tessera_core::twofactor::PendingCode;

use crate::db::{self, Row};
use crate::db_error;
use crate::oidc::{method_names, methods};
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};
use crate::twofactor::{count, failures_after, method_id, user_id};

const COLUMNS: &str = "digest, tenant_id, application_id, user_id, methods, stage, stage_detail, resume_digest, \
     return_to, ip, user_agent, browser_digest, created_at, expires_at, failures, spent, \
     code_method_id, code_channel, code_hash, code_expires_at, mfa_policy, step_up, enrol_key, enrol_phone, \
     device_digest, script_state";

/// Stored as JSON, or nothing when the scripts decided nothing.
fn script_state(s: &ScriptState) -> Option<String> {
    (!s.is_empty()).then(|| serde_json::to_string(s).unwrap_or_default())
}

fn sign_in(row: &Row) -> StoreResult<SignIn> {
    let code = match (
        get::<Option<String>>(row, "code_method_id")?,
        get::<Option<String>>(row, "code_hash")?,
        get::<Option<i64>>(row, "code_expires_at")?,
    ) {
        (Some(m), Some(hash), Some(exp)) => {
            // Codes sent before the channel was kept were texts.
            let channel = match get::<Option<String>>(row, "code_channel")? {
                None => Channel::Sms,
                Some(c) => Channel::parse(&c).ok_or_else(|| corrupt("code channel"))?,
            };
            Some(PendingCode { method_id: method_id(m)?, channel, hash, expires_at: Timestamp::from_millis(exp) })
        }
        _ => None,
    };
    let rule = FactorRule {
        policy: MfaPolicy::parse(&get::<String>(row, "mfa_policy")?).ok_or_else(|| corrupt("sign-in policy"))?,
        step_up: get::<i64>(row, "step_up")? != 0,
    };
    let enrolling = match get::<Option<String>>(row, "enrol_key")? {
        Some(sealed_key) => {
            let phone = get::<Option<String>>(row, "enrol_phone")?
                .map(|p| PhoneNumber::parse(&p).map_err(|_| corrupt("enrolment phone")))
                .transpose()?;
            Some(Enrolling { sealed_key, phone })
        }
        None => None,
    };
    let stage = Stage::parse(&get::<String>(row, "stage")?, get(row, "stage_detail")?)
        .ok_or_else(|| corrupt("sign-in stage"))?;
    Ok(SignIn {
        digest: get(row, "digest")?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        application_id: get::<String>(row, "application_id")?.parse().map_err(|_| corrupt("application id"))?,
        user_id: get::<Option<String>>(row, "user_id")?.map(user_id).transpose()?,
        passed: methods(row, "methods")?,
        stage,
        resume_digest: get(row, "resume_digest")?,
        return_to: get(row, "return_to")?,
        signals: Signals {
            ip: get(row, "ip")?,
            user_agent: get(row, "user_agent")?,
            browser: get(row, "browser_digest")?,
            device: get(row, "device_digest")?,
        },
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        expires_at: Timestamp::from_millis(get(row, "expires_at")?),
        failures: count(get(row, "failures")?),
        spent: get::<i64>(row, "spent")? != 0,
        code,
        rule,
        enrolling,
        scripts: match get::<Option<String>>(row, "script_state")? {
            Some(text) => serde_json::from_str(&text).map_err(|_| corrupt("sign-in script state"))?,
            None => ScriptState::default(),
        },
    })
}

#[async_trait]
impl SignInStore for SqlStore {
    async fn insert_sign_in(&self, s: &SignIn) -> StoreResult<()> {
        db::query(format!(
            "INSERT INTO sign_ins ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24, $25, $26)"
        ))
        .bind(s.digest.clone())
        .bind(s.tenant_id.to_string())
        .bind(s.application_id.to_string())
        .bind(s.user_id.map(|u| u.to_string()))
        .bind(method_names(&s.passed))
        .bind(s.stage.name().to_owned())
        .bind(s.stage.detail().map(str::to_owned))
        .bind(s.resume_digest.clone())
        .bind(s.return_to.clone())
        .bind(s.signals.ip.clone())
        .bind(s.signals.user_agent.clone())
        .bind(s.signals.browser.clone())
        .bind(s.created_at.millis())
        .bind(s.expires_at.millis())
        .bind(i64::from(s.failures))
        .bind(i64::from(s.spent))
        .bind(s.code.as_ref().map(|p| p.method_id.as_str().to_owned()))
        .bind(s.code.as_ref().map(|p| p.channel.as_str().to_owned()))
        .bind(s.code.as_ref().map(|p| p.hash.clone()))
        .bind(s.code.as_ref().map(|p| p.expires_at.millis()))
        .bind(s.rule.policy.as_str().to_owned())
        .bind(i64::from(s.rule.step_up))
        .bind(s.enrolling.as_ref().map(|e| e.sealed_key.clone()))
        .bind(s.enrolling.as_ref().and_then(|e| e.phone.as_ref()).map(|p| p.as_str().to_owned()))
        .bind(s.signals.device.clone())
        .bind(script_state(&s.scripts))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn sign_in(&self, digest: &str) -> StoreResult<Option<SignIn>> {
        db::query(format!("SELECT {COLUMNS} FROM sign_ins WHERE digest = $1"))
            .bind(digest.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| sign_in(&r))
            .transpose()
    }

    async fn advance_sign_in(&self, digest: &str, from: &Stage, next: &SignIn, now: Timestamp) -> StoreResult<bool> {
        // The row keeps what it began with (tenant, application, destination, the
        // request's signals, when it started); the step changes the rest, its end too
        // (a second step has minutes, a sign-in page longer).
        let done = db::query(
            "UPDATE sign_ins SET digest = $3, user_id = $4, methods = $5, stage = $6, stage_detail = $7, \
             resume_digest = $8, expires_at = $10, failures = 0, code_method_id = NULL, code_channel = NULL, \
             code_hash = NULL, code_expires_at = NULL, enrol_key = $11, enrol_phone = NULL, script_state = $12 \
             WHERE digest = $1 AND stage = $2 AND spent = 0 AND expires_at > $9",
        )
        .bind(digest.to_owned())
        .bind(from.name().to_owned())
        .bind(next.digest.clone())
        .bind(next.user_id.map(|u| u.to_string()))
        .bind(method_names(&next.passed))
        .bind(next.stage.name().to_owned())
        .bind(next.stage.detail().map(str::to_owned))
        .bind(next.resume_digest.clone())
        .bind(now.millis())
        .bind(next.expires_at.millis())
        .bind(next.enrolling.as_ref().map(|e| e.sealed_key.clone()))
        .bind(script_state(&next.scripts))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn resume_sign_in(&self, resume_digest: &str) -> StoreResult<Option<SignIn>> {
        db::query(format!(
            "UPDATE sign_ins SET resume_digest = NULL WHERE resume_digest = $1 AND stage = 'redirected' \
             RETURNING {COLUMNS}"
        ))
        .bind(resume_digest.to_owned())
        .fetch_optional(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| sign_in(&r))
        .transpose()
    }

    async fn set_sign_in_code(&self, digest: &str, code: &PendingCode) -> StoreResult<()> {
        db::query(
            "UPDATE sign_ins SET code_method_id = $2, code_hash = $3, code_expires_at = $4, code_channel = $5 \
             WHERE digest = $1",
        )
        .bind(digest.to_owned())
        .bind(code.method_id.as_str().to_owned())
        .bind(code.hash.clone())
        .bind(code.expires_at.millis())
        .bind(code.channel.as_str().to_owned())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn take_sign_in_code(&self, digest: &str, hash: &str) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE sign_ins SET code_method_id = NULL, code_hash = NULL, code_expires_at = NULL, \
             code_channel = NULL WHERE digest = $1 AND code_hash = $2",
        )
        .bind(digest.to_owned())
        .bind(hash.to_owned())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_sign_in_failure(&self, digest: &str) -> StoreResult<u32> {
        let row = db::query("UPDATE sign_ins SET failures = failures + 1 WHERE digest = $1 RETURNING failures")
            .bind(digest.to_owned())
            .fetch_optional(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        failures_after(row)
    }

    async fn set_sign_in_phone(&self, digest: &str, phone: &PhoneNumber, now: Timestamp) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE sign_ins SET enrol_phone = $2 \
             WHERE digest = $1 AND stage = 'need_enrolment' AND spent = 0 AND expires_at > $3",
        )
        .bind(digest.to_owned())
        .bind(phone.as_str().to_owned())
        .bind(now.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn spend_sign_in(&self, digest: &str) -> StoreResult<bool> {
        let done = db::query("UPDATE sign_ins SET spent = 1 WHERE digest = $1 AND spent = 0")
            .bind(digest.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }
}
