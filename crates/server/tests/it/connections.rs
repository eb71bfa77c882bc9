//! Slow and idle clients, over raw TCP: headers have a deadline, idle keep-alive
//! connections another, and only so many connections are served at once.

use std::time::Duration;

use tessera_server::connections::ConnectionLimits;
use tessera_testkit::{TestApp, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any test here waits for the server to act.
const DEADLINE: Duration = Duration::from_secs(15);
const REQUEST: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: tessera\r\n\r\n";
const HALF_A_REQUEST: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: tessera\r\n";

async fn with_limits(header_read_secs: u64, idle_secs: u64, max_connections: usize) -> TestApp {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(header_read_secs),
        idle_timeout: Duration::from_secs(idle_secs),
        max_connections,
    };
    app().configure(move |c| c.connections = limits).spawn().await
}

async fn connect(app: &TestApp, first_bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(first_bytes).await.unwrap();
    s
}

/// The status line of one whole response, or `None` when the server closed the
/// connection first. Gives up (failing the test) after `DEADLINE`.
async fn response(s: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head.lines().next().map(str::to_owned);
            }
        }
        match tokio::time::timeout(DEADLINE, s.read(&mut buf)).await.expect("the server answered or closed in time") {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server closes this connection (within `DEADLINE`) without answering.
async fn closed(s: &mut TcpStream) -> bool {
    response(s).await.is_none()
}

#[tokio::test]
async fn unfinished_headers_are_cut_off_while_idle_keep_alive_stays() {
    let app = with_limits(1, 30, 64).await;
    let mut kept = connect(&app, REQUEST).await;
    assert_eq!(response(&mut kept).await.as_deref(), Some("HTTP/1.1 200 OK"));
    let mut slow = connect(&app, HALF_A_REQUEST).await;
    assert!(closed(&mut slow).await, "headers unfinished after the header deadline");
    kept.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut kept).await.as_deref(), Some("HTTP/1.1 200 OK"), "the idle connection outlived it");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_while_slow_headers_may_finish() {
    let app = with_limits(30, 1, 64).await;
    let mut slow = connect(&app, HALF_A_REQUEST).await;
    let mut idle = connect(&app, REQUEST).await;
    assert_eq!(response(&mut idle).await.as_deref(), Some("HTTP/1.1 200 OK"));
    assert!(closed(&mut idle).await, "idle past the idle deadline");
    slow.write_all(b"\r\n").await.unwrap();
    assert_eq!(response(&mut slow).await.as_deref(), Some("HTTP/1.1 200 OK"), "headers within their deadline");
}

#[tokio::test]
async fn half_open_connections_beyond_the_limit_do_not_stop_the_server() {
    let app = with_limits(1, 30, 8).await;
    let mut slow = Vec::new();
    for _ in 0..40 {
        slow.push(connect(&app, HALF_A_REQUEST).await);
    }
    let mut honest = connect(&app, REQUEST).await;
    assert_eq!(response(&mut honest).await.as_deref(), Some("HTTP/1.1 200 OK"), "answered once slow ones are cut");
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(closed(s).await, "slow connection {i} was closed");
    }
}

#[tokio::test]
async fn no_more_than_the_limit_are_served_at_once() {
    let app = with_limits(30, 30, 4).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&app, HALF_A_REQUEST).await);
    }
    let mut fifth = connect(&app, REQUEST).await;
    // An absence, so it needs a wait: half a second in which the fifth must not be served.
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), fifth.read(&mut buf)).await;
    assert!(early.is_err(), "the fifth connection was served while four were open: {early:?}");
    drop(held.pop());
    assert_eq!(response(&mut fifth).await.as_deref(), Some("HTTP/1.1 200 OK"), "served once one closed");
}
