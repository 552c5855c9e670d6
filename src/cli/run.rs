//! `vellum run`: the daemon in the foreground until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::app::{self, App, Event, Exit, Options};

/// Loads and plans the configuration (exit 2 with every problem when it does not),
/// then runs the app with the process's signals and, with `watch`, the file's changes
/// as its events.
pub fn run(config_path: Option<PathBuf>, drain_timeout: Duration, watch: bool) -> ExitCode {
    let config = match app::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let plan = match crate::pipeline::plan(&config) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    app::logging::init(&config.service.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vellum: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let watched = config_path.clone().filter(|_| watch);
    let options = Options {
        config_path,
        drain_timeout,
    };
    runtime.block_on(async move {
        let app = match App::start(config, plan, options).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("vellum: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (events, received) = mpsc::channel::<Event>(8);
        if let Err(e) = app::signals::forward(events.clone()) {
            tracing::error!("cannot install signal handlers: {e}");
            app.shutdown().await;
            return ExitCode::FAILURE;
        }
        if let Some(path) = watched {
            app::watch::spawn(path, app::watch::EVERY, events.clone());
        }
        // Only the forwarders hold senders now: the run ends on their events alone.
        drop(events);
        match app.run(received).await {
            Exit::Stopped => ExitCode::SUCCESS,
            Exit::Failed => ExitCode::FAILURE,
        }
    })
}
