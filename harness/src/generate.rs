//! Generated scenarios: one [`Plan`] value holds every choice (registration
//! path, auth, latencies clustered around the gateway's timeouts, a restart,
//! and the simulation seed), so proptest shrinks all of it together. A plan
//! becomes an ordinary catalogue-format [`Scenario`], which is what a failure
//! is written as and replayed from.
//!
//! A plan is the same whatever the system under test; [`Plan::for_target`]
//! fits it to what the system supports (a gateway without a split
//! deployment or a store gets the all-in-one path next to the planned
//! one), and [`Plan::to_scenario`] builds the scenario through the typed
//! builder, with the system's own settings for the generated profile.
//!
//! Every generated deployment of a system that takes a store persists REST
//! registrations in a store host, as the reference deployment does:
//! without one, a restart would lose acknowledged registrations by design,
//! not by defect.
//!
//! Whatever a plan makes certain is stated in its scenario: the server's
//! final status where timing cannot change it, a gateway cut from its store
//! long enough to fail a sync (`expect_store_unreachable`), and the client
//! authentication a token server's registration insists on.
//!
//! Beside the server a case is about, about one case in five has
//! neighbours ([`Neighbour`]): config servers on MCP hosts of their own,
//! each of a kind that makes its end certain; and two split cases in five
//! have a replica, a second data plane on the same store. Both are drawn
//! after every other choice of a case, so that a case without them is the
//! case it was before they existed.
//!
//! Time horizons: a case ends once the server has settled and what was
//! planned to disturb it has played out, one to ten seconds in; a `horizon`
//! case lives several seconds more, with tokens that expire within it,
//! sessions the MCP server ends on its own, and many re-checks. Every step
//! of the simulation costs the same whatever happens in it, so every case
//! takes a tick of [`TICK_MS`]; every margin below is counted in messages
//! of that tick ([`Plan::hop_ms`]).

use std::collections::BTreeMap;

use mcpsim_fakes::{
    AcceptedClientAuth, AuthMethod, ClientRegistration, GetStream, McpAuth, McpFailure,
    McpFailureRule, McpServerConfig, Paging, ReplyMode, SseStyle, TokenFailure, TokenFailureRule,
    TokenServerConfig, ToolBehaviour, ToolChange, ToolSpec,
};
use mcpsim_sut::{
    ClientAuth, Profile, Registration, Role, ServerAuth, ServerDef, Status, Sut, TokenReuse,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::bad_inputs::{self, BadBody, BadInput};
use crate::builder::{
    Expectation, Fault, GatewayHost, McpHost, Scenario, ScenarioError, Step, StoreHost, TokenHost,
};

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
    /// REST create of a definition with one field wrong (see
    /// [`UpdateChange`]), then a PUT of the right one; on a control plane
    /// beside a data plane when the plan says so.
    RestThenUpdate,
    /// REST create, delete, and create again (with the same id, when the
    /// plan says so).
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
    /// The token server.
    Auth,
    /// The MCP server.
    Mcp,
}

/// Which link a partition or a hold cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The asked gateway and the MCP server.
    Upstream,
    /// The asked gateway and the token server.
    Token,
    /// The asked gateway and the store.
    Store,
}

/// A partition or a hold: which link, when, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub link: Link,
    pub at_ms: u64,
    pub for_ms: u64,
}

/// How the token server fails before it recovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFlake {
    ServerError,
    Hang,
    RateLimited,
}

/// Swarm switches: each case turns whole fault kinds on or off, so rare
/// combinations get room. A kind that is off contributes nothing, whatever
/// its parameters; shrinking turns kinds off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swarm {
    pub restart: bool,
    /// The operator's client gives up on the create and retries it.
    pub give_up: bool,
    pub partition: bool,
    pub hold: bool,
    /// The first `tools/list` answer is cut mid-stream.
    pub stream_cut: bool,
    /// Tokens issued so far are revoked while the gateway caches one.
    pub revoke: bool,
    /// The token server fails, then recovers.
    pub token_flaky: bool,
    /// The MCP server forgets the session mid-listing (404).
    pub session_drop: bool,
    /// Two creates of the same name race.
    pub twin_create: bool,
    /// A short re-check interval races registration and updates.
    pub recheck_race: bool,
    /// Token answers slow, just under or over the token budget.
    pub slow_token: bool,
    /// The MCP server (and token server) start listening only after the
    /// server was registered.
    pub late_upstream: bool,
    /// The upstreams behave as some real ones do (see [`Quirk`]).
    pub quirk: bool,
    /// The first listing(s) get a hostile answer (see [`Hostile`]).
    pub hostile: bool,
    /// A long run: short-lived tokens, server-side session expiry, many
    /// re-checks (see [`Horizon`]).
    pub horizon: bool,
    /// An update rotates one field of the registered server between two
    /// working values, on any path: config servers (over REST) and split
    /// deployments included.
    pub rewrite: bool,
    /// A slow store, whose snapshots are in flight while writes land.
    pub slow_store: bool,
    /// Bad inputs after the registration (see [`crate::bad_inputs`]), and
    /// an unknown field in the registration itself; for targets whose
    /// dialect is LiteLLM's.
    pub bad_input: bool,
    /// The MCP server answers its first `tools/list` requests with an
    /// error status (500, 503 or 403), then recovers: the mirror of
    /// `token-flaky`.
    pub mcp_flaky: bool,
}

/// A behaviour of real upstreams that a gateway must cope with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// SSE replies with keep-alive comments and notifications before the
    /// response, CRLF line endings.
    ChattySse,
    /// An empty first page whose cursor continues.
    EmptyFirstPage,
    /// A cursor that never advances: a gateway must stop, not loop.
    StuckCursor,
    /// The tool set grows at a stated instant; the server declares
    /// `tools.listChanged` and offers no stream to say it on (405 to a GET).
    ToolsChange,
    /// Tokens that state no `expires_in` and live three seconds; the
    /// gateway is told to keep such tokens one second, as an operator who
    /// knows no better than "short" would, and the operator polls past the
    /// first token's death ([`SHORT_TOKEN_RUN_MS`]).
    ShortUnstatedToken,
    /// A token endpoint that accepts HTTP Basic only.
    BasicOnlyToken,
    /// A token endpoint that accepts the form body only.
    FormOnlyToken,
    /// A token endpoint that requires `scope`, `resource` and `audience`
    /// (which the registration states).
    TokenNeedsParams,
    /// Sessions that the server ends after a number of requests.
    SessionExpiry,
    /// The tool set grows twice, at a stated instant and
    /// [`SECOND_CHANGE_AFTER_MS`] later, and the server says so each time
    /// on its GET stream, answered 200 and held open
    /// (`notifications/tools/list_changed`); the gateway re-checks
    /// rarely ([`LISTENING_CHECK_INTERVAL_MS`]), as one that listens may.
    OpenGetStream,
    /// Upstreams that let pass what the spec says a client MUST do
    /// otherwise (every fake insists by default): a request without the
    /// agreed `MCP-Protocol-Version` or without its session id, an `Accept`
    /// without both media types, a client that authenticates otherwise than
    /// it was registered.
    Lenient,
    /// A server that opens no session (stateless).
    Stateless,
    /// A server that speaks only 2025-03-26.
    OldRevision,
    /// A session DELETE that never answers.
    DeleteHangs,
    /// Tool names that MCP's rules allow (`[A-Za-z0-9_.-]`) and a gateway
    /// must keep apart: a `-` inside a name (`get-data`), and two names
    /// that differ only in `.` and `_` (`pat.batch`, `pat_batch`).
    AwkwardNames,
    /// An MCP server that trusts another signing key than the token
    /// server's (a key rotation one side missed): every issued token is
    /// refused with 401, whatever the gateway does. A gateway must end its
    /// attempt unhealthy, after at most one fresh token, not retry on.
    RejectsTokens,
}

impl Quirk {
    /// Whether this is a behaviour of the token endpoint (it takes effect
    /// only where the gateway fetches tokens).
    pub fn of_token_endpoint(self) -> bool {
        matches!(
            self,
            Quirk::ShortUnstatedToken
                | Quirk::BasicOnlyToken
                | Quirk::FormOnlyToken
                | Quirk::TokenNeedsParams
        )
    }
}

/// A hostile answer to a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    EndlessBody,
    Huge,
    InvalidUtf8,
    WrongContentType,
    WrongId,
    JsonRpcError,
    HtmlPage,
    Redirect,
}

impl Hostile {
    fn failure(self) -> McpFailure {
        match self {
            Hostile::EndlessBody => McpFailure::EndlessBody,
            Hostile::Huge => McpFailure::Huge { megabytes: 3 },
            Hostile::InvalidUtf8 => McpFailure::InvalidUtf8,
            Hostile::WrongContentType => McpFailure::WrongContentType,
            Hostile::WrongId => McpFailure::WrongId,
            Hostile::JsonRpcError => McpFailure::JsonRpcError { code: -32603 },
            Hostile::HtmlPage => McpFailure::HtmlPage,
            Hostile::Redirect => McpFailure::Redirect,
        }
    }
}

/// A long run: tokens that expire within it, sessions the MCP server ends on
/// its own, and the operator polling until `run_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// The `expires_in` tokens state (and live); the gateway is asked to
    /// refresh a second before.
    pub expires_in_s: u64,
    pub run_ms: u64,
    /// Sessions end this long after they opened: longer than any listing
    /// within the listing budget, shorter than the run.
    pub session_ttl_ms: u64,
}

/// A slow store: each request waits `latency_ms`, and a read's snapshot is
/// in flight for `snapshot_delay_ms` after it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLag {
    pub latency_ms: u64,
    pub snapshot_delay_ms: u64,
}

impl Swarm {
    /// The names of the kinds that are on.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.restart, "restart"),
            (self.give_up, "give-up"),
            (self.partition, "partition"),
            (self.hold, "hold"),
            (self.stream_cut, "stream-cut"),
            (self.revoke, "revoke"),
            (self.token_flaky, "token-flaky"),
            (self.session_drop, "session-drop"),
            (self.twin_create, "twin-create"),
            (self.recheck_race, "recheck-race"),
            (self.slow_token, "slow-token"),
            (self.late_upstream, "late-upstream"),
            (self.quirk, "quirk"),
            (self.hostile, "hostile"),
            (self.horizon, "horizon"),
            (self.rewrite, "rewrite"),
            (self.slow_store, "slow-store"),
            (self.bad_input, "bad-input"),
            (self.mcp_flaky, "mcp-flaky"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect()
    }
}

/// A second server beside the one the case is about, registered in the
/// asked gateway's config file, on an MCP host of its own: what one
/// upstream's trouble does to the tools of every server at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neighbour {
    /// Answers, with this many tools.
    Healthy { tools: usize },
    /// Nothing listens on its host: every connect is refused.
    Refused,
    /// Takes a static token other than the one registered: every request
    /// gets 401.
    Unauthorized,
    /// Never answers `initialize`.
    Hangs,
}

impl Neighbour {
    /// Its status once settled: each kind makes it certain.
    fn expected_status(self) -> Status {
        match self {
            Neighbour::Healthy { .. } => Status::Healthy,
            Neighbour::Refused | Neighbour::Unauthorized | Neighbour::Hangs => Status::Unhealthy,
        }
    }
}

fn neighbour_strategy() -> impl Strategy<Value = Neighbour> {
    prop_oneof![
        (1usize..=2).prop_map(|tools| Neighbour::Healthy { tools }),
        Just(Neighbour::Refused),
        Just(Neighbour::Unauthorized),
        Just(Neighbour::Hangs),
    ]
}

/// No neighbour in most cases; one or two in about one case in five.
/// Shrinks to none.
fn neighbours_strategy() -> impl Strategy<Value = Vec<Neighbour>> {
    prop_oneof![
        4 => Just(Vec::new()),
        1 => proptest::collection::vec(neighbour_strategy(), 1..=2),
    ]
}

/// The parameters of every fault kind, used only where its switch is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    pub give_up_after_ms: u64,
    pub partition: Cut,
    pub hold: Cut,
    /// How many `tools/list` requests pass before the cut or the 404.
    pub list_after: u32,
    pub revoke_at_ms: u64,
    /// The revocation comes late instead: when the operator stops polling
    /// and goes on to read and call tools, so that a call may be the first
    /// to present a revoked token.
    pub revoke_late: bool,
    pub token_flake: TokenFlake,
    pub token_failures: u32,
    pub check_interval_ms: u64,
    pub token_latency_ms: u64,
    /// A restart of the token or MCP server is a crash: it stays down.
    pub crash_upstream: bool,
    /// When a late upstream starts listening.
    pub listen_after_ms: u64,
    pub quirk: Quirk,
    pub hostile: Hostile,
    /// Requests a session takes before the server ends it (`SessionExpiry`).
    pub session_limit: SessionLimit,
    /// When the tool set grows (`ToolsChange`, `OpenGetStream`).
    pub tools_change_at_ms: u64,
    /// What the create of `rest-then-update` gets wrong.
    pub update_change: UpdateChange,
    /// What a `rewrite` update rotates, and when.
    pub rewrite_change: UpdateChange,
    pub rewrite_at_ms: u64,
    pub store_lag: StoreLag,
    pub horizon: Horizon,
    /// A cut of the store begins just before the last write that follows
    /// the first create (an update, a delete, a rotation) instead of after
    /// the writes: that write meets a store the gateway cannot reach, and
    /// must be refused and change nothing.
    pub store_cut_on_writes: bool,
    /// The bad writes of `bad-input`: the first, or both.
    pub bad_inputs: [BadInput; 2],
    pub both_bad_inputs: bool,
    /// With `bad-input`, the registration itself carries an unknown field.
    pub unknown_field: bool,
    /// `rest-then-update` on a control plane beside a data plane.
    pub update_on_control: bool,
    /// `delete-then-create` creates the server again under the same id.
    pub same_id: bool,
    /// The status `mcp-flaky` answers, and to how many `tools/list`
    /// requests.
    pub mcp_flake_status: u16,
    pub mcp_failures: u32,
    /// With a slow store, the writes that follow the first create go out
    /// so that they reach the store just after a sync's read of it took its
    /// snapshot, while that snapshot is on its way back to the gateway.
    pub write_races_sync: bool,
}

/// How many requests a session takes before the server ends it
/// (`SessionExpiry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionLimit {
    /// This many: fewer than a listing needs, or plenty.
    Requests(u32),
    /// Exactly the requests of the longest listing
    /// (`notifications/initialized` and every page): the listing succeeds
    /// and the session's closing `DELETE` finds it ended.
    Listing,
}

/// A field of a registered server that an update changes: the one the
/// create of `rest-then-update` gets wrong (its update mends it), or the
/// one a `rewrite` update turns to another value that works as well. Where
/// the plan's auth or the target's dialect cannot carry a change, the plan
/// falls back to another (see [`Plan::update_change`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateChange {
    /// A URL where nothing listens; rotated, the same server spelled with
    /// its port.
    Url,
    /// A token URL where no token endpoint is; rotated, the same endpoint
    /// spelled with its port.
    TokenUrl,
    /// A wrong client secret, or a wrong static token; rotated, the
    /// client's second secret.
    Credentials,
    /// A client the token server does not know; rotated, a second client.
    ClientId,
    /// The scopes without the one the token server requires; rotated, one
    /// scope more.
    Scopes,
    /// Another auth type than the server takes (never rotated: no second
    /// auth type works for the same upstream).
    AuthType,
    /// `oauth2_flow: authorization_code` where the server needs
    /// `client_credentials` (LiteLLM's dialect, a flow the plan states);
    /// otherwise, and rotated, the flow stated where it was left out or
    /// left out where it was stated.
    Flow,
    /// A wrong `Authorization` in `static_headers` (LiteLLM's dialect;
    /// never rotated).
    Headers,
    /// Another `alias`, so other tool names (LiteLLM's dialect; never
    /// rotated).
    Alias,
}

/// What a system under test supports, as far as the generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// A control plane and a data plane sharing a store.
    pub split: bool,
    /// A store host for REST registrations.
    pub store: bool,
    /// The target speaks LiteLLM's dialect, so the generator may write
    /// bodies in LiteLLM's REST shape (bad inputs, fields mcpsim's words
    /// lack).
    pub litellm_bodies: bool,
}

impl Capabilities {
    /// Everything the generator can ask for.
    pub const FULL: Capabilities = Capabilities {
        split: true,
        store: true,
        litellm_bodies: true,
    };
}

/// A system under test, with what it supports.
#[derive(Clone)]
pub struct Target {
    pub sut: Sut,
    pub caps: Capabilities,
}

impl Target {
    /// Asks the system which generated profiles it takes.
    pub fn new(sut: Sut) -> Result<Target, String> {
        let probe = |role, with_store| {
            sut.settings_for(&profile(
                role,
                with_store,
                ClientAuth::Form,
                CHECK_INTERVAL_MS,
                TokenReuse::default(),
                1,
            ))
            .is_some()
        };
        let store = probe(Role::AllInOne, true);
        if !store && !probe(Role::AllInOne, false) {
            return Err(format!(
                "the system under test {} takes no generated all-in-one profile",
                sut.name()
            ));
        }
        let split = store && probe(Role::Control, true) && probe(Role::Data, true);
        let litellm_bodies =
            sut.dialect().name() == mcpsim_sut::Dialect::name(&mcpsim_sut::LiteLlm);
        Ok(Target {
            sut,
            caps: Capabilities {
                split,
                store,
                litellm_bodies,
            },
        })
    }
}

fn profile(
    role: Role,
    with_store: bool,
    client_auth: ClientAuth,
    recheck_interval_ms: u64,
    token_reuse: TokenReuse,
    id_seed: u64,
) -> Profile {
    Profile {
        role,
        with_store,
        token_budget_ms: TOKEN_TIMEOUT_MS,
        listing_budget_ms: LIST_TIMEOUT_MS,
        recheck_interval_ms,
        sync_interval_ms: SYNC_INTERVAL_MS,
        store_budget_ms: STORE_TIMEOUT_MS,
        client_auth,
        token_reuse,
        id_seed,
    }
}

/// Every choice of one generated case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub seed: u64,
    pub path: RegistrationPath,
    pub auth: AuthPlan,
    pub latency_ms_max: u64,
    /// Sleep of the MCP server before each `tools/list` answer, or before
    /// each `initialize` answer when `slow_initialize`.
    pub list_latency_ms: u64,
    /// The MCP server is slow to start a session rather than to list: a
    /// budget running out falls in `initialize`.
    pub slow_initialize: bool,
    pub tool_count: usize,
    pub page_size: Option<usize>,
    pub sse: bool,
    pub restart: Option<(RestartTarget, u64)>,
    pub swarm: Swarm,
    pub faults: Faults,
    /// What the system under test supports; [`Plan::for_target`] sets it.
    pub caps: Capabilities,
    /// The plan registers, by one create, what a `rest-then-update` plan
    /// ends with after its update: the update twin ([`Plan::update_twin`]).
    pub merged_update: bool,
    /// Servers beside `srv` on the asked gateway (`n1`, `n2`).
    pub neighbours: Vec<Neighbour>,
    /// A split deployment has a second data plane, `data2`, on the same
    /// store (and the same cut links as `data`).
    pub replica: bool,
}

/// The gateway's budgets in generated cases; latencies cluster around them.
pub const LIST_TIMEOUT_MS: u64 = 750;
pub const TOKEN_TIMEOUT_MS: u64 = 500;
const SYNC_INTERVAL_MS: u64 = 500;
const STORE_TIMEOUT_MS: u64 = 500;
/// The re-check interval unless `recheck-race` shortens it.
const CHECK_INTERVAL_MS: u64 = 500;
/// The re-check interval of a case whose server announces its tool
/// changes on a stream (`OpenGetStream`): long enough that a listening
/// gateway's re-listing after a notice (a token and a listing budget) is
/// told apart from its next periodic check.
const LISTENING_CHECK_INTERVAL_MS: u64 = 3_000;
/// The second change of an `OpenGetStream` tool set comes this long after
/// the first: after the faults of most cases have healed, so that the
/// notice of one of the two reaches an undisturbed gateway.
const SECOND_CHANGE_AFTER_MS: u64 = 1_500;
/// Simulated time per simulation step in generated cases. turmoil 0.7
/// steps every host at a fixed tick, set when the simulation is built, and
/// a step costs about the same whatever happens in it: tokio's timer and
/// runtime entry on every host. Generated cases spend most of their
/// simulated seconds waiting for a re-check, a timeout or the next poll,
/// so the tick sets their cost. At 10 ms a message still takes one or two
/// ticks (latencies are 1 ms up to [`Plan::hop_ms`]), and every timing
/// margin of a plan is counted in those.
pub const TICK_MS: u64 = 10;
/// How a `horizon` case asks the gateway to keep its short-lived tokens:
/// refreshed a second before they expire.
const HORIZON_TOKEN_REUSE: TokenReuse = TokenReuse {
    refresh_margin_ms: 1_000,
    min_reuse_ms: 1_000,
    unstated_lifetime_ms: 2_000,
};
/// How long the tokens of `ShortUnstatedToken` live, stating no
/// `expires_in`, and how long the gateway is told to keep such tokens:
/// apart by more than one exchange's budget, so that a token kept longer
/// than told is presented while it still works.
const SHORT_TOKEN_LIFETIME_S: u64 = 3;
const SHORT_TOKEN_KEPT_MS: u64 = 1_000;
/// The operator polls a `ShortUnstatedToken` case at least this long: past
/// the death of the first token.
const SHORT_TOKEN_RUN_MS: u64 = 3_500;
/// The operator polls this often in generated cases.
const POLL_INTERVAL_MS: u64 = 200;
/// The operator's steps are sent by 200 ms (a `rewrite` update of a
/// recreated server at [`REWRITE_RECREATED_MS`]); each is given this long
/// to complete, and a slow store twice its latency more.
const STEP_MS: u64 = 200;
/// When a `rewrite` update goes out on the delete-then-create path: after
/// the create again, at 200 ms.
const REWRITE_RECREATED_MS: u64 = 250;
/// When the writes that follow the first create go out, unless they race a
/// sync: the update of `rest-then-update`, the delete of
/// `delete-then-create`, whose create again follows [`RECREATE_AFTER_MS`]
/// later.
const LATER_WRITES_MS: u64 = 100;
const RECREATE_AFTER_MS: u64 = 100;
/// Bad inputs go out this long after the last of the other steps, one
/// after the other ([`BAD_INPUT_GAP_MS`] apart), and count as steps.
const BAD_INPUTS_AFTER_MS: u64 = 50;
const BAD_INPUT_GAP_MS: u64 = 10;
/// The second data plane of a split deployment with a `replica`.
const REPLICA: &str = "data2";

fn auth_strategy() -> impl Strategy<Value = AuthPlan> {
    prop_oneof![
        Just(AuthPlan::None),
        Just(AuthPlan::Bearer),
        client_credentials_strategy(),
    ]
}

fn client_credentials_strategy() -> impl Strategy<Value = AuthPlan> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(30u64), Just(3_600u64)],
    )
        .prop_map(
            |(with_flow, basic, expires_in_s)| AuthPlan::ClientCredentials {
                with_flow,
                basic,
                expires_in_s,
            },
        )
}

fn swarm_strategy() -> impl Strategy<Value = Swarm> {
    // About one kind in five is on: most cases get one to three kinds, and
    // every kind alone or in a pair comes up often.
    let on = || proptest::bool::weighted(0.2);
    // Quirks come up a little more often: one of them ([`Quirk::OpenGetStream`])
    // is drawn four times as often as the others, which keep their share.
    let quirk = proptest::bool::weighted(0.25);
    (
        (on(), on(), on(), on(), on(), on()),
        (on(), on(), on(), on(), on(), on()),
        (quirk, on(), on(), on(), on(), on()),
        on(),
    )
        .prop_map(
            |(
                (restart, give_up, partition, hold, stream_cut, revoke),
                (token_flaky, session_drop, twin_create, recheck_race, slow_token, late_upstream),
                (quirk, hostile, horizon, rewrite, slow_store, bad_input),
                mcp_flaky,
            )| Swarm {
                restart,
                give_up,
                partition,
                hold,
                stream_cut,
                revoke,
                token_flaky,
                session_drop,
                twin_create,
                recheck_race,
                slow_token,
                late_upstream,
                quirk,
                hostile,
                horizon,
                rewrite,
                slow_store,
                bad_input,
                mcp_flaky,
            },
        )
}

fn cut_strategy() -> impl Strategy<Value = Cut> {
    (
        prop_oneof![Just(Link::Upstream), Just(Link::Token), Just(Link::Store)],
        prop_oneof![Just(10u64), Just(100u64), Just(300u64)],
        prop_oneof![Just(200u64), Just(800u64)],
    )
        .prop_map(|(link, at_ms, for_ms)| Cut {
            link,
            at_ms,
            for_ms,
        })
}

/// Every quirk alike, but [`Quirk::OpenGetStream`] four times as often: what
/// it is about (a notice acted on at once) shows only where no other
/// disturbance comes near the notice, and a listening gateway re-checks
/// rarely, so most of its cases prove nothing.
fn quirk_strategy() -> impl Strategy<Value = Quirk> {
    prop_oneof![
        15 => proptest::sample::select(vec![
            Quirk::ChattySse,
            Quirk::EmptyFirstPage,
            Quirk::StuckCursor,
            Quirk::ToolsChange,
            Quirk::ShortUnstatedToken,
            Quirk::BasicOnlyToken,
            Quirk::FormOnlyToken,
            Quirk::TokenNeedsParams,
            Quirk::SessionExpiry,
            Quirk::Lenient,
            Quirk::Stateless,
            Quirk::OldRevision,
            Quirk::DeleteHangs,
            Quirk::AwkwardNames,
            Quirk::RejectsTokens,
        ]),
        4 => Just(Quirk::OpenGetStream),
    ]
}

fn hostile_strategy() -> impl Strategy<Value = Hostile> {
    proptest::sample::select(vec![
        Hostile::EndlessBody,
        Hostile::Huge,
        Hostile::InvalidUtf8,
        Hostile::WrongContentType,
        Hostile::WrongId,
        Hostile::JsonRpcError,
        Hostile::HtmlPage,
        Hostile::Redirect,
    ])
}

/// What an update changes. What a token is fetched with (the secret, the
/// client, the scopes) comes up twice as often as the rest: a gateway keeps
/// a token across an update, so that is where a cache goes wrong.
fn update_change_strategy() -> impl Strategy<Value = UpdateChange> {
    proptest::sample::select(vec![
        UpdateChange::Url,
        UpdateChange::TokenUrl,
        UpdateChange::Credentials,
        UpdateChange::Credentials,
        UpdateChange::ClientId,
        UpdateChange::ClientId,
        UpdateChange::Scopes,
        UpdateChange::Scopes,
        UpdateChange::AuthType,
        UpdateChange::Flow,
        UpdateChange::Headers,
        UpdateChange::Alias,
    ])
}

/// What a `rewrite` may rotate; an auth type, which no second value of
/// works, rotates the URL ([`Plan::rewrite`]). As for updates, what a token
/// is fetched with comes up twice as often.
fn rewrite_change_strategy() -> impl Strategy<Value = UpdateChange> {
    proptest::sample::select(vec![
        UpdateChange::Url,
        UpdateChange::TokenUrl,
        UpdateChange::Credentials,
        UpdateChange::Credentials,
        UpdateChange::ClientId,
        UpdateChange::ClientId,
        UpdateChange::Scopes,
        UpdateChange::Scopes,
        UpdateChange::AuthType,
        UpdateChange::Flow,
    ])
}

fn store_lag_strategy() -> impl Strategy<Value = StoreLag> {
    // A read and a write each stay well within the store budget.
    prop_oneof![Just((100u64, 0u64)), Just((50, 250)), Just((150, 150)),].prop_map(
        |(latency_ms, snapshot_delay_ms)| StoreLag {
            latency_ms,
            snapshot_delay_ms,
        },
    )
}

fn horizon_strategy() -> impl Strategy<Value = Horizon> {
    (
        prop_oneof![Just(2u64), Just(3u64), Just(5u64)],
        prop_oneof![Just(4_000u64), Just(7_000u64)],
        prop_oneof![Just(1_000u64), Just(2_500u64)],
    )
        .prop_map(|(expires_in_s, run_ms, session_ttl_ms)| Horizon {
            expires_in_s,
            run_ms,
            session_ttl_ms,
        })
}

fn faults_strategy() -> impl Strategy<Value = Faults> {
    (
        (
            prop_oneof![Just(5u64), Just(40u64), Just(150u64)],
            cut_strategy(),
            cut_strategy(),
            0u32..=1,
            any::<bool>(),
            prop_oneof![Just(150u64), Just(600u64)],
        ),
        (
            prop_oneof![Just(300u64), Just(800u64)],
            prop_oneof![
                Just(TokenFlake::ServerError),
                Just(TokenFlake::Hang),
                Just(TokenFlake::RateLimited)
            ],
            1u32..=2,
            prop_oneof![Just(100u64), Just(250u64)],
            prop_oneof![
                Just(TOKEN_TIMEOUT_MS / 2),
                Just(TOKEN_TIMEOUT_MS - 60),
                Just(TOKEN_TIMEOUT_MS + 60)
            ],
            any::<bool>(),
        ),
        (
            quirk_strategy(),
            hostile_strategy(),
            prop_oneof![
                Just(SessionLimit::Requests(2)),
                Just(SessionLimit::Listing),
                Just(SessionLimit::Requests(8)),
            ],
            prop_oneof![Just(300u64), Just(900u64)],
        ),
        (
            update_change_strategy(),
            rewrite_change_strategy(),
            prop_oneof![Just(60u64), Just(180u64)],
            store_lag_strategy(),
            horizon_strategy(),
            any::<bool>(),
        ),
        (
            [
                bad_inputs::bad_input_strategy(),
                bad_inputs::bad_input_strategy(),
            ],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            prop_oneof![Just(500u16), Just(503u16), Just(403u16)],
            1u32..=2,
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (give_up_after_ms, partition, hold, list_after, crash_upstream, listen_after_ms),
                (
                    revoke_at_ms,
                    token_flake,
                    token_failures,
                    check_interval_ms,
                    token_latency_ms,
                    revoke_late,
                ),
                (quirk, hostile, session_limit, tools_change_at_ms),
                (
                    update_change,
                    rewrite_change,
                    rewrite_at_ms,
                    store_lag,
                    horizon,
                    store_cut_on_writes,
                ),
                (bad_inputs, both_bad_inputs, unknown_field, update_on_control, same_id),
                (mcp_flake_status, mcp_failures, write_races_sync),
            )| Faults {
                give_up_after_ms,
                partition,
                hold,
                list_after,
                revoke_at_ms,
                revoke_late,
                token_flake,
                token_failures,
                check_interval_ms,
                token_latency_ms,
                crash_upstream,
                listen_after_ms,
                quirk,
                hostile,
                session_limit,
                tools_change_at_ms,
                update_change,
                rewrite_change,
                rewrite_at_ms,
                store_lag,
                horizon,
                store_cut_on_writes,
                bad_inputs,
                both_bad_inputs,
                unknown_field,
                update_on_control,
                same_id,
                mcp_flake_status,
                mcp_failures,
                write_races_sync,
            },
        )
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
            prop_oneof![
                Just(RestartTarget::Gateway),
                Just(RestartTarget::Control),
                Just(RestartTarget::Store),
                Just(RestartTarget::Auth),
                Just(RestartTarget::Mcp)
            ],
            prop_oneof![Just(20u64), Just(150u64), Just(600u64)],
        )
            .prop_map(Some),
    ];
    (
        any::<u64>(),
        proptest::sample::select(RegistrationPath::ALL.to_vec()),
        (auth_strategy(), client_credentials_strategy()),
        1u64..=20,
        latency,
        1usize..=7,
        prop_oneof![Just(None), (1usize..=3).prop_map(Some)],
        any::<bool>(),
        restart,
        swarm_strategy(),
        faults_strategy(),
        // Drawn last, so that every other choice of a case is what it was
        // before neighbours existed.
        (
            proptest::bool::weighted(0.3),
            neighbours_strategy(),
            proptest::bool::weighted(0.4),
        ),
    )
        .prop_map(
            |(
                seed,
                path,
                (auth, client_credentials),
                latency_ms_max,
                list_latency_ms,
                tool_count,
                page_size,
                sse,
                restart,
                swarm,
                faults,
                (slow_initialize, neighbours, replica),
            )| Plan {
                seed,
                path,
                // A quirk of the token endpoint takes effect only with a
                // token to fetch: such a case draws client credentials,
                // so the quirk is not spent on a case without them.
                auth: if swarm.quirk
                    && faults.quirk.of_token_endpoint()
                    && !matches!(auth, AuthPlan::ClientCredentials { .. })
                {
                    client_credentials
                } else {
                    auth
                },
                latency_ms_max,
                list_latency_ms,
                slow_initialize,
                tool_count,
                page_size,
                sse,
                restart: if swarm.restart { restart } else { None },
                swarm,
                faults,
                caps: Capabilities::FULL,
                merged_update: false,
                neighbours,
                replica,
            },
        )
}

/// `tool_000`, `tool_001`, ... with the behaviours a gateway must pass on:
/// plain text, a tool execution error (`isError`), structured content, and
/// a tool that requires arguments of its input schema. With `awkward`,
/// the first three are named `get-data`, `pat.batch` and `pat_batch`
/// instead (see [`Quirk::AwkwardNames`]).
fn tools(count: usize, awkward: bool) -> Vec<ToolSpec> {
    const AWKWARD: [&str; 3] = ["get-data", "pat.batch", "pat_batch"];
    (0..count)
        .map(|i| {
            let name = match AWKWARD.get(i) {
                Some(name) if awkward => name.to_string(),
                _ => format!("tool_{i:03}"),
            };
            let tool = ToolSpec::named(name.clone());
            match i % 4 {
                1 => ToolSpec {
                    input_schema: json!({"type": "object", "required": ["query", "limit"],
                        "additionalProperties": false,
                        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}),
                    ..tool
                },
                2 => tool.behaviour(ToolBehaviour::Error {
                    text: format!("{name} refused: over quota"),
                }),
                3 => tool.behaviour(ToolBehaviour::Structured {
                    value: json!({"tool": i, "ok": true}),
                }),
                _ => tool,
            }
        })
        .collect()
}

const CLIENT_ID: &str = "gen-client";
const CLIENT_SECRET: &str = "gen-client-secret-4711";
/// A second secret of the same client, for a rotation.
const ROTATED_SECRET: &str = "gen-client-rotated-secret-4711";
/// A second client, for a rotation.
const OTHER_CLIENT_ID: &str = "gen-client-b";
const OTHER_CLIENT_SECRET: &str = "gen-client-b-secret-4711";
/// What a create that gets a credential wrong sends.
const WRONG_CLIENT_ID: &str = "gen-client-unknown";
const WRONG_SECRET: &str = "gen-wrong-secret-4711";
const WRONG_BEARER: &str = "gen-wrong-bearer-4711";
const TOKEN_URL: &str = "http://auth/oauth/token";
const MCP_URL: &str = "http://mcp/mcp";
/// The scope a create that gets the scopes wrong leaves out.
const GEN_SCOPE: &str = "mcp";
const SIGNING_KEY: &str = "gen-signing-key-4711";
/// The key of an MCP server that missed a rotation ([`Quirk::RejectsTokens`]).
const OTHER_SIGNING_KEY: &str = "gen-signing-key-rotated-0815";
const GEN_AUDIENCE: &str = "gen-api";
const GEN_ISSUER: &str = "http://auth";
const BEARER: &str = "gen-bearer-token-4711";
/// The operator's own key (LiteLLM's master key): it must never go upstream.
const OPERATOR_KEY: &str = "sk-gen-operator-4711";

/// Which version of the server's definition a step sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The one that works, as planned.
    Final,
    /// This field wrong (see [`UpdateChange`]).
    Broken(UpdateChange),
    /// This field changed to another value that works as well.
    Rotated(UpdateChange),
}

impl Plan {
    /// The plan fitted to what a system supports: without a split
    /// deployment, the split paths become their all-in-one twins; without
    /// a store, store faults hit the gateway and the link to the MCP server.
    pub fn for_target(&self, caps: Capabilities) -> Plan {
        let mut plan = self.clone();
        plan.caps = caps;
        if !caps.split {
            plan.path = match plan.path {
                RegistrationPath::RestOnControl | RegistrationPath::RestOnData => {
                    RegistrationPath::Rest
                }
                RegistrationPath::ConfigOnData => RegistrationPath::Config,
                other => other,
            };
            if let Some((RestartTarget::Control, at_ms)) = plan.restart {
                plan.restart = Some((RestartTarget::Gateway, at_ms));
            }
        }
        if !caps.store {
            if let Some((RestartTarget::Store, at_ms)) = plan.restart {
                plan.restart = Some((RestartTarget::Gateway, at_ms));
            }
            for cut in [&mut plan.faults.partition, &mut plan.faults.hold] {
                if cut.link == Link::Store && self.caps.store {
                    cut.link = Link::Upstream;
                }
            }
        }
        plan
    }

    /// The upstream quirk of this case, if its switch is on.
    fn quirk(&self) -> Option<Quirk> {
        self.swarm.quirk.then_some(self.faults.quirk)
    }

    /// Whether the MCP server forgets a session mid-listing: a stateless
    /// server has none to forget.
    fn session_drop(&self) -> bool {
        self.swarm.session_drop && self.quirk() != Some(Quirk::Stateless)
    }

    /// Simulated time per step of this case.
    pub fn tick_ms(&self) -> u64 {
        TICK_MS
    }

    /// The longest one message of this case takes, rounded up to its tick:
    /// the unit of every timing margin here.
    fn hop_ms(&self) -> u64 {
        crate::scenario::Network {
            latency_ms_min: 1,
            latency_ms_max: self.latency_ms_max,
            tick_ms: self.tick_ms(),
        }
        .hop_ms()
    }

    /// The long run of this case, if its switch is on.
    fn horizon(&self) -> Option<Horizon> {
        self.swarm.horizon.then_some(self.faults.horizon)
    }

    /// How the gateway is asked to keep tokens: tokens that state no
    /// lifetime shorter than those of `ShortUnstatedToken` live.
    fn token_reuse(&self) -> TokenReuse {
        let reuse = if self.swarm.horizon {
            HORIZON_TOKEN_REUSE
        } else {
            TokenReuse::default()
        };
        if self.quirk() == Some(Quirk::ShortUnstatedToken) {
            TokenReuse {
                unstated_lifetime_ms: SHORT_TOKEN_KEPT_MS,
                ..reuse
            }
        } else {
            reuse
        }
    }

    /// The slow store of this case, if its switch is on and it has a store.
    fn store_lag(&self) -> Option<StoreLag> {
        (self.swarm.slow_store && self.caps.store).then_some(self.faults.store_lag)
    }

    /// The change a plan can carry with this auth and this target: the
    /// token URL, the client id, the scopes and a rotation of the flow need
    /// client credentials, other credentials and the auth type some auth,
    /// static headers a static token, and static headers, an alias or a
    /// refused flow a target of LiteLLM's dialect; a create that cannot get
    /// one of those wrong gets its credentials wrong, or its URL where it
    /// has none. A rotation changes the URL where its field has no second
    /// value that works (an auth type, a static token, headers, an alias).
    fn applicable(&self, change: UpdateChange, rotation: bool) -> UpdateChange {
        let bodies = self.caps.litellm_bodies;
        let fallback = if self.auth == AuthPlan::None || rotation {
            UpdateChange::Url
        } else {
            UpdateChange::Credentials
        };
        match (change, self.auth) {
            (UpdateChange::Url, _) => UpdateChange::Url,
            (UpdateChange::TokenUrl | UpdateChange::ClientId | UpdateChange::Scopes, _) => {
                if self.client_credentials() {
                    change
                } else {
                    UpdateChange::Url
                }
            }
            (UpdateChange::Credentials, AuthPlan::ClientCredentials { .. }) => change,
            (UpdateChange::Credentials, AuthPlan::Bearer) if !rotation => change,
            (UpdateChange::Credentials, _) => UpdateChange::Url,
            (UpdateChange::AuthType, AuthPlan::None) => UpdateChange::Url,
            (UpdateChange::AuthType, _) if rotation => UpdateChange::Url,
            (UpdateChange::AuthType, _) => change,
            (UpdateChange::Flow, AuthPlan::ClientCredentials { .. }) => change,
            (UpdateChange::Flow, _) => fallback,
            (UpdateChange::Headers, AuthPlan::Bearer) if bodies && !rotation => change,
            (UpdateChange::Alias, _) if bodies && !rotation => change,
            (UpdateChange::Headers | UpdateChange::Alias, _) => fallback,
        }
    }

    /// The one field the create of `rest-then-update` gets wrong, fitted to
    /// what the plan's auth and the target's dialect can carry; none on
    /// other paths.
    pub fn update_change(&self) -> Option<UpdateChange> {
        (self.path == RegistrationPath::RestThenUpdate)
            .then(|| self.applicable(self.faults.update_change, false))
    }

    /// The change whose final value the plan's registration carries: its
    /// own update's, or, for an update twin, the update's it stands for.
    fn final_change(&self) -> Option<UpdateChange> {
        if self.merged_update {
            Plan {
                path: RegistrationPath::RestThenUpdate,
                merged_update: false,
                ..self.clone()
            }
            .update_change()
        } else {
            self.update_change()
        }
    }

    /// Whether the create of `rest-then-update` states the flow a client
    /// credentials server refuses (`authorization_code`), rather than the
    /// working flow the other way: where the plan states its flow and the
    /// target speaks LiteLLM's dialect, which has the field.
    fn refused_flow(&self) -> bool {
        self.caps.litellm_bodies
            && matches!(
                self.auth,
                AuthPlan::ClientCredentials {
                    with_flow: true,
                    ..
                }
            )
    }

    /// When a `rewrite` update goes out, and what it rotates.
    fn rewrite(&self) -> Option<(u64, UpdateChange)> {
        self.swarm.rewrite.then(|| {
            let at_ms = match self.path {
                RegistrationPath::DeleteThenCreate => {
                    self.later_at_ms() + (REWRITE_RECREATED_MS - LATER_WRITES_MS)
                }
                RegistrationPath::RestThenUpdate => {
                    self.later_at_ms() + self.faults.rewrite_at_ms - LATER_WRITES_MS
                }
                _ => self.sync_race_ms().unwrap_or(self.faults.rewrite_at_ms),
            };
            (at_ms, self.applicable(self.faults.rewrite_change, true))
        })
    }

    /// How many bad writes go out after the other steps: for a target of
    /// LiteLLM's dialect only, whose REST shape they are written in.
    fn bad_input_count(&self) -> usize {
        match (
            self.swarm.bad_input && self.caps.litellm_bodies,
            self.faults.both_bad_inputs,
        ) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        }
    }

    /// When the first bad write goes out: after every other step has been
    /// sent (the registration's, by [`STEP_MS`], and a `rewrite` update).
    fn bad_inputs_at_ms(&self) -> u64 {
        self.last_step_ms() + BAD_INPUTS_AFTER_MS
    }

    /// When the writes that follow the first create go out (the update of
    /// `rest-then-update`, the delete of `delete-then-create`, a lone
    /// rotation): at [`LATER_WRITES_MS`], or racing a sync.
    fn later_at_ms(&self) -> u64 {
        self.sync_race_ms().unwrap_or(LATER_WRITES_MS)
    }

    /// When the writes that follow the first create go out to race a sync,
    /// if the plan makes them race: with a slow store whose reads hold
    /// their snapshot a while, they reach the store while the gateway's
    /// second read holds the snapshot it took, so that the snapshot,
    /// older than the writes, comes back after the gateway applied them.
    /// The first read takes a latency, a snapshot delay and two messages;
    /// the second starts a sync interval later and takes its snapshot a
    /// message and a latency after; a write, sent by the operator, reaches
    /// the store two messages later and applies after a latency too.
    fn sync_race_ms(&self) -> Option<u64> {
        let lag = self.store_lag().filter(|lag| lag.snapshot_delay_ms > 0)?;
        let later = matches!(
            self.path,
            RegistrationPath::RestThenUpdate | RegistrationPath::DeleteThenCreate
        ) || self.swarm.rewrite;
        if !(self.faults.write_races_sync && later) {
            return None;
        }
        // Every wait ends on a tick, so each time here may come up to a few
        // ticks late; the write aims at the middle of the snapshot's flight
        // (150 ms or more), far from either end.
        let hop = self.hop_ms();
        let second_read = lag.latency_ms + lag.snapshot_delay_ms + 2 * hop + SYNC_INTERVAL_MS;
        Some(second_read - hop + lag.snapshot_delay_ms / 2)
    }

    /// When the last of the operator's registration steps and a rotation
    /// goes out, by [`STEP_MS`] at the earliest.
    fn last_step_ms(&self) -> u64 {
        let path = match self.path {
            RegistrationPath::RestThenUpdate => self.later_at_ms(),
            RegistrationPath::DeleteThenCreate => self.later_at_ms() + RECREATE_AFTER_MS,
            _ => 0,
        };
        let rewrite = self.rewrite().map_or(0, |(at_ms, _)| at_ms);
        path.max(rewrite).max(STEP_MS)
    }

    /// When the last write after the first create is sent (an update, a
    /// delete, a rotation), if the plan makes one; bad inputs aside.
    fn last_later_write_ms(&self) -> Option<u64> {
        let path = match self.path {
            RegistrationPath::RestThenUpdate | RegistrationPath::DeleteThenCreate => {
                Some(self.later_at_ms())
            }
            _ => None,
        };
        path.max(self.rewrite().map(|(at_ms, _)| at_ms))
    }

    /// Whether a write may meet a store the gateway cannot reach: which
    /// definition ends up in force is then not known in advance.
    fn write_may_be_refused(&self) -> bool {
        self.caps.store
            && self.faults.store_cut_on_writes
            && self.last_later_write_ms().is_some()
            && self.cuts().iter().any(|(_, c)| c.link == Link::Store)
    }

    /// Until when the operator polls: past every transient fault, through
    /// a long run, and past an update's sync on a split deployment.
    fn poll_until_ms(&self) -> u64 {
        let mut poll_until_ms = self.disturbed_until_ms().map_or(0, |until| until + 500);
        if let Some(horizon) = self.horizon() {
            poll_until_ms = poll_until_ms.max(horizon.run_ms);
        }
        if self.quirk() == Some(Quirk::ShortUnstatedToken) && self.client_credentials() {
            poll_until_ms = poll_until_ms.max(SHORT_TOKEN_RUN_MS);
        }
        if self.path == RegistrationPath::RestThenUpdate && self.split() {
            // The data plane learns of the update at its next sync, and
            // checks the server again; the operator then polls until that
            // check has settled. With a slow store the update lands a
            // write's latency late, a read whose snapshot was taken just
            // before it may still be in flight, and the next read takes as
            // long again.
            let slow_store_ms = self.store_lag().map_or(0, |lag| {
                lag.latency_ms + 2 * (lag.latency_ms + lag.snapshot_delay_ms)
            });
            poll_until_ms =
                poll_until_ms.max(self.later_at_ms() + slow_store_ms + SYNC_INTERVAL_MS + 200);
        }
        if let (Some(at_ms), Some(lag)) = (self.sync_race_ms(), self.store_lag()) {
            // Past the sync after the one raced: what a stale snapshot
            // undid would show until then.
            let sync_ms = SYNC_INTERVAL_MS + lag.latency_ms + lag.snapshot_delay_ms;
            poll_until_ms = poll_until_ms.max(self.last_step_ms().max(at_ms) + 2 * sync_ms + 200);
        }
        poll_until_ms
    }

    /// When the operator's steps have all been sent and answered.
    fn steps_done_ms(&self) -> u64 {
        let last = match self.bad_input_count() {
            0 => self.last_step_ms(),
            count => self.bad_inputs_at_ms() + (count as u64 - 1) * BAD_INPUT_GAP_MS,
        };
        last + STEP_MS + self.store_lag().map_or(0, |lag| 2 * lag.latency_ms)
    }

    /// Whether the token server requires a scope that a create-then-update
    /// leaves out at first (and its update twin states from the start).
    fn scope_required(&self) -> bool {
        self.final_change() == Some(UpdateChange::Scopes)
    }

    /// Whether the plan cuts the asked gateway from its store long enough
    /// that one of its syncs must fail while it lists the server, and its
    /// health be read while it says so: a partition longer than a sync
    /// interval and healed by nothing else, of a gateway that holds the
    /// server by then (not one that learns it only from the store, and none
    /// restarted), with polls of its health closer together than the
    /// interval.
    fn store_cut_certain(&self) -> bool {
        let cuts = self.cuts();
        let long = cuts.iter().any(|(verb, cut)| {
            *verb == "partition" && cut.link == Link::Store && cut.for_ms > SYNC_INTERVAL_MS
        });
        // Releasing a hold heals the link, a partition of it included.
        let released = cuts
            .iter()
            .any(|(verb, cut)| *verb == "hold" && cut.link == Link::Store);
        let holds_it = matches!(
            self.path,
            RegistrationPath::Config
                | RegistrationPath::ConfigOnData
                | RegistrationPath::Rest
                | RegistrationPath::RestOnData
                | RegistrationPath::DeleteThenCreate
        ) || self.path == RegistrationPath::RestThenUpdate && !self.split();
        let holds_it = holds_it && !self.swarm.give_up;
        // A poll round reads the list and the health of every gateway, each
        // a request and its answer on a connection the operator already
        // holds (no fault here touches the operator's links); the answer
        // may come a few messages later again.
        let gateways = 1 + u64::from(self.split());
        let round_ms = POLL_INTERVAL_MS + (2 * gateways * 2 + 4) * self.hop_ms();
        // A cut that meets the writes delays the operator's polls by as
        // long as the writes wait on the store.
        let after_writes =
            !(self.faults.store_cut_on_writes && self.last_later_write_ms().is_some());
        self.caps.store
            && long
            && !released
            && holds_it
            && after_writes
            && self.restart.is_none()
            && round_ms < SYNC_INTERVAL_MS
    }

    /// The tools the server has at the end of the run.
    fn final_tool_count(&self) -> usize {
        match self.quirk() {
            Some(Quirk::ToolsChange | Quirk::OpenGetStream) => self.tool_count + 2,
            _ => self.tool_count,
        }
    }

    /// How many `tools/list` pages the longest listing takes (an empty first
    /// page counts).
    fn pages(&self) -> u64 {
        let tools = self.tool_count.max(self.final_tool_count());
        let pages = match self.page_size {
            Some(size) => tools.div_ceil(size).max(1) as u64,
            None => 1,
        };
        pages + u64::from(self.quirk() == Some(Quirk::EmptyFirstPage))
    }

    /// The requests of the longest listing in one session:
    /// `notifications/initialized` and every page.
    fn listing_requests(&self) -> u64 {
        self.pages() + 1
    }

    /// How many requests the server lets a session take (`SessionExpiry`).
    fn session_max_requests(&self) -> u32 {
        match self.faults.session_limit {
            SessionLimit::Requests(n) => n,
            SessionLimit::Listing => u32::try_from(self.listing_requests()).unwrap_or(u32::MAX),
        }
    }

    fn client_credentials(&self) -> bool {
        matches!(self.auth, AuthPlan::ClientCredentials { .. })
    }

    fn check_interval_ms(&self) -> u64 {
        if self.quirk() == Some(Quirk::OpenGetStream) {
            LISTENING_CHECK_INTERVAL_MS
        } else if self.swarm.recheck_race {
            self.faults.check_interval_ms
        } else {
            CHECK_INTERVAL_MS
        }
    }

    fn token_latency_ms(&self) -> u64 {
        if self.swarm.slow_token {
            self.faults.token_latency_ms
        } else {
            0
        }
    }

    /// Which cuts apply: a cut of the token link needs a token server.
    fn cuts(&self) -> Vec<(&'static str, Cut)> {
        let mut cuts = Vec::new();
        for (on, verb, cut) in [
            (self.swarm.partition, "partition", self.faults.partition),
            (self.swarm.hold, "hold", self.faults.hold),
        ] {
            if on && (cut.link != Link::Token || self.client_credentials()) {
                let mut cut = cut;
                if cut.link == Link::Store && self.caps.store {
                    cut.at_ms = match self.last_later_write_ms() {
                        // Just before that write leaves the operator.
                        Some(at_ms) if self.faults.store_cut_on_writes => at_ms - 5,
                        // Once the operator's writes are through: what
                        // matters is what the gateway does with what it knew.
                        _ => cut.at_ms + self.steps_done_ms(),
                    };
                }
                cuts.push((verb, cut));
            }
        }
        cuts
    }

    /// Until when transient faults may disturb discovery: after that, one
    /// re-check with working upstreams must bring the server to its steady
    /// status.
    fn disturbed_until_ms(&self) -> Option<u64> {
        let cycle = self.check_interval_ms() + TOKEN_TIMEOUT_MS + LIST_TIMEOUT_MS;
        // Faults at stated times: the last one to heal.
        let mut timed: Vec<u64> = Vec::new();
        if let Some((_, at_ms)) = self.restart {
            timed.push(at_ms);
        }
        for (_, cut) in self.cuts() {
            timed.push(cut.at_ms + cut.for_ms);
        }
        if self.swarm.revoke && self.client_credentials() && !self.faults.revoke_late {
            timed.push(self.faults.revoke_at_ms);
        }
        if self.swarm.late_upstream {
            timed.push(self.faults.listen_after_ms);
        }
        if self.quirk() == Some(Quirk::ToolsChange) {
            timed.push(self.faults.tools_change_at_ms);
        }
        if self.quirk() == Some(Quirk::OpenGetStream) {
            timed.push(self.faults.tools_change_at_ms + SECOND_CHANGE_AFTER_MS);
        }
        // Faults that fail a number of requests, wherever those fall: each
        // can cost one more attempt, one after the other.
        let mut counted = 0;
        if self.swarm.stream_cut {
            counted += u64::from(self.faults.list_after) + 1;
        }
        if self.swarm.hostile {
            counted += u64::from(self.faults.list_after) + 1;
        }
        if self.swarm.token_flaky && self.client_credentials() {
            counted += u64::from(self.faults.token_failures);
        }
        if self.swarm.mcp_flaky {
            counted += u64::from(self.faults.mcp_failures);
        }
        if timed.is_empty() && counted == 0 {
            return None;
        }
        let last = timed
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(self.steps_done_ms());
        Some(last + (counted + 1) * cycle)
    }

    /// The upstream host that crashes and stays down, if any.
    fn crashed_upstream(&self) -> Option<RestartTarget> {
        match self.restart {
            Some((target @ RestartTarget::Mcp, _)) if self.faults.crash_upstream => Some(target),
            Some((target @ RestartTarget::Auth, _))
                if self.faults.crash_upstream && self.client_credentials() =>
            {
                Some(target)
            }
            _ => None,
        }
    }

    /// What the server must end as, when the plan makes it certain. A
    /// restart while the operator's steps are in flight can cut a request
    /// whose outcome the operator then never learns (as a person would
    /// not), so such plans state no expectation; every other check holds.
    /// Without a store, a restarted gateway forgets a REST registration by
    /// design, so no server is expected then either.
    fn expected_status(&self) -> Option<Status> {
        if self.write_may_be_refused() {
            return None;
        }
        if self
            .restart
            .is_some_and(|(_, at_ms)| at_ms < self.steps_done_ms())
        {
            return None;
        }
        let gateway_restart = matches!(
            self.restart,
            Some((RestartTarget::Gateway | RestartTarget::Control, _))
        );
        let by_rest = !matches!(
            self.path,
            RegistrationPath::Config | RegistrationPath::ConfigOnData
        );
        if !self.caps.store && gateway_restart && by_rest {
            return None;
        }
        // Upstreams no listing can succeed against.
        match self.quirk() {
            Some(Quirk::StuckCursor) => return Some(Status::Unhealthy),
            Some(Quirk::SessionExpiry)
                if self.listing_requests() > u64::from(self.session_max_requests()) =>
            {
                return Some(Status::Unhealthy)
            }
            _ => {}
        }
        if self.quirk() == Some(Quirk::RejectsTokens) && self.client_credentials() {
            // Every definition the case writes has the same credentials
            // unless a write changes them.
            return match self.update_change().is_none() && self.rewrite().is_none() {
                true => Some(Status::Unhealthy),
                false => None,
            };
        }
        match self.crashed_upstream() {
            // Every check after the crash fails.
            Some(RestartTarget::Mcp) => return Some(Status::Unhealthy),
            // The cached token outlives the token server, unless something
            // makes the gateway ask for another (a revocation, a token that
            // expires within the run), or kept it from getting one before
            // the crash.
            Some(_)
                if self.swarm.revoke
                    || self.swarm.horizon
                    || self.quirk() == Some(Quirk::ShortUnstatedToken)
                    || self.swarm.token_flaky
                    || self.swarm.slow_token
                    || self.swarm.late_upstream
                    || self.cuts().iter().any(|(_, c)| c.link == Link::Token) =>
            {
                return None
            }
            _ => {}
        }
        if self.client_credentials() {
            let token = self.token_latency_ms();
            if token > TOKEN_TIMEOUT_MS {
                return Some(Status::Unhealthy);
            }
            // A token request on a new connection is about six messages; an
            // endpoint that refuses the configured client authentication
            // costs a second request the other way.
            let basic = matches!(self.auth, AuthPlan::ClientCredentials { basic: true, .. });
            let requests = match self.quirk() {
                Some(Quirk::BasicOnlyToken) if !basic => 2,
                Some(Quirk::FormOnlyToken) if basic => 2,
                _ => 1,
            };
            if requests * (token + 6 * self.hop_ms()) + 50 >= TOKEN_TIMEOUT_MS {
                return None;
            }
        }
        // A dropped session costs a listing the refused request and a new
        // start from the first page. When later attempts count (transient
        // faults) they list once; in a split deployment the drop hits
        // whichever plane lists first, so only the worst case is known.
        let pages = self.pages();
        let mut worst = pages;
        let mut best = pages;
        let after = u64::from(self.faults.list_after);
        if self.session_drop() && self.disturbed_until_ms().is_none() {
            // Only one listing of one gateway reaches the MCP server before
            // the operator settles, or the drop may land on any of several.
            // An update may cut short a listing of the definition before it
            // (one whose credentials work), which then took its share; a
            // create with another alias lists too, before its update.
            let earlier_listing = self.rewrite().is_some()
                || self.update_change() == Some(UpdateChange::Flow)
                || self.final_change() == Some(UpdateChange::Alias);
            let one_lister = matches!(
                self.path,
                RegistrationPath::Config
                    | RegistrationPath::Rest
                    | RegistrationPath::RestThenUpdate
            ) && !self.swarm.twin_create
                && !self.split()
                && !earlier_listing;
            if one_lister && after < pages {
                worst = pages + after + 1;
                best = worst;
            } else if !one_lister {
                worst = pages + after + 1;
            }
        }
        // Each page and the session around it cost a few message latencies.
        let overhead = (worst + 6) * 3 * self.hop_ms();
        // A slow start is paid once per session: once, or twice where the
        // session may be dropped.
        let (worst_slow, best_slow) = match self.slow_initialize {
            true => (
                1 + u64::from(self.session_drop()) + u64::from(self.swarm.horizon),
                1,
            ),
            false => (worst, best),
        };
        if worst_slow * self.list_latency_ms + overhead + 50 < LIST_TIMEOUT_MS {
            Some(Status::Healthy)
        } else if best_slow * self.list_latency_ms > LIST_TIMEOUT_MS {
            Some(Status::Unhealthy)
        } else {
            None
        }
    }

    /// How the gateway authenticates to the MCP server in this version of
    /// the definition. Where the final definition sends the static token in
    /// a header its body sets, every version leaves it out of the auth.
    fn auth(&self, variant: Variant) -> ServerAuth {
        if self.final_change() == Some(UpdateChange::Headers) {
            return ServerAuth::None;
        }
        if variant == Variant::Broken(UpdateChange::AuthType) {
            return match self.auth {
                AuthPlan::ClientCredentials { .. } => ServerAuth::Bearer {
                    token: WRONG_BEARER.into(),
                },
                _ => ServerAuth::ClientCredentials {
                    token_url: TOKEN_URL.into(),
                    client_id: CLIENT_ID.into(),
                    client_secret: CLIENT_SECRET.into(),
                    scopes: Vec::new(),
                    audience: None,
                    resource: None,
                    explicit_flow: false,
                },
            };
        }
        match self.auth {
            AuthPlan::None => ServerAuth::None,
            AuthPlan::Bearer => ServerAuth::Bearer {
                token: match variant {
                    Variant::Broken(UpdateChange::Credentials) => WRONG_BEARER,
                    _ => BEARER,
                }
                .into(),
            },
            AuthPlan::ClientCredentials { with_flow, .. } => {
                let params = self.quirk() == Some(Quirk::TokenNeedsParams);
                let mut token_url = TOKEN_URL;
                let (mut client_id, mut client_secret) = (CLIENT_ID, CLIENT_SECRET);
                let mut scopes: Vec<String> = if params || self.scope_required() {
                    vec![GEN_SCOPE.into()]
                } else {
                    Vec::new()
                };
                let mut explicit_flow = with_flow;
                match variant {
                    Variant::Broken(UpdateChange::TokenUrl) => {
                        token_url = "http://auth/oauth/wrong"
                    }
                    // The same endpoint, spelled with its port.
                    Variant::Rotated(UpdateChange::TokenUrl) => {
                        token_url = "http://auth:80/oauth/token"
                    }
                    Variant::Broken(UpdateChange::Credentials) => client_secret = WRONG_SECRET,
                    Variant::Rotated(UpdateChange::Credentials) => client_secret = ROTATED_SECRET,
                    Variant::Broken(UpdateChange::ClientId) => client_id = WRONG_CLIENT_ID,
                    Variant::Rotated(UpdateChange::ClientId) => {
                        (client_id, client_secret) = (OTHER_CLIENT_ID, OTHER_CLIENT_SECRET)
                    }
                    Variant::Broken(UpdateChange::Scopes) => scopes.clear(),
                    Variant::Rotated(UpdateChange::Scopes) => scopes.push("tools".into()),
                    // The body's `oauth2_flow` says `authorization_code`
                    // instead (see [`Plan::fields`]).
                    Variant::Broken(UpdateChange::Flow) if self.refused_flow() => {
                        explicit_flow = false
                    }
                    Variant::Broken(UpdateChange::Flow) | Variant::Rotated(UpdateChange::Flow) => {
                        explicit_flow = !with_flow
                    }
                    _ => {}
                }
                ServerAuth::ClientCredentials {
                    token_url: token_url.into(),
                    client_id: client_id.into(),
                    client_secret: client_secret.into(),
                    scopes,
                    audience: params.then(|| GEN_AUDIENCE.into()),
                    resource: params.then(|| MCP_URL.into()),
                    explicit_flow,
                }
            }
        }
    }

    /// This version of the server's definition, in mcpsim's words.
    fn definition(&self, variant: Variant) -> ServerDef {
        let url = match variant {
            Variant::Broken(UpdateChange::Url) => "http://nowhere/mcp",
            // The same server, spelled with its port.
            Variant::Rotated(UpdateChange::Url) => "http://mcp:80/mcp",
            _ => MCP_URL,
        };
        ServerDef::http("srv", url).auth(self.auth(variant))
    }

    /// The fields beyond mcpsim's words this version of the definition
    /// carries, in LiteLLM's REST shape: the final definition's static
    /// header or alias, or the create's wrong one, or the flow it refuses.
    fn fields(&self, variant: Variant) -> Option<Map<String, Value>> {
        let mut fields = Map::new();
        match self.final_change() {
            Some(UpdateChange::Headers) => {
                fields.insert(
                    "static_headers".into(),
                    json!({"Authorization": format!("Bearer {BEARER}")}),
                );
            }
            Some(UpdateChange::Alias) => {
                fields.insert("alias".into(), json!("srvnew"));
            }
            _ => {}
        }
        match variant {
            Variant::Broken(UpdateChange::Headers) => {
                fields.insert(
                    "static_headers".into(),
                    json!({"Authorization": format!("Bearer {WRONG_BEARER}")}),
                );
            }
            Variant::Broken(UpdateChange::Alias) => {
                fields.insert("alias".into(), json!("srvold"));
            }
            Variant::Broken(UpdateChange::Flow) if self.refused_flow() => {
                fields.insert("oauth2_flow".into(), json!("authorization_code"));
            }
            _ => {}
        }
        (!fields.is_empty()).then_some(fields)
    }

    /// The server as the operator creates it through REST.
    fn rest_server(&self, variant: Variant) -> ServerDef {
        let mut server = self.definition(variant);
        if self.swarm.give_up && self.single_create() {
            // A client that retries must name the server it meant.
            server.server_id = Some("srv-given-up".into());
        }
        if self.path == RegistrationPath::DeleteThenCreate && self.faults.same_id {
            server.server_id = Some("srv-again".into());
        }
        server
    }

    /// The server as the config file has it.
    fn config_server(&self) -> ServerDef {
        self.definition(Variant::Final)
    }

    /// Whether the deployment has a control plane and a data plane.
    fn split(&self) -> bool {
        self.path.split()
            || (self.path == RegistrationPath::RestThenUpdate
                && self.faults.update_on_control
                && self.caps.split)
    }

    /// The same plan registering the server by another path: config and
    /// REST swap, on an all-in-one gateway or across the split. Only where
    /// the plan's outcome does not hang on timing (it states one), and the
    /// path's own swarm kinds (give-up, twin creates) are off; not for an
    /// alias, which mcpsim's words for the config file cannot carry.
    pub fn path_twin(&self) -> Option<Plan> {
        // A config server is on one data plane only, a REST one on both:
        // with a replica, the paths end with different lists.
        if self.expected_status().is_none()
            || self.swarm.give_up
            || self.swarm.twin_create
            || self.replica()
        {
            return None;
        }
        if self.final_change() == Some(UpdateChange::Alias) {
            return None;
        }
        let path = match self.path {
            RegistrationPath::Config => RegistrationPath::Rest,
            RegistrationPath::ConfigOnData => RegistrationPath::RestOnControl,
            RegistrationPath::RestOnControl | RegistrationPath::RestOnData => {
                RegistrationPath::ConfigOnData
            }
            _ if self.split() => RegistrationPath::ConfigOnData,
            _ => RegistrationPath::Config,
        };
        let twin = Plan {
            path,
            merged_update: false,
            ..self.clone()
        }
        .for_target(self.caps);
        if twin.path == self.path {
            return None;
        }
        twin.expected_status().is_some().then_some(twin)
    }

    /// The same plan creating at once what its update ends with: for a
    /// `rest-then-update` plan whose outcome does not hang on timing, a REST
    /// create of the update's definition, on the same deployment. Both must
    /// end alike (see [`crate::check_update_merge`]).
    pub fn update_twin(&self) -> Option<Plan> {
        if self.update_change().is_none() || self.expected_status().is_none() {
            return None;
        }
        let path = if self.split() {
            RegistrationPath::RestOnControl
        } else {
            RegistrationPath::Rest
        };
        let mut twin = Plan {
            path,
            merged_update: true,
            ..self.clone()
        };
        // A give-up or a racing twin create applies to a single create
        // only: the update's path never had them, so neither has its twin.
        twin.swarm.give_up = false;
        twin.swarm.twin_create = false;
        twin.expected_status().is_some().then_some(twin)
    }

    /// The neighbours as the asked gateway's config file has them: name,
    /// URL and auth.
    fn neighbour_servers(&self) -> Vec<(String, String, ServerAuth)> {
        self.neighbours
            .iter()
            .enumerate()
            .map(|(k, neighbour)| {
                let name = format!("n{}", k + 1);
                let url = format!("http://mcp-{name}/mcp");
                let auth = match neighbour {
                    Neighbour::Unauthorized => ServerAuth::Bearer {
                        token: WRONG_BEARER.into(),
                    },
                    _ => ServerAuth::None,
                };
                (name, url, auth)
            })
            .collect()
    }

    /// The neighbours' MCP hosts, `mcp-n1` and `mcp-n2`.
    fn neighbour_hosts(&self) -> Vec<McpHost> {
        self.neighbours
            .iter()
            .enumerate()
            .map(|(k, neighbour)| {
                let mut config = McpServerConfig {
                    tools: tools(1, false),
                    ..McpServerConfig::default()
                };
                match neighbour {
                    Neighbour::Healthy { tools: count } => config.tools = tools(*count, false),
                    Neighbour::Refused => {}
                    Neighbour::Unauthorized => {
                        config.auth = McpAuth::Bearer {
                            token: BEARER.into(),
                        }
                    }
                    Neighbour::Hangs => config.failures.push(McpFailureRule {
                        method: "initialize".into(),
                        kind: McpFailure::Hang,
                        after: 0,
                        count: None,
                    }),
                }
                let host = McpHost::new(format!("mcp-n{}", k + 1)).config(config);
                if *neighbour == Neighbour::Refused {
                    host.not_listening()
                } else {
                    host
                }
            })
            .collect()
    }

    /// Whether the deployment has a second data plane: a split one with a
    /// store.
    fn replica(&self) -> bool {
        self.replica && self.split() && self.caps.store
    }

    /// The gateway whose view of the server counts.
    pub fn asked_host(&self) -> &'static str {
        if self.split() {
            "data"
        } else {
            "gateway"
        }
    }

    /// The gateway the operator writes to.
    fn written_host(&self) -> &'static str {
        match self.path {
            RegistrationPath::RestOnData | RegistrationPath::ConfigOnData => "data",
            _ if self.split() => "control",
            _ => "gateway",
        }
    }

    /// Paths that register with one create (give-up and twin creates
    /// apply to them).
    fn single_create(&self) -> bool {
        matches!(
            self.path,
            RegistrationPath::Rest | RegistrationPath::RestOnControl | RegistrationPath::RestOnData
        )
    }

    /// The bad writes of `bad-input`, after the registration: for a target
    /// of LiteLLM's dialect only, whose REST shape they are written in.
    fn bad_steps(&self, target: &Target) -> Vec<Step> {
        let count = self.bad_input_count();
        let by_rest = !matches!(
            self.path,
            RegistrationPath::Config | RegistrationPath::ConfigOnData
        );
        self.faults.bad_inputs[..count]
            .iter()
            .enumerate()
            .map(|(k, input)| {
                let mut input = *input;
                // A config server cannot be changed through the API at all.
                input.update &= by_rest;
                let base = target
                    .sut
                    .dialect()
                    .create(Registration::Def(&ServerDef::http(
                        format!("bad{k}"),
                        "http://mcp/mcp",
                    )))
                    .body
                    .unwrap_or(Value::Null);
                let step = match (bad_inputs::body(input, k, &base), input.update) {
                    (BadBody::Json(body), false) => Step::create_native(body),
                    (BadBody::Json(body), true) => Step::update_native("srv", body),
                    (BadBody::Raw(raw), false) => Step::create_raw(raw),
                    (BadBody::Raw(raw), true) => Step::update_raw("srv", raw),
                };
                step.on(self.written_host())
                    .at_ms(self.bad_inputs_at_ms() + BAD_INPUT_GAP_MS * k as u64)
                    .bad_input()
            })
            .collect()
    }

    /// The plan as a catalogue-format scenario, with the target's own
    /// settings for each gateway host.
    pub fn to_scenario(&self, target: &Target) -> Result<Scenario, ScenarioError> {
        let client_auth = match self.auth {
            AuthPlan::ClientCredentials { basic: true, .. } => ClientAuth::Basic,
            _ => ClientAuth::Form,
        };
        let store = self.caps.store;
        let settings = |role: Role, id_seed: u64| {
            let profile = profile(
                role,
                store,
                client_auth,
                self.check_interval_ms(),
                self.token_reuse(),
                id_seed,
            );
            target
                .sut
                .settings_for(&profile)
                .unwrap_or(serde_json::Value::Null)
        };
        let config_here = matches!(
            self.path,
            RegistrationPath::Config | RegistrationPath::ConfigOnData
        );
        let with_store = |host: GatewayHost| if store { host.store("db") } else { host };
        let mut gateways = Vec::new();
        if self.split() {
            gateways
                .push(with_store(GatewayHost::new("control")).settings(settings(Role::Control, 1)));
        }
        let (asked, role) = if self.split() {
            ("data", Role::Data)
        } else {
            ("gateway", Role::AllInOne)
        };
        let mut host = with_store(GatewayHost::new(asked))
            .settings(settings(role, 1 + u64::from(self.split())));
        if config_here {
            host = host.server(self.config_server());
        }
        for (name, url, auth) in self.neighbour_servers() {
            host = host.server(ServerDef::http(name, url).auth(auth));
        }
        gateways.push(host);
        if self.replica() {
            gateways.push(with_store(GatewayHost::new(REPLICA)).settings(settings(Role::Data, 3)));
        }

        // The registration's own fields beyond mcpsim's words, and an
        // unknown one a gateway of LiteLLM's dialect must ignore.
        let mut fields = self.fields(Variant::Final);
        if self.swarm.bad_input && self.faults.unknown_field && self.caps.litellm_bodies {
            let (name, value) = bad_inputs::unknown_field();
            fields.get_or_insert_with(Map::new).insert(name, value);
        }
        let with_fields = |mut step: Step, fields: Option<Map<String, Value>>| {
            step.extra_fields = fields;
            step
        };
        let create = with_fields(
            Step::create(self.rest_server(Variant::Final)),
            fields.clone(),
        );
        let written = self.written_host();
        let mut steps = match self.path {
            RegistrationPath::Config | RegistrationPath::ConfigOnData => Vec::new(),
            RegistrationPath::Rest => vec![create],
            RegistrationPath::RestOnControl => vec![create.on("control")],
            RegistrationPath::RestOnData => vec![create.on("data")],
            RegistrationPath::RestThenUpdate => {
                let first = Variant::Broken(self.update_change().unwrap_or(UpdateChange::Url));
                vec![
                    with_fields(Step::create(self.rest_server(first)), self.fields(first))
                        .on(written),
                    with_fields(Step::update("srv", self.definition(Variant::Final)), fields)
                        .on(written)
                        .at_ms(self.later_at_ms()),
                ]
            }
            RegistrationPath::DeleteThenCreate => vec![
                create.clone(),
                Step::delete("srv").at_ms(self.later_at_ms()),
                create.at_ms(self.later_at_ms() + RECREATE_AFTER_MS),
            ],
        };
        if self.single_create() {
            let first = steps[0].clone();
            if self.swarm.give_up {
                steps[0].give_up_after_ms = Some(self.faults.give_up_after_ms);
                // The operator retries the same create once it gave up.
                steps.push(first.clone().at_ms(self.faults.give_up_after_ms + 50));
            }
            if self.swarm.twin_create {
                let mut twin = first.with_previous();
                if self.swarm.give_up {
                    if let crate::scenario::Action::Create {
                        spec: Some(spec), ..
                    } = &mut twin.action
                    {
                        spec.server_id = Some("srv-twin".into());
                    }
                }
                steps.insert(1, twin);
            }
        }
        if let Some((at_ms, change)) = self.rewrite() {
            // To the gateway that holds the registration (a config server's
            // own, which may refuse it), the operator looking up its id.
            let rotated = Variant::Rotated(change);
            let update = Step::update("srv", self.definition(rotated));
            steps.push(
                with_fields(update, self.fields(rotated))
                    .at_ms(at_ms)
                    .on(written),
            );
            // In time order; a step racing the one before it stays behind it.
            steps.sort_by_key(|step| step.at_ms);
        }
        steps.extend(self.bad_steps(target));

        let mut mcp = McpServerConfig {
            tools: tools(self.tool_count, self.quirk() == Some(Quirk::AwkwardNames)),
            page_size: self.page_size,
            reply: if self.sse {
                ReplyMode::Sse
            } else {
                ReplyMode::Json
            },
            latency_ms: BTreeMap::from([(
                if self.slow_initialize {
                    "initialize"
                } else {
                    "tools/list"
                }
                .to_string(),
                self.list_latency_ms,
            )]),
            session_ttl_ms: self.horizon().map(|h| h.session_ttl_ms),
            ..McpServerConfig::default()
        };
        if self.swarm.stream_cut {
            mcp.failures.push(McpFailureRule {
                method: "tools/list".into(),
                kind: McpFailure::CutStream,
                after: self.faults.list_after,
                count: Some(1),
            });
        }
        // A dropped session costs the first attempt a second listing; when
        // later attempts count (transient faults), they list once.
        if self.session_drop() && self.disturbed_until_ms().is_none() {
            mcp.failures.push(McpFailureRule {
                method: "tools/list".into(),
                kind: McpFailure::SessionTerminated,
                after: self.faults.list_after,
                count: Some(1),
            });
        }
        if self.swarm.hostile {
            mcp.failures.push(McpFailureRule {
                method: "tools/list".into(),
                kind: self.faults.hostile.failure(),
                after: self.faults.list_after,
                count: Some(1),
            });
        }
        if self.swarm.mcp_flaky {
            mcp.failures.push(McpFailureRule {
                method: "tools/list".into(),
                kind: McpFailure::Http {
                    status: self.faults.mcp_flake_status,
                },
                after: 0,
                count: Some(self.faults.mcp_failures),
            });
        }
        match self.quirk() {
            Some(Quirk::ChattySse) => {
                mcp.reply = ReplyMode::Sse;
                mcp.sse = SseStyle {
                    keep_alives: 2,
                    notifications: 2,
                    crlf: true,
                    ..SseStyle::default()
                };
            }
            Some(Quirk::EmptyFirstPage) => mcp.paging = Paging::EmptyFirstPage,
            Some(Quirk::StuckCursor) => mcp.paging = Paging::StuckCursor,
            Some(Quirk::ToolsChange) => mcp.tool_changes.push(ToolChange {
                at_ms: self.faults.tools_change_at_ms,
                tools: Vec::new(),
                tool_count: Some(self.final_tool_count()),
            }),
            Some(Quirk::OpenGetStream) => {
                mcp.tool_changes.push(ToolChange {
                    at_ms: self.faults.tools_change_at_ms,
                    tools: Vec::new(),
                    tool_count: Some(self.final_tool_count() - 1),
                });
                mcp.tool_changes.push(ToolChange {
                    at_ms: self.faults.tools_change_at_ms + SECOND_CHANGE_AFTER_MS,
                    tools: Vec::new(),
                    tool_count: Some(self.final_tool_count()),
                });
                mcp.get_stream = GetStream::Open;
            }
            Some(Quirk::SessionExpiry) => {
                mcp.session_max_requests = Some(self.session_max_requests())
            }
            Some(Quirk::Lenient) => {
                mcp.lenient_version_header = true;
                mcp.lenient_session = true;
                mcp.lenient_accept = true;
            }
            Some(Quirk::Stateless) => mcp.sessions = false,
            Some(Quirk::OldRevision) => mcp.protocol_versions = vec!["2025-03-26".into()],
            Some(Quirk::DeleteHangs) => mcp.failures.push(McpFailureRule {
                method: "DELETE".into(),
                kind: McpFailure::Hang,
                after: 0,
                count: None,
            }),
            _ => {}
        }
        let late = self
            .swarm
            .late_upstream
            .then_some(self.faults.listen_after_ms);
        let mut token_servers = Vec::new();
        match self.auth {
            AuthPlan::None => {}
            AuthPlan::Bearer => {
                mcp.auth = McpAuth::Bearer {
                    token: BEARER.into(),
                }
            }
            AuthPlan::ClientCredentials { expires_in_s, .. } => {
                mcp.auth = McpAuth::Oauth {
                    // An issuer URL, so that the protected-resource metadata
                    // names a discoverable authorization server.
                    issuer: GEN_ISSUER.into(),
                    signing_key: match self.quirk() {
                        Some(Quirk::RejectsTokens) => OTHER_SIGNING_KEY.into(),
                        _ => SIGNING_KEY.into(),
                    },
                    required_scope: self.scope_required().then(|| GEN_SCOPE.into()),
                    revoke_at_ms: self.swarm.revoke.then(|| match self.faults.revoke_late {
                        true => self.poll_until_ms(),
                        false => self.faults.revoke_at_ms,
                    }),
                    authorization_server: None,
                };
                // The registration states the client authentication the
                // gateway is told to use, or the one the endpoint insists
                // on, and the endpoint holds the gateway to it.
                let auth_method = match (self.quirk(), client_auth) {
                    (Some(Quirk::BasicOnlyToken), _) => AuthMethod::Basic,
                    (Some(Quirk::FormOnlyToken), _) => AuthMethod::Form,
                    (_, ClientAuth::Basic) => AuthMethod::Basic,
                    (_, ClientAuth::Form) => AuthMethod::Form,
                };
                let client = |client_id: &str, client_secret: &str| ClientRegistration {
                    client_id: client_id.into(),
                    client_secret: client_secret.into(),
                    scopes: Vec::new(),
                    auth_method: Some(auth_method),
                };
                let mut config = TokenServerConfig {
                    issuer: GEN_ISSUER.into(),
                    signing_key: SIGNING_KEY.into(),
                    expires_in_s: Some(self.horizon().map_or(expires_in_s, |h| h.expires_in_s)),
                    latency_ms: self.token_latency_ms(),
                    // What a rotation turns to works as well.
                    clients: vec![
                        client(CLIENT_ID, CLIENT_SECRET),
                        client(CLIENT_ID, ROTATED_SECRET),
                        client(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET),
                    ],
                    lenient_client_auth: self.quirk() == Some(Quirk::Lenient),
                    ..TokenServerConfig::default()
                };
                match self.quirk() {
                    Some(Quirk::ShortUnstatedToken) => {
                        config.expires_in_s = None;
                        config.lifetime_s = Some(SHORT_TOKEN_LIFETIME_S);
                    }
                    Some(Quirk::BasicOnlyToken) => {
                        config.client_auth = AcceptedClientAuth::BasicOnly
                    }
                    Some(Quirk::FormOnlyToken) => config.client_auth = AcceptedClientAuth::FormOnly,
                    Some(Quirk::TokenNeedsParams) => {
                        config.require_scope = Some("mcp".into());
                        config.require_resource = Some("http://mcp/mcp".into());
                        config.require_audience = Some(GEN_AUDIENCE.into());
                    }
                    _ => {}
                }
                if self.swarm.token_flaky {
                    let kind = match self.faults.token_flake {
                        TokenFlake::ServerError => TokenFailure::ServerError,
                        TokenFlake::Hang => TokenFailure::Hang,
                        TokenFlake::RateLimited => TokenFailure::RateLimited,
                    };
                    config.failures.push(TokenFailureRule {
                        kind,
                        after: 0,
                        count: Some(self.faults.token_failures),
                    });
                }
                let mut host = TokenHost::new("auth").config(config);
                host.listen_after_ms = late;
                token_servers.push(host);
            }
        }
        let mut mcp_host = McpHost::new("mcp").config(mcp);
        mcp_host.listen_after_ms = late;

        let mut faults = Vec::new();
        if let Some((target, at_ms)) = self.restart {
            let host = match (target, self.split()) {
                (RestartTarget::Store, _) if store => "db",
                (RestartTarget::Auth, _) if self.client_credentials() => "auth",
                (RestartTarget::Mcp, _) | (RestartTarget::Auth, _) => "mcp",
                (RestartTarget::Gateway, true) => "data",
                (RestartTarget::Control, true) => "control",
                (_, _) => asked,
            };
            faults.push(if self.crashed_upstream().is_some() {
                Fault::crash(at_ms, host)
            } else {
                Fault::bounce(at_ms, host)
            });
        }
        for (verb, cut) in self.cuts() {
            let other = match cut.link {
                Link::Upstream => "mcp",
                Link::Token => "auth",
                Link::Store => "db",
            };
            let heal_at = cut.at_ms + cut.for_ms;
            let cut_hosts: &[&str] = if self.replica() {
                &[asked, REPLICA]
            } else {
                &[asked]
            };
            for &host in cut_hosts {
                if verb == "partition" {
                    faults.push(Fault::partition(cut.at_ms, host, other));
                    faults.push(Fault::repair(heal_at, host, other));
                } else {
                    faults.push(Fault::hold(cut.at_ms, host, other));
                    faults.push(Fault::release(heal_at, host, other));
                }
            }
        }
        let poll_until_ms = self.poll_until_ms();
        let deadline_ms = (poll_until_ms + 2_000).max(5_000);

        let mut description = format!(
            "generated: {} with {:?}; swarm: {}",
            self.path.name(),
            self.auth,
            self.swarm.names().join(" ")
        );
        if !self.neighbours.is_empty() {
            description.push_str(&format!("; neighbours: {:?}", self.neighbours));
        }
        if self.replica() {
            description.push_str("; replica: data2");
        }
        let mut builder = Scenario::builder(description)
            .seed(self.seed)
            .deadline_ms(deadline_ms)
            .latency_ms(1, self.latency_ms_max)
            .tick_ms(self.tick_ms())
            .mcp_server(mcp_host)
            .poll_interval_ms(POLL_INTERVAL_MS)
            .poll_until_ms(poll_until_ms)
            .api_key(OPERATOR_KEY)
            .call_tools();
        for gateway in gateways {
            builder = builder.gateway(gateway);
        }
        if store {
            let mut host = StoreHost::new("db");
            if let Some(lag) = self.store_lag() {
                host.config.latency_ms = lag.latency_ms;
                host.config.snapshot_delay_ms = lag.snapshot_delay_ms;
            }
            builder = builder.store(host);
        }
        for server in token_servers {
            builder = builder.token_server(server);
        }
        for host in self.neighbour_hosts() {
            builder = builder.mcp_server(host);
        }
        for step in steps {
            builder = builder.step(step);
        }
        for fault in faults {
            builder = builder.fault(fault);
        }
        if self.store_cut_certain() {
            builder = builder.expect_store_unreachable(asked);
        }
        if let Some(status) = self.expected_status() {
            let mut expectation = Expectation::status(status);
            if status == Status::Healthy {
                expectation = expectation.tool_count(self.final_tool_count());
            }
            builder = builder.expect("srv", expectation);
        }
        for (k, neighbour) in self.neighbours.iter().enumerate() {
            let mut expectation = Expectation::status(neighbour.expected_status());
            if let Neighbour::Healthy { tools } = neighbour {
                expectation = expectation.tool_count(*tools);
            }
            builder = builder.expect(format!("n{}", k + 1), expectation);
        }
        builder.build()
    }
}
