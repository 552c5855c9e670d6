//! The OpenTelemetry Python SDK, a real OTLP client, sends audit logs over gRPC and
//! HTTP; every record arrives in the evidence with its fields intact, and the evidence
//! verifies.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;

#[test]
fn python_sdk_logs_arrive_over_grpc_and_http_with_fields_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready: Vec<SocketAddr> = [ports.grpc, ports.http]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let mut daemon = Daemon::start(
        tmp.path(),
        &PipelineConfig::standard(tmp.path(), ports).yaml(),
        &ready,
    );

    otel_send(
        "grpc",
        &format!("http://127.0.0.1:{}", ports.grpc),
        300,
        None,
    );
    otel_send(
        "http",
        &format!("http://127.0.0.1:{}", ports.http),
        200,
        None,
    );

    let evidence = tmp.path().join("evidence");
    wait_until(
        "500 entries in the evidence",
        Duration::from_secs(30),
        || evidence_entries(&evidence).len() >= 500,
    );
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let entries = evidence_entries(&evidence);
    assert_eq!(entries.len(), 500, "no record is lost or repeated");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..500).collect::<Vec<_>>());
    for e in &entries {
        let i = e["attributes"]["audit.index"]
            .as_u64()
            .expect("audit.index attribute");
        assert_eq!(e["body"], format!("login failed for u{i}"));
        assert_eq!(e["attributes"]["user_id"], format!("u{i}"));
        assert_eq!(e["attributes"]["attempt"], i);
        assert_eq!(e["severity_number"], 13, "WARNING maps to OTLP WARN");
        assert_eq!(e["resource"]["service.name"], "gateway-test");
        assert_eq!(e["scope"]["name"], "audit");
        assert_eq!(e["source"], "otlp");
        assert_eq!(e["stream"], "logs/audit");
        assert!(
            e["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 30)
        );
    }
    // 300 distinct indexes from gRPC and 200 from HTTP overlap on 0..200.
    let indexes: BTreeSet<u64> = entries
        .iter()
        .map(|e| e["attributes"]["audit.index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..300).collect());

    let (ok, report) = verify(&evidence, &vkeys(&tmp.path().join("state")), &[]);
    assert!(ok, "the evidence verifies:\n{report}");
}
