//! Hostile-input cases: the journal and the chain. A record too large for the journal,
//! a reload after it, a full disk and a damaged journal never cost an acknowledged
//! record and never fork the chain.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::config::quoted;
use crate::common::*;

/// Posts `body` to a receiver URL; returns the status and the answer's text.
pub fn post(url: &str, body: &[u8]) -> (u16, String) {
    http_post(url, None, body)
}

pub fn sighup(daemon: &Daemon) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(daemon.child.id() as i32, libc::SIGHUP);
    }
}

/// Checks what a stopped daemon left as evidence: one chain that verifies, with every
/// `seq` once, holding each of `acked` user ids exactly once and nothing of `refused`.
pub fn assert_one_chain_with(dir: &Path, acked: &[String], refused: &[&str]) {
    let entries = evidence_entries(&dir.join("evidence"));
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seqs.len(),
        "two entries share a seq: {seqs:?}"
    );
    assert_eq!(
        unique.into_iter().collect::<Vec<_>>(),
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "seq must run from 0 without gaps"
    );
    let users: Vec<String> = entries
        .iter()
        .filter_map(|e| e["attributes"]["user_id"].as_str().map(String::from))
        .collect();
    for id in acked {
        let n = users.iter().filter(|u| *u == id).count();
        assert_eq!(n, 1, "acknowledged user {id} is in the evidence {n} times");
    }
    for marker in refused {
        assert!(
            !entries.iter().any(|e| e.to_string().contains(marker)),
            "a refused record reached the evidence"
        );
    }
    let (ok, out) = verify(&dir.join("evidence"), &vkeys(&dir.join("state")), &[]);
    assert!(ok, "vellum verify failed:\n{out}");
}

fn logins(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("u{i}")).collect()
}

#[test]
fn a_record_too_large_for_the_journal_is_refused_alone_and_a_reload_after_it_does_not_fork() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let yaml = PipelineConfig::standard(dir.path(), ports)
        .storage("max_record_size: 64KiB")
        .yaml();
    let daemon = Daemon::start(
        dir.path(),
        &yaml,
        &[SocketAddr::from(([127, 0, 0, 1], ports.gateway))],
    );
    let url = format!("http://127.0.0.1:{}/v1/events", ports.gateway);

    send_logins(ports.gateway, 0, 10);
    // A small event with a resource far over the record limit (64 KiB). The receiver
    // refuses it, counting the resource; were it to pass, the journal would refuse it
    // alone (the writer's own property test covers that path).
    let marker = "oversized-marker";
    let big = format!(
        "{{\"action\":\"upload\",\"note\":\"{marker}\",\"resource\":{{\"blob\":\"{}\"}}}}",
        "a".repeat(600 * 1024)
    );
    let (status, answer) = post(&url, big.as_bytes());
    assert_eq!(status, 413, "answer: {answer}");
    assert!(answer.contains("bytes"), "the refusal says why: {answer}");

    send_logins(ports.gateway, 10, 10);
    sighup(&daemon);
    wait_until("the reload", Duration::from_secs(20), || {
        daemon.log_text().contains("configuration reloaded")
    });
    send_logins(ports.gateway, 20, 10);

    let mut daemon = daemon;
    assert!(daemon.terminate().success());
    assert_one_chain_with(dir.path(), &logins(0, 30), &[marker]);
}

use std::net::SocketAddr;

/// A small tmpfs mounted at `at`, unmounted when dropped; `None` where this machine
/// does not let the tests mount one (not root, or no mount namespace rights).
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    /// Writes a file until the file system is full; returns its path.
    pub fn fill(&self) -> std::path::PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        // The last partial block may still fit.
        while std::io::Write::write_all(&mut f, &block[..512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// `config` with the telemetry server on `port`.
fn telemetry(config: PipelineConfig, port: u16) -> String {
    config
        .service(&format!(
            "telemetry:\n  metrics:\n    address: 127.0.0.1:{port}"
        ))
        .yaml()
}

fn get(url: &str) -> (u16, String) {
    http_get(url)
}

fn logins_body(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"action\":\"login.failed\",\"user_id\":\"u{i}\"}}\n"))
        .collect()
}

#[test]
fn a_full_disk_refuses_with_503_says_why_once_and_ingestion_resumes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("state"), "4m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk case was not tried"
        );
        return;
    };
    let ports = Ports::new();
    let metrics = free_port();
    let yaml = telemetry(PipelineConfig::standard(dir.path(), ports), metrics);
    let daemon = Daemon::start(
        dir.path(),
        &yaml,
        &[
            SocketAddr::from(([127, 0, 0, 1], ports.gateway)),
            SocketAddr::from(([127, 0, 0, 1], metrics)),
        ],
    );
    let url = format!("http://127.0.0.1:{}/v1/events", ports.gateway);
    let readyz = format!("http://127.0.0.1:{metrics}/readyz");
    send_logins(ports.gateway, 0, 10);

    let filler = disk.fill();
    let mut refused = 0;
    for attempt in 0..5 {
        let (status, answer) = post(&url, logins_body(1000 + attempt * 10, 10).as_bytes());
        assert_eq!(status, 503, "a full disk is a retryable refusal: {answer}");
        assert!(answer.contains("no space left"), "{answer}");
        refused += 1;
    }
    let (status, body) = get(&readyz);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no space left"), "/readyz says why: {body}");
    assert_eq!(refused, 5);

    std::fs::remove_file(filler).unwrap();
    let freed = std::time::Instant::now();
    let mut next = 10;
    wait_until("ingestion to resume", Duration::from_secs(30), || {
        let (status, _) = post(&url, logins_body(next, 10).as_bytes());
        if status == 200 {
            next += 10;
        }
        status == 200
    });
    let resumed = freed.elapsed();
    eprintln!("ingestion resumed {resumed:?} after space returned");
    wait_until("/readyz to be ready again", Duration::from_secs(30), || {
        get(&readyz).0 == 200
    });
    send_logins(ports.gateway, next, 10);
    next += 10;

    let log = daemon.log_text();
    assert_eq!(
        log.matches("No space left").count(),
        1,
        "the full disk is logged once, not per request:\n{log}"
    );
    let mut daemon = daemon;
    assert!(daemon.terminate().success());
    let refused: Vec<String> = (1000..1050).map(|i| format!("\"u{i}\"")).collect();
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    assert_one_chain_with(dir.path(), &logins(0, next), &refused);
    drop(disk);
}

/// The configuration of the damaged-journal case: checkpoints only at shutdown, and the
/// one exporter `id` with `settings`.
fn journal_loss_config(dir: &Path, gateway: u16, id: &str, settings: String) -> String {
    PipelineConfig::new(dir)
        .gateway(gateway)
        .processor(
            "hash_chain",
            "{ origin: test.vellum, checkpoint: { every_records: 100000, every: 1h } }",
        )
        .exporter(id, settings)
        .yaml()
}

/// Flips a byte in the payload of journal record `index` (segments are
/// `[u32 crc][u32 len][u64 index][payload]` frames).
fn damage_journal_record(journal: &Path, index: u64) {
    for path in files_under(journal) {
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let mut at = 0;
        while at + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            let i = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
            if i == index {
                bytes[at + 16 + len / 2] ^= 0x20;
                std::fs::write(&path, bytes).unwrap();
                return;
            }
            at += 16 + len;
        }
    }
    panic!("journal record {index} not found");
}

#[test]
fn journal_damage_after_the_newest_checkpoint_is_declared_in_the_chain_and_verify_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = free_port();
    let ready = [SocketAddr::from(([127, 0, 0, 1], gateway))];
    // First, a sink that is down: the journal keeps everything, nothing is exported.
    let down = format!("{{ url: http://127.0.0.1:{}/in }}", free_port());
    let yaml = journal_loss_config(dir.path(), gateway, "webhook/down", down);
    let mut daemon = Daemon::start(dir.path(), &yaml, &ready);
    for batch in 0..4 {
        send_logins(gateway, batch * 5, 5);
    }
    daemon.kill9();
    damage_journal_record(&dir.path().join("state/pipelines/logs%2Faudit/journal"), 7);

    let file = format!(
        "{{ directory: {} }}",
        quoted(dir.path().join("evidence").to_string_lossy())
    );
    let yaml = journal_loss_config(dir.path(), gateway, "file/evidence", file);
    let mut daemon = Daemon::start(dir.path(), &yaml, &ready);
    send_logins(gateway, 20, 5);
    assert!(daemon.terminate().success());
    let log = daemon.log_text();
    assert!(log.contains("declaring the loss"), "{log}");

    let entries = evidence_entries(&dir.path().join("evidence"));
    let losses: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event_type"] == "vellum.journal_loss")
        .collect();
    assert_eq!(losses.len(), 1, "one loss, declared once");
    let attributes = &losses[0]["attributes"];
    assert_eq!(
        (
            attributes["first_seq"].as_u64(),
            attributes["last_seq"].as_u64()
        ),
        (Some(7), Some(7))
    );
    assert!(!entries.iter().any(|e| e["seq"] == 7), "seq 7 was lost");
    let users: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["attributes"]["user_id"].as_str())
        .collect();
    let expected: Vec<String> = (0..25)
        .filter(|i| *i != 7)
        .map(|i| format!("u{i}"))
        .collect();
    assert_eq!(
        users, expected,
        "every other record is there once, in order"
    );

    let vkeys = vkeys(&dir.path().join("state"));
    let (ok, out) = verify(&dir.path().join("evidence"), &vkeys, &[]);
    assert!(!ok, "a declared loss fails unless accepted:\n{out}");
    assert!(out.contains("declared loss: "), "{out}");
    assert!(out.contains("seq 7 is missing"), "{out}");
    assert!(
        !out.contains("does not match"),
        "a loss is not reported as tampering:\n{out}"
    );
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("verify")
        .arg(dir.path().join("evidence"))
        .arg("--accept-declared-loss");
    let (ok, out) = verify_with(cmd, &vkeys, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("1 declared loss(es), accepted"), "{out}");
    assert!(
        out.contains("(1 confirmed)"),
        "the shutdown checkpoint is checked:\n{out}"
    );

    // An auditor's own verifier, with public libraries only, agrees.
    let python = python().expect("the test venv: run scripts/test.sh");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/verify_evidence.py");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(&python)
            .arg(script)
            .arg(dir.path().join("evidence"))
            .arg(&vkeys[0])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, out) = run(&[]);
    assert!(!ok && out.contains("declared lost"), "{out}");
    let (ok, out) = run(&["--accept-declared-loss"]);
    assert!(ok, "{out}");
}

#[test]
fn a_failed_journal_fsync_refuses_the_batch_and_the_writer_recovers_from_disk_by_itself() {
    use crate::exporters::{fail_fsync_shim, start_with_env};
    const FAILURES: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let shim = fail_fsync_shim(dir.path());
    let injected = dir.path().join("fsync-failures.log");
    let ports = Ports::new();
    let daemon = start_with_env(
        dir.path(),
        &PipelineConfig::standard(dir.path(), ports).yaml(),
        ports.gateway,
        &[
            ("LD_PRELOAD", shim.to_str().unwrap()),
            ("VELLUM_FAIL_FSYNC_MATCH", ".seg"),
            ("VELLUM_FAIL_FSYNC_COUNT", &FAILURES.to_string()),
            ("VELLUM_FAIL_FSYNC_LOG", injected.to_str().unwrap()),
        ],
    );
    let url = format!("http://127.0.0.1:{}/v1/events", ports.gateway);
    // A gateway that resends what was not acknowledged.
    let mut refusals = 0;
    for from in (0..60).step_by(10) {
        wait_until(
            "the batch to be acknowledged",
            Duration::from_secs(30),
            || {
                let (status, answer) = post(&url, logins_body(from, 10).as_bytes());
                if status != 200 {
                    assert_eq!(status, 503, "{answer}");
                    refusals += 1;
                }
                status == 200
            },
        );
    }
    let failed = std::fs::read_to_string(&injected).unwrap_or_default();
    assert_eq!(failed.lines().count(), FAILURES, "{failed}");
    assert!(
        refusals >= 1,
        "a batch whose fsync failed is not acknowledged"
    );
    let mut daemon = daemon;
    assert!(daemon.terminate().success());
    assert!(
        daemon.log_text().contains("the journal reopened"),
        "{}",
        daemon.log_text()
    );
    // A refused batch may have reached the disk before its fsync failed; resent, it is
    // then stored twice, never lost. Every acknowledged record is there.
    let entries = evidence_entries(&dir.path().join("evidence"));
    for id in logins(0, 60) {
        assert!(
            entries
                .iter()
                .any(|e| e["attributes"]["user_id"] == id.as_str()),
            "acknowledged {id} is missing"
        );
    }
    let (ok, out) = verify(
        &dir.path().join("evidence"),
        &vkeys(&dir.path().join("state")),
        &[],
    );
    assert!(ok, "{out}");
}
