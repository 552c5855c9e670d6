//! The verifier of evidence format §5 for a local evidence directory.
//!
//! It walks the directory (recursively) for entry files (`*.jsonl`, `*.jsonl.gz`) and
//! checkpoints (`*.note`); file names carry no meaning. The first readable line of each
//! entry file tells its stream and first `seq`; each stream's files are then read in
//! `seq` order, one line at a time, so memory stays flat however large the evidence.
//!
//! For every entry it checks the JSON (strict: no duplicate names), `v`, the `hash`
//! against the content, the `mac` against the key ring, that `seq` runs without gaps,
//! repeats or reordering, that `prev` links, and that the line is in canonical form
//! (Vellum writes RFC 8785 text, so any other spelling means the bytes were changed).
//! Each checkpoint's signature is checked against the given verifier keys, and its root
//! against the Merkle root of the first `size` entries when the pass reaches `size`.
//! All checkpoints of a stream are compared with the roots of one and the same
//! sequence of leaves, which makes them consistent with each other by construction.
//!
//! [`StreamVerifier`] holds the per-stream checks so that other sources of entries (S3
//! bundles) can feed it the same way.

use flate2::read::MultiGzDecoder;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::hmac::{KeyRing, MacError};
use super::jcs;
use super::loss::LossRecord;
use super::merkle::{Frontier, Hash, parse_hex_hash};
use super::note::{self, NoteVerifier, parse_checkpoint};
use super::purge::EvidencePurge;
use super::seal::{FORMAT_VERSION, Head, ZERO_HASH};
use crate::event::MAX_SAFE_INTEGER;

/// Lines longer than this are reported and skipped, never buffered whole.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;

/// Checkpoint files larger than this are not notes.
pub const MAX_NOTE_BYTES: u64 = 64 << 10;

/// Findings kept per stream; further ones are only counted.
pub const MAX_FINDINGS_PER_STREAM: usize = 1000;

/// What the verifier is given besides the directory.
#[derive(Debug, Clone)]
pub struct Options {
    /// HMAC keys; without them macs are not checked (and the report says so).
    pub keys: Option<KeyRing>,
    /// Verifier keys of the checkpoint signers; without them signatures are not checked.
    pub vkeys: Vec<NoteVerifier>,
    /// The configured origin prefix: when set, a checkpoint's origin must be exactly
    /// `<prefix>/<stream>`; otherwise it matches the stream whose name ends the origin.
    pub origin_prefix: Option<String>,
    pub max_line_bytes: usize,
    /// Whether entries that a journal-loss record declares lost pass (they are always
    /// reported, apart from findings).
    pub accept_declared_loss: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            keys: None,
            vkeys: Vec::new(),
            origin_prefix: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            accept_declared_loss: false,
        }
    }
}

impl Options {
    /// Options from command-line strings, as `vellum verify` and `vellum report` take
    /// them: `kid=key` HMAC keys, a file of such lines (`#` starts a comment), and
    /// checkpoint verifier keys. The error names the option at fault.
    pub fn from_args(
        hmac_keys: &[String],
        hmac_key_file: Option<&Path>,
        vkeys: &[String],
    ) -> Result<Options, String> {
        let mut strings: Vec<(String, String)> = Vec::new();
        if let Some(file) = hmac_key_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                strings.push(
                    KeyRing::parse_arg(line).map_err(|e| format!("{}: {e}", file.display()))?,
                );
            }
        }
        for arg in hmac_keys {
            strings.push(KeyRing::parse_arg(arg).map_err(|e| format!("--hmac-key: {e}"))?);
        }
        let keys = if strings.is_empty() {
            None
        } else {
            Some(KeyRing::from_strings(strings).map_err(|e| e.to_string())?)
        };
        let vkeys = vkeys
            .iter()
            .map(|v| NoteVerifier::parse(v.trim()).map_err(|e| format!("--vkey: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Options {
            keys,
            vkeys,
            ..Options::default()
        })
    }
}

/// One problem, located as precisely as the evidence allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The stream, or `?` when the problem cannot be attributed to one.
    pub stream: String,
    /// The entry's `seq`; for an unreadable line, the `seq` expected at that place.
    pub seq: Option<u64>,
    pub file: String,
    /// 1-based line number within the (decompressed) file.
    pub line: Option<u64>,
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {}", self.stream)?;
        if let Some(seq) = self.seq {
            write!(f, ", seq {seq}")?;
        }
        write!(f, ", {}", self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// The outcome of verifying a directory.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub streams: u64,
    /// Entry lines read (readable or not).
    pub entries: u64,
    /// Checkpoint files found.
    pub checkpoints: u64,
    /// Checkpoints whose signature (when checked) and root were confirmed.
    pub checkpoints_confirmed: u64,
    pub macs_checked: bool,
    pub signatures_checked: bool,
    pub findings: Vec<Finding>,
    /// Findings beyond [`MAX_FINDINGS_PER_STREAM`], counted but not kept.
    pub findings_not_shown: u64,
    /// Remarks that are not failures (what was not checked, entries past the last
    /// checkpoint, duplicate checkpoints).
    pub notes: Vec<String>,
    /// Per stream, the size of the largest checkpoint confirmed: its first `size`
    /// entries are covered by a signed checkpoint.
    pub confirmed_sizes: BTreeMap<String, u64>,
    /// Entries missing that a journal-loss record of their stream declares lost: not
    /// tampering, but not evidence either. They fail the report unless accepted.
    pub declared_losses: Vec<Finding>,
    pub accept_declared_loss: bool,
}

impl Report {
    /// An empty report that says what `options` leave unchecked.
    pub fn for_options(options: &Options) -> Report {
        let mut report = Report {
            macs_checked: options.keys.is_some(),
            signatures_checked: !options.vkeys.is_empty(),
            accept_declared_loss: options.accept_declared_loss,
            ..Report::default()
        };
        if !report.macs_checked {
            report
                .notes
                .push("no HMAC key ring given: macs were not checked".into());
        }
        if !report.signatures_checked {
            report
                .notes
                .push("no verifier key given: checkpoint signatures were not checked".into());
        }
        report
    }

    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
            && self.findings_not_shown == 0
            && (self.declared_losses.is_empty() || self.accept_declared_loss)
    }

    /// One line: what was checked and whether it held.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} stream(s), {} entries, {} checkpoint(s) ({} confirmed)",
            self.streams, self.entries, self.checkpoints, self.checkpoints_confirmed
        );
        if !self.macs_checked {
            s.push_str(", macs not checked");
        }
        if !self.signatures_checked {
            s.push_str(", checkpoint signatures not checked");
        }
        let losses = self.declared_losses.len();
        if losses > 0 {
            let accepted = if self.accept_declared_loss {
                ", accepted"
            } else {
                ""
            };
            s.push_str(&format!(", {losses} declared loss(es){accepted}"));
        }
        let problems = self.findings.len() as u64 + self.findings_not_shown;
        if problems > 0 {
            s.push_str(&format!(": FAILED, {problems} finding(s)"));
        } else if !self.is_ok() {
            s.push_str(": FAILED, entries declared lost (--accept-declared-loss to accept)");
        } else {
            s.push_str(": OK");
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read evidence directory {path}: {source}")]
    Walk {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Verifies the evidence under `dir`. Errors only when `dir` itself cannot be read;
/// everything wrong with its contents is a finding.
pub fn verify_dir(dir: &Path, options: &Options) -> Result<Report, VerifyError> {
    verify_dir_visiting(dir, options, &mut |_, _| {})
}

/// [`verify_dir`], also handing each complete entry line to `visit` (its file's stream
/// and the line without its newline), each stream's in `seq` order as they are read:
/// one pass both checks the evidence and lets a reader (the compliance report) see it.
/// Lines are handed over whatever the checks find; repeats and tampered lines included.
pub fn verify_dir_visiting(
    dir: &Path,
    options: &Options,
    visit: &mut dyn FnMut(&str, &[u8]),
) -> Result<Report, VerifyError> {
    let found = discover(dir, options.max_line_bytes)?;
    let mut report = Report::for_options(options);
    report.streams = found.streams.len() as u64;
    report.checkpoints = found.notes.len() as u64;
    for path in &found.empty {
        report
            .notes
            .push(format!("{} holds no entries", path.display()));
    }
    for (path, problem) in found.unreadable {
        report.findings.push(Finding {
            stream: "?".into(),
            seq: None,
            file: path.display().to_string(),
            line: None,
            problem,
        });
    }

    let mut verifiers: BTreeMap<&str, StreamVerifier> = BTreeMap::new();
    for (stream, files) in &found.streams {
        let verifier = match trusted_start(stream, files, options.max_line_bytes) {
            Some((seq, purge)) => {
                report.notes.push(format!(
                    "stream {stream}: seq 0..={} pruned by retention (purge record at seq {seq})",
                    purge.last_seq
                ));
                StreamVerifier::after_purge(stream, options.keys.as_ref(), seq, &purge)
            }
            None => StreamVerifier::new(stream, options.keys.as_ref()),
        };
        verifiers.insert(stream.as_str(), verifier);
    }
    for path in &found.notes {
        add_note(path, options, &mut verifiers, &mut report);
    }
    for (stream, files) in &found.streams {
        let Some(mut verifier) = verifiers.remove(stream.as_str()) else {
            continue;
        };
        for path in files {
            feed_file(path, options.max_line_bytes, &mut verifier, &mut |line| {
                visit(stream, line)
            });
        }
        verifier.finish_into(&mut report);
    }
    Ok(report)
}

/// Where a stream pruned by retention starts, and the purge record that says so.
///
/// A stream whose first entry is `seq` N > 0 is accepted from N on only when one of its
/// own entries is an evidence purge record declaring `last_seq` N-1 (see
/// [`super::purge`]); the record is then checked like every entry, and the pass starts
/// from the chain state it declares. `files` are the stream's entry files in `seq` order.
pub fn trusted_start(
    stream: &str,
    files: &[PathBuf],
    max_line: usize,
) -> Option<(u64, EvidencePurge)> {
    let (_, start) = first_entry(files.first()?, max_line).ok()??;
    if start == 0 {
        return None;
    }
    find_purge(stream, files, start - 1, max_line)
}

/// The first purge record of `stream` in `files` that declares `last_seq`, and its `seq`.
pub fn find_purge(
    stream: &str,
    files: &[PathBuf],
    last_seq: u64,
    max_line: usize,
) -> Option<(u64, EvidencePurge)> {
    let finder = memchr_finder(super::purge::EVENT_TYPE.as_bytes());
    let mut buf = Vec::new();
    for path in files {
        let Ok(reader) = open_entries(path) else {
            continue;
        };
        let mut lines = LineReader::new(reader, max_line);
        while let Ok(Some(read)) = lines.next(&mut buf) {
            if !matches!(read, Line::Complete) || finder.find(&buf).is_none() {
                continue;
            }
            let Ok(entry) = parse_entry(&buf) else {
                continue;
            };
            let seq = entry.get("seq").and_then(Value::as_u64);
            if entry.get("stream").and_then(Value::as_str) != Some(stream) {
                continue;
            }
            if let (Some(seq), Some(Ok(purge))) = (seq, EvidencePurge::from_entry(&entry))
                && purge.last_seq == last_seq
                && seq > last_seq
            {
                return Some((seq, purge));
            }
        }
    }
    None
}

fn memchr_finder(needle: &[u8]) -> aho_corasick::AhoCorasick {
    // A single literal always builds.
    aho_corasick::AhoCorasick::new([needle]).unwrap_or_else(|_| unreachable!())
}

/// What a walk of an evidence directory found.
pub(super) struct Discovery {
    /// Entry files per stream, in order of their first `seq`.
    pub streams: BTreeMap<String, Vec<PathBuf>>,
    pub notes: Vec<PathBuf>,
    pub empty: Vec<PathBuf>,
    /// Entry files with no readable entry, and why.
    pub unreadable: Vec<(PathBuf, String)>,
}

pub(super) fn discover(dir: &Path, max_line: usize) -> Result<Discovery, VerifyError> {
    let mut entry_files = Vec::new();
    let mut notes = Vec::new();
    walk(dir, &mut entry_files, &mut notes).map_err(|source| VerifyError::Walk {
        path: dir.display().to_string(),
        source,
    })?;
    entry_files.sort();
    notes.sort();
    let mut ordered: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    let mut empty = Vec::new();
    let mut unreadable = Vec::new();
    for path in entry_files {
        match first_entry(&path, max_line) {
            Ok(Some((stream, first_seq))) => {
                ordered.entry(stream).or_default().push((first_seq, path))
            }
            Ok(None) => empty.push(path),
            Err(problem) => unreadable.push((path, problem)),
        }
    }
    let streams = ordered
        .into_iter()
        .map(|(stream, mut files)| {
            files.sort();
            (stream, files.into_iter().map(|(_, p)| p).collect())
        })
        .collect();
    Ok(Discovery {
        streams,
        notes,
        empty,
        unreadable,
    })
}

fn walk(dir: &Path, entries: &mut Vec<PathBuf>, notes: &mut Vec<PathBuf>) -> io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        let kind = item.file_type()?;
        // Symbolic links to files are followed, to directories not (no cycles).
        let is_dir = kind.is_dir();
        let is_file = kind.is_file() || (kind.is_symlink() && path.is_file());
        if is_dir {
            walk(&path, entries, notes)?;
        } else if is_file {
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
                entries.push(path);
            } else if name.ends_with(".note") {
                notes.push(path);
            }
        }
    }
    Ok(())
}

/// Reads an entry file, gunzipping `.gz` files.
pub fn open_entries(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let file = File::open(path)?;
    let is_gz = path.to_string_lossy().ends_with(".gz");
    Ok(if is_gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}

/// The stream and (estimated) first `seq` of an entry file, from its first line that
/// parses as an entry; the estimate subtracts the unreadable lines before it.
fn first_entry(path: &Path, max_line: usize) -> Result<Option<(String, u64)>, String> {
    let describe = |e: io::Error| format!("cannot read the file: {e}");
    let mut lines = LineReader::new(open_entries(path).map_err(describe)?, max_line);
    let mut buf = Vec::new();
    let mut skipped = 0u64;
    while let Some(read) = lines.next(&mut buf).map_err(describe)? {
        if let Line::Complete = read
            && let Ok(entry) = parse_entry(&buf)
            && let Some(stream) = entry.get("stream").and_then(Value::as_str)
            && let Some(seq) = entry.get("seq").and_then(Value::as_u64)
        {
            return Ok(Some((stream.to_string(), seq.saturating_sub(skipped))));
        }
        skipped += 1;
    }
    if skipped == 0 {
        Ok(None)
    } else {
        Err(format!("none of its {skipped} lines is a readable entry"))
    }
}

fn feed_file(
    path: &Path,
    max_line: usize,
    verifier: &mut StreamVerifier,
    visit: &mut dyn FnMut(&[u8]),
) {
    let file = path.display().to_string();
    let reader = match open_entries(path) {
        Ok(r) => r,
        Err(e) => return verifier.file_problem(&file, None, format!("cannot read the file: {e}")),
    };
    let mut lines = LineReader::new(reader, max_line);
    let mut buf = Vec::new();
    loop {
        match lines.next(&mut buf) {
            Ok(None) => return,
            Ok(Some(Line::Complete)) => {
                verifier.feed_line(&buf, &file, lines.line_no);
                visit(&buf);
            }
            Ok(Some(Line::TooLong(len))) => verifier.unreadable(
                &file,
                lines.line_no,
                format!("line is {len} bytes, longer than the {max_line} allowed"),
            ),
            Err(e) => {
                let line = lines.line_no + 1;
                return verifier.file_problem(&file, Some(line), format!("reading stopped: {e}"));
            }
        }
    }
}

fn add_note(
    path: &Path,
    options: &Options,
    verifiers: &mut BTreeMap<&str, StreamVerifier>,
    report: &mut Report,
) {
    let file = path.display().to_string();
    let mut finding = |stream: &str, problem: String| {
        report.findings.push(Finding {
            stream: stream.to_string(),
            seq: None,
            file: file.clone(),
            line: None,
            problem,
        })
    };
    let text = match read_small(path, MAX_NOTE_BYTES) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => return finding("?", "checkpoint is not UTF-8 text".into()),
        },
        Err(e) => return finding("?", format!("cannot read the checkpoint: {e}")),
    };
    // The unverified body only serves to name the stream in a finding.
    let claimed = note::split(&text)
        .ok()
        .and_then(|(body, _)| parse_checkpoint(body).ok());
    let stream_of = |origin: &str| {
        match_stream(
            origin,
            options.origin_prefix.as_deref(),
            verifiers.keys().copied(),
        )
    };
    let claimed_stream = claimed
        .as_ref()
        .and_then(|c| stream_of(&c.origin))
        .unwrap_or("?")
        .to_string();
    let body = if options.vkeys.is_empty() {
        note::split(&text).map(|(body, _)| body)
    } else {
        note::open(&text, &options.vkeys)
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return finding(&claimed_stream, format!("checkpoint rejected: {e}")),
    };
    let checkpoint = match parse_checkpoint(body) {
        Ok(c) => c,
        Err(e) => return finding(&claimed_stream, format!("checkpoint body rejected: {e}")),
    };
    let Some(stream) = stream_of(&checkpoint.origin).map(str::to_string) else {
        if checkpoint.size == 0 {
            return;
        }
        return finding(
            "?",
            format!(
                "checkpoint of origin {:?} commits to {} entries, but no stream here matches that origin",
                checkpoint.origin, checkpoint.size
            ),
        );
    };
    if let Some(v) = verifiers.get_mut(stream.as_str()) {
        v.add_checkpoint(checkpoint.size, checkpoint.root, &file);
    }
}

/// The stream a checkpoint origin belongs to: `<prefix>/<stream>` exactly when the
/// prefix is known, else the longest stream name that ends the origin after a `/`.
fn match_stream<'a>(
    origin: &str,
    prefix: Option<&str>,
    streams: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<&str> = None;
    for stream in streams {
        let matches = match prefix {
            Some(p) => origin.strip_prefix(p).and_then(|r| r.strip_prefix('/')) == Some(stream),
            None => {
                origin == stream
                    || origin
                        .strip_suffix(stream)
                        .is_some_and(|head| head.ends_with('/'))
            }
        };
        if matches && best.is_none_or(|b| b.len() < stream.len()) {
            best = Some(stream);
        }
    }
    best
}

fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

pub(super) enum Line {
    Complete,
    /// Skipped; holds its length.
    TooLong(u64),
}

/// Reads `\n`-terminated lines into a caller buffer, never holding more than `max`
/// bytes of one line.
pub(super) struct LineReader<R> {
    inner: R,
    max: usize,
    pub(super) line_no: u64,
}

impl<R: BufRead> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            max,
            line_no: 0,
        }
    }

    pub(super) fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        let mut total: u64 = 0;
        let mut started = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let (part, consumed, done) = match find_newline(chunk) {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            total += part.len() as u64;
            if total <= self.max as u64 {
                buf.extend_from_slice(part);
            }
            self.inner.consume(consumed);
            if done {
                break;
            }
        }
        self.line_no += 1;
        if total > self.max as u64 {
            buf.clear();
            return Ok(Some(Line::TooLong(total)));
        }
        Ok(Some(Line::Complete))
    }
}

/// Position of the first `\n`, eight bytes at a time.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let w = u64::from_le_bytes(eight) ^ (ONES * u64::from(b'\n'));
        if w.wrapping_sub(ONES) & !w & HIGH != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == b'\n').map(|p| at + p)
}

/// Parses one entry line: a JSON object, no duplicate member names at any depth, no
/// trailing data.
pub fn parse_entry(line: &[u8]) -> Result<Map<String, Value>, String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let value = StrictValue
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| format!("not valid JSON ({e})"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".into()),
    }
}

/// A `serde_json::Value` that refuses duplicate member names, which RFC 8785 (I-JSON)
/// forbids and which different parsers would read differently.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictValue)?;
            match map.entry(name) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    return Err(A::Error::custom(format!(
                        "duplicate member {:?}",
                        slot.key()
                    )));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

struct TrustedFrom {
    /// The first `seq` present.
    start: u64,
    /// Where the purge record declaring `..start` pruned is.
    record_seq: u64,
    /// What the pre-scan read there, and resumed from.
    declared: EvidencePurge,
    confirmed: bool,
}

struct ExpectedCheckpoint {
    root: Hash,
    file: String,
}

/// Entries missing before an entry: a finding at the end, unless a later journal-loss
/// record declares them lost.
struct Gap {
    first: u64,
    last: u64,
    /// The entry after the gap, and where it is.
    seq: u64,
    file: String,
    line: u64,
}

impl Gap {
    fn problem(&self) -> String {
        let missing = self.last - self.first + 1;
        if missing == 1 {
            format!("seq {} is missing before this entry", self.first)
        } else {
            format!(
                "seq {}..={} ({missing} entries) are missing before this entry",
                self.first, self.last
            )
        }
    }
}

/// A run of entries that repeat `seq`s already seen, reported as one finding.
struct RepeatRun {
    first: u64,
    last: u64,
    file: String,
    line: u64,
    expected: u64,
}

/// The checks of one stream, fed its entry lines in order.
pub struct StreamVerifier<'k> {
    stream: String,
    keys: Option<&'k KeyRing>,
    next_seq: u64,
    /// Recomputed leaf of the last entry in sequence.
    prev: Hash,
    /// Its `hash` field as written, when that differs from `prev` (already reported).
    prev_claimed: Option<Hash>,
    frontier: Frontier,
    /// The Merkle tree cannot be rebuilt past this `seq`: an entry before it is missing.
    tree_broken_at: Option<u64>,
    /// Unreadable lines since the last entry in sequence (each already reported).
    unreadable: u64,
    checkpoints: BTreeMap<u64, Vec<ExpectedCheckpoint>>,
    checkpoints_confirmed: u64,
    /// Size of the largest checkpoint confirmed so far.
    last_confirmed: Option<u64>,
    repeats: Option<RepeatRun>,
    /// When the stream starts after a purge: the purge record's `seq` and `hash`, and
    /// whether the entry at that `seq` was read in sequence with exactly that hash.
    trusted_from: Option<TrustedFrom>,
    /// Gaps not (yet) declared lost by a journal-loss record.
    gaps: Vec<Gap>,
    declared_losses: Vec<Finding>,
    loss_finder: aho_corasick::AhoCorasick,
    lines: u64,
    findings: Vec<Finding>,
    findings_not_shown: u64,
    notes: Vec<String>,
    spans: Vec<jcs::MemberSpan>,
    canonical: Vec<u8>,
    members: Vec<(usize, usize, bool)>,
}

impl<'k> StreamVerifier<'k> {
    /// Checks `stream` from its first entry (`seq` 0).
    pub fn new(stream: &str, keys: Option<&'k KeyRing>) -> StreamVerifier<'k> {
        let head = Head {
            next_seq: 0,
            prev: ZERO_HASH,
            frontier: Frontier::new(),
        };
        StreamVerifier::resume(stream, keys, head)
    }

    /// Checks `stream` from `head.next_seq`, trusting `head` for what came before.
    pub fn resume(stream: &str, keys: Option<&'k KeyRing>, head: Head) -> StreamVerifier<'k> {
        StreamVerifier {
            stream: stream.to_string(),
            keys,
            next_seq: head.next_seq,
            prev: head.prev,
            prev_claimed: None,
            frontier: head.frontier,
            tree_broken_at: None,
            unreadable: 0,
            checkpoints: BTreeMap::new(),
            checkpoints_confirmed: 0,
            last_confirmed: None,
            repeats: None,
            trusted_from: None,
            gaps: Vec::new(),
            declared_losses: Vec::new(),
            loss_finder: memchr_finder(super::loss::EVENT_TYPE.as_bytes()),
            lines: 0,
            findings: Vec::new(),
            findings_not_shown: 0,
            notes: Vec::new(),
            spans: Vec::with_capacity(32),
            canonical: Vec::with_capacity(1024),
            members: Vec::with_capacity(32),
        }
    }

    /// Checks `stream` from just after the range that `purge` (the entry at `seq`)
    /// declares pruned; the purge record must then be read, in sequence and unchanged,
    /// or the stream fails.
    pub fn after_purge(
        stream: &str,
        keys: Option<&'k KeyRing>,
        seq: u64,
        purge: &EvidencePurge,
    ) -> StreamVerifier<'k> {
        let mut verifier = StreamVerifier::resume(stream, keys, purge.head());
        verifier.trusted_from = Some(TrustedFrom {
            start: purge.last_seq + 1,
            record_seq: seq,
            declared: purge.clone(),
            confirmed: false,
        });
        verifier
    }

    /// `seq` the next entry must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The head after the entries fed so far.
    pub fn head(&self) -> Head {
        Head {
            next_seq: self.next_seq,
            prev: self.prev,
            frontier: self.frontier.clone(),
        }
    }

    /// Findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Registers a checkpoint (its signature already checked) to compare with the
    /// Merkle root when the entries reach `size`.
    pub fn add_checkpoint(&mut self, size: u64, root: Hash, file: &str) {
        let same_size = self.checkpoints.entry(size).or_default();
        if let Some(other) = same_size.first() {
            if other.root == root {
                self.notes.push(format!(
                    "stream {}: {file} repeats the checkpoint of size {size} in {}",
                    self.stream, other.file
                ));
            } else {
                let problem = format!(
                    "conflicts with {}: both sign size {size} with different roots",
                    other.file
                );
                self.push_finding(None, file, None, problem);
            }
        }
        let same_size = self.checkpoints.entry(size).or_default();
        same_size.push(ExpectedCheckpoint {
            root,
            file: file.to_string(),
        });
        if size == self.frontier.size() && self.tree_broken_at.is_none() {
            self.check_checkpoints(file, 0);
        }
    }

    /// Reports a problem with a file as a whole (unreadable, cut short).
    pub fn file_problem(&mut self, file: &str, line: Option<u64>, problem: String) {
        let seq = Some(self.next_seq + self.unreadable);
        self.push_finding(seq, file, line, problem);
    }

    /// Reports a line that could not be read as an entry.
    pub fn unreadable(&mut self, file: &str, line: u64, problem: String) {
        self.flush_repeats();
        self.lines += 1;
        let seq = Some(self.next_seq + self.unreadable);
        self.unreadable += 1;
        self.push_finding(seq, file, Some(line), problem);
    }

    /// Checks one entry line (without its newline).
    pub fn feed_line(&mut self, line: &[u8], file: &str, line_no: u64) {
        let read = if jcs::canonical_object(line, &mut self.spans) {
            read_in_place(line, &self.spans)
        } else {
            match parse_entry(line) {
                Ok(entry) => read_parsed(&entry, line, &mut self.canonical, &mut self.members),
                Err(problem) => Err(format!("line is {problem}")),
            }
        };
        let entry = match read {
            Ok(entry) => entry,
            Err(problem) => return self.unreadable(file, line_no, problem),
        };
        if entry.stream != self.stream {
            let problem = format!(
                "entry names stream {:?}, in a file of stream {:?}",
                entry.stream, self.stream
            );
            return self.unreadable(file, line_no, problem);
        }
        self.lines += 1;
        let seq = entry.seq;
        let at = Some(line_no);
        let seq_at = Some(seq);

        // Sequence first: a repeat is reported as part of a run and otherwise ignored.
        if seq < self.next_seq {
            self.note_repeat(seq, file, line_no);
            return;
        }
        self.flush_repeats();

        if entry.version.as_deref() != Some("1") {
            let shown = entry.version.as_deref().unwrap_or("missing");
            let problem = format!("`v` is {shown}, not {FORMAT_VERSION}");
            self.push_finding(seq_at, file, at, problem);
        }
        let leaf = entry.leaf;
        if entry.hash != Some(leaf) {
            let problem = match entry.hash {
                Some(_) => "`hash` does not match the entry's content",
                None => "`hash` is missing or not 64 lowercase hex digits",
            };
            self.push_finding(seq_at, file, at, problem.into());
        } else if !entry.canonical {
            let problem =
                "line is not in canonical (RFC 8785) form: its bytes were changed after sealing";
            self.push_finding(seq_at, file, at, problem.into());
        }
        let mut intact = false;
        if let Some(problem) = self.mac_problem(&entry) {
            self.push_finding(seq_at, file, at, problem);
        } else if entry.hash == Some(leaf) {
            intact = true;
            if seq == self.next_seq {
                self.confirm_purge_record(seq, line);
            }
        }

        if seq > self.next_seq {
            let missing = seq - self.next_seq;
            if missing != self.unreadable {
                self.gaps.push(Gap {
                    first: self.next_seq,
                    last: seq - 1,
                    seq,
                    file: file.to_string(),
                    line: line_no,
                });
            }
            self.tree_broken_at.get_or_insert(self.next_seq);
            if entry.prev.is_none() {
                let problem = "`prev` is not 64 lowercase hex digits".into();
                self.push_finding(seq_at, file, at, problem);
            }
        } else if entry.prev != Some(self.prev)
            && (entry.prev.is_none() || entry.prev != self.prev_claimed)
        {
            let trusted = self.trusted_from.as_ref().filter(|t| t.start == seq);
            let problem = if seq == 0 {
                "`prev` of the first entry is not 64 zeros".to_string()
            } else if let Some(t) = trusted {
                format!(
                    "`prev` is not the hash that the purge record at seq {} declares for seq {}",
                    t.record_seq,
                    seq - 1
                )
            } else {
                format!("`prev` does not link to the hash of seq {}", seq - 1)
            };
            self.push_finding(seq_at, file, at, problem);
        }

        if intact && self.loss_finder.find(line).is_some() {
            self.resume_after_loss(seq, line, entry.prev, file, line_no);
        }
        self.unreadable = 0;
        self.next_seq = seq + 1;
        self.prev = leaf;
        self.prev_claimed = entry.hash.filter(|claimed| *claimed != leaf);
        if self.tree_broken_at.is_none() {
            self.frontier.push(leaf);
            self.check_checkpoints(file, line_no);
        }
    }

    /// An intact journal-loss record at `seq`: the gaps it covers are declared losses,
    /// not findings, and the tree resumes from the state it declares (the daemon's own
    /// tree could not hold the lost leaves either), so later checkpoints are checked.
    fn resume_after_loss(
        &mut self,
        seq: u64,
        line: &[u8],
        prev: Option<Hash>,
        file: &str,
        line_no: u64,
    ) {
        let record = match parse_entry(line)
            .ok()
            .and_then(|e| LossRecord::from_entry(&e))
        {
            None => return,
            Some(Ok(record)) if Some(record.hash) == prev => record,
            Some(Ok(_)) => {
                let problem = "journal-loss record's `hash` is not its own `prev`".to_string();
                return self.push_finding(Some(seq), file, Some(line_no), problem);
            }
            Some(Err(problem)) => {
                return self.push_finding(Some(seq), file, Some(line_no), problem);
            }
        };
        let declared = &record.declared;
        let (covered, open): (Vec<Gap>, Vec<Gap>) = std::mem::take(&mut self.gaps)
            .into_iter()
            .partition(|g| declared.contains(g.first) && declared.contains(g.last));
        self.gaps = open;
        if covered.is_empty() {
            self.notes.push(format!(
                "stream {}: the journal-loss record at seq {seq} declares seq {}..={} lost from the journal; this evidence holds them",
                self.stream, declared.first_seq, declared.last_seq
            ));
        }
        for gap in covered {
            self.declared_losses.push(Finding {
                stream: self.stream.clone(),
                seq: Some(gap.seq),
                file: gap.file.clone(),
                line: Some(gap.line),
                problem: format!(
                    "{}, declared lost to journal damage by the journal-loss record at seq {seq} ({file} line {line_no})",
                    gap.problem()
                ),
            });
        }
        let stale: Vec<u64> = self
            .checkpoints
            .range(..seq)
            .map(|(size, _)| *size)
            .collect();
        for size in stale {
            for cp in self.checkpoints.remove(&size).unwrap_or_default() {
                self.notes.push(format!(
                    "stream {}: {} (size {size}) covers entries declared lost and cannot be checked",
                    self.stream, cp.file
                ));
            }
        }
        self.frontier = record.frontier;
        if self.gaps.is_empty() {
            self.tree_broken_at = None;
        }
        self.check_checkpoints(file, line_no);
    }

    /// Marks the purge record this pass resumed from as read, in sequence, with a valid
    /// hash and mac, when the entry at `seq` is it and declares what the pre-scan read.
    fn confirm_purge_record(&mut self, seq: u64, line: &[u8]) {
        let Some(t) = self.trusted_from.as_mut().filter(|t| t.record_seq == seq) else {
            return;
        };
        let same = parse_entry(line)
            .ok()
            .and_then(|e| EvidencePurge::from_entry(&e))
            .and_then(Result::ok)
            .is_some_and(|p| p == t.declared);
        t.confirmed = same;
    }

    fn mac_problem(&self, entry: &Entry) -> Option<String> {
        match (&entry.kid, &entry.mac) {
            (Field::Absent, Field::Absent) => self
                .keys
                .map(|_| "entry carries no `mac`, but a key ring was given".to_string()),
            (Field::Text(kid), Field::Text(mac)) => {
                let keys = self.keys?;
                match keys.verify(kid, &entry.leaf, mac) {
                    Ok(()) => None,
                    Err(MacError::UnknownKid(kid)) => {
                        Some(format!("`kid` {kid:?} is not in the key ring"))
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
            (Field::Absent, _) => Some("entry has a `mac` but no `kid`".into()),
            (_, Field::Absent) => Some("entry has a `kid` but no `mac`".into()),
            _ => Some("`kid` and `mac` must be strings".into()),
        }
    }

    fn check_checkpoints(&mut self, file: &str, line: u64) {
        let size = self.frontier.size();
        let Some(expected) = self.checkpoints.remove(&size) else {
            return;
        };
        let root = self.frontier.root();
        for cp in expected {
            if cp.root == root {
                self.checkpoints_confirmed += 1;
                self.last_confirmed = Some(size);
            } else {
                let place = if size == 0 {
                    "the empty tree".to_string()
                } else {
                    format!("the tree ending at seq {} ({file} line {line})", size - 1)
                };
                let problem = format!(
                    "checkpoint root for size {size} does not match the Merkle root of {place}"
                );
                self.push_finding(size.checked_sub(1), &cp.file, None, problem);
            }
        }
    }

    fn note_repeat(&mut self, seq: u64, file: &str, line: u64) {
        if let Some(run) = &mut self.repeats
            && run.file == file
            && run.last + 1 == seq
        {
            run.last = seq;
            return;
        }
        self.flush_repeats();
        self.repeats = Some(RepeatRun {
            first: seq,
            last: seq,
            file: file.to_string(),
            line,
            expected: self.next_seq,
        });
    }

    fn flush_repeats(&mut self) {
        let Some(run) = self.repeats.take() else {
            return;
        };
        let what = if run.first == run.last {
            format!("seq {} comes again", run.first)
        } else {
            format!("seq {}..={} come again", run.first, run.last)
        };
        let problem = format!(
            "{what} after seq {} (repeated or out of order)",
            run.expected - 1
        );
        self.push_finding(Some(run.first), &run.file.clone(), Some(run.line), problem);
    }

    fn push_finding(&mut self, seq: Option<u64>, file: &str, line: Option<u64>, problem: String) {
        if self.findings.len() >= MAX_FINDINGS_PER_STREAM {
            self.findings_not_shown += 1;
            return;
        }
        self.findings.push(Finding {
            stream: self.stream.clone(),
            seq,
            file: file.to_string(),
            line,
            problem,
        });
    }

    /// Ends the stream: reports checkpoints never reached and adds everything to `report`.
    pub fn finish_into(mut self, report: &mut Report) {
        self.flush_repeats();
        for gap in std::mem::take(&mut self.gaps) {
            let problem = gap.problem();
            self.push_finding(Some(gap.seq), &gap.file, Some(gap.line), problem);
        }
        report.declared_losses.append(&mut self.declared_losses);
        let entries_present = self.next_seq;
        let start = self.trusted_from.as_ref().map_or(0, |t| t.start);
        if let Some(t) = self.trusted_from.take()
            && !t.confirmed
        {
            let problem = format!(
                "seq 0..={} are missing: the purge record at seq {} that declares them pruned is not an intact entry of this stream",
                t.start - 1,
                t.record_seq
            );
            self.push_finding(Some(t.start), "-", None, problem);
        }
        for (size, list) in std::mem::take(&mut self.checkpoints) {
            for cp in list {
                if size < start {
                    self.notes.push(format!(
                        "stream {}: {} (size {size}) covers entries pruned by retention and cannot be checked",
                        self.stream, cp.file
                    ));
                    continue;
                }
                let problem = if size > entries_present {
                    format!(
                        "checkpoint commits to {size} entries, but only {entries_present} are present"
                    )
                } else {
                    let from = self.tree_broken_at.unwrap_or(0);
                    format!(
                        "checkpoint of size {size} cannot be confirmed: entries from seq {from} on are missing"
                    )
                };
                self.push_finding(None, &cp.file, None, problem);
            }
        }
        match self.last_confirmed {
            None if entries_present > 0 => self.notes.push(format!(
                "stream {}: no checkpoint confirms its {entries_present} entries",
                self.stream
            )),
            Some(size) if size < entries_present => self.notes.push(format!(
                "stream {}: {} entries after the last confirmed checkpoint (size {size}) rest on the hash chain{} alone",
                self.stream,
                entries_present - size,
                if self.keys.is_some() { " and macs" } else { "" }
            )),
            _ => {}
        }
        report.entries += self.lines;
        report.checkpoints_confirmed += self.checkpoints_confirmed;
        if let Some(size) = self.last_confirmed {
            report.confirmed_sizes.insert(self.stream.clone(), size);
        }
        report.findings.append(&mut self.findings);
        report.findings_not_shown += self.findings_not_shown;
        report.notes.append(&mut self.notes);
    }
}

/// What the checks need from one entry line.
struct Entry<'a> {
    stream: Cow<'a, str>,
    seq: u64,
    /// The JSON text of `v`.
    version: Option<Cow<'a, str>>,
    prev: Option<Hash>,
    hash: Option<Hash>,
    kid: Field<'a>,
    mac: Field<'a>,
    /// SHA-256(0x00 || JCS(entry without `hash` and `mac`)).
    leaf: Hash,
    /// Whether the line is exactly the canonical form of the entry.
    canonical: bool,
}

enum Field<'a> {
    Absent,
    NotText,
    Text(Cow<'a, str>),
}

impl<'a> Field<'a> {
    fn text(&self) -> Option<&str> {
        match self {
            Field::Text(t) => Some(t),
            _ => None,
        }
    }
}

const NO_STREAM: &str = "entry has no string `stream`";
const BAD_SEQ: &str = "`seq` is not an integer from 0 to 2^53-1";

/// Reads an entry from canonical text without building a tree: the members are located
/// by [`jcs::canonical_object`], and `E'` is the text with `hash` and `mac` cut out.
fn read_in_place<'a>(line: &'a [u8], spans: &[jcs::MemberSpan]) -> Result<Entry<'a>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_string())?;
    let slice = |range: (usize, usize)| text.get(range.0..range.1).unwrap_or_default();
    let (mut stream, mut seq, mut version) = (Field::Absent, None, None);
    let (mut prev, mut hash, mut kid, mut mac) =
        (Field::Absent, Field::Absent, Field::Absent, Field::Absent);
    for span in spans {
        let value = slice(span.value);
        match slice(span.name) {
            "stream" => stream = string_field(value),
            "seq" => seq = Some(value),
            "v" => version = Some(Cow::Borrowed(value)),
            "prev" => prev = string_field(value),
            "hash" => hash = string_field(value),
            "kid" => kid = string_field(value),
            "mac" => mac = string_field(value),
            _ => {}
        }
    }
    let Field::Text(stream) = stream else {
        return Err(NO_STREAM.into());
    };
    let seq = seq
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s <= MAX_SAFE_INTEGER as u64)
        .ok_or_else(|| BAD_SEQ.to_string())?;
    let members = spans.iter().map(|span| {
        let (start, end) = span.text();
        (start, end, is_unhashed(slice(span.name)))
    });
    let leaf = leaf_without(line, members);

    Ok(Entry {
        stream,
        seq,
        version,
        prev: prev.text().and_then(parse_hex_hash),
        hash: hash.text().and_then(parse_hex_hash),
        kid,
        mac,
        leaf,
        canonical: true,
    })
}

/// `hash` and `mac` are left out of what the leaf hash covers.
fn is_unhashed(name: &str) -> bool {
    name == "hash" || name == "mac"
}

/// SHA-256(0x00 || E') where E' is the object `text` without the members flagged in
/// `members` (`(start, end, flagged)` of each member's text, in order): `{`, the kept
/// members joined by `,`, `}`, fed as runs of adjacent members.
fn leaf_without(text: &[u8], members: impl Iterator<Item = (usize, usize, bool)>) -> Hash {
    let mut sha = Sha256::new();
    sha.update(b"\x00{");
    let mut fed_any = false;
    let mut run: Option<(usize, usize)> = None;
    let mut flush = |run: &mut Option<(usize, usize)>, sha: &mut Sha256| {
        if let Some((start, end)) = run.take() {
            if fed_any {
                sha.update(b",");
            }
            sha.update(&text[start..end]);
            fed_any = true;
        }
    };
    for (start, end, flagged) in members {
        if flagged {
            flush(&mut run, &mut sha);
        } else {
            run = Some((run.map_or(start, |r| r.0), end));
        }
    }
    flush(&mut run, &mut sha);
    sha.update(b"}");
    sha.finalize().into()
}

/// Writes the canonical form of `entry` into `out` and returns its leaf hash.
fn canonicalise(
    entry: &Map<String, Value>,
    out: &mut Vec<u8>,
    members: &mut Vec<(usize, usize, bool)>,
) -> Hash {
    out.clear();
    members.clear();
    out.push(b'{');
    let mut sorted: Vec<(&String, &Value)> = entry.iter().collect();
    sorted.sort_by(|a, b| jcs::cmp_utf16(a.0, b.0));
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        jcs::write_str(name, out);
        out.push(b':');
        jcs::write(value, out);
        members.push((start, out.len(), is_unhashed(name)));
    }
    out.push(b'}');
    leaf_without(out, members.iter().copied())
}

/// A string member's value from its JSON text.
fn string_field(json: &str) -> Field<'_> {
    let Some(inner) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"')) else {
        return Field::NotText;
    };
    if !inner.contains('\\') {
        return Field::Text(Cow::Borrowed(inner));
    }
    match serde_json::from_str::<String>(json) {
        Ok(s) => Field::Text(Cow::Owned(s)),
        Err(_) => Field::NotText,
    }
}

/// Reads an entry that is not in canonical form from its parsed value, writing the
/// canonical form into `canonical` to compare and to hash.
fn read_parsed<'a>(
    entry: &Map<String, Value>,
    line: &[u8],
    canonical: &mut Vec<u8>,
    members: &mut Vec<(usize, usize, bool)>,
) -> Result<Entry<'a>, String> {
    let field = |name: &str| match entry.get(name) {
        None => Field::Absent,
        Some(Value::String(s)) => Field::Text(Cow::Owned(s.clone())),
        Some(_) => Field::NotText,
    };
    let Field::Text(stream) = field("stream") else {
        return Err(NO_STREAM.into());
    };
    let seq = entry
        .get("seq")
        .and_then(Value::as_u64)
        .filter(|s| *s <= MAX_SAFE_INTEGER as u64)
        .ok_or_else(|| BAD_SEQ.to_string())?;
    let leaf = canonicalise(entry, canonical, members);
    Ok(Entry {
        stream,
        seq,
        version: entry.get("v").map(|v| Cow::Owned(v.to_string())),
        prev: field("prev").text().and_then(parse_hex_hash),
        hash: field("hash").text().and_then(parse_hex_hash),
        kid: field("kid"),
        mac: field("mac"),
        leaf,
        canonical: line == canonical.as_slice(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_duplicate_names_or_trailing_data_are_refused() {
        assert!(parse_entry(br#"{"a":1}"#).is_ok());
        for bad in [
            &br#"{"a":1,"a":1}"#[..],
            br#"{"a":{"b":1,"b":2}}"#,
            br#"{"a":1} {}"#,
            b"{\"a\":\"\xff\"}",
            br#"[1]"#,
            br#"{"a":1e400}"#,
            b"",
        ] {
            assert!(
                parse_entry(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn origins_match_streams_by_suffix_or_exact_prefix() {
        let streams = ["default", "eu/default", "x"];
        let m = |o: &str, p: Option<&str>| match_stream(o, p, streams.iter().copied());
        assert_eq!(m("vellum.example/audit/default", None), Some("default"));
        assert_eq!(m("vellum.example/eu/default", None), Some("eu/default"));
        assert_eq!(m("vellum.example/audit/nodefault", None), None);
        assert_eq!(m("a/eu/default", Some("a")), Some("eu/default"));
        assert_eq!(m("a/eu/default", Some("a/eu")), Some("default"));
        assert_eq!(m("b/x", Some("a")), None);
    }

    #[test]
    fn newlines_are_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = b'\n';
                }
                bytes.extend_from_slice(b"x\n");
                let want = bytes.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&bytes), want, "{len} {at}");
            }
        }
        assert_eq!(find_newline(&[0x8a; 20]), None);
    }

    #[test]
    fn long_lines_are_skipped_without_being_held() {
        let data = format!("{}\nshort\n{}", "x".repeat(100), "y".repeat(5));
        let mut r = LineReader::new(io::BufReader::with_capacity(7, data.as_bytes()), 10);
        let mut buf = Vec::new();
        assert!(matches!(
            r.next(&mut buf).unwrap(),
            Some(Line::TooLong(100))
        ));
        assert!(buf.capacity() <= 16);
        assert!(matches!(r.next(&mut buf).unwrap(), Some(Line::Complete)));
        assert_eq!(buf, b"short");
        assert!(matches!(r.next(&mut buf).unwrap(), Some(Line::Complete)));
        assert_eq!(buf, b"yyyyy");
        assert_eq!(r.line_no, 3);
        assert!(r.next(&mut buf).unwrap().is_none());
    }

    #[test]
    fn respelled_lines_hash_the_same_but_are_reported_as_changed() {
        use crate::evidence::seal::Chain;
        let keys = KeyRing::from_strings([("k", "k".repeat(32))]).unwrap();
        let mut chain = Chain::new("s", Some(keys.clone())).unwrap();
        let fields = serde_json::json!({"body": {"n": 1.5, "t": "a\u{1}b"}, "x": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let first = chain.seal(fields.clone()).line;
        let second = chain.seal(fields).line;
        // Same content, other spelling: a space and an uppercase exponent-free respelling.
        let respelled =
            String::from_utf8(second.clone())
                .unwrap()
                .replacen("\"x\":1", "\"x\": 1.0", 1);
        assert_ne!(respelled.as_bytes(), &second[..]);

        let mut v = StreamVerifier::new("s", Some(&keys));
        v.feed_line(&first, "f", 1);
        v.feed_line(respelled.as_bytes(), "f", 2);
        let problems: Vec<&str> = v.findings().iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(
            problems,
            ["line is not in canonical (RFC 8785) form: its bytes were changed after sealing"]
        );
        assert_eq!(v.head(), chain.head());
    }

    #[test]
    fn findings_name_stream_seq_file_and_line() {
        let f = Finding {
            stream: "default".into(),
            seq: Some(7),
            file: "ev/default/00000000000000000000.jsonl".into(),
            line: Some(8),
            problem: "`hash` does not match the entry's content".into(),
        };
        assert_eq!(
            f.to_string(),
            "stream default, seq 7, ev/default/00000000000000000000.jsonl line 8: `hash` does not match the entry's content"
        );
    }

    #[test]
    fn a_stream_resumed_after_a_purge_needs_its_purge_record_intact() {
        use crate::evidence::purge::{EVENT_TYPE, EvidencePurge};
        use crate::evidence::seal::Chain;
        let mut chain = Chain::new("s", None).unwrap();
        let mut lines = Vec::new();
        let mut heads = Vec::new();
        for i in 0..10 {
            let fields = serde_json::json!({ "body": i })
                .as_object()
                .cloned()
                .unwrap();
            lines.push(chain.seal(fields).line);
            heads.push(chain.head());
        }
        let pruned = &heads[4];
        let purge = EvidencePurge {
            store: "file/evidence".into(),
            first_seq: 0,
            last_seq: 4,
            hash: pruned.prev,
            frontier: pruned.frontier.clone(),
        };
        let mut record = Map::new();
        record.insert("event_type".into(), Value::from(EVENT_TYPE));
        record.insert("attributes".into(), Value::Object(purge.attributes()));
        lines.push(chain.seal(record).line);

        let feed = |v: &mut StreamVerifier, seqs: std::ops::Range<usize>| {
            for seq in seqs {
                v.feed_line(&lines[seq], "f", seq as u64 + 1);
            }
        };
        let mut whole = StreamVerifier::after_purge("s", None, 10, &purge);
        whole.add_checkpoint(11, chain.root(), "cp");
        feed(&mut whole, 5..11);
        let mut report = Report::default();
        whole.finish_into(&mut report);
        assert!(report.is_ok(), "{:?}", report.findings);
        assert_eq!(
            report.checkpoints_confirmed, 1,
            "the root from the frontier"
        );

        // The purge record is not there to be read: the start is not vouched for.
        let mut cut = StreamVerifier::after_purge("s", None, 10, &purge);
        feed(&mut cut, 5..10);
        let mut report = Report::default();
        cut.finish_into(&mut report);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(report.findings[0].problem.contains("seq 0..=4 are missing"));

        // A declaration whose hash is not entry 5's prev breaks the link.
        let mut wrong = purge.clone();
        wrong.hash = [7; 32];
        let mut v = StreamVerifier::after_purge("s", None, 10, &wrong);
        feed(&mut v, 5..11);
        let problems: Vec<&str> = v.findings().iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(
            problems,
            ["`prev` is not the hash that the purge record at seq 10 declares for seq 4"]
        );
    }

    #[test]
    fn a_gap_is_a_declared_loss_only_inside_the_range_an_intact_loss_record_declares() {
        use crate::evidence::loss::{DeclaredLoss, EVENT_TYPE, LossRecord};
        use crate::evidence::seal::Chain;
        // Entries 0..=5, of which 2 and 3 are lost, then the loss record at seq 6 and
        // one more entry; a checkpoint of everything.
        let run = |declared: DeclaredLoss, tamper: bool| {
            let mut chain = Chain::new("s", None).unwrap();
            let mut lines = Vec::new();
            for i in 0..6 {
                let fields = serde_json::json!({ "body": i })
                    .as_object()
                    .cloned()
                    .unwrap();
                lines.push(chain.seal(fields).line);
            }
            let head = chain.head();
            let record = LossRecord {
                declared,
                hash: head.prev,
                frontier: head.frontier,
            };
            let mut fields = Map::new();
            fields.insert("event_type".into(), Value::from(EVENT_TYPE));
            fields.insert("attributes".into(), Value::Object(record.attributes()));
            lines.push(chain.seal(fields).line);
            let fields = serde_json::json!({ "body": 7 })
                .as_object()
                .cloned()
                .unwrap();
            lines.push(chain.seal(fields).line);
            if tamper {
                lines[6] = String::from_utf8(lines[6].clone())
                    .unwrap()
                    .replace("\"last_seq\":3", "\"last_seq\":4")
                    .into_bytes();
            }
            let mut v = StreamVerifier::new("s", None);
            v.add_checkpoint(8, chain.root(), "cp");
            for seq in [0, 1, 4, 5, 6, 7] {
                v.feed_line(&lines[seq], "f", seq as u64 + 1);
            }
            let mut report = Report::default();
            v.finish_into(&mut report);
            report
        };
        let report = run(
            DeclaredLoss {
                first_seq: 2,
                last_seq: 3,
            },
            false,
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(report.declared_losses.len(), 1);
        assert!(
            report.declared_losses[0]
                .problem
                .contains("seq 2..=3 (2 entries) are missing")
        );
        assert_eq!(
            report.checkpoints_confirmed, 1,
            "the tree resumes from the record"
        );
        assert!(!report.is_ok(), "a declared loss fails unless accepted");
        let accepted = Report {
            accept_declared_loss: true,
            ..report
        };
        assert!(accepted.is_ok());

        // A declaration that does not cover the whole gap leaves it a finding.
        let report = run(
            DeclaredLoss {
                first_seq: 3,
                last_seq: 3,
            },
            false,
        );
        assert!(report.declared_losses.is_empty());
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.problem.contains("seq 2..=3 (2 entries) are missing"))
        );

        // A loss record changed after sealing declares nothing.
        let report = run(
            DeclaredLoss {
                first_seq: 2,
                last_seq: 3,
            },
            true,
        );
        assert!(report.declared_losses.is_empty());
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.problem.contains("`hash` does not match"))
        );
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.problem.contains("are missing"))
        );
    }
}
