//! Retention on the real daemon, its clock moved forward with libfaketime (`faketime`,
//! installed by scripts/test.sh): the journal is purged only once every exporter has
//! delivered, a legal hold keeps evidence until it is lifted, each purge is a record in
//! the chain, the daemon restarted after purging continues the chain, and the pruned
//! evidence verifies with `vellum verify` and with the independent Python verifier,
//! while an undeclared gap or a changed purge record does not.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::peers;
use common::*;
use peers::http_faults::Server;
use peers::webhook::{Auth, Receiver};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);
const STREAM_FOLDER: &str = "logs%2Faudit";

/// The gateway, the chain, file evidence with retention, and `extra_exporters`.
fn config(dir: &Path, gateway: u16, extra_exporters: &str, extra_ids: &str) -> String {
    format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events }}
processors:
  hash_chain:
    origin: test.vellum
    checkpoint: {{ every_records: 50, every: 1h }}
exporters:
  file/evidence:
    directory: {evidence}
    max_file_size: 2KiB
    retention_days: 30
{extra_exporters}
service:
  storage:
    directory: {state}
    segment_size: 8KiB
    retention_days: 30
    retention_check_interval: 1s
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [file/evidence{extra_ids}]
"#,
        evidence = dir.join("evidence").display(),
        state = dir.join("state").display(),
    )
}

/// Runs the daemon, `days_ahead` days in the future when above 0 (real-time clock only:
/// timers and timeouts keep the monotonic clock).
fn start(dir: &Path, yaml: &str, gateway: u16, days_ahead: u32) -> Daemon {
    let config = dir.join("vellum.yaml");
    std::fs::write(&config, yaml).unwrap();
    let ready = [SocketAddr::from(([127, 0, 0, 1], gateway))];
    let args = ["--drain-timeout", "2s"];
    Daemon::launch(dir, &config, &ready, &args, &days_ahead_env(days_ahead))
}

fn evidence_dir(dir: &Path) -> PathBuf {
    dir.join("evidence")
}

/// Every entry in the evidence, in `seq` order, while retention may be changing it.
fn entries(dir: &Path) -> Vec<Value> {
    evidence_entries_now(&evidence_dir(dir))
}

/// Purge records in the evidence for `store` (`journal` or an exporter id).
fn purges(dir: &Path, store: &str) -> Vec<Value> {
    entries(dir)
        .into_iter()
        .filter(|e| {
            e["event_type"] == "vellum.retention.purge" && e["attributes"]["store"] == store
        })
        .collect()
}

fn first_seq(dir: &Path) -> Option<u64> {
    entries(dir).first().and_then(|e| e["seq"].as_u64())
}

fn first_segment(dir: &Path) -> PathBuf {
    dir.join("state/pipelines")
        .join(STREAM_FOLDER)
        .join("journal/00000000000000000000.seg")
}

/// The independent Python verifier; (success, output).
fn python_verify(dir: &Path, vkey: &str) -> (bool, String) {
    let python = python().expect("the test venv: run scripts/test.sh");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/verify_evidence.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .arg(vkey)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn send(gateway: u16, from: usize, n: usize) {
    for start in (from..from + n).step_by(50) {
        send_logins(gateway, start, 50.min(from + n - start));
    }
}

#[test]
fn the_journal_waits_for_every_exporter_and_the_chain_goes_on_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let soc = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = Server::start(
        rt.handle(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        soc.router(),
        soc.faults.clone(),
    );
    sink.down();
    let gateway = free_port();
    let webhook = format!(
        "  webhook/soc:\n    url: {}/hook\n    retry_on_failure: {{ initial_interval: 100ms, max_interval: 500ms }}\n",
        sink.url()
    );
    let yaml = config(dir, gateway, &webhook, ", webhook/soc");

    // Today: 200 records, evidence written, the webhook's sink down.
    let mut daemon = start(dir, &yaml, gateway, 0);
    send(gateway, 0, 200);
    wait_until("200 entries in the evidence", WAIT, || {
        entries(dir).len() >= 200
    });
    assert!(
        purges(dir, "file/evidence").is_empty(),
        "nothing is old yet"
    );
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // Forty days later: evidence files are pruned (their exporter delivered everything),
    // but the journal waits for the webhook.
    let mut daemon = start(dir, &yaml, gateway, 40);
    wait_until("the evidence purge record", WAIT, || {
        !purges(dir, "file/evidence").is_empty()
    });
    assert!(
        first_segment(dir).exists(),
        "the webhook delivered nothing: the journal keeps its first segment"
    );
    assert!(purges(dir, "journal").is_empty());
    assert!(soc.seqs().is_empty());

    // The sink comes back: once the webhook has delivered, the journal is purged.
    sink.up();
    wait_until("the journal purge record", WAIT, || {
        !purges(dir, "journal").is_empty()
    });
    assert!(!first_segment(dir).exists(), "{}", daemon.log_text());
    let purge = &purges(dir, "journal")[0]["attributes"];
    assert_eq!(purge["first_index"], 0);
    assert_eq!(purge["first_seq"], 0);
    assert_eq!(purge["pipeline"], "logs/audit");
    assert_eq!(purge["reason"], "retention_days=30");
    assert!(purge["last_seq"].as_u64().unwrap() < 200);
    assert!(
        soc.seqs().contains(&purge["last_seq"].as_u64().unwrap()),
        "what was purged had been delivered"
    );
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // Restarted after purging, the daemon recovers the chain head and continues.
    let mut daemon = start(dir, &yaml, gateway, 40);
    send(gateway, 200, 10);
    wait_until("the records sent after the restart", WAIT, || {
        entries(dir)
            .iter()
            .any(|e| e["attributes"]["user_id"] == "u209")
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let entries = entries(dir);
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let start_seq = seqs[0];
    assert!(start_seq > 0, "the evidence was pruned");
    assert_eq!(
        seqs,
        (start_seq..start_seq + seqs.len() as u64).collect::<Vec<_>>(),
        "one chain without gaps after the restart"
    );
    let vkey = vkeys(&dir.join("state")).pop().unwrap();
    let (ok, report) = verify(&evidence_dir(dir), std::slice::from_ref(&vkey), &[]);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!(
            "seq 0..={} pruned by retention (purge record at seq",
            start_seq - 1
        )),
        "{report}"
    );
    let (ok, text) = python_verify(&evidence_dir(dir), &vkey);
    assert!(ok && text.starts_with("OK"), "{text}");
}

#[test]
fn a_legal_hold_keeps_evidence_until_lifted_and_pruned_evidence_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = free_port();
    let yaml = config(dir, gateway, "", "");
    let mut daemon = start(dir, &yaml, gateway, 0);
    send(gateway, 0, 200);
    wait_until("200 entries in the evidence", WAIT, || {
        entries(dir).len() >= 200
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let hold = evidence_dir(dir).join(STREAM_FOLDER).join("LEGAL_HOLD");
    std::fs::write(&hold, "case 2026-17\n").unwrap();

    // Forty days later, the journal is purged (which shows a retention pass ran) but the
    // evidence under hold is not.
    let mut daemon = start(dir, &yaml, gateway, 40);
    wait_until("the journal purge record", WAIT, || {
        !purges(dir, "journal").is_empty()
    });
    assert_eq!(first_seq(dir), Some(0), "held evidence stays whole");
    assert!(purges(dir, "file/evidence").is_empty());

    // The operator lifts the hold, without a reload.
    std::fs::remove_file(&hold).unwrap();
    wait_until("the evidence purge", WAIT, || {
        first_seq(dir).is_some_and(|s| s > 0)
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let purge = &purges(dir, "file/evidence")[0];
    let start_seq = first_seq(dir).unwrap();
    assert_eq!(purge["attributes"]["first_seq"], 0);
    assert_eq!(purge["attributes"]["last_seq"], start_seq - 1);
    assert_eq!(purge["attributes"]["reason"], "retention_days=30");
    let first_kept = &entries(dir)[0];
    assert_eq!(purge["attributes"]["hash"], first_kept["prev"]);

    let vkey = vkeys(&dir.join("state")).pop().unwrap();
    let (ok, report) = verify(&evidence_dir(dir), std::slice::from_ref(&vkey), &[]);
    assert!(ok, "{report}");
    let (ok, text) = python_verify(&evidence_dir(dir), &vkey);
    assert!(ok, "{text}");

    // A gap no purge record declares fails both verifiers.
    let undeclared = dir.join("undeclared");
    copy_dir(&evidence_dir(dir), &undeclared);
    let oldest = files_under(&undeclared)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .unwrap();
    std::fs::remove_file(oldest).unwrap();
    let (ok, report) = verify(&undeclared, std::slice::from_ref(&vkey), &[]);
    assert!(!ok && report.contains("missing"), "{report}");
    let (ok, text) = python_verify(&undeclared, &vkey);
    assert!(
        !ok && text.contains("no purge record declares them"),
        "{text}"
    );

    // A purge record changed to declare another frontier fails both.
    let changed = dir.join("changed");
    copy_dir(&evidence_dir(dir), &changed);
    let node = purge["attributes"]["frontier"][0].as_str().unwrap();
    let holder = files_under(&changed)
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains("vellum.retention.purge") && t.contains(node))
        })
        .unwrap();
    let text = std::fs::read_to_string(&holder).unwrap();
    std::fs::write(&holder, text.replacen(node, &"1".repeat(64), 1)).unwrap();
    let (ok, report) = verify(&changed, std::slice::from_ref(&vkey), &[]);
    assert!(!ok && report.contains("`hash` does not match"), "{report}");
    let (ok, text) = python_verify(&changed, &vkey);
    assert!(!ok, "{text}");
}

/// Copies a directory with every file writable, for tampering.
fn copy_dir(from: &Path, to: &Path) {
    for f in files_under(from) {
        let target = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, std::fs::read(&f).unwrap()).unwrap();
    }
}
