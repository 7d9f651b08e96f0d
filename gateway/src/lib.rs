//! The reference MCP gateway: LiteLLM's management API shapes, fixed behaviour.
//!
//! A [`Gateway`] holds a registry of upstream MCP servers, discovers their
//! tools in the background and serves the management API as an axum
//! [`axum::Router`]. It never opens a socket or reads a clock itself: the
//! caller supplies an [`HttpClient`], a [`Clock`] and an [`EventSink`], so
//! the same code runs in the turmoil simulation and on real sockets.
//!
//! Architecture invariants:
//! - discovery belongs to the registry: no request handler awaits, owns or
//!   cancels discovery work;
//! - a discovery attempt is cancelled only by supersession (update), delete
//!   or shutdown, and a superseded result never overwrites a newer one;
//! - no secret appears in a response, an event or a log line.
//!
//! [`Reference`] places it in mcpsim's world as a system under test.
//!
//! [`GatewaySettings::defects`] can switch on known defects of real gateways
//! ([`Defect`]), each of which breaks one of these on purpose; none is on
//! unless the code that builds the gateway asks for it.

mod api;
pub mod clock;
mod defects;
pub mod http_client;
pub mod mcp_client;
mod reference;
mod registry;
pub mod spec;
pub mod store;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use clock::{Clock, SystemClock};
pub use defects::{Defect, Defects};
pub use http_client::{HttpClient, HttpError, ReqwestClient};
pub use mcpsim_sut::{
    AttemptReason, CancelReason, EventSink, GatewayEvent, MemorySink, Role, Status, StderrSink,
};
pub use reference::Reference;
pub use spec::{ConfigFile, Source, SpecError};
pub use token::ClientAuthMethod;

/// Gateway settings; a scenario may set any of them but `defects`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    pub role: Role,
    /// Budget for one token request, outside the listing's budget.
    pub token_timeout_ms: u64,
    /// Budget for one listing session (initialize through the last page).
    pub list_timeout_ms: u64,
    /// Pause between the end of one discovery attempt and the next.
    pub check_interval_ms: u64,
    pub token_expiry_skew_s: u64,
    pub token_ttl_floor_s: u64,
    pub token_default_ttl_s: u64,
    pub token_client_auth: ClientAuthMethod,
    /// Pause between two reads of the store (LiteLLM syncs every 30 s).
    pub sync_interval_ms: u64,
    /// Budget for one store call; an open connection across a partition
    /// hangs, so without it a sync would wait forever.
    pub store_timeout_ms: u64,
    /// Seeds the ids the gateway makes up (server ids of REST registrations).
    pub id_seed: u64,
    /// Known defects to reproduce; none by default. Never read from JSON:
    /// a scenario file cannot turn one on, only the code that builds the
    /// gateway can.
    #[serde(skip)]
    pub defects: Defects,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            role: Role::AllInOne,
            token_timeout_ms: 10_000,
            list_timeout_ms: 30_000,
            check_interval_ms: 60_000,
            token_expiry_skew_s: 60,
            token_ttl_floor_s: 10,
            token_default_ttl_s: 3_600,
            token_client_auth: ClientAuthMethod::RequestBody,
            sync_interval_ms: 30_000,
            store_timeout_ms: 5_000,
            id_seed: 0,
            defects: Defects::none(),
        }
    }
}

/// What the gateway needs from the world it runs in.
#[derive(Clone)]
pub struct Deps {
    pub http: Arc<dyn HttpClient>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn EventSink>,
    /// Where REST registrations persist; `None` keeps them in memory only,
    /// so they are lost on restart (as LiteLLM without a database).
    pub store: Option<Arc<dyn store::Store>>,
}

/// A config file that could not be loaded: which server, which field, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub server: String,
    pub error: SpecError,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mcp_servers.{}: {}", self.server, self.error)
    }
}

impl std::error::Error for ConfigError {}

/// The gateway: cheap to clone, all clones share one registry.
#[derive(Clone)]
pub struct Gateway {
    registry: Arc<registry::Registry>,
}

impl Gateway {
    /// A gateway with the servers of `config` registered but not yet
    /// discovered; [`Gateway::start`] begins discovery.
    pub fn new(
        settings: GatewaySettings,
        deps: Deps,
        config: &ConfigFile,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let registry = registry::Registry::new(settings, deps);
        for (name, entry) in &config.mcp_servers {
            let spec = spec::from_config(name, entry, env).map_err(|error| ConfigError {
                server: name.clone(),
                error,
            })?;
            registry.insert_config(spec).map_err(|error| ConfigError {
                server: name.clone(),
                error,
            })?;
        }
        Ok(Gateway {
            registry: Arc::new(registry),
        })
    }

    /// Starts discovery of every registered server. Call once, inside the
    /// runtime that should own the discovery tasks.
    pub fn start(&self) {
        self.registry.start();
    }

    /// Cancels every discovery task.
    pub fn shutdown(&self) {
        self.registry.shutdown();
    }

    /// The management API.
    pub fn router(&self) -> axum::Router {
        api::router(self.registry.clone(), self.registry.role())
    }

    /// How long a caller should allow one discovery attempt to take.
    pub fn attempt_budget(&self) -> Duration {
        self.registry.attempt_budget()
    }
}
