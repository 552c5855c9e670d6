//! [`Journal`]: the handle that readers, exporters' cursors and retention share.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::cursor::{self, Cursor};
use super::error::{IoContext, JournalError};
use super::reader::JournalReader;
use super::segment::{self, SegmentMeta};

/// What the writer and every handle share.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub cursors_dir: PathBuf,
    pub state: Mutex<State>,
    /// Carries the committed end; changes wake subscribers.
    pub committed: watch::Sender<u64>,
    /// Bytes of segment files.
    pub disk_bytes: AtomicU64,
    /// Held open, and locked, as long as anything uses the directory.
    pub _lock: super::lock::DirLock,
}

/// What the writer publishes at each commit, read by everyone else.
pub(crate) struct State {
    /// In index order; the last one is the segment the writer appends to.
    pub segments: Vec<SegmentMeta>,
    pub committed_end: u64,
    /// A copy of the last committed record, for the pipeline's restart.
    pub last_record: Option<(u64, Vec<u8>)>,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock with the state half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A shared handle on a journal: read it, keep cursors in it, purge it.
///
/// Cheap to clone; `Send + Sync`. Only committed records are ever visible through it.
#[derive(Clone)]
pub struct Journal {
    pub(crate) shared: Arc<Shared>,
}

/// What [`Journal::purge_before`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Segment files deleted.
    pub segments_removed: usize,
    /// Their bytes.
    pub bytes_freed: u64,
    /// The journal's first index afterwards.
    pub first_index: u64,
}

impl Journal {
    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// One past the last committed record: readers see every index below it.
    pub fn committed_end(&self) -> u64 {
        self.shared.state().committed_end
    }

    /// A receiver of the committed end, woken at every commit; for readers that tail.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.committed.subscribe()
    }

    /// The first index of the oldest segment left by purges.
    pub fn first_index(&self) -> u64 {
        let state = self.shared.state();
        state
            .segments
            .first()
            .map_or(state.committed_end, |s| s.first_index)
    }

    /// A reader from `from`, which may be anything up to the committed end. From below
    /// [`first_index`](Self::first_index) it first yields [`JournalError::Purged`].
    pub fn reader(&self, from: u64) -> Result<JournalReader, JournalError> {
        let committed_end = self.committed_end();
        if from > committed_end {
            return Err(JournalError::BeyondEnd {
                index: from,
                committed_end,
            });
        }
        Ok(JournalReader::new(self.shared.clone(), from))
    }

    /// The last committed record, if the journal has any.
    pub fn last_record(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        Ok(self.shared.state().last_record.clone())
    }

    /// The cursor `name`, persisted under `<dir>/cursors/`. Any non-empty name works:
    /// `/` and other characters unfit for a file name are escaped.
    pub fn cursor(&self, name: &str) -> Result<Cursor, JournalError> {
        Cursor::open(self.shared.clone(), name, self.first_index())
    }

    /// Every stored cursor and its next index, by name.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>, JournalError> {
        cursor::list(&self.shared.cursors_dir)
    }

    /// Forgets the cursor `name` (an exporter that was removed), so it no longer holds
    /// retention back. Whether it existed.
    pub fn remove_cursor(&self, name: &str) -> Result<bool, JournalError> {
        cursor::remove(&self.shared.cursors_dir, name)
    }

    /// Removes every segment whose records are all below `index`, never the one being
    /// written to. Readers already inside a removed segment finish it.
    pub fn purge_before(&self, index: u64) -> Result<PurgeReport, JournalError> {
        let (removed, first_index) = {
            let mut state = self.shared.state();
            let removable = state
                .segments
                .windows(2)
                .take_while(|pair| pair[1].first_index <= index)
                .count();
            let removed: Vec<SegmentMeta> = state.segments.drain(..removable).collect();
            (removed, state.segments[0].first_index)
        };
        let mut bytes_freed = 0;
        for segment in &removed {
            let len = fs::metadata(&segment.path).map_or(segment.len, |m| m.len());
            fs::remove_file(&segment.path).context("remove segment", &segment.path)?;
            self.shared.disk_bytes.fetch_sub(len, Ordering::Relaxed);
            bytes_freed += len;
        }
        if !removed.is_empty() {
            segment::sync_dir(&self.shared.dir)?;
        }
        Ok(PurgeReport {
            segments_removed: removed.len(),
            bytes_freed,
            first_index,
        })
    }

    /// The first index of each segment, oldest first; the last one is being written to.
    /// Retention purges whole segments, so it plans with these boundaries.
    pub fn segment_starts(&self) -> Vec<u64> {
        self.shared
            .state()
            .segments
            .iter()
            .map(|s| s.first_index)
            .collect()
    }

    /// Bytes taken by segment files (not cursors or quarantined copies).
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("committed_end", &self.committed_end())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::open;
    use crate::journal::test_support::*;
    use std::time::Duration;

    #[test]
    fn purge_keeps_every_record_at_or_above_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1024)).unwrap();
        for i in 0..40 {
            writer.append(&payload_for(i, 100)).unwrap(); // 116-byte frames, 8 per segment
        }
        writer.commit().unwrap();
        let firsts: Vec<u64> = segment_paths(dir.path())
            .iter()
            .map(|p| first_index_of(p))
            .collect();
        assert_eq!(firsts, [0, 8, 16, 24, 32]);

        let report = journal.purge_before(20).unwrap();
        assert_eq!(report.segments_removed, 2);
        assert_eq!(report.first_index, 16);
        assert_eq!(report.bytes_freed, 2 * 8 * 116);
        assert_eq!(journal.first_index(), 16);
        assert_records(&journal, 16..40, 100);
        let on_disk: u64 = segment_lengths(dir.path()).iter().map(|(_, len)| len).sum();
        assert_eq!(journal.disk_bytes(), on_disk);

        let before_start = read_all(&journal, 3);
        assert!(
            matches!(&before_start[0], Err(JournalError::Purged { missing }) if *missing == (3..16))
        );
        assert_eq!(before_start.len(), 1 + 24);

        let report = journal.purge_before(u64::MAX).unwrap();
        assert_eq!(
            report.segments_removed, 2,
            "never the segment being written"
        );
        assert_eq!(segment_paths(dir.path()).len(), 1);
        assert_records(&journal, 32..40, 100);
        writer.append(b"still writable").unwrap();
        assert_eq!(writer.commit().unwrap(), 41);
    }

    #[test]
    fn a_reader_inside_a_purged_segment_finishes_it_then_reports_the_purge() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1024)).unwrap();
        for i in 0..20 {
            writer.append(&payload_for(i, 100)).unwrap();
        }
        writer.commit().unwrap();
        let mut reader = journal.reader(0).unwrap();
        assert_eq!(reader.next().unwrap().unwrap().0, 0);
        journal.purge_before(16).unwrap();
        let mut rest = Vec::new();
        for item in reader.by_ref() {
            match item {
                Ok((index, _)) => rest.push(index),
                Err(JournalError::Purged { missing }) => {
                    assert_eq!((missing, rest.len()), (8..16, 7))
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(rest, (1..8).chain(16..20).collect::<Vec<u64>>());
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_writer, _journal, _) = open(dir.path(), options(1024)).unwrap();
        assert!(matches!(
            open(dir.path(), options(1024)),
            Err(JournalError::Locked { .. })
        ));
    }

    #[test]
    fn a_tailing_reader_sees_records_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(4096)).unwrap();
        writer.append(b"first").unwrap();
        writer.commit().unwrap();
        let mut reader = journal.reader(0).unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), (0, b"first".to_vec()));
        assert!(
            reader.next().is_none(),
            "nothing committed past the first record"
        );

        let mut committed = journal.subscribe();
        committed.mark_unchanged();
        let writer_thread = std::thread::spawn(move || {
            for i in 1..=200u64 {
                writer.append(&payload_for(i, 64)).unwrap();
                if i % 50 == 0 {
                    writer.commit().unwrap();
                }
            }
            writer
        });

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut seen = vec![];
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while seen.len() < 200 {
                for record in reader.by_ref() {
                    let (index, payload) = record.unwrap();
                    assert_eq!(payload, payload_for(index, 64));
                    seen.push(index);
                }
                if seen.len() < 200 {
                    tokio::time::timeout_at(deadline, committed.changed())
                        .await
                        .expect("a commit within the deadline")
                        .unwrap();
                }
            }
        });
        assert_eq!(seen, (1..=200).collect::<Vec<u64>>());
        writer_thread.join().unwrap();
    }
}
