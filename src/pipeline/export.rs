//! The exporter driver: one per (pipeline, exporter), the same code for every exporter.
//!
//! It reads the journal from the exporter's persisted cursor, skips entries its `when:`
//! does not match, hands batches to the exporter, retries failures with exponential
//! backoff and jitter (honouring the sink's `Retry-After`), writes batches a sink refuses
//! for good to a dead-letter file with the reason, and moves the cursor only past what
//! was delivered or dead-lettered. Its position feeds the backlog that makes receivers
//! push back.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::frame::Frame;
use super::routing::Route;
use crate::exporters::{ExportError, Exporter, Item};
use crate::journal::{Cursor, Journal};

/// How an exporter's batches are cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_records: 2048,
            max_bytes: 4 << 20,
        }
    }
}

/// Exponential backoff with full jitter, capped; a sink's `Retry-After` wins when longer.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let jittered = ceiling.mul_f64(0.5 + 0.5 * unit_random());
        retry_after.map_or(jittered, |r| r.max(jittered))
    }
}

fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

pub struct Driver {
    pub id: String,
    pub journal: Journal,
    pub cursor: Cursor,
    pub exporter: Box<dyn Exporter>,
    pub route: Option<Arc<Route>>,
    pub limits: BatchLimits,
    pub backoff: Backoff,
    /// Where this exporter's position is published for backlog accounting.
    pub position: Arc<AtomicU64>,
    pub dead_letter_dir: PathBuf,
}

impl Driver {
    /// Runs until `stop` is cancelled and everything committed before it is delivered,
    /// or until `abandon` is cancelled (the drain deadline passed; the cursor keeps the rest).
    pub async fn run(mut self, stop: CancellationToken, abandon: CancellationToken) {
        let mut next = self.cursor.load().max(self.journal.first_index());
        self.position.store(next, Ordering::Release);
        let mut committed = self.journal.subscribe();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reader = match self.journal.reader(next) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(exporter = %self.id, error = %e, "cannot read the journal; exporter stopped");
                return;
            }
        };
        loop {
            let (batch, read_to) = self.read_batch(&mut reader, next);
            if read_to > next {
                if !batch.is_empty() && !self.deliver(&batch, &abandon).await {
                    break;
                }
                next = read_to;
                if let Err(e) = self.cursor.store(next) {
                    tracing::error!(exporter = %self.id, error = %e, "cannot persist the exporter cursor");
                }
                self.position.store(next, Ordering::Release);
                continue;
            }
            if stop.is_cancelled() && next >= self.journal.committed_end() {
                break;
            }
            tokio::select! {
                _ = committed.changed() => {}
                _ = ticker.tick() => {
                    if let Err(e) = self.exporter.tick().await {
                        tracing::warn!(exporter = %self.id, error = %e, "exporter housekeeping failed");
                    }
                }
                _ = stop.cancelled(), if !stop.is_cancelled() => {}
                _ = abandon.cancelled() => break,
            }
        }
        if let Err(e) = self.exporter.close().await {
            tracing::warn!(exporter = %self.id, error = %e, "exporter did not close cleanly");
        }
    }

    /// Reads up to the batch limits; returns the items to deliver and the index after the
    /// last one read (skipped and unreadable records count as read).
    fn read_batch(
        &self,
        reader: &mut crate::journal::JournalReader,
        mut next: u64,
    ) -> (Vec<Item>, u64) {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < self.limits.max_records && bytes < self.limits.max_bytes {
            match reader.next() {
                None => break,
                Some(Ok((index, payload))) => {
                    next = index + 1;
                    match Frame::decode(&payload) {
                        Ok(Frame::Entry { seq, line }) => {
                            if self.route.as_ref().is_some_and(|r| !r.matches(line)) {
                                continue;
                            }
                            bytes += line.len();
                            batch.push(Item::Entry {
                                index,
                                seq,
                                line: Bytes::copy_from_slice(line),
                            });
                        }
                        Ok(Frame::Checkpoint(c)) => {
                            batch.push(Item::Checkpoint {
                                index,
                                size: c.size,
                                note: c.note,
                            });
                        }
                        Err(e) => {
                            tracing::error!(exporter = %self.id, index, error = %e, "unreadable journal record skipped");
                        }
                    }
                }
                Some(Err(e)) => {
                    // The journal reports damage and moves on to the next good record.
                    tracing::error!(exporter = %self.id, error = %e, "damaged journal record skipped");
                }
            }
        }
        (batch, next)
    }

    /// Delivers one batch, retrying until it is delivered or dead-lettered; false when
    /// abandoned.
    async fn deliver(&mut self, batch: &[Item], abandon: &CancellationToken) -> bool {
        let mut attempt = 0u32;
        loop {
            match self.exporter.export(batch).await {
                Ok(()) => {
                    let entries = batch
                        .iter()
                        .filter(|i| matches!(i, Item::Entry { .. }))
                        .count();
                    metrics::counter!("vellum_exporter_sent_records_total", "exporter" => self.id.clone()).increment(entries as u64);
                    return true;
                }
                Err(ExportError::Permanent(reason)) => {
                    metrics::counter!("vellum_exporter_dead_lettered_records_total", "exporter" => self.id.clone())
                        .increment(batch.len() as u64);
                    match self.dead_letter(batch, &reason) {
                        Ok(path) => {
                            tracing::error!(exporter = %self.id, %reason, file = %path.display(), records = batch.len(), "sink refused a batch for good; written to the dead-letter file")
                        }
                        Err(e) => {
                            tracing::error!(exporter = %self.id, %reason, error = %e, "sink refused a batch and the dead-letter file cannot be written; retrying");
                            if !self.wait(attempt, None, abandon).await {
                                return false;
                            }
                            attempt += 1;
                            continue;
                        }
                    }
                    return true;
                }
                Err(ExportError::Retryable {
                    message,
                    retry_after,
                }) => {
                    metrics::counter!("vellum_exporter_retries_total", "exporter" => self.id.clone()).increment(1);
                    if attempt == 0 || attempt.is_power_of_two() {
                        tracing::warn!(exporter = %self.id, attempt, error = %message, "delivery failed; retrying");
                    }
                    if !self.wait(attempt, retry_after, abandon).await {
                        return false;
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn wait(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        abandon: &CancellationToken,
    ) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(self.backoff.delay(attempt, retry_after)) => true,
            _ = abandon.cancelled() => false,
        }
    }

    fn dead_letter(&self, batch: &[Item], reason: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dead_letter_dir)?;
        let first = batch.first().map_or(0, Item::index);
        let path = self.dead_letter_dir.join(format!("{first:020}.jsonl"));
        let mut f = std::fs::File::create(&path)?;
        writeln!(
            f,
            "{}",
            serde_json::json!({ "dead_letter": { "exporter": self.id, "reason": reason, "records": batch.len() } })
        )?;
        for item in batch {
            match item {
                Item::Entry { line, .. } => {
                    f.write_all(line)?;
                    f.write_all(b"\n")?;
                }
                Item::Checkpoint { size, note, .. } => {
                    writeln!(
                        f,
                        "{}",
                        serde_json::json!({ "checkpoint": { "size": size, "note": note } })
                    )?;
                }
            }
        }
        f.sync_all()?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_honours_retry_after() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 0..20 {
            let d = b.delay(attempt, None);
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(2));
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
