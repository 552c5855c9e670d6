//! Hostile-input cases: configuration and processing. Client clocks that would stop
//! retention for good, values that would swell the classify windows, secrets that could
//! leak through messages and logs, stream names that would escape their folder.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::config::quoted;
use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Starts `vellum run` on `yaml`, its real-time clock `days_ahead` days in the future
/// when above 0, and waits until `ready` listens.
fn start_ahead(dir: &Path, yaml: &str, ready: SocketAddr, days_ahead: u32) -> Daemon {
    let config = dir.join("vellum.yaml");
    std::fs::write(&config, yaml).unwrap();
    let args = ["--drain-timeout", "2s"];
    Daemon::launch(dir, &config, &[ready], &args, &days_ahead_env(days_ahead))
}

/// The highest `last_seq` that a purge record for `store` declares.
fn purged_through(evidence: &Path, store: &str) -> Option<u64> {
    evidence_entries_now(evidence)
        .iter()
        .filter(|e| {
            e["event_type"] == "vellum.retention.purge" && e["attributes"]["store"] == store
        })
        .filter_map(|e| e["attributes"]["last_seq"].as_u64())
        .max()
}

/// One OTLP/JSON log whose `timeUnixNano` and `observedTimeUnixNano` say year 2500.
fn send_from_year_2500(otlp_http: u16) {
    let year_2500 = "16725225600000000000";
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": year_2500,
        "observedTimeUnixNano": year_2500,
        "body": {"stringValue": "a clock far ahead"},
        "attributes": [{"key": "marker", "value": {"stringValue": "year-2500"}}],
    }]}]}]});
    let status = ureq::post(&format!("http://127.0.0.1:{otlp_http}/v1/logs"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

fn retention_config(dir: &Path, gateway: u16, otlp_http: u16) -> String {
    PipelineConfig::new(dir)
        .gateway(gateway)
        .receiver(
            "otlp",
            format!("protocols:\n  http: {{ endpoint: 127.0.0.1:{otlp_http} }}"),
        )
        .processor(
            "hash_chain",
            "{ origin: test.vellum, checkpoint: { every_records: 50, every: 1h } }",
        )
        .exporter(
            "file/evidence",
            format!(
                "directory: {}\nmax_file_size: 2KiB\nretention_days: 30",
                quoted(dir.join("evidence").to_string_lossy())
            ),
        )
        .storage("segment_size: 8KiB\nretention_days: 30\nretention_check_interval: 1s")
        .yaml()
}

#[test]
fn a_record_dated_in_2500_does_not_stop_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (gateway, otlp_http) = (free_port(), free_port());
    let yaml = retention_config(dir, gateway, otlp_http);
    let ready = SocketAddr::from(([127, 0, 0, 1], gateway));
    let evidence = dir.join("evidence");

    // Today: old records around one that claims the year 2500.
    let mut daemon = start_ahead(dir, &yaml, ready, 0);
    for from in (0..100).step_by(50) {
        send_logins(gateway, from, 50);
    }
    send_from_year_2500(otlp_http);
    for from in (100..250).step_by(50) {
        send_logins(gateway, from, 50);
    }
    wait_until("251 entries in the evidence", WAIT, || {
        evidence_entries_now(&evidence).len() >= 251
    });
    let future_seq = evidence_entries_now(&evidence)
        .iter()
        .find(|e| e["attributes"]["marker"] == "year-2500")
        .and_then(|e| e["seq"].as_u64())
        .expect("the record from 2500 is in the evidence");
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // Forty days later everything written today is past its 30 days, whatever the
    // records claim: both stores are purged beyond the record from 2500 (files go once
    // their exporter has delivered the purge record that declares them).
    let mut daemon = start_ahead(dir, &yaml, ready, 40);
    wait_until(
        "journal and evidence purged past the record dated 2500",
        WAIT,
        || {
            let journal = purged_through(&evidence, "journal");
            let files = purged_through(&evidence, "file/evidence");
            let first_kept = evidence_entries_now(&evidence)
                .first()
                .and_then(|e| e["seq"].as_u64());
            journal.is_some_and(|s| s > future_seq)
                && files.is_some_and(|s| s > future_seq)
                && first_kept.is_some_and(|s| s > future_seq)
        },
    );
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let vkey = vkeys(&dir.join("state")).pop().unwrap();
    let (ok, report) = verify(&evidence, std::slice::from_ref(&vkey), &[]);
    assert!(ok, "{report}");
}

/// Runs `vellum validate` on `yaml` with `env` set; (exit code, stdout + stderr).
fn validate(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let path = dir.join("check.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn stream_names_that_would_leave_the_evidence_folder_are_refused_with_their_position() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = r#"
receivers:
  http: { endpoint: 127.0.0.1:0 }
processors:
  hash_chain/parent: { origin: a.example, stream: ".." }
  hash_chain/climb: { origin: a.example, stream: "logs/../../etc" }
  hash_chain/escape: { origin: a.example, stream: "a\eb\\c" }
exporters:
  file/evidence: { directory: /tmp/vellum-never-written }
service:
  storage: { directory: /tmp/vellum-never-written-state }
  pipelines:
    logs/a: { receivers: [http], processors: [hash_chain/parent], exporters: [file/evidence] }
    logs/b: { receivers: [http], processors: [hash_chain/climb], exporters: [file/evidence] }
    logs/c: { receivers: [http], processors: [hash_chain/escape], exporters: [file/evidence] }
"#;
    let (code, text) = validate(tmp.path(), yaml, &[]);
    assert_eq!(code, 2, "{text}");
    for expected in [
        "processors.hash_chain/parent.stream: `..` starts with a dot, which names a hidden, current or parent folder",
        "processors.hash_chain/climb.stream: `..` starts with a dot",
        "processors.hash_chain/escape.stream: the character U+001B is not allowed",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(expected))
            .unwrap_or_else(|| panic!("no `{expected}` in:\n{text}"));
        assert!(line.contains("(line "), "no position: {line}");
    }
    assert!(
        !text.contains('\u{1b}'),
        "a control character is echoed raw"
    );
}

/// Posts one failed login whose `user_id` is `user`, and expects 200.
fn post_login(gateway: u16, user: &str) {
    let body = serde_json::json!({"action": "login.failed", "user_id": user}).to_string();
    let status = ureq::post(&format!("http://127.0.0.1:{gateway}/v1/events"))
        .send(body.as_bytes())
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

#[test]
fn one_mebibyte_user_ids_do_not_grow_the_classify_windows() {
    const MAX_TRACKED_KEYS: u64 = 10_000;
    const THRESHOLD: u64 = 5;
    const USERS: usize = 120;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = free_port();
    let yaml = PipelineConfig::new(dir)
        .gateway(gateway)
        .processor(
            "classify",
            format!(
                r#"
                windows:
                  - {{ name: per_user, when: "attributes.action == 'login.failed'", key: attributes.user_id, threshold: {THRESHOLD}, within: 10m, severity: high }}
                max_tracked_keys: {MAX_TRACKED_KEYS}
                "#
            ),
        )
        .exporter(
            "file/evidence",
            format!(
                "{{ directory: {}, batch: {{ max_records: 2 }} }}",
                quoted(dir.join("evidence").to_string_lossy())
            ),
        )
        .yaml();
    let mut daemon = Daemon::start(dir, &yaml, &[SocketAddr::from(([127, 0, 0, 1], gateway))]);
    let pid = daemon.child.id();
    let user = |i: usize| format!("{i:08}{}", "x".repeat((1 << 20) - 8));

    // Warm up: the per-request working set of a 1 MiB event is in the peak from here on.
    for i in 0..10 {
        post_login(gateway, &user(i));
    }
    let warm = peak_rss_bytes(pid);
    for i in 10..10 + USERS {
        post_login(gateway, &user(i));
    }
    // The same user five times is a burst: the digest keys still group records.
    for _ in 0..THRESHOLD {
        post_login(gateway, &user(3));
    }
    let peak = peak_rss_bytes(pid);
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // What the window may hold (10,000 keys × (5 times × 8 + 256) bytes, under 3 MiB),
    // plus 32 MiB for the allocator; each user id kept whole would add 120 MiB.
    let window_bound = MAX_TRACKED_KEYS * (THRESHOLD * 8 + 256);
    let slack = 32 << 20;
    println!(
        "peak RSS after warm-up {} MiB, after {USERS} more 1 MiB user ids {} MiB",
        warm >> 20,
        peak >> 20
    );
    assert!(
        peak <= warm + window_bound + slack,
        "peak RSS grew from {} MiB to {} MiB",
        warm >> 20,
        peak >> 20
    );
    let entries = evidence_entries(&dir.join("evidence"));
    let burst = entries
        .iter()
        .filter(|e| {
            e["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "per_user"))
        })
        .count();
    // User 3 arrived once in the warm-up and five times more: the fifth and sixth arrivals
    // within the window are escalated.
    assert_eq!(burst, 2, "escalated records of user 3");
}

const PASSWORD: &str = "s3cretpass";
const QUERY_TOKEN: &str = "qwerty123";
/// Reads as a number: the expansion used to make it one, and serde's type error
/// quoted it.
const NUMERIC_SECRET: &str = "918273645501";

#[test]
fn validate_never_prints_an_expanded_secret_or_a_url_password() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
receivers:
  http: {{ endpoint: 127.0.0.1:0, bearer_token: "${{env:GATEWAY_TOKEN}}" }}
processors:
  hash_chain: {{ origin: a.example, checkpoint: {{ every_records: "${{env:GATEWAY_TOKEN}}0" }} }}
exporters:
  webhook/soc: {{ url: "https://alice:{PASSWORD}@hooks.example.com:99999/h?token={QUERY_TOKEN}" }}
service:
  storage: {{ directory: /tmp/vellum-never-written-state }}
  pipelines:
    logs/a: {{ receivers: [http], processors: [hash_chain], exporters: [webhook/soc] }}
"#
    );
    let (code, text) = validate(tmp.path(), &yaml, &[("GATEWAY_TOKEN", NUMERIC_SECRET)]);
    assert_eq!(code, 2, "{text}");
    // Each setting is still named, with what is wrong with it.
    for expected in [
        "receivers.http.bearer_token: a bearer token has at least 16 characters",
        "processors.hash_chain.checkpoint.every_records:",
        "exporters.webhook/soc.url:",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert!(text.contains("${env:GATEWAY_TOKEN}0"), "{text}");
    for secret in [NUMERIC_SECRET, PASSWORD, QUERY_TOKEN] {
        assert!(!text.contains(secret), "`{secret}` printed:\n{text}");
    }
}

/// A sink that answers every request `400`, echoing the request line in its body as
/// some sinks do.
fn rejecting_sink() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            let mut length = 0usize;
            let mut line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let answer = format!(
                "refused http://alice:{PASSWORD}@127.0.0.1:{port}{}",
                request_line.split_whitespace().nth(1).unwrap_or("")
            );
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    port
}

#[test]
fn a_failing_sink_with_credentials_in_its_url_leaks_them_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = free_port();
    let closed = free_port();
    let rejecting = rejecting_sink();
    let yaml = PipelineConfig::new(dir)
        .gateway(gateway)
        .exporter(
            "webhook/down",
            format!(
                r#"
                url: "http://alice:{PASSWORD}@127.0.0.1:{closed}/hook?token={QUERY_TOKEN}"
                retry_on_failure: {{ initial_interval: 50ms, max_interval: 100ms }}
                "#
            ),
        )
        .exporter(
            "webhook/rejects",
            format!(
                r#"{{ url: "http://alice:{PASSWORD}@127.0.0.1:{rejecting}/hook?token={QUERY_TOKEN}" }}"#
            ),
        )
        .yaml();
    let mut daemon = Daemon::start(dir, &yaml, &[SocketAddr::from(([127, 0, 0, 1], gateway))]);
    send_logins(gateway, 0, 3);
    let dead_letters = || {
        files_under(&dir.join("state"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("dead-letter"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect::<String>()
    };
    wait_until("a dead letter and a retried delivery", WAIT, || {
        !dead_letters().is_empty() && daemon.log_text().contains("delivery failed; retrying")
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let (log, dead) = (daemon.log_text(), dead_letters());
    assert!(dead.contains("400 Bad Request"), "{dead}");
    assert!(log.contains("127.0.0.1"), "the log names the sink: {log}");
    for secret in [PASSWORD, QUERY_TOKEN] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
        assert!(
            !dead.contains(secret),
            "`{secret}` in the dead letter:\n{dead}"
        );
    }
}
