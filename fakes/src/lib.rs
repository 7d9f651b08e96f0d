//! Fake peers for the simulation: an OAuth2 token server, a Streamable HTTP MCP server, and
//! the store host (a versioned row store standing in for the gateway's database).
//!
//! Invariants: nothing here reads the wall clock, draws randomness or depends on turmoil.
//! Time comes from an injected [`Clock`], ids come from counters, and everything that is
//! iterated lives in ordered maps, so the same requests in the same order give the same bytes.
//! The two fakes share no state: the MCP server checks tokens locally with a shared key,
//! as a resource server checks signed JWT access tokens.

pub mod access_token;
pub mod log;
pub mod mcp_server;
pub mod store_server;
pub mod token_server;

/// Time since the unix epoch, as the simulation (or a live test) defines it.
///
/// In the simulation the clock starts at [`SIM_EPOCH_UNIX_S`] when the run starts.
pub type Clock = std::sync::Arc<dyn Fn() -> std::time::Duration + Send + Sync>;

/// The unix time (2026-01-01T00:00:00Z) at which a simulated run's clock starts. Config fields
/// that name an instant of the run, such as the MCP server's `revoke_at_ms`, count simulated
/// milliseconds from here, so the harness must start its simulation at this epoch.
pub const SIM_EPOCH_UNIX_S: u64 = 1_767_225_600;

pub use log::{
    ClientAuthSeen, CredentialSeen, Log, McpOutcome, McpRequestRecord, Peer, TokenOutcome,
    TokenRef, TokenRequestRecord, ToolCallSeen, LOG_CAPACITY,
};
pub use mcp_server::{
    GetStream, McpAuth, McpFailure, McpFailureRule, McpServer, McpServerConfig, McpStats,
    NoticeRecord, Paging, ReplyMode, SseStyle, ToolBehaviour, ToolChange, ToolSpec,
};
pub use store_server::{StoreServer, StoreServerConfig, StoreStats, StoredRow};
pub use token_server::{
    AcceptedClientAuth, AuthMethod, ClientRegistration, TokenFailure, TokenFailureRule,
    TokenServer, TokenServerConfig, TokenStats,
};

/// Whether a failure rule hits the request with this zero-based ordinal: the first `after`
/// requests pass, then `count` requests fail (or every later one when `count` is `None`).
pub(crate) fn rule_hits(after: u32, count: Option<u32>, ordinal: u64) -> bool {
    let start = u64::from(after);
    ordinal >= start && count.is_none_or(|n| ordinal < start + u64::from(n))
}

/// Sleeps on tokio's clock, which turmoil drives inside a host; zero costs nothing.
pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}
