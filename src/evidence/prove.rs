//! Inclusion and consistency proofs (RFC 9162 §2.1.3, §2.1.4) of a stream's Merkle
//! tree, in a small text form that anyone can check with the RFC's algorithms.
//!
//! All hashes are 64 lowercase hex digits (a checkpoint prints its root in base64:
//! the same 32 bytes). A header names the stream and the tree; the path follows, one
//! hash per line, in the RFC's order.
//!
//! ```text
//! vellum inclusion proof v1
//! stream default
//! index 5
//! size 12
//! leaf <hash of entry seq 5>
//! root <Merkle root of entries 0..12>
//! <path hash 1>
//! <path hash 2>
//! ```
//!
//! ```text
//! vellum consistency proof v1
//! stream default
//! old-size 5
//! new-size 12
//! old-root <root of the first 5 entries>
//! new-root <root of the first 12 entries>
//! <proof hash 1>
//! ```

use std::fmt;
use std::path::Path;

use super::jcs;
use super::merkle::{self, Hash, ProofError, parse_hex_hash};
use super::note::Checkpoint;
use super::verify::{Line, LineReader, VerifyError, discover, open_entries, parse_entry};

const INCLUSION_HEADER: &str = "vellum inclusion proof v1";
const CONSISTENCY_HEADER: &str = "vellum consistency proof v1";

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("proof text, line {line}: {problem}")]
    Syntax { line: usize, problem: String },
    #[error(transparent)]
    Directory(#[from] VerifyError),
    #[error("stream {0:?} has no entries in this directory")]
    NoStream(String),
    #[error("{file} line {line}: {problem} (run `vellum verify` for details)")]
    Entry {
        file: String,
        line: u64,
        problem: String,
    },
    #[error("the proof is for stream {proof:?}, the checkpoint for origin {origin:?}")]
    OtherStream { proof: String, origin: String },
    #[error("the checkpoint has size {checkpoint}, the proof's tree {proof}")]
    OtherSize { checkpoint: u64, proof: u64 },
    #[error("the checkpoint's root differs from the proof's root")]
    OtherRoot,
}

/// Proof that leaf `index` is in the tree of the first `size` entries of `stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub stream: String,
    pub index: u64,
    pub size: u64,
    pub leaf: Hash,
    pub root: Hash,
    pub path: Vec<Hash>,
}

/// Proof that the tree of the first `old_size` entries is a prefix of the tree of the
/// first `new_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub stream: String,
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: Hash,
    pub new_root: Hash,
    pub path: Vec<Hash>,
}

/// Builds the inclusion proof of `leaves[index]` in the tree of `leaves[..size]`.
pub fn inclusion(
    stream: &str,
    leaves: &[Hash],
    index: u64,
    size: u64,
) -> Result<InclusionProof, ProveError> {
    let path = merkle::inclusion_proof(leaves, index, size)?;
    Ok(InclusionProof {
        stream: stream.to_string(),
        index,
        size,
        leaf: leaves[index as usize],
        root: merkle::root(&leaves[..size as usize]),
        path,
    })
}

/// Builds the consistency proof between the trees of `leaves[..old]` and `leaves[..new]`.
pub fn consistency(
    stream: &str,
    leaves: &[Hash],
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, ProveError> {
    let path = merkle::consistency_proof(leaves, old, new)?;
    Ok(ConsistencyProof {
        stream: stream.to_string(),
        old_size: old,
        new_size: new,
        old_root: merkle::root(&leaves[..old as usize]),
        new_root: merkle::root(&leaves[..new as usize]),
        path,
    })
}

impl InclusionProof {
    /// Runs RFC 9162 §2.1.3.2 on the proof's own leaf, path and root.
    pub fn check(&self) -> Result<(), ProofError> {
        merkle::verify_inclusion(&self.leaf, self.index, self.size, &self.path, &self.root)
    }

    /// Checks that `checkpoint` (already opened) commits to this proof's tree.
    pub fn matches(&self, checkpoint: &Checkpoint) -> Result<(), ProveError> {
        same_tree(&self.stream, self.size, &self.root, checkpoint)
    }

    pub fn parse(text: &str) -> Result<InclusionProof, ProveError> {
        let mut r = ProofReader::new(text, INCLUSION_HEADER)?;
        Ok(InclusionProof {
            stream: r.field("stream")?.to_string(),
            index: r.number("index")?,
            size: r.number("size")?,
            leaf: r.hash_field("leaf")?,
            root: r.hash_field("root")?,
            path: r.path()?,
        })
    }
}

impl ConsistencyProof {
    /// Runs RFC 9162 §2.1.4.2 on the proof's sizes, roots and path.
    pub fn check(&self) -> Result<(), ProofError> {
        merkle::verify_consistency(
            self.old_size,
            self.new_size,
            &self.path,
            &self.old_root,
            &self.new_root,
        )
    }

    /// Checks that `checkpoint` commits to the new tree of this proof.
    pub fn matches_new(&self, checkpoint: &Checkpoint) -> Result<(), ProveError> {
        same_tree(&self.stream, self.new_size, &self.new_root, checkpoint)
    }

    /// Checks that `checkpoint` commits to the old tree of this proof.
    pub fn matches_old(&self, checkpoint: &Checkpoint) -> Result<(), ProveError> {
        same_tree(&self.stream, self.old_size, &self.old_root, checkpoint)
    }

    pub fn parse(text: &str) -> Result<ConsistencyProof, ProveError> {
        let mut r = ProofReader::new(text, CONSISTENCY_HEADER)?;
        Ok(ConsistencyProof {
            stream: r.field("stream")?.to_string(),
            old_size: r.number("old-size")?,
            new_size: r.number("new-size")?,
            old_root: r.hash_field("old-root")?,
            new_root: r.hash_field("new-root")?,
            path: r.path()?,
        })
    }
}

fn same_tree(
    stream: &str,
    size: u64,
    root: &Hash,
    checkpoint: &Checkpoint,
) -> Result<(), ProveError> {
    if checkpoint.origin != stream && !checkpoint.origin.ends_with(&format!("/{stream}")) {
        return Err(ProveError::OtherStream {
            proof: stream.to_string(),
            origin: checkpoint.origin.clone(),
        });
    }
    if checkpoint.size != size {
        return Err(ProveError::OtherSize {
            checkpoint: checkpoint.size,
            proof: size,
        });
    }
    if &checkpoint.root != root {
        return Err(ProveError::OtherRoot);
    }
    Ok(())
}

impl fmt::Display for InclusionProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{INCLUSION_HEADER}")?;
        writeln!(f, "stream {}", self.stream)?;
        writeln!(f, "index {}", self.index)?;
        writeln!(f, "size {}", self.size)?;
        writeln!(f, "leaf {}", hex::encode(self.leaf))?;
        writeln!(f, "root {}", hex::encode(self.root))?;
        self.path
            .iter()
            .try_for_each(|h| writeln!(f, "{}", hex::encode(h)))
    }
}

impl fmt::Display for ConsistencyProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{CONSISTENCY_HEADER}")?;
        writeln!(f, "stream {}", self.stream)?;
        writeln!(f, "old-size {}", self.old_size)?;
        writeln!(f, "new-size {}", self.new_size)?;
        writeln!(f, "old-root {}", hex::encode(self.old_root))?;
        writeln!(f, "new-root {}", hex::encode(self.new_root))?;
        self.path
            .iter()
            .try_for_each(|h| writeln!(f, "{}", hex::encode(h)))
    }
}

/// Either kind of proof, as read from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

impl Proof {
    /// Parses a printed proof of either kind, telling them apart by the header.
    pub fn parse(text: &str) -> Result<Proof, ProveError> {
        if text.starts_with(INCLUSION_HEADER) {
            InclusionProof::parse(text).map(Proof::Inclusion)
        } else {
            ConsistencyProof::parse(text).map(Proof::Consistency)
        }
    }

    pub fn check(&self) -> Result<(), ProofError> {
        match self {
            Proof::Inclusion(p) => p.check(),
            Proof::Consistency(p) => p.check(),
        }
    }
}

struct ProofReader<'a> {
    lines: std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>,
}

impl<'a> ProofReader<'a> {
    fn new(text: &'a str, header: &str) -> Result<ProofReader<'a>, ProveError> {
        let mut lines = text.lines().enumerate().peekable();
        match lines.next() {
            Some((_, first)) if first.trim_end() == header => Ok(ProofReader { lines }),
            _ => Err(ProveError::Syntax {
                line: 1,
                problem: format!("expected `{header}`"),
            }),
        }
    }

    fn field(&mut self, key: &str) -> Result<&'a str, ProveError> {
        let (index, line) = self.lines.next().ok_or_else(|| ProveError::Syntax {
            line: 0,
            problem: format!("the proof ends before `{key}`"),
        })?;
        line.trim_end()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(' '))
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ProveError::Syntax {
                line: index + 1,
                problem: format!("expected `{key} <value>`"),
            })
    }

    fn number(&mut self, key: &str) -> Result<u64, ProveError> {
        let line = self.lines.peek().map_or(0, |(i, _)| i + 1);
        self.field(key)?.parse().map_err(|_| ProveError::Syntax {
            line,
            problem: format!("`{key}` is not a number"),
        })
    }

    fn hash_field(&mut self, key: &str) -> Result<Hash, ProveError> {
        let line = self.lines.peek().map_or(0, |(i, _)| i + 1);
        parse_hex_hash(self.field(key)?).ok_or_else(|| ProveError::Syntax {
            line,
            problem: format!("`{key}` is not 64 lowercase hex digits"),
        })
    }

    fn path(&mut self) -> Result<Vec<Hash>, ProveError> {
        let mut path = Vec::new();
        for (index, line) in self.lines.by_ref() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            path.push(parse_hex_hash(line).ok_or_else(|| ProveError::Syntax {
                line: index + 1,
                problem: "a path line is not 64 lowercase hex digits".into(),
            })?);
        }
        Ok(path)
    }
}

/// The leaf hashes of the first `limit` entries (all when `None`) of `stream` under
/// `dir`, recomputed from the entries' content (32 bytes per entry held). Fails at
/// the first entry that is unreadable, out of sequence or whose `hash` is wrong: a
/// proof over evidence that does not verify would prove nothing.
pub fn collect_leaves(
    dir: &Path,
    stream: &str,
    limit: Option<u64>,
) -> Result<Vec<Hash>, ProveError> {
    let max_line = super::verify::DEFAULT_MAX_LINE_BYTES;
    let found = discover(dir, max_line)?;
    let files = found
        .streams
        .get(stream)
        .ok_or_else(|| ProveError::NoStream(stream.to_string()))?;
    let limit = limit.unwrap_or(u64::MAX);
    let mut leaves: Vec<Hash> = Vec::new();
    let mut buf = Vec::new();
    let mut canonical = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let fail = |line: u64, problem: String| ProveError::Entry {
            file: file.clone(),
            line,
            problem,
        };
        let reader =
            open_entries(path).map_err(|e| fail(0, format!("cannot read the file: {e}")))?;
        let mut lines = LineReader::new(reader, max_line);
        loop {
            if leaves.len() as u64 >= limit {
                return Ok(leaves);
            }
            let read = lines
                .next(&mut buf)
                .map_err(|e| fail(lines.line_no + 1, e.to_string()))?;
            let line_no = lines.line_no;
            match read {
                None => break,
                Some(Line::TooLong(_)) => return Err(fail(line_no, "line too long".into())),
                Some(Line::Complete) => {}
            }
            let entry = parse_entry(&buf).map_err(|p| fail(line_no, format!("line is {p}")))?;
            let expected = leaves.len() as u64;
            if entry.get("seq").and_then(serde_json::Value::as_u64) != Some(expected) {
                return Err(fail(line_no, format!("expected seq {expected} here")));
            }
            canonical.clear();
            jcs::write_object_filtered(&entry, |k| k != "hash" && k != "mac", &mut canonical);
            let leaf = merkle::leaf_hash(&canonical);
            let claimed = entry
                .get("hash")
                .and_then(serde_json::Value::as_str)
                .and_then(parse_hex_hash);
            if claimed != Some(leaf) {
                return Err(fail(
                    line_no,
                    format!("`hash` of seq {expected} does not match its content"),
                ));
            }
            leaves.push(leaf);
        }
    }
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::merkle::leaf_hash;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn printed_proofs_parse_back_and_check() {
        let l = leaves(13);
        let p = inclusion("eu/default", &l, 5, 12).unwrap();
        let text = p.to_string();
        assert!(
            text.starts_with("vellum inclusion proof v1\nstream eu/default\nindex 5\nsize 12\n")
        );
        assert_eq!(text.lines().count(), 6 + p.path.len());
        let back = InclusionProof::parse(&text).unwrap();
        assert_eq!(back, p);
        back.check().unwrap();
        assert_eq!(Proof::parse(&text).unwrap(), Proof::Inclusion(p.clone()));

        let c = consistency("eu/default", &l, 5, 13).unwrap();
        let back = ConsistencyProof::parse(&c.to_string()).unwrap();
        assert_eq!(back, c);
        back.check().unwrap();
        Proof::parse(&c.to_string()).unwrap().check().unwrap();
    }

    #[test]
    fn altered_proofs_fail() {
        let l = leaves(13);
        let p = inclusion("s", &l, 5, 12).unwrap();
        let mut wrong_leaf = p.clone();
        wrong_leaf.leaf = l[6];
        assert_eq!(wrong_leaf.check(), Err(ProofError::RootMismatch));
        let text = p.to_string();
        let last = text.lines().last().unwrap();
        let flipped = text.replace(
            last,
            &format!(
                "{}{}",
                &last[..63],
                if last.ends_with('0') { '1' } else { '0' }
            ),
        );
        assert!(Proof::parse(&flipped).unwrap().check().is_err());
        let truncated: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
        assert!(Proof::parse(&truncated).unwrap().check().is_err());
        assert!(matches!(
            Proof::parse("vellum inclusion proof v1\nstream s\nindex x\n"),
            Err(ProveError::Syntax { line: 3, .. })
        ));
        assert!(matches!(
            Proof::parse("hello"),
            Err(ProveError::Syntax { line: 1, .. })
        ));
        let c = consistency("s", &l, 4, 13).unwrap();
        let mut other = c.clone();
        other.old_root = merkle::root(&leaves(4)[1..]);
        assert!(other.check().is_err());
    }

    #[test]
    fn proofs_match_only_their_checkpoint() {
        let l = leaves(8);
        let p = inclusion("default", &l, 2, 8).unwrap();
        let cp = Checkpoint {
            origin: "vellum.example/audit/default".into(),
            size: 8,
            root: merkle::root(&l),
            extensions: vec![],
        };
        p.matches(&cp).unwrap();
        let mut other = cp.clone();
        other.size = 7;
        assert!(matches!(
            p.matches(&other),
            Err(ProveError::OtherSize { .. })
        ));
        let mut other = cp.clone();
        other.origin = "vellum.example/audit/nodefault".into();
        assert!(matches!(
            p.matches(&other),
            Err(ProveError::OtherStream { .. })
        ));
        let mut other = cp;
        other.root = merkle::root(&l[..7]);
        assert!(matches!(p.matches(&other), Err(ProveError::OtherRoot)));
    }
}
