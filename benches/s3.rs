//! The `s3` exporter's delivery rate to a local S3-compatible server: `moto_server` from
//! the test venv (scripts/test.sh installs it), with a bucket under Object Lock. Each
//! iteration is one bundle: gzip of the batch, then two checksummed, locked puts.
//!
//! `cargo bench --bench s3`

#[path = "../tests/common/mod.rs"]
mod common;

use common::peers;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vellum::evidence::seal::Chain;
use vellum::exporters::s3::{S3Config, S3Exporter};
use vellum::exporters::{Exporter, ExporterContext, Item};

const RECORD_BYTES: usize = 500;

/// The next `n` sealed entries of `chain`, then the checkpoint of all so far.
fn batch(chain: &mut Chain, n: usize) -> Vec<Item> {
    let mut items: Vec<Item> = (0..n)
        .map(|i| {
            let fields = serde_json::json!({
                "action": "model.invoke",
                "user_id": format!("user-{}", i % 5000),
                "body": format!("model request completed {}", "x".repeat(RECORD_BYTES - 250)),
            });
            let sealed = chain.seal(fields.as_object().cloned().unwrap_or_default());
            Item::Entry {
                index: sealed.seq,
                seq: sealed.seq,
                line: Bytes::from(sealed.line),
            }
        })
        .collect();
    let size = chain.next_seq();
    items.push(Item::Checkpoint {
        index: size,
        size,
        note: format!("bench/s\n{size}\nroot\n\n— bench/s signature\n"),
    });
    items
}

fn deliver(c: &mut Criterion) {
    if peers::moto::Moto::server().is_none() {
        eprintln!("moto_server is not installed: run scripts/test.sh first");
        return;
    }
    let moto_dir = tempfile::tempdir().expect("moto's log dir");
    let moto = peers::moto::Moto::start(moto_dir.path());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let yaml = format!(
        "bucket: bench-evidence\nprefix: evidence/%Y/%m/%d/\nendpoint: {endpoint}\n\
         region: us-east-1\nforce_path_style: true\naccess_key_id: bench\nsecret_access_key: bench\n\
         object_lock: {{ mode: GOVERNANCE, retain_days: 1 }}\n",
        endpoint = moto.url()
    );
    let json: serde_json::Value = serde_saphyr::from_str(&yaml).expect("bench config");
    let cfg: S3Config = serde_json::from_value(json).expect("bench config");
    rt.block_on(async {
        cfg.connection()
            .client()
            .await
            .create_bucket()
            .bucket("bench-evidence")
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .expect("create the bucket");
    });

    let mut group = c.benchmark_group("s3/bundle");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    for records in [256usize, 2048] {
        let state = tempfile::tempdir().expect("state dir");
        let context = ExporterContext {
            id: "s3/bench".into(),
            stream: format!("bench/{records}"),
            state_dir: state.path().to_path_buf(),
        };
        let mut exporter = S3Exporter::open(&cfg, &context).expect("exporter");
        let mut chain = Chain::new(&context.stream, None).expect("chain");
        group.throughput(Throughput::Elements(records as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(records),
            &records,
            |b, &records| {
                b.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        let items = batch(&mut chain, records);
                        let started = Instant::now();
                        rt.block_on(exporter.export(&items)).expect("delivered");
                        elapsed += started.elapsed();
                    }
                    elapsed
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, deliver);
criterion_main!(benches);
