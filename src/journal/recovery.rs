//! What `open` does before anything is written: scan every segment, cut a torn tail,
//! quarantine damaged bytes, and say precisely what it found.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::error::{IoContext, JournalError};
use super::frame;
use super::segment::{self, SegmentMeta};

/// Where damaged bytes are copied before they are cut out of a segment.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

/// What opening a journal found and repaired. Its `Display` is one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The journal directory.
    pub dir: PathBuf,
    /// Segment files after repair.
    pub segments: usize,
    /// Records present.
    pub records: u64,
    /// Index the writer continues at (the committed end).
    pub next_index: u64,
    /// Bytes after the last whole frame of the last segment: a write cut short by a crash.
    /// They were never committed, and were cut off.
    pub truncated_tail: Option<TruncatedTail>,
    /// Damage found now, each region copied to `quarantine/` and cut out of its segment.
    pub corruptions: Vec<Corruption>,
    /// Index ranges absent without damaged bytes in their place: cut out when an earlier
    /// open quarantined them, or in a segment file that is gone.
    pub gaps: Vec<Range<u64>>,
}

/// The torn end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    /// The last segment file.
    pub segment: PathBuf,
    /// Where the file now ends.
    pub offset: u64,
    /// How many bytes were cut off.
    pub bytes_dropped: u64,
}

/// A damaged region: bytes that are not frames, followed by good frames or in a segment
/// that is not the last one, so committed records were in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the damaged bytes started in the segment as it was found.
    pub offset: u64,
    /// How many bytes were damaged.
    pub length: u64,
    /// Indexes of the records lost with it (empty when the bytes held none of ours).
    pub missing: Range<u64>,
    /// A copy of the damaged bytes, for inspection.
    pub quarantined_to: PathBuf,
}

impl RecoveryReport {
    /// Whether the journal was found exactly as the last commit left it.
    pub fn is_clean(&self) -> bool {
        self.truncated_tail.is_none() && self.corruptions.is_empty()
    }

    /// Records lost to the damage found by this open.
    pub fn records_lost(&self) -> u64 {
        self.corruptions
            .iter()
            .map(|c| c.missing.end - c.missing.start)
            .sum()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "journal {}: {} segments, {} records, next index {}",
            self.dir.display(),
            self.segments,
            self.records,
            self.next_index
        )?;
        if let Some(tail) = &self.truncated_tail {
            write!(f, "; {tail}")?;
        }
        for corruption in &self.corruptions {
            write!(f, "; {corruption}")?;
        }
        if !self.gaps.is_empty() {
            let absent: u64 = self.gaps.iter().map(|g| g.end - g.start).sum();
            write!(
                f,
                "; {absent} records absent in {} earlier gaps",
                self.gaps.len()
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for TruncatedTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn tail of {} bytes cut at offset {} of {}",
            self.bytes_dropped,
            self.offset,
            self.segment.display()
        )
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CORRUPTION at offset {} of {} ({} bytes): {} records lost (indexes {}..{}), quarantined to {}",
            self.offset,
            self.segment.display(),
            self.length,
            self.missing.end - self.missing.start,
            self.missing.start,
            self.missing.end,
            self.quarantined_to.display()
        )
    }
}

/// The journal as recovery left it.
pub(crate) struct Recovered {
    pub segments: Vec<SegmentMeta>,
    pub next_index: u64,
    pub last_record: Option<(u64, Vec<u8>)>,
    pub report: RecoveryReport,
}

/// Scans and repairs every segment in `dir`, creating the first one in an empty journal.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let mut found = segment::list(dir)?;
    if found.is_empty() {
        let path = dir.join(segment::file_name(0));
        File::create_new(&path).context("create segment", &path)?;
        segment::sync_dir(dir)?;
        found.push((0, path));
    }

    let mut report = RecoveryReport {
        dir: dir.to_path_buf(),
        segments: found.len(),
        records: 0,
        next_index: 0,
        truncated_tail: None,
        corruptions: Vec::new(),
        gaps: Vec::new(),
    };
    let mut segments = Vec::with_capacity(found.len());
    let mut last_record = None;
    let mut previous_end: Option<u64> = None;
    let mut bytes = Vec::new();

    for (position, (first_index, path)) in found.iter().enumerate() {
        let following = found.get(position + 1).map(|(first, _)| *first);
        if let Some(end) = previous_end.filter(|end| end < first_index) {
            report.gaps.push(end..*first_index);
        }
        read_whole(path, &mut bytes)?;
        let scan = scan_segment(&bytes, *first_index, following.unwrap_or(u64::MAX));
        report.records += scan.records;
        report.gaps.extend(scan.gaps.iter().cloned());
        if let Some((index, payload)) = &scan.last_frame {
            last_record = Some((*index, bytes[payload.clone()].to_vec()));
        }

        let mut end_index = scan.next_index;
        let mut damaged = scan.damage;
        let mut keep_len = bytes.len();
        if let Some(tail) = scan.tail {
            match following {
                // The last segment ends where the last write stopped: its tail was never committed.
                None => {
                    report.truncated_tail = Some(TruncatedTail {
                        segment: path.clone(),
                        offset: tail.start as u64,
                        bytes_dropped: tail.len() as u64,
                    });
                    keep_len = tail.start;
                }
                // A later segment exists, so this one was whole and synced before it was made.
                Some(following) => {
                    let missing = end_index..following.max(end_index);
                    end_index = missing.end;
                    damaged.push(Damage {
                        bytes: tail,
                        missing,
                    });
                }
            }
        }

        let len = if damaged.is_empty() {
            if keep_len < bytes.len() {
                truncate(path, keep_len as u64)?;
            }
            keep_len as u64
        } else {
            for damage in &damaged {
                let quarantined_to = quarantine(dir, path, &bytes, &damage.bytes)?;
                report.corruptions.push(Corruption {
                    segment: path.clone(),
                    offset: damage.bytes.start as u64,
                    length: damage.bytes.len() as u64,
                    missing: damage.missing.clone(),
                    quarantined_to,
                });
            }
            rewrite_without(dir, path, &bytes[..keep_len], &damaged)?
        };
        segments.push(SegmentMeta {
            first_index: *first_index,
            path: path.clone(),
            len,
        });
        previous_end = Some(end_index);
    }

    report.next_index = previous_end.unwrap_or(0);
    Ok(Recovered {
        segments,
        next_index: report.next_index,
        last_record,
        report,
    })
}

/// Bytes that are not good frames, and the records they held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub bytes: Range<usize>,
    pub missing: Range<u64>,
}

/// What one pass over a segment's bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    pub records: u64,
    /// The index after the last good frame (the segment's first index if it has none).
    pub next_index: u64,
    /// Damaged regions followed by a good frame.
    pub damage: Vec<Damage>,
    /// Bytes after the last good frame that are not frames.
    pub tail: Option<Range<usize>>,
    /// Index ranges skipped between two good, adjacent frames.
    pub gaps: Vec<Range<u64>>,
    /// The last good frame: its index and where its payload is.
    pub last_frame: Option<(u64, Range<usize>)>,
}

/// How far past the last good index a frame's index may be: far more records than a
/// segment holds, and it keeps a scan through random bytes from checking the CRC of
/// every random length that happens to fit.
pub(crate) const MAX_INDEX_JUMP: u64 = 1 << 32;

/// Walks the frames of a segment whose records start at `first_index` and must stay
/// below `index_limit` (the next segment's first index).
///
/// After a frame that does not check, the next good frame is the first position whose
/// bytes form a frame with a good CRC and an index not yet seen; the indexes between are
/// the records the damage took.
pub(crate) fn scan_segment(bytes: &[u8], first_index: u64, index_limit: u64) -> SegmentScan {
    let mut scan = SegmentScan {
        next_index: first_index,
        ..SegmentScan::default()
    };
    let mut pos = 0;
    while pos < bytes.len() {
        let wanted =
            scan.next_index..index_limit.min(scan.next_index.saturating_add(MAX_INDEX_JUMP));
        if let Some((index, len)) = frame::valid_frame_at(bytes, pos, &wanted) {
            if index > scan.next_index {
                scan.gaps.push(scan.next_index..index);
            }
            scan.last_frame = Some((index, pos + frame::HEADER_LEN..pos + len));
            scan.records += 1;
            scan.next_index = index + 1;
            pos += len;
            continue;
        }
        match frame::next_valid_frame(bytes, pos + 1, &wanted) {
            Some((at, index)) => {
                scan.damage.push(Damage {
                    bytes: pos..at,
                    missing: scan.next_index..index,
                });
                scan.next_index = index;
                pos = at;
            }
            None => {
                scan.tail = Some(pos..bytes.len());
                break;
            }
        }
    }
    scan
}

fn read_whole(path: &Path, bytes: &mut Vec<u8>) -> Result<(), JournalError> {
    bytes.clear();
    let mut file = File::open(path).context("open segment", path)?;
    let len = file.metadata().context("stat segment", path)?.len();
    bytes.reserve(usize::try_from(len).unwrap_or(0));
    file.read_to_end(bytes).context("read segment", path)?;
    Ok(())
}

fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .context("open segment", path)?;
    file.set_len(len).context("truncate segment", path)?;
    file.sync_all().context("fsync segment", path)
}

/// Copies `range` of a segment to `<dir>/quarantine/<segment>.at-<offset>.len-<length>`
/// (with a `.N` suffix if that name is taken), durably.
fn quarantine(
    dir: &Path,
    segment: &Path,
    bytes: &[u8],
    range: &Range<usize>,
) -> Result<PathBuf, JournalError> {
    let quarantine_dir = dir.join(QUARANTINE_DIR);
    if !quarantine_dir.is_dir() {
        fs::create_dir_all(&quarantine_dir).context("create directory", &quarantine_dir)?;
        segment::sync_dir(dir)?;
    }
    let segment_name = segment.file_name().unwrap_or_default().to_string_lossy();
    let base = format!("{segment_name}.at-{}.len-{}", range.start, range.len());
    let mut attempt = 0;
    let (path, mut file) = loop {
        let name = match attempt {
            0 => base.clone(),
            n => format!("{base}.{n}"),
        };
        let path = quarantine_dir.join(name);
        match File::create_new(&path) {
            Ok(file) => break (path, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => attempt += 1,
            Err(e) => return Err(JournalError::io("create quarantine file", &path, e)),
        }
    };
    file.write_all(&bytes[range.clone()])
        .context("write quarantine file", &path)?;
    file.sync_all().context("fsync quarantine file", &path)?;
    segment::sync_dir(&quarantine_dir)?;
    Ok(path)
}

/// Replaces a segment, atomically, by its bytes less the damaged ranges; returns its new length.
fn rewrite_without(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    damaged: &[Damage],
) -> Result<u64, JournalError> {
    let mut cuts: Vec<Range<usize>> = damaged.iter().map(|d| d.bytes.clone()).collect();
    cuts.sort_unstable_by_key(|r| r.start);
    let tmp = segment::rewrite_path(path);
    let mut file = File::create(&tmp).context("create", &tmp)?;
    let mut written = 0u64;
    let mut from = 0;
    for cut in cuts
        .iter()
        .chain(std::iter::once(&(bytes.len()..bytes.len())))
    {
        let keep = &bytes[from.min(bytes.len())..cut.start.min(bytes.len())];
        file.write_all(keep).context("write", &tmp)?;
        written += keep.len() as u64;
        from = cut.end;
    }
    file.sync_all().context("fsync", &tmp)?;
    fs::rename(&tmp, path).context("replace segment", path)?;
    segment::sync_dir(dir)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::frame::encode;
    use crate::journal::open;
    use crate::journal::test_support::*;
    use proptest::prelude::*;

    /// Frames of `payload_for(i, len)` for each index, and where each frame starts.
    fn frames(indexes: Range<u64>, len: usize) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for i in indexes {
            starts.push(bytes.len());
            encode(&mut bytes, i, &payload_for(i, len));
        }
        (bytes, starts)
    }

    #[test]
    fn scan_of_clean_frames() {
        let (bytes, starts) = frames(5..9, 10);
        let scan = scan_segment(&bytes, 5, u64::MAX);
        let last_payload = starts[3] + 16..starts[3] + 26;
        assert_eq!(
            scan,
            SegmentScan {
                records: 4,
                next_index: 9,
                last_frame: Some((8, last_payload)),
                ..SegmentScan::default()
            }
        );
    }

    #[test]
    fn scan_finds_middle_damage_and_the_records_it_took() {
        let (mut bytes, starts) = frames(0..6, 20);
        bytes[starts[2] + 20] ^= 0x10; // a payload byte of record 2
        bytes[starts[3] + 5] ^= 0x01; // the length field of record 3
        let scan = scan_segment(&bytes, 0, u64::MAX);
        assert_eq!(
            scan.damage,
            [Damage {
                bytes: starts[2]..starts[4],
                missing: 2..4
            }]
        );
        assert_eq!((scan.records, scan.next_index, scan.tail), (4, 6, None));
    }

    #[test]
    fn scan_calls_a_cut_last_frame_a_tail() {
        let (bytes, starts) = frames(0..3, 20);
        let cut = starts[2] + 7;
        let scan = scan_segment(&bytes[..cut], 0, u64::MAX);
        assert_eq!((scan.records, scan.next_index), (2, 2));
        assert_eq!(scan.tail, Some(starts[2]..cut));
        assert!(scan.damage.is_empty());
    }

    #[test]
    fn scan_resyncs_after_a_large_run_of_random_bytes() {
        let (head, _) = frames(0..3, 40);
        let (tail, _) = frames(3..6, 40);
        let mut garbage = payload_for(99, 1 << 20);
        garbage[..4].fill(0xFF); // no frame can start where the damage starts
        let bytes = [head.clone(), garbage, tail].concat();
        let scan = scan_segment(&bytes, 0, u64::MAX);
        assert_eq!(
            scan.damage,
            [Damage {
                bytes: head.len()..head.len() + (1 << 20),
                missing: 3..3
            }]
        );
        assert_eq!((scan.records, scan.next_index, scan.tail), (6, 6, None));
    }

    #[test]
    fn scan_treats_frames_past_the_next_segment_as_damage() {
        let (bytes, starts) = frames(0..4, 8);
        let scan = scan_segment(&bytes, 0, 2);
        assert_eq!(scan.next_index, 2);
        assert_eq!(scan.tail, Some(starts[2]..bytes.len()));
    }

    #[test]
    fn scan_accepts_a_gap_left_by_earlier_quarantine() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 0, b"a");
        encode(&mut bytes, 3, b"b");
        let scan = scan_segment(&bytes, 0, u64::MAX);
        assert_eq!(scan.gaps, vec![(1..3)]);
        assert_eq!((scan.records, scan.next_index), (2, 4));
        assert!(scan.damage.is_empty() && scan.tail.is_none());
    }

    /// Appends `count` records of `len` bytes, committed in batches of `batch`.
    fn fill(dir: &Path, segment_bytes: u64, count: u64, len: usize, batch: u64) {
        let (mut writer, _, _) = open(dir, options(segment_bytes)).unwrap();
        for i in 0..count {
            assert_eq!(writer.append(&payload_for(i, len)).unwrap(), i);
            if (i + 1) % batch == 0 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
    }

    #[test]
    fn torn_last_frame_at_every_length_reopens_with_the_committed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 1 << 20, 10, 50, 10);
        let last = segment_paths(dir.path()).pop().unwrap();
        let committed = fs::read(&last).unwrap();
        {
            let (mut writer, _, _) = open(dir.path(), options(1 << 20)).unwrap();
            writer.append(&payload_for(10, 50)).unwrap();
            writer.commit().unwrap();
        }
        let whole = fs::read(&last).unwrap();
        assert_eq!(whole.len(), committed.len() + 16 + 50);

        for cut in committed.len()..whole.len() {
            fs::write(&last, &whole[..cut]).unwrap();
            let (writer, journal, report) = open(dir.path(), options(1 << 20)).unwrap();
            assert_eq!(writer.next_index(), 10, "cut at {cut}");
            assert!(report.corruptions.is_empty(), "cut at {cut}: {report}");
            let expected_tail = (cut > committed.len()).then(|| TruncatedTail {
                segment: last.clone(),
                offset: committed.len() as u64,
                bytes_dropped: (cut - committed.len()) as u64,
            });
            assert_eq!(report.truncated_tail, expected_tail, "cut at {cut}");
            assert_eq!(fs::read(&last).unwrap(), committed, "cut at {cut}");
            assert_records(&journal, 0..10, 50);
        }
    }

    #[test]
    fn flipped_bit_in_a_sealed_segment_is_quarantined_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        // 116-byte frames, 8 per 1 KiB segment: records 0..8 in the first segment.
        fill(dir.path(), 1024, 30, 100, 7);
        let first = segment_paths(dir.path()).remove(0);
        let mut bytes = fs::read(&first).unwrap();
        assert_eq!(bytes.len(), 8 * 116);
        let damaged_frame = bytes[3 * 116..4 * 116].to_vec();
        bytes[3 * 116 + 16 + 40] ^= 0x04;
        let mut flipped_frame = damaged_frame.clone();
        flipped_frame[16 + 40] ^= 0x04;
        fs::write(&first, &bytes).unwrap();

        let (mut writer, journal, report) = open(dir.path(), options(1024)).unwrap();
        assert_eq!(report.corruptions.len(), 1, "{report}");
        let corruption = &report.corruptions[0];
        assert_eq!(corruption.segment, first);
        assert_eq!((corruption.offset, corruption.length), (3 * 116, 116));
        assert_eq!(corruption.missing, 3..4);
        assert_eq!(fs::read(&corruption.quarantined_to).unwrap(), flipped_frame);
        assert!(
            corruption
                .quarantined_to
                .starts_with(dir.path().join("quarantine"))
        );
        assert_eq!(report.records, 29);
        assert!(
            report.to_string().contains("CORRUPTION at offset 348"),
            "{report}"
        );

        let read = read_all(&journal, 0);
        assert!(
            matches!(&read[3], Err(crate::journal::JournalError::Gap { missing, .. }) if *missing == (3..4))
        );
        let indexes: Vec<u64> = read
            .iter()
            .filter_map(|item| item.as_ref().ok())
            .map(|(index, payload)| {
                assert_eq!(*payload, payload_for(*index, 100));
                *index
            })
            .collect();
        assert_eq!(indexes, (0..30).filter(|i| *i != 3).collect::<Vec<u64>>());
        assert_eq!(read.len(), 30, "29 records and one error");

        assert_eq!(writer.append(b"after").unwrap(), 30);
        assert_eq!(writer.commit().unwrap(), 31);
        drop((writer, journal));
        let (_, journal, report) = open(dir.path(), options(1024)).unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.gaps, vec![(3..4)]);
        assert_eq!(
            journal.last_record().unwrap(),
            Some((30, b"after".to_vec()))
        );
    }

    #[test]
    fn flipped_bit_in_the_middle_of_the_last_segment_is_corruption_not_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 1 << 20, 10, 100, 10);
        let last = segment_paths(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&last).unwrap();
        bytes[5 * 116 + 2] ^= 0x80; // the CRC of record 5
        fs::write(&last, &bytes).unwrap();

        let (mut writer, journal, report) = open(dir.path(), options(1 << 20)).unwrap();
        assert_eq!(report.truncated_tail, None);
        assert_eq!(report.corruptions.len(), 1);
        assert_eq!(report.corruptions[0].missing, 5..6);
        assert_eq!(report.corruptions[0].offset, 5 * 116);
        assert_eq!(writer.next_index(), 10);
        assert_records(&journal, 6..10, 100);
        writer.append(b"x").unwrap();
        assert_eq!(writer.commit().unwrap(), 11);
    }

    #[test]
    fn damage_at_the_end_of_a_sealed_segment_loses_only_up_to_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 1024, 20, 100, 20);
        let first = segment_paths(dir.path()).remove(0);
        let mut bytes = fs::read(&first).unwrap();
        let len = bytes.len();
        bytes[len - 1] ^= 0xFF; // the last payload byte of record 7
        fs::write(&first, &bytes).unwrap();

        let (_, journal, report) = open(dir.path(), options(1024)).unwrap();
        assert_eq!(
            report.truncated_tail, None,
            "only the last segment has a tail"
        );
        assert_eq!(report.corruptions.len(), 1);
        assert_eq!(report.corruptions[0].missing, 7..8);
        assert_eq!(report.corruptions[0].offset, 7 * 116);
        assert_records(&journal, 8..20, 100);
        assert_eq!(fs::metadata(&first).unwrap().len(), 7 * 116);
    }

    #[test]
    fn garbage_and_zeros_after_the_last_frame_are_cut() {
        for tail in [
            vec![0u8; 4096],
            b"\x01\x02 some garbage that is no frame".repeat(50),
        ] {
            let dir = tempfile::tempdir().unwrap();
            fill(dir.path(), 1 << 20, 12, 30, 5);
            let last = segment_paths(dir.path()).pop().unwrap();
            let committed = fs::read(&last).unwrap();
            let mut bytes = committed.clone();
            bytes.extend_from_slice(&tail);
            fs::write(&last, &bytes).unwrap();

            let (writer, journal, report) = open(dir.path(), options(1 << 20)).unwrap();
            assert!(report.corruptions.is_empty(), "{report}");
            let cut = report.truncated_tail.as_ref().unwrap();
            assert_eq!(
                (cut.offset, cut.bytes_dropped),
                (committed.len() as u64, tail.len() as u64)
            );
            assert_eq!(fs::read(&last).unwrap(), committed);
            assert_eq!(writer.next_index(), 12);
            assert_records(&journal, 0..12, 30);
        }
    }

    #[test]
    fn a_missing_segment_file_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 1024, 30, 100, 30);
        let paths = segment_paths(dir.path());
        fs::remove_file(&paths[1]).unwrap(); // records 8..16
        let (_, journal, report) = open(dir.path(), options(1024)).unwrap();
        assert_eq!(report.gaps, vec![(8..16)]);
        let read = read_all(&journal, 0);
        assert!(
            matches!(&read[8], Err(crate::journal::JournalError::Gap { missing, .. }) if *missing == (8..16))
        );
        assert_eq!(read.iter().filter(|r| r.is_ok()).count(), 22);
    }

    #[test]
    fn a_huge_length_field_in_the_middle_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 1 << 20, 6, 10, 6);
        let last = segment_paths(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&last).unwrap();
        bytes[2 * 26 + 4..2 * 26 + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        fs::write(&last, &bytes).unwrap();
        let (_, journal, report) = open(dir.path(), options(1 << 20)).unwrap();
        assert_eq!(report.corruptions.len(), 1);
        assert_eq!(report.corruptions[0].missing, 2..3);
        assert_records(&journal, 3..6, 10);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A crash leaves the committed bytes plus any prefix of what the next commit was
        /// writing (segments are written in order, each synced before the next exists).
        /// Reopening keeps every committed record and returns no torn one.
        #[test]
        fn random_crash_points_never_lose_a_committed_record(
            committed_sizes in proptest::collection::vec(0usize..300, 1..40),
            batch in 1usize..8,
            uncommitted_sizes in proptest::collection::vec(0usize..300, 1..20),
            segment_bytes in 200u64..2000,
            crash_at in 0.0f64..=1.0,
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let payload = |i: usize, sizes: &[usize], offset: usize| payload_for((offset + i) as u64, sizes[i]);
            let committed = committed_sizes.len() as u64;
            let before: Vec<(PathBuf, u64)>;
            {
                let (mut writer, _, _) = open(dir.path(), options(segment_bytes)).unwrap();
                for i in 0..committed_sizes.len() {
                    writer.append(&payload(i, &committed_sizes, 0)).unwrap();
                    if (i + 1) % batch == 0 {
                        writer.commit().unwrap();
                    }
                }
                writer.commit().unwrap();
                before = segment_lengths(dir.path());
                for i in 0..uncommitted_sizes.len() {
                    writer.append(&payload(i, &uncommitted_sizes, committed_sizes.len())).unwrap();
                }
                writer.commit().unwrap();
            }

            // The bytes the last commit added, in the order they were written.
            let after = segment_lengths(dir.path());
            let mut written: Vec<(PathBuf, u64, u64)> = Vec::new();
            for (path, len) in &after {
                let old = before.iter().find(|(p, _)| p == path).map_or(0, |(_, l)| *l);
                if *len > old || !before.iter().any(|(p, _)| p == path) {
                    written.push((path.clone(), old, *len));
                }
            }
            let total: u64 = written.iter().map(|(_, old, new)| new - old).sum();
            let mut keep = (total as f64 * crash_at) as u64;
            let mut crashed = false;
            for (path, old, new) in &written {
                if crashed {
                    fs::remove_file(path).unwrap();
                } else if keep < new - old {
                    let mut bytes = fs::read(path).unwrap();
                    bytes.truncate((old + keep) as usize);
                    bytes.extend_from_slice(&garbage);
                    fs::write(path, &bytes).unwrap();
                    crashed = true;
                } else {
                    keep -= new - old;
                }
            }

            let (mut writer, journal, report) = open(dir.path(), options(segment_bytes)).unwrap();
            prop_assert!(report.corruptions.is_empty(), "{}", report);
            prop_assert!(writer.next_index() >= committed);
            let records = read_all(&journal, 0);
            prop_assert_eq!(records.len() as u64, writer.next_index());
            for (position, record) in records.into_iter().enumerate() {
                let (index, bytes) = record.unwrap();
                prop_assert_eq!(index, position as u64);
                let expected = if position < committed_sizes.len() {
                    payload(position, &committed_sizes, 0)
                } else {
                    payload(position - committed_sizes.len(), &uncommitted_sizes, committed_sizes.len())
                };
                prop_assert_eq!(bytes, expected);
            }
            let next = writer.next_index();
            prop_assert_eq!(writer.append(b"after").unwrap(), next);
            prop_assert_eq!(writer.commit().unwrap(), next + 1);
        }
    }
}
