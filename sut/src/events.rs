//! What a gateway may say about itself: optional evidence for the trace.
//!
//! The harness judges a system under test from the outside (its API and
//! what its upstreams saw). A gateway that also reports these events gets
//! them into the trace and the timeline, and the few checkers that need an
//! inside view (see each checker's header) can use them; a gateway that
//! reports none is judged by every other checker all the same.
//!
//! Invariant: every field is secret-free by construction: ids, names,
//! counters, reasons and outcome summaries, never a header or a body.

use std::sync::Mutex;

use serde::Serialize;

use crate::model::{Source, Status};

/// Why a discovery attempt started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptReason {
    Startup,
    Registered,
    Updated,
    Interval,
    /// Learned or changed through a read of the store.
    Synced,
    /// The upstream said on its open stream that its tool set changed
    /// (`notifications/tools/list_changed`).
    ListChanged,
}

/// Why a discovery attempt was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    Superseded,
    Deleted,
    Shutdown,
}

/// One thing a gateway did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GatewayEvent {
    Registered {
        server_id: String,
        name: String,
        source: Source,
    },
    Updated {
        server_id: String,
    },
    Deleted {
        server_id: String,
    },
    DiscoveryStarted {
        server_id: String,
        attempt: u64,
        reason: AttemptReason,
    },
    TokenFetched {
        server_id: String,
        attempt: u64,
    },
    TokenInvalidated {
        server_id: String,
        attempt: u64,
    },
    DiscoveryFinished {
        server_id: String,
        attempt: u64,
        outcome: String,
    },
    DiscoveryCancelled {
        server_id: String,
        attempt: u64,
        reason: CancelReason,
    },
    StatusChanged {
        server_id: String,
        from: Status,
        to: Status,
    },
    /// The store could not be read; every known server is kept.
    SyncFailed {
        error: String,
    },
    /// A stored row could not be decoded and was skipped; others still sync.
    RowSkipped {
        server_id: String,
        version: u64,
        reason: String,
    },
}

impl GatewayEvent {
    /// The server the event is about, if any.
    pub fn server_id(&self) -> Option<&str> {
        use GatewayEvent::*;
        match self {
            Registered { server_id, .. }
            | Updated { server_id }
            | Deleted { server_id }
            | DiscoveryStarted { server_id, .. }
            | TokenFetched { server_id, .. }
            | TokenInvalidated { server_id, .. }
            | DiscoveryFinished { server_id, .. }
            | DiscoveryCancelled { server_id, .. }
            | StatusChanged { server_id, .. }
            | RowSkipped { server_id, .. } => Some(server_id),
            SyncFailed { .. } => None,
        }
    }
}

/// Receives a gateway's events.
pub trait EventSink: Send + Sync + 'static {
    fn record(&self, event: GatewayEvent);
}

/// Drops every event: for a gateway run where nobody listens.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _event: GatewayEvent) {}
}

/// Prints events as log lines to stderr (real sockets).
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrSink;

impl EventSink for StderrSink {
    fn record(&self, event: GatewayEvent) {
        eprintln!(
            "gateway: {}",
            serde_json::to_string(&event).unwrap_or_default()
        );
    }
}

/// Collects events in memory (tests).
#[derive(Debug, Default)]
pub struct MemorySink(pub Mutex<Vec<GatewayEvent>>);

impl EventSink for MemorySink {
    fn record(&self, event: GatewayEvent) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }
}
