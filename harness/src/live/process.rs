//! A gateway that runs as a process of its own, in any language: how a live
//! run starts it with the config file and environment written for the run,
//! waits until it answers, restarts it for a bounce and stops it.
//!
//! Invariants: a gateway process is started in a process group of its own,
//! and stopped by that group's id (its own pid), first politely (SIGTERM),
//! then for good (SIGKILL) after a bounded wait; every wait is bounded; the
//! process's output goes to files in the run's folder, never to the report.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpsim_sut::{Declared, Dialect, HostSetup, HttpClient, SetupError, WriteAnswer};

use crate::scenario::Scenario;

/// How to start one life of a gateway process.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to a cleared environment (plus `PATH` and `HOME`).
    pub env: BTreeMap<String, String>,
    /// Files written into the run's folder before the start: (name, text).
    pub files: Vec<(String, String)>,
    /// A GET path that answers 2xx once the gateway serves.
    pub ready_path: String,
    /// How long it may take to answer there.
    pub ready_timeout: Duration,
    /// The operator's key for this gateway, if it wants one.
    pub api_key: Option<String>,
}

/// A real gateway that a live run can start: its dialect, what it declares,
/// and how to launch it.
pub trait ProcessTarget: Send + Sync {
    /// A short name: `litellm`.
    fn name(&self) -> String;

    fn dialect(&self) -> &dyn Dialect;

    /// The installed version, for the report.
    fn version(&self) -> String;

    /// Whether a scenario can be run against this target at all; `Err`
    /// says why not (a split deployment it cannot have, say).
    fn fits(&self, scenario: &Scenario) -> Result<(), String>;

    /// Whether it dials the scenario's host names itself, given where each
    /// is (`launch`'s `urls`): then URLs stay as the scenario writes them,
    /// in its config, the operator's bodies and shared state such as a
    /// store's rows. Otherwise every URL of a fake is rewritten to the
    /// address of this gateway's relay to it.
    fn resolves_names(&self) -> bool {
        false
    }

    /// What a host of the scenario will be, given the scenario's own
    /// declaration for it (its budgets in the scenario's time).
    fn declare(&self, host: &HostSetup, scenario: &Declared) -> Result<Declared, SetupError>;

    /// How to start a host on `port`, with its files in `dir`; `urls` are
    /// the base URLs (`http://127.0.0.1:PORT`) at which this host reaches
    /// each fake of the scenario, by the fake's name (its config file and
    /// the operator's REST bodies already use them).
    fn launch(
        &self,
        host: &HostSetup,
        scenario: &Declared,
        port: u16,
        dir: &Path,
        urls: &BTreeMap<String, String>,
    ) -> Result<Launch, String>;

    /// Whether an answer to a write says the gateway does not offer that
    /// registration path at all (LiteLLM's REST API without a database):
    /// the reason, quoting the gateway's own answer.
    fn refuses_path(&self, _answer: &WriteAnswer) -> Option<String> {
        None
    }

    /// The shortest pause between two polls it bears: a gateway whose
    /// reads check every server afresh is not polled every 50 ms.
    fn poll_interval_ms(&self) -> Option<u64> {
        None
    }
}

/// Sends `signal` to a process group, saying nothing if it is gone.
fn quiet_kill(signal: &str, group: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .args([signal, "--", group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// A running gateway process.
pub(crate) struct GatewayProcess {
    name: String,
    launch: Launch,
    dir: PathBuf,
    address: SocketAddr,
    child: Option<Child>,
    lives: u32,
}

impl GatewayProcess {
    /// Writes the launch's files and starts the first life; returns once
    /// it answers at its ready path, or says why it did not.
    pub async fn start(
        name: &str,
        launch: Launch,
        dir: &Path,
        address: SocketAddr,
        http: &dyn HttpClient,
    ) -> Result<GatewayProcess, String> {
        for (file, text) in &launch.files {
            std::fs::write(dir.join(file), text)
                .map_err(|e| format!("{name}: cannot write {file}: {e}"))?;
        }
        let mut process = GatewayProcess {
            name: name.to_string(),
            launch,
            dir: dir.to_path_buf(),
            address,
            child: None,
            lives: 0,
        };
        process.run(http).await?;
        Ok(process)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    async fn run(&mut self, http: &dyn HttpClient) -> Result<(), String> {
        self.lives += 1;
        let log = |suffix: &str| {
            File::create(
                self.dir
                    .join(format!("{}.{}.{suffix}", self.name, self.lives)),
            )
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
        };
        let mut command = Command::new(&self.launch.program);
        command
            .args(&self.launch.args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(std::env::var("PATH").map(|p| ("PATH".to_string(), p)))
            .envs(std::env::var("HOME").map(|h| ("HOME".to_string(), h)))
            .envs(&self.launch.env)
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            // A group of its own, so that stopping it stops its workers too.
            .process_group(0);
        let child = command.spawn().map_err(|e| {
            format!(
                "{}: cannot start {}: {e}",
                self.name,
                self.launch.program.display()
            )
        })?;
        self.child = Some(child);
        let started = Instant::now();
        let url = format!("http://{}{}", self.address, self.launch.ready_path);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "{} exited with {status} before it answered (its output: {})",
                    self.name,
                    self.dir
                        .join(format!("{}.{}.err", self.name, self.lives))
                        .display()
                ));
            }
            let request = http::Request::get(url.as_str())
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            let probe = tokio::time::timeout(Duration::from_secs(2), http.send(request)).await;
            if let Ok(Ok(response)) = probe {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > self.launch.ready_timeout {
                self.stop().await;
                return Err(format!(
                    "{} did not answer GET {} within {:?} (its output: {})",
                    self.name,
                    self.launch.ready_path,
                    self.launch.ready_timeout,
                    self.dir
                        .join(format!("{}.{}.err", self.name, self.lives))
                        .display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process and its group: SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = quiet_kill("-TERM", &group);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = quiet_kill("-KILL", &group);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A crash: stopped for good, at once.
    pub async fn crash(&mut self) {
        if let Some(child) = &self.child {
            let group = format!("-{}", child.id());
            let _ = quiet_kill("-KILL", &group);
        }
        self.stop().await;
    }

    /// A bounce: stopped, and started again with the same files.
    pub async fn bounce(&mut self, http: &dyn HttpClient) -> Result<(), String> {
        self.stop().await;
        self.run(http).await
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = quiet_kill("-KILL", &group);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
