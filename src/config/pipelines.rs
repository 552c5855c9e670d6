//! What a pipeline needs of its components beyond their ids, checked from their
//! capabilities and settings so that `vellum validate` reports it with its position.
//!
//! | rule                                                        | reported at |
//! |-------------------------------------------------------------|-------------|
//! | an exporter that needs a chain is in a pipeline with one    | `service.pipelines.<p>.exporters[i]` |
//! | `when:` routes only to exporters that accept it             | `service.pipelines.<p>.exporters[i].when` |
//! | one pipeline writes each stream                             | `service.pipelines.<p>` |
//! | a given checkpoint key is named for its stream's origin     | `processors.<chain id>.signing_key` |

use std::collections::BTreeMap;

use super::yaml::Node;
use super::{ComponentId, Loader, ServiceConfig};
use crate::exporters::ExporterConfig;
use crate::processors::hash_chain::HashChainConfig;
use crate::processors::{ProcessorConfig, Seal, Stage};

impl Loader {
    pub(super) fn check_pipeline_needs(
        &mut self,
        root: &Node,
        service: &ServiceConfig,
        node: &Node,
        processors: &BTreeMap<ComponentId, ProcessorConfig>,
        exporters: &BTreeMap<ComponentId, ExporterConfig>,
    ) {
        let mut streams: BTreeMap<String, &str> = BTreeMap::new();
        for (name, pipeline) in &service.pipelines {
            let base = format!("service.pipelines.{name}");
            let pnode = node
                .get("pipelines")
                .and_then(|n| n.get(name))
                .unwrap_or(node);
            let chain = pipeline
                .processors
                .iter()
                .find_map(|pid| chain_of(pid, processors));
            let stream = HashChainConfig::stream_of(chain.as_ref().map(|(_, c)| c), name);
            if let Some(other) = streams.insert(stream.clone(), name) {
                self.problem(
                    base.clone(),
                    pnode.pos,
                    format!("stream `{stream}` is also written by pipeline `{other}`; a stream has one writer (set `stream:` under `hash_chain`)"),
                );
            }
            // A key that does not parse is the component's own problem, reported with it.
            if let Some((pid, c)) = &chain
                && c.signer().is_some_and(|s| s.is_ok())
                && let Err(message) = c.signer_for(&stream)
            {
                let path = format!("processors.{pid}.signing_key");
                self.problem(path.clone(), root.locate(&path), message);
            }
            for (i, exporter) in pipeline.exporters.iter().enumerate() {
                let Some(cfg) = ComponentId::parse(exporter.id())
                    .ok()
                    .and_then(|c| exporters.get(&c))
                else {
                    continue;
                };
                let caps = cfg.capabilities();
                let at = format!("exporters[{i}]");
                if let Some(why) = caps.needs_chain
                    && chain.is_none()
                {
                    self.problem(
                        format!("{base}.{at}"),
                        pnode.locate(&at),
                        format!(
                            "`{}` {why}; add `hash_chain` to this pipeline's processors",
                            exporter.id()
                        ),
                    );
                }
                if !caps.accepts_when && exporter.when().is_some() {
                    let at = format!("{at}.when");
                    self.problem(
                        format!("{base}.{at}"),
                        pnode.locate(&at),
                        format!(
                            "`{}` cannot take `when:`: evidence must join without gaps",
                            exporter.id()
                        ),
                    );
                }
            }
        }
    }
}

/// The chain processor `pid` seals with, when it is one.
fn chain_of<'a>(
    pid: &'a str,
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
) -> Option<(&'a str, HashChainConfig)> {
    let cfg = ComponentId::parse(pid)
        .ok()
        .and_then(|c| processors.get(&c))?;
    if cfg.capabilities().seals != Some(Seal::Chain) {
        return None;
    }
    match cfg.build(pid) {
        Ok(Stage::Chain(chain)) => Some((pid, chain)),
        _ => None,
    }
}
