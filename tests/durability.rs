//! Nothing acknowledged is ever lost: a client streams batches over OTLP gRPC, the
//! daemon is killed with SIGKILL mid-stream, its journal tail is torn, and after a
//! restart every acknowledged record is in the evidence exactly once, at its place, and
//! the chain continues without a gap.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

const PER_BATCH: u64 = 50;

fn int(key: &str, v: u64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v as i64)),
        }),
        ..Default::default()
    }
}

fn batch(b: u64) -> ExportLogsServiceRequest {
    let records = (0..PER_BATCH)
        .map(|i| LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "{:0400}",
                    b * PER_BATCH + i
                ))),
            }),
            attributes: vec![int("batch", b), int("i", i)],
            severity_number: 9,
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends batches `from..` one after another until one fails or `until` is reached;
/// returns the acknowledged batch numbers through `acked`.
fn stream(port: u16, from: u64, until: u64, acked: Arc<Mutex<Vec<u64>>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Ok(mut client) = LogsServiceClient::connect(format!("http://127.0.0.1:{port}")).await
        else {
            return;
        };
        for b in from..until {
            match client.export(batch(b)).await {
                Ok(_) => acked.lock().unwrap().push(b),
                Err(_) => return,
            }
        }
    });
}

#[test]
fn acknowledged_records_survive_kill_9_and_a_torn_journal_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.grpc))];
    let config = PipelineConfig::standard(tmp.path(), ports).yaml();
    let mut daemon = Daemon::start(tmp.path(), &config, &ready);

    let acked = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let acked = acked.clone();
        std::thread::spawn(move || stream(ports.grpc, 0, 1_000_000, acked))
    };
    wait_until("40 acknowledged batches", Duration::from_secs(60), || {
        acked.lock().unwrap().len() >= 40
    });
    daemon.kill9();
    client.join().unwrap();
    let acked_before: Vec<u64> = acked.lock().unwrap().clone();
    let last_acked = *acked_before.last().unwrap();
    assert_eq!(acked_before, (0..=last_acked).collect::<Vec<_>>());

    // A write torn by the crash: garbage after the last complete frame.
    let journal = tmp.path().join("state/pipelines/logs%2Faudit/journal");
    let newest = files_under(&journal)
        .into_iter()
        .rfind(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a journal segment");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0x17, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).unwrap();
    drop(f);

    let mut daemon = Daemon::start_with(tmp.path(), &daemon.config.clone(), &ready);
    // The chain continues after the restart.
    let after = last_acked + 1_000;
    let acked_after = Arc::new(Mutex::new(Vec::new()));
    stream(ports.grpc, after, after + 5, acked_after.clone());
    assert_eq!(
        acked_after.lock().unwrap().len(),
        5,
        "{}",
        daemon.log_text()
    );
    let evidence = tmp.path().join("evidence");
    let expected_min = (acked_before.len() as u64 + 5) * PER_BATCH;
    wait_until(
        "every acknowledged record in the evidence",
        Duration::from_secs(60),
        || evidence_entries(&evidence).len() as u64 >= expected_min,
    );
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let entries = evidence_entries(&evidence);
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..entries.len() as u64).collect::<Vec<_>>(),
        "seq runs from 0 without gaps or repeats"
    );
    // Each acknowledged record appears exactly once, batches in the order they were sent.
    let ids: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["attributes"]["batch"].as_u64().unwrap(),
                e["attributes"]["i"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(u64, u64)> = Vec::new();
    for b in acked_before.iter().copied().chain(after..after + 5) {
        expected.extend((0..PER_BATCH).map(|i| (b, i)));
    }
    // The batch in flight at the kill was never acknowledged, but what of it reached the
    // journal before the kill may stand between the two runs: a prefix, in order.
    let in_flight = last_acked + 1;
    let without_in_flight: Vec<(u64, u64)> = ids
        .iter()
        .copied()
        .filter(|(b, _)| *b != in_flight)
        .collect();
    assert_eq!(
        without_in_flight, expected,
        "acknowledged records, exactly once, in order"
    );
    let in_flight_ids: Vec<u64> = ids
        .iter()
        .filter(|(b, _)| *b == in_flight)
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(
        in_flight_ids,
        (0..in_flight_ids.len() as u64).collect::<Vec<_>>()
    );

    let (ok, report) = verify(&evidence, &vkeys(&tmp.path().join("state")), &[]);
    assert!(ok, "the evidence verifies across the crash:\n{report}");
}
