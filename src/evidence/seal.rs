//! Sealing: turns a record's JSON fields into the next entry of a stream (evidence
//! format §1) and keeps the stream's head (next `seq`, `prev`, Merkle frontier) so that
//! a checkpoint can be signed after any entry.
//!
//! One [`Chain`] per stream, owned by the single writer that orders the journal:
//!
//! ```ignore
//! let mut chain = Chain::new("default", Some(key_ring))?;
//! let sealed = chain.seal(record.to_json());   // sealed.line is one JSON Lines line
//! let note = chain.checkpoint("vellum.example/audit", &signer)?;
//! let head = chain.head();                     // persist; Chain::resume(…, head, …) later
//! ```
//!
//! The entry line is written once, in canonical (RFC 8785) form, with `hash` and `mac`
//! as placeholders; the leaf hash is taken over that same buffer with those two members
//! skipped (which is exactly `JCS(E')`), then the placeholders are filled in.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::ops::Range;

use super::hmac::KeyRing;
use super::jcs;
use super::merkle::{Frontier, FrontierError, Hash};
use super::note::{NoteError, NoteSigner, checkpoint_text, is_valid_origin};

/// Value of `v` in every entry this code writes.
pub const FORMAT_VERSION: u64 = 1;

/// `prev` of the first entry of a stream.
pub const ZERO_HASH: Hash = [0; 32];

/// Top-level names the sealer owns; a record field with one of these names is replaced.
pub const INTEGRITY_FIELDS: [&str; 7] = ["hash", "kid", "mac", "prev", "seq", "stream", "v"];

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("stream name {0:?} is invalid: it must be non-empty and hold no control characters")]
    BadStream(String),
    #[error("stored chain head is inconsistent: {0}")]
    BadHead(String),
    #[error("checkpoint origin {0:?} is invalid: it must be one line")]
    BadOrigin(String),
    #[error(transparent)]
    Frontier(#[from] FrontierError),
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// One sealed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    pub leaf: Hash,
    /// The canonical entry, without a trailing newline.
    pub line: Vec<u8>,
}

/// What must survive a restart for a stream to continue: the next `seq`, the last
/// `hash`, and the Merkle frontier of all entries so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub next_seq: u64,
    pub prev: Hash,
    pub frontier: Frontier,
}

impl Head {
    /// `{"frontier":[hex…],"next_seq":n,"prev":hex}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "next_seq": self.next_seq,
            "prev": hex::encode(self.prev),
            "frontier": self.frontier.to_hex(),
        })
    }

    pub fn from_json(v: &Value) -> Result<Head, SealError> {
        let bad = |what: &str| SealError::BadHead(format!("{what} is missing or malformed"));
        let next_seq = v
            .get("next_seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("next_seq"))?;
        let prev = v
            .get("prev")
            .and_then(Value::as_str)
            .and_then(super::merkle::parse_hex_hash)
            .ok_or_else(|| bad("prev"))?;
        let nodes: Vec<&str> = v
            .get("frontier")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| bad("frontier"))?;
        let frontier = Frontier::from_hex(next_seq, &nodes)?;
        Ok(Head {
            next_seq,
            prev,
            frontier,
        })
    }
}

/// The sealing state of one stream.
#[derive(Debug)]
pub struct Chain {
    stream: String,
    /// `stream` as a canonical JSON string, written into every entry.
    stream_json: Vec<u8>,
    next_seq: u64,
    prev: Hash,
    keys: Option<KeyRing>,
    frontier: Frontier,
}

/// Whether `name` is one of [`INTEGRITY_FIELDS`].
pub fn is_integrity_field(name: &str) -> bool {
    matches!(
        name,
        "hash" | "kid" | "mac" | "prev" | "seq" | "stream" | "v"
    )
}

/// Whether `stream` can name a stream: non-empty, no control characters (it becomes
/// part of a checkpoint's origin line).
pub fn is_valid_stream(stream: &str) -> bool {
    is_valid_origin(stream)
}

/// The checkpoint origin of `stream`: `<prefix>/<stream>`.
pub fn origin(prefix: &str, stream: &str) -> String {
    format!("{prefix}/{stream}")
}

impl Chain {
    /// A new stream starting at `seq` 0.
    pub fn new(stream: &str, keys: Option<KeyRing>) -> Result<Chain, SealError> {
        let head = Head {
            next_seq: 0,
            prev: ZERO_HASH,
            frontier: Frontier::new(),
        };
        Chain::resume(stream, head, keys)
    }

    /// Continues a stream from a persisted head.
    pub fn resume(stream: &str, head: Head, keys: Option<KeyRing>) -> Result<Chain, SealError> {
        if !is_valid_stream(stream) {
            return Err(SealError::BadStream(stream.to_string()));
        }
        if head.frontier.size() != head.next_seq {
            return Err(SealError::BadHead(format!(
                "next seq is {} but the Merkle frontier covers {} entries",
                head.next_seq,
                head.frontier.size()
            )));
        }
        if head.next_seq == 0 && head.prev != ZERO_HASH {
            return Err(SealError::BadHead(
                "an empty stream has a non-zero prev".into(),
            ));
        }
        // With an odd size the frontier's last node is the last leaf itself.
        if head.next_seq % 2 == 1 && head.frontier.nodes().last() != Some(&head.prev) {
            return Err(SealError::BadHead(
                "prev is not the last leaf of the Merkle frontier".into(),
            ));
        }
        let mut stream_json = Vec::new();
        jcs::write_str(stream, &mut stream_json);
        Ok(Chain {
            stream: stream.to_string(),
            stream_json,
            next_seq: head.next_seq,
            prev: head.prev,
            keys,
            frontier: head.frontier,
        })
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// `seq` of the next entry, which is also the number of entries sealed.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// `hash` of the last entry (zeros before the first).
    pub fn prev(&self) -> &Hash {
        &self.prev
    }

    pub fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_ref()
    }

    /// Merkle root of all entries sealed so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    pub fn head(&self) -> Head {
        Head {
            next_seq: self.next_seq,
            prev: self.prev,
            frontier: self.frontier.clone(),
        }
    }

    /// Returns the chain to `head`, a head it had before (taken with [`Chain::head`]):
    /// what was sealed after it is forgotten, as when a batch is refused before it is
    /// committed.
    pub fn rewind(&mut self, head: Head) {
        debug_assert!(head.next_seq <= self.next_seq);
        self.next_seq = head.next_seq;
        self.prev = head.prev;
        self.frontier = head.frontier;
    }

    /// Seals `fields` (a record's [`crate::event::Record::to_json`]) as the next entry.
    pub fn seal(&mut self, fields: Map<String, Value>) -> Sealed {
        let mut line = Vec::with_capacity(1024);
        let (seq, leaf) = self.seal_into(&fields, &mut line);
        Sealed { seq, leaf, line }
    }

    /// Seals `fields` as the next entry, writing the canonical line into `line` (cleared
    /// first), and returns its `seq` and leaf hash.
    pub fn seal_into(&mut self, fields: &Map<String, Value>, line: &mut Vec<u8>) -> (u64, Hash) {
        let seq = self.next_seq;
        let kid = self.keys.as_ref().map(KeyRing::signing_kid);
        let mut entry = EntryWriter {
            line,
            members: 0,
            hash_member: 0..0,
            mac_member: 0..0,
        };
        entry.line.clear();
        entry.line.push(b'{');
        // The integrity members, in canonical order, are merged into the record's
        // (already sorted) members as both are written.
        let own: &[&str] = if kid.is_some() {
            &["hash", "kid", "mac", "prev", "seq", "stream", "v"]
        } else {
            &["hash", "prev", "seq", "stream", "v"]
        };
        let mut own = own.iter().copied().peekable();
        let write_own = |entry: &mut EntryWriter, name: &str| {
            let start = entry.begin(name);
            match name {
                "hash" => {
                    push_hex_string(&ZERO_HASH, entry.line);
                    entry.hash_member = entry.span_from(start);
                }
                "kid" => jcs::write_str(kid.unwrap_or_default(), entry.line),
                "mac" => {
                    push_hex_string(&ZERO_HASH, entry.line);
                    entry.mac_member = entry.span_from(start);
                }
                "prev" => push_hex_string(&self.prev, entry.line),
                "seq" => jcs::write_number(&seq.into(), entry.line),
                "stream" => entry.line.extend_from_slice(&self.stream_json),
                _ => jcs::write_number(&FORMAT_VERSION.into(), entry.line),
            }
        };
        let mut write_record = |entry: &mut EntryWriter, name: &str, value: &Value| {
            if is_integrity_field(name) {
                return;
            }
            // The integrity names are ASCII, and against an ASCII string byte order
            // is UTF-16 order.
            while let Some(next) = own.next_if(|o| o.as_bytes() < name.as_bytes()) {
                write_own(entry, next);
            }
            entry.begin(name);
            jcs::write(value, entry.line);
        };
        if jcs::is_sorted_utf16(fields.keys().map(String::as_str)) {
            for (name, value) in fields {
                write_record(&mut entry, name, value);
            }
        } else {
            let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
            sorted.sort_by(|a, b| jcs::cmp_utf16(a.0, b.0));
            for (name, value) in sorted {
                write_record(&mut entry, name, value);
            }
        }
        for name in own {
            write_own(&mut entry, name);
        }
        entry.line.push(b'}');
        let EntryWriter {
            line,
            hash_member,
            mac_member,
            ..
        } = entry;

        // leaf = SHA-256(0x00 || JCS(E')), E' being the entry without `hash` and `mac`.
        let mut sha = Sha256::new();
        sha.update([0x00]);
        let mut at = 0;
        for skip in [&hash_member, &mac_member] {
            if skip.is_empty() {
                continue;
            }
            sha.update(&line[at..skip.start]);
            at = skip.end;
        }
        sha.update(&line[at..]);
        let leaf: Hash = sha.finalize().into();

        fill_hex(line, &hash_member, &leaf);
        if let Some(keys) = &self.keys {
            let (_, mac) = keys.sign_raw(&leaf);
            fill_hex(line, &mac_member, &mac);
        }

        self.prev = leaf;
        self.next_seq += 1;
        self.frontier.push(leaf);
        (seq, leaf)
    }

    /// A signed checkpoint (C2SP signed note) of every entry sealed so far, with origin
    /// `<origin_prefix>/<stream>`.
    pub fn checkpoint(
        &self,
        origin_prefix: &str,
        signer: &NoteSigner,
    ) -> Result<String, SealError> {
        let origin = origin(origin_prefix, &self.stream);
        if !is_valid_origin(&origin) {
            return Err(SealError::BadOrigin(origin));
        }
        let text = checkpoint_text(&origin, self.frontier.size(), &self.frontier.root());
        Ok(signer.sign(&text)?)
    }
}

/// Writes an entry's members one after another, remembering where `hash` and `mac`
/// are so they can be left out of the leaf hash and filled in afterwards.
struct EntryWriter<'a> {
    line: &'a mut Vec<u8>,
    members: usize,
    hash_member: Range<usize>,
    mac_member: Range<usize>,
}

impl EntryWriter<'_> {
    /// Writes the separator and `"name":`; returns where the member (with its
    /// separator) starts.
    fn begin(&mut self, name: &str) -> usize {
        let start = self.line.len();
        if self.members > 0 {
            self.line.push(b',');
        }
        self.members += 1;
        jcs::write_str(name, self.line);
        self.line.push(b':');
        start
    }

    /// The bytes to drop to remove the member just written: it and its own comma, or,
    /// for the first member, it and the comma that the next member will write.
    fn span_from(&self, start: usize) -> Range<usize> {
        if self.members > 1 {
            start..self.line.len()
        } else {
            start..self.line.len() + 1
        }
    }
}

fn push_hex_string(hash: &Hash, line: &mut Vec<u8>) {
    line.push(b'"');
    let at = line.len();
    line.resize(at + 64, 0);
    // 64 bytes of room for 32 bytes of hex cannot fail.
    let _ = hex::encode_to_slice(hash, &mut line[at..]);
    line.push(b'"');
}

/// Writes `hash` as hex over the 64 placeholder digits that end a member `…:"<64>"`.
fn fill_hex(line: &mut [u8], member: &Range<usize>, hash: &Hash) {
    // The member range of a first member also covers the comma that follows it.
    let end = if line[member.end - 1] == b',' {
        member.end - 1
    } else {
        member.end
    };
    let _ = hex::encode_to_slice(hash, &mut line[end - 65..end - 1]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::merkle::{leaf_hash, root};
    use crate::evidence::note::{NoteVerifier, open, parse_checkpoint};
    use hmac::{Hmac, Mac};
    use serde_json::json;

    fn fields(i: u64) -> Map<String, Value> {
        json!({
            "time": "2026-11-23T18:55:00.000000001Z",
            "body": {"msg": format!("event {i}"), "emoji": "\u{1f600}", "ctl": "\u{1}"},
            "attributes": {"user": "u1", "n": i, "f": 0.5},
            "source": "otlp",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn keys() -> KeyRing {
        KeyRing::from_strings([("k1", "a".repeat(32))]).unwrap()
    }

    /// Independent computation of an entry from the format's definition: build E' as a
    /// value, canonicalise it, hash with the 0x00 prefix, HMAC with the `hmac` crate.
    fn expected_entry(
        f: &Map<String, Value>,
        seq: u64,
        prev: &Hash,
        stream: &str,
        key: Option<&[u8]>,
    ) -> (Hash, Value) {
        let mut e = f.clone();
        e.insert("v".into(), json!(1));
        e.insert("stream".into(), json!(stream));
        e.insert("seq".into(), json!(seq));
        e.insert("prev".into(), json!(hex::encode(prev)));
        if key.is_some() {
            e.insert("kid".into(), json!("k1"));
        }
        let leaf = leaf_hash(&serde_json_canonicalizer::to_vec(&Value::Object(e.clone())).unwrap());
        e.insert("hash".into(), json!(hex::encode(leaf)));
        if let Some(key) = key {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(&leaf);
            e.insert(
                "mac".into(),
                json!(hex::encode(mac.finalize().into_bytes())),
            );
        }
        (leaf, Value::Object(e))
    }

    #[test]
    fn entries_follow_the_format_definition() {
        for signed in [false, true] {
            let mut chain = Chain::new("default", signed.then(keys)).unwrap();
            let mut prev = ZERO_HASH;
            for i in 0..5 {
                let sealed = chain.seal(fields(i));
                let key = [b'a'; 32];
                let (leaf, entry) =
                    expected_entry(&fields(i), i, &prev, "default", signed.then_some(&key[..]));
                assert_eq!(sealed.seq, i);
                assert_eq!(sealed.leaf, leaf);
                assert_eq!(
                    String::from_utf8(sealed.line).unwrap(),
                    String::from_utf8(serde_json_canonicalizer::to_vec(&entry).unwrap()).unwrap()
                );
                prev = leaf;
            }
        }
    }

    #[test]
    fn placeholders_are_handled_when_hash_sorts_first_and_fields_clash() {
        // No record field sorts before "hash"; a record field named "seq" is replaced.
        let f = json!({"zeta": 1, "seq": "mine", "mac": "x"})
            .as_object()
            .cloned()
            .unwrap();
        let mut chain = Chain::new("s", Some(keys())).unwrap();
        let sealed = chain.seal(f);
        let clean = json!({"zeta": 1}).as_object().cloned().unwrap();
        let key = [b'a'; 32];
        let (leaf, entry) = expected_entry(&clean, 0, &ZERO_HASH, "s", Some(&key));
        assert_eq!(sealed.leaf, leaf);
        assert_eq!(
            sealed.line,
            serde_json_canonicalizer::to_vec(&entry).unwrap()
        );
        let mut unsigned = Chain::new("s", None).unwrap();
        let sealed = unsigned.seal(clean.clone());
        let (leaf, entry) = expected_entry(&clean, 0, &ZERO_HASH, "s", None);
        assert_eq!(sealed.leaf, leaf);
        assert_eq!(
            sealed.line,
            serde_json_canonicalizer::to_vec(&entry).unwrap()
        );
    }

    #[test]
    fn checkpoints_commit_to_the_merkle_root_and_heads_resume() {
        let signer = NoteSigner::parse(
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        )
        .unwrap();
        let mut chain = Chain::new("default", None).unwrap();
        let mut leaves = Vec::new();
        for i in 0..3 {
            leaves.push(chain.seal(fields(i)).leaf);
        }
        let head = Head::from_json(&chain.head().to_json()).unwrap();
        assert_eq!(head, chain.head());
        let mut resumed = Chain::resume("default", head, None).unwrap();
        for i in 3..7 {
            leaves.push(resumed.seal(fields(i)).leaf);
        }
        let mut straight = Chain::new("default", None).unwrap();
        let straight_leaves: Vec<Hash> = (0..7).map(|i| straight.seal(fields(i)).leaf).collect();
        assert_eq!(leaves, straight_leaves);

        let note = resumed.checkpoint("vellum.example/audit", &signer).unwrap();
        let text = open(
            &note,
            &[NoteVerifier::parse(
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            )
            .unwrap()],
        )
        .unwrap();
        let cp = parse_checkpoint(text).unwrap();
        assert_eq!(cp.origin, "vellum.example/audit/default");
        assert_eq!(cp.size, 7);
        assert_eq!(cp.root, root(&leaves));
        assert!(matches!(
            resumed.checkpoint("a\nb", &signer),
            Err(SealError::BadOrigin(_))
        ));
    }

    #[test]
    fn inconsistent_heads_and_bad_streams_are_refused() {
        let mut chain = Chain::new("default", None).unwrap();
        chain.seal(fields(0));
        let mut head = chain.head();
        head.next_seq = 2;
        assert!(matches!(
            Chain::resume("default", head, None),
            Err(SealError::BadHead(_))
        ));
        let mut head = chain.head();
        head.prev = [9; 32];
        assert!(matches!(
            Chain::resume("default", head, None),
            Err(SealError::BadHead(_))
        ));
        assert!(matches!(Chain::new("", None), Err(SealError::BadStream(_))));
        assert!(matches!(
            Chain::new("a\nb", None),
            Err(SealError::BadStream(_))
        ));
        assert!(Head::from_json(&json!({"next_seq": 1, "prev": "00", "frontier": []})).is_err());
    }
}
