//! What the fakes saw: one record per request, kept by the fakes themselves.
//!
//! These records are the outside view of a system under test: checkers
//! judge a gateway by what its upstreams received (which client asked for a
//! token, how it authenticated, which issued token an MCP request carried,
//! and what it was answered), never by the gateway's own account.
//!
//! Invariants: a record holds no secret (a client id, never a secret; a
//! token's public claims, never the token); times are simulated
//! milliseconds since [`crate::SIM_EPOCH_UNIX_S`] by the fake's clock; a log
//! keeps at most its capacity ([`LOG_CAPACITY`] unless its owner sets a
//! smaller one for a run) and counts the rest, so a request storm is a
//! finding and never an out-of-memory.

use std::sync::Mutex;

use serde::Serialize;

use crate::{Clock, SIM_EPOCH_UNIX_S};

/// Records kept per fake by default; later requests are only counted. A
/// harness that must stay fast under a storm sets a smaller capacity per
/// run ([`crate::McpServer::limit_log`], [`crate::TokenServer::limit_log`]).
pub const LOG_CAPACITY: usize = 100_000;

/// The host a request came from, as the network that carried it knows it.
/// The harness's server loop puts it in each request's extensions; without
/// it a record's `peer` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer(pub String);

/// Milliseconds since the run's epoch by `clock`.
pub(crate) fn run_ms(clock: &Clock) -> u64 {
    let unix_ms = u64::try_from(clock().as_millis()).unwrap_or(u64::MAX);
    unix_ms.saturating_sub(SIM_EPOCH_UNIX_S * 1_000)
}

/// A bounded, append-only list of records.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Log<T> {
    pub records: Vec<T>,
    /// Requests that came after the log was full.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// How many records the log keeps; not part of what it says.
    #[serde(skip)]
    pub capacity: usize,
}

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log {
            records: Vec::new(),
            dropped: 0,
            capacity: LOG_CAPACITY,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl<T> Log<T> {
    /// Appends a record and gives its index, or `None` when the log is full.
    pub(crate) fn push(&mut self, record: T) -> Option<usize> {
        if self.records.len() >= self.capacity {
            self.dropped += 1;
            return None;
        }
        self.records.push(record);
        Some(self.records.len() - 1)
    }

    pub(crate) fn get_mut(&mut self, index: Option<usize>) -> Option<&mut T> {
        index.and_then(|i| self.records.get_mut(i))
    }

    /// Whether the log keeps no more records: every later request is only
    /// counted.
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.capacity
    }

    /// Keeps at most `capacity` records from now on (at least one); records
    /// already kept beyond it stay.
    pub(crate) fn limit(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
    }
}

/// A record that can say its request was abandoned.
pub(crate) trait Abandon {
    /// The client went away (or the host crashed) before the answer: no
    /// answer time, since no clock may be readable then.
    fn abandon(&mut self);
}

/// A request's record while it is being handled: updated as the handler
/// learns more, finished with its outcome, or marked abandoned if the
/// handler is dropped first.
pub(crate) struct Recording<'a, T: Abandon> {
    log: &'a Mutex<Log<T>>,
    index: Option<usize>,
    done: bool,
}

impl<'a, T: Abandon> Recording<'a, T> {
    pub fn open(log: &'a Mutex<Log<T>>, record: T) -> Self {
        let index = lock(log).push(record);
        Recording {
            log,
            index,
            done: false,
        }
    }

    pub fn update(&self, change: impl FnOnce(&mut T)) {
        if let Some(record) = lock(self.log).get_mut(self.index) {
            change(record);
        }
    }

    pub fn finish(&mut self, change: impl FnOnce(&mut T)) {
        self.done = true;
        self.update(change);
    }
}

impl<T: Abandon> Drop for Recording<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.update(T::abandon);
        }
    }
}

/// A poisoned lock only means another handler panicked; the log is still
/// usable.
pub(crate) fn lock<T>(log: &Mutex<Log<T>>) -> std::sync::MutexGuard<'_, Log<T>> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// An issued access token, named by its public claims.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TokenRef {
    pub issuer: String,
    pub client_id: String,
    /// The token's serial number at its issuer.
    pub serial: u64,
    /// When it was issued, in ms of the run.
    pub issued_ms: u64,
}

/// How a token request authenticated its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthSeen {
    /// No client credentials at all.
    None,
    /// HTTP Basic.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Form,
    /// Both at once (refused, RFC 6749 §2.3).
    Both,
}

/// What became of a token request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TokenOutcome {
    /// Not answered yet (a hang, or the run ended first).
    Pending,
    Issued {
        token: TokenRef,
        /// `expires_in` as the response stated it; none when it stated none.
        expires_in_s: Option<u64>,
        /// Which of the token server's registered clients authenticated
        /// (its index in `clients`): the secret, never shown, is told apart
        /// by the registration it matched.
        registration: usize,
    },
    /// Refused by normal handling, with the OAuth error code.
    Refused { status: u16, error: String },
    /// Answered by an injected failure rule.
    Injected { status: Option<u16> },
    /// The client went away before the answer.
    Abandoned,
}

/// One request to the token endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenRequestRecord {
    pub received_ms: u64,
    pub answered_ms: Option<u64>,
    pub peer: Option<String>,
    pub client_id: Option<String>,
    pub client_auth: ClientAuthSeen,
    pub grant_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(flatten)]
    pub outcome: TokenOutcome,
}

impl Abandon for TokenRequestRecord {
    fn abandon(&mut self) {
        self.answered_ms = None;
        self.outcome = TokenOutcome::Abandoned;
    }
}

/// Which credential an MCP request carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CredentialSeen {
    None,
    /// The static bearer token this server was configured with.
    Static,
    /// A token issued by a token server, valid or not.
    Issued {
        token: TokenRef,
    },
    /// A bearer token this server cannot tell apart: foreign, forged, or
    /// any bearer when the server checks none.
    Other,
}

/// What became of an MCP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpOutcome {
    /// Not answered yet (a hang, or the run ended first).
    Pending,
    Answered,
    /// Answered by an injected failure rule.
    Injected,
    /// The answer began and the connection was cut mid-body (injected).
    Cut,
    /// The client went away before the answer.
    Abandoned,
}

/// One request to the MCP endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct McpRequestRecord {
    pub received_ms: u64,
    pub answered_ms: Option<u64>,
    pub peer: Option<String>,
    /// `POST`, `GET`, `DELETE`, ...
    pub http_method: String,
    /// The JSON-RPC method of a POST (`response` for a client's response).
    pub rpc_method: Option<String>,
    pub session: Option<String>,
    /// The session id the answer handed out (`Mcp-Session-Id` on an
    /// `initialize` answer), so that a checker can tell which sessions a
    /// client opened and whether it ended them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_session: Option<String>,
    pub protocol_version: Option<String>,
    pub credential: CredentialSeen,
    /// The HTTP status answered; none while unanswered.
    pub status: Option<u16>,
    pub outcome: McpOutcome,
    /// For an answered `tools/list`: whether its page named a next cursor
    /// (`false` on the last page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<bool>,
    /// For a `tools/call`: the tool it named and what the server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<ToolCallSeen>,
}

/// A `tools/call` as the MCP server saw and answered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ToolCallSeen {
    pub tool: String,
    /// `isError` of the result it answered; none when it answered a
    /// JSON-RPC error instead (an unknown tool) or not at all.
    pub is_error: Option<bool>,
    /// The text blocks of that result, in order.
    pub texts: Vec<String>,
}

impl Abandon for McpRequestRecord {
    fn abandon(&mut self) {
        self.answered_ms = None;
        self.status = None;
        self.outcome = McpOutcome::Abandoned;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_counts_what_it_no_longer_keeps() {
        let mut log = Log::default();
        for i in 0..LOG_CAPACITY + 5 {
            let index = log.push(i);
            assert_eq!(index.is_some(), i < LOG_CAPACITY);
        }
        assert_eq!(log.records.len(), LOG_CAPACITY);
        assert_eq!(log.dropped, 5);
        assert!(log.is_full());
        assert!(log.get_mut(None).is_none());
    }

    #[test]
    fn a_smaller_capacity_set_for_a_run_keeps_that_many() {
        let mut log = Log::default();
        log.limit(3);
        for i in 0..5 {
            assert_eq!(log.push(i).is_some(), i < 3);
            assert_eq!(log.is_full(), i >= 2);
        }
        assert_eq!(log.records, [0, 1, 2]);
        assert_eq!(log.dropped, 2);
        // The capacity is the log's own business, not part of its record.
        let json = serde_json::to_value(&log).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"records": [0, 1, 2], "dropped": 2})
        );
    }
}
