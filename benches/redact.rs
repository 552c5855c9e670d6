//! Throughput of the `redact` processor, in records per second, on gateway audit records
//! of about 500 bytes of JSON: clean ones, clean ones full of look-alikes (versions, order
//! ids, hashes, 16-digit ids: most of their strings reach the detectors' validation), and
//! ones carrying three or four findings each. The configuration is the documented example: every built-in detector,
//! emails hashed, field rules and a custom detector.
//!
//! Timings on a shared machine wander; CPU time wanders less and instruction counts not
//! at all. With `REDACT_BENCH_ONCE=<clean|lookalikes|pii>` the binary skips criterion,
//! redacts that batch `REDACT_BENCH_BATCHES` times (default 1) and prints the records
//! redacted per CPU-second; under `valgrind --tool=callgrind`, the difference between the
//! counts of two such runs divided by the records added is the steady-state cost of a
//! record, without set-up or the lazy DFAs' warm-up (see README.md).

#[path = "../tests/common/mod.rs"]
mod common;

use common::pii_corpus::{Content, Rng, compact_event};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
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

const CONTENTS: [(&str, Content); 3] = [
    ("clean", Content::Clean),
    ("lookalikes", Content::LookAlikes),
    ("pii", Content::Pii),
];

fn bench_redactor() -> Redactor {
    let cfg: RedactConfig = match serde_saphyr::from_str(CONFIG) {
        Ok(cfg) => cfg,
        Err(e) => panic!("bench config: {e}"),
    };
    match Redactor::new("redact/pii", &cfg) {
        Ok(r) => r,
        Err(e) => panic!("bench config: {e}"),
    }
}

fn batch_of(content: Content) -> Vec<Record> {
    let mut rng = Rng::new(0xBE7C);
    (0..BATCH)
        .map(|_| compact_event(&mut rng, content))
        .collect()
}

fn redact(c: &mut Criterion) {
    let redactor = bench_redactor();
    let mut group = c.benchmark_group("redact");
    for (name, content) in CONTENTS {
        let records = batch_of(content);
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

/// Redacts one kind of batch `batches` times and nothing else; prints the records
/// redacted per second of this thread's CPU time inside `process`, after the first batch
/// (which builds the lazy DFAs' states). CPU time, unlike wall time, barely moves when
/// other work shares the machine.
fn redact_fixed_work(name: &str, batches: usize) {
    let Some((_, content)) = CONTENTS.into_iter().find(|(n, _)| *n == name) else {
        panic!("REDACT_BENCH_ONCE: expected clean, lookalikes or pii, got {name:?}");
    };
    let redactor = bench_redactor();
    let records = batch_of(content);
    let mut findings = 0;
    let mut cpu_after_first = std::time::Duration::ZERO;
    for batch in 0..batches {
        let input = records.clone();
        let before = thread_cpu_time();
        let output = redactor.process(input);
        if batch > 0 {
            cpu_after_first += thread_cpu_time().saturating_sub(before);
        }
        for record in output {
            findings += record
                .redaction
                .map_or(0, |s| s["total"].as_u64().unwrap_or(0));
        }
    }
    eprintln!(
        "redact/{name}: {} records, {findings} findings",
        batches * BATCH
    );
    if batches > 1 {
        let per_cpu_second = ((batches - 1) * BATCH) as f64 / cpu_after_first.as_secs_f64();
        eprintln!("redact/{name}: {per_cpu_second:.0} records per CPU-second in process");
    }
}

/// CPU time this thread has used.
fn thread_cpu_time() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

criterion_group!(benches, redact);

fn main() {
    if let Ok(name) = std::env::var("REDACT_BENCH_ONCE") {
        let batches = match std::env::var("REDACT_BENCH_BATCHES") {
            Ok(n) => n
                .parse()
                .unwrap_or_else(|e| panic!("REDACT_BENCH_BATCHES={n}: {e}")),
            Err(_) => 1,
        };
        return redact_fixed_work(&name, batches);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
