//! Wall-clock time for timestamps (`last_health_check`, token expiry).
//!
//! The gateway never reads `std::time` itself: it reads the [`Clock`] it is
//! given (turmoil's simulated epoch in the harness, [`SystemClock`] on real
//! sockets). Durations and sleeps use `tokio::time`, which turmoil drives.

use std::time::Duration;

pub use mcpsim_sut::clock::{Clock, SystemClock};

/// RFC 3339 with milliseconds, UTC, e.g. `2026-01-01T00:00:00.250Z`.
pub fn rfc3339(since_epoch: Duration) -> String {
    let at = std::time::UNIX_EPOCH + since_epoch;
    humantime::format_rfc3339_millis(at).to_string()
}
