//! Hostile-input cases: exporters. A disk that fails an fsync under the `file` exporter,
//! and sinks that revoke the exporter's credentials for a while: each time every
//! acknowledged record still arrives exactly where it belongs, nothing is dead-lettered
//! that is not malformed, and the daemon says what is wrong while it is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Starts `vellum run` on `yaml` with extra environment variables, and waits until the
/// gateway port accepts connections.
fn start_with_env(dir: &Path, yaml: &str, gateway: u16, env: &[(&str, &str)]) -> Daemon {
    let config = dir.join("vellum.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let log = dir.join(format!("vellum-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).expect("create log file");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn vellum");
    let mut daemon = Daemon { child, config, log };
    let addr = SocketAddr::from(([127, 0, 0, 1], gateway));
    wait_until("the gateway to listen", WAIT, || {
        assert!(daemon.alive(), "vellum exited:\n{}", daemon.log_text());
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    daemon
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

/// Builds the fsync-failing shim (tests/hostile/fail_fsync.c) with the system's `cc`.
fn fail_fsync_shim(out: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/fail_fsync.c");
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
    format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events }}
processors:
  hash_chain:
    origin: edge.vellum
    checkpoint: {{ every_records: 50, every: 1s }}
exporters:
  file/evidence:
    directory: {evidence}
    batch: {{ max_records: 16, max_age: 0s }}
    retry_on_failure: {{ initial_interval: 20ms, max_interval: 200ms }}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [file/evidence]
"#,
        evidence = dir.join("evidence").display(),
        state = dir.join("state").display(),
    )
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
