//! Liveness: every registered server leaves `unknown`, and within a bound
//! made from the gateway's declared budgets, counted from when the
//! operator first saw it unknown or from the last fault or write, whichever
//! is later; every acknowledged registration is listed, and every
//! acknowledged delete has taken effect, on every gateway that shares its
//! store. (A storm of requests is the `storm` checker's.)
//!
//! Outside-in: it reads the operator's polls and writes, the faults and the
//! fakes' logs, never the gateway's events.

use std::collections::BTreeMap;

use mcpsim_sut::Status;

use super::{check, unknown_bound_ms, Check, Evidence};
use crate::observe;
use crate::operator::Phase;

/// A stretch of polls that saw one server `unknown`.
struct Stretch {
    /// When the first poll of the stretch had its answer.
    first_ms: u64,
    /// When the last poll of the stretch was sent.
    last_ms: u64,
}

pub(crate) fn check_liveness(e: &Evidence<'_>) -> Check {
    let records = &e.outcome.records;
    let mut findings = observe::owed_listings(
        e.scenario,
        &e.outcome.hosts,
        &e.faults,
        &records.writes,
        e.seen,
    );
    for s in e
        .seen
        .values()
        .filter(|s| !s.deleted && s.view.status == Status::Unknown)
    {
        findings.push(format!(
            "{} on {} is still unknown at the deadline",
            s.view.name, s.gateway
        ));
    }

    // The latest moment before `at` that could have made a server unknown
    // again: a fault, or a write to it.
    let excuse_before = |server_id: &str, at: u64| {
        let write = records
            .writes
            .iter()
            .filter(|w| w.sent_ms <= at && w.server_id.as_deref() == Some(server_id))
            .map(|w| w.sent_ms)
            .max()
            .unwrap_or(0);
        write.max(e.faults.last_at_or_before(at))
    };
    let mut open: BTreeMap<(String, String), Stretch> = BTreeMap::new();
    let mut judge = |key: &(String, String), stretch: Stretch, end: &str| {
        let from = stretch.first_ms.max(excuse_before(&key.1, stretch.last_ms));
        let bound = unknown_bound_ms(e, &key.0);
        let stayed = stretch.last_ms.saturating_sub(from);
        if stayed > bound {
            findings.push(format!(
                "{}/{} was seen unknown for {stayed} ms (from {from} ms to {} ms{end}), over the bound of {bound} ms",
                key.0, key.1, stretch.last_ms
            ));
        }
    };
    for poll in records.polls.iter().filter(|p| p.phase == Phase::Settling) {
        let Ok(rows) = &poll.servers else {
            continue;
        };
        for row in rows {
            let key = (poll.gateway.clone(), row.server_id.clone());
            if row.status == Status::Unknown {
                open.entry(key)
                    .and_modify(|s| s.last_ms = poll.sent_ms)
                    .or_insert(Stretch {
                        first_ms: poll.answered_ms,
                        last_ms: poll.sent_ms,
                    });
            } else if let Some(stretch) = open.remove(&key) {
                judge(&key, stretch, "");
            }
        }
        // A server gone from the list ends its stretch unjudged: its
        // delete, or its gateway's restart, is judged elsewhere.
        open.retain(|(gateway, id), _| {
            gateway != &poll.gateway || rows.iter().any(|r| &r.server_id == id)
        });
    }
    for (key, stretch) in std::mem::take(&mut open) {
        judge(&key, stretch, ", the last poll");
    }

    check("liveness", findings)
}
