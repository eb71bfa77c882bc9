//! The FusionAuth two-factor API: the challenge after the password
//! (`/api/two-factor/send/{id}`, `/api/two-factor/login`) and managing a user's
//! factors (`/api/two-factor/secret`, `/api/two-factor/send`, `/api/user/two-factor`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tessera_core::base32;
use tessera_core::ids::UserId;
use tessera_core::messaging::Channel;
use tessera_core::phone::PhoneNumber;
use tessera_core::secret::Secret;
use tessera_core::service::{
    DisableOutcome, EnableOutcome, SendOutcome, TwoFactorLoginOutcome, TwoFactorLoginRequest, UserScope,
};
use tessera_core::totp::{otpauth_uri, qr_svg};
use tessera_core::twofactor::{self as tf, MethodId, MethodKind, TwoFactorMethod};
use tessera_core::validation::ValidationErrors;

use crate::api::login::success_response;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, OptionalJson, bearer, set_trust_cookie};

/// A two-factor method as FusionAuth's APIs show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodBody {
    id: String,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authenticator: Option<AuthenticatorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mobile_phone: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthenticatorBody {
    algorithm: tessera_core::totp::OtpAlgorithm,
    code_length: u32,
    time_step: u64,
}

/// A method as FusionAuth shows it; `mask` hides most of a phone number (in the 242
/// answer, which anyone with the password sees).
pub fn method_json(m: &TwoFactorMethod, mask: bool) -> MethodBody {
    let (authenticator, mobile_phone) = match &m.kind {
        MethodKind::Authenticator(a) => {
            let p = &a.params;
            (Some(AuthenticatorBody { algorithm: p.algorithm, code_length: p.digits, time_step: p.period }), None)
        }
        MethodKind::Sms { phone } => (None, Some(if mask { tf::mask_phone(phone) } else { phone.as_str().to_owned() })),
    };
    MethodBody { id: m.id.as_str().to_owned(), method: m.method_name(), authenticator, mobile_phone }
}

/// An admin key, or the user's own access token.
async fn scope_for(s: &AppState, headers: &HeaderMap, user: &str) -> Result<UserScope, ApiError> {
    let user: UserId = user.parse().map_err(|_| ApiError::NotFound)?;
    let raw = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
    // JWTs have dots; API keys do not.
    if let Some(jwt) = bearer(headers).filter(|t| t.contains('.')) {
        return s.identity.scope_bearer(jwt, user, s.clock.now()).ok_or(ApiError::Unauthorized);
    }
    let key = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
    let admin = s.identity.authenticate_admin(&Secret::new(key)).await?.ok_or(ApiError::Unauthorized)?;
    Ok(s.identity.scope_admin(&admin, user).await?)
}

fn locale(headers: &HeaderMap, explicit: Option<String>) -> String {
    explicit
        .or_else(|| {
            let v = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
            Some(v.split([',', ';']).next()?.trim().to_owned())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "en".into())
}

fn channel(message_type: Option<&str>) -> Result<Channel, ApiError> {
    match message_type {
        None => Ok(Channel::Sms),
        Some(t) => Channel::parse(t)
            .ok_or_else(|| invalid("messageType", "invalid", "The [messageType] must be SMS or Voice.")),
    }
}

fn invalid(field: &str, kind: &str, message: &str) -> ApiError {
    ApiError::Invalid(ValidationErrors::field(field, kind, message))
}

/// `explain`: the caller is an administrator or the user (API key or token), who may
/// read which messengers failed and why; a sign-in in progress gets the plain message.
fn send_response(outcome: SendOutcome, explain: bool) -> Response {
    match outcome {
        SendOutcome::Sent => StatusCode::OK.into_response(),
        SendOutcome::NotFound => StatusCode::NOT_FOUND.into_response(),
        SendOutcome::RateLimited => ApiError::refused(
            StatusCode::TOO_MANY_REQUESTS,
            "[TooManyRequests]",
            "Too many codes were sent recently. Try again in a minute.",
        )
        .into_response(),
        SendOutcome::Blocked(detail) => {
            tracing::info!(%detail, "fraud guard refused a code");
            ApiError::refused(StatusCode::FORBIDDEN, "[Blocked]", "Codes cannot be sent to this number right now.")
                .into_response()
        }
        SendOutcome::Failed(detail) => {
            tracing::warn!(%detail, "messenger failed");
            let message = if explain {
                format!("The code could not be sent: {detail}")
            } else {
                "The code could not be sent. Try again, or use another method.".to_owned()
            };
            ApiError::refused(StatusCode::SERVICE_UNAVAILABLE, "[MessengerFailure]", message).into_response()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeSendBody {
    method_id: Option<String>,
    message_type: Option<String>,
    locale: Option<String>,
}

/// `POST /api/two-factor/send/{twoFactorId}` `{methodId, messageType?}`.
pub async fn send_for_challenge(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Path(two_factor_id): Path<String>,
    headers: HeaderMap,
    OptionalJson(b): OptionalJson<ChallengeSendBody>,
) -> Result<Response, ApiError> {
    let method_id = match b.method_id.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => Some(MethodId::parse(m).ok_or(ApiError::NotFound)?),
        None => None,
    };
    let channel = channel(b.message_type.as_deref())?;
    let locale = locale(&headers, b.locale);
    let outcome = s
        .identity
        .send_challenge_code(&Secret::new(two_factor_id), method_id.as_ref(), channel, &locale, &ctx, s.clock.now())
        .await?;
    Ok(send_response(outcome, false))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserSendBody {
    user_id: Option<String>,
    mobile_phone: Option<String>,
    method_id: Option<String>,
    message_type: Option<String>,
    locale: Option<String>,
}

/// `POST /api/two-factor/send` `{userId, mobilePhone}` (a code to enable SMS) or
/// `{userId, methodId}` (a code to an existing SMS method, to disable it).
pub async fn send_for_user(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    OptionalJson(b): OptionalJson<UserSendBody>,
) -> Result<Response, ApiError> {
    let user = b.user_id.ok_or_else(|| invalid("userId", "blank", "You must specify the [userId] property."))?;
    let scope = scope_for(&s, &headers, &user).await?;
    let channel = channel(b.message_type.as_deref())?;
    let locale = locale(&headers, b.locale);
    let now = s.clock.now();
    let outcome = match (b.method_id.filter(|m| !m.is_empty()), b.mobile_phone.filter(|p| !p.trim().is_empty())) {
        (Some(method), _) => {
            let id = MethodId::parse(&method).ok_or(ApiError::NotFound)?;
            s.factors.send_method_code(&scope, &id, channel, &locale, &ctx, now).await?
        }
        (None, Some(phone)) => {
            let phone = PhoneNumber::parse(&phone)
                .map_err(|e| invalid("mobilePhone", "invalid", &format!("The [mobilePhone] property is {e}.")))?;
            s.factors.send_enrollment_code(&scope, &phone, channel, &locale, &ctx, now).await?
        }
        (None, None) => {
            return Err(invalid("mobilePhone", "blank", "You must specify the [mobilePhone] or [methodId] property."));
        }
    };
    Ok(send_response(outcome, true))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TwoFactorLoginBody {
    two_factor_id: Option<String>,
    code: Option<String>,
    #[serde(default)]
    trust_computer: bool,
    #[serde(default, rename = "noJWT")]
    no_jwt: bool,
    ip_address: Option<String>,
}

/// `POST /api/two-factor/login`: 200 with tokens, 421 for a wrong code, 404 for an
/// unknown, expired or spent `twoFactorId`.
pub async fn login(
    State(s): State<AppState>,
    Caller(caller): Caller,
    OptionalJson(b): OptionalJson<TwoFactorLoginBody>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    let id = b.two_factor_id.filter(|v| !v.is_empty());
    let code = b.code.filter(|v| !v.trim().is_empty());
    if id.is_none() {
        errors.add("twoFactorId", "blank", "You must specify the [twoFactorId] property.");
    }
    if code.is_none() {
        errors.add("code", "blank", "You must specify the [code] property.");
    }
    let (Some(id), Some(code)) = (id, code) else { return Err(ApiError::Invalid(errors)) };
    let ctx = tessera_core::service::RequestContext { ip: b.ip_address.or(caller.ip), ..caller };
    let req = TwoFactorLoginRequest {
        challenge_id: Secret::new(id),
        code,
        trust_computer: b.trust_computer,
        no_jwt: b.no_jwt,
    };
    match s.identity.two_factor_login(req, &ctx, s.clock.now()).await? {
        TwoFactorLoginOutcome::Success(ok) => {
            let mut response = success_response(&ok);
            if let Some(trust) = &ok.trust_token {
                set_trust_cookie(&mut response, trust, s.identity.policies().two_factor.trust_ttl.as_secs());
            }
            Ok(response)
        }
        TwoFactorLoginOutcome::WrongCode => {
            s.metrics.record_login("two_factor_failure");
            Ok(StatusCode::from_u16(421).unwrap_or(StatusCode::BAD_REQUEST).into_response())
        }
        TwoFactorLoginOutcome::NotFound => Ok(StatusCode::NOT_FOUND.into_response()),
        TwoFactorLoginOutcome::Locked { until } => {
            s.metrics.record_login("locked");
            Ok(too_many_wrong_codes(until))
        }
    }
}

#[derive(Deserialize)]
pub struct SecretQuery {
    account: Option<String>,
}

/// `GET /api/two-factor/secret`: a fresh 160-bit secret, as base64 (FusionAuth's
/// `secret`), base32 (what people type), hex, and the `otpauth://` URI with its QR code.
pub async fn secret(State(s): State<AppState>, Query(q): Query<SecretQuery>) -> Result<Json<SecretBody>, ApiError> {
    let secret = tf::new_totp_secret()?;
    let b32 = base32::encode(&secret);
    let account = q.account.filter(|a| !a.is_empty()).unwrap_or_else(|| "user".into());
    let uri = otpauth_uri(s.factors.totp_issuer(), &account, &b32, &s.factors.totp_params());
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let qr_code_svg = qr_svg(&uri);
    Ok(Json(SecretBody {
        secret: STANDARD.encode(&secret),
        secret_base32_encoded: b32,
        secret_hex: hex,
        otpauth_uri: uri,
        qr_code_svg,
    }))
}

/// A fresh authenticator secret in every form a client may want (FusionAuth's `secret`
/// and `secretBase32Encoded`, and ours).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBody {
    secret: String,
    secret_base32_encoded: String,
    secret_hex: String,
    otpauth_uri: String,
    qr_code_svg: Option<String>,
}

/// A factor turned on, with the recovery codes when it was the user's first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnabledBody {
    method: MethodBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesBody {
    recovery_codes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnableBody {
    method: Option<String>,
    code: Option<String>,
    secret: Option<String>,
    secret_base32_encoded: Option<String>,
    mobile_phone: Option<String>,
}

/// `secretBase32Encoded` first; `secret` is base64 (FusionAuth), or 40 hex digits.
fn secret_bytes(b: &EnableBody) -> Result<Vec<u8>, ApiError> {
    if let Some(b32) = b.secret_base32_encoded.as_deref().filter(|s| !s.is_empty()) {
        return base32::decode(b32).ok_or_else(|| {
            invalid("secretBase32Encoded", "invalid", "The [secretBase32Encoded] property is not base32.")
        });
    }
    let Some(s) = b.secret.as_deref().filter(|s| !s.is_empty()) else {
        return Err(invalid("secret", "blank", "You must specify the [secret] or [secretBase32Encoded] property."));
    };
    if s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Ok((0..20).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect());
    }
    STANDARD.decode(s).map_err(|_| invalid("secret", "invalid", "The [secret] property is not base64."))
}

/// `POST /api/user/two-factor/{userId}`: enable an authenticator or an SMS number.
/// 200 with `recoveryCodes` when it is the user's first factor; 421 for a wrong code.
pub async fn enable(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
    headers: HeaderMap,
    OptionalJson(b): OptionalJson<EnableBody>,
) -> Result<Response, ApiError> {
    let scope = scope_for(&s, &headers, &user).await?;
    let code = b.code.clone().filter(|c| !c.trim().is_empty());
    let Some(code) = code else { return Err(invalid("code", "blank", "You must specify the [code] property.")) };
    let now = s.clock.now();
    let outcome = match b.method.as_deref() {
        Some("authenticator") => {
            let secret = secret_bytes(&b)?;
            s.factors.enable_authenticator(&scope, &secret, &code, &ctx, now).await?
        }
        Some("sms") => {
            let raw = b.mobile_phone.as_deref().filter(|p| !p.trim().is_empty());
            let raw =
                raw.ok_or_else(|| invalid("mobilePhone", "blank", "You must specify the [mobilePhone] property."))?;
            let phone = PhoneNumber::parse(raw)
                .map_err(|e| invalid("mobilePhone", "invalid", &format!("The [mobilePhone] property is {e}.")))?;
            s.factors.enable_sms(&scope, phone, &code, &ctx, now).await?
        }
        _ => return Err(invalid("method", "invalid", "The [method] must be authenticator or sms.")),
    };
    Ok(match outcome {
        EnableOutcome::Enabled { method, recovery_codes } => {
            let body = EnabledBody { method: method_json(&method, false), recovery_codes };
            (StatusCode::OK, Json(body)).into_response()
        }
        EnableOutcome::WrongCode => StatusCode::from_u16(421).unwrap_or(StatusCode::BAD_REQUEST).into_response(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisableQuery {
    method_id: Option<String>,
    code: Option<String>,
}

/// `DELETE /api/user/two-factor/{userId}?methodId=…&code=…`.
pub async fn disable(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(q): Query<DisableQuery>,
) -> Result<Response, ApiError> {
    let scope = scope_for(&s, &headers, &user).await?;
    let mut errors = ValidationErrors::default();
    if q.method_id.as_deref().is_none_or(str::is_empty) {
        errors.add("methodId", "blank", "You must specify the [methodId] parameter.");
    }
    if q.code.as_deref().is_none_or(|c| c.trim().is_empty()) {
        errors.add("code", "blank", "You must specify the [code] parameter.");
    }
    let (Some(method), Some(code)) = (q.method_id, q.code) else { return Err(ApiError::Invalid(errors)) };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let id = MethodId::parse(&method).ok_or(ApiError::NotFound)?;
    Ok(match s.factors.disable_method(&scope, &id, &code, &ctx, s.clock.now()).await? {
        DisableOutcome::Disabled => StatusCode::OK.into_response(),
        DisableOutcome::WrongCode => StatusCode::from_u16(421).unwrap_or(StatusCode::BAD_REQUEST).into_response(),
        DisableOutcome::Locked { until } => too_many_wrong_codes(until),
        DisableOutcome::NotFound => StatusCode::NOT_FOUND.into_response(),
    })
}

/// 409, as FusionAuth answers a sign-in it prevents: no code is checked until `until`.
fn too_many_wrong_codes(until: tessera_core::Timestamp) -> Response {
    let message = "Too many wrong codes. Try again later, or ask an administrator.".to_owned();
    let code = "[LoginPreventedException]";
    ApiError::Refused { status: StatusCode::CONFLICT, code, message, locked_until: Some(until) }.into_response()
}

/// `POST /api/user/two-factor/recovery-code/{userId}`: ten new codes; the old ones die.
pub async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RecoveryCodesBody>, ApiError> {
    let scope = scope_for(&s, &headers, &user).await?;
    match s.factors.regenerate_recovery_codes(&scope, &ctx, s.clock.now()).await? {
        Some(recovery_codes) => Ok(Json(RecoveryCodesBody { recovery_codes })),
        None => Err(ApiError::general("[TwoFactorNotEnabled]", "The user has no two-factor method to recover.")),
    }
}
