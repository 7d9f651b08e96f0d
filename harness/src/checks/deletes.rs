//! A deleted server stays deleted, judged over every poll of the run:
//!
//! every gateway sharing the store of the gateway that took the delete, once
//! a poll sent after the delete's answer shows the server gone, lists it at
//! no later poll,
//!
//! whatever syncs and restarts come between, so a comeback that a later
//! sync removes again is still a failure. Only a create of the same id
//! brings it back: one sent after the delete (a fresh server, then judged
//! like any other), or one sent before whose answer never came (when it
//! landed, only the gateway knows).
//!
//! What it does not judge: deletes the gateway refused or never answered
//! (nothing was promised); how soon a gateway drops the server
//! (`api_contract` judges the next list of the gateway that took the
//! delete, `converges` the others within the sync bound, `liveness` the
//! end).
//!
//! Outside-in: it reads the operator's writes and polls.

use super::{check, Check, Evidence};
use crate::observe;
use crate::operator::WriteKind;

pub(crate) fn check_deletes(e: &Evidence<'_>) -> Check {
    let records = &e.outcome.records;
    let mut findings = Vec::new();
    for d in &records.writes {
        if d.kind != WriteKind::Delete || !d.answer.as_ref().is_some_and(|a| a.accepted) {
            continue;
        }
        let (Some(id), Some(answered_ms)) = (&d.server_id, d.answered_ms) else {
            continue;
        };
        let sharing = observe::sharing(e.scenario, &d.gateway);
        let creates_of_id = || {
            records.writes.iter().filter(|c| {
                c.kind == WriteKind::Create
                    && sharing.contains(&c.gateway)
                    && c.server_id.as_ref() == Some(id)
            })
        };
        if creates_of_id().any(|c| c.sent_ms <= d.sent_ms && c.answer.is_none()) {
            continue;
        }
        let back_ms = creates_of_id()
            .filter(|c| c.sent_ms > d.sent_ms && c.maybe_applied())
            .map(|c| c.sent_ms)
            .min()
            .unwrap_or(u64::MAX);
        for g in &sharing {
            let mut gone = false;
            let polls = records
                .polls
                .iter()
                .filter(|p| &p.gateway == g && p.sent_ms >= answered_ms);
            for p in polls {
                if p.sent_ms >= back_ms {
                    break;
                }
                let Ok(rows) = &p.servers else {
                    continue;
                };
                let listed = rows.iter().any(|r| &r.server_id == id);
                if !listed {
                    gone = true;
                } else if gone {
                    findings.push(format!(
                        "{id} was deleted through {} at {} ms, yet {g} lists it again at {} ms after it was gone",
                        d.gateway, answered_ms, p.sent_ms
                    ));
                    break;
                }
            }
        }
    }
    check("deletes", findings)
}
