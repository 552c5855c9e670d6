//! Helpers shared by the journal's tests.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Journal, JournalError, JournalOptions};

/// A payload that differs for every index and length, so a record read back can be
/// checked against the one written without keeping a copy.
pub fn payload_for(index: u64, len: usize) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub fn options(segment_bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        ..JournalOptions::default()
    }
}

/// Segment files in `dir`, sorted by name, read from the directory itself.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    paths
}

pub fn segment_lengths(dir: &Path) -> Vec<(PathBuf, u64)> {
    segment_paths(dir)
        .into_iter()
        .map(|path| {
            let len = fs::metadata(&path).unwrap().len();
            (path, len)
        })
        .collect()
}

pub fn first_index_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Everything a fresh reader from `from` returns until it reaches the committed end.
pub fn read_all(journal: &Journal, from: u64) -> Vec<Result<(u64, Vec<u8>), JournalError>> {
    journal.reader(from).unwrap().collect()
}

/// Reading from `indexes.start` returns exactly `indexes`, each `payload_for(i, len)`.
pub fn assert_records(journal: &Journal, indexes: Range<u64>, len: usize) {
    let expected: Vec<(u64, Vec<u8>)> = indexes.clone().map(|i| (i, payload_for(i, len))).collect();
    assert_records_exactly(journal, indexes.start, &expected);
}

pub fn assert_records_exactly(journal: &Journal, from: u64, expected: &[(u64, Vec<u8>)]) {
    let read: Vec<(u64, Vec<u8>)> = read_all(journal, from)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("reading from {from}: {e}")))
        .collect();
    assert_eq!(read.len(), expected.len(), "records read from {from}");
    for (got, want) in read.iter().zip(expected) {
        assert_eq!(got.0, want.0);
        assert!(got.1 == want.1, "payload of record {} differs", got.0);
    }
}
