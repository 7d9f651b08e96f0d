//! The seam between mcpsim's harness and a system under test.
//!
//! Everything both sides share lives here and nowhere else: the HTTP client
//! a gateway calls out through ([`HttpClient`]), the clock it reads
//! ([`Clock`]), and the events it may report ([`GatewayEvent`]).
//!
//! Invariants: nothing here reads the wall clock except [`SystemClock`],
//! nothing draws randomness, and nothing depends on turmoil or on any
//! gateway.

pub mod clock;
pub mod events;
pub mod http;
pub mod model;

pub use clock::{Clock, SystemClock};
pub use events::{
    AttemptReason, CancelReason, EventSink, GatewayEvent, MemorySink, NoEvents, StderrSink,
};
pub use http::{BoxFuture, HttpClient, HttpError};
pub use model::{Source, Status};
