//! Wall-clock time for timestamps (`last_health_check`, token expiry).
//!
//! Code that runs in the simulation never reads `std::time`: the harness
//! supplies turmoil's simulated epoch, and only [`SystemClock`] (for real
//! sockets) reads the real one. Durations and sleeps use `tokio::time`,
//! which turmoil already drives.

use std::time::Duration;

/// Time since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_unix(&self) -> Duration;
}

/// The real clock, for real sockets only.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}
