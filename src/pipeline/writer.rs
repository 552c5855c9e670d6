//! The journal writer: the single ordered path from processors into the journal.
//!
//! One thread per pipeline takes submitted batches in arrival order, seals each record
//! (stream, seq, prev, hash, and kid/mac when signing), appends them, and commits the
//! whole group with one fsync; only then are the submitters answered. Checkpoints are
//! signed every N entries, every T, and at shutdown, and travel through the journal like
//! entries.
//!
//! The chain head is never stored apart from the records: at start it is recovered from
//! the journal itself, starting at the newest checkpoint record named by `chain.json` (a
//! hint rewritten at each checkpoint), and every entry after it must link. If they do
//! not, or if the state is gone while evidence exists, the pipeline refuses to start.
//! If a commit fails, the state of the file is unknown, so the writer refuses everything
//! after it until a restart recovers the head from what is on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::frame::{CheckpointFrame, Frame, encode_checkpoint, encode_entry};
use crate::component::SubmitError;
use crate::event::Record;
use crate::evidence::hmac::KeyRing;
use crate::evidence::merkle::{Frontier, parse_hex_hash};
use crate::evidence::note::NoteSigner;
use crate::evidence::seal::{Chain, Head};
use crate::journal::{Journal, JournalWriter};
use crate::telemetry::status::WriterStatus;

/// A batch waiting to be made durable.
pub struct WriteRequest {
    pub records: Vec<Record>,
    pub done: oneshot::Sender<Result<(), SubmitError>>,
}

/// How checkpoints are made, when the pipeline has `hash_chain`.
pub struct Checkpointing {
    pub origin_prefix: String,
    pub signer: NoteSigner,
    pub every_records: u64,
    pub every: Duration,
}

pub struct WriterSettings {
    pub stream: String,
    pub keys: Option<KeyRing>,
    pub checkpoints: Option<Checkpointing>,
    /// Where the hint naming the newest checkpoint record lives.
    pub hint_path: PathBuf,
    /// The most records one group commit takes before it commits.
    pub max_group_records: usize,
}

/// The hint: where the newest checkpoint record is, so recovery replays only after it.
#[derive(Debug, Serialize, Deserialize)]
struct Hint {
    stream: String,
    /// Journal index of the checkpoint record.
    index: u64,
    /// Entries covered.
    size: u64,
}

/// The journal index of the newest committed checkpoint record, from the hint at
/// `hint_path`: recovery starts there, so retention never purges it. `None` when there
/// is no readable hint (then recovery needs the journal from its start).
pub fn newest_checkpoint_index(hint_path: &Path) -> Option<u64> {
    let bytes = std::fs::read(hint_path).ok()?;
    serde_json::from_slice::<Hint>(&bytes).ok().map(|h| h.index)
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(
        "stream `{stream}`: the chain state in {dir} does not match its entries: {detail}. \
         Nothing was changed. Restore the storage directory from a backup, or start a new \
         chain by setting `stream:` under `hash_chain` to a new name (the old evidence stays verifiable as it is)"
    )]
    Mismatch {
        stream: String,
        dir: String,
        detail: String,
    },
    #[error(
        "stream `{stream}`: the chain state is gone but evidence of this stream exists in {evidence}. \
         Starting again at seq 0 would fork the chain. Restore the storage directory from a \
         backup, or start a new chain by setting `stream:` under `hash_chain` to a new name"
    )]
    StateLost { stream: String, evidence: String },
    #[error("stream `{stream}`: cannot read the journal: {detail}")]
    Journal { stream: String, detail: String },
}

/// Recovers the chain head from the journal.
///
/// `evidence_dirs` are places exporters keep this stream's evidence; if the journal is
/// empty but one of them holds entries, the state was lost and starting over would fork.
pub fn recover(
    journal: &Journal,
    settings: &WriterSettings,
    evidence_dirs: &[PathBuf],
) -> Result<(Chain, u64), RecoveryError> {
    let stream = settings.stream.clone();
    let dir = settings
        .hint_path
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    let mismatch = |detail: String| RecoveryError::Mismatch {
        stream: stream.clone(),
        dir: dir.clone(),
        detail,
    };
    let journal_err = |e: crate::journal::JournalError| RecoveryError::Journal {
        stream: stream.clone(),
        detail: e.to_string(),
    };

    let hint: Option<Hint> = std::fs::read(&settings.hint_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let end = journal.committed_end();
    let first = journal.first_index();

    // Where replay starts, and the head there.
    let (mut head, start) = match hint {
        Some(h) if h.stream != stream => {
            return Err(mismatch(format!(
                "the journal holds stream `{}`, the configuration names `{stream}`",
                h.stream
            )));
        }
        Some(h) => {
            if h.index < first || h.index >= end {
                return Err(mismatch(format!(
                    "the newest checkpoint (size {}) was at journal record {}, but the journal holds records {first}..{end}",
                    h.size, h.index
                )));
            }
            let mut reader = journal.reader(h.index).map_err(journal_err)?;
            let frame = match reader.next() {
                Some(Ok((_, payload))) => payload,
                Some(Err(e)) => return Err(journal_err(e)),
                None => return Err(mismatch(format!("journal record {} is missing", h.index))),
            };
            match Frame::decode(&frame) {
                Ok(Frame::Checkpoint(c)) if c.size == h.size => {
                    (head_of(&c).map_err(mismatch)?, h.index + 1)
                }
                _ => {
                    return Err(mismatch(format!(
                        "journal record {} is not the checkpoint of size {}",
                        h.index, h.size
                    )));
                }
            }
        }
        None if end == 0 => {
            if let Some(found) = evidence_dirs.iter().find(|d| holds_entries(d)) {
                return Err(RecoveryError::StateLost {
                    stream,
                    evidence: found.display().to_string(),
                });
            }
            let chain =
                Chain::new(&stream, settings.keys.clone()).map_err(|e| mismatch(e.to_string()))?;
            return Ok((chain, 0));
        }
        None if first > 0 => {
            return Err(mismatch(format!(
                "no chain state is stored and the journal starts at record {first}, so the head cannot be rebuilt"
            )));
        }
        None => (
            Head {
                next_seq: 0,
                prev: [0; 32],
                frontier: Frontier::new(),
            },
            0,
        ),
    };

    // Replay: every entry after `start` must continue the chain exactly.
    let reader = journal.reader(start).map_err(journal_err)?;
    for item in reader {
        let (index, payload) = item.map_err(|e| {
            mismatch(format!(
                "a journal record after the newest checkpoint is damaged ({e})"
            ))
        })?;
        match Frame::decode(&payload) {
            Ok(Frame::Entry { seq, line }) => {
                let entry: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                    mismatch(format!("journal record {index} is not a JSON entry ({e})"))
                })?;
                let field = |name: &str| {
                    entry
                        .get(name)
                        .and_then(serde_json::Value::as_str)
                        .and_then(parse_hex_hash)
                };
                if seq != head.next_seq {
                    return Err(mismatch(format!(
                        "expected seq {} at journal record {index}, found {seq}",
                        head.next_seq
                    )));
                }
                if field("prev") != Some(head.prev) {
                    return Err(mismatch(format!(
                        "seq {seq} does not link to seq {}'s hash",
                        seq.wrapping_sub(1)
                    )));
                }
                let hash =
                    field("hash").ok_or_else(|| mismatch(format!("seq {seq} has no hash")))?;
                head.frontier.push(hash);
                head.prev = hash;
                head.next_seq += 1;
            }
            Ok(Frame::Checkpoint(c)) => {
                if c.size != head.next_seq {
                    return Err(mismatch(format!(
                        "a checkpoint of size {} follows seq {}",
                        c.size,
                        head.next_seq.wrapping_sub(1)
                    )));
                }
            }
            Err(e) => return Err(mismatch(format!("journal record {index}: {e}"))),
        }
    }
    let chain =
        Chain::resume(&stream, head, settings.keys.clone()).map_err(|e| mismatch(e.to_string()))?;
    Ok((chain, end))
}

fn head_of(c: &CheckpointFrame) -> Result<Head, String> {
    let prev = parse_hex_hash(&c.head).ok_or("the checkpoint record's head hash is malformed")?;
    let frontier = Frontier::from_hex(c.size, &c.frontier).map_err(|e| e.to_string())?;
    Ok(Head {
        next_seq: c.size,
        prev,
        frontier,
    })
}

/// Whether a directory (searched two levels deep) holds entry files.
fn holds_entries(dir: &Path) -> bool {
    let Ok(read) = std::fs::read_dir(dir) else {
        return false;
    };
    read.flatten().any(|e| {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
            && e.metadata().is_ok_and(|m| m.len() > 0)
    })
}

/// The writer thread's state.
pub struct Writer {
    journal: JournalWriter,
    chain: Chain,
    settings: WriterSettings,
    since_checkpoint: u64,
    last_checkpoint_at: Instant,
    failed: Option<String>,
    /// The newest checkpoint appended but not yet committed.
    pending_hint: Option<Hint>,
    line: Vec<u8>,
    payload: Vec<u8>,
    /// What `/readyz` and the chain gauges read.
    status: Arc<WriterStatus>,
}

impl Writer {
    pub fn new(journal: JournalWriter, chain: Chain, settings: WriterSettings) -> Writer {
        // The hint is rewritten at every checkpoint: its time is the newest checkpoint's.
        let last_checkpoint = std::fs::metadata(&settings.hint_path)
            .and_then(|m| m.modified())
            .ok();
        let status = Arc::new(WriterStatus::new(chain.next_seq(), last_checkpoint));
        Writer {
            journal,
            chain,
            settings,
            since_checkpoint: 0,
            last_checkpoint_at: Instant::now(),
            failed: None,
            pending_hint: None,
            line: Vec::with_capacity(4096),
            payload: Vec::with_capacity(4096),
            status,
        }
    }

    /// What this writer publishes while it runs, for health checks and metrics.
    pub fn status(&self) -> Arc<WriterStatus> {
        self.status.clone()
    }

    /// Runs until every sender is gone, then signs a last checkpoint and returns the
    /// journal, so that a reload can hand it to the next writer.
    pub fn run(mut self, requests: mpsc::Receiver<WriteRequest>) -> JournalWriter {
        let _running = self.status.running();
        loop {
            let wait = self.until_checkpoint();
            let first = match requests.recv_timeout(wait) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.checkpoint_and_commit();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            let mut records = group[0].records.len();
            while records < self.settings.max_group_records {
                match requests.try_recv() {
                    Ok(r) => {
                        records += r.records.len();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            let outcome = self.write_group(&mut group);
            for request in group {
                let _ = request.done.send(outcome.clone());
            }
        }
        self.checkpoint_and_commit();
        self.journal
    }

    fn until_checkpoint(&self) -> Duration {
        match &self.settings.checkpoints {
            Some(c) if self.since_checkpoint > 0 => {
                c.every.saturating_sub(self.last_checkpoint_at.elapsed())
            }
            Some(c) => c.every,
            None => Duration::from_secs(3600),
        }
    }

    fn write_group(&mut self, group: &mut [WriteRequest]) -> Result<(), SubmitError> {
        if let Some(reason) = &self.failed {
            return Err(SubmitError::Storage(reason.clone()));
        }
        let started = Instant::now();
        let result = (|| -> Result<(), String> {
            let every = self.settings.checkpoints.as_ref().map(|c| c.every_records);
            for request in group.iter_mut() {
                for record in std::mem::take(&mut request.records) {
                    let (seq, _) = self.chain.seal_into(&record.into_json(), &mut self.line);
                    encode_entry(seq, &self.line, &mut self.payload);
                    self.journal
                        .append(&self.payload)
                        .map_err(|e| e.to_string())?;
                    self.since_checkpoint += 1;
                    if every.is_some_and(|n| self.since_checkpoint >= n) {
                        self.append_checkpoint()?;
                    }
                }
            }
            self.journal.commit().map_err(|e| e.to_string())?;
            self.status.committed(self.chain.next_seq());
            self.write_hint();
            Ok(())
        })();
        metrics::histogram!("vellum_journal_commit_seconds", "stream" => self.settings.stream.clone())
            .record(started.elapsed().as_secs_f64());
        result.map_err(|reason| {
            tracing::error!(stream = %self.settings.stream, error = %reason,
                "the journal could not make records durable; refusing writes until a restart recovers the chain from disk");
            self.status.failed();
            self.failed = Some(reason.clone());
            SubmitError::Storage(reason)
        })
    }

    /// Appends a checkpoint record for everything sealed so far (not yet committed).
    fn append_checkpoint(&mut self) -> Result<(), String> {
        let Some(c) = &self.settings.checkpoints else {
            return Ok(());
        };
        let note = self
            .chain
            .checkpoint(&c.origin_prefix, &c.signer)
            .map_err(|e| e.to_string())?;
        let head = self.chain.head();
        let frame = CheckpointFrame {
            stream: self.settings.stream.clone(),
            size: head.next_seq,
            note,
            head: hex::encode(head.prev),
            frontier: head.frontier.to_hex(),
        };
        let index = self
            .journal
            .append(&encode_checkpoint(&frame))
            .map_err(|e| e.to_string())?;
        self.since_checkpoint = 0;
        self.last_checkpoint_at = Instant::now();
        self.pending_hint = Some(Hint {
            stream: self.settings.stream.clone(),
            index,
            size: frame.size,
        });
        Ok(())
    }

    fn checkpoint_and_commit(&mut self) {
        if self.failed.is_some()
            || self.since_checkpoint == 0
            || self.settings.checkpoints.is_none()
        {
            return;
        }
        let result = self
            .append_checkpoint()
            .and_then(|()| self.journal.commit().map(|_| ()).map_err(|e| e.to_string()));
        match result {
            Ok(()) => self.write_hint(),
            Err(reason) => {
                tracing::error!(stream = %self.settings.stream, error = %reason, "cannot write a checkpoint");
                self.status.failed();
                self.failed = Some(reason);
            }
        }
    }

    /// Records where the newest committed checkpoint is. A lost or stale hint costs only
    /// a longer replay at start, so a failure here is logged, not fatal.
    fn write_hint(&mut self) {
        let Some(hint) = self.pending_hint.take() else {
            return;
        };
        self.status.checkpointed(std::time::SystemTime::now());
        let path = &self.settings.hint_path;
        let result = serde_json::to_vec(&hint)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::durable::replace(path, &bytes));
        if let Err(e) = result {
            tracing::warn!(stream = %self.settings.stream, error = %e, "cannot record the newest checkpoint's place");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{self, JournalOptions};

    #[test]
    fn the_writer_publishes_its_head_its_checkpoints_and_when_it_stops() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal_writer, journal, _) =
            journal::open(&tmp.path().join("journal"), JournalOptions::default()).unwrap();
        let (skey, _) = crate::evidence::note::generate("test.vellum/s").unwrap();
        let settings = WriterSettings {
            stream: "s".into(),
            keys: None,
            checkpoints: Some(Checkpointing {
                origin_prefix: "test.vellum".into(),
                signer: NoteSigner::parse(&skey).unwrap(),
                every_records: 1000,
                every: Duration::from_secs(3600),
            }),
            hint_path: tmp.path().join("chain.json"),
            max_group_records: 100,
        };
        let (chain, _) = recover(&journal, &settings, &[]).unwrap();
        let writer = Writer::new(journal_writer, chain, settings);
        let status = writer.status();
        assert_eq!(status.head_seq(), None);
        assert!(status.unwritable().is_none());
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::spawn(move || writer.run(requests));
        let (done, answer) = oneshot::channel();
        queue
            .send(WriteRequest {
                records: (0..3).map(|_| Record::new("t")).collect(),
                done,
            })
            .unwrap();
        answer.blocking_recv().unwrap().unwrap();
        assert_eq!(status.head_seq(), Some(2));
        assert_eq!(status.checkpoint_age(std::time::SystemTime::now()), None);
        // Closing the queue stops the writer, which signs a last checkpoint first.
        drop(queue);
        thread.join().unwrap();
        assert!(
            status
                .checkpoint_age(std::time::SystemTime::now())
                .is_some_and(|age| age < Duration::from_secs(60))
        );
        assert!(status.unwritable().unwrap().contains("not running"));
        assert_eq!(journal.committed_end(), 4, "three entries and a checkpoint");

        // At the next start, the newest checkpoint's time comes from the hint.
        drop(journal);
        let (journal_writer, journal, _) =
            journal::open(&tmp.path().join("journal"), JournalOptions::default()).unwrap();
        let settings = WriterSettings {
            stream: "s".into(),
            keys: None,
            checkpoints: None,
            hint_path: tmp.path().join("chain.json"),
            max_group_records: 100,
        };
        let (chain, _) = recover(&journal, &settings, &[]).unwrap();
        let status = Writer::new(journal_writer, chain, settings).status();
        assert_eq!(status.head_seq(), Some(2));
        assert!(
            status
                .checkpoint_age(std::time::SystemTime::now())
                .is_some()
        );
    }
}
