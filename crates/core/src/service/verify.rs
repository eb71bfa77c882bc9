//! The Verify API's use cases (Twilio Verify v2 semantics) and its fraud guard.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::RequestContext;
use super::fraud::{FraudGuards, conversion_tally};
use super::kernel::Kernel;
use crate::apikey::Admin;
use crate::audit::{AuditEvent, AuditKind};
use crate::ids::TenantId;
use crate::messaging::{self, Channel, Messenger, OutboundMessage, Purpose};
use crate::phone::PhoneNumber;
use crate::secret::Secret;
use crate::store::{Store, WindowKey};
use crate::twofactor::numeric_code;
use crate::verify::{
    Block, FraudGuard, MAX_CHECKS, Status, Verification, VerifyAccount, VerifyService, is_sid, new_sid, prefix_of,
};
use crate::{CoreError, Timestamp, random};

/// Why a Verify request was refused, in Twilio's terms (the server maps each to its
/// code and status once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// 60200: names the parameter.
    InvalidParameter(&'static str),
    /// 20404.
    NotFound,
    /// 60202.
    MaxChecks,
    /// 60203.
    MaxSends,
    /// 60410: the fraud guard refused; the reason is for the operator.
    Blocked(String),
    /// 60605.
    GeoDenied,
    /// The code could not be delivered.
    Delivery(String),
}

#[derive(Debug)]
pub enum VerifyFailure {
    Verify(VerifyError),
    Core(CoreError),
}

impl From<CoreError> for VerifyFailure {
    fn from(e: CoreError) -> Self {
        VerifyFailure::Core(e)
    }
}

impl From<crate::store::StoreError> for VerifyFailure {
    fn from(e: crate::store::StoreError) -> Self {
        VerifyFailure::Core(e.into())
    }
}

impl From<VerifyError> for VerifyFailure {
    fn from(e: VerifyError) -> Self {
        VerifyFailure::Verify(e)
    }
}

pub type VerifyResult<T> = Result<T, VerifyFailure>;

/// `POST /v2/Services` parameters, as sent.
#[derive(Debug, Default, Clone)]
pub struct ServiceInput {
    pub friendly_name: Option<String>,
    pub code_length: Option<String>,
    pub custom_code_enabled: Option<String>,
    /// Seconds a code stays valid (Twilio's is fixed at 10 minutes; ours is settable).
    pub ttl: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct StartInput {
    pub to: Option<String>,
    pub channel: Option<String>,
    pub locale: Option<String>,
    pub custom_code: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct CheckInput {
    pub code: Option<String>,
    pub to: Option<String>,
    pub verification_sid: Option<String>,
}

const VERIFY_PURPOSE: &str = "verify";

fn flag(v: &Option<String>) -> Result<Option<bool>, VerifyError> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(VerifyError::InvalidParameter("CustomCodeEnabled")),
    }
}

impl ServiceInput {
    /// Applies the parameters to `base` (a new service's defaults, or the service to update).
    fn apply(&self, mut base: VerifyService) -> Result<VerifyService, VerifyError> {
        if let Some(name) = &self.friendly_name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 32 {
                return Err(VerifyError::InvalidParameter("FriendlyName"));
            }
            name.clone_into(&mut base.friendly_name);
        }
        if let Some(len) = &self.code_length {
            match len.trim().parse::<u32>() {
                Ok(n) if (4..=10).contains(&n) => base.code_length = n,
                _ => return Err(VerifyError::InvalidParameter("CodeLength")),
            }
        }
        if let Some(f) = flag(&self.custom_code_enabled)? {
            base.custom_code_enabled = f;
        }
        if let Some(ttl) = &self.ttl {
            match ttl.trim().parse::<u64>() {
                Ok(n) if (60..=86_400).contains(&n) => base.ttl = Duration::from_secs(n),
                _ => return Err(VerifyError::InvalidParameter("Ttl")),
            }
        }
        Ok(base)
    }
}

/// The Verify API (Twilio Verify v2): credentials, services, verifications, with the
/// fraud guard in front of every send. Its units of work hold the guard's or the
/// verification's limit, so it takes the store that begins them.
#[derive(Clone)]
pub struct VerifyApi {
    store: Arc<dyn Store>,
    kernel: Arc<Kernel>,
    guards: FraudGuards,
    messenger: Arc<dyn Messenger>,
}

impl VerifyApi {
    pub fn new(
        store: Arc<dyn Store>,
        kernel: Arc<Kernel>,
        guards: FraudGuards,
        messenger: Arc<dyn Messenger>,
    ) -> VerifyApi {
        VerifyApi { store, kernel, guards, messenger }
    }

    // ---- credentials ----

    /// A new Verify API credential for the admin's tenant; the token is shown once.
    pub async fn create_account(&self, admin: &Admin, now: Timestamp) -> Result<(String, Secret), CoreError> {
        let sid = new_sid("AC")?;
        let token = Secret::new(random::token(24)?);
        let account = VerifyAccount {
            sid: sid.clone(),
            tenant_id: admin.tenant_id,
            token_digest: token.digest(),
            created_at: now,
        };
        self.store.insert_verify_account(&account).await?;
        Ok((sid, token))
    }

    /// HTTP Basic for `/v2`: the account sid and its token. The token is compared by
    /// digest (it carries 192 bits, so the digest lookup reveals nothing useful).
    pub async fn authenticate(&self, sid: &str, token: &Secret) -> Result<Option<VerifyAccount>, CoreError> {
        let Some(account) = self.store.verify_account(sid).await? else { return Ok(None) };
        let ok = crate::secret::constant_time_eq(account.token_digest.as_bytes(), token.digest().as_bytes());
        Ok(ok.then_some(account))
    }

    // ---- services ----

    pub async fn create_service(
        &self,
        account: &VerifyAccount,
        input: &ServiceInput,
        now: Timestamp,
    ) -> VerifyResult<VerifyService> {
        if input.friendly_name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(VerifyError::InvalidParameter("FriendlyName").into());
        }
        let base = VerifyService {
            sid: new_sid("VA")?,
            tenant_id: account.tenant_id,
            account_sid: account.sid.clone(),
            friendly_name: String::new(),
            code_length: 6,
            custom_code_enabled: false,
            ttl: Duration::from_secs(600),
            guard: FraudGuard::default(),
            created_at: now,
            updated_at: now,
        };
        let service = input.apply(base)?;
        self.store.insert_verify_service(&service).await?;
        Ok(service)
    }

    pub async fn service(&self, account: &VerifyAccount, sid: &str) -> VerifyResult<VerifyService> {
        Ok(self.store.verify_service(&account.sid, sid).await?.ok_or(VerifyError::NotFound)?)
    }

    pub async fn services(&self, account: &VerifyAccount) -> VerifyResult<Vec<VerifyService>> {
        Ok(self.store.verify_services(&account.sid).await?)
    }

    pub async fn update_service(
        &self,
        account: &VerifyAccount,
        sid: &str,
        input: &ServiceInput,
        now: Timestamp,
    ) -> VerifyResult<VerifyService> {
        let mut service = input.apply(self.service(account, sid).await?)?;
        service.updated_at = now;
        self.store.update_verify_service(&service).await?;
        Ok(service)
    }

    pub async fn delete_service(&self, account: &VerifyAccount, sid: &str) -> VerifyResult<()> {
        if self.store.delete_verify_service(&account.sid, sid).await? {
            Ok(())
        } else {
            Err(VerifyError::NotFound.into())
        }
    }

    /// Admin: the service's fraud guard settings (not part of Twilio's API).
    pub async fn set_fraud_guard(
        &self,
        admin: &Admin,
        account_sid: &str,
        sid: &str,
        guard: FraudGuard,
        now: Timestamp,
    ) -> Result<VerifyService, CoreError> {
        let mut service = self
            .store
            .verify_service(account_sid, sid)
            .await?
            .filter(|s| s.tenant_id == admin.tenant_id)
            .ok_or(CoreError::NotFound)?;
        guard.validate()?;
        service.guard = guard;
        service.updated_at = now;
        self.store.update_verify_service(&service).await?;
        Ok(service)
    }

    /// Admin: the service's recent blocks, newest first.
    pub async fn fraud_blocks(&self, admin: &Admin, account_sid: &str, sid: &str) -> Result<Vec<Block>, CoreError> {
        self.store
            .verify_service(account_sid, sid)
            .await?
            .filter(|s| s.tenant_id == admin.tenant_id)
            .ok_or(CoreError::NotFound)?;
        Ok(self.store.blocks(sid, 100).await?)
    }

    // ---- verifications ----

    /// An event of a verification, in the tenant of the credential it was made with.
    fn verify_event(
        &self,
        tenant: TenantId,
        kind: AuditKind,
        outcome: &'static str,
        v: &Verification,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> AuditEvent {
        let mut d = json!({"serviceSid": v.service_sid, "verificationSid": v.sid, "prefix": v.prefix});
        if let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (&mut d, detail) {
            a.extend(b);
        }
        let ctx = RequestContext { tenant: Some(tenant), ..RequestContext::default() };
        self.kernel.event(kind, None, outcome, &ctx, d, now)
    }

    async fn verify_audit(
        &self,
        tenant: TenantId,
        kind: AuditKind,
        outcome: &'static str,
        v: &Verification,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        // A unit of one write: on SQLite it joins the batch the starts and checks around
        // it commit together, where a write of its own would commit alone (and end that
        // batch first). BENCHMARKS.md, "Bucketed windows and group commit".
        let tx = self.store.begin().await?;
        self.kernel.auditor.record(&*tx, self.verify_event(tenant, kind, outcome, v, detail, now)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a pending verification past its validity as expired, through `store` (the
    /// caller's unit of work, or the store itself).
    async fn settle(
        &self,
        tenant: TenantId,
        store: &dyn Store,
        mut v: Verification,
        now: Timestamp,
    ) -> Result<Verification, CoreError> {
        if v.status == Status::Pending && now >= v.expires_at {
            let checks = v.checks;
            v.status = Status::Expired;
            v.updated_at = now;
            if store.update_verification(&v, checks).await? {
                let event = self.verify_event(tenant, AuditKind::VerifyExpired, "expired", &v, json!({}), now);
                self.kernel.auditor.record(store, event).await?;
            }
        }
        Ok(v)
    }

    /// `POST /v2/Services/{sid}/Verifications`. A second request for the same number
    /// while a verification is pending resends the same code.
    pub async fn start(
        &self,
        account: &VerifyAccount,
        service_sid: &str,
        input: &StartInput,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> VerifyResult<Verification> {
        let service = self.service(account, service_sid).await?;
        let to =
            input.to.as_deref().and_then(|t| PhoneNumber::parse(t).ok()).ok_or(VerifyError::InvalidParameter("To"))?;
        let channel = match input.channel.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("sms") => Channel::Sms,
            Some("call") => Channel::Voice,
            _ => return Err(VerifyError::InvalidParameter("Channel").into()),
        };
        let custom = match input.custom_code.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(_) if !service.custom_code_enabled => return Err(VerifyError::InvalidParameter("CustomCode").into()),
            Some(c) if (4..=10).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => Some(c.to_owned()),
            Some(_) => return Err(VerifyError::InvalidParameter("CustomCode").into()),
        };
        let locale = input.locale.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| "en".into());
        let country = to.country_code();
        // One unit of work holding the service's limit: the guard's counts, the
        // verification and the send it records are decided and written together.
        let g = self.guards.guard_unit(&service.sid, &service.guard).await?;
        if let Some(refusal) = self.guards.destination_check(&g, &to, now).await? {
            let refusal = self.guards.refused(g, &to, refusal, ctx, now).await?;
            return Err(if refusal.kind == "geo" { VerifyError::GeoDenied } else { VerifyError::MaxSends }.into());
        }

        let existing = match g.tx.pending_verification(&service.sid, to.as_str()).await? {
            Some(v) => Some(self.settle(account.tenant_id, &*g.tx, v, now).await?).filter(|v| v.is_open(now)),
            None => None,
        };
        let (mut v, code, resend) = match existing {
            Some(v) => {
                let code =
                    String::from_utf8_lossy(&self.kernel.sealer.open(&v.sealed_code, v.sid.as_bytes())?).into_owned();
                (v, code, true)
            }
            None => {
                if let Some(refusal) = self.guards.fraud_check(&g, &to, ctx.ip.as_deref(), now, true).await? {
                    let refusal = self.guards.refused(g, &to, refusal, ctx, now).await?;
                    return Err(VerifyError::Blocked(refusal.detail).into());
                }
                let code = match custom {
                    Some(c) => c,
                    None => numeric_code(service.code_length)?,
                };
                let sid = new_sid("VE")?;
                let v = Verification {
                    code_hash: self.kernel.sealer.hash_code(VERIFY_PURPOSE, &code),
                    sealed_code: self.kernel.sealer.seal(code.as_bytes(), sid.as_bytes())?,
                    sid,
                    service_sid: service.sid.clone(),
                    account_sid: account.sid.clone(),
                    prefix: prefix_of(&to),
                    to: to.clone(),
                    channel,
                    status: Status::Pending,
                    checks: 0,
                    sends: Vec::new(),
                    country,
                    created_at: now,
                    updated_at: now,
                    expires_at: now.plus(service.ttl),
                };
                (v, code, false)
            }
        };
        v.sends.push((now, channel));
        v.channel = channel;
        v.updated_at = now;
        if resend {
            g.tx.update_verification(&v, v.checks).await?;
        } else {
            g.tx.insert_verification(&v).await?;
            g.tx.add_to_windows(&service.sid, &[conversion_tally(&service.guard, WindowKey::Started, &v)]).await?;
        }
        self.guards.record_send(&g, &to, ctx.ip.as_deref(), now).await?;
        // Committed before the send: whatever arrives can be checked.
        g.tx.commit().await?;
        self.kernel.auditor.count(AuditKind::VerifySent, if resend { "resend" } else { "new" });

        let text = match channel {
            Channel::Sms => format!("Your {} verification code is: {code}", service.friendly_name),
            Channel::Voice => {
                messaging::render(Purpose::SecondFactor, Channel::Voice, &locale, &code, &service.friendly_name)
            }
        };
        let message = OutboundMessage {
            to,
            channel,
            purpose: Purpose::SecondFactor,
            locale,
            text,
            code: Secret::new(code),
            tenant: Some(account.tenant_id),
        };
        if let Err(e) = self.messenger.send(&message).await {
            let detail = json!({"channel": channel.as_str(), "error": e.message});
            let outcome = if resend { "resend_failed" } else { "failed" };
            if !resend {
                let checks = v.checks;
                v.status = Status::Failed;
                self.store.update_verification(&v, checks).await?;
            }
            self.verify_audit(account.tenant_id, AuditKind::VerifyFailed, outcome, &v, detail, now).await?;
            return Err(VerifyError::Delivery(e.message).into());
        }
        if !resend {
            // Audited once the code is on its way: a failed send is `verify.failed`.
            self.verify_audit(
                account.tenant_id,
                AuditKind::VerifyPending,
                "pending",
                &v,
                json!({"channel": channel.as_str()}),
                now,
            )
            .await?;
        }
        Ok(v)
    }

    /// `GET /v2/Services/{sid}/Verifications/{VE…}`.
    pub async fn fetch(
        &self,
        account: &VerifyAccount,
        service_sid: &str,
        sid: &str,
        now: Timestamp,
    ) -> VerifyResult<Verification> {
        let service = self.service(account, service_sid).await?;
        let v = self.store.verification(&service.sid, sid).await?.ok_or(VerifyError::NotFound)?;
        Ok(self.settle(service.tenant_id, &*self.store, v, now).await?)
    }

    async fn find(
        &self,
        service: &VerifyService,
        sid: Option<&str>,
        to: Option<&str>,
        now: Timestamp,
    ) -> VerifyResult<Verification> {
        let found = match (sid.filter(|s| !s.is_empty()), to.filter(|t| !t.is_empty())) {
            (Some(sid), _) if is_sid(sid, "VE") => self.store.verification(&service.sid, sid).await?,
            (Some(_), _) => None,
            (None, Some(to)) => {
                let to = PhoneNumber::parse(to).map_err(|_| VerifyError::InvalidParameter("To"))?;
                // A number's verification that ran out of checks still answers, with
                // 60202 as by its sid, until a new one is started.
                let latest = self.store.latest_verification(&service.sid, to.as_str()).await?;
                latest.filter(|v| matches!(v.status, Status::Pending | Status::MaxAttemptsReached))
            }
            (None, None) => return Err(VerifyError::InvalidParameter("To").into()),
        };
        let v = found.ok_or(VerifyError::NotFound)?;
        Ok(self.settle(service.tenant_id, &*self.store, v, now).await?)
    }

    /// `POST /v2/Services/{sid}/VerificationCheck`: 200 `approved`, or 200 `pending` for a
    /// wrong code; the sixth check of a verification is refused with 60202.
    pub async fn check(
        &self,
        account: &VerifyAccount,
        service_sid: &str,
        input: &CheckInput,
        now: Timestamp,
    ) -> VerifyResult<Verification> {
        let code = input
            .code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(VerifyError::InvalidParameter("Code"))?;
        let service = self.service(account, service_sid).await?;
        let found = self.find(&service, input.verification_sid.as_deref(), input.to.as_deref(), now).await?;
        // One check at a time per verification, on every instance: each sees the count
        // the one before it left, so at most MAX_CHECKS codes are ever compared.
        let tx = self.store.begin().await?;
        tx.hold_limit(&format!("check:{}", found.sid)).await?;
        let v = tx.verification(&service.sid, &found.sid).await?.ok_or(VerifyError::NotFound)?;
        let mut v = self.settle(service.tenant_id, &*tx, v, now).await?;
        let refused = match v.status {
            Status::Pending if v.checks < MAX_CHECKS => None,
            Status::Pending | Status::MaxAttemptsReached => Some(VerifyError::MaxChecks),
            _ => Some(VerifyError::NotFound),
        };
        if let Some(e) = refused {
            // Keeps what settling found (an expiry and its audit entry).
            tx.commit().await?;
            return Err(e.into());
        }
        let before = v.checks;
        v.checks += 1;
        v.updated_at = now;
        if self.kernel.sealer.verify_code(&v.code_hash, VERIFY_PURPOSE, code) {
            v.status = Status::Approved;
        } else if v.checks >= MAX_CHECKS {
            v.status = Status::MaxAttemptsReached;
        }
        if !tx.update_verification(&v, before).await? {
            // Only a writer that ignored the lock could have moved the count.
            return Err(VerifyError::NotFound.into());
        }
        if v.status == Status::Approved {
            tx.add_to_windows(&service.sid, &[conversion_tally(&service.guard, WindowKey::Approved, &v)]).await?;
        }
        let event = match v.status {
            Status::Approved => Some((AuditKind::VerifyApproved, "approved", json!({"via": "check"}))),
            Status::MaxAttemptsReached => Some((AuditKind::VerifyMaxAttempts, "max_attempts_reached", json!({}))),
            _ => None,
        };
        if let Some((kind, outcome, detail)) = event {
            self.kernel
                .auditor
                .record(&*tx, self.verify_event(service.tenant_id, kind, outcome, &v, detail, now))
                .await?;
        }
        tx.commit().await?;
        // The fifth wrong check still answers `pending`, as Twilio does.
        if v.status == Status::MaxAttemptsReached {
            v.status = Status::Pending;
        }
        Ok(v)
    }

    /// `POST /v2/Services/{sid}/Verifications/{VE… or To}` with `Status=approved|canceled`:
    /// feedback from the app (what conversion tracking learns from) or a cancellation.
    pub async fn set_status(
        &self,
        account: &VerifyAccount,
        service_sid: &str,
        target: &str,
        status: Option<&str>,
        now: Timestamp,
    ) -> VerifyResult<Verification> {
        let new = match status {
            Some("approved") => Status::Approved,
            Some("canceled") => Status::Canceled,
            _ => return Err(VerifyError::InvalidParameter("Status").into()),
        };
        let service = self.service(account, service_sid).await?;
        let (sid, to) = if target.starts_with("VE") { (Some(target), None) } else { (None, Some(target)) };
        let found = self.find(&service, sid, to, now).await?;
        // The status, its conversion count and its audit entry, together, under the
        // verification's check lock: of two concurrent answers one finds it pending.
        let tx = self.store.begin().await?;
        tx.hold_limit(&format!("check:{}", found.sid)).await?;
        let mut v = tx.verification(&service.sid, &found.sid).await?.ok_or(VerifyError::NotFound)?;
        if v.status != Status::Pending || !v.is_open(now) {
            return Err(VerifyError::NotFound.into());
        }
        let checks = v.checks;
        v.status = new;
        v.updated_at = now;
        if !tx.update_verification(&v, checks).await? {
            return Err(VerifyError::NotFound.into());
        }
        let (kind, outcome) = match new {
            Status::Approved => (AuditKind::VerifyApproved, "approved"),
            _ => (AuditKind::VerifyCanceled, "canceled"),
        };
        if new == Status::Approved {
            tx.add_to_windows(&service.sid, &[conversion_tally(&service.guard, WindowKey::Approved, &v)]).await?;
        }
        let event = self.verify_event(service.tenant_id, kind, outcome, &v, json!({"via": "feedback"}), now);
        self.kernel.auditor.record(&*tx, event).await?;
        tx.commit().await?;
        Ok(v)
    }
}
