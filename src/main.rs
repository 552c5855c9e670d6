//! The `vellum` command line: its arguments, and which function of `vellum::cli` each
//! subcommand runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vellum::cli::{self, usage_error};

/// Turns audit events into compliance evidence anyone can verify.
///
/// Receivers (OTLP, HTTP JSON, syslog) feed processors (redact, classify, filter) and
/// the hash chain; records are durable in the journal before any client is answered;
/// exporters deliver them from the journal.
#[derive(Parser)]
#[command(name = "vellum", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (SIGTERM or Ctrl-C drains and stops it; SIGHUP reloads the
    /// configuration).
    Run {
        /// Pipeline configuration; without it, the built-in default (loopback only).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// How long exporters may take to deliver what is left at shutdown or reload.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        drain_timeout: Duration,
        /// Reload when the configuration file changes (checked every second), as on SIGHUP.
        #[arg(long, requires = "config")]
        watch: bool,
    },
    /// Check a configuration and report every problem with its YAML path (exit 2 if any).
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Verify a local evidence directory or S3 bundles: hashes, macs, chain links,
    /// checkpoints, and for bundles their manifests.
    ///
    /// Exit 0 with a one-line summary when everything holds; 1 with one finding per line
    /// (stream, seq, file and line) when something does not; 2 when the arguments are wrong.
    Verify {
        /// The evidence directory (the `file` exporter's `directory`), or
        /// `s3://bucket/prefix` for the `s3` exporter's bundles.
        path: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Require checkpoint origins to be exactly `<ORIGIN>/<stream>`.
        #[arg(long)]
        origin: Option<String>,
        /// Pass even when entries are missing that a journal-loss record declares lost
        /// to journal damage (they are still listed).
        #[arg(long)]
        accept_declared_loss: bool,
        /// S3: the URL of an S3-compatible service (default: AWS). Credentials come from
        /// the standard AWS chain (`AWS_ACCESS_KEY_ID`, profiles, instance roles).
        #[arg(long)]
        endpoint: Option<String>,
        /// S3: the bucket's region (default: `AWS_REGION`, the profile, or us-east-1).
        #[arg(long)]
        region: Option<String>,
        /// S3: path-style requests (`host/bucket/key`), as most S3-compatible services need.
        #[arg(long)]
        force_path_style: bool,
    },
    /// Print RFC 9162 proofs over a local evidence directory, or check a printed one.
    Prove {
        #[command(subcommand)]
        proof: ProveCommand,
    },
    /// Write a compliance report of a period (HTML, and JSON with `--json`) from local
    /// evidence: counts, access and change audit, failed logins, security events,
    /// verification status and retention against the framework's minimum.
    ///
    /// Exit 0 when the report is written and the evidence verifies; 1 when it is written
    /// but verification found problems (the report says which); 2 on wrong arguments.
    Report {
        /// `soc2`, `hipaa`, `gdpr` or `iso27001`: the controls cited and the retention
        /// period compared.
        #[arg(long, value_parser = vellum::report::Framework::parse)]
        framework: vellum::report::Framework,
        /// Start of the period, inclusive: `2026-11-01` (midnight UTC) or an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// End of the period: a date includes that whole day (UTC); a time is exclusive.
        #[arg(long)]
        to: String,
        /// The pipeline configuration: its `file` exporters' directories are read, and
        /// its retention settings compared with the framework's minimum.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// An evidence directory to read (instead of the configuration's); repeatable.
        #[arg(long, required_unless_present = "config")]
        evidence: Vec<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
        /// Where to write the HTML report.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the same data as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Rows kept per table (the latest ones); totals count every record.
        #[arg(long, default_value_t = vellum::report::DEFAULT_MAX_ROWS)]
        max_rows: usize,
    },
    /// List or replay the batches exporters' sinks rejected as malformed (dead letters).
    DeadLetter {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Print a new checkpoint signing key and its verifier key (vkey).
    Keygen {
        /// The key name: the checkpoint origin, `<origin>/<stream>`.
        #[arg(long)]
        name: String,
    },
}

/// The keys evidence is checked with, as `verify` and `report` take them.
#[derive(clap::Args)]
struct KeyArgs {
    /// An HMAC key, `kid=key` (`hex:…`/`base64:…` for binary keys); repeat for a ring.
    #[arg(long = "hmac-key", value_name = "KID=KEY")]
    hmac_keys: Vec<String>,
    /// A file of `kid=key` lines (`#` starts a comment).
    #[arg(long = "hmac-keys", value_name = "FILE")]
    hmac_key_file: Option<PathBuf>,
    /// A checkpoint verifier key (`name+hash+base64`); repeat for several signers.
    #[arg(long = "vkey")]
    vkeys: Vec<String>,
}

impl KeyArgs {
    fn options(&self) -> Result<vellum::evidence::verify::Options, String> {
        vellum::evidence::verify::Options::from_args(
            &self.hmac_keys,
            self.hmac_key_file.as_deref(),
            &self.vkeys,
        )
    }
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// One line per dead-letter file of the configuration's exporters: pipeline,
    /// exporter, records, file and the sink's reason.
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// Also list files already replayed.
        #[arg(long)]
        replayed: bool,
    },
    /// Send dead-letter files again through their exporter, as configured now; each file
    /// the sink takes moves to `replayed/` and is never sent again. Exit 1 if any file
    /// was not taken (it stays for another try).
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// The files to replay; without any, every pending file (of `--exporter`, if given).
        files: Vec<PathBuf>,
        /// Only this exporter's files (`webhook/soc`).
        #[arg(long)]
        exporter: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProveCommand {
    /// That entry `seq` is in the tree of the first `size` entries.
    Inclusion {
        path: PathBuf,
        #[arg(long)]
        stream: String,
        #[arg(long)]
        seq: u64,
        /// Tree size; by default all entries present.
        #[arg(long)]
        size: Option<u64>,
    },
    /// That the tree of the first `old` entries is a prefix of the tree of `new`.
    Consistency {
        path: PathBuf,
        #[arg(long)]
        stream: String,
        #[arg(long)]
        old: u64,
        #[arg(long)]
        new: Option<u64>,
    },
    /// Check a printed proof (from a file, or `-` for standard input).
    Check { proof: PathBuf },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            config,
            drain_timeout,
            watch,
        } => cli::run::run(config, drain_timeout, watch),
        Command::Validate { config } => cli::validate::validate(&config),
        Command::Keygen { name } => cli::evidence::keygen(&name),
        Command::DeadLetter { command } => match command {
            DeadLetterCommand::List { config, replayed } => {
                cli::dead_letter::list(&config, replayed)
            }
            DeadLetterCommand::Replay {
                config,
                files,
                exporter,
            } => cli::dead_letter::replay(&config, files, exporter.as_deref()),
        },
        Command::Verify {
            path,
            keys,
            origin,
            accept_declared_loss,
            endpoint,
            region,
            force_path_style,
        } => {
            let options = match keys.options() {
                Ok(o) => vellum::evidence::verify::Options {
                    origin_prefix: origin,
                    accept_declared_loss,
                    ..o
                },
                Err(e) => return usage_error(e),
            };
            let s3 = vellum::exporters::s3::client::Connection {
                region,
                endpoint,
                force_path_style,
                ..Default::default()
            };
            cli::evidence::verify(&path, &options, &s3)
        }
        Command::Prove { proof } => match proof {
            ProveCommand::Inclusion {
                path,
                stream,
                seq,
                size,
            } => cli::evidence::prove_inclusion(&path, &stream, seq, size),
            ProveCommand::Consistency {
                path,
                stream,
                old,
                new,
            } => cli::evidence::prove_consistency(&path, &stream, old, new),
            ProveCommand::Check { proof } => cli::evidence::check_proof(&proof),
        },
        Command::Report {
            framework,
            from,
            to,
            config,
            evidence,
            keys,
            out,
            json,
            max_rows,
        } => {
            let options = match keys.options() {
                Ok(o) => o,
                Err(e) => return usage_error(e),
            };
            cli::evidence::report(&vellum::report::Invocation {
                framework,
                from: &from,
                to: &to,
                config: config.as_deref(),
                evidence: &evidence,
                options,
                html: &out,
                json: json.as_deref(),
                max_rows,
            })
        }
    }
}
