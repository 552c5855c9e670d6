//! Segment files: their names, listing them, and making directory changes durable.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::{IoContext, JournalError};

const SUFFIX: &str = ".seg";
/// A segment being rewritten without its damaged bytes; renamed over the segment when whole.
const REWRITE_SUFFIX: &str = ".seg.tmp";

/// What the journal knows of one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// Index of the first record written to it (its file name).
    pub first_index: u64,
    pub path: PathBuf,
    /// Bytes that hold committed records; readers never look past them.
    pub len: u64,
}

/// `<first index, 20 digits>.seg`: sorts by name in index order.
pub(crate) fn file_name(first_index: u64) -> String {
    format!("{first_index:020}{SUFFIX}")
}

pub(crate) fn rewrite_path(segment: &Path) -> PathBuf {
    let mut name = segment.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    segment.with_file_name(name)
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, in index order. Leftovers of an interrupted rewrite are removed:
/// the segment they were to replace is still whole, and is scanned again.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).context("list", dir)? {
        let entry = entry.context("list", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first_index) = parse_file_name(name) {
            segments.push((first_index, entry.path()));
        } else if name.ends_with(REWRITE_SUFFIX) {
            fs::remove_file(entry.path()).context("remove leftover", &entry.path())?;
        }
    }
    segments.sort_unstable_by_key(|(first_index, _)| *first_index);
    Ok(segments)
}

/// Makes the creation, removal or renaming of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    crate::durable::sync_dir(dir).context("fsync directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits_and_round_trip() {
        assert_eq!(file_name(0), "00000000000000000000.seg");
        assert_eq!(file_name(1234), "00000000000000001234.seg");
        assert_eq!(file_name(u64::MAX), "18446744073709551615.seg");
        assert_eq!(parse_file_name("00000000000000001234.seg"), Some(1234));
        assert_eq!(parse_file_name("1234.seg"), None);
        assert_eq!(parse_file_name("0000000000000000123x.seg"), None);
        assert_eq!(parse_file_name("00000000000000001234.seg.tmp"), None);
        assert_eq!(
            parse_file_name("99999999999999999999.seg"),
            None,
            "past u64"
        );
    }

    #[test]
    fn list_sorts_ignores_strangers_and_removes_rewrite_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000000000000000010.seg",
            "00000000000000000002.seg",
            "00000000000000000002.seg.tmp",
            "notes.txt",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        fs::create_dir(dir.path().join("cursors")).unwrap();
        let listed = list(dir.path()).unwrap();
        let indexes: Vec<u64> = listed.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [2, 10]);
        assert!(!dir.path().join("00000000000000000002.seg.tmp").exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
