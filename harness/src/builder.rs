//! Scenarios built in Rust, without JSON: a typed builder with a default
//! for everything, checked by [`Scenario::validate`] exactly as a file is.
//!
//! ```
//! use mcpsim_harness::builder::*;
//! use mcpsim_harness::{ServerDef, Status};
//!
//! let scenario = Scenario::builder("one server from the config file ends healthy")
//!     .gateway(GatewayHost::new("gateway").server(ServerDef::http("docs", "http://docs/mcp")))
//!     .mcp_server(McpHost::new("docs").tools(3))
//!     .expect("docs", Expectation::status(Status::Healthy).tool_count(3))
//!     .build()
//!     .unwrap();
//! assert_eq!(scenario.gateways.len(), 1);
//! assert!(Scenario::builder("no gateway").build().is_err());
//! ```

use std::collections::BTreeMap;

/// The fakes' behaviours, for [`McpHost::config`] and [`TokenHost::config`].
pub use mcpsim_fakes::{
    AcceptedClientAuth, AuthMethod, ClientRegistration, GetStream, McpAuth, McpFailure,
    McpFailureRule, McpServerConfig, Paging, ReplyMode, SseStyle, StoreServerConfig, TokenFailure,
    TokenFailureRule, TokenServerConfig, ToolBehaviour, ToolChange, ToolSpec,
};
use mcpsim_sut::{ServerDef, Status};
use serde_json::Value;

pub use crate::scenario::{
    Action, Expectation, Fault, GatewayHost, McpHost, Network, Operator, Scenario, ScenarioError,
    Step, StoreHost, TokenHost, Verb,
};

impl Scenario {
    /// A scenario with nothing in it yet but its one-line story.
    pub fn builder(description: impl Into<String>) -> ScenarioBuilder {
        ScenarioBuilder {
            scenario: Scenario {
                description: description.into(),
                seed: 0,
                deadline_ms: 30_000,
                network: Network::default(),
                gateways: Vec::new(),
                token_servers: Vec::new(),
                mcp_servers: Vec::new(),
                stores: Vec::new(),
                operator: Operator::default(),
                faults: Vec::new(),
                expect: BTreeMap::new(),
                expect_store_unreachable: Vec::new(),
            },
        }
    }
}

/// Builds a [`Scenario`] piece by piece.
#[derive(Clone, Debug)]
pub struct ScenarioBuilder {
    scenario: Scenario,
}

impl ScenarioBuilder {
    pub fn seed(mut self, seed: u64) -> Self {
        self.scenario.seed = seed;
        self
    }

    pub fn deadline_ms(mut self, ms: u64) -> Self {
        self.scenario.deadline_ms = ms;
        self
    }

    pub fn network(mut self, network: Network) -> Self {
        self.scenario.network = network;
        self
    }

    /// Every message takes between `min` and `max` ms.
    pub fn latency_ms(mut self, min: u64, max: u64) -> Self {
        self.scenario.network.latency_ms_min = min;
        self.scenario.network.latency_ms_max = max;
        self
    }

    pub fn tick_ms(mut self, ms: u64) -> Self {
        self.scenario.network.tick_ms = ms;
        self
    }

    pub fn gateway(mut self, gateway: GatewayHost) -> Self {
        self.scenario.gateways.push(gateway);
        self
    }

    pub fn token_server(mut self, server: TokenHost) -> Self {
        self.scenario.token_servers.push(server);
        self
    }

    pub fn mcp_server(mut self, server: McpHost) -> Self {
        self.scenario.mcp_servers.push(server);
        self
    }

    pub fn store(mut self, store: StoreHost) -> Self {
        self.scenario.stores.push(store);
        self
    }

    pub fn step(mut self, step: Step) -> Self {
        self.scenario.operator.steps.push(step);
        self
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.scenario.faults.push(fault);
        self
    }

    pub fn expect(mut self, name: impl Into<String>, expectation: Expectation) -> Self {
        self.scenario.expect.insert(name.into(), expectation);
        self
    }

    pub fn expect_store_unreachable(mut self, gateway: impl Into<String>) -> Self {
        self.scenario.expect_store_unreachable.push(gateway.into());
        self
    }

    pub fn poll_interval_ms(mut self, ms: u64) -> Self {
        self.scenario.operator.poll_interval_ms = ms;
        self
    }

    pub fn poll_until_ms(mut self, ms: u64) -> Self {
        self.scenario.operator.poll_until_ms = ms;
        self
    }

    /// The operator's own key, sent with every request; a secret.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.scenario.operator.api_key = Some(key.into());
        self
    }

    /// After settling, call every listed tool of every healthy server.
    pub fn call_tools(mut self) -> Self {
        self.scenario.operator.call_tools = true;
        self
    }

    /// The scenario, checked as a file would be.
    pub fn build(self) -> Result<Scenario, ScenarioError> {
        self.scenario.validate()?;
        Ok(self.scenario)
    }
}

impl GatewayHost {
    pub fn new(host: impl Into<String>) -> Self {
        GatewayHost {
            host: host.into(),
            settings: Value::Null,
            config: Value::Null,
            servers: Vec::new(),
            store: None,
            env: BTreeMap::new(),
        }
    }

    /// The system under test's own settings for this host.
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    /// A server for the config file, in mcpsim's words.
    pub fn server(mut self, server: ServerDef) -> Self {
        self.servers.push(server);
        self
    }

    /// The config file in the gateway's own format, verbatim.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    pub fn store(mut self, store: impl Into<String>) -> Self {
        self.store = Some(store.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }
}

impl TokenHost {
    pub fn new(host: impl Into<String>) -> Self {
        TokenHost {
            host: host.into(),
            listening: true,
            listen_after_ms: None,
            config: TokenServerConfig::default(),
        }
    }

    pub fn config(mut self, config: TokenServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Nothing listens until `ms` of simulated time.
    pub fn listen_after_ms(mut self, ms: u64) -> Self {
        self.listen_after_ms = Some(ms);
        self
    }

    /// The host is up but nothing listens: connects are refused.
    pub fn not_listening(mut self) -> Self {
        self.listening = false;
        self
    }
}

impl McpHost {
    pub fn new(host: impl Into<String>) -> Self {
        McpHost {
            host: host.into(),
            listening: true,
            listen_after_ms: None,
            config: McpServerConfig::default(),
        }
    }

    pub fn config(mut self, config: McpServerConfig) -> Self {
        self.config = config;
        self
    }

    /// `n` generated tools (`tool_000`, ...).
    pub fn tools(mut self, n: usize) -> Self {
        self.config.tool_count = Some(n);
        self
    }

    /// Nothing listens until `ms` of simulated time.
    pub fn listen_after_ms(mut self, ms: u64) -> Self {
        self.listen_after_ms = Some(ms);
        self
    }

    /// The host is up but nothing listens: connects are refused.
    pub fn not_listening(mut self) -> Self {
        self.listening = false;
        self
    }
}

impl StoreHost {
    pub fn new(host: impl Into<String>) -> Self {
        StoreHost {
            host: host.into(),
            config: StoreServerConfig::default(),
        }
    }
}

impl Step {
    fn of(action: Action) -> Self {
        Step {
            at_ms: 0,
            gateway: None,
            with_previous: false,
            give_up_after_ms: None,
            raw_body: None,
            extra_fields: None,
            bad_input: false,
            action,
        }
    }

    /// Register a server, written by the gateway's dialect.
    pub fn create(server: ServerDef) -> Self {
        Step::of(Action::Create {
            body: None,
            spec: Some(server),
        })
    }

    /// Register a server with the gateway's own body, sent verbatim.
    pub fn create_native(body: Value) -> Self {
        Step::of(Action::Create {
            body: Some(body),
            spec: None,
        })
    }

    /// Change the server created as `name` to this definition.
    pub fn update(name: impl Into<String>, server: ServerDef) -> Self {
        Step::of(Action::Update {
            server: name.into(),
            body: None,
            spec: Some(server),
        })
    }

    /// Change the server created as `name` with the gateway's own body.
    pub fn update_native(name: impl Into<String>, body: Value) -> Self {
        Step::of(Action::Update {
            server: name.into(),
            body: Some(body),
            spec: None,
        })
    }

    /// Register a server with a body sent byte for byte (malformed, say).
    pub fn create_raw(body: impl Into<String>) -> Self {
        let mut step = Step::of(Action::Create {
            body: None,
            spec: None,
        });
        step.raw_body = Some(body.into());
        step
    }

    /// Change the server created as `name` with a body sent byte for byte.
    pub fn update_raw(name: impl Into<String>, body: impl Into<String>) -> Self {
        let mut step = Step::of(Action::Update {
            server: name.into(),
            body: None,
            spec: None,
        });
        step.raw_body = Some(body.into());
        step
    }

    pub fn delete(name: impl Into<String>) -> Self {
        Step::of(Action::Delete {
            server: name.into(),
        })
    }

    /// Sent at `ms` of simulated time (or at once, if that has passed).
    pub fn at_ms(mut self, ms: u64) -> Self {
        self.at_ms = ms;
        self
    }

    /// Sent to this gateway host instead of the first.
    pub fn on(mut self, gateway: impl Into<String>) -> Self {
        self.gateway = Some(gateway.into());
        self
    }

    /// Sent together with the previous step, racing it.
    pub fn with_previous(mut self) -> Self {
        self.with_previous = true;
        self
    }

    /// A field set at the top level of the body the dialect writes for the
    /// step's spec.
    pub fn extra_field(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra_fields
            .get_or_insert_with(serde_json::Map::new)
            .insert(name.into(), value);
        self
    }

    /// A bad input: the gateway must refuse it with a 4xx, changing nothing.
    pub fn bad_input(mut self) -> Self {
        self.bad_input = true;
        self
    }

    /// The operator's client gives up after `ms` and drops the connection.
    pub fn give_up_after_ms(mut self, ms: u64) -> Self {
        self.give_up_after_ms = Some(ms);
        self
    }
}

impl Fault {
    pub fn crash(at_ms: u64, host: impl Into<String>) -> Self {
        Fault {
            at_ms,
            verb: Verb::Crash { host: host.into() },
        }
    }

    pub fn bounce(at_ms: u64, host: impl Into<String>) -> Self {
        Fault {
            at_ms,
            verb: Verb::Bounce { host: host.into() },
        }
    }

    pub fn partition(at_ms: u64, a: impl Into<String>, b: impl Into<String>) -> Self {
        Fault {
            at_ms,
            verb: Verb::Partition {
                a: a.into(),
                b: b.into(),
            },
        }
    }

    pub fn repair(at_ms: u64, a: impl Into<String>, b: impl Into<String>) -> Self {
        Fault {
            at_ms,
            verb: Verb::Repair {
                a: a.into(),
                b: b.into(),
            },
        }
    }

    pub fn hold(at_ms: u64, a: impl Into<String>, b: impl Into<String>) -> Self {
        Fault {
            at_ms,
            verb: Verb::Hold {
                a: a.into(),
                b: b.into(),
            },
        }
    }

    pub fn release(at_ms: u64, a: impl Into<String>, b: impl Into<String>) -> Self {
        Fault {
            at_ms,
            verb: Verb::Release {
                a: a.into(),
                b: b.into(),
            },
        }
    }
}

impl Expectation {
    /// The server must end with this status.
    pub fn status(status: Status) -> Self {
        Expectation {
            status: Some(status),
            ..Expectation::default()
        }
    }

    /// The server must end listing this many tools.
    pub fn tool_count(mut self, n: usize) -> Self {
        self.tool_count = Some(n);
        self
    }

    /// The server's error must contain this text.
    pub fn error_contains(mut self, part: impl Into<String>) -> Self {
        self.error_contains = Some(part.into());
        self
    }
}
