//! End-to-end checks of the evidence library: evidence written with the sealer into a
//! directory laid out as the file exporter lays it out, then verified untouched and
//! after each kind of tampering.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use vellum::event::{Record, float_value, int_value};
use vellum::evidence::hmac::KeyRing;
use vellum::evidence::merkle;
use vellum::evidence::note::{self, NoteSigner, NoteVerifier};
use vellum::evidence::prove;
use vellum::evidence::seal::Chain;
use vellum::evidence::verify::{Options, Report, verify_dir};

const ORIGIN: &str = "vellum.example/audit";
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fn record(stream: &str, i: u64) -> Map<String, Value> {
    let mut r = Record::new("otlp");
    r.time_unix_nano = 1_795_000_000_000_000_000 + i * 1_000_000;
    r.observed_time_unix_nano = r.time_unix_nano + 5;
    r.severity_number = 9;
    r.event_type = Some("llm.request".into());
    r.body = json!({"message": format!("{stream} request {i}"), "status": 200, "latency_ms": 12.5});
    r.attributes
        .insert("user.id".into(), json!(format!("u{}", i % 7)));
    r.attributes
        .insert("prompt".into(), json!("Résumé \u{1f600} \"quoted\"\n"));
    r.to_json()
}

fn keys() -> KeyRing {
    KeyRing::from_strings([("k2026", "k".repeat(32))]).unwrap()
}

fn encode_stream(stream: &str) -> String {
    stream
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where an entry was written.
#[derive(Debug, Clone)]
struct Placed {
    file: PathBuf,
    line: u64,
}

struct Stream {
    entries: Vec<Placed>,
    checkpoints: Vec<PathBuf>,
}

/// Seals `n` records of `stream` into files starting at each seq in `splits` (and 0),
/// and writes a checkpoint after each size in `checkpoint_sizes`.
fn write_stream(
    dir: &Path,
    stream: &str,
    n: u64,
    splits: &[u64],
    checkpoint_sizes: &[u64],
) -> Stream {
    let records: Vec<Map<String, Value>> = (0..n).map(|i| record(stream, i)).collect();
    write_records(dir, stream, records, splits, checkpoint_sizes)
}

/// Seals `records` as `write_stream` does.
fn write_records(
    dir: &Path,
    stream: &str,
    records: Vec<Map<String, Value>>,
    splits: &[u64],
    checkpoint_sizes: &[u64],
) -> Stream {
    let signer = NoteSigner::parse(SKEY).unwrap();
    let stream_dir = dir.join(encode_stream(stream));
    fs::create_dir_all(stream_dir.join("checkpoints")).unwrap();
    let mut chain = Chain::new(stream, Some(keys())).unwrap();
    let mut out = Stream {
        entries: Vec::new(),
        checkpoints: Vec::new(),
    };
    let mut file: Option<(PathBuf, fs::File, u64)> = None;
    for (seq, fields) in (0u64..).zip(records) {
        if seq == 0 || splits.contains(&seq) {
            let path = stream_dir.join(format!("{seq:020}.jsonl"));
            file = Some((path.clone(), fs::File::create(&path).unwrap(), 0));
        }
        let (path, f, line) = file.as_mut().unwrap();
        let sealed = chain.seal(fields);
        assert_eq!(sealed.seq, seq);
        f.write_all(&sealed.line).unwrap();
        f.write_all(b"\n").unwrap();
        *line += 1;
        out.entries.push(Placed {
            file: path.clone(),
            line: *line,
        });
        if checkpoint_sizes.contains(&(seq + 1)) {
            let note_path = stream_dir
                .join("checkpoints")
                .join(format!("{:020}.note", seq + 1));
            fs::write(&note_path, chain.checkpoint(ORIGIN, &signer).unwrap()).unwrap();
            out.checkpoints.push(note_path);
        }
    }
    out
}

struct Evidence {
    dir: tempfile::TempDir,
    default: Stream,
    other: Stream,
}

fn evidence() -> Evidence {
    let dir = tempfile::tempdir().unwrap();
    let default = write_stream(dir.path(), "default", 30, &[10, 20], &[8, 20, 30]);
    let other = write_stream(dir.path(), "eu/payments", 12, &[5], &[12]);
    Evidence {
        dir,
        default,
        other,
    }
}

fn options() -> Options {
    Options {
        keys: Some(keys()),
        vkeys: vec![NoteVerifier::parse(VKEY).unwrap()],
        ..Options::default()
    }
}

fn verify(dir: &Path) -> Report {
    verify_dir(dir, &options()).unwrap()
}

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// Asserts that some finding names this stream, seq, file and line and says `words`.
fn assert_found(
    report: &Report,
    stream: &str,
    seq: Option<u64>,
    file: &Path,
    line: Option<u64>,
    words: &str,
) {
    let file = file.display().to_string();
    assert!(
        report.findings.iter().any(|f| f.stream == stream
            && f.seq == seq
            && f.file == file
            && f.line == line
            && f.problem.contains(words)),
        "no finding [{stream} {seq:?} {file} {line:?} {words}] among:\n{}",
        report
            .findings
            .iter()
            .map(|f| format!("  {f}\n"))
            .collect::<String>()
    );
}

#[test]
fn untouched_evidence_verifies() {
    let ev = evidence();
    let report = verify(ev.dir.path());
    assert!(report.is_ok(), "{:#?}", report.findings);
    assert_eq!(report.streams, 2);
    assert_eq!(report.entries, 42);
    assert_eq!(report.checkpoints, 4);
    assert_eq!(report.checkpoints_confirmed, 4);
    assert!(report.summary().ends_with(": OK"), "{}", report.summary());
    assert!(report.macs_checked && report.signatures_checked);

    // Without keys the same evidence verifies, and the report says what was skipped.
    let bare = verify_dir(ev.dir.path(), &Options::default()).unwrap();
    assert!(bare.is_ok());
    assert!(
        bare.summary().contains("macs not checked"),
        "{}",
        bare.summary()
    );
    assert!(bare.summary().contains("signatures not checked"));
}

#[test]
fn gzipped_files_verify_like_plain_ones() {
    let ev = evidence();
    let first = &ev.default.entries[0].file;
    let plain = fs::read(first).unwrap();
    let gz_path = PathBuf::from(format!("{}.gz", first.display()));
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&plain).unwrap();
    gz.finish().unwrap();
    fs::remove_file(first).unwrap();
    let report = verify(ev.dir.path());
    assert!(report.is_ok(), "{:#?}", report.findings);
    assert_eq!(report.entries, 42);
}

#[test]
fn a_changed_byte_in_a_record_is_found_where_it_is() {
    let ev = evidence();
    let at = &ev.default.entries[13];
    let mut lines = lines_of(&at.file);
    let i = (at.line - 1) as usize;
    lines[i] = lines[i].replace("default request 13", "default request 19");
    write_lines(&at.file, &lines);
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        Some(13),
        &at.file,
        Some(at.line),
        "`hash` does not match",
    );
    // The checkpoints covering seq 13 no longer match either.
    assert_found(
        &report,
        "default",
        Some(19),
        &ev.default.checkpoints[1],
        None,
        "does not match the Merkle root",
    );
}

#[test]
fn a_deleted_line_is_found() {
    let ev = evidence();
    let at = &ev.default.entries[7];
    let mut lines = lines_of(&at.file);
    lines.remove((at.line - 1) as usize);
    write_lines(&at.file, &lines);
    let report = verify(ev.dir.path());
    // seq 8 now stands where seq 7 stood.
    assert_found(
        &report,
        "default",
        Some(8),
        &at.file,
        Some(at.line),
        "seq 7 is missing",
    );
    assert!(!report.is_ok());
}

#[test]
fn swapped_lines_are_found() {
    let ev = evidence();
    let file = &ev.default.entries[3].file;
    let mut lines = lines_of(file);
    lines.swap(3, 4);
    write_lines(file, &lines);
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        Some(4),
        file,
        Some(4),
        "seq 3 is missing",
    );
    assert_found(
        &report,
        "default",
        Some(3),
        file,
        Some(5),
        "seq 3 comes again",
    );
}

#[test]
fn a_truncated_file_is_found() {
    let ev = evidence();
    let file = &ev.default.entries[10].file; // entries 10..20
    let bytes = fs::read(file).unwrap();
    fs::write(file, &bytes[..bytes.len() - 40]).unwrap();
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        Some(19),
        file,
        Some(10),
        "not valid JSON",
    );

    // Cut at a line boundary at the end of the stream: only the checkpoint can tell.
    let ev = evidence();
    let last = &ev.other.entries[11];
    let mut lines = lines_of(&last.file);
    lines.pop();
    write_lines(&last.file, &lines);
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "eu/payments",
        None,
        &ev.other.checkpoints[0],
        None,
        "only 11 are present",
    );
}

#[test]
fn a_dropped_file_is_found() {
    let ev = evidence();
    fs::remove_file(&ev.default.entries[10].file).unwrap();
    let report = verify(ev.dir.path());
    let next = &ev.default.entries[20];
    assert_found(
        &report,
        "default",
        Some(20),
        &next.file,
        Some(1),
        "seq 10..=19 (10 entries) are missing",
    );
    assert_found(
        &report,
        "default",
        None,
        &ev.default.checkpoints[1],
        None,
        "cannot be confirmed",
    );
}

#[test]
fn a_duplicated_line_is_found() {
    let ev = evidence();
    let file = &ev.other.entries[6].file; // entries 5..12
    let mut lines = lines_of(file);
    lines.insert(2, lines[1].clone());
    write_lines(file, &lines);
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "eu/payments",
        Some(6),
        file,
        Some(3),
        "seq 6 comes again",
    );
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let ev = evidence();
    let (other_skey, _) = note::generate("PeterNeumann").unwrap();
    let other = NoteSigner::parse(&other_skey).unwrap();
    let path = &ev.default.checkpoints[0];
    let text = fs::read_to_string(path).unwrap();
    let body = note::split(&text).unwrap().0;
    fs::write(path, other.sign(body).unwrap()).unwrap();
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        None,
        path,
        None,
        "no signature by a known key",
    );
}

#[test]
fn a_checkpoint_resigned_under_the_right_name_with_a_wrong_key_is_refused() {
    let ev = evidence();
    let path = &ev.default.checkpoints[2];
    let text = fs::read_to_string(path).unwrap();
    let body = note::split(&text).unwrap().0;
    // A different key whose signature line claims the real name and key hash.
    let (other_skey, _) = note::generate("PeterNeumann").unwrap();
    let forged = NoteSigner::parse(&other_skey).unwrap().sign(body).unwrap();
    let (_, sigs) = note::split(&forged).unwrap();
    let mut blob = 0xc74f20a3u32.to_be_bytes().to_vec();
    blob.extend_from_slice(&sigs[0].signature);
    use base64::Engine;
    let line = format!(
        "\u{2014} PeterNeumann {}\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    fs::write(path, format!("{body}\n{line}")).unwrap();
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        None,
        path,
        None,
        "invalid signature for key PeterNeumann+c74f20a3",
    );
}

#[test]
fn a_validly_signed_checkpoint_with_a_wrong_root_is_found() {
    let ev = evidence();
    let signer = NoteSigner::parse(SKEY).unwrap();
    let path = &ev.default.checkpoints[0]; // size 8
    let text = note::checkpoint_text("vellum.example/audit/default", 8, &merkle::leaf_hash(b"x"));
    fs::write(path, signer.sign(&text).unwrap()).unwrap();
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        Some(7),
        path,
        None,
        "does not match the Merkle root",
    );
    // A second, conflicting checkpoint of the same size is named too.
    let good = &ev.default.checkpoints[1];
    let copy = good.with_file_name("copy.note");
    let wrong = note::checkpoint_text("vellum.example/audit/default", 20, &merkle::leaf_hash(b"y"));
    fs::write(&copy, signer.sign(&wrong).unwrap()).unwrap();
    let report = verify(ev.dir.path());
    assert_found(&report, "default", None, &copy, None, "conflicts with");
}

#[test]
fn an_edit_with_a_recomputed_hash_is_caught_by_the_mac_the_chain_and_the_checkpoint() {
    let ev = evidence();
    let at = &ev.default.entries[15];
    let mut lines = lines_of(&at.file);
    let i = (at.line - 1) as usize;
    let mut entry: Map<String, Value> = serde_json::from_str(&lines[i]).unwrap();
    entry.insert("body".into(), json!({"message": "nothing happened"}));
    entry.remove("hash");
    let without_mac: Map<String, Value> = entry
        .iter()
        .filter(|(k, _)| *k != "mac")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let leaf = merkle::leaf_hash(&vellum::evidence::jcs::to_vec(&Value::Object(without_mac)));
    entry.insert("hash".into(), json!(hex::encode(leaf)));
    lines[i] = String::from_utf8(vellum::evidence::jcs::to_vec(&Value::Object(entry))).unwrap();
    write_lines(&at.file, &lines);
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "default",
        Some(15),
        &at.file,
        Some(at.line),
        "mac does not match key `k2026`",
    );
    assert_found(
        &report,
        "default",
        Some(16),
        &at.file,
        Some(at.line + 1),
        "does not link to the hash of seq 15",
    );
    assert_found(
        &report,
        "default",
        Some(19),
        &ev.default.checkpoints[1],
        None,
        "does not match the Merkle root",
    );
    // Without the key ring only the chain and the checkpoint give it away.
    let report = verify_dir(ev.dir.path(), &Options::default()).unwrap();
    assert!(!report.findings.iter().any(|f| f.problem.contains("mac")));
    assert!(!report.is_ok());
}

#[test]
fn an_unknown_kid_and_a_missing_mac_are_findings() {
    let ev = evidence();
    let at = &ev.other.entries[2];
    let mut lines = lines_of(&at.file);
    lines[2] = lines[2].replace("\"kid\":\"k2026\"", "\"kid\":\"k2099\"");
    write_lines(&at.file, &lines);
    let report = verify(ev.dir.path());
    assert_found(
        &report,
        "eu/payments",
        Some(2),
        &at.file,
        Some(3),
        "\"k2099\" is not in the key ring",
    );

    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::new("plain", None).unwrap();
    let file = dir.path().join("plain.jsonl");
    fs::write(
        &file,
        [chain.seal(record("plain", 0)).line, b"\n".to_vec()].concat(),
    )
    .unwrap();
    let report = verify(dir.path());
    assert_found(&report, "plain", Some(0), &file, Some(1), "no `mac`");
}

#[test]
fn hostile_files_are_findings_not_crashes() {
    let ev = evidence();
    let dir = ev.dir.path();
    fs::write(
        dir.join("garbage.jsonl"),
        b"\xff\xfe\x00garbage\n{\"seq\":\n",
    )
    .unwrap();
    fs::write(dir.join("empty.jsonl"), b"").unwrap();
    fs::write(dir.join("bad.note"), b"\x00\x01 not a note").unwrap();
    fs::write(dir.join("huge.note"), vec![b'a'; 100_000]).unwrap();
    fs::write(dir.join("text.note"), "hello\n\n\u{2014} x AAAA\n").unwrap();
    fs::write(dir.join("bad.jsonl.gz"), b"not gzip at all").unwrap();
    // A line far longer than the cap, inside a stream.
    let file = &ev.other.entries[0].file;
    let mut lines = lines_of(file);
    lines.insert(1, format!("{{\"x\":\"{}\"}}", "y".repeat(5000)));
    write_lines(file, &lines);
    let options = Options {
        max_line_bytes: 4096,
        ..options()
    };
    let report = verify_dir(dir, &options).unwrap();
    assert_found(
        &report,
        "?",
        None,
        &dir.join("garbage.jsonl"),
        None,
        "readable entry",
    );
    assert_found(
        &report,
        "?",
        None,
        &dir.join("bad.note"),
        None,
        "checkpoint",
    );
    assert_found(
        &report,
        "?",
        None,
        &dir.join("huge.note"),
        None,
        "larger than",
    );
    assert_found(
        &report,
        "?",
        None,
        &dir.join("text.note"),
        None,
        "checkpoint",
    );
    assert_found(
        &report,
        "?",
        None,
        &dir.join("bad.jsonl.gz"),
        None,
        "cannot read",
    );
    assert_found(
        &report,
        "eu/payments",
        Some(1),
        file,
        Some(2),
        "longer than the 4096 allowed",
    );
    assert!(report.notes.iter().any(|n| n.contains("empty.jsonl")));
    assert!(verify_dir(&dir.join("missing"), &options).is_err());
}

#[test]
fn proofs_from_a_directory_check_against_its_checkpoints() {
    let ev = evidence();
    let leaves = prove::collect_leaves(ev.dir.path(), "default", None).unwrap();
    assert_eq!(leaves.len(), 30);
    let verifier = NoteVerifier::parse(VKEY).unwrap();
    let checkpoint = |path: &Path| {
        let text = fs::read_to_string(path).unwrap();
        note::parse_checkpoint(note::open(&text, std::slice::from_ref(&verifier)).unwrap()).unwrap()
    };
    let at20 = checkpoint(&ev.default.checkpoints[1]);
    let at8 = checkpoint(&ev.default.checkpoints[0]);
    let p = prove::inclusion("default", &leaves, 13, 20).unwrap();
    let text = p.to_string();
    let back = prove::InclusionProof::parse(&text).unwrap();
    back.check().unwrap();
    back.matches(&at20).unwrap();
    // The proven leaf is the `hash` written in entry 13.
    let at = &ev.default.entries[13];
    let line = &lines_of(&at.file)[(at.line - 1) as usize];
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["hash"], json!(hex::encode(back.leaf)));

    let c = prove::consistency("default", &leaves, 8, 20).unwrap();
    let back = prove::ConsistencyProof::parse(&c.to_string()).unwrap();
    back.check().unwrap();
    back.matches_old(&at8).unwrap();
    back.matches_new(&at20).unwrap();
    assert_eq!(
        prove::collect_leaves(ev.dir.path(), "default", Some(8)).unwrap(),
        leaves[..8]
    );
    assert!(prove::collect_leaves(ev.dir.path(), "nope", None).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any stream of records, split into files anywhere, verifies untouched, and a
    /// change of any single byte of any entry line is found.
    #[test]
    fn single_byte_changes_never_go_unnoticed(
        bodies in prop::collection::vec(("\\PC{0,24}", any::<i64>(), any::<f64>()), 1..40),
        raw_splits in prop::collection::vec(1u64..40, 0..5),
        raw_checkpoints in prop::collection::vec(1u64..41, 0..3),
        victim in any::<prop::sample::Index>(),
        offset in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let n = bodies.len() as u64;
        let records = bodies
            .into_iter()
            .enumerate()
            .map(|(i, (text, int, float))| {
                let mut fields = record("default", i as u64);
                let body = json!({"text": text, "int": int_value(int), "float": float_value(float)});
                fields.insert("body".into(), body);
                fields
            })
            .collect();
        let splits: Vec<u64> = raw_splits.into_iter().filter(|s| *s < n).collect();
        let checkpoints: Vec<u64> = raw_checkpoints.into_iter().filter(|s| *s <= n).collect();
        let stream = write_records(dir.path(), "default", records, &splits, &checkpoints);
        let report = verify(dir.path());
        prop_assert!(report.is_ok(), "{:#?}", report.findings);
        prop_assert_eq!(report.entries, n);

        let at = &stream.entries[victim.index(stream.entries.len())];
        let mut bytes = fs::read(&at.file).unwrap();
        let line_start: usize = bytes
            .split(|b| *b == b'\n')
            .take((at.line - 1) as usize)
            .map(|l| l.len() + 1)
            .sum();
        let line_len = bytes[line_start..].iter().position(|b| *b == b'\n').unwrap();
        let i = line_start + offset.index(line_len);
        bytes[i] ^= flip;
        fs::write(&at.file, &bytes).unwrap();
        let report = verify(dir.path());
        prop_assert!(!report.is_ok(), "byte {} of {} line {} changed unnoticed", i - line_start, at.file.display(), at.line);
        prop_assert!(
            report.findings.iter().any(|f| f.file == at.file.display().to_string()),
            "no finding names {}: {:#?}", at.file.display(), report.findings
        );
    }
}

#[test]
fn stream_names_are_not_taken_from_paths() {
    let ev = evidence();
    let moved = ev.dir.path().join("elsewhere");
    fs::create_dir_all(&moved).unwrap();
    for (i, p) in ev
        .other
        .entries
        .iter()
        .map(|e| e.file.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .enumerate()
    {
        fs::rename(p, moved.join(format!("z{i}.jsonl"))).unwrap();
    }
    let report = verify(ev.dir.path());
    assert!(report.is_ok(), "{:#?}", report.findings);
    assert_eq!(report.streams, 2);
}
