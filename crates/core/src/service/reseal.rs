//! `tessera reseal`: after a seal-key rotation, every value sealed at rest is sealed again
//! under the current key, so the previous key can be dropped. One list of where sealed
//! values live ([`SealedColumn`], plus TOTP secrets and signing keys), which the server's
//! test holds against the schema so a new sealed column cannot be forgotten here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::flows::{definition_context, sealed_part};
use crate::seal::Sealer;
use crate::store::{SealedColumn, Store};
use crate::twofactor as tf;
use crate::{CoreError, messaging, messengers};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Values that were sealed under an older key (or, for flows stored before their
    /// definitions were sealed, not at all) and now are under the current one.
    pub resealed: u64,
    /// Recovery codes keyed with an older key, by key id: hashes cannot be re-keyed, so
    /// those keys stay needed (in `seal_keys_previous`) until the users make new codes.
    pub recovery_codes_on_old_keys: BTreeMap<String, u64>,
}

/// What a column's value is sealed under, given its row key.
fn context(column: SealedColumn, key: &str) -> Vec<u8> {
    match column {
        SealedColumn::MessengerSecrets => messengers::seal_context(key),
        SealedColumn::VoicePrompt => messaging::voice_prompt_context(key),
        SealedColumn::VerificationCode | SealedColumn::FlowRunContext => key.as_bytes().to_vec(),
        SealedColumn::FlowDefinition => definition_context(key),
        SealedColumn::SignInEnrolKey => crate::signin::enrol_key_context(key),
        SealedColumn::ActionSecrets => crate::actions::secrets_context(key),
    }
}

/// The value the column should hold now, or `None` when it is sealed under the current
/// key already (or holds nothing to seal).
fn resealed(column: SealedColumn, key: &str, stored: &str, sealer: &Sealer) -> Result<Option<String>, CoreError> {
    let ctx = context(column, key);
    let json_wrapped = matches!(column, SealedColumn::FlowDefinition | SealedColumn::FlowRunContext);
    if !json_wrapped {
        if stored.is_empty() || !sealer.is_stale(stored) {
            return Ok(None);
        }
        return Ok(Some(sealer.seal(&sealer.open(stored, &ctx)?, &ctx)?));
    }
    let value: Value =
        serde_json::from_str(stored).map_err(|e| CoreError::Internal(format!("{column:?} {key}: {e}")))?;
    let plain = match sealed_part(&value) {
        Some(s) if !sealer.is_stale(s) => return Ok(None),
        Some(s) => sealer.open(s, &ctx)?,
        // Stored in the clear by an earlier version.
        None => stored.as_bytes().to_vec(),
    };
    Ok(Some(json!({ "sealed": sealer.seal(&plain, &ctx)? }).to_string()))
}

pub async fn reseal(store: &dyn Store, sealer: &Sealer) -> Result<ResealReport, CoreError> {
    let mut report = ResealReport::default();
    for key in store.signing_keys().await? {
        if sealer.is_stale(&key.sealed_private) {
            let fresh = crate::tokens::SigningKey::open(&key, sealer)?.seal(sealer)?;
            if store.replace_sealed_signing_key(&key.kid, &key.sealed_private, &fresh.sealed_private).await? {
                report.resealed += 1;
            }
        }
    }
    for (user, id, sealed) in store.sealed_secrets().await? {
        if !sealer.is_stale(&sealed) {
            continue;
        }
        let context = tf::secret_context(user, &id);
        let fresh = sealer.seal(&sealer.open(&sealed, &context)?, &context)?;
        if store.replace_sealed_secret(user, &id, &sealed, &fresh).await? {
            report.resealed += 1;
        }
    }
    for column in SealedColumn::ALL {
        for (key, stored) in store.sealed_values(column).await? {
            if let Some(fresh) = resealed(column, &key, &stored, sealer)?
                && store.replace_sealed_value(column, &key, &stored, &fresh).await?
            {
                report.resealed += 1;
            }
        }
    }
    for hash in store.recovery_code_hashes().await? {
        let kid = hash.split('.').next().unwrap_or_default();
        if kid != sealer.current_id() {
            *report.recovery_codes_on_old_keys.entry(kid.to_owned()).or_default() += 1;
        }
    }
    Ok(report)
}
