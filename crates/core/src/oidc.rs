//! OpenID Connect provider rules: which clients may ask, how an authorization request
//! is checked (exact redirect URIs, PKCE S256), single-use codes, browser sessions,
//! and what an ID token says about how the user signed in.

use crate::signin::AuthMethods;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Timestamp;
use crate::ids::{ApplicationId, TenantId, UserId};
use crate::secret::constant_time_eq;

/// When an application asks for a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaPolicy {
    Never,
    /// Users without a factor must enroll one at their next sign-in.
    Always,
    /// Users who have a factor use it.
    WhenEnrolled,
}

impl MfaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::Never => "never",
            MfaPolicy::Always => "always",
            MfaPolicy::WhenEnrolled => "whenEnrolled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [MfaPolicy::Never, MfaPolicy::Always, MfaPolicy::WhenEnrolled].into_iter().find(|p| p.as_str() == s)
    }
}

/// An application as an OAuth client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: ApplicationId,
    pub tenant_id: TenantId,
    /// `None`: a public client (a single-page app), which must use PKCE.
    pub secret_digest: Option<String>,
    /// Compared exactly, never by prefix.
    pub redirect_uris: Vec<String>,
    pub mfa_policy: MfaPolicy,
}

/// A redirect URI an admin may register: absolute http(s), without a fragment
/// (RFC 6749 §3.1.2). Requests must then match one exactly.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let rest = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://"));
    let Some(rest) = rest else { return Err("must be an absolute http(s) URL") };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("has no host");
    }
    if uri.contains('#') {
        return Err("must not have a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    Ok(())
}

/// Why an authorization request is refused, with RFC 6749's error names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown on a page, never redirected: the redirect URI cannot be trusted.
    UnknownClient,
    RedirectMismatch,
    /// Redirected back to the client with `error` and `error_description`.
    Redirect {
        error: &'static str,
        description: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: ApplicationId,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub prompt_login: bool,
    pub max_age: Option<u64>,
    /// `acr_values` asked for a second factor.
    pub require_mfa: bool,
}

pub const ACR_MFA: &str = "urn:tessera:mfa";

/// Checks the request against the client. The redirect URI is validated first: until
/// it is, errors cannot be sent back to it.
pub fn check_authorize(
    params: &std::collections::HashMap<String, String>,
    client: Option<&OAuthClient>,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let client = client.ok_or(AuthorizeError::UnknownClient)?;
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    if !client.redirect_uris.iter().any(|u| u == &redirect_uri) {
        return Err(AuthorizeError::RedirectMismatch);
    }
    let fail = |error, description: &str| Err(AuthorizeError::Redirect { error, description: description.to_owned() });
    if params.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "Only response_type=code is supported.");
    }
    let scope = params.get("scope").cloned().unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return fail("invalid_scope", "The scope must include openid.");
    }
    let code_challenge = params.get("code_challenge").cloned().filter(|c| !c.is_empty());
    match (&code_challenge, params.get("code_challenge_method").map(String::as_str)) {
        (Some(c), Some("S256")) if c.len() == 43 => {}
        (Some(_), Some("S256")) => {
            return fail("invalid_request", "The code_challenge must be a base64url SHA-256 (43 characters).");
        }
        (Some(_), _) => return fail("invalid_request", "Only code_challenge_method=S256 is supported."),
        (None, _) if client.secret_digest.is_none() => {
            return fail("invalid_request", "Public clients must use PKCE (S256).");
        }
        (None, _) => {}
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse() {
            Ok(n) => Some(n),
            Err(_) => return fail("invalid_request", "max_age must be a number of seconds."),
        },
    };
    Ok(AuthorizeRequest {
        client_id: client.id,
        redirect_uri,
        state: params.get("state").cloned(),
        nonce: params.get("nonce").cloned(),
        scope,
        code_challenge,
        prompt_login: params.get("prompt").is_some_and(|p| p.split(' ').any(|x| x == "login")),
        max_age,
        require_mfa: params.get("acr_values").is_some_and(|a| a.split(' ').any(|x| x == ACR_MFA)),
    })
}

/// RFC 7636 S256: base64url(SHA-256(verifier)) equals the challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let ok_verifier = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    ok_verifier
        && constant_time_eq(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

/// A single-use authorization code, stored by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCode {
    pub digest: String,
    pub client_id: ApplicationId,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub auth_time: Timestamp,
    /// How the user signed in, for the ID token's `amr`.
    pub methods: AuthMethods,
    pub expires_at: Timestamp,
}

pub const CODE_TTL: Duration = Duration::from_secs(60);

/// A signed-in browser. Stored by the digest of its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserSession {
    pub digest: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub auth_time: Timestamp,
    /// How the user signed in (or stepped up since).
    pub methods: AuthMethods,
    pub last_seen: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { idle: Duration::from_secs(30 * 60), absolute: Duration::from_secs(12 * 3600) }
    }
}

impl BrowserSession {
    pub fn is_live(&self, now: Timestamp, policy: &SessionPolicy) -> bool {
        now < self.expires_at && now < self.last_seen.plus(policy.idle)
    }

    pub fn has_mfa(&self) -> bool {
        self.methods.is_mfa()
    }
}

/// ID token claims (OpenID Connect Core §2).
#[allow(clippy::too_many_arguments)]
pub fn id_token_claims(
    issuer: &str,
    user: &crate::user::User,
    client: ApplicationId,
    nonce: Option<&str>,
    auth_time: Timestamp,
    amr: &[String],
    now: Timestamp,
    ttl: Duration,
) -> Value {
    let mut c = json!({
        "iss": issuer,
        "sub": user.id.to_string(),
        "aud": client.to_string(),
        "iat": now.seconds(),
        "exp": now.plus(ttl).seconds(),
        "auth_time": auth_time.seconds(),
        "amr": amr,
        "acr": if amr.iter().any(|m| m == "mfa") { ACR_MFA } else { "urn:tessera:pwd" },
    });
    if let Value::Object(m) = &mut c {
        if let Some(n) = nonce {
            m.insert("nonce".into(), json!(n));
        }
        if let Some(e) = &user.email {
            m.insert("email".into(), json!(e.as_str()));
            m.insert("email_verified".into(), json!(user.email_verified));
        }
        if let Some(u) = &user.username {
            m.insert("preferred_username".into(), json!(u.as_str()));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn client(public: bool) -> OAuthClient {
        OAuthClient {
            id: ApplicationId::random(),
            tenant_id: TenantId::random(),
            secret_digest: (!public).then(|| "d".to_owned()),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            mfa_policy: MfaPolicy::WhenEnrolled,
        }
    }

    #[test]
    fn registered_redirect_uris_are_absolute_without_fragments() {
        for ok in ["https://app.example.com/cb", "http://localhost:3000/callback?x=1", "https://a.example/"] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/cb",
            "app.example.com/cb",
            "https:///cb",
            "https://app.example.com/cb#x",
            "https://a b/cb",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }

    #[test]
    fn redirect_uris_match_exactly_and_public_clients_need_pkce() {
        let c = client(true);
        let base = [("client_id", "x"), ("response_type", "code"), ("scope", "openid email")];
        let mut p = params(&base);
        p.insert("redirect_uri".into(), "https://app.example.com/cb/evil".into());
        assert_eq!(check_authorize(&p, Some(&c)), Err(AuthorizeError::RedirectMismatch));
        assert_eq!(check_authorize(&p, None), Err(AuthorizeError::UnknownClient));
        p.insert("redirect_uri".into(), "https://app.example.com/cb".into());
        assert!(matches!(
            check_authorize(&p, Some(&c)),
            Err(AuthorizeError::Redirect { error: "invalid_request", .. })
        ));
        p.insert("code_challenge".into(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into());
        p.insert("code_challenge_method".into(), "plain".into());
        assert!(matches!(
            check_authorize(&p, Some(&c)),
            Err(AuthorizeError::Redirect { error: "invalid_request", .. })
        ));
        p.insert("code_challenge_method".into(), "S256".into());
        p.insert("acr_values".into(), ACR_MFA.into());
        p.insert("prompt".into(), "login".into());
        let ok = check_authorize(&p, Some(&c));
        assert!(ok.as_ref().is_ok_and(|r| r.require_mfa && r.prompt_login), "{ok:?}");
        p.insert("response_type".into(), "token".into());
        assert!(matches!(
            check_authorize(&p, Some(&c)),
            Err(AuthorizeError::Redirect { error: "unsupported_response_type", .. })
        ));
    }
}
