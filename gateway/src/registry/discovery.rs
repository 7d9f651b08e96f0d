//! The discovery lifecycle: one task per server generation, attempts in a
//! loop with a re-check interval between them, results written only while
//! their generation is current.
//!
//! After a healthy attempt whose server declared `tools.listChanged`, the
//! task keeps that attempt's session open and listens on it (a GET stream)
//! while it waits for the next re-check: a `list_changed` notice starts the
//! next attempt at once. A server that offers no stream (405), or a stream
//! that ends, leaves the wait to the re-check interval alone.
//!
//! Invariants: a task belongs to one generation and stops as soon as its
//! generation is no longer current; a result is written under the same lock
//! that checks the generation; a cancellation is recorded once, by whoever
//! aborted the task (an update, a delete or shutdown); a kept session is
//! closed (its `DELETE`) when the wait ends or the task is dropped, and the
//! wait prefers a notice to the interval when both are ready (`biased`).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;

use super::upstream::{Exchange, List, UpstreamError};
use super::{Entry, Health, Registry};
use crate::defects::Defect;
use crate::mcp_client::{self, Closing, Heard, Tool};
use crate::spec::{Auth, ServerSpec};
use crate::{AttemptReason, CancelReason, GatewayEvent, Status};

/// The result of one discovery attempt.
enum Outcome {
    Healthy(Vec<Tool>),
    Unhealthy(String),
    /// An upstream error turned into a cancellation and swallowed into an
    /// empty list (the `error-becomes-cancellation` defect).
    Swallowed,
}

impl Registry {
    /// Starts the discovery task of the server's current generation; with
    /// no reason, its first attempt waits one check interval.
    pub(super) fn spawn(self: &Arc<Self>, id: &str, reason: Option<AttemptReason>) {
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
    pub(super) fn cancel(
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
            let mut kept = None;
            let outcome = self.attempt(&spec, attempt, Some(&mut kept)).await;
            let healthy = matches!(outcome, Outcome::Healthy(_));
            // Closed (its DELETE sent) however this task ends.
            let kept = kept.map(|closing| Kept {
                registry: self.clone(),
                closing: Some(closing),
            });
            if !self.finish(&spec, generation, attempt, outcome) {
                return;
            }
            // Defect never-restored-after-recovery: an unhealthy server is
            // taken out of the re-check rotation for good (ContextForge PR
            // 4499).
            if !healthy && self.has(Defect::NeverRestoredAfterRecovery) {
                return;
            }
            // Defect no-periodic-rediscovery: the periodic re-check never
            // runs; only a write starts an attempt (ContextForge issue 3745).
            if healthy && self.has(Defect::NoPeriodicRediscovery) {
                return;
            }
            reason = self.wait(kept).await;
        }
    }

    /// Waits for the next attempt: a re-check interval, or, on a kept
    /// session, a `list_changed` notice before it, whichever comes first.
    async fn wait(&self, kept: Option<Kept>) -> AttemptReason {
        let interval = tokio::time::sleep(Duration::from_millis(self.settings.check_interval_ms));
        let Some((kept, request)) =
            kept.and_then(|kept| kept.listen_request().map(|request| (kept, request)))
        else {
            interval.await;
            return AttemptReason::Interval;
        };
        let quirks = self.quirks();
        let heard = async move {
            // No stream (405 or otherwise): the session is closed at once,
            // and the interval alone decides.
            let Some(mut listener) =
                mcp_client::listen(self.deps.http.as_ref(), request, &quirks).await
            else {
                drop(kept);
                return std::future::pending().await;
            };
            loop {
                match listener.next().await {
                    // Defect list-changed-ignored: the notice is read and
                    // dropped; the tool set waits for the periodic check
                    // (bifrost issue 6885).
                    Heard::ListChanged if self.has(Defect::ListChangedIgnored) => continue,
                    // The stream is dropped before the session is closed.
                    Heard::ListChanged => {
                        drop(listener);
                        drop(kept);
                        return;
                    }
                    // A stream that ended says nothing more: close the
                    // session and wait for the interval rather than open
                    // it again at once.
                    Heard::Ended => {
                        drop(listener);
                        drop(kept);
                        return std::future::pending().await;
                    }
                }
            }
        };
        tokio::select! {
            biased;
            () = heard => AttemptReason::ListChanged,
            () = interval => AttemptReason::Interval,
        }
    }

    /// One attempt awaited by the request that registered or updated the
    /// server (the `discovery-tied-to-request` defect): if the client gives
    /// up, the request's future is dropped and the attempt with it, with no
    /// end recorded. Only a finished attempt hands on to the registry's
    /// interval task.
    pub(super) async fn discover_in_request(self: &Arc<Self>, id: &str, reason: AttemptReason) {
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
        let outcome = self.attempt(&spec, attempt, None).await;
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
                    // Defect stale-tools-kept: a failed check changes the
                    // status and keeps the tools of the last good listing
                    // (Kuadrant/mcp-gateway issue 665).
                    if status == Status::Unhealthy && self.has(Defect::StaleToolsKept) {
                        health.tools = std::mem::take(&mut entry.health.tools);
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

    /// One discovery attempt: a listing through the shared exchange loop;
    /// its session is left in `keep` if the server declared
    /// `tools.listChanged`.
    async fn attempt(
        &self,
        spec: &ServerSpec,
        attempt: u64,
        keep: Option<&mut Option<Closing>>,
    ) -> Outcome {
        let exchange = Exchange {
            attempt: Some(attempt),
            caller_authorization: None,
            caller_protocol_version: None,
            keep,
        };
        match self.exchange(spec, exchange, &List).await {
            Ok(tools) => Outcome::Healthy(tools),
            Err(UpstreamError::Swallowed) => Outcome::Swallowed,
            // Defect error-listed-as-healthy: the listing's exception becomes
            // `[]`, and the health check takes `[]` for a healthy answer
            // (LiteLLM issue 18134).
            Err(_) if self.has(Defect::ErrorListedAsHealthy) => Outcome::Healthy(Vec::new()),
            Err(error) => Outcome::Unhealthy(error.to_string()),
        }
    }
}

/// A session kept open to listen on; closed (its `DELETE` sent, within a
/// listing budget) when dropped: at the end of the wait, or when an update,
/// a delete or shutdown drops the task.
struct Kept {
    registry: Arc<Registry>,
    closing: Option<Closing>,
}

impl Kept {
    fn listen_request(&self) -> Option<http::Request<Vec<u8>>> {
        self.closing.as_ref().and_then(Closing::listen_request)
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let Some(closing) = self.closing.take() else {
            return;
        };
        // A runtime that is going away (shutdown of the host) takes the
        // session with it.
        if tokio::runtime::Handle::try_current().is_ok() {
            let budget = Duration::from_millis(self.registry.settings.list_timeout_ms);
            self.registry.close_later(closing, budget);
        }
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
