//! Where REST registrations are persisted: the storage trait and its rows.
//!
//! A row holds the REST body as the operator sent it (so the one
//! normalisation in `spec.rs` runs again on read, whatever version wrote
//! it) and a schema number. A row this gateway cannot decode, for example
//! one written by a newer version, is reported with a secret-free reason and
//! skipped by the reader; it never stops the others.
//!
//! The registry writes REST registrations here before acknowledging them
//! and syncs from here at start and on an interval.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::defects::Defects;
use crate::http_client::{BoxFuture, HttpClient, HttpError};
use crate::spec::{self, ServerSpec};

/// The row layout this gateway writes and reads.
pub const ROW_SCHEMA: u64 = 1;

/// One row as the store returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRow {
    pub server_id: String,
    pub version: u64,
    pub row: Value,
}

/// Every row at one moment, with the store's version at that moment: a
/// reader can tell which of its own writes the snapshot already saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    pub rows: Vec<StoredRow>,
}

/// Why the store did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Not reachable, or it refused the write: it did not happen.
    Unavailable(String),
    /// Sent, but no answer came (in time, or at all): the store may have
    /// done the write or not.
    NoAnswer(String),
    /// `if_absent` and the id exists.
    Conflict,
    /// Another row holds the unique key (the alias) this write claims.
    Taken,
    NotFound,
    /// It answered something that is not the store's protocol.
    Malformed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
            StoreError::NoAnswer(why) => write!(f, "store did not answer: {why}"),
            StoreError::Conflict => write!(f, "store: the id already exists"),
            StoreError::Taken => write!(f, "store: another row holds this alias"),
            StoreError::NotFound => write!(f, "store: no such row"),
            StoreError::Malformed(why) => write!(f, "store answered something unexpected: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Durable storage of REST registrations. Versions grow with every write.
pub trait Store: Send + Sync + 'static {
    /// Writes a row; with `if_absent`, refuses an existing id; with
    /// `unique`, refuses a key another row holds (a unique index, as on
    /// LiteLLM's server name). Returns the write's version once the store
    /// has acknowledged it.
    fn put(
        &self,
        id: &str,
        row: Value,
        if_absent: bool,
        unique: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn delete(&self, id: &str) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Every row, in id order, with the version the store was at.
    fn list(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>>;
}

/// The row for a REST body.
pub fn encode_row(body: &Value) -> Value {
    json!({"schema": ROW_SCHEMA, "body": body})
}

/// The server a row describes, or why it cannot be read. The reason names
/// fields, never values.
pub fn decode_row(row: &StoredRow) -> Result<(ServerSpec, Value), String> {
    decode_row_with(row, Defects::none())
}

/// [`decode_row`], with the defects of the REST/database path switched on.
pub(crate) fn decode_row_with(
    row: &StoredRow,
    defects: Defects,
) -> Result<(ServerSpec, Value), String> {
    match row.row.get("schema").and_then(Value::as_u64) {
        Some(ROW_SCHEMA) => {}
        Some(other) => {
            return Err(format!(
                "row schema {other} is not one this gateway reads (it reads {ROW_SCHEMA})"
            ))
        }
        None => return Err("row has no schema number".to_string()),
    }
    let body = row
        .row
        .get("body")
        .filter(|b| b.is_object())
        .ok_or_else(|| "row has no body object".to_string())?;
    let bytes = body.to_string().into_bytes();
    let parsed = spec::parse_rest_body(&bytes).map_err(|e| format!("row body: {e}"))?;
    let spec = spec::from_rest_with(&parsed, || row.server_id.clone(), defects)
        .map_err(|e| format!("row body: {e}"))?;
    if spec.id != row.server_id {
        return Err("row body names another server_id than its key".to_string());
    }
    Ok((spec, body.clone()))
}

/// The store host over HTTP (see `mcpsim_fakes::store_server` for the API).
pub struct HttpStore {
    http: Arc<dyn HttpClient>,
    base_url: String,
}

impl HttpStore {
    /// `base_url` without a trailing slash, e.g. `http://store`.
    pub fn new(http: Arc<dyn HttpClient>, base_url: impl Into<String>) -> Self {
        HttpStore {
            http,
            base_url: base_url.into(),
        }
    }

    async fn exchange(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, StoreError> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e: HttpError| match e {
                HttpError::Connect(_) | HttpError::Request(_) => {
                    StoreError::Unavailable(e.to_string())
                }
                // The request may have reached the store.
                HttpError::Io(_) => StoreError::NoAnswer(e.to_string()),
            })?;
        match response.status().as_u16() {
            200 => serde_json::from_slice(response.body())
                .map_err(|_| StoreError::Malformed("body is not JSON".into())),
            404 => Err(StoreError::NotFound),
            409 => {
                let answer: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
                if answer["conflict"] == "unique" {
                    Err(StoreError::Taken)
                } else {
                    Err(StoreError::Conflict)
                }
            }
            status => Err(StoreError::Unavailable(format!("HTTP {status}"))),
        }
    }
}

fn version_of(answer: &Value) -> Result<u64, StoreError> {
    answer["version"]
        .as_u64()
        .ok_or_else(|| StoreError::Malformed("no version in the answer".into()))
}

/// A query value: every byte but ASCII letters and digits as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Ids go into a path segment; keep them to the characters `spec` allows.
fn path_id(id: &str) -> Result<&str, StoreError> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(StoreError::Malformed("server id is not path-safe".into()))
    }
}

impl Store for HttpStore {
    fn put(
        &self,
        id: &str,
        row: Value,
        if_absent: bool,
        unique: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let id = id.to_string();
        let unique = unique.map(str::to_string);
        Box::pin(async move {
            let mut query = vec![];
            if if_absent {
                query.push("if_absent=true".to_string());
            }
            if let Some(key) = &unique {
                query.push(format!("unique={}", percent_encode(key)));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            let path = format!("/rows/{}{query}", path_id(&id)?);
            version_of(&self.exchange(http::Method::PUT, &path, Some(&row)).await?)
        })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let path = format!("/rows/{}", path_id(&id)?);
            version_of(&self.exchange(http::Method::DELETE, &path, None).await?)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>> {
        Box::pin(async move {
            let answer = self.exchange(http::Method::GET, "/rows", None).await?;
            serde_json::from_value(answer)
                .map_err(|_| StoreError::Malformed("rows are not in the store's format".into()))
        })
    }
}

/// An in-process store, for live mode without a database and for tests.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<(u64, BTreeMap<String, StoredRow>)>,
    /// id -> unique key
    unique: Mutex<BTreeMap<String, String>>,
}

impl Store for MemoryStore {
    fn put(
        &self,
        id: &str,
        row: Value,
        if_absent: bool,
        unique: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys = self.unique.lock().unwrap_or_else(|e| e.into_inner());
        let taken = unique.is_some_and(|u| keys.iter().any(|(i, k)| i != id && k == u));
        let result = if if_absent && inner.1.contains_key(id) {
            Err(StoreError::Conflict)
        } else if taken {
            Err(StoreError::Taken)
        } else {
            match unique {
                Some(u) => keys.insert(id.to_string(), u.to_string()),
                None => keys.remove(id),
            };
            inner.0 += 1;
            let version = inner.0;
            inner.1.insert(
                id.to_string(),
                StoredRow {
                    server_id: id.to_string(),
                    version,
                    row,
                },
            );
            Ok(version)
        };
        Box::pin(async move { result })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.unique
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let result = match inner.1.remove(id) {
            Some(_) => {
                inner.0 += 1;
                Ok(inner.0)
            }
            None => Err(StoreError::NotFound),
        };
        Box::pin(async move { result })
    }

    fn list(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = Snapshot {
            version: inner.0,
            rows: inner.1.values().cloned().collect(),
        };
        Box::pin(async move { Ok(snapshot) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, row: Value) -> StoredRow {
        StoredRow {
            server_id: id.to_string(),
            version: 1,
            row,
        }
    }

    #[test]
    fn rows_round_trip_through_the_one_normalisation() {
        let body = json!({"server_id": "db1", "server_name": "db", "transport": "http", "url": "http://db/mcp",
            "auth_type": "oauth2", "token_url": "http://auth/token",
            "credentials": {"client_id": "id", "client_secret": "s3cret-value"}});
        let (spec, kept) = decode_row(&stored("db1", encode_row(&body))).unwrap();
        assert_eq!(spec.oauth2_flow(), Some("client_credentials"));
        assert_eq!(kept, body);
    }

    #[test]
    fn undecodable_rows_say_why_without_values() {
        let newer = stored("x", json!({"schema": 2, "body": {}}));
        assert!(decode_row(&newer).unwrap_err().contains("schema 2"));
        let broken = stored(
            "x",
            json!({"schema": 1, "body": {"server_name": "a", "transport": "http", "url": 7, "credentials": {"client_secret": "s3cret-value"}}}),
        );
        let reason = decode_row(&broken).unwrap_err();
        assert!(reason.contains("url"), "{reason}");
        assert!(!reason.contains("s3cret"), "{reason}");
        let moved = stored(
            "y",
            encode_row(
                &json!({"server_id": "z", "server_name": "a", "transport": "http", "url": "http://a/"}),
            ),
        );
        assert!(decode_row(&moved).is_err());
    }

    #[tokio::test]
    async fn the_memory_store_versions_conflicts_and_deletes() {
        let store = MemoryStore::default();
        assert_eq!(store.put("a", json!({}), true, None).await, Ok(1));
        assert_eq!(
            store.put("a", json!({}), true, None).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(store.put("a", json!({"n": 2}), false, None).await, Ok(2));
        assert_eq!(store.delete("a").await, Ok(3));
        assert_eq!(store.delete("a").await, Err(StoreError::NotFound));
        assert!(store.list().await.unwrap().rows.is_empty());
    }
}
