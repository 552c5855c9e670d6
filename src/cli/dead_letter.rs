//! `vellum dead-letter list|replay`: the batches sinks refused as malformed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::usage_error;
use crate::config::Config;
use crate::pipeline::dead_letter;

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

/// One line per dead-letter file: pipeline, exporter, records, state, file, reason.
pub fn list(config_path: &Path, replayed: bool) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let letters = match dead_letter::list(&config, replayed) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    for l in &letters {
        println!(
            "{}\t{}\t{} records\t{}\t{}\t{}",
            l.pipeline,
            l.exporter,
            l.header.records,
            if l.replayed { "replayed" } else { "pending" },
            l.path.display(),
            l.header.reason
        );
    }
    eprintln!("{} dead-letter file(s)", letters.len());
    ExitCode::SUCCESS
}

/// Sends `files` again (every pending file of `exporter`, or of all, when none is
/// named); exit 1 when any was not taken.
pub fn replay(config_path: &Path, files: Vec<PathBuf>, exporter: Option<&str>) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let files = if files.is_empty() {
        match dead_letter::list(&config, false) {
            Ok(l) => l
                .into_iter()
                .filter(|l| exporter.is_none_or(|e| e == l.exporter))
                .map(|l| l.path)
                .collect(),
            Err(e) => return usage_error(e),
        }
    } else {
        files
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage_error(format!("cannot start the runtime: {e}")),
    };
    let mut failed = 0;
    for file in &files {
        match runtime.block_on(dead_letter::replay(&config, file)) {
            Ok(n) => println!("{}: {n} items replayed", file.display()),
            Err(e) => {
                eprintln!("vellum dead-letter replay: {e}");
                failed += 1;
            }
        }
    }
    eprintln!(
        "{} of {} dead-letter file(s) replayed",
        files.len() - failed,
        files.len()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
