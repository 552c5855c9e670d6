//! The daemon's own telemetry from the outside: `/metrics` read with the Prometheus
//! project's own parser counts exactly what was sent, `/readyz` follows a sink going
//! down and coming back, and the JSON log says what happened without ever carrying
//! what records said.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::peers;
use common::*;
use peers::http_faults::{Fault, Server};
use peers::webhook::{Auth, Receiver};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `config` with JSON logs and the telemetry server on `port`; `metrics_extra` is more
/// YAML under `metrics` (indented four spaces), or empty.
fn with_telemetry(config: &PipelineConfig, port: u16, metrics_extra: &str) -> String {
    config
        .clone()
        .service(&format!(
            "telemetry:\n  logs: {{ format: json }}\n  metrics:\n    address: 127.0.0.1:{port}\n{metrics_extra}"
        ))
        .yaml()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `GET` on the telemetry server: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut answer = agent()
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .expect("the telemetry server answers");
    let status = answer.status().as_u16();
    (
        status,
        answer.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Posts a body to the gateway; returns the status.
fn post(port: u16, path: &str, content_type: &str, body: &str) -> u16 {
    agent()
        .post(&format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", content_type)
        .send(body.as_bytes())
        .expect("the receiver answers")
        .status()
        .as_u16()
}

/// One sample of a scrape, as the Prometheus client library parsed it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// One metric family: its name (without `_total` for counters), type, help and samples.
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

const PARSE: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": f.name, "type": f.type, "help": f.documentation,
        "samples": [
            {"name": s.name, "labels": s.labels,
             "value": s.value if math.isfinite(s.value) else None}
            for s in f.samples
        ],
    })
json.dump(families, sys.stdout)
"#;

/// Parses a scrape with `prometheus_client`'s parser (which refuses malformed text).
fn parse(text: &str) -> Vec<Family> {
    let python = python().expect("the test venv with prometheus_client: run scripts/test.sh");
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .iter()
        .map(|f| Family {
            name: f["name"].as_str().unwrap().to_string(),
            kind: f["type"].as_str().unwrap().to_string(),
            help: f["help"].as_str().unwrap().to_string(),
            samples: f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels: s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect(),
                    value: s["value"].as_f64().unwrap_or(f64::NAN),
                })
                .collect(),
        })
        .collect()
}

/// A parsed scrape.
struct Scrape {
    text: String,
    families: Vec<Family>,
}

impl Scrape {
    fn take(port: u16) -> Scrape {
        let (status, text) = get(port, "/metrics");
        assert_eq!(status, 200, "{text}");
        let families = parse(&text);
        Scrape { text, families }
    }

    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
    }

    fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

const FILE: [(&str, &str); 2] = [("pipeline", "logs/audit"), ("exporter", "file/evidence")];
const STREAM: [(&str, &str); 1] = [("stream", "logs/audit")];

#[test]
fn metrics_count_what_was_sent_in_a_scrape_prometheus_parses() {
    const OTLP_MARKER: &str = "metric-sentinel-otlp-7c1e";
    const GATEWAY_MARKER: &str = "metric-sentinel-gateway-52ab";
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let metrics = free_port();
    let yaml = with_telemetry(&PipelineConfig::standard(tmp.path(), ports), metrics, "");
    let ready = [local(ports.grpc), local(ports.gateway), local(metrics)];
    let started = std::time::Instant::now();
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);

    otel_send(
        "grpc",
        &format!("http://127.0.0.1:{}", ports.grpc),
        40,
        Some(OTLP_MARKER),
    );
    let events: String = (0..25)
        .map(|i| {
            format!(
                "{{\"action\":\"login.failed\",\"user_id\":\"u{i}\",\"message\":\"{GATEWAY_MARKER}\",\"note\":\"{GATEWAY_MARKER}\"}}\n"
            )
        })
        .collect();
    assert_eq!(
        post(ports.gateway, "/v1/events", "application/x-ndjson", &events),
        200
    );
    let n = 65.0;

    // Lag 0 and the newest checkpoint come a moment after the records are acknowledged;
    // a timed checkpoint may still be on its way, so the journal's size is compared with
    // its segment files once nothing moves.
    let segment_bytes = || -> f64 {
        files_under(&tmp.path().join("state"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum::<u64>() as f64
    };
    let mut scrape = Scrape::take(metrics);
    wait_until(
        "the file exporter to catch up, a checkpoint, a quiet journal",
        WAIT,
        || {
            let before = segment_bytes();
            scrape = Scrape::take(metrics);
            scrape.value("vellum_exporter_lag_records", &FILE) == Some(0.0)
                && scrape.value("vellum_exporter_sent_records_total", &FILE) == Some(n)
                && scrape
                    .value("vellum_chain_checkpoint_age_seconds", &STREAM)
                    .is_some()
                && scrape.value("vellum_journal_disk_bytes", &[("pipeline", "logs/audit")])
                    == Some(before)
                && segment_bytes() == before
        },
    );
    let s = &scrape;
    let otlp = [("receiver", "otlp")];
    let gateway = [("receiver", "http/gateway")];
    assert_eq!(
        s.value("vellum_receiver_accepted_records_total", &otlp),
        Some(40.0)
    );
    assert_eq!(
        s.value("vellum_receiver_received_records_total", &otlp),
        Some(40.0)
    );
    assert_eq!(
        s.value("vellum_receiver_accepted_records_total", &gateway),
        Some(25.0)
    );
    assert_eq!(
        s.value("vellum_receiver_received_records_total", &gateway),
        Some(25.0)
    );
    assert_eq!(s.value("vellum_chain_head_seq", &STREAM), Some(n - 1.0));
    assert_eq!(s.value("vellum_exporter_failing_seconds", &FILE), Some(0.0));
    let journal_bytes = s
        .value("vellum_journal_disk_bytes", &[("pipeline", "logs/audit")])
        .unwrap();
    assert!(journal_bytes > 0.0);
    let age = s
        .value("vellum_chain_checkpoint_age_seconds", &STREAM)
        .unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");

    let commits = s.family("vellum_journal_commit_seconds").unwrap();
    assert_eq!(commits.kind, "histogram");
    let count = s
        .value("vellum_journal_commit_seconds_count", &STREAM)
        .unwrap();
    assert!(count > 0.0);
    assert_eq!(
        s.value(
            "vellum_journal_commit_seconds_bucket",
            &[("stream", "logs/audit"), ("le", "+Inf")]
        ),
        Some(count)
    );
    let buckets = commits
        .samples
        .iter()
        .filter(|b| b.name.ends_with("_bucket"))
        .count();
    assert!(buckets > 10, "{buckets} buckets");

    // The same counts under the Collector's names and labels, for its stock dashboards.
    type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
    let collector: [Expected; 5] = [
        (
            "otelcol_receiver_accepted_log_records_total",
            &[("receiver", "otlp"), ("transport", "grpc")],
            40.0,
        ),
        (
            "otelcol_receiver_accepted_log_records_total",
            &[("receiver", "http/gateway"), ("transport", "http")],
            25.0,
        ),
        (
            "otelcol_exporter_sent_log_records_total",
            &[("exporter", "file/evidence")],
            n,
        ),
        (
            "otelcol_exporter_queue_size",
            &[("exporter", "file/evidence")],
            0.0,
        ),
        // No sending_queue.queue_size: the pipeline's backlog limit, 1 000 000 by default.
        (
            "otelcol_exporter_queue_capacity",
            &[("exporter", "file/evidence")],
            1_000_000.0,
        ),
    ];
    for (name, labels, expected) in collector {
        assert_eq!(s.value(name, labels), Some(expected), "{name} {labels:?}");
    }
    for (name, kind) in [
        ("otelcol_receiver_accepted_log_records", "counter"),
        ("otelcol_exporter_sent_log_records", "counter"),
        ("otelcol_exporter_queue_size", "gauge"),
        ("otelcol_exporter_queue_capacity", "gauge"),
        ("otelcol_process_uptime", "gauge"),
        ("otelcol_process_cpu_seconds", "gauge"),
        ("otelcol_process_memory_rss", "gauge"),
        ("vellum_build_info", "gauge"),
        ("target_info", "gauge"),
    ] {
        let f = s
            .family(name)
            .unwrap_or_else(|| panic!("{name} missing:\n{}", s.text));
        assert_eq!(f.kind, kind, "{name}");
        assert!(!f.help.is_empty(), "{name} has no HELP");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        s.value("vellum_build_info", &[("version", version)]),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "target_info",
            &[("service_name", "vellum"), ("service_version", version)]
        ),
        Some(1.0)
    );
    // Process figures against what the kernel says about the same process.
    let uptime = s.value("otelcol_process_uptime", &[]).unwrap();
    assert!(
        uptime > 0.0 && uptime < started.elapsed().as_secs_f64(),
        "{uptime}"
    );
    assert!(s.value("otelcol_process_cpu_seconds", &[]).unwrap() > 0.0);
    let rss = s.value("otelcol_process_memory_rss", &[]).unwrap();
    let peak = peak_rss_bytes(daemon.child.id()) as f64;
    assert!(rss > 1e6 && rss <= peak, "rss {rss}, peak {peak}");

    // Every metric says what it is: HELP and TYPE lines the parser read.
    for (name, kind) in [
        ("vellum_receiver_received_records", "counter"),
        ("vellum_receiver_accepted_records", "counter"),
        ("vellum_exporter_sent_records", "counter"),
        ("vellum_exporter_lag_records", "gauge"),
        ("vellum_exporter_failing_seconds", "gauge"),
        ("vellum_journal_disk_bytes", "gauge"),
        ("vellum_chain_head_seq", "gauge"),
        ("vellum_chain_checkpoint_age_seconds", "gauge"),
        ("vellum_journal_commit_seconds", "histogram"),
    ] {
        let f = s
            .family(name)
            .unwrap_or_else(|| panic!("{name} missing:\n{}", s.text));
        assert_eq!(f.kind, kind, "{name}");
    }
    for f in s.families.iter().filter(|f| f.name.starts_with("vellum_")) {
        assert!(!f.help.is_empty(), "{} has no HELP", f.name);
        assert!(
            s.text.contains(&format!("# TYPE {}", f.name)),
            "{} has no TYPE line",
            f.name
        );
    }

    // Label values name components and fixed reasons only.
    let receivers = ["otlp", "http/gateway", "syslog/tcp", "syslog/udp"];
    for sample in s.families.iter().flat_map(|f| &f.samples) {
        for (key, value) in &sample.labels {
            let allowed = match key.as_str() {
                "receiver" => receivers.contains(&value.as_str()),
                "pipeline" | "stream" => value == "logs/audit",
                "exporter" => value == "file/evidence",
                "reason" => value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "transport" => ["grpc", "http", "tcp", "udp"].contains(&value.as_str()),
                "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
                "service_name" => value == "vellum",
                "version" | "service_version" => value == env!("CARGO_PKG_VERSION"),
                _ => false,
            };
            assert!(allowed, "label {key}={value:?} on {}", sample.name);
        }
    }
    for marker in [OTLP_MARKER, GATEWAY_MARKER, "u1", "login.failed"] {
        assert!(!s.text.contains(marker), "{marker} is in /metrics");
    }
    // The records did carry the markers (so their absence above means something).
    let evidence = evidence_entries(&tmp.path().join("evidence"));
    assert_eq!(evidence.len(), 65);
    let text = serde_json::to_string(&evidence).unwrap();
    assert!(text.contains(OTLP_MARKER) && text.contains(GATEWAY_MARKER));
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
}

/// The readiness verdict: (status, names of the failing components).
fn readiness(port: u16) -> (u16, Vec<String>) {
    let (status, body) = get(port, "/readyz");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let failing = body["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["check"].as_str().unwrap_or(""),
                f["component"].as_str().unwrap_or("")
            )
        })
        .collect();
    (status, failing)
}

#[test]
fn readiness_fails_naming_an_exporter_whose_sink_stays_down_and_recovers_with_it_and_health_check_follows()
 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hook = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = Server::start(rt.handle(), local(0), hook.router(), hook.faults.clone());
    let tmp = tempfile::tempdir().unwrap();
    let (gateway, metrics, health) = (free_port(), free_port(), free_port());
    let config = PipelineConfig::new(tmp.path())
        .gateway(gateway)
        .processor("hash_chain", "{ origin: test.vellum }")
        .file("file/evidence", &tmp.path().join("evidence"))
        .exporter(
            "webhook/soc",
            format!(
                "url: {}/hook\ntimeout: 1s\nretry_on_failure: {{ initial_interval: 20ms, max_interval: 200ms }}",
                sink.url()
            ),
        )
        .section(&format!(
            "extensions:\n  health_check: {{ endpoint: 127.0.0.1:{health} }}"
        ))
        .service("extensions: [health_check]");
    let yaml = with_telemetry(
        &config,
        metrics,
        "    readiness: { exporter_stuck_after: 1s }",
    );
    let ready = [local(gateway), local(metrics), local(health)];
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    wait_until("ready", WAIT, || readiness(metrics).0 == 200);
    assert_eq!(get(metrics, "/healthz").0, 200);
    let up_since = health_check_says_available(health);
    assert_eq!(
        get(health, "/healthz").0,
        404,
        "only its own path is answered"
    );

    // A request the gateway refuses is counted under the Collector's name too.
    assert_eq!(
        post(gateway, "/v1/events", "application/json", "{not json"),
        400
    );
    let gateway_id = [("receiver", "http/gateway"), ("transport", "http")];
    assert_eq!(
        Scrape::take(metrics).value("otelcol_receiver_refused_log_records_total", &gateway_id),
        Some(1.0)
    );

    sink.down();
    send_logins(gateway, 0, 10);
    let soc = [("pipeline", "logs/audit"), ("exporter", "webhook/soc")];
    wait_until("not ready, naming the exporter", WAIT, || {
        readiness(metrics) == (503, vec!["exporter:webhook/soc".to_string()])
    });
    assert_eq!(get(metrics, "/healthz").0, 200);
    let (_, body) = get(metrics, "/readyz");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["failing"][0]["pipeline"], "logs/audit");
    let (code, body) = get(health, "/");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        (code, body),
        (
            503,
            serde_json::json!({
                "status": "Server not available",
                "upSince": "0001-01-01T00:00:00Z",
                "uptime": "",
            })
        )
    );
    let scrape = Scrape::take(metrics);
    // Every failed attempt carried all ten records.
    let failed = scrape
        .value(
            "otelcol_exporter_send_failed_log_records_total",
            &[("exporter", "webhook/soc")],
        )
        .unwrap();
    assert!(failed >= 10.0 && failed % 10.0 == 0.0, "{failed}");
    assert!(
        scrape
            .value(
                "otelcol_exporter_queue_size",
                &[("exporter", "webhook/soc")]
            )
            .unwrap()
            >= 10.0
    );
    assert!(scrape.value("vellum_exporter_lag_records", &soc).unwrap() >= 10.0);
    assert!(
        scrape
            .value("vellum_exporter_failing_seconds", &soc)
            .unwrap()
            >= 1.0
    );
    assert!(
        scrape
            .value("vellum_exporter_retried_records_total", &soc)
            .unwrap()
            >= 10.0
    );
    assert_eq!(
        scrape.value("vellum_exporter_lag_records", &FILE),
        Some(0.0)
    );
    assert!(hook.seqs().is_empty());

    sink.up();
    wait_until("ready again with the backlog delivered", WAIT, || {
        readiness(metrics).0 == 200
            && Scrape::take(metrics).value("vellum_exporter_lag_records", &soc) == Some(0.0)
    });
    assert_eq!(
        hook.seqs().into_iter().collect::<BTreeSet<_>>(),
        (0..10).collect()
    );
    assert_eq!(get(metrics, "/healthz").0, 200);
    let again = health_check_says_available(health);
    assert!(
        again > up_since,
        "up since the recovery: {again:?} after {up_since:?}"
    );
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
}

/// Asserts the Collector's 200 answer of `health_check` on `port`; returns its `upSince`.
fn health_check_says_available(port: u16) -> std::time::SystemTime {
    let (code, body) = get(port, "/");
    assert_eq!(code, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(body["status"], "Server available", "{body}");
    let uptime = body["uptime"].as_str().unwrap();
    assert!(uptime.ends_with('s') && uptime.len() > 1, "{uptime}");
    let since = humantime::parse_rfc3339(body["upSince"].as_str().unwrap()).unwrap();
    assert!(since <= std::time::SystemTime::now());
    since
}

/// Distinctive strings sent inside records; none may reach the daemon's own log.
const SENTINELS: &[&str] = &[
    "zq-sentinel-otlp-body",
    "zq-sentinel-gateway-body",
    "zq-sentinel-gateway-attr",
    "zq-sentinel-malformed",
    "zq-sentinel-badtime",
    "zq-sentinel-otlp-malformed",
    "zq-sentinel-redacted",
    "zq-sentinel-syslog-msg",
    "zq-sentinel-syslog-unparsed",
    "zq-sentinel-framing",
];

fn syslog_send(port: u16, bytes: &[u8]) {
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.write_all(bytes).unwrap();
}

#[test]
fn the_json_log_tells_what_happened_and_never_what_records_said() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hook = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = Server::start(rt.handle(), local(0), hook.router(), hook.faults.clone());
    // The first batch is refused for good, the next attempt fails and is retried.
    hook.faults.push(Fault::status(400, "bad request"));
    hook.faults.push(Fault::status(503, "try later"));
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let metrics = free_port();
    let config = PipelineConfig::new(tmp.path())
        .otlp(ports.grpc, ports.http)
        .gateway(ports.gateway)
        .syslog_tcp(ports.syslog)
        .processor("redact/pii", "{ policy: { default: redact } }")
        .processor("hash_chain", "{ origin: test.vellum }")
        .file("file/evidence", &tmp.path().join("evidence"))
        .exporter(
            "webhook/soc",
            format!(
                "url: {}/hook\nbatch: {{ max_records: 1 }}\nretry_on_failure: {{ initial_interval: 20ms, max_interval: 100ms }}",
                sink.url()
            ),
        );
    let yaml = with_telemetry(&config, metrics, "");
    let ready = [
        local(ports.grpc),
        local(ports.http),
        local(ports.gateway),
        local(ports.syslog),
        local(metrics),
    ];
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);

    otel_send(
        "grpc",
        &format!("http://127.0.0.1:{}", ports.grpc),
        3,
        Some("zq-sentinel-otlp-body"),
    );
    let gw = |body: &str| post(ports.gateway, "/v1/events", "application/json", body);
    assert_eq!(
        gw(r#"{"message":"zq-sentinel-gateway-body","action":"zq-sentinel-gateway-attr"}"#),
        200
    );
    assert_eq!(
        gw(r#"{"action":"login","email":"zq-sentinel-redacted@corp.example.com"}"#),
        200
    );
    assert_eq!(gw(r#"{"action":"zq-sentinel-malformed", "#), 400);
    assert_eq!(gw(r#"{"action":"x","time":"zq-sentinel-badtime"}"#), 400);
    assert_eq!(
        post(
            ports.http,
            "/v1/logs",
            "application/json",
            r#"{"resourceLogs":"zq-sentinel-otlp-malformed"}"#
        ),
        400
    );
    syslog_send(
        ports.syslog,
        b"<13>1 2026-01-01T00:00:00Z host app - - - zq-sentinel-syslog-msg\n\
          not syslog at all zq-sentinel-syslog-unparsed\n",
    );
    syslog_send(ports.syslog, b"12x zq-sentinel-framing");

    // 3 + 1 + 1 + 2 entries, all delivered (one batch dead-lettered).
    let evidence_dir = tmp.path().join("evidence");
    wait_until("7 entries in the evidence", WAIT, || {
        evidence_entries(&evidence_dir).len() == 7
    });
    wait_until("6 entries at the webhook", WAIT, || hook.seqs().len() == 6);
    wait_until("the framing warning", WAIT, || {
        daemon.log_text().contains("its framing is broken")
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // The records carried the sentinels into the evidence, except the redacted one.
    let evidence = serde_json::to_string(&evidence_entries(&evidence_dir)).unwrap();
    for kept in [
        "zq-sentinel-otlp-body",
        "zq-sentinel-gateway-body",
        "zq-sentinel-gateway-attr",
        "zq-sentinel-syslog-msg",
        "zq-sentinel-syslog-unparsed",
    ] {
        assert!(evidence.contains(kept), "{kept} should be in the evidence");
    }
    assert!(!evidence.contains("zq-sentinel-redacted"));

    let log = daemon.log_text();
    for sentinel in SENTINELS {
        assert!(
            !log.contains(sentinel),
            "{sentinel} reached the daemon's log:\n{log}"
        );
    }
    assert!(!log.contains("zq-sentinel"), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    };
    let running = find("vellum is running");
    assert_eq!(running.len(), 1, "{log}");
    assert_eq!(running[0]["level"], "INFO");
    assert!(running[0]["timestamp"].is_string());
    assert_eq!(
        find("telemetry listening: /metrics, /healthz, /readyz").len(),
        1
    );
    assert!(
        find("HTTP JSON receiver listening")
            .iter()
            .any(|l| l["fields"]["receiver"] == "http/gateway")
    );
    let refused = find("sink refused a batch for good; written to the dead-letter file");
    assert_eq!(refused.len(), 1, "{log}");
    assert_eq!(refused[0]["level"], "ERROR");
    assert!(
        refused[0]["fields"]["exporter"]
            .as_str()
            .is_some_and(|e| e.ends_with("webhook/soc"))
    );
    let retried = find("delivery failed; retrying");
    assert!(
        retried.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["exporter"]
                .as_str()
                .is_some_and(|e| e.ends_with("webhook/soc"))),
        "{log}"
    );
    assert_eq!(
        find("closing syslog connection: its framing is broken")[0]["fields"]["receiver"],
        "syslog/tcp"
    );
    assert_eq!(find("stopped").len(), 1, "{log}");
}

fn validate(dir: &Path, yaml: &str) -> (i32, String) {
    let path = dir.join("vellum.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn telemetry_settings_are_validated_and_a_taken_address_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let base = PipelineConfig::standard(tmp.path(), ports);
    let line_of = |yaml: &str, needle: &str| {
        yaml.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap()
    };

    let yaml = with_telemetry(&base, 8888, "").replace("127.0.0.1:8888", "localhost");
    let (code, err) = validate(tmp.path(), &yaml);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&yaml, "address: localhost");
    assert!(
        err.contains("service.telemetry.metrics.address: `localhost` is not an endpoint")
            && err.contains(&format!("(line {line}, column")),
        "{err}"
    );

    let yaml = with_telemetry(&base, 8888, "    readiness: { exporter_stuck_after: soon }");
    let (code, err) = validate(tmp.path(), &yaml);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&yaml, "exporter_stuck_after");
    assert!(
        err.contains("service.telemetry.metrics.readiness.exporter_stuck_after")
            && err.contains(&format!("(line {line}, column")),
        "{err}"
    );

    let yaml = with_telemetry(&base, 8888, "    port: 8888");
    let (code, err) = validate(tmp.path(), &yaml);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown field `port`"), "{err}");

    // An address someone else holds: the daemon says which setting and stops.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut daemon = Daemon::start(tmp.path(), &with_telemetry(&base, port, ""), &[]);
    wait_until("the daemon to give up", WAIT, || !daemon.alive());
    assert_eq!(daemon.child.wait().unwrap().code(), Some(1));
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "service.telemetry.metrics.address: cannot listen on 127.0.0.1:{port}"
        )),
        "{log}"
    );
}
