//! OpenID Connect use cases: client settings, the authorization decision, browser
//! sessions made by the hosted login, and the token endpoint.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::kernel::retrying;
use super::{Identity, RequestContext};
use crate::audit::AuditKind;
use crate::ids::ApplicationId;
use crate::login::LoginSuccess;
use crate::oidc::{
    AuthCode, AuthorizeError, AuthorizeRequest, BrowserSession, CODE_TTL, OAuthClient, SessionPolicy, check_authorize,
    id_token_claims, pkce_matches,
};
use crate::secret::{Secret, constant_time_eq};
use crate::signin::{AuthMethod, FactorRule, SecondFactor, second_factor};
use crate::store::Store;
use crate::tokens::RefreshToken;
use crate::{CoreError, Timestamp, random};

/// What `/oauth2/authorize` does next.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Show this on a page; never redirect (the client or redirect URI is not trusted).
    ErrorPage(String),
    /// Send the browser back to the client with an error.
    RedirectError { redirect_uri: String, error: &'static str, description: String, state: Option<String> },
    /// Sign in first (or again: `prompt=login`, `max_age`, a second factor needed): a
    /// hosted sign-in for the client's application, asking of a second factor what
    /// `rule` says (its policy, a step-up asked for), then back here.
    Login { application: ApplicationId, rule: FactorRule },
    /// The application requires a second factor and the signed-in user has none: a
    /// sign-in for `session`'s user waits for one to be enrolled (it carries the
    /// application and its rule like `Login`'s), then comes back here.
    Enroll { session: Box<BrowserSession>, application: ApplicationId, rule: FactorRule },
    /// Done: send the browser back with this code.
    Code { redirect_uri: String, code: Secret, state: Option<String> },
}

/// RFC 6749 §5.2 token errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    InvalidRequest(&'static str),
    InvalidClient,
    InvalidGrant(&'static str),
    UnsupportedGrantType,
    /// A post-login action refused the refresh.
    AccessDenied(String),
}

pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<Secret>,
    pub id_token: Option<String>,
    pub scope: String,
}

impl Identity {
    /// `/oauth2/logout`: where to send the browser afterwards, if anywhere. The client is
    /// named by `client_id` or by the audience of an `id_token_hint` we signed (expired
    /// hints count; a hint for another client than `client_id` voids both), and the
    /// address must be one of its registered redirect URIs.
    pub async fn post_logout_redirect(&self, params: &HashMap<String, String>) -> Result<Option<String>, CoreError> {
        let Some(uri) = params.get("post_logout_redirect_uri") else { return Ok(None) };
        let hinted = match params.get("id_token_hint") {
            Some(hint) => match self.tokens.signed_claims(hint) {
                Ok(claims) => claims.get("aud").and_then(Value::as_str).map(str::to_owned),
                Err(_) => return Ok(None),
            },
            None => None,
        };
        let client_id = match (params.get("client_id"), hinted) {
            (Some(named), Some(hinted)) if *named != hinted => return Ok(None),
            (Some(named), _) => named.clone(),
            (None, Some(hinted)) => hinted,
            (None, None) => return Ok(None),
        };
        let client = self.oauth_client(&client_id).await?;
        Ok(client.filter(|c| c.redirect_uris.contains(uri)).map(|_| uri.clone()))
    }

    /// Whether an RP-initiated logout carries an `id_token_hint` we signed (expired
    /// ones count) for the client it names, if it names one.
    pub fn logout_hint_is_ours(&self, params: &HashMap<String, String>) -> bool {
        let Some(claims) = params.get("id_token_hint").and_then(|h| self.tokens.signed_claims(h).ok()) else {
            return false;
        };
        let aud = claims.get("aud").and_then(Value::as_str);
        aud.is_some() && params.get("client_id").is_none_or(|c| Some(c.as_str()) == aud)
    }

    pub async fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>, CoreError> {
        match id.parse() {
            Ok(id) => Ok(self.store.oauth_client(id).await?),
            Err(_) => Ok(None),
        }
    }

    /// The live browser session for a cookie value, refreshed as used.
    pub async fn browser_session(
        &self,
        cookie: &Secret,
        policy: &SessionPolicy,
        now: Timestamp,
    ) -> Result<Option<BrowserSession>, CoreError> {
        let Some(s) = self.store.session(&cookie.digest()).await? else { return Ok(None) };
        if !s.is_live(now, policy) {
            self.store.delete_session(&s.digest).await?;
            return Ok(None);
        }
        self.store.touch_session(&s.digest, now).await?;
        Ok(Some(s))
    }

    /// After a hosted sign-in succeeded: a new browser session (returned as the cookie value).
    pub async fn start_browser_session(
        &self,
        ok: &LoginSuccess,
        policy: &SessionPolicy,
        now: Timestamp,
    ) -> Result<Secret, CoreError> {
        let cookie = Secret::new(random::token(32)?);
        let session = BrowserSession {
            digest: cookie.digest(),
            tenant_id: ok.user.tenant_id,
            user_id: ok.user.id,
            auth_time: now,
            methods: ok.passed.clone(),
            last_seen: now,
            expires_at: now.plus(policy.absolute),
        };
        self.store.insert_session(&session).await?;
        Ok(cookie)
    }

    /// After enrolling a factor in the browser (signed in with the password): the
    /// session counts as two-factor.
    pub async fn upgrade_browser_session(&self, session: &BrowserSession, method: AuthMethod) -> Result<(), CoreError> {
        let methods = session.methods.clone().with(method);
        Ok(self.store.set_session_methods(&session.digest, &methods).await?)
    }

    pub async fn end_browser_session(&self, cookie: &Secret) -> Result<(), CoreError> {
        self.store.delete_session(&cookie.digest()).await?;
        Ok(())
    }

    /// `/oauth2/authorize`: checks the request, then either asks for a sign-in or
    /// issues a code for the session's user.
    /// Every code issued is audited (`oauth.authorized`): outcome `login` when the
    /// session began within the last minute (the browser is back from the hosted
    /// sign-in), `session` when the session alone signed the user in to this application.
    pub async fn authorize(
        &self,
        params: &HashMap<String, String>,
        session: Option<&BrowserSession>,
        ctx: &RequestContext,
        now: Timestamp,
    ) -> Result<AuthorizeOutcome, CoreError> {
        let client = self.oauth_client(params.get("client_id").map_or("", String::as_str)).await?;
        let req: AuthorizeRequest = match check_authorize(params, client.as_ref()) {
            Ok(r) => r,
            Err(AuthorizeError::UnknownClient) => {
                return Ok(AuthorizeOutcome::ErrorPage("This application is not known.".into()));
            }
            Err(AuthorizeError::RedirectMismatch) => {
                return Ok(AuthorizeOutcome::ErrorPage(
                    "The address to return to is not registered for this application.".into(),
                ));
            }
            Err(AuthorizeError::Redirect { error, description }) => {
                let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
                return Ok(AuthorizeOutcome::RedirectError {
                    redirect_uri,
                    error,
                    description,
                    state: params.get("state").cloned(),
                });
            }
        };
        let Some(client) = client else {
            return Ok(AuthorizeOutcome::ErrorPage("This application is not known.".into()));
        };
        let (application, rule) = (client.id, FactorRule::for_application(client.mfa_policy, req.require_mfa));
        let login = AuthorizeOutcome::Login { application, rule };
        let Some(session) = session.filter(|s| s.tenant_id == client.tenant_id) else {
            return Ok(login);
        };
        let too_old = req.max_age.is_some_and(|age| now.minus(Duration::from_secs(age)) > session.auth_time);
        let has_factor = !self.store.methods(session.user_id).await?.is_empty();
        let decision = second_factor(client.mfa_policy, req.require_mfa, has_factor, &session.methods);
        match decision {
            // Signing in again would not help: the user has no factor to pass yet.
            SecondFactor::Enrol => {
                return Ok(AuthorizeOutcome::Enroll { session: Box::new(session.clone()), application, rule });
            }
            SecondFactor::Pass => return Ok(login),
            SecondFactor::NotNeeded if req.prompt_login || too_old => return Ok(login),
            SecondFactor::NotNeeded => {}
        }
        let code = Secret::new(random::token(32)?);
        let record = AuthCode {
            digest: code.digest(),
            client_id: client.id,
            user_id: session.user_id,
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
            nonce: req.nonce.clone(),
            scope: req.scope.clone(),
            auth_time: session.auth_time,
            methods: session.methods.clone(),
            expires_at: now.plus(CODE_TTL),
        };
        self.store.insert_code(&record).await?;
        let fresh = now.minus(Duration::from_secs(60)) <= session.auth_time;
        let detail = json!({"applicationId": client.id.to_string(), "authTime": session.auth_time.millis()});
        let outcome = if fresh { "login" } else { "session" };
        self.kernel.audit(AuditKind::OAuthAuthorized, Some(session.user_id), outcome, ctx, detail, now).await?;
        Ok(AuthorizeOutcome::Code { redirect_uri: req.redirect_uri, code, state: req.state })
    }

    async fn authenticate_client(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<Result<OAuthClient, TokenError>, CoreError> {
        let Some(client) = self.oauth_client(id).await? else { return Ok(Err(TokenError::InvalidClient)) };
        let ok = match (&client.secret_digest, secret) {
            (Some(digest), Some(s)) => constant_time_eq(digest.as_bytes(), Secret::new(s).digest().as_bytes()),
            (Some(_), None) => false,
            (None, _) => true,
        };
        Ok(if ok { Ok(client) } else { Err(TokenError::InvalidClient) })
    }

    /// `/oauth2/token`: the authorization code (with PKCE) and refresh token grants.
    pub async fn token(
        &self,
        params: &HashMap<String, String>,
        client_id: &str,
        client_secret: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<TokenResponse, TokenError>, CoreError> {
        let client = match self.authenticate_client(client_id, client_secret).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.code_grant(&client, params, now).await,
            Some("refresh_token") => {
                let Some(refresh) = params.get("refresh_token") else {
                    return Ok(Err(TokenError::InvalidRequest("refresh_token is missing")));
                };
                let secret = Secret::new(refresh.clone());
                match self.refresh(&secret, &RequestContext::default(), now).await? {
                    super::Refreshed::Token { jwt, .. } => Ok(Ok(TokenResponse {
                        access_token: jwt,
                        expires_in: self.kernel.policies.jwt_ttl.as_secs(),
                        refresh_token: Some(secret),
                        id_token: None,
                        scope: "openid".into(),
                    })),
                    super::Refreshed::Invalid => {
                        Ok(Err(TokenError::InvalidGrant("the refresh token is unknown, expired or revoked")))
                    }
                    super::Refreshed::Denied { reason } => Ok(Err(TokenError::AccessDenied(reason))),
                }
            }
            Some(_) => Ok(Err(TokenError::UnsupportedGrantType)),
            None => Ok(Err(TokenError::InvalidRequest("grant_type is missing"))),
        }
    }

    async fn code_grant(
        &self,
        client: &OAuthClient,
        params: &HashMap<String, String>,
        now: Timestamp,
    ) -> Result<Result<TokenResponse, TokenError>, CoreError> {
        let Some(code) = params.get("code") else { return Ok(Err(TokenError::InvalidRequest("code is missing"))) };
        // Taken (spent) before any check: a replayed or stolen code never works twice. The
        // spend commits with the refresh token it buys, or with the refusal; a failure
        // in between leaves the code as it was.
        retrying(|| async {
            let tx = self.store.begin().await?;
            let Some(record) = tx.take_code(&Secret::new(code.clone()).digest()).await? else {
                return Ok(Err(TokenError::InvalidGrant("the code is unknown or was used already")));
            };
            let answer = self.redeem(&*tx, client, params, record, now).await?;
            tx.commit().await?;
            Ok(answer)
        })
        .await
    }

    /// The checks and tokens for a code just taken, in the token request's unit `tx`.
    async fn redeem(
        &self,
        tx: &dyn Store,
        client: &OAuthClient,
        params: &HashMap<String, String>,
        record: AuthCode,
        now: Timestamp,
    ) -> Result<Result<TokenResponse, TokenError>, CoreError> {
        if record.client_id != client.id || now >= record.expires_at {
            return Ok(Err(TokenError::InvalidGrant("the code expired or belongs to another client")));
        }
        if params.get("redirect_uri") != Some(&record.redirect_uri) {
            return Ok(Err(TokenError::InvalidGrant("redirect_uri does not match the authorization request")));
        }
        if let Some(challenge) = &record.code_challenge {
            let verifier = params.get("code_verifier").map_or("", String::as_str);
            if !pkce_matches(verifier, challenge) {
                return Ok(Err(TokenError::InvalidGrant("the code_verifier does not match the code_challenge")));
            }
        }
        let Some(user) = tx.get_user(client.tenant_id, record.user_id).await?.filter(|u| u.active) else {
            return Ok(Err(TokenError::InvalidGrant("the user is no longer active")));
        };
        let methods = &record.methods;
        let (access, _) = self.tokens.issue(
            &user,
            client.id,
            record.auth_time,
            methods.authentication_type(),
            &Default::default(),
            now,
        )?;
        let (refresh, stored) =
            RefreshToken::generate(&user, client.id, methods, self.kernel.policies.refresh_ttl, now)?;
        tx.insert_refresh_token(&stored).await?;
        // One issuer for access and ID tokens, from configuration, never from a request.
        let claims = id_token_claims(
            self.tokens.issuer(),
            &user,
            client.id,
            record.nonce.as_deref(),
            record.auth_time,
            &record.methods.amr(),
            now,
            self.kernel.policies.jwt_ttl,
        );
        let id_token = self.tokens.sign(&claims)?;
        Ok(Ok(TokenResponse {
            access_token: access,
            expires_in: self.kernel.policies.jwt_ttl.as_secs(),
            refresh_token: Some(refresh),
            id_token: Some(id_token),
            scope: record.scope,
        }))
    }

    /// `/oauth2/userinfo` for a valid access token.
    pub async fn userinfo(&self, access_token: &str, now: Timestamp) -> Result<Option<Value>, CoreError> {
        let Ok(claims) = self.validate_jwt(access_token, now) else { return Ok(None) };
        let (Some(sub), Some(tid)) =
            (claims.get("sub").and_then(Value::as_str), claims.get("tid").and_then(Value::as_str))
        else {
            return Ok(None);
        };
        let (Ok(user_id), Ok(tenant)) = (sub.parse(), tid.parse()) else { return Ok(None) };
        let Some(user) = self.store.get_user(tenant, user_id).await?.filter(|u| u.active) else { return Ok(None) };
        let mut info = json!({"sub": sub});
        if let Some(e) = &user.email {
            info["email"] = json!(e.as_str());
            info["email_verified"] = json!(user.email_verified);
        }
        if let Some(u) = &user.username {
            info["preferred_username"] = json!(u.as_str());
        }
        if let Some(n) = &user.first_name {
            info["given_name"] = json!(n);
        }
        if let Some(n) = &user.last_name {
            info["family_name"] = json!(n);
        }
        Ok(Some(info))
    }

    /// The `iss` of every token Tessera signs, access and ID tokens alike.
    pub fn issuer(&self) -> &str {
        self.tokens.issuer()
    }

    pub fn jwt_algorithm(&self) -> &'static str {
        self.kernel.policies.jwt_algorithm.as_str()
    }
}
