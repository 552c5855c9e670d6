//! Everything that can go wrong with a journal, precise enough to act on.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error from opening, writing, reading or maintaining a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file system call failed.
    #[error("journal: could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done: `fdatasync segment`, `create segment`, ...
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// Another process (or another `open` in this one) holds the journal directory.
    #[error("journal {} is already open in another process or handle", dir.display())]
    Locked {
        /// The journal directory.
        dir: PathBuf,
    },

    /// The options cannot work.
    #[error("journal options: {0}")]
    InvalidOptions(&'static str),

    /// `append` was given a payload over `max_record_bytes`; nothing was buffered.
    #[error("record of {len} bytes is over the journal's limit of {max} bytes")]
    RecordTooLarge {
        /// The payload's length.
        len: usize,
        /// `max_record_bytes`.
        max: u32,
    },

    /// An earlier `fdatasync` (or the undoing of a failed write) failed: what the disk holds
    /// is unknown, so the writer refuses to go on. Reopening the journal recovers.
    #[error("journal writer stopped after an earlier storage failure; reopen the journal")]
    Poisoned,

    /// A reader met bytes that are not a valid frame (damaged after the journal was opened).
    /// It has skipped to the next good frame; the records in `missing` are lost.
    #[error(
        "journal damaged at offset {offset} of {} ({length} bytes skipped): records {}..{} lost",
        segment.display(), missing.start, missing.end
    )]
    Damaged {
        /// The segment file.
        segment: PathBuf,
        /// Where the damaged bytes start.
        offset: u64,
        /// How many bytes were skipped.
        length: u64,
        /// Indexes of the records lost.
        missing: Range<u64>,
    },

    /// A reader passed records that are absent: removed from a damaged segment when the
    /// journal was opened (see its `RecoveryReport`), or in a segment file that is gone.
    #[error(
        "records {}..{} are missing before offset {offset} of {} (quarantined or removed earlier)",
        missing.start, missing.end, segment.display()
    )]
    Gap {
        /// The segment file where the gap was noticed.
        segment: PathBuf,
        /// The offset of the first frame after the gap.
        offset: u64,
        /// Indexes of the absent records.
        missing: Range<u64>,
    },

    /// A reader was behind retention: these records were purged before it read them.
    #[error("records {}..{} were purged by retention before they were read", missing.start, missing.end)]
    Purged {
        /// Indexes of the records purged.
        missing: Range<u64>,
    },

    /// An index past the committed end was given to `reader` or `Cursor::store`.
    #[error("index {index} is past the journal's committed end {committed_end}")]
    BeyondEnd {
        /// The index given.
        index: u64,
        /// The committed end at the time.
        committed_end: u64,
    },

    /// A cursor name that cannot be stored.
    #[error("invalid cursor name {name:?}: {reason}")]
    InvalidCursorName {
        /// The name given.
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
    },

    /// A cursor file whose content is not a next index.
    #[error("cursor file {} is corrupt: {content:?} is not an index", path.display())]
    CursorCorrupt {
        /// The cursor file.
        path: PathBuf,
        /// The start of what it holds.
        content: String,
    },
}

impl JournalError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> JournalError {
        JournalError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Shorthand for mapping an `io::Result` into a [`JournalError::Io`] naming the path.
pub(crate) trait IoContext<T> {
    fn context(self, action: &'static str, path: &Path) -> Result<T, JournalError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, action: &'static str, path: &Path) -> Result<T, JournalError> {
        self.map_err(|source| JournalError::io(action, path, source))
    }
}
