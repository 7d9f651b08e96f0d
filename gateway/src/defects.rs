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

/// Declares [`Defect`] and its one table: each row is the variant, the
/// kebab-case name a command line uses, what goes wrong, and where it was
/// seen in the wild (see `docs/domain.md`).
macro_rules! defects {
    ($($variant:ident, $name:literal, $description:literal, $seen_in:literal;)*) => {
        /// One known defect of real MCP gateways.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Defect {
            $($variant,)*
        }

        /// The table: (defect, name, description, seen in).
        const TABLE: &[(Defect, &str, &str, &str)] = &[
            $((Defect::$variant, $name, $description, $seen_in),)*
        ];
    };
}

defects! {
    RestDropsOauth2Flow, "rest-drops-oauth2-flow",
        "the REST/database path drops oauth2_flow and only an explicit flow enables client \
         credentials, so a REST-registered OAuth2 server gets no token and no Authorization header",
        "LiteLLM 1.83.7, issue 27635 (no oauth2_flow column; defects 1 and 2 of the chain)";
    ErrorBecomesCancellation, "error-becomes-cancellation",
        "an upstream HTTP error or refused connection during discovery surfaces as a \
         cancellation and is swallowed into an empty tool list with no error",
        "LiteLLM 1.83.7 with MCP SDK 1.26, issue 27635 (defects 3 and 4 of the chain); \
         also 20715, 22928, 24089, 26700";
    HealthSkipsRuntimeToken, "health-skips-runtime-token",
        "the health check skips servers whose token is fetched at run time: status unknown, \
         error null, a fresh last_health_check",
        "LiteLLM 1.83.7, issue 27635 (defect 5 of the chain); also 24709, 18134, 13068";
    ForwardsCallerAuthorization, "forwards-caller-authorization",
        "the caller's own Authorization header is forwarded upstream and overrides the \
         server's credentials",
        "LiteLLM issue 23652, fixed by PR 26871";
    NoInvalidateOn401, "no-invalidate-on-401",
        "a cached token is never invalidated on 401; a revoked token is reused until its TTL ends",
        "code reading of LiteLLM 1.83.7";
    DiscoveryTiedToRequest, "discovery-tied-to-request",
        "create and update await discovery inside the request, so a client that gives up \
         cancels it and the attempt never ends",
        "code reading of LiteLLM 1.83.7 (outer cancellation during listing is swallowed)";
    SharedTimeoutBudget, "shared-timeout-budget",
        "one listing timeout covers the token fetch and the listing together",
        "LiteLLM issue 20715 (PR 20891): asyncio.wait_for around anyio cancel scopes";
    NoReinitializeOn404, "no-reinitialize-on-404",
        "a 404 Session terminated fails the listing instead of starting a new session",
        "observed with MCP SDK 1.26 (LiteLLM 1.83.7)";
    FirstPageOnly, "first-page-only",
        "only the first tools/list page is kept; nextCursor is ignored",
        "failures reported as an empty or partial success: LiteLLM issues 24089, 26700, PR 33153";
    SupersededResultWins, "superseded-result-wins",
        "a superseded discovery attempt is not cancelled and writes its result over the newer one",
        "code reading of LiteLLM 1.83.7 (discovery is not owned by the registry)";
    NoRediscoveryAfterRestart, "no-rediscovery-after-restart",
        "after a restart, servers loaded from the store are registered but never discovered \
         until something touches them",
        "LiteLLM issues 31775, 32575";
    DataPlaneNeverSyncs, "data-plane-never-syncs",
        "a data plane never reads the store, so it knows only the servers it wrote itself",
        "LiteLLM issues 12359, 15061, 22325";
    StoreOutageDropsServers, "store-outage-drops-servers",
        "a data plane whose store read fails drops every server it learned from the store",
        "LiteLLM issues 12359, 15061, 22325 (database sync of the data plane)";
    MissingCredentialsFailOpen, "missing-credentials-fail-open",
        "a registration whose auth type needs credentials but carries none (an update that \
         sets credentials to null) is taken as no authentication, so the upstream is called \
         with no Authorization",
        "LiteLLM PR 41364 (fail closed on missing upstream credentials)";
    UnstatedExpiryKeptAnHour, "unstated-expiry-kept-an-hour",
        "a token answer without expires_in is kept for an hour, whatever lifetime the gateway \
         was told such tokens have, so a short-lived token is presented long after it died",
        "LiteLLM PR 32259";
    ExpiryKeptRelative, "expiry-kept-relative",
        "a cached token's expiry is counted from its last use, not from when it was issued, \
         so a token in steady use is never refreshed",
        "mcp2cli PR 51; mcp-mux PR 33 (expiry stored as a relative expires_in)";
    ForwardsClientProtocolVersion, "forwards-client-protocol-version",
        "the caller's own MCP-Protocol-Version header is passed on to the upstream, beside \
         the version the gateway's session negotiated, so a strict upstream refuses the call",
        "agentgateway issue 2980";
    PrefixOnlyWithTwoUpstreams, "prefix-only-with-two-upstreams",
        "tool names carry the server's prefix only while two or more servers are registered; \
         with one, the bare upstream names are listed and called, and every name changes when \
         a second server arrives",
        "agentgateway issue 495";
    DashSplitAmbiguous, "dash-split-ambiguous",
        "a prefixed tool name is split at its last '-', so a tool whose own name has a '-' \
         is routed to no server (or the wrong one)",
        "LiteLLM issue 15725";
    SanitizedNamesCollide, "sanitized-names-collide",
        "tool names are sanitized to [A-Za-z0-9_-] and duplicates dropped, so two upstream \
         tools that differ only in '.' and '_' become one, the first listed winning",
        "craft-agents-oss issue 1002";
    ErrorListedAsHealthy, "error-listed-as-healthy",
        "a failed listing becomes an empty tool list, and an empty list is reported healthy",
        "LiteLLM issue 18134";
    ShortHealthTimeout, "short-health-timeout",
        "the health check gets a quarter of the listing timeout, so an upstream slower than \
         that is reported unhealthy while its tools still work",
        "ContextForge issue 4785, PR 4862";
    NeverRestoredAfterRecovery, "never-restored-after-recovery",
        "after an unhealthy result the server is never checked again, so an upstream that \
         recovers stays unhealthy until something rewrites it",
        "ContextForge PR 4499";
    StaleToolsKept, "stale-tools-kept",
        "a server whose check fails keeps listing the tools of its last good listing",
        "Kuadrant/mcp-gateway issue 665";
    StatelessUpstreamRefused, "stateless-upstream-refused",
        "an initialize answer without Mcp-Session-Id is refused, so a stateless upstream is \
         never listed",
        "ContextForge issue 5484";
    Delete404FailsSession, "delete-404-fails-session",
        "the session's closing DELETE is part of the exchange, and its 404 (the upstream had \
         already ended the session) fails a listing that succeeded",
        "typescript-sdk PR 2466";
    InitializeTwicePerExchange, "initialize-twice-per-exchange",
        "every exchange opens a throwaway session before the real one: two initializes per \
         listing or call",
        "FastMCP issues 2019, 3466";
    EmptySseDataParsed, "empty-sse-data-parsed",
        "an SSE event's empty data field (a priming event) is parsed as JSON, and the error \
         fails the exchange",
        "agentgateway PR 681";
    FirstSseEventOnly, "first-sse-event-only",
        "only the first SSE event is read, so a notification before the response fails the \
         exchange",
        "envoy ai-gateway issue 2219";
    CrlfSseNotSplit, "crlf-sse-not-split",
        "SSE lines are split on LF alone, so a CRLF stream is one event and several messages \
         in it are never told apart",
        "envoy ai-gateway issue 1398";
    CutStreamHangs, "cut-stream-hangs",
        "a reply stream that breaks before the response raises nothing: the exchange waits \
         until its timeout",
        "python-sdk issue 1577, PR 3052";
    HttpErrorAfterInitializeHangs, "http-error-after-initialize-hangs",
        "an error status after initialize is swallowed: the exchange waits until its timeout \
         and the status is lost",
        "python-sdk issue 2110, PR 2047";
    ProtocolVersionHardCoded, "protocol-version-hard-coded",
        "the MCP-Protocol-Version header names the client's own latest revision, not the one \
         the server chose",
        "envoy ai-gateway issue 2542";
    NoStuckCursorGuard, "no-stuck-cursor-guard",
        "a nextCursor that repeats is followed again and again until the listing times out",
        "codebase-memory-mcp issue 1247 (the guard is in ContextForge get_list_paginated)";
    NoPeriodicRediscovery, "no-periodic-rediscovery",
        "after a healthy listing the server is never checked again: only writes start \
         attempts, so a changed tool set stays stale",
        "ContextForge issue 3745";
    NestedCredentialsIgnored, "nested-credentials-ignored",
        "the runtime token request reads client_id and client_secret from top-level keys a \
         REST registration does not have, so the nested credentials never reach the token endpoint",
        "LiteLLM issue 37222";
    ExplicitFlowHasNoColumn, "explicit-flow-has-no-column",
        "a REST create or update that states oauth2_flow fails with 500: the database has no \
         column to store the flow in",
        "LiteLLM PR 29690";
    ClientCredentialsAsPerUser, "client-credentials-as-per-user",
        "a client-credentials server is treated as needing a per-user token: a tool call gets \
         401 with an OAuth challenge and never reaches the upstream",
        "LiteLLM PRs 33582, 33586";
    TokenCacheSurvivesUpdate, "token-cache-survives-update",
        "the token cache is keyed by server only and not invalidated on update, so a token \
         fetched with the old credentials or scopes is sent until its TTL ends",
        "LiteLLM PR 32259";
    AudienceNotSent, "audience-not-sent",
        "the configured audience is not sent with the client-credentials grant",
        "LiteLLM PR 32259";
    ResourceNotSent, "resource-not-sent",
        "no RFC 8707 resource parameter is sent with the client-credentials grant",
        "LiteLLM PR 34265; ContextForge 1.0.7 (oauth_manager.py)";
    ClientAuthMethodFixed, "client-auth-method-fixed",
        "the client authentication method is fixed: an endpoint that refuses it as \
         invalid_client is never asked the other way",
        "LiteLLM PR 31635; rmcp PR 648; archestra issue 7977";
    ScopesNotSent, "scopes-not-sent",
        "the configured scopes never reach the token request",
        "MCP python-sdk 1.29 (ClientCredentialsOAuthProvider)";
    NoRefreshOnExpiry, "no-refresh-on-expiry",
        "one token per server definition, never fetched again: not when it expires, not after \
         the upstream refused it",
        "ContextForge issue 1023; LiteLLM issue 33072; MetaMCP issue 142";
    ClientBrokenAfterError, "client-broken-after-error",
        "one 401 or 5xx from the upstream leaves the server's client broken: every later \
         exchange fails with the stored error, without contacting the upstream, until an update",
        "FastMCP issue 4825";
    CredentialsUnmaskedInRow, "credentials-unmasked-in-row",
        "the single-server row (GET one, and the answer to a create or an update) shows the \
         credentials unmasked",
        "ContextForge issue 601";
    ListChangedIgnored, "list-changed-ignored",
        "a notifications/tools/list_changed on the listening stream is read and ignored: the \
         tool set stays stale until the next periodic check",
        "bifrost issue 6885";
    Get405RetryLoop, "get-405-retry-loop",
        "a 405 to the listening GET (a server that offers no stream) is taken for a passing \
         failure and the GET is sent again at once, without end",
        "envoy ai-gateway issue 1924; python-sdk PR 1943";
    OneUpstreamAbortsAggregate, "one-upstream-aborts-aggregate",
        "the tools of every server are answered with an error when one server's last check \
         failed to connect, so the tools of the healthy servers cannot be listed at all",
        "agentgateway issue 1266";
    One401EmptiesAggregate, "one-401-empties-aggregate",
        "the tools of every server are answered as an empty list when one server's last check \
         got a 401, so the tools of the healthy servers vanish from the aggregate",
        "LiteLLM PR 31684";
    ToolRoutesPerReplica, "tool-routes-per-replica",
        "a tool call is routed only by a map of tool names that listing the tools fills in \
         the process that listed them, so a call on a replica that shares the store but has \
         not listed them yet is answered 404",
        "LiteLLM issue 42655, PR 38955";
}

impl Defect {
    /// Every defect, in table order.
    pub const ALL: [Defect; TABLE.len()] = {
        let mut all = [Defect::RestDropsOauth2Flow; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static (Defect, &'static str, &'static str, &'static str) {
        // The table holds every variant, in declaration order.
        &TABLE[self as usize]
    }

    /// The kebab-case name a command line uses.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The defect with this kebab-case name.
    pub fn from_name(name: &str) -> Option<Defect> {
        TABLE.iter().find(|row| row.1 == name).map(|row| row.0)
    }

    /// What goes wrong, in one line.
    pub fn description(self) -> &'static str {
        self.row().2
    }

    /// Where it was seen in the wild (see `docs/domain.md`).
    pub fn seen_in(self) -> &'static str {
        self.row().3
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

impl Serialize for Defect {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of defects; empty by default. One bit per defect: the table may
/// hold at most 64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects(u64);

const _: () = assert!(TABLE.len() <= 64, "Defects holds at most 64 defects");

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
        assert_eq!(names.len(), TABLE.len());
        for (i, defect) in Defect::ALL.into_iter().enumerate() {
            assert_eq!(defect as usize, i, "the table is in declaration order");
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
        assert_eq!(all.iter().count(), TABLE.len());
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
