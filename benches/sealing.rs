//! Cost of sealing one realistic record (about 500 bytes of record JSON): canonical
//! JSON, SHA-256 leaf, HMAC-SHA256 and the Merkle frontier append, as the journal
//! writer runs them on its single ordered path.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use std::hint::black_box;
use vellum::event::{Record, Severity};
use vellum::evidence::hmac::KeyRing;
use vellum::evidence::jcs;
use vellum::evidence::seal::Chain;

/// An AI-gateway audit record of about 500 bytes of JSON.
fn record() -> Map<String, Value> {
    let mut r = Record::new("otlp");
    r.time_unix_nano = 1_795_000_000_123_456_789;
    r.observed_time_unix_nano = 1_795_000_000_223_456_789;
    r.severity_number = 17;
    r.severity = Some(Severity::Medium);
    r.event_type = Some("llm.request".into());
    r.body = json!({
        "message": "chat completion served",
        "model": "gpt-4o-mini",
        "prompt_tokens": 812,
        "completion_tokens": 164,
        "latency_ms": 1234.5,
        "status": 200
    });
    r.attributes.insert("user.id".into(), json!("u-1f2e3d4c"));
    r.attributes
        .insert("http.route".into(), json!("/v1/chat/completions"));
    r.resource
        .insert("service.name".into(), json!("ai-gateway"));
    r.trace_id = Some("5b8efff798038103d269b633813fc60c".into());
    r.span_id = Some("eee19b7ec3c1b174".into());
    r.tags = vec!["llm".into()];
    r.to_json()
}

fn sealing(c: &mut Criterion) {
    let fields = record();
    let record_len = jcs::to_vec(&Value::Object(fields.clone())).len();
    let keys = KeyRing::from_strings([("k2026", "k".repeat(32))]).unwrap();
    let mut line = Vec::with_capacity(1024);
    let mut probe = Chain::new("default", Some(keys.clone())).unwrap();
    probe.seal_into(&fields, &mut line);
    eprintln!(
        "record JSON {record_len} bytes, sealed entry line {} bytes",
        line.len()
    );

    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    let mut chain = Chain::new("default", Some(keys)).unwrap();
    group.bench_function("entry with hmac", |b| {
        b.iter(|| black_box(chain.seal_into(black_box(&fields), &mut line)))
    });
    let mut unsigned = Chain::new("default", None).unwrap();
    group.bench_function("entry without hmac", |b| {
        b.iter(|| black_box(unsigned.seal_into(black_box(&fields), &mut line)))
    });
    group.finish();

    let value = Value::Object(fields);
    let mut group = c.benchmark_group("canonical json of the record");
    group.throughput(Throughput::Bytes(record_len as u64));
    let mut out = Vec::with_capacity(1024);
    group.bench_function("evidence::jcs", |b| {
        b.iter(|| {
            out.clear();
            jcs::write(black_box(&value), &mut out);
        })
    });
    group.bench_function("serde_json_canonicalizer", |b| {
        b.iter(|| black_box(serde_json_canonicalizer::to_vec(black_box(&value))))
    });
    group.finish();
}

criterion_group!(benches, sealing);
criterion_main!(benches);
