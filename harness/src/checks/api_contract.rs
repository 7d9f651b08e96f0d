//! The API contract, judged by the answers to the operator's writes and by
//! what the gateways listed afterwards:
//!
//! - **bad inputs are refused**: a write the scenario marks a bad input is
//!   answered with a 4xx (not taken, not a 5xx, not left unanswered while
//!   no fault touched the gateway or its store);
//! - **a refusal says why**: every write a gateway refused carries a
//!   non-empty error, as the dialect reads it;
//! - **the answer shows the write**: a taken create or update in mcpsim's
//!   words whose answer shows the server (a row) shows the name and URL
//!   that write gave it, not those it had before;
//! - **read your writes**: after a gateway took a write, the first list it
//!   answers that was sent after the answer shows it: a created server is
//!   listed, an updated one shows the URL it was given, a deleted one is
//!   gone; unless another write to the same server was sent in between, or
//!   the gateway restarted;
//! - **a refused create leaves no server**: no gateway sharing the store
//!   ever lists a server with the name of a create it refused, unless a
//!   create or update that may have applied, or a config server, gives that
//!   name;
//! - **only written URLs show**: a server every write of which is in
//!   mcpsim's words shows only URLs that a create or update that may have
//!   applied gave it, so a refused update that changed the URL before
//!   failing is seen;
//! - **a taken write stays**: once a gateway sharing the store lists a
//!   server with the URL a taken create or update in mcpsim's words gave
//!   it (a URL no earlier write gave it), it never lists that server again
//!   with a URL that only writes finished before that one began gave it,
//!   whatever syncs follow: a snapshot read before the write must not undo
//!   it, even until the next sync.
//!
//! Convergence of the same writes on the other gateways that share the
//! store is the `converges` checker's; deletes staying deleted is
//! `deletes`'. A refused delete that removed the server anyway is
//! `consistency`'s (a server vanishes that nothing deleted).
//!
//! What it does not judge: URLs of servers some write in the gateway's own
//! shape (native or raw bodies, extra fields) may have touched, and names
//! of refused creates on a gateway with a config file in its own format
//! (mcpsim cannot read either); write answers the operator never got.
//!
//! Outside-in: it reads the operator's writes and polls, the scenario's
//! config servers and the faults.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_sut::ServerView;

use super::{check, definitions, Check, Evidence};
use crate::observe;
use crate::operator::{Poll, WriteKind, WriteRecord};

pub(crate) fn check_api_contract(e: &Evidence<'_>) -> Check {
    let mut findings = Vec::new();
    let writes = &e.outcome.records.writes;
    for w in writes {
        refusal(e, w, &mut findings);
        if w.answer.as_ref().is_some_and(|a| a.accepted) {
            answer_shows_the_write(w, &mut findings);
            read_your_write(e, w, &mut findings);
        }
        if w.refused() && w.kind == WriteKind::Create {
            refused_create_left_nothing(e, w, &mut findings);
        }
    }
    only_written_urls(e, &mut findings);
    taken_writes_stay(e, &mut findings);
    check("api_contract", findings)
}

/// A URL without its query, which may carry a credential.
fn shown(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}{}",
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
            uri.path()
        ),
        Err(_) => "an unreadable url".to_string(),
    }
}

fn refusal(e: &Evidence<'_>, w: &WriteRecord, findings: &mut Vec<String>) {
    let label = w.text.split(" -> ").next().unwrap_or(&w.text);
    if w.bad_input {
        match &w.answer {
            None => {
                let store = e
                    .scenario
                    .gateways
                    .iter()
                    .find(|g| g.host == w.gateway)
                    .and_then(|g| g.store.as_deref());
                let faulted =
                    e.faults.touch(&w.gateway) || store.is_some_and(|s| e.faults.touch(s));
                if !faulted && w.text.ends_with("no answer") {
                    findings.push(format!(
                        "{}: the bad input {label} at {} ms got no answer",
                        w.gateway, w.sent_ms
                    ));
                }
            }
            Some(a) if a.accepted => findings.push(format!(
                "{}: the bad input {label} at {} ms was taken ({})",
                w.gateway, w.sent_ms, a.status
            )),
            Some(a) if !(400..500).contains(&a.status) => findings.push(format!(
                "{}: the bad input {label} at {} ms was answered {}, not a 4xx",
                w.gateway, w.sent_ms, a.status
            )),
            Some(_) => {}
        }
    }
    if let Some(a) = &w.answer {
        if !a.accepted && a.error.as_deref().is_none_or(|m| m.trim().is_empty()) {
            findings.push(format!(
                "{}: {label} at {} ms was refused ({}) without saying why",
                w.gateway, w.sent_ms, a.status
            ));
        }
    }
}

fn answer_shows_the_write(w: &WriteRecord, findings: &mut Vec<String>) {
    let (Some(answer), Some(spec)) = (&w.answer, &w.spec) else {
        return;
    };
    if w.kind == WriteKind::Delete || w.extra_fields {
        return;
    }
    let label = w.text.split(" -> ").next().unwrap_or(&w.text);
    let mut wrong = Vec::new();
    if let Some(name) = answer.name.as_deref().filter(|n| *n != spec.name) {
        wrong.push(format!("its name as {name} instead of {}", spec.name));
    }
    if let Some(url) = answer.url.as_deref().filter(|u| *u != spec.url) {
        wrong.push(format!(
            "its url as {} instead of {}",
            shown(url),
            shown(&spec.url)
        ));
    }
    if !wrong.is_empty() {
        findings.push(format!(
            "{}: {label} at {} ms was taken, but its answer shows {}",
            w.gateway,
            w.sent_ms,
            wrong.join(" and ")
        ));
    }
}

fn row<'a>(poll: &'a Poll, id: &str) -> Option<&'a ServerView> {
    poll.servers
        .as_ref()
        .ok()?
        .iter()
        .find(|r| r.server_id == id)
}

fn read_your_write(e: &Evidence<'_>, w: &WriteRecord, findings: &mut Vec<String>) {
    let Some(id) = &w.server_id else {
        return;
    };
    // Only an answered write has a next list.
    let Some(answered_ms) = w.answered_ms else {
        return;
    };
    let records = &e.outcome.records;
    let Some(poll) = records
        .polls
        .iter()
        .find(|p| p.gateway == w.gateway && p.sent_ms >= answered_ms && p.servers.is_ok())
    else {
        return;
    };
    let sharing = observe::sharing(e.scenario, &w.gateway);
    let another = records.writes.iter().any(|o| {
        !std::ptr::eq(o, w)
            && sharing.contains(&o.gateway)
            && o.server_id.as_ref() == Some(id)
            && o.sent_ms >= w.sent_ms
            && o.sent_ms <= poll.sent_ms
    });
    if another || e.faults.restarted(&w.gateway, w.sent_ms, poll.answered_ms) {
        return;
    }
    let label = w.text.split(" -> ").next().unwrap_or(&w.text);
    let listed = row(poll, id);
    let url = w
        .spec
        .as_ref()
        .filter(|_| !w.extra_fields)
        .map(|s| s.url.as_str());
    let problem = match (w.kind, listed) {
        (WriteKind::Delete, Some(_)) => Some("still lists it".to_string()),
        (WriteKind::Delete, None) => None,
        (_, None) => Some("does not list it".to_string()),
        (_, Some(r)) => match (url, r.url.as_deref()) {
            (Some(written), Some(showing)) if written != showing => Some(format!(
                "shows its url as {} instead of {}",
                shown(showing),
                shown(written)
            )),
            _ => None,
        },
    };
    if let Some(problem) = problem {
        findings.push(format!(
            "{}: {label} ({id}) was acknowledged at {} ms, but its next list, sent at {} ms, {problem}",
            w.gateway, answered_ms, poll.sent_ms
        ));
    }
}

/// The names some write that may have applied, or a config server, gives a
/// server on the gateways sharing `gateway`'s store; none when a config file
/// in the gateway's own format may name more.
fn given_names(e: &Evidence<'_>, gateway: &str) -> Option<BTreeSet<String>> {
    let sharing = observe::sharing(e.scenario, gateway);
    let mut names = BTreeSet::new();
    for g in e
        .scenario
        .gateways
        .iter()
        .filter(|g| sharing.contains(&g.host))
    {
        if !g.config.is_null() {
            return None;
        }
        names.extend(g.servers.iter().map(|s| s.name.clone()));
    }
    for w in &e.outcome.records.writes {
        if !sharing.contains(&w.gateway) || !w.maybe_applied() {
            continue;
        }
        match w.kind {
            WriteKind::Create => {
                names.insert(w.name.clone());
            }
            WriteKind::Update => match &w.spec {
                Some(spec) if !w.extra_fields => {
                    names.insert(spec.name.clone());
                }
                // An update mcpsim cannot read may rename a server to anything.
                _ => return None,
            },
            WriteKind::Delete => {}
        }
    }
    Some(names)
}

fn refused_create_left_nothing(e: &Evidence<'_>, w: &WriteRecord, findings: &mut Vec<String>) {
    if w.name.is_empty() || w.name == "?" {
        return;
    }
    let Some(names) = given_names(e, &w.gateway) else {
        return;
    };
    if names.contains(&w.name) {
        return;
    }
    let sharing = observe::sharing(e.scenario, &w.gateway);
    let label = w.text.split(" -> ").next().unwrap_or(&w.text);
    let after = e.outcome.records.polls.iter().find(|p| {
        sharing.contains(&p.gateway)
            && p.sent_ms >= w.sent_ms
            && p.servers
                .as_ref()
                .is_ok_and(|rows| rows.iter().any(|r| r.name == w.name))
    });
    if let Some(p) = after {
        findings.push(format!(
            "{}: {label} was refused at {} ms, yet {} lists a server of that name at {} ms",
            w.gateway,
            w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms),
            p.gateway,
            p.sent_ms
        ));
    }
}

/// Every server a poll listed with a URL, with that URL, in the order the
/// polls were sent.
fn rows_with_urls<'a>(
    e: &'a Evidence<'_>,
) -> impl Iterator<Item = (&'a Poll, &'a ServerView, &'a str)> {
    e.outcome.records.polls.iter().flat_map(|p| {
        p.servers
            .iter()
            .flatten()
            .filter_map(move |r| r.url.as_deref().map(|url| (p, r, url)))
    })
}

fn only_written_urls(e: &Evidence<'_>, findings: &mut Vec<String>) {
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for (p, r, showing) in rows_with_urls(e) {
        let key = (p.gateway.clone(), r.server_id.clone());
        if reported.contains(&key) {
            continue;
        }
        let Some(urls) = definitions::urls(e, &p.gateway, &r.server_id, &r.name) else {
            continue;
        };
        if !urls.contains(&showing) {
            findings.push(format!(
                "{}/{} at {} ms shows its url as {}, which no write it may have applied gave it",
                p.gateway,
                r.server_id,
                p.sent_ms,
                shown(showing)
            ));
            reported.insert(key);
        }
    }
}

/// A taken write stays: per gateway and server, in the order polls were
/// sent, the newest write a poll showed for certain (its URL, which no
/// earlier write gave) is never followed by a poll showing a URL that only
/// writes finished before it began gave. Servers some write to which went
/// unanswered (it may land at any time), or is not in mcpsim's words, are
/// not judged.
fn taken_writes_stay(e: &Evidence<'_>, findings: &mut Vec<String>) {
    // (gateway, server id) -> the newest write shown for certain: its index
    // among the server's writes, and when the poll showing it was answered.
    let mut newest: BTreeMap<(String, String), (usize, u64)> = BTreeMap::new();
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for (p, r, showing) in rows_with_urls(e) {
        let key = (p.gateway.clone(), r.server_id.clone());
        if reported.contains(&key) {
            continue;
        }
        let writes = definitions::defining(e, &p.gateway, &r.server_id, &r.name);
        let readable = writes
            .iter()
            .all(|w| w.answer.is_some() && !w.extra_fields && w.spec.is_some());
        if writes.is_empty() || !readable {
            continue;
        }
        if let Some(&(high, shown_ms)) = newest.get(&key) {
            let before = &writes[..high];
            let since = &writes[high..];
            let goes_back = p.sent_ms >= shown_ms
                && !since.iter().any(|w| url(w) == Some(showing))
                && before.iter().any(|w| url(w) == Some(showing))
                && before
                    .iter()
                    .filter(|w| url(w) == Some(showing))
                    .all(|w| w.answered_ms.is_some_and(|a| a <= writes[high].sent_ms));
            if goes_back {
                findings.push(format!(
                    "{}/{} showed the url {} that the {} sent at {} ms gave it, yet at {} ms it shows {} again, which only earlier writes gave it",
                    p.gateway,
                    r.server_id,
                    shown(url(writes[high]).unwrap_or_default()),
                    match writes[high].kind {
                        WriteKind::Create => "create",
                        WriteKind::Update => "update",
                        WriteKind::Delete => "delete",
                    },
                    writes[high].sent_ms,
                    p.sent_ms,
                    shown(showing)
                ));
                reported.insert(key);
                continue;
            }
        }
        // The newest write this poll shows for certain: one sent before
        // it was answered whose URL no earlier write gave.
        let certain = writes.iter().enumerate().rev().find(|(k, w)| {
            w.sent_ms <= p.answered_ms
                && url(w) == Some(showing)
                && !writes[..*k].iter().any(|o| url(o) == Some(showing))
        });
        if let Some((k, _)) = certain {
            let entry = newest.entry(key).or_insert((k, p.answered_ms));
            if k > entry.0 {
                *entry = (k, p.answered_ms);
            }
        }
    }
}

/// The URL a write in mcpsim's words gave its server.
fn url(w: &WriteRecord) -> Option<&str> {
    w.spec.as_ref().map(|s| s.url.as_str())
}
