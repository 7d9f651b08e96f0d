//! Defects of the store path: restart, data-plane sync, store outages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mcpsim_gateway::http_client::BoxFuture;
use mcpsim_gateway::store::{MemoryStore, Snapshot, Store, StoreError};
use mcpsim_gateway::{Defect, GatewayEvent, GatewaySettings, Role};
use serde_json::{json, Value};

use crate::rig::*;

/// A memory store whose reads can be made to fail.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Store for FlakyStore {
    fn put(
        &self,
        id: &str,
        row: Value,
        if_absent: bool,
        unique: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.put(id, row, if_absent, unique)
    }
    fn delete(&self, id: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.delete(id)
    }
    fn list(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>> {
        if self.down.load(Ordering::SeqCst) {
            Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
        } else {
            self.inner.list()
        }
    }
}

fn started_for(rig: &Rig, id: &str) -> usize {
    rig.count(|e| matches!(e, GatewayEvent::DiscoveryStarted { server_id, .. } if server_id == id))
}

#[tokio::test(start_paused = true)]
async fn no_rediscovery_after_restart() {
    for on in [false, true] {
        let world = World::with(&[("rest", Mcp::default()), ("conf", Mcp::default())]);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let defects = switched(on, Defect::NoRediscoveryAfterRestart);
        let settings = GatewaySettings {
            check_interval_ms: 5_000,
            ..settings(&defects)
        };
        let config = json!({"conf": {"url": "http://conf/mcp"}});
        let first = rig(
            settings.clone(),
            &world,
            config.clone(),
            Some(store.clone()),
        );
        first
            .call("POST", "/v1/mcp/server", bearer_body("r1", "rest"))
            .await;
        pass(1_000).await;
        assert_eq!(first.row("r1").await["status"], "healthy");
        first.gateway.shutdown();

        // The restart: a new process on the same store.
        let second = rig(settings, &world, config, Some(store));
        pass(20_000).await;
        let (_, rows) = second.call("GET", "/v1/mcp/server", Value::Null).await;
        let conf = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"] == "config")
            .unwrap();
        assert_eq!(conf["status"], "healthy");
        let row = second.row("r1").await;
        if on {
            // Registered, never discovered, not even by the interval.
            assert_eq!(row["status"], "unknown");
            assert_eq!(started_for(&second, "r1"), 0);
            // Touching it discovers it.
            let (status, _) = second
                .call(
                    "PUT",
                    "/v1/mcp/server",
                    json!({"server_id": "r1", "description": "touched"}),
                )
                .await;
            assert_eq!(status, 202);
            pass(1_000).await;
            assert_eq!(second.row("r1").await["status"], "healthy");
        } else {
            assert_eq!(row["status"], "healthy");
            assert!(started_for(&second, "r1") >= 2);
        }
        second.gateway.shutdown();
    }
}

#[tokio::test(start_paused = true)]
async fn data_plane_never_syncs() {
    for on in [false, true] {
        let world = World::with(&[("a", Mcp::default()), ("b", Mcp::default())]);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let defects = switched(on, Defect::DataPlaneNeverSyncs);
        let control = rig(
            GatewaySettings {
                role: Role::Control,
                ..settings(&defects)
            },
            &world,
            json!({}),
            Some(store.clone()),
        );
        let data = rig(
            GatewaySettings {
                role: Role::Data,
                ..settings(&defects)
            },
            &world,
            json!({"conf": {"url": "http://a/mcp"}}),
            Some(store.clone()),
        );
        assert_eq!(
            control
                .call("POST", "/v1/mcp/server", bearer_body("c1", "a"))
                .await
                .0,
            201
        );
        // Its own writes still work.
        assert_eq!(
            data.call("POST", "/v1/mcp/server", bearer_body("d1", "b"))
                .await
                .0,
            201
        );
        pass(60_000).await;
        let (status, _) = data.call("GET", "/v1/mcp/server/c1", Value::Null).await;
        assert_eq!(status, if on { 404 } else { 200 });
        assert_eq!(data.row("d1").await["status"], "healthy");
        let (_, rows) = data.call("GET", "/v1/mcp/server", Value::Null).await;
        let conf = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"] == "config")
            .unwrap();
        assert_eq!(conf["status"], "healthy");
        // A control plane reads the store whatever the switch says.
        assert_eq!(
            control
                .call("GET", "/v1/mcp/server/d1", Value::Null)
                .await
                .0,
            200
        );
    }
}

#[tokio::test(start_paused = true)]
async fn store_outage_drops_servers() {
    for on in [false, true] {
        let world = World::with(&[("a", Mcp::default())]);
        let store = Arc::new(FlakyStore::default());
        let defects = switched(on, Defect::StoreOutageDropsServers);
        let data = rig(
            GatewaySettings {
                role: Role::Data,
                sync_interval_ms: 10_000,
                ..settings(&defects)
            },
            &world,
            json!({"conf": {"url": "http://a/mcp"}}),
            Some(store.clone()),
        );
        assert_eq!(
            data.call("POST", "/v1/mcp/server", bearer_body("r1", "a"))
                .await
                .0,
            201
        );
        pass(11_000).await;
        assert_eq!(data.row("r1").await["status"], "healthy");
        store.down.store(true, Ordering::SeqCst);
        pass(10_000).await;
        assert!(data.count(|e| matches!(e, GatewayEvent::SyncFailed { .. })) >= 1);
        let (status, _) = data.call("GET", "/v1/mcp/server/r1", Value::Null).await;
        assert_eq!(status, if on { 404 } else { 200 });
        // The config server is never dropped.
        let (_, rows) = data.call("GET", "/v1/mcp/server", Value::Null).await;
        assert!(rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == "config"));
        // The next good read brings it back.
        store.down.store(false, Ordering::SeqCst);
        pass(11_000).await;
        assert_eq!(data.row("r1").await["status"], "healthy");
    }
}

#[tokio::test(start_paused = true)]
async fn store_outage_drops_servers_only_on_a_data_plane() {
    let world = World::with(&[("a", Mcp::default())]);
    let store = Arc::new(FlakyStore::default());
    let rig = rig(
        GatewaySettings {
            sync_interval_ms: 10_000,
            ..settings(&[Defect::StoreOutageDropsServers])
        },
        &world,
        json!({}),
        Some(store.clone()),
    );
    rig.call("POST", "/v1/mcp/server", bearer_body("r1", "a"))
        .await;
    store.down.store(true, Ordering::SeqCst);
    pass(25_000).await;
    assert_eq!(
        rig.call("GET", "/v1/mcp/server/r1", Value::Null).await.0,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_flow_has_no_column() {
    for on in [false, true] {
        let world = World::with(&[(
            "db",
            Mcp {
                accept: tokens(5),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::ExplicitFlowHasNoColumn);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let rig = rig(settings(&defects), &world, json!({}), Some(store.clone()));
        // The reporter's body, with and without the flow stated.
        let mut with_flow = oauth_body("db1", "db");
        with_flow["oauth2_flow"] = json!("client_credentials");
        let (status, answer) = rig.call("POST", "/v1/mcp/server", with_flow).await;
        let (without, _) = rig
            .call("POST", "/v1/mcp/server", oauth_body("db2", "db"))
            .await;
        assert_eq!(without, 201);
        pass(1_000).await;
        let stored = store.list().await.unwrap();
        if on {
            assert_eq!(status, 500, "{answer}");
            assert!(!answer.to_string().contains(SECRET));
            let (missing, _) = rig.call("GET", "/v1/mcp/server/db1", Value::Null).await;
            assert_eq!(missing, 404);
            assert_eq!(stored.rows.len(), 1);
            // An update that states the flow fails the same way.
            let update = json!({"server_id": "db2", "oauth2_flow": "client_credentials"});
            let (status, _) = rig.call("PUT", "/v1/mcp/server", update).await;
            assert_eq!(status, 500);
        } else {
            assert_eq!(status, 201, "{answer}");
            assert_eq!(rig.row("db1").await["status"], "healthy");
            assert_eq!(stored.rows.len(), 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn credentials_unmasked_in_row() {
    for on in [false, true] {
        let world = World::with(&[("static", Mcp::default()), ("db", Mcp::default())]);
        let defects = switched(on, Defect::CredentialsUnmaskedInRow);
        let rig = rig(settings(&defects), &world, json!({}), None);
        let mut bearer = bearer_body("st1", "static");
        bearer["static_headers"] = json!({"X-Api-Key": STATIC_TOKEN});
        let (_, created) = rig.call_text("POST", "/v1/mcp/server", bearer, None).await;
        let (_, oauth) = rig
            .call_text("POST", "/v1/mcp/server", oauth_body("db1", "db"), None)
            .await;
        let (_, one) = rig
            .call_text("GET", "/v1/mcp/server/db1", Value::Null, None)
            .await;
        let (_, all) = rig
            .call_text("GET", "/v1/mcp/server", Value::Null, None)
            .await;
        // The list is masked either way.
        assert!(
            !all.contains(SECRET) && !all.contains(STATIC_TOKEN),
            "{all}"
        );
        assert!(all.contains("[REDACTED]"), "{all}");
        assert_eq!(created.contains(STATIC_TOKEN), on, "{created}");
        assert_eq!(oauth.contains(SECRET), on, "{oauth}");
        assert_eq!(one.contains(SECRET), on, "{one}");
    }
}

#[tokio::test(start_paused = true)]
async fn tool_routes_per_replica() {
    for on in [false, true] {
        let world = World::with(&[("a", Mcp::default())]);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let defects = switched(on, Defect::ToolRoutesPerReplica);
        let replica = || {
            rig(
                GatewaySettings {
                    role: Role::Data,
                    sync_interval_ms: 500,
                    ..settings(&defects)
                },
                &world,
                json!({}),
                Some(store.clone()),
            )
        };
        let (one, two) = (replica(), replica());
        let (status, row) = one
            .call("POST", "/v1/mcp/server", open_body("r1", "a"))
            .await;
        assert_eq!(status, 201, "{row}");
        pass(2_000).await;
        // Both replicas know the server and have checked it.
        assert_eq!(one.row("r1").await["status"], "healthy");
        assert_eq!(two.row("r1").await["status"], "healthy");
        assert_eq!(one.tool_names(Some("r1")).await.len(), 3);
        let call = json!({"name": "r1-tool0", "arguments": {}});
        let (status, text) = two
            .call_text("POST", "/mcp-rest/tools/call", call.clone(), None)
            .await;
        assert_eq!(status, if on { 404 } else { 200 }, "{text}");
        // Once the second replica has listed the tools, it routes them.
        assert_eq!(two.tool_names(Some("r1")).await.len(), 3);
        let (status, text) = two
            .call_text("POST", "/mcp-rest/tools/call", call, None)
            .await;
        assert_eq!(status, 200, "{text}");
    }
}
