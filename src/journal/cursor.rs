//! Cursors: how far each reader (an exporter) has got, persisted so that it resumes there.
//!
//! One file per cursor under `<dir>/cursors/`, holding the next index in decimal and a
//! newline. The name is escaped into the file name: ASCII letters, digits, `-` and `_`
//! stay, every other byte becomes `%XX`, so `file/evidence` is `file%2Fevidence` and no
//! name can reach outside the directory. A store writes `<file>.tmp`, syncs it, renames
//! it over the file and syncs the directory: a crash leaves the old value or the new one.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::error::{IoContext, JournalError};
use super::handle::Shared;
use super::segment;

/// Longest escaped name: room for `.tmp` within any file system's 255-byte names.
const MAX_FILE_NAME: usize = 200;

/// A named, persisted position in the journal: the index its reader needs next.
///
/// One `Cursor` per name at a time; its `store`s are serialized.
pub struct Cursor {
    shared: Arc<Shared>,
    name: String,
    path: PathBuf,
    /// The value last stored, if any ever was.
    stored: Mutex<Option<u64>>,
    /// What `load` returns before anything was stored.
    initial: u64,
}

impl Cursor {
    pub(crate) fn open(
        shared: Arc<Shared>,
        name: &str,
        initial: u64,
    ) -> Result<Cursor, JournalError> {
        let path = shared.cursors_dir.join(file_name(name)?);
        let stored = read(&path)?;
        Ok(Cursor {
            shared,
            name: name.to_owned(),
            path,
            stored: Mutex::new(stored),
            initial,
        })
    }

    /// The name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored next index; for a cursor never stored, the journal's first index when
    /// the cursor was opened (a new reader starts with what the journal still holds).
    pub fn load(&self) -> u64 {
        self.stored().unwrap_or(self.initial)
    }

    /// Whether a value was ever stored under this name.
    pub fn is_stored(&self) -> bool {
        self.stored().is_some()
    }

    /// Persists `next_index` durably, replacing the previous value atomically.
    pub fn store(&self, next_index: u64) -> Result<(), JournalError> {
        let committed_end = self.shared.state().committed_end;
        if next_index > committed_end {
            return Err(JournalError::BeyondEnd {
                index: next_index,
                committed_end,
            });
        }
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        if *stored == Some(next_index) {
            return Ok(());
        }
        crate::durable::replace(&self.path, format!("{next_index}\n").as_bytes())
            .context("replace cursor", &self.path)?;
        *stored = Some(next_index);
        Ok(())
    }

    fn stored(&self) -> Option<u64> {
        *self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("name", &self.name)
            .field("next_index", &self.load())
            .finish()
    }
}

/// Every cursor in `dir` and its value, by name.
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, u64)>, JournalError> {
    let mut cursors = Vec::new();
    for entry in fs::read_dir(dir).context("list", dir)? {
        let entry = entry.context("list", dir)?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(decode) else {
            continue; // a `.tmp` left by a crash, or not ours
        };
        if let Some(value) = read(&entry.path())? {
            cursors.push((name, value));
        }
    }
    cursors.sort();
    Ok(cursors)
}

pub(crate) fn remove(dir: &Path, name: &str) -> Result<bool, JournalError> {
    let path = dir.join(file_name(name)?);
    match fs::remove_file(&path) {
        Ok(()) => {
            segment::sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(JournalError::io("remove cursor", &path, e)),
    }
}

fn read(path: &Path) -> Result<Option<u64>, JournalError> {
    let content = match fs::read(path) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io("read cursor", path, e)),
    };
    let text = String::from_utf8_lossy(&content);
    match text
        .strip_suffix('\n')
        .and_then(|digits| digits.parse().ok())
    {
        Some(value) => Ok(Some(value)),
        None => Err(JournalError::CursorCorrupt {
            path: path.to_path_buf(),
            content: text.chars().take(40).collect(),
        }),
    }
}

fn keeps(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

fn file_name(name: &str) -> Result<String, JournalError> {
    let invalid = |reason| JournalError::InvalidCursorName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut escaped = String::with_capacity(name.len());
    for byte in name.bytes() {
        if keeps(byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    if escaped.len() > MAX_FILE_NAME {
        return Err(invalid("it is too long once escaped for a file name"));
    }
    Ok(escaped)
}

fn decode(file_name: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(file_name.len());
    let mut rest = file_name.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if keeps(first) {
            bytes.push(first);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes)
        .ok()
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::open;
    use crate::journal::test_support::*;

    fn journal_with(
        records: u64,
    ) -> (
        tempfile::TempDir,
        crate::journal::JournalWriter,
        crate::journal::Journal,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) = open(dir.path(), options(1 << 20)).unwrap();
        for i in 0..records {
            writer.append(&payload_for(i, 8)).unwrap();
        }
        writer.commit().unwrap();
        (dir, writer, journal)
    }

    #[test]
    fn names_are_escaped_into_one_file_name() {
        assert_eq!(file_name("file/evidence").unwrap(), "file%2Fevidence");
        assert_eq!(file_name("s3_archive-2").unwrap(), "s3_archive-2");
        assert_eq!(file_name("..").unwrap(), "%2E%2E");
        assert_eq!(file_name("a b.c").unwrap(), "a%20b%2Ec");
        assert_eq!(file_name("é").unwrap(), "%C3%A9");
        assert!(matches!(
            file_name(""),
            Err(JournalError::InvalidCursorName { .. })
        ));
        assert!(matches!(
            file_name(&"/".repeat(67)),
            Err(JournalError::InvalidCursorName { .. })
        ));
        for name in ["file/evidence", "..", "a b.c", "é", "x%41"] {
            assert_eq!(decode(&file_name(name).unwrap()).as_deref(), Some(name));
        }
        assert_eq!(decode("x.tmp"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%ZZ"), None);
    }

    #[test]
    fn a_stored_cursor_survives_reopening() {
        let (dir, writer, journal) = journal_with(10);
        let cursor = journal.cursor("file/evidence").unwrap();
        assert!(!cursor.is_stored());
        assert_eq!(cursor.load(), 0);
        cursor.store(7).unwrap();
        assert_eq!(cursor.load(), 7);
        journal.cursor("..").unwrap().store(3).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("cursors").join("file%2Fevidence")).unwrap(),
            "7\n"
        );
        drop((cursor, writer, journal));

        let (_, journal, _) = open(dir.path(), options(1 << 20)).unwrap();
        let cursor = journal.cursor("file/evidence").unwrap();
        assert!(cursor.is_stored());
        assert_eq!(cursor.load(), 7);
        assert_eq!(
            journal.cursors().unwrap(),
            [("..".to_owned(), 3), ("file/evidence".to_owned(), 7)]
        );
        assert!(journal.remove_cursor("..").unwrap());
        assert!(!journal.remove_cursor("..").unwrap());
        assert_eq!(
            journal.cursors().unwrap(),
            [("file/evidence".to_owned(), 7)]
        );
    }

    #[test]
    fn an_interrupted_store_leaves_the_old_value() {
        let (dir, _writer, journal) = journal_with(10);
        journal.cursor("splunk").unwrap().store(4).unwrap();
        let cursors_dir = dir.path().join("cursors");
        assert_eq!(
            fs::read_dir(&cursors_dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        // A crash between writing the temporary file and renaming it.
        fs::write(cursors_dir.join("splunk.tmp"), b"9").unwrap();
        let cursor = journal.cursor("splunk").unwrap();
        assert_eq!(cursor.load(), 4);
        assert_eq!(journal.cursors().unwrap(), [("splunk".to_owned(), 4)]);
        cursor.store(9).unwrap();
        assert_eq!(journal.cursor("splunk").unwrap().load(), 9);
    }

    #[test]
    fn a_cursor_cannot_pass_the_committed_end() {
        let (_dir, _writer, journal) = journal_with(5);
        let cursor = journal.cursor("late").unwrap();
        cursor.store(5).unwrap();
        assert!(matches!(
            cursor.store(6),
            Err(JournalError::BeyondEnd {
                index: 6,
                committed_end: 5
            })
        ));
        assert_eq!(cursor.load(), 5);
    }

    #[test]
    fn a_corrupt_cursor_file_is_an_error_naming_it() {
        let (dir, _writer, journal) = journal_with(5);
        let path = dir.path().join("cursors").join("webhook");
        fs::write(&path, b"12x\n").unwrap();
        match journal.cursor("webhook") {
            Err(JournalError::CursorCorrupt { path: p, content }) => {
                assert_eq!((p, content.as_str()), (path, "12x\n"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(journal.cursors().is_err());
    }
}
