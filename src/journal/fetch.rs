//! [`RecordFetcher`]: single committed records by index, for queries that jump around.
//!
//! A [`JournalReader`] reaches an index by walking every frame of its segment from the
//! start, checking each CRC: right for exporters, which read everything once, but a
//! query that returns a page of scattered records would read whole segments per record.
//! The fetcher starts at a [`RecordPosition`] the caller kept from an earlier read (its
//! own record, or one a few before it in the same segment), steps over frames by their
//! headers only, and checks the CRC of the one record it returns. When the headers do
//! not lead to the record (damage since the position was taken), it falls back to a
//! reader, which skips damage and reports it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::error::JournalError;
use super::frame::{HEADER_LEN, Header};
use super::handle::{Journal, Shared};
use super::reader::{JournalReader, RecordPosition};

/// Reads committed records by index; see the [module docs](self). Keeps the last
/// segment file it opened, so a page of records from one segment opens it once.
pub struct RecordFetcher {
    shared: Arc<Shared>,
    /// The open segment: its first index and file.
    open: Option<(u64, File)>,
}

impl Journal {
    /// A fetcher for random access to committed records.
    pub fn fetcher(&self) -> RecordFetcher {
        RecordFetcher {
            shared: self.shared.clone(),
            open: None,
        }
    }
}

impl RecordFetcher {
    /// The payload of record `index`, or `None` when the journal no longer has it
    /// (purged, lost to damage) or has not committed it yet.
    ///
    /// `near` is the position of a record at or before `index`; in the segment holding
    /// `index` the walk starts there, anywhere else at the start of that segment. Only
    /// the frame returned is checked in full; the frames stepped over must carry rising
    /// indexes and lengths that fit, or the walk is abandoned for a checking reader.
    pub fn read(
        &mut self,
        index: u64,
        near: Option<RecordPosition>,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        let segment = {
            let state = self.shared.state();
            if index >= state.committed_end {
                return Ok(None);
            }
            state
                .segments
                .iter()
                .rev()
                .find(|s| s.first_index <= index)
                .cloned()
        };
        let Some(segment) = segment else {
            return Ok(None); // purged
        };
        let start = match near {
            Some(p) if p.segment == segment.first_index && p.offset < segment.len => p.offset,
            _ => 0,
        };
        if self.open.as_ref().map(|(first, _)| *first) != Some(segment.first_index) {
            self.open = None;
            match File::open(&segment.path) {
                Ok(file) => self.open = Some((segment.first_index, file)),
                // Purged since the state was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(JournalError::io("open segment", &segment.path, e)),
            }
        }
        let Some((_, file)) = &self.open else {
            return Ok(None);
        };
        let read_at = |buf: &mut [u8], at: u64| {
            file.read_exact_at(buf, at)
                .map_err(|e| JournalError::io("read segment", &segment.path, e))
        };
        let limit = segment.len;
        let mut pos = start;
        let mut last_index = None;
        let mut header_bytes = [0u8; HEADER_LEN];
        while pos + HEADER_LEN as u64 <= limit {
            read_at(&mut header_bytes, pos)?;
            let Some(header) = Header::parse(&header_bytes) else {
                break;
            };
            let len = header.frame_len();
            let rising = last_index.is_none_or(|last| header.index > last);
            if !rising || len > limit - pos || header.index > index {
                break;
            }
            if header.index == index {
                let mut frame = vec![0u8; len as usize];
                read_at(&mut frame, pos)?;
                if !header.checks(&frame) {
                    break;
                }
                frame.drain(..HEADER_LEN);
                return Ok(Some(frame));
            }
            last_index = Some(header.index);
            pos += len;
        }
        self.read_checked(index)
    }

    /// The slow path: a reader from `index`, which checks every frame and skips damage.
    fn read_checked(&self, index: u64) -> Result<Option<Vec<u8>>, JournalError> {
        let mut reader = JournalReader::new(self.shared.clone(), index);
        loop {
            match reader.next() {
                None => return Ok(None),
                Some(Ok((at, payload))) => return Ok((at == index).then_some(payload)),
                Some(Err(JournalError::Io {
                    action,
                    path,
                    source,
                })) => {
                    return Err(JournalError::Io {
                        action,
                        path,
                        source,
                    });
                }
                // Damage, a gap or a purge: the records it names are lost; if `index`
                // was among them, the next record read is past it.
                Some(Err(_)) if reader.next_index() > index => return Ok(None),
                Some(Err(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::open;
    use crate::journal::test_support::*;
    use std::fs;

    /// Every record, with the position a reader gave for it.
    fn positions(journal: &crate::journal::Journal) -> Vec<(u64, super::RecordPosition)> {
        let mut reader = journal.reader(journal.first_index()).unwrap();
        let mut out = Vec::new();
        while let Some(item) = reader.next() {
            let (index, _) = item.unwrap();
            out.push((index, reader.last_position().unwrap()));
        }
        out
    }

    #[test]
    fn records_are_read_from_their_own_position_from_an_earlier_one_and_from_none() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(500)).unwrap();
        for i in 0..60 {
            writer
                .append(&payload_for(i, (i as usize * 13) % 90))
                .unwrap();
        }
        writer.commit().unwrap();
        let at = positions(&journal);
        assert!(segment_paths(dir.path()).len() > 4);
        let mut fetcher = journal.fetcher();
        for &(index, position) in &at {
            let expected = payload_for(index, (index as usize * 13) % 90);
            assert_eq!(
                fetcher.read(index, Some(position)).unwrap(),
                Some(expected.clone())
            );
            assert_eq!(fetcher.read(index, None).unwrap(), Some(expected.clone()));
            // A position a few records back, possibly in the previous segment.
            let earlier = at[(index as usize).saturating_sub(5)].1;
            assert_eq!(fetcher.read(index, Some(earlier)).unwrap(), Some(expected));
        }
        assert_eq!(fetcher.read(60, None).unwrap(), None, "not committed");
        writer.append(b"uncommitted").unwrap();
        assert_eq!(
            fetcher.read(60, None).unwrap(),
            None,
            "appended, not committed"
        );
    }

    #[test]
    fn purged_records_are_none_and_damage_falls_back_to_the_checking_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1024)).unwrap();
        for i in 0..24 {
            writer.append(&payload_for(i, 100)).unwrap(); // 116-byte frames, 8 per segment
        }
        writer.commit().unwrap();
        let at = positions(&journal);
        let second = segment_paths(dir.path()).remove(1);
        let mut bytes = fs::read(&second).unwrap();
        bytes[2 * 116 + 4] ^= 0x10; // record 10's length: the header walk derails there
        bytes[4 * 116 + 30] ^= 0x01; // record 12's payload: its CRC fails
        fs::write(&second, &bytes).unwrap();

        let mut fetcher = journal.fetcher();
        let from_start = at[8].1;
        assert_eq!(
            fetcher.read(11, Some(from_start)).unwrap(),
            Some(payload_for(11, 100)),
            "past the damaged length through the reader"
        );
        assert_eq!(fetcher.read(10, Some(at[10].1)).unwrap(), None);
        assert_eq!(fetcher.read(12, Some(at[12].1)).unwrap(), None);
        assert_eq!(
            fetcher.read(13, Some(at[12].1)).unwrap(),
            Some(payload_for(13, 100))
        );

        journal.purge_before(16).unwrap();
        assert_eq!(fetcher.read(3, Some(at[3].1)).unwrap(), None);
        assert_eq!(fetcher.read(15, None).unwrap(), None);
        assert_eq!(
            fetcher.read(16, Some(at[3].1)).unwrap(),
            Some(payload_for(16, 100))
        );
    }
}
