//! The exporter driver: one per (pipeline, exporter), the same code for every exporter.
//!
//! It reads the journal from the exporter's persisted cursor, skips entries its `when:`
//! does not match and cuts batches (`batch:`). An exporter sends one request at a time
//! and answers how many leading items of what it was given are at the sink; the driver
//! hands it the rest until the batch is done, moving the cursor past each request
//! delivered, so a retry or a restart sends only what is not there yet. A failed request
//! is retried on its own (`retry_on_failure:`) with exponential backoff and full jitter,
//! honouring the sink's `Retry-After`; what a sink rejects as malformed is written to a
//! dead-letter file with the reason (`dead_letter`). The cursor moves only past what was
//! delivered or dead-lettered. Its position feeds the backlog that makes receivers push
//! back.
//!
//! | failure | what the driver does |
//! |---|---|
//! | retryable (5xx, 429, timeout, reset, local I/O) | backs off and retries the request; the cursor holds |
//! | unauthorized (credentials or permissions refused) | the same, and `/readyz` names the exporter at once |
//! | permanent (malformed for the sink) | dead-letters what is left of the batch and goes on, unless the exporter keeps no dead letters (`s3`): then it retries like the above |
//! | any, with `retry_on_failure.enabled: false` or past a non-zero `max_elapsed_time` | dead-letters what is left of the batch and goes on (refused at validation for `file` and `s3`) |

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::frame::Frame;
use super::routing::Route;
use crate::exporters::{BatchSettings, ExportError, Exporter, Item, RetrySettings};
use crate::journal::{Cursor, Journal};
use crate::telemetry::status::ExporterHealth;

/// Items read but not yet delivered.
#[derive(Default)]
struct Pending {
    items: Vec<Item>,
    bytes: usize,
    /// When the oldest pending item was read.
    since: Option<std::time::Instant>,
    /// The journal index after the last record read.
    read_to: u64,
}

/// Whether everything committed has been read into `pending`.
fn reader_at_end(pending: &Pending, journal: &Journal) -> bool {
    pending.read_to >= journal.committed_end()
}

impl Pending {
    fn push(&mut self, item: Item) {
        if let Item::Entry { line, .. } = &item {
            self.bytes += line.len();
        }
        self.since.get_or_insert_with(std::time::Instant::now);
        self.items.push(item);
    }

    fn is_full(&self, limits: &BatchSettings) -> bool {
        self.items.len() >= limits.max_records || self.bytes as u64 >= limits.max_bytes.as_u64()
    }

    /// How many items there are up to and including the last checkpoint.
    fn through_last_checkpoint(&self) -> usize {
        self.items
            .iter()
            .rposition(|i| matches!(i, Item::Checkpoint { .. }))
            .map_or(0, |i| i + 1)
    }

    /// Recomputes size and age after the delivered part was taken away.
    fn recount(&mut self) {
        self.bytes = self
            .items
            .iter()
            .map(|i| {
                if let Item::Entry { line, .. } = i {
                    line.len()
                } else {
                    0
                }
            })
            .sum();
        self.since = (!self.items.is_empty()).then(std::time::Instant::now);
    }
}

pub struct Driver {
    pub id: String,
    pub journal: Journal,
    pub cursor: Cursor,
    pub exporter: Box<dyn Exporter>,
    pub route: Option<Arc<Route>>,
    pub limits: BatchSettings,
    pub retry: RetrySettings,
    /// How long one request may take.
    pub timeout: Duration,
    /// Where this exporter's position is published for backlog accounting.
    pub position: Arc<AtomicU64>,
    pub dead_letter_dir: PathBuf,
    /// Since when deliveries fail, for `/readyz`; its ids label the metrics.
    pub health: Arc<ExporterHealth>,
    /// From the exporter's capabilities: every batch ends with a checkpoint.
    pub checkpoint_aligned: bool,
    /// From the exporter's capabilities: a refused batch may be set aside.
    pub dead_letters: bool,
}

impl Driver {
    /// Runs until `stop` is cancelled and everything committed before it is delivered,
    /// or until `abandon` is cancelled (the drain deadline passed; the cursor keeps the rest).
    pub async fn run(mut self, stop: CancellationToken, abandon: CancellationToken) {
        // A cursor past the end (segments removed by hand) restarts at the end.
        let mut delivered_to = self
            .cursor
            .load()
            .max(self.journal.first_index())
            .min(self.journal.committed_end());
        self.position.store(delivered_to, Ordering::Release);
        let mut committed = self.journal.subscribe();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reader = match self.journal.reader(delivered_to) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(exporter = %self.id, error = %e, "cannot read the journal; exporter stopped");
                return;
            }
        };
        let aligned = self.checkpoint_aligned;
        let mut pending = Pending {
            read_to: delivered_to,
            ..Pending::default()
        };
        loop {
            self.fill(&mut reader, &mut pending, aligned);
            let stopping = stop.is_cancelled();
            let ready = pending.is_full(&self.limits)
                || pending
                    .since
                    .is_some_and(|t| t.elapsed() >= self.limits.max_age)
                || stopping;
            let cut = if aligned {
                pending.through_last_checkpoint()
            } else {
                pending.items.len()
            };
            if ready && cut > 0 {
                let rest = pending.items.split_off(cut);
                let batch = std::mem::replace(&mut pending.items, rest);
                // Items past the cut were read but not delivered: the cursor stops at
                // the first of them.
                let upto = pending.items.first().map_or(pending.read_to, Item::index);
                if !self.deliver(&batch, &abandon).await {
                    break;
                }
                pending.recount();
                delivered_to = upto;
                self.store_cursor(delivered_to);
                continue;
            }
            if pending.items.is_empty() && pending.read_to > delivered_to {
                // Everything read was routed elsewhere or unreadable.
                delivered_to = pending.read_to;
                self.store_cursor(delivered_to);
            }
            let drained = delivered_to >= self.journal.committed_end()
                || (aligned && cut == 0 && reader_at_end(&pending, &self.journal));
            if stopping && drained {
                // With aligned batches, what follows the last checkpoint cannot be
                // delivered whole; it stays in the journal for the next start.
                break;
            }
            let wait = match pending.since {
                Some(t) if !pending.items.is_empty() => {
                    self.limits.max_age.saturating_sub(t.elapsed())
                }
                _ => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = committed.changed() => {}
                _ = tokio::time::sleep(wait), if !aligned => {}
                _ = ticker.tick() => {
                    if let Err(e) = self.exporter.tick().await {
                        tracing::warn!(exporter = %self.id, error = %e, "exporter housekeeping failed");
                    }
                }
                _ = stop.cancelled(), if !stopping => {}
                _ = abandon.cancelled() => break,
            }
        }
        if let Err(e) = self.exporter.close().await {
            tracing::warn!(exporter = %self.id, error = %e, "exporter did not close cleanly");
        }
    }

    fn store_cursor(&self, next: u64) {
        if let Err(e) = self.cursor.store(next) {
            tracing::error!(exporter = %self.id, error = %e, "cannot persist the exporter cursor");
        }
        self.position.store(next, Ordering::Release);
    }

    /// Reads what is committed into `pending`, up to the batch limits; for an exporter
    /// whose batches end at checkpoints, on to the next checkpoint (so a bundle spans
    /// at most one checkpoint interval).
    fn fill(
        &self,
        reader: &mut crate::journal::JournalReader,
        pending: &mut Pending,
        aligned: bool,
    ) {
        while !pending.is_full(&self.limits) || (aligned && pending.through_last_checkpoint() == 0)
        {
            match reader.next() {
                None => break,
                Some(Ok((index, payload))) => {
                    pending.read_to = index + 1;
                    match Frame::decode(&payload) {
                        Ok(Frame::Entry { seq, line }) => {
                            if self.route.as_ref().is_some_and(|r| !r.matches(line)) {
                                continue;
                            }
                            pending.push(Item::Entry {
                                index,
                                seq,
                                line: Bytes::copy_from_slice(line),
                            });
                        }
                        Ok(Frame::Checkpoint(c)) => {
                            pending.push(Item::Checkpoint {
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
                    // The journal reports damage and moves on to the next good record;
                    // the cursor moves past it too, so it is reported once.
                    pending.read_to = reader.next_index();
                    tracing::error!(exporter = %self.id, error = %e, "damaged journal record skipped");
                }
            }
        }
    }

    /// Delivers one batch request by request, moving the cursor past each request
    /// delivered; false when abandoned.
    async fn deliver(&mut self, batch: &[Item], abandon: &CancellationToken) -> bool {
        let mut done = 0;
        while let Some(next) = batch.get(done) {
            if done > 0 {
                // What is before `next` is at the sink: a restart must not send it again.
                self.store_cursor(next.index());
            }
            match self.deliver_request(&batch[done..], abandon).await {
                Some(n) => done += n,
                None => return false,
            }
        }
        true
    }

    /// Has the exporter send one request from the start of `rest`, retrying it until it
    /// is delivered, dead-lettered or given up. Answers how many items of `rest` are
    /// done with; None when abandoned.
    async fn deliver_request(
        &mut self,
        rest: &[Item],
        abandon: &CancellationToken,
    ) -> Option<usize> {
        let labels = [
            ("pipeline", self.health.pipeline.clone()),
            ("exporter", self.health.exporter.clone()),
        ];
        // As the Collector does, max_elapsed_time counts from the first attempt.
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let outcome = match tokio::time::timeout(self.timeout, self.exporter.export(rest)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(ExportError::retryable(format!(
                    "no answer within {:?}",
                    self.timeout
                ))),
            };
            let error = match outcome {
                Ok(n) if n > 0 => {
                    let n = n.min(rest.len());
                    metrics::counter!("vellum_exporter_sent_records_total", &labels)
                        .increment(entries(&rest[..n]));
                    metrics::counter!("otelcol_exporter_sent_log_records_total", "exporter" => self.health.exporter.clone())
                        .increment(entries(&rest[..n]));
                    self.health.progressed();
                    return Some(n);
                }
                // An exporter must take at least one item; retrying cannot loop fast.
                Ok(_) => ExportError::retryable("the exporter delivered nothing"),
                Err(e) => e,
            };
            // Which items the failed request held is the exporter's business: the whole
            // rest counts as failed, and a refusal dead-letters the whole rest.
            let count = entries(rest);
            metrics::counter!("vellum_exporter_failed_records_total", &labels).increment(count);
            metrics::counter!("otelcol_exporter_send_failed_log_records_total", "exporter" => self.health.exporter.clone())
                .increment(count);
            let given_up = self.retry.gives_up(started.elapsed());
            if (matches!(error, ExportError::Permanent(_)) || given_up)
                && self.dead_letters
                && self.set_aside(rest, &error, given_up)
            {
                metrics::counter!("vellum_exporter_dead_lettered_records_total", &labels)
                    .increment(count);
                self.health.progressed();
                return Some(rest.len());
            }
            metrics::counter!("vellum_exporter_retried_records_total", &labels).increment(count);
            self.health.attempt_failed();
            let retry_after = match &error {
                ExportError::Retryable { retry_after, .. } => *retry_after,
                _ => None,
            };
            self.health
                .set_unauthorized(matches!(error, ExportError::Unauthorized(_)));
            // Logged at the first failure and then ever more rarely, not once per retry.
            if attempt == 0 || attempt.is_power_of_two() {
                self.log_failure(attempt, &error);
            }
            if !self.wait(attempt, retry_after, abandon).await {
                return None;
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// Writes what a failed request left to the dead-letter file; false when it cannot.
    fn set_aside(&self, rest: &[Item], error: &ExportError, given_up: bool) -> bool {
        let reason = match error {
            ExportError::Permanent(reason) => reason.clone(),
            other if !self.retry.enabled => format!("retries are off: {other}"),
            other => format!(
                "still failing after retry_on_failure.max_elapsed_time ({:?}): {other}",
                self.retry.max_elapsed_time
            ),
        };
        let written = super::dead_letter::write(
            &self.dead_letter_dir,
            &self.health.pipeline,
            &self.health.exporter,
            &reason,
            rest,
        );
        match written {
            Ok(path) => {
                if given_up && !matches!(error, ExportError::Permanent(_)) {
                    tracing::error!(exporter = %self.id, %reason, file = %path.display(), records = rest.len(), "delivery given up; written to the dead-letter file");
                } else {
                    tracing::error!(exporter = %self.id, %reason, file = %path.display(), records = rest.len(), "sink refused a batch for good; written to the dead-letter file");
                }
                true
            }
            Err(e) => {
                tracing::error!(exporter = %self.id, %reason, error = %e, "a batch could not be delivered and the dead-letter file cannot be written; retrying");
                false
            }
        }
    }

    fn log_failure(&self, attempt: u32, error: &ExportError) {
        match error {
            ExportError::Retryable { message, .. } => {
                tracing::warn!(exporter = %self.id, attempt, error = %message, "delivery failed; retrying")
            }
            ExportError::Unauthorized(message) => {
                tracing::error!(exporter = %self.id, attempt, error = %message, "the sink refuses the exporter's credentials; records wait until they are fixed")
            }
            ExportError::Permanent(message) => {
                tracing::error!(exporter = %self.id, attempt, error = %message, "the sink refuses the batch; this exporter keeps no dead letters, so it is retried until fixed")
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
            _ = tokio::time::sleep(self.retry.delay(attempt, retry_after)) => true,
            _ = abandon.cancelled() => false,
        }
    }
}

/// How many sealed entries (not checkpoints) `items` holds, for the record counters.
fn entries(items: &[Item]) -> u64 {
    items
        .iter()
        .filter(|i| matches!(i, Item::Entry { .. }))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{self, JournalOptions};
    use crate::pipeline::frame::encode_entry;
    use futures::future::BoxFuture;
    use std::sync::Mutex;

    /// A sink that refuses the first `failures` deliveries (retryably, or for good) and
    /// records what it was given.
    struct Flaky {
        failures: Arc<Mutex<u32>>,
        permanent: bool,
        seen: Arc<Mutex<Vec<u64>>>,
        aligned: bool,
        /// The last item of every delivered batch.
        ends: Arc<Mutex<Vec<Item>>>,
        /// The failure to answer instead of the default ones.
        error: Option<ExportError>,
        dead_letters: bool,
        /// At most this many items go in one request.
        per_request: usize,
        /// The size of every request sent, failed or not.
        requests: Arc<Mutex<Vec<usize>>>,
        /// This many first requests succeed whatever `failures` says.
        fail_after: usize,
    }

    impl Flaky {
        fn new(failures: u32, permanent: bool, seen: Arc<Mutex<Vec<u64>>>) -> Flaky {
            Flaky {
                failures: Arc::new(Mutex::new(failures)),
                permanent,
                seen,
                aligned: false,
                ends: Arc::default(),
                error: None,
                dead_letters: true,
                per_request: usize::MAX,
                requests: Arc::default(),
                fail_after: 0,
            }
        }
    }

    impl Exporter for Flaky {
        fn export<'a>(
            &'a mut self,
            batch: &'a [Item],
        ) -> BoxFuture<'a, Result<usize, ExportError>> {
            Box::pin(async move {
                let batch = &batch[..batch.len().min(self.per_request)];
                let sent_before = {
                    let mut requests = self.requests.lock().unwrap();
                    requests.push(batch.len());
                    requests.len() - 1
                };
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 && sent_before >= self.fail_after {
                    *failures -= 1;
                    if let Some(e) = &self.error {
                        return Err(e.clone());
                    }
                    return Err(if self.permanent {
                        ExportError::Permanent("400 bad request".into())
                    } else {
                        ExportError::Retryable {
                            message: "503".into(),
                            retry_after: Some(Duration::from_millis(5)),
                        }
                    });
                }
                self.ends.lock().unwrap().extend(batch.last().cloned());
                let mut seen = self.seen.lock().unwrap();
                seen.extend(batch.iter().filter_map(|i| match i {
                    Item::Entry { seq, .. } => Some(*seq),
                    Item::Checkpoint { .. } => None,
                }));
                Ok(batch.len())
            })
        }
    }

    fn append(writer: &mut journal::JournalWriter, seqs: std::ops::Range<u64>) {
        let mut payload = Vec::new();
        for seq in seqs {
            encode_entry(seq, format!(r#"{{"seq":{seq}}}"#).as_bytes(), &mut payload);
            writer.append(&payload).unwrap();
        }
        writer.commit().unwrap();
    }

    fn driver(journal: &Journal, exporter: Flaky, dir: &std::path::Path) -> Driver {
        Driver {
            checkpoint_aligned: exporter.aligned,
            dead_letters: exporter.dead_letters,
            id: "test".into(),
            journal: journal.clone(),
            cursor: journal.cursor("sink").unwrap(),
            exporter: Box::new(exporter),
            route: None,
            limits: BatchSettings {
                max_records: 7,
                max_bytes: bytesize::ByteSize::mib(1),
                max_age: Duration::ZERO,
            },
            retry: RetrySettings {
                initial_interval: Duration::from_millis(1),
                max_interval: Duration::from_millis(20),
                ..RetrySettings::default()
            },
            timeout: Duration::from_secs(5),
            position: Arc::new(AtomicU64::new(0)),
            dead_letter_dir: dir.join("dead-letter"),
            health: Arc::new(ExporterHealth::new("p", "sink")),
        }
    }

    async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_down_for_a_while_then_a_restart_loses_and_repeats_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..50);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flaky = Flaky::new(6, false, seen.clone());
        let failures = flaky.failures.clone();
        let (stop, abandon) = (CancellationToken::new(), CancellationToken::new());
        let task =
            tokio::spawn(driver(&journal, flaky, tmp.path()).run(stop.clone(), abandon.clone()));
        wait_for("the first 50 after six failures", || {
            seen.lock().unwrap().len() == 50
        })
        .await;
        assert_eq!(*failures.lock().unwrap(), 0);
        // The process stops part-way through later records…
        append(&mut writer, 50..60);
        wait_for("60", || seen.lock().unwrap().len() == 60).await;
        abandon.cancel();
        task.await.unwrap();
        append(&mut writer, 60..100);
        // …and a new driver resumes from the persisted cursor.
        let flaky = Flaky::new(3, false, seen.clone());
        let (stop, abandon) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(driver(&journal, flaky, tmp.path()).run(stop.clone(), abandon));
        stop.cancel();
        task.await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            (0..100).collect::<Vec<_>>(),
            "every record once, in order"
        );
        assert_eq!(journal.cursor("sink").unwrap().load(), 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_refused_for_good_goes_to_the_dead_letter_file_and_delivery_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flaky = Flaky::new(1, true, seen.clone());
        let stop = CancellationToken::new();
        stop.cancel();
        driver(&journal, flaky, tmp.path())
            .run(stop, CancellationToken::new())
            .await;
        // The first batch (7 records) was refused; the rest was delivered.
        assert_eq!(*seen.lock().unwrap(), (7..10).collect::<Vec<_>>());
        let dead =
            std::fs::read_to_string(tmp.path().join("dead-letter/00000000000000000000.jsonl"))
                .unwrap();
        let lines: Vec<&str> = dead.lines().collect();
        assert!(lines[0].contains("400 bad request"), "{}", lines[0]);
        assert_eq!(
            &lines[1..],
            (0..7)
                .map(|s| format!(r#"{{"seq":{s}}}"#))
                .collect::<Vec<_>>()
        );
    }

    /// The value of one series in a Prometheus text rendering.
    fn series(text: &str, name: &str) -> f64 {
        let prefix = format!(r#"{name}{{pipeline="p",exporter="sink"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing from:\n{text}"))
    }

    #[test]
    fn deliveries_are_counted_by_outcome_and_a_success_ends_the_failing_spell() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..10);
        // The first batch (7 entries) fails twice, then goes; then 3 more go.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let d = driver(&journal, Flaky::new(2, false, seen.clone()), tmp.path());
        let health = d.health.clone();
        let recorder = crate::telemetry::recorder();
        let handle = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(d.run(stop, CancellationToken::new()))
        });
        assert_eq!(seen.lock().unwrap().len(), 10);
        let text = handle.render();
        assert_eq!(series(&text, "vellum_exporter_sent_records_total"), 10.0);
        assert_eq!(series(&text, "vellum_exporter_failed_records_total"), 14.0);
        assert_eq!(series(&text, "vellum_exporter_retried_records_total"), 14.0);
        assert_eq!(health.failing_for(std::time::Instant::now()), None);

        // Refused for good: counted as failed and dead-lettered, not retried.
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j2"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..10);
        let d = driver(&journal, Flaky::new(1, true, seen.clone()), tmp.path());
        let recorder = crate::telemetry::recorder();
        let handle = recorder.handle();
        let stop = CancellationToken::new();
        stop.cancel();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(d.run(stop, CancellationToken::new()))
        });
        let text = handle.render();
        assert_eq!(series(&text, "vellum_exporter_failed_records_total"), 7.0);
        assert_eq!(
            series(&text, "vellum_exporter_dead_lettered_records_total"),
            7.0
        );
        assert_eq!(series(&text, "vellum_exporter_sent_records_total"), 3.0);
        assert!(
            !text.contains("vellum_exporter_retried_records_total"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_that_keeps_failing_shows_since_when() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..3);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let d = driver(&journal, Flaky::new(u32::MAX, false, seen), tmp.path());
        let health = d.health.clone();
        let abandon = CancellationToken::new();
        let task = tokio::spawn(d.run(CancellationToken::new(), abandon.clone()));
        wait_for("a failed attempt", || {
            health.failing_for(std::time::Instant::now()).is_some()
        })
        .await;
        let first = health.failing_for(std::time::Instant::now()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let later = health.failing_for(std::time::Instant::now()).unwrap();
        assert!(
            later >= first + Duration::from_millis(50),
            "the spell is timed from its first failure: {first:?} then {later:?}"
        );
        abandon.cancel();
        task.await.unwrap();
        assert_eq!(journal.cursor("sink").unwrap().load(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_credentials_hold_the_cursor_and_show_until_a_delivery_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut flaky = Flaky::new(u32::MAX, false, seen.clone());
        flaky.error = Some(ExportError::Unauthorized("403 Forbidden".into()));
        let failures = flaky.failures.clone();
        let d = driver(&journal, flaky, tmp.path());
        let health = d.health.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.run(stop.clone(), CancellationToken::new()));
        wait_for("a refused attempt", || health.unauthorized()).await;
        wait_for("several retries", || {
            *failures.lock().unwrap() < u32::MAX - 3
        })
        .await;
        assert_eq!(
            journal.cursor("sink").unwrap().load(),
            0,
            "the cursor holds"
        );
        assert!(health.failing_for(std::time::Instant::now()).is_some());
        // The credentials are fixed: the next attempt delivers everything.
        *failures.lock().unwrap() = 0;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
        assert!(!health.unauthorized());
        assert!(
            !tmp.path().join("dead-letter").exists(),
            "nothing dead-lettered"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exporter_without_dead_letters_retries_a_refusal_instead_of_skipping_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut flaky = Flaky::new(3, true, seen.clone());
        flaky.dead_letters = false;
        let stop = CancellationToken::new();
        stop.cancel();
        driver(&journal, flaky, tmp.path())
            .run(stop, CancellationToken::new())
            .await;
        assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
        assert!(
            !tmp.path().join("dead-letter").exists(),
            "nothing dead-lettered"
        );
    }

    #[test]
    fn backoff_draws_full_jitter_under_a_ceiling_that_doubles_to_its_cap() {
        let retry = RetrySettings {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(2),
            ..RetrySettings::default()
        };
        let ceilings_ms = [100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000, 2000];
        for (attempt, ceiling_ms) in ceilings_ms.into_iter().enumerate() {
            let ceiling = Duration::from_millis(ceiling_ms);
            let draws: Vec<Duration> = (0..400)
                .map(|_| retry.delay(attempt as u32, None))
                .collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Full jitter spreads over the whole range, from near 0 to near the ceiling;
            // equal jitter would never go below half of it.
            let (low, high) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
            assert!(*low < ceiling / 8, "attempt {attempt}: lowest {low:?}");
            assert!(
                *high > ceiling * 7 / 8,
                "attempt {attempt}: highest {high:?}"
            );
        }
        // Far past the cap, the shift saturates rather than overflowing.
        assert!(retry.delay(u32::MAX, None) <= Duration::from_secs(2));
        assert_eq!(
            retry.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7),
            "a longer Retry-After wins"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_request_is_retried_alone_and_nothing_delivered_goes_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..7);
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Requests of 3 items at most; the third request fails three times.
        let mut flaky = Flaky::new(3, false, seen.clone());
        flaky.per_request = 3;
        flaky.fail_after = 2;
        let requests = flaky.requests.clone();
        let stop = CancellationToken::new();
        stop.cancel();
        driver(&journal, flaky, tmp.path())
            .run(stop, CancellationToken::new())
            .await;
        assert_eq!(*seen.lock().unwrap(), (0..7).collect::<Vec<_>>());
        assert_eq!(*requests.lock().unwrap(), [3, 3, 1, 1, 1, 1]);
        assert_eq!(journal.cursor("sink").unwrap().load(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cursor_moves_past_each_request_delivered_so_a_restart_sends_only_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..7);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut flaky = Flaky::new(u32::MAX, false, seen.clone());
        flaky.per_request = 3;
        flaky.fail_after = 2;
        let requests = flaky.requests.clone();
        let abandon = CancellationToken::new();
        let task = tokio::spawn(
            driver(&journal, flaky, tmp.path()).run(CancellationToken::new(), abandon.clone()),
        );
        wait_for("retries of the third request", || {
            requests.lock().unwrap().len() > 4
        })
        .await;
        assert_eq!(journal.cursor("sink").unwrap().load(), 6);
        abandon.cancel();
        task.await.unwrap();
        // A new start sends only what the sink does not have.
        let flaky = Flaky::new(0, false, seen.clone());
        let requests = flaky.requests.clone();
        let stop = CancellationToken::new();
        stop.cancel();
        driver(&journal, flaky, tmp.path())
            .run(stop, CancellationToken::new())
            .await;
        assert_eq!(*requests.lock().unwrap(), [1]);
        assert_eq!(*seen.lock().unwrap(), (0..7).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_retries_off_a_failed_request_goes_to_the_dead_letter_file_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flaky = Flaky::new(1, false, seen.clone());
        let requests = flaky.requests.clone();
        let mut d = driver(&journal, flaky, tmp.path());
        d.retry.enabled = false;
        let stop = CancellationToken::new();
        stop.cancel();
        d.run(stop, CancellationToken::new()).await;
        assert_eq!(*seen.lock().unwrap(), (7..10).collect::<Vec<_>>());
        assert_eq!(*requests.lock().unwrap(), [7, 3], "no retry");
        let dead =
            std::fs::read_to_string(tmp.path().join("dead-letter/00000000000000000000.jsonl"))
                .unwrap();
        assert!(dead.contains("retries are off: 503"), "{dead}");
        assert_eq!(dead.lines().count(), 1 + 7);
        assert_eq!(journal.cursor("sink").unwrap().load(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_failing_past_max_elapsed_time_is_given_up_but_not_before() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        append(&mut writer, 0..3);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flaky = Flaky::new(u32::MAX, false, seen.clone());
        let requests = flaky.requests.clone();
        let mut d = driver(&journal, flaky, tmp.path());
        d.retry.max_elapsed_time = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let stop = CancellationToken::new();
        stop.cancel();
        d.run(stop, CancellationToken::new()).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(requests.lock().unwrap().len() > 2, "retried until then");
        assert!(seen.lock().unwrap().is_empty());
        let dead =
            std::fs::read_to_string(tmp.path().join("dead-letter/00000000000000000000.jsonl"))
                .unwrap();
        assert!(dead.contains("max_elapsed_time"), "{dead}");
        assert_eq!(journal.cursor("sink").unwrap().load(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aligned_batches_end_at_checkpoints_and_the_tail_waits_for_the_next() {
        use crate::pipeline::frame::{CheckpointFrame, encode_checkpoint};
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        let checkpoint = |size| {
            encode_checkpoint(&CheckpointFrame {
                stream: "s".into(),
                size,
                note: format!("n{size}"),
                head: String::new(),
                frontier: Vec::new(),
            })
        };
        append(&mut writer, 0..10);
        writer.append(&checkpoint(10)).unwrap();
        append(&mut writer, 10..25);
        writer.append(&checkpoint(25)).unwrap();
        append(&mut writer, 25..30);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut flaky = Flaky::new(0, false, seen.clone());
        flaky.aligned = true;
        let ends = flaky.ends.clone();
        let stop = CancellationToken::new();
        stop.cancel();
        driver(&journal, flaky, tmp.path())
            .run(stop, CancellationToken::new())
            .await;
        assert_eq!(
            *seen.lock().unwrap(),
            (0..25).collect::<Vec<_>>(),
            "the tail after the last checkpoint waits"
        );
        let ends = ends.lock().unwrap();
        assert!(
            ends.iter().all(|i| matches!(i, Item::Checkpoint { .. })),
            "{ends:?}"
        );
        // The cursor stops at the first entry not delivered (journal index 27: 25 entries, 2 checkpoints).
        assert_eq!(journal.cursor("sink").unwrap().load(), 27);
    }
}
