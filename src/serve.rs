//! `mcpsim serve FILE`: the scenario's fakes on 127.0.0.1 on real time, a
//! log line per request in the trace's format, until interrupted (or for a
//! stated time). For reproducing a race by hand against any gateway.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mcpsim_harness::serve::{serve, ServeOptions};
use mcpsim_harness::Scenario;

/// What `mcpsim serve` was asked to do.
pub struct Options<'a> {
    pub file: &'a Path,
    pub port: Option<u16>,
    /// Stop after this long; run until interrupted when absent.
    pub for_ms: Option<u64>,
}

pub fn run(options: &Options<'_>) -> Result<(), String> {
    let scenario = Scenario::load(options.file).map_err(|e| e.to_string())?;
    if scenario.token_servers.is_empty()
        && scenario.mcp_servers.is_empty()
        && scenario.stores.is_empty()
    {
        return Err(format!(
            "{}: the scenario has no fakes to serve",
            options.file.display()
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let log: mcpsim_harness::serve::LogSink = Arc::new(|line| println!("{line}"));
        let served = serve(
            &scenario,
            ServeOptions {
                first_port: options.port,
                log: Some(log),
            },
        )
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        println!("{}: {}", options.file.display(), scenario.description);
        for (host, url) in &served.urls {
            let what = if let Some(t) = scenario.token_servers.iter().find(|t| &t.host == host) {
                format!("token server, token endpoint {url}{}", t.config.path)
            } else if let Some(m) = scenario.mcp_servers.iter().find(|m| &m.host == host) {
                format!("MCP server, endpoint {url}{}", m.config.path)
            } else {
                "store".to_string()
            };
            println!("serving {host:<12} at {url}  ({what})");
        }
        println!("instants of the scenario count from now; interrupt to stop");
        match options.for_ms {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        served.shutdown();
        Ok(())
    })
}
