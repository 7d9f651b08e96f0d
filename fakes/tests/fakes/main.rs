//! Integration tests of both fakes, driving their routers in-process with `oneshot`.
//!
//! Each test builds its own server and a settable clock, so tests share nothing and need no
//! sockets; `tokio::time` sleeps only where a test asks for latency or a hang.

mod behaviours;
mod log;
mod mcp_server;
mod token_server;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use mcpsim_fakes::Clock;
use tower::ServiceExt as _;

/// A clock the test can move; it starts at `start_ms` after the unix epoch.
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn new(start_ms: u64) -> (TestClock, Clock) {
        let ms = Arc::new(AtomicU64::new(start_ms));
        let reader = ms.clone();
        let clock: Clock = Arc::new(move || Duration::from_millis(reader.load(Ordering::SeqCst)));
        (TestClock(ms), clock)
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// Sends and expects no answer within a short real-time wait.
pub async fn assert_hangs(router: &Router, request: Request<Body>) {
    let answer = tokio::time::timeout(Duration::from_millis(50), send(router, request)).await;
    assert!(answer.is_err(), "expected the request to hang");
}
