//! No NUL character gets past the edge. PostgreSQL refuses it in text (so unauthenticated
//! input became a 503 and an ERROR log), and no login id, code, name or sid holds one,
//! so a request carrying one anywhere (path, query, body, Basic credentials) is a 400
//! before any handler runs.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::error::ApiError;

/// Where a NUL was found, for the error message.
fn nul_in(req: &Request, body: &[u8]) -> Option<&'static str> {
    if percent_nul(req.uri().path().as_bytes()) {
        return Some("the path");
    }
    if req.uri().query().is_some_and(|q| percent_nul(q.as_bytes())) {
        return Some("the query");
    }
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok());
    if basic.is_some_and(|b| b.contains(&0) || percent_nul(&b)) {
        return Some("the credentials");
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    let in_body = body.contains(&0) || if form { percent_nul(body) } else { json_nul(body) };
    in_body.then_some("the body")
}

/// `%00` (as a form body, a query or a path encodes NUL).
fn percent_nul(b: &[u8]) -> bool {
    b.contains(&0) || b.windows(3).any(|w| w == b"%00")
}

/// A JSON `\u0000` escape: a backslash that is itself not escaped, then `u0000`.
fn json_nul(b: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\\' {
            backslashes += 1;
            continue;
        }
        if backslashes % 2 == 1 && c == b'u' && b.get(i + 1..i + 5) == Some(b"0000") {
            return true;
        }
        backslashes = 0;
    }
    false
}

/// The 400, in the shape of the API the route belongs to (Twilio's under `/v2`;
/// FusionAuth's elsewhere, which the hosted pages turn into words).
fn refusal(path: &str, place: &str) -> Response {
    let message = format!("The request holds a NUL character in {place}.");
    if path.starts_with("/v2/") {
        let body = json!({
            "code": 60200,
            "message": format!("Invalid parameter: {message}"),
            "more_info": "https://www.twilio.com/docs/errors/60200",
            "status": 400,
        });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    ApiError::general("[invalidCharacter]", message).into_response()
}

pub async fn refuse_nul(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    // The body limit layer outside this one bounds what is read here.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let req = Request::from_parts(parts, Body::from(bytes.clone()));
    match nul_in(&req, &bytes) {
        Some(place) => refusal(req.uri().path(), place),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_are_told_from_escaped_backslashes() {
        assert!(json_nul(br#"{"a": "x\u0000"}"#));
        assert!(json_nul(br#"{"a": "x\\\u0000"}"#), "an escaped backslash, then the escape");
        assert!(!json_nul(br#"{"a": "x\\u0000"}"#), "a backslash and the text u0000");
        assert!(!json_nul(br#"{"a": "x\u0001"}"#));
        assert!(percent_nul(b"a=1%00") && !percent_nul(b"a=%2500"));
    }
}
