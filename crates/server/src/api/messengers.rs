//! FusionAuth-style messenger configuration: `/api/messenger[/{id}]`, a "send test
//! message" endpoint, and the delivery records.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::ids::MessengerId;
use tessera_core::messaging::Channel;
use tessera_core::messengers::{MessengerConfig, MessengerInput};
use tessera_core::phone::PhoneNumber;
use tessera_core::validation::ValidationErrors;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, ApiJson, Caller, Page};

#[derive(Deserialize)]
pub struct MessengerRequest {
    messenger: Option<MessengerInput>,
}

fn missing() -> ApiError {
    ApiError::general("[missing]messenger", "The request must contain a [messenger] object.")
}

fn parse_id(id: &str) -> Result<MessengerId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

fn one(s: &AppState, m: &MessengerConfig) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"messenger": s.messengers.view(m)?})))
}

pub async fn create(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    ApiJson(body): ApiJson<MessengerRequest>,
) -> Result<Json<Value>, ApiError> {
    let m = s.messengers.create(&admin, None, body.messenger.ok_or_else(missing)?, &ctx, s.clock.now()).await?;
    one(&s, &m)
}

pub async fn create_with_id(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessengerRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = id.parse().map_err(|_| ApiError::general("[invalid]messengerId", "The id in the URL is not a UUID."))?;
    let m = s.messengers.create(&admin, Some(id), body.messenger.ok_or_else(missing)?, &ctx, s.clock.now()).await?;
    one(&s, &m)
}

pub async fn get(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &s.messengers.get(&admin, parse_id(&id)?).await?)
}

pub async fn list(State(s): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Json<Value>, ApiError> {
    let all = s.messengers.list(&admin).await?;
    let views = all.iter().map(|m| s.messengers.view(m)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({"messengers": views})))
}

pub async fn replace(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessengerRequest>,
) -> Result<Json<Value>, ApiError> {
    let m =
        s.messengers.replace(&admin, parse_id(&id)?, body.messenger.ok_or_else(missing)?, &ctx, s.clock.now()).await?;
    one(&s, &m)
}

pub async fn patch(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let patch = body.get("messenger").filter(|m| m.is_object()).ok_or_else(missing)?;
    let m = s.messengers.patch(&admin, parse_id(&id)?, patch, &ctx, s.clock.now()).await?;
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

/// `POST /api/messenger/{id}/test` `{mobilePhone}`: a real message through that
/// messenger alone. 200 with the provider's answer, or 400 with its error in words.
pub async fn test(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Json<Value>, ApiError> {
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
        Ok(r) => Ok(Json(json!({"provider": r.provider, "messageId": r.message_id, "status": r.status}))),
        Err(e) => {
            let mut errors = ValidationErrors::default();
            errors.add_general(&format!("[MessengerError]{}", e.code.clone().unwrap_or_default()), e.message.clone());
            Err(ApiError::Invalid(errors))
        }
    }
}

/// `GET /api/messenger/deliveries`: what was sent, through whom, and what became of it.
pub async fn deliveries(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (list, total) = s.messengers.deliveries(&admin, p.start_row, p.number_of_results).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|d| {
            json!({
                "id": d.id.to_string(),
                "messengerId": d.messenger_id.map(|m| m.to_string()),
                "provider": d.provider,
                "to": d.to,
                "messageType": d.channel.as_str(),
                "purpose": d.purpose.as_str(),
                "providerMessageId": d.provider_message_id,
                "status": d.status,
                "errorCode": d.error_code,
                "errorMessage": d.error_message,
                "attempts": d.attempts,
                "price": d.price,
                "priceUnit": d.price_unit,
                "insertInstant": d.created_at.millis(),
                "lastUpdateInstant": d.updated_at.millis(),
            })
        })
        .collect();
    Ok(Json(json!({"deliveries": items, "total": total})))
}
