//! `fetch` for actions: one call at a time from the engine's thread, through the
//! outbound guard (no private or loopback address unless allow-listed), with a timeout
//! that never outlasts the execution's own.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tessera_providers::outbound::Outbound;

/// The most of an answer's body an action is given.
const BODY_LIMIT: usize = 1024 * 1024;
/// The longest one call may take, whatever time the execution has left.
const CALL_LIMIT: Duration = Duration::from_secs(10);

pub(crate) struct Http {
    outbound: Outbound,
    client: reqwest::Client,
    /// Drives the calls: the engine's threads are not the server's runtime's.
    runtime: tokio::runtime::Runtime,
}

impl Http {
    pub(crate) fn new(outbound: Outbound) -> Result<Http, String> {
        let client = outbound.client()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        Ok(Http { outbound, client, runtime })
    }

    /// Makes the call a `fetch` asked for (`{url, method, headers, body}`) and answers
    /// `{status, statusText, headers, body, url}`, or why it could not be made.
    pub(crate) fn fetch(&self, request: &str, time_left: Duration) -> Result<String, String> {
        let request: Value = serde_json::from_str(request).map_err(|e| format!("fetch: {e}"))?;
        let url = request["url"].as_str().unwrap_or_default().to_owned();
        let method = reqwest::Method::from_bytes(request["method"].as_str().unwrap_or("GET").as_bytes())
            .map_err(|_| "fetch: that method is not valid".to_owned())?;
        let timeout = time_left.min(CALL_LIMIT);
        self.runtime.block_on(async {
            self.outbound.check(&url).await?;
            let mut call = self.client.request(method, &url).timeout(timeout);
            if let Some(headers) = request["headers"].as_object() {
                for (k, v) in headers {
                    call = call.header(k.as_str(), v.as_str().unwrap_or_default());
                }
            }
            if let Some(body) = request["body"].as_str() {
                call = call.body(body.to_owned());
            }
            let response = call.send().await.map_err(|e| format!("fetch failed: {}", e.without_url()))?;
            let status = response.status();
            let mut headers = Map::new();
            for (k, v) in response.headers() {
                headers
                    .insert(k.as_str().to_owned(), Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()));
            }
            let mut body = Vec::new();
            let mut response = response;
            while let Some(chunk) = response.chunk().await.map_err(|e| format!("fetch failed: {}", e.without_url()))? {
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(format!("fetch: the answer from {url} is larger than {BODY_LIMIT} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            let answer = json!({
                "status": status.as_u16(),
                "statusText": status.canonical_reason().unwrap_or(""),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
                "url": url,
            });
            Ok(answer.to_string())
        })
    }
}
