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
//!     retention_days: 0         # 0 keeps forever; else retention prunes older sealed files
//!     legal_hold: false         # true (or a LEGAL_HOLD file) stops all pruning
//! ```
//!
//! Layout (evidence format §3), one folder per stream, its name the stream with every
//! byte outside `[A-Za-z0-9._-]`, and a leading dot, percent-encoded (`logs/audit` →
//! `logs%2Faudit`), so that a folder is never `.`, `..` or hidden:
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
//!
//! A batch is done only once its fsync succeeded. After a failed write or fsync nothing
//! written since the last good fsync is trusted (the kernel may have dropped those pages
//! while still showing them): the open file is cut back to its synced length and the
//! place to resume is read from disk again, so the driver's retry writes exactly what
//! may be missing. Notes and compressed files are replaced with `crate::durable`.
//!
//! **Retention** (run by the pipeline's retention task, see `pipeline::retention` and
//! docs/retention.md): with `retention_days` above 0, sealed files whose entries are all
//! older than the window (by when Vellum wrote the file, never a time a client sent:
//! see `pipeline::retention`) are removed from the start of the
//! stream, never the newest file, and only up to a point that a remaining checkpoint
//! covers, so the signed checkpoint still vouches for what the purge record declares.
//! Checkpoints of the removed range go with it. Nothing is removed while `legal_hold` is
//! true or a file named `LEGAL_HOLD` exists in `directory` or in the stream's folder
//! (an operator creates one without a reload), nor when the files to remove do not
//! verify (a removal must never hide tampering).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{ExportError, Exporter, ExporterContext, Item};
use crate::durable::{self, sync_dir};
use crate::paths::stream_folder;

mod prune;
pub use prune::{PruneError, PrunePlan, apply_prune, legal_hold, plan_prune};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where evidence files are written, one folder per stream.
    pub directory: PathBuf,
    /// A file is sealed and a new one started at this size.
    #[serde(default = "default_max_file_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_file_size: bytesize::ByteSize,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_max_file_age", with = "humantime_serde")]
    /// A file is sealed and a new one started after this long.
    pub max_file_age: Duration,
    /// Gzip sealed files to `.jsonl.gz`.
    #[serde(default)]
    pub compress: bool,
    /// Also set the Linux immutable attribute on sealed files, where allowed.
    #[serde(default)]
    pub immutable: bool,
    /// Fsync each batch before the cursor moves past it.
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// Days sealed files are kept; 0 keeps them forever (docs/retention.md).
    #[serde(default)]
    pub retention_days: u32,
    /// Keeps every file whatever `retention_days` says, as a `LEGAL_HOLD` file does.
    #[serde(default)]
    pub legal_hold: bool,
}

/// The file whose presence, in `directory` or in a stream's folder, stops pruning there.
pub const LEGAL_HOLD_FILE: &str = "LEGAL_HOLD";

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

struct OpenFile {
    path: PathBuf,
    writer: BufWriter<File>,
    bytes: u64,
    /// How many of `bytes` a successful fsync made durable.
    synced: u64,
    opened: Instant,
}

pub struct FileExporter {
    cfg: FileConfig,
    id: String,
    dir: PathBuf,
    open: Option<OpenFile>,
    /// The last `seq` written; entries at or below it are skipped when a batch comes again.
    last_seq: Option<u64>,
    /// Set when a write or fsync failed: what was written since the last good fsync
    /// may be lost even though the page cache still shows it.
    damaged: Option<Damaged>,
    warned_immutable: bool,
}

/// The file a failed write or fsync left in doubt, and how much of it is known durable.
struct Damaged {
    path: Option<PathBuf>,
    synced: u64,
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
            damaged: None,
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
                    synced: bytes,
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
        entry_files_in(&self.dir)
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
                synced: 0,
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
            open.synced = open.bytes;
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
        durable::replace_with(&path, note.as_bytes(), |tmp| {
            fs::set_permissions(tmp, fs::Permissions::from_mode(0o444))
        })
    }

    fn seal_open(&mut self) -> std::io::Result<()> {
        // The file stays open until its fsync succeeded, so that a failure can cut it
        // back to what is known durable.
        if let Some(open) = self.open.as_mut() {
            open.writer.flush()?;
            open.writer.get_ref().sync_all()?;
            open.synced = open.bytes;
        }
        if let Some(open) = self.open.take() {
            drop(open.writer);
            self.seal_path(&open.path)?;
        }
        Ok(())
    }

    /// Runs `work`; when it fails, marks what it may have left in doubt for [`Self::repair`].
    fn guarded<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        self.repair()?;
        let result = work(self);
        if result.is_err() {
            self.mark_damaged();
        }
        result
    }

    /// After a failed write or fsync, the kernel may have dropped the unsynced pages
    /// while still showing them (the fsyncgate pattern), and a later fsync can succeed
    /// without writing them. So nothing written since the last good fsync is trusted:
    /// the open file is given up, with what its buffer still holds.
    fn mark_damaged(&mut self) {
        let open = self.open.take();
        let damaged = self.damaged.get_or_insert(Damaged {
            path: None,
            synced: 0,
        });
        if let Some(open) = open {
            // Dropping the buffer unwritten: its bytes are written again from the batch.
            let (_file, _unwritten) = open.writer.into_parts();
            damaged.path = Some(open.path);
            damaged.synced = open.synced;
        }
    }

    /// Cuts the file left in doubt back to its durable length, syncs it, and finds where
    /// writing resumes from the disk as a restart would, so that the retried batch
    /// rewrites exactly what may be lost: no duplicate, no gap.
    fn repair(&mut self) -> std::io::Result<()> {
        let Some(damaged) = &self.damaged else {
            return Ok(());
        };
        if let Some(path) = &damaged.path {
            match OpenOptions::new().write(true).open(path) {
                Ok(f) => {
                    f.set_len(damaged.synced)?;
                    f.sync_all()?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            tracing::warn!(exporter = %self.id, file = %path.display(), durable_bytes = damaged.synced, "an evidence write or fsync failed; the file is cut back to what was synced and the batch is written again");
        }
        self.damaged = None;
        self.open = None;
        self.last_seq = None;
        let recovered = self.recover();
        if recovered.is_err() {
            self.damaged = Some(Damaged {
                path: None,
                synced: 0,
            });
        }
        recovered.map_err(|e| std::io::Error::other(e.to_string()))
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
            durable::rename(&tmp, &gz)?;
            fs::remove_file(path)?;
            gz
        } else {
            fs::set_permissions(path, fs::Permissions::from_mode(0o444))?;
            path.to_path_buf()
        };
        if self.cfg.immutable
            && let Err(e) = set_immutable(&path, true)
            && !self.warned_immutable
        {
            tracing::warn!(exporter = %self.id, error = %e, "cannot set the immutable attribute; sealed files are read-only only");
            self.warned_immutable = true;
        }
        sync_dir(&self.dir)
    }

    fn write_batch(&mut self, batch: &[Item]) -> std::io::Result<()> {
        for item in batch {
            match item {
                Item::Entry { seq, line, .. } => {
                    if self.last_seq.is_some_and(|last| *seq <= last) {
                        continue;
                    }
                    self.write_entry(*seq, line)?;
                }
                Item::Checkpoint { size, note, .. } => self.write_checkpoint(*size, note)?,
            }
        }
        self.flush()
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
}

impl Exporter for FileExporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.guarded(|this| this.write_batch(batch)))?;
            Ok(batch.len())
        })
    }

    fn tick(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.guarded(Self::rotate_if_old))?;
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.guarded(Self::seal_open))?;
            Ok(())
        })
    }
}

/// A stream folder's entry files, by name (which is by first `seq`).
fn entry_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
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

impl super::ExporterSettings for FileConfig {
    fn problems(&self) -> Vec<(String, String)> {
        FileConfig::problems(self)
    }

    fn capabilities(&self) -> super::Capabilities {
        let pruning = self.retention_days > 0;
        super::Capabilities {
            needs_chain: pruning.then_some(
                "has `retention_days`, and pruned evidence stays verifiable only from a signed checkpoint",
            ),
            dead_letters: false,
            evidence: Some(super::EvidenceStore::Directory {
                directory: self.directory.clone(),
                pruning: pruning.then(|| self.clone()),
            }),
            retention: Some(super::RetentionSetting {
                key: "retention_days",
                days: Some(self.retention_days),
            }),
            ..super::Capabilities::sink()
        }
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(FileExporter::open(self, context)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
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
            legal_hold: false,
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

    #[test]
    fn after_a_failed_fsync_the_unsynced_tail_is_cut_and_the_retry_writes_it_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path());
        cfg.max_file_size = bytesize::ByteSize::mib(1);
        let mut ex = FileExporter::open(&cfg, &context("s")).unwrap();
        let batch = |seqs: std::ops::Range<u64>| seqs.map(entry).collect::<Vec<_>>();
        ex.guarded(|e| e.write_batch(&batch(0..3))).unwrap();
        // Seqs 3 and 4 reach the page cache, then their fsync fails.
        for item in batch(3..5) {
            if let Item::Entry { seq, line, .. } = item {
                ex.write_entry(seq, &line).unwrap();
            }
        }
        ex.open.as_mut().unwrap().writer.flush().unwrap();
        assert_eq!(lines(&tmp.path().join("s")), vec![0, 1, 2, 3, 4]);
        ex.mark_damaged();
        // What the page cache shows past the last good fsync is not trusted.
        ex.repair().unwrap();
        assert_eq!(lines(&tmp.path().join("s")), vec![0, 1, 2]);
        assert_eq!(ex.last_seq, Some(2));
        // The driver's retry repeats the batch: nothing doubled, nothing skipped.
        ex.guarded(|e| e.write_batch(&batch(3..6))).unwrap();
        assert_eq!(lines(&tmp.path().join("s")), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(ex.last_seq, Some(5));
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
    async fn compressed_sealing_and_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path());
        cfg.compress = true;
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
    }

    mod pruning {
        use super::*;
        use crate::event::Record;
        use crate::evidence::hmac::KeyRing;
        use crate::evidence::note::{NoteSigner, NoteVerifier, generate};
        use crate::evidence::seal::Chain;
        use crate::evidence::verify::{Options, verify_dir};

        const DAY: u64 = 86_400 * 1_000_000_000;
        /// 2026-01-01T00:00:00Z.
        const T0: u64 = 1_767_225_600 * 1_000_000_000;

        /// Sets `path`'s modification time (read-only files too: the owner may).
        fn set_written_at(path: &Path, at: u64) {
            let when = std::time::UNIX_EPOCH + Duration::from_nanos(at);
            File::open(path).unwrap().set_modified(when).unwrap();
        }

        /// A stream sealed for real, written by the exporter: entries, checkpoints.
        struct Stream {
            chain: Chain,
            signer: NoteSigner,
            vkey: NoteVerifier,
            keys: KeyRing,
            exporter: FileExporter,
            cfg: FileConfig,
            index: u64,
        }

        impl Stream {
            fn new(dir: &Path) -> Stream {
                let keys = KeyRing::from_strings([("k", "k".repeat(32))]).unwrap();
                let (skey, vkey) = generate("test/s").unwrap();
                let mut cfg = config(dir);
                cfg.retention_days = 30;
                Stream {
                    chain: Chain::new("s", Some(keys.clone())).unwrap(),
                    signer: NoteSigner::parse(&skey).unwrap(),
                    vkey: NoteVerifier::parse(&vkey).unwrap(),
                    keys,
                    exporter: FileExporter::open(&cfg, &context("s")).unwrap(),
                    cfg,
                    index: 0,
                }
            }

            async fn write(&mut self, record: Record) {
                let sealed = self.chain.seal(record.into_json());
                let item = Item::Entry {
                    index: self.index,
                    seq: sealed.seq,
                    line: Bytes::from(sealed.line),
                };
                self.index += 1;
                self.exporter.export(&[item]).await.unwrap();
            }

            /// `n` entries, as if written at `at`: the files they land in carry that
            /// modification time, which is what retention measures.
            async fn entries(&mut self, n: u64, at: u64) {
                let folder = self.cfg.directory.join("s");
                let sizes = |folder: &Path| -> Vec<(PathBuf, u64)> {
                    let files = entry_files_in(folder).unwrap_or_default();
                    files
                        .into_iter()
                        .map(|f| (f.clone(), fs::metadata(&f).unwrap().len()))
                        .collect()
                };
                let before = sizes(&folder);
                for i in 0..n {
                    let mut r = Record::new("test");
                    r.body = serde_json::Value::from(format!("event {i} {}", "x".repeat(150)));
                    self.write(r).await;
                }
                for file in sizes(&folder).into_iter().filter(|f| !before.contains(f)) {
                    set_written_at(&file.0, at);
                }
            }

            async fn checkpoint(&mut self) {
                let note = self.chain.checkpoint("test", &self.signer).unwrap();
                let item = Item::Checkpoint {
                    index: self.index,
                    size: self.chain.next_seq(),
                    note,
                };
                self.index += 1;
                self.exporter.export(&[item]).await.unwrap();
            }

            /// What the retention task does: the purge record into the stream, then removal.
            async fn prune(&mut self, plan: &PrunePlan) {
                let mut r = Record::new(crate::evidence::purge::SOURCE);
                r.event_type = Some(crate::evidence::purge::EVENT_TYPE.into());
                r.attributes = plan.purge.attributes();
                self.write(r).await;
                apply_prune(plan).unwrap();
            }

            fn verify(&self, dir: &Path) -> crate::evidence::verify::Report {
                let options = Options {
                    keys: Some(self.keys.clone()),
                    vkeys: vec![self.vkey.clone()],
                    ..Options::default()
                };
                verify_dir(dir, &options).unwrap()
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
        async fn old_sealed_files_go_up_to_a_checkpoint_and_the_rest_verifies() {
            let tmp = tempfile::tempdir().unwrap();
            let mut s = Stream::new(tmp.path());
            s.entries(20, T0).await;
            s.checkpoint().await;
            s.entries(20, T0).await;
            s.checkpoint().await;
            s.entries(10, T0 + 40 * DAY).await;
            s.checkpoint().await;
            s.entries(3, T0 + 40 * DAY).await;
            let folder = tmp.path().join("s");
            let files_before = entry_files_in(&folder).unwrap();

            // Nothing is past a window that starts after the newest entry.
            assert!(
                plan_prune(&s.cfg, "file/test", "s", T0, &mut None)
                    .unwrap()
                    .is_none()
            );

            let cutoff = T0 + DAY;
            let plan = plan_prune(&s.cfg, "file/test", "s", cutoff, &mut None)
                .unwrap()
                .expect("old files to prune");
            let n = plan.purge.last_seq + 1;
            assert_eq!(plan.purge.first_seq, 0);
            assert!((20..=40).contains(&n), "only the old entries: {n}");
            assert_eq!(plan.purge.frontier.size(), n);
            assert_eq!(plan.files, files_before[..plan.files.len()]);
            let pruned_notes: Vec<PathBuf> = [20, 40]
                .into_iter()
                .filter(|size| *size <= n)
                .map(|size| folder.join(format!("checkpoints/{size:020}.note")))
                .collect();
            assert_eq!(plan.notes, pruned_notes);
            assert_eq!(plan.newest, T0);
            s.prune(&plan).await;

            let report = s.verify(tmp.path());
            assert!(report.is_ok(), "{:?}", report.findings);
            let note = format!(
                "stream s: seq 0..={} pruned by retention (purge record at seq 53)",
                n - 1
            );
            assert!(report.notes.contains(&note), "{:?}", report.notes);
            let remaining = if n < 40 { 2 } else { 1 };
            assert_eq!(
                report.checkpoints_confirmed, remaining,
                "sizes 40 (unless pruned) and 50"
            );

            // Later the young entries age too; the next prune starts where this one
            // ended and stops before the purge record (written now).
            s.entries(20, T0 + 40 * DAY).await;
            s.checkpoint().await;
            assert!(
                plan_prune(&s.cfg, "file/test", "s", T0 + DAY, &mut None)
                    .unwrap()
                    .is_none()
            );
            let later = plan_prune(&s.cfg, "file/test", "s", T0 + 41 * DAY, &mut None)
                .unwrap()
                .expect("the entries of day 40");
            assert_eq!(later.purge.first_seq, n);
            assert!(later.purge.last_seq < 53, "{}", later.purge.last_seq);
            s.prune(&later).await;
            let report = s.verify(tmp.path());
            assert!(report.is_ok(), "{:?}", report.findings);
            assert!(
                entry_files_in(&folder).unwrap().len() >= 2,
                "the newest file is never pruned"
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
        async fn an_undeclared_gap_or_a_changed_purge_record_is_a_finding() {
            let tmp = tempfile::tempdir().unwrap();
            let mut s = Stream::new(tmp.path());
            s.entries(30, T0).await;
            s.checkpoint().await;
            s.entries(5, T0).await;
            let plan = plan_prune(&s.cfg, "file/test", "s", T0 + DAY, &mut None)
                .unwrap()
                .unwrap();
            s.prune(&plan).await;
            s.exporter.close().await.unwrap();
            assert!(s.verify(tmp.path()).is_ok());

            // Pruned by hand further than any purge record says.
            let undeclared = tmp.path().join("undeclared");
            copy_dir(tmp.path(), &undeclared);
            let first = entry_files_in(&undeclared.join("s")).unwrap()[0].clone();
            fs::remove_file(&first).unwrap();
            let report = s.verify(&undeclared);
            assert!(!report.is_ok());
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| f.problem.contains("missing before this entry")),
                "{:?}",
                report.findings
            );
            // Retention refuses to go on from a start nothing declares.
            let mut cfg = s.cfg.clone();
            cfg.directory = undeclared.clone();
            assert!(matches!(
                plan_prune(&cfg, "file/test", "s", T0 + 365 * DAY, &mut None),
                Err(PruneError::Undeclared { .. })
            ));

            // The purge record's frontier changed: its hash no longer matches.
            let changed = tmp.path().join("changed");
            copy_dir(tmp.path(), &changed);
            let newest = entry_files_in(&changed.join("s")).unwrap().pop().unwrap();
            let text = fs::read_to_string(&newest).unwrap();
            let hash = hex::encode(plan.purge.frontier.nodes()[0]);
            let tampered = text.replacen(&hash, &"0".repeat(64), 1);
            assert_ne!(text, tampered);
            fs::write(&newest, tampered).unwrap();
            let report = s.verify(&changed);
            assert!(!report.is_ok(), "{:?}", report.notes);
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| f.problem.contains("`hash` does not match")),
                "{:?}",
                report.findings
            );
        }

        #[test]
        fn legal_hold_by_configuration_or_by_a_file() {
            let tmp = tempfile::tempdir().unwrap();
            let mut cfg = config(tmp.path());
            assert_eq!(legal_hold(&cfg, "logs/audit"), None);
            fs::create_dir_all(tmp.path().join("logs%2Faudit")).unwrap();
            fs::write(tmp.path().join("logs%2Faudit").join(LEGAL_HOLD_FILE), b"").unwrap();
            assert!(legal_hold(&cfg, "logs/audit").is_some_and(|r| r.contains("logs%2Faudit")));
            assert_eq!(legal_hold(&cfg, "other"), None);
            fs::write(tmp.path().join(LEGAL_HOLD_FILE), b"").unwrap();
            assert!(legal_hold(&cfg, "other").is_some());
            let tmp = tempfile::tempdir().unwrap();
            cfg.directory = tmp.path().to_path_buf();
            cfg.legal_hold = true;
            assert!(legal_hold(&cfg, "other").is_some_and(|r| r.contains("legal_hold: true")));
        }

        fn copy_dir(from: &Path, to: &Path) {
            for entry in fs::read_dir(from).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap();
                if path.is_dir() {
                    if name == "undeclared" || name == "changed" {
                        continue;
                    }
                    copy_dir(&path, &to.join(name));
                } else {
                    fs::create_dir_all(to).unwrap();
                    fs::write(to.join(name), fs::read(&path).unwrap()).unwrap();
                }
            }
        }
    }
}
