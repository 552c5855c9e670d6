//! HTTP exporter throughput to local sinks: records/s each exporter delivers in batches
//! of 2048 sealed entries (~500 bytes each) to the same local servers the integration
//! tests use (`tests/common/peers`), which parse every request as the vendor would — so the
//! figure includes the sink's own work on the same machine. Then end-to-end figures of
//! a running daemon with several exporters in one pipeline, records/s from the first
//! post to the gateway until every record is delivered by all of them: the file
//! exporter and `splunk_hec` (indexer acks on) until Splunk has acknowledged every
//! record; and file + `s3` + `splunk_hec` until, besides, the evidence files are
//! fsynced (a checkpoint note covers them) and the S3 bundles are in the bucket of a
//! real `moto_server` (from the test venv; skipped without it) under Object Lock.
//! Under `cargo test` (no `--bench`) only the per-exporter figures run, once each.
//!
//! `cargo bench --bench exporters` (`-- end_to_end` for the end-to-end figures only)

#[path = "../tests/common/mod.rs"]
mod common;

use common::peers;

use std::net::SocketAddr;
use std::path::Path;
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
use vellum::exporters::s3::bundle::BundleKey;
use vellum::exporters::{Exporter, ExporterConfig, ExporterContext, Item};

const BATCH: u64 = 2048;
const HEC_TOKEN: &str = "8d1f2e3a-4b5c-4d6e-8f70-8192a3b4c5d6";

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

    let token = HEC_TOKEN;
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

/// Records posted per measured iteration of the end-to-end figures, `E2E_PER_POST` per
/// request. A multiple of the checkpoint interval, so each iteration ends on a checkpoint
/// and its last records can be bundled to S3 at once rather than after the timer.
const E2E_RECORDS: u64 = 20_000;
const E2E_PER_POST: u64 = 1000;
const CHECKPOINT_EVERY: u64 = 10_000;
const STREAM_FOLDER: &str = "logs%2Faudit";

/// Criterion runs each bench once as a test under `cargo test --all-targets` (no
/// `--bench` argument): the end-to-end figures start their daemon only for `cargo bench`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A Splunk HEC with indexer acks on loopback that indexes at once.
fn start_hec(rt: &tokio::runtime::Runtime) -> (Arc<peers::splunk_hec::Hec>, Server) {
    let mut hec = peers::splunk_hec::Hec::new(HEC_TOKEN, true);
    hec.index_delay = Duration::ZERO;
    let hec = Arc::new(hec);
    let sink = Server::start(
        rt.handle(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        hec.router(),
        hec.faults.clone(),
    );
    (hec, sink)
}

/// The exporter setting for [`start_hec`]'s server.
fn splunk_exporter(sink: &Server) -> String {
    format!(
        "splunk_hec/siem: {{ endpoint: {}, token: {HEC_TOKEN}, indexer_ack: true, ack_poll_interval: 10ms }}",
        sink.url()
    )
}

/// Records (not checkpoints, which have their own sourcetype) the HEC has indexed.
fn indexed_records(hec: &peers::splunk_hec::Hec) -> u64 {
    hec.events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["sourcetype"] == "_json")
        .count() as u64
}

/// The highest checkpoint size the file exporter has written under `evidence`: it
/// writes a checkpoint only once the entries it covers are fsynced.
fn file_checkpointed(evidence: &Path) -> u64 {
    let Ok(notes) = std::fs::read_dir(evidence.join(STREAM_FOLDER).join("checkpoints")) else {
        return 0;
    };
    notes
        .flatten()
        .filter_map(|n| n.file_name().to_str()?.strip_suffix(".note")?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// How far the bundles in a bucket reach, listing only the keys added since last asked.
struct BucketProgress {
    client: aws_sdk_s3::Client,
    bucket: String,
    last_key: Option<String>,
    /// The `seq` after the last manifest's bundle.
    delivered: u64,
}

impl BucketProgress {
    fn delivered(&mut self, rt: &tokio::runtime::Runtime) -> u64 {
        let keys = rt.block_on(peers::moto::objects_after(
            &self.client,
            &self.bucket,
            self.last_key.as_deref(),
        ));
        for key in &keys {
            if let Some(bundle) = BundleKey::parse(key).filter(|b| b.is_manifest) {
                self.delivered = self.delivered.max(bundle.last_seq + 1);
            }
        }
        // An artifact listed before its manifest is written: the manifest sorts after it.
        if let Some(last) = keys.last() {
            self.last_key = Some(last.clone());
        }
        self.delivered
    }
}

/// A running daemon: the HTTP gateway, `hash_chain`, and the given exporters in one
/// pipeline, with the client that posts to it.
struct Gateway {
    daemon: common::Daemon,
    port: u16,
    agent: ureq::Agent,
    /// Records the gateway has taken so far.
    sent: u64,
}

impl Gateway {
    /// `exporters`: one `id: {settings}` line each, in the order the pipeline lists them.
    fn start(dir: &Path, exporters: &[String]) -> Gateway {
        let port = common::free_port();
        let ids: Vec<&str> = exporters
            .iter()
            .filter_map(|e| e.split_once(':').map(|(id, _)| id))
            .collect();
        let yaml = format!(
            r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{port}, path: /v1/events, max_request_body_size: 8MiB }}
processors:
  hash_chain:
    origin: bench.vellum
    checkpoint: {{ every_records: {CHECKPOINT_EVERY}, every: 10s }}
exporters:
  {exporters}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [{ids}]
"#,
            exporters = exporters.join("\n  "),
            ids = ids.join(", "),
            state = dir.join("state").display(),
        );
        let daemon = common::Daemon::start(dir, &yaml, &[SocketAddr::from(([127, 0, 0, 1], port))]);
        Gateway {
            daemon,
            port,
            agent: ureq::Agent::new_with_defaults(),
            sent: 0,
        }
    }

    /// Posts the next `E2E_RECORDS` records; each request is answered once they are durable.
    fn post_iteration(&mut self) {
        for _ in 0..E2E_RECORDS / E2E_PER_POST {
            let body: String = (self.sent..self.sent + E2E_PER_POST)
                .map(|i| {
                    format!(
                        "{{\"action\":\"model.invoke\",\"user_id\":\"user-{}\",\"model\":\"gpt-4o-mini\",\"request_id\":\"req-{i:012}\",\"message\":\"model request completed in 412 ms with 1830 prompt tokens\"}}\n",
                        i % 5000
                    )
                })
                .collect();
            self.sent += E2E_PER_POST;
            let status = self
                .agent
                .post(&format!("http://127.0.0.1:{}/v1/events", self.port))
                .send(body.as_bytes())
                .expect("the gateway takes the records")
                .status();
            assert_eq!(status.as_u16(), 200);
        }
    }

    /// Times `E2E_RECORDS` records per iteration, from the first post until
    /// `delivered(records sent in all)` holds; `reset` runs after each, untimed.
    fn measure(
        &mut self,
        c: &mut Criterion,
        name: &str,
        mut delivered: impl FnMut(u64) -> bool,
        mut reset: impl FnMut(),
    ) {
        let mut group = c.benchmark_group("exporters/end_to_end");
        group
            .throughput(Throughput::Elements(E2E_RECORDS))
            .sample_size(10)
            .measurement_time(Duration::from_secs(30));
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    self.post_iteration();
                    let sent = self.sent;
                    common::wait_until(
                        "every record to be delivered",
                        Duration::from_secs(300),
                        || delivered(sent),
                    );
                    elapsed += started.elapsed();
                    reset();
                }
                elapsed
            })
        });
        group.finish();
        let status = self.daemon.terminate();
        assert!(status.success(), "{}", self.daemon.log_text());
    }
}

/// The daemon with file + splunk_hec (acks on): records/s from the gateway post until
/// Splunk has acknowledged every one.
fn end_to_end_file_and_splunk_hec(c: &mut Criterion) {
    if !benchmarking() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (hec, sink) = start_hec(&rt);
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let mut gateway = Gateway::start(
        dir.path(),
        &[
            format!("file/evidence: {{ directory: {} }}", evidence.display()),
            splunk_exporter(&sink),
        ],
    );
    gateway.measure(
        c,
        "file+splunk_hec_ack",
        |_| indexed_records(&hec) >= E2E_RECORDS,
        || hec.events.lock().unwrap().clear(),
    );
}

/// The daemon with file + s3 (to moto, Object Lock on) + splunk_hec (acks on): records/s
/// from the gateway post until every record is in a fsynced evidence file, in a bundle
/// in the bucket, and acknowledged by Splunk.
fn end_to_end_file_s3_and_splunk_hec(c: &mut Criterion) {
    if !benchmarking() {
        return;
    }
    if peers::moto::Moto::server().is_none() {
        eprintln!(
            "moto_server is not installed (run scripts/test.sh): no file+s3+splunk_hec figure"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let moto = peers::moto::Moto::start(dir.path());
    let bucket = "bench-evidence";
    let client = rt.block_on(peers::moto::connection(&moto.url()).client());
    rt.block_on(peers::moto::create_locked_bucket(&client, bucket));
    let (hec, sink) = start_hec(&rt);
    let evidence = dir.path().join("evidence");
    let mut gateway = Gateway::start(
        dir.path(),
        &[
            format!("file/evidence: {{ directory: {} }}", evidence.display()),
            format!(
                "s3/archive: {{ bucket: {bucket}, prefix: evidence/%Y/%m/%d/, endpoint: {}, region: us-east-1, force_path_style: true, access_key_id: testing, secret_access_key: testing, object_lock: {{ mode: GOVERNANCE, retain_days: 1 }} }}",
                moto.url()
            ),
            splunk_exporter(&sink),
        ],
    );
    let mut bucket = BucketProgress {
        client,
        bucket: bucket.into(),
        last_key: None,
        delivered: 0,
    };
    // Cheapest check first: the bucket is listed only once the other two have it all.
    gateway.measure(
        c,
        "file+s3+splunk_hec_ack",
        |sent| {
            indexed_records(&hec) >= E2E_RECORDS
                && file_checkpointed(&evidence) >= sent
                && bucket.delivered(&rt) >= sent
        },
        || hec.events.lock().unwrap().clear(),
    );
}

criterion_group!(
    benches,
    to_local_sinks,
    end_to_end_file_and_splunk_hec,
    end_to_end_file_s3_and_splunk_hec
);
criterion_main!(benches);
