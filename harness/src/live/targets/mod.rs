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

use mcpsim_fakes::{AcceptedClientAuth, AuthMethod};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Launch, ProcessTarget};
use crate::scenario::Scenario;

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

/// Why a scenario is not applicable to a target that sends its client
/// credentials in the form body whatever the scenario tells a gateway: a
/// gateway told to authenticate to token endpoints by HTTP Basic
/// (`token_client_auth: basic`, in the reference's words) beside a client
/// registered for Basic (`auth_method: basic`) at an endpoint that would
/// take the form body from another client. The registration holds a
/// gateway to the method it was told to use; the target was never told, so
/// its refusal would be mcpsim's doing, not the target's. An endpoint that
/// takes only Basic stays applicable: that the target cannot use it is
/// the target's own finding.
pub(crate) fn told_basic(scenario: &Scenario, target: &str, why: &str) -> Result<(), String> {
    let told = scenario
        .gateways
        .iter()
        .any(|g| g.settings.get("token_client_auth").and_then(Value::as_str) == Some("basic"));
    let registered = scenario.token_servers.iter().any(|t| {
        t.config.client_auth != AcceptedClientAuth::BasicOnly
            && t.config
                .clients
                .iter()
                .any(|c| c.auth_method == Some(AuthMethod::Basic))
    });
    if told && registered {
        return Err(format!(
            "{target} {why}: a gateway told to authenticate to a token endpoint by HTTP \
             Basic, with a client registered for it, is not applicable"
        ));
    }
    Ok(())
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

    #[test]
    fn a_gateway_told_basic_beside_a_client_registered_for_it_is_not_applicable() {
        use crate::builder::{ClientRegistration, GatewayHost, TokenHost, TokenServerConfig};
        let scenario = |told: &str, method: Option<AuthMethod>, accepts: AcceptedClientAuth| {
            let token = TokenServerConfig {
                client_auth: accepts,
                clients: vec![ClientRegistration {
                    client_id: "c".into(),
                    client_secret: "s".into(),
                    scopes: Vec::new(),
                    auth_method: method,
                }],
                ..TokenServerConfig::default()
            };
            crate::builder::Scenario::builder("told")
                .gateway(
                    GatewayHost::new("gateway")
                        .settings(serde_json::json!({"token_client_auth": told})),
                )
                .token_server(TokenHost::new("auth").config(token))
                .build()
                .unwrap()
        };
        let fits = |s: &Scenario| told_basic(s, "litellm", "always sends the form body");
        let any = AcceptedClientAuth::Any;
        let refused = fits(&scenario("basic", Some(AuthMethod::Basic), any)).unwrap_err();
        assert!(
            refused.starts_with("litellm always sends the form body: "),
            "{refused}"
        );
        // Told the form body, or a client that may use either: it applies.
        assert!(fits(&scenario("request_body", Some(AuthMethod::Basic), any)).is_ok());
        assert!(fits(&scenario("basic", None, any)).is_ok());
        assert!(fits(&scenario("basic", Some(AuthMethod::Form), any)).is_ok());
        // An endpoint that takes Basic only is the target's own limit.
        let basic_only = AcceptedClientAuth::BasicOnly;
        assert!(fits(&scenario("basic", Some(AuthMethod::Basic), basic_only)).is_ok());
    }
}
