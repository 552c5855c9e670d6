//! Exporters: readers of a pipeline's journal that deliver sealed entries somewhere.
//!
//! An exporter only delivers. The shared driver in `pipeline::export` owns everything
//! else, once for all of them: its persisted cursor, reading and batching, routing by
//! `when:`, retries with backoff, and dead-lettering of batches a sink refuses for good.
//! `export` returning `Ok` means the batch is durable at the sink; only then does the
//! cursor move past it, so an exporter that is down or slow loses nothing.

pub mod file;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::config::{ComponentConfig, ComponentId, DecodeError, decode_json};

#[derive(Debug, Clone)]
pub enum ExporterConfig {
    File(file::FileConfig),
}

const TYPES: &[&str] = &["file"];

impl ComponentConfig for ExporterConfig {
    fn decode(id: &ComponentId, json: serde_json::Value) -> Result<ExporterConfig, DecodeError> {
        Ok(match id.kind() {
            "file" => ExporterConfig::File(decode_json(json)?),
            _ => return Err(DecodeError::UnknownType(TYPES)),
        })
    }

    fn problems(&self) -> Vec<(String, String)> {
        match self {
            ExporterConfig::File(c) => c.problems(),
        }
    }
}

impl ExporterConfig {
    /// Builds the exporter for one pipeline's stream.
    pub fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(match self {
            ExporterConfig::File(c) => Box::new(file::FileExporter::open(c, context)?),
        })
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

/// Why a delivery failed: retry it, or never (the batch goes to the dead-letter file).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
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
    /// Delivers a batch in order; `Ok` once it is durable at the sink.
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<(), ExportError>>;

    /// Called about once a second: time-based rotation, retention.
    fn tick(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }

    /// Called once when the pipeline stops, after the last batch.
    fn close(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}
