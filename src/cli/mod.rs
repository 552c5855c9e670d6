//! What each `vellum` subcommand does once its arguments are parsed; `main.rs` parses
//! and dispatches. Exit codes are the same for every subcommand:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done, and what was checked holds |
//! | 1 | done, and something checked does not hold (verification findings, a dead letter not taken, a proof that fails), or the daemon could not go on |
//! | 2 | wrong arguments or configuration: nothing was done |

pub mod dead_letter;
pub mod evidence;
pub mod run;
pub mod validate;

use std::process::ExitCode;

/// Prints `vellum: <message>` and answers exit code 2.
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("vellum: {message}");
    ExitCode::from(2)
}
