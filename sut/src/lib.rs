//! The seam between mcpsim's harness and a system under test.
//!
//! A *system under test* is a gateway that the harness places in a world of
//! fake token servers and fake MCP servers. Through this crate, and nothing
//! else, the two sides meet:
//!
//! - what the harness injects ([`Injected`]): an [`HttpClient`] for every
//!   outbound call, a [`Clock`], a client for a store host, and a sink for
//!   the events a gateway may report about itself ([`GatewayEvent`]);
//! - what a system under test gives back: an [`Instance`] that serves its
//!   API as an [`axum::Router`] on whatever listener the harness has, can be
//!   started and shut down, and is built afresh on every restart of its host
//!   ([`SystemUnderTest::build`]);
//! - what it declares about a host ([`Declared`]): its budgets and
//!   intervals, from which the checkers' bounds are made, never from a
//!   gateway's code;
//! - the API [`dialect`] the harness's operator speaks to it, and mcpsim's
//!   [`model`] of servers, statuses and tools that every dialect maps to.
//!
//! A gateway's own settings reach it as opaque JSON from the scenario; the
//! harness never names a gateway's types.
//!
//! Invariants: nothing here reads the wall clock except [`SystemClock`],
//! nothing draws randomness, and nothing depends on turmoil or on any
//! gateway.

pub mod clock;
pub mod dialect;
pub mod events;
pub mod http;
pub mod model;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use clock::{Clock, SystemClock};
pub use dialect::{
    ApiAnswer, ApiRequest, ContextForge, Dialect, LiteLlm, LiteLlmProxy, Registration,
};
pub use events::{
    AttemptReason, CancelReason, EventSink, GatewayEvent, MemorySink, NoEvents, StderrSink,
};
pub use http::{BodyChunks, BoxFuture, HttpClient, HttpError, Streamed};
pub use model::{
    CallAnswer, HealthView, ServerAuth, ServerDef, ServerView, Source, Status, ToolView, Transport,
    WriteAnswer,
};

/// What a gateway host is for in a split deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Management API and MCP traffic in one process.
    #[default]
    AllInOne,
    /// Takes management writes and owns the store; serves no MCP traffic.
    Control,
    /// Serves MCP traffic, learns servers from its config and the store.
    Data,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AllInOne => "all_in_one",
            Role::Control => "control",
            Role::Data => "data",
        }
    }
}

/// How a gateway authenticates itself to a token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    #[default]
    Form,
}

/// One gateway host of a scenario, as its system under test receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostSetup {
    pub host: String,
    /// The scenario's settings for this host, opaque to the harness.
    pub settings: Value,
    /// The config file, written by the gateway's dialect in the gateway's
    /// own format; `None` when the scenario gives none.
    pub config_file: Option<String>,
    /// Environment variables the config may refer to.
    pub env: BTreeMap<String, String>,
    /// The store host this gateway persists in, if any.
    pub store: Option<String>,
}

/// Where a gateway's store is, and the client to reach it with.
#[derive(Clone)]
pub struct StoreAccess {
    pub http: Arc<dyn HttpClient>,
    /// `http://<store host>`.
    pub base_url: String,
}

/// What the harness gives a system under test to run with.
#[derive(Clone)]
pub struct Injected {
    /// For every call to an upstream (token servers, MCP servers).
    pub http: Arc<dyn HttpClient>,
    pub clock: Arc<dyn Clock>,
    /// Where the gateway's own events go, if it reports any.
    pub events: Arc<dyn EventSink>,
    pub store: Option<StoreAccess>,
}

/// A running gateway, built for one life of its host.
pub trait Instance {
    /// Begins background work (discovery, sync). Called once, inside the
    /// runtime that should own that work.
    fn start(&self);
    /// The management API (and whatever else the gateway serves).
    fn router(&self) -> axum::Router;
    /// Stops background work.
    fn shutdown(&self);
}

/// How long a gateway keeps using a token, for the token-discipline
/// checker: a token stated to last `expires_in` is kept for
/// `max(expires_in − refresh_margin, min_reuse)`, and one whose lifetime is
/// not stated for `unstated_lifetime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TokenReuse {
    pub refresh_margin_ms: u64,
    pub min_reuse_ms: u64,
    pub unstated_lifetime_ms: u64,
}

impl Default for TokenReuse {
    /// One minute of margin, at least ten seconds of use, an hour when the
    /// lifetime is not stated: what OAuth2 clients commonly do.
    fn default() -> Self {
        TokenReuse {
            refresh_margin_ms: 60_000,
            min_reuse_ms: 10_000,
            unstated_lifetime_ms: 3_600_000,
        }
    }
}

impl TokenReuse {
    /// How long a token with this stated lifetime is kept.
    pub fn kept_ms(&self, expires_in_s: Option<u64>) -> u64 {
        match expires_in_s {
            Some(s) => (s * 1_000)
                .saturating_sub(self.refresh_margin_ms)
                .max(self.min_reuse_ms),
            None => self.unstated_lifetime_ms,
        }
    }
}

/// What a system under test declares about one of its hosts. Checkers make
/// their bounds from these, never from a gateway's code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Declared {
    /// Whether the host serves MCP traffic (tool lists, tool calls); a
    /// control plane does not.
    pub serves_tools: bool,
    /// Budget of one token request, if the gateway has its own for it.
    pub token_budget_ms: Option<u64>,
    /// Budget of one listing (initialize through the last page).
    pub listing_budget_ms: u64,
    /// Pause between two checks of a server; `None`: it never re-checks.
    pub recheck_interval_ms: Option<u64>,
    /// Pause between two reads of the store; `None`: it never reads it.
    pub sync_interval_ms: Option<u64>,
    /// Budget of one store call.
    pub store_budget_ms: Option<u64>,
    pub token_reuse: TokenReuse,
    /// Whether REST registrations survive a restart of the host.
    pub durable: bool,
    /// Whether the gateway reports [`GatewayEvent`]s.
    pub emits_events: bool,
    /// How long a write (create, update, delete) may take to be answered,
    /// for a gateway that does work before it answers (discovery, say);
    /// `None`: it answers at once, and the operator waits its usual 5 s.
    pub write_budget_ms: Option<u64>,
    /// Whether it listens on a server's stream for
    /// `notifications/tools/list_changed` and lists again when told: a
    /// promise the freshness rule of `consistency` holds it to.
    pub follows_list_changed: bool,
}

/// A host's settings or config that its system under test refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupError {
    /// Where in the host's part of the scenario: `settings.list_timeout_ms`,
    /// `config`.
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.path, self.reason)
    }
}

impl std::error::Error for SetupError {}

/// What a generated case asks of a gateway host, in mcpsim's words; a
/// system under test turns it into its own settings
/// ([`SystemUnderTest::settings_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub role: Role,
    /// Whether the host has a store host.
    pub with_store: bool,
    pub token_budget_ms: u64,
    pub listing_budget_ms: u64,
    pub recheck_interval_ms: u64,
    pub sync_interval_ms: u64,
    pub store_budget_ms: u64,
    pub client_auth: ClientAuth,
    /// How long to keep a token: a generated case with short-lived tokens
    /// asks for a short refresh margin, so that refreshes happen within
    /// the run.
    pub token_reuse: TokenReuse,
    /// Seeds the ids the gateway makes up.
    pub id_seed: u64,
}

/// A gateway that the harness can place in its world.
pub trait SystemUnderTest: Send + Sync + 'static {
    /// A short name for reports: `reference`.
    fn name(&self) -> String;

    /// The API dialect the harness's operator speaks to it.
    fn dialect(&self) -> &dyn Dialect;

    /// Reads a host's settings and config before the world exists, and
    /// says what the host will be. A refusal is an input error.
    fn declare(&self, host: &HostSetup) -> Result<Declared, SetupError>;

    /// Builds a fresh instance for one life of the host: at start, and
    /// again on every bounce. Runs inside the host's runtime, where the
    /// injected clock is readable.
    fn build(&self, host: &HostSetup, injected: Injected) -> Result<Box<dyn Instance>, String>;

    /// This system's settings for a generated profile; `None` when it does
    /// not support the profile (a split deployment, say).
    fn settings_for(&self, profile: &Profile) -> Option<Value>;

    /// The settings a gateway host has when its scenario gives none, as
    /// JSON; a written scenario leaves out the settings equal to these.
    /// Null (the default) keeps every setting a scenario gives.
    fn default_settings(&self) -> Value {
        Value::Null
    }
}

/// A shared system under test.
pub type Sut = Arc<dyn SystemUnderTest>;
