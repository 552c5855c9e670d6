//! Hostile-input cases: exporters. A disk that fails an fsync under the `file` exporter,
//! and sinks that revoke the exporter's credentials for a while: each time every
//! acknowledged record still arrives exactly where it belongs, nothing is dead-lettered
//! that is not malformed, and the daemon says what is wrong while it is wrong.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::common::config::quoted;
use crate::common::peers::{http_faults, splunk_hec, webhook};
use crate::common::*;
use http_faults::{Fault, Server};

const WAIT: Duration = Duration::from_secs(60);

/// Starts `vellum run` on `yaml` with extra environment variables, and waits until the
/// gateway port accepts connections.
pub fn start_with_env(dir: &Path, yaml: &str, gateway: u16, env: &[(&str, &str)]) -> Daemon {
    let config = dir.join("vellum.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let ready = [SocketAddr::from(([127, 0, 0, 1], gateway))];
    Daemon::launch(dir, &config, &ready, &[], env)
}

/// Posts records `from..from + n` to the gateway as NDJSON and expects them acknowledged.
fn send(port: u16, from: u64, n: u64) {
    let body: String = (from..from + n)
        .map(|i| format!("{{\"action\":\"model.invoke\",\"user_id\":\"u{i}\",\"n\":{i}}}\n"))
        .collect();
    let status = ureq::post(&format!("http://127.0.0.1:{port}/v1/events"))
        .send(body.as_bytes())
        .expect("the gateway takes the records")
        .status();
    assert_eq!(status.as_u16(), 200, "records {from}.. acknowledged");
}

/// The `seq` of every line in the evidence, in file order (duplicates kept).
fn evidence_seqs(dir: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    for path in files_under(&dir.join("evidence")) {
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            seqs.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64()),
            );
        }
    }
    seqs
}

/// Builds the fsync-failing shim (tests/common/peers/fail_fsync.c) with the system's `cc`.
pub fn fail_fsync_shim(out: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/peers/fail_fsync.c");
    let lib = out.join("fail_fsync.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&source)
        .output()
        .expect("run cc to build the fsync shim");
    assert!(
        built.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    lib
}

fn file_only_config(dir: &Path, gateway: u16) -> String {
    PipelineConfig::new(dir)
        .gateway(gateway)
        .processor(
            "hash_chain",
            "{ origin: edge.vellum, checkpoint: { every_records: 50, every: 1s } }",
        )
        .exporter(
            "file/evidence",
            format!(
                "directory: {}\nbatch: {{ max_records: 16, max_age: 0s }}\nretry_on_failure: {{ initial_interval: 20ms, max_interval: 200ms }}",
                quoted(dir.join("evidence").to_string_lossy())
            ),
        )
        .yaml()
}

#[test]
fn a_failed_fsync_under_the_file_exporter_is_written_again_without_a_gap_or_a_duplicate() {
    const RECORDS: u64 = 200;
    const FAILURES: u64 = 4;
    let tmp = tempfile::tempdir().unwrap();
    let shim = fail_fsync_shim(tmp.path());
    let injected = tmp.path().join("fsync-failures.log");
    let gateway = free_port();
    let mut daemon = start_with_env(
        tmp.path(),
        &file_only_config(tmp.path(), gateway),
        gateway,
        &[
            ("LD_PRELOAD", shim.to_str().unwrap()),
            ("VELLUM_FAIL_FSYNC_MATCH", ".jsonl"),
            ("VELLUM_FAIL_FSYNC_COUNT", &FAILURES.to_string()),
            ("VELLUM_FAIL_FSYNC_LOG", injected.to_str().unwrap()),
        ],
    );
    for from in (0..RECORDS).step_by(20) {
        send(gateway, from, 20);
    }
    wait_until("every acknowledged record in the evidence", WAIT, || {
        evidence_seqs(tmp.path()).len() as u64 >= RECORDS
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let failed = std::fs::read_to_string(&injected).unwrap_or_default();
    assert_eq!(
        failed.lines().count() as u64,
        FAILURES,
        "the shim failed that many fsyncs of evidence files:\n{failed}"
    );
    assert_eq!(
        evidence_seqs(tmp.path()),
        (0..RECORDS).collect::<Vec<_>>(),
        "every record exactly once, in order"
    );
    let (ok, report) = verify(
        &tmp.path().join("evidence"),
        &vkeys(&tmp.path().join("state")),
        &[],
    );
    assert!(ok, "vellum verify:\n{report}");
    assert!(
        daemon.log_text().contains("cut back to what was synced"),
        "the repair is logged:\n{}",
        daemon.log_text()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the sinks")
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The gateway, the hash chain, the file exporter and the exporter `id` with
/// `settings`, with the telemetry server on `metrics`.
fn sink_config(dir: &Path, gateway: u16, metrics: u16, id: &str, settings: String) -> String {
    PipelineConfig::new(dir)
        .gateway(gateway)
        .processor(
            "hash_chain",
            "{ origin: edge.vellum, checkpoint: { every_records: 100, every: 1s } }",
        )
        .file("file/evidence", &dir.join("evidence"))
        .exporter(id, settings)
        .service(&format!(
            "telemetry:\n  metrics: {{ address: 127.0.0.1:{metrics} }}"
        ))
        .yaml()
}

/// `GET` on the telemetry server: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    http_get(&format!("http://127.0.0.1:{port}{path}"))
}

/// The value of `vellum_exporter_failing_seconds` for `exporter`, if it is published.
fn failing_seconds(metrics: u16, exporter: &str) -> Option<f64> {
    let (_, text) = get(metrics, "/metrics");
    let label = format!("exporter=\"{exporter}\"");
    text.lines()
        .filter(|l| l.starts_with("vellum_exporter_failing_seconds{") && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn dead_letter_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("state"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("dead-letter"))
        .collect()
}

/// Runs `vellum dead-letter <args> --config <dir>/vellum.yaml`: (success, stdout, stderr).
fn dead_letter_cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("dead-letter")
        .args(args)
        .arg("--config")
        .arg(dir.join("vellum.yaml"))
        .output()
        .expect("run vellum dead-letter");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEC_TOKEN: &str = "5b0c9a4e-1d2f-4e3a-9b8c-7d6e5f4a3b2c";

#[test]
fn a_revoked_splunk_token_holds_every_record_until_it_is_restored_and_dead_letters_nothing() {
    const RECORDS: u64 = 150;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let hec = Arc::new(splunk_hec::Hec::new(HEC_TOKEN, false));
    hec.revoked.store(true, Ordering::SeqCst);
    let sink = Server::start(rt.handle(), loopback(), hec.router(), hec.faults.clone());
    let (gateway, metrics) = (free_port(), free_port());
    let exporter = format!(
        r#"
        endpoint: {url}
        token: {HEC_TOKEN}
        compression: none
        retry_on_failure: {{ initial_interval: 50ms, max_interval: 400ms }}
        "#,
        url = sink.url()
    );
    let yaml = sink_config(tmp.path(), gateway, metrics, "splunk_hec/siem", exporter);
    let mut daemon = start_with_env(tmp.path(), &yaml, gateway, &[]);
    for from in (0..RECORDS).step_by(50) {
        send(gateway, from, 50);
    }

    // Revoked: not ready at once (not after exporter_stuck_after, 5 minutes by default),
    // naming the exporter, and the failing gauge climbs.
    wait_until("/readyz to name the refused exporter", WAIT, || {
        let (status, body) = get(metrics, "/readyz");
        status == 503 && body.contains("splunk_hec/siem") && body.contains("credentials")
    });
    wait_until("the failing gauge above a second", WAIT, || {
        failing_seconds(metrics, "splunk_hec/siem").is_some_and(|s| s >= 1.0)
    });
    let before = failing_seconds(metrics, "splunk_hec/siem").unwrap_or(0.0);
    wait_until("the failing gauge to rise", WAIT, || {
        failing_seconds(metrics, "splunk_hec/siem").is_some_and(|s| s > before)
    });
    let refused = hec.refused.lock().unwrap().clone();
    assert!(refused.len() >= 2, "retried while revoked: {refused:?}");
    assert!(refused.iter().all(|c| *c == 1), "{refused:?}");
    assert!(hec.events.lock().unwrap().is_empty());
    assert!(
        dead_letter_files(tmp.path()).is_empty(),
        "a revoked token is not the records' fault"
    );

    // Restored: everything arrives, and the daemon is ready again.
    hec.revoked.store(false, Ordering::SeqCst);
    wait_until("every record at Splunk", WAIT, || {
        hec.seqs().iter().collect::<HashSet<_>>().len() as u64 == RECORDS
    });
    wait_until("/readyz ready again", WAIT, || {
        get(metrics, "/readyz").0 == 200
    });
    assert_eq!(failing_seconds(metrics, "splunk_hec/siem"), Some(0.0));
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let mut seen = HashSet::new();
    let firsts: Vec<u64> = hec.seqs().into_iter().filter(|s| seen.insert(*s)).collect();
    assert_eq!(
        firsts,
        (0..RECORDS).collect::<Vec<_>>(),
        "first arrivals in order"
    );
    assert!(dead_letter_files(tmp.path()).is_empty());
    let log = daemon.log_text();
    assert!(log.contains("refuses the exporter's credentials"), "{log}");
    assert!(!log.contains(HEC_TOKEN), "the token never shows in the log");
}

#[test]
fn dead_letters_are_listed_and_replayed_once_into_their_exporter() {
    const RECORDS: u64 = 40;
    const REFUSED: usize = 3;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let soc = Arc::new(webhook::Receiver::new(
        "/hooks/vellum",
        webhook::Auth::Bearer("soc-token-0123".into()),
    ));
    // The sink finds the first batches malformed: they are dead-lettered.
    for _ in 0..REFUSED {
        soc.faults
            .push(Fault::status(422, "unprocessable: schema v2 expected"));
    }
    let sink = Server::start(rt.handle(), loopback(), soc.router(), soc.faults.clone());
    let (gateway, metrics) = (free_port(), free_port());
    let exporter = format!(
        r#"
        url: {url}/hooks/vellum
        auth: {{ type: bearer, token: soc-token-0123 }}
        batch: {{ max_records: 10, max_age: 0s }}
        "#,
        url = sink.url()
    );
    let yaml = sink_config(tmp.path(), gateway, metrics, "webhook/soc", exporter);
    let mut daemon = start_with_env(tmp.path(), &yaml, gateway, &[]);
    for from in (0..RECORDS).step_by(10) {
        send(gateway, from, 10);
    }
    let dead_seqs = || -> Vec<u64> {
        dead_letter_files(tmp.path())
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_until("every record delivered or dead-lettered", WAIT, || {
        soc.seqs().len() + dead_seqs().len() == RECORDS as usize
    });
    assert_eq!(soc.faults.pending(), 0);
    assert_eq!(dead_letter_files(tmp.path()).len(), REFUSED);

    let (ok, listed, err) = dead_letter_cli(tmp.path(), &["list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), REFUSED, "{listed}");
    for line in &lines {
        assert!(
            line.starts_with("logs/audit\twebhook/soc\t")
                && line.contains("\tpending\t")
                && line.contains("422"),
            "{line}"
        );
    }

    // Replayed while the daemon runs: the sink takes them now, once.
    let (ok, out, err) = dead_letter_cli(tmp.path(), &["replay"]);
    assert!(ok, "{out}{err}");
    let mut seqs = soc.seqs();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..RECORDS).collect::<Vec<_>>(), "each record once");
    assert!(
        soc.refused.lock().unwrap().is_empty(),
        "sent with the token"
    );

    // A second replay finds nothing; naming a replayed file is refused.
    let (ok, out, err) = dead_letter_cli(tmp.path(), &["replay"]);
    assert!(ok && err.contains("0 of 0"), "{out}{err}");
    let replayed = dead_letter_files(tmp.path());
    assert!(
        replayed
            .iter()
            .all(|p| p.to_string_lossy().contains("/replayed/"))
    );
    let again = replayed[0].to_str().unwrap();
    let (ok, out, err) = dead_letter_cli(tmp.path(), &["replay", again]);
    assert!(!ok && err.contains("replayed already"), "{out}{err}");
    let (ok, listed, _) = dead_letter_cli(tmp.path(), &["list", "--replayed"]);
    assert!(ok);
    assert_eq!(listed.matches("\treplayed\t").count(), REFUSED, "{listed}");
    assert_eq!(soc.seqs().len() as u64, RECORDS, "nothing sent twice");
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
}
