//! Verifier throughput on sealed, HMAC-signed entries with checkpoints: from a directory
//! (read, parse, canonicalise, hash, mac, Merkle) and from memory (no file reading).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::fs;
use std::io::Write;
use vellum::event::Record;
use vellum::evidence::hmac::KeyRing;
use vellum::evidence::note::{NoteSigner, generate};
use vellum::evidence::seal::Chain;
use vellum::evidence::verify::{Options, StreamVerifier, verify_dir};

const ENTRIES: u64 = 50_000;
const PER_FILE: u64 = 10_000;

fn verify(c: &mut Criterion) {
    let keys = KeyRing::from_strings([("k2026", "k".repeat(32))]).unwrap();
    let (skey, vkey) = generate("bench.example/audit").unwrap();
    let signer = NoteSigner::parse(&skey).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stream_dir = dir.path().join("default");
    fs::create_dir_all(&stream_dir).unwrap();
    let mut chain = Chain::new("default", Some(keys.clone())).unwrap();
    let mut lines = Vec::new();
    let mut file = None;
    for seq in 0..ENTRIES {
        if seq % PER_FILE == 0 {
            file = Some(fs::File::create(stream_dir.join(format!("{seq:020}.jsonl"))).unwrap());
        }
        let mut r = Record::new("otlp");
        r.time_unix_nano = 1_795_000_000_000_000_000 + seq;
        r.severity_number = 9;
        r.event_type = Some("llm.request".into());
        r.body = json!({"message": format!("request {seq}"), "model": "gpt-4o-mini", "status": 200, "latency_ms": 12.5});
        r.attributes
            .insert("user.id".into(), json!(format!("u{}", seq % 97)));
        r.attributes
            .insert("http.route".into(), json!("/v1/chat/completions"));
        r.resource
            .insert("service.name".into(), json!("ai-gateway"));
        let sealed = chain.seal(r.to_json());
        if let Some(f) = file.as_mut() {
            f.write_all(&sealed.line).unwrap();
            f.write_all(b"\n").unwrap();
        }
        lines.push(sealed.line);
        if (seq + 1) % PER_FILE == 0 {
            let note = chain.checkpoint("bench.example/audit", &signer).unwrap();
            fs::write(stream_dir.join(format!("{:020}.note", seq + 1)), note).unwrap();
        }
    }
    drop(file);
    let average = lines.iter().map(Vec::len).sum::<usize>() as u64 / ENTRIES;
    eprintln!("{ENTRIES} entries of {average} bytes on average");

    let options = Options {
        keys: Some(keys.clone()),
        vkeys: vec![vellum::evidence::note::NoteVerifier::parse(&vkey).unwrap()],
        ..Options::default()
    };
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES));
    group.bench_function("directory", |b| {
        b.iter(|| {
            let report = verify_dir(dir.path(), &options).unwrap();
            assert!(report.is_ok());
        })
    });
    group.bench_function("entries in memory", |b| {
        b.iter(|| {
            let mut v = StreamVerifier::new("default", Some(&keys));
            for (i, line) in lines.iter().enumerate() {
                v.feed_line(line, "memory", i as u64 + 1);
            }
            assert!(v.findings().is_empty());
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
