//! Generated scenarios: one [`Plan`] value holds every choice (registration
//! path, auth, latencies clustered around the gateway's timeouts, a restart,
//! and the simulation seed), so proptest shrinks all of it together. A plan
//! becomes an ordinary catalogue-format [`Scenario`], which is what a failure
//! is written as and replayed from.
//!
//! Every generated deployment persists REST registrations in a store host,
//! as the reference deployment does: without one, a restart would lose
//! acknowledged registrations by design, not by defect.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::scenario::Scenario;

/// How the server reaches the gateway that is asked about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegistrationPath {
    /// The config file of an all-in-one gateway.
    Config,
    /// REST create on an all-in-one gateway.
    Rest,
    /// REST create on a control plane; a data plane syncs it.
    RestOnControl,
    /// REST create sent straight to a data plane.
    RestOnData,
    /// The config file of a data plane beside a control plane.
    ConfigOnData,
    /// REST create with a wrong URL, then a PUT with the right one.
    RestThenUpdate,
    /// REST create, delete, and create again.
    DeleteThenCreate,
}

impl RegistrationPath {
    pub const ALL: [RegistrationPath; 7] = [
        RegistrationPath::Config,
        RegistrationPath::Rest,
        RegistrationPath::RestOnControl,
        RegistrationPath::RestOnData,
        RegistrationPath::ConfigOnData,
        RegistrationPath::RestThenUpdate,
        RegistrationPath::DeleteThenCreate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RegistrationPath::Config => "config",
            RegistrationPath::Rest => "rest",
            RegistrationPath::RestOnControl => "rest-on-control",
            RegistrationPath::RestOnData => "rest-on-data",
            RegistrationPath::ConfigOnData => "config-on-data",
            RegistrationPath::RestThenUpdate => "rest-then-update",
            RegistrationPath::DeleteThenCreate => "delete-then-create",
        }
    }

    fn split(self) -> bool {
        matches!(
            self,
            RegistrationPath::RestOnControl
                | RegistrationPath::RestOnData
                | RegistrationPath::ConfigOnData
        )
    }
}

/// How the gateway authenticates to the MCP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthPlan {
    None,
    Bearer,
    ClientCredentials {
        /// Whether `oauth2_flow: client_credentials` is stated (the reporter
        /// left it out).
        with_flow: bool,
        /// HTTP Basic instead of form-body client authentication.
        basic: bool,
        expires_in_s: u64,
    },
}

/// Which host a restart hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartTarget {
    /// The gateway that is asked (all-in-one, or the data plane).
    Gateway,
    /// The control plane (split deployments) or the gateway.
    Control,
    Store,
}

/// Every choice of one generated case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub seed: u64,
    pub path: RegistrationPath,
    pub auth: AuthPlan,
    pub latency_ms_max: u64,
    /// Sleep of the MCP server before each `tools/list` answer.
    pub list_latency_ms: u64,
    pub tool_count: usize,
    pub page_size: Option<usize>,
    pub sse: bool,
    pub restart: Option<(RestartTarget, u64)>,
}

/// The gateway's budgets in generated cases; latencies cluster around them.
pub const LIST_TIMEOUT_MS: u64 = 1_500;
pub const TOKEN_TIMEOUT_MS: u64 = 1_000;
const SYNC_INTERVAL_MS: u64 = 500;
/// The operator's last step is sent at 200 ms; allow it to complete.
const STEPS_DONE_MS: u64 = 400;

fn auth_strategy() -> impl Strategy<Value = AuthPlan> {
    prop_oneof![
        Just(AuthPlan::None),
        Just(AuthPlan::Bearer),
        (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(30u64), Just(3_600u64)]
        )
            .prop_map(
                |(with_flow, basic, expires_in_s)| AuthPlan::ClientCredentials {
                    with_flow,
                    basic,
                    expires_in_s,
                }
            ),
    ]
}

/// Plans with the defaults of `mcpsim explore`.
pub fn plan_strategy() -> impl Strategy<Value = Plan> {
    let latency = prop_oneof![
        4 => Just(0u64),
        1 => Just(LIST_TIMEOUT_MS / 2),
        // Just under and just over the listing budget: where races live.
        1 => Just(LIST_TIMEOUT_MS - 20),
        1 => Just(LIST_TIMEOUT_MS + 20),
    ];
    let restart = prop_oneof![
        3 => Just(None),
        1 => (
            prop_oneof![Just(RestartTarget::Gateway), Just(RestartTarget::Control), Just(RestartTarget::Store)],
            prop_oneof![Just(20u64), Just(150u64), Just(900u64)],
        )
            .prop_map(Some),
    ];
    (
        any::<u64>(),
        proptest::sample::select(RegistrationPath::ALL.to_vec()),
        auth_strategy(),
        1u64..=20,
        latency,
        1usize..=7,
        prop_oneof![Just(None), (1usize..=3).prop_map(Some)],
        any::<bool>(),
        restart,
    )
        .prop_map(
            |(
                seed,
                path,
                auth,
                latency_ms_max,
                list_latency_ms,
                tool_count,
                page_size,
                sse,
                restart,
            )| Plan {
                seed,
                path,
                auth,
                latency_ms_max,
                list_latency_ms,
                tool_count,
                page_size,
                sse,
                restart,
            },
        )
}

const CLIENT_SECRET: &str = "gen-client-secret-4711";
const BEARER: &str = "gen-bearer-token-4711";

impl Plan {
    /// How many `tools/list` pages the listing takes.
    fn pages(&self) -> u64 {
        match self.page_size {
            Some(size) => self.tool_count.div_ceil(size).max(1) as u64,
            None => 1,
        }
    }

    /// What the server must end as, when the plan makes it certain. A
    /// restart while the operator's steps are in flight can cut a request
    /// whose outcome the operator then never learns (as a person would
    /// not), so such plans state no expectation; every other check holds.
    fn expected_status(&self) -> Option<&'static str> {
        if self.restart.is_some_and(|(_, at_ms)| at_ms < STEPS_DONE_MS) {
            return None;
        }
        let listing = self.pages() * self.list_latency_ms;
        // Each page and the session around it cost a few message latencies.
        let overhead = (self.pages() + 4) * 3 * self.latency_ms_max;
        if listing + overhead + 50 < LIST_TIMEOUT_MS {
            Some("healthy")
        } else if listing > LIST_TIMEOUT_MS {
            Some("unhealthy")
        } else {
            None
        }
    }

    fn rest_body(&self, url: &str) -> Value {
        let mut body = json!({"server_name": "srv", "transport": "http", "url": url});
        match self.auth {
            AuthPlan::None => {}
            AuthPlan::Bearer => {
                body["auth_type"] = json!("bearer_token");
                body["credentials"] = json!({"auth_value": BEARER});
            }
            AuthPlan::ClientCredentials { with_flow, .. } => {
                body["auth_type"] = json!("oauth2");
                body["token_url"] = json!("http://auth/oauth/token");
                body["credentials"] =
                    json!({"client_id": "gen-client", "client_secret": CLIENT_SECRET});
                if with_flow {
                    body["oauth2_flow"] = json!("client_credentials");
                }
            }
        }
        body
    }

    fn config(&self) -> Value {
        let mut entry = json!({"url": "http://mcp/mcp"});
        match self.auth {
            AuthPlan::None => {}
            AuthPlan::Bearer => {
                entry["auth_type"] = json!("bearer_token");
                entry["auth_value"] = json!(BEARER);
            }
            AuthPlan::ClientCredentials { with_flow, .. } => {
                entry["auth_type"] = json!("oauth2");
                entry["token_url"] = json!("http://auth/oauth/token");
                entry["client_id"] = json!("gen-client");
                entry["client_secret"] = json!(CLIENT_SECRET);
                if with_flow {
                    entry["oauth2_flow"] = json!("client_credentials");
                }
            }
        }
        json!({"mcp_servers": {"srv": entry}})
    }

    /// The plan as a catalogue-format scenario.
    pub fn to_scenario(&self) -> Scenario {
        let client_auth = match self.auth {
            AuthPlan::ClientCredentials { basic: true, .. } => "basic",
            _ => "request_body",
        };
        let settings = |role: &str, id_seed: u64| {
            json!({"role": role, "token_timeout_ms": TOKEN_TIMEOUT_MS, "list_timeout_ms": LIST_TIMEOUT_MS,
                "check_interval_ms": 5_000, "sync_interval_ms": SYNC_INTERVAL_MS, "store_timeout_ms": 500,
                "token_client_auth": client_auth, "id_seed": id_seed})
        };
        let config_here = matches!(
            self.path,
            RegistrationPath::Config | RegistrationPath::ConfigOnData
        );
        let gateways = if self.path.split() {
            let mut data = json!({"host": "data", "store": "db", "settings": settings("data", 2)});
            if config_here {
                data["config"] = self.config();
            }
            json!([{"host": "control", "store": "db", "settings": settings("control", 1)}, data])
        } else {
            let mut gw =
                json!({"host": "gateway", "store": "db", "settings": settings("all_in_one", 1)});
            if config_here {
                gw["config"] = self.config();
            }
            json!([gw])
        };
        let url = "http://mcp/mcp";
        let steps = match self.path {
            RegistrationPath::Config | RegistrationPath::ConfigOnData => json!([]),
            RegistrationPath::Rest => json!([{"op": "create", "body": self.rest_body(url)}]),
            RegistrationPath::RestOnControl => {
                json!([{"gateway": "control", "op": "create", "body": self.rest_body(url)}])
            }
            RegistrationPath::RestOnData => {
                json!([{"gateway": "data", "op": "create", "body": self.rest_body(url)}])
            }
            RegistrationPath::RestThenUpdate => json!([
                {"op": "create", "body": self.rest_body("http://nowhere/mcp")},
                {"at_ms": 100, "op": "update", "server": "srv", "body": {"url": url}}
            ]),
            RegistrationPath::DeleteThenCreate => json!([
                {"op": "create", "body": self.rest_body(url)},
                {"at_ms": 100, "op": "delete", "server": "srv"},
                {"at_ms": 200, "op": "create", "body": self.rest_body(url)}
            ]),
        };
        let mut mcp = json!({"tool_count": self.tool_count, "reply": if self.sse { "sse" } else { "json" },
            "latency_ms": {"tools/list": self.list_latency_ms}});
        if let Some(size) = self.page_size {
            mcp["page_size"] = json!(size);
        }
        let mut token_servers = json!([]);
        match self.auth {
            AuthPlan::None => {}
            AuthPlan::Bearer => mcp["auth"] = json!({"type": "bearer", "token": BEARER}),
            AuthPlan::ClientCredentials { expires_in_s, .. } => {
                mcp["auth"] = json!({"type": "oauth", "issuer": "mcpsim-auth", "signing_key": "gen-signing-key-4711"});
                token_servers = json!([{"host": "auth", "config": {"signing_key": "gen-signing-key-4711",
                    "expires_in_s": expires_in_s,
                    "clients": [{"client_id": "gen-client", "client_secret": CLIENT_SECRET}]}}]);
            }
        }
        let mut faults = json!([]);
        if let Some((target, at_ms)) = self.restart {
            let host = match (target, self.path.split()) {
                (RestartTarget::Store, _) => "db",
                (RestartTarget::Gateway, true) => "data",
                (RestartTarget::Control, true) => "control",
                (_, false) => "gateway",
            };
            faults = json!([{"at_ms": at_ms, "verb": "bounce", "host": host}]);
        }
        let mut expect = json!({});
        if let Some(status) = self.expected_status() {
            expect = json!({"srv": {"status": status}});
            if status == "healthy" {
                expect["srv"]["tool_count"] = json!(self.tool_count);
            }
        }
        let value = json!({
            "description": format!("generated: {} with {:?}", self.path.name(), self.auth),
            "seed": self.seed,
            "deadline_ms": 8_000,
            "network": {"latency_ms_min": 1, "latency_ms_max": self.latency_ms_max},
            "gateways": gateways,
            "stores": [{"host": "db"}],
            "token_servers": token_servers,
            "mcp_servers": [{"host": "mcp", "config": mcp}],
            "operator": {"steps": steps},
            "faults": faults,
            "expect": expect,
        });
        Scenario::from_json("generated", &value.to_string())
            .expect("the generator only builds scenarios that the scenario model accepts")
    }
}
