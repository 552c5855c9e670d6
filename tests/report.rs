//! `vellum report` over evidence the real daemon wrote: counts checked against what was
//! sent, the period's bounds, verification turning to failed after tampering, and the
//! HTML opened in headless Chromium.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{BIN, Daemon, evidence_entries, free_port, vkeys, wait_until};
use serde_json::Value;

const HMAC_KEY: &str = "k1=report-test-key-0123456789abcdef";

/// One event the test sends, and what the built-in `classify` pack (as
/// `classify_builtin.yaml` documents it) and the report's mapping make of it.
struct Sent {
    json: String,
    event_type: &'static str,
    severity: &'static str,
    /// In November 2026, the period reported on.
    in_period: bool,
    /// access, change, failed_auth, security.
    sections: [bool; 4],
}

const ACCESS: [bool; 4] = [true, false, false, false];
const CHANGE: [bool; 4] = [false, true, false, false];
const FAILED: [bool; 4] = [false, false, true, false];
const SECURITY: [bool; 4] = [false, false, false, true];
const CHANGE_AND_SECURITY: [bool; 4] = [false, true, false, true];

const XSS_USER: &str = "<script>alert(1)</script>";
const XSS_ADDRESS: &str = "\"><img src=x onerror=alert(2)>";

fn events() -> Vec<Sent> {
    let mut out = Vec::new();
    let mut add = |time: &str, fields: Value, event_type, severity, in_period, sections| {
        let mut object = fields.as_object().cloned().unwrap_or_default();
        object.insert("time".into(), Value::String(time.into()));
        out.push(Sent {
            json: Value::Object(object).to_string(),
            event_type,
            severity,
            in_period,
            sections,
        });
    };
    use serde_json::json;
    // Failed logins of distinct accounts (no burst escalation), one carrying markup.
    for (i, user) in ["f1", "f2", "f3", "f4", "f5", XSS_USER].iter().enumerate() {
        let ip = if i == 5 { XSS_ADDRESS } else { "203.0.113.9" };
        add(
            &format!("2026-11-0{}T08:00:00Z", i + 2),
            json!({"action": "login.failed", "user_id": user, "ip": ip}),
            "authentication",
            "medium",
            true,
            FAILED,
        );
    }
    // The first instant of the period is in it.
    add(
        "2026-11-01T00:00:00Z",
        json!({"action": "login.succeeded", "user_id": "s1"}),
        "authentication",
        "info",
        true,
        ACCESS,
    );
    add(
        "2026-11-10T09:00:00Z",
        json!({"action": "login.succeeded", "user_id": "s2"}),
        "authentication",
        "info",
        true,
        ACCESS,
    );
    add(
        "2026-11-10T09:05:00Z",
        json!({"action": "login.succeeded", "user_id": "s3"}),
        "authentication",
        "info",
        true,
        ACCESS,
    );
    for (i, time) in [
        "2026-11-11T10:00:00Z",
        "2026-11-12T10:00:00Z",
        "2026-11-13T10:00:00Z",
        "2026-11-30T23:59:59.999Z",
    ]
    .iter()
    .enumerate()
    {
        add(
            time,
            json!({"action": "model.invoke", "user_id": format!("m{i}"), "model": "gpt-test"}),
            "model_request",
            "info",
            true,
            ACCESS,
        );
    }
    add(
        "2026-11-14T11:00:00Z",
        json!({"action": "role.assigned", "user_id": "admin", "target": "bob", "role": "owner"}),
        "authorization",
        "high",
        true,
        CHANGE_AND_SECURITY,
    );
    add(
        "2026-11-15T11:00:00Z",
        json!({"action": "config.updated", "user_id": "admin", "setting": "max_tokens"}),
        "configuration_change",
        "low",
        true,
        CHANGE,
    );
    add(
        "2026-11-16T11:00:00Z",
        json!({"action": "api_key.rotated", "user_id": "admin"}),
        "credential_change",
        "medium",
        true,
        CHANGE,
    );
    add(
        "2026-11-17T12:00:00Z",
        json!({"action": "prompt_injection.detected", "user_id": "m1"}),
        "security",
        "high",
        true,
        SECURITY,
    );
    add(
        "2026-11-18T12:00:00Z",
        json!({"action": "logs.exported", "user_id": "auditor"}),
        "data_access",
        "low",
        true,
        ACCESS,
    );
    // `redact` blocks it: a `pii_blocked` record takes its place, then `classify` grades it.
    add(
        "2026-11-19T12:00:00Z",
        json!({"action": "model.invoke", "user_id": "m9", "prompt": "my ssn is 536-22-8741"}),
        "pii_blocked",
        "medium",
        true,
        SECURITY,
    );
    // Just before and at the end of the period: outside it.
    add(
        "2026-10-31T23:59:59.999Z",
        json!({"action": "login.failed", "user_id": "early"}),
        "authentication",
        "medium",
        false,
        FAILED,
    );
    add(
        "2026-10-31T12:00:00Z",
        json!({"action": "config.updated", "user_id": "admin"}),
        "configuration_change",
        "low",
        false,
        CHANGE,
    );
    add(
        "2026-12-01T00:00:00Z",
        json!({"action": "login.failed", "user_id": "late"}),
        "authentication",
        "medium",
        false,
        FAILED,
    );
    add(
        "2026-12-01T00:00:01Z",
        json!({"action": "prompt_injection.detected", "user_id": "late"}),
        "security",
        "high",
        false,
        SECURITY,
    );
    out
}

/// Evidence written once by the daemon, shared by the tests of this file.
struct Fixture {
    dir: PathBuf,
    evidence: PathBuf,
    vkeys: Vec<String>,
    sent: Vec<Sent>,
    /// The HIPAA report of November 2026: HTML and JSON paths, and the JSON.
    html: PathBuf,
    json: Value,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let evidence = dir.join("evidence");
        let state = dir.join("state");
        let key = HMAC_KEY.split_once('=').unwrap().1;
        let yaml = format!(
            r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{port}, path: /v1/events }}
processors:
  redact/pii:
    policy: {{ default: redact, ssn: block }}
  classify: {{ rules: builtin }}
  hash_chain:
    origin: test.vellum
    checkpoint: {{ every_records: 8, every: 1s }}
  hmac_sign:
    keys:
      - {{ id: k1, key: "{key}" }}
exporters:
  file/evidence: {{ directory: {evidence}, retention_days: 400 }}
service:
  storage: {{ directory: {state}, retention_days: 0 }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [redact/pii, classify, hash_chain, hmac_sign]
      exporters: [file/evidence]
"#,
            evidence = evidence.display(),
            state = state.display(),
        );
        let mut daemon = Daemon::start(&dir, &yaml, &[([127, 0, 0, 1], port).into()]);
        let sent = events();
        let body: String = sent.iter().map(|e| format!("{}\n", e.json)).collect();
        let status = ureq::post(&format!("http://127.0.0.1:{port}/v1/events"))
            .send(body.as_bytes())
            .expect("post the events")
            .status();
        assert_eq!(status.as_u16(), 200);
        wait_until(
            "every event in the evidence",
            Duration::from_secs(30),
            || evidence_entries(&evidence).len() == sent.len(),
        );
        assert!(daemon.terminate().success(), "{}", daemon.log_text());
        let config = daemon.config.clone();
        let vkeys = vkeys(&state);
        assert_eq!(vkeys.len(), 1);

        let html = dir.join("report.html");
        let json_path = dir.join("report.json");
        let out = report(&[
            "--framework",
            "hipaa",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--config",
            config.to_str().unwrap(),
            "--hmac-key",
            HMAC_KEY,
            "--vkey",
            &vkeys[0],
            "--out",
            html.to_str().unwrap(),
            "--json",
            json_path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        Fixture {
            dir,
            evidence,
            vkeys,
            sent,
            html,
            json,
        }
    })
}

fn report(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("report")
        .args(args)
        .output()
        .expect("run vellum report")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A JSON report written to a fresh file of the fixture directory.
fn json_report(name: &str, args: &[&str]) -> (Output, Value) {
    let f = fixture();
    let html = f.dir.join(format!("{name}.html"));
    let json = f.dir.join(format!("{name}.json"));
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--out",
        html.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = report(&all);
    let value = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (out, value)
}

fn counts(map: &Value) -> BTreeMap<String, u64> {
    map.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn counts_match_what_was_sent_in_the_period() {
    let f = fixture();
    let j = &f.json;
    let in_period: Vec<&Sent> = f.sent.iter().filter(|e| e.in_period).collect();
    let mut by_type = BTreeMap::new();
    let mut by_severity = BTreeMap::new();
    let mut sections = [0u64; 4];
    for e in &in_period {
        *by_type.entry(e.event_type.to_string()).or_insert(0u64) += 1;
        *by_severity.entry(e.severity.to_string()).or_insert(0u64) += 1;
        for (n, placed) in sections.iter_mut().zip(e.sections) {
            *n += u64::from(placed);
        }
    }
    assert_eq!(j["framework"]["id"], "hipaa");
    assert_eq!(j["period"]["from"], "2026-11-01T00:00:00Z");
    assert_eq!(j["period"]["to"], "2026-12-01T00:00:00Z");
    let totals = &j["totals"];
    assert_eq!(totals["in_period"], in_period.len() as u64, "{totals}");
    assert_eq!(totals["entries_read"], f.sent.len() as u64);
    assert_eq!(
        totals["before_period"].as_u64().unwrap() + totals["after_period"].as_u64().unwrap(),
        (f.sent.len() - in_period.len()) as u64
    );
    assert_eq!(counts(&j["by_event_type"]), by_type);
    assert_eq!(counts(&j["by_severity"]), by_severity);
    let totals_of = |k: &str| j[k]["total"].as_u64().unwrap();
    assert_eq!(
        [
            totals_of("access"),
            totals_of("changes"),
            totals_of("failed_auth"),
            totals_of("security")
        ],
        sections
    );
    // Every failed login came from a distinct account, each listed with its one failure.
    let users: Vec<&str> = j["failed_auth"]["by_user"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["count"], 1);
            u["key"].as_str().unwrap()
        })
        .collect();
    assert_eq!(users.len(), 6);
    assert!(users.contains(&XSS_USER));
    assert!(!users.contains(&"early") && !users.contains(&"late"));
    // The records outside the period appear in no table.
    for table in ["access", "changes", "failed_auth", "security"] {
        for row in j[table]["rows"].as_array().unwrap() {
            let time = row["time"].as_str().unwrap();
            assert!(time.starts_with("2026-11-"), "{table}: {row}");
        }
    }
}

#[test]
fn verification_and_retention_are_reported() {
    let f = fixture();
    let v = &f.json["verification"];
    assert_eq!(v["status"], "passed", "{v}");
    assert_eq!(v["macs_checked"], true);
    assert_eq!(v["signatures_checked"], true);
    let stream = &v["streams"][0];
    assert_eq!(stream["stream"], "logs/audit");
    assert_eq!(
        stream["covered"], true,
        "the shutdown checkpoint covers it: {stream}"
    );
    assert_eq!(stream["confirmed_size"], f.sent.len() as u64);

    let r = &f.json["retention"];
    assert_eq!(r["minimum_days"], 6 * 365 + 2);
    assert_eq!(r["required"], true);
    assert_eq!(r["status"], "short", "{r}");
    let stores: BTreeMap<&str, (&str, Option<u64>)> = r["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["store"].as_str().unwrap(),
                (s["status"].as_str().unwrap(), s["days"].as_u64()),
            )
        })
        .collect();
    assert_eq!(stores["journal"], ("meets", Some(0)));
    assert_eq!(stores["file/evidence"], ("short", Some(400)));

    // Without a configuration the settings are unknown, and without keys unchecked.
    let (out, j) = json_report(
        "no-config",
        &[
            "--framework",
            "soc2",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--evidence",
            f.evidence.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(j["retention"]["status"], "unknown");
    assert_eq!(j["retention"]["configured"], false);
    assert_eq!(j["verification"]["macs_checked"], false);
    assert_eq!(j["verification"]["signatures_checked"], false);
}

#[test]
fn the_period_bounds_select_the_records() {
    let f = fixture();
    let evidence = f.evidence.to_str().unwrap();
    let times: Vec<String> = f
        .sent
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&e.json).unwrap()["time"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let count = |from: &str, to: &str| {
        let (out, j) = json_report(
            "period",
            &[
                "--framework",
                "gdpr",
                "--from",
                from,
                "--to",
                to,
                "--evidence",
                evidence,
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        j["totals"]["in_period"].as_u64().unwrap()
    };
    // 31 October only: the two records dated that day.
    let october = times.iter().filter(|t| t.starts_with("2026-10-31")).count() as u64;
    assert_eq!(october, 2);
    assert_eq!(count("2026-10-31", "2026-10-31"), october);
    // A time as `--to` is exclusive: the record at exactly 2026-12-01T00:00:00Z is out.
    let november = times.iter().filter(|t| t.starts_with("2026-11")).count() as u64;
    assert_eq!(
        count("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        november
    );
    assert_eq!(
        count("2026-11-01T00:00:00Z", "2026-12-01T00:00:00.001Z"),
        november + 1
    );
    // A period with nothing in it.
    assert_eq!(count("2025-01-01", "2025-12-31"), 0);

    let out = report(&[
        "--framework",
        "hipaa",
        "--from",
        "2026-11-30",
        "--to",
        "2026-11-01",
        "--evidence",
        evidence,
        "--out",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("period is empty"), "{}", text(&out));
    let out = report(&[
        "--framework",
        "sox",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--evidence",
        evidence,
        "--out",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn one_changed_evidence_line_turns_verification_to_failed() {
    let f = fixture();
    let copy = f.dir.join("tampered");
    let _ = std::fs::remove_dir_all(&copy);
    let mut changed_seq = None;
    for file in common::files_under(&f.evidence) {
        let target = copy.join(file.strip_prefix(&f.evidence).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let mut content = std::fs::read_to_string(&file).unwrap();
        if changed_seq.is_none() && content.contains("\"user_id\":\"s2\"") {
            let line = content
                .lines()
                .find(|l| l.contains("\"user_id\":\"s2\""))
                .unwrap();
            changed_seq = serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64();
            content = content.replacen("\"user_id\":\"s2\"", "\"user_id\":\"s9\"", 1);
        }
        std::fs::write(&target, content).unwrap();
    }
    let changed_seq = changed_seq.expect("the evidence holds the login of s2");
    let (out, j) = json_report(
        "tampered",
        &[
            "--framework",
            "iso27001",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--evidence",
            copy.to_str().unwrap(),
            "--hmac-key",
            HMAC_KEY,
            "--vkey",
            &f.vkeys[0],
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("verification FAILED"), "{}", text(&out));
    let v = &j["verification"];
    assert_eq!(v["status"], "failed");
    assert!(v["findings_in_period"].as_u64().unwrap() >= 1, "{v}");
    let findings = v["directories"][0]["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|x| x["seq"] == changed_seq && x["in_period"] == true),
        "no finding at seq {changed_seq}: {v}"
    );
    // The untouched evidence still verifies.
    assert!(common::verify(&f.evidence, &f.vkeys, &[HMAC_KEY.to_string()]).0);
}

/// Runs Debian's Chromium headless with the flags this machine needs, with a deadline.
fn chromium(args: &[&str]) -> Output {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("Chromium is not installed: scripts/test.sh installs Debian's `chromium` (apt-get install chromium)")
        });
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 120s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("chromium output")
}

/// Lines of Chromium's log that the page itself caused: console messages (Chromium logs
/// them all as `INFO:CONSOLE`, whatever their level: script errors, blocked fetches,
/// policy violations) and uncaught exceptions. The report has no script, so any is wrong.
fn page_messages(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[test]
fn the_html_report_opens_in_chromium_without_errors() {
    let f = fixture();
    let url = format!("file://{}", f.html.display());

    // The check sees what a broken page does: a fetch the policy blocks, a thrown error.
    let broken = f.dir.join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><meta http-equiv=\"Content-Security-Policy\" content=\"img-src 'none'\">\
         <img src=\"https://example.invalid/x.png\"><script>undefinedFunction()</script>",
    )
    .unwrap();
    let out = chromium(&["--dump-dom", &format!("file://{}", broken.display())]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(page_messages(&log).len(), 2, "{log}");

    let dom = chromium(&["--dump-dom", &url]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "{}", text(&dom));
    assert!(page_messages(&log).is_empty(), "{:?}", page_messages(&log));
    for section in [
        "controls",
        "counts",
        "access",
        "changes",
        "failed_auth",
        "security",
        "verification",
        "retention",
    ] {
        assert!(
            dom_text.contains(&format!("<section id=\"{section}\">")),
            "no section {section}"
        );
    }
    assert!(dom_text.contains("§164.316(b)(2)(i)"));
    // The markup sent as a user id and an address is text in the page, not elements.
    assert!(
        dom_text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped user id missing"
    );
    assert!(
        dom_text.contains("\"&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "escaped address missing"
    );
    assert!(
        !dom_text.contains("<script"),
        "a script element in the page"
    );
    assert!(!dom_text.contains("<img"), "an img element in the page");

    let png_path = f.dir.join("report.png");
    let _ = std::fs::remove_file(&png_path);
    let shot = chromium(&[
        &format!("--screenshot={}", png_path.display()),
        "--window-size=1280,2000",
        "--hide-scrollbars",
        &url,
    ]);
    assert!(shot.status.success(), "{}", text(&shot));
    let log = String::from_utf8_lossy(&shot.stderr);
    assert!(page_messages(&log).is_empty(), "{:?}", page_messages(&log));
    let bytes = std::fs::read(&png_path).expect("chromium wrote no screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a decodable PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    assert_eq!((frame.width, frame.height), (1280, 2000));
    let channels = frame.line_size / frame.width as usize;
    let mut colours = std::collections::HashSet::new();
    for pixel in pixels[..frame.buffer_size()].chunks(channels) {
        colours.insert(pixel.to_vec());
        if colours.len() > 50 {
            break;
        }
    }
    assert!(
        colours.len() > 50,
        "the page rendered nearly blank: {} colours",
        colours.len()
    );
}
