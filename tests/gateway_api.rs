//! The management API refuses bad registrations with a 4xx that says what is
//! wrong, leaves the registry as it was, and never echoes a secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use mcpsim_gateway::http_client::{BoxFuture, HttpClient, HttpError};
use mcpsim_gateway::store::{Snapshot, Store, StoreError};
use mcpsim_gateway::{ConfigFile, Deps, Gateway, GatewaySettings, MemorySink, SystemClock};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Upstreams are never reached in these tests: the gateway is not started.
struct Unreachable;

impl HttpClient for Unreachable {
    fn send(
        &self,
        _: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        Box::pin(async { Err(HttpError::Connect("test".into())) })
    }
}

fn gateway() -> axum::Router {
    let config: ConfigFile = serde_json::from_value(json!({
        "mcp_servers": {"weather": {"url": "http://weather/mcp"}}
    }))
    .unwrap();
    let deps = Deps {
        http: Arc::new(Unreachable),
        clock: Arc::new(SystemClock),
        events: Arc::new(MemorySink::default()),
        store: None,
    };
    Gateway::new(GatewaySettings::default(), deps, &config, &BTreeMap::new())
        .unwrap()
        .router()
}

async fn call(router: &axum::Router, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

const SECRET: &str = "sup3r-secret-value";

#[tokio::test]
async fn bad_registrations_are_refused_and_change_nothing() {
    let router = gateway();
    let good = json!({"server_id": "db1", "server_name": "db", "transport": "http", "url": "http://db/mcp",
        "auth_type": "oauth2", "token_url": "http://auth/token",
        "credentials": {"client_id": "id", "client_secret": SECRET}});
    let (status, row) = call(&router, "POST", "/v1/mcp/server", &good.to_string()).await;
    assert_eq!(status, 201, "{row}");
    assert_eq!(row["oauth2_flow"], "client_credentials");
    assert_eq!(row["status"], "unknown");
    assert!(!row.to_string().contains(SECRET), "{row}");
    let (_, before) = call(&router, "GET", "/v1/mcp/server", "").await;

    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 422, "malformed JSON"),
        ("[1, 2]".into(), 422, "JSON object"),
        (json!({"server_name": "a", "transport": "http"}).to_string(), 422, "url: is required"),
        (json!({"server_name": "a", "transport": "smoke", "url": "http://a/"}).to_string(), 422, "transport"),
        (json!({"server_name": "a", "transport": "http", "url": "http://a/", "auth_type": "psychic"}).to_string(), 422, "auth_type"),
        (
            json!({"server_name": "a", "transport": "http", "url": "http://a/", "auth_type": "oauth2",
                "oauth2_flow": "client_credentials", "credentials": {"client_secret": SECRET}})
            .to_string(),
            422,
            "token_url",
        ),
        (json!({"server_name": "my-server", "transport": "http", "url": "http://a/"}).to_string(), 422, "'-'"),
        (json!({"server_name": "a", "alias": "x-y", "transport": "http", "url": "http://a/"}).to_string(), 422, "alias"),
        (json!({"server_name": "a", "transport": "http", "url": "not a url"}).to_string(), 422, "url"),
        (json!({"server_name": "a", "url": "http://a/", "credentials": SECRET}).to_string(), 422, "credentials"),
        (
            json!({"server_id": "db1", "server_name": "other", "transport": "http", "url": "http://a/"}).to_string(),
            400,
            "already exists",
        ),
        (json!({"server_name": "db", "transport": "http", "url": "http://a/"}).to_string(), 400, "alias"),
    ];
    for (body, expected, says) in cases {
        let (status, answer) = call(&router, "POST", "/v1/mcp/server", &body).await;
        let error = answer["detail"]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(status, expected, "{body} -> {answer}");
        assert!(
            error.contains(says),
            "{body}: {error:?} should mention {says:?}"
        );
        assert!(!error.contains(SECRET), "{error}");
        let (_, after) = call(&router, "GET", "/v1/mcp/server", "").await;
        assert_eq!(before, after, "the registry changed after {body}");
    }
}

#[tokio::test]
async fn updates_deletes_and_reads_of_unknown_or_config_servers_are_refused() {
    let router = gateway();
    let (_, rows) = call(&router, "GET", "/v1/mcp/server", "").await;
    let config_id = rows[0]["server_id"].as_str().unwrap().to_string();
    assert_eq!(rows[0]["source"], "config");

    let (status, _) = call(&router, "GET", "/v1/mcp/server/nope", "").await;
    assert_eq!(status, 404);
    let (status, _) = call(&router, "DELETE", "/v1/mcp/server/nope", "").await;
    assert_eq!(status, 404);
    let (status, _) = call(&router, "PUT", "/v1/mcp/server", r#"{"server_id": "nope"}"#).await;
    assert_eq!(status, 404);
    let (status, _) = call(&router, "PUT", "/v1/mcp/server", r#"{"url": "http://x/"}"#).await;
    assert_eq!(status, 422);
    let (status, answer) = call(
        &router,
        "DELETE",
        &format!("/v1/mcp/server/{config_id}"),
        "",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = call(&router, "GET", "/v1/mcp/tools?server_id=nope", "").await;
    assert_eq!(status, 404);

    // A bad update leaves the stored server as it was.
    let body =
        json!({"server_id": "s1", "server_name": "s1", "transport": "http", "url": "http://s/"});
    assert_eq!(
        call(&router, "POST", "/v1/mcp/server", &body.to_string())
            .await
            .0,
        201
    );
    let (_, before) = call(&router, "GET", "/v1/mcp/server/s1", "").await;
    let (status, _) = call(
        &router,
        "PUT",
        "/v1/mcp/server",
        r#"{"server_id": "s1", "transport": "pigeon"}"#,
    )
    .await;
    assert_eq!(status, 422);
    let (_, after) = call(&router, "GET", "/v1/mcp/server/s1", "").await;
    assert_eq!(before, after);
    let (status, row) = call(
        &router,
        "PUT",
        "/v1/mcp/server",
        r#"{"server_id": "s1", "url": "http://t/"}"#,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(row["url"], "http://t/");
    let (status, _) = call(&router, "DELETE", "/v1/mcp/server/s1", "").await;
    assert_eq!(status, 202);
    let (status, _) = call(&router, "GET", "/v1/mcp/server/s1", "").await;
    assert_eq!(status, 404);
}

/// A store whose every call fails with the same error: down
/// (`Unavailable`), or never answering (`NoAnswer`).
struct FailingStore(StoreError);

impl Store for FailingStore {
    fn put(
        &self,
        _: &str,
        _: Value,
        _: bool,
        _: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let error = self.0.clone();
        Box::pin(async move { Err(error) })
    }
    fn delete(&self, _: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let error = self.0.clone();
        Box::pin(async move { Err(error) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>> {
        let error = self.0.clone();
        Box::pin(async move { Err(error) })
    }
}

/// A gateway in front of a store that fails as given.
fn behind_failing_store(error: StoreError) -> axum::Router {
    let deps = Deps {
        http: Arc::new(Unreachable),
        clock: Arc::new(SystemClock),
        events: Arc::new(MemorySink::default()),
        store: Some(Arc::new(FailingStore(error))),
    };
    Gateway::new(
        GatewaySettings::default(),
        deps,
        &ConfigFile::default(),
        &BTreeMap::new(),
    )
    .unwrap()
    .router()
}

#[tokio::test]
async fn a_write_the_store_never_answered_is_a_504_that_says_it_may_have_happened() {
    let router = behind_failing_store(StoreError::NoAnswer("connection broke".into()));
    let body = json!({"server_name": "db", "transport": "http", "url": "http://db/mcp"});
    let (status, answer) = call(&router, "POST", "/v1/mcp/server", &body.to_string()).await;
    assert_eq!(status, 504, "{answer}");
    let error = answer["detail"]["error"].as_str().unwrap();
    assert!(error.contains("may or may not"), "{error}");
    let (_, rows) = call(&router, "GET", "/v1/mcp/server", "").await;
    assert_eq!(rows, json!([]));
}

#[tokio::test]
async fn a_write_the_store_did_not_acknowledge_is_refused_with_503_and_changes_nothing() {
    let router = behind_failing_store(StoreError::Unavailable("connection refused".into()));
    let body = json!({"server_name": "db", "transport": "http", "url": "http://db/mcp",
        "credentials": {"auth_value": SECRET}, "auth_type": "bearer_token"});
    let (status, answer) = call(&router, "POST", "/v1/mcp/server", &body.to_string()).await;
    assert_eq!(status, 503, "{answer}");
    let error = answer["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains("store unavailable") && error.contains("nothing was changed"),
        "{error}"
    );
    assert!(!error.contains(SECRET));
    let (_, rows) = call(&router, "GET", "/v1/mcp/server", "").await;
    assert_eq!(rows, json!([]));
}
