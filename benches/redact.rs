//! Throughput of the `redact` processor, in records per second, on gateway audit records
//! of about 500 bytes of JSON: clean ones, clean ones full of look-alikes (versions, order
//! ids, hashes, 16-digit ids: most of their strings reach the detectors' validation), and
//! ones carrying three or four findings each. The configuration is the documented example: every built-in detector,
//! emails hashed, field rules and a custom detector.

#[path = "../tests/support/pii_corpus.rs"]
mod pii_corpus;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pii_corpus::{Content, Rng, compact_event};
use vellum::component::Processor;
use vellum::event::Record;
use vellum::processors::redact::{RedactConfig, Redactor};

const BATCH: usize = 256;

const CONFIG: &str = r#"
policy: {default: redact, email: hash}
hash_key: "bench-hash-key-0123456789abcdef0123456789"
fields:
  always_redact: [attributes.password, attributes.authorization, body.api_key]
  never_scan: [attributes.request_id]
custom:
  - { name: employee_id, pattern: 'EMP-\d{6}', policy: hash }
"#;

fn redact(c: &mut Criterion) {
    let cfg: RedactConfig = match serde_saphyr::from_str(CONFIG) {
        Ok(cfg) => cfg,
        Err(e) => panic!("bench config: {e}"),
    };
    let redactor = match Redactor::new("redact/pii", &cfg) {
        Ok(r) => r,
        Err(e) => panic!("bench config: {e}"),
    };
    let mut group = c.benchmark_group("redact");
    for (name, content) in [
        ("clean", Content::Clean),
        ("lookalikes", Content::LookAlikes),
        ("pii", Content::Pii),
    ] {
        let mut rng = Rng::new(0xBE7C);
        let records: Vec<Record> = (0..BATCH)
            .map(|_| compact_event(&mut rng, content))
            .collect();
        let bytes: usize = records
            .iter()
            .map(|r| serde_json::Value::Object(r.to_json()).to_string().len())
            .sum();
        eprintln!(
            "redact/{name}: {BATCH} records, {} bytes of JSON each on average",
            bytes / BATCH
        );
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || records.clone(),
                |batch| redactor.process(batch),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, redact);
criterion_main!(benches);
