//! Dead letters: batches a sink rejected as malformed, kept with the sink's reason so an
//! operator can fix the cause and put them back (`vellum dead-letter list|replay`).
//!
//! Refused credentials and sinks that are down never make dead letters (the driver
//! retries them and holds the cursor), and the `s3` evidence exporter keeps none. Each
//! batch is one file under its exporter's state directory:
//!
//! ```text
//! <storage>/pipelines/<pipeline>/exporters/<exporter>/dead-letter/<first journal index, 20 digits>.jsonl
//! <storage>/pipelines/<pipeline>/exporters/<exporter>/dead-letter/replayed/…   after a replay
//! ```
//!
//! (`<pipeline>` and `<exporter>` percent-encoded as stream folders are.) The first line
//! is the header, then one line per item in journal order: the sealed entry exactly as
//! the journal holds it, or `{"checkpoint":{"size":…,"note":"…"}}`.
//!
//! ```json
//! {"dead_letter":{"pipeline":"logs/audit","exporter":"webhook/soc","reason":"422 …","records":40,"first_index":1200}}
//! ```
//!
//! A replay sends a file's items through the exporter built from the current
//! configuration, as one batch, with the exporter's own retry settings for answers that
//! may clear up. Once the sink took it, the file moves to `replayed/` (a durable rename),
//! so a second replay finds nothing to send. A file being replayed is locked: two
//! replays at once do not both send it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;

use crate::config::{ComponentId, Config};
use crate::durable;
use crate::exporters::{ExportError, Exporter, ExporterConfig, ExporterContext, Item};
use crate::paths::stream_folder;

/// The folder of an exporter's dead letters, under its state directory.
pub const DIR: &str = "dead-letter";
/// Where replayed files go, inside [`DIR`].
pub const REPLAYED: &str = "replayed";

/// An exporter's state directory: what it is told as `ExporterContext::state_dir`.
pub fn state_dir(storage: &Path, pipeline: &str, exporter: &str) -> PathBuf {
    super::pipeline_dir(storage, pipeline)
        .join("exporters")
        .join(stream_folder(exporter))
}

/// Writes a refused batch to `dir`, durably; returns the file.
pub fn write(
    dir: &Path,
    pipeline: &str,
    exporter: &str,
    reason: &str,
    batch: &[Item],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let first = batch.first().map_or(0, Item::index);
    let path = dir.join(format!("{first:020}.jsonl"));
    let mut out = std::io::BufWriter::new(File::create(&path)?);
    let header = serde_json::json!({ "dead_letter": {
        "pipeline": pipeline,
        "exporter": exporter,
        "reason": reason,
        "records": batch.len(),
        "first_index": first,
    }});
    writeln!(out, "{header}")?;
    for item in batch {
        match item {
            Item::Entry { line, .. } => {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            Item::Checkpoint { size, note, .. } => {
                let line = serde_json::json!({ "checkpoint": { "size": size, "note": note } });
                writeln!(out, "{line}")?;
            }
        }
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    durable::sync_dir(dir)?;
    Ok(path)
}

/// What a dead-letter file's first line says.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Written since replays exist; older files name `<pipeline>:<exporter>` in `exporter`.
    #[serde(default)]
    pub pipeline: Option<String>,
    pub exporter: String,
    pub reason: String,
    pub records: u64,
    #[serde(default)]
    pub first_index: Option<u64>,
}

/// One dead-letter file of an exporter in the configuration.
#[derive(Debug, Clone)]
pub struct Letter {
    pub path: PathBuf,
    pub pipeline: String,
    pub exporter: String,
    pub header: Header,
    /// It was replayed (it lies in `replayed/`).
    pub replayed: bool,
}

/// Why a dead-letter file was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    NotFound(String),
    #[error("{path}: {detail}")]
    Unreadable { path: String, detail: String },
    #[error("{0}")]
    Refused(String),
    #[error("{path}: the sink did not take the batch: {error}; the file stays for another try")]
    Delivery { path: String, error: String },
}

/// Reads the header of a dead-letter file.
pub fn read_header(path: &Path) -> std::io::Result<Header> {
    #[derive(Deserialize)]
    struct Line {
        dead_letter: Header,
    }
    let mut first = String::new();
    BufReader::new(File::open(path)?).read_line(&mut first)?;
    serde_json::from_str::<Line>(&first)
        .map(|l| l.dead_letter)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Reads a dead-letter file's items, numbered from its first journal index.
pub fn read_items(path: &Path, first_index: u64) -> std::io::Result<Vec<Item>> {
    #[derive(Deserialize)]
    struct Checkpoint {
        size: u64,
        note: String,
    }
    #[derive(Deserialize)]
    struct Line {
        seq: Option<u64>,
        checkpoint: Option<Checkpoint>,
    }
    let invalid = |n: usize, what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line {}: {what}", n + 1),
        )
    };
    let mut items = Vec::new();
    let reader = BufReader::new(File::open(path)?);
    for (n, line) in reader.split(b'\n').enumerate().skip(1) {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let index = first_index + items.len() as u64;
        let parsed: Line = serde_json::from_slice(&line)
            .map_err(|e| invalid(n, &format!("not a JSON object ({e})")))?;
        items.push(match parsed {
            Line { seq: Some(seq), .. } => Item::Entry {
                index,
                seq,
                line: Bytes::from(line),
            },
            Line {
                checkpoint: Some(c),
                ..
            } => Item::Checkpoint {
                index,
                size: c.size,
                note: c.note,
            },
            _ => return Err(invalid(n, "neither a sealed entry nor a checkpoint")),
        });
    }
    Ok(items)
}

/// An exporter of the configuration, with where its dead letters are.
struct Target {
    pipeline: String,
    stream: String,
    exporter: ComponentId,
    config: ExporterConfig,
    state_dir: PathBuf,
}

fn targets(config: &Config) -> Result<Vec<Target>, ReplayError> {
    let plan = super::plan(config).map_err(|p| ReplayError::Refused(p.join("; ")))?;
    let storage = &config.service.storage.directory;
    Ok(plan
        .pipelines
        .into_iter()
        .flat_map(|p| {
            p.exporters.into_iter().map(move |(eid, cfg, _)| Target {
                state_dir: state_dir(storage, &p.id, eid.as_str()),
                pipeline: p.id.clone(),
                stream: p.stream.clone(),
                exporter: eid,
                config: cfg,
            })
        })
        .collect())
}

/// Every dead-letter file of the configuration's exporters, pending first, oldest first;
/// replayed ones too when `replayed` is set.
pub fn list(config: &Config, replayed: bool) -> Result<Vec<Letter>, ReplayError> {
    let mut out = Vec::new();
    for t in targets(config)? {
        let dir = t.state_dir.join(DIR);
        let mut folders = vec![(dir.clone(), false)];
        if replayed {
            folders.push((dir.join(REPLAYED), true));
        }
        for (folder, done) in folders {
            for path in jsonl_files(&folder) {
                let header = read_header(&path).map_err(|e| ReplayError::Unreadable {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
                out.push(Letter {
                    path,
                    pipeline: t.pipeline.clone(),
                    exporter: t.exporter.to_string(),
                    header,
                    replayed: done,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.replayed, &a.path).cmp(&(b.replayed, &b.path)));
    Ok(out)
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Replays one pending dead-letter file into its exporter; returns how many items it sent.
pub async fn replay(config: &Config, path: &Path) -> Result<usize, ReplayError> {
    let shown = path.display().to_string();
    let absolute =
        std::fs::canonicalize(path).map_err(|e| ReplayError::NotFound(format!("{shown}: {e}")))?;
    let folder = durable::parent_dir(&absolute);
    if folder.file_name().is_some_and(|n| n == REPLAYED) {
        return Err(ReplayError::Refused(format!(
            "{shown} was replayed already; nothing is sent twice"
        )));
    }
    let target = targets(config)?
        .into_iter()
        .find(|t| std::fs::canonicalize(t.state_dir.join(DIR)).is_ok_and(|d| d.as_path() == folder))
        .ok_or_else(|| {
            ReplayError::NotFound(format!(
                "{shown} is not in the dead-letter folder of any exporter of this configuration"
            ))
        })?;
    if target.config.capabilities().evidence.is_some() {
        return Err(ReplayError::Refused(format!(
            "{}: evidence exporters deliver from the journal only; they keep no dead letters to replay",
            target.exporter
        )));
    }
    let _lock = lock(&absolute)?;
    // Checked again under the lock: another replay may have moved it meanwhile.
    if !absolute.exists() {
        return Err(ReplayError::Refused(format!(
            "{shown} was replayed already; nothing is sent twice"
        )));
    }
    let unreadable = |e: std::io::Error| ReplayError::Unreadable {
        path: shown.clone(),
        detail: e.to_string(),
    };
    let header = read_header(&absolute).map_err(unreadable)?;
    let items = read_items(&absolute, header.first_index.unwrap_or(0)).map_err(unreadable)?;
    send(&target, &items)
        .await
        .map_err(|error| ReplayError::Delivery {
            path: shown.clone(),
            error,
        })?;
    let done = folder.join(REPLAYED);
    let moved = std::fs::create_dir_all(&done)
        .and_then(|()| durable::sync_dir(folder))
        .and_then(|()| {
            durable::rename(
                &absolute,
                &done.join(absolute.file_name().unwrap_or_default()),
            )
        })
        .and_then(|()| durable::sync_dir(folder));
    moved.map_err(|e| ReplayError::Unreadable {
        path: shown,
        detail: format!("delivered, but cannot be moved to {REPLAYED}/ ({e}); move it by hand so that it is not sent again"),
    })?;
    Ok(items.len())
}

/// Sends the items request by request as the driver does, retrying a request whose
/// answer may clear up a few times.
async fn send(target: &Target, items: &[Item]) -> Result<(), String> {
    let context = ExporterContext {
        id: target.exporter.to_string(),
        stream: target.stream.clone(),
        state_dir: target.state_dir.clone(),
    };
    let mut exporter = target.config.build(&context).map_err(|e| e.to_string())?;
    let mut done = 0;
    while done < items.len() {
        done += send_request(target, exporter.as_mut(), &items[done..]).await?;
    }
    if let Err(e) = exporter.close().await {
        tracing::warn!(exporter = %target.exporter, error = %e, "exporter did not close cleanly");
    }
    Ok(())
}

/// One request from the start of `rest`; how many items it delivered.
async fn send_request(
    target: &Target,
    exporter: &mut dyn Exporter,
    rest: &[Item],
) -> Result<usize, String> {
    const ATTEMPTS: u32 = 5;
    let retry = &target.config.delivery.retry_on_failure;
    let timeout = target.config.delivery.timeout;
    let mut attempt = 0;
    loop {
        let outcome = match tokio::time::timeout(timeout, exporter.export(rest)).await {
            Ok(Ok(0)) => Err(ExportError::retryable("the exporter delivered nothing")),
            Ok(outcome) => outcome,
            Err(_) => Err(ExportError::retryable(format!(
                "no answer within {timeout:?}"
            ))),
        };
        match outcome {
            Ok(n) => return Ok(n.min(rest.len())),
            Err(ExportError::Retryable {
                message,
                retry_after,
            }) if attempt + 1 < ATTEMPTS => {
                tracing::warn!(exporter = %target.exporter, attempt, error = %message, "replay failed; retrying");
                tokio::time::sleep(retry.delay(attempt, retry_after)).await;
                attempt += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// An exclusive lock on the file for as long as the guard lives.
fn lock(path: &Path) -> Result<File, ReplayError> {
    let file =
        File::open(path).map_err(|e| ReplayError::NotFound(format!("{}: {e}", path.display())))?;
    // SAFETY: the descriptor is open for the call; flock takes no pointers.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(ReplayError::Refused(format!(
            "{} is being replayed by another process",
            path.display()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_as_the_same_items() {
        let tmp = tempfile::tempdir().unwrap();
        let batch = vec![
            Item::Entry {
                index: 7,
                seq: 5,
                line: Bytes::from_static(br#"{"hash":"ab","seq":5,"stream":"s"}"#),
            },
            Item::Checkpoint {
                index: 8,
                size: 6,
                note: "s\n6\nhash\n\n— sig\n".into(),
            },
            Item::Entry {
                index: 9,
                seq: 6,
                line: Bytes::from_static(br#"{"hash":"cd","seq":6,"stream":"s"}"#),
            },
        ];
        let path = write(tmp.path(), "logs/s", "webhook/soc", "422 no", &batch).unwrap();
        assert_eq!(path, tmp.path().join("00000000000000000007.jsonl"));
        let header = read_header(&path).unwrap();
        assert_eq!(header.pipeline.as_deref(), Some("logs/s"));
        assert_eq!(header.exporter, "webhook/soc");
        assert_eq!(header.reason, "422 no");
        assert_eq!((header.records, header.first_index), (3, Some(7)));
        assert_eq!(read_items(&path, 7).unwrap(), batch);
    }

    #[test]
    fn a_line_that_is_neither_entry_nor_checkpoint_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.jsonl");
        std::fs::write(
            &path,
            "{\"dead_letter\":{\"exporter\":\"p:webhook/x\",\"reason\":\"r\",\"records\":2}}\n{\"seq\":1}\n{\"other\":2}\n",
        )
        .unwrap();
        let header = read_header(&path).unwrap();
        assert_eq!((header.pipeline, header.first_index), (None, None));
        let err = read_items(&path, 0).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
