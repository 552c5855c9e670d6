//! The command line as a user meets it.

mod common;

use std::process::Command;

use common::BIN;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run vellum");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_shipped_pipeline_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, out, err) = run(&["validate", "--config", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {out}{err}", path.display());
            assert!(out.contains(": valid"), "{out}");
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

#[test]
fn an_invalid_configuration_exits_2_naming_each_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.yaml");
    std::fs::write(
        &path,
        "receivers:\n  otlp: { protocols: { grpc: { endpoint: nowhere } } }\nexporters:\n  file/x: { directory: /tmp/x, colour: red }\nservice:\n  storage: { directory: /tmp/s }\n  pipelines:\n    logs/a: { receivers: [otlp], exporters: [file/x, file/y] }\n",
    )
    .unwrap();
    let (code, _, err) = run(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("3 problems"), "{err}");
    assert!(
        err.contains("receivers.otlp.protocols.grpc.endpoint") && err.contains("line 2"),
        "{err}"
    );
    assert!(
        err.contains("exporters.file/x.colour: unknown field `colour`") && err.contains("line 4"),
        "{err}"
    );
    assert!(
        err.contains("service.pipelines.logs/a.exporters[1]: `file/y` is not defined"),
        "{err}"
    );
    let (code, _, err) = run(&["validate", "--config", "/nonexistent.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the file"), "{err}");
}

#[test]
fn keygen_prints_a_key_pair_that_the_daemon_and_verify_accept() {
    let (code, out, _) = run(&["keygen", "--name", "audit.example.com/logs/audit"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("PRIVATE+KEY+audit.example.com/logs/audit+"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("audit.example.com/logs/audit+"),
        "{out}"
    );
    // The key hash in both strings is the same 8 hex digits.
    assert_eq!(lines[0].split('+').nth(3), lines[1].split('+').nth(1));
    let (code, _, err) = run(&["keygen", "--name", "has space"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn verify_refuses_bad_arguments_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    assert_eq!(run(&["verify", dir, "--vkey", "not-a-vkey"]).0, 2);
    assert_eq!(run(&["verify", dir, "--hmac-key", "k1=short"]).0, 2);
    assert_eq!(run(&["verify", "/nonexistent/evidence"]).0, 2);
}

#[test]
fn the_evidence_format_in_docs_is_the_contract_and_its_annexes() {
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/specs/evidence-format.md"
    );
    let Ok(contract) = std::fs::read_to_string(contract) else {
        // Outside the project's workspace only the copy exists.
        return;
    };
    let copy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/evidence-format.md"
    ))
    .unwrap();
    // The contract, unchanged, then only annexes: what the project writes where the
    // contract is silent.
    let annexes = copy.strip_prefix(contract.as_str());
    assert!(
        annexes.is_some(),
        "docs/evidence-format.md must begin with the contract, refreshed from it"
    );
    let annexes = annexes.unwrap_or_default().trim_start_matches(['\n', '-']);
    assert!(
        annexes.is_empty() || annexes.trim_start().starts_with("# Annex"),
        "what follows the contract in docs/evidence-format.md must be annexes"
    );
}
