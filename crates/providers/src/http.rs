//! What every vendor client shares: one HTTP client, and how failures are classified.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tessera_core::messaging::MessengerError;

/// One client for all vendors (connection pools are per host inside it).
pub fn client() -> Result<reqwest::Client, String> {
    crate::install_tls();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// A transport failure: timeouts and refused connections may pass, so retry.
/// A transport failure in words, without the URL reqwest puts in its own message: a
/// URL may carry a token (a generic endpoint's `?key=`) or, in a flow, a forwarded code,
/// and this text is logged and stored.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut causes = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        causes.push(cause.to_string());
        next = cause.source();
    }
    let what = if e.is_connect() { "could not connect" } else { "request failed" };
    if causes.is_empty() { what.to_owned() } else { format!("{what}: {}", causes.join(": ")) }
}

pub fn transport(provider: &str, e: &reqwest::Error) -> MessengerError {
    let what = describe(e);
    MessengerError::retryable(provider, None, what)
}

pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// 429 and 5xx can pass on their own; other 4xx will not.
pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Builds the error for a non-success answer.
pub fn status_error(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    code: Option<String>,
    message: String,
) -> MessengerError {
    MessengerError {
        provider: provider.to_owned(),
        code: code.or_else(|| Some(status.as_u16().to_string())),
        message,
        retryable: is_retryable(status),
        retry_after: if status == StatusCode::TOO_MANY_REQUESTS { retry_after(headers) } else { None },
    }
}
