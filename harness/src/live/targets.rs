//! The real gateways a live run can start: where they are installed, how
//! they are launched, and the dialect they speak.

use std::path::Path;
use std::sync::Arc;

use super::ProcessTarget;

/// The target named `name`, installed under `gateways` (as
/// `scripts/install-gateways` installs them), launched with `command` in
/// place of its own program when one is given.
pub fn by_name(
    name: &str,
    _gateways: &Path,
    _command: Option<&str>,
) -> Result<Arc<dyn ProcessTarget>, String> {
    Err(format!("no live target {name:?}; known: reference"))
}
