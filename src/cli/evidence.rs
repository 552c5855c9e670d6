//! `vellum verify`, `prove`, `report` and `keygen`: reading and checking evidence.

use std::path::Path;
use std::process::ExitCode;

use super::usage_error;
use crate::evidence::prove::{self, Proof};
use crate::evidence::verify::{Options, verify_dir};
use crate::exporters::s3::client::Connection;

/// Verifies a local evidence directory, or S3 bundles for an `s3://` path: exit 0 with a
/// summary when everything holds, 1 with one finding a line when something does not.
pub fn verify(path: &Path, options: &Options, s3: &Connection) -> ExitCode {
    let verified = match path.to_str().filter(|p| p.starts_with("s3://")) {
        Some(url) => {
            crate::exporters::s3::verify::verify_url(url, s3, options).map_err(|e| e.to_string())
        }
        None => verify_dir(path, options).map_err(|e| e.to_string()),
    };
    let report = match verified {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    for f in &report.findings {
        println!("{f}");
    }
    if report.findings_not_shown > 0 {
        println!("… and {} more findings", report.findings_not_shown);
    }
    for loss in &report.declared_losses {
        println!("declared loss: {loss}");
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    println!("{}", report.summary());
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints the inclusion proof of entry `seq` in the tree of the first `size` entries
/// (all present by default).
pub fn prove_inclusion(path: &Path, stream: &str, seq: u64, size: Option<u64>) -> ExitCode {
    let proof = prove::collect_leaves(path, stream, size).and_then(|leaves| {
        let size = size.unwrap_or(leaves.len() as u64);
        prove::inclusion(stream, &leaves, seq, size)
    });
    print_proof(proof.map(|p| p.to_string()))
}

/// Prints the proof that the tree of the first `old` entries is a prefix of that of
/// the first `new` (all present by default).
pub fn prove_consistency(path: &Path, stream: &str, old: u64, new: Option<u64>) -> ExitCode {
    let proof = prove::collect_leaves(path, stream, new).and_then(|leaves| {
        let new = new.unwrap_or(leaves.len() as u64);
        prove::consistency(stream, &leaves, old, new)
    });
    print_proof(proof.map(|p| p.to_string()))
}

fn print_proof<E: std::fmt::Display>(proof: Result<String, E>) -> ExitCode {
    match proof {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
}

/// Checks a printed proof read from `proof`, or from standard input for `-`.
pub fn check_proof(proof: &Path) -> ExitCode {
    let text = if proof.as_os_str() == "-" {
        let mut s = String::new();
        match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            Ok(_) => s,
            Err(e) => return usage_error(format!("cannot read standard input: {e}")),
        }
    } else {
        match std::fs::read_to_string(proof) {
            Ok(s) => s,
            Err(e) => return usage_error(format!("cannot read {}: {e}", proof.display())),
        }
    };
    match Proof::parse(&text) {
        Ok(p) => match p.check() {
            Ok(()) => {
                println!("proof OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("proof FAILED: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => usage_error(e),
    }
}

/// Writes the report: exit 0 when the evidence verifies, 1 when the report says it
/// does not.
pub fn report(invocation: &crate::report::Invocation<'_>) -> ExitCode {
    match crate::report::run(invocation) {
        Ok(data) => {
            println!("{}", data.summary());
            if data.verification.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => usage_error(e),
    }
}

/// Prints a new checkpoint signing key, then its verifier key.
pub fn keygen(name: &str) -> ExitCode {
    match crate::evidence::note::generate(name) {
        Ok((skey, vkey)) => {
            println!("{skey}");
            println!("{vkey}");
            eprintln!(
                "The first line is the private key (keep it secret: `signing_key` under `hash_chain`); the second is the vkey verifiers use."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vellum keygen: {e}");
            ExitCode::from(2)
        }
    }
}
