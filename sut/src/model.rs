//! mcpsim's model of what a gateway shows: statuses and registration sources.
//!
//! Every dialect maps its gateway's own words onto these, so checkers speak
//! one language whatever the system under test.

use serde::{Deserialize, Serialize};

/// Health of one server as mcpsim understands it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No discovery attempt has finished yet, and nothing else.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }

    /// The status named `text` in mcpsim's words.
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "unknown" => Some(Status::Unknown),
            "healthy" => Some(Status::Healthy),
            "unhealthy" => Some(Status::Unhealthy),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The gateway's config file.
    Config,
    /// The management API (LiteLLM keeps these in its database).
    Rest,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Rest => "rest",
        }
    }
}
