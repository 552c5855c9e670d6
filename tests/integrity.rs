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

/// The gateway into the chain (a checkpoint every `checkpoint_every` records), then
/// `hmac_sign` with the ring `keys`, into `file/evidence`.
fn config(dir: &std::path::Path, ports: Ports, keys: &str, checkpoint_every: u64) -> String {
    PipelineConfig::new(dir)
        .gateway(ports.gateway)
        .chain_every(checkpoint_every)
        .hmac(keys)
        .file("file/evidence", &dir.join("evidence"))
        .yaml()
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
    let mut daemon = Daemon::start(
        tmp.path(),
        &config(tmp.path(), ports, &old_ring, 100),
        &ready,
    );
    send_logins(ports.gateway, 0, 150);
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let rotated =
        format!("[{{ id: k2026, key: \"{NEW_KEY}\" }}, {{ id: k2025, key: \"{OLD_KEY}\" }}]");
    let mut daemon = Daemon::start(
        tmp.path(),
        &config(tmp.path(), ports, &rotated, 100),
        &ready,
    );
    send_logins(ports.gateway, 150, 100);
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
        std::slice::from_ref(&vkey),
        &[format!("k2025={OLD_KEY}"), format!("k2026={NEW_KEY}")],
    );
    assert!(ok, "{report}");
    assert!(
        report.contains("250 entries") && report.contains(": OK"),
        "{report}"
    );
    let (ok, report) = verify(
        &evidence,
        std::slice::from_ref(&vkey),
        &[format!("k2026={NEW_KEY}")],
    );
    assert!(
        !ok,
        "a ring without the old key cannot vouch for the old entries:\n{report}"
    );
    let (ok, report) = verify(
        &evidence,
        std::slice::from_ref(&vkey),
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
    let standard = PipelineConfig::standard(tmp.path(), ports);
    let mut daemon = Daemon::start(tmp.path(), &standard.yaml(), &ready);
    send_logins(ports.gateway, 0, 20);
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
    let renamed = standard.edit("hash_chain", |s| {
        s.replace(
            "origin: test.vellum",
            "origin: test.vellum\nstream: logs/audit-2",
        )
    });
    std::fs::write(&config, renamed.yaml()).unwrap();
    let mut daemon = Daemon::start_with(tmp.path(), &config, &ready);
    send_logins(ports.gateway, 20, 5);
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
    let mut daemon = Daemon::start(
        tmp.path(),
        &PipelineConfig::standard(tmp.path(), ports).yaml(),
        &ready,
    );
    send_logins(ports.gateway, 0, 250);
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

/// Copies an evidence directory with every file writable, for tampering.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for f in files_under(from) {
        let target = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, std::fs::read(&f).unwrap()).unwrap();
    }
}

#[test]
fn every_tampering_of_real_output_is_caught_and_located() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.gateway))];
    let ring = format!("[{{ id: k2025, key: \"{OLD_KEY}\" }}]");
    let yaml = config(tmp.path(), ports, &ring, 40);
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    send_logins(ports.gateway, 0, 100);
    assert_eq!(daemon.terminate().code(), Some(0));
    let evidence = tmp.path().join("evidence");
    let vkey = vkeys(&tmp.path().join("state")).pop().unwrap();
    let hmac = [format!("k2025={OLD_KEY}")];
    let (ok, report) = verify(&evidence, std::slice::from_ref(&vkey), &hmac);
    assert!(ok, "untouched evidence passes:\n{report}");

    let entry_file = |dir: &std::path::Path| {
        files_under(dir)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .unwrap()
    };
    let lines_of = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let write_lines = |p: &std::path::Path, lines: &[String]| {
        std::fs::write(
            p,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap()
    };
    let (_, other_vkey) = {
        let out = Command::new(BIN)
            .args(["keygen", "--name", "test.vellum/logs/audit"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut l = text.lines();
        (l.next().unwrap().to_string(), l.next().unwrap().to_string())
    };

    type Tamper = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "one byte in a record",
            Box::new(move |d| {
                let f = entry_file(d);
                let mut l = lines_of(&f);
                l[10] = l[10].replacen("u10", "u19", 1);
                write_lines(&f, &l);
            }),
            "seq 10",
        ),
        (
            "a deleted line",
            Box::new(move |d| {
                let f = entry_file(d);
                let mut l = lines_of(&f);
                l.remove(20);
                write_lines(&f, &l);
            }),
            "seq 20",
        ),
        (
            "two swapped lines",
            Box::new(move |d| {
                let f = entry_file(d);
                let mut l = lines_of(&f);
                l.swap(30, 31);
                write_lines(&f, &l);
            }),
            "seq 30",
        ),
        (
            "a truncated file",
            Box::new(move |d| {
                let f = entry_file(d);
                let bytes = std::fs::read(&f).unwrap();
                std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "checkpoint",
        ),
        (
            "a duplicated line",
            Box::new(move |d| {
                let f = entry_file(d);
                let mut l = lines_of(&f);
                let dup = l[5].clone();
                l.insert(6, dup);
                write_lines(&f, &l);
            }),
            "seq 5",
        ),
        (
            "a dropped file",
            Box::new(move |d| {
                std::fs::remove_file(entry_file(d)).unwrap();
            }),
            "checkpoint",
        ),
        (
            "an edited record with its hash recomputed, without the HMAC key",
            Box::new(move |d| {
                use sha2::Digest;
                let f = entry_file(d);
                let mut l = lines_of(&f);
                let mut e: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&l[7]).unwrap();
                e.insert(
                    "attributes".into(),
                    serde_json::json!({"action": "login.ok", "user_id": "u7"}),
                );
                let mut body = e.clone();
                body.remove("hash");
                body.remove("mac");
                let canonical =
                    serde_json_canonicalizer::to_vec(&serde_json::Value::Object(body)).unwrap();
                let mut h = sha2::Sha256::new();
                h.update([0u8]);
                h.update(&canonical);
                e.insert("hash".into(), serde_json::json!(hex::encode(h.finalize())));
                l[7] = serde_json_canonicalizer::to_string(&serde_json::Value::Object(e)).unwrap();
                write_lines(&f, &l);
            }),
            "seq 7",
        ),
    ];
    for (what, tamper, place) in cases {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&evidence, copy.path());
        tamper(copy.path());
        let (ok, report) = verify(copy.path(), std::slice::from_ref(&vkey), &hmac);
        assert!(!ok, "{what} must be caught:\n{report}");
        assert!(
            report.contains(place) && report.contains("logs/audit"),
            "{what}: the finding names the place ({place}):\n{report}"
        );
    }

    // Checkpoints: one replaced by a note signed with another key, and verification
    // with the wrong vkey.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&evidence, copy.path());
    let note = files_under(copy.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "note"))
        .unwrap();
    let text = std::fs::read_to_string(&note).unwrap();
    let forged = text.replacen(
        text.lines().nth(2).unwrap(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        1,
    );
    std::fs::write(&note, forged).unwrap();
    let (ok, report) = verify(copy.path(), std::slice::from_ref(&vkey), &hmac);
    assert!(
        !ok && report.contains(note.file_name().unwrap().to_str().unwrap()),
        "a replaced checkpoint:\n{report}"
    );
    let (ok, report) = verify(&evidence, &[other_vkey], &hmac);
    assert!(
        !ok,
        "checkpoints signed by another key are refused:\n{report}"
    );
}
