//! The telemetry HTTP server: `/metrics`, `/healthz` and `/readyz` on one address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use super::status::Status;
use crate::config::Endpoint;

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("service.telemetry.metrics.address: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
}

/// The running server; it stops when [`TelemetryServer::stop`] is called or the runtime ends.
pub struct TelemetryServer {
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TelemetryServer {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Installs the process-wide metrics recorder and serves the telemetry paths on
/// `address`. Call once per process, before the first pipeline service starts, so that
/// no count is lost.
pub async fn serve(
    address: &Endpoint,
    status: Arc<Status>,
) -> Result<TelemetryServer, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(address.as_str())
        .await
        .map_err(|source| TelemetryError::Bind {
            address: address.to_string(),
            source,
        })?;
    let recorder = super::recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| TelemetryError::Recorder(e.to_string()))?;
    super::describe();
    let server = serve_on(listener, status, handle)?;
    tracing::info!(address = %server.local_addr, "telemetry listening: /metrics, /healthz, /readyz");
    Ok(server)
}

/// Serves the telemetry paths on a bound listener, rendering `handle`'s recorder.
pub fn serve_on(
    listener: tokio::net::TcpListener,
    status: Arc<Status>,
    handle: PrometheusHandle,
) -> Result<TelemetryServer, TelemetryError> {
    let local_addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind {
            address: "the telemetry listener".into(),
            source,
        })?;
    let stop = CancellationToken::new();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Served {
            status,
            handle: handle.clone(),
        });
    let until = stop.clone();
    let task = tokio::spawn(async move {
        let upkeep = async {
            let mut ticker = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                ticker.tick().await;
                handle.run_upkeep();
            }
        };
        let serving = crate::net::listener::serve(
            "telemetry".into(),
            listener,
            app,
            crate::net::listener::ListenerLimits::default(),
            until,
        );
        tokio::select! {
            _ = serving => {},
            () = upkeep => {}
        }
    });
    Ok(TelemetryServer {
        local_addr,
        stop,
        task,
    })
}

#[derive(Clone)]
struct Served {
    status: Arc<Status>,
    handle: PrometheusHandle,
}

async fn metrics(State(served): State<Served>) -> Response {
    served.status.publish_gauges();
    super::process::publish();
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        served.handle.render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(served): State<Served>) -> Response {
    let failing = served.status.readiness();
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": failing.is_empty(), "failing": failing });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::status::{PipelineStatus, ServiceStatus, WriterStatus};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or("")
            .to_string();
        (status, content_type, body.to_string())
    }

    #[tokio::test]
    async fn the_paths_answer_and_readiness_follows_the_attached_service() {
        let tmp = tempfile::tempdir().unwrap();
        let (_writer, journal, _) =
            crate::journal::open(tmp.path(), crate::journal::JournalOptions::default()).unwrap();
        let recorder = crate::telemetry::recorder();
        let handle = recorder.handle();
        let counter = metrics::with_local_recorder(
            &recorder,
            || metrics::counter!("vellum_receiver_accepted_records_total", "receiver" => "otlp"),
        );
        counter.increment(3);
        let status = Status::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve_on(listener, status.clone(), handle).unwrap();
        let addr = server.local_addr;

        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (code, _, body) = get(addr, "/readyz").await;
        assert_eq!(code, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["ready"], false);
        assert_eq!(body["failing"][0]["check"], "service");

        let writer = Arc::new(WriterStatus::new(0, None));
        let service = Arc::new(ServiceStatus {
            receivers: Vec::new(),
            pipelines: vec![Arc::new(PipelineStatus {
                id: "logs/a".into(),
                stream: "a".into(),
                journal,
                writer: writer.clone(),
                exporters: Vec::new(),
            })],
            exporter_stuck_after: Duration::from_secs(1),
        });
        status.attach(service.clone());
        let (code, _, body) = get(addr, "/readyz").await;
        assert_eq!(
            (code, body.as_str()),
            (200, r#"{"failing":[],"ready":true}"#)
        );
        writer.failed("no space left on the journal's disk");
        let (code, _, body) = get(addr, "/readyz").await;
        assert_eq!(code, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["failing"][0]["check"], "journal");
        assert_eq!(body["failing"][0]["pipeline"], "logs/a");
        let detail = body["failing"][0]["detail"].as_str().unwrap();
        assert!(detail.contains("no space left"), "{detail}");
        writer.reopened();
        let (code, _, _) = get(addr, "/readyz").await;
        assert_eq!(code, 200, "ready again once the journal reopened");

        let (code, content_type, text) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        assert!(
            text.contains(r#"vellum_receiver_accepted_records_total{receiver="otlp"} 3"#),
            "{text}"
        );
        assert_eq!(get(addr, "/nothing").await.0, 404);
        server.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
