//! Unit tests of the report: period, facts, placement, retention and collection.

use std::path::Path;

use serde_json::Value;

use super::policy::retention;
use super::*;
use crate::event::format_time;
use crate::evidence::seal::Chain;
use crate::evidence::verify::Options;
use serde_json::json;

const DAY: u64 = 86_400 * 1_000_000_000;
/// 2026-11-01T00:00:00Z.
const NOV_1: u64 = 1_793_491_200 * 1_000_000_000;

#[test]
fn a_to_date_includes_its_day_and_a_to_time_is_exclusive() {
    let p = Period::parse("2026-11-01", "2026-11-30").unwrap();
    assert_eq!(p.from, "2026-11-01T00:00:00Z");
    assert_eq!(p.to, "2026-12-01T00:00:00Z");
    assert_eq!(p.from_ns, NOV_1);
    assert_eq!(p.to_ns, NOV_1 + 30 * DAY);
    assert!(p.contains(NOV_1));
    assert!(p.contains(NOV_1 + 30 * DAY - 1));
    assert!(!p.contains(NOV_1 - 1));
    assert!(!p.contains(NOV_1 + 30 * DAY));

    let p = Period::parse("2026-11-01T12:00:00+01:00", "2026-11-02T00:00:00.5Z").unwrap();
    assert_eq!(p.from, "2026-11-01T11:00:00Z");
    assert_eq!(p.to_ns, NOV_1 + DAY + 500_000_000);
    assert!(!p.contains(p.to_ns));
    // One day: from and to the same date.
    let p = Period::parse("2026-11-05", "2026-11-05").unwrap();
    assert_eq!(p.to_ns - p.from_ns, DAY);
}

#[test]
fn bad_periods_say_which_bound_is_wrong() {
    let err = Period::parse("2026-13-01", "2026-11-30").unwrap_err();
    assert!(err.starts_with("--from:"), "{err}");
    let err = Period::parse("2026-11-01", "yesterday").unwrap_err();
    assert!(
        err.starts_with("--to:") && err.contains("yesterday"),
        "{err}"
    );
    let err = Period::parse("2026-11-02", "2026-11-01").unwrap_err();
    assert!(err.contains("empty"), "{err}");
    assert!(Period::parse("1969-12-01", "2026-11-01").is_err());
}

fn facts(event_type: &str, severity: &str, attributes: Value) -> Facts {
    let entry = json!({"event_type": event_type, "severity": severity, "attributes": attributes});
    facts_of(entry)
}

fn facts_of(entry: Value) -> Facts {
    let text = entry.to_string();
    Facts::of(&serde_json::from_str(&text).unwrap())
}

fn placed(event_type: &str, severity: &str, attributes: Value) -> [bool; 4] {
    let p = facts(event_type, severity, attributes).placement();
    [p.access, p.change, p.failed_auth, p.security]
}

#[test]
fn records_go_to_the_sections_the_mapping_documents() {
    //                                                                     access change failed security
    let cases = [
        (
            placed(
                "authentication",
                "medium",
                json!({"action": "login.failed"}),
            ),
            [false, false, true, false],
        ),
        (
            placed("authentication", "high", json!({"action": "login.failed"})),
            [false, false, true, true],
        ),
        (
            placed(
                "authentication",
                "medium",
                json!({"action": "login", "outcome": "DENIED"}),
            ),
            [false, false, true, false],
        ),
        (
            placed(
                "authentication",
                "medium",
                json!({"action": "api_key.invalid"}),
            ),
            [false, false, true, false],
        ),
        (
            placed(
                "authentication",
                "info",
                json!({"action": "login.succeeded"}),
            ),
            [true, false, false, false],
        ),
        (
            placed("authentication", "high", json!({"action": "mfa.disabled"})),
            [false, true, false, true],
        ),
        (
            placed(
                "authorization",
                "medium",
                json!({"action": "access.denied"}),
            ),
            [true, false, false, false],
        ),
        (
            placed(
                "authorization",
                "medium",
                json!({"uri": "/v1/x", "response_status_code": 403}),
            ),
            [true, false, false, false],
        ),
        (
            placed("authorization", "high", json!({"action": "role.assigned"})),
            [false, true, false, true],
        ),
        (
            placed(
                "configuration_change",
                "low",
                json!({"action": "config.updated"}),
            ),
            [false, true, false, false],
        ),
        (
            placed(
                "credential_change",
                "medium",
                json!({"action": "api_key.rotated"}),
            ),
            [false, true, false, false],
        ),
        (
            placed("model_request", "info", json!({"action": "model.invoke"})),
            [true, false, false, false],
        ),
        (
            placed("data_access", "low", json!({"action": "logs.exported"})),
            [true, false, false, false],
        ),
        (
            placed(
                "security",
                "high",
                json!({"action": "prompt_injection.detected"}),
            ),
            [false, false, false, true],
        ),
        (
            placed("pii_blocked", "medium", json!({})),
            [false, false, false, true],
        ),
        (
            placed("other", "info", json!({"action": "vellum.retention.purge"})),
            [false, true, false, false],
        ),
        (
            placed("other", "critical", json!({})),
            [false, false, false, true],
        ),
        (
            placed("other", "info", json!({"action": "login.failed"})),
            [false, false, false, false],
        ),
    ];
    for (i, (got, want)) in cases.iter().enumerate() {
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn facts_come_from_the_gateway_vocabularies_and_are_cut_to_size() {
    let f = facts(
        "",
        "severe",
        json!({"actor": {"session": {"user": {"id": "u7"}, "ip_address": "198.51.100.4"}},
               "type": "login.failed", "event": {"outcome": "failure"},
               "uri": "x".repeat(500)}),
    );
    assert_eq!(f.event_type, UNCLASSIFIED);
    assert_eq!(f.severity, UNCLASSIFIED);
    assert_eq!(f.actor, "u7");
    assert_eq!(f.address, "198.51.100.4");
    assert_eq!(f.action, "login.failed");
    assert_eq!(f.outcome, "failure");
    assert_eq!(f.target.chars().count(), MAX_CELL_CHARS + 1);
    assert!(f.target.ends_with('…'));
    // Without an action, the body's message says what happened; controls are masked.
    let entry = json!({"body": {"message": "blocked\u{7}"}, "attributes": {"user": {"id": 5}}});
    let f = facts_of(entry);
    assert_eq!(f.action, "blocked\u{fffd}");
    assert_eq!(f.actor, "5");
}

#[test]
fn stores_are_compared_with_the_minimum_and_zero_means_forever() {
    let store = |kind, days| StoreSetting {
        store: "x".into(),
        kind,
        setting: "s".into(),
        days,
    };
    let status = |kind, days, min| check_store(&store(kind, days), min).status;
    use RetentionStatus::*;
    assert_eq!(status(StoreKind::File, Some(0), Some(2192)), Meets);
    assert_eq!(status(StoreKind::Journal, Some(0), Some(2192)), Meets);
    assert_eq!(status(StoreKind::File, Some(2192), Some(2192)), Meets);
    assert_eq!(status(StoreKind::File, Some(2191), Some(2192)), Short);
    assert_eq!(status(StoreKind::S3, Some(2555), Some(2557)), Short);
    assert_eq!(status(StoreKind::S3, Some(2557), Some(2557)), Meets);
    // Object lock 0 is not "forever": it is no lock at all.
    assert_eq!(status(StoreKind::S3, Some(0), Some(366)), Short);
    assert_eq!(status(StoreKind::S3, None, Some(366)), Unknown);
    assert_eq!(status(StoreKind::External, None, Some(366)), Unknown);
    assert_eq!(status(StoreKind::File, Some(30), None), NoMinimum);
    let short = check_store(&store(StoreKind::File, Some(400)), Some(2192));
    assert_eq!(short.explanation, "kept 400 days: 1792 days short of 2192");

    let rule = Framework::Hipaa.retention();
    let journal_only = [
        store(StoreKind::Journal, Some(0)),
        store(StoreKind::File, Some(30)),
    ];
    let r = retention(&rule, Some(&journal_only), None, None);
    assert_eq!(r.status, Short, "the journal is not an evidence store");
    let r = retention(&rule, None, None, None);
    assert_eq!((r.status, r.configured), (Unknown, false));
    let r = retention(
        &Framework::Gdpr.retention(),
        Some(&journal_only),
        None,
        None,
    );
    assert_eq!(r.status, NoMinimum);
}

/// Seals `records` as stream `stream` into `dir/<stream>/…jsonl`.
fn write_evidence(dir: &Path, stream: &str, records: &[Value]) -> Vec<Vec<u8>> {
    let mut chain = Chain::new(stream, None).unwrap();
    let lines: Vec<Vec<u8>> = records
        .iter()
        .map(|r| chain.seal(r.as_object().cloned().unwrap()).line)
        .collect();
    let folder = dir.join(stream);
    std::fs::create_dir_all(&folder).unwrap();
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    std::fs::write(folder.join("00000000000000000000.jsonl"), text).unwrap();
    lines
}

fn record(at: u64, event_type: &str, severity: &str, action: &str, user: &str) -> Value {
    json!({"time": format_time(at), "observed_time": format_time(at), "severity_number": 9,
           "event_type": event_type, "severity": severity, "source": "http/gateway",
           "body": null, "attributes": {"action": action, "user_id": user}})
}

fn request(dirs: &[&Path], max_rows: usize) -> Request {
    Request {
        framework: Framework::Soc2,
        period: Period::parse("2026-11-01", "2026-11-30").unwrap(),
        sources: dirs.iter().map(|d| Source::new(d, None)).collect(),
        options: Options::default(),
        retention: None,
        max_rows,
    }
}

#[test]
fn collection_counts_the_period_keeps_the_latest_rows_and_counts_a_stream_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut records = vec![
        record(
            NOV_1 - 1,
            "authentication",
            "medium",
            "login.failed",
            "early",
        ),
        record(
            NOV_1 + 30 * DAY,
            "authentication",
            "medium",
            "login.failed",
            "late",
        ),
    ];
    for i in 0..5u64 {
        let mut r = record(
            NOV_1 + i * DAY,
            "authentication",
            "medium",
            "login.failed",
            &format!("u{}", i % 2),
        );
        if i % 2 == 0 {
            r["attributes"]["vellum.client.identity"] = json!("spiffe://t/gw");
        }
        records.push(r);
    }
    records[0]["attributes"]["vellum.client.identity"] = json!("before-the-period");
    records.push(record(
        NOV_1 + 3 * DAY,
        "configuration_change",
        "low",
        "config.updated",
        "admin",
    ));
    records.push(json!({"seq": "not a record"}));
    write_evidence(&a, "logs", &records);
    // A second copy of the same stream, and a stream of its own.
    write_evidence(&b, "logs", &records);
    write_evidence(
        &b,
        "other",
        &[record(
            NOV_1 + DAY,
            "security",
            "high",
            "prompt_injection.detected",
            "m",
        )],
    );

    let data = collect(&request(&[&a, &b], 3)).unwrap();
    let t = &data.totals;
    assert_eq!(
        (
            t.entries_read,
            t.in_period,
            t.before_period,
            t.after_period,
            t.duplicates
        ),
        (19, 7, 1, 1, 9)
    );
    assert_eq!(t.undated, 1, "the record without a time");
    assert_eq!(data.by_event_type["authentication"], 5);
    assert_eq!(data.by_event_type["configuration_change"], 1);
    assert_eq!(data.by_severity["medium"], 5);
    assert_eq!(data.by_severity["critical"], 0);
    assert_eq!(data.by_event_type_and_severity["security"]["high"], 1);
    assert_eq!(data.by_day["2026-11-04"], 2);
    let by_identity: Vec<(&str, u64)> = data
        .by_identity
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(by_identity, [("(none)", 4), ("spiffe://t/gw", 3)]);
    let f = &data.failed_auth;
    assert_eq!(f.table.total, 5);
    let latest: Vec<&str> = f.table.rows.iter().map(|r| r.time.as_str()).collect();
    assert_eq!(
        latest,
        [
            format_time(NOV_1 + 4 * DAY),
            format_time(NOV_1 + 3 * DAY),
            format_time(NOV_1 + 2 * DAY)
        ]
    );
    assert_eq!(
        f.by_user,
        [
            KeyCount {
                key: "u0".into(),
                count: 3
            },
            KeyCount {
                key: "u1".into(),
                count: 2
            }
        ]
    );
    assert_eq!(
        (data.changes.total, data.security.total, data.access.total),
        (1, 1, 0)
    );
    let logs = &data.streams[0];
    assert_eq!(
        (logs.stream.as_str(), logs.first_seq, logs.last_seq),
        ("logs", Some(2), Some(7))
    );
    assert!(data.verification.passed(), "{:?}", data.verification);
    assert!(
        !data.verification.streams[0].covered,
        "no checkpoint was written"
    );
}

#[test]
fn a_changed_line_fails_verification_and_is_placed_in_the_period() {
    let tmp = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..4u64)
        .map(|i| {
            record(
                NOV_1 + i * DAY,
                "authentication",
                "info",
                "login.succeeded",
                "u",
            )
        })
        .collect();
    let lines = write_evidence(tmp.path(), "logs", &records);
    let file = tmp.path().join("logs/00000000000000000000.jsonl");
    let text = String::from_utf8(lines.join(&b'\n')).unwrap();
    std::fs::write(
        &file,
        text.replacen("\"user_id\":\"u\"", "\"user_id\":\"v\"", 2),
    )
    .unwrap();

    let data = collect(&request(&[tmp.path()], 10)).unwrap();
    let v = &data.verification;
    assert!(!v.passed());
    assert_eq!(v.status, "failed");
    assert_eq!(v.findings_in_period, v.directories[0].findings_total);
    let seqs: Vec<Option<u64>> = v.directories[0].findings.iter().map(|f| f.seq).collect();
    assert!(
        seqs.contains(&Some(0)) && seqs.contains(&Some(1)),
        "{seqs:?}"
    );
    assert!(v.directories[0].findings.iter().all(|f| f.in_period));
    assert_eq!(data.access.total, 4, "changed records are still reported");
}
