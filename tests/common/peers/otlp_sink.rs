//! An OTLP logs collector for the `otlp`/`otlphttp` exporters' tests: tonic's generated
//! gRPC service, and an axum route for OTLP/HTTP protobuf (gzip or not), both keeping
//! each record's `vellum.seq` and the headers or metadata each request carried.

#![allow(dead_code)]

use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use tokio::runtime::Handle;

use super::tls_sink::{self, Ca, Leaf, TlsSink};

#[derive(Default)]
pub struct Collector {
    /// `vellum.seq` of every record received, in order.
    pub seqs: Mutex<Vec<u64>>,
    /// The value of `header` in each request, when it had one.
    pub header: Mutex<Vec<String>>,
    /// The header or metadata name whose values are kept.
    pub watch: String,
}

impl Collector {
    pub fn new(watch: &str) -> Arc<Collector> {
        Arc::new(Collector {
            watch: watch.to_string(),
            ..Collector::default()
        })
    }

    fn take(&self, request: &ExportLogsServiceRequest, header: Option<&str>) {
        let mut seqs = self.seqs.lock().unwrap();
        for log in request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            let seq = log
                .attributes
                .iter()
                .find(|kv| kv.key == "vellum.seq")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref());
            if let Some(any_value::Value::IntValue(n)) = seq {
                seqs.push(*n as u64);
            }
        }
        if let Some(h) = header {
            self.header.lock().unwrap().push(h.to_string());
        }
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.seqs.lock().unwrap().clone()
    }

    /// OTLP/HTTP: `POST /v1/logs` (or `path`) with protobuf, gzip or not.
    pub fn http_router(self: &Arc<Collector>, path: &str) -> Router {
        Router::new()
            .route(path, post(http_export))
            .with_state(self.clone())
    }

    /// Serves the gRPC service over TLS (HTTP/2) with `server`'s certificate, requiring
    /// a client certificate from `client_ca` when given.
    pub fn serve_grpc(
        self: &Arc<Collector>,
        rt: &Handle,
        server: &Leaf,
        client_ca: Option<&Ca>,
    ) -> TlsSink {
        self.serve_grpc_on(rt, server, client_ca, 0)
    }

    /// As [`Collector::serve_grpc`], on loopback port `port` (0: any).
    pub fn serve_grpc_on(
        self: &Arc<Collector>,
        rt: &Handle,
        server: &Leaf,
        client_ca: Option<&Ca>,
        port: u16,
    ) -> TlsSink {
        let config = tls_sink::server_config(server, client_ca, &[b"h2"]);
        let (sink, accepted) = tls_sink::listen_on(rt, config, port);
        let incoming = futures::stream::unfold(accepted, |mut rx| async move {
            let (io, _) = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(io), rx))
        });
        let service = LogsServiceServer::new(Grpc(self.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        rt.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        sink
    }
}

impl Collector {
    /// The gRPC service in clear text on loopback port `port`.
    pub fn serve_grpc_plain_on(self: &Arc<Collector>, rt: &Handle, port: u16) {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("bind the collector");
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(stream, _)| stream);
            Some((conn, l))
        });
        let service = LogsServiceServer::new(Grpc(self.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        rt.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
    }
}

struct Grpc(Arc<Collector>);

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let header = request
            .metadata()
            .get(self.0.watch.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.0.take(request.get_ref(), header.as_deref());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn http_export(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let mut raw = body.to_vec();
    if headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        == Some("gzip")
    {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return (StatusCode::BAD_REQUEST, b"bad gzip".to_vec());
        }
        raw = out;
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-protobuf") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(request) = ExportLogsServiceRequest::decode(&raw[..]) else {
        return (
            StatusCode::BAD_REQUEST,
            b"not an ExportLogsServiceRequest".to_vec(),
        );
    };
    let header = headers
        .get(collector.watch.as_str())
        .and_then(|v| v.to_str().ok());
    collector.take(&request, header);
    (
        StatusCode::OK,
        ExportLogsServiceResponse::default().encode_to_vec(),
    )
}
