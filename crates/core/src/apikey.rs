//! Admin API keys. The key is shown once; only its SHA-256 digest is stored.

use crate::ids::{ApiKeyId, TenantId};
use crate::secret::Secret;
use crate::{CoreError, Timestamp, random};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub digest: String,
    pub description: String,
    pub created_at: Timestamp,
}

const PREFIX: &str = "tsk_";

impl ApiKey {
    /// A fresh key with 256 bits of entropy, and the record to store for it.
    pub fn generate(tenant_id: TenantId, description: &str, now: Timestamp) -> Result<(Secret, ApiKey), CoreError> {
        let secret = Secret::new(format!("{PREFIX}{}", random::token(32)?));
        Ok((secret.clone(), Self::for_secret(tenant_id, &secret, description, now)))
    }

    /// The record for a key chosen by the operator (`TESSERA_API_KEY`).
    pub fn for_secret(tenant_id: TenantId, secret: &Secret, description: &str, now: Timestamp) -> ApiKey {
        ApiKey {
            id: ApiKeyId::random(),
            tenant_id,
            digest: secret.digest(),
            description: description.to_owned(),
            created_at: now,
        }
    }
}

/// Proof that a request carried a valid admin key. Only [`crate::service`] makes one,
/// so a handler that takes an `Admin` cannot run for an unauthenticated caller.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Admin {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
}
