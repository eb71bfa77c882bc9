//! Operations: health, metrics and the audit log.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{AdminAuth, Page};

/// Healthy once the server runs (it migrates before it listens) and the database answers.
pub async fn status(State(s): State<AppState>) -> impl IntoResponse {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "status check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"})))
        }
    }
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

/// `GET /api/system/audit-log?startRow=0&numberOfResults=25`, newest first.
pub async fn audit_log(
    State(s): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (records, total) = s.identity.audit_page(&admin, page.start_row, page.number_of_results).await?;
    let logs: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "insertInstant": r.at.millis(),
                "event": r.event,
                "userId": r.user_id,
                // FusionAuth's field for who made the change.
                "insertUser": r.actor,
                "ipAddress": r.ip,
                "outcome": r.outcome,
                "data": r.detail,
            })
        })
        .collect();
    Ok(Json(json!({"auditLogs": logs, "total": total})))
}

/// `GET /api/api-key`: the admin keys, in FusionAuth's shape, never the keys themselves
/// (only their digests are stored).
pub async fn api_keys(State(s): State<AppState>, AdminAuth(_admin): AdminAuth) -> Result<Json<Value>, ApiError> {
    let keys: Vec<Value> = s
        .identity
        .api_keys()
        .await?
        .iter()
        .map(|k| {
            json!({"id": k.id.to_string(), "metaData": {"attributes": {"description": k.description}},
                   "insertInstant": k.created_at.millis()})
        })
        .collect();
    Ok(Json(json!({"apiKeys": keys})))
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
