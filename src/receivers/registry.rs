//! The receiver registry: the only place that names concrete receiver types.
//!
//! A receiver is a config type that implements [`ReceiverSettings`] (its problems and
//! how to start it) plus one line in [`RECEIVERS`].

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::{Limits, http, otlp, syslog};
use crate::component::{Intake, ReceiverHandle};
use crate::config::component::{DecodeError, decode_json};

/// Every receiver type Vellum knows, by the name used in `receivers:` keys.
pub static RECEIVERS: &[ReceiverFactory] = &[
    ReceiverFactory::of::<otlp::OtlpConfig>("otlp"),
    ReceiverFactory::of::<http::HttpConfig>("http"),
    ReceiverFactory::of::<syslog::SyslogConfig>("syslog"),
];

/// A receiver's own settings, decoded: what the core may ask of any receiver.
pub trait ReceiverSettings: std::fmt::Debug + Send + Sync + 'static {
    /// Problems serde cannot see, as (path inside the component, message).
    fn problems(&self) -> Vec<(String, String)>;
    /// Binds and starts serving receiver `id`; the handles end after `shutdown` is cancelled.
    fn start(
        &self,
        id: String,
        intake: Intake,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, std::io::Result<Vec<ReceiverHandle>>>;
    /// For tests and tools that need the concrete settings.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A type name and the decoder of its settings.
pub struct ReceiverFactory {
    pub type_name: &'static str,
    pub decode: fn(serde_json::Value) -> Result<Arc<dyn ReceiverSettings>, DecodeError>,
    /// The JSON schema of its settings, for the configuration reference.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl ReceiverFactory {
    pub const fn of<T: ReceiverSettings + DeserializeOwned + schemars::JsonSchema>(
        type_name: &'static str,
    ) -> ReceiverFactory {
        ReceiverFactory {
            type_name,
            decode: decode_as::<T>,
            schema: T::json_schema,
        }
    }
}

fn decode_as<T: ReceiverSettings + DeserializeOwned>(
    json: serde_json::Value,
) -> Result<Arc<dyn ReceiverSettings>, DecodeError> {
    Ok(Arc::new(decode_json::<T>(json)?))
}

/// The factory of `type_name`.
pub fn find(type_name: &str) -> Option<&'static ReceiverFactory> {
    RECEIVERS.iter().find(|f| f.type_name == type_name)
}

/// The registered type names, for "expected one of" messages.
pub fn type_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| RECEIVERS.iter().map(|f| f.type_name).collect())
        .as_slice()
}
