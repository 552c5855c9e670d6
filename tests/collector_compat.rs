//! Coming from the OpenTelemetry Collector: a Collector configuration that uses only
//! components both share loads as it is, and the daemon's console log, written to a
//! file, carries no terminal colour codes.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

/// A Collector configuration as its users write it: the `otlp` receiver and exporter
/// (`host:port` with `tls.insecure`), `otlphttp` with `headers`, `retry_on_failure`,
/// `sending_queue` and `timeout`, the `health_check` extension, the Collector's log
/// `encoding`, no `service.storage`.
const COLLECTOR_CONFIG: &str = r#"
extensions:
  health_check:
    endpoint: 127.0.0.1:13133

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318

exporters:
  otlp:
    endpoint: https://collector.example.com:4317
  otlp/gateway:
    endpoint: gateway.example.com:4317
    tls:
      insecure: true
  otlphttp:
    endpoint: http://collector.example.com:4318
    headers:
      X-Scope-OrgID: tenant-a
    tls:
      insecure: true
    retry_on_failure:
      enabled: true
      initial_interval: 5s
      max_interval: 30s
      max_elapsed_time: 300s
    sending_queue:
      enabled: true
      num_consumers: 10
      queue_size: 5000
    timeout: 10s

service:
  extensions: [health_check]
  telemetry:
    logs:
      level: info
      encoding: json
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp, otlp/gateway, otlphttp]
"#;

fn validate(path: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_collector_config_using_only_shared_components_validates_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("otelcol.yaml");
    std::fs::write(&path, COLLECTOR_CONFIG).unwrap();
    let (code, text) = validate(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid"), "{text}");

    // The same file with the extension listed but not defined is refused, located.
    let broken = COLLECTOR_CONFIG.replace(
        "extensions:\n  health_check:\n    endpoint: 127.0.0.1:13133\n",
        "",
    );
    std::fs::write(&path, &broken).unwrap();
    let (code, text) = validate(&path);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("service.extensions[0]: `health_check` is not defined under `extensions`"),
        "{text}"
    );
}

#[test]
fn collector_exporter_keys_without_a_meaning_here_are_refused_where_they_stand() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("otelcol.yaml");
    let config = COLLECTOR_CONFIG
        .replace(
            "      queue_size: 5000\n",
            "      queue_size: 5000\n      storage: file_storage/queue\n",
        )
        .replace(
            "      X-Scope-OrgID: tenant-a\n",
            "      X-Scope-OrgID: tenant-a\n      Content-Length: \"12\"\n",
        )
        .replace(
            "    endpoint: http://collector.example.com:4318\n",
            "    endpoint: https://collector.example.com:4318\n",
        );
    std::fs::write(&path, &config).unwrap();
    let (code, text) = validate(&path);
    assert_eq!(code, 2, "{text}");
    for expected in [
        "exporters.otlphttp.sending_queue.storage",
        "the journal under service.storage is already this exporter's persistent queue",
        "exporters.otlphttp.headers.Content-Length",
        "exporters.otlphttp.tls.insecure",
    ] {
        assert!(text.contains(expected), "{expected} missing in:\n{text}");
    }
}

#[test]
fn the_console_log_written_to_a_file_has_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let (grpc, health) = (free_port(), free_port());
    let yaml = format!(
        r#"
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
processors:
  hash_chain: {{ origin: test.vellum }}
exporters:
  file/evidence: {{ directory: {evidence} }}
service:
  storage: {{ directory: {state} }}
  extensions: [health_check]
  telemetry:
    logs: {{ level: info, encoding: console }}
  pipelines:
    logs/audit:
      receivers: [otlp]
      processors: [hash_chain]
      exporters: [file/evidence]
"#,
        evidence = tmp.path().join("evidence").display(),
        state = tmp.path().join("state").display(),
    );
    let ready: [SocketAddr; 2] = [
        ([127, 0, 0, 1], grpc).into(),
        ([127, 0, 0, 1], health).into(),
    ];
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    wait_until(
        "the daemon to say it runs",
        std::time::Duration::from_secs(30),
        || daemon.log_text().contains("vellum is running"),
    );
    assert_eq!(daemon.terminate().code(), Some(0));
    let log = daemon.log_text();
    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log:?}");
    assert!(log.contains(" INFO "), "console lines, not JSON:\n{log}");
    assert!(!log.starts_with('{'), "console lines, not JSON:\n{log}");
}

#[test]
fn a_sending_queue_size_makes_receivers_push_back_once_that_many_records_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let (gateway, metrics, closed) = (free_port(), free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events }}
exporters:
  otlphttp/down:
    endpoint: http://127.0.0.1:{closed}
    sending_queue: {{ enabled: true, num_consumers: 4, queue_size: 20 }}
service:
  storage: {{ directory: {state} }}
  telemetry:
    metrics: {{ address: 127.0.0.1:{metrics} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      exporters: [otlphttp/down]
"#,
        state = tmp.path().join("state").display(),
    );
    let ready: [SocketAddr; 2] = [
        ([127, 0, 0, 1], gateway).into(),
        ([127, 0, 0, 1], metrics).into(),
    ];
    let _daemon = Daemon::start(tmp.path(), &yaml, &ready);
    let url = format!("http://127.0.0.1:{gateway}/v1/events");
    let body = |from: usize| -> String {
        (from..from + 15)
            .map(|i| format!("{{\"action\":\"login\",\"user_id\":\"u{i}\"}}\n"))
            .collect()
    };
    // 15 and 15 more: the second request still finds 15 waiting, within the 20 allowed.
    assert_eq!(http_post(&url, None, body(0).as_bytes()).0, 200);
    assert_eq!(http_post(&url, None, body(15).as_bytes()).0, 200);
    // 30 now wait for a sink that is down: past the queue's size, receivers push back.
    let (status, answer) = http_post(&url, None, body(30).as_bytes());
    assert!(matches!(status, 429 | 503), "{status} {answer}");

    let text = http_get(&format!("http://127.0.0.1:{metrics}/metrics")).1;
    let capacity = text
        .lines()
        .find(|l| l.starts_with("otelcol_exporter_queue_capacity{") && l.contains("otlphttp/down"))
        .unwrap_or_else(|| panic!("no queue capacity in:\n{text}"));
    assert!(capacity.ends_with(" 20"), "{capacity}");
}
