//! The `vellum` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vellum::config::{Config, LogFormat, TelemetryConfig};

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
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            drain_timeout,
            watch,
        } => run(config, drain_timeout, watch),
        Command::Validate { config } => validate(&config),
        Command::Keygen { name } => keygen(&name),
        Command::DeadLetter { command } => dead_letter(command),
        Command::Verify {
            path,
            keys,
            origin,
            accept_declared_loss,
            endpoint,
            region,
            force_path_style,
        } => {
            let s3 = vellum::exporters::s3::client::Connection {
                region,
                endpoint,
                force_path_style,
                ..Default::default()
            };
            verify(&path, &keys, origin, accept_declared_loss, &s3)
        }
        Command::Prove { proof } => prove(proof),
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
            let written = vellum::report::run(&vellum::report::Invocation {
                framework,
                from: &from,
                to: &to,
                config: config.as_deref(),
                evidence: &evidence,
                options,
                html: &out,
                json: json.as_deref(),
                max_rows,
            });
            match written {
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
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("vellum: {message}");
    ExitCode::from(2)
}

fn verify(
    path: &std::path::Path,
    keys: &KeyArgs,
    origin: Option<String>,
    accept_declared_loss: bool,
    s3: &vellum::exporters::s3::client::Connection,
) -> ExitCode {
    use vellum::evidence::verify::verify_dir;
    let options = match keys.options() {
        Ok(o) => vellum::evidence::verify::Options {
            origin_prefix: origin,
            accept_declared_loss,
            ..o
        },
        Err(e) => return usage_error(e),
    };
    let verified = match path.to_str().filter(|p| p.starts_with("s3://")) {
        Some(url) => {
            vellum::exporters::s3::verify::verify_url(url, s3, &options).map_err(|e| e.to_string())
        }
        None => verify_dir(path, &options).map_err(|e| e.to_string()),
    };
    match verified {
        Ok(report) => {
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
        Err(e) => usage_error(e),
    }
}

fn prove(command: ProveCommand) -> ExitCode {
    use vellum::evidence::prove::{self, Proof};
    let result = match command {
        ProveCommand::Inclusion {
            path,
            stream,
            seq,
            size,
        } => prove::collect_leaves(&path, &stream, size)
            .and_then(|leaves| {
                let size = size.unwrap_or(leaves.len() as u64);
                prove::inclusion(&stream, &leaves, seq, size)
            })
            .map(|p| p.to_string()),
        ProveCommand::Consistency {
            path,
            stream,
            old,
            new,
        } => prove::collect_leaves(&path, &stream, new)
            .and_then(|leaves| {
                let new = new.unwrap_or(leaves.len() as u64);
                prove::consistency(&stream, &leaves, old, new)
            })
            .map(|p| p.to_string()),
        ProveCommand::Check { proof } => {
            let text = if proof.as_os_str() == "-" {
                let mut s = String::new();
                match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                    Ok(_) => s,
                    Err(e) => return usage_error(format!("cannot read standard input: {e}")),
                }
            } else {
                match std::fs::read_to_string(&proof) {
                    Ok(s) => s,
                    Err(e) => return usage_error(format!("cannot read {}: {e}", proof.display())),
                }
            };
            return match Proof::parse(&text) {
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
            };
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, vellum::config::ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Config::from_yaml(
            vellum::config::DEFAULT_PIPELINE,
            "the default pipeline (pipelines/default.yaml)",
            &vellum::config::expand::SystemSource,
        ),
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(problems) = vellum::pipeline::plan(&config) {
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

fn dead_letter(command: DeadLetterCommand) -> ExitCode {
    use vellum::pipeline::dead_letter;
    let config_path = match &command {
        DeadLetterCommand::List { config, .. } | DeadLetterCommand::Replay { config, .. } => config,
    };
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    match command {
        DeadLetterCommand::List { replayed, .. } => {
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
        DeadLetterCommand::Replay {
            files, exporter, ..
        } => {
            let files = if files.is_empty() {
                match dead_letter::list(&config, false) {
                    Ok(l) => l
                        .into_iter()
                        .filter(|l| exporter.as_ref().is_none_or(|e| *e == l.exporter))
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
    }
}

fn keygen(name: &str) -> ExitCode {
    match vellum::evidence::note::generate(name) {
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

fn init_logging(telemetry: &TelemetryConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&telemetry.logs.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal: a file or a log shipper would keep
    // them as noise. `NO_COLOR` (no-color.org) turns them off there too.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match telemetry.logs.format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Pretty => builder.with_ansi(colour).init(),
    }
}

fn run(path: Option<PathBuf>, drain_timeout: Duration, watch: bool) -> ExitCode {
    let config = match load(path.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let plan = match vellum::pipeline::plan(&config) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    init_logging(&config.service.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vellum: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Started once, before the first service, so that it counts from the start and
        // outlives reloads: each service attaches itself to `status`.
        let status = vellum::telemetry::Status::new();
        let _telemetry = match &config.service.telemetry.metrics.address {
            Some(address) => match vellum::telemetry::serve(address, status.clone()).await {
                Ok(server) => Some(server),
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("vellum: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let _health_check = match start_extensions(&config, &status).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("vellum: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut service = match vellum::pipeline::start(&config, plan).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("vellum: {e}");
                return ExitCode::FAILURE;
            }
        };
        service.attach(&status, &config.service.telemetry);
        tracing::info!("vellum is running");
        let mut signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                service.shutdown(drain_timeout).await;
                return ExitCode::FAILURE;
            }
        };
        let mut watcher = match (&path, watch) {
            (Some(p), true) => Some(ConfigWatch::new(p.clone())),
            _ => None,
        };
        let code = loop {
            let why = tokio::select! {
                _ = signals.term.recv() => break ExitCode::SUCCESS,
                _ = signals.int.recv() => break ExitCode::SUCCESS,
                _ = signals.hup.recv() => "SIGHUP",
                _ = changed(&mut watcher) => "the configuration file changed",
            };
            if !reload(&mut service, path.as_ref(), drain_timeout, why).await {
                break ExitCode::FAILURE;
            }
        };
        tracing::info!("draining: no new records are accepted");
        service.shutdown(drain_timeout).await;
        tracing::info!("stopped");
        code
    })
}

/// Starts the extensions `service.extensions` lists; like the telemetry server they
/// live as long as the process.
async fn start_extensions(
    config: &Config,
    status: &std::sync::Arc<vellum::telemetry::Status>,
) -> Result<Option<vellum::telemetry::health_check::HealthCheck>, String> {
    let listed = config
        .service
        .extensions
        .iter()
        .any(|id| id == "health_check");
    match &config.extensions.health_check {
        Some(health) if listed => vellum::telemetry::health_check::serve(health, status.clone())
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

/// Applies the configuration at `path` to the running service; false when the daemon
/// cannot go on.
async fn reload(
    service: &mut vellum::pipeline::Service,
    path: Option<&PathBuf>,
    drain_timeout: Duration,
    why: &str,
) -> bool {
    use vellum::pipeline::reload::ReloadError;
    tracing::info!(reason = why, "reloading the configuration");
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            // The same report `vellum validate` prints.
            tracing::error!("reload refused, the running configuration is kept: {e}");
            return true;
        }
    };
    let plan = match vellum::pipeline::plan(&config) {
        Ok(p) => p,
        Err(problems) => {
            tracing::error!(
                "reload refused, the running configuration is kept: {}",
                problems.join("; ")
            );
            return true;
        }
    };
    match service.reload(&config, plan, drain_timeout).await {
        Ok(summary) => {
            tracing::info!("configuration reloaded: {summary}");
            true
        }
        Err(e @ ReloadError::Fatal(_)) => {
            tracing::error!("{e}");
            false
        }
        Err(e) => {
            tracing::error!("{e}");
            true
        }
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Notices changes to the configuration file by its content, so an editor's
/// write-and-rename and a `touch` are told apart.
struct ConfigWatch {
    path: PathBuf,
    seen: Option<Vec<u8>>,
}

impl ConfigWatch {
    fn new(path: PathBuf) -> ConfigWatch {
        let seen = std::fs::read(&path).ok();
        ConfigWatch { path, seen }
    }
}

async fn changed(watch: &mut Option<ConfigWatch>) {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // An unreadable file (mid-rename) is looked at again on the next tick.
        if let Ok(now) = std::fs::read(&w.path)
            && w.seen.as_ref() != Some(&now)
        {
            w.seen = Some(now);
            return;
        }
    }
}
