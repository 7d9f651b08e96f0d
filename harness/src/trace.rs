//! The trace: time-stamped events of one run, and its stable hash.
//!
//! Events are recorded in the order the single simulation thread produces
//! them, stamped with simulated milliseconds. The hash covers every event's
//! JSON, so two runs agree on it only if they agree on everything.
//!
//! Timeline columns: simulated time in ms, the host that acted, then what
//! happened (`->` an HTTP exchange it made, `*` an event the system under
//! test reported about itself, `#` a fault the harness applied or a note of
//! the operator's).
//!
//! The exchanges are what the harness's own client saw of a host's
//! traffic; the events are the system under test's own account, kept as
//! optional evidence (a gateway may report none).
//!
//! A trace is bounded: past [`TRACE_CAPACITY`] events from the hosts it
//! records no more and counts what it left out, so a gateway that storms
//! cannot exhaust memory; the harness's own events (faults, a stopped run)
//! are always kept, and the driving loop ends a run whose trace overflowed.

use std::sync::{Arc, Mutex};

use mcpsim_sut::{BoxFuture, EventSink, GatewayEvent, HttpClient, HttpError, Streamed};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::scenario::Verb;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    pub at_ms: u64,
    pub host: String,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// An HTTP exchange made by `host`, recorded when it ended.
    Http {
        to: String,
        method: String,
        path: String,
        status: Option<u16>,
        error: Option<String>,
        took_ms: u64,
    },
    /// An event the system under test reported about itself.
    Gateway {
        #[serde(flatten)]
        event: GatewayEvent,
    },
    /// A fault the harness applied, recorded by the host `sim`.
    Fault {
        #[serde(flatten)]
        verb: Verb,
    },
    /// A note of the operator's (deadline reached, all settled).
    Note { text: String },
    /// The harness ended the run before the operator finished, and why
    /// (`request storm: ...`, `no progress at t=... ms: ...`), recorded by
    /// the host `sim`.
    Stopped { reason: String },
}

impl TraceEvent {
    /// The system under test's own event, if this is one.
    pub fn gateway_event(&self) -> Option<&GatewayEvent> {
        match &self.what {
            What::Gateway { event } => Some(event),
            _ => None,
        }
    }
}

/// The trace without the system under test's own events: what is left
/// when a gateway reports none.
pub fn without_events(events: &[TraceEvent]) -> Vec<TraceEvent> {
    events
        .iter()
        .filter(|e| e.gateway_event().is_none())
        .cloned()
        .collect()
}

/// Where a trace reads its time.
#[derive(Clone, Copy, Debug, Default)]
pub enum TraceClock {
    /// Simulated milliseconds since the world began (turmoil's clock).
    #[default]
    Simulated,
    /// Real milliseconds since an instant: live runs on real sockets.
    Real(std::time::Instant),
}

impl TraceClock {
    pub fn now_ms(&self) -> u64 {
        match self {
            TraceClock::Simulated => now_ms(),
            TraceClock::Real(start) => start.elapsed().as_millis() as u64,
        }
    }
}

/// Events a trace keeps from the hosts; far more than a run of a sound
/// gateway makes (hundreds), few enough to stay small under a storm.
pub const TRACE_CAPACITY: usize = 50_000;

/// The shared recorder. In the simulation every host runs on the
/// simulation's one thread and the mutex only satisfies `Send + Sync`
/// bounds; in a live run hosts record from several threads, in the order
/// their events happen.
#[derive(Clone, Default)]
pub struct Trace {
    events: Arc<Mutex<Events>>,
    clock: TraceClock,
}

/// The events, and how many the cap left out.
#[derive(Default)]
struct Events {
    list: Vec<TraceEvent>,
    left_out: u64,
}

/// Simulated milliseconds since the world began.
pub(crate) fn now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

impl Trace {
    /// A trace stamped with real milliseconds since `start`.
    pub fn real(start: std::time::Instant) -> Trace {
        Trace {
            events: Arc::default(),
            clock: TraceClock::Real(start),
        }
    }

    /// Milliseconds of the run, by this trace's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn clock(&self) -> TraceClock {
        self.clock
    }

    /// Records an event of a host, unless the trace is full.
    pub fn push(&self, host: &str, what: What) {
        let at_ms = self.now_ms();
        let mut events = self.lock();
        if events.list.len() >= TRACE_CAPACITY {
            events.left_out += 1;
            return;
        }
        events.list.push(TraceEvent {
            at_ms,
            host: host.to_string(),
            what,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an event from outside any host (the driving loop), at a
    /// time the caller read from the simulation. These are the harness's
    /// own, a handful per run, and kept even when the trace is full.
    pub fn push_at(&self, at_ms: u64, host: &str, what: What) {
        let event = TraceEvent {
            at_ms,
            host: host.to_string(),
            what,
        };
        self.lock().list.push(event);
    }

    pub fn len(&self) -> usize {
        self.lock().list.len()
    }

    /// How many events of the hosts the trace left out since it was full.
    pub fn left_out(&self) -> u64 {
        self.lock().left_out
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts the events from index `start` on by their JSON: for events
    /// recorded together in an order that carries no meaning.
    pub fn sort_from(&self, start: usize) {
        let mut events = self.lock();
        if start < events.list.len() {
            events.list[start..]
                .sort_by_cached_key(|e| serde_json::to_string(e).unwrap_or_default());
        }
    }

    pub fn events(&self) -> Vec<TraceEvent> {
        self.lock().list.clone()
    }
}

/// When `host` registered `server_id` (from config, REST or a store sync),
/// first at or after `since_ms`.
pub fn first_registered(
    events: &[TraceEvent],
    host: &str,
    server_id: &str,
    since_ms: u64,
) -> Option<u64> {
    events
        .iter()
        .filter(|e| e.host == host && e.at_ms >= since_ms)
        .find(|e| {
            matches!(&e.what, What::Gateway { event: GatewayEvent::Registered { server_id: id, .. } } if id == server_id)
        })
        .map(|e| e.at_ms)
}

/// Stable hash of a trace: the first 16 hex digits of sha256 over its JSON lines.
pub fn hash(events: &[TraceEvent]) -> String {
    let mut hasher = Sha256::new();
    for event in events {
        hasher.update(serde_json::to_string(event).unwrap_or_default().as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

/// The timeline, one readable line per event.
pub fn timeline(events: &[TraceEvent]) -> String {
    let mut out = String::new();
    for e in events {
        let line = match &e.what {
            What::Http {
                to,
                method,
                path,
                status,
                error,
                took_ms,
            } => {
                let result = match (status, error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(err)) => format!("failed: {err}"),
                    (None, None) => "no answer".to_string(),
                };
                format!("-> {to} {method} {path} = {result} ({took_ms} ms)")
            }
            What::Gateway { event } => format!("* {}", describe(event)),
            What::Fault { verb } => format!("# {}", verb.describe()),
            What::Note { text } => format!("# {text}"),
            What::Stopped { reason } => format!("# stopped: {reason}"),
        };
        out.push_str(&format!("{:>7} ms  {:<10} {line}\n", e.at_ms, e.host));
    }
    out
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn describe(event: &GatewayEvent) -> String {
    use GatewayEvent::*;
    match event {
        Registered {
            server_id,
            name,
            source,
        } => {
            format!(
                "registered {name} as {} from {}",
                short(server_id),
                source.as_str()
            )
        }
        Updated { server_id } => format!("updated {}", short(server_id)),
        Deleted { server_id } => format!("deleted {}", short(server_id)),
        DiscoveryStarted {
            server_id,
            attempt,
            reason,
        } => {
            format!(
                "discovery #{attempt} of {} started ({reason:?})",
                short(server_id)
            )
        }
        TokenFetched { server_id, attempt } => {
            format!("token fetched for {} (#{attempt})", short(server_id))
        }
        TokenInvalidated { server_id, attempt } => {
            format!(
                "token of {} invalidated after 401 (#{attempt})",
                short(server_id)
            )
        }
        DiscoveryFinished {
            server_id,
            attempt,
            outcome,
        } => {
            format!(
                "discovery #{attempt} of {} finished: {outcome}",
                short(server_id)
            )
        }
        DiscoveryCancelled {
            server_id,
            attempt,
            reason,
        } => {
            format!(
                "discovery #{attempt} of {} cancelled ({reason:?})",
                short(server_id)
            )
        }
        SyncFailed { error } => format!("store sync failed, keeping every known server: {error}"),
        RowSkipped {
            server_id,
            version,
            reason,
        } => format!(
            "store row {} v{version} skipped: {reason}",
            short(server_id)
        ),
        StatusChanged {
            server_id,
            from,
            to,
        } => {
            format!(
                "status of {} {} -> {}",
                short(server_id),
                from.as_str(),
                to.as_str()
            )
        }
    }
}

/// Records gateway events into the trace.
pub(crate) struct TraceSink {
    pub host: String,
    pub trace: Trace,
}

impl EventSink for TraceSink {
    fn record(&self, event: GatewayEvent) {
        self.trace.push(&self.host, What::Gateway { event });
    }
}

/// Wraps a client and records every exchange it makes. Only the method, the
/// path and the outcome are kept: headers, queries and bodies may carry
/// secrets.
pub(crate) struct TracingClient<C> {
    pub inner: C,
    pub host: String,
    pub trace: Trace,
}

impl<C: HttpClient> HttpClient for TracingClient<C> {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        let (to, method, path) = described(&request);
        Box::pin(async move {
            // If the caller drops this future (a timeout, a cancelled task),
            // the guard still records the exchange, as abandoned.
            let mut guard = self.pending(to, method, path);
            let result = self.inner.send(request).await;
            let (status, error) = match &result {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            guard.finish(status, error);
            result
        })
    }

    /// Recorded when the response head arrives (or the exchange fails):
    /// a stream that stays open has no end to wait for.
    fn stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Streamed, HttpError>> {
        let (to, method, path) = described(&request);
        Box::pin(async move {
            let mut guard = self.pending(to, method, path);
            let result = self.inner.stream(request).await;
            let (status, error) = match &result {
                Ok(streamed) => (Some(streamed.head.status.as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            guard.finish(status, error);
            result
        })
    }
}

impl<C> TracingClient<C> {
    /// The record of an exchange starting now.
    fn pending(&self, to: String, method: String, path: String) -> Pending<'_> {
        Pending {
            trace: &self.trace,
            host: &self.host,
            started: self.trace.now_ms(),
            to,
            method,
            path,
            done: false,
        }
    }
}

/// A request as the trace names it: the host it goes to, its method, and its
/// path followed by the JSON-RPC method of its body, if any (it names the
/// MCP step and is never a secret).
fn described(request: &http::Request<Vec<u8>>) -> (String, String, String) {
    let to = request.uri().host().unwrap_or("").to_string();
    let method = request.method().to_string();
    let mut path = request.uri().path().to_string();
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(request.body()) {
        if let Some(rpc) = body.get("method").and_then(|m| m.as_str()) {
            path = format!("{path} {rpc}");
        }
    }
    (to, method, path)
}

/// An exchange in flight; records itself when finished or dropped.
struct Pending<'a> {
    trace: &'a Trace,
    host: &'a str,
    started: u64,
    to: String,
    method: String,
    path: String,
    done: bool,
}

impl Pending<'_> {
    fn finish(&mut self, status: Option<u16>, error: Option<String>) {
        self.done = true;
        self.trace.push(
            self.host,
            What::Http {
                to: std::mem::take(&mut self.to),
                method: std::mem::take(&mut self.method),
                path: std::mem::take(&mut self.path),
                status,
                error,
                took_ms: self.trace.now_ms().saturating_sub(self.started),
            },
        );
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(None, Some("abandoned by the caller".to_string()));
        }
    }
}
