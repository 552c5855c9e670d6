//! The journal: the durable, append-only record of a pipeline, and the spine of Vellum.
//!
//! Every sealed entry and checkpoint of a pipeline is a record of its journal; a receiver
//! acknowledges only once its records are committed here, and every exporter is a reader
//! with its own persisted cursor, so an exporter that is down or slow loses nothing and
//! resumes where it stopped. Payloads are opaque bytes.
//!
//! ```yaml
//! service:
//!   storage:
//!     directory: /var/lib/vellum    # one journal directory per pipeline under it
//!     segment_size: 64MiB           # JournalOptions::segment_bytes
//!     max_record_size: 4MiB         # JournalOptions::max_record_bytes
//! ```
//!
//! # On disk
//!
//! ```text
//! <dir>/lock                          held (flock) by the process that has it open
//! <dir>/00000000000000000000.seg      segments, named by the index of their first record
//! <dir>/00000000000000081920.seg      the last one is being appended to
//! <dir>/cursors/file%2Fevidence       one file per cursor: its next index, in decimal
//! <dir>/quarantine/<segment>.at-<offset>.len-<length>   damaged bytes cut out at open
//! ```
//!
//! A segment is a sequence of frames, one per record, little-endian:
//!
//! ```text
//! [u32 crc32c][u32 len][u64 index][len bytes of payload]
//! ```
//!
//! The CRC-32C (Castagnoli) covers `len`, `index` and the payload. Because each frame
//! carries its index and checks on its own, a scan that meets damage finds the next good
//! frame by trying each following byte offset, and the gap between the indexes says
//! exactly which records were lost. A segment is closed once the next frame would take
//! it past `segment_bytes` (a record larger than that gets a segment to itself).
//!
//! # Durability and recovery
//!
//! [`JournalWriter::commit`] writes a batch of frames, `fdatasync`s each segment it
//! touched (the older one before the next is created), `fsync`s the directory when a
//! segment was created, and only then publishes the committed end to readers. So after
//! a crash only the tail of the last segment can be torn. [`open`] scans every segment
//! (CRC-32C in hardware; nothing is copied out but the last record):
//!
//! - bytes after the last good frame of the **last** segment were never committed: they
//!   are cut off (reported as [`RecoveryReport::truncated_tail`]);
//! - bad bytes followed by a good frame, or anywhere in an **earlier** segment, held
//!   committed records: the bytes are copied to `quarantine/`, the segment is rewritten
//!   without them (new file, fsync, rename, fsync), and each region is reported as a
//!   [`Corruption`] naming the segment, the offset, the length and the indexes lost.
//!
//! Either way the journal opens and takes writes; nothing has to be wiped by hand.
//! Lengths are never trusted to size anything: a length running past the end of the
//! file (or of the committed bytes, for readers) marks damage.

#![warn(missing_docs)]

mod cursor;
mod error;
mod fetch;
mod frame;
mod handle;
pub mod lock;
mod reader;
mod recovery;
mod segment;
#[cfg(test)]
mod test_support;
mod writer;

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use cursor::Cursor;
pub use error::JournalError;
pub use fetch::RecordFetcher;
pub use handle::{Journal, PurgeReport};
pub use reader::{JournalReader, RecordPosition};
pub use recovery::{Corruption, RecoveryReport, TruncatedTail};
pub use writer::{AppendMark, JournalWriter};

use error::IoContext;
use handle::{Shared, State};

/// Sizes of a journal. Only `append` enforces `max_record_bytes`, so lowering it never
/// makes records already written unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size past which a segment is closed and the next one started.
    pub segment_bytes: u64,
    /// The largest payload `append` takes.
    pub max_record_bytes: u32,
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            segment_bytes: 64 * 1024 * 1024,
            max_record_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Opens (creating if need be) the journal in `dir`: recovers it, then returns its only
/// writer, a handle for readers, and what recovery found (log it: it is one line).
///
/// Fails with [`JournalError::Locked`] while another handle on `dir` is alive, in this
/// process or another.
pub fn open(
    dir: &Path,
    options: JournalOptions,
) -> Result<(JournalWriter, Journal, RecoveryReport), JournalError> {
    if options.segment_bytes == 0 {
        return Err(JournalError::InvalidOptions(
            "segment_bytes must be above 0",
        ));
    }
    if options.max_record_bytes == 0 {
        return Err(JournalError::InvalidOptions(
            "max_record_bytes must be above 0",
        ));
    }
    fs::create_dir_all(dir).context("create directory", dir)?;
    let lock_path = dir.join("lock");
    let lock = match lock::DirLock::try_acquire(&lock_path) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(JournalError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(JournalError::io("lock", &lock_path, e)),
    };

    let recovered = recovery::recover(dir)?;
    let cursors_dir = dir.join("cursors");
    if !cursors_dir.is_dir() {
        fs::create_dir_all(&cursors_dir).context("create directory", &cursors_dir)?;
        segment::sync_dir(dir)?;
    }

    let active = recovered
        .segments
        .last()
        .cloned()
        .ok_or(JournalError::InvalidOptions("recovery left no segment"))?;
    let disk_bytes = recovered.segments.iter().map(|s| s.len).sum();
    let (committed, _) = watch::channel(recovered.next_index);
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        cursors_dir,
        state: Mutex::new(State {
            segments: recovered.segments,
            committed_end: recovered.next_index,
            last_record: recovered.last_record,
        }),
        committed,
        disk_bytes: AtomicU64::new(disk_bytes),
        _lock: lock,
    });
    let writer = JournalWriter::new(
        shared.clone(),
        active,
        recovered.next_index,
        options.segment_bytes,
        options.max_record_bytes,
    )?;
    Ok((writer, Journal { shared }, recovered.report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::*;

    #[test]
    fn handles_can_cross_threads() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<JournalWriter>();
        send::<JournalReader>();
        send_sync::<Journal>();
        send_sync::<Cursor>();
        send_sync::<JournalError>();
    }

    #[test]
    fn defaults_are_64_mib_segments_and_16_mib_records() {
        let defaults = JournalOptions::default();
        assert_eq!(defaults.segment_bytes, 67_108_864);
        assert_eq!(defaults.max_record_bytes, 16_777_216);
    }

    #[test]
    fn a_new_journal_is_empty_and_laid_out_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let journal_dir = dir.path().join("pipelines").join("logs");
        let (mut writer, journal, report) = open(&journal_dir, JournalOptions::default()).unwrap();
        assert!(report.is_clean());
        assert_eq!(
            (report.segments, report.records, report.next_index),
            (1, 0, 0)
        );
        assert_eq!(journal.committed_end(), 0);
        assert_eq!(journal.first_index(), 0);
        assert_eq!(journal.last_record().unwrap(), None);
        assert!(journal.reader(0).unwrap().next().is_none());
        assert!(journal_dir.join("00000000000000000000.seg").is_file());
        assert!(journal_dir.join("cursors").is_dir());
        assert!(journal_dir.join("lock").is_file());

        writer.append(b"hello").unwrap();
        writer.commit().unwrap();
        let mut expected = Vec::new();
        let body = [&5u32.to_le_bytes()[..], &0u64.to_le_bytes()[..], b"hello"].concat();
        expected.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        expected.extend_from_slice(&body);
        assert_eq!(
            fs::read(journal_dir.join("00000000000000000000.seg")).unwrap(),
            expected
        );
        assert_eq!(journal.disk_bytes(), 21);
        assert_eq!(
            report.to_string(),
            format!(
                "journal {}: 1 segments, 0 records, next index 0",
                journal_dir.display()
            )
        );
    }

    #[test]
    fn zero_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (segment_bytes, max_record_bytes) in [(0, 1), (1, 0)] {
            let options = JournalOptions {
                segment_bytes,
                max_record_bytes,
            };
            assert!(matches!(
                open(dir.path(), options),
                Err(JournalError::InvalidOptions(_))
            ));
        }
        assert_eq!(segment_paths(dir.path()).len(), 0);
    }
}
