//! Processors: what happens to records between a receiver and the journal.
//!
//! `redact`, `classify` and `filter` run on the receiving side, in parallel. `hash_chain`
//! and `hmac_sign` seal records on the single ordered path into the journal, so they must
//! come last: nothing may change a record once its hash is computed.

pub mod classify;
pub mod condition;
pub mod filter;
pub mod hash_chain;
pub mod hmac_sign;
pub mod redact;

use crate::config::{ComponentConfig, ComponentId, DecodeError, decode_json};

#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Redact(Box<redact::RedactConfig>),
    Classify(Box<classify::ClassifyConfig>),
    Filter(filter::FilterConfig),
    HashChain(hash_chain::HashChainConfig),
    HmacSign(hmac_sign::HmacSignConfig),
}

const TYPES: &[&str] = &["redact", "classify", "filter", "hash_chain", "hmac_sign"];

impl ComponentConfig for ProcessorConfig {
    fn decode(id: &ComponentId, json: serde_json::Value) -> Result<ProcessorConfig, DecodeError> {
        Ok(match id.kind() {
            "redact" => ProcessorConfig::Redact(Box::new(decode_json(json)?)),
            "classify" => ProcessorConfig::Classify(Box::new(decode_json(json)?)),
            "filter" => ProcessorConfig::Filter(decode_json(json)?),
            "hash_chain" => ProcessorConfig::HashChain(decode_json(json)?),
            "hmac_sign" => ProcessorConfig::HmacSign(decode_json(json)?),
            _ => return Err(DecodeError::UnknownType(TYPES)),
        })
    }

    fn problems(&self) -> Vec<(String, String)> {
        match self {
            ProcessorConfig::HashChain(c) => c.problems(),
            ProcessorConfig::HmacSign(c) => c.problems(),
            // Their constructors check them (regexes, conditions, keys); `pipeline::plan`
            // runs those for `validate` too.
            ProcessorConfig::Redact(_)
            | ProcessorConfig::Classify(_)
            | ProcessorConfig::Filter(_) => Vec::new(),
        }
    }
}

/// Checks a pipeline's processor order; returns (index, problem) pairs.
pub fn check_order(ids: &[String]) -> Vec<(usize, String)> {
    let kind = |id: &str| id.split('/').next().unwrap_or(id).to_string();
    let mut problems = Vec::new();
    let mut chain_at = None;
    let mut hmac_at = None;
    for (i, id) in ids.iter().enumerate() {
        match kind(id).as_str() {
            "hash_chain" => {
                if chain_at.is_some() {
                    problems.push((
                        i,
                        "a pipeline has one hash chain; remove the second `hash_chain`".into(),
                    ));
                }
                chain_at.get_or_insert(i);
            }
            "hmac_sign" => {
                if chain_at.is_none() {
                    problems.push((
                        i,
                        format!("`{id}` signs the chain hash, so it must come after `hash_chain`"),
                    ));
                }
                if hmac_at.is_some() {
                    problems.push((
                        i,
                        "a pipeline signs once; remove the second `hmac_sign`".into(),
                    ));
                }
                hmac_at.get_or_insert(i);
            }
            other => {
                if chain_at.is_some() {
                    let why = if other == "filter" {
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

impl ProcessorConfig {
    /// Builds a processor that runs before sealing; `None` for the sealing ones, which
    /// the journal writer runs itself.
    pub fn build(
        &self,
        id: &str,
    ) -> Option<Result<std::sync::Arc<dyn crate::component::Processor>, String>> {
        use std::sync::Arc;
        Some(match self {
            ProcessorConfig::Redact(c) => redact::Redactor::new(id, c)
                .map(|p| Arc::new(p) as _)
                .map_err(|e| e.to_string()),
            ProcessorConfig::Classify(c) => classify::Classifier::new(id, c)
                .map(|p| Arc::new(p) as _)
                .map_err(|e| e.to_string()),
            ProcessorConfig::Filter(c) => filter::Filter::new(id, c)
                .map(|p| Arc::new(p) as _)
                .map_err(|e| e.to_string()),
            ProcessorConfig::HashChain(_) | ProcessorConfig::HmacSign(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(ids: &[&str]) -> Vec<(usize, String)> {
        check_order(&ids.iter().map(|s| s.to_string()).collect::<Vec<_>>())
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
