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
//! opens the storage, recovers each chain, and starts writers, exporters and receivers,
//! in that order; [`Service::shutdown`] stops them in reverse: receivers stop accepting,
//! writers commit what they hold and sign a last checkpoint, exporters drain.

pub mod export;
pub mod frame;
pub mod intake;
pub mod routing;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::component::{Processor, ReceiverHandle};
use crate::config::{ComponentId, Config, ExporterRef};
use crate::evidence::hmac::KeyRing;
use crate::evidence::note::{self, NoteSigner};
use crate::exporters::{ExporterConfig, ExporterContext, ExporterKind, file::stream_folder};
use crate::journal::{self, Journal, JournalOptions};
use crate::processors::ProcessorConfig;
use crate::processors::hash_chain::{HashChainConfig, SigningKey};
use crate::receivers::{Limits, ReceiverConfig};
use export::{Backoff, BatchLimits, Driver};
use intake::PipelineIntake;
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

/// Resolves a validated configuration; the messages name the component at fault.
pub fn plan(config: &Config) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let mut pipelines = Vec::new();
    let mut streams: BTreeMap<String, String> = BTreeMap::new();
    for (id, p) in &config.service.pipelines {
        let mut processors: Vec<Arc<dyn Processor>> = Vec::new();
        let mut chain = None;
        let mut keys = None;
        for pid in &p.processors {
            let Some(cfg) = ComponentId::parse(pid)
                .ok()
                .and_then(|c| config.processors.get(&c))
            else {
                continue;
            };
            match cfg {
                ProcessorConfig::HashChain(c) => chain = Some(c.clone()),
                ProcessorConfig::HmacSign(c) => {
                    let ring = c
                        .keys
                        .iter()
                        .map(|k| (k.id.clone(), k.key.0.clone()))
                        .collect();
                    match KeyRing::new(ring) {
                        Ok(r) => keys = Some(r),
                        Err(e) => problems.push(format!("processors.{pid}: {e}")),
                    }
                }
                other => match other.build(pid) {
                    Some(Ok(p)) => processors.push(p),
                    Some(Err(e)) => problems.push(format!("processors.{pid}: {e}")),
                    None => {}
                },
            }
        }
        let stream = chain
            .as_ref()
            .and_then(|c| c.stream.clone())
            .unwrap_or_else(|| id.clone());
        if let Some(other) = streams.insert(stream.clone(), id.clone()) {
            problems.push(format!(
                "service.pipelines.{id}: stream `{stream}` is also written by pipeline `{other}`; a stream has one writer (set `stream:` under `hash_chain`)"
            ));
        }
        let mut signer = None;
        if let Some(c) = &chain {
            if let SigningKey::Given(text) = &c.signing_key {
                let origin = c.origin_line(&stream);
                match NoteSigner::parse(text) {
                    Ok(s) if s.name() == origin => signer = Some(s),
                    Ok(s) => problems.push(format!(
                        "processors.hash_chain.signing_key: the key is named `{}` but this pipeline's checkpoint origin is `{origin}`; \
                         make one with `vellum keygen --name {origin}`",
                        s.name()
                    )),
                    Err(e) => problems.push(format!("processors.hash_chain.signing_key: {e}")),
                }
            }
        }
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
            if matches!(cfg.kind, ExporterKind::S3(_)) {
                if chain.is_none() {
                    problems.push(format!(
                        "service.pipelines.{id}.exporters: `{eid}` writes bundles that end at signed checkpoints; add `hash_chain` to this pipeline's processors"
                    ));
                }
                if route.is_some() {
                    problems.push(format!(
                        "service.pipelines.{id}.exporters: `{eid}` cannot take `when:`: evidence bundles must join without gaps"
                    ));
                }
            }
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

struct RunningPipeline {
    id: String,
    stream: String,
    keys: Option<KeyRing>,
    intake: Arc<PipelineIntake>,
    writer: std::thread::JoinHandle<()>,
    drivers: Vec<tokio::task::JoinHandle<()>>,
    journal: Journal,
}

/// The running daemon.
pub struct Service {
    receivers_stop: CancellationToken,
    receivers: Vec<ReceiverHandle>,
    pipelines: Vec<RunningPipeline>,
    exporters_stop: CancellationToken,
    exporters_abandon: CancellationToken,
    query: Option<crate::query::QueryApi>,
    _lock: StorageLock,
}

impl Service {
    /// The addresses receivers listen on, by receiver id.
    pub fn listening(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.receivers
            .iter()
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

    /// Drains and stops: receivers stop accepting and answer what is in flight, writers
    /// commit and sign a last checkpoint, exporters deliver what is committed (for at most
    /// `drain_timeout`; what they leave stays in the journal for the next start).
    pub async fn shutdown(self, drain_timeout: Duration) {
        if let Some(query) = self.query {
            query.shutdown().await;
        }
        self.receivers_stop.cancel();
        for r in self.receivers {
            let _ = r.task.await;
        }
        let mut drivers = Vec::new();
        for p in self.pipelines {
            p.intake.close();
            let _ = tokio::task::spawn_blocking(move || p.writer.join()).await;
            drivers.extend(p.drivers);
        }
        self.exporters_stop.cancel();
        let abandon = self.exporters_abandon.clone();
        let all = futures::future::join_all(drivers);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            _ = tokio::time::sleep(drain_timeout) => {
                tracing::warn!(?drain_timeout, "exporters did not drain in time; the rest stays in the journal for the next start");
                abandon.cancel();
                all.await;
            }
        }
    }
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
    tracing::info!(%origin, %vkey, file = %key_path.display(), "generated a checkpoint signing key; give verifiers the vkey");
    NoteSigner::parse(&skey).map_err(|e| fail("cannot use", &e))
}

/// Starts everything the plan describes.
pub async fn start(config: &Config, plan: Plan) -> Result<Service, StartError> {
    let storage = config.service.storage.directory.clone();
    let lock = StorageLock::acquire(&storage)?;
    let options = JournalOptions {
        segment_bytes: config.service.storage.segment_size.as_u64(),
        max_record_bytes: journal_record_limit(config.service.storage.max_record_size.as_u64()),
    };
    let max_record_bytes = config.service.storage.max_record_size.as_u64() as usize;
    let exporters_stop = CancellationToken::new();
    let exporters_abandon = CancellationToken::new();
    let mut running = Vec::new();
    for p in plan.pipelines {
        running.push(
            start_pipeline(
                &storage,
                p,
                options,
                config.service.storage.max_backlog_records,
                &exporters_stop,
                &exporters_abandon,
            )
            .await?,
        );
    }
    let mut service = Service {
        receivers_stop: CancellationToken::new(),
        receivers: Vec::new(),
        pipelines: running,
        exporters_stop,
        exporters_abandon,
        query: None,
        _lock: lock,
    };
    for (id, cfg, feeds) in plan.receivers {
        let targets = feeds
            .iter()
            .map(|&i| service.pipelines[i].intake.clone())
            .collect();
        let shutdown = service.receivers_stop.child_token();
        match cfg
            .start(
                &id,
                intake::for_receiver(targets),
                Limits { max_record_bytes },
                shutdown,
            )
            .await
        {
            Ok(handles) => service.receivers.extend(handles),
            Err(e) => {
                // What started is drained and stopped, so nothing accepted is left behind.
                service.shutdown(Duration::from_secs(5)).await;
                return Err(StartError::Receiver(e));
            }
        }
    }
    let sources = service.pipelines.iter().map(|p| crate::query::QuerySource {
        pipeline: p.id.clone(),
        stream: p.stream.clone(),
        journal: p.journal.clone(),
        keys: p.keys.clone(),
    });
    match crate::query::start(config.service.api.as_ref(), sources.collect()).await {
        Ok(query) => service.query = query,
        Err(e) => {
            service.shutdown(Duration::from_secs(5)).await;
            return Err(StartError::QueryApi(e));
        }
    }
    Ok(service)
}

/// The journal's own record limit: the record limit plus room for the integrity fields
/// and for JSON escaping, which can make a string up to six times longer.
fn journal_record_limit(max_record: u64) -> u32 {
    (max_record.saturating_mul(6) + 64 * 1024).min(u64::from(u32::MAX)) as u32
}

async fn start_pipeline(
    storage: &Path,
    mut p: PipelinePlan,
    options: JournalOptions,
    max_backlog: u64,
    stop: &CancellationToken,
    abandon: &CancellationToken,
) -> Result<RunningPipeline, StartError> {
    let dir = storage.join("pipelines").join(stream_folder(&p.id));
    let fail = |detail: String| StartError::Storage {
        dir: dir.display().to_string(),
        detail,
    };
    let (journal_writer, journal, report) = journal::open(&dir.join("journal"), options)
        .map_err(|e| fail(format!("cannot open the journal: {e}")))?;
    if report.truncated_tail.is_some() || !report.corruptions.is_empty() {
        tracing::warn!(pipeline = %p.id, report = %report, "journal recovered");
    } else {
        tracing::info!(pipeline = %p.id, records = report.records, segments = report.segments, "journal opened");
    }
    let checkpoints = match &p.chain {
        Some(c) => {
            let origin = c.origin_line(&p.stream);
            let signer = match p.signer.take() {
                Some(s) => s,
                None => auto_signer(storage, &origin, &p.stream)?,
            };
            Some(Checkpointing {
                origin_prefix: c.origin.clone(),
                signer,
                every_records: c.checkpoint.every_records,
                every: c.checkpoint.every,
            })
        }
        None => None,
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
        .filter_map(|(_, cfg, _)| match &cfg.kind {
            ExporterKind::File(f) => Some(f.directory.join(stream_folder(&p.stream))),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .collect();
    let (chain, _) = writer::recover(&journal, &settings, &evidence_dirs)?;
    tracing::info!(pipeline = %p.id, stream = %p.stream, next_seq = chain.next_seq(), "chain recovered");

    let mut drivers = Vec::new();
    let mut positions = Vec::new();
    for (eid, cfg, route) in &p.exporters {
        let name = format!("{}:{eid}", p.id);
        let context = ExporterContext {
            id: eid.to_string(),
            stream: p.stream.clone(),
            state_dir: dir.join("exporters").join(stream_folder(eid.as_str())),
        };
        let exporter = cfg.build(&context).map_err(|e| StartError::Exporter {
            id: eid.to_string(),
            detail: e.to_string(),
        })?;
        let cursor = journal
            .cursor(eid.as_str())
            .map_err(|e| fail(format!("cannot open the cursor of {eid}: {e}")))?;
        let position = Arc::new(AtomicU64::new(cursor.load()));
        positions.push(position.clone());
        let driver = Driver {
            id: name,
            journal: journal.clone(),
            cursor,
            exporter,
            route: route.clone(),
            limits: BatchLimits {
                max_records: cfg.delivery.batch.max_records,
                max_bytes: cfg.delivery.batch.max_bytes.as_u64() as usize,
                max_age: cfg.delivery.batch.max_age,
            },
            backoff: Backoff {
                initial: cfg.delivery.retry_on_failure.initial_interval,
                max: cfg.delivery.retry_on_failure.max_interval,
            },
            timeout: cfg.delivery.timeout,
            position,
            dead_letter_dir: context.state_dir.join("dead-letter"),
        };
        drivers.push(tokio::spawn(driver.run(stop.clone(), abandon.clone())));
    }

    let (queue, requests) = std::sync::mpsc::channel::<WriteRequest>();
    let writer = Writer::new(journal_writer, chain, settings);
    let writer = std::thread::Builder::new()
        .name(format!("writer {}", p.id))
        .spawn(move || writer.run(requests))
        .map_err(|e| fail(format!("cannot start the writer thread: {e}")))?;
    let intake = Arc::new(PipelineIntake::new(
        p.id.clone(),
        p.processors,
        queue,
        journal.clone(),
        positions,
        max_backlog,
    ));
    Ok(RunningPipeline {
        id: p.id,
        stream: p.stream,
        keys: p.keys,
        intake,
        writer,
        drivers,
        journal,
    })
}
