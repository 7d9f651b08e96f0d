//! Store sync: the registry made to match the store, at start and every
//! sync interval.
//!
//! Invariants: an unreadable store changes nothing (unless the
//! `store-outage-drops-servers` defect is on); an undecodable row is skipped
//! with one secret-free event per version; a snapshot never removes a write
//! newer than itself, nor brings back a server deleted here since.

use std::sync::Arc;
use std::time::Duration;

use super::Registry;
use crate::defects::Defect;
use crate::spec::Source;
use crate::store::{decode_row_with, Store};
use crate::{AttemptReason, GatewayEvent};

impl Registry {
    /// Reads the store and makes the registry match it: new rows are added,
    /// newer versions supersede, rows gone from the store are removed.
    /// An unreadable store changes nothing; an undecodable row is skipped.
    pub(super) async fn sync_once(self: &Arc<Self>, store: &dyn Store) {
        let snapshot = match self.within_budget(store.list()).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                self.lock().store_reachable = false;
                self.emit(GatewayEvent::SyncFailed {
                    error: error.to_string(),
                });
                // Defect store-outage-drops-servers: the data plane rebuilds
                // its registry from the failed read as if it were empty; the
                // servers come back with the next good read.
                if self.settings.role == crate::Role::Data
                    && self.has(Defect::StoreOutageDropsServers)
                {
                    let learned: Vec<String> = self
                        .lock()
                        .servers
                        .iter()
                        .filter(|(_, e)| e.spec.source == Source::Rest)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in learned {
                        self.apply_remove(&id);
                    }
                }
                return;
            }
        };
        // Defect no-rediscovery-after-restart: the rows a restarted LiteLLM
        // loads at startup are registered but never discovered until an
        // update or a changed row touches them (issues 31775, 32575).
        let loading = {
            let mut state = self.lock();
            state.store_reachable = true;
            !std::mem::replace(&mut state.loaded, true)
        };
        let discover_new = !(loading && self.has(Defect::NoRediscoveryAfterRestart));
        let mut present = std::collections::BTreeSet::new();
        for row in &snapshot.rows {
            present.insert(row.server_id.clone());
            // Deleted here after this row was written: the snapshot is
            // older than the delete and must not bring the server back.
            if self
                .lock()
                .tombstones
                .get(&row.server_id)
                .is_some_and(|d| *d > row.version)
            {
                continue;
            }
            let local = {
                let state = self.lock();
                state
                    .servers
                    .get(&row.server_id)
                    .map(|e| (e.spec.source, e.store_version))
            };
            let fresh = match local {
                None => true,
                Some((Source::Rest, version)) if version.is_none_or(|v| v < row.version) => false,
                // Up to date, or a config server of the same id (config wins).
                Some(_) => continue,
            };
            let decoded = decode_row_with(row, self.settings.defects).and_then(|(spec, body)| {
                let result = if fresh {
                    let reason = discover_new.then_some(AttemptReason::Synced);
                    self.apply_insert(spec, body, Some(row.version), reason)
                        .map(|_| ())
                } else {
                    self.apply_replace(spec, body, Some(row.version), Some(AttemptReason::Synced))
                };
                result.map_err(|e| e.message)
            });
            if let Err(reason) = decoded {
                let first_time = self
                    .lock()
                    .skipped
                    .insert(row.server_id.clone(), row.version)
                    != Some(row.version);
                if first_time {
                    self.emit(GatewayEvent::RowSkipped {
                        server_id: row.server_id.clone(),
                        version: row.version,
                        reason,
                    });
                }
            }
        }
        let gone: Vec<String> = self
            .lock()
            .servers
            .iter()
            // Only what this snapshot could have seen: a write newer than
            // the snapshot is not missing from the store, just from it.
            .filter(|(id, e)| {
                e.store_version.is_some_and(|v| v <= snapshot.version) && !present.contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.apply_remove(&id);
        }
    }

    pub(super) async fn sync_loop(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            self.sync_once(store.as_ref()).await;
            tokio::time::sleep(Duration::from_millis(self.settings.sync_interval_ms)).await;
        }
    }
}
