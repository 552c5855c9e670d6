//! The contracts between components and the pipeline.
//!
//! - A receiver hands records to an [`Intake`] and learns, when `submit` returns `Ok`,
//!   that they are durable in every journal they were routed to: only then may it
//!   acknowledge its client.
//! - A [`Processor`] changes a batch of records in place before they are sealed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::event::Record;

/// Why a batch was not accepted. Receivers map it onto their protocol's codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The journal's unexported backlog is over its limit: retry later
    /// (gRPC `RESOURCE_EXHAUSTED`, HTTP 429/503 with `Retry-After`).
    #[error("overloaded: the journal backlog is over its limit, retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    /// The daemon is draining for shutdown or reload.
    #[error("shutting down")]
    ShuttingDown,
    /// The journal could not make the records durable (disk full, I/O error); it takes
    /// records again by itself once it has reopened. Retry later.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A record of the batch is larger, once sealed, than the journal takes: the batch
    /// was refused whole and nothing of it was stored. Not worth retrying.
    #[error(
        "record {record} of the batch is {size} bytes once sealed; the journal takes at most {max} bytes per record"
    )]
    RecordTooLarge {
        record: usize,
        size: usize,
        max: usize,
    },
}

pub type SubmitFuture = Pin<Box<dyn Future<Output = Result<(), SubmitError>> + Send + 'static>>;

/// Where a receiver sends what it accepted.
pub trait Submit: Send + Sync + 'static {
    /// Resolves once every record is durable (or refused as a whole).
    fn submit(&self, records: Vec<Record>) -> SubmitFuture;
}

/// A receiver's handle on the pipelines it feeds.
pub type Intake = Arc<dyn Submit>;

/// A record-at-a-time transformation that runs before sealing.
///
/// `process` may change, drop (filter) or replace (redact's `block`) records; it must not
/// block on I/O. State (windowed rules) lives behind interior mutability.
pub trait Processor: Send + Sync + 'static {
    fn process(&self, records: Vec<Record>) -> Vec<Record>;
}

/// A started receiver: the addresses it listens on and the task that serves them.
/// The task ends after the shutdown token is cancelled and in-flight batches are answered.
pub struct ReceiverHandle {
    pub id: String,
    pub local_addrs: Vec<std::net::SocketAddr>,
    pub task: tokio::task::JoinHandle<()>,
}
