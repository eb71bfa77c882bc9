//! The Twilio Verify v2 API under `/v2`: form-encoded requests, HTTP Basic with a
//! Verify credential, JSON answers with Twilio's field names and error bodies
//! (`{code, message, more_info, status}`). Twilio's SDKs work against it unchanged.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};
use tessera_core::CoreError;
use tessera_core::secret::{Secret, sha256_hex};
use tessera_core::service::{CheckInput, ServiceInput, StartInput, VerifyError, VerifyFailure};
use tessera_core::verify::{Status, Verification, VerifyAccount, VerifyService, iso8601};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller};

/// A Twilio-shaped error answer.
pub struct TwilioError {
    code: u32,
    message: String,
    status: StatusCode,
}

impl TwilioError {
    fn new(code: u32, status: StatusCode, message: impl Into<String>) -> Self {
        TwilioError { code, message: message.into(), status }
    }
}

/// Twilio's error body.
#[derive(Serialize)]
struct ErrorBody {
    code: u32,
    message: String,
    more_info: String,
    status: u16,
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let more_info = format!("https://www.twilio.com/docs/errors/{}", self.code);
        let body = ErrorBody { code: self.code, message: self.message, more_info, status: self.status.as_u16() };
        (self.status, Json(body)).into_response()
    }
}

impl From<VerifyFailure> for TwilioError {
    fn from(f: VerifyFailure) -> Self {
        match f {
            VerifyFailure::Verify(e) => match e {
                VerifyError::InvalidParameter(p) => {
                    TwilioError::new(60200, StatusCode::BAD_REQUEST, format!("Invalid parameter: {p}"))
                }
                VerifyError::NotFound => {
                    TwilioError::new(20404, StatusCode::NOT_FOUND, "The requested resource was not found")
                }
                VerifyError::MaxChecks => {
                    TwilioError::new(60202, StatusCode::TOO_MANY_REQUESTS, "Max check attempts reached")
                }
                VerifyError::MaxSends => {
                    TwilioError::new(60203, StatusCode::TOO_MANY_REQUESTS, "Max send attempts reached")
                }
                VerifyError::Blocked(reason) => {
                    tracing::info!(%reason, "fraud guard blocked a verification");
                    TwilioError::new(
                        60410,
                        StatusCode::FORBIDDEN,
                        "Verification delivery attempt blocked: the destination prefix is blocked by fraud protection",
                    )
                }
                VerifyError::GeoDenied => TwilioError::new(
                    60605,
                    StatusCode::FORBIDDEN,
                    "Verification delivery attempt blocked: the destination country is not permitted",
                ),
                VerifyError::Delivery(detail) => TwilioError::new(
                    60001,
                    StatusCode::BAD_GATEWAY,
                    format!("The code could not be delivered: {detail}"),
                ),
            },
            VerifyFailure::Core(e) => core(e),
        }
    }
}

fn core(e: CoreError) -> TwilioError {
    match e {
        CoreError::NotFound => TwilioError::new(20404, StatusCode::NOT_FOUND, "The requested resource was not found"),
        other => {
            let id = uuid::Uuid::new_v4();
            tracing::error!(error_id = %id, error = %other, "internal error in the Verify API");
            TwilioError::new(20500, StatusCode::INTERNAL_SERVER_ERROR, format!("Internal Server Error (error id {id})"))
        }
    }
}

/// A caller that presented a valid Verify credential with HTTP Basic.
pub struct VerifyAuth(pub VerifyAccount);

impl FromRequestParts<AppState> for VerifyAuth {
    type Rejection = TwilioError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, TwilioError> {
        let denied = || TwilioError::new(20003, StatusCode::UNAUTHORIZED, "Authentication Error - invalid username");
        let raw = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(denied)?;
        let decoded = raw.strip_prefix("Basic ").and_then(|b| STANDARD.decode(b.trim()).ok()).ok_or_else(denied)?;
        let text = String::from_utf8(decoded).map_err(|_| denied())?;
        let (sid, token) = text.split_once(':').ok_or_else(denied)?;
        match s.verify.authenticate(sid, &Secret::new(token)).await {
            Ok(Some(account)) => {
                // For `Caller`: the credential's tenant is the request's.
                parts.extensions.insert(account.tenant_id);
                Ok(VerifyAuth(account))
            }
            Ok(None) => Err(denied()),
            Err(e) => Err(core(e)),
        }
    }
}

fn params(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default().into_iter().collect()
}

/// Where this server is reached, for the `url` fields.
fn base(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &s.public_url {
        return u.clone();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// Twilio's Verify Service resource (the features Tessera does not have answered off).
#[derive(Serialize)]
struct ServiceBody<'a> {
    sid: &'a str,
    account_sid: &'a str,
    friendly_name: &'a str,
    code_length: u32,
    lookup_enabled: bool,
    psd2_enabled: bool,
    skip_sms_to_landlines: bool,
    dtmf_input_required: bool,
    tts_name: Option<String>,
    do_not_share_warning_enabled: bool,
    custom_code_enabled: bool,
    default_template_sid: Option<String>,
    verify_event_subscription_enabled: bool,
    date_created: String,
    date_updated: String,
    url: String,
    links: ServiceLinks,
}

#[derive(Serialize)]
struct ServiceLinks {
    verification_checks: String,
    verifications: String,
}

fn service_json<'a>(base: &str, s: &'a VerifyService) -> ServiceBody<'a> {
    let url = format!("{base}/v2/Services/{}", s.sid);
    ServiceBody {
        sid: &s.sid,
        account_sid: &s.account_sid,
        friendly_name: &s.friendly_name,
        code_length: s.code_length,
        lookup_enabled: false,
        psd2_enabled: false,
        skip_sms_to_landlines: false,
        dtmf_input_required: false,
        tts_name: None,
        do_not_share_warning_enabled: false,
        custom_code_enabled: s.custom_code_enabled,
        default_template_sid: None,
        verify_event_subscription_enabled: false,
        date_created: iso8601(s.created_at),
        date_updated: iso8601(s.updated_at),
        links: ServiceLinks {
            verification_checks: format!("{url}/VerificationCheck"),
            verifications: format!("{url}/Verifications"),
        },
        url,
    }
}

fn channel_name(v: &Verification) -> &'static str {
    match v.channel {
        tessera_core::messaging::Channel::Sms => "sms",
        tessera_core::messaging::Channel::Voice => "call",
    }
}

/// What Twilio's Verification and VerificationCheck resources both say of a verification.
#[derive(Serialize)]
struct VerificationFields<'a> {
    sid: &'a str,
    service_sid: &'a str,
    account_sid: &'a str,
    to: &'a str,
    channel: &'static str,
    status: &'static str,
    valid: bool,
    amount: Option<String>,
    payee: Option<String>,
    date_created: String,
    date_updated: String,
}

impl<'a> VerificationFields<'a> {
    fn of(v: &'a Verification) -> Self {
        VerificationFields {
            sid: &v.sid,
            service_sid: &v.service_sid,
            account_sid: &v.account_sid,
            to: v.to.as_str(),
            channel: channel_name(v),
            status: v.status.as_str(),
            valid: v.status == Status::Approved,
            amount: None,
            payee: None,
            date_created: iso8601(v.created_at),
            date_updated: iso8601(v.updated_at),
        }
    }
}

/// Twilio's Verification resource.
#[derive(Serialize)]
struct VerificationBody<'a> {
    #[serde(flatten)]
    fields: VerificationFields<'a>,
    /// Carrier lookup: never done here, `{}` as Twilio answers without it.
    lookup: Map<String, Value>,
    send_code_attempts: Vec<AttemptBody>,
    sna: Option<Value>,
    url: String,
}

#[derive(Serialize)]
struct AttemptBody {
    attempt_sid: String,
    channel: &'static str,
    time: String,
}

/// Twilio's VerificationCheck resource.
#[derive(Serialize)]
struct CheckBody<'a> {
    #[serde(flatten)]
    fields: VerificationFields<'a>,
    sna_attempts_error_codes: [u32; 0],
}

fn verification_json<'a>(base: &str, v: &'a Verification) -> VerificationBody<'a> {
    let send_code_attempts = v
        .sends
        .iter()
        .enumerate()
        .map(|(i, (t, c))| AttemptBody {
            attempt_sid: format!("VL{}", &sha256_hex(format!("{}:{i}", v.sid).as_bytes())[..32]),
            channel: if *c == tessera_core::messaging::Channel::Voice { "call" } else { "sms" },
            time: iso8601(*t),
        })
        .collect();
    VerificationBody {
        fields: VerificationFields::of(v),
        lookup: Map::new(),
        send_code_attempts,
        sna: None,
        url: format!("{base}/v2/Services/{}/Verifications/{}", v.service_sid, v.sid),
    }
}

fn check_json(v: &Verification) -> CheckBody<'_> {
    CheckBody { fields: VerificationFields::of(v), sna_attempts_error_codes: [] }
}

fn service_input(p: &HashMap<String, String>) -> ServiceInput {
    ServiceInput {
        friendly_name: p.get("FriendlyName").cloned(),
        code_length: p.get("CodeLength").cloned(),
        custom_code_enabled: p.get("CustomCodeEnabled").cloned(),
        ttl: p.get("Ttl").cloned(),
    }
}

type Answer = Result<Response, TwilioError>;

pub async fn create_service(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let svc = s.verify.create_service(&a, &service_input(&params(&body)), s.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(service_json(&base(&s, &headers), &svc))).into_response())
}

pub async fn list_services(State(s): State<AppState>, VerifyAuth(a): VerifyAuth, headers: HeaderMap) -> Answer {
    let b = base(&s, &headers);
    let all = s.verify.services(&a).await?;
    let url = format!("{b}/v2/Services?PageSize=50&Page=0");
    let services = all.iter().map(|x| service_json(&b, x)).collect();
    let meta = PageMeta {
        page: 0,
        page_size: 50,
        first_page_url: url.clone(),
        previous_page_url: None,
        next_page_url: None,
        url,
        key: "services",
    };
    Ok(Json(ServicePage { services, meta }).into_response())
}

/// Twilio's list resource: one page of services and where the others are.
#[derive(Serialize)]
pub struct ServicePage<'a> {
    services: Vec<ServiceBody<'a>>,
    meta: PageMeta,
}

#[derive(Serialize)]
pub struct PageMeta {
    page: u32,
    page_size: u32,
    first_page_url: String,
    previous_page_url: Option<String>,
    next_page_url: Option<String>,
    url: String,
    key: &'static str,
}

pub async fn get_service(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let svc = s.verify.service(&a, &sid).await?;
    Ok(Json(service_json(&base(&s, &headers), &svc)).into_response())
}

pub async fn update_service(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let svc = s.verify.update_service(&a, &sid, &service_input(&params(&body)), s.clock.now()).await?;
    Ok(Json(service_json(&base(&s, &headers), &svc)).into_response())
}

pub async fn delete_service(State(s): State<AppState>, VerifyAuth(a): VerifyAuth, Path(sid): Path<String>) -> Answer {
    s.verify.delete_service(&a, &sid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn start(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    Caller(ctx): Caller,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let p = params(&body);
    let input = StartInput {
        to: p.get("To").cloned(),
        channel: p.get("Channel").cloned(),
        locale: p.get("Locale").cloned(),
        custom_code: p.get("CustomCode").cloned(),
    };
    let v = s.verify.start(&a, &sid, &input, &ctx, s.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(verification_json(&base(&s, &headers), &v))).into_response())
}

pub async fn fetch(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    Path((sid, vsid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let v = s.verify.fetch(&a, &sid, &vsid, s.clock.now()).await?;
    Ok(Json(verification_json(&base(&s, &headers), &v)).into_response())
}

pub async fn update(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    Path((sid, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let p = params(&body);
    let v = s.verify.set_status(&a, &sid, &target, p.get("Status").map(String::as_str), s.clock.now()).await?;
    Ok(Json(verification_json(&base(&s, &headers), &v)).into_response())
}

pub async fn check(
    State(s): State<AppState>,
    VerifyAuth(a): VerifyAuth,
    Path(sid): Path<String>,
    body: Bytes,
) -> Answer {
    let p = params(&body);
    let input = CheckInput {
        code: p.get("Code").cloned(),
        to: p.get("To").cloned(),
        verification_sid: p.get("VerificationSid").cloned(),
    };
    let v = s.verify.check(&a, &sid, &input, s.clock.now()).await?;
    Ok(Json(check_json(&v)).into_response())
}

// ---- admin (Tessera's own API, not Twilio's) ----

/// `POST /api/verify/account`: a new Verify credential; the token is shown once.
pub async fn create_account(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> Result<Json<AccountBody>, ApiError> {
    let (account_sid, token) = s.verify.create_account(&admin, s.clock.now()).await?;
    Ok(Json(AccountBody { account_sid, auth_token: token.expose().to_owned() }))
}

/// A new Verify credential: the token is shown this once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountBody {
    account_sid: String,
    auth_token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FraudGuardBody {
    fraud_guard: tessera_core::verify::FraudGuard,
}

/// Why a prefix is blocked, and until when.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockView {
    prefix: String,
    reason: String,
    insert_instant: i64,
    expires_instant: i64,
}

#[derive(Serialize)]
pub struct Blocks {
    blocks: Vec<BlockView>,
}

/// `PUT /api/verify/{accountSid}/services/{serviceSid}/fraud-guard`.
pub async fn set_fraud_guard(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path((account, sid)): Path<(String, String)>,
    ApiJson(guard): ApiJson<tessera_core::verify::FraudGuard>,
) -> Result<Json<FraudGuardBody>, ApiError> {
    let svc = s.verify.set_fraud_guard(&admin, &account, &sid, guard, s.clock.now()).await?;
    Ok(Json(FraudGuardBody { fraud_guard: svc.guard }))
}

/// `GET /api/verify/{accountSid}/services/{serviceSid}/blocks`: why and until when.
pub async fn blocks(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path((account, sid)): Path<(String, String)>,
) -> Result<Json<Blocks>, ApiError> {
    let list = s.verify.fraud_blocks(&admin, &account, &sid).await?;
    let blocks = list
        .into_iter()
        .map(|b| BlockView {
            prefix: b.prefix,
            reason: b.reason,
            insert_instant: b.created_at.millis(),
            expires_instant: b.expires_at.millis(),
        })
        .collect();
    Ok(Json(Blocks { blocks }))
}
