//! `mcpsim gateway`: the reference gateway on real sockets, as a process of
//! its own, for live runs (the `reference-process` target) and for trying
//! it by hand against `mcpsim serve`. It listens on 127.0.0.1 only, calls
//! its upstreams through reqwest (no proxy, no redirect), reads real time,
//! writes its own events to stderr as JSON lines, and stops on SIGTERM or
//! Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use mcpsim_gateway::{Reference, ReqwestClient, SystemClock};
use mcpsim_sut::{HostSetup, Injected, StderrSink, StoreAccess, SystemUnderTest};

/// What `mcpsim gateway` was asked to run.
pub struct Options {
    pub port: u16,
    /// The reference's settings, as JSON.
    pub settings: String,
    /// A config file in LiteLLM's format (JSON).
    pub config: Option<PathBuf>,
    /// The store host's base URL, for REST registrations that outlive a
    /// restart.
    pub store: Option<String>,
    /// Host names dialed at fixed addresses (`NAME=127.0.0.1:PORT`).
    pub resolve: Vec<String>,
}

pub fn run(options: &Options) -> Result<(), String> {
    let settings: serde_json::Value = serde_json::from_str(&options.settings)
        .map_err(|e| format!("--settings is not JSON: {e}"))?;
    let config_file = match &options.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?,
        ),
        None => None,
    };
    let setup = HostSetup {
        host: "gateway".to_string(),
        settings,
        config_file,
        // `os.environ/NAME` in the config reads this process's environment.
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
        store: options.store.as_ref().map(|_| "store".to_string()),
    };
    let mut names = BTreeMap::new();
    for entry in &options.resolve {
        let (name, address) = entry
            .split_once('=')
            .ok_or_else(|| format!("--resolve {entry}: give NAME=ADDRESS"))?;
        let address: std::net::SocketAddr = address
            .parse()
            .map_err(|_| format!("--resolve {entry}: {address} is not an address with a port"))?;
        names.insert(name.to_string(), address);
    }
    let reference = Reference::new();
    reference.declare(&setup).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let http = Arc::new(ReqwestClient::resolving(&names));
        let injected = Injected {
            http: http.clone(),
            clock: Arc::new(SystemClock),
            events: Arc::new(StderrSink),
            store: options.store.as_ref().map(|url| StoreAccess {
                http,
                base_url: url.trim_end_matches('/').to_string(),
            }),
        };
        let instance = reference.build(&setup, injected)?;
        instance.start();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match term.as_mut() {
                        Some(term) => { term.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
        };
        let served = axum::serve(listener, instance.router()).with_graceful_shutdown(stop);
        let result = served.await.map_err(|e| e.to_string());
        instance.shutdown();
        result
    })
}
