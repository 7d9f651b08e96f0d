//! The LiteLLM proxy (1.83.14) as a live target, without a database (the
//! database layer downloads its engines from a host this machine cannot
//! reach).
//!
//! What that means for a run, measured (`interop/gateways/NOTES.md`):
//! servers come from the config file only, and every REST write answers 500
//! "Database not connected", so a scenario that registers over REST is not
//! applicable, with that answer; split deployments and store hosts are not
//! applicable either. Statuses come from `GET /v1/mcp/server/health`, which
//! checks every server afresh on each read (initialize only) and skips
//! OAuth2 servers; no error text and no time of the last check are
//! available. Its listing and health budgets are set to the scenario's own
//! listing budget (`LITELLM_MCP_TOOL_LISTING_TIMEOUT`,
//! `LITELLM_MCP_HEALTH_CHECK_TIMEOUT`, in seconds, fractions allowed); a
//! token request has no budget of its own (its read timeout is 600 s), and
//! LiteLLM never checks a server again by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcpsim_sut::{Declared, Dialect, HostSetup, LiteLlmProxy, SetupError, TokenReuse, WriteAnswer};
use serde_json::{json, Value};

use super::{fresh_secret, installed_version, launch, program, told_basic};
use crate::live::{Launch, ProcessTarget};
use crate::scenario::Scenario;

/// The smallest listing budget set for a run: below it a loaded machine
/// times out healthy servers.
const LISTING_FLOOR_MS: u64 = 1_000;

/// LiteLLM started from its venv.
pub struct LiteLlmTarget {
    venv: PathBuf,
    command: Option<String>,
    master_key: String,
}

impl LiteLlmTarget {
    pub fn new(venv: PathBuf, command: Option<String>) -> Self {
        LiteLlmTarget {
            venv,
            command,
            // Newer releases refuse well-known keys; this one is fresh.
            master_key: format!("sk-mcpsim-{}", &fresh_secret("litellm-master-key")[..32]),
        }
    }

    fn listing_ms(own: &Declared) -> u64 {
        own.listing_budget_ms.max(LISTING_FLOOR_MS)
    }
}

/// The environment that keeps LiteLLM offline and quiet.
fn offline_env() -> BTreeMap<String, String> {
    [
        ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
        ("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True"),
        ("LITELLM_LOCAL_AUTOROUTER_PRESETS", "True"),
        ("LITELLM_LOCAL_BLOG_POSTS", "True"),
        ("LITELLM_LOCAL_POLICY_TEMPLATES", "True"),
        ("LITELLM_TELEMETRY", "False"),
        ("DISABLE_SCHEMA_UPDATE", "True"),
        ("HF_HUB_OFFLINE", "1"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("no_proxy", "127.0.0.1,localhost"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl ProcessTarget for LiteLlmTarget {
    fn name(&self) -> String {
        "litellm".to_string()
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlmProxy
    }

    fn version(&self) -> String {
        installed_version(&self.venv, "litellm").unwrap_or_else(|| "unknown".to_string())
    }

    fn fits(&self, scenario: &Scenario) -> Result<(), String> {
        let split = scenario.gateways.iter().any(|g| {
            g.store.is_some()
                || matches!(
                    g.settings.get("role").and_then(Value::as_str),
                    Some("control" | "data")
                )
        });
        if split || !scenario.stores.is_empty() {
            return Err(
                "LiteLLM without a database has no store to share: split deployments \
                        and store hosts are not applicable"
                    .to_string(),
            );
        }
        told_basic(
            scenario,
            "LiteLLM",
            "always puts its client credentials in the form body",
        )
    }

    fn declare(&self, _host: &HostSetup, own: &Declared) -> Result<Declared, SetupError> {
        Ok(Declared {
            serves_tools: true,
            token_budget_ms: None,
            listing_budget_ms: Self::listing_ms(own),
            recheck_interval_ms: None,
            sync_interval_ms: None,
            store_budget_ms: None,
            // max(expires_in − 60 s, 10 s), an hour when unstated: LiteLLM's
            // own constants.
            token_reuse: TokenReuse::default(),
            durable: false,
            emits_events: false,
            write_budget_ms: None,
            // Not known to follow list_changed.
            follows_list_changed: false,
        })
    }

    fn launch(
        &self,
        host: &HostSetup,
        own: &Declared,
        port: u16,
        dir: &Path,
        _urls: &BTreeMap<String, String>,
    ) -> Result<Launch, String> {
        let mut config: Value = match &host.config_file {
            Some(text) => serde_json::from_str(text).map_err(|e| format!("config: {e}"))?,
            None => json!({}),
        };
        let Value::Object(map) = &mut config else {
            return Err("config: not a JSON object".to_string());
        };
        map.insert("model_list".into(), json!([]));
        map.insert(
            "general_settings".into(),
            json!({"master_key": self.master_key}),
        );
        map.insert("litellm_settings".into(), json!({"telemetry": false}));
        let config_path = dir.join("config.json");
        let listing_s = format!("{:.3}", Self::listing_ms(own) as f64 / 1_000.0);
        let mut env = offline_env();
        env.insert("LITELLM_MCP_TOOL_LISTING_TIMEOUT".into(), listing_s.clone());
        env.insert("LITELLM_MCP_HEALTH_CHECK_TIMEOUT".into(), listing_s);
        // The scenario's environment, for `os.environ/NAME` in the config.
        env.extend(host.env.clone());
        let fill = BTreeMap::from([
            ("port", port.to_string()),
            ("config", config_path.display().to_string()),
            ("dir", dir.display().to_string()),
        ]);
        let own_program = (
            self.venv.join("bin/litellm"),
            vec![
                "--config".to_string(),
                config_path.display().to_string(),
                "--host".to_string(),
                "127.0.0.1".to_string(),
                "--port".to_string(),
                port.to_string(),
            ],
        );
        Ok(launch(
            program(own_program, self.command.as_deref(), &fill)?,
            env,
            vec![("config.json".to_string(), config.to_string())],
            "/health/liveliness",
            120,
            Some(self.master_key.clone()),
        ))
    }

    fn refuses_path(&self, answer: &WriteAnswer) -> Option<String> {
        let error = answer.error.as_deref()?;
        (answer.status == 500 && error.contains("Database not connected")).then(|| {
            format!(
                "LiteLLM without a database takes no REST writes (registration by its config \
                 file only): it answered {}: {error}",
                answer.status
            )
        })
    }

    fn poll_interval_ms(&self) -> Option<u64> {
        // Every read of its health checks every server afresh.
        Some(500)
    }
}
