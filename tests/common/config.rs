//! The one builder of test configurations: components by id with their settings, and
//! pipelines that name them. Without an explicit pipeline, `yaml()` writes one,
//! `logs/audit`, with every receiver, processor and exporter in the order they were
//! added.
//!
//! ```ignore
//! let yaml = PipelineConfig::new(dir)
//!     .gateway(ports.gateway)
//!     .processor("redact/pii", "{ policy: { default: redact } }")
//!     .chain()
//!     .file("file/evidence", &dir.join("evidence"))
//!     .yaml();
//! ```
//!
//! Settings are YAML text: a flow mapping on one line (`{ endpoint: … }`), or a block
//! of several lines, which is indented under the id. Paths and conditions are written
//! as quoted strings ([`quoted`]), so that any character in them is safe.
//!
//! | shortcut | adds |
//! |---|---|
//! | `gateway(port)` | `http/gateway` on `127.0.0.1:port`, path `/v1/events` |
//! | `otlp(grpc, http)` | `otlp` with both protocols on loopback |
//! | `syslog_tcp(port)`, `syslog_udp(port)` | `syslog/tcp`, `syslog/udp` on loopback |
//! | `chain()`, `chain_every(records)` | `hash_chain`, origin `test.vellum`, a checkpoint every 100 (or `records`) records and every second |
//! | `hmac(ring)` | `hmac_sign` with the key ring `ring` (YAML) |
//! | `file(id, dir)` | a `file` exporter writing to `dir` |
//! | `telemetry(port)` | JSON logs, and the telemetry server on `127.0.0.1:port` |
//! | `PipelineConfig::standard(dir, ports)` | every receiver on `ports`, the chain, `file/evidence` (what `standard_config` writes) |
//!
//! | to change | call |
//! |---|---|
//! | a component already added | `edit(id, \|settings\| …)`, `without(id)` |
//! | `service.storage` besides its directory | `storage("max_record_size: 64KiB")` |
//! | `service` | `service("extensions: [health_check]")` |
//! | a top-level section | `section("extensions:\n  health_check: {}")` |
//! | the pipelines | `pipeline(id, Pipeline::new().receivers(…).processors(…).exporters(…).route(id, condition).setting(yaml))` |

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Ports;

/// A configuration under construction; see the module documentation.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    receivers: Vec<(String, String)>,
    processors: Vec<(String, String)>,
    exporters: Vec<(String, String)>,
    pipelines: Vec<(String, Pipeline)>,
    storage: PathBuf,
    storage_extra: Vec<String>,
    service_extra: Vec<String>,
    top_level: Vec<String>,
}

/// One pipeline: ids of components, and `when:` routes to exporters.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    receivers: Vec<String>,
    processors: Vec<String>,
    exporters: Vec<(String, Option<String>)>,
    settings: Vec<String>,
}

/// `text` as a YAML double-quoted string. JSON's escapes are YAML's, so a backslash in
/// a regular expression or a quote in a path stays what it is.
pub fn quoted(text: impl AsRef<str>) -> String {
    serde_json::Value::String(text.as_ref().to_string()).to_string()
}

impl PipelineConfig {
    /// Nothing yet but the storage directory, `dir/state`.
    pub fn new(dir: &Path) -> PipelineConfig {
        PipelineConfig {
            receivers: Vec::new(),
            processors: Vec::new(),
            exporters: Vec::new(),
            pipelines: Vec::new(),
            storage: dir.join("state"),
            storage_extra: Vec::new(),
            service_extra: Vec::new(),
            top_level: Vec::new(),
        }
    }

    /// What [`super::standard_config`] writes: every receiver on `ports`, the chain with
    /// a checkpoint every 100 records, and `file/evidence` in `dir/evidence`.
    pub fn standard(dir: &Path, ports: Ports) -> PipelineConfig {
        PipelineConfig::new(dir)
            .otlp(ports.grpc, ports.http)
            .gateway(ports.gateway)
            .syslog_tcp(ports.syslog)
            .syslog_udp(ports.syslog)
            .chain()
            .file("file/evidence", &dir.join("evidence"))
    }

    pub fn receiver(mut self, id: &str, settings: impl Into<String>) -> Self {
        self.receivers.push((id.to_string(), settings.into()));
        self
    }

    pub fn processor(mut self, id: &str, settings: impl Into<String>) -> Self {
        self.processors.push((id.to_string(), settings.into()));
        self
    }

    pub fn exporter(mut self, id: &str, settings: impl Into<String>) -> Self {
        self.exporters.push((id.to_string(), settings.into()));
        self
    }

    /// A pipeline by id; once one is given, `yaml()` writes no default pipeline.
    pub fn pipeline(mut self, id: &str, pipeline: Pipeline) -> Self {
        self.pipelines.push((id.to_string(), pipeline));
        self
    }

    pub fn gateway(self, port: u16) -> Self {
        self.receiver(
            "http/gateway",
            format!("{{ endpoint: 127.0.0.1:{port}, path: /v1/events }}"),
        )
    }

    pub fn otlp(self, grpc: u16, http: u16) -> Self {
        self.receiver(
            "otlp",
            format!(
                "protocols:\n  grpc: {{ endpoint: 127.0.0.1:{grpc} }}\n  http: {{ endpoint: 127.0.0.1:{http} }}"
            ),
        )
    }

    pub fn syslog_tcp(self, port: u16) -> Self {
        self.receiver(
            "syslog/tcp",
            format!("{{ protocol: tcp, endpoint: 127.0.0.1:{port} }}"),
        )
    }

    pub fn syslog_udp(self, port: u16) -> Self {
        self.receiver(
            "syslog/udp",
            format!("{{ protocol: udp, endpoint: 127.0.0.1:{port} }}"),
        )
    }

    pub fn chain(self) -> Self {
        self.chain_every(100)
    }

    pub fn chain_every(self, records: u64) -> Self {
        self.processor(
            "hash_chain",
            format!("origin: test.vellum\ncheckpoint: {{ every_records: {records}, every: 1s }}"),
        )
    }

    /// `hmac_sign` with `ring`, a YAML list such as `[{ id: k1, key: "…" }]`.
    pub fn hmac(self, ring: &str) -> Self {
        self.processor("hmac_sign", format!("{{ keys: {ring} }}"))
    }

    pub fn file(self, id: &str, dir: &Path) -> Self {
        self.exporter(
            id,
            format!("{{ directory: {} }}", quoted(dir.to_string_lossy())),
        )
    }

    /// Settings of a component already added, changed by `edit` (its YAML text).
    pub fn edit(mut self, id: &str, edit: impl FnOnce(&str) -> String) -> Self {
        let all = self
            .receivers
            .iter_mut()
            .chain(&mut self.processors)
            .chain(&mut self.exporters);
        let Some((_, settings)) = all.into_iter().find(|(i, _)| i == id) else {
            panic!("no component {id} to edit");
        };
        *settings = edit(settings);
        self
    }

    /// Removes a component added before, from the default pipeline too.
    pub fn without(mut self, id: &str) -> Self {
        for list in [
            &mut self.receivers,
            &mut self.processors,
            &mut self.exporters,
        ] {
            list.retain(|(i, _)| i != id);
        }
        self
    }

    /// A line (or lines) under `service.storage`, besides the directory.
    pub fn storage(mut self, yaml: &str) -> Self {
        self.storage_extra.push(yaml.to_string());
        self
    }

    /// Lines under `service:` (indented by the builder), such as `extensions: [x]`.
    pub fn service(mut self, yaml: &str) -> Self {
        self.service_extra.push(yaml.to_string());
        self
    }

    /// A top-level section written as given, such as `extensions:\n  health_check: {}`.
    pub fn section(mut self, yaml: &str) -> Self {
        self.top_level.push(yaml.to_string());
        self
    }

    /// JSON logs, and the telemetry server on `127.0.0.1:port`.
    pub fn telemetry(self, port: u16) -> Self {
        self.service(&format!(
            "telemetry:\n  logs: {{ format: json }}\n  metrics:\n    address: 127.0.0.1:{port}"
        ))
    }

    /// The configuration as YAML text.
    pub fn yaml(&self) -> String {
        let mut out = String::new();
        for (section, items) in [
            ("receivers", &self.receivers),
            ("processors", &self.processors),
            ("exporters", &self.exporters),
        ] {
            if !items.is_empty() {
                writeln!(out, "{section}:").unwrap();
                for (id, settings) in items {
                    write_component(&mut out, id, settings);
                }
            }
        }
        for section in &self.top_level {
            writeln!(out, "{}", section.trim_end()).unwrap();
        }
        writeln!(out, "service:").unwrap();
        let directory = quoted(self.storage.to_string_lossy());
        if self.storage_extra.is_empty() {
            writeln!(out, "  storage: {{ directory: {directory} }}").unwrap();
        } else {
            writeln!(out, "  storage:\n    directory: {directory}").unwrap();
        }
        for extra in &self.storage_extra {
            write_indented(&mut out, extra, 4);
        }
        for extra in &self.service_extra {
            write_indented(&mut out, extra, 2);
        }
        writeln!(out, "  pipelines:").unwrap();
        let default;
        let pipelines = if self.pipelines.is_empty() {
            default = [("logs/audit".to_string(), self.everything())];
            &default[..]
        } else {
            &self.pipelines[..]
        };
        for (id, p) in pipelines {
            p.write(&mut out, id);
        }
        out
    }

    /// Writes the configuration to `dir/vellum.yaml` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("vellum.yaml");
        std::fs::write(&path, self.yaml()).expect("the configuration is written");
        path
    }

    fn everything(&self) -> Pipeline {
        let ids = |list: &Vec<(String, String)>| list.iter().map(|(id, _)| id.clone()).collect();
        Pipeline {
            receivers: ids(&self.receivers),
            processors: ids(&self.processors),
            exporters: self
                .exporters
                .iter()
                .map(|(id, _)| (id.clone(), None))
                .collect(),
            settings: Vec::new(),
        }
    }
}

impl Pipeline {
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    pub fn receivers(mut self, ids: &[&str]) -> Self {
        self.receivers.extend(ids.iter().map(|s| s.to_string()));
        self
    }

    pub fn processors(mut self, ids: &[&str]) -> Self {
        self.processors.extend(ids.iter().map(|s| s.to_string()));
        self
    }

    pub fn exporters(mut self, ids: &[&str]) -> Self {
        self.exporters
            .extend(ids.iter().map(|s| (s.to_string(), None)));
        self
    }

    /// An exporter that takes only the records `condition` holds for.
    pub fn route(mut self, id: &str, condition: &str) -> Self {
        self.exporters
            .push((id.to_string(), Some(condition.to_string())));
        self
    }

    /// A line of the pipeline's own settings, written as given (`colour: blue`).
    pub fn setting(mut self, yaml: &str) -> Self {
        self.settings.push(yaml.to_string());
        self
    }

    fn write(&self, out: &mut String, id: &str) {
        writeln!(out, "    {id}:").unwrap();
        writeln!(out, "      receivers: [{}]", self.receivers.join(", ")).unwrap();
        writeln!(out, "      processors: [{}]", self.processors.join(", ")).unwrap();
        if self.exporters.iter().all(|(_, when)| when.is_none()) {
            let ids: Vec<&str> = self.exporters.iter().map(|(id, _)| id.as_str()).collect();
            writeln!(out, "      exporters: [{}]", ids.join(", ")).unwrap();
        } else {
            writeln!(out, "      exporters:").unwrap();
            for (exporter, when) in &self.exporters {
                match when {
                    None => writeln!(out, "        - {exporter}").unwrap(),
                    Some(c) => writeln!(out, "        - {{ id: {exporter}, when: {} }}", quoted(c))
                        .unwrap(),
                }
            }
        }
        for setting in &self.settings {
            write_indented(out, setting, 6);
        }
    }
}

fn write_component(out: &mut String, id: &str, settings: &str) {
    let settings = settings.trim_matches('\n').trim_end();
    if settings.contains('\n') {
        writeln!(out, "  {id}:").unwrap();
        write_indented(out, settings, 4);
    } else {
        writeln!(out, "  {id}: {settings}").unwrap();
    }
}

/// Writes `text` indented by `by` spaces, whatever indentation its lines share removed
/// first (so an indented raw string reads as written).
fn write_indented(out: &mut String, text: &str, by: usize) {
    let text = text.trim_matches('\n').trim_end();
    let shared = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            writeln!(out, "{:by$}{}", "", &line[shared..]).unwrap();
        }
    }
}
