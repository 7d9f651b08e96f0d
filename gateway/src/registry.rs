//! The registry of servers and the discovery work it owns.
//!
//! Each server has a generation, bumped by every update; its discovery task
//! belongs to one generation and may write a result only while that
//! generation is current, checked under the same lock as the write. An
//! update or a delete aborts the old task and records the cancellation; the
//! request that caused it never waits for discovery.
//!
//! Known defects ([`crate::Defect`]) are consulted here, each at the place
//! where the real gateway went wrong; with none switched on, none of those
//! branches is taken.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokio::task::AbortHandle;

use crate::clock::rfc3339;
use crate::defects::Defect;
use crate::mcp_client::{
    self, ClientQuirks, Failure, ListRequest, McpError, Stage, StageCell, Tool,
};
use crate::spec::{self, Auth, ServerSpec, Source, SpecError, Transport, REDACTED};
use crate::store::{decode_row_with, encode_row, Store, StoreError};
use crate::token::{TokenCache, TokenError, TokenPolicy, TokenRequest};
use crate::{AttemptReason, CancelReason, Deps, GatewayEvent, GatewaySettings, Status};

/// An API refusal: status and a secret-free message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn invalid(error: SpecError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
    }
}

#[derive(Clone, Debug, Default)]
struct Health {
    status: Option<Status>,
    last_health_check: Option<Duration>,
    error: Option<String>,
    tools: Vec<Tool>,
}

impl Health {
    fn status(&self) -> Status {
        self.status.unwrap_or(Status::Unknown)
    }
}

struct Entry {
    spec: Arc<ServerSpec>,
    /// The REST body as stored (secrets included), for merging updates.
    rest_body: Option<Value>,
    generation: u64,
    health: Health,
    task: Option<AbortHandle>,
    in_flight: Option<u64>,
    /// The store version this definition came from or was written as.
    store_version: Option<u64>,
    created_at: Duration,
    updated_at: Duration,
}

struct State {
    servers: BTreeMap<String, Entry>,
    next_attempt: u64,
    ids: ChaCha8Rng,
    started: bool,
    /// False after a failed read of the store, until a read succeeds.
    store_reachable: bool,
    /// Rows already reported as undecodable, by version.
    skipped: BTreeMap<String, u64>,
    /// Store version of each delete made here, so an older snapshot cannot
    /// resurrect the server.
    tombstones: BTreeMap<String, u64>,
    /// Creates between their uniqueness check and their insert (the store
    /// write lies between): id -> alias. Two creates of one name that race
    /// would both pass the check otherwise, and both rows would be stored.
    pending: BTreeMap<String, String>,
    sync_task: Option<AbortHandle>,
    /// True once a read of the store has succeeded.
    loaded: bool,
    /// Tasks of superseded attempts that were not cancelled (the
    /// `superseded-result-wins` defect); aborted at shutdown only.
    orphans: Vec<AbortHandle>,
}

pub(crate) struct Registry {
    settings: GatewaySettings,
    deps: Deps,
    tokens: TokenCache,
    state: Mutex<State>,
}

/// The result of one discovery attempt.
enum Outcome {
    Healthy(Vec<Tool>),
    Unhealthy(String),
    /// An upstream error turned into a cancellation and swallowed into an
    /// empty list (the `error-becomes-cancellation` defect).
    Swallowed,
}

impl Registry {
    pub fn new(settings: GatewaySettings, deps: Deps) -> Self {
        let policy = TokenPolicy {
            expiry_skew: Duration::from_secs(settings.token_expiry_skew_s),
            ttl_floor: Duration::from_secs(settings.token_ttl_floor_s),
            default_ttl: Duration::from_secs(settings.token_default_ttl_s),
            client_auth: settings.token_client_auth,
        };
        Registry {
            tokens: TokenCache::new(deps.http.clone(), deps.clock.clone(), policy),
            state: Mutex::new(State {
                servers: BTreeMap::new(),
                next_attempt: 1,
                // A restarted process must not hand out its old ids again,
                // so the start time joins the seed (simulated time in the
                // harness, so runs stay reproducible).
                ids: ChaCha8Rng::seed_from_u64(
                    settings.id_seed ^ deps.clock.now_unix().as_nanos() as u64,
                ),
                started: false,
                store_reachable: true,
                skipped: BTreeMap::new(),
                tombstones: BTreeMap::new(),
                pending: BTreeMap::new(),
                sync_task: None,
                loaded: false,
                orphans: Vec::new(),
            }),
            settings,
            deps,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, event: GatewayEvent) {
        self.deps.events.record(event);
    }

    pub fn role(&self) -> crate::Role {
        self.settings.role
    }

    /// Whether a known defect is switched on.
    fn has(&self, defect: Defect) -> bool {
        self.settings.defects.has(defect)
    }

    pub fn attempt_budget(&self) -> Duration {
        // A token, a listing, a 401, a second token and a second listing.
        Duration::from_millis(2 * (self.settings.token_timeout_ms + self.settings.list_timeout_ms))
    }

    fn check_unique(
        state: &State,
        spec: &ServerSpec,
        except: Option<&str>,
    ) -> Result<(), SpecError> {
        for (id, entry) in &state.servers {
            if Some(id.as_str()) == except {
                continue;
            }
            if entry.spec.alias == spec.alias {
                return Err(SpecError::invalid(
                    "alias",
                    format!("{} is already used by server {id}", spec.alias),
                ));
            }
        }
        Ok(())
    }

    /// A new server must have a new id and an alias no other server uses.
    fn check_new(state: &State, spec: &ServerSpec) -> Result<(), ApiError> {
        if state.servers.contains_key(&spec.id) || state.pending.contains_key(&spec.id) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("server_id {} already exists", spec.id),
            ));
        }
        if let Some((id, _)) = state.pending.iter().find(|(_, a)| **a == spec.alias) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("alias: {} is already used by server {id}", spec.alias),
            ));
        }
        Self::check_unique(state, spec, None)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
    }

    fn new_entry(&self, spec: ServerSpec, rest_body: Option<Value>) -> Entry {
        let now = self.deps.clock.now_unix();
        Entry {
            spec: Arc::new(spec),
            rest_body,
            generation: 1,
            health: Health::default(),
            task: None,
            in_flight: None,
            store_version: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn insert_config(&self, spec: ServerSpec) -> Result<(), SpecError> {
        let mut state = self.lock();
        if state.servers.contains_key(&spec.id) {
            return Err(SpecError::invalid("", "the same server is defined twice"));
        }
        Self::check_unique(&state, &spec, None)?;
        let (id, name) = (spec.id.clone(), spec.name.clone());
        let entry = self.new_entry(spec, None);
        state.servers.insert(id.clone(), entry);
        drop(state);
        self.emit(GatewayEvent::Registered {
            server_id: id,
            name,
            source: Source::Config,
        });
        Ok(())
    }

    pub fn start(self: &Arc<Self>) {
        let ids: Vec<String> = {
            let mut state = self.lock();
            if state.started {
                return;
            }
            state.started = true;
            state.servers.keys().cloned().collect()
        };
        for id in ids {
            self.spawn(&id, Some(AttemptReason::Startup));
        }
        // Defect data-plane-never-syncs: without database sync a LiteLLM
        // data plane never reads the store, so it knows only the servers
        // it wrote itself (issues 12359, 15061, 22325).
        let never_syncs =
            self.settings.role == crate::Role::Data && self.has(Defect::DataPlaneNeverSyncs);
        if let Some(store) = self.deps.store.clone().filter(|_| !never_syncs) {
            let registry = self.clone();
            let task = tokio::spawn(async move { registry.sync_loop(store).await });
            self.lock().sync_task = Some(task.abort_handle());
        }
    }

    pub fn shutdown(&self) {
        let mut cancelled = Vec::new();
        {
            let mut state = self.lock();
            state.started = false;
            if let Some(task) = state.sync_task.take() {
                task.abort();
            }
            for task in state.orphans.drain(..) {
                task.abort();
            }
            for (id, entry) in state.servers.iter_mut() {
                if let Some(task) = entry.task.take() {
                    task.abort();
                }
                if let Some(attempt) = entry.in_flight.take() {
                    cancelled.push((id.clone(), attempt));
                }
            }
        }
        for (server_id, attempt) in cancelled {
            self.emit(GatewayEvent::DiscoveryCancelled {
                server_id,
                attempt,
                reason: CancelReason::Shutdown,
            });
        }
    }

    /// Starts the discovery task of the server's current generation; with
    /// no reason, its first attempt waits one check interval.
    fn spawn(self: &Arc<Self>, id: &str, reason: Option<AttemptReason>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if !state.started {
            return;
        }
        let Some(entry) = state.servers.get_mut(id) else {
            return;
        };
        let registry = self.clone();
        let (id, generation, spec) = (id.to_string(), entry.generation, entry.spec.clone());
        let task =
            tokio::spawn(async move { registry.discover(id, generation, spec, reason).await });
        if let Some(old) = entry.task.replace(task.abort_handle()) {
            state.orphans.push(old);
        }
    }

    /// Aborts a server's discovery task, recording the in-flight attempt.
    fn cancel(
        &self,
        orphans: &mut Vec<AbortHandle>,
        entry: &mut Entry,
        reason: CancelReason,
    ) -> Option<GatewayEvent> {
        // Defect superseded-result-wins: the old attempt is neither
        // cancelled nor recorded as cancelled; it runs on and writes its
        // result when it ends, whatever came since.
        if self.has(Defect::SupersededResultWins) {
            orphans.extend(entry.task.take());
            return None;
        }
        if let Some(task) = entry.task.take() {
            task.abort();
        }
        entry
            .in_flight
            .take()
            .map(|attempt| GatewayEvent::DiscoveryCancelled {
                server_id: entry.spec.id.clone(),
                attempt,
                reason,
            })
    }

    async fn discover(
        self: Arc<Self>,
        id: String,
        generation: u64,
        spec: Arc<ServerSpec>,
        first: Option<AttemptReason>,
    ) {
        let mut reason = match first {
            Some(reason) => reason,
            None => {
                tokio::time::sleep(Duration::from_millis(self.settings.check_interval_ms)).await;
                AttemptReason::Interval
            }
        };
        loop {
            let attempt = {
                let mut state = self.lock();
                let attempt = state.next_attempt;
                state.next_attempt += 1;
                match state.servers.get_mut(&id) {
                    Some(entry) if entry.generation == generation => {
                        entry.in_flight = Some(attempt)
                    }
                    _ => return,
                }
                attempt
            };
            self.emit(GatewayEvent::DiscoveryStarted {
                server_id: id.clone(),
                attempt,
                reason,
            });
            let outcome = self.attempt(&spec, attempt).await;
            if !self.finish(&spec, generation, attempt, outcome) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(self.settings.check_interval_ms)).await;
            reason = AttemptReason::Interval;
        }
    }

    /// One attempt awaited by the request that registered or updated the
    /// server (the `discovery-tied-to-request` defect): if the client gives
    /// up, the request's future is dropped and the attempt with it, with no
    /// end recorded. Only a finished attempt hands on to the registry's
    /// interval task.
    async fn discover_in_request(self: &Arc<Self>, id: &str, reason: AttemptReason) {
        let (generation, spec, attempt) = {
            let mut state = self.lock();
            if !state.started {
                return;
            }
            let attempt = state.next_attempt;
            let Some(entry) = state.servers.get(id) else {
                return;
            };
            let (generation, spec) = (entry.generation, entry.spec.clone());
            state.next_attempt += 1;
            (generation, spec, attempt)
        };
        self.emit(GatewayEvent::DiscoveryStarted {
            server_id: id.to_string(),
            attempt,
            reason,
        });
        let outcome = self.attempt(&spec, attempt).await;
        if self.finish(&spec, generation, attempt, outcome) {
            self.spawn(id, None);
        }
    }

    /// Writes an attempt's result if its generation is still current, and
    /// says whether the task should go on checking.
    fn finish(&self, spec: &ServerSpec, generation: u64, attempt: u64, outcome: Outcome) -> bool {
        let id = spec.id.as_str();
        let now = self.deps.clock.now_unix();
        let mut text = match &outcome {
            Outcome::Healthy(tools) => format!("healthy: {} tools", tools.len()),
            Outcome::Unhealthy(error) => format!("unhealthy: {error}"),
            Outcome::Swallowed => {
                "unknown: the upstream error became a cancellation, reported as 0 tools and no \
                 error"
                    .to_string()
            }
        };
        let mut health = match outcome {
            Outcome::Healthy(tools) => Health {
                status: Some(Status::Healthy),
                last_health_check: Some(now),
                error: None,
                tools,
            },
            Outcome::Unhealthy(error) => Health {
                status: Some(Status::Unhealthy),
                last_health_check: Some(now),
                error: Some(error),
                tools: Vec::new(),
            },
            // What LiteLLM shows after the swallowed cancellation: no tools,
            // no error, a fresh timestamp, a status that says nothing.
            Outcome::Swallowed => Health {
                status: Some(Status::Unknown),
                last_health_check: Some(now),
                error: None,
                tools: Vec::new(),
            },
        };
        // Defect health-skips-runtime-token: LiteLLM's health check skips
        // per-user OAuth servers and every authenticated server without a
        // static token, and a skipped check still stamps the time (issue
        // 27635). The tools listed are kept; only the health is lost.
        if self.has(Defect::HealthSkipsRuntimeToken) && token_at_run_time(spec) {
            health.status = Some(Status::Unknown);
            health.error = None;
            text.push_str(" (health check skipped: status unknown)");
        }
        let status = health.status();
        let mut events = Vec::new();
        let applied = {
            let mut state = self.lock();
            let superseded_wins = self.has(Defect::SupersededResultWins);
            match state.servers.get_mut(id) {
                // Defect superseded-result-wins: LiteLLM writes a result by
                // server id alone, so an attempt that outlived an update (or
                // a delete and a new server of the same id) still wins.
                Some(entry) if entry.generation == generation || superseded_wins => {
                    let from = entry.health.status();
                    if entry.in_flight == Some(attempt) {
                        entry.in_flight = None;
                    }
                    entry.health = health;
                    events.push(GatewayEvent::DiscoveryFinished {
                        server_id: id.to_string(),
                        attempt,
                        outcome: text,
                    });
                    if from != status {
                        events.push(GatewayEvent::StatusChanged {
                            server_id: id.to_string(),
                            from,
                            to: status,
                        });
                    }
                    // A superseded task that wrote anyway stops here: the
                    // current generation has its own.
                    entry.generation == generation
                }
                // Superseded or deleted while in flight: the abort may not
                // have landed yet, and this result must not win.
                _ => false,
            }
        };
        for event in events {
            self.emit(event);
        }
        applied
    }

    /// Where a server is and the headers of its own credentials, except the
    /// token, which is fetched per exchange.
    #[allow(clippy::type_complexity)]
    fn upstream(
        &self,
        spec: &ServerSpec,
    ) -> Result<(String, Vec<(HeaderName, HeaderValue)>, Option<TokenRequest>), String> {
        let url = match (spec.transport, &spec.url) {
            (Transport::Http, Some(url)) => url.clone(),
            (Transport::Sse, _) => {
                return Err(
                    "connect: the legacy HTTP+SSE transport is not supported by the reference \
                     gateway; register the server with transport http"
                        .to_string(),
                )
            }
            _ => {
                return Err(
                    "connect: stdio servers are not started by the reference gateway".to_string(),
                )
            }
        };
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (name, value) in &spec.static_headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                headers.push((n, v));
            }
        }
        let token_request = match &spec.auth {
            Auth::None => None,
            Auth::Header { name, value } => {
                if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                    set_secret_header(&mut headers, n, value.expose());
                }
                None
            }
            Auth::UserOAuth => {
                return Err(
                    "token: per-user OAuth (authorization_code) needs a user's token; the \
                     gateway cannot list tools on its own"
                        .to_string(),
                )
            }
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            } => Some(TokenRequest {
                server_id: spec.id.clone(),
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                scopes: scopes.clone(),
            }),
        };
        Ok((url, headers, token_request))
    }

    /// The client quirks the switched-on defects ask for.
    fn quirks(&self) -> ClientQuirks {
        ClientQuirks {
            // Defect no-reinitialize-on-404: MCP SDK 1.26 fails the listing
            // on `404 Session terminated` instead of starting a new session.
            no_reinitialize_on_404: self.has(Defect::NoReinitializeOn404),
            // Defect first-page-only: `nextCursor` is ignored.
            first_page_only: self.has(Defect::FirstPageOnly),
        }
    }

    /// After a 401 with a token: forgets the token and says whether to try
    /// once more with a fresh one.
    fn invalidate_after_401(&self, server_id: &str, attempt: Option<u64>) -> bool {
        // Defect no-invalidate-on-401: LiteLLM 1.83.7 keeps the cached token
        // until its TTL ends, so a revoked token is reused and every
        // exchange meanwhile ends in 401.
        if self.has(Defect::NoInvalidateOn401) {
            return false;
        }
        self.tokens.invalidate(server_id);
        if let Some(attempt) = attempt {
            self.emit(GatewayEvent::TokenInvalidated {
                server_id: server_id.to_string(),
                attempt,
            });
        }
        true
    }

    async fn attempt(&self, spec: &ServerSpec, attempt: u64) -> Outcome {
        let (url, mut headers, token_request) = match self.upstream(spec) {
            Ok(upstream) => upstream,
            Err(error) => return Outcome::Unhealthy(error),
        };
        let list_budget = Duration::from_millis(self.settings.list_timeout_ms);
        // Defect shared-timeout-budget: one `wait_for` around the token fetch
        // and the listing together (LiteLLM issue 20715): a slow token
        // server eats the listing's time.
        let shared_deadline = self
            .has(Defect::SharedTimeoutBudget)
            .then(|| tokio::time::Instant::now() + list_budget);
        let mut retried = false;
        loop {
            if let Some(request) = &token_request {
                let (budget, deadline) = match shared_deadline {
                    Some(deadline) => (list_budget, deadline),
                    None => {
                        let budget = Duration::from_millis(self.settings.token_timeout_ms);
                        (budget, tokio::time::Instant::now() + budget)
                    }
                };
                match self.token(request, Some(attempt), budget, deadline).await {
                    Ok(token) => set_secret_header(
                        &mut headers,
                        http::header::AUTHORIZATION,
                        &format!("Bearer {}", token.expose()),
                    ),
                    Err(error) => return Outcome::Unhealthy(format!("token: {error}")),
                }
            }
            let list = ListRequest {
                url: &url,
                headers: &headers,
                quirks: self.quirks(),
            };
            let stage = StageCell::new(Stage::Connect);
            let deadline =
                shared_deadline.unwrap_or_else(|| tokio::time::Instant::now() + list_budget);
            let result = tokio::time::timeout_at(
                deadline,
                mcp_client::list_tools(self.deps.http.as_ref(), &list, &stage),
            )
            .await;
            match result {
                Ok(Ok(tools)) => return Outcome::Healthy(tools),
                // Defect error-becomes-cancellation: MCP SDK 1.26 raises the
                // HTTP error inside a task group, the waiting task sees only
                // CancelledError, and `_fetch_tools_with_timeout` swallows it
                // into `[]` (issue 27635). The status is lost before any
                // retry could look at it.
                Ok(Err(error))
                    if self.has(Defect::ErrorBecomesCancellation)
                        && surfaces_as_cancellation(&error) =>
                {
                    return Outcome::Swallowed
                }
                Ok(Err(error))
                    if error.status() == Some(401)
                        && token_request.is_some()
                        && !retried
                        && self.invalidate_after_401(&spec.id, Some(attempt)) =>
                {
                    // The token may have been revoked: try once more.
                    retried = true;
                }
                Ok(Err(error)) => return Outcome::Unhealthy(error.to_string()),
                Err(_) => {
                    return Outcome::Unhealthy(format!(
                        "{}: timed out after {} ms",
                        stage.get().as_str(),
                        list_budget.as_millis()
                    ))
                }
            }
        }
    }

    async fn token(
        &self,
        request: &TokenRequest,
        attempt: Option<u64>,
        budget: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<spec::Secret, TokenError2> {
        match tokio::time::timeout_at(deadline, self.tokens.get(request)).await {
            Ok(Ok(token)) => {
                if let (true, Some(attempt)) = (token.fetched, attempt) {
                    self.emit(GatewayEvent::TokenFetched {
                        server_id: request.server_id.clone(),
                        attempt,
                    });
                }
                Ok(token.access_token)
            }
            Ok(Err(error)) => Err(TokenError2::Failed(error)),
            Err(_) => Err(TokenError2::TimedOut(budget)),
        }
    }

    /// Calls one tool, `<alias>-<tool>`, with the server's own credentials,
    /// on behalf of a caller; `caller_authorization` is the caller's own
    /// `Authorization` header, which the reference never forwards.
    pub async fn call_tool(
        &self,
        body: &[u8],
        caller_authorization: Option<HeaderValue>,
    ) -> Result<Value, ApiError> {
        let request: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                spec::describe_serde_error(&e),
            )
        })?;
        let Some(name) = request.get("name").and_then(Value::as_str) else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name: is required and must be a string",
            ));
        };
        let arguments = match request.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(arguments)) => Value::Object(arguments.clone()),
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "arguments: must be a JSON object",
                ))
            }
        };
        let unknown = || ApiError::new(StatusCode::NOT_FOUND, format!("no tool named {name}"));
        // An alias has no '-', so the first one ends it.
        let (alias, tool) = name.split_once('-').ok_or_else(unknown)?;
        let spec = {
            let state = self.lock();
            state
                .servers
                .values()
                .find(|e| e.spec.alias == alias)
                .map(|e| e.spec.clone())
                .ok_or_else(unknown)?
        };
        let failed = |message: String| ApiError::new(StatusCode::BAD_GATEWAY, message);
        let (url, mut headers, token_request) = self.upstream(&spec).map_err(failed)?;
        let budget = Duration::from_millis(self.settings.list_timeout_ms);
        let mut retried = false;
        loop {
            if let Some(request) = &token_request {
                let token_budget = Duration::from_millis(self.settings.token_timeout_ms);
                let deadline = tokio::time::Instant::now() + token_budget;
                match self.token(request, None, token_budget, deadline).await {
                    Ok(token) => set_secret_header(
                        &mut headers,
                        http::header::AUTHORIZATION,
                        &format!("Bearer {}", token.expose()),
                    ),
                    Err(error) => return Err(failed(format!("token: {error}"))),
                }
            }
            // Defect forwards-caller-authorization: the caller's own header
            // is passed through and overrides the server's credentials
            // (LiteLLM issue 23652, fixed by PR 26871).
            if let Some(value) = caller_authorization
                .as_ref()
                .filter(|_| self.has(Defect::ForwardsCallerAuthorization))
            {
                let mut value = value.clone();
                value.set_sensitive(true);
                headers.retain(|(n, _)| n != http::header::AUTHORIZATION);
                headers.push((http::header::AUTHORIZATION, value));
            }
            let call = ListRequest {
                url: &url,
                headers: &headers,
                quirks: self.quirks(),
            };
            let stage = StageCell::new(Stage::Connect);
            let result = tokio::time::timeout(
                budget,
                mcp_client::call_tool(self.deps.http.as_ref(), &call, &stage, tool, &arguments),
            )
            .await;
            match result {
                Ok(Ok(result)) => return Ok(result),
                Ok(Err(error))
                    if error.status() == Some(401)
                        && token_request.is_some()
                        && !retried
                        && self.invalidate_after_401(&spec.id, None) =>
                {
                    retried = true;
                }
                Ok(Err(error)) => return Err(failed(error.to_string())),
                Err(_) => {
                    return Err(failed(format!(
                        "{}: timed out after {} ms",
                        stage.get().as_str(),
                        budget.as_millis()
                    )))
                }
            }
        }
    }

    // ---- the API's operations ----

    /// Runs one store call within the store budget.
    async fn within_budget<T>(
        &self,
        call: crate::http_client::BoxFuture<'_, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let budget = Duration::from_millis(self.settings.store_timeout_ms);
        match tokio::time::timeout(budget, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                budget.as_millis()
            ))),
        }
    }

    fn store_unavailable(error: StoreError) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{error}; nothing was changed"),
        )
    }

    /// Inserts a new server and starts its discovery (none without a
    /// reason). Checks again, under the lock, what the caller checked before
    /// awaiting the store.
    fn apply_insert(
        self: &Arc<Self>,
        spec: ServerSpec,
        raw: Value,
        store_version: Option<u64>,
        reason: Option<AttemptReason>,
    ) -> Result<String, ApiError> {
        let (id, name) = {
            let mut state = self.lock();
            // A create's own reservation ends here, under the same lock as
            // its insert (the guard's later release finds nothing).
            state.pending.remove(&spec.id);
            Self::check_new(&state, &spec)?;
            let (id, name) = (spec.id.clone(), spec.name.clone());
            let mut entry = self.new_entry(spec, Some(raw));
            entry.store_version = store_version;
            state.servers.insert(id.clone(), entry);
            (id, name)
        };
        self.emit(GatewayEvent::Registered {
            server_id: id.clone(),
            name,
            source: Source::Rest,
        });
        if reason.is_some() {
            self.spawn(&id, reason);
        }
        Ok(id)
    }

    /// Replaces a server's definition: the running attempt is superseded,
    /// and a new one starts when there is a reason.
    fn apply_replace(
        self: &Arc<Self>,
        spec: ServerSpec,
        merged: Value,
        store_version: Option<u64>,
        reason: Option<AttemptReason>,
    ) -> Result<(), ApiError> {
        let id = spec.id.clone();
        let mut events = Vec::new();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            Self::check_unique(state, &spec, Some(&id))
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
            let now = self.deps.clock.now_unix();
            let Some(entry) = state.servers.get_mut(&id) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no server with server_id {id}"),
                ));
            };
            events.extend(self.cancel(&mut state.orphans, entry, CancelReason::Superseded));
            let from = entry.health.status();
            entry.spec = Arc::new(spec);
            entry.rest_body = Some(merged);
            entry.store_version = store_version;
            entry.generation += 1;
            entry.health = Health::default();
            entry.updated_at = now;
            events.push(GatewayEvent::Updated {
                server_id: id.clone(),
            });
            if from != Status::Unknown {
                events.push(GatewayEvent::StatusChanged {
                    server_id: id.clone(),
                    from,
                    to: Status::Unknown,
                });
            }
        }
        self.tokens.invalidate(&id);
        for event in events {
            self.emit(event);
        }
        if reason.is_some() {
            self.spawn(&id, reason);
        }
        Ok(())
    }

    /// Removes a server and cancels its discovery.
    fn apply_remove(&self, id: &str) {
        let event = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let Some(mut entry) = state.servers.remove(id) else {
                return;
            };
            self.cancel(&mut state.orphans, &mut entry, CancelReason::Deleted)
        };
        self.tokens.invalidate(id);
        if let Some(event) = event {
            self.emit(event);
        }
        self.emit(GatewayEvent::Deleted {
            server_id: id.to_string(),
        });
    }

    pub async fn create(self: &Arc<Self>, body: &[u8]) -> Result<Value, ApiError> {
        let raw: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                spec::describe_serde_error(&e),
            )
        })?;
        if !raw.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "body must be a JSON object",
            ));
        }
        let parsed = spec::parse_rest_body(body).map_err(ApiError::invalid)?;
        let spec = {
            let mut state = self.lock();
            let spec = spec::from_rest_with(
                &parsed,
                || {
                    let mut bytes = [0u8; 16];
                    state.ids.fill_bytes(&mut bytes);
                    uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string()
                },
                self.settings.defects,
            )
            .map_err(ApiError::invalid)?;
            Self::check_new(&state, &spec)?;
            state.pending.insert(spec.id.clone(), spec.alias.clone());
            spec
        };
        // Released however the create ends, a dropped request included.
        let _reservation = Reservation {
            registry: self.clone(),
            id: spec.id.clone(),
        };
        // Acknowledge only what the store has acknowledged.
        let version = match &self.deps.store {
            Some(store) => match self
                .within_budget(store.put(&spec.id, encode_row(&raw), true, Some(&spec.alias)))
                .await
            {
                Ok(version) => Some(version),
                Err(error @ (StoreError::Conflict | StoreError::Taken)) => {
                    // The store has a row this gateway has not read yet (a
                    // client that gave up and retried, or another gateway):
                    // read it now, so that "already exists" is also listed.
                    let never_syncs = self.settings.role == crate::Role::Data
                        && self.has(Defect::DataPlaneNeverSyncs);
                    if !never_syncs {
                        self.sync_once(store.as_ref()).await;
                    }
                    let message = if error == StoreError::Taken {
                        format!("alias: {} is already used by another server", spec.alias)
                    } else {
                        format!("server_id {} already exists", spec.id)
                    };
                    return Err(ApiError::new(StatusCode::BAD_REQUEST, message));
                }
                Err(e) => return Err(Self::store_unavailable(e)),
            },
            None => None,
        };
        let id = spec.id.clone();
        // Defect discovery-tied-to-request: LiteLLM awaits the first listing
        // inside the handler, so the registry gets no task to own it.
        let in_request = self.has(Defect::DiscoveryTiedToRequest);
        let reason = (!in_request).then_some(AttemptReason::Registered);
        match self.apply_insert(spec, raw, version, reason) {
            Ok(_) if in_request => {
                self.discover_in_request(&id, AttemptReason::Registered)
                    .await
            }
            Ok(_) => {}
            // The sync read this very write from the store first and
            // registered it: the create succeeded, say so.
            Err(_)
                if version.is_some()
                    && self
                        .lock()
                        .servers
                        .get(&id)
                        .is_some_and(|e| e.store_version >= version) => {}
            Err(e) => return Err(e),
        }
        Ok(self.row(&id).unwrap_or(Value::Null))
    }

    pub async fn update(self: &Arc<Self>, body: &[u8]) -> Result<Value, ApiError> {
        let update: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                spec::describe_serde_error(&e),
            )
        })?;
        let Some(id) = update
            .get("server_id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_id: is required",
            ));
        };
        let (spec, merged) = {
            let state = self.lock();
            let Some(entry) = state.servers.get(&id) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no server with server_id {id}"),
                ));
            };
            let Some(stored) = &entry.rest_body else {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("server {id} comes from the config file and cannot be changed through the API"),
                ));
            };
            let merged = spec::merge_rest_bodies(stored, &update);
            let bytes = merged.to_string().into_bytes();
            let parsed = spec::parse_rest_body(&bytes).map_err(ApiError::invalid)?;
            let spec = spec::from_rest_with(&parsed, || id.clone(), self.settings.defects)
                .map_err(ApiError::invalid)?;
            Self::check_unique(&state, &spec, Some(&id))
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
            (spec, merged)
        };
        let version = match &self.deps.store {
            Some(store) => Some(
                self.within_budget(store.put(&id, encode_row(&merged), false, Some(&spec.alias)))
                    .await
                    .map_err(|e| match e {
                        StoreError::Taken => ApiError::new(
                            StatusCode::BAD_REQUEST,
                            format!("alias: {} is already used by another server", spec.alias),
                        ),
                        e => Self::store_unavailable(e),
                    })?,
            ),
            None => None,
        };
        // Defect discovery-tied-to-request: as in create.
        let in_request = self.has(Defect::DiscoveryTiedToRequest);
        let reason = (!in_request).then_some(AttemptReason::Updated);
        self.apply_replace(spec, merged, version, reason)?;
        if in_request {
            self.discover_in_request(&id, AttemptReason::Updated).await;
        }
        Ok(self.row(&id).unwrap_or(Value::Null))
    }

    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        {
            let state = self.lock();
            match state.servers.get(id) {
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no server with server_id {id}"),
                    ))
                }
                Some(entry) if entry.spec.source == Source::Config => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("server {id} comes from the config file and cannot be deleted through the API"),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(store) = &self.deps.store {
            match self.within_budget(store.delete(id)).await {
                Ok(version) => {
                    self.lock().tombstones.insert(id.to_string(), version);
                }
                // Already gone from the store: finish the delete here.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(Self::store_unavailable(e)),
            }
        }
        self.apply_remove(id);
        Ok(())
    }

    /// Reads the store and makes the registry match it: new rows are added,
    /// newer versions supersede, rows gone from the store are removed.
    /// An unreadable store changes nothing; an undecodable row is skipped.
    async fn sync_once(self: &Arc<Self>, store: &dyn Store) {
        let snapshot = match self.within_budget(store.list()).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                self.lock().store_reachable = false;
                self.emit(GatewayEvent::SyncFailed {
                    error: error.to_string(),
                });
                // Defect store-outage-drops-servers: the data plane rebuilds
                // its registry from the failed read as if it were empty; the
                // servers come back with the next good read.
                if self.settings.role == crate::Role::Data
                    && self.has(Defect::StoreOutageDropsServers)
                {
                    let learned: Vec<String> = self
                        .lock()
                        .servers
                        .iter()
                        .filter(|(_, e)| e.spec.source == Source::Rest)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in learned {
                        self.apply_remove(&id);
                    }
                }
                return;
            }
        };
        // Defect no-rediscovery-after-restart: the rows a restarted LiteLLM
        // loads at startup are registered but never discovered until an
        // update or a changed row touches them (issues 31775, 32575).
        let loading = {
            let mut state = self.lock();
            state.store_reachable = true;
            !std::mem::replace(&mut state.loaded, true)
        };
        let discover_new = !(loading && self.has(Defect::NoRediscoveryAfterRestart));
        let mut present = std::collections::BTreeSet::new();
        for row in &snapshot.rows {
            present.insert(row.server_id.clone());
            // Deleted here after this row was written: the snapshot is
            // older than the delete and must not bring the server back.
            if self
                .lock()
                .tombstones
                .get(&row.server_id)
                .is_some_and(|d| *d > row.version)
            {
                continue;
            }
            let local = {
                let state = self.lock();
                state
                    .servers
                    .get(&row.server_id)
                    .map(|e| (e.spec.source, e.store_version))
            };
            let fresh = match local {
                None => true,
                Some((Source::Rest, version)) if version.is_none_or(|v| v < row.version) => false,
                // Up to date, or a config server of the same id (config wins).
                Some(_) => continue,
            };
            let decoded = decode_row_with(row, self.settings.defects).and_then(|(spec, body)| {
                let result = if fresh {
                    let reason = discover_new.then_some(AttemptReason::Synced);
                    self.apply_insert(spec, body, Some(row.version), reason)
                        .map(|_| ())
                } else {
                    self.apply_replace(spec, body, Some(row.version), Some(AttemptReason::Synced))
                };
                result.map_err(|e| e.message)
            });
            if let Err(reason) = decoded {
                let first_time = self
                    .lock()
                    .skipped
                    .insert(row.server_id.clone(), row.version)
                    != Some(row.version);
                if first_time {
                    self.emit(GatewayEvent::RowSkipped {
                        server_id: row.server_id.clone(),
                        version: row.version,
                        reason,
                    });
                }
            }
        }
        let gone: Vec<String> = self
            .lock()
            .servers
            .iter()
            // Only what this snapshot could have seen: a write newer than
            // the snapshot is not missing from the store, just from it.
            .filter(|(id, e)| {
                e.store_version.is_some_and(|v| v <= snapshot.version) && !present.contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.apply_remove(&id);
        }
    }

    async fn sync_loop(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            self.sync_once(store.as_ref()).await;
            tokio::time::sleep(Duration::from_millis(self.settings.sync_interval_ms)).await;
        }
    }

    /// One server as the API shows it: LiteLLM's row, secrets redacted.
    pub fn row(&self, id: &str) -> Option<Value> {
        let state = self.lock();
        state.servers.get(id).map(render_row)
    }

    pub fn rows(&self) -> Vec<Value> {
        self.lock().servers.values().map(render_row).collect()
    }

    /// `[{"server_id", "status"}]` as LiteLLM answers; with a store, each
    /// item also says whether the last read of the store succeeded, so a
    /// data plane serving what it last knew says so.
    pub fn health(&self) -> Vec<Value> {
        let state = self.lock();
        let has_store = self.deps.store.is_some();
        state
            .servers
            .values()
            .map(|e| {
                let mut item =
                    json!({"server_id": e.spec.id, "status": e.health.status().as_str()});
                if has_store {
                    item["store_reachable"] = json!(state.store_reachable);
                }
                item
            })
            .collect()
    }

    /// Tools of one server or of all, named `<alias>-<tool>`.
    pub fn tools(&self, server_id: Option<&str>) -> Result<Vec<Value>, ApiError> {
        let state = self.lock();
        if let Some(id) = server_id {
            if !state.servers.contains_key(id) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no server with server_id {id}"),
                ));
            }
        }
        let mut out = Vec::new();
        for entry in state.servers.values() {
            if server_id.is_some_and(|id| id != entry.spec.id) {
                continue;
            }
            for tool in &entry.health.tools {
                let mut value = serde_json::to_value(tool).unwrap_or(Value::Null);
                value["name"] = json!(format!("{}-{}", entry.spec.alias, tool.name));
                value["mcp_info"] =
                    json!({"server_name": entry.spec.name, "server_id": entry.spec.id});
                out.push(value);
            }
        }
        Ok(out)
    }
}

/// Token failures, including the gateway's own timeout.
enum TokenError2 {
    Failed(TokenError),
    TimedOut(Duration),
}

impl std::fmt::Display for TokenError2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError2::Failed(e) => write!(f, "{e}"),
            TokenError2::TimedOut(budget) => write!(f, "timed out after {} ms", budget.as_millis()),
        }
    }
}

/// Sets a header, replacing any of the same name, marked sensitive.
fn set_secret_header(headers: &mut Vec<(HeaderName, HeaderValue)>, name: HeaderName, value: &str) {
    headers.retain(|(n, _)| n != name);
    if let Ok(mut v) = HeaderValue::from_str(value) {
        v.set_sensitive(true);
        headers.push((name, v));
    }
}

/// Whether LiteLLM's health check would skip this server: per-user OAuth,
/// or authenticated without a static token.
fn token_at_run_time(spec: &ServerSpec) -> bool {
    match &spec.auth {
        Auth::ClientCredentials { .. } | Auth::UserOAuth => true,
        Auth::Header { .. } => false,
        // An OAuth2 server that lost its flow on the REST path.
        Auth::None => spec.auth_type.as_deref() == Some("oauth2"),
    }
}

/// Whether MCP SDK 1.26 turns this failure into a cancellation: an HTTP
/// error status (a 404 fails the session instead) or a refused connection.
fn surfaces_as_cancellation(error: &McpError) -> bool {
    match &error.failure {
        Failure::Status { status } => *status != 404,
        Failure::Transport(crate::HttpError::Connect(_)) => true,
        _ => false,
    }
}

fn render_row(entry: &Entry) -> Value {
    let spec = &entry.spec;
    let mut credentials = serde_json::Map::new();
    match &spec.auth {
        Auth::Header { .. } => {
            credentials.insert("auth_value".into(), json!(REDACTED));
        }
        Auth::ClientCredentials {
            client_id, scopes, ..
        } => {
            credentials.insert("client_id".into(), json!(client_id));
            credentials.insert("client_secret".into(), json!(REDACTED));
            credentials.insert("scopes".into(), json!(scopes));
        }
        Auth::None | Auth::UserOAuth => {}
    }
    let static_headers: BTreeMap<&str, &str> = spec
        .static_headers
        .keys()
        .map(|k| (k.as_str(), REDACTED))
        .collect();
    json!({
        "server_id": spec.id,
        "server_name": spec.name,
        "alias": spec.alias,
        "description": spec.description,
        "transport": spec.transport.as_str(),
        "url": spec.url,
        "auth_type": spec.auth_type,
        "oauth2_flow": spec.oauth2_flow(),
        "token_url": spec.token_url,
        "authorization_url": spec.authorization_url,
        "credentials": if credentials.is_empty() { Value::Null } else { Value::Object(credentials) },
        "static_headers": static_headers,
        "extra_headers": spec.extra_headers,
        "command": spec.command,
        "source": spec.source.as_str(),
        "status": entry.health.status().as_str(),
        "last_health_check": entry.health.last_health_check.map(rfc3339),
        "health_check_error": entry.health.error,
        "tool_count": entry.health.tools.len(),
        "created_at": rfc3339(entry.created_at),
        "updated_at": rfc3339(entry.updated_at),
    })
}

/// A create's claim on its id and alias while it waits for the store.
struct Reservation {
    registry: Arc<Registry>,
    id: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.registry.lock().pending.remove(&self.id);
    }
}
