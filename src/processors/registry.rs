//! The processor registry: the only place that names concrete processor types.
//!
//! A processor is a config type that implements [`ProcessorSettings`] plus one line in
//! [`PROCESSORS`]. Building one yields a [`Stage`]: a processor that runs on the
//! receiving side, or what the journal writer needs to seal records.
//!
//! | type         | stage                    | seals  | drops records |
//! |--------------|--------------------------|--------|---------------|
//! | `redact`     | processor                | no     | no            |
//! | `classify`   | processor                | no     | no            |
//! | `filter`     | processor                | no     | yes           |
//! | `hash_chain` | the chain's settings     | chain  | no            |
//! | `hmac_sign`  | the key ring             | sign   | no            |

use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;

use super::{classify, filter, hash_chain, hmac_sign, redact};
use crate::component::Processor;
use crate::config::component::{DecodeError, decode_json};
use crate::evidence::hmac::KeyRing;

/// Every processor type Vellum knows, by the name used in `processors:` keys.
pub static PROCESSORS: &[ProcessorFactory] = &[
    ProcessorFactory::of::<redact::RedactConfig>("redact"),
    ProcessorFactory::of::<classify::ClassifyConfig>("classify"),
    ProcessorFactory::of::<filter::FilterConfig>("filter"),
    ProcessorFactory::of::<hash_chain::HashChainConfig>("hash_chain"),
    ProcessorFactory::of::<hmac_sign::HmacSignConfig>("hmac_sign"),
];

/// A processor's own settings, decoded: what the core may ask of any processor.
pub trait ProcessorSettings: std::fmt::Debug + Send + Sync + 'static {
    /// Everything `build` would refuse, as (path inside the component, message), so
    /// that validation reports it with its YAML position before anything starts.
    fn problems(&self) -> Vec<(String, String)>;
    fn capabilities(&self) -> ProcessorCapabilities {
        ProcessorCapabilities::default()
    }
    /// Builds what the pipeline needs of processor `id`.
    fn build(&self, id: &str) -> Result<Stage, String>;
    /// For tests and tools that need the concrete settings.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// What the pipeline must know of a processor to place it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessorCapabilities {
    /// How it seals records, when it does: sealing runs on the writer's ordered path,
    /// after every processor that changes or drops records.
    pub seals: Option<Seal>,
    /// Whether it drops records (placed after the chain, it would punch holes in it).
    pub drops_records: bool,
}

/// How a sealing component seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// Hash-chains records and signs checkpoints: one per pipeline.
    Chain,
    /// Signs each chain hash with a keyed MAC: after the chain, once.
    Sign,
}

/// What building a processor yields.
pub enum Stage {
    /// Runs on the receiving side, in parallel, before sealing.
    Process(Arc<dyn Processor>),
    /// The chain the journal writer keeps.
    Chain(hash_chain::HashChainConfig),
    /// The keys the journal writer signs chain hashes with.
    Sign(KeyRing),
}

/// A type name and the decoder of its settings.
pub struct ProcessorFactory {
    pub type_name: &'static str,
    pub decode: fn(serde_json::Value) -> Result<Arc<dyn ProcessorSettings>, DecodeError>,
    /// The JSON schema of its settings, for the configuration reference.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl ProcessorFactory {
    pub const fn of<T: ProcessorSettings + DeserializeOwned + schemars::JsonSchema>(
        type_name: &'static str,
    ) -> ProcessorFactory {
        ProcessorFactory {
            type_name,
            decode: decode_as::<T>,
            schema: T::json_schema,
        }
    }
}

fn decode_as<T: ProcessorSettings + DeserializeOwned>(
    json: serde_json::Value,
) -> Result<Arc<dyn ProcessorSettings>, DecodeError> {
    Ok(Arc::new(decode_json::<T>(json)?))
}

/// The factory of `type_name`.
pub fn find(type_name: &str) -> Option<&'static ProcessorFactory> {
    PROCESSORS.iter().find(|f| f.type_name == type_name)
}

/// The registered type names, for "expected one of" messages.
pub fn type_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| PROCESSORS.iter().map(|f| f.type_name).collect())
        .as_slice()
}
