//! The process's log output, as `service.telemetry.logs` sets it.

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global log subscriber; call once, before the app starts. `RUST_LOG`
/// overrides the configured level.
pub fn init(telemetry: &TelemetryConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&telemetry.logs.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a file or a log shipper would keep
    // them as noise. `NO_COLOR` (no-color.org) turns them off there too.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match telemetry.logs.format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Pretty => builder.with_ansi(colour).init(),
    }
}
