//! A stand-in for a vendor's API on a local port: it records every request and answers
//! what the test scripted (by path, or in order), optionally after a delay.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The form fields, as sent.
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// HTTP Basic credentials.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let v = self.header("authorization")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(v.strip_prefix("Basic ")?).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: Value) -> Self {
        Reply::new(status, body.to_string())
    }

    pub fn text(status: u16, body: &str) -> Self {
        Reply { headers: vec![("content-type".into(), "text/plain".into())], ..Reply::new(status, body) }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Captured>>,
    by_path: Mutex<HashMap<String, VecDeque<Reply>>>,
    queue: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
}

#[derive(Clone)]
pub struct MockVendor {
    pub url: String,
    inner: Arc<Inner>,
}

impl MockVendor {
    pub async fn start() -> MockVendor {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().fallback(handle).with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockVendor { url: format!("http://{addr}"), inner }
    }

    /// The answer when nothing more specific is scripted.
    pub fn default_reply(&self, reply: Reply) {
        if let Ok(mut d) = self.inner.default.lock() {
            *d = Some(reply);
        }
    }

    /// Answers in this order, whatever the path.
    pub fn then(&self, reply: Reply) {
        if let Ok(mut q) = self.inner.queue.lock() {
            q.push_back(reply);
        }
    }

    /// Answers for one path; the last one repeats.
    pub fn on(&self, path: &str, reply: Reply) {
        if let Ok(mut m) = self.inner.by_path.lock() {
            m.entry(path.to_owned()).or_default().push_back(reply);
        }
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.inner.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn last(&self) -> Option<Captured> {
        self.requests().pop()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if let Ok(mut r) = inner.requests.lock() {
        r.push(Captured {
            method: method.to_string(),
            path: path.clone(),
            query: uri.query().map(str::to_owned),
            headers,
            body: body.to_vec(),
        });
    }
    let reply = {
        let from_path = inner.by_path.lock().ok().and_then(|mut m| {
            let q = m.get_mut(&path)?;
            if q.len() > 1 { q.pop_front() } else { q.front().cloned() }
        });
        from_path
            .or_else(|| inner.queue.lock().ok().and_then(|mut q| q.pop_front()))
            .or_else(|| inner.default.lock().ok().and_then(|d| d.clone()))
            .unwrap_or_else(|| Reply::text(404, "no scripted reply"))
    };
    if !reply.delay.is_zero() {
        // The vendor being slow is the behaviour under test.
        tokio::time::sleep(reply.delay).await;
    }
    let mut response =
        (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), reply.body).into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k), axum::http::HeaderValue::try_from(v)) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}
