//! Reading the configuration again and applying it to the running service.

use std::path::Path;

use super::App;
use crate::config::{Config, ConfigError};
use crate::pipeline::Plan;
use crate::pipeline::reload::{ReloadError, ReloadSummary};

/// The configuration at `path`, or the built-in default pipeline without one.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Config::from_yaml(
            crate::config::DEFAULT_PIPELINE,
            "the default pipeline (pipelines/default.yaml)",
            &crate::config::expand::SystemSource,
        ),
    }
}

/// [`load`] then [`crate::pipeline::plan`]; a refusal carries the messages `vellum
/// validate` prints.
pub fn load_and_plan(path: Option<&Path>) -> Result<(Config, Plan), ReloadError> {
    let config = load(path).map_err(|e| ReloadError::Refused(vec![e.to_string()]))?;
    let plan = crate::pipeline::plan(&config).map_err(ReloadError::Refused)?;
    Ok((config, plan))
}

impl App {
    /// Applies the configuration file to the running service. `Refused` leaves the
    /// running configuration untouched; `Fatal` means the daemon cannot go on.
    pub async fn reload(&mut self, reason: &str) -> Result<ReloadSummary, ReloadError> {
        tracing::info!(reason, "reloading the configuration");
        let (config, plan) = load_and_plan(self.options.config_path.as_deref())?;
        let summary = self
            .service
            .reload(&config, plan, self.options.drain_timeout)
            .await?;
        self.config = config;
        Ok(summary)
    }

    /// [`App::reload`] with its outcome logged; false when the daemon cannot go on.
    pub(super) async fn reload_logged(&mut self, reason: &str) -> bool {
        match self.reload(reason).await {
            Ok(summary) => {
                tracing::info!("configuration reloaded: {summary}");
                true
            }
            Err(e @ ReloadError::Fatal(_)) => {
                tracing::error!("{e}");
                false
            }
            Err(e) => {
                tracing::error!("{e}");
                true
            }
        }
    }
}
