//! OTLP gRPC load generator: drives a running Vellum with several connections and
//! reports acknowledged records/s and acknowledgement latency.
//!
//! ```text
//! cargo bench --bench loadgen -- [--endpoint http://127.0.0.1:4317] [--connections 8]
//!     [--batch 100] [--record-bytes 500] [--seconds 10] [--rate 0]
//! ```
//!
//! `--rate` is the total records/s to offer (0: as fast as acknowledgements allow).
//! Every request waits for its answer, which Vellum gives only once the records are
//! durable in the journal, so "acknowledged" here means fsynced.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

struct Args {
    endpoint: String,
    connections: usize,
    batch: usize,
    record_bytes: usize,
    seconds: u64,
    rate: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        endpoint: "http://127.0.0.1:4317".into(),
        connections: 8,
        batch: 100,
        record_bytes: 500,
        seconds: 10,
        rate: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = value(),
            "--connections" => a.connections = value().parse().expect("--connections N"),
            "--batch" => a.batch = value().parse().expect("--batch N"),
            "--record-bytes" => a.record_bytes = value().parse().expect("--record-bytes N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--rate" => a.rate = value().parse().expect("--rate N"),
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A gateway-like audit record whose protobuf encoding is about `bytes` long.
fn request(batch: usize, bytes: usize, conn: usize, n: u64) -> ExportLogsServiceRequest {
    let kv = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let fixed = 200;
    let records = (0..batch)
        .map(|i| LogRecord {
            time_unix_nano: 1_795_000_000_000_000_000 + n * 1000 + i as u64,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "model request completed {}",
                    "x".repeat(bytes.saturating_sub(fixed))
                ))),
            }),
            attributes: vec![
                kv("user_id", format!("user-{}", (n as usize + i) % 5000)),
                kv("action", "model.invoke".into()),
                kv("model", "gpt-4o-mini".into()),
                kv("request_id", format!("{conn:04}-{n:012}-{i:05}")),
                kv("client.address", "10.1.2.3".into()),
            ],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "ai-gateway".into())],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: nothing to drive.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "loadgen: drives a running daemon; run it with `cargo bench --bench loadgen -- …`"
        );
        return;
    }
    let args = parse_args();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let per_conn_rate = args.rate as f64 / args.connections as f64;
    let mut tasks = Vec::new();
    for conn in 0..args.connections {
        let endpoint = args.endpoint.clone();
        let (batch, bytes) = (args.batch, args.record_bytes);
        tasks.push(tokio::spawn(async move {
            let mut client = LogsServiceClient::connect(endpoint)
                .await
                .expect("connect to the OTLP endpoint");
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let started = Instant::now();
            let mut n = 0u64;
            // One request built up front and cloned: the client's own work stays small next
            // to the daemon's on a machine they share.
            let template = request(batch, bytes, conn, 0);
            while Instant::now() < deadline {
                if per_conn_rate > 0.0 {
                    // Open-loop pacing: batch n is due at n * batch / rate.
                    let due =
                        started + Duration::from_secs_f64(n as f64 * batch as f64 / per_conn_rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let req = template.clone();
                let sent = Instant::now();
                match client.export(req).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => errors += 1,
                }
                n += 1;
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("a connection task");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let records = latencies.len() as f64 * args.batch as f64;
    println!(
        "connections={} batch={} record_bytes~{} rate={} seconds={}",
        args.connections,
        args.batch,
        args.record_bytes,
        if args.rate == 0 {
            "max".to_string()
        } else {
            args.rate.to_string()
        },
        args.seconds
    );
    println!(
        "acknowledged {:.0} records/s ({} requests, {} errors); ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        records / elapsed,
        latencies.len(),
        errors,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
