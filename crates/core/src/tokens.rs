//! Signed access tokens (JWTs), the keys that sign them, and refresh tokens.
//!
//! Signing keys are generated here and kept by the store; every key ever used is
//! published in the JWKS so tokens stay verifiable while keys rotate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids::{ApplicationId, RefreshTokenId, TenantId, UserId};
use crate::secret::Secret;
use crate::signin::AuthMethods;
use crate::user::User;
use crate::{CoreError, Timestamp, random};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    EdDSA,
    ES256,
    RS256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::EdDSA => "EdDSA",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::RS256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
            JwtAlgorithm::ES256 => Algorithm::ES256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
        }
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "EdDSA" => Ok(JwtAlgorithm::EdDSA),
            "ES256" => Ok(JwtAlgorithm::ES256),
            "RS256" => Ok(JwtAlgorithm::RS256),
            other => Err(format!("unknown JWT algorithm {other:?}; use EdDSA, ES256 or RS256")),
        }
    }
}

/// A signing key pair. The private half is DER (PKCS#8 for EdDSA and ES256, PKCS#1
/// for RS256, the forms `jsonwebtoken` reads).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: JwtAlgorithm,
    pub private_der: Vec<u8>,
    pub public_jwk: Value,
    pub created_at: Timestamp,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_der", &"[redacted]")
            .finish()
    }
}

fn internal(e: impl fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

impl SigningKey {
    pub fn generate(algorithm: JwtAlgorithm, now: Timestamp) -> Result<Self, CoreError> {
        let kid = random::token(12)?;
        let (private_der, mut jwk) = match algorithm {
            JwtAlgorithm::EdDSA => {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
                let der = key.to_pkcs8_der().map_err(internal)?.as_bytes().to_vec();
                let x = B64URL.encode(key.verifying_key().as_bytes());
                (der, json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
            }
            JwtAlgorithm::ES256 => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                use p256::pkcs8::EncodePrivateKey;
                let key = p256::SecretKey::random(&mut OsRng);
                let der = key.to_pkcs8_der().map_err(internal)?.as_bytes().to_vec();
                let point = key.public_key().to_encoded_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(internal("P-256 public key has no coordinates"));
                };
                (der, json!({"kty": "EC", "crv": "P-256", "x": B64URL.encode(x), "y": B64URL.encode(y)}))
            }
            JwtAlgorithm::RS256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(internal)?;
                let der = key.to_pkcs1_der().map_err(internal)?.as_bytes().to_vec();
                let n = B64URL.encode(key.n().to_bytes_be());
                let e = B64URL.encode(key.e().to_bytes_be());
                (der, json!({"kty": "RSA", "n": n, "e": e}))
            }
        };
        if let Value::Object(m) = &mut jwk {
            m.insert("kid".into(), json!(kid));
            m.insert("use".into(), json!("sig"));
            m.insert("alg".into(), json!(algorithm.as_str()));
        }
        Ok(SigningKey { kid, algorithm, private_der, public_jwk: jwk, created_at: now })
    }
}

/// A signing key as stored: the private half sealed with the AEAD key.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: JwtAlgorithm,
    pub sealed_private: String,
    pub public_jwk: Value,
    pub created_at: Timestamp,
}

pub fn signing_key_context(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

impl SigningKey {
    pub fn seal(&self, sealer: &crate::seal::Sealer) -> Result<StoredSigningKey, CoreError> {
        Ok(StoredSigningKey {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            sealed_private: sealer.seal(&self.private_der, &signing_key_context(&self.kid))?,
            public_jwk: self.public_jwk.clone(),
            created_at: self.created_at,
        })
    }

    pub fn open(stored: &StoredSigningKey, sealer: &crate::seal::Sealer) -> Result<SigningKey, CoreError> {
        Ok(SigningKey {
            kid: stored.kid.clone(),
            algorithm: stored.algorithm,
            private_der: sealer.open(&stored.sealed_private, &signing_key_context(&stored.kid))?,
            public_jwk: stored.public_jwk.clone(),
            created_at: stored.created_at,
        })
    }
}

/// The claims Tessera puts in an access token; FusionAuth's names where it has them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub tid: String,
    #[serde(rename = "applicationId")]
    pub application_id: String,
    #[serde(rename = "authenticationType")]
    pub authentication_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preferred_username: Option<String>,
    pub auth_time: i64,
    /// Claims scripts added (`api.accessToken.setCustomClaim`), never one of the above.
    #[serde(flatten, default)]
    pub custom: serde_json::Map<String, Value>,
}

/// The claims a script may not set: the ones Tessera itself puts in its tokens.
pub const RESERVED_CLAIMS: [&str; 17] = [
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "nbf",
    "jti",
    "tid",
    "applicationId",
    "authenticationType",
    "email",
    "preferred_username",
    "auth_time",
    "nonce",
    "amr",
    "acr",
    "azp",
];

/// `custom` without the claims Tessera sets itself.
pub fn custom_claims(custom: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    custom.iter().filter(|(k, _)| !RESERVED_CLAIMS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token was not signed by a known key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token was issued by someone else")]
    WrongIssuer,
}

/// Signs with the current key and verifies against all known keys.
pub struct TokenIssuer {
    issuer: String,
    ttl: Duration,
    current: (String, JwtAlgorithm, EncodingKey),
    /// The current Ed25519 key, parsed once: jsonwebtoken parses its DER again for every
    /// token, which derives the public key (a scalar multiplication as costly as half the
    /// signature) each time.
    ed25519: Option<ed25519_dalek::SigningKey>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Value,
}

impl TokenIssuer {
    /// `keys` oldest first; the oldest key of `algorithm` signs (the store keeps one
    /// signer per algorithm, so every server picks the same one).
    pub fn new(issuer: String, ttl: Duration, algorithm: JwtAlgorithm, keys: &[SigningKey]) -> Result<Self, CoreError> {
        let signer = keys
            .iter()
            .find(|k| k.algorithm == algorithm)
            .ok_or_else(|| internal(format!("no {} signing key", algorithm.as_str())))?;
        let encoding = match algorithm {
            JwtAlgorithm::EdDSA => EncodingKey::from_ed_der(&signer.private_der),
            JwtAlgorithm::ES256 => EncodingKey::from_ec_der(&signer.private_der),
            JwtAlgorithm::RS256 => EncodingKey::from_rsa_der(&signer.private_der),
        };
        let mut verifiers = HashMap::new();
        for k in keys {
            let jwk: Jwk = serde_json::from_value(k.public_jwk.clone()).map_err(internal)?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(internal)?;
            verifiers.insert(k.kid.clone(), (k.algorithm.jwt(), decoding));
        }
        let jwks = json!({"keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()});
        let ed25519 = match algorithm {
            JwtAlgorithm::EdDSA => {
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                Some(ed25519_dalek::SigningKey::from_pkcs8_der(&signer.private_der).map_err(internal)?)
            }
            _ => None,
        };
        Ok(TokenIssuer { issuer, ttl, current: (signer.kid.clone(), algorithm, encoding), ed25519, verifiers, jwks })
    }

    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(
        &self,
        user: &User,
        application: ApplicationId,
        auth_time: Timestamp,
        authentication_type: &str,
        custom: &serde_json::Map<String, Value>,
        now: Timestamp,
    ) -> Result<(String, Claims), CoreError> {
        let exp = now.plus(self.ttl);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: application.to_string(),
            iat: now.seconds(),
            exp: exp.seconds(),
            jti: uuid::Uuid::new_v4().to_string(),
            tid: user.tenant_id.to_string(),
            application_id: application.to_string(),
            authentication_type: authentication_type.to_owned(),
            email: user.email.as_ref().map(|e| e.as_str().to_owned()),
            preferred_username: user.username.as_ref().map(|u| u.as_str().to_owned()),
            auth_time: auth_time.seconds(),
            custom: custom_claims(custom),
        };
        Ok((self.encode(&claims)?, claims))
    }

    /// Signs any claims with the current key (ID tokens).
    pub fn sign(&self, claims: &Value) -> Result<String, CoreError> {
        self.encode(claims)
    }

    /// A compact JWS (RFC 7515) of `claims` under the current key.
    fn encode<T: Serialize>(&self, claims: &T) -> Result<String, CoreError> {
        let mut header = Header::new(self.current.1.jwt());
        header.kid = Some(self.current.0.clone());
        let Some(key) = &self.ed25519 else {
            return jsonwebtoken::encode(&header, claims, &self.current.2).map_err(internal);
        };
        use ed25519_dalek::Signer;
        let part = |v: Vec<u8>| B64URL.encode(v);
        let signing_input = format!(
            "{}.{}",
            part(serde_json::to_vec(&header).map_err(internal)?),
            part(serde_json::to_vec(claims).map_err(internal)?)
        );
        let signature = key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", part(signature.to_bytes().to_vec())))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Checks signature, issuer and expiry (against `now`, not the wall clock) and
    /// returns the claims as sent.
    pub fn validate(&self, token: &str, now: Timestamp) -> Result<Value, TokenError> {
        let claims = self.signed_claims(token)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > now.seconds() => Ok(claims),
            _ => Err(TokenError::Expired),
        }
    }

    /// Checks the signature only: for an `id_token_hint`, which names who signs out and
    /// may well have expired (OpenID Connect RP-Initiated Logout §2); our signature is
    /// what matters here.
    pub fn signed_claims(&self, token: &str) -> Result<Value, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let (alg, key) = self.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
        if header.alg != *alg {
            return Err(TokenError::BadSignature);
        }
        let mut v = Validation::new(*alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(token, key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?;
        let claims = data.claims;
        Ok(claims)
    }
}

/// A long-lived token that buys new access tokens. Stored by digest only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: RefreshTokenId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub application_id: ApplicationId,
    pub digest: String,
    /// How the sign-in that bought it was made: what tokens it refreshes say.
    pub methods: AuthMethods,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl RefreshToken {
    pub fn generate(
        user: &User,
        application_id: ApplicationId,
        methods: &AuthMethods,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(Secret, RefreshToken), CoreError> {
        let secret = Secret::new(random::token(32)?);
        let record = RefreshToken {
            id: RefreshTokenId::random(),
            tenant_id: user.tenant_id,
            user_id: user.id,
            application_id,
            digest: secret.digest(),
            methods: methods.clone(),
            created_at: now,
            expires_at: now.plus(ttl),
            revoked_at: None,
        };
        Ok((secret, record))
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use serde_json::Map;

    fn user() -> User {
        User {
            id: UserId::random(),
            tenant_id: TenantId::random(),
            email: crate::user::Email::parse("a@example.com"),
            username: None,
            mobile_phone: None,
            first_name: None,
            last_name: None,
            data: Map::new(),
            active: true,
            email_verified: false,
            password_hash: None,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn every_algorithm_signs_and_verifies() -> Result<(), CoreError> {
        let now = Timestamp::from_millis(1_700_000_000_000);
        for alg in [JwtAlgorithm::EdDSA, JwtAlgorithm::ES256, JwtAlgorithm::RS256] {
            let key = SigningKey::generate(alg, now)?;
            let issuer = TokenIssuer::new("tessera".into(), Duration::from_secs(60), alg, &[key])?;
            let (jwt, claims) =
                issuer.issue(&user(), ApplicationId::random(), now, "PASSWORD", &Default::default(), now)?;
            let got = issuer.validate(&jwt, now).map_err(internal)?;
            assert_eq!(got["sub"], json!(claims.sub), "{alg:?}");
            assert_eq!(issuer.validate(&jwt, now.plus(Duration::from_secs(60))), Err(TokenError::Expired));
            let mut tampered = jwt.clone();
            tampered.pop();
            tampered.push(if jwt.ends_with('A') { 'B' } else { 'A' });
            assert!(issuer.validate(&tampered, now).is_err(), "{alg:?}");
        }
        Ok(())
    }

    #[test]
    fn rejects_tokens_from_unknown_keys_and_issuers() -> Result<(), CoreError> {
        let now = Timestamp::from_millis(0);
        let a = SigningKey::generate(JwtAlgorithm::EdDSA, now)?;
        let b = SigningKey::generate(JwtAlgorithm::EdDSA, now)?;
        let ia =
            TokenIssuer::new("tessera".into(), Duration::from_secs(60), JwtAlgorithm::EdDSA, std::slice::from_ref(&a))?;
        let ib = TokenIssuer::new("tessera".into(), Duration::from_secs(60), JwtAlgorithm::EdDSA, &[b])?;
        let other = TokenIssuer::new("other".into(), Duration::from_secs(60), JwtAlgorithm::EdDSA, &[a])?;
        let (jwt, _) = ia.issue(&user(), ApplicationId::random(), now, "PASSWORD", &Default::default(), now)?;
        assert_eq!(ib.validate(&jwt, now), Err(TokenError::UnknownKey));
        assert_eq!(other.validate(&jwt, now), Err(TokenError::WrongIssuer));
        assert_eq!(ia.validate("not.a.jwt", now), Err(TokenError::Malformed));
        Ok(())
    }
}
