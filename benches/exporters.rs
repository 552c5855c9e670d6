//! HTTP exporter throughput to local sinks: records/s each exporter delivers in batches
//! of 2048 sealed entries (~500 bytes each) to the same local servers the integration
//! tests use (`tests/peers`), which parse every request as the vendor would — so the
//! figure includes the sink's own work on the same machine. Then the end-to-end figure
//! of a running daemon with the file exporter and `splunk_hec` (indexer acks on) at
//! once: records posted to the gateway until Splunk has acknowledged every one.
//!
//! `cargo bench --bench exporters`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/peers"]
mod peers {
    pub mod datadog;
    pub mod http_faults;
    pub mod splunk_hec;
    pub mod webhook;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes as AxumBytes;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use peers::http_faults::Server;
use prost::Message;
use serde_json::json;
use vellum::config::{ComponentConfig, ComponentId};
use vellum::exporters::{Exporter, ExporterConfig, ExporterContext, Item};

const BATCH: u64 = 2048;

/// A sealed entry shaped like a gateway's audit record.
fn entry(seq: u64) -> Bytes {
    let line = json!({
        "v": 1, "stream": "logs/audit", "seq": seq, "prev": "0".repeat(64), "hash": format!("{seq:064x}"),
        "time": vellum::event::format_time(1_795_000_000_000_000_000 + seq * 1000),
        "observed_time": vellum::event::format_time(1_795_000_000_000_000_000 + seq * 1000 + 500),
        "severity_number": 9, "severity_text": "INFO", "source": "http/gateway",
        "body": "model request completed in 412 ms with 1830 prompt tokens and 212 completion tokens",
        "attributes": {"user_id": format!("user-{}", seq % 5000), "action": "model.invoke",
                       "model": "gpt-4o-mini", "request_id": format!("req-{seq:012}"),
                       "client.address": "10.1.2.3"},
        "resource": {"service.name": "ai-gateway", "host.name": "gw-1"}
    });
    Bytes::from(line.to_string())
}

/// Batch number `n`: fresh journal indexes, so no exporter skips it as already sent.
fn batch(lines: &[Bytes], n: u64) -> Vec<Item> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let seq = n * BATCH + i as u64;
            Item::Entry {
                index: seq,
                seq,
                line: line.clone(),
            }
        })
        .collect()
}

fn build(id: &str, settings: serde_json::Value) -> Box<dyn Exporter> {
    let id = ComponentId::parse(id).expect("an exporter id");
    let cfg = match ExporterConfig::decode(&id, settings) {
        Ok(cfg) => cfg,
        Err(_) => panic!("the bench's settings for {} decode", id.as_str()),
    };
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let state = std::env::temp_dir().join("vellum-bench-exporters");
    cfg.build(&ExporterContext {
        id: id.as_str().to_string(),
        stream: "logs/audit".into(),
        state_dir: state,
    })
    .unwrap_or_else(|e| panic!("build {}: {e}", id.as_str()))
}

/// Times `export` of one batch per iteration; `reset` empties the sink between them.
fn bench_exporter(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    mut exporter: Box<dyn Exporter>,
    reset: impl Fn(),
) {
    let lines: Vec<Bytes> = (0..BATCH).map(entry).collect();
    let mut group = c.benchmark_group("exporters/to_local_sink");
    group
        .throughput(Throughput::Elements(BATCH))
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let items = batch(&lines, n);
                n += 1;
                let started = Instant::now();
                rt.block_on(exporter.export(&items))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                elapsed += started.elapsed();
                reset();
            }
            elapsed
        })
    });
    group.finish();
}

#[derive(Clone, Default)]
struct CountingCollector(Arc<AtomicU64>);

#[tonic::async_trait]
impl LogsService for CountingCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let n: usize = request
            .into_inner()
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// An OTLP collector on loopback (gRPC and HTTP/protobuf) that counts records.
fn start_collector(rt: &tokio::runtime::Runtime) -> (SocketAddr, SocketAddr) {
    let collector = CountingCollector::default();
    let grpc = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let service = LogsServiceServer::new(collector.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
    );
    let http = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let http_addr = http.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/v1/logs",
            axum::routing::post(
                |headers: axum::http::HeaderMap, body: AxumBytes| async move {
                    let body = peers::http_faults::decode_body(&headers, &body).unwrap();
                    let request = ExportLogsServiceRequest::decode(&body[..]).unwrap();
                    drop(request);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportLogsServiceResponse::default().encode_to_vec(),
                    )
                },
            ),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    rt.spawn(async move { axum::serve(http, app).await });
    (grpc_addr, http_addr)
}

fn to_local_sinks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Exporters build their clients at construction, which needs the runtime's context.
    let _entered = rt.enter();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));

    let token = "8d1f2e3a-4b5c-4d6e-8f70-8192a3b4c5d6";
    for ack in [false, true] {
        let mut hec = peers::splunk_hec::Hec::new(token, ack);
        hec.index_delay = Duration::ZERO;
        let hec = Arc::new(hec);
        let sink = Server::start(rt.handle(), any, hec.router(), hec.faults.clone());
        let exporter = build(
            "splunk_hec/bench",
            json!({"endpoint": sink.url(), "token": token, "indexer_ack": ack, "ack_poll_interval": "10ms"}),
        );
        let name = if ack { "splunk_hec_ack" } else { "splunk_hec" };
        bench_exporter(c, &rt, name, exporter, || {
            hec.events.lock().unwrap().clear()
        });
    }

    let key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let intake = Arc::new(peers::datadog::Intake::new(key));
    let sink = Server::start(rt.handle(), any, intake.router(), intake.faults.clone());
    let exporter = build(
        "datadog/bench",
        json!({"api_key": key, "endpoint": sink.url()}),
    );
    bench_exporter(c, &rt, "datadog", exporter, || {
        intake.logs.lock().unwrap().clear()
    });

    let secret = "whsec-0123456789abcdef0123456789";
    let receiver = Arc::new(peers::webhook::Receiver::new(
        "/hook",
        peers::webhook::Auth::Hmac(secret.as_bytes().to_vec()),
    ));
    let sink = Server::start(rt.handle(), any, receiver.router(), receiver.faults.clone());
    let exporter = build(
        "webhook/bench",
        json!({"url": format!("{}/hook", sink.url()), "auth": {"type": "hmac", "secret": secret}}),
    );
    bench_exporter(c, &rt, "webhook", exporter, || {
        receiver.batches.lock().unwrap().clear()
    });

    let (grpc, http) = start_collector(&rt);
    let exporter = build("otlp/bench", json!({"endpoint": format!("http://{grpc}")}));
    bench_exporter(c, &rt, "otlp_grpc", exporter, || {});
    let exporter = build(
        "otlp/bench",
        json!({"endpoint": format!("http://{http}"), "protocol": "http"}),
    );
    bench_exporter(c, &rt, "otlp_http", exporter, || {});
}

/// The daemon with file + splunk_hec (acks on): records/s from the gateway post until
/// Splunk has acknowledged every one.
fn end_to_end_file_and_splunk_hec(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches without `--bench`: no daemon then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    const PER_ITERATION: u64 = 20_000;
    const PER_POST: u64 = 1000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let token = "8d1f2e3a-4b5c-4d6e-8f70-8192a3b4c5d6";
    let mut hec = peers::splunk_hec::Hec::new(token, true);
    hec.index_delay = Duration::ZERO;
    let hec = Arc::new(hec);
    let sink = Server::start(
        rt.handle(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        hec.router(),
        hec.faults.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let gateway = common::free_port();
    let yaml = format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events, max_request_body_size: 8MiB }}
processors:
  hash_chain:
    origin: bench.vellum
    checkpoint: {{ every_records: 10000, every: 10s }}
exporters:
  file/evidence: {{ directory: {evidence} }}
  splunk_hec/siem: {{ endpoint: {url}, token: {token}, indexer_ack: true, ack_poll_interval: 10ms }}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [file/evidence, splunk_hec/siem]
"#,
        evidence = dir.path().join("evidence").display(),
        state = dir.path().join("state").display(),
        url = sink.url(),
    );
    let mut daemon = common::Daemon::start(
        dir.path(),
        &yaml,
        &[SocketAddr::from(([127, 0, 0, 1], gateway))],
    );
    let indexed = || {
        hec.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["sourcetype"] == "_json")
            .count() as u64
    };
    let agent = ureq::Agent::new_with_defaults();
    let mut next = 0u64;
    let mut group = c.benchmark_group("exporters/end_to_end");
    group
        .throughput(Throughput::Elements(PER_ITERATION))
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("file+splunk_hec_ack", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                for _ in 0..PER_ITERATION / PER_POST {
                    let body: String = (next..next + PER_POST)
                        .map(|i| {
                            format!(
                                "{{\"action\":\"model.invoke\",\"user_id\":\"user-{}\",\"model\":\"gpt-4o-mini\",\"request_id\":\"req-{i:012}\",\"message\":\"model request completed in 412 ms with 1830 prompt tokens\"}}\n",
                                i % 5000
                            )
                        })
                        .collect();
                    next += PER_POST;
                    let status = agent
                        .post(&format!("http://127.0.0.1:{gateway}/v1/events"))
                        .send(body.as_bytes())
                        .expect("the gateway takes the records")
                        .status();
                    assert_eq!(status.as_u16(), 200);
                }
                common::wait_until("Splunk to acknowledge the records", Duration::from_secs(300), || {
                    indexed() >= PER_ITERATION
                });
                elapsed += started.elapsed();
                hec.events.lock().unwrap().clear();
            }
            elapsed
        })
    });
    group.finish();
    daemon.terminate();
}

criterion_group!(benches, to_local_sinks, end_to_end_file_and_splunk_hec);
criterion_main!(benches);
