//! Operations: health, metrics and the audit log.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, Page};

/// Healthy once the server runs (it migrates before it listens) and the database answers.
pub async fn status(State(s): State<AppState>) -> impl IntoResponse {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(StatusBody { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "status check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(StatusBody { status: "unavailable" }))
        }
    }
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

#[derive(Serialize)]
pub struct StatusBody {
    status: &'static str,
}

/// One audit entry, in FusionAuth's audit-log shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogView {
    id: i64,
    insert_instant: i64,
    event: String,
    user_id: Option<String>,
    /// FusionAuth's field for who made the change.
    insert_user: Option<String>,
    ip_address: Option<String>,
    outcome: String,
    data: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogs {
    audit_logs: Vec<AuditLogView>,
    total: u64,
}

/// `GET /api/system/audit-log?startRow=0&numberOfResults=25`, newest first.
pub async fn audit_log(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(page): Query<Page>,
) -> Result<Json<AuditLogs>, ApiError> {
    let (records, total) = s.identity.audit_page(&admin, page.start_row, page.number_of_results).await?;
    let audit_logs = records
        .into_iter()
        .map(|r| AuditLogView {
            id: r.id,
            insert_instant: r.at.millis(),
            event: r.event,
            user_id: r.user_id,
            insert_user: r.actor,
            ip_address: r.ip,
            outcome: r.outcome,
            data: r.detail,
        })
        .collect();
    Ok(Json(AuditLogs { audit_logs, total }))
}

/// An admin key as FusionAuth lists it: never the key itself.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    id: String,
    meta_data: KeyMetaData,
    insert_instant: i64,
}

#[derive(Serialize)]
pub struct KeyMetaData {
    attributes: KeyAttributes,
}

#[derive(Serialize)]
pub struct KeyAttributes {
    description: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeys {
    api_keys: Vec<ApiKeyView>,
}

/// `GET /api/api-key`: the admin keys, in FusionAuth's shape, never the keys themselves
/// (only their digests are stored).
pub async fn api_keys(State(s): State<AppState>, AdminAuth(_admin): AdminAuth) -> Result<Json<ApiKeys>, ApiError> {
    let api_keys = s
        .identity
        .api_keys()
        .await?
        .into_iter()
        .map(|k| ApiKeyView {
            id: k.id.to_string(),
            meta_data: KeyMetaData { attributes: KeyAttributes { description: k.description } },
            insert_instant: k.created_at.millis(),
        })
        .collect();
    Ok(Json(ApiKeys { api_keys }))
}

/// `DELETE /api/api-key/{id}`: revokes a key at once; the last one cannot go.
pub async fn revoke_api_key(
    State(s): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    crate::extract::Caller(ctx): crate::extract::Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    match s.identity.revoke_api_key(id, &ctx, s.clock.now()).await? {
        tessera_core::service::RevokeKey::Revoked => Ok(StatusCode::OK),
        tessera_core::service::RevokeKey::NotFound => Err(ApiError::NotFound),
        tessera_core::service::RevokeKey::LastKey => {
            Err(ApiError::general("[LastKey]", "This is the only admin key; create another before revoking it."))
        }
    }
}
