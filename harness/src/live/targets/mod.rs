//! The real gateways a live run can start, as `scripts/install-gateways`
//! installs them: [`litellm::LiteLlmTarget`] (the LiteLLM proxy without a
//! database) and [`contextforge::ContextForgeTarget`] (IBM ContextForge on
//! its default SQLite database, with its synchronous or its asynchronous
//! registration lifecycle).
//!
//! Each target says what it is in mcpsim's terms: the dialect it speaks,
//! what it declares for a host of a scenario (its budgets, set as small as
//! the gateway lets an operator set them, so that a live run does not wait
//! out a 30-second default), the scenarios it cannot run and why, and the
//! command line, environment and config file of one life. The facts these
//! rest on are in `interop/gateways/NOTES.md`, measured on this machine.
//!
//! Invariants: every gateway binds 127.0.0.1 only and is kept offline by
//! its environment; keys made up for a run are fresh for every target
//! value and never printed.

pub mod contextforge;
pub mod litellm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Launch, ProcessTarget};

/// The target named `name`, installed under `gateways`, launched with
/// `command` in place of its own program when one is given.
pub fn by_name(
    name: &str,
    gateways: &Path,
    command: Option<&str>,
) -> Result<Arc<dyn ProcessTarget>, String> {
    let command = command.map(str::to_string);
    // The gateway runs in a working folder of its own: a relative folder
    // (the default `.gateways`) must be made absolute here, where it means
    // what the user meant.
    let gateways = &std::path::absolute(gateways)
        .map_err(|e| format!("the gateways folder {}: {e}", gateways.display()))?;
    match name {
        "litellm" => Ok(Arc::new(litellm::LiteLlmTarget::new(
            gateways.join("litellm"),
            command,
        ))),
        "contextforge" => Ok(Arc::new(contextforge::ContextForgeTarget::new(
            gateways.join("contextforge"),
            command,
            false,
        ))),
        "contextforge-async" => Ok(Arc::new(contextforge::ContextForgeTarget::new(
            gateways.join("contextforge"),
            command,
            true,
        ))),
        other => Err(format!(
            "no live target {other:?}; known: reference, litellm, contextforge, contextforge-async"
        )),
    }
}

/// A fresh secret for one target value: hex of a hash of the time, the
/// process and a label. Live runs are not deterministic, and their own keys
/// need not be either; they only must not be well known.
pub(crate) fn fresh_secret(label: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = Sha256::digest(format!("{label}|{now}|{}", std::process::id()).as_bytes());
    hex::encode(digest)
}

/// The version of a Python distribution installed in `venv`, from its
/// `dist-info` folder's name.
pub(crate) fn installed_version(venv: &Path, distribution: &str) -> Option<String> {
    let lib = venv.join("lib");
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let site = python.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(rest) = name.strip_prefix(&format!("{distribution}-")) {
                if let Some(version) = rest.strip_suffix(".dist-info") {
                    return Some(version.to_string());
                }
            }
        }
    }
    None
}

/// The program and arguments of a launch: the target's own, or the
/// operator's `command` with `{port}`, `{config}` and `{dir}` filled in.
pub(crate) fn program(
    own: (PathBuf, Vec<String>),
    command: Option<&str>,
    fill: &BTreeMap<&str, String>,
) -> Result<(PathBuf, Vec<String>), String> {
    let Some(command) = command else {
        if !own.0.exists() {
            return Err(format!(
                "{} is not installed (run scripts/install-gateways, or give --gateways or --command)",
                own.0.display()
            ));
        }
        return Ok(own);
    };
    let mut words = command.split_whitespace().map(|word| {
        let mut word = word.to_string();
        for (key, value) in fill {
            word = word.replace(&format!("{{{key}}}"), value);
        }
        word
    });
    let program = words.next().ok_or("--command is empty")?;
    Ok((PathBuf::from(program), words.collect()))
}

/// Whole seconds, at least `floor`, for settings a gateway takes in
/// seconds.
pub(crate) fn seconds_at_least(ms: u64, floor: u64) -> u64 {
    ms.div_ceil(1_000).max(floor)
}

/// The launch fields every target shares.
pub(crate) fn launch(
    program: (PathBuf, Vec<String>),
    env: BTreeMap<String, String>,
    files: Vec<(String, String)>,
    ready_path: &str,
    ready_timeout_s: u64,
    api_key: Option<String>,
) -> Launch {
    Launch {
        program: program.0,
        args: program.1,
        env,
        files,
        ready_path: ready_path.to_string(),
        ready_timeout: std::time::Duration::from_secs(ready_timeout_s),
        api_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_command_is_filled_in_and_a_missing_install_says_what_to_do() {
        let fill = BTreeMap::from([
            ("port", "4000".to_string()),
            ("config", "c.json".to_string()),
        ]);
        let (program, args) = program(
            (PathBuf::from("/nowhere/bin/litellm"), vec![]),
            Some("/opt/ll/bin/litellm --config {config} --port {port}"),
            &fill,
        )
        .unwrap();
        assert_eq!(program, PathBuf::from("/opt/ll/bin/litellm"));
        assert_eq!(args, ["--config", "c.json", "--port", "4000"]);
        let missing = super::program((PathBuf::from("/nowhere/bin/litellm"), vec![]), None, &fill)
            .unwrap_err();
        assert!(missing.contains("install-gateways"), "{missing}");
        assert_eq!(seconds_at_least(1_500, 1), 2);
        assert_eq!(seconds_at_least(500, 5), 5);
        assert_eq!(fresh_secret("a").len(), 64);
    }
}
