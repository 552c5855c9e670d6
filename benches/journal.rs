//! Journal throughput: group commit of ~500-byte records with one fdatasync per batch,
//! reading back, the bare fdatasync it rests on, and the scan `open` does.
//!
//! `cargo bench --bench journal`

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vellum::journal::{JournalOptions, open};

const PAYLOAD_BYTES: usize = 500;

fn payload(index: u64) -> Vec<u8> {
    let mut bytes = format!("{{\"seq\":{index},\"body\":\"").into_bytes();
    bytes.resize(PAYLOAD_BYTES - 2, b'x');
    bytes.extend_from_slice(b"\"}");
    bytes
}

/// Appending a batch and committing it: one write and one fdatasync per batch.
fn append_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal/append_commit");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let record = payload(0);
    for batch in [1u64, 100, 1000, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), JournalOptions::default()).unwrap();
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    for _ in 0..batch {
                        writer.append(&record).unwrap();
                    }
                    writer.commit().unwrap();
                    elapsed += started.elapsed();
                    // Keeps the disk from filling; not timed.
                    journal.purge_before(journal.committed_end()).unwrap();
                }
                elapsed
            })
        });
    }
    group.finish();
}

/// The floor under every commit: a small write and fdatasync of a plain file.
fn fdatasync(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::create(dir.path().join("probe")).unwrap();
    let block = [0u8; 4096];
    let mut group = c.benchmark_group("journal/fdatasync");
    group.sample_size(20);
    group.bench_function("append_4k", |b| {
        b.iter(|| {
            file.write_all(&block).unwrap();
            file.sync_data().unwrap();
        })
    });
    group.finish();
}

/// Reading committed records back (page cache warm), CRC checked.
fn read(c: &mut Criterion) {
    const RECORDS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, journal, _) = open(dir.path(), JournalOptions::default()).unwrap();
    for i in 0..RECORDS {
        writer.append(&payload(i)).unwrap();
    }
    writer.commit().unwrap();
    let mut group = c.benchmark_group("journal/read");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(RECORDS));
    group.bench_function("100k_records", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for record in journal.reader(0).unwrap() {
                bytes += record.unwrap().1.len();
            }
            assert_eq!(bytes, RECORDS as usize * PAYLOAD_BYTES);
        })
    });
    group.finish();
}

/// Recovery at open: every frame of a full 64 MiB segment is CRC-checked.
fn open_scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut writer, _, _) = open(dir.path(), JournalOptions::default()).unwrap();
        let mut i = 0;
        while i < 130_000 {
            for _ in 0..10_000 {
                writer.append(&payload(i)).unwrap();
                i += 1;
            }
            writer.commit().unwrap();
        }
    }
    let mut group = c.benchmark_group("journal/open");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(130_000 * (PAYLOAD_BYTES as u64 + 16)));
    group.bench_function("64mib_segment", |b| {
        b.iter(|| {
            let (_, _, report) = open(dir.path(), JournalOptions::default()).unwrap();
            assert_eq!(report.records, 130_000);
        })
    });
    group.finish();
}

criterion_group!(benches, append_commit, fdatasync, read, open_scan);
criterion_main!(benches);
