//! Wall-clock time for timestamps (`last_health_check`, token expiry).
//!
//! The gateway never reads `std::time` itself: inside the simulation the
//! harness supplies turmoil's simulated epoch, in live mode [`SystemClock`]
//! reads the real one. Durations and sleeps use `tokio::time`, which turmoil
//! already drives.

use std::time::Duration;

/// Time since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_unix(&self) -> Duration;
}

/// The real clock, for live mode only.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// RFC 3339 with milliseconds, UTC, e.g. `2026-01-01T00:00:00.250Z`.
pub fn rfc3339(since_epoch: Duration) -> String {
    let at = std::time::UNIX_EPOCH + since_epoch;
    humantime::format_rfc3339_millis(at).to_string()
}
