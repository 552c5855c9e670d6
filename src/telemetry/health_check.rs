//! The Collector's `health_check` extension: one path answering whether the daemon is
//! ready, in the Collector's shape, so load balancers and Kubernetes probes written for
//! the Collector work unchanged.
//!
//! ```yaml
//! extensions:
//!   health_check:
//!     endpoint: 127.0.0.1:13133   # the default; the Collector's is 0.0.0.0:13133
//!     path: /                     # the default
//! service:
//!   extensions: [health_check]
//! ```
//!
//! | daemon | status | body |
//! |---|---|---|
//! | ready (as `/readyz` says) | 200 | `{"status":"Server available","upSince":"<RFC 3339>","uptime":"<Go duration>"}` |
//! | not ready, starting, reloading, stopping | 503 | `{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}` |
//!
//! `upSince` is when the daemon was first seen ready after it was last seen not ready.
//! Readiness is the same board as `/readyz` ([`Status::readiness`]); the reasons are
//! only on `/readyz`. Like the telemetry server, the extension is started once per
//! process and outlives reloads: a changed `endpoint` or `path` takes effect at the
//! next start of the process. Only `GET` on `path` is answered; anything else is 404.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::status::Status;
use crate::config::Endpoint;

/// The top-level `extensions` section: each extension Vellum knows, by its type name.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionsConfig {
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
}

/// `extensions.health_check`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: Endpoint,
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_endpoint() -> Endpoint {
    // Loopback like every other listener of ours: exposing it is the operator's choice.
    Endpoint("127.0.0.1:13133".into())
}

fn default_path() -> String {
    "/".into()
}

#[derive(Debug, thiserror::Error)]
#[error("extensions.health_check.endpoint: cannot listen on {address}: {source}")]
pub struct HealthCheckError {
    address: String,
    source: std::io::Error,
}

/// The running extension; it stops when [`HealthCheck::stop`] is called.
pub struct HealthCheck {
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HealthCheck {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Listens on the configured endpoint and answers readiness from `status`.
pub async fn serve(
    config: &HealthCheckConfig,
    status: Arc<Status>,
) -> Result<HealthCheck, HealthCheckError> {
    let fail = |source| HealthCheckError {
        address: config.endpoint.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.endpoint.as_str())
        .await
        .map_err(fail)?;
    let local_addr = listener.local_addr().map_err(fail)?;
    let path = if config.path.starts_with('/') {
        config.path.clone()
    } else {
        format!("/{}", config.path)
    };
    let app = Router::new().route(&path, get(answer)).with_state(Checked {
        status,
        up_since: Arc::new(Mutex::new(None)),
    });
    let stop = CancellationToken::new();
    let task = crate::net::listener::serve(
        "health_check".into(),
        listener,
        app,
        crate::net::listener::ListenerLimits::default(),
        stop.clone(),
    );
    tracing::info!(address = %local_addr, path, "health_check extension listening");
    Ok(HealthCheck {
        local_addr,
        stop,
        task,
    })
}

#[derive(Clone)]
struct Checked {
    status: Arc<Status>,
    /// When the daemon was first seen ready since it was last seen not ready.
    up_since: Arc<Mutex<Option<SystemTime>>>,
}

async fn answer(State(checked): State<Checked>) -> Response {
    let ready = checked.status.readiness().is_empty();
    let now = SystemTime::now();
    let since = {
        let mut up_since = checked
            .up_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *up_since = if ready {
            Some(up_since.unwrap_or(now))
        } else {
            None
        };
        *up_since
    };
    let (code, body) = match since {
        Some(since) => (
            StatusCode::OK,
            serde_json::json!({
                "status": "Server available",
                "upSince": humantime::format_rfc3339_nanos(since).to_string(),
                "uptime": go_duration(now.duration_since(since).unwrap_or_default()),
            }),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "Server not available",
                "upSince": "0001-01-01T00:00:00Z",
                "uptime": "",
            }),
        ),
    };
    (code, axum::Json(body)).into_response()
}

/// A duration as Go's `time.Duration.String` writes it at second scale: `1h2m3.5s`.
fn go_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = (secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_are_written_as_go_writes_them() {
        assert_eq!(go_duration(Duration::from_millis(49_500)), "49.5s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3 * 3600 + 5)), "3h0m5s");
    }

    #[test]
    fn the_endpoint_defaults_to_loopback_on_the_collectors_port() {
        let config: ExtensionsConfig =
            serde_json::from_value(serde_json::json!({ "health_check": {} })).unwrap();
        let health = config.health_check.unwrap();
        assert_eq!(health.endpoint.as_str(), "127.0.0.1:13133");
        assert_eq!(health.path, "/");
    }
}
