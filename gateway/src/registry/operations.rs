//! The management API's operations: create, update, delete, and a tool
//! call on a caller's behalf.
//!
//! Invariants: with a store, a write is acknowledged only after the store
//! acknowledged it, and a refused or unanswered store write changes nothing
//! here; a create reserves its id and alias from its uniqueness check to its
//! insert; no handler awaits discovery (unless the
//! `discovery-tied-to-request` defect is on).

use std::sync::Arc;

use http::StatusCode;
use rand::RngCore;
use serde_json::{json, Value};

use super::upstream::{Call, Exchange};
use super::{ApiError, Registry};
use crate::defects::Defect;
use crate::spec::{self, Source};
use crate::store::{encode_row, StoreError};
use crate::AttemptReason;

impl Registry {
    /// Calls one tool, `<alias>-<tool>`, with the server's own credentials
    /// and its own session, on behalf of a caller; `caller` holds the
    /// caller's own headers (its `Authorization`, its
    /// `MCP-Protocol-Version`), which the reference never forwards.
    pub async fn call_tool(
        &self,
        body: &[u8],
        caller: &http::HeaderMap,
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
        let (spec, tool) = {
            let state = self.lock();
            // Defect prefix-only-with-two-upstreams: while one server is
            // registered its tools go by their bare names, so a name is
            // that server's tool as it stands (agentgateway issue 495).
            let bare = self.has(Defect::PrefixOnlyWithTwoUpstreams) && state.servers.len() == 1;
            // An alias has no '-', so the first one ends it; a tool's own
            // name may have any number.
            // Defect dash-split-ambiguous: the name is split at its last
            // '-', so `docs-get-data` asks for the alias `docs-get`
            // (LiteLLM issue 15725).
            let split = if bare {
                None
            } else if self.has(Defect::DashSplitAmbiguous) {
                name.rsplit_once('-')
            } else {
                name.split_once('-')
            };
            let found = match split {
                None if bare => state.servers.values().next().map(|e| (e, name)),
                None => None,
                Some((alias, tool)) => state
                    .servers
                    .values()
                    .find(|e| e.spec.alias == alias)
                    .map(|e| (e, tool)),
            };
            // Defect tool-routes-per-replica: a name is routed only once
            // this process has listed it (LiteLLM issue 42655, PR 38955).
            if self.has(Defect::ToolRoutesPerReplica) && !state.routes.contains(name) {
                return Err(unknown());
            }
            found
                .map(|(e, tool)| (e.spec.clone(), tool))
                .ok_or_else(unknown)?
        };
        // Defect client-credentials-as-per-user: LiteLLM takes every OAuth2
        // server for one that needs the caller's own token, and answers a
        // call with a challenge instead of fetching its own (PRs 33582,
        // 33586).
        if self.has(Defect::ClientCredentialsAsPerUser)
            && matches!(spec.auth, spec::Auth::ClientCredentials { .. })
        {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "server {} needs the caller's own OAuth2 token: authorize at {} first",
                    spec.name,
                    spec.token_url
                        .as_deref()
                        .unwrap_or("its authorization server")
                ),
            ));
        }
        let exchange = Exchange {
            attempt: None,
            caller_authorization: caller.get(http::header::AUTHORIZATION),
            caller_protocol_version: caller.get("mcp-protocol-version"),
            keep: None,
        };
        let call = Call {
            tool,
            arguments: &arguments,
        };
        self.exchange(&spec, exchange, &call)
            .await
            .map_err(|error| ApiError::new(StatusCode::BAD_GATEWAY, error.to_string()))
    }

    /// Whether the row can be written with the flow it states.
    fn flow_column(&self, body: &spec::RestServerBody) -> Result<(), ApiError> {
        // Defect explicit-flow-has-no-column: LiteLLM's table has no
        // `oauth2_flow` column, so writing a row that states one fails in
        // the database (PR 29690; the mirror image of
        // `rest-drops-oauth2-flow`).
        if self.has(Defect::ExplicitFlowHasNoColumn) && body.oauth2_flow.is_some() {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "database error: the table has no column oauth2_flow",
            ));
        }
        Ok(())
    }

    /// A write the store did not take: 503 when it did not happen; 504 when
    /// the store did not answer, so that the write may yet have happened
    /// (a later sync shows which). Nothing changes here either way.
    fn store_unavailable(error: StoreError) -> ApiError {
        match error {
            StoreError::NoAnswer(_) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{error}; it may or may not have made the change"),
            ),
            error => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{error}; nothing was changed"),
            ),
        }
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
        self.flow_column(&parsed)?;
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
            self.flow_column(&parsed)?;
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
