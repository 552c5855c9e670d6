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
//! - **Journal**: whole segments are purged when every record in them was observed
//!   more than `retention_days` ago (the newest `observed_time` of their entries), every
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

use std::collections::BTreeMap;
use std::path::PathBuf;
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
use crate::exporters::file::{self, FileConfig, PrunePlan, observed_time};
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
    /// Newest `observed_time` of its entries; `None` when it holds none. A segment with
    /// an entry whose time cannot be read gets `u64::MAX`: never old enough.
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
            // Damaged records were reported when the journal opened; they hold no time.
            let Ok((index, payload)) = item else { continue };
            if index >= end {
                break;
            }
            if let Ok(Frame::Entry { seq, line }) = Frame::decode(&payload) {
                let observed = observed_time(line).unwrap_or(u64::MAX);
                summary.newest = Some(summary.newest.map_or(observed, |t| t.max(observed)));
                summary.seqs = Some(summary.seqs.map_or((seq, seq), |(a, _)| (a, seq)));
            }
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
            "purged journal records {}..={} ({} segment(s)) of pipeline {}: observed before {} and delivered by every exporter",
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
                file::plan_prune(&e.config, &e.id, &stream, cutoff, e.start.as_ref())
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
                "pruned seq {}..={} of stream {stream} from {}: observed before {}",
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
