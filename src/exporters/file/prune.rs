//! Retention's side of the `file` exporter: what may be removed from a stream folder and
//! the removal itself. The rules are in the parent module's doc and docs/retention.md; the
//! schedule is `pipeline::retention`'s.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{FileConfig, LEGAL_HOLD_FILE, entry_files_in, is_writable, set_immutable};
use crate::durable::sync_dir;
use crate::evidence::purge::EvidencePurge;
use crate::evidence::seal::{Head, ZERO_HASH};
use crate::evidence::verify::{DEFAULT_MAX_LINE_BYTES, StreamVerifier, find_purge, open_entries};
use crate::paths::stream_folder;
use crate::pipeline::retention::written_at;

/// Why the evidence of `stream` must not be pruned now, if it must not.
pub fn legal_hold(cfg: &FileConfig, stream: &str) -> Option<String> {
    if cfg.legal_hold {
        return Some("`legal_hold: true` in the configuration".into());
    }
    [
        cfg.directory.join(LEGAL_HOLD_FILE),
        cfg.directory
            .join(stream_folder(stream))
            .join(LEGAL_HOLD_FILE),
    ]
    .into_iter()
    .find(|marker| marker.exists())
    .map(|marker| format!("{} exists", marker.display()))
}

/// Why a stream folder cannot be pruned; the files stay.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the stream starts at seq {start} and no purge record in it declares the entries before; nothing is pruned until that is resolved"
    )]
    Undeclared { start: u64 },
    #[error("{file} does not verify ({problem}); it is kept so that pruning never hides it")]
    Unverified { file: String, problem: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PruneError + '_ {
    move |source| PruneError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What retention may remove from one stream folder, and the purge record that says so.
#[derive(Debug, Clone)]
pub struct PrunePlan {
    /// Sealed entry files holding `purge.first_seq..=purge.last_seq`, oldest first.
    pub files: Vec<PathBuf>,
    /// Checkpoints of sizes up to `purge.last_seq + 1`: they cover only removed entries.
    pub notes: Vec<PathBuf>,
    pub purge: EvidencePurge,
    /// When the newest removed file was written, Unix nanoseconds.
    pub newest: u64,
}

/// Plans the pruning of `stream`'s folder: the longest run of sealed files from the start
/// of the stream (never the newest file) last written before `cutoff` (Unix nanoseconds), that link as a chain, and whose end a remaining checkpoint covers.
/// `start` is the chain state where the folder starts, when known (from an earlier
/// prune); when it is not, it is read from the folder's own purge record and kept there,
/// so the folder is searched once. `None` when nothing qualifies. Legal hold is the
/// caller's to check first.
pub fn plan_prune(
    cfg: &FileConfig,
    store: &str,
    stream: &str,
    cutoff: u64,
    start: &mut Option<Head>,
) -> Result<Option<PrunePlan>, PruneError> {
    let dir = cfg.directory.join(stream_folder(stream));
    let files = match entry_files_in(&dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    let Some((_newest, older)) = files.split_last() else {
        return Ok(None);
    };
    let Some(first) = older.first() else {
        return Ok(None);
    };
    let largest_checkpoint = checkpoint_sizes(&dir)?.last().map_or(0, |(size, _)| *size);
    let head = match (first_seq_in(first)?, start.as_ref()) {
        (None, _) => return Ok(None),
        (Some(0), _) => Head {
            next_seq: 0,
            prev: ZERO_HASH,
            frontier: Default::default(),
        },
        (Some(seq), Some(head)) if head.next_seq == seq => head.clone(),
        (Some(seq), _) => match find_purge(stream, &files, seq - 1, DEFAULT_MAX_LINE_BYTES) {
            Some((_, purge)) => start.insert(purge.head()).clone(),
            None => return Err(PruneError::Undeclared { start: seq }),
        },
    };
    let first_seq = head.next_seq;
    // Hashes are what a verifier recomputes; macs are not checked here, so a key
    // retired from the ring never blocks retention.
    let mut verifier = StreamVerifier::resume(stream, None, head);
    let mut taken = Vec::new();
    let mut plan_head = None;
    let mut newest = 0;
    for path in older {
        if is_writable(path) {
            break;
        }
        let file = path.display().to_string();
        // A file whose time cannot be read is never old enough: it stays.
        let Some(written) = written_at(path).filter(|t| *t < cutoff) else {
            break;
        };
        let reader = open_entries(path).map_err(io_error(path))?;
        for (n, line) in std::io::BufRead::split(reader, b'\n').enumerate() {
            let line = line.map_err(io_error(path))?;
            verifier.feed_line(&line, &file, n as u64 + 1);
        }
        if let Some(finding) = verifier.findings().first() {
            return Err(PruneError::Unverified {
                file,
                problem: finding.problem.clone(),
            });
        }
        let end = verifier.next_seq();
        if end >= largest_checkpoint || end == first_seq {
            break;
        }
        newest = newest.max(written);
        taken.push(path.clone());
        plan_head = Some(verifier.head());
    }
    let Some(head) = plan_head else {
        return Ok(None);
    };
    let notes = checkpoint_sizes(&dir)?
        .into_iter()
        .filter(|(size, _)| *size <= head.next_seq)
        .map(|(_, path)| path)
        .collect();
    Ok(Some(PrunePlan {
        files: taken,
        notes,
        purge: EvidencePurge {
            store: store.to_string(),
            first_seq,
            last_seq: head.next_seq - 1,
            hash: head.prev,
            frontier: head.frontier,
        },
        newest,
    }))
}

/// Removes what `plan` names: checkpoints first (a crash in between leaves entries
/// without their checkpoint, which still verify), then entry files.
pub fn apply_prune(plan: &PrunePlan) -> Result<(), PruneError> {
    for note in &plan.notes {
        remove(note)?;
    }
    if let Some(dir) = plan.notes.first().and_then(|p| p.parent()) {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    for file in &plan.files {
        // Sealed files may carry the immutable attribute; where it cannot be cleared the
        // removal below reports the error.
        let _ = set_immutable(file, false);
        remove(file)?;
    }
    if let Some(dir) = plan.files.first().and_then(|p| p.parent()) {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(())
}

fn remove(path: &Path) -> Result<(), PruneError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// The checkpoints in a stream folder by size (from their names), smallest first.
fn checkpoint_sizes(dir: &Path) -> Result<Vec<(u64, PathBuf)>, PruneError> {
    let notes = dir.join("checkpoints");
    let read = match fs::read_dir(&notes) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&notes)(e)),
    };
    let mut out = Vec::new();
    for item in read {
        let path = item.map_err(io_error(&notes))?.path();
        let size = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".note"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(size) = size {
            out.push((size, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The `seq` of a file's first line.
fn first_seq_in(path: &Path) -> Result<Option<u64>, PruneError> {
    let mut reader = open_entries(path).map_err(io_error(path))?;
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(io_error(path))?;
    #[derive(Deserialize)]
    struct Seq {
        seq: Option<u64>,
    }
    Ok(serde_json::from_slice::<Seq>(&line)
        .ok()
        .and_then(|s| s.seq))
}
