//! Durable file replacement: the one way Vellum replaces a small state file (a cursor,
//! the checkpoint hint, the S3 bundle head, an evidence checkpoint note) so that a crash
//! or power cut leaves either the old content or the new, never a torn or missing file.
//!
//! A rename is atomic but not durable: until the directory itself is synced, the kernel
//! may lose the new name after a crash, which brings the old file back (a cursor that
//! moves backwards re-delivers; one that vanishes restarts from the journal's start), or
//! loses a file that was created there. So every rename that matters, and every creation
//! or removal that must survive a crash, is followed by [`sync_dir`].

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Makes the creation, removal or renaming of entries in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path`: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `<path>.tmp`, next to `path` so that the rename stays within one file system.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Renames `from` over `to` and syncs the directory of `to` (both are in one directory).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(parent_dir(to))
}

/// Replaces `path` with `bytes`: writes `<path>.tmp`, syncs it, renames it over `path`
/// and syncs the directory. `prepare` runs on the synced temporary file before the
/// rename (to set its permissions, say).
pub fn replace_with(
    path: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        prepare(&tmp)
    })();
    if let Err(e) = written {
        // A half-written temporary file is of no use to anyone.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    rename(&tmp, path)
}

/// Replaces `path` with `bytes`, durably (see [`replace_with`]).
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, bytes, |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_replacement_leaves_the_new_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursor");
        replace(&path, b"1\n").unwrap();
        replace(&path, b"22\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cursor"]);
    }

    #[test]
    fn a_failed_preparation_keeps_the_old_content_and_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        replace(&path, b"old").unwrap();
        let err = replace_with(&path, b"new", |_| Err(io::Error::other("refused"))).unwrap_err();
        assert_eq!(err.to_string(), "refused");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn the_preparation_applies_to_the_file_that_is_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("note");
        replace_with(&path, b"n", |tmp| {
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o444))
        })
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_silent_success() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        assert_eq!(sync_dir(&gone).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(replace(&gone.join("x"), b"1").is_err());
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("hint.json")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b")), Path::new("/a"));
    }
}
