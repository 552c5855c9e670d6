//! Processors and routing through the daemon: PII never reaches the journal or the
//! evidence, records are classified and escalated, filtered records are counted out,
//! and a routed exporter gets exactly the records its condition selects.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn config(dir: &std::path::Path, ports: Ports) -> String {
    PipelineConfig::new(dir)
        .gateway(ports.gateway)
        .processor(
            "redact/pii",
            r#"
            policy: { default: redact, email: hash }
            hash_key: "0123456789abcdef0123456789abcdef-pii"
            "#,
        )
        .processor("classify", "{ rules: builtin }")
        .processor(
            "filter/noise",
            r#"{ drop: [{ name: health_checks, when: "attributes.action == 'healthcheck'" }] }"#,
        )
        .processor("hash_chain", "{ origin: test.vellum }")
        .file("file/all", &dir.join("all"))
        .file("file/security", &dir.join("security"))
        .pipeline(
            "logs/audit",
            Pipeline::new()
                .receivers(&["http/gateway"])
                .processors(&["redact/pii", "classify", "filter/noise", "hash_chain"])
                .exporters(&["file/all"])
                .route("file/security", "severity >= high"),
        )
        .yaml()
}

#[test]
fn pii_is_gone_before_the_journal_and_routing_selects_by_condition() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.gateway))];
    let mut daemon = Daemon::start(tmp.path(), &config(tmp.path(), ports), &ready);

    let mut body = String::new();
    for _ in 0..6 {
        body.push_str(r#"{"action":"login.failed","outcome":"failure","user_id":"alice","email":"alice.smith+work@corp.example.com"}"#);
        body.push('\n');
    }
    body.push_str(r#"{"action":"model.invoke","user_id":"bob","prompt":"charge card 4111 1111 1111 1111 please"}"#);
    body.push('\n');
    body.push_str(r#"{"action":"healthcheck"}"#);
    body.push('\n');
    let status = ureq::post(&format!("http://127.0.0.1:{}/v1/events", ports.gateway))
        .send(body.as_bytes())
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);

    let all = tmp.path().join("all");
    wait_until("7 entries", Duration::from_secs(20), || {
        evidence_entries(&all).len() >= 7
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // No raw value anywhere on disk: not in the evidence, not in the journal.
    for file in files_under(tmp.path()) {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["alice.smith+work@corp.example.com", "4111 1111 1111 1111"] {
            assert!(!text.contains(secret), "{} holds {secret}", file.display());
        }
    }

    let entries = evidence_entries(&all);
    assert_eq!(
        entries.len(),
        7,
        "the health check was filtered out before sealing"
    );
    let logins: Vec<_> = entries
        .iter()
        .filter(|e| e["attributes"]["action"] == "login.failed")
        .collect();
    assert_eq!(logins.len(), 6);
    let token = logins[0]["attributes"]["email"].as_str().unwrap();
    assert!(
        token.starts_with("[email:hmac:") && token.len() == "[email:hmac:]".len() + 16,
        "{token}"
    );
    assert!(
        logins.iter().all(|e| e["attributes"]["email"] == token),
        "the same value hashes to the same token"
    );
    assert!(logins.iter().all(|e| e["event_type"] == "authentication"));
    assert!(
        logins.iter().all(|e| e["redaction"].is_object()),
        "each record says what was redacted"
    );
    let model = entries
        .iter()
        .find(|e| e["attributes"]["action"] == "model.invoke")
        .unwrap();
    assert!(
        model["attributes"]["prompt"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:credit_card]"),
        "{model}"
    );

    // The burst escalates; the routed exporter holds exactly the high ones.
    let high: Vec<u64> = entries
        .iter()
        .filter(|e| matches!(e["severity"].as_str(), Some("high" | "critical")))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        !high.is_empty(),
        "a failed-login burst is escalated: {entries:#?}"
    );
    let routed: Vec<u64> = evidence_entries(&tmp.path().join("security"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(routed, high);

    let (ok, report) = verify(&all, &vkeys(&tmp.path().join("state")), &[]);
    assert!(ok, "{report}");
}
