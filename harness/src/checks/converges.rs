//! Convergence: gateways sharing a store show an acknowledged write within
//! one of their sync intervals: a created server listed, an updated one
//! with the URL it was given, a deleted one gone.
//!
//! What it does not judge: gateways or stores a fault touched; gateways
//! that declare no sync interval; a write that another write to the same
//! server followed before it was due (the later write is judged instead);
//! the URL of an update in the gateway's own shape, which mcpsim cannot
//! read (that the server is listed is judged).
//!
//! Outside-in: it reads the operator's writes and polls and the faults.

use super::{check, Check, Evidence};
use crate::operator::{Phase, WriteKind, WriteRecord};

/// Whether a row list shows what write `w` did to server `id`.
fn shows(w: &WriteRecord, id: &str, rows: &[mcpsim_sut::ServerView]) -> bool {
    let row = rows.iter().find(|r| r.server_id == id);
    match (w.kind, row) {
        (WriteKind::Delete, row) => row.is_none(),
        (WriteKind::Create, row) => row.is_some(),
        (WriteKind::Update, None) => false,
        (WriteKind::Update, Some(row)) => {
            let written = w.spec.as_ref().filter(|_| !w.extra_fields).map(|s| &s.url);
            match (written, &row.url) {
                (Some(written), Some(showing)) => written == showing,
                _ => true,
            }
        }
    }
}

/// Every gateway that shares a store and is touched by no fault shows an
/// acknowledged write at, or before, its first poll sent once one of its
/// sync intervals and the store round trip (with the store's own latency
/// and snapshot delay) have passed since the write.
pub(crate) fn check_converges(e: &Evidence<'_>) -> Check {
    let records = &e.outcome.records;
    let mut findings = Vec::new();
    for (i, w) in records.writes.iter().enumerate() {
        let (Some(id), Some(answer)) = (&w.server_id, &w.answer) else {
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
        // A later write to the same server makes later polls its evidence.
        let superseded_ms = records
            .writes
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && o.server_id.as_ref() == Some(id))
            .filter(|(j, o)| o.sent_ms > w.sent_ms || (o.sent_ms == w.sent_ms && *j > i))
            .map(|(_, o)| o.sent_ms)
            .min()
            .unwrap_or(u64::MAX);
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
            let polls = records.polls.iter().filter(|p| {
                p.gateway == g.host && p.phase == Phase::Settling && p.answered_ms >= w.sent_ms
            });
            for p in polls {
                if p.sent_ms >= superseded_ms {
                    break;
                }
                let Ok(rows) = &p.servers else {
                    continue;
                };
                if shows(w, id, rows) {
                    break;
                }
                if p.sent_ms >= due {
                    let what = match w.kind {
                        WriteKind::Create => format!("did not list {id}"),
                        WriteKind::Update => format!("did not show the update of {id}"),
                        WriteKind::Delete => format!("still listed deleted {id}"),
                    };
                    findings.push(format!(
                        "{} {what} at {} ms, {} ms after it was acknowledged, over the bound of {bound} ms",
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
