//! Each known defect, switched on, changes what the gateway does in the way
//! the real gateway went wrong; switched off, the reference behaviour holds.
//! Also the tool-call route, on which the forwarded-header defect shows.
//!
//! Upstreams are an in-process [`HttpClient`] (`rig::World`) on tokio's
//! paused clock, so every test is deterministic and instant.

mod call;
mod discovery;
mod rig;
mod store;
mod token;
