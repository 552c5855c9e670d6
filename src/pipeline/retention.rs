//! Retention: one task per pipeline that removes what is past its window, and says so in
//! the chain.
//!
//! ```yaml
//! exporters:
//!   file/evidence: { directory: /var/lib/vellum/evidence, retention_days: 365, legal_hold: false }
//! service:
//!   storage:
//!     directory: /var/lib/vellum/state
//!     retention_days: 30                # the journal; 0 keeps it forever
//!     retention_check_interval: 10m     # how often retention looks
//! ```
//!
//! - **Journal**: whole segments are purged when they were last written more than
//!   `retention_days` ago (see [`written_at`]: never a time a client sent), every
//!   exporter of the pipeline has delivered them (the slowest exporter's position), and
//!   they lie before the newest checkpoint record, from which the chain is recovered at
//!   start. Never the segment being written. A `LEGAL_HOLD` file in the storage
//!   directory stops it.
//! - **Evidence files** of the `file` exporters with `retention_days`: see
//!   [`crate::exporters::file::plan_prune`] (sealed, old, verified, covered by a
//!   remaining checkpoint, not under legal hold).
//! - **S3** bundles are never deleted by Vellum: their retention is the Object Lock
//!   retain-until date and the bucket's lifecycle rules.
//!
//! Every purge is first written as a record of the stream, through the writer, so it is
//! sealed, chained, MACed, checkpointed and exported like any other record (see
//! [`crate::evidence::purge`]); only once it is durable is anything removed. Evidence
//! files go only once their own exporter has delivered the purge record, so that the
//! folder always holds the record that declares what it no longer holds. A crash between
//! the record and the removal leaves a record for a removal that did not happen; the
//! next pass removes the files and writes a record of its own.
//!
//! The clock is a [`Clock`], so that tests move time; the daemon uses the system clock.
//!
//! **Age** is the time Vellum last wrote the segment or file (its modification time, set
//! by the daemon's own write: the commit of its newest record, the sealing of an evidence
//! file), never a time inside the records: `time` and `observed_time` may come from
//! clients (OTLP keeps the sender's observed time), and one record dated in 2500 would
//! otherwise hold everything behind it forever. A copy that does not keep modification
//! times makes files young again: retention then keeps them longer, never shorter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::frame::Frame;
use super::intake::PipelineIntake;
use super::writer::newest_checkpoint_index;
use crate::event::{Record, Severity, format_time};
use crate::evidence::purge::{EVENT_TYPE, JOURNAL_STORE, SOURCE};
use crate::evidence::seal::Head;
use crate::exporters::file::{self, FileConfig, PrunePlan};
use crate::journal::Journal;

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// The file whose presence in the storage directory stops journal purges.
pub const LEGAL_HOLD_FILE: &str = "LEGAL_HOLD";

/// How long a pass waits for a file exporter to deliver a purge record before it leaves
/// the removal to the next pass.
const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// Where retention reads the time.
pub trait Clock: Send + Sync {
    /// Now, in Unix nanoseconds.
    fn now_unix_nano(&self) -> u64;
}

/// The system's real-time clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nano(&self) -> u64 {
        crate::event::now_unix_nano()
    }
}

/// When Vellum last wrote `path`, in Unix nanoseconds: the age retention measures.
/// `None` when it cannot be read (the caller keeps the file).
pub fn written_at(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_nanos()).ok()
}

/// The time before which records are past a window of `days`.
pub fn cutoff(now_unix_nano: u64, days: u32) -> u64 {
    now_unix_nano.saturating_sub(u64::from(days) * NANOS_PER_DAY)
}

/// The journal's part of retention.
pub struct JournalRetention {
    pub days: u32,
    pub journal: Journal,
    /// Each exporter's next journal index (the driver's published position).
    pub positions: Vec<Arc<AtomicU64>>,
    /// The writer's hint naming the newest checkpoint record.
    pub hint_path: PathBuf,
    /// A file whose presence stops journal purges.
    pub hold_marker: PathBuf,
    /// What each closed segment holds, by first index: segments never change once closed.
    summaries: BTreeMap<u64, SegmentSummary>,
    /// Whether "no checkpoint yet" was said, so it is said once.
    warned_no_checkpoint: bool,
}

impl JournalRetention {
    pub fn new(
        days: u32,
        journal: Journal,
        positions: Vec<Arc<AtomicU64>>,
        hint_path: PathBuf,
        hold_marker: PathBuf,
    ) -> JournalRetention {
        JournalRetention {
            days,
            journal,
            positions,
            hint_path,
            hold_marker,
            summaries: BTreeMap::new(),
            warned_no_checkpoint: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct SegmentSummary {
    /// When it was last written ([`written_at`]); `None` when it holds no entry. A
    /// segment whose time cannot be read gets `u64::MAX`: never old enough.
    newest: Option<u64>,
    /// `seq` of its first and last entries.
    seqs: Option<(u64, u64)>,
}

/// Segments the journal may drop now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPlan {
    pub first_index: u64,
    /// Everything below this goes (`purge_before`).
    pub before: u64,
    pub segments: usize,
    pub seqs: Option<(u64, u64)>,
}

impl JournalRetention {
    /// The records every exporter has delivered and recovery no longer needs: below the
    /// slowest exporter's position and below the newest checkpoint record. `None` when
    /// there is no checkpoint to recover from (a pipeline without `hash_chain`).
    fn purgeable_below(&self) -> Option<u64> {
        let checkpoint = newest_checkpoint_index(&self.hint_path)?;
        let slowest = self
            .positions
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        Some(checkpoint.min(slowest))
    }

    /// Plans a purge for `cutoff` (Unix nanoseconds): the longest run of closed segments
    /// from the start that are delivered, not needed by recovery, and all older than it.
    pub fn plan(&mut self, cutoff: u64) -> Option<JournalPlan> {
        let Some(limit) = self.purgeable_below() else {
            if !self.warned_no_checkpoint {
                tracing::warn!(journal = %self.journal.dir().display(),
                    "journal retention waits for a checkpoint record to recover from; a pipeline without `hash_chain` keeps its journal");
                self.warned_no_checkpoint = true;
            }
            return None;
        };
        let starts = self.journal.segment_starts();
        self.summaries.retain(|first, _| starts.contains(first));
        let mut plan: Option<JournalPlan> = None;
        for pair in starts.windows(2) {
            let (first, end) = (pair[0], pair[1]);
            if end > limit {
                break;
            }
            let summary = match self.summaries.get(&first) {
                Some(s) => *s,
                None => {
                    let s = self.summarize(first, end);
                    self.summaries.insert(first, s);
                    s
                }
            };
            if summary.newest.is_some_and(|t| t >= cutoff) {
                break;
            }
            let p = plan.get_or_insert(JournalPlan {
                first_index: first,
                before: end,
                segments: 0,
                seqs: None,
            });
            p.before = end;
            p.segments += 1;
            p.seqs = match (p.seqs, summary.seqs) {
                (Some((a, _)), Some((_, b))) => Some((a, b)),
                (a, b) => a.or(b),
            };
        }
        plan
    }

    fn summarize(&self, first: u64, end: u64) -> SegmentSummary {
        let mut summary = SegmentSummary {
            newest: None,
            seqs: None,
        };
        let reader = match self.journal.reader(first) {
            Ok(r) => r,
            Err(_) => {
                summary.newest = Some(u64::MAX);
                return summary;
            }
        };
        for item in reader {
            // Damaged records were reported when the journal opened.
            let Ok((index, payload)) = item else { continue };
            if index >= end {
                break;
            }
            if let Ok(Frame::Entry { seq, .. }) = Frame::decode(&payload) {
                summary.seqs = Some(summary.seqs.map_or((seq, seq), |(a, _)| (a, seq)));
            }
        }
        if summary.seqs.is_some() {
            // The journal names segments by their first index (`journal::segment`).
            let path = self.journal.dir().join(format!("{first:020}.seg"));
            summary.newest = Some(written_at(&path).unwrap_or(u64::MAX));
        }
        summary
    }
}

/// One `file` exporter's part of retention.
pub struct EvidenceRetention {
    pub id: String,
    pub config: FileConfig,
    /// The exporter's next journal index.
    pub position: Arc<AtomicU64>,
    /// Where its stream folder starts, as of the last prune.
    start: Option<Head>,
    /// A prune whose purge record is written but whose files are not yet removed, and
    /// the journal index the exporter must reach to have delivered the record.
    pending: Option<(PrunePlan, u64)>,
    /// The last reason it could not prune, so each is logged once.
    last_problem: Option<String>,
}

impl EvidenceRetention {
    pub fn new(id: String, config: FileConfig, position: Arc<AtomicU64>) -> EvidenceRetention {
        EvidenceRetention {
            id,
            config,
            position,
            start: None,
            pending: None,
            last_problem: None,
        }
    }

    fn report_once(&mut self, problem: String) {
        if self.last_problem.as_ref() != Some(&problem) {
            tracing::warn!(exporter = %self.id, "evidence retention: {problem}");
            self.last_problem = Some(problem);
        }
    }
}

/// A pipeline's retention task.
pub struct Retention {
    pub pipeline: String,
    pub stream: String,
    pub clock: Arc<dyn Clock>,
    pub interval: Duration,
    /// The pipeline's journal, where purge records are committed.
    pub journal: Journal,
    pub journal_purge: Option<JournalRetention>,
    pub evidence: Vec<EvidenceRetention>,
    /// Where purge records are written.
    pub intake: Arc<PipelineIntake>,
}

impl Retention {
    /// Runs a pass now and then every `interval`, until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            self.pass(&stop).await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One look at every store.
    pub async fn pass(&mut self, stop: &CancellationToken) {
        self.purge_journal().await;
        for i in 0..self.evidence.len() {
            if stop.is_cancelled() {
                return;
            }
            self.prune_evidence(i, stop).await;
        }
    }

    async fn purge_journal(&mut self) {
        let now = self.clock.now_unix_nano();
        let Some(j) = self.journal_purge.as_mut() else {
            return;
        };
        if j.hold_marker.exists() {
            tracing::debug!(marker = %j.hold_marker.display(), "journal retention held");
            return;
        }
        let cutoff = cutoff(now, j.days);
        let Some(plan) = tokio::task::block_in_place(|| j.plan(cutoff)) else {
            return;
        };
        let mut attributes = Map::new();
        attributes.insert("store".into(), Value::from(JOURNAL_STORE));
        attributes.insert("first_index".into(), Value::from(plan.first_index));
        attributes.insert("last_index".into(), Value::from(plan.before - 1));
        attributes.insert("segments".into(), Value::from(plan.segments as u64));
        if let Some((first, last)) = plan.seqs {
            attributes.insert("first_seq".into(), Value::from(first));
            attributes.insert("last_seq".into(), Value::from(last));
        }
        let days = j.days;
        let body = format!(
            "purged journal records {}..={} ({} segment(s)) of pipeline {}: written before {} and delivered by every exporter",
            plan.first_index,
            plan.before - 1,
            plan.segments,
            self.pipeline,
            format_time(cutoff)
        );
        let record = purge_record(now, &self.pipeline, cutoff, days, attributes, body);
        if let Err(e) = self.intake.submit_internal(vec![record]).await {
            tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot write the journal purge record; nothing purged");
            return;
        }
        let Some(j) = self.journal_purge.as_mut() else {
            return;
        };
        match tokio::task::block_in_place(|| j.journal.purge_before(plan.before)) {
            Ok(report) => {
                metrics::counter!("vellum_retention_purges_total", "store" => JOURNAL_STORE)
                    .increment(1);
                tracing::info!(pipeline = %self.pipeline, segments = report.segments_removed,
                    bytes = report.bytes_freed, first_index = report.first_index,
                    retention_days = days, "purged journal segments past retention");
            }
            Err(e) => {
                tracing::error!(pipeline = %self.pipeline, error = %e, "journal purge failed; the next pass tries again")
            }
        }
    }

    async fn prune_evidence(&mut self, i: usize, stop: &CancellationToken) {
        let now = self.clock.now_unix_nano();
        let stream = self.stream.clone();
        let e = &mut self.evidence[i];
        if e.config.retention_days == 0 {
            return;
        }
        if let Some(reason) = file::legal_hold(&e.config, &stream) {
            tracing::debug!(exporter = %e.id, %reason, "evidence retention held");
            return;
        }
        if e.pending.is_none() {
            let cutoff = cutoff(now, e.config.retention_days);
            let planned = tokio::task::block_in_place(|| {
                file::plan_prune(&e.config, &e.id, &stream, cutoff, &mut e.start)
            });
            let plan = match planned {
                Ok(Some(plan)) => plan,
                Ok(None) => return,
                Err(problem) => return e.report_once(problem.to_string()),
            };
            let days = e.config.retention_days;
            let mut attributes = plan.purge.attributes();
            attributes.insert("files".into(), Value::from(plan.files.len() as u64));
            let body = format!(
                "pruned seq {}..={} of stream {stream} from {}: written before {}",
                plan.purge.first_seq,
                plan.purge.last_seq,
                e.id,
                format_time(cutoff)
            );
            let record = purge_record(now, &self.pipeline, cutoff, days, attributes, body);
            if let Err(err) = self.intake.submit_internal(vec![record]).await {
                tracing::warn!(exporter = %self.evidence[i].id, error = %err, "cannot write the purge record; nothing pruned");
                return;
            }
            let e = &mut self.evidence[i];
            // The record is durable, so it lies below the committed end.
            let delivered_at = self.journal.committed_end();
            e.pending = Some((plan, delivered_at));
        }
        let e = &mut self.evidence[i];
        let Some((_, deliver_to)) = &e.pending else {
            return;
        };
        let deliver_to = *deliver_to;
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        while e.position.load(Ordering::Acquire) < deliver_to {
            if tokio::time::Instant::now() >= deadline || stop.is_cancelled() {
                return; // the next pass removes them once the record is delivered
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.cancelled() => return,
            }
        }
        let Some((plan, _)) = e.pending.take() else {
            return;
        };
        match tokio::task::block_in_place(|| file::apply_prune(&plan)) {
            Ok(()) => {
                metrics::counter!("vellum_retention_purges_total", "store" => e.id.clone())
                    .increment(1);
                tracing::info!(exporter = %e.id, files = plan.files.len(), checkpoints = plan.notes.len(),
                    first_seq = plan.purge.first_seq, last_seq = plan.purge.last_seq,
                    retention_days = e.config.retention_days, "pruned evidence files past retention");
                e.start = Some(plan.purge.head());
                e.last_problem = None;
            }
            Err(err) => {
                e.report_once(err.to_string());
                e.pending = Some((plan, deliver_to));
            }
        }
    }
}

/// A purge record: written by the daemon, never changed by processors.
fn purge_record(
    now: u64,
    pipeline: &str,
    cutoff: u64,
    days: u32,
    mut attributes: Map<String, Value>,
    body: String,
) -> Record {
    attributes.insert("pipeline".into(), Value::from(pipeline));
    attributes.insert("cutoff".into(), Value::from(format_time(cutoff)));
    attributes.insert(
        "reason".into(),
        Value::from(format!("retention_days={days}")),
    );
    Record {
        time_unix_nano: now,
        observed_time_unix_nano: now,
        severity: Some(Severity::Info),
        severity_number: Severity::Info.otlp_number(),
        event_type: Some(EVENT_TYPE.into()),
        body: Value::String(body),
        attributes,
        source: SOURCE.into(),
        ..Record::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::note::{NoteSigner, generate};
    use crate::journal::{self, JournalOptions};
    use crate::pipeline::writer::{self, Checkpointing, WriteRequest, Writer, WriterSettings};
    use std::path::Path;

    /// A clock the test sets.
    struct TestClock(AtomicU64);

    impl Clock for TestClock {
        fn now_unix_nano(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    const DAY: u64 = NANOS_PER_DAY;
    /// 2026-01-01T00:00:00Z.
    const T0: u64 = 1_767_225_600 * 1_000_000_000;
    /// 2500-01-01T00:00:00Z: a client's idea of the time.
    const YEAR_2500: u64 = 16_725_225_600 * 1_000_000_000;

    fn settings(dir: &Path, signer: NoteSigner) -> WriterSettings {
        WriterSettings {
            stream: "s".into(),
            keys: None,
            checkpoints: Some(Checkpointing {
                origin_prefix: "test".into(),
                signer,
                every_records: 10,
                every: Duration::from_secs(3600),
            }),
            hint_path: dir.join("chain.json"),
            max_group_records: 1000,
        }
    }

    /// A pipeline's journal, writer thread and intake, with one exporter's position.
    struct Pipeline {
        journal: Journal,
        intake: Arc<PipelineIntake>,
        writer: std::thread::JoinHandle<crate::journal::JournalWriter>,
        position: Arc<AtomicU64>,
    }

    fn open_pipeline(dir: &Path, skey: &str) -> Pipeline {
        let options = JournalOptions {
            segment_bytes: 4096,
            max_record_bytes: 1 << 20,
        };
        let (journal_writer, journal, _) = journal::open(&dir.join("journal"), options).unwrap();
        let settings = settings(dir, NoteSigner::parse(skey).unwrap());
        let (chain, _) = writer::recover(&journal, &settings, &[]).unwrap();
        let (queue, requests) = std::sync::mpsc::channel::<WriteRequest>();
        let writer = Writer::new(journal_writer, chain, settings);
        let writer = std::thread::spawn(move || writer.run(requests));
        let position = Arc::new(AtomicU64::new(0));
        let intake = Arc::new(PipelineIntake::new(
            "p".into(),
            Vec::new(),
            queue,
            journal.clone(),
            vec![position.clone()],
            u64::MAX,
        ));
        Pipeline {
            journal,
            intake,
            writer,
            position,
        }
    }

    impl Pipeline {
        fn close(self) {
            self.intake.close();
            self.writer.join().unwrap();
        }

        /// `n` records as if written at `at`: the segments they land in carry that
        /// modification time, which is what retention measures. Their own times say
        /// year 2500, which retention must not read.
        async fn write(&self, from: u64, n: u64, at: u64) {
            let start = self.journal.committed_end();
            let records = (from..from + n)
                .map(|i| Record {
                    time_unix_nano: YEAR_2500,
                    observed_time_unix_nano: YEAR_2500,
                    body: Value::from(format!("event {i} {}", "x".repeat(200))),
                    source: "test".into(),
                    ..Record::default()
                })
                .collect();
            self.intake.submit_internal(records).await.unwrap();
            let starts = self.journal.segment_starts();
            for (k, first) in starts.iter().enumerate() {
                if starts.get(k + 1).is_none_or(|next| *next > start) {
                    let path = self.journal.dir().join(format!("{first:020}.seg"));
                    let when = std::time::UNIX_EPOCH + Duration::from_nanos(at);
                    let file = std::fs::File::open(path).unwrap();
                    file.set_modified(when).unwrap();
                }
            }
        }

        fn retention(&self, clock: Arc<TestClock>, dir: &Path) -> Retention {
            Retention {
                pipeline: "p".into(),
                stream: "s".into(),
                clock,
                interval: Duration::from_secs(3600),
                journal: self.journal.clone(),
                journal_purge: Some(JournalRetention::new(
                    30,
                    self.journal.clone(),
                    vec![self.position.clone()],
                    dir.join("chain.json"),
                    dir.join(LEGAL_HOLD_FILE),
                )),
                evidence: Vec::new(),
                intake: self.intake.clone(),
            }
        }

        /// Every entry in the journal from its first index, as JSON.
        fn entries(&self) -> Vec<serde_json::Value> {
            let mut out = Vec::new();
            for item in self.journal.reader(self.journal.first_index()).unwrap() {
                let (_, payload) = item.unwrap();
                if let Ok(Frame::Entry { line, .. }) = Frame::decode(&payload) {
                    out.push(serde_json::from_slice(line).unwrap());
                }
            }
            out
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_journal_purges_only_old_delivered_segments_and_recovers_after() {
        let tmp = tempfile::tempdir().unwrap();
        let (skey, _) = generate("test/s").unwrap();
        let p = open_pipeline(tmp.path(), &skey);
        p.write(0, 100, T0).await;
        p.write(100, 30, T0 + 20 * DAY).await;
        let segments_before = p.journal.segment_starts().len();
        assert!(segments_before > 5, "{segments_before} segments");

        let clock = Arc::new(TestClock(AtomicU64::new(T0 + 29 * DAY)));
        let mut retention = p.retention(clock.clone(), tmp.path());
        let stop = CancellationToken::new();

        // Inside the window: nothing, even though everything is delivered.
        p.position
            .store(p.journal.committed_end(), Ordering::Release);
        retention.pass(&stop).await;
        assert_eq!(p.journal.first_index(), 0);

        // Past the window for the first 100, but the exporter has delivered nothing.
        clock.0.store(T0 + 31 * DAY, Ordering::Relaxed);
        p.position.store(0, Ordering::Release);
        retention.pass(&stop).await;
        assert_eq!(p.journal.first_index(), 0, "undelivered records stay");

        // Delivered up to the middle of the old records: purging stops there.
        p.position.store(60, Ordering::Release);
        let end_before = p.journal.committed_end();
        retention.pass(&stop).await;
        let first = p.journal.first_index();
        assert!(first > 0 && first <= 60, "purged up to {first}");
        let starts = p.journal.segment_starts();
        assert!(starts.contains(&first));

        // The purge is the newest entry, and says what went.
        let entries = p.entries();
        let purge = entries.last().unwrap();
        assert_eq!(purge["event_type"], EVENT_TYPE);
        let a = &purge["attributes"];
        assert_eq!(a["store"], JOURNAL_STORE);
        assert_eq!(a["pipeline"], "p");
        assert_eq!(a["first_index"], 0);
        assert_eq!(a["last_index"], first - 1);
        assert_eq!(a["reason"], "retention_days=30");
        assert_eq!(a["cutoff"], format_time(T0 + DAY));
        assert_eq!(a["first_seq"], 0);
        // Every entry below `first` went; the first one kept follows the last purged.
        let kept_first_seq = entries[0]["seq"].as_u64().unwrap();
        assert_eq!(a["last_seq"].as_u64().unwrap() + 1, kept_first_seq);
        assert!(p.journal.committed_end() > end_before);

        // Everything old delivered: the records of day 20 and the open segment stay.
        p.position
            .store(p.journal.committed_end(), Ordering::Release);
        retention.pass(&stop).await;
        let entries = p.entries();
        let young = entries
            .iter()
            .filter(|e| e["source"] == "test")
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>();
        assert!(
            p.journal.first_index() > first,
            "the second pass went further"
        );
        assert!(
            (100..130).all(|s| young.contains(&s)),
            "the records of day 20 stay: {young:?}"
        );
        assert!(young.first().is_some_and(|&s| s > 0));
        let last_seq = entries.last().unwrap()["seq"].as_u64().unwrap();
        let last_hash = entries.last().unwrap()["hash"].clone();

        // A restart after purging rebuilds the chain head from what is left.
        let journal_first = p.journal.first_index();
        drop(retention);
        p.close();
        let (_writer, journal, _) = journal::open(
            &tmp.path().join("journal"),
            JournalOptions {
                segment_bytes: 4096,
                max_record_bytes: 1 << 20,
            },
        )
        .unwrap();
        assert_eq!(journal.first_index(), journal_first);
        let settings = settings(tmp.path(), NoteSigner::parse(&skey).unwrap());
        let (chain, _) = writer::recover(&journal, &settings, &[]).unwrap();
        assert_eq!(chain.next_seq(), last_seq + 1);
        assert_eq!(hex::encode(chain.prev()), last_hash.as_str().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_legal_hold_or_a_missing_checkpoint_keeps_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let (skey, _) = generate("test/s").unwrap();
        let p = open_pipeline(tmp.path(), &skey);
        p.write(0, 100, T0).await;
        p.position
            .store(p.journal.committed_end(), Ordering::Release);
        let clock = Arc::new(TestClock(AtomicU64::new(T0 + 365 * DAY)));
        let mut retention = p.retention(clock, tmp.path());
        let stop = CancellationToken::new();

        std::fs::write(tmp.path().join(LEGAL_HOLD_FILE), b"case 42\n").unwrap();
        retention.pass(&stop).await;
        assert_eq!(p.journal.first_index(), 0, "held");

        std::fs::remove_file(tmp.path().join(LEGAL_HOLD_FILE)).unwrap();
        let hint = std::fs::read(tmp.path().join("chain.json")).unwrap();
        std::fs::remove_file(tmp.path().join("chain.json")).unwrap();
        retention.pass(&stop).await;
        assert_eq!(p.journal.first_index(), 0, "no checkpoint to recover from");

        std::fs::write(tmp.path().join("chain.json"), hint).unwrap();
        retention.pass(&stop).await;
        assert!(p.journal.first_index() > 0);
        let checkpoint = newest_checkpoint_index(&tmp.path().join("chain.json")).unwrap();
        assert!(
            p.journal.first_index() <= checkpoint,
            "the checkpoint recovery starts from is kept"
        );
        p.close();
    }

    #[test]
    fn evidence_retention_without_checkpoints_or_a_zero_interval_is_refused() {
        let yaml = r#"
receivers:
  http: { endpoint: 127.0.0.1:0 }
exporters:
  file/evidence: { directory: /tmp/evidence, retention_days: 30 }
service:
  storage: { directory: /tmp/state, retention_check_interval: 0s }
  pipelines:
    logs/audit: { receivers: [http], exporters: [file/evidence] }
"#;
        let problems = crate::config::Config::from_yaml(
            yaml,
            "test.yaml",
            &crate::config::expand::SystemSource,
        )
        .unwrap_err()
        .problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.path == "service.pipelines.logs/audit.exporters[0]"
                    && p.message.contains("`file/evidence` has `retention_days`"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.path == "service.storage.retention_check_interval" && p.pos.line == 7)
        );
    }

    #[test]
    fn the_cutoff_is_whole_days_before_now_and_never_before_1970() {
        assert_eq!(cutoff(T0 + 30 * DAY, 30), T0);
        assert_eq!(cutoff(5, 1), 0);
    }
}
