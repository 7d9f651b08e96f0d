//! IBM ContextForge (1.0.7.post20260921) as a live target, on its default
//! SQLite database, with its synchronous registration lifecycle (the
//! default: `POST /gateways` discovers before it answers) or its
//! asynchronous one (`GATEWAY_ASYNC_LIFECYCLE_ENABLED`: 202, then a worker
//! finishes it).
//!
//! What that means for a run, measured (`interop/gateways/NOTES.md`):
//! gateways are registered over REST only, so a config-file registration
//! is not applicable; split deployments are not applicable (one process,
//! one database); a store host of the scenario is left unused, since the
//! database keeps registrations across a restart. Its budgets are set as
//! small as it takes them: health checks every `HEALTH_CHECK_INTERVAL`
//! (whole seconds, at least 5), a token request bounded by
//! `OAUTH_REQUEST_TIMEOUT` (at least 5 s) with one attempt, an
//! asynchronous registration attempt by
//! `GATEWAY_ASYNC_LIFECYCLE_ATTEMPT_TIMEOUT` (at least 5 s); a synchronous
//! registration's listing has only its MCP client's 30 s HTTP timeout, so
//! the scenario's instants are scaled to it.
//!
//! A fresh database runs its migrations for about 20 s; the first launch
//! makes a migrated template once (per target value) and every run starts
//! from a copy of it. Each instance gets its own leader lock and temporary
//! folder, without which a second instance on the machine never runs its
//! health checks.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcpsim_sut::{ContextForge, Declared, Dialect, HostSetup, SetupError, TokenReuse};
use serde_json::Value;

use super::{fresh_secret, installed_version, launch, program, seconds_at_least, told_basic};
use crate::live::{Launch, ProcessTarget};
use crate::scenario::Scenario;

/// The HTTP timeout of ContextForge's MCP client, which bounds a
/// synchronous registration's listing; no setting changes it.
const SYNC_LISTING_MS: u64 = 30_000;
const ADMIN_EMAIL: &str = "admin@example.com";

/// ContextForge started from its venv.
pub struct ContextForgeTarget {
    venv: PathBuf,
    command: Option<String>,
    asynchronous: bool,
    jwt_secret: String,
    encryption_secret: String,
    admin_password: String,
    /// The operator's admin token, made once.
    token: OnceLock<Result<String, String>>,
    /// A migrated, empty database, made once.
    template: Mutex<Option<PathBuf>>,
}

impl ContextForgeTarget {
    pub fn new(venv: PathBuf, command: Option<String>, asynchronous: bool) -> Self {
        ContextForgeTarget {
            venv,
            command,
            asynchronous,
            jwt_secret: fresh_secret("contextforge-jwt"),
            encryption_secret: fresh_secret("contextforge-encryption"),
            admin_password: format!("Pw-{}", &fresh_secret("contextforge-admin")[..24]),
            token: OnceLock::new(),
            template: Mutex::new(None),
        }
    }

    fn timings(&self, own: &Declared) -> Timings {
        let recheck_s = seconds_at_least(own.recheck_interval_ms.unwrap_or(60_000), 5);
        let token_s = seconds_at_least(own.token_budget_ms.unwrap_or(5_000), 5);
        let attempt_s = seconds_at_least(own.listing_budget_ms, 5);
        Timings {
            recheck_s,
            token_s,
            attempt_s,
        }
    }

    /// What every life of an instance is started with.
    fn env(&self, timings: &Timings, port: u16, dir: &Path) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("ENVIRONMENT", "development"),
            ("HOST", "127.0.0.1"),
            ("SSRF_ALLOW_LOCALHOST", "true"),
            ("RATE_LIMITING_ENABLED", "false"),
            ("MCPGATEWAY_UI_ENABLED", "false"),
            ("MCPGATEWAY_ADMIN_API_ENABLED", "false"),
            ("OTEL_ENABLE_OBSERVABILITY", "false"),
            ("PLUGINS_ENABLED", "false"),
            ("CACHE_TYPE", "database"),
            ("PLATFORM_ADMIN_EMAIL", ADMIN_EMAIL),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
            ("GATEWAY_HEALTH_CHECK_TIMEOUT", "10"),
            ("UNHEALTHY_THRESHOLD", "2"),
            ("OAUTH_MAX_RETRIES", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.insert("JWT_SECRET_KEY".into(), self.jwt_secret.clone());
        env.insert(
            "AUTH_ENCRYPTION_SECRET".into(),
            self.encryption_secret.clone(),
        );
        env.insert(
            "PLATFORM_ADMIN_PASSWORD".into(),
            self.admin_password.clone(),
        );
        env.insert("PORT".into(), port.to_string());
        env.insert(
            "DATABASE_URL".into(),
            format!("sqlite:///{}", dir.join("mcp.db").display()),
        );
        env.insert("FILELOCK_NAME".into(), format!("mcpsim-cf-{port}.lock"));
        env.insert("TMPDIR".into(), dir.display().to_string());
        env.insert(
            "HEALTH_CHECK_INTERVAL".into(),
            timings.recheck_s.to_string(),
        );
        env.insert(
            "HEALTH_CHECK_TIMEOUT".into(),
            timings.token_s.max(2).to_string(),
        );
        env.insert("OAUTH_REQUEST_TIMEOUT".into(), timings.token_s.to_string());
        if self.asynchronous {
            env.insert("GATEWAY_ASYNC_LIFECYCLE_ENABLED".into(), "true".into());
            env.insert("GATEWAY_ASYNC_LIFECYCLE_POLL_INTERVAL".into(), "1".into());
            env.insert(
                "GATEWAY_ASYNC_LIFECYCLE_ATTEMPT_TIMEOUT".into(),
                timings.attempt_s.to_string(),
            );
        }
        env
    }

    /// The operator's admin token, made by ContextForge's own tool.
    fn admin_token(&self) -> Result<String, String> {
        self.token
            .get_or_init(|| {
                let python = self.venv.join("bin/python");
                let output = Command::new(&python)
                    .args([
                        "-m",
                        "mcpgateway.utils.create_jwt_token",
                        "--username",
                        ADMIN_EMAIL,
                        "--exp",
                        "10080",
                        "--secret",
                        &self.jwt_secret,
                    ])
                    .env_clear()
                    .envs(std::env::var("PATH").map(|p| ("PATH".to_string(), p)))
                    .env("JWT_SECRET_KEY", &self.jwt_secret)
                    .env("PLATFORM_ADMIN_EMAIL", ADMIN_EMAIL)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
                if !output.status.success() {
                    return Err(format!(
                        "ContextForge's token tool exited with {}",
                        output.status
                    ));
                }
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .rev()
                    .map(str::trim)
                    .find(|line| line.split('.').count() == 3 && !line.contains(' '))
                    .map(str::to_string)
                    .ok_or_else(|| "ContextForge's token tool printed no token".to_string())
            })
            .clone()
    }

    /// The program and arguments for an instance on `port` in `dir`.
    fn program_for(&self, port: u16, dir: &Path) -> Result<(PathBuf, Vec<String>), String> {
        let fill = BTreeMap::from([
            ("port", port.to_string()),
            ("config", String::new()),
            ("dir", dir.display().to_string()),
        ]);
        let own = (
            self.venv.join("bin/mcpgateway"),
            vec![
                "--host".to_string(),
                "127.0.0.1".to_string(),
                "--port".to_string(),
                port.to_string(),
            ],
        );
        program(own, self.command.as_deref(), &fill)
    }

    /// A migrated empty database, made once by starting ContextForge on an
    /// empty one in `home`, waiting until it answers, and stopping it.
    fn template(&self, home: &Path) -> Result<PathBuf, String> {
        let mut template = self.template.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = template.as_ref() {
            return Ok(path.clone());
        }
        std::fs::create_dir_all(home).map_err(|e| e.to_string())?;
        for stale in ["mcp.db", "mcp.db-wal", "mcp.db-shm"] {
            let _ = std::fs::remove_file(home.join(stale));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let timings = Timings {
            recheck_s: 60,
            token_s: 5,
            attempt_s: 5,
        };
        let (program, args) = self.program_for(port, home)?;
        let mut child = Command::new(&program)
            .args(&args)
            .current_dir(home)
            .env_clear()
            .envs(std::env::var("PATH").map(|p| ("PATH".to_string(), p)))
            .envs(std::env::var("HOME").map(|h| ("HOME".to_string(), h)))
            .envs(self.env(&timings, port, home))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let started = Instant::now();
        let mut ready = false;
        while started.elapsed() < Duration::from_secs(180) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            if answers_ok(port, "/health") {
                ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let stop = Instant::now();
        while stop.elapsed() < Duration::from_secs(10) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        if !ready {
            return Err(format!(
                "ContextForge did not answer on an empty database within 180 s (in {})",
                home.display()
            ));
        }
        let path = home.join("mcp.db");
        *template = Some(path.clone());
        Ok(path)
    }
}

/// Whether `GET path` on a loopback port answers 2xx (a bounded, blocking
/// probe for use outside any runtime).
fn answers_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let Ok(n) = stream.read(&mut head) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head[..n]);
    head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2")
}

struct Timings {
    recheck_s: u64,
    token_s: u64,
    attempt_s: u64,
}

impl ProcessTarget for ContextForgeTarget {
    fn name(&self) -> String {
        if self.asynchronous {
            "contextforge-async".to_string()
        } else {
            "contextforge".to_string()
        }
    }

    fn dialect(&self) -> &dyn Dialect {
        &ContextForge
    }

    fn version(&self) -> String {
        installed_version(&self.venv, "mcp_contextforge_gateway")
            .unwrap_or_else(|| "unknown".to_string())
    }

    fn fits(&self, scenario: &Scenario) -> Result<(), String> {
        if scenario
            .gateways
            .iter()
            .any(|g| !g.servers.is_empty() || !g.config.is_null())
        {
            return Err(
                "ContextForge registers gateways through its REST API only: a \
                        config-file registration is not applicable"
                    .to_string(),
            );
        }
        let split = scenario.gateways.len() > 1
            || scenario.gateways.iter().any(|g| {
                matches!(
                    g.settings.get("role").and_then(Value::as_str),
                    Some("control" | "data")
                )
            })
            || !scenario.expect_store_unreachable.is_empty();
        if split {
            return Err(
                "one ContextForge process on its own database: split deployments \
                        are not applicable"
                    .to_string(),
            );
        }
        told_basic(
            scenario,
            "ContextForge",
            "is registered with its default client_secret_post (mcpsim's words carry no \
             client authentication to its oauth_config)",
        )
    }

    fn declare(&self, _host: &HostSetup, own: &Declared) -> Result<Declared, SetupError> {
        let t = self.timings(own);
        let token_ms = t.token_s * 1_000;
        let listing_ms = if self.asynchronous {
            t.attempt_s * 1_000
        } else {
            SYNC_LISTING_MS
        };
        Ok(Declared {
            serves_tools: true,
            token_budget_ms: Some(token_ms),
            listing_budget_ms: listing_ms,
            recheck_interval_ms: Some(t.recheck_s * 1_000),
            sync_interval_ms: None,
            store_budget_ms: None,
            // ContextForge states no policy for reusing a client-credentials
            // token; it is judged by common practice.
            token_reuse: TokenReuse::default(),
            durable: true,
            emits_events: false,
            // A synchronous registration lists the upstream before it
            // answers.
            write_budget_ms: (!self.asynchronous).then_some(token_ms + listing_ms + 5_000),
            // Not known to follow list_changed (its issue 3745).
            follows_list_changed: false,
        })
    }

    fn launch(
        &self,
        _host: &HostSetup,
        own: &Declared,
        port: u16,
        dir: &Path,
        _urls: &BTreeMap<String, String>,
    ) -> Result<Launch, String> {
        let program = self.program_for(port, dir)?;
        // Beside the runs: the work folder's own `contextforge-template`.
        let home = dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(dir)
            .join("contextforge-template");
        let template = self.template(&home)?;
        std::fs::copy(&template, dir.join("mcp.db"))
            .map_err(|e| format!("cannot copy the migrated database: {e}"))?;
        let api_key = self.admin_token()?;
        Ok(launch(
            program,
            self.env(&self.timings(own), port, dir),
            Vec::new(),
            "/health",
            120,
            Some(api_key),
        ))
    }

    fn poll_interval_ms(&self) -> Option<u64> {
        Some(250)
    }
}
