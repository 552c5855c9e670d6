//! The exporter registry: the only place that names concrete exporter types.
//!
//! Each exporter is a config type that implements [`ExporterSettings`] (its problems,
//! its [`Capabilities`] and how to build it) and one [`ExporterFactory`] line in
//! [`EXPORTERS`]. The pipeline, the report and the loader ask the capabilities, never
//! the type, so adding an exporter is its own file plus one line here.
//!
//! | capability           | file                          | s3        | others |
//! |----------------------|-------------------------------|-----------|--------|
//! | needs a chain        | when `retention_days` > 0     | always    | no     |
//! | accepts `when:`      | yes                           | no        | yes    |
//! | checkpoint-aligned   | no                            | yes       | no     |
//! | dead letters         | no                            | no        | yes    |
//! | evidence             | its directory                 | objects   | none   |
//! | retention            | `retention_days`              | `object_lock.retain_days` | none |

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;

use super::{ExportError, Exporter, ExporterContext, datadog, file, otlp, s3, splunk_hec, webhook};
use crate::config::component::{DecodeError, decode_json};

/// Every exporter type Vellum knows, by the name used in `exporters:` keys.
pub static EXPORTERS: &[ExporterFactory] = &[
    ExporterFactory::of::<file::FileConfig>("file"),
    ExporterFactory::of::<s3::S3Config>("s3"),
    ExporterFactory::of::<splunk_hec::SplunkHecConfig>("splunk_hec"),
    ExporterFactory::of::<datadog::DatadogConfig>("datadog"),
    ExporterFactory::of::<webhook::WebhookConfig>("webhook"),
    ExporterFactory::of::<otlp::OtlpConfig>("otlp"),
    ExporterFactory::of::<otlp::OtlpHttpConfig>("otlphttp"),
];

/// An exporter's own settings, decoded: what the core may ask of any exporter.
pub trait ExporterSettings: std::fmt::Debug + Send + Sync + 'static {
    /// Problems serde cannot see, as (path inside the component, message).
    fn problems(&self) -> Vec<(String, String)>;
    /// What the pipeline must provide or refuse for this exporter.
    fn capabilities(&self) -> Capabilities;
    /// Builds the exporter for one pipeline's stream.
    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError>;
    /// For tests and tools that need the concrete settings.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// What an exporter needs of its pipeline and offers to retention and reports.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Why it needs the pipeline to have `hash_chain`, when it does.
    pub needs_chain: Option<&'static str>,
    /// Whether a pipeline may route to it with `when:`; evidence must have no gaps.
    pub accepts_when: bool,
    /// Whether every batch must end with a checkpoint.
    pub checkpoint_aligned: bool,
    /// Whether a batch the sink refuses for good may go to the dead-letter file.
    pub dead_letters: bool,
    /// Where it keeps evidence, when it keeps any.
    pub evidence: Option<EvidenceStore>,
    /// Its retention setting, when Vellum knows one.
    pub retention: Option<RetentionSetting>,
}

impl Capabilities {
    /// A plain delivery sink: no chain needed, routable, dead-letters, no evidence.
    pub fn sink() -> Capabilities {
        Capabilities {
            needs_chain: None,
            accepts_when: true,
            checkpoint_aligned: false,
            dead_letters: true,
            evidence: None,
            retention: None,
        }
    }
}

/// Where an exporter keeps evidence.
#[derive(Debug, Clone)]
pub enum EvidenceStore {
    /// Files under `directory`, one folder per stream; `pruning` when retention prunes them.
    Directory {
        directory: PathBuf,
        pruning: Option<file::FileConfig>,
    },
    /// Objects in a bucket.
    Objects,
}

/// An exporter's retention setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSetting {
    /// The key inside the exporter's settings: `retention_days`.
    pub key: &'static str,
    /// Days; 0 keeps forever; `None` when unset.
    pub days: Option<u32>,
}

/// A type name and the decoder of its settings.
pub struct ExporterFactory {
    pub type_name: &'static str,
    pub decode: fn(serde_json::Value) -> Result<Arc<dyn ExporterSettings>, DecodeError>,
    /// The JSON schema of its settings, for the configuration reference.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl ExporterFactory {
    pub const fn of<T: ExporterSettings + DeserializeOwned + schemars::JsonSchema>(
        type_name: &'static str,
    ) -> ExporterFactory {
        ExporterFactory {
            type_name,
            decode: decode_as::<T>,
            schema: T::json_schema,
        }
    }
}

fn decode_as<T: ExporterSettings + DeserializeOwned>(
    json: serde_json::Value,
) -> Result<Arc<dyn ExporterSettings>, DecodeError> {
    Ok(Arc::new(decode_json::<T>(json)?))
}

/// The factory of `type_name`.
pub fn find(type_name: &str) -> Option<&'static ExporterFactory> {
    EXPORTERS.iter().find(|f| f.type_name == type_name)
}

/// The registered type names, for "expected one of" messages.
pub fn type_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| EXPORTERS.iter().map(|f| f.type_name).collect())
        .as_slice()
}
