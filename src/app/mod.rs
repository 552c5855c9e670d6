//! The daemon's lifecycle: start the service, turn lifecycle events into reloads and a
//! drained stop, and nothing else. Where the events come from is not its business:
//! [`signals`] forwards the process's signals, [`watch`] the configuration file's
//! changes, and a test may send its own.
//!
//! | event | what the app does | the run ends with |
//! |---|---|---|
//! | `Reload` | loads and plans the configuration file again and applies it; a file that does not load or plan is refused and the running configuration kept | – |
//! | `Reload`, the new pipelines cannot start | logs why | [`Exit::Failed`] after draining |
//! | `Shutdown` | stops receivers, drains exporters within the drain timeout | [`Exit::Stopped`] |
//! | every sender gone | as `Shutdown` | [`Exit::Stopped`] |
//!
//! The telemetry server and the extensions start once, before the first service, and
//! outlive reloads: each service attaches itself to the same status board.

pub mod logging;
mod reload;
pub mod signals;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::pipeline::{Plan, Service};
use crate::telemetry::Status;
use crate::telemetry::health_check::HealthCheck;
use crate::telemetry::server::TelemetryServer;

pub use reload::{load, load_and_plan};

/// What the app reacts to; `reason` goes to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Reload { reason: &'static str },
    Shutdown { reason: &'static str },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop, and drained.
    Stopped,
    /// A reload left no pipeline able to run; what could be drained was.
    Failed,
}

/// What the app needs besides the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// The file reloads read; `None` for the built-in default pipeline.
    pub config_path: Option<PathBuf>,
    /// How long exporters may take to deliver what is left at shutdown or reload.
    pub drain_timeout: Duration,
}

/// The running daemon with what outlives its reloads.
pub struct App {
    service: Service,
    config: Config,
    options: Options,
    /// Held so that they serve as long as the app (see [`App::shutdown`]).
    _status: Arc<Status>,
    _telemetry: Option<TelemetryServer>,
    _health_check: Option<HealthCheck>,
}

impl App {
    /// Starts the telemetry server, the extensions and the service; the message says
    /// which of them could not start.
    pub async fn start(config: Config, plan: Plan, options: Options) -> Result<App, String> {
        let status = Status::new();
        let telemetry = match &config.service.telemetry.metrics.address {
            Some(address) => Some(
                crate::telemetry::serve(address, status.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let health_check = start_extensions(&config, &status).await?;
        let mut service = crate::pipeline::start(&config, plan)
            .await
            .map_err(|e| e.to_string())?;
        service.attach(&status, &config.service.telemetry);
        tracing::info!("vellum is running");
        Ok(App {
            service,
            config,
            options,
            _status: status,
            _telemetry: telemetry,
            _health_check: health_check,
        })
    }

    /// The addresses receivers listen on, by receiver id.
    pub fn listening(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.service.listening()
    }

    /// The configuration in force (the last one applied).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles events until a `Shutdown`, a fatal reload or the last sender goes; then
    /// drains and stops.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) -> Exit {
        let exit = loop {
            match events.recv().await {
                Some(Event::Reload { reason }) => {
                    if !self.reload_logged(reason).await {
                        break Exit::Failed;
                    }
                }
                Some(Event::Shutdown { reason }) => {
                    tracing::info!(reason, "shutting down");
                    break Exit::Stopped;
                }
                None => break Exit::Stopped,
            }
        };
        self.shutdown().await;
        exit
    }

    /// Drains and stops the service. The telemetry server and the extensions go on
    /// answering until the runtime ends, so that `/healthz` answers while the process is
    /// still there.
    pub async fn shutdown(self) {
        tracing::info!("draining: no new records are accepted");
        self.service.shutdown(self.options.drain_timeout).await;
        tracing::info!("stopped");
    }
}

/// Starts the extensions `service.extensions` lists; like the telemetry server they
/// live as long as the app.
async fn start_extensions(
    config: &Config,
    status: &Arc<Status>,
) -> Result<Option<HealthCheck>, String> {
    let listed = config
        .service
        .extensions
        .iter()
        .any(|id| id == "health_check");
    match &config.extensions.health_check {
        Some(health) if listed => crate::telemetry::health_check::serve(health, status.clone())
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}
