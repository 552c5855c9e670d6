//! Building the running graph from a configuration, and taking it down again.
//!
//! ```text
//! receivers ──► intake (processors, backpressure) ──► writer thread (seal, group fsync)
//!                                                        │
//!                                                     journal ──► one driver per exporter
//! ```
//!
//! [`plan`] does everything that needs no I/O (building processors, parsing routes and
//! keys), so `vellum validate` reports the same problems `vellum run` would. [`start`]
//! opens the storage, recovers each chain, and starts writers, exporters, retention and
//! receivers, in that order; [`Service::shutdown`] stops them in reverse: receivers stop
//! accepting, retention stops, writers commit what they hold and sign a last checkpoint,
//! exporters drain.

pub mod dead_letter;
pub mod export;
pub mod frame;
pub mod intake;
pub mod reload;
pub mod retention;
pub mod routing;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::component::{Processor, ReceiverHandle};
use crate::config::{ComponentId, Config, ExporterRef, StorageConfig};
use crate::evidence::hmac::KeyRing;
use crate::evidence::note::{self, NoteSigner};
use crate::exporters::{EvidenceStore, ExporterConfig, ExporterContext};
use crate::journal::{self, Journal, JournalOptions, JournalWriter};
use crate::paths::stream_folder;
use crate::processors::Stage;
use crate::processors::hash_chain::HashChainConfig;
use crate::query::access::{self, ACCESS_STREAM};
use crate::receivers::{Limits, ReceiverConfig};
use crate::telemetry::status::{
    ExporterHealth, ExporterStatus, PipelineStatus, ReceiverStatus, ServiceStatus, Status,
};
use export::Driver;
use intake::{PipelineIntake, Switchboard};
use routing::Route;
use writer::{Checkpointing, WriteRequest, Writer, WriterSettings};

/// A pipeline, resolved.
pub struct PipelinePlan {
    pub id: String,
    pub stream: String,
    pub processors: Vec<Arc<dyn Processor>>,
    pub chain: Option<HashChainConfig>,
    /// The checkpoint signer when the key was given in the configuration.
    pub signer: Option<NoteSigner>,
    pub keys: Option<KeyRing>,
    pub exporters: Vec<(ComponentId, ExporterConfig, Option<Arc<Route>>)>,
}

pub struct Plan {
    pub pipelines: Vec<PipelinePlan>,
    /// Each receiver and the indexes of the pipelines it feeds.
    pub receivers: Vec<(ComponentId, ReceiverConfig, Vec<usize>)>,
}

/// Resolves a configuration [`Config::from_yaml`] has validated: what could be wrong
/// (constructors' refusals, chains, routes, streams, keys) was reported there with its
/// YAML position, so a problem here means a check is missing from the loader.
pub fn plan(config: &Config) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let mut pipelines = Vec::new();
    for (id, p) in &config.service.pipelines {
        let mut processors: Vec<Arc<dyn Processor>> = Vec::new();
        let mut chain = None;
        let mut keys = None;
        let mut chain_id = "hash_chain";
        for pid in &p.processors {
            let Some(cfg) = ComponentId::parse(pid)
                .ok()
                .and_then(|c| config.processors.get(&c))
            else {
                continue;
            };
            match cfg.build(pid) {
                Ok(Stage::Process(p)) => processors.push(p),
                Ok(Stage::Chain(c)) => {
                    chain = Some(c);
                    chain_id = pid;
                }
                Ok(Stage::Sign(ring)) => keys = Some(ring),
                Err(e) => problems.push(format!("processors.{pid}: {e}")),
            }
        }
        let stream = HashChainConfig::stream_of(chain.as_ref(), id);
        // The loader has checked the key against the stream; this is the same helper.
        if id == ACCESS_STREAM || stream == ACCESS_STREAM {
            problems.push(format!(
                "service.pipelines.{id}: `{ACCESS_STREAM}` is the query API's access stream, which the daemon writes itself; choose another name"
            ));
        }
        let signer = match chain.as_ref().map(|c| c.signer_for(&stream)) {
            Some(Ok(signer)) => signer,
            Some(Err(e)) => {
                problems.push(format!("processors.{chain_id}.signing_key: {e}"));
                None
            }
            None => None,
        };
        let mut exporters = Vec::new();
        for r in &p.exporters {
            let Some((eid, cfg)) = ComponentId::parse(r.id())
                .ok()
                .and_then(|c| config.exporters.get_key_value(&c))
            else {
                continue;
            };
            let route = match r {
                ExporterRef::Routed { when: Some(w), .. } => match Route::new(w) {
                    Ok(route) => Some(Arc::new(route)),
                    Err((col, m)) => {
                        problems.push(format!(
                            "service.pipelines.{id}.exporters.{eid}.when: column {col}: {m}"
                        ));
                        None
                    }
                },
                _ => None,
            };
            exporters.push((eid.clone(), cfg.clone(), route));
        }
        pipelines.push(PipelinePlan {
            id: id.clone(),
            stream,
            processors,
            chain,
            signer,
            keys,
            exporters,
        });
    }
    if let Some(api) = config.service.api.as_ref().filter(|api| api.is_on()) {
        let known: Vec<(&str, &str)> = pipelines
            .iter()
            .map(|p| (p.id.as_str(), p.stream.as_str()))
            .collect();
        problems.extend(
            crate::query::auth::unknown_scope_names(&api.tokens(), &known)
                .into_iter()
                .map(|(path, m)| format!("service.api.{path}: {m}")),
        );
        let like = pipelines.iter().find_map(|p| p.chain.as_ref());
        match access::pipeline_plan(&config.service.storage.directory, like) {
            Ok(p) => pipelines.push(p),
            Err(e) => problems.push(format!("service.api: {e}")),
        }
    }
    let mut receivers = Vec::new();
    for (rid, cfg) in &config.receivers {
        let feeds: Vec<usize> = config
            .service
            .pipelines
            .values()
            .enumerate()
            .filter(|(_, p)| p.receivers.iter().any(|r| r == rid.as_str()))
            .map(|(i, _)| i)
            .collect();
        receivers.push((rid.clone(), cfg.clone(), feeds));
    }
    if problems.is_empty() {
        Ok(Plan {
            pipelines,
            receivers,
        })
    } else {
        Err(problems)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage directory {dir}: {detail}")]
    Storage { dir: String, detail: String },
    #[error("{0}")]
    Chain(#[from] writer::RecoveryError),
    #[error("{0}")]
    Receiver(std::io::Error),
    #[error("exporter {id}: {detail}")]
    Exporter { id: String, detail: String },
    #[error("{0}")]
    Keys(String),
    #[error("{0}")]
    QueryApi(std::io::Error),
}

struct RunningReceiver {
    id: ComponentId,
    config: ReceiverConfig,
    /// The configuration it was started with, to tell whether a reload changes it.
    fingerprint: [u8; 32],
    /// The ids of the pipelines it feeds.
    feeds: Vec<String>,
    stop: CancellationToken,
    handles: Vec<ReceiverHandle>,
}

struct RunningPipeline {
    id: String,
    /// `<storage>/pipelines/<id>`: its journal, chain hint and exporters' state.
    dir: PathBuf,
    stream: String,
    /// The checkpoint origin line, when the pipeline has a chain.
    origin: Option<String>,
    keys: Option<KeyRing>,
    intake: Arc<PipelineIntake>,
    writer: std::thread::JoinHandle<JournalWriter>,
    drivers: Vec<tokio::task::JoinHandle<()>>,
    journal: Journal,
    exporters_stop: CancellationToken,
    exporters_abandon: CancellationToken,
    status: Arc<PipelineStatus>,
    retention: Option<tokio::task::JoinHandle<()>>,
    retention_stop: CancellationToken,
}

/// The running daemon.
pub struct Service {
    /// What the journals were opened with (a reload may not change it).
    options: JournalOptions,
    limits: Limits,
    receivers_stop: CancellationToken,
    receivers: Vec<RunningReceiver>,
    switchboard: Arc<Switchboard>,
    pipelines: Vec<RunningPipeline>,
    exporters_stop: CancellationToken,
    exporters_abandon: CancellationToken,
    retention_stop: CancellationToken,
    /// The storage settings in force: where state lives, the backlog limit and retention,
    /// read at each pipeline start.
    storage_config: StorageConfig,
    query: Option<crate::query::QueryApi>,
    _lock: StorageLock,
    /// The telemetry board this service reports on, and what it put there.
    attached: Option<(Arc<Status>, Arc<ServiceStatus>)>,
}

impl Service {
    /// The addresses receivers listen on, by receiver id.
    pub fn listening(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.receivers
            .iter()
            .flat_map(|r| &r.handles)
            .flat_map(|r| r.local_addrs.iter().map(|a| (r.id.clone(), *a)))
            .collect()
    }

    /// Where the query API listens, when it is on.
    pub fn query_addr(&self) -> Option<std::net::SocketAddr> {
        self.query.as_ref().map(|q| q.local_addr())
    }

    /// Each pipeline's journal, for status and tests.
    pub fn journals(&self) -> Vec<(String, Journal)> {
        self.pipelines
            .iter()
            .map(|p| (p.id.clone(), p.journal.clone()))
            .collect()
    }

    /// Reports this service's health and gauges on `status` (what `/readyz` and
    /// `/metrics` show) until it starts to shut down.
    pub fn attach(&mut self, status: &Arc<Status>, telemetry: &crate::config::TelemetryConfig) {
        let board = Arc::new(ServiceStatus {
            receivers: self
                .receivers
                .iter()
                .flat_map(|r| &r.handles)
                .map(|r| ReceiverStatus {
                    id: r.id.clone(),
                    task: r.task.abort_handle(),
                })
                .collect(),
            pipelines: self.pipelines.iter().map(|p| p.status.clone()).collect(),
            exporter_stuck_after: telemetry.metrics.readiness.exporter_stuck_after,
        });
        status.attach(board.clone());
        self.attached = Some((status.clone(), board));
    }

    /// Drains and stops: receivers stop accepting and answer what is in flight, writers
    /// commit and sign a last checkpoint, exporters deliver what is committed. Receivers
    /// and exporters share one `drain_timeout` whatever clients do: past it, receivers'
    /// connections are cut and exporters abandon what they have not delivered (it stays
    /// in the journal for the next start).
    pub async fn shutdown(mut self, drain_timeout: Duration) {
        if let Some((status, board)) = &self.attached {
            status.detach(board);
        }
        // Receivers close what clients are still sending and answer what they have read;
        // however slow the clients, they get no longer than the drain timeout.
        let deadline = tokio::time::Instant::now() + drain_timeout;
        let receivers_deadline = deadline;
        if let Some(query) = self.query.take() {
            let _ = tokio::time::timeout_at(receivers_deadline, query.shutdown()).await;
        }
        self.receivers_stop.cancel();
        for r in self.receivers {
            for h in r.handles {
                let abort = h.task.abort_handle();
                if tokio::time::timeout_at(receivers_deadline, h.task)
                    .await
                    .is_err()
                {
                    tracing::warn!(receiver = %h.id, "receiver did not stop within the drain timeout; its connections are cut");
                    abort.abort();
                }
            }
        }
        // Retention first, while writers still take its purge records.
        self.retention_stop.cancel();
        for p in &mut self.pipelines {
            if let Some(task) = p.retention.take() {
                let _ = task.await;
            }
        }
        let mut drivers = Vec::new();
        for p in self.pipelines {
            p.intake.close();
            let _ = tokio::task::spawn_blocking(move || p.writer.join()).await;
            drivers.extend(p.drivers);
        }
        self.exporters_stop.cancel();
        // One deadline for the whole drain: what slow clients took, exporters do not get.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        drain(drivers, &self.exporters_abandon, left).await;
    }

    /// The storage directory: journals, cursors, keys, chain hints.
    fn storage(&self) -> &Path {
        &self.storage_config.directory
    }

    /// The intake for a receiver feeding `feeds`, by pipeline id.
    fn intake_of(&self, feeds: &[String]) -> crate::component::Intake {
        let targets: Vec<Arc<PipelineIntake>> = self
            .pipelines
            .iter()
            .filter(|p| feeds.contains(&p.id))
            .map(|p| p.intake.clone())
            .collect();
        intake::for_receiver(targets)
    }

    /// Starts receiver `id` feeding the given pipelines through the switchboard.
    async fn start_receiver(
        &mut self,
        id: ComponentId,
        cfg: &ReceiverConfig,
        feeds: Vec<String>,
    ) -> std::io::Result<()> {
        self.switchboard
            .set(id.as_str(), Some(self.intake_of(&feeds)))
            .await;
        let stop = self.receivers_stop.child_token();
        let started = cfg
            .start(
                &id,
                self.switchboard.intake_for(id.as_str()),
                self.limits,
                stop.clone(),
            )
            .await;
        match started {
            Ok(handles) => {
                self.receivers.push(RunningReceiver {
                    id,
                    config: cfg.clone(),
                    fingerprint: fingerprint(cfg),
                    feeds,
                    stop,
                    handles,
                });
                Ok(())
            }
            Err(e) => {
                self.switchboard.set(id.as_str(), None).await;
                Err(e)
            }
        }
    }
}

/// Lets exporters deliver what is committed, for at most `timeout`; then in-flight
/// deliveries are abandoned (their records stay in the journal for whoever reads next).
async fn drain(
    drivers: Vec<tokio::task::JoinHandle<()>>,
    abandon: &CancellationToken,
    timeout: Duration,
) {
    let all = futures::future::join_all(drivers);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!(?timeout, "exporters did not drain in time; the rest stays in the journal for the next start");
            abandon.cancel();
            all.await;
        }
    }
}

/// What a receiver was configured with, compared across reloads.
fn fingerprint(cfg: &ReceiverConfig) -> [u8; 32] {
    cfg.fingerprint
}

/// An exclusive lock on the storage directory, so two daemons never share a journal.
struct StorageLock(#[allow(dead_code)] crate::journal::lock::DirLock);

impl StorageLock {
    fn acquire(dir: &Path) -> Result<StorageLock, StartError> {
        let fail = |detail: String| StartError::Storage {
            dir: dir.display().to_string(),
            detail,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        match crate::journal::lock::DirLock::try_acquire(&dir.join("LOCK")) {
            Ok(Some(lock)) => Ok(StorageLock(lock)),
            Ok(None) => Err(fail("another vellum process is using it".into())),
            Err(e) => Err(fail(format!("cannot lock it: {e}"))),
        }
    }
}

/// Loads or, the first time, generates a stream's checkpoint key, keeping it with the
/// state (`keys/<stream>.key`, mode 0600) and its verifier key beside it (`.vkey`).
fn auto_signer(storage: &Path, origin: &str, stream: &str) -> Result<NoteSigner, StartError> {
    let dir = storage.join("keys");
    let key_path = dir.join(format!("{}.key", stream_folder(stream)));
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        StartError::Keys(format!("{what} {}: {e}", key_path.display()))
    };
    if key_path.exists() {
        let text = std::fs::read_to_string(&key_path).map_err(|e| fail("cannot read", &e))?;
        let signer = NoteSigner::parse(text.trim()).map_err(|e| fail("malformed key in", &e))?;
        if signer.name() != origin {
            return Err(StartError::Keys(format!(
                "{} is the key of `{}`, but the checkpoint origin is now `{origin}`; \
                 a changed origin is a new log: move the old key away to generate a new one",
                key_path.display(),
                signer.name()
            )));
        }
        return Ok(signer);
    }
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(&dir).map_err(|e| fail("cannot create the folder of", &e))?;
    let (skey, vkey) = note::generate(origin).map_err(|e| fail("cannot generate", &e))?;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| fail("cannot create", &e))?;
    std::io::Write::write_all(&mut f, format!("{skey}\n").as_bytes())
        .map_err(|e| fail("cannot write", &e))?;
    f.sync_all().map_err(|e| fail("cannot sync", &e))?;
    std::fs::write(key_path.with_extension("vkey"), format!("{vkey}\n"))
        .map_err(|e| fail("cannot write the vkey of", &e))?;
    // A key lost to a crash would be generated anew, and no earlier checkpoint would verify.
    crate::durable::sync_dir(&dir).map_err(|e| fail("cannot sync the folder of", &e))?;
    tracing::info!(%origin, %vkey, file = %key_path.display(), "generated a checkpoint signing key; give verifiers the vkey");
    NoteSigner::parse(&skey).map_err(|e| fail("cannot use", &e))
}

/// Starts everything the plan describes.
pub async fn start(config: &Config, plan: Plan) -> Result<Service, StartError> {
    let lock = StorageLock::acquire(&config.service.storage.directory)?;
    let exporters_stop = CancellationToken::new();
    let exporters_abandon = CancellationToken::new();
    let retention_stop = CancellationToken::new();
    let mut service = Service {
        options: JournalOptions {
            segment_bytes: config.service.storage.segment_size.as_u64(),
            max_record_bytes: journal_record_limit(config.service.storage.max_record_size.as_u64()),
        },
        limits: Limits {
            max_record_bytes: config.service.storage.max_record_size.as_u64() as usize,
        },
        receivers_stop: CancellationToken::new(),
        receivers: Vec::new(),
        switchboard: Arc::new(Switchboard::default()),
        pipelines: Vec::new(),
        exporters_stop,
        exporters_abandon,
        retention_stop,
        storage_config: config.service.storage.clone(),
        query: None,
        _lock: lock,
        attached: None,
    };
    for p in plan.pipelines {
        let (journal_writer, journal) = open_journal(service.storage(), &p.id, service.options)?;
        let (mut running, exporters) = service.launch_pipeline(p, journal, journal_writer)?;
        running.drivers = launch_drivers(
            &running.handle(),
            exporters,
            &running.exporters_stop,
            &running.exporters_abandon,
        )?;
        service.pipelines.push(running);
    }
    let ids: Vec<String> = service.pipelines.iter().map(|p| p.id.clone()).collect();
    for (id, cfg, feeds) in plan.receivers {
        let feeds = feeds.iter().map(|&i| ids[i].clone()).collect();
        if let Err(e) = service.start_receiver(id, &cfg, feeds).await {
            // What started is drained and stopped, so nothing accepted is left behind.
            service.shutdown(Duration::from_secs(5)).await;
            return Err(StartError::Receiver(e));
        }
    }
    if let Err(e) = service.start_query_api(config).await {
        service.shutdown(Duration::from_secs(5)).await;
        return Err(StartError::QueryApi(e));
    }
    Ok(service)
}

impl Service {
    /// Starts the query API over the running pipelines' journals (when it is configured).
    async fn start_query_api(&mut self, config: &Config) -> std::io::Result<()> {
        let sources = self
            .pipelines
            .iter()
            .map(|p| crate::query::QuerySource {
                pipeline: p.id.clone(),
                stream: p.stream.clone(),
                journal: p.journal.clone(),
                keys: p.keys.clone(),
            })
            .collect();
        let access = self
            .pipelines
            .iter()
            .find(|p| p.id == ACCESS_STREAM)
            .map(|p| p.intake.clone());
        self.query = crate::query::start(config.service.api.as_ref(), sources, access).await?;
        Ok(())
    }
}

/// The journal's own record limit: the record limit plus room for the integrity fields
/// and for JSON escaping, which can make a string up to six times longer.
fn journal_record_limit(max_record: u64) -> u32 {
    (max_record.saturating_mul(6) + 64 * 1024).min(u64::from(u32::MAX)) as u32
}

fn pipeline_dir(storage: &Path, id: &str) -> PathBuf {
    storage.join("pipelines").join(stream_folder(id))
}

fn open_journal(
    storage: &Path,
    id: &str,
    options: JournalOptions,
) -> Result<(JournalWriter, Journal), StartError> {
    let dir = pipeline_dir(storage, id);
    let (journal_writer, journal, report) =
        journal::open(&dir.join("journal"), options).map_err(|e| StartError::Storage {
            dir: dir.display().to_string(),
            detail: format!("cannot open the journal: {e}"),
        })?;
    if report.truncated_tail.is_some() || !report.corruptions.is_empty() {
        tracing::warn!(pipeline = %id, report = %report, "journal recovered");
    } else {
        tracing::info!(pipeline = %id, records = report.records, segments = report.segments, "journal opened");
    }
    Ok((journal_writer, journal))
}

/// An exporter of a pipeline, ready to be started once nothing else reads its cursor.
struct ExporterLaunch {
    id: ComponentId,
    config: ExporterConfig,
    route: Option<Arc<Route>>,
    position: Arc<AtomicU64>,
    health: Arc<ExporterHealth>,
    /// Where the driver's task is published for readiness, once it runs.
    status: Arc<std::sync::OnceLock<tokio::task::AbortHandle>>,
}

impl Service {
    /// Recovers the chain and starts the writer and intake of a pipeline; its exporters
    /// are returned to be started by [`launch_drivers`] (at once, or on a reload once the
    /// previous generation's drivers have let go of their cursors and files).
    fn launch_pipeline(
        &self,
        mut p: PipelinePlan,
        journal: Journal,
        journal_writer: JournalWriter,
    ) -> Result<(RunningPipeline, Vec<ExporterLaunch>), StartError> {
        let dir = pipeline_dir(self.storage(), &p.id);
        let fail = |detail: String| StartError::Storage {
            dir: dir.display().to_string(),
            detail,
        };
        let origin = p.chain.as_ref().map(|c| c.origin_line(&p.stream));
        let checkpoints = match (&p.chain, &origin) {
            (Some(c), Some(origin)) => {
                let signer = match p.signer.take() {
                    Some(s) => s,
                    None => auto_signer(self.storage(), origin, &p.stream)?,
                };
                Some(Checkpointing {
                    origin_prefix: c.origin.clone(),
                    signer,
                    every_records: c.checkpoint.every_records,
                    every: c.checkpoint.every,
                })
            }
            _ => None,
        };
        let settings = WriterSettings {
            stream: p.stream.clone(),
            keys: p.keys.clone(),
            checkpoints,
            hint_path: dir.join("chain.json"),
            max_group_records: 16_384,
        };
        let evidence_dirs: Vec<PathBuf> = p
            .exporters
            .iter()
            .filter_map(|(_, cfg, _)| match cfg.capabilities().evidence {
                Some(EvidenceStore::Directory { directory, .. }) => {
                    Some(directory.join(stream_folder(&p.stream)))
                }
                _ => None,
            })
            .collect();
        let (chain, losses) = writer::recover(&journal, &settings, &evidence_dirs)?;
        tracing::info!(pipeline = %p.id, stream = %p.stream, next_seq = chain.next_seq(), "chain recovered");

        let stored: BTreeMap<String, u64> = journal
            .cursors()
            .map_err(|e| fail(format!("cannot read the exporters' cursors: {e}")))?
            .into_iter()
            .collect();
        let exporters: Vec<ExporterLaunch> = p
            .exporters
            .into_iter()
            .map(|(id, config, route)| {
                let at = stored
                    .get(id.as_str())
                    .copied()
                    .unwrap_or(journal.first_index());
                ExporterLaunch {
                    health: Arc::new(ExporterHealth::new(p.id.clone(), id.to_string())),
                    id,
                    config,
                    route,
                    position: Arc::new(AtomicU64::new(at)),
                    status: Arc::default(),
                }
            })
            .collect();
        let positions: Vec<Arc<AtomicU64>> = exporters.iter().map(|e| e.position.clone()).collect();
        let queue_sizes: Vec<(Arc<AtomicU64>, u64)> = exporters
            .iter()
            .filter_map(|e| {
                Some((
                    e.position.clone(),
                    e.config.delivery.sending_queue.queue_size?,
                ))
            })
            .collect();
        let evidence_retention: Vec<retention::EvidenceRetention> = exporters
            .iter()
            .filter_map(|e| match e.config.capabilities().evidence {
                Some(EvidenceStore::Directory {
                    pruning: Some(f), ..
                }) => Some(retention::EvidenceRetention::new(
                    e.id.to_string(),
                    f,
                    e.position.clone(),
                )),
                _ => None,
            })
            .collect();
        let hint_path = settings.hint_path.clone();

        let (queue, requests) = std::sync::mpsc::channel::<WriteRequest>();
        let writer = Writer::new(journal_writer, chain, settings).with_losses(losses);
        let status = Arc::new(PipelineStatus {
            id: p.id.clone(),
            stream: p.stream.clone(),
            journal: journal.clone(),
            writer: writer.status(),
            exporters: exporters
                .iter()
                .map(|e| ExporterStatus {
                    health: e.health.clone(),
                    position: e.position.clone(),
                    capacity: e
                        .config
                        .delivery
                        .sending_queue
                        .capacity(self.storage_config.max_backlog_records),
                    task: e.status.clone(),
                })
                .collect(),
        });
        let writer = std::thread::Builder::new()
            .name(format!("writer {}", p.id))
            .spawn(move || writer.run(requests))
            .map_err(|e| fail(format!("cannot start the writer thread: {e}")))?;
        let intake = Arc::new(
            PipelineIntake::new(
                p.id.clone(),
                p.processors,
                queue,
                journal.clone(),
                positions.clone(),
                self.storage_config.max_backlog_records,
            )
            .with_queue_sizes(queue_sizes),
        );
        let storage_config = &self.storage_config;
        let journal_purge = (storage_config.retention_days > 0).then(|| {
            retention::JournalRetention::new(
                storage_config.retention_days,
                journal.clone(),
                positions,
                hint_path,
                self.storage().join(retention::LEGAL_HOLD_FILE),
            )
        });
        let retention_stop = self.retention_stop.child_token();
        let retention = (journal_purge.is_some() || !evidence_retention.is_empty()).then(|| {
            let task = retention::Retention {
                pipeline: p.id.clone(),
                stream: p.stream.clone(),
                clock: Arc::new(retention::SystemClock),
                interval: storage_config.retention_check_interval,
                journal: journal.clone(),
                journal_purge,
                evidence: evidence_retention,
                intake: intake.clone(),
            };
            tokio::spawn(task.run(retention_stop.clone()))
        });
        let running = RunningPipeline {
            id: p.id,
            dir,
            keys: p.keys,
            stream: p.stream,
            origin,
            intake,
            writer,
            drivers: Vec::new(),
            journal,
            exporters_stop: self.exporters_stop.child_token(),
            exporters_abandon: self.exporters_abandon.child_token(),
            status,
            retention,
            retention_stop,
        };
        Ok((running, exporters))
    }
}

/// Builds each exporter and starts its driver from its persisted cursor.
fn launch_drivers(
    pipeline: &PipelineHandle,
    exporters: Vec<ExporterLaunch>,
    stop: &CancellationToken,
    abandon: &CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartError> {
    let mut drivers = Vec::new();
    for e in exporters {
        drivers.push(launch_driver(pipeline, e, stop, abandon)?);
    }
    Ok(drivers)
}

/// What an exporter's driver needs of its pipeline.
#[derive(Clone)]
struct PipelineHandle {
    id: String,
    dir: PathBuf,
    stream: String,
    journal: Journal,
}

impl RunningPipeline {
    fn handle(&self) -> PipelineHandle {
        PipelineHandle {
            id: self.id.clone(),
            dir: self.dir.clone(),
            stream: self.stream.clone(),
            journal: self.journal.clone(),
        }
    }
}

fn launch_driver(
    pipeline: &PipelineHandle,
    e: ExporterLaunch,
    stop: &CancellationToken,
    abandon: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let eid = e.id;
    let cfg = e.config;
    let context = ExporterContext {
        id: eid.to_string(),
        stream: pipeline.stream.clone(),
        state_dir: pipeline
            .dir
            .join("exporters")
            .join(stream_folder(eid.as_str())),
    };
    let failed = |detail: String| StartError::Exporter {
        id: eid.to_string(),
        detail,
    };
    let exporter = cfg.build(&context).map_err(|e| failed(e.to_string()))?;
    let cursor = pipeline
        .journal
        .cursor(eid.as_str())
        .map_err(|e| failed(format!("cannot open its cursor: {e}")))?;
    e.position
        .store(cursor.load(), std::sync::atomic::Ordering::Release);
    let capabilities = cfg.capabilities();
    let driver = Driver {
        id: format!("{}:{eid}", pipeline.id),
        journal: pipeline.journal.clone(),
        cursor,
        exporter,
        route: e.route,
        limits: cfg.delivery.batch.clone(),
        retry: cfg.delivery.retry_on_failure.clone(),
        timeout: cfg.delivery.timeout,
        position: e.position,
        dead_letter_dir: context.state_dir.join(dead_letter::DIR),
        health: e.health,
        checkpoint_aligned: capabilities.checkpoint_aligned,
        dead_letters: capabilities.dead_letters,
    };
    let task = tokio::spawn(driver.run(stop.clone(), abandon.clone()));
    let _ = e.status.set(task.abort_handle());
    Ok(task)
}

#[cfg(test)]
mod tests {
    /// The loader's problems, as `path: message`; `plan` has none left to find.
    fn problems(yaml: &str) -> Vec<String> {
        let e = crate::config::Config::from_yaml(
            yaml,
            "test.yaml",
            &crate::config::expand::SystemSource,
        )
        .unwrap_err();
        e.problems
            .iter()
            .map(|p| format!("{}: {} @{}", p.path, p.message, p.pos.line))
            .collect()
    }

    #[test]
    fn an_s3_exporter_asks_for_a_chain_and_refuses_when_from_its_capabilities() {
        let p = problems(
            r#"
receivers:
  http: { endpoint: 127.0.0.1:0 }
exporters:
  s3/archive: { bucket: audit-archive, region: us-east-1 }
service:
  storage: { directory: /tmp/state }
  pipelines:
    logs/audit:
      receivers: [http]
      exporters: [{ id: s3/archive, when: "severity >= high" }]
"#,
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("service.pipelines.logs/audit.exporters[0]: `s3/archive` writes bundles that end at signed checkpoints; add `hash_chain`")
                && p[0].ends_with("@11"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with(
                "service.pipelines.logs/audit.exporters[0].when: `s3/archive` cannot take `when:`"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn a_misnamed_signing_key_is_reported_under_the_pipelines_own_hash_chain_id() {
        let (skey, _) = crate::evidence::note::generate("elsewhere.example").unwrap();
        let p = problems(&format!(
            r#"
receivers:
  http: {{ endpoint: 127.0.0.1:0 }}
processors:
  hash_chain/x: {{ origin: audit.example, signing_key: "{skey}" }}
exporters:
  file/evidence: {{ directory: /tmp/evidence }}
service:
  storage: {{ directory: /tmp/state }}
  pipelines:
    logs/audit: {{ receivers: [http], processors: [hash_chain/x], exporters: [file/evidence] }}
"#
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "processors.hash_chain/x.signing_key: the key is named `elsewhere.example`"
            ) && p[0].ends_with("@5"),
            "{p:?}"
        );
    }

    #[test]
    fn two_pipelines_writing_one_stream_are_refused_at_the_second() {
        let p = problems(
            r#"
receivers:
  http: { endpoint: 127.0.0.1:0 }
processors:
  hash_chain: { origin: audit.example, stream: shared }
exporters:
  file/evidence: { directory: /tmp/evidence }
service:
  pipelines:
    logs/a: { receivers: [http], processors: [hash_chain], exporters: [file/evidence] }
    logs/b: { receivers: [http], processors: [hash_chain], exporters: [file/evidence] }
"#,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "service.pipelines.logs/b: stream `shared` is also written by pipeline `logs/a`"
            ) && p[0].ends_with("@11"),
            "{p:?}"
        );
    }
}
