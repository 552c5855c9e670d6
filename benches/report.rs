//! `vellum report` throughput: collecting a period from an evidence directory (which
//! verifies it in the same pass) against verifying alone, and rendering the HTML.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::fs;
use std::io::Write;
use vellum::event::{Record, Severity};
use vellum::evidence::hmac::KeyRing;
use vellum::evidence::seal::Chain;
use vellum::evidence::verify::{Options, verify_dir};
use vellum::report::{Framework, Period, Request, Source, collect, html};

const ENTRIES: u64 = 50_000;
const PER_FILE: u64 = 10_000;
/// 2026-11-01T00:00:00Z.
const NOV_1: u64 = 1_793_491_200 * 1_000_000_000;

/// A gateway's mix: model calls, logins (some failed), changes, guardrail hits.
fn record(seq: u64) -> Record {
    let mut r = Record::new("http/gateway");
    // Spread over 60 days: half of them fall in November.
    r.time_unix_nano = NOV_1 - 15 * 86_400_000_000_000 + seq * (60 * 86_400_000_000_000 / ENTRIES);
    let (event_type, severity, action) = match seq % 20 {
        0 => ("authentication", Severity::Medium, "login.failed"),
        1 | 2 => ("authentication", Severity::Info, "login.succeeded"),
        3 => ("configuration_change", Severity::Low, "config.updated"),
        4 => ("security", Severity::High, "prompt_injection.detected"),
        _ => ("model_request", Severity::Info, "model.invoke"),
    };
    r.event_type = Some(event_type.into());
    r.severity = Some(severity);
    r.severity_number = severity.otlp_number();
    r.attributes.insert("action".into(), json!(action));
    r.attributes
        .insert("user_id".into(), json!(format!("u{}", seq % 97)));
    r.attributes
        .insert("ip".into(), json!(format!("198.51.100.{}", seq % 250)));
    r.attributes.insert("model".into(), json!("gpt-4o-mini"));
    r.body = json!({"message": format!("request {seq}"), "status": 200, "latency_ms": 12.5});
    r
}

fn report(c: &mut Criterion) {
    let keys = KeyRing::from_strings([("k2026", "k".repeat(32))]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stream_dir = dir.path().join("default");
    fs::create_dir_all(&stream_dir).unwrap();
    let mut chain = Chain::new("default", Some(keys.clone())).unwrap();
    let mut file = None;
    for seq in 0..ENTRIES {
        if seq % PER_FILE == 0 {
            file = Some(fs::File::create(stream_dir.join(format!("{seq:020}.jsonl"))).unwrap());
        }
        let sealed = chain.seal(record(seq).to_json());
        if let Some(f) = file.as_mut() {
            f.write_all(&sealed.line).unwrap();
            f.write_all(b"\n").unwrap();
        }
    }
    drop(file);
    let options = Options {
        keys: Some(keys),
        ..Options::default()
    };
    let request = Request {
        framework: Framework::Hipaa,
        period: Period::parse("2026-11-01", "2026-11-30").unwrap(),
        sources: vec![Source::new(dir.path(), None)],
        options: options.clone(),
        retention: None,
        max_rows: vellum::report::DEFAULT_MAX_ROWS,
    };

    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES));
    group.bench_function("verify only", |b| {
        b.iter(|| assert!(verify_dir(dir.path(), &options).unwrap().is_ok()))
    });
    group.bench_function("collect (verify + report)", |b| {
        b.iter(|| {
            let data = collect(&request).unwrap();
            assert!(data.totals.in_period > ENTRIES / 3);
        })
    });
    group.finish();

    let data = collect(&request).unwrap();
    let page = html::render(&data);
    eprintln!(
        "{ENTRIES} entries, {} in the period; HTML {} KiB",
        data.totals.in_period,
        page.len() / 1024
    );
    let mut group = c.benchmark_group("report");
    group.sample_size(20);
    group.bench_function("render HTML (4 tables of 200 rows)", |b| {
        b.iter(|| html::render(&data).len())
    });
    group.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);
