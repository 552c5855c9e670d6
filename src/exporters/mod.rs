//! Exporters: readers of a pipeline's journal that deliver sealed entries somewhere.
//!
//! An exporter only delivers. The shared driver in `pipeline::export` owns everything
//! else, once for all of them: its persisted cursor, reading and batching, routing by
//! `when:`, retries with backoff, and dead-lettering of batches a sink rejects as malformed.
//! `export` returning `Ok` means the batch is durable at the sink; only then does the
//! cursor move past it, so an exporter that is down or slow loses nothing.

pub mod datadog;
pub mod file;
pub mod http;
pub mod otlp;
pub mod registry;
pub mod s3;
pub mod splunk_hec;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::config::component::{ComponentConfig, ComponentId, DecodeError, decode_json};
pub use registry::{Capabilities, EvidenceStore, ExporterSettings, RetentionSetting};

/// An exporter's settings: its type, its own settings, and how the driver delivers to it.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// The registered type name: `file`.
    pub type_name: &'static str,
    pub settings: Arc<dyn ExporterSettings>,
    pub delivery: DeliverySettings,
}

/// The keys every exporter takes besides its own, handled once by the driver.
///
/// ```yaml
/// exporters:
///   splunk_hec/siem:
///     endpoint: https://splunk.example.com:8088
///     token: "${env:SPLUNK_HEC_TOKEN}"
///     batch: { max_records: 2048, max_bytes: 4MiB, max_age: 200ms }   # the defaults
///     retry_on_failure:                    # the OpenTelemetry Collector's keys
///       enabled: true
///       initial_interval: 100ms
///       max_interval: 30s
///       max_elapsed_time: 0s               # 0: retry for as long as it takes
///     timeout: 30s
///     sending_queue:                       # the Collector's keys, mapped onto the journal
///       queue_size: 100000                 # records waiting past which receivers push back
/// ```
///
/// **`sending_queue`.** The journal is every exporter's persistent queue: records wait
/// there, on disk, until the exporter has delivered them, across restarts. The
/// Collector's keys are taken where they mean something for it:
///
/// | key | here |
/// |---|---|
/// | `queue_size` | records waiting for this exporter past which receivers push back (429/503, `RESOURCE_EXHAUSTED`), as a full Collector queue refuses; capped by `service.storage.max_backlog_records`, which applies when it is unset; reported as `otelcol_exporter_queue_capacity` |
/// | `enabled` | accepted; `false` changes nothing: records always wait in the journal, so none is lost while a sink is down |
/// | `num_consumers` | accepted and without effect: one request is in flight per exporter, so each stream reaches the sink in `seq` order |
/// | `storage` | refused: the journal under `service.storage` is already the persistent queue |
/// | `sizer`, `blocking`, `batch`… | refused as unknown keys |
///
/// One batch is in flight per exporter at a time: that keeps each stream's records in
/// `seq` order at the sink. The driver cuts a batch into the requests the exporter sends
/// one at a time, moves the cursor past each request delivered, and retries only the
/// request that failed. A retryable failure (5xx, 429, timeout, reset) is retried with
/// exponential backoff and full jitter, honouring `Retry-After`, until it succeeds: an
/// audit record is never dropped because a sink is down. Refused credentials (401, 403)
/// are retried the same way, and `/readyz` names the exporter until they work again. A
/// batch the sink rejects as malformed (another 4xx) goes to the dead-letter file under
/// the state directory (`vellum dead-letter list|replay`), except for `s3`, whose
/// evidence must have no gap: it retries every failure.
///
/// `retry_on_failure.enabled: false` sends each request once, and a non-zero
/// `max_elapsed_time` gives a request up after that long: what fails then goes to the
/// dead-letter file rather than being lost. The evidence exporters (`file`, `s3`) never
/// give up, and refuse both settings.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    #[serde(default)]
    pub batch: BatchSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// How long one request may take before it counts as a retryable failure.
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: SendingQueue,
}

/// The Collector's `sending_queue`, mapped onto the journal (table above).
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendingQueue {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub num_consumers: Option<u32>,
    /// Records that may wait for this exporter before receivers push back.
    #[serde(default)]
    pub queue_size: Option<u64>,
    /// A Collector storage extension's id: refused, the journal is the storage.
    #[serde(default)]
    pub storage: Option<String>,
}

impl SendingQueue {
    /// How many records may wait for the exporter under a pipeline backlog of `max_backlog`.
    pub fn capacity(&self, max_backlog: u64) -> u64 {
        self.queue_size.map_or(max_backlog, |q| q.min(max_backlog))
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.storage.is_some() {
            out.push((
                "sending_queue.storage".into(),
                "the journal under service.storage is already this exporter's persistent queue: remove storage".into(),
            ));
        }
        if self.queue_size == Some(0) {
            out.push((
                "sending_queue.queue_size".into(),
                "must be at least 1".into(),
            ));
        }
        if self.num_consumers == Some(0) {
            out.push((
                "sending_queue.num_consumers".into(),
                "must be at least 1".into(),
            ));
        }
        out
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// How the driver cuts an exporter's batches.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    /// At most this many journal items (entries and checkpoints) per batch.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// A batch is cut once its entries reach this many bytes.
    #[serde(default = "default_max_bytes")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_bytes: bytesize::ByteSize,
    /// How long the first record of a batch may wait for the batch to fill; 0 sends what
    /// there is at once. Clients are answered when the journal has their records, so this
    /// only trades export delay for fewer, larger deliveries (and fsyncs).
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_records: default_max_records(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
        }
    }
}

fn default_max_age() -> Duration {
    Duration::from_millis(200)
}

fn default_max_records() -> usize {
    2048
}
fn default_max_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(4)
}

/// How a failed request is retried, under the OpenTelemetry Collector's names.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// false: every request is sent once; what fails goes to the dead-letter file.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_initial_interval", with = "humantime_serde")]
    pub initial_interval: Duration,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_max_interval", with = "humantime_serde")]
    pub max_interval: Duration,
    /// How long one request is retried before it goes to the dead-letter file; 0 (the
    /// default, unlike the Collector's 5 minutes) retries for as long as it takes, so a
    /// sink that is down loses nothing.
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default, with = "humantime_serde")]
    pub max_elapsed_time: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: default_enabled(),
            initial_interval: default_initial_interval(),
            max_interval: default_max_interval(),
            max_elapsed_time: Duration::ZERO,
        }
    }
}

fn default_enabled() -> bool {
    true
}
fn default_initial_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_max_interval() -> Duration {
    Duration::from_secs(30)
}

impl RetrySettings {
    /// The wait before retry number `attempt` (0-based): exponential backoff with full
    /// jitter (a uniform draw between 0 and `initial_interval · 2^attempt`, capped at
    /// `max_interval`), so that exporters failing together do not retry together. A
    /// sink's `Retry-After` wins when longer.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .initial_interval
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_interval);
        let jittered = ceiling.mul_f64(unit_random());
        retry_after.map_or(jittered, |r| r.max(jittered))
    }

    /// Whether a request that has failed for `failing` is given up rather than retried.
    pub fn gives_up(&self, failing: Duration) -> bool {
        !self.enabled || (!self.max_elapsed_time.is_zero() && failing >= self.max_elapsed_time)
    }
}

/// A uniform draw from [0, 1].
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / ((1u64 << 53) - 1) as f64
}

impl DeliverySettings {
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.batch.max_records == 0 {
            out.push(("batch.max_records".into(), "must be at least 1".into()));
        }
        if self.batch.max_bytes.as_u64() < 1024 {
            out.push(("batch.max_bytes".into(), "must be at least 1KiB".into()));
        }
        if self.retry_on_failure.initial_interval.is_zero()
            || self.retry_on_failure.max_interval < self.retry_on_failure.initial_interval
        {
            out.push((
                "retry_on_failure".into(),
                "needs 0 < initial_interval <= max_interval".into(),
            ));
        }
        if self.timeout.is_zero() {
            out.push(("timeout".into(), "must be longer than 0s".into()));
        }
        out.extend(self.sending_queue.problems());
        out
    }
}

/// The keys of [`DeliverySettings`], split off before the exporter's own config decodes.
const DELIVERY_KEYS: [&str; 4] = ["batch", "retry_on_failure", "timeout", "sending_queue"];

impl ComponentConfig for ExporterConfig {
    fn decode(id: &ComponentId, json: serde_json::Value) -> Result<ExporterConfig, DecodeError> {
        let mut own = json;
        let mut delivery = serde_json::Map::new();
        if let serde_json::Value::Object(m) = &mut own {
            for key in DELIVERY_KEYS {
                if let Some(v) = m.remove(key) {
                    delivery.insert(key.to_string(), v);
                }
            }
        }
        let factory =
            registry::find(id.kind()).ok_or(DecodeError::UnknownType(registry::type_names()))?;
        let settings = (factory.decode)(own)?;
        let delivery = decode_json(serde_json::Value::Object(delivery))?;
        Ok(ExporterConfig {
            type_name: factory.type_name,
            settings,
            delivery,
        })
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = self.delivery.problems();
        let retry = &self.delivery.retry_on_failure;
        // Evidence must have no gap: an exporter that keeps it never gives up a record.
        if self.capabilities().evidence.is_some() {
            if !retry.enabled {
                out.push((
                    "retry_on_failure.enabled".into(),
                    "must stay true: this exporter keeps evidence, which must have no gap, so it retries until delivered".into(),
                ));
            }
            if !retry.max_elapsed_time.is_zero() {
                out.push((
                    "retry_on_failure.max_elapsed_time".into(),
                    "must be 0s: this exporter keeps evidence, which must have no gap, so it retries until delivered".into(),
                ));
            }
        }
        out.extend(self.settings.problems());
        out
    }
}

impl ExporterConfig {
    /// Builds the exporter for one pipeline's stream.
    pub fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        self.settings.build(context)
    }

    /// What the pipeline must provide or refuse for this exporter.
    pub fn capabilities(&self) -> Capabilities {
        self.settings.capabilities()
    }
}

/// What an exporter is told about where it runs.
#[derive(Debug, Clone)]
pub struct ExporterContext {
    /// `file/evidence`.
    pub id: String,
    /// The pipeline's chain: `logs/audit`.
    pub stream: String,
    /// A directory of its own under the storage directory, for state it keeps.
    pub state_dir: PathBuf,
}

/// One thing read from the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A sealed entry: its JSON line (RFC 8785 canonical, no newline) and its `seq`.
    Entry { index: u64, seq: u64, line: Bytes },
    /// A signed checkpoint of the stream's first `size` entries.
    Checkpoint { index: u64, size: u64, note: String },
}

impl Item {
    pub fn index(&self) -> u64 {
        match self {
            Item::Entry { index, .. } | Item::Checkpoint { index, .. } => *index,
        }
    }
}

/// Why a delivery failed: retry it; retry it while an operator fixes the credentials;
/// or never (the batch is malformed for the sink and goes to the dead-letter file).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The sink refuses the exporter's credentials or their permissions (HTTP 401/403,
    /// gRPC UNAUTHENTICATED/PERMISSION_DENIED, S3 AccessDenied…). Nothing is wrong with
    /// the records: they wait, with backoff, and the exporter reports itself failing.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Permanent(String),
}

impl ExportError {
    pub fn retryable(message: impl Into<String>) -> ExportError {
        ExportError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<std::io::Error> for ExportError {
    /// Local I/O errors (disk full, a directory removed) may clear up: retry.
    fn from(e: std::io::Error) -> ExportError {
        ExportError::retryable(e.to_string())
    }
}

pub trait Exporter: Send + Sync + 'static {
    /// Sends one request holding as many leading items of `batch` as the sink takes in
    /// one (all of them, unless a size limit of the sink cuts it), and answers how many
    /// leading items are now durable at the sink: at least one for a non-empty batch.
    ///
    /// The driver owns the rest: it calls again with what is left, moves the cursor past
    /// what was delivered, and retries only the request that failed.
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>>;

    /// Called about once a second: time-based rotation, retention.
    fn tick(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }

    /// Called once when the pipeline stops, after the last batch.
    fn close(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}
