//! Convergence: gateways sharing a store list an acknowledged registration
//! within one of their sync intervals.
//!
//! Outside-in: it reads the operator's writes and polls and the faults.

use super::{check, Check, Evidence};
use crate::operator::{Phase, WriteKind};

/// Every gateway that shares a store and is touched by no fault lists an
/// acknowledged server at its first poll sent once one of its sync
/// intervals and the store round trip (with the store's own latency and
/// snapshot delay) have passed since the write.
pub(crate) fn check_converges(e: &Evidence<'_>) -> Check {
    let records = &e.outcome.records;
    let mut findings = Vec::new();
    for w in &records.writes {
        let (WriteKind::Create, Some(id), Some(answer)) = (w.kind, &w.server_id, &w.answer) else {
            continue;
        };
        if !answer.accepted {
            continue;
        }
        let Some(store) = e
            .scenario
            .gateways
            .iter()
            .find(|g| g.host == w.gateway)
            .and_then(|g| g.store.clone())
        else {
            continue;
        };
        if e.faults.touch(&store) {
            continue;
        }
        for g in e
            .scenario
            .gateways
            .iter()
            .filter(|g| g.store.as_ref() == Some(&store) && g.host != w.gateway)
        {
            if e.faults.touch(&g.host) {
                continue;
            }
            let Some(sync_ms) = e.declared(&g.host).and_then(|d| d.sync_interval_ms) else {
                continue;
            };
            // A read of the store is three one-way trips on a new
            // connection, and the write itself one more round trip. A slow
            // store holds the write and each read for its latency, and a
            // read whose snapshot just missed the write is still in flight
            // for the snapshot delay before the sync interval starts, the
            // next read taking as long again.
            let store_ms = e
                .scenario
                .stores
                .iter()
                .find(|s| s.host == store)
                .map_or(0, |s| {
                    2 * (s.config.latency_ms + s.config.snapshot_delay_ms)
                });
            let bound = sync_ms + store_ms + 6 * e.hop_ms() + 1;
            let due = w.sent_ms + bound;
            let deleted_by_then = records.writes.iter().any(|d| {
                d.kind == WriteKind::Delete && d.server_id.as_ref() == Some(id) && d.sent_ms <= due
            });
            if deleted_by_then {
                continue;
            }
            let polls = records.polls.iter().filter(|p| {
                p.gateway == g.host && p.phase == Phase::Settling && p.answered_ms >= w.sent_ms
            });
            for p in polls {
                let Ok(rows) = &p.servers else {
                    continue;
                };
                if rows.iter().any(|r| &r.server_id == id) {
                    break;
                }
                if p.sent_ms >= due {
                    findings.push(format!(
                        "{} did not list {id} at {} ms, {} ms after it was acknowledged, over the bound of {bound} ms",
                        g.host,
                        p.sent_ms,
                        p.sent_ms - w.sent_ms
                    ));
                    break;
                }
            }
        }
    }
    check("converges", findings)
}
