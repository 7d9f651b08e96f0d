//! The registry of servers: its state, and the mutations every path
//! shares (config at start, the API's operations, store sync).
//!
//! Each server has a generation, bumped by every update; its discovery task
//! belongs to one generation and may write a result only while that
//! generation is current, checked under the same lock as the write. An
//! update or a delete aborts the old task and records the cancellation; the
//! request that caused it never waits for discovery.
//!
//! One room per job: `discovery` (the lifecycle of attempts), `upstream`
//! (the one token-and-401 exchange loop that discovery and tool calls
//! share), `operations` (the API's writes and the tool call), `sync` (store
//! sync) and `views` (rows, health, tools).
//!
//! Known defects ([`crate::Defect`]) are consulted in these modules, each at
//! the place where the real gateway went wrong; with none switched on, none
//! of those branches is taken.

mod discovery;
mod operations;
mod sync;
mod upstream;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::StatusCode;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::task::AbortHandle;

use crate::defects::Defect;
use crate::mcp_client::Tool;
use crate::spec::{ServerSpec, Source, SpecError};
use crate::store::StoreError;
use crate::token::{TokenCache, TokenPolicy, TokenQuirks};
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
    /// Servers whose upstream client an error left broken, with that error
    /// (the `client-broken-after-error` defect); an update or a delete
    /// mends it.
    broken: BTreeMap<String, String>,
    /// Tool names this process has listed, the only ones it routes (the
    /// `tool-routes-per-replica` defect); never stored, so a replica that
    /// shares the store has its own.
    routes: BTreeSet<String>,
}

pub(crate) struct Registry {
    settings: GatewaySettings,
    deps: Deps,
    tokens: TokenCache,
    state: Mutex<State>,
}

impl Registry {
    pub fn new(settings: GatewaySettings, deps: Deps) -> Self {
        let policy = TokenPolicy {
            expiry_skew: Duration::from_secs(settings.token_expiry_skew_s),
            ttl_floor: Duration::from_secs(settings.token_ttl_floor_s),
            default_ttl: Duration::from_secs(settings.token_default_ttl_s),
            client_auth: settings.token_client_auth,
            quirks: TokenQuirks {
                unstated_kept_an_hour: settings.defects.has(Defect::UnstatedExpiryKeptAnHour),
                expiry_from_last_use: settings.defects.has(Defect::ExpiryKeptRelative),
                keyed_by_server_only: settings.defects.has(Defect::TokenCacheSurvivesUpdate),
                drops_audience: settings.defects.has(Defect::AudienceNotSent),
                drops_resource: settings.defects.has(Defect::ResourceNotSent),
                drops_scopes: settings.defects.has(Defect::ScopesNotSent),
                fixed_client_auth: settings.defects.has(Defect::ClientAuthMethodFixed),
                never_refreshes: settings.defects.has(Defect::NoRefreshOnExpiry),
            },
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
                broken: BTreeMap::new(),
                routes: BTreeSet::new(),
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

    /// Runs one store call within the store budget.
    async fn within_budget<T>(
        &self,
        call: crate::http_client::BoxFuture<'_, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let budget = Duration::from_millis(self.settings.store_timeout_ms);
        match tokio::time::timeout(budget, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::NoAnswer(format!(
                "no answer within {} ms",
                budget.as_millis()
            ))),
        }
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
            state.broken.remove(&id);
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
        // Defect token-cache-survives-update: LiteLLM's update path leaves
        // the token cache alone (PR 32259); see also `TokenCache::get`.
        if !self.has(Defect::TokenCacheSurvivesUpdate) {
            self.tokens.invalidate(&id);
        }
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
            state.broken.remove(id);
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
}
