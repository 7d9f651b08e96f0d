//! The store host: a small versioned row store over HTTP, standing in for the
//! database that a control plane writes and data planes sync from.
//!
//! Invariants: a write is applied before it is acknowledged, and the state
//! lives in the [`StoreServer`] value, not in its router, so a host bounced
//! with a new router keeps every acknowledged write, as a disk would. Every
//! write takes the next value of one global version counter, so a reader can
//! tell new from old. Rows are opaque JSON: the store never decodes them, so
//! a row written by a newer gateway is kept and served like any other.
//!
//! API:
//! - `GET /rows` → `{"version": N, "rows": [{"server_id", "version", "row"}]}`
//! - `PUT /rows/{id}` body = the row → `{"version"}`; with `?if_absent=true`
//!   an existing id is refused with 409 (a create that lost a race).
//! - `DELETE /rows/{id}` → `{"version"}`, or 404 when there is no such row.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sleep_ms;

/// How the store behaves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreServerConfig {
    /// Sleep before answering any request (a write is applied, and a read
    /// takes its snapshot, when the sleep ends).
    pub latency_ms: u64,
    /// How long the answer to `GET /rows` takes after its snapshot was
    /// taken: a snapshot in flight this long is older than every write the
    /// store applies meanwhile.
    #[serde(skip_serializing_if = "is_zero")]
    pub snapshot_delay_ms: u64,
    /// Rows present before anything is written (for example a row written by
    /// a newer gateway version that this one cannot decode).
    pub rows: BTreeMap<String, Value>,
}

/// One stored row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRow {
    pub server_id: String,
    pub version: u64,
    pub row: Value,
}

/// What the store served.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoreStats {
    pub reads: u64,
    pub writes: u64,
    pub deletes: u64,
    pub conflicts: u64,
}

#[derive(Default)]
struct Inner {
    rows: BTreeMap<String, StoredRow>,
    /// id -> the unique key its row claims
    unique: BTreeMap<String, String>,
    version: u64,
    stats: StoreStats,
}

/// The store: cheap to clone, every clone and every router shares one state.
#[derive(Clone)]
pub struct StoreServer {
    config: Arc<StoreServerConfig>,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Deserialize)]
struct PutQuery {
    #[serde(default)]
    if_absent: bool,
    /// A unique key the row claims (a unique index on the server name).
    #[serde(default)]
    unique: Option<String>,
}

fn is_zero(ms: &u64) -> bool {
    *ms == 0
}

impl StoreServer {
    pub fn new(config: StoreServerConfig) -> Self {
        let mut inner = Inner::default();
        for (id, row) in &config.rows {
            inner.version += 1;
            inner.rows.insert(
                id.clone(),
                StoredRow {
                    server_id: id.clone(),
                    version: inner.version,
                    row: row.clone(),
                },
            );
        }
        StoreServer {
            config: Arc::new(config),
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// A router over this store's state; a restarted host builds a new one.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/rows", get(list))
            .route("/rows/{id}", put(write).delete(remove))
            .with_state(self.clone())
    }

    pub fn stats(&self) -> StoreStats {
        self.lock().stats.clone()
    }

    /// Every row, in id order: what a reader would get now.
    pub fn rows(&self) -> Vec<StoredRow> {
        self.lock().rows.values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// 409, saying whether the id or the unique key was taken.
fn conflict(what: &str, message: &str) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"error": message, "conflict": what})),
    )
        .into_response()
}

async fn list(State(store): State<StoreServer>) -> Response {
    sleep_ms(store.config.latency_ms).await;
    let snapshot = {
        let mut inner = store.lock();
        inner.stats.reads += 1;
        let rows: Vec<&StoredRow> = inner.rows.values().collect();
        json!({"version": inner.version, "rows": rows})
    };
    sleep_ms(store.config.snapshot_delay_ms).await;
    Json(snapshot).into_response()
}

async fn write(
    State(store): State<StoreServer>,
    Path(id): Path<String>,
    Query(query): Query<PutQuery>,
    body: Bytes,
) -> Response {
    sleep_ms(store.config.latency_ms).await;
    let Ok(row) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the row is not JSON");
    };
    let mut inner = store.lock();
    if query.if_absent && inner.rows.contains_key(&id) {
        inner.stats.conflicts += 1;
        return conflict("id", "a row with this id exists");
    }
    if let Some(key) = &query.unique {
        if inner.unique.iter().any(|(i, k)| i != &id && k == key) {
            inner.stats.conflicts += 1;
            return conflict("unique", "another row holds this unique key");
        }
    }
    match query.unique {
        Some(key) => inner.unique.insert(id.clone(), key),
        None => inner.unique.remove(&id),
    };
    inner.version += 1;
    inner.stats.writes += 1;
    let version = inner.version;
    inner.rows.insert(
        id.clone(),
        StoredRow {
            server_id: id,
            version,
            row,
        },
    );
    Json(json!({"version": version})).into_response()
}

async fn remove(State(store): State<StoreServer>, Path(id): Path<String>) -> Response {
    sleep_ms(store.config.latency_ms).await;
    let mut inner = store.lock();
    if inner.rows.remove(&id).is_none() {
        return error(StatusCode::NOT_FOUND, "no row with this id");
    }
    inner.unique.remove(&id);
    inner.version += 1;
    inner.stats.deletes += 1;
    Json(json!({"version": inner.version})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn writes_are_versioned_and_survive_a_new_router() {
        let store = StoreServer::new(StoreServerConfig::default());
        let router = store.router();
        assert_eq!(
            call(&router, "PUT", "/rows/a", r#"{"x": 1}"#).await,
            (200, json!({"version": 1}))
        );
        assert_eq!(
            call(&router, "PUT", "/rows/b", r#"{"x": 2}"#).await.1,
            json!({"version": 2})
        );
        assert_eq!(
            call(&router, "PUT", "/rows/a", r#"{"x": 3}"#).await.1,
            json!({"version": 3})
        );
        // A restarted host: same state, new router.
        let (status, listed) = call(&store.router(), "GET", "/rows", "").await;
        assert_eq!(status, 200);
        assert_eq!(listed["version"], 3);
        assert_eq!(
            listed["rows"][0],
            json!({"server_id": "a", "version": 3, "row": {"x": 3}})
        );
        assert_eq!(listed["rows"][1]["version"], 2);
    }

    #[tokio::test]
    async fn creates_conflict_deletes_bump_the_version_and_bad_rows_are_refused() {
        let store = StoreServer::new(StoreServerConfig {
            rows: BTreeMap::from([("old".to_string(), json!({"schema": 99}))]),
            ..StoreServerConfig::default()
        });
        let router = store.router();
        assert_eq!(
            call(&router, "PUT", "/rows/old?if_absent=true", "{}")
                .await
                .0,
            409
        );
        assert_eq!(
            call(&router, "PUT", "/rows/new?if_absent=true", "{}")
                .await
                .0,
            200
        );
        assert_eq!(call(&router, "PUT", "/rows/new", "{not json").await.0, 400);
        assert_eq!(
            call(&router, "DELETE", "/rows/old", "").await,
            (200, json!({"version": 3}))
        );
        assert_eq!(call(&router, "DELETE", "/rows/old", "").await.0, 404);
        assert_eq!(store.rows().len(), 1);
        assert_eq!(
            store.stats(),
            StoreStats {
                reads: 0,
                writes: 1,
                deletes: 1,
                conflicts: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_in_flight_misses_the_writes_that_land_meanwhile() {
        let store = StoreServer::new(StoreServerConfig {
            latency_ms: 10,
            snapshot_delay_ms: 100,
            ..StoreServerConfig::default()
        });
        let router = store.router();
        call(&router, "PUT", "/rows/a", r#"{"x": 1}"#).await;
        let read = tokio::spawn({
            let router = router.clone();
            async move { call(&router, "GET", "/rows", "").await }
        });
        // The read takes its snapshot 10 ms after it arrives and answers
        // 100 ms later; the write lands in between.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            call(&router, "PUT", "/rows/a", r#"{"x": 2}"#).await.1,
            json!({"version": 2})
        );
        let (status, snapshot) = read.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(snapshot["version"], 1);
        assert_eq!(snapshot["rows"][0]["row"], json!({"x": 1}));
        assert_eq!(store.rows()[0].row, json!({"x": 2}));
    }
}
