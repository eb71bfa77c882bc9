//! The fraud guard's checks, shared by the Verify API and by second-factor sends:
//! geo permissions, sliding windows per number, prefix, IP and service, active blocks,
//! and conversion-based blocking. Every refusal is audited with its reason.

use std::time::Duration;

use serde_json::json;

use super::{Identity, RequestContext};
use crate::audit::AuditKind;
use crate::phone::PhoneNumber;
use crate::store::SendKey;
use crate::verify::{Block, FraudGuard, Limit, prefix_of};
use crate::{CoreError, Timestamp};

/// Why the guard said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable keyword: `geo`, `number_rate`, `prefix_blocked`, `prefix_rate`, `ip_rate`,
    /// `service_rate`, `low_conversion`.
    pub kind: &'static str,
    /// For the operator (and the blocks API).
    pub detail: String,
}

impl Identity {
    async fn refuse(
        &self,
        key: &str,
        to: &PhoneNumber,
        kind: &'static str,
        detail: String,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Refusal>, CoreError> {
        let audit = json!({"guard": key, "prefix": prefix_of(to), "reason": kind, "detail": detail});
        self.audit(AuditKind::VerifyBlocked, None, kind, ctx, audit, now).await?;
        Ok(Some(Refusal { kind, detail }))
    }

    /// Checks about the destination itself, for every send (new or resent): is the
    /// country permitted, and has this number had its share of codes?
    pub(super) async fn destination_check(
        &self,
        key: &str,
        g: &FraudGuard,
        to: &PhoneNumber,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Refusal>, CoreError> {
        if !g.allows_country(to.country_code()) {
            return self.refuse(key, to, "geo", "destination country not permitted".into(), ctx, now).await;
        }
        let sent =
            self.store.count_verify_sends(key, SendKey::Number, to.as_str(), now.minus(g.per_number.window())).await?;
        if sent >= g.per_number.max {
            let detail = format!("number_rate: more than {} in {} s", g.per_number.max, g.per_number.window_seconds);
            return self.refuse(key, to, "number_rate", detail, ctx, now).await;
        }
        Ok(None)
    }

    /// Checks about the traffic pattern, for a new verification: blocked prefix, the
    /// prefix, IP and service windows, and (with `conversion`) the prefix's history.
    pub(super) async fn fraud_check(
        &self,
        key: &str,
        g: &FraudGuard,
        to: &PhoneNumber,
        ctx: &RequestContext,
        now: Timestamp,
        conversion: bool,
    ) -> Result<Option<Refusal>, CoreError> {
        let prefix = prefix_of(to);
        if let Some(block) = self.store.active_block(key, &prefix, now).await? {
            return self.refuse(key, to, "prefix_blocked", block.reason, ctx, now).await;
        }
        let windows: [(SendKey, Option<&str>, &Limit, &'static str); 3] = [
            (SendKey::Prefix, Some(prefix.as_str()), &g.per_prefix, "prefix_rate"),
            (SendKey::Ip, ctx.ip.as_deref(), &g.per_ip, "ip_rate"),
            (SendKey::Service, Some(key), &g.per_service, "service_rate"),
        ];
        for (send_key, value, limit, kind) in windows {
            let Some(value) = value else { continue };
            if self.store.count_verify_sends(key, send_key, value, now.minus(limit.window())).await? >= limit.max {
                let detail = format!("{kind}: more than {} in {} s", limit.max, limit.window_seconds);
                return self.refuse(key, to, kind, detail, ctx, now).await;
            }
        }
        if conversion {
            let since = now.minus(Duration::from_secs(g.conversion_window_seconds));
            let (started, approved) = self.store.prefix_conversion(key, &prefix, since).await?;
            if g.low_conversion(started, approved) {
                let detail = format!("low_conversion: {approved} of {started} approved for {prefix}");
                let block = Block {
                    service_sid: key.to_owned(),
                    prefix,
                    reason: detail.clone(),
                    created_at: now,
                    expires_at: now.plus(Duration::from_secs(g.block_seconds)),
                };
                self.store.insert_block(&block).await?;
                return self.refuse(key, to, "low_conversion", detail, ctx, now).await;
            }
        }
        Ok(None)
    }

    /// Second-factor sends pass the same guard as the Verify API (geo, windows,
    /// blocks), under one guard per tenant. Conversion is not judged here: a login's
    /// code is wanted by someone who already knew the password.
    pub(super) async fn guard_mfa_send(
        &self,
        to: &PhoneNumber,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Refusal>, CoreError> {
        let key = format!("mfa:{}", self.tenant.id);
        let g = &self.policies.mfa_guard;
        if let Some(r) = self.destination_check(&key, g, to, ctx, now).await? {
            return Ok(Some(r));
        }
        if let Some(r) = self.fraud_check(&key, g, to, ctx, now, false).await? {
            return Ok(Some(r));
        }
        self.store.record_verify_send(&key, to.as_str(), &prefix_of(to), ctx.ip.as_deref(), now).await?;
        Ok(None)
    }
}
