//! [`JournalReader`]: committed records in index order, across segments.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::JournalError;
use super::frame::{self, HEADER_LEN, Header};
use super::handle::Shared;
use super::segment::SegmentMeta;

/// Bytes read from a segment at once.
const WINDOW_BYTES: u64 = 256 * 1024;

/// Reads committed records from an index on; see [`Journal::reader`](super::Journal::reader).
///
/// `next()` returns `None` at the committed end and can be called again after later
/// commits (wait on [`Journal::subscribe`](super::Journal::subscribe)). Every frame's CRC
/// is checked. Records that cannot be read come as one error naming the segment, the
/// offset and the indexes lost ([`JournalError::Damaged`], [`JournalError::Gap`],
/// [`JournalError::Purged`]), after which reading goes on with the next good record; an
/// I/O error leaves the position unchanged, so `next()` retries.
pub struct JournalReader {
    shared: Arc<Shared>,
    /// The index of the record `next()` looks for.
    next: u64,
    /// The committed end as last seen.
    end: u64,
    segment: Option<OpenSegment>,
    /// Reused from segment to segment.
    window: Window,
    /// Where the record returned last starts.
    last: Option<RecordPosition>,
}

/// Where a record's frame starts: its segment (named by the segment's first index) and
/// the byte offset in it. Hand it to a [`RecordFetcher`](super::RecordFetcher) to read
/// that record, or one a few after it, without scanning the segment from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordPosition {
    /// The first index of the segment (its file name).
    pub segment: u64,
    /// Bytes from the start of the segment file.
    pub offset: u64,
}

struct OpenSegment {
    first_index: u64,
    path: PathBuf,
    file: File,
    /// Committed bytes as last seen: nothing past them is read.
    limit: u64,
    position: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// A frame (or the end of the committed bytes) starts here.
    At(u64),
    /// Bytes from here on are damaged up to a good frame not found yet.
    Damaged(u64),
}

/// What is at a position in a segment.
enum Found {
    Frame { index: u64, len: u64 },
    End,
    Invalid,
}

impl JournalReader {
    pub(crate) fn new(shared: Arc<Shared>, from: u64) -> JournalReader {
        JournalReader {
            shared,
            next: from,
            end: from,
            segment: None,
            window: Window::default(),
            last: None,
        }
    }

    /// Where the record `next()` returned last starts, for random access later.
    pub fn last_position(&self) -> Option<RecordPosition> {
        self.last
    }

    /// The index of the next record to be returned (where a cursor should point once
    /// everything returned so far is delivered).
    pub fn next_index(&self) -> u64 {
        self.next
    }

    fn refresh_end(&mut self) {
        self.end = self.shared.state().committed_end;
    }

    /// Reads the committed end and the current segment's committed length again; returns
    /// the segment after the current one, if there is one yet, and the journal's first index.
    fn refresh(&mut self) -> (Option<SegmentMeta>, u64) {
        let state = self.shared.state();
        self.end = state.committed_end;
        let first_index = state.segments.first().map_or(self.end, |s| s.first_index);
        let Some(segment) = self.segment.as_mut() else {
            return (None, first_index);
        };
        let following = match state
            .segments
            .binary_search_by_key(&segment.first_index, |s| s.first_index)
        {
            Ok(at) => {
                segment.limit = state.segments[at].len;
                state.segments.get(at + 1).cloned()
            }
            // Purged while being read: its length was final already.
            Err(at) => state.segments.get(at).cloned(),
        };
        (following, first_index)
    }

    /// Opens the segment holding `self.next`, or reports that retention removed it.
    fn open_containing_next(&mut self) -> Result<(), JournalError> {
        let (first, containing) = {
            let state = self.shared.state();
            let containing = state
                .segments
                .iter()
                .rev()
                .find(|s| s.first_index <= self.next)
                .cloned();
            (state.segments.first().map(|s| s.first_index), containing)
        };
        match (first, containing) {
            (Some(first), None) => {
                let missing = self.next..first;
                self.next = first;
                Err(JournalError::Purged { missing })
            }
            (_, Some(segment)) => self.open(segment),
            // Never so: the segment being written is never purged.
            (None, None) => {
                let missing = self.next..self.end;
                self.next = self.end;
                Err(JournalError::Purged { missing })
            }
        }
    }

    fn still_listed(&self, segment: &SegmentMeta) -> bool {
        let state = self.shared.state();
        state
            .segments
            .iter()
            .any(|s| s.first_index == segment.first_index)
    }

    /// Opens `segment` at the first good frame whose index is `self.next` or more.
    fn open(&mut self, segment: SegmentMeta) -> Result<(), JournalError> {
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            // Purged since the state was read: the next attempt sees that.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.still_listed(&segment) => {
                return Ok(());
            }
            Err(e) => return Err(JournalError::io("open segment", &segment.path, e)),
        };
        let mut opened = OpenSegment {
            first_index: segment.first_index,
            path: segment.path,
            file,
            limit: segment.len,
            position: Position::At(0),
        };
        // Records before `next` are skipped, but only over frames that check: a damaged
        // length must not throw the walk past records that are wanted.
        let mut pos = 0;
        while let Found::Frame { index, len } = opened.find(&mut self.window, pos, 0)? {
            if index >= self.next {
                break;
            }
            pos += len;
        }
        opened.position = Position::At(pos);
        self.segment = Some(opened);
        Ok(())
    }

    /// At the end of the current segment's committed bytes: on to the next segment, or
    /// report records that were committed but are nowhere in the last one.
    fn after_segment_end(&mut self, pos: u64) -> Option<Result<(u64, Vec<u8>), JournalError>> {
        let (following, first_index) = self.refresh();
        let segment = self.segment.as_ref()?;
        if pos < segment.limit {
            return None; // more was committed meanwhile
        }
        if let Some(following) = following {
            self.segment = None;
            if self.next < first_index {
                let missing = self.next..first_index;
                self.next = first_index;
                return Some(Err(JournalError::Purged { missing }));
            }
            return self.open(following).err().map(Err);
        }
        if self.next < self.end {
            let missing = self.next..self.end;
            self.next = self.end;
            return Some(Err(JournalError::Gap {
                segment: segment.path.clone(),
                offset: pos,
                missing,
            }));
        }
        None
    }

    /// Bytes at `pos` are not a good frame: move to the next good one and report what the
    /// damage took (nothing, when it held only records before the reader's start).
    fn skip_damage(&mut self, pos: u64) -> Result<Option<JournalError>, JournalError> {
        let (following, _) = self.refresh();
        let Some(segment) = self.segment.as_mut() else {
            return Ok(None);
        };
        let indexes = self.next..self.end;
        let (length, missing) = match segment.find_after(&mut self.window, pos, &indexes)? {
            Some((at, index)) => {
                segment.position = Position::At(at);
                (at - pos, self.next..index)
            }
            None => match following {
                Some(following) => {
                    segment.position = Position::At(segment.limit);
                    (
                        segment.limit - pos,
                        self.next..following.first_index.max(self.next),
                    )
                }
                // The segment being written: good frames may still come after the damage.
                None => {
                    segment.position = Position::Damaged(pos);
                    (segment.limit - pos, self.next..self.end.max(self.next))
                }
            },
        };
        self.next = missing.end;
        Ok((!missing.is_empty()).then(|| JournalError::Damaged {
            segment: segment.path.clone(),
            offset: pos,
            length,
            missing,
        }))
    }
}

impl Iterator for JournalReader {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next >= self.end {
                self.refresh_end();
                if self.next >= self.end {
                    return None;
                }
            }
            let Some(segment) = self.segment.as_mut() else {
                if let Err(e) = self.open_containing_next() {
                    return Some(Err(e));
                }
                continue;
            };
            let pos = match segment.position {
                Position::At(pos) => pos,
                Position::Damaged(pos) => match self.skip_damage(pos) {
                    Ok(None) => continue,
                    Ok(Some(error)) | Err(error) => return Some(Err(error)),
                },
            };
            match segment.find(&mut self.window, pos, self.next) {
                Err(e) => return Some(Err(e)),
                Ok(Found::Frame { index, .. }) if index > self.next => {
                    let missing = self.next..index;
                    self.next = index;
                    return Some(Err(JournalError::Gap {
                        segment: segment.path.clone(),
                        offset: pos,
                        missing,
                    }));
                }
                Ok(Found::Frame { index, len }) => {
                    let payload = match self.window.get(
                        segment,
                        pos + HEADER_LEN as u64,
                        len - HEADER_LEN as u64,
                    ) {
                        Ok(payload) => payload.to_vec(),
                        Err(e) => return Some(Err(e)),
                    };
                    segment.position = Position::At(pos + len);
                    self.last = Some(RecordPosition {
                        segment: segment.first_index,
                        offset: pos,
                    });
                    self.next = index + 1;
                    return Some(Ok((index, payload)));
                }
                Ok(Found::End) => {
                    if let Some(item) = self.after_segment_end(pos) {
                        return Some(item);
                    }
                }
                Ok(Found::Invalid) => match self.skip_damage(pos) {
                    Ok(None) => {}
                    Ok(Some(error)) | Err(error) => return Some(Err(error)),
                },
            }
        }
    }
}

impl OpenSegment {
    /// What is at `pos`: a good frame with an index of at least `min_index`, the end of
    /// the committed bytes, or anything else.
    fn find(&self, window: &mut Window, pos: u64, min_index: u64) -> Result<Found, JournalError> {
        let available = self.limit.saturating_sub(pos);
        if available == 0 {
            return Ok(Found::End);
        }
        if available < HEADER_LEN as u64 {
            return Ok(Found::Invalid);
        }
        let Some(header) = Header::parse(window.get(self, pos, HEADER_LEN as u64)?) else {
            return Ok(Found::Invalid);
        };
        let len = header.frame_len();
        if header.index < min_index || len > available {
            return Ok(Found::Invalid);
        }
        Ok(if header.checks(window.get(self, pos, len)?) {
            Found::Frame {
                index: header.index,
                len,
            }
        } else {
            Found::Invalid
        })
    }

    /// The first good frame after `pos` with an index in `indexes`.
    fn find_after(
        &self,
        window: &mut Window,
        pos: u64,
        indexes: &Range<u64>,
    ) -> Result<Option<(u64, u64)>, JournalError> {
        let from = pos + 1;
        if from >= self.limit {
            return Ok(None);
        }
        let bytes = window.get(self, from, self.limit - from)?;
        Ok(frame::next_valid_frame(bytes, 0, indexes).map(|(at, index)| (from + at as u64, index)))
    }
}

/// A run of a segment's bytes, read ahead so that small frames cost no system call each.
#[derive(Default)]
struct Window {
    bytes: Vec<u8>,
    start: u64,
    /// The first index of the segment the bytes are from.
    segment: Option<u64>,
}

impl Window {
    /// `len` bytes of `segment` from `start`; the caller keeps `start + len` within the
    /// committed bytes, so reading never sees a frame being written.
    fn get(&mut self, segment: &OpenSegment, start: u64, len: u64) -> Result<&[u8], JournalError> {
        let cached = self.segment == Some(segment.first_index)
            && start >= self.start
            && start + len <= self.start + self.bytes.len() as u64;
        if !cached {
            let read = len.max(WINDOW_BYTES).min(segment.limit - start);
            self.bytes.resize(read as usize, 0);
            self.segment = Some(segment.first_index);
            if let Err(e) = segment.file.read_exact_at(&mut self.bytes, start) {
                self.bytes.clear();
                return Err(JournalError::io("read segment", &segment.path, e));
            }
            self.start = start;
        }
        let from = (start - self.start) as usize;
        Ok(&self.bytes[from..from + len as usize])
    }
}

impl fmt::Debug for JournalReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalReader")
            .field("next", &self.next)
            .field("segment", &self.segment.as_ref().map(|s| &s.path))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::open;
    use crate::journal::test_support::*;
    use std::fs;

    #[test]
    fn reads_from_any_index_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1000)).unwrap();
        for i in 0..50 {
            writer
                .append(&payload_for(i, (i as usize * 37) % 200))
                .unwrap();
        }
        writer.commit().unwrap();
        assert!(segment_paths(dir.path()).len() > 5);
        for from in [0, 1, 17, 49, 50] {
            let read: Vec<(u64, Vec<u8>)> = read_all(&journal, from)
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            let expected: Vec<(u64, Vec<u8>)> = (from..50)
                .map(|i| (i, payload_for(i, (i as usize * 37) % 200)))
                .collect();
            assert_eq!(read, expected, "from {from}");
        }
        assert!(matches!(
            journal.reader(51),
            Err(JournalError::BeyondEnd {
                index: 51,
                committed_end: 50
            })
        ));
    }

    #[test]
    fn uncommitted_records_are_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1 << 20)).unwrap();
        writer.append(b"one").unwrap();
        writer.commit().unwrap();
        writer.append(b"two").unwrap();
        let mut reader = journal.reader(0).unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), (0, b"one".to_vec()));
        assert!(reader.next().is_none());
        writer.commit().unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), (1, b"two".to_vec()));
        assert_eq!(reader.next_index(), 2);
    }

    #[test]
    fn damage_after_open_is_reported_with_segment_offset_and_lost_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1024)).unwrap();
        for i in 0..24 {
            writer.append(&payload_for(i, 100)).unwrap(); // 116-byte frames, 8 per segment
        }
        writer.commit().unwrap();
        let second = segment_paths(dir.path()).remove(1);
        let mut bytes = fs::read(&second).unwrap();
        bytes[2 * 116 + 30] ^= 0x01; // record 10
        bytes[5 * 116 + 9] ^= 0x40; // record 13's index
        bytes[6 * 116 + 9] ^= 0x40; // record 14's index
        fs::write(&second, &bytes).unwrap();

        let read = read_all(&journal, 0);
        let errors: Vec<(PathBuf, u64, u64, Range<u64>)> = read
            .iter()
            .filter_map(|r| match r {
                Err(JournalError::Damaged {
                    segment,
                    offset,
                    length,
                    missing,
                }) => Some((segment.clone(), *offset, *length, missing.clone())),
                Err(e) => panic!("unexpected {e}"),
                Ok(_) => None,
            })
            .collect();
        assert_eq!(
            errors,
            [
                (second.clone(), 2 * 116, 116, 10..11),
                (second.clone(), 5 * 116, 2 * 116, 13..15),
            ]
        );
        let good: Vec<u64> = read
            .into_iter()
            .filter_map(|r| r.ok())
            .map(|(i, _)| i)
            .collect();
        let expected: Vec<u64> = (0..24).filter(|i| ![10, 13, 14].contains(i)).collect();
        assert_eq!(good, expected);

        // From inside the damaged segment, past the damage: nothing to report.
        let from_15: Vec<u64> = read_all(&journal, 15)
            .into_iter()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(from_15, (15..24).collect::<Vec<u64>>());
    }

    #[test]
    fn damage_in_the_segment_being_written_is_skipped_once_later_frames_come() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1 << 20)).unwrap();
        for i in 0..4 {
            writer.append(&payload_for(i, 10)).unwrap();
        }
        writer.commit().unwrap();
        let segment = segment_paths(dir.path()).remove(0);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[3 * 26 + 20] ^= 0x01; // the last committed record
        fs::write(&segment, &bytes).unwrap();

        let mut reader = journal.reader(0).unwrap();
        for i in 0..3 {
            assert_eq!(reader.next().unwrap().unwrap().0, i);
        }
        assert!(matches!(
            reader.next(),
            Some(Err(JournalError::Damaged { offset: 78, missing, .. })) if missing == (3..4)
        ));
        assert!(reader.next().is_none());
        writer.append(&payload_for(4, 10)).unwrap();
        writer.commit().unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), (4, payload_for(4, 10)));
        assert!(reader.next().is_none());
    }
}
