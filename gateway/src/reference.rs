//! The reference gateway as a system under test: how the harness (or any
//! caller of the seam, `mcpsim-sut`) builds it, what it declares, and the
//! settings it takes for a generated profile.
//!
//! Its settings are [`GatewaySettings`] as JSON, its config file is
//! LiteLLM's (`mcp_servers:`) as JSON, and it speaks LiteLLM's dialect.
//! Known defects are switched on here, by the code that builds a
//! [`Reference`], never by a scenario.

use std::sync::Arc;
use std::time::Duration;

use mcpsim_sut::{
    Declared, Dialect, HostSetup, Injected, Instance, LiteLlm, Profile, SetupError,
    SystemUnderTest, TokenReuse,
};
use serde_json::{json, Value};

use crate::http_client::{BoxFuture, HttpClient, HttpError};
use crate::store::{HttpStore, Store};
use crate::{ClientAuthMethod, Clock, ConfigFile, Defects, Deps, Gateway, GatewaySettings, Role};

/// The reference gateway, optionally with known defects switched on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference {
    defects: Defects,
}

impl Reference {
    /// The reference as it is: no defect.
    pub fn new() -> Self {
        Reference::default()
    }

    /// The reference with these known defects switched on in every host.
    pub fn with_defects(defects: Defects) -> Self {
        Reference { defects }
    }

    pub fn defects(&self) -> Defects {
        self.defects
    }

    /// This reference as a shared system under test, for the harness.
    pub fn sut(self) -> mcpsim_sut::Sut {
        Arc::new(self)
    }
}

/// A host's settings, with the JSON path of what is wrong.
fn settings(host: &HostSetup) -> Result<GatewaySettings, SetupError> {
    let value = match &host.settings {
        Value::Null => json!({}),
        other => other.clone(),
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SetupError {
            path: if path == "." {
                "settings".to_string()
            } else {
                format!("settings.{path}")
            },
            reason: e.inner().to_string(),
        }
    })
}

fn config(host: &HostSetup) -> Result<ConfigFile, SetupError> {
    match &host.config_file {
        None => Ok(ConfigFile::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| SetupError {
            path: "config".to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Never reached: a probe gateway is built to validate a config, not run.
struct Unconnected;

impl HttpClient for Unconnected {
    fn send(
        &self,
        _request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        Box::pin(async { Err(HttpError::Connect("not connected".to_string())) })
    }
}

struct Epoch;

impl Clock for Epoch {
    fn now_unix(&self) -> Duration {
        Duration::ZERO
    }
}

impl Instance for Gateway {
    fn start(&self) {
        Gateway::start(self);
    }

    fn router(&self) -> axum::Router {
        Gateway::router(self)
    }

    fn shutdown(&self) {
        Gateway::shutdown(self);
    }
}

impl SystemUnderTest for Reference {
    fn name(&self) -> String {
        "reference".to_string()
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlm
    }

    fn declare(&self, host: &HostSetup) -> Result<Declared, SetupError> {
        let s = settings(host)?;
        let config = config(host)?;
        // Every config entry must normalise: a bad one is an input error,
        // not a host that dies at start.
        let probe = Deps {
            http: Arc::new(Unconnected),
            clock: Arc::new(Epoch),
            events: Arc::new(mcpsim_sut::NoEvents),
            store: None,
        };
        Gateway::new(s.clone(), probe, &config, &host.env).map_err(|e| SetupError {
            path: "config".to_string(),
            reason: e.to_string(),
        })?;
        let with_store = host.store.is_some();
        Ok(Declared {
            serves_tools: s.role != Role::Control,
            token_budget_ms: Some(s.token_timeout_ms),
            listing_budget_ms: s.list_timeout_ms,
            recheck_interval_ms: Some(s.check_interval_ms),
            sync_interval_ms: with_store.then_some(s.sync_interval_ms),
            store_budget_ms: with_store.then_some(s.store_timeout_ms),
            token_reuse: TokenReuse {
                refresh_margin_ms: s.token_expiry_skew_s * 1_000,
                min_reuse_ms: s.token_ttl_floor_s * 1_000,
                unstated_lifetime_ms: s.token_default_ttl_s * 1_000,
            },
            durable: with_store,
            emits_events: true,
            write_budget_ms: None,
            follows_list_changed: s.role != Role::Control,
        })
    }

    fn build(&self, host: &HostSetup, injected: Injected) -> Result<Box<dyn Instance>, String> {
        let mut s = settings(host).map_err(|e| e.to_string())?;
        s.defects = self.defects;
        let config = config(host).map_err(|e| e.to_string())?;
        let deps = Deps {
            http: injected.http,
            clock: injected.clock,
            events: injected.events,
            store: injected.store.map(|access| {
                Arc::new(HttpStore::new(access.http, access.base_url)) as Arc<dyn Store>
            }),
        };
        let gateway = Gateway::new(s, deps, &config, &host.env).map_err(|e| e.to_string())?;
        Ok(Box::new(gateway))
    }

    fn default_settings(&self) -> Value {
        serde_json::to_value(GatewaySettings::default()).unwrap_or(Value::Null)
    }

    fn settings_for(&self, profile: &Profile) -> Option<Value> {
        let client_auth = match profile.client_auth {
            mcpsim_sut::ClientAuth::Basic => ClientAuthMethod::Basic,
            mcpsim_sut::ClientAuth::Form => ClientAuthMethod::RequestBody,
        };
        // The reference counts its token rules in whole seconds; a margin
        // rounds up and a reuse down, so that it never keeps a token longer
        // than asked.
        let reuse = profile.token_reuse;
        Some(json!({
            "role": profile.role,
            "token_timeout_ms": profile.token_budget_ms,
            "list_timeout_ms": profile.listing_budget_ms,
            "check_interval_ms": profile.recheck_interval_ms,
            "sync_interval_ms": profile.sync_interval_ms,
            "store_timeout_ms": profile.store_budget_ms,
            "token_client_auth": client_auth,
            "token_expiry_skew_s": reuse.refresh_margin_ms.div_ceil(1_000),
            "token_ttl_floor_s": reuse.min_reuse_ms / 1_000,
            "token_default_ttl_s": reuse.unstated_lifetime_ms / 1_000,
            "id_seed": profile.id_seed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(settings: Value, config: Option<&str>) -> HostSetup {
        HostSetup {
            host: "gateway".into(),
            settings,
            config_file: config.map(str::to_string),
            env: Default::default(),
            store: None,
        }
    }

    #[test]
    fn settings_errors_name_their_path_and_defects_cannot_be_set() {
        let e = Reference::new()
            .declare(&host(json!({"list_timeout_ms": "soon"}), None))
            .unwrap_err();
        assert_eq!(e.path, "settings.list_timeout_ms");
        assert!(e.reason.contains("invalid type"), "{}", e.reason);
        let e = Reference::new()
            .declare(&host(json!({"defects": ["first-page-only"]}), None))
            .unwrap_err();
        assert!(e.reason.contains("defects"), "{e}");
        let e = Reference::new()
            .declare(&host(
                json!({}),
                Some(r#"{"mcp_servers": {"x": {"transport": "carrier-pigeon"}}}"#),
            ))
            .unwrap_err();
        assert_eq!(e.path, "config");
        assert!(e.reason.contains("mcp_servers.x"), "{e}");
    }

    #[test]
    fn declarations_follow_the_settings() {
        let declared = Reference::new()
            .declare(&host(
                json!({"role": "control", "list_timeout_ms": 750, "token_expiry_skew_s": 5}),
                None,
            ))
            .unwrap();
        assert!(!declared.serves_tools);
        assert_eq!(declared.listing_budget_ms, 750);
        assert_eq!(declared.sync_interval_ms, None);
        assert!(!declared.durable);
        assert_eq!(declared.token_reuse.refresh_margin_ms, 5_000);
        assert_eq!(declared.token_reuse.kept_ms(Some(30)), 25_000);
    }

    /// A generated profile's token reuse is what the reference then
    /// declares, so the token checker's bounds are the ones asked for.
    #[test]
    fn a_profile_s_token_reuse_comes_back_declared() {
        for reuse in [
            TokenReuse::default(),
            TokenReuse {
                refresh_margin_ms: 1_000,
                min_reuse_ms: 1_000,
                unstated_lifetime_ms: 2_000,
            },
        ] {
            let profile = Profile {
                role: mcpsim_sut::Role::AllInOne,
                with_store: false,
                token_budget_ms: 500,
                listing_budget_ms: 750,
                recheck_interval_ms: 500,
                sync_interval_ms: 500,
                store_budget_ms: 500,
                client_auth: mcpsim_sut::ClientAuth::Basic,
                token_reuse: reuse,
                id_seed: 1,
            };
            let settings = Reference::new().settings_for(&profile).unwrap();
            let declared = Reference::new().declare(&host(settings, None)).unwrap();
            assert_eq!(declared.token_reuse, reuse);
            assert_eq!(declared.listing_budget_ms, 750);
        }
    }
}
