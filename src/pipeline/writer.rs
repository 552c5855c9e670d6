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
//! A record too large for the journal refuses its own request alone: the chain and the
//! journal go back to where they were before that request. If a commit fails (a full
//! disk, an I/O error), the state of the file is unknown, so the writer refuses writes
//! and, every second, reopens the journal from disk and rebuilds the head from it
//! exactly as a restart would; once that works it takes writes again. Nothing sealed
//! and not committed ever outlives a failure: not in this writer, and not in the
//! journal handed to the next writer at a reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::frame::{CheckpointFrame, Frame, encode_checkpoint, encode_entry};
use crate::component::SubmitError;
use crate::event::Record;
use crate::event::Severity;
use crate::evidence::hmac::KeyRing;
use crate::evidence::loss::{self, DeclaredLoss, LossRecord, lost_leaf};
use crate::evidence::merkle::{Frontier, parse_hex_hash};
use crate::evidence::note::NoteSigner;
use crate::evidence::seal::{Chain, Head};
use crate::journal::{AppendMark, Journal, JournalError, JournalWriter};
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
) -> Result<(Chain, Vec<JournalLoss>), RecoveryError> {
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
    let (head, start) = match hint {
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
            return Ok((chain, Vec::new()));
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

    // Replay: every entry after `start` must continue the chain exactly, except across
    // journal records that the journal lost to damage (quarantined at open).
    let mut replay = Replay {
        head,
        next_index: start,
        gap: None,
        losses: Vec::new(),
        declared: Vec::new(),
    };
    let reader = journal.reader(start).map_err(journal_err)?;
    for item in reader {
        let (index, payload) = match item {
            Ok(read) => read,
            // Reading goes on after them; the jump in index shows what was lost.
            Err(JournalError::Gap { .. } | JournalError::Damaged { .. }) => continue,
            Err(e) => {
                return Err(mismatch(format!(
                    "a journal record after the newest checkpoint cannot be read ({e})"
                )));
            }
        };
        replay.record(index, &payload).map_err(mismatch)?;
    }
    replay.end(journal.committed_end());
    let Replay {
        head,
        losses,
        declared,
        ..
    } = replay;
    let losses = losses
        .into_iter()
        .filter(|l| !declared.iter().any(|d| d.first_seq == l.seqs.first_seq))
        .collect();
    let chain =
        Chain::resume(&stream, head, settings.keys.clone()).map_err(|e| mismatch(e.to_string()))?;
    Ok((chain, losses))
}

/// Entries the journal lost after its newest checkpoint, found at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLoss {
    pub seqs: DeclaredLoss,
    /// The journal records lost.
    pub first_index: u64,
    pub last_index: u64,
}

/// The chain rebuilt record by record after the newest checkpoint.
struct Replay {
    head: Head,
    /// The journal index the next record should have.
    next_index: u64,
    /// Journal records missing since the last entry: (first index, last index).
    gap: Option<(u64, u64)>,
    losses: Vec<JournalLoss>,
    /// What journal-loss records already in the journal declare.
    declared: Vec<DeclaredLoss>,
}

impl Replay {
    fn record(&mut self, index: u64, payload: &[u8]) -> Result<(), String> {
        if index > self.next_index {
            let first = self.gap.map_or(self.next_index, |(first, _)| first);
            self.gap = Some((first, index - 1));
        }
        self.next_index = index + 1;
        match Frame::decode(payload) {
            Ok(Frame::Entry { seq, line }) => self.entry(index, seq, line),
            Ok(Frame::Checkpoint(c)) => {
                if self.gap.is_some() && c.size >= self.head.next_seq {
                    // Its frontier holds the real leaves of what was lost before it.
                    let lost = c.size - self.head.next_seq;
                    self.close_gap(lost)?;
                    self.head = head_of(&c)?;
                } else if c.size != self.head.next_seq {
                    return Err(format!(
                        "a checkpoint of size {} follows seq {}",
                        c.size,
                        self.head.next_seq.wrapping_sub(1)
                    ));
                }
                Ok(())
            }
            Err(e) => Err(format!("journal record {index}: {e}")),
        }
    }

    fn entry(&mut self, index: u64, seq: u64, line: &[u8]) -> Result<(), String> {
        let entry: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| format!("journal record {index} is not a JSON entry ({e})"))?;
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(serde_json::Value::as_str)
                .and_then(parse_hex_hash)
        };
        let hash = field("hash").ok_or_else(|| format!("seq {seq} has no hash"))?;
        let lost = match self.gap {
            Some(_) if seq >= self.head.next_seq => seq - self.head.next_seq,
            _ => 0,
        };
        if lost > 0 {
            // The entries before it are lost, and with them what its `prev` links to.
            self.close_gap(lost)?;
        } else {
            // Whatever was lost before it held no entry (a checkpoint record, say).
            self.gap = None;
            if seq != self.head.next_seq {
                return Err(format!(
                    "expected seq {} at journal record {index}, found {seq}",
                    self.head.next_seq
                ));
            }
            if field("prev") != Some(self.head.prev) {
                return Err(format!(
                    "seq {seq} does not link to seq {}'s hash",
                    seq.wrapping_sub(1)
                ));
            }
        }
        if let Some(Ok(d)) = entry
            .as_object()
            .and_then(crate::evidence::loss::DeclaredLoss::from_entry)
        {
            self.declared.push(d);
        }
        self.head.frontier.push(hash);
        self.head.prev = hash;
        self.head.next_seq += 1;
        Ok(())
    }

    /// Journal records were lost, and with them `lost` entries from the next `seq`:
    /// their leaves are unknown, so the tree takes [`lost_leaf`] for each (unless a
    /// checkpoint after them gives the real tree), and the seqs are never used again.
    fn close_gap(&mut self, lost: u64) -> Result<(), String> {
        let Some((first_index, last_index)) = self.gap.take() else {
            return Ok(());
        };
        if lost > last_index - first_index + 1 {
            return Err(format!(
                "journal records {first_index}..={last_index} are lost, but the chain jumps {lost} entries there"
            ));
        }
        if lost == 0 {
            return Ok(());
        }
        let first_seq = self.head.next_seq;
        for _ in 0..lost {
            self.head.frontier.push(lost_leaf());
        }
        self.head.prev = lost_leaf();
        self.head.next_seq += lost;
        self.losses.push(JournalLoss {
            seqs: DeclaredLoss {
                first_seq,
                last_seq: first_seq + lost - 1,
            },
            first_index,
            last_index,
        });
        Ok(())
    }

    /// Records lost at the very end of the journal may each have been an entry: none of
    /// their seqs is used again.
    fn end(&mut self, committed_end: u64) {
        if committed_end > self.next_index {
            let first = self.gap.map_or(self.next_index, |(first, _)| first);
            self.gap = Some((first, committed_end - 1));
        }
        if let Some((first, last)) = self.gap {
            // Cannot fail: the count is the gap's own size.
            let _ = self.close_gap(last - first + 1);
        }
    }
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

/// How long a writer whose journal failed waits before it reopens the journal.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Why the writer refuses writes, and since when.
struct Failed {
    /// What clients and `/readyz` are told: no paths, only what went wrong.
    reason: String,
    since: Instant,
    next_try: Instant,
}

/// What a request's sealing was stopped by.
enum SealError {
    /// One of its records is too large for the journal: the request alone is refused.
    TooLarge(SubmitError),
    /// The journal failed: nothing of the group can be trusted.
    Journal(WriteFailure),
}

/// Why a group could not be made durable.
#[derive(Debug, thiserror::Error)]
enum WriteFailure {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot sign a checkpoint: {0}")]
    Signing(String),
}

/// What a client and `/readyz` are told of a failure: what went wrong, without paths.
fn client_reason(failure: &WriteFailure) -> String {
    match failure {
        WriteFailure::Journal(JournalError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::StorageFull =>
        {
            "no space left on the journal's disk".into()
        }
        WriteFailure::Journal(JournalError::Io { action, source, .. }) => {
            format!("the journal could not {action}: {}", source.kind())
        }
        WriteFailure::Journal(JournalError::Poisoned) => {
            "an earlier fsync of the journal failed".into()
        }
        WriteFailure::Journal(e) => e.to_string(),
        WriteFailure::Signing(_) => "a checkpoint could not be signed".into(),
    }
}

/// The writer's state before a request, to go back to if the request is refused.
struct RequestMark {
    head: Head,
    journal: AppendMark,
    since_checkpoint: u64,
    last_checkpoint_at: Instant,
    pending_hint: Option<Hint>,
}

/// The writer thread's state.
pub struct Writer {
    journal: JournalWriter,
    chain: Chain,
    settings: WriterSettings,
    since_checkpoint: u64,
    last_checkpoint_at: Instant,
    failed: Option<Failed>,
    /// The newest checkpoint appended but not yet committed.
    pending_hint: Option<Hint>,
    line: Vec<u8>,
    payload: Vec<u8>,
    /// What `/readyz` and the chain gauges read.
    status: Arc<WriterStatus>,
    /// Losses found at recovery and not yet declared in the chain.
    losses: Vec<JournalLoss>,
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
            losses: Vec::new(),
        }
    }

    /// Has the writer declare `losses` (found by [`recover`]) in the chain, each by a
    /// journal-loss record sealed before anything else.
    pub fn with_losses(mut self, losses: Vec<JournalLoss>) -> Writer {
        self.losses = losses;
        self
    }

    /// What this writer publishes while it runs, for health checks and metrics.
    pub fn status(&self) -> Arc<WriterStatus> {
        self.status.clone()
    }

    /// Runs until every sender is gone, then signs a last checkpoint and returns the
    /// journal, so that a reload can hand it to the next writer. The journal returned
    /// holds nothing uncommitted: the next writer rebuilds its chain from what is
    /// committed, and would fork it if anything sealed here were still pending.
    pub fn run(mut self, requests: mpsc::Receiver<WriteRequest>) -> JournalWriter {
        let _running = self.status.running();
        self.declare_losses();
        loop {
            let wait = self.until_next_task();
            let first = match requests.recv_timeout(wait) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.reopen_if_due();
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
            let outcomes = self.write_group(&mut group);
            for (request, outcome) in group.into_iter().zip(outcomes) {
                let _ = request.done.send(outcome);
            }
        }
        self.reopen_if_due();
        self.checkpoint_and_commit();
        if self.failed.is_some() {
            // Whatever the failure left appended is dropped; the next writer reopens.
            self.journal.discard_pending();
        }
        self.journal
    }

    fn until_next_task(&self) -> Duration {
        if let Some(failed) = &self.failed {
            return failed.next_try.saturating_duration_since(Instant::now());
        }
        match &self.settings.checkpoints {
            Some(c) if self.since_checkpoint > 0 => {
                c.every.saturating_sub(self.last_checkpoint_at.elapsed())
            }
            Some(c) => c.every,
            None => Duration::from_secs(3600),
        }
    }

    /// Seals and commits a group of requests; returns each request's answer in order.
    /// A request with a record too large for the journal is refused alone: the chain
    /// and the journal go back to where they were before it. A journal failure fails the
    /// whole group and the writer, until [`reopen_if_due`](Self::reopen_if_due) has
    /// rebuilt both from the disk.
    fn write_group(&mut self, group: &mut [WriteRequest]) -> Vec<Result<(), SubmitError>> {
        self.reopen_if_due();
        if let Some(failed) = &self.failed {
            return vec![Err(SubmitError::Storage(failed.reason.clone())); group.len()];
        }
        let started = Instant::now();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut failure = None;
        for request in group.iter_mut() {
            let records = std::mem::take(&mut request.records);
            let mark = self.mark();
            match self.seal_request(records) {
                Ok(()) => outcomes.push(Ok(())),
                Err(SealError::TooLarge(refusal)) => {
                    self.rewind(mark);
                    outcomes.push(Err(refusal));
                }
                Err(SealError::Journal(e)) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = match failure {
            Some(e) => Some(e),
            None => self.journal.commit().err().map(WriteFailure::from),
        };
        metrics::histogram!("vellum_journal_commit_seconds", "stream" => self.settings.stream.clone())
            .record(started.elapsed().as_secs_f64());
        if let Some(error) = failure {
            let reason = self.fail(&error);
            // A request refused for its own sake keeps that answer; the rest may retry.
            outcomes.resize_with(group.len(), || Ok(()));
            return outcomes
                .into_iter()
                .map(|o| match o {
                    Err(refusal @ SubmitError::RecordTooLarge { .. }) => Err(refusal),
                    _ => Err(SubmitError::Storage(reason.clone())),
                })
                .collect();
        }
        self.status.committed(self.chain.next_seq());
        self.write_hint();
        outcomes
    }

    fn seal_request(&mut self, records: Vec<Record>) -> Result<(), SealError> {
        let every = self.settings.checkpoints.as_ref().map(|c| c.every_records);
        for (at, record) in records.into_iter().enumerate() {
            let (seq, _) = self.chain.seal_into(&record.into_json(), &mut self.line);
            encode_entry(seq, &self.line, &mut self.payload);
            match self.journal.append(&self.payload) {
                Ok(_) => {}
                Err(JournalError::RecordTooLarge { len, max }) => {
                    metrics::counter!("vellum_journal_refused_records_total",
                        "stream" => self.settings.stream.clone(), "reason" => "oversized")
                    .increment(1);
                    return Err(SealError::TooLarge(SubmitError::RecordTooLarge {
                        record: at,
                        size: len,
                        max: max as usize,
                    }));
                }
                Err(e) => return Err(SealError::Journal(e.into())),
            }
            self.since_checkpoint += 1;
            if every.is_some_and(|n| self.since_checkpoint >= n) {
                self.append_checkpoint().map_err(SealError::Journal)?;
            }
        }
        Ok(())
    }

    fn mark(&self) -> RequestMark {
        RequestMark {
            head: self.chain.head(),
            journal: self.journal.mark(),
            since_checkpoint: self.since_checkpoint,
            last_checkpoint_at: self.last_checkpoint_at,
            pending_hint: self.pending_hint.clone(),
        }
    }

    fn rewind(&mut self, mark: RequestMark) {
        self.chain.rewind(mark.head);
        self.journal.rollback(mark.journal);
        self.since_checkpoint = mark.since_checkpoint;
        self.last_checkpoint_at = mark.last_checkpoint_at;
        self.pending_hint = mark.pending_hint;
    }

    /// The journal failed: from here on the chain in memory may be ahead of what is on
    /// disk, so writes are refused until the journal is reopened and the chain rebuilt
    /// from it. Logged once per outage. Returns what clients are told.
    fn fail(&mut self, error: &WriteFailure) -> String {
        let reason = client_reason(error);
        self.journal.discard_pending();
        if self.failed.is_none() {
            tracing::error!(stream = %self.settings.stream, %error,
                "the journal could not make records durable; refusing writes until it reopens (tried every {REOPEN_EVERY:?})");
            metrics::counter!("vellum_journal_failures_total", "stream" => self.settings.stream.clone())
                .increment(1);
        }
        let now = Instant::now();
        let since = self.failed.as_ref().map_or(now, |f| f.since);
        self.status.failed(&reason);
        self.failed = Some(Failed {
            reason: reason.clone(),
            since,
            next_try: now + REOPEN_EVERY,
        });
        reason
    }

    /// A failed writer reopens the journal from disk once its wait is over and rebuilds
    /// the chain from what the journal holds, exactly as a restart would; then it takes
    /// writes again. If the disk is still full the next commit fails and it waits again.
    fn reopen_if_due(&mut self) {
        let Some(failed) = &self.failed else { return };
        if Instant::now() < failed.next_try {
            return;
        }
        let since = failed.since;
        let published = self.journal.committed_end();
        let reopened = self.journal.reopen().map_err(|e| e.to_string()).and_then(|report| {
            if !report.is_clean() {
                tracing::warn!(stream = %self.settings.stream, report = %report, "journal recovered");
            }
            if self.journal.committed_end() < published {
                tracing::error!(stream = %self.settings.stream, published, on_disk = self.journal.committed_end(),
                    "the journal on disk ends before records that were committed: the disk lost them");
            }
            let journal = self.journal.journal();
            recover(&journal, &self.settings, &[]).map_err(|e| e.to_string())
        });
        match reopened {
            Ok((chain, losses)) => {
                self.chain = chain;
                self.losses = losses;
                self.since_checkpoint = 0;
                self.pending_hint = None;
                self.failed = None;
                self.status.committed(self.chain.next_seq());
                self.status.reopened();
                tracing::warn!(stream = %self.settings.stream, next_seq = self.chain.next_seq(),
                    outage = ?since.elapsed(), "the journal reopened; taking writes again");
                self.declare_losses();
            }
            Err(detail) => {
                tracing::debug!(stream = %self.settings.stream, %detail, "the journal cannot reopen yet");
                if let Some(failed) = &mut self.failed {
                    failed.next_try = Instant::now() + REOPEN_EVERY;
                }
            }
        }
    }

    /// Seals and commits a journal-loss record for each loss found at recovery. If that
    /// fails the writer fails, and the next reopen finds the losses again.
    fn declare_losses(&mut self) {
        let losses = std::mem::take(&mut self.losses);
        if losses.is_empty() || self.failed.is_some() {
            return;
        }
        for loss in &losses {
            let record = self.loss_record(loss);
            tracing::error!(stream = %self.settings.stream,
                first_seq = loss.seqs.first_seq, last_seq = loss.seqs.last_seq,
                journal_records = %format!("{}..={}", loss.first_index, loss.last_index),
                at_seq = self.chain.next_seq(),
                "journal damage after the newest checkpoint lost entries; declaring the loss in the chain");
            let mark = self.mark();
            match self.seal_request(vec![record]) {
                Ok(()) => {}
                Err(SealError::Journal(e)) => {
                    self.fail(&e);
                    return;
                }
                Err(SealError::TooLarge(refusal)) => {
                    // As for any refused request: the chain must not keep what was refused.
                    self.rewind(mark);
                    tracing::error!(stream = %self.settings.stream, %refusal, "the journal-loss record does not fit in the journal");
                }
            }
        }
        match self.journal.commit() {
            Ok(_) => {
                self.status.committed(self.chain.next_seq());
                self.write_hint();
            }
            Err(e) => {
                self.fail(&WriteFailure::from(e));
            }
        }
    }

    fn loss_record(&self, loss: &JournalLoss) -> Record {
        let head = self.chain.head();
        let declared = LossRecord {
            declared: loss.seqs.clone(),
            hash: head.prev,
            frontier: head.frontier,
        };
        let mut record = Record::new(loss::SOURCE);
        record.event_type = Some(loss::EVENT_TYPE.into());
        record.severity = Some(Severity::Critical);
        record.severity_number = Severity::Critical.otlp_number();
        record.body = format!(
            "journal records {}..={} were damaged and quarantined after the newest checkpoint; entries seq {}..={} are lost unless an exporter delivered them before",
            loss.first_index, loss.last_index, loss.seqs.first_seq, loss.seqs.last_seq
        )
        .into();
        record.attributes = declared.attributes();
        record
            .attributes
            .insert("journal_first_index".into(), loss.first_index.into());
        record
            .attributes
            .insert("journal_last_index".into(), loss.last_index.into());
        record
    }

    /// Appends a checkpoint record for everything sealed so far (not yet committed).
    fn append_checkpoint(&mut self) -> Result<(), WriteFailure> {
        let Some(c) = &self.settings.checkpoints else {
            return Ok(());
        };
        let note = self
            .chain
            .checkpoint(&c.origin_prefix, &c.signer)
            .map_err(|e| WriteFailure::Signing(e.to_string()))?;
        let head = self.chain.head();
        let frame = CheckpointFrame {
            stream: self.settings.stream.clone(),
            size: head.next_seq,
            note,
            head: hex::encode(head.prev),
            frontier: head.frontier.to_hex(),
        };
        let index = self.journal.append(&encode_checkpoint(&frame))?;
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
        let result = self.append_checkpoint().and_then(|()| {
            self.journal
                .commit()
                .map(|_| ())
                .map_err(WriteFailure::from)
        });
        match result {
            Ok(()) => self.write_hint(),
            Err(error) => {
                self.fail(&error);
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

    mod interleavings {
        //! Random interleavings of requests (some with a record too large for the
        //! journal), reloads, crashes with torn tails and restarts: no two entries ever
        //! share a `seq`, every `prev` links, and every acknowledged record is in the
        //! journal exactly once while no refused one is.

        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Step {
            /// Requests queued together, so the writer takes them as one group; each is
            /// a number of records and, maybe, the place of an oversized one.
            Group(Vec<(usize, Option<usize>)>),
            Reload,
            /// The process dies after its last commit, leaving `torn` bytes of a
            /// half-written frame at the end of the last segment.
            Crash {
                torn: usize,
            },
            Restart,
        }

        fn step() -> impl Strategy<Value = Step> {
            let request = (1usize..5, prop::option::weighted(0.3, 0usize..5));
            prop_oneof![
                6 => prop::collection::vec(request, 1..4).prop_map(Step::Group),
                1 => Just(Step::Reload),
                1 => (0usize..40).prop_map(|torn| Step::Crash { torn }),
                1 => Just(Step::Restart),
            ]
        }

        const MAX_RECORD: u32 = 2048;

        fn settings(dir: &Path, signer: &str) -> WriterSettings {
            WriterSettings {
                stream: "s".into(),
                keys: None,
                checkpoints: Some(Checkpointing {
                    origin_prefix: "test.vellum".into(),
                    signer: NoteSigner::parse(signer).unwrap(),
                    every_records: 3,
                    every: Duration::from_secs(3600),
                }),
                hint_path: dir.join("chain.json"),
                max_group_records: 1000,
            }
        }

        struct Running {
            queue: mpsc::Sender<WriteRequest>,
            thread: std::thread::JoinHandle<JournalWriter>,
            journal: Journal,
        }

        fn start(dir: &Path, signer: &str, handed: Option<(JournalWriter, Journal)>) -> Running {
            let (journal_writer, journal) = handed.unwrap_or_else(|| {
                let options = JournalOptions {
                    segment_bytes: 4096,
                    max_record_bytes: MAX_RECORD,
                };
                let (w, j, _) = journal::open(&dir.join("journal"), options).unwrap();
                (w, j)
            });
            let settings = settings(dir, signer);
            let (chain, _) = recover(&journal, &settings, &[]).unwrap();
            let writer = Writer::new(journal_writer, chain, settings);
            let (queue, requests) = mpsc::channel();
            let thread = std::thread::spawn(move || writer.run(requests));
            Running {
                queue,
                thread,
                journal,
            }
        }

        fn stop(running: Running) -> (JournalWriter, Journal) {
            drop(running.queue);
            (running.thread.join().unwrap(), running.journal)
        }

        fn record(id: u64, oversized: bool) -> Record {
            let mut r = Record::new("t");
            r.attributes.insert("id".into(), id.into());
            if oversized {
                r.body = "x".repeat(MAX_RECORD as usize).into();
            }
            r
        }

        /// Sends the requests at once and returns each one's answer.
        fn send_group(
            running: &Running,
            group: &[(usize, Option<usize>)],
            next_id: &mut u64,
            sent: &mut BTreeMap<u64, bool>,
        ) {
            let mut answers = Vec::new();
            for &(count, oversized) in group {
                let ids: Vec<u64> = (0..count).map(|i| *next_id + i as u64).collect();
                *next_id += count as u64;
                let records = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| record(*id, oversized == Some(i)))
                    .collect();
                let (done, answer) = oneshot::channel();
                running.queue.send(WriteRequest { records, done }).unwrap();
                answers.push((ids, answer));
            }
            for (ids, answer) in answers {
                let acked = answer.blocking_recv().unwrap().is_ok();
                for id in ids {
                    sent.insert(id, acked);
                }
            }
        }

        /// Every entry in the journal, in journal order: (seq, prev, hash, id).
        fn entries(journal: &Journal) -> Vec<(u64, String, String, u64)> {
            let mut out = Vec::new();
            for item in journal.reader(journal.first_index()).unwrap() {
                let (_, payload) = item.unwrap();
                if let Frame::Entry { seq, line } = Frame::decode(&payload).unwrap() {
                    let e: serde_json::Value = serde_json::from_slice(line).unwrap();
                    out.push((
                        seq,
                        e["prev"].as_str().unwrap().to_string(),
                        e["hash"].as_str().unwrap().to_string(),
                        e["attributes"]["id"].as_u64().unwrap(),
                    ));
                }
            }
            out
        }

        fn torn_tail(journal_dir: &Path, bytes: usize) {
            let last = std::fs::read_dir(journal_dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                .max()
                .unwrap();
            let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
            std::io::Write::write_all(&mut f, &vec![0xA5; bytes]).unwrap();
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            #[test]
            fn no_interleaving_forks_the_chain_or_loses_an_acknowledged_record(
                steps in prop::collection::vec(step(), 1..24)
            ) {
                let tmp = tempfile::tempdir().unwrap();
                let (signer, _) = crate::evidence::note::generate("test.vellum/s").unwrap();
                let mut running = start(tmp.path(), &signer, None);
                let mut sent = BTreeMap::new();
                let mut next_id = 0;
                for step in steps {
                    match step {
                        Step::Group(group) => send_group(&running, &group, &mut next_id, &mut sent),
                        Step::Reload => {
                            let handed = stop(running);
                            running = start(tmp.path(), &signer, Some(handed));
                        }
                        Step::Crash { torn } => {
                            drop(stop(running));
                            torn_tail(&tmp.path().join("journal"), torn);
                            running = start(tmp.path(), &signer, None);
                        }
                        Step::Restart => {
                            drop(stop(running));
                            running = start(tmp.path(), &signer, None);
                        }
                    }
                }
                let (_, journal) = stop(running);
                let found = entries(&journal);
                let mut prev = "0".repeat(64);
                for (i, (seq, entry_prev, hash, _)) in found.iter().enumerate() {
                    prop_assert_eq!(*seq, i as u64, "seq runs from 0 without a gap or a repeat");
                    prop_assert_eq!(entry_prev, &prev, "seq {} links to the entry before it", seq);
                    prev = hash.clone();
                }
                let mut stored: BTreeMap<u64, usize> = BTreeMap::new();
                for (_, _, _, id) in &found {
                    *stored.entry(*id).or_default() += 1;
                }
                for (id, acked) in sent {
                    let n = stored.get(&id).copied().unwrap_or(0);
                    if acked {
                        prop_assert_eq!(n, 1, "acknowledged record {} stored {} times", id, n);
                    } else {
                        prop_assert_eq!(n, 0, "refused record {} was stored", id);
                    }
                }
            }
        }
    }

    #[test]
    fn replay_declares_lost_entries_but_not_lost_records_that_held_none() {
        let mut chain = Chain::new("s", None).unwrap();
        let payloads: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let fields = serde_json::json!({ "body": i })
                    .as_object()
                    .cloned()
                    .unwrap();
                let sealed = chain.seal(fields);
                let mut payload = Vec::new();
                encode_entry(sealed.seq, &sealed.line, &mut payload);
                payload
            })
            .collect();
        let fresh = || Replay {
            head: Head {
                next_seq: 0,
                prev: [0; 32],
                frontier: Frontier::new(),
            },
            next_index: 0,
            gap: None,
            losses: Vec::new(),
            declared: Vec::new(),
        };
        // Journal record 1 (a checkpoint, say) is lost: every entry still links.
        let mut replay = fresh();
        replay.record(0, &payloads[0]).unwrap();
        replay.record(2, &payloads[1]).unwrap();
        replay.record(3, &payloads[2]).unwrap();
        replay.end(4);
        assert_eq!(replay.losses, vec![]);
        assert_eq!(replay.head.next_seq, 3);

        // Records 1 and 2 held seq 1 and 2: declared, and seq 3 continues the chain.
        let mut replay = fresh();
        replay.record(0, &payloads[0]).unwrap();
        replay.record(3, &payloads[3]).unwrap();
        assert_eq!(
            replay.losses,
            vec![JournalLoss {
                seqs: DeclaredLoss {
                    first_seq: 1,
                    last_seq: 2
                },
                first_index: 1,
                last_index: 2,
            }]
        );
        assert_eq!(replay.head.prev, chain.prev().to_owned());

        // Lost at the very end: every lost record may have been an entry.
        let mut replay = fresh();
        replay.record(0, &payloads[0]).unwrap();
        replay.end(3);
        assert_eq!(
            replay.losses[0].seqs,
            DeclaredLoss {
                first_seq: 1,
                last_seq: 2
            }
        );
        assert_eq!(replay.head.next_seq, 3, "no lost seq is used again");

        // A jump in seq larger than the records lost is not a loss but a mismatch.
        let mut replay = fresh();
        replay.record(0, &payloads[0]).unwrap();
        assert!(replay.record(2, &payloads[3]).is_err());
    }
}
