//! What the operator's records add up to: each server as the operator last
//! saw it, and which registrations the gateways still owe a listing.
//!
//! Both the operator (to know when to stop polling) and the checkers (to
//! judge) read the records through these functions, so the two never
//! disagree about what was seen.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_sut::{Declared, ServerView, Status, ToolView};

use crate::faults::Faults;
use crate::operator::{Phase, Records, WriteKind, WriteRecord};
use crate::scenario::Scenario;

/// What the operator saw of one server on one gateway.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub gateway: String,
    pub server_id: String,
    /// The row of the last settling poll that listed it.
    pub view: ServerView,
    /// Simulated ms of the first poll that saw it leave `unknown`.
    pub settled_ms: Option<u64>,
    /// Simulated ms of the first poll that listed it.
    pub first_seen_ms: u64,
    /// Deleted, or gone from the last poll.
    pub deleted: bool,
    /// The last poll that listed it.
    pub last_listed_ms: u64,
    pub tools: Vec<ToolView>,
    /// Why the last read of its tools could not be read in the gateway's
    /// dialect (no answer, an error status, a name the dialect refuses).
    pub tools_unreadable: Option<String>,
    /// Whether its tools were read and can be judged: false on a host that
    /// serves no MCP traffic, and when the status or the alias changed
    /// while they were read.
    pub serves_tools: bool,
}

/// Every server the operator saw, by (gateway, server id).
pub(crate) fn seen(records: &Records) -> BTreeMap<(String, String), Seen> {
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    for poll in records.polls.iter().filter(|p| p.phase == Phase::Settling) {
        let Ok(rows) = &poll.servers else {
            continue;
        };
        let now = poll.answered_ms;
        for row in rows {
            let key = (poll.gateway.clone(), row.server_id.clone());
            let entry = seen.entry(key).or_insert_with(|| Seen {
                gateway: poll.gateway.clone(),
                server_id: row.server_id.clone(),
                view: row.clone(),
                settled_ms: None,
                first_seen_ms: now,
                deleted: false,
                last_listed_ms: now,
                tools: Vec::new(),
                tools_unreadable: None,
                serves_tools: false,
            });
            if row.status != Status::Unknown && entry.settled_ms.is_none() {
                entry.settled_ms = Some(now);
            }
            entry.view = row.clone();
            entry.deleted = false;
            entry.last_listed_ms = now;
        }
        for ((gateway, id), entry) in seen.iter_mut() {
            if gateway == &poll.gateway && !rows.iter().any(|r| &r.server_id == id) {
                entry.deleted = true;
            }
        }
    }
    for read in &records.tool_reads {
        if let Some(entry) = seen.get_mut(&(read.gateway.clone(), read.server_id.clone())) {
            entry.serves_tools = true;
            match &read.tools {
                Ok(tools) => {
                    entry.tools = tools.clone();
                    entry.tools_unreadable = None;
                }
                Err(why) => entry.tools_unreadable = Some(why.clone()),
            }
        }
    }
    // A status that changed while the tools were read makes that reading
    // unfit to judge against the status, and an alias that changed (the
    // prefix of every tool name) unfit to read.
    for poll in records.polls.iter().filter(|p| p.phase == Phase::Final) {
        let Ok(rows) = &poll.servers else {
            continue;
        };
        for row in rows {
            if let Some(entry) = seen.get_mut(&(poll.gateway.clone(), row.server_id.clone())) {
                if entry.view.status != row.status || entry.view.alias != row.alias {
                    entry.serves_tools = false;
                }
            }
        }
    }
    seen
}

/// The gateway hosts that must know what `host` was told: itself, and
/// every gateway sharing its store.
pub(crate) fn sharing(scenario: &Scenario, host: &str) -> Vec<String> {
    let store = scenario
        .gateways
        .iter()
        .find(|g| g.host == host)
        .and_then(|g| g.store.clone());
    scenario
        .gateways
        .iter()
        .filter(|g| g.host == host || (store.is_some() && g.store == store))
        .map(|g| g.host.clone())
        .collect()
}

/// (gateway, server id) pairs.
pub(crate) type Pairs = BTreeSet<(String, String)>;

/// Where each acknowledged write must show: (gateway, id) pairs that must
/// be listed, and pairs that must not be (acknowledged deletes). A
/// registration on a host that keeps none across a restart is owed only
/// until the host restarts, and one whose delete went unanswered no longer.
pub(crate) fn listing_duties(
    scenario: &Scenario,
    hosts: &BTreeMap<String, Declared>,
    faults: &Faults<'_>,
    writes: &[WriteRecord],
) -> (Pairs, Pairs) {
    let mut listed = BTreeSet::new();
    let mut gone = BTreeSet::new();
    for w in writes {
        let Some(id) = &w.server_id else {
            continue;
        };
        let Some(answer) = &w.answer else {
            // Unanswered (or answered 504), a delete may have landed all
            // the same (its gateway restarted after the store had it, or the
            // store took it after the gateway gave up): the server is owed
            // no listing any more; a create likewise may have brought the
            // server back, which is then promised gone no more.
            match w.kind {
                WriteKind::Delete => listed.retain(|(_, e)| e != id),
                WriteKind::Create => gone.retain(|(_, e)| e != id),
                WriteKind::Update => {}
            }
            continue;
        };
        if !answer.accepted {
            continue;
        }
        match w.kind {
            WriteKind::Create => {
                for host in sharing(scenario, &w.gateway) {
                    let kept = hosts.get(&host).is_some_and(|d| d.durable)
                        || !faults.restarted_since(&host, w.sent_ms);
                    gone.remove(&(host.clone(), id.clone()));
                    if kept {
                        listed.insert((host, id.clone()));
                    }
                }
            }
            WriteKind::Delete => {
                listed.retain(|(_, e)| e != id);
                for host in sharing(scenario, &w.gateway) {
                    gone.insert((host, id.clone()));
                }
            }
            WriteKind::Update => {}
        }
    }
    (listed, gone)
}

/// What the gateways still owe, one line each: acknowledged servers not
/// listed, deleted servers still listed.
pub(crate) fn owed_listings(
    scenario: &Scenario,
    hosts: &BTreeMap<String, Declared>,
    faults: &Faults<'_>,
    writes: &[WriteRecord],
    seen: &BTreeMap<(String, String), Seen>,
) -> Vec<String> {
    let (listed, gone) = listing_duties(scenario, hosts, faults, writes);
    listed
        .iter()
        .filter(|key| seen.get(*key).is_none_or(|s| s.deleted))
        .map(|(host, id)| format!("acknowledged server {id} is not listed on {host}"))
        .chain(
            gone.iter()
                .filter(|key| seen.get(*key).is_some_and(|s| !s.deleted))
                .map(|(host, id)| format!("deleted server {id} is still listed on {host}")),
        )
        .collect()
}

/// Per gateway, the first poll at which its health said its store was
/// unreachable.
pub(crate) fn store_unreachable_seen(records: &Records) -> BTreeMap<String, u64> {
    let mut first = BTreeMap::new();
    for poll in &records.health {
        let Ok(items) = &poll.items else {
            continue;
        };
        if items.iter().any(|i| i.store_reachable == Some(false)) {
            first
                .entry(poll.gateway.clone())
                .or_insert(poll.answered_ms);
        }
    }
    first
}
