//! Switchable known defects: failure modes that real gateways shipped.
//!
//! Each [`Defect`] reproduces one bug from `docs/domain.md` at the place in
//! the reference gateway where the real bug lives; every such place says so
//! in a comment. All are off by default, and a scenario file cannot turn one
//! on: [`crate::GatewaySettings::defects`] is skipped by serde, so only the
//! code that builds a gateway (the harness, from a command-line flag) can.
//!
//! Invariant: with [`Defects::none`] the gateway behaves exactly as the
//! reference; a defect changes behaviour only where it is consulted.

use serde::Serialize;

/// One known defect of real MCP gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    RestDropsOauth2Flow,
    ErrorBecomesCancellation,
    HealthSkipsRuntimeToken,
    ForwardsCallerAuthorization,
    // kebab-case would give `no-invalidate-on401`.
    #[serde(rename = "no-invalidate-on-401")]
    NoInvalidateOn401,
    DiscoveryTiedToRequest,
    SharedTimeoutBudget,
    #[serde(rename = "no-reinitialize-on-404")]
    NoReinitializeOn404,
    FirstPageOnly,
    SupersededResultWins,
    NoRediscoveryAfterRestart,
    DataPlaneNeverSyncs,
    StoreOutageDropsServers,
}

impl Defect {
    /// Every defect, in declaration order.
    pub const ALL: [Defect; 13] = [
        Defect::RestDropsOauth2Flow,
        Defect::ErrorBecomesCancellation,
        Defect::HealthSkipsRuntimeToken,
        Defect::ForwardsCallerAuthorization,
        Defect::NoInvalidateOn401,
        Defect::DiscoveryTiedToRequest,
        Defect::SharedTimeoutBudget,
        Defect::NoReinitializeOn404,
        Defect::FirstPageOnly,
        Defect::SupersededResultWins,
        Defect::NoRediscoveryAfterRestart,
        Defect::DataPlaneNeverSyncs,
        Defect::StoreOutageDropsServers,
    ];

    /// The kebab-case name a command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Defect::RestDropsOauth2Flow => "rest-drops-oauth2-flow",
            Defect::ErrorBecomesCancellation => "error-becomes-cancellation",
            Defect::HealthSkipsRuntimeToken => "health-skips-runtime-token",
            Defect::ForwardsCallerAuthorization => "forwards-caller-authorization",
            Defect::NoInvalidateOn401 => "no-invalidate-on-401",
            Defect::DiscoveryTiedToRequest => "discovery-tied-to-request",
            Defect::SharedTimeoutBudget => "shared-timeout-budget",
            Defect::NoReinitializeOn404 => "no-reinitialize-on-404",
            Defect::FirstPageOnly => "first-page-only",
            Defect::SupersededResultWins => "superseded-result-wins",
            Defect::NoRediscoveryAfterRestart => "no-rediscovery-after-restart",
            Defect::DataPlaneNeverSyncs => "data-plane-never-syncs",
            Defect::StoreOutageDropsServers => "store-outage-drops-servers",
        }
    }

    /// The defect with this kebab-case name.
    pub fn from_name(name: &str) -> Option<Defect> {
        Defect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// What goes wrong, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Defect::RestDropsOauth2Flow => {
                "the REST/database path drops oauth2_flow and only an explicit flow enables client \
                 credentials, so a REST-registered OAuth2 server gets no token and no \
                 Authorization header"
            }
            Defect::ErrorBecomesCancellation => {
                "an upstream HTTP error or refused connection during discovery surfaces as a \
                 cancellation and is swallowed into an empty tool list with no error"
            }
            Defect::HealthSkipsRuntimeToken => {
                "the health check skips servers whose token is fetched at run time: status \
                 unknown, error null, a fresh last_health_check"
            }
            Defect::ForwardsCallerAuthorization => {
                "the caller's own Authorization header is forwarded upstream and overrides the \
                 server's credentials"
            }
            Defect::NoInvalidateOn401 => {
                "a cached token is never invalidated on 401; a revoked token is reused until its \
                 TTL ends"
            }
            Defect::DiscoveryTiedToRequest => {
                "create and update await discovery inside the request, so a client that gives up \
                 cancels it and the attempt never ends"
            }
            Defect::SharedTimeoutBudget => {
                "one listing timeout covers the token fetch and the listing together"
            }
            Defect::NoReinitializeOn404 => {
                "a 404 Session terminated fails the listing instead of starting a new session"
            }
            Defect::FirstPageOnly => {
                "only the first tools/list page is kept; nextCursor is ignored"
            }
            Defect::SupersededResultWins => {
                "a superseded discovery attempt is not cancelled and writes its result over the \
                 newer one"
            }
            Defect::NoRediscoveryAfterRestart => {
                "after a restart, servers loaded from the store are registered but never \
                 discovered until something touches them"
            }
            Defect::DataPlaneNeverSyncs => {
                "a data plane never reads the store, so it knows only the servers it wrote itself"
            }
            Defect::StoreOutageDropsServers => {
                "a data plane whose store read fails drops every server it learned from the store"
            }
        }
    }

    /// Where it was seen in the wild (see `docs/domain.md`).
    pub fn seen_in(self) -> &'static str {
        match self {
            Defect::RestDropsOauth2Flow => {
                "LiteLLM 1.83.7, issue 27635 (no oauth2_flow column; defects 1 and 2 of the chain)"
            }
            Defect::ErrorBecomesCancellation => {
                "LiteLLM 1.83.7 with MCP SDK 1.26, issue 27635 (defects 3 and 4 of the chain); \
                 also 20715, 22928, 24089, 26700"
            }
            Defect::HealthSkipsRuntimeToken => {
                "LiteLLM 1.83.7, issue 27635 (defect 5 of the chain); also 24709, 18134, 13068"
            }
            Defect::ForwardsCallerAuthorization => "LiteLLM issue 23652, fixed by PR 26871",
            Defect::NoInvalidateOn401 => "code reading of LiteLLM 1.83.7",
            Defect::DiscoveryTiedToRequest => {
                "code reading of LiteLLM 1.83.7 (outer cancellation during listing is swallowed)"
            }
            Defect::SharedTimeoutBudget => {
                "LiteLLM issue 20715 (PR 20891): asyncio.wait_for around anyio cancel scopes"
            }
            Defect::NoReinitializeOn404 => "observed with MCP SDK 1.26 (LiteLLM 1.83.7)",
            Defect::FirstPageOnly => {
                "failures reported as an empty or partial success: LiteLLM issues 24089, 26700, \
                 PR 33153"
            }
            Defect::SupersededResultWins => {
                "code reading of LiteLLM 1.83.7 (discovery is not owned by the registry)"
            }
            Defect::NoRediscoveryAfterRestart => "LiteLLM issues 31775, 32575",
            Defect::DataPlaneNeverSyncs => "LiteLLM issues 12359, 15061, 22325",
            Defect::StoreOutageDropsServers => {
                "LiteLLM issues 12359, 15061, 22325 (database sync of the data plane)"
            }
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of defects; empty by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects(u32);

impl Defects {
    /// No defect: the reference gateway.
    pub fn none() -> Defects {
        Defects(0)
    }

    /// This set and one more.
    pub fn with(self, defect: Defect) -> Defects {
        Defects(self.0 | defect.bit())
    }

    pub fn has(self, defect: Defect) -> bool {
        self.0 & defect.bit() != 0
    }

    /// The defects in the set, in [`Defect::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Defect> {
        Defect::ALL.into_iter().filter(move |d| self.has(*d))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Defect> for Defects {
    fn from_iter<I: IntoIterator<Item = Defect>>(iter: I) -> Self {
        iter.into_iter().fold(Defects::none(), Defects::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_round_trip() {
        let names: BTreeSet<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(names.len(), 13);
        for defect in Defect::ALL {
            assert_eq!(Defect::from_name(defect.name()), Some(defect));
            assert_eq!(
                serde_json::to_value(defect).unwrap(),
                serde_json::json!(defect.name())
            );
            assert!(!defect.description().is_empty());
            assert!(!defect.seen_in().is_empty());
        }
        assert_eq!(Defect::from_name("no-such-defect"), None);
    }

    #[test]
    fn sets_hold_what_was_added_in_all_order() {
        assert!(Defects::none().is_empty());
        assert_eq!(Defects::default(), Defects::none());
        let set = Defects::none()
            .with(Defect::StoreOutageDropsServers)
            .with(Defect::RestDropsOauth2Flow)
            .with(Defect::RestDropsOauth2Flow);
        assert!(set.has(Defect::RestDropsOauth2Flow));
        assert!(!set.has(Defect::FirstPageOnly));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Defect::RestDropsOauth2Flow, Defect::StoreOutageDropsServers]
        );
        let all: Defects = Defect::ALL.into_iter().collect();
        assert_eq!(all.iter().count(), 13);
    }

    #[test]
    fn settings_json_can_never_set_defects() {
        for json in [r#"{"defects": 1}"#, r#"{"defects": ["first-page-only"]}"#] {
            assert!(serde_json::from_str::<crate::GatewaySettings>(json).is_err());
        }
        let settings: crate::GatewaySettings = serde_json::from_str("{}").unwrap();
        assert!(settings.defects.is_empty());
        let mut on = settings.clone();
        on.defects = Defects::none().with(Defect::FirstPageOnly);
        let shown = serde_json::to_value(&on).unwrap();
        assert!(shown.get("defects").is_none(), "{shown}");
    }
}
