//! The fraud guard's checks, shared by the Verify API and by second-factor sends:
//! geo permissions, sliding windows per number, prefix, IP and service, active blocks,
//! and conversion-based blocking. Every refusal is audited with its reason. Checks
//! and the send they admit are one unit of work holding the guard's limit.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::RequestContext;
use super::kernel::Kernel;
use crate::audit::{AuditEvent, AuditKind};
use crate::phone::PhoneNumber;
use crate::store::{Store, Tally, Tx, WindowKey};
use crate::verify::{Block, FraudGuard, Limit, Verification, bucket_end, prefix_of};
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

/// A guard in force: its key (a Verify service's sid, or `mfa:{tenant}`) and rules,
/// with the unit of work that holds its limit; every count and write goes through `tx`.
pub(super) struct Guarded<'a> {
    pub(super) tx: Box<dyn Tx>,
    pub(super) key: &'a str,
    pub(super) rules: &'a FraudGuard,
}

/// The fraud guard: one per Verify service (its sid) and one per tenant for
/// second-factor sends (`mfa:{tenant}`). It runs units of work (each holds its guard's
/// limit), so it takes the store that begins them.
#[derive(Clone)]
pub struct FraudGuards {
    store: Arc<dyn Store>,
    kernel: Arc<Kernel>,
}

impl FraudGuards {
    pub fn new(store: Arc<dyn Store>, kernel: Arc<Kernel>) -> FraudGuards {
        FraudGuards { store, kernel }
    }

    fn refusal_event(
        &self,
        key: &str,
        to: &PhoneNumber,
        r: &Refusal,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> AuditEvent {
        let detail = json!({"guard": key, "prefix": prefix_of(to), "reason": r.kind, "detail": r.detail});
        self.kernel.event(AuditKind::VerifyBlocked, None, r.kind, ctx, detail, now)
    }

    /// Starts the unit of work in which a send is judged and recorded: it holds the
    /// guard's limit, so concurrent sends under one guard are counted one at a time (on
    /// every instance) and a window of N admits N.
    pub(super) async fn guard_unit<'a>(&self, key: &'a str, rules: &'a FraudGuard) -> Result<Guarded<'a>, CoreError> {
        let tx = self.store.begin().await?;
        tx.hold_limit(&format!("guard:{key}")).await?;
        Ok(Guarded { tx, key, rules })
    }

    /// Audits a refusal in the guard's unit and commits it (with any block it set).
    pub(super) async fn refused(
        &self,
        g: Guarded<'_>,
        to: &PhoneNumber,
        refusal: Refusal,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Refusal, CoreError> {
        self.kernel.auditor.record(&*g.tx, self.refusal_event(g.key, to, &refusal, ctx, now)).await?;
        g.tx.commit().await?;
        Ok(refusal)
    }

    /// Checks about the destination itself, for every send (new or resent): is the
    /// country permitted, and has this number had its share of codes?
    pub(super) async fn destination_check(
        &self,
        guarded: &Guarded<'_>,
        to: &PhoneNumber,
        now: Timestamp,
    ) -> Result<Option<Refusal>, CoreError> {
        let Guarded { ref tx, key, rules: g } = *guarded;
        if !g.allows_country(to.country_code()) {
            return Ok(Some(Refusal { kind: "geo", detail: "destination country not permitted".into() }));
        }
        let sent = tx.count_number_sends(key, to.as_str(), now.minus(g.per_number.window()), g.per_number.max).await?;
        if sent >= g.per_number.max {
            let detail = format!("number_rate: more than {} in {} s", g.per_number.max, g.per_number.window_seconds);
            return Ok(Some(Refusal { kind: "number_rate", detail }));
        }
        Ok(None)
    }

    /// Checks about the traffic pattern, for a new verification: blocked prefix, the
    /// prefix, IP and service windows, and (with `conversion`) the prefix's history,
    /// which sets a block (in the unit) when it is too poor.
    pub(super) async fn fraud_check(
        &self,
        guarded: &Guarded<'_>,
        to: &PhoneNumber,
        ip: Option<&str>,
        now: Timestamp,
        conversion: bool,
    ) -> Result<Option<Refusal>, CoreError> {
        let Guarded { ref tx, key, rules: g } = *guarded;
        let prefix = prefix_of(to);
        if let Some(block) = tx.active_block(key, &prefix, now).await? {
            return Ok(Some(Refusal { kind: "prefix_blocked", detail: block.reason }));
        }
        for (window_key, value, limit, kind) in send_windows(g, key, &prefix, ip) {
            let Some(value) = value else { continue };
            if tx.count_window(key, window_key, value, now.minus(limit.window())).await? >= limit.max {
                let detail = format!("{kind}: more than {} in {} s", limit.max, limit.window_seconds);
                return Ok(Some(Refusal { kind, detail }));
            }
        }
        if conversion {
            let since = now.minus(Duration::from_secs(g.conversion_window_seconds));
            let (started, approved) = tx.prefix_conversion(key, &prefix, since).await?;
            if g.low_conversion(started, approved) {
                let detail = format!("low_conversion: {approved} of {started} approved for {prefix}");
                let block = Block {
                    service_sid: key.to_owned(),
                    prefix,
                    reason: detail.clone(),
                    created_at: now,
                    expires_at: now.plus(Duration::from_secs(g.block_seconds)),
                };
                tx.insert_block(&block).await?;
                return Ok(Some(Refusal { kind: "low_conversion", detail }));
            }
        }
        Ok(None)
    }

    /// Second-factor sends pass the same guard as the Verify API (geo, windows,
    /// blocks), under one guard per tenant (the request's). Conversion is not judged
    /// here: a login's code is wanted by someone who already knew the password.
    pub async fn guard_mfa_send(
        &self,
        to: &PhoneNumber,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Refusal>, CoreError> {
        let key = format!("mfa:{}", ctx.tenant.unwrap_or(self.kernel.tenant.id));
        let g = self.guard_unit(&key, &self.kernel.policies.mfa_guard).await?;
        let refusal = match self.destination_check(&g, to, now).await? {
            Some(r) => Some(r),
            None => self.fraud_check(&g, to, ctx.ip.as_deref(), now, false).await?,
        };
        if let Some(r) = refusal {
            return Ok(Some(self.refused(g, to, r, ctx, now).await?));
        }
        self.record_send(&g, to, ctx.ip.as_deref(), now).await?;
        g.tx.commit().await?;
        Ok(None)
    }

    /// Records an admitted send in the guard's unit: its row (the number's window) and
    /// one in each of the prefix, IP and service windows.
    pub(super) async fn record_send(
        &self,
        guarded: &Guarded<'_>,
        to: &PhoneNumber,
        ip: Option<&str>,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let Guarded { ref tx, key, rules: g } = *guarded;
        let prefix = prefix_of(to);
        tx.record_verify_send(key, to.as_str(), &prefix, ip, now).await?;
        let tallies: Vec<Tally> = send_windows(g, key, &prefix, ip)
            .into_iter()
            .filter_map(|(window_key, value, limit, _)| {
                Some(Tally { key: window_key, value: value?.to_owned(), bucket_end: bucket_end(now, limit.window()) })
            })
            .collect();
        tx.add_to_windows(key, &tallies).await?;
        Ok(())
    }
}

/// The windows a send counts in besides its number's: which key, its value (an IP
/// may be unknown), the guard's limit for it and the refusal's keyword.
fn send_windows<'a>(
    g: &'a FraudGuard,
    key: &'a str,
    prefix: &'a str,
    ip: Option<&'a str>,
) -> [(WindowKey, Option<&'a str>, &'a Limit, &'static str); 3] {
    [
        (WindowKey::Prefix, Some(prefix), &g.per_prefix, "prefix_rate"),
        (WindowKey::Ip, ip, &g.per_ip, "ip_rate"),
        (WindowKey::Service, Some(key), &g.per_service, "service_rate"),
    ]
}

/// A verification's count in its prefix's conversion window (`Started` or `Approved`),
/// bucketed by when it was started, as the window is.
pub(super) fn conversion_tally(g: &FraudGuard, key: WindowKey, v: &Verification) -> Tally {
    let window = Duration::from_secs(g.conversion_window_seconds);
    Tally { key, value: v.prefix.clone(), bucket_end: bucket_end(v.created_at, window) }
}
