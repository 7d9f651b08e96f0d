//! What the operator registered, in mcpsim's words: the definition in force
//! for a server, and the URLs a server may show.
//!
//! Outside-in: it reads the operator's writes and the scenario's config
//! servers. A write in the gateway's own shape (a native or raw body, or a
//! spec with extra fields) cannot be read here, so a server any such write
//! may have touched has no known definition, and nothing is judged from it.
//! A create whose id never came back (no answer, and no id asked for) may
//! have made any server of its name, so it counts for each of them.

use mcpsim_sut::ServerDef;

use super::Evidence;
use crate::observe;
use crate::operator::{WriteKind, WriteRecord};

/// The writes that may have defined server `id`, named `name`, on gateways
/// sharing `gateway`'s store, in the order sent: creates and updates the
/// gateways took or did not answer, and creates of that name whose id
/// never came back.
pub(crate) fn defining<'a>(
    e: &'a Evidence<'_>,
    gateway: &str,
    id: &str,
    name: &str,
) -> Vec<&'a WriteRecord> {
    let sharing = observe::sharing(e.scenario, gateway);
    e.outcome
        .records
        .writes
        .iter()
        .filter(|w| {
            let ours = match &w.server_id {
                Some(written) => written == id,
                None => w.kind == WriteKind::Create && w.name == name,
            };
            w.kind != WriteKind::Delete && sharing.contains(&w.gateway) && ours && w.maybe_applied()
        })
        .collect()
}

/// The definition in force for server `id`, named `name`, on `gateway`: the
/// last create or update that may have applied, when every such write is in
/// mcpsim's words; for a server no write touched, the config server of that
/// name. None when mcpsim cannot tell.
pub(crate) fn definition<'a>(
    e: &'a Evidence<'_>,
    gateway: &str,
    id: &str,
    name: &str,
) -> Option<&'a ServerDef> {
    let writes = defining(e, gateway, id, name);
    if writes.is_empty() {
        let host = e.scenario.gateways.iter().find(|g| g.host == gateway)?;
        if !host.config.is_null() {
            return None;
        }
        return host.servers.iter().find(|s| s.name == name);
    }
    if writes.iter().any(|w| w.spec.is_none() || w.extra_fields) {
        return None;
    }
    let last = writes.last()?;
    // A last create whose id never came back may have made another server
    // of this name: it settles nothing unless every candidate agrees.
    if last.server_id.is_none() && writes.iter().any(|w| w.spec != last.spec) {
        return None;
    }
    last.spec.as_ref()
}

/// Every URL server `id`, named `name`, may show on `gateway`: those of the
/// creates and updates that may have applied to it. None when a write
/// mcpsim cannot read may have applied, or no write defined it (a config
/// server).
pub(crate) fn urls<'a>(
    e: &'a Evidence<'_>,
    gateway: &str,
    id: &str,
    name: &str,
) -> Option<Vec<&'a str>> {
    let writes = defining(e, gateway, id, name);
    if writes.is_empty() || writes.iter().any(|w| w.spec.is_none() || w.extra_fields) {
        return None;
    }
    Some(
        writes
            .iter()
            .filter_map(|w| w.spec.as_ref().map(|s| s.url.as_str()))
            .collect(),
    )
}

/// Every definition that may have applied to server `id`, named `name`, on
/// `gateway` at some time of the run: those of its creates and updates, or
/// its config server. None when mcpsim cannot tell.
pub(crate) fn definitions<'a>(
    e: &'a Evidence<'_>,
    gateway: &str,
    id: &str,
    name: &str,
) -> Option<Vec<&'a ServerDef>> {
    let writes = defining(e, gateway, id, name);
    if writes.is_empty() {
        return definition(e, gateway, id, name).map(|d| vec![d]);
    }
    writes
        .iter()
        .map(|w| w.spec.as_ref().filter(|_| !w.extra_fields))
        .collect()
}
