//! Shared by the integration tests: running the real `vellum` binary, waiting on
//! conditions with deadlines, reading what it wrote.
//!
//! Every test file uses it the same way: `mod common;` at its root, then `common::…`
//! (the `hostile` crate, a folder, names this file with `#[path]`, as Cargo requires).
//!
//! | module | what it holds |
//! |---|---|
//! | `common` (this file) | the daemon (`Daemon::launch`, `start`, `terminate`), ports, waiting, HTTP, evidence and `vellum verify` |
//! | `common::config` | [`config::PipelineConfig`], the one builder of test configurations |
//! | `common::peers` | real and protocol-faithful peers: Splunk HEC, Datadog, webhook, moto (S3), faults |
//! | `common::pii_corpus` | generated events with known personal data, for redaction's quality and speed |

#![allow(dead_code)]

pub mod config;
pub mod peers;
pub mod pii_corpus;

#[allow(unused_imports)]
pub use config::{Pipeline, PipelineConfig};

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_vellum");

/// Polls `check` until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A loopback port nobody uses right now, for TCP and UDP alike.
///
/// Drawn below the kernel's ephemeral range (32768–60999), so that no client socket of a
/// test running in parallel can be given it as its local port between now and the
/// daemon's bind, and never handed out twice by one test binary.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another; each starts at its own place in the range.
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = LOW + (std::process::id() % u32::from(SPAN)) as u16;
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + n.wrapping_sub(LOW) % SPAN;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// Ports for one daemon's receivers.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub gateway: u16,
    pub syslog: u16,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            grpc: free_port(),
            http: free_port(),
            gateway: free_port(),
            syslog: free_port(),
        }
    }
}

/// Every receiver on the given ports, the hash chain and `file/evidence`, under `dir`:
/// [`PipelineConfig::standard`] as text, for tests that edit it as text.
pub fn standard_config(dir: &Path, ports: Ports) -> String {
    PipelineConfig::standard(dir, ports).yaml()
}

/// The `vellum` daemon as a child process.
pub struct Daemon {
    pub child: Child,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Writes `yaml` to `dir/vellum.yaml`, starts `vellum run`, and waits until every
    /// TCP address in `ready` accepts connections.
    pub fn start(dir: &Path, yaml: &str, ready: &[SocketAddr]) -> Daemon {
        let config = dir.join("vellum.yaml");
        std::fs::write(&config, yaml).expect("write config");
        Daemon::start_with(dir, &config, ready)
    }

    pub fn start_with(dir: &Path, config: &Path, ready: &[SocketAddr]) -> Daemon {
        Daemon::start_with_args(dir, config, ready, &[])
    }

    /// As [`Daemon::start_with`], with more arguments for `vellum run` (`--drain-timeout`).
    pub fn start_with_args(
        dir: &Path,
        config: &Path,
        ready: &[SocketAddr],
        args: &[&str],
    ) -> Daemon {
        Daemon::launch(dir, config, ready, args, &[] as &[(&str, &str)])
    }

    /// As [`Daemon::start_with_args`], with more environment for the daemon (a preloaded
    /// shim, libfaketime's settings).
    pub fn launch<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        dir: &Path,
        config: &Path,
        ready: &[SocketAddr],
        args: &[&str],
        env: &[(K, V)],
    ) -> Daemon {
        let log = dir.join(format!(
            "vellum-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let log_file = std::fs::File::create(&log).expect("create log file");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn vellum");
        let mut daemon = Daemon {
            child,
            config: config.to_path_buf(),
            log,
        };
        for addr in ready {
            let a = *addr;
            let log = daemon.log.clone();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    panic!(
                        "vellum exited with {status} before listening on {a}:\n{}",
                        read(&log)
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "vellum did not listen on {a} in 30s:\n{}",
                    read(&log)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        daemon
    }

    pub fn log_text(&self) -> String {
        read(&self.log)
    }

    /// SIGKILL: the crash a power cut or OOM killer causes.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the drain to finish.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vellum did not stop within 60s of SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The peak resident set (`VmHWM`) of process `pid`, in bytes, from `/proc/<pid>/status`.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status");
    kib * 1024
}

/// Every entry under an evidence directory (`.jsonl` and `.jsonl.gz`), in seq order.
pub fn evidence_entries(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for path in files_under(dir) {
        let name = path.to_string_lossy().to_string();
        let mut text = String::new();
        if name.ends_with(".jsonl.gz") {
            let f = std::fs::File::open(&path).expect("open evidence");
            flate2::read::MultiGzDecoder::new(f)
                .read_to_string(&mut text)
                .expect("gunzip evidence");
        } else if name.ends_with(".jsonl") {
            text = std::fs::read_to_string(&path).expect("read evidence");
        } else {
            continue;
        }
        for line in text.lines() {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{name}: bad line {line:?}: {e}")),
            );
        }
    }
    out.sort_by_key(|v| v["seq"].as_u64().unwrap_or(u64::MAX));
    out
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in read.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The interpreter of the Python venv with the real OTLP clients (set up by scripts/test.sh).
pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VELLUM_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    local.exists().then_some(local)
}

/// Sends `count` logs with the OpenTelemetry Python SDK (`tests/common/peers/otel_send.py`) over
/// `protocol` (`grpc` or `http`), each carrying `marker` in its body and attributes when
/// given; panics if the SDK reports a failed export.
pub fn otel_send(protocol: &str, endpoint: &str, count: usize, marker: Option<&str>) {
    let python = python()
        .expect("the OpenTelemetry SDK venv is missing: run scripts/test.sh, which installs it");
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/common/peers/otel_send.py"
        ))
        .args([protocol, endpoint, &count.to_string()])
        .args(marker)
        .output()
        .expect("run the OpenTelemetry SDK client");
    assert!(
        out.status.success(),
        "the {protocol} client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `vellum verify` on a directory with a vkey; returns (success, stdout+stderr).
pub fn verify(dir: &Path, vkeys: &[String], hmac_keys: &[String]) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("verify").arg(dir);
    verify_with(cmd, vkeys, hmac_keys)
}

/// Runs a prepared `vellum verify` command (its target and any settings, such as S3
/// options, already given) with the keys; returns (success, stdout+stderr).
pub fn verify_with(mut cmd: Command, vkeys: &[String], hmac_keys: &[String]) -> (bool, String) {
    for v in vkeys {
        cmd.args(["--vkey", v]);
    }
    for k in hmac_keys {
        cmd.args(["--hmac-key", k]);
    }
    let out = cmd.output().expect("run vellum verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Posts `n` gateway events (`login.failed` for users `u<from>`…) as NDJSON and expects 200.
pub fn send_logins(port: u16, from: usize, n: usize) {
    let body: String = (from..from + n)
        .map(|i| format!("{{\"action\":\"login.failed\",\"user_id\":\"u{i}\"}}\n"))
        .collect();
    let status = ureq::post(&format!("http://127.0.0.1:{port}/v1/events"))
        .send(body.as_bytes())
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

/// The vkeys generated for the streams under a storage directory.
pub fn vkeys(state: &Path) -> Vec<String> {
    files_under(&state.join("keys"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "vkey"))
        .map(|p| read(&p).trim().to_string())
        .collect()
}

/// libfaketime's multi-threaded library, from the Debian package `faketime`.
pub fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
        .find(|p| p.exists());
    found.expect("libfaketime: install the Debian package faketime (scripts/test.sh does)")
}

/// The environment that runs the daemon's real-time clock `days` days ahead (none for
/// 0). It is preloaded into vellum itself: the `faketime` wrapper would stand between a
/// test and the daemon's signals. Timers keep the monotonic clock.
pub fn days_ahead_env(days: u32) -> Vec<(&'static str, String)> {
    if days == 0 {
        return Vec::new();
    }
    vec![
        ("LD_PRELOAD", libfaketime().display().to_string()),
        ("FAKETIME", format!("+{days}d")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
    ]
}

/// `POST`s `body` to `url` (with a `Content-Type` when given); returns the status and the
/// answer's text, whatever the status. A transport error is status 0 with its message.
pub fn http_post(url: &str, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut request = agent().post(url);
    if let Some(t) = content_type {
        request = request.header("Content-Type", t);
    }
    answer(request.send(body))
}

/// `GET`s `url`; returns the status and the answer's text, as [`http_post`] does.
pub fn http_get(url: &str) -> (u16, String) {
    answer(agent().get(url).call())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    match result {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

/// Every entry under `dir` that parses, in `seq` order, while the daemon may still be
/// changing it: files retention removes while they are listed, and a line still being
/// written, are skipped (unlike [`evidence_entries`], which expects settled evidence).
pub fn evidence_entries_now(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by_key(|e| e["seq"].as_u64());
    out
}
