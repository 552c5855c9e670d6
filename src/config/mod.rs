//! The pipeline configuration: the OpenTelemetry Collector's shape, Vellum's components.
//!
//! ```yaml
//! receivers:
//!   otlp:
//!     protocols:
//!       grpc: { endpoint: 127.0.0.1:4317 }
//!       http: { endpoint: 127.0.0.1:4318 }
//!   syslog/tcp: { protocol: tcp, endpoint: 127.0.0.1:5514 }
//! processors:
//!   hash_chain: { origin: audit.example.com }
//! exporters:
//!   file/evidence: { directory: ./data/evidence }
//! service:
//!   storage: { directory: ./data/state }
//!   pipelines:
//!     logs/audit:
//!       receivers: [otlp, syslog/tcp]
//!       processors: [hash_chain]
//!       exporters: [file/evidence]
//! ```
//!
//! Component ids are `type` or `type/name`. Loading parses the YAML into located nodes,
//! expands `${env:…}`/`${file:…}` (see [`expand`]), decodes each component with its own
//! typed config (unknown keys are errors) and then checks the graph. Every problem found
//! is reported at once, each with its YAML path and position:
//!
//! | stage | what it finds | where reported |
//! |---|---|---|
//! | YAML and `${…}` expansion | syntax, unset variables, unreadable files | the scalar |
//! | decoding, per component and per `service` part | unknown keys (at the key), wrong types, missing keys | the value |
//! | each component's `problems()` | what its constructor would refuse: patterns, conditions, keys, ranges | the setting inside the component |
//! | the graph | undefined or unused ids, processor order, `when:` syntax | the pipeline's list entry |
//! | pipeline needs ([`pipelines`]) | a chain where an exporter needs one, `when:` where refused, one writer per stream, a key named for its stream | the list entry or the key |
//!
//! A value that fails to decode is set aside and decoding goes on, so a broken key in
//! `service.telemetry` still lets the pipelines be checked; a pipeline set aside turns
//! off the "defined but unused" check, whose answer would then be wrong.

pub mod component;
pub mod expand;
pub mod pipelines;
pub mod reference;
pub mod schema;
pub mod secret;
pub mod yaml;

pub use component::{ComponentConfig, ComponentId, DecodeError, Endpoint, decode_json};
pub use secret::{Secret, redact_url};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exporters::ExporterConfig;
use crate::processors::ProcessorConfig;
use crate::receivers::ReceiverConfig;
use yaml::{Node, Pos};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// YAML path: `exporters.file/evidence.directory`, `service.pipelines.logs/audit.receivers[2]`.
    pub path: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(
                f,
                "line {}, column {}: {}",
                self.pos.line, self.pos.column, self.message
            )
        } else {
            write!(
                f,
                "{}: {} (line {}, column {})",
                self.path, self.message, self.pos.line, self.pos.column
            )
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    pub service: ServiceConfig,
    /// The top-level `extensions` section; only those listed in `service.extensions` run.
    pub extensions: crate::telemetry::ExtensionsConfig,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Absent (as in a Collector configuration): every default, see [`StorageConfig`].
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The query API (`crate::query`); off without a token.
    #[serde(default)]
    pub api: Option<crate::query::ApiConfig>,
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Extensions to run, by id, each defined under the top-level `extensions`.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `service.storage`: the journal and every other piece of persistent state.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Default: `$VELLUM_DATA/state`, or `./data/state` without `VELLUM_DATA`, as the
    /// shipped pipelines have it.
    #[serde(default = "default_storage_directory")]
    #[schemars(extend("default" = "$VELLUM_DATA/state"))]
    pub directory: PathBuf,
    /// Size at which a journal segment is closed and a new one started.
    #[serde(default = "default_segment_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub segment_size: bytesize::ByteSize,
    /// Records accepted but not yet delivered by the slowest exporter, past which receivers
    /// push back (gRPC RESOURCE_EXHAUSTED, HTTP 429/503 with Retry-After).
    #[serde(default = "default_max_backlog")]
    pub max_backlog_records: u64,
    /// The largest record, sealed, that the journal takes.
    #[serde(default = "default_max_record_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_record_size: bytesize::ByteSize,
    /// Days journal records are kept; past that, segments every exporter has delivered
    /// are purged. 0 keeps them forever (the query API reads the journal).
    #[serde(default)]
    pub retention_days: u32,
    /// How often retention looks for what it may purge (journal and evidence files).
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_retention_check_interval", with = "humantime_serde")]
    pub retention_check_interval: std::time::Duration,
}

impl StorageConfig {
    /// Problems serde cannot see, as (path inside `service.storage`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.retention_check_interval < std::time::Duration::from_secs(1) {
            out.push((
                "retention_check_interval".into(),
                "must be at least 1s".into(),
            ));
        }
        out
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            directory: default_storage_directory(),
            segment_size: default_segment_size(),
            max_backlog_records: default_max_backlog(),
            max_record_size: default_max_record_size(),
            retention_days: 0,
            retention_check_interval: default_retention_check_interval(),
        }
    }
}

fn default_storage_directory() -> PathBuf {
    let data = std::env::var_os("VELLUM_DATA")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("./data"), PathBuf::from);
    data.join("state")
}

fn default_retention_check_interval() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

fn default_segment_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(64)
}
fn default_max_backlog() -> u64 {
    1_000_000
}
fn default_max_record_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(4)
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub logs: LogsConfig,
    /// `/metrics`, `/healthz` and `/readyz`: see [`crate::telemetry`].
    #[serde(default)]
    pub metrics: crate::telemetry::MetricsConfig,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// A `tracing` filter: `info`, `debug`, `vellum=debug,info`; `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `encoding` is the Collector's name for it, `format` Vellum's; both are read.
    #[serde(default, alias = "encoding")]
    pub format: LogFormat,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; `console` in the Collector's words.
    #[default]
    #[serde(alias = "console")]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    pub exporters: Vec<ExporterRef>,
}

/// An exporter in a pipeline: its id, or `{ id, when }` to route only matching records.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ExporterRef {
    Id(String),
    Routed { id: String, when: Option<String> },
}

impl ExporterRef {
    pub fn id(&self) -> &str {
        match self {
            ExporterRef::Id(id) | ExporterRef::Routed { id, .. } => id,
        }
    }
    pub fn when(&self) -> Option<&str> {
        match self {
            ExporterRef::Id(_) => None,
            ExporterRef::Routed { when, .. } => when.as_deref(),
        }
    }
}

/// The default pipeline, used by `vellum run` without `--config`.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.yaml");

impl Config {
    /// Reads, expands and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            problems: vec![Problem {
                path: String::new(),
                pos: Pos::default(),
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Config::from_yaml(&text, &origin, &expand::SystemSource)
    }

    /// Parses, expands and validates configuration text; `origin` names it in errors.
    pub fn from_yaml(
        text: &str,
        origin: &str,
        source: &dyn expand::Source,
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            origin: origin.to_string(),
            problems,
        };
        let mut root = yaml::parse(text).map_err(|e| {
            fail(vec![Problem {
                path: String::new(),
                pos: e.pos,
                message: format!("invalid YAML: {}", e.message),
            }])
        })?;
        let mut problems = Vec::new();
        let mut expansions = BTreeMap::new();
        root.for_each_string_mut(&mut String::new(), &mut |path, pos, scalar| {
            match expand::expand_scalar(scalar, source) {
                Ok(Some(expansion)) => {
                    expansions.insert(path.to_string(), expansion);
                }
                Ok(None) => {}
                Err(message) => problems.push(Problem {
                    path: path.to_string(),
                    pos,
                    message,
                }),
            }
        });
        let config = Loader {
            problems,
            key_positions: BTreeMap::new(),
            expansions,
        }
        .load(&root);
        config.map_err(|(mut problems, expansions)| {
            for p in &mut problems {
                p.message = secret::unquote_expanded(&p.message, expansions.values());
            }
            problems.sort_by_key(|p| (p.pos.line, p.pos.column));
            fail(problems)
        })
    }
}

/// `path.inner`, or `path` for the component's own root.
fn join_path(path: &str, inner: &str) -> String {
    if inner.is_empty() {
        path.to_string()
    } else {
        format!("{path}.{inner}")
    }
}

/// Whether a decoding problem at `inner` only follows from values already set aside:
/// a required key that was one of them, or a container that no longer fits its type.
fn follows_from(set_aside: &[String], inner: &str, message: &str) -> bool {
    match message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((field, _)) if inner.is_empty() => set_aside.iter().any(|gone| gone == field),
        Some((field, _)) => set_aside.contains(&format!("{inner}.{field}")),
        None => set_aside.iter().any(|gone| yaml::path_within(gone, inner)),
    }
}

struct Loader {
    problems: Vec<Problem>,
    /// Where each component's key stands, `section.id` → position, for graph errors.
    key_positions: BTreeMap<String, Pos>,
    /// What each expanded scalar held, by YAML path.
    expansions: BTreeMap<String, expand::Expansion>,
}

impl Loader {
    fn problem(&mut self, path: impl Into<String>, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            pos,
            message: message.into(),
        });
    }

    fn load(
        mut self,
        root: &Node,
    ) -> Result<Config, (Vec<Problem>, BTreeMap<String, expand::Expansion>)> {
        if !matches!(root.kind, yaml::NodeKind::Map(_)) {
            self.problem("", root.pos, "the configuration must be a map with `receivers`, `processors`, `exporters` and `service`");
            return Err((self.problems, self.expansions));
        }
        for (key, pos, _) in root.entries() {
            if !matches!(
                key.as_str(),
                "receivers" | "processors" | "exporters" | "extensions" | "service"
            ) {
                self.problem(key.clone(), *pos, format!("unknown section `{key}`: expected `receivers`, `processors`, `exporters`, `extensions` or `service`"));
            }
        }
        let receivers = self.section::<ReceiverConfig>(root, "receivers");
        let processors = self.section::<ProcessorConfig>(root, "processors");
        let exporters = self.section::<ExporterConfig>(root, "exporters");
        let extensions = match root.get("extensions").filter(|n| !n.is_null()) {
            Some(node) => self.typed::<crate::telemetry::ExtensionsConfig>("extensions", node),
            None => Some(Default::default()),
        };
        let service = match root.get("service") {
            Some(node) => self.typed::<ServiceConfig>("service", node),
            None => {
                self.problem(
                    "service",
                    root.pos,
                    "missing section `service` (storage and pipelines)",
                );
                None
            }
        };
        if let Some(service) = &service {
            let service_node = root.get("service").unwrap_or(root);
            // A pipeline set aside while decoding would make its components look unused.
            let pipelines_whole = !self
                .problems
                .iter()
                .any(|p| yaml::path_within(&p.path, "service.pipelines"));
            self.check_graph(
                service,
                service_node,
                &receivers,
                &processors,
                &exporters,
                pipelines_whole,
            );
            self.check_pipeline_needs(root, service, service_node, &processors, &exporters);
            for (inner, message) in service.storage.problems() {
                let pos = service_node.locate(&format!("storage.{inner}"));
                self.problem(format!("service.storage.{inner}"), pos, message);
            }
            // Ids as written, so that one broken extension does not hide the others.
            let defined: Vec<String> = root
                .get("extensions")
                .map(|n| n.entries().iter().map(|(id, _, _)| id.clone()).collect())
                .unwrap_or_default();
            self.check_extensions(service, service_node, &defined);
            for (inner, message) in service.api.iter().flat_map(|api| api.problems()) {
                let pos = service_node.locate(&format!("api.{inner}"));
                self.problem(format!("service.api.{inner}"), pos, message);
            }
        }
        match service {
            Some(service) if self.problems.is_empty() => Ok(Config {
                receivers,
                processors,
                exporters,
                service,
                extensions: extensions.unwrap_or_default(),
            }),
            _ => Err((self.problems, self.expansions)),
        }
    }

    /// Decodes the settings at `path` with `decode`. Expanded values are strings; where
    /// decoding fails at one that was exactly one reference and reads as a number or a
    /// boolean, it gets that and decoding goes on, so a setting that wants a string
    /// (a token of digits) keeps the string and one that wants a number gets the number.
    fn decode_expanded<T>(
        &self,
        path: &str,
        mut json: serde_json::Value,
        decode: &impl Fn(serde_json::Value) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let mut retyped = BTreeSet::new();
        loop {
            let (inner, message) = match decode(json.clone()) {
                Err(DecodeError::Invalid { path, message }) => (path, message),
                other => return other,
            };
            let full = join_path(path, &inner);
            let typed = self.expansions.get(&full).and_then(|e| e.typed.as_ref());
            match (typed, yaml::json_at_mut(&mut json, &inner)) {
                (Some(typed), Some(slot)) if retyped.insert(full) => *slot = typed.to_json(),
                _ => {
                    return Err(DecodeError::Invalid {
                        path: inner,
                        message,
                    });
                }
            }
        }
    }

    /// Decodes the settings at `path` (`node`), reporting every problem: after each, the
    /// value at fault is set aside and decoding goes on, so one bad key hides neither the
    /// next nor the problems only the decoded settings can tell. What setting a value
    /// aside causes in turn (a required key now missing) is not reported again.
    /// `Ok(None)` when the settings are lost whole; `Err` for an unknown component type.
    fn decode_all<T>(
        &mut self,
        path: &str,
        node: &Node,
        decode: impl Fn(serde_json::Value) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, &'static [&'static str]> {
        // Each round removes one value, so this only bounds a pathological document.
        const MAX_ROUNDS: usize = 64;
        let mut json = if node.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            node.to_json()
        };
        let mut set_aside: Vec<String> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let (inner, message) = match self.decode_expanded(path, json.clone(), &decode) {
                Ok(settings) => return Ok(Some(settings)),
                Err(DecodeError::UnknownType(known)) => return Err(known),
                Err(DecodeError::Invalid { path, message }) => (path, message),
            };
            if !follows_from(&set_aside, &inner, &message) {
                let pos = if message.starts_with("unknown field") {
                    node.locate_key(&inner)
                } else {
                    node.locate(&inner)
                };
                self.problem(join_path(path, &inner), pos, message);
            }
            match yaml::remove_json_at(&mut json, &inner) {
                Some(gone) => set_aside.push(gone),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Decodes one section's components: id, known type, typed config.
    fn section<T: ComponentConfig>(&mut self, root: &Node, name: &str) -> BTreeMap<ComponentId, T> {
        let mut out = BTreeMap::new();
        let Some(node) = root.get(name) else {
            return out;
        };
        if node.is_null() {
            return out;
        }
        if !matches!(node.kind, yaml::NodeKind::Map(_)) {
            self.problem(
                name,
                node.pos,
                format!("`{name}` must be a map of component ids to their settings"),
            );
            return out;
        }
        for (id, key_pos, body) in node.entries() {
            let path = format!("{name}.{id}");
            self.key_positions.insert(path.clone(), *key_pos);
            let id = match ComponentId::parse(id) {
                Ok(id) => id,
                Err(message) => {
                    self.problem(path, *key_pos, message);
                    continue;
                }
            };
            match self.decode_all(&path, body, |json| T::decode(&id, json)) {
                Ok(Some(config)) => {
                    for (inner, message) in config.problems() {
                        self.problem(join_path(&path, &inner), body.locate(&inner), message);
                    }
                    out.insert(id, config);
                }
                Ok(None) => {}
                Err(known) => self.problem(
                    path,
                    *key_pos,
                    format!(
                        "unknown {} type `{}`: expected one of {}",
                        &name[..name.len() - 1],
                        id.kind(),
                        known.join(", ")
                    ),
                ),
            }
        }
        out
    }

    fn typed<T: serde::de::DeserializeOwned>(&mut self, path: &str, node: &Node) -> Option<T> {
        self.decode_all(path, node, decode_json::<T>).ok().flatten()
    }

    /// Every id in `service.extensions` names a defined extension, once.
    fn check_extensions(&mut self, service: &ServiceConfig, node: &Node, defined: &[String]) {
        let mut seen = BTreeSet::new();
        for (i, id) in service.extensions.iter().enumerate() {
            let path = format!("service.extensions[{i}]");
            let pos = node.locate(&format!("extensions[{i}]"));
            if !defined.contains(id) {
                self.problem(
                    path,
                    pos,
                    format!("`{id}` is not defined under `extensions`"),
                );
            } else if !seen.insert(id.as_str()) {
                self.problem(path, pos, format!("`{id}` is listed twice"));
            }
        }
    }

    fn check_graph(
        &mut self,
        service: &ServiceConfig,
        node: &Node,
        receivers: &BTreeMap<ComponentId, ReceiverConfig>,
        processors: &BTreeMap<ComponentId, ProcessorConfig>,
        exporters: &BTreeMap<ComponentId, ExporterConfig>,
        pipelines_whole: bool,
    ) {
        let mut used = BTreeSet::new();
        let pipelines_node = node.get("pipelines");
        if service.pipelines.is_empty() {
            self.problem("service.pipelines", node.pos, "no pipeline is defined");
        }
        for (name, pipeline) in &service.pipelines {
            let base = format!("service.pipelines.{name}");
            let pnode = pipelines_node.and_then(|n| n.get(name)).unwrap_or(node);
            if let Err(message) = ComponentId::parse(name) {
                self.problem(
                    base.clone(),
                    pnode.pos,
                    message.replace("component id", "pipeline id"),
                );
            }
            let mut check = |section: &str, id: &str, i: usize, defined: bool, this: &mut Self| {
                let path = format!("{base}.{section}[{i}]");
                let pos = pnode.locate(&format!("{section}[{i}]"));
                if !defined {
                    this.problem(
                        path,
                        pos,
                        format!("`{id}` is not defined under `{section}`"),
                    );
                }
                used.insert(format!("{section}.{id}"));
            };
            if pipeline.receivers.is_empty() {
                self.problem(
                    format!("{base}.receivers"),
                    pnode.pos,
                    "a pipeline needs at least one receiver",
                );
            }
            if pipeline.exporters.is_empty() {
                self.problem(
                    format!("{base}.exporters"),
                    pnode.pos,
                    "a pipeline needs at least one exporter",
                );
            }
            for (i, id) in pipeline.receivers.iter().enumerate() {
                let defined = self.key_positions.contains_key(&format!("receivers.{id}"));
                check("receivers", id, i, defined, self);
            }
            for (i, id) in pipeline.processors.iter().enumerate() {
                let defined = self.key_positions.contains_key(&format!("processors.{id}"));
                check("processors", id, i, defined, self);
            }
            for (i, exporter) in pipeline.exporters.iter().enumerate() {
                let defined = self
                    .key_positions
                    .contains_key(&format!("exporters.{}", exporter.id()));
                check("exporters", exporter.id(), i, defined, self);
                if let Some(when) = exporter.when()
                    && let Err((column, message)) = crate::pipeline::routing::check(when)
                {
                    let pos = pnode.locate(&format!("exporters[{i}].when"));
                    self.problem(
                        format!("{base}.exporters[{i}].when"),
                        pos,
                        format!("column {column} of the condition: {message}"),
                    );
                }
            }
            let placed: Vec<(&str, Option<crate::processors::ProcessorCapabilities>)> = pipeline
                .processors
                .iter()
                .map(|pid| {
                    let caps = ComponentId::parse(pid)
                        .ok()
                        .and_then(|c| processors.get(&c))
                        .map(|p| p.capabilities());
                    (pid.as_str(), caps)
                })
                .collect();
            for (i, message) in crate::processors::check_order(&placed) {
                let pos = pnode.locate(&format!("processors[{i}]"));
                self.problem(format!("{base}.processors[{i}]"), pos, message);
            }
        }
        if !pipelines_whole {
            return;
        }
        let sections: [(&str, Vec<&ComponentId>); 3] = [
            ("receivers", receivers.keys().collect()),
            ("processors", processors.keys().collect()),
            ("exporters", exporters.keys().collect()),
        ];
        for (section, ids) in sections {
            for id in ids {
                let path = format!("{section}.{id}");
                if !used.contains(&path) {
                    let pos = self.key_positions.get(&path).copied().unwrap_or_default();
                    self.problem(
                        path,
                        pos,
                        format!("`{id}` is defined but no pipeline uses it"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoEnv;
    impl expand::Source for NoEnv {
        fn env(&self, name: &str) -> Option<String> {
            (name == "DATA").then(|| "/var/lib/vellum".to_string())
        }
        fn file(&self, path: &str) -> Result<String, String> {
            Err(format!("cannot read `{path}`"))
        }
    }

    fn load(yaml: &str) -> Result<Config, Vec<Problem>> {
        Config::from_yaml(yaml, "test.yaml", &NoEnv).map_err(|e| e.problems)
    }

    /// The (path, line) of every problem, for comparison with the YAML in the test.
    fn places(problems: &[Problem]) -> Vec<(&str, u64)> {
        problems
            .iter()
            .map(|p| (p.path.as_str(), p.pos.line))
            .collect()
    }

    const GOOD: &str = "
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
processors:
  hash_chain: { origin: audit.example.com }
exporters:
  file/evidence: { directory: \"${env:DATA}/evidence\" }
service:
  storage: { directory: /tmp/state }
  pipelines:
    logs/audit:
      receivers: [otlp]
      processors: [hash_chain]
      exporters: [file/evidence]
";

    #[test]
    fn a_good_configuration_loads_with_references_expanded() {
        let config = load(GOOD).unwrap();
        let file = ComponentId::parse("file/evidence").unwrap();
        let exporter = &config.exporters[&file];
        assert_eq!(exporter.type_name, "file");
        match exporter
            .settings
            .as_any()
            .downcast_ref::<crate::exporters::file::FileConfig>()
        {
            Some(f) => assert_eq!(f.directory, PathBuf::from("/var/lib/vellum/evidence")),
            None => panic!("expected the file exporter, got {exporter:?}"),
        }
        assert_eq!(config.service.storage.max_backlog_records, 1_000_000);
        assert_eq!(
            config.service.pipelines["logs/audit"].exporters[0].id(),
            "file/evidence"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path_and_line() {
        let yaml = "
receivers:
  otlp:
    protocols:
      grpc: { endpoint: nowhere }
  http/gw: { endpoint: 127.0.0.1:8088, typo: 1 }
  kafka: {}
processors:
  hmac_sign:
    keys: [{ id: k1, key: tooshort }]
exporters:
  file/evidence: { directory: \"${env:MISSING}\" }
  file/spare: { directory: /x }
service:
  storage: { directory: /tmp/state }
  pipelines:
    logs/audit:
      receivers: [otlp, http/gw, nothere]
      processors: [hmac_sign]
      exporters: [file/evidence]
connectors: {}
";
        let problems = load(yaml).unwrap_err();
        assert_eq!(
            places(&problems),
            vec![
                ("receivers.otlp.protocols.grpc.endpoint", 5),
                ("receivers.http/gw.typo", 6),
                ("receivers.kafka", 7),
                ("processors.hmac_sign.keys[0].key", 10),
                ("exporters.file/evidence.directory", 12),
                ("exporters.file/spare", 13),
                ("service.pipelines.logs/audit.receivers[2]", 18),
                ("service.pipelines.logs/audit.processors[0]", 19),
                ("connectors", 21),
            ],
            "{problems:#?}"
        );
        let text = |path: &str| {
            problems
                .iter()
                .find(|p| p.path == path)
                .map(|p| p.message.clone())
                .unwrap_or_default()
        };
        assert!(text("receivers.otlp.protocols.grpc.endpoint").contains("expected `host:port`"));
        assert!(text("receivers.http/gw.typo").contains("unknown field `typo`"));
        assert!(text("receivers.kafka").contains("unknown receiver type `kafka`"));
        assert!(text("processors.hmac_sign.keys[0].key").contains("8 bytes; at least 32"));
        assert!(
            !text("processors.hmac_sign.keys[0].key").contains("tooshort"),
            "a key is never echoed"
        );
        assert!(text("exporters.file/evidence.directory").contains("`MISSING` is not set"));
        assert!(text("exporters.file/spare").contains("no pipeline uses it"));
        assert!(
            text("service.pipelines.logs/audit.receivers[2]").contains("`nothere` is not defined")
        );
        assert!(text("service.pipelines.logs/audit.processors[0]").contains("after `hash_chain`"));
    }

    #[test]
    fn a_broken_section_hides_no_problem_elsewhere() {
        let yaml = "
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:4317 } } }
  http: { endpoint: 127.0.0.1:8088, typo: 1, max_connections: 0 }
exporters:
  file: { directory: /tmp/evidence }
service:
  storage: 5
  telemetry: { logs: { level: [debug] } }
  pipelines:
    logs/a: { receivers: [otlp, nothere], exporters: [file] }
    logs/b: { receivers: otlp, exporters: [file] }
";
        let problems = load(yaml).unwrap_err();
        assert_eq!(
            places(&problems),
            vec![
                ("receivers.http.typo", 4),
                ("receivers.http.max_connections", 4),
                ("service.storage", 8),
                ("service.telemetry.logs.level", 9),
                ("service.pipelines.logs/a.receivers[1]", 11),
                ("service.pipelines.logs/b.receivers", 12),
            ],
            "{problems:#?}"
        );
        // `logs/b` set aside: its missing `receivers` is not reported again, and `http`,
        // which it might have used, is not called unused.
        assert!(!problems.iter().any(|p| p.message.contains("missing field")));
        assert!(
            !problems
                .iter()
                .any(|p| p.message.contains("no pipeline uses"))
        );
        let no_service = load("receivers:\n  http: { endpoint: nowhere }\n").unwrap_err();
        assert_eq!(
            places(&no_service),
            vec![("service", 1), ("receivers.http.endpoint", 2)],
            "{no_service:#?}"
        );
    }

    #[test]
    fn the_collectors_extensions_and_log_encoding_are_accepted() {
        let yaml = GOOD.replace(
            "service:\n",
            "extensions:\n  health_check: { endpoint: 127.0.0.1:13199 }\nservice:\n  extensions: [health_check]\n  telemetry:\n    logs: { encoding: console }\n",
        );
        let config = load(&yaml).unwrap();
        assert_eq!(config.service.extensions, vec!["health_check".to_string()]);
        let health = config.extensions.health_check.unwrap();
        assert_eq!(health.endpoint.as_str(), "127.0.0.1:13199");
        assert_eq!(config.service.telemetry.logs.format, LogFormat::Pretty);
        let json = GOOD.replace(
            "service:\n",
            "service:\n  telemetry:\n    logs: { encoding: json }\n",
        );
        assert_eq!(
            load(&json).unwrap().service.telemetry.logs.format,
            LogFormat::Json
        );
    }

    #[test]
    fn an_extension_listed_but_not_defined_or_unknown_is_located() {
        let yaml = GOOD.replace(
            "service:\n",
            "extensions:\n  pprof: {}\nservice:\n  extensions: [health_check]\n",
        );
        let problems = load(&yaml).unwrap_err();
        assert_eq!(
            places(&problems),
            vec![("extensions.pprof", 11), ("service.extensions[0]", 13)],
            "{problems:#?}"
        );
        assert!(
            problems[1]
                .message
                .contains("not defined under `extensions`")
        );
    }

    #[test]
    fn syntax_errors_and_wrong_shapes_are_reported() {
        let problems = load("receivers: [\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.starts_with("invalid YAML"),
            "{problems:?}"
        );
        let problems = load("- a\n- b\n").unwrap_err();
        assert!(problems[0].message.contains("must be a map"));
        let problems = load("receivers: {}\nexporters: {}\n").unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.path == "service" && p.message.contains("missing section"))
        );
    }

    #[test]
    fn routing_conditions_are_checked_at_load() {
        let yaml = GOOD.replace(
            "exporters: [file/evidence]",
            "exporters: [{ id: file/evidence, when: \"severity >= \" }]",
        );
        let problems = load(&yaml).unwrap_err();
        assert_eq!(
            places(&problems),
            vec![("service.pipelines.logs/audit.exporters[0].when", 16)]
        );
        assert!(
            problems[0].message.starts_with("column "),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_short_api_token_is_located_and_never_echoed() {
        let yaml = GOOD.replace(
            "  storage: { directory: /tmp/state }\n",
            "  storage: { directory: /tmp/state }\n  api:\n    endpoint: 127.0.0.1:8090\n    token: tooshort-secret\n",
        );
        let problems = load(&yaml).unwrap_err();
        assert_eq!(places(&problems), vec![("service.api.token", 14)]);
        assert!(problems[0].message.contains("at least 16"));
        assert!(
            !problems[0].message.contains("tooshort"),
            "a token is never echoed"
        );
        let fine = GOOD.replace(
            "  storage: { directory: /tmp/state }\n",
            "  storage: { directory: /tmp/state }\n  api: { token: \"0123456789abcdef\" }\n",
        );
        let config = load(&fine).unwrap();
        let api = config.service.api.unwrap();
        assert_eq!(api.endpoint.as_str(), "127.0.0.1:8090");
        assert!(api.token.is_some());
    }
}
