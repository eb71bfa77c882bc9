//! FusionAuth-style messenger configuration: `/api/messenger[/{id}]`, a "send test
//! message" endpoint, and the delivery records.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_core::ids::MessengerId;
use tessera_core::messaging::Channel;
use tessera_core::messengers::{Delivery, MessengerConfig, MessengerInput};
use tessera_core::phone::PhoneNumber;
use tessera_core::user::merge_patch;
use tessera_core::validation::ValidationErrors;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller, Page};

/// A messenger as a client sends it: FusionAuth's `{type, name, url, …}` with the
/// provider's settings and secrets beside them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessengerFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    url: Option<String>,
    channels: Option<Vec<String>>,
    priority: Option<i64>,
    country_codes: Option<Vec<u16>>,
    preferred_country_codes: Option<Vec<u16>>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl From<MessengerFields> for MessengerInput {
    fn from(f: MessengerFields) -> MessengerInput {
        MessengerInput {
            kind: f.kind,
            name: f.name,
            url: f.url,
            channels: f.channels,
            priority: f.priority,
            country_codes: f.country_codes,
            preferred_country_codes: f.preferred_country_codes,
            rest: f.rest,
        }
    }
}

/// A messenger from the configuration file (its `/api/messenger` fields).
pub fn configured(table: &Value) -> Result<MessengerInput, serde_json::Error> {
    serde_json::from_value::<MessengerFields>(table.clone()).map(MessengerInput::from)
}

/// The messenger as a PATCH body merges into: its settings as the client sent them
/// (secrets stay unless the body gives new ones).
fn current_fields(m: &MessengerConfig) -> Value {
    let mut current = Map::new();
    current.insert("type".into(), Value::from(m.kind.as_str()));
    current.insert("name".into(), Value::from(m.name.clone()));
    current.insert("channels".into(), Value::from(m.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>()));
    current.insert("priority".into(), Value::from(m.priority));
    current.insert("countryCodes".into(), Value::from(m.country_codes.clone()));
    current.insert("preferredCountryCodes".into(), Value::from(m.preferred_country_codes.clone()));
    if let Some(u) = &m.url {
        current.insert("url".into(), Value::from(u.clone()));
    }
    current.extend(m.settings.clone());
    Value::Object(current)
}

#[derive(Deserialize)]
pub struct MessengerRequest {
    messenger: Option<MessengerFields>,
}

fn missing() -> ApiError {
    ApiError::general("[missing]messenger", "The request must contain a [messenger] object.")
}

fn parse_id(id: &str) -> Result<MessengerId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// A messenger as FusionAuth shows it: its settings in the clear beside the common
/// fields, its secrets masked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessengerView {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    channels: Vec<&'static str>,
    priority: i64,
    country_codes: Vec<u16>,
    preferred_country_codes: Vec<u16>,
    insert_instant: i64,
    last_update_instant: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The provider's settings, then its secrets (masked).
    #[serde(flatten)]
    provider: Map<String, Value>,
}

impl MessengerView {
    fn of(s: &AppState, m: &MessengerConfig) -> Result<MessengerView, ApiError> {
        let mut provider = m.settings.clone();
        for (name, masked) in s.messengers.masked_secrets(m)? {
            // The Slack webhook is FusionAuth's `url`.
            let name = if name == "webhookUrl" { "url".to_owned() } else { name };
            provider.insert(name, Value::String(masked));
        }
        Ok(MessengerView {
            id: m.id.to_string(),
            kind: m.kind.as_str(),
            name: m.name.clone(),
            channels: m.channels.iter().map(|c| c.as_str()).collect(),
            priority: m.priority,
            country_codes: m.country_codes.clone(),
            preferred_country_codes: m.preferred_country_codes.clone(),
            insert_instant: m.created_at.millis(),
            last_update_instant: m.updated_at.millis(),
            // A provider field of the same name (Slack's webhook) is the one shown.
            url: m.url.clone().filter(|_| !provider.contains_key("url")),
            provider,
        })
    }
}

#[derive(Serialize)]
pub struct OneMessenger {
    messenger: MessengerView,
}

#[derive(Serialize)]
pub struct Messengers {
    messengers: Vec<MessengerView>,
}

fn one(s: &AppState, m: &MessengerConfig) -> Result<Json<OneMessenger>, ApiError> {
    Ok(Json(OneMessenger { messenger: MessengerView::of(s, m)? }))
}

pub async fn create(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    ApiJson(body): ApiJson<MessengerRequest>,
) -> Result<Json<OneMessenger>, ApiError> {
    let m = s.messengers.create(&admin, None, body.messenger.ok_or_else(missing)?.into(), &ctx, s.clock.now()).await?;
    one(&s, &m)
}

pub async fn create_with_id(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessengerRequest>,
) -> Result<Json<OneMessenger>, ApiError> {
    let id = id.parse().map_err(|_| ApiError::general("[invalid]messengerId", "The id in the URL is not a UUID."))?;
    let m =
        s.messengers.create(&admin, Some(id), body.messenger.ok_or_else(missing)?.into(), &ctx, s.clock.now()).await?;
    one(&s, &m)
}

pub async fn get(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<OneMessenger>, ApiError> {
    one(&s, &s.messengers.get(&admin, parse_id(&id)?).await?)
}

pub async fn list(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Messengers>, ApiError> {
    let all = s.messengers.list(&admin).await?;
    let messengers = all.iter().map(|m| MessengerView::of(&s, m)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Messengers { messengers }))
}

pub async fn replace(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessengerRequest>,
) -> Result<Json<OneMessenger>, ApiError> {
    let m = s
        .messengers
        .replace(&admin, parse_id(&id)?, body.messenger.ok_or_else(missing)?.into(), &ctx, s.clock.now())
        .await?;
    one(&s, &m)
}

pub async fn patch(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<OneMessenger>, ApiError> {
    let patch = body.get("messenger").filter(|m| m.is_object()).ok_or_else(missing)?;
    let id = parse_id(&id)?;
    let mut current = current_fields(&s.messengers.get(&admin, id).await?);
    merge_patch(&mut current, patch);
    let fields: MessengerFields = serde_json::from_value(current).map_err(|e| {
        ApiError::Invalid(ValidationErrors::field(
            "messenger",
            "invalid",
            format!("The [messenger] object is malformed: {e}"),
        ))
    })?;
    let m = s.messengers.replace(&admin, id, fields.into(), &ctx, s.clock.now()).await?;
    one(&s, &m)
}

pub async fn delete(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.messengers.delete(&admin, parse_id(&id)?, &ctx, s.clock.now()).await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestBody {
    mobile_phone: Option<String>,
    message_type: Option<String>,
}

/// What the provider said of a test message.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReply {
    provider: String,
    message_id: Option<String>,
    status: Option<String>,
}

/// `POST /api/messenger/{id}/test` `{mobilePhone}`: a real message through that
/// messenger alone. 200 with the provider's answer, or 400 with its error in words.
pub async fn test(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Json<TestReply>, ApiError> {
    let m = s.messengers.get(&admin, parse_id(&id)?).await?;
    let to = body.mobile_phone.as_deref().map(PhoneNumber::parse);
    let to = match to {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return Err(ApiError::Invalid(ValidationErrors::field(
                "mobilePhone",
                "invalid",
                format!("The [mobilePhone] is {e}."),
            )));
        }
        None => {
            return Err(ApiError::Invalid(ValidationErrors::field(
                "mobilePhone",
                "blank",
                "You must specify the [mobilePhone] to send the test message to.",
            )));
        }
    };
    let channel = match body.message_type.as_deref() {
        None => Channel::Sms,
        Some(t) => Channel::parse(t).ok_or_else(|| {
            ApiError::Invalid(ValidationErrors::field(
                "messageType",
                "invalid",
                "The [messageType] must be SMS or Voice.",
            ))
        })?,
    };
    let msg = s.messengers.test_message(&admin, to, channel, &m.name);
    match s.router.test(m.id, &msg).await {
        Ok(r) => Ok(Json(TestReply { provider: r.provider, message_id: r.message_id, status: r.status })),
        Err(e) => {
            let mut errors = ValidationErrors::default();
            errors.add_general(&format!("[MessengerError]{}", e.code.clone().unwrap_or_default()), e.message.clone());
            Err(ApiError::Invalid(errors))
        }
    }
}

/// One message sent, through whom, and what became of it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    id: String,
    messenger_id: Option<String>,
    provider: String,
    to: String,
    message_type: &'static str,
    purpose: &'static str,
    provider_message_id: Option<String>,
    status: String,
    error_code: Option<String>,
    error_message: Option<String>,
    attempts: u32,
    price: Option<String>,
    price_unit: Option<String>,
    insert_instant: i64,
    last_update_instant: i64,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id.to_string(),
            messenger_id: d.messenger_id.map(|m| m.to_string()),
            provider: d.provider.clone(),
            to: d.to.clone(),
            message_type: d.channel.as_str(),
            purpose: d.purpose.as_str(),
            provider_message_id: d.provider_message_id.clone(),
            status: d.status.clone(),
            error_code: d.error_code.clone(),
            error_message: d.error_message.clone(),
            attempts: d.attempts,
            price: d.price.clone(),
            price_unit: d.price_unit.clone(),
            insert_instant: d.created_at.millis(),
            last_update_instant: d.updated_at.millis(),
        }
    }
}

#[derive(Serialize)]
pub struct Deliveries {
    deliveries: Vec<DeliveryView>,
    total: u64,
}

/// `GET /api/messenger/deliveries`: what was sent, through whom, and what became of it.
pub async fn deliveries(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(p): Query<Page>,
) -> Result<Json<Deliveries>, ApiError> {
    let (list, total) = s.messengers.deliveries(&admin, p.start_row, p.number_of_results).await?;
    Ok(Json(Deliveries { deliveries: list.iter().map(DeliveryView::from).collect(), total }))
}
