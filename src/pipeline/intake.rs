//! What receivers submit to: a pipeline's processors, backpressure and writer queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::{Semaphore, oneshot};

use super::writer::WriteRequest;
use crate::component::{Intake, Processor, Submit, SubmitError, SubmitFuture};
use crate::event::Record;
use crate::journal::Journal;

/// How long clients are told to wait when the backlog is full.
const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Batches queued for the writer at once; past this, submitters wait their turn.
const MAX_QUEUED_BATCHES: usize = 4096;

/// One pipeline's entry point.
pub struct PipelineIntake {
    pub pipeline: String,
    processors: Vec<Arc<dyn Processor>>,
    queue: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    queued: Semaphore,
    journal: Journal,
    /// Each exporter's next journal index; the slowest sets the backlog.
    positions: Vec<Arc<AtomicU64>>,
    max_backlog: u64,
    /// Exporters with a `sending_queue.queue_size` of their own: their position and it.
    queue_sizes: Vec<(Arc<AtomicU64>, u64)>,
}

impl PipelineIntake {
    pub fn new(
        pipeline: String,
        processors: Vec<Arc<dyn Processor>>,
        queue: mpsc::Sender<WriteRequest>,
        journal: Journal,
        positions: Vec<Arc<AtomicU64>>,
        max_backlog: u64,
    ) -> PipelineIntake {
        PipelineIntake {
            pipeline,
            processors,
            queue: Mutex::new(Some(queue)),
            queued: Semaphore::new(MAX_QUEUED_BATCHES),
            journal,
            positions,
            max_backlog,
            queue_sizes: Vec::new(),
        }
    }

    /// Pushes back also when one of these exporters lags more than its own limit.
    pub fn with_queue_sizes(mut self, queue_sizes: Vec<(Arc<AtomicU64>, u64)>) -> PipelineIntake {
        self.queue_sizes = queue_sizes;
        self
    }

    /// Whether new records must wait: the slowest exporter is past the pipeline's
    /// backlog, or an exporter past its own `queue_size`.
    fn full(&self) -> bool {
        let end = self.journal.committed_end();
        self.backlog() > self.max_backlog
            || self
                .queue_sizes
                .iter()
                .any(|(p, limit)| end.saturating_sub(p.load(Ordering::Acquire)) > *limit)
    }

    /// Records accepted but not yet delivered by the slowest exporter.
    pub fn backlog(&self) -> u64 {
        let end = self.journal.committed_end();
        let slowest = self
            .positions
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(end);
        end.saturating_sub(slowest)
    }

    /// Refuses new batches from now on; the writer ends once queued ones are written.
    pub fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        self.queued.close();
    }

    /// Writes records the daemon itself makes (retention's purge records) straight to
    /// the writer: no processor changes them and the backlog never refuses them. Returns
    /// once they are durable, like a receiver's submit.
    pub async fn submit_internal(&self, records: Vec<Record>) -> Result<(), SubmitError> {
        let _permit = self
            .queued
            .acquire()
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        let (done, answer) = oneshot::channel();
        {
            let queue = self.queue.lock().map_err(|_| SubmitError::ShuttingDown)?;
            let sender = queue.as_ref().ok_or(SubmitError::ShuttingDown)?;
            sender
                .send(WriteRequest { records, done })
                .map_err(|_| SubmitError::ShuttingDown)?;
        }
        answer.await.unwrap_or(Err(SubmitError::ShuttingDown))
    }

    async fn submit_owned(self: Arc<Self>, records: Vec<Record>) -> Result<(), SubmitError> {
        if self.full() {
            return Err(SubmitError::Overloaded {
                retry_after: OVERLOAD_RETRY_AFTER,
            });
        }
        let mut records = records;
        for p in &self.processors {
            records = p.process(records);
        }
        if records.is_empty() {
            return Ok(());
        }
        self.submit_internal(records).await
    }
}

/// The intake of one pipeline, shared.
pub struct SharedIntake(pub Arc<PipelineIntake>);

impl Submit for SharedIntake {
    fn submit(&self, records: Vec<Record>) -> SubmitFuture {
        Box::pin(self.0.clone().submit_owned(records))
    }
}

/// A receiver that feeds several pipelines: each gets its own copy, and the client is
/// answered `Ok` only when every pipeline has made it durable. If one refuses, the
/// client retries, and pipelines that had accepted may hold the batch twice (at least
/// once, never lost).
pub struct Fanout(pub Vec<Arc<PipelineIntake>>);

impl Submit for Fanout {
    fn submit(&self, records: Vec<Record>) -> SubmitFuture {
        let targets = self.0.clone();
        Box::pin(async move {
            let mut copies = Vec::with_capacity(targets.len());
            let last = targets.len().saturating_sub(1);
            let mut records = Some(records);
            for (i, t) in targets.into_iter().enumerate() {
                let batch = if i == last {
                    records.take().unwrap_or_default()
                } else {
                    records.clone().unwrap_or_default()
                };
                copies.push(t.submit_owned(batch));
            }
            join_all(copies)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(|_| ())
        })
    }
}

/// The intake a receiver gets for the pipelines it feeds.
pub fn for_receiver(pipelines: Vec<Arc<PipelineIntake>>) -> Intake {
    if pipelines.len() == 1 {
        Arc::new(SharedIntake(pipelines[0].clone()))
    } else {
        Arc::new(Fanout(pipelines))
    }
}

/// Where each receiver's records go, by receiver id, swappable while receivers keep
/// listening: a reload replaces the pipelines behind a receiver without closing its port.
///
/// A submission holds a read lock until its records are durable; a reload takes the write
/// lock, so it starts only once every submission in flight has been answered by the old
/// pipelines, and submissions arriving meanwhile wait for the new ones instead of being
/// refused (a UDP sender could not retry).
#[derive(Default)]
pub struct Switchboard {
    targets: tokio::sync::RwLock<std::collections::HashMap<String, Intake>>,
}

impl Switchboard {
    /// The intake to hand receiver `id` when it starts.
    pub fn intake_for(self: &Arc<Self>, id: &str) -> Intake {
        Arc::new(Switched {
            board: self.clone(),
            receiver: id.to_string(),
        })
    }

    /// Points receiver `id` at `intake` (or at nothing: its submissions are refused).
    pub async fn set(&self, id: &str, intake: Option<Intake>) {
        let mut targets = self.targets.write().await;
        match intake {
            Some(i) => targets.insert(id.to_string(), i),
            None => targets.remove(id),
        };
    }

    /// Waits (at most `within`) until no submission is in flight, and holds new ones back
    /// until the guard is dropped.
    pub async fn pause(
        &self,
        within: Duration,
    ) -> Option<tokio::sync::RwLockWriteGuard<'_, std::collections::HashMap<String, Intake>>> {
        tokio::time::timeout(within, self.targets.write())
            .await
            .ok()
    }
}

struct Switched {
    board: Arc<Switchboard>,
    receiver: String,
}

impl Submit for Switched {
    fn submit(&self, records: Vec<Record>) -> SubmitFuture {
        let board = self.board.clone();
        let receiver = self.receiver.clone();
        Box::pin(async move {
            let targets = board.targets.read().await;
            let intake = targets
                .get(&receiver)
                .cloned()
                .ok_or(SubmitError::ShuttingDown)?;
            // The read guard lives until the records are durable (see `Switchboard`).
            let outcome = intake.submit(records).await;
            drop(targets);
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{self, JournalOptions};

    #[tokio::test]
    async fn an_exporter_past_its_own_queue_size_pushes_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(tmp.path(), JournalOptions::default()).unwrap();
        for _ in 0..100 {
            writer.append(b"E").unwrap();
        }
        writer.commit().unwrap();
        let fast = Arc::new(AtomicU64::new(100));
        let queued = Arc::new(AtomicU64::new(0));
        let (queue, _requests) = mpsc::channel();
        let intake = Arc::new(
            PipelineIntake::new(
                "p".into(),
                Vec::new(),
                queue,
                journal,
                vec![fast.clone(), queued.clone()],
                1_000,
            )
            .with_queue_sizes(vec![(queued.clone(), 99)]),
        );
        let refused = intake.clone().submit_owned(vec![Record::new("t")]).await;
        assert!(
            matches!(refused, Err(SubmitError::Overloaded { .. })),
            "{refused:?}"
        );
        queued.store(1, Ordering::Release);
        assert!(!intake.full(), "99 waiting is within a queue_size of 99");
    }

    #[tokio::test]
    async fn a_full_backlog_pushes_back_and_a_closed_intake_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut writer, journal, _) =
            journal::open(tmp.path(), JournalOptions::default()).unwrap();
        for _ in 0..100 {
            writer.append(b"E").unwrap();
        }
        writer.commit().unwrap();
        let slow = Arc::new(AtomicU64::new(0));
        let (queue, requests) = mpsc::channel();
        let intake = Arc::new(PipelineIntake::new(
            "p".into(),
            Vec::new(),
            queue,
            journal,
            vec![slow.clone()],
            50,
        ));
        assert_eq!(intake.backlog(), 100);
        let refused = intake.clone().submit_owned(vec![Record::new("t")]).await;
        assert!(
            matches!(refused, Err(SubmitError::Overloaded { .. })),
            "{refused:?}"
        );
        assert!(requests.try_recv().is_err(), "nothing reached the writer");

        // The exporter catches up: the batch goes to the writer, and its answer comes back.
        slow.store(60, Ordering::Release);
        let answering = std::thread::spawn(move || {
            let request = requests.recv().unwrap();
            assert_eq!(request.records.len(), 1);
            request.done.send(Ok(())).unwrap();
            requests
        });
        assert!(
            intake
                .clone()
                .submit_owned(vec![Record::new("t")])
                .await
                .is_ok()
        );
        let _requests = answering.join().unwrap();

        intake.close();
        let refused = intake.clone().submit_owned(vec![Record::new("t")]).await;
        assert!(
            matches!(refused, Err(SubmitError::ShuttingDown)),
            "{refused:?}"
        );
    }

    /// Counts what it was given; answers once `gate` opens.
    struct Target {
        name: &'static str,
        log: Arc<Mutex<Vec<&'static str>>>,
        gate: Arc<tokio::sync::Notify>,
    }

    impl Submit for Target {
        fn submit(&self, _: Vec<Record>) -> SubmitFuture {
            let (name, log, gate) = (self.name, self.log.clone(), self.gate.clone());
            Box::pin(async move {
                gate.notified().await;
                log.lock().unwrap().push(name);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_paused_switchboard_waits_for_submissions_in_flight_and_holds_new_ones_for_the_new_target()
     {
        let log = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let target = |name| -> Intake {
            Arc::new(Target {
                name,
                log: log.clone(),
                gate: gate.clone(),
            })
        };
        let board = Arc::new(Switchboard::default());
        board.set("r", Some(target("old"))).await;
        let intake = board.intake_for("r");

        let in_flight = tokio::spawn(intake.submit(vec![Record::new("t")]));
        tokio::task::yield_now().await;
        // The submission holds the board: a pause cannot begin yet.
        assert!(board.pause(Duration::from_millis(50)).await.is_none());

        gate.notify_one();
        assert!(in_flight.await.unwrap().is_ok());
        let mut targets = board.pause(Duration::from_secs(5)).await.expect("paused");
        // Submitted during the pause: it waits rather than being refused…
        let waiting = tokio::spawn(intake.submit(vec![Record::new("t")]));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        targets.insert("r".into(), target("new"));
        drop(targets);
        // …and goes to the new target once the pause ends.
        gate.notify_one();
        assert!(waiting.await.unwrap().is_ok());
        assert_eq!(*log.lock().unwrap(), vec!["old", "new"]);

        board.set("r", None).await;
        let refused = intake.submit(vec![Record::new("t")]).await;
        assert!(
            matches!(refused, Err(SubmitError::ShuttingDown)),
            "{refused:?}"
        );
    }
}
