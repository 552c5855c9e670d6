//! Integrity end to end, on what the daemon really writes: HMAC-signed entries with a
//! rotated key ring, signed checkpoints, `vellum verify` and `vellum prove`, and the
//! refusal to fork a chain whose state was lost.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;

const OLD_KEY: &str = "hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const NEW_KEY: &str = "a-new-key-that-is-32-bytes-long!";

fn config(dir: &std::path::Path, ports: Ports, keys: &str) -> String {
    standard_config(dir, ports)
        .replace(
            "processors: [hash_chain]",
            "processors: [hash_chain, hmac_sign]",
        )
        .replace(
            "exporters:\n  file/evidence",
            &format!("  hmac_sign:\n    keys: {keys}\nexporters:\n  file/evidence"),
        )
}

fn send(port: u16, from: usize, n: usize) {
    let body: String = (from..from + n)
        .map(|i| format!("{{\"action\":\"login.failed\",\"user_id\":\"u{i}\"}}\n"))
        .collect();
    let status = ureq::post(&format!("http://127.0.0.1:{port}/v1/events"))
        .send(body.as_bytes())
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

fn vellum(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn signed_evidence_verifies_across_a_key_rotation_and_proofs_check() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.gateway))];
    let evidence = tmp.path().join("evidence");

    // First run signs with k2025; the second puts k2026 first in the ring.
    let old_ring = format!("[{{ id: k2025, key: \"{OLD_KEY}\" }}]");
    let mut daemon = Daemon::start(tmp.path(), &config(tmp.path(), ports, &old_ring), &ready);
    send(ports.gateway, 0, 150);
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let rotated =
        format!("[{{ id: k2026, key: \"{NEW_KEY}\" }}, {{ id: k2025, key: \"{OLD_KEY}\" }}]");
    let mut daemon = Daemon::start(tmp.path(), &config(tmp.path(), ports, &rotated), &ready);
    send(ports.gateway, 150, 100);
    wait_until("250 entries", Duration::from_secs(20), || {
        evidence_entries(&evidence).len() >= 250
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let entries = evidence_entries(&evidence);
    assert_eq!(entries.len(), 250);
    assert!(entries[..150].iter().all(|e| e["kid"] == "k2025"));
    assert!(entries[150..].iter().all(|e| e["kid"] == "k2026"));
    let vkey = vkeys(&tmp.path().join("state"))
        .pop()
        .expect("a generated vkey");
    let dir = evidence.to_str().unwrap();

    let (ok, report) = verify(
        &evidence,
        &[vkey.clone()],
        &[format!("k2025={OLD_KEY}"), format!("k2026={NEW_KEY}")],
    );
    assert!(ok, "{report}");
    assert!(
        report.contains("250 entries") && report.contains(": OK"),
        "{report}"
    );
    let (ok, report) = verify(&evidence, &[vkey.clone()], &[format!("k2026={NEW_KEY}")]);
    assert!(
        !ok,
        "a ring without the old key cannot vouch for the old entries:\n{report}"
    );
    let (ok, report) = verify(
        &evidence,
        &[vkey.clone()],
        &[
            format!("k2025={OLD_KEY}"),
            "k2026=hex:00000000000000000000000000000000000000000000000000000000000000ff".into(),
        ],
    );
    assert!(
        !ok && report.contains("seq 150"),
        "a wrong key is caught at the first entry it signed:\n{report}"
    );

    // Checkpoints: every 100 entries and at each shutdown.
    let notes: Vec<_> = files_under(&evidence)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "note"))
        .collect();
    let sizes: Vec<u64> = notes
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, vec![100, 150, 250]);

    // Proofs that anyone can check with RFC 9162's algorithms.
    let (code, proof) = vellum(&[
        "prove",
        "inclusion",
        dir,
        "--stream",
        "logs/audit",
        "--seq",
        "42",
        "--size",
        "150",
    ]);
    assert_eq!(code, 0, "{proof}");
    let proof_path = tmp.path().join("inclusion.txt");
    std::fs::write(&proof_path, &proof).unwrap();
    assert_eq!(
        vellum(&["prove", "check", proof_path.to_str().unwrap()]).0,
        0
    );
    let checkpoint = std::fs::read_to_string(&notes[1]).unwrap();
    let root_b64 = checkpoint.lines().nth(2).unwrap();
    let root_hex = proof.lines().find_map(|l| l.strip_prefix("root ")).unwrap();
    use base64::Engine;
    assert_eq!(
        hex::encode(
            base64::engine::general_purpose::STANDARD
                .decode(root_b64)
                .unwrap()
        ),
        root_hex,
        "the proof's root is the signed checkpoint's"
    );
    let tampered = proof.replacen(root_hex, &"0".repeat(64), 1);
    std::fs::write(&proof_path, tampered).unwrap();
    assert_eq!(
        vellum(&["prove", "check", proof_path.to_str().unwrap()]).0,
        1
    );
    let (code, proof) = vellum(&[
        "prove",
        "consistency",
        dir,
        "--stream",
        "logs/audit",
        "--old",
        "100",
        "--new",
        "250",
    ]);
    assert_eq!(code, 0, "{proof}");
    std::fs::write(&proof_path, &proof).unwrap();
    assert_eq!(
        vellum(&["prove", "check", proof_path.to_str().unwrap()]).0,
        0
    );

    // An auditor's own script, in another language, with public libraries only.
    let python = python().expect("the test venv: run scripts/test.sh");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/verify_evidence.py");
    let keys = [
        format!("k2025={}", &OLD_KEY[4..]),
        format!("k2026={}", hex::encode(NEW_KEY)),
    ];
    let run = |dir: &std::path::Path| {
        let out = Command::new(&python)
            .arg(script)
            .arg(dir)
            .arg(&vkey)
            .args(&keys)
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
    };
    let (ok, text) = run(&evidence);
    assert!(ok && text.starts_with("OK: 250 entries"), "{text}");
    let copy = tmp.path().join("tampered");
    std::fs::create_dir_all(&copy).unwrap();
    for f in files_under(&evidence) {
        let to = copy.join(f.strip_prefix(&evidence).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, std::fs::read(&f).unwrap()).unwrap();
    }
    let first = files_under(&copy)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&first)
        .unwrap()
        .replacen("\"u7\"", "\"u8\"", 1);
    std::fs::write(&first, text).unwrap();
    let (ok, text) = run(&copy);
    assert!(!ok && text.contains("seq 7"), "{text}");
}

#[test]
fn a_chain_whose_state_is_lost_while_evidence_exists_is_not_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.gateway))];
    let yaml = standard_config(tmp.path(), ports);
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    send(ports.gateway, 0, 20);
    assert_eq!(daemon.terminate().code(), Some(0));

    // The journal is lost; the evidence is still there.
    std::fs::remove_dir_all(tmp.path().join("state/pipelines")).unwrap();
    let config = tmp.path().join("vellum.yaml");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("chain state is gone but evidence of this stream exists"),
        "{text}"
    );
    assert!(
        text.contains("stream:"),
        "it says what the operator can do: {text}"
    );
    assert_eq!(
        evidence_entries(&tmp.path().join("evidence")).len(),
        20,
        "nothing was touched"
    );

    // The operator starts a new chain explicitly: a new stream name.
    let renamed = yaml.replace(
        "origin: test.vellum",
        "origin: test.vellum\n    stream: logs/audit-2",
    );
    std::fs::write(&config, renamed).unwrap();
    let mut daemon = Daemon::start_with(tmp.path(), &config, &ready);
    send(ports.gateway, 20, 5);
    let evidence = tmp.path().join("evidence");
    wait_until("25 entries", Duration::from_secs(20), || {
        evidence_entries(&evidence).len() >= 25
    });
    assert_eq!(daemon.terminate().code(), Some(0));
    let (ok, report) = verify(&evidence, &vkeys(&tmp.path().join("state")), &[]);
    assert!(ok, "both chains verify, each from its own seq 0:\n{report}");
    assert!(report.contains("2 stream(s)"), "{report}");
}

#[test]
fn a_chain_head_that_disagrees_with_the_journal_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.gateway))];
    let mut daemon = Daemon::start(tmp.path(), &standard_config(tmp.path(), ports), &ready);
    send(ports.gateway, 0, 250);
    assert_eq!(daemon.terminate().code(), Some(0));
    let hint = tmp.path().join("state/pipelines/logs%2Faudit/chain.json");
    let text = std::fs::read_to_string(&hint).unwrap();
    let mut head: serde_json::Value = serde_json::from_str(&text).unwrap();
    head["size"] = serde_json::json!(head["size"].as_u64().unwrap() + 1);
    std::fs::write(&hint, head.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(tmp.path().join("vellum.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("does not match its entries") && text.contains("Nothing was changed"),
        "{text}"
    );
}
