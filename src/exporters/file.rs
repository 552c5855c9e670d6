//! `file`: sealed entries as JSON Lines files, write-once.
//!
//! ```yaml
//! exporters:
//!   file/evidence:
//!     directory: ./data/evidence
//!     max_file_size: 64MiB      # rotate past this size…
//!     max_file_age: 1h          # …or this age
//!     compress: false           # gzip sealed files to .jsonl.gz
//!     immutable: false          # also set the Linux immutable attribute on sealed files
//!     fsync: true               # fsync each batch before the cursor moves past it
//!     retention_days: 0         # 0 keeps forever; else prune sealed files older than this
//! ```
//!
//! Layout (evidence format §3), one folder per stream, its name the stream with every
//! byte outside `[A-Za-z0-9._-]` percent-encoded (`logs/audit` → `logs%2Faudit`):
//!
//! ```text
//! <directory>/<stream>/<first seq, 20 digits>.jsonl         the open file (writable)
//! <directory>/<stream>/<first seq, 20 digits>.jsonl[.gz]    sealed files (read-only)
//! <directory>/<stream>/checkpoints/<size, 20 digits>.note   signed checkpoints
//! ```
//!
//! A file is sealed when it rotates or the exporter closes: flushed, fsynced, made
//! read-only (and immutable when asked and the filesystem allows), and never opened for
//! writing again. After a crash the open file's torn last line is cut off and writing
//! resumes after the last `seq` on disk, so a resumed batch never duplicates an entry.
//! A checkpoint is written only once the entries it covers are fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{ExportError, Exporter, ExporterContext, Item};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub directory: PathBuf,
    #[serde(default = "default_max_file_size")]
    pub max_file_size: bytesize::ByteSize,
    #[serde(default = "default_max_file_age", with = "humantime_serde")]
    pub max_file_age: Duration,
    #[serde(default)]
    pub compress: bool,
    #[serde(default)]
    pub immutable: bool,
    #[serde(default = "default_true")]
    pub fsync: bool,
    #[serde(default)]
    pub retention_days: u32,
}

fn default_max_file_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(64)
}
fn default_max_file_age() -> Duration {
    Duration::from_secs(3600)
}
fn default_true() -> bool {
    true
}

impl FileConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.directory.as_os_str().is_empty() {
            out.push((
                "directory".into(),
                "give the directory evidence files are written to".into(),
            ));
        }
        if self.max_file_size.as_u64() < 1024 {
            out.push(("max_file_size".into(), "must be at least 1KiB".into()));
        }
        if self.max_file_age < Duration::from_secs(1) {
            out.push(("max_file_age".into(), "must be at least 1s".into()));
        }
        out
    }
}

/// Percent-encodes a stream name into a folder name.
pub fn stream_folder(stream: &str) -> String {
    let mut out = String::with_capacity(stream.len());
    for b in stream.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct OpenFile {
    path: PathBuf,
    writer: BufWriter<File>,
    bytes: u64,
    opened: Instant,
}

pub struct FileExporter {
    cfg: FileConfig,
    id: String,
    dir: PathBuf,
    open: Option<OpenFile>,
    /// The last `seq` on disk; entries at or below it were written before a restart.
    last_seq: Option<u64>,
    last_retention: Option<Instant>,
    warned_immutable: bool,
}

impl FileExporter {
    pub fn open(cfg: &FileConfig, context: &ExporterContext) -> Result<FileExporter, ExportError> {
        let dir = cfg.directory.join(stream_folder(&context.stream));
        fs::create_dir_all(dir.join("checkpoints"))
            .map_err(|e| ExportError::Permanent(format!("cannot create {}: {e}", dir.display())))?;
        let mut exporter = FileExporter {
            cfg: cfg.clone(),
            id: context.id.clone(),
            dir,
            open: None,
            last_seq: None,
            last_retention: None,
            warned_immutable: false,
        };
        exporter.recover()?;
        Ok(exporter)
    }

    /// Finds where writing stopped: seals stray open files, cuts a torn last line, and
    /// reads the last `seq` on disk.
    fn recover(&mut self) -> Result<(), ExportError> {
        let mut files = self.entry_files()?;
        files.sort();
        let writable: Vec<PathBuf> = files.iter().filter(|p| is_writable(p)).cloned().collect();
        if let Some((newest, older)) = writable.split_last() {
            for path in older {
                cut_torn_tail(path)?;
                self.seal_path(path)?;
            }
            cut_torn_tail(newest)?;
            if fs::metadata(newest)?.len() == 0 {
                fs::remove_file(newest)?;
            } else {
                let file = OpenOptions::new().append(true).open(newest)?;
                let bytes = file.metadata()?.len();
                self.open = Some(OpenFile {
                    path: newest.clone(),
                    writer: BufWriter::with_capacity(1 << 20, file),
                    bytes,
                    opened: Instant::now(),
                });
            }
        }
        let mut files = self.entry_files()?;
        files.sort();
        if let Some(last) = files.last() {
            self.last_seq = last_seq_in(last)?;
        }
        Ok(())
    }

    fn entry_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
                out.push(path);
            }
        }
        Ok(out)
    }

    fn write_entry(&mut self, seq: u64, line: &[u8]) -> std::io::Result<()> {
        if self.open.is_none() {
            let path = self.dir.join(format!("{seq:020}.jsonl"));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            sync_dir(&self.dir)?;
            self.open = Some(OpenFile {
                path,
                writer: BufWriter::with_capacity(1 << 20, file),
                bytes: 0,
                opened: Instant::now(),
            });
        }
        if let Some(open) = self.open.as_mut() {
            open.writer.write_all(line)?;
            open.writer.write_all(b"\n")?;
            open.bytes += line.len() as u64 + 1;
        }
        self.last_seq = Some(seq);
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.bytes >= self.cfg.max_file_size.as_u64())
        {
            self.seal_open()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(open) = self.open.as_mut() {
            open.writer.flush()?;
            if self.cfg.fsync {
                open.writer.get_ref().sync_data()?;
            }
        }
        Ok(())
    }

    fn write_checkpoint(&mut self, size: u64, note: &str) -> std::io::Result<()> {
        let dir = self.dir.join("checkpoints");
        let path = dir.join(format!("{size:020}.note"));
        if path.exists() {
            return Ok(());
        }
        self.flush()?;
        let tmp = dir.join(format!(".{size:020}.note.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(note.as_bytes())?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))?;
        fs::rename(&tmp, &path)?;
        sync_dir(&dir)
    }

    fn seal_open(&mut self) -> std::io::Result<()> {
        if let Some(mut open) = self.open.take() {
            open.writer.flush()?;
            open.writer.get_ref().sync_all()?;
            drop(open.writer);
            self.seal_path(&open.path)?;
        }
        Ok(())
    }

    /// Makes a closed file read-only (compressed and immutable when configured).
    fn seal_path(&mut self, path: &Path) -> std::io::Result<()> {
        let path = if self.cfg.compress {
            let gz = path.with_extension("jsonl.gz");
            let tmp = path.with_extension("jsonl.gz.tmp");
            {
                let mut input = File::open(path)?;
                let out = File::create(&tmp)?;
                let mut enc = flate2::write::GzEncoder::new(
                    BufWriter::new(out),
                    flate2::Compression::default(),
                );
                std::io::copy(&mut input, &mut enc)?;
                let out = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
                out.sync_all()?;
            }
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))?;
            fs::rename(&tmp, &gz)?;
            sync_dir(&self.dir)?;
            fs::remove_file(path)?;
            gz
        } else {
            fs::set_permissions(path, fs::Permissions::from_mode(0o444))?;
            path.to_path_buf()
        };
        if self.cfg.immutable {
            if let Err(e) = set_immutable(&path, true) {
                if !self.warned_immutable {
                    tracing::warn!(exporter = %self.id, error = %e, "cannot set the immutable attribute; sealed files are read-only only");
                    self.warned_immutable = true;
                }
            }
        }
        sync_dir(&self.dir)
    }

    fn rotate_if_old(&mut self) -> std::io::Result<()> {
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.opened.elapsed() >= self.cfg.max_file_age)
        {
            self.seal_open()?;
        }
        Ok(())
    }

    /// Deletes sealed files last modified before the retention window; never the open one.
    fn prune(&mut self) -> std::io::Result<usize> {
        if self.cfg.retention_days == 0 {
            return Ok(0);
        }
        let window = Duration::from_secs(u64::from(self.cfg.retention_days) * 86_400);
        let cutoff = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut pruned = 0;
        for path in self.entry_files()? {
            if is_writable(&path) {
                continue;
            }
            if fs::metadata(&path)?.modified()? < cutoff {
                if self.cfg.immutable {
                    let _ = set_immutable(&path, false);
                }
                fs::remove_file(&path)?;
                pruned += 1;
            }
        }
        if pruned > 0 {
            sync_dir(&self.dir)?;
            tracing::info!(exporter = %self.id, pruned, retention_days = self.cfg.retention_days, "pruned sealed evidence files past retention");
        }
        Ok(pruned)
    }
}

impl Exporter for FileExporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| -> std::io::Result<()> {
                for item in batch {
                    match item {
                        Item::Entry { seq, line, .. } => {
                            if self.last_seq.is_some_and(|last| *seq <= last) {
                                continue;
                            }
                            self.write_entry(*seq, line)?;
                        }
                        Item::Checkpoint { size, note, .. } => {
                            self.write_checkpoint(*size, note)?
                        }
                    }
                }
                self.flush()
            })?;
            Ok(())
        })
    }

    fn tick(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| -> std::io::Result<()> {
                self.rotate_if_old()?;
                if self
                    .last_retention
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
                {
                    self.prune()?;
                    self.last_retention = Some(Instant::now());
                }
                Ok(())
            })?;
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.seal_open())?;
            Ok(())
        })
    }
}

fn is_writable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o222 != 0)
}

/// Cuts an open file back to its last complete line.
fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        tracing::warn!(file = %path.display(), dropped_bytes = len - end, "cut a torn last line from an evidence file");
        f.set_len(end)?;
        f.sync_all()?;
    }
    Ok(())
}

/// The `seq` of a file's last line.
fn last_seq_in(path: &Path) -> std::io::Result<Option<u64>> {
    let mut text = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(File::open(path)?).read_to_end(&mut text)?;
    } else {
        File::open(path)?.read_to_end(&mut text)?;
    }
    let last = text.split(|&b| b == b'\n').rev().find(|l| !l.is_empty());
    Ok(last
        .and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("seq")?.as_u64()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Sets or clears the Linux immutable attribute (`chattr +i`); needs CAP_LINUX_IMMUTABLE.
fn set_immutable(path: &Path, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    let f = File::open(path)?;
    let mut flags: libc::c_long = 0;
    // SAFETY: the fd is open for the call and `flags` outlives it; both ioctls read or
    // write exactly one `long`.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS as _, &mut flags) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        flags = if on {
            flags | FS_IMMUTABLE_FL
        } else {
            flags & !FS_IMMUTABLE_FL
        };
        if libc::ioctl(f.as_raw_fd(), FS_IOC_SETFLAGS as _, &flags) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn context(stream: &str) -> ExporterContext {
        ExporterContext {
            id: "file/test".into(),
            stream: stream.into(),
            state_dir: PathBuf::new(),
        }
    }

    fn config(dir: &Path) -> FileConfig {
        FileConfig {
            directory: dir.to_path_buf(),
            max_file_size: bytesize::ByteSize::kib(1),
            max_file_age: Duration::from_secs(3600),
            compress: false,
            immutable: false,
            fsync: true,
            retention_days: 0,
        }
    }

    fn entry(seq: u64) -> Item {
        let line = format!(
            r#"{{"body":"{}","seq":{seq},"stream":"s"}}"#,
            "x".repeat(200)
        );
        Item::Entry {
            index: seq,
            seq,
            line: Bytes::from(line),
        }
    }

    fn lines(dir: &Path) -> Vec<u64> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut seqs = Vec::new();
        for f in files {
            let mut text = String::new();
            if f.extension().is_some_and(|e| e == "gz") {
                flate2::read::MultiGzDecoder::new(File::open(&f).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
            } else {
                text = fs::read_to_string(&f).unwrap();
            }
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                seqs.push(v["seq"].as_u64().unwrap());
            }
        }
        seqs
    }

    #[test]
    fn stream_names_become_unambiguous_folders() {
        assert_eq!(stream_folder("logs/audit"), "logs%2Faudit");
        assert_eq!(stream_folder("a_b-c.d"), "a_b-c.d");
        assert_ne!(stream_folder("logs/a"), stream_folder("logs%2Fa"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn files_rotate_seal_read_only_and_resume_without_duplicates() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let mut ex = FileExporter::open(&cfg, &context("logs/audit")).unwrap();
        let batch: Vec<Item> = (0..10).map(entry).collect();
        ex.export(&batch).await.unwrap();
        let dir = tmp.path().join("logs%2Faudit");
        // A file is sealed once it reaches 1 KiB: count the lines that takes.
        let line_len = match &batch[0] {
            Item::Entry { line, .. } => line.len() as u64 + 1,
            _ => unreachable!(),
        };
        let per_file = 1024u64.div_ceil(line_len);
        let mut files = ex.entry_files().unwrap();
        files.sort();
        assert_eq!(files.len() as u64, 10u64.div_ceil(per_file), "{files:?}");
        let full_files = 10 / per_file;
        for (i, f) in files.iter().enumerate() {
            let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
            if (i as u64) < full_files {
                assert_eq!(mode, 0o444, "sealed: {}", f.display());
            } else {
                assert_ne!(mode & 0o200, 0, "still open: {}", f.display());
            }
        }
        drop(ex);

        // A restart re-delivers from an older cursor: nothing is written twice.
        let mut ex = FileExporter::open(&cfg, &context("logs/audit")).unwrap();
        let again: Vec<Item> = (5..14).map(entry).collect();
        ex.export(&again).await.unwrap();
        ex.close().await.unwrap();
        assert_eq!(lines(&dir), (0..14).collect::<Vec<_>>());
        assert!(ex.entry_files().unwrap().iter().all(|p| !is_writable(p)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_torn_last_line_is_cut_and_writing_resumes_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path());
        cfg.max_file_size = bytesize::ByteSize::mib(1);
        let mut ex = FileExporter::open(&cfg, &context("s")).unwrap();
        ex.export(&(0..3).map(entry).collect::<Vec<_>>())
            .await
            .unwrap();
        let path = ex.open.as_ref().unwrap().path.clone();
        drop(ex);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"body":"torn","se"#).unwrap();
        drop(f);
        let mut ex = FileExporter::open(&cfg, &context("s")).unwrap();
        assert_eq!(ex.last_seq, Some(2));
        ex.export(&(3..5).map(entry).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(lines(&tmp.path().join("s")), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn compressed_sealing_checkpoints_and_retention() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path());
        cfg.compress = true;
        cfg.retention_days = 1;
        let mut ex = FileExporter::open(&cfg, &context("s")).unwrap();
        let mut batch: Vec<Item> = (0..6).map(entry).collect();
        batch.push(Item::Checkpoint {
            index: 6,
            size: 6,
            note: "origin\n6\nroot\n\n— k sig\n".into(),
        });
        ex.export(&batch).await.unwrap();
        let note = tmp.path().join("s/checkpoints/00000000000000000006.note");
        assert_eq!(
            fs::read_to_string(&note).unwrap(),
            "origin\n6\nroot\n\n— k sig\n"
        );
        assert_eq!(
            fs::metadata(&note).unwrap().permissions().mode() & 0o777,
            0o444
        );
        ex.close().await.unwrap();
        let files = ex.entry_files().unwrap();
        assert!(
            files
                .iter()
                .all(|p| p.to_string_lossy().ends_with(".jsonl.gz")),
            "{files:?}"
        );
        assert_eq!(lines(&tmp.path().join("s")), (0..6).collect::<Vec<_>>());

        // Age one sealed file past the window: only it goes.
        let mut sorted = files.clone();
        sorted.sort();
        let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
        File::open(&sorted[0]).unwrap().set_modified(old).unwrap();
        assert_eq!(ex.prune().unwrap(), 1);
        assert!(!sorted[0].exists() && sorted[1].exists());
    }
}
