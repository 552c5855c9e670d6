//! `vellum validate`: every problem of a configuration, with its YAML path.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// Exit 0 with a one-line summary when the configuration loads and plans; 2 with every
/// problem otherwise.
pub fn validate(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(problems) = crate::pipeline::plan(&config) {
        eprintln!(
            "{}: {} problem{}",
            path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in problems {
            eprintln!("  {p}");
        }
        return ExitCode::from(2);
    }
    println!(
        "{}: valid ({} receivers, {} processors, {} exporters, {} pipelines)",
        path.display(),
        config.receivers.len(),
        config.processors.len(),
        config.exporters.len(),
        config.service.pipelines.len()
    );
    ExitCode::SUCCESS
}
