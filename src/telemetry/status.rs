//! The status board: what `/readyz` checks and what the `/metrics` gauges show.
//!
//! The telemetry server lives as long as the process; pipeline services come and go
//! with reloads. So the server holds one [`Status`], and each running service attaches
//! a [`ServiceStatus`] to it (`Service::attach`) and detaches it when it starts to shut
//! down. The parts a service is made of publish their state here as it changes, with
//! atomics and no locks on the record path: the writer thread its [`WriterStatus`], each
//! exporter driver its [`ExporterHealth`] and position.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::task::AbortHandle;

use crate::journal::Journal;

/// The board the telemetry server reads, shared with whichever service runs.
#[derive(Default)]
pub struct Status {
    service: RwLock<Option<Arc<ServiceStatus>>>,
}

/// What a running service is made of, as far as health and gauges go.
pub struct ServiceStatus {
    pub receivers: Vec<ReceiverStatus>,
    pub pipelines: Vec<Arc<PipelineStatus>>,
    /// How long an exporter may fail without delivering before the daemon is not ready.
    pub exporter_stuck_after: Duration,
}

/// One listening receiver: its server task ends only at shutdown or when serving failed.
pub struct ReceiverStatus {
    pub id: String,
    pub task: AbortHandle,
}

pub struct PipelineStatus {
    pub id: String,
    pub stream: String,
    pub journal: Journal,
    pub writer: Arc<WriterStatus>,
    pub exporters: Vec<ExporterStatus>,
}

/// One exporter driver of a pipeline.
pub struct ExporterStatus {
    pub health: Arc<ExporterHealth>,
    /// The journal index the driver has delivered up to.
    pub position: Arc<AtomicU64>,
    /// How many records may wait for it before receivers push back.
    pub capacity: u64,
    /// The driver's task, once it runs (after a reload it starts when its predecessor
    /// has let go of the cursor).
    pub task: Arc<std::sync::OnceLock<AbortHandle>>,
}

/// One check `/readyz` found failing. Names components only, never record content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// `service`, `receiver`, `journal` or `exporter`.
    pub check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub detail: String,
}

impl Status {
    pub fn new() -> Arc<Status> {
        Arc::new(Status::default())
    }

    /// Makes `service` the one reported on, replacing any other.
    pub fn attach(&self, service: Arc<ServiceStatus>) {
        if let Ok(mut current) = self.service.write() {
            *current = Some(service);
        }
    }

    /// Stops reporting on `service` (and only on it: a newer one stays attached).
    pub fn detach(&self, service: &Arc<ServiceStatus>) {
        if let Ok(mut current) = self.service.write()
            && current.as_ref().is_some_and(|c| Arc::ptr_eq(c, service))
        {
            *current = None;
        }
    }

    fn current(&self) -> Option<Arc<ServiceStatus>> {
        self.service.read().ok().and_then(|s| s.clone())
    }

    /// Every readiness check that fails; empty when the daemon is ready.
    pub fn readiness(&self) -> Vec<Failure> {
        match self.current() {
            Some(service) => service.readiness(Instant::now()),
            None => vec![Failure {
                check: "service",
                pipeline: None,
                component: None,
                detail: "no pipeline service is running: starting, reloading or stopping".into(),
            }],
        }
    }

    /// Sets every gauge to its current value; called before each scrape is rendered.
    pub fn publish_gauges(&self) {
        if let Some(service) = self.current() {
            service.publish_gauges(Instant::now(), SystemTime::now());
        }
    }
}

impl ServiceStatus {
    fn readiness(&self, now: Instant) -> Vec<Failure> {
        let mut failing = Vec::new();
        for r in &self.receivers {
            if r.task.is_finished() {
                failing.push(Failure {
                    check: "receiver",
                    pipeline: None,
                    component: Some(r.id.clone()),
                    detail: "not listening: its server stopped".into(),
                });
            }
        }
        for p in &self.pipelines {
            if let Some(detail) = p.writer.unwritable() {
                failing.push(Failure {
                    check: "journal",
                    pipeline: Some(p.id.clone()),
                    component: None,
                    detail,
                });
            }
            let end = p.journal.committed_end();
            for e in &p.exporters {
                let lag = end.saturating_sub(e.position.load(Ordering::Acquire));
                let detail = if e.task.get().is_some_and(AbortHandle::is_finished) {
                    Some("its driver stopped".to_string())
                } else if e.health.unauthorized() {
                    // No waiting for `exporter_stuck_after`: only an operator can fix it.
                    Some(format!(
                        "the sink refuses its credentials; delivery is retried and {lag} records wait"
                    ))
                } else {
                    e.health
                        .failing_for(now)
                        .filter(|f| *f >= self.exporter_stuck_after && lag > 0)
                        .map(|f| {
                            format!(
                                "failing without delivering for {}s, {lag} records waiting",
                                f.as_secs()
                            )
                        })
                };
                if let Some(detail) = detail {
                    failing.push(Failure {
                        check: "exporter",
                        pipeline: Some(p.id.clone()),
                        component: Some(e.health.exporter.clone()),
                        detail,
                    });
                }
            }
        }
        failing
    }

    fn publish_gauges(&self, now: Instant, wall: SystemTime) {
        for p in &self.pipelines {
            let end = p.journal.committed_end();
            metrics::gauge!("vellum_journal_disk_bytes", "pipeline" => p.id.clone())
                .set(p.journal.disk_bytes() as f64);
            if let Some(seq) = p.writer.head_seq() {
                metrics::gauge!("vellum_chain_head_seq", "stream" => p.stream.clone())
                    .set(seq as f64);
            }
            if let Some(age) = p.writer.checkpoint_age(wall) {
                metrics::gauge!("vellum_chain_checkpoint_age_seconds", "stream" => p.stream.clone())
                    .set(age.as_secs_f64());
            }
            for e in &p.exporters {
                let labels = [
                    ("pipeline", e.health.pipeline.clone()),
                    ("exporter", e.health.exporter.clone()),
                ];
                let lag = end.saturating_sub(e.position.load(Ordering::Acquire));
                metrics::gauge!("vellum_exporter_lag_records", &labels).set(lag as f64);
                // The journal is the exporter's queue: what waits in it is the queue's size.
                metrics::gauge!("otelcol_exporter_queue_size", "exporter" => e.health.exporter.clone())
                    .set(lag as f64);
                metrics::gauge!("otelcol_exporter_queue_capacity", "exporter" => e.health.exporter.clone())
                    .set(e.capacity as f64);
                let failing = e.health.failing_for(now).unwrap_or_default();
                metrics::gauge!("vellum_exporter_failing_seconds", &labels)
                    .set(failing.as_secs_f64());
            }
        }
    }
}

/// What a pipeline's writer thread publishes: whether it can still write, and its chain.
#[derive(Debug)]
pub struct WriterStatus {
    running: AtomicBool,
    /// Why the journal refuses writes, while it does (cleared when it reopens).
    failed: std::sync::Mutex<Option<String>>,
    next_seq: AtomicU64,
    /// Milliseconds since the Unix epoch of the newest committed checkpoint; 0: none.
    last_checkpoint_ms: AtomicU64,
}

impl WriterStatus {
    /// A writer about to run, whose chain continues at `next_seq`.
    pub fn new(next_seq: u64, last_checkpoint: Option<SystemTime>) -> WriterStatus {
        let status = WriterStatus {
            running: AtomicBool::new(true),
            failed: std::sync::Mutex::new(None),
            next_seq: AtomicU64::new(next_seq),
            last_checkpoint_ms: AtomicU64::new(0),
        };
        if let Some(at) = last_checkpoint {
            status.checkpointed(at);
        }
        status
    }

    /// Held by the writer thread while it runs: dropped when it returns or panics.
    pub fn running(self: &Arc<Self>) -> RunningGuard {
        RunningGuard(self.clone())
    }

    /// A group was committed; the chain continues at `next_seq`.
    pub fn committed(&self, next_seq: u64) {
        self.next_seq.store(next_seq, Ordering::Release);
    }

    /// A checkpoint was committed at `at`.
    pub fn checkpointed(&self, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64);
        self.last_checkpoint_ms.store(ms, Ordering::Release);
    }

    /// A commit failed for `reason`: the writer refuses writes until it has reopened
    /// the journal from disk.
    pub fn failed(&self, reason: &str) {
        *self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.to_string());
    }

    /// The journal was reopened and the chain rebuilt: writes are taken again.
    pub fn reopened(&self) {
        *self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Why the journal cannot take records, if it cannot.
    pub fn unwritable(&self) -> Option<String> {
        if !self.running.load(Ordering::Acquire) {
            return Some("its writer thread is not running".into());
        }
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failed.as_ref().map(|reason| {
            format!(
                "its last commit failed ({reason}); writes are refused until the journal reopens"
            )
        })
    }

    /// The seq of the newest committed entry.
    pub fn head_seq(&self) -> Option<u64> {
        self.next_seq.load(Ordering::Acquire).checked_sub(1)
    }

    /// How long ago the newest checkpoint was committed (zero if the clock went back).
    pub fn checkpoint_age(&self, now: SystemTime) -> Option<Duration> {
        match self.last_checkpoint_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(
                now.duration_since(UNIX_EPOCH + Duration::from_millis(ms))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// Marks the writer stopped when dropped.
pub struct RunningGuard(Arc<WriterStatus>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// What an exporter driver publishes: since when its deliveries fail.
#[derive(Debug)]
pub struct ExporterHealth {
    pub pipeline: String,
    pub exporter: String,
    /// When the first of the current run of failed attempts happened; None after a success.
    failing_since: Mutex<Option<Instant>>,
    /// The last attempt failed because the sink refused the exporter's credentials.
    unauthorized: AtomicBool,
}

impl ExporterHealth {
    pub fn new(pipeline: impl Into<String>, exporter: impl Into<String>) -> ExporterHealth {
        ExporterHealth {
            pipeline: pipeline.into(),
            exporter: exporter.into(),
            failing_since: Mutex::new(None),
            unauthorized: AtomicBool::new(false),
        }
    }

    /// Whether the last failed attempt was a refusal of the exporter's credentials.
    pub fn set_unauthorized(&self, refused: bool) {
        self.unauthorized.store(refused, Ordering::Release);
    }

    /// Whether the sink refuses the exporter's credentials right now.
    pub fn unauthorized(&self) -> bool {
        self.unauthorized.load(Ordering::Acquire)
    }

    /// An attempt failed; the clock starts at the first failure of a run.
    pub fn attempt_failed(&self) {
        if let Ok(mut since) = self.failing_since.lock() {
            since.get_or_insert_with(Instant::now);
        }
    }

    /// The cursor moved: a batch was delivered or dead-lettered.
    pub fn progressed(&self) {
        if let Ok(mut since) = self.failing_since.lock() {
            *since = None;
        }
        self.unauthorized.store(false, Ordering::Release);
    }

    /// How long deliveries have been failing, if the last attempt failed.
    pub fn failing_for(&self, now: Instant) -> Option<Duration> {
        self.failing_since
            .lock()
            .ok()
            .and_then(|s| *s)
            .map(|since| now.saturating_duration_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{self, JournalOptions};

    /// A pipeline with `committed` records in its journal and one exporter at `position`.
    struct Fixture {
        _tmp: tempfile::TempDir,
        _writer: journal::JournalWriter,
        status: Arc<ServiceStatus>,
        writer: Arc<WriterStatus>,
        health: Arc<ExporterHealth>,
        position: Arc<AtomicU64>,
        receiver_task: tokio::task::JoinHandle<()>,
        exporter_task: tokio::task::JoinHandle<()>,
    }

    fn fixture(rt: &tokio::runtime::Runtime, committed: u64, stuck_after: Duration) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let (mut journal_writer, journal, _) =
            journal::open(&tmp.path().join("j"), JournalOptions::default()).unwrap();
        for _ in 0..committed {
            journal_writer.append(b"E").unwrap();
        }
        journal_writer.commit().unwrap();
        let forever = || rt.spawn(futures::future::pending::<()>());
        let (receiver_task, exporter_task) = (forever(), forever());
        let writer = Arc::new(WriterStatus::new(committed, None));
        let health = Arc::new(ExporterHealth::new("logs/audit", "webhook/soc"));
        let position = Arc::new(AtomicU64::new(0));
        let status = Arc::new(ServiceStatus {
            receivers: vec![ReceiverStatus {
                id: "otlp".into(),
                task: receiver_task.abort_handle(),
            }],
            pipelines: vec![Arc::new(PipelineStatus {
                id: "logs/audit".into(),
                stream: "audit".into(),
                journal,
                writer: writer.clone(),
                exporters: vec![ExporterStatus {
                    health: health.clone(),
                    position: position.clone(),
                    capacity: 1_000_000,
                    task: Arc::new(exporter_task.abort_handle().into()),
                }],
            })],
            exporter_stuck_after: stuck_after,
        });
        Fixture {
            _tmp: tmp,
            _writer: journal_writer,
            status,
            writer,
            health,
            position,
            receiver_task,
            exporter_task,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn checks(failures: &[Failure]) -> Vec<(&str, Option<&str>)> {
        failures
            .iter()
            .map(|f| (f.check, f.component.as_deref()))
            .collect()
    }

    #[test]
    fn without_a_service_the_board_is_not_ready_and_a_stale_detach_changes_nothing() {
        let rt = runtime();
        let board = Status::new();
        assert_eq!(checks(&board.readiness()), vec![("service", None)]);
        let old = fixture(&rt, 3, Duration::from_secs(60));
        let new = fixture(&rt, 3, Duration::from_secs(60));
        board.attach(old.status.clone());
        board.attach(new.status.clone());
        board.detach(&old.status);
        assert!(board.readiness().is_empty(), "the newer service stays");
        board.detach(&new.status);
        assert_eq!(checks(&board.readiness()), vec![("service", None)]);
    }

    #[test]
    fn an_exporter_is_stuck_only_past_the_threshold_and_only_with_a_backlog() {
        let rt = runtime();
        let f = fixture(&rt, 10, Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(f.status.readiness(t0).is_empty());
        f.health.attempt_failed();
        f.health.attempt_failed();
        let since = f.health.failing_for(Instant::now()).unwrap();
        assert!(
            since < Duration::from_secs(1),
            "the clock starts at the first failure"
        );
        assert!(
            f.status
                .readiness(Instant::now() + Duration::from_secs(29))
                .is_empty()
        );
        let later = Instant::now() + Duration::from_secs(31);
        let failing = f.status.readiness(later);
        assert_eq!(checks(&failing), vec![("exporter", Some("webhook/soc"))]);
        assert_eq!(failing[0].pipeline.as_deref(), Some("logs/audit"));
        assert!(
            failing[0].detail.contains("10 records waiting"),
            "{failing:?}"
        );
        // Caught up (e.g. everything left was routed elsewhere): nothing is waiting.
        f.position.store(10, Ordering::Release);
        assert!(f.status.readiness(later).is_empty());
        f.position.store(4, Ordering::Release);
        assert!(!f.status.readiness(later).is_empty());
        f.health.progressed();
        assert!(f.status.readiness(later).is_empty());
        assert_eq!(f.health.failing_for(later), None);
    }

    #[test]
    fn a_failed_commit_a_stopped_writer_and_stopped_tasks_each_fail_readiness() {
        let rt = runtime();
        let f = fixture(&rt, 1, Duration::from_secs(30));
        f.writer.failed("no space left on the journal's disk");
        assert_eq!(
            checks(&f.status.readiness(Instant::now())),
            vec![("journal", None)]
        );
        let f = fixture(&rt, 1, Duration::from_secs(30));
        drop(f.writer.running());
        let failing = f.status.readiness(Instant::now());
        assert!(failing[0].detail.contains("not running"), "{failing:?}");

        let f = fixture(&rt, 1, Duration::from_secs(30));
        f.receiver_task.abort();
        f.exporter_task.abort();
        rt.block_on(async {
            let _ = (&mut { f.receiver_task }).await;
            let _ = (&mut { f.exporter_task }).await;
        });
        assert_eq!(
            checks(&f.status.readiness(Instant::now())),
            vec![
                ("receiver", Some("otlp")),
                ("exporter", Some("webhook/soc"))
            ]
        );
    }

    #[test]
    fn gauges_show_lag_disk_size_head_and_checkpoint_age() {
        let rt = runtime();
        let f = fixture(&rt, 12, Duration::from_secs(30));
        f.position.store(5, Ordering::Release);
        let now = SystemTime::now();
        f.writer.checkpointed(now - Duration::from_secs(42));
        let recorder = crate::telemetry::recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || f.status.publish_gauges(Instant::now(), now));
        let text = handle.render();
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
        };
        assert_eq!(
            value(r#"vellum_exporter_lag_records{pipeline="logs/audit",exporter="webhook/soc"}"#),
            7.0
        );
        assert_eq!(
            value(
                r#"vellum_exporter_failing_seconds{pipeline="logs/audit",exporter="webhook/soc"}"#
            ),
            0.0
        );
        assert_eq!(value(r#"vellum_chain_head_seq{stream="audit"}"#), 11.0);
        let age = value(r#"vellum_chain_checkpoint_age_seconds{stream="audit"}"#);
        assert!((41.9..=42.1).contains(&age), "{age}");
        let on_disk: u64 = std::fs::read_dir(f.status.pipelines[0].journal.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(on_disk > 0);
        assert_eq!(
            value(r#"vellum_journal_disk_bytes{pipeline="logs/audit"}"#),
            on_disk as f64
        );
    }

    #[test]
    fn an_empty_chain_has_no_head_and_no_checkpoint_yet() {
        let w = WriterStatus::new(0, None);
        assert_eq!(w.head_seq(), None);
        assert_eq!(w.checkpoint_age(SystemTime::now()), None);
        w.committed(1);
        assert_eq!(w.head_seq(), Some(0));
        assert!(w.unwritable().is_none());
    }
}
