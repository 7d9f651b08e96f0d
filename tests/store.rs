//! The gateway's `HttpStore` against the store host over turmoil: versions,
//! conflicts, and acknowledged writes that survive a bounce of the store.

use std::sync::Arc;
use std::time::Duration;

use mcpsim_fakes::{StoreServer, StoreServerConfig};
use mcpsim_gateway::store::{encode_row, HttpStore, Store, StoreError};
use mcpsim_harness::net::{serve, SimHttpClient};
use serde_json::json;

#[test]
fn acknowledged_writes_survive_a_bounce_of_the_store_host() {
    let mut sim = turmoil::Builder::new()
        .rng_seed(3)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .build();
    let store = StoreServer::new(StoreServerConfig::default());
    let durable = store.clone();
    sim.host("store", move || {
        let router = durable.router();
        async move { serve(80, router).await }
    });
    sim.client("writer", async move {
        let client = HttpStore::new(Arc::new(SimHttpClient::without_pool()), "http://store");
        let body =
            json!({"server_id": "a", "server_name": "a", "transport": "http", "url": "http://a/"});
        assert_eq!(client.put("a", encode_row(&body), true, None).await, Ok(1));
        assert_eq!(
            client.put("a", encode_row(&body), true, None).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(client.put("b", encode_row(&body), false, None).await, Ok(2));
        assert_eq!(client.delete("b").await, Ok(3));
        assert_eq!(client.delete("b").await, Err(StoreError::NotFound));
        // Give the driving loop below time to bounce the store.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rows = client.list().await.expect("the store is back").rows;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].server_id.as_str(), rows[0].version), ("a", 1));
        Ok(())
    });
    let mut bounced = false;
    loop {
        if !bounced && sim.elapsed() >= Duration::from_millis(300) {
            sim.bounce("store");
            bounced = true;
        }
        if sim.step().expect("the simulation runs") {
            break;
        }
    }
    assert!(bounced);
    assert_eq!(store.stats().writes, 2);
}

#[test]
fn an_unreachable_store_is_unavailable_not_a_panic() {
    let mut sim = turmoil::Builder::new().build();
    sim.host("store", || async {
        std::future::pending::<()>().await;
        Ok(())
    });
    sim.client("writer", async {
        let client = HttpStore::new(Arc::new(SimHttpClient::new()), "http://store");
        assert!(matches!(
            client.list().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            client.put("a", json!({}), false, None).await,
            Err(StoreError::Unavailable(_))
        ));
        Ok(())
    });
    sim.run().unwrap();
}
