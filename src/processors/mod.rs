//! Processors: what happens to records between a receiver and the journal.
//!
//! `redact`, `classify` and `filter` run on the receiving side, in parallel. `hash_chain`
//! and `hmac_sign` seal records on the single ordered path into the journal, so they must
//! come last: nothing may change a record once its hash is computed.

pub mod classify;
pub mod filter;
pub mod hash_chain;
pub mod hmac_sign;
pub mod redact;

pub mod registry;

use std::sync::Arc;

use crate::config::component::{ComponentConfig, ComponentId, DecodeError};
pub use registry::{ProcessorCapabilities, ProcessorSettings, Seal, Stage};

/// A processor's settings: its registered type and its own settings.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The registered type name: `redact`.
    pub type_name: &'static str,
    pub settings: Arc<dyn ProcessorSettings>,
}

impl ComponentConfig for ProcessorConfig {
    fn decode(id: &ComponentId, json: serde_json::Value) -> Result<ProcessorConfig, DecodeError> {
        let factory =
            registry::find(id.kind()).ok_or(DecodeError::UnknownType(registry::type_names()))?;
        Ok(ProcessorConfig {
            type_name: factory.type_name,
            settings: (factory.decode)(json)?,
        })
    }

    fn problems(&self) -> Vec<(String, String)> {
        self.settings.problems()
    }
}

impl ProcessorConfig {
    /// What the pipeline must know of it: whether it seals, whether it drops records.
    pub fn capabilities(&self) -> ProcessorCapabilities {
        self.settings.capabilities()
    }

    /// Builds what the pipeline needs of it: a processor on the receiving side, or
    /// what the journal writer needs to seal.
    pub fn build(&self, id: &str) -> Result<Stage, String> {
        self.settings.build(id)
    }
}

/// Checks a pipeline's processor order from each processor's capabilities (`None` for
/// an id that names no processor, reported elsewhere); returns (index, problem) pairs.
pub fn check_order(processors: &[(&str, Option<ProcessorCapabilities>)]) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    let mut chain_at = None;
    let mut sign_at = None;
    for (i, (id, caps)) in processors.iter().enumerate() {
        let Some(caps) = caps else { continue };
        match caps.seals {
            Some(Seal::Chain) => {
                if chain_at.is_some() {
                    problems.push((
                        i,
                        format!("a pipeline has one hash chain; remove the second one, `{id}`"),
                    ));
                }
                chain_at.get_or_insert(i);
            }
            Some(Seal::Sign) => {
                if chain_at.is_none() {
                    problems.push((
                        i,
                        format!("`{id}` signs the chain hash, so it must come after `hash_chain`"),
                    ));
                }
                if sign_at.is_some() {
                    problems.push((
                        i,
                        format!("a pipeline signs once; remove the second signer, `{id}`"),
                    ));
                }
                sign_at.get_or_insert(i);
            }
            None => {
                if chain_at.is_some() {
                    let why = if caps.drops_records {
                        "dropping sealed records would punch holes in the chain"
                    } else {
                        "changing a record after it is sealed would break its hash"
                    };
                    problems.push((
                        i,
                        format!(
                            "`{id}` comes after `hash_chain`: {why}; move it before `hash_chain`"
                        ),
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order problems of processors with their default settings, by id.
    fn order(ids: &[&str]) -> Vec<(usize, String)> {
        let caps: Vec<(&str, Option<ProcessorCapabilities>)> = ids
            .iter()
            .map(|id| {
                let cid = ComponentId::parse(id).unwrap();
                let cfg = registry::find(cid.kind()).map(|f| (f.decode)(minimal(cid.kind())));
                (*id, cfg.and_then(Result::ok).map(|c| c.capabilities()))
            })
            .collect();
        check_order(&caps)
    }

    fn minimal(kind: &str) -> serde_json::Value {
        match kind {
            "hash_chain" => serde_json::json!({"origin": "audit.example/log"}),
            "hmac_sign" => serde_json::json!({"keys": []}),
            _ => serde_json::json!({}),
        }
    }

    #[test]
    fn sealing_processors_come_last_and_in_order() {
        assert!(order(&["redact/pii", "classify", "hash_chain", "hmac_sign"]).is_empty());
        assert!(order(&["filter", "hash_chain"]).is_empty());
        let p = order(&["hmac_sign", "hash_chain"]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, 0);
        assert!(p[0].1.contains("must come after `hash_chain`"));
        let p = order(&["hash_chain", "filter/violations"]);
        assert_eq!(p[0].0, 1);
        assert!(p[0].1.contains("punch holes"), "{}", p[0].1);
        assert_eq!(order(&["hash_chain", "hash_chain/b"])[0].0, 1);
    }
}
