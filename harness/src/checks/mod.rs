//! Checkers: each looks at a finished run and names itself when it fails.
//!
//! Checkers never touch the world they check; they read the operator's
//! observations, the trace and the fakes' counters.

use serde::Serialize;

/// One checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// Why it failed, one line per finding; empty when it passed.
    pub findings: Vec<String>,
}

pub(crate) fn check(name: &'static str, findings: Vec<String>) -> Check {
    Check {
        name,
        passed: findings.is_empty(),
        findings,
    }
}

mod consistency;
mod converges;
mod expectations;
mod hygiene;
mod liveness;
mod paths;
mod secrets;
mod tokens;

pub(crate) use consistency::check_consistency;
pub(crate) use converges::check_converges;
pub(crate) use expectations::check_expectations;
pub(crate) use hygiene::check_hygiene;
pub(crate) use liveness::check_liveness;
pub use paths::check_path_independence;
pub(crate) use secrets::check_no_secrets;
pub(crate) use tokens::check_tokens;
