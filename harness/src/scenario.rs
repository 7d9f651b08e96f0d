//! Scenarios are data: one JSON value says everything a run depends on.
//!
//! A scenario comes from a file ([`Scenario::load`]) or is built in code
//! ([`Scenario::builder`]); either way [`Scenario::validate`] checks it the
//! same way, and a malformed one is refused with the file, the JSON path
//! inside it and the reason, never a panic. What belongs to the system
//! under test (a gateway host's settings and config) is opaque here: the
//! system under test itself checks it when a run begins.

use std::collections::BTreeMap;
use std::path::Path;

use mcpsim_fakes::{McpServerConfig, StoreServerConfig, TokenServerConfig};
use mcpsim_sut::{ServerDef, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole plan of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line: what this scenario shows.
    pub description: String,
    /// The only source of entropy: turmoil's RNG and the gateway's ids.
    #[serde(default)]
    pub seed: u64,
    /// Simulated time after which unsettled servers fail the run.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    #[serde(default)]
    pub network: Network,
    pub gateways: Vec<GatewayHost>,
    #[serde(default)]
    pub token_servers: Vec<TokenHost>,
    #[serde(default)]
    pub mcp_servers: Vec<McpHost>,
    /// Store hosts (the gateway's database).
    #[serde(default)]
    pub stores: Vec<StoreHost>,
    #[serde(default)]
    pub operator: Operator,
    /// Faults applied to the world at stated simulated times.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Expected outcome per server name, checked at the end.
    #[serde(default)]
    pub expect: BTreeMap<String, Expectation>,
    /// Gateway hosts whose health must, at some poll, say their store is
    /// unreachable (while they keep serving what they knew).
    #[serde(default)]
    pub expect_store_unreachable: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_deadline_ms() -> u64 {
    30_000
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// How far simulated time moves per step of the simulation. Every step
    /// costs the same whatever happens in it, so a coarser tick runs faster;
    /// timers and messages land on tick boundaries.
    pub tick_ms: u64,
}

impl Network {
    /// The longest one message can take: its latency, rounded up to the
    /// tick it lands on, plus the tick in which its receiver runs.
    pub fn hop_ms(&self) -> u64 {
        self.latency_ms_max.div_ceil(self.tick_ms.max(1)) * self.tick_ms.max(1) + self.tick_ms
    }
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms_min: 1,
            latency_ms_max: 5,
            tick_ms: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayHost {
    pub host: String,
    /// The system under test's own settings for this host, opaque to the
    /// harness (the reference gateway's role, budgets and intervals).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub settings: Value,
    /// The gateway's config file in its own format, as JSON (LiteLLM's:
    /// `{"mcp_servers": {...}}`), passed on verbatim.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// Servers for the config file, in mcpsim's words; the gateway's
    /// dialect writes them into its config file beside `config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerDef>,
    /// The store host this gateway persists REST registrations in; none
    /// keeps them in memory only.
    #[serde(default)]
    pub store: Option<String>,
    /// Environment for `os.environ/NAME` values in the config.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenHost {
    pub host: String,
    /// False: the host is up but nothing listens, so connects are refused.
    #[serde(default = "yes")]
    pub listening: bool,
    /// Nothing listens until this simulated time (an upstream that comes
    /// up after the server was registered); connects before it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_after_ms: Option<u64>,
    #[serde(default)]
    pub config: TokenServerConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpHost {
    pub host: String,
    /// False: the host is up but nothing listens, so connects are refused.
    #[serde(default = "yes")]
    pub listening: bool,
    /// Nothing listens until this simulated time (an upstream that comes
    /// up after the server was registered); connects before it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_after_ms: Option<u64>,
    #[serde(default)]
    pub config: McpServerConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreHost {
    pub host: String,
    #[serde(default)]
    pub config: StoreServerConfig,
}

/// The operator's client: registration steps, then polling until settled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Operator {
    pub poll_interval_ms: u64,
    /// Sent as `Authorization: Bearer <api_key>` with every request, as
    /// LiteLLM's master key is. A secret: it must never reach an upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// After settling, call every listed tool of every healthy server once
    /// (LiteLLM: `POST /mcp-rest/tools/call`), with arguments its input
    /// schema takes and the `MCP-Protocol-Version` of its own revision, as
    /// a client of the gateway would.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub call_tools: bool,
    /// Keep polling at least until this simulated time, so what happens
    /// after the last fault (a recovery) is seen too.
    pub poll_until_ms: u64,
    pub steps: Vec<Step>,
}

impl Default for Operator {
    fn default() -> Self {
        Operator {
            poll_interval_ms: 50,
            api_key: None,
            call_tools: false,
            poll_until_ms: 0,
            steps: Vec::new(),
        }
    }
}

/// A fault, spelled as turmoil spells its verbs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub at_ms: u64,
    #[serde(flatten)]
    pub verb: Verb,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verb {
    /// Stop the host: its runtime and every task on it are dropped.
    Crash {
        host: String,
    },
    /// Restart the host: its setup runs again, with only durable state kept.
    Bounce {
        host: String,
    },
    /// Cut the link between two hosts: new connections are refused, open
    /// ones hang.
    Partition {
        a: String,
        b: String,
    },
    Repair {
        a: String,
        b: String,
    },
    /// Queue the messages between two hosts until `release`.
    Hold {
        a: String,
        b: String,
    },
    Release {
        a: String,
        b: String,
    },
}

impl Verb {
    /// The hosts the fault names.
    pub fn hosts(&self) -> Vec<&str> {
        match self {
            Verb::Crash { host } | Verb::Bounce { host } => vec![host],
            Verb::Partition { a, b }
            | Verb::Repair { a, b }
            | Verb::Hold { a, b }
            | Verb::Release { a, b } => {
                vec![a, b]
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Verb::Crash { host } => format!("crash {host}"),
            Verb::Bounce { host } => format!("bounce {host}"),
            Verb::Partition { a, b } => format!("partition {a} {b}"),
            Verb::Repair { a, b } => format!("repair {a} {b}"),
            Verb::Hold { a, b } => format!("hold {a} {b}"),
            Verb::Release { a, b } => format!("release {a} {b}"),
        }
    }
}

/// One operator action, sent at `at_ms` of simulated time (or at once).
// No `deny_unknown_fields` here: serde cannot combine it with `flatten`;
// the action's own fields are still checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub at_ms: u64,
    /// Which gateway host to ask; the first when absent.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Sent together with the previous step, without waiting for its
    /// answer (two creates racing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_previous: bool,
    /// The operator's client gives up after this long and drops the
    /// connection, as a client with a short timeout does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_after_ms: Option<u64>,
    /// A create's or an update's body sent byte for byte, in place of a
    /// `body` or a `spec`: what a broken client sends (malformed JSON, a
    /// bare string, nothing at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// Fields set at the top level of the body the dialect writes for a
    /// `spec`: the gateway's own fields that mcpsim's words lack (LiteLLM's
    /// `alias`, `static_headers`), or unknown ones it must ignore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_fields: Option<serde_json::Map<String, Value>>,
    /// The write is a bad input: the gateway must refuse it with a 4xx that
    /// says why, and change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bad_input: bool,
    #[serde(flatten)]
    pub action: Action,
}

/// A registration or an update: the gateway's own body (`body`, sent
/// verbatim) or a server in mcpsim's words (`spec`, written by the
/// gateway's dialect); exactly one of the two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// Register a server (LiteLLM: `POST /v1/mcp/server`).
    Create {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<ServerDef>,
    },
    /// Change a server (LiteLLM: `PUT /v1/mcp/server`); `server` names an
    /// earlier created server, whose id the dialect fills in.
    Update {
        server: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<ServerDef>,
    },
    /// Delete the server with this name (LiteLLM:
    /// `DELETE /v1/mcp/server/{id}`).
    Delete { server: String },
}

impl Action {
    /// What a create or an update sends, for the dialect.
    pub fn registration(&self) -> Option<mcpsim_sut::Registration<'_>> {
        match self {
            Action::Create { body, spec } | Action::Update { body, spec, .. } => {
                match (body, spec) {
                    (Some(body), _) => Some(mcpsim_sut::Registration::Native(body)),
                    (None, Some(spec)) => Some(mcpsim_sut::Registration::Def(spec)),
                    (None, None) => None,
                }
            }
            Action::Delete { .. } => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub error_contains: Option<String>,
    #[serde(default)]
    pub tool_count: Option<usize>,
}

/// A scenario that could not be read.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: String,
    /// JSON path inside the file (`gateways[0].settings.list_timeout_ms`).
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: at {}: {}", self.file, self.path, self.reason)
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    pub fn from_json(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let scenario: Scenario =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ScenarioError {
                file: file.to_string(),
                path: e.path().to_string(),
                reason: e.inner().to_string(),
            })?;
        scenario.check().map_err(|(path, reason)| ScenarioError {
            file: file.to_string(),
            path,
            reason,
        })?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            path: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Scenario::from_json(&file, &text)
    }

    /// Checks what serde cannot: host names, references between parts. A
    /// scenario built in code is checked exactly as one read from a file.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.check().map_err(|(path, reason)| ScenarioError {
            file: "(built in code)".to_string(),
            path,
            reason,
        })
    }

    fn check(&self) -> Result<(), (String, String)> {
        if self.gateways.is_empty() {
            return Err((
                "gateways".into(),
                "at least one gateway host is needed".into(),
            ));
        }
        let mut hosts = std::collections::BTreeSet::new();
        let all = self
            .gateways
            .iter()
            .map(|g| ("gateways", &g.host))
            .chain(
                self.token_servers
                    .iter()
                    .map(|t| ("token_servers", &t.host)),
            )
            .chain(self.mcp_servers.iter().map(|m| ("mcp_servers", &m.host)))
            .chain(self.stores.iter().map(|s| ("stores", &s.host)));
        for (i, (part, host)) in all.enumerate() {
            let valid = !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && host != "operator";
            if !valid {
                return Err((
                    format!("{part}.host"),
                    format!("{host:?} is not a valid host name"),
                ));
            }
            if !hosts.insert(host.clone()) {
                return Err((
                    format!("{part}.host"),
                    format!("host {host} is declared twice (entry {i})"),
                ));
            }
        }
        if self.network.latency_ms_min > self.network.latency_ms_max {
            return Err((
                "network".into(),
                "latency_ms_min is above latency_ms_max".into(),
            ));
        }
        if self.network.tick_ms == 0 || self.network.tick_ms > 100 {
            return Err(("network.tick_ms".into(), "must be between 1 and 100".into()));
        }
        if self.operator.poll_interval_ms == 0 {
            return Err(("operator.poll_interval_ms".into(), "must be above 0".into()));
        }
        for (i, step) in self.operator.steps.iter().enumerate() {
            if step.with_previous && i == 0 {
                return Err((
                    format!("operator.steps[{i}].with_previous"),
                    "the first step has no previous step".into(),
                ));
            }
            if step.give_up_after_ms == Some(0) {
                return Err((
                    format!("operator.steps[{i}].give_up_after_ms"),
                    "must be above 0".into(),
                ));
            }
            let given = match &step.action {
                Action::Create { body, spec } | Action::Update { body, spec, .. } => Some(
                    [body.is_some(), spec.is_some(), step.raw_body.is_some()]
                        .iter()
                        .filter(|given| **given)
                        .count(),
                ),
                Action::Delete { .. } => None,
            };
            match given {
                Some(0) => {
                    return Err((
                        format!("operator.steps[{i}]"),
                        "needs a body (the gateway's own), a spec (mcpsim's words) or a raw_body"
                            .into(),
                    ))
                }
                Some(1) => {}
                Some(_) => {
                    return Err((
                        format!("operator.steps[{i}]"),
                        "give one of body, spec and raw_body".into(),
                    ))
                }
                None if step.raw_body.is_some() || step.extra_fields.is_some() => {
                    return Err((
                        format!("operator.steps[{i}]"),
                        "a delete carries no body".into(),
                    ))
                }
                None => {}
            }
            let has_spec = matches!(
                &step.action,
                Action::Create { spec: Some(_), .. } | Action::Update { spec: Some(_), .. }
            );
            if step.extra_fields.is_some() && !has_spec {
                return Err((
                    format!("operator.steps[{i}].extra_fields"),
                    "extra fields go with a spec, which the dialect writes".into(),
                ));
            }
            if let Some(g) = &step.gateway {
                if !self.gateways.iter().any(|h| &h.host == g) {
                    return Err((
                        format!("operator.steps[{i}].gateway"),
                        format!("no gateway host {g}"),
                    ));
                }
            }
        }
        for (i, fault) in self.faults.iter().enumerate() {
            for host in fault.verb.hosts() {
                if !hosts.contains(host) && host != "operator" {
                    return Err((format!("faults[{i}]"), format!("no host {host}")));
                }
            }
            if matches!(fault.verb, Verb::Crash { .. } | Verb::Bounce { .. })
                && fault.verb.hosts() == ["operator"]
            {
                return Err((
                    format!("faults[{i}]"),
                    "the operator cannot be crashed or bounced".into(),
                ));
            }
        }
        for (i, gateway) in self.gateways.iter().enumerate() {
            if let Some(store) = &gateway.store {
                if !self.stores.iter().any(|s| &s.host == store) {
                    return Err((
                        format!("gateways[{i}].store"),
                        format!("no store host {store}"),
                    ));
                }
            }
            if !matches!(gateway.config, Value::Null | Value::Object(_)) {
                return Err((
                    format!("gateways[{i}].config"),
                    "must be a JSON object".into(),
                ));
            }
            if !matches!(gateway.settings, Value::Null | Value::Object(_)) {
                return Err((
                    format!("gateways[{i}].settings"),
                    "must be a JSON object".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Short JSON for a scenario: every value equal to what an absent field
/// reads as is left out, so a written reproducer reads like a hand-written
/// scenario. Reading the compact text gives the same scenario back.
impl Scenario {
    /// The scenario as JSON without its defaults: the fields in the order
    /// the format declares them, a fake or store host per line. `settings`
    /// are the system under test's own defaults for a gateway host's
    /// settings (its [`mcpsim_sut::SystemUnderTest::default_settings`]);
    /// settings equal to them are left out too. Null leaves every setting
    /// in.
    pub fn to_compact_json(&self, settings: &Value) -> String {
        let full = serde_json::to_value(self).unwrap_or(Value::Null);
        let Value::Object(mut fields) = full else {
            return String::new();
        };
        let minimal = serde_json::json!({
            "description": self.description,
            "gateways": [{"host": "gateway"}],
        });
        let shortest = serde_json::from_value::<Scenario>(minimal)
            .ok()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        for (key, default) in shortest.as_object().into_iter().flatten() {
            if HOST_PARTS.contains(&key.as_str()) || key == "description" {
                continue;
            }
            match fields.get_mut(key) {
                Some(value) if value == default => {
                    fields.remove(key);
                }
                Some(value) => prune(value, default),
                None => {}
            }
        }
        for part in HOST_PARTS {
            let hosts = fields.get_mut(part).and_then(Value::as_array_mut);
            for host in hosts.into_iter().flatten() {
                let name = host.get("host").cloned().unwrap_or(Value::Null);
                prune(host, &host_default(part, name));
                if part != "gateways" {
                    continue;
                }
                if let Some(own) = host.get_mut("settings") {
                    prune(own, settings);
                    if own.as_object().is_some_and(|o| o.is_empty()) {
                        host.as_object_mut().map(|h| h.remove("settings"));
                    }
                }
            }
            if fields
                .get(part)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                fields.remove(part);
            }
        }
        let expectation = serde_json::to_value(Expectation::default()).unwrap_or(Value::Null);
        let expect = fields.get_mut("expect").and_then(Value::as_object_mut);
        for (_, each) in expect.into_iter().flatten() {
            prune(each, &expectation);
        }
        let order = [
            "description",
            "seed",
            "deadline_ms",
            "network",
            "gateways",
            "token_servers",
            "mcp_servers",
            "stores",
            "operator",
            "faults",
            "expect",
            "expect_store_unreachable",
        ];
        let mut lines = Vec::new();
        for key in order {
            let Some(value) = fields.get(key) else {
                continue;
            };
            let text = match value.as_array() {
                Some(hosts) if HOST_PARTS.contains(&key) && key != "gateways" => {
                    let each: Vec<String> = hosts.iter().map(one_line_host).collect();
                    format!("[\n    {}\n  ]", each.join(",\n    "))
                }
                _ => serde_json::to_string_pretty(value)
                    .unwrap_or_default()
                    .replace('\n', "\n  "),
            };
            lines.push(format!("  {}: {text}", Value::from(key)));
        }
        format!("{{\n{}\n}}", lines.join(",\n"))
    }
}

/// The parts of a scenario that list hosts.
const HOST_PARTS: [&str; 4] = ["gateways", "token_servers", "mcp_servers", "stores"];

/// A host as one line of JSON, its name first.
fn one_line_host(host: &Value) -> String {
    let mut rest = host.clone();
    let name = rest
        .as_object_mut()
        .and_then(|h| h.remove("host"))
        .unwrap_or(Value::Null);
    let rest = serde_json::to_string(&rest).unwrap_or_default();
    match rest.strip_prefix('{').filter(|r| *r != "}") {
        Some(more) => format!("{{\"host\": {name}, {more}"),
        None => format!("{{\"host\": {name}}}"),
    }
}

/// A host of this part of a scenario as it reads with nothing but its name.
fn host_default(part: &str, name: Value) -> Value {
    let minimal = serde_json::json!({"host": name});
    let typed = match part {
        "gateways" => serde_json::from_value::<GatewayHost>(minimal).map(serde_json::to_value),
        "token_servers" => serde_json::from_value::<TokenHost>(minimal).map(serde_json::to_value),
        "mcp_servers" => serde_json::from_value::<McpHost>(minimal).map(serde_json::to_value),
        _ => serde_json::from_value::<StoreHost>(minimal).map(serde_json::to_value),
    };
    match typed {
        Ok(Ok(value)) => value,
        _ => Value::Null,
    }
}

/// Removes from `value` every field equal to the same field of `default`
/// (but a host's name), object by object; arrays and scalars are kept
/// whole.
fn prune(value: &mut Value, default: &Value) {
    let (Some(fields), Some(defaults)) = (value.as_object_mut(), default.as_object()) else {
        return;
    };
    for (key, default) in defaults {
        if key == "host" {
            continue;
        }
        match fields.get_mut(key) {
            Some(value) if value == default => {
                fields.remove(key);
            }
            Some(value) => prune(value, default),
            None => {}
        }
    }
}
