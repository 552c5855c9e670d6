//! Collection: the sources a report reads, and the single verifying pass that folds
//! every entry into the report.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cli::ReportError;
use super::facts::{EntryView, Facts};
use super::frameworks::Framework;
use super::model::*;
use super::period::{Period, format_instant};
use super::policy::{Placement, retention};
use super::{MAX_FINDINGS_LISTED, NO_IDENTITY, TOP_KEYS, UNCLASSIFIED};
use crate::config::Config;
use crate::event::{Severity, format_time, parse_time};
use crate::evidence::verify::{Options, Report, verify_dir_visiting};
use crate::exporters::EvidenceStore;

/// What to collect.
#[derive(Debug, Clone)]
pub struct Request {
    pub framework: Framework,
    pub period: Period,
    pub sources: Vec<Source>,
    pub options: Options,
    /// The configured retention settings; `None` when no configuration was given.
    pub retention: Option<Vec<StoreSetting>>,
    pub max_rows: usize,
}

/// An evidence directory read.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub directory: String,
    /// The `file` exporter that writes it, when known from the configuration.
    pub exporter: Option<String>,
    #[serde(skip)]
    pub path: PathBuf,
}

impl Source {
    pub fn new(path: &Path, exporter: Option<String>) -> Source {
        Source {
            directory: path.display().to_string(),
            exporter,
            path: path.to_path_buf(),
        }
    }
}

/// The evidence directories of a configuration: its `file` exporters'.
pub fn sources_from_config(config: &Config) -> Vec<Source> {
    config
        .exporters
        .iter()
        .filter_map(|(id, exporter)| match exporter.capabilities().evidence {
            Some(EvidenceStore::Directory { directory, .. }) => {
                Some(Source::new(&directory, Some(id.to_string())))
            }
            _ => None,
        })
        .collect()
}

/// The retention settings of a configuration: the journal's, then each exporter's.
pub fn retention_from_config(config: &Config) -> Vec<StoreSetting> {
    let mut out = vec![StoreSetting {
        store: "journal".into(),
        kind: StoreKind::Journal,
        setting: "service.storage.retention_days".into(),
        days: Some(config.service.storage.retention_days),
    }];
    for (id, exporter) in &config.exporters {
        let caps = exporter.capabilities();
        let kind = match caps.evidence {
            Some(EvidenceStore::Directory { .. }) => StoreKind::File,
            Some(EvidenceStore::Objects) => StoreKind::S3,
            None => StoreKind::External,
        };
        let (setting, days) = match caps.retention {
            Some(r) => (format!("exporters.{id}.{}", r.key), r.days),
            None => ("(set at the destination)".to_string(), None),
        };
        out.push(StoreSetting {
            store: id.to_string(),
            kind,
            setting,
            days,
        });
    }
    out
}

/// Folds entries into the report as the verifier reads them.
pub(super) struct Collector<'r> {
    request: &'r Request,
    totals: Totals,
    next_seq: HashMap<String, u64>,
    streams: BTreeMap<String, StreamStats>,
    by_event_type: BTreeMap<String, u64>,
    by_severity: BTreeMap<String, u64>,
    by_type_and_severity: BTreeMap<String, BTreeMap<String, u64>>,
    by_source: BTreeMap<String, u64>,
    by_day: BTreeMap<String, u64>,
    by_identity: BTreeMap<String, u64>,
    access: Latest,
    changes: Latest,
    failed_auth: Latest,
    security: Latest,
    failed_by_user: Tally,
    failed_by_address: Tally,
    oldest: Option<u64>,
    newest: Option<u64>,
}

impl<'r> Collector<'r> {
    pub(super) fn new(request: &'r Request) -> Collector<'r> {
        let rows = request.max_rows;
        let mut by_severity = BTreeMap::new();
        for name in Severity::ALL
            .iter()
            .map(|s| s.as_str())
            .chain([UNCLASSIFIED])
        {
            by_severity.insert(name.to_string(), 0);
        }
        Collector {
            request,
            totals: Totals::default(),
            next_seq: HashMap::new(),
            streams: BTreeMap::new(),
            by_event_type: BTreeMap::new(),
            by_severity,
            by_type_and_severity: BTreeMap::new(),
            by_source: BTreeMap::new(),
            by_day: BTreeMap::new(),
            by_identity: BTreeMap::new(),
            access: Latest::new(rows),
            changes: Latest::new(rows),
            failed_auth: Latest::new(rows),
            security: Latest::new(rows),
            failed_by_user: Tally::default(),
            failed_by_address: Tally::default(),
            oldest: None,
            newest: None,
        }
    }

    pub(super) fn entry(&mut self, stream: &str, line: &[u8]) {
        self.totals.entries_read += 1;
        // An entry whose members have other types than Vellum writes is unreadable here;
        // the verifier reports what is wrong with it.
        let Ok(entry) = serde_json::from_slice::<EntryView>(line) else {
            self.totals.unreadable += 1;
            return;
        };
        let Some(seq) = entry.seq else {
            self.totals.unreadable += 1;
            return;
        };
        match self.next_seq.get_mut(stream) {
            Some(next) if seq < *next => {
                self.totals.duplicates += 1;
                return;
            }
            Some(next) => *next = seq + 1,
            None => {
                self.next_seq.insert(stream.to_string(), seq + 1);
            }
        }
        let stats = self
            .streams
            .entry(stream.to_string())
            .or_insert_with(|| StreamStats {
                stream: stream.to_string(),
                ..StreamStats::default()
            });
        stats.entries += 1;
        let when = [&entry.time, &entry.observed_time]
            .into_iter()
            .find_map(|t| t.as_deref().and_then(parse_time));
        let Some(when) = when else {
            self.totals.undated += 1;
            return;
        };
        self.oldest = Some(self.oldest.map_or(when, |o| o.min(when)));
        self.newest = Some(self.newest.map_or(when, |n| n.max(when)));
        let period = &self.request.period;
        if when < period.from_ns {
            self.totals.before_period += 1;
            return;
        }
        if when >= period.to_ns {
            self.totals.after_period += 1;
            return;
        }
        self.totals.in_period += 1;
        stats.in_period += 1;
        stats.first_seq = Some(stats.first_seq.map_or(seq, |s| s.min(seq)));
        stats.last_seq = Some(stats.last_seq.map_or(seq, |s| s.max(seq)));

        let facts = Facts::of(&entry);
        let type_counted = count_name(&mut self.by_event_type, &facts.event_type);
        *self
            .by_type_and_severity
            .entry(type_counted.to_string())
            .or_default()
            .entry(facts.severity.clone())
            .or_default() += 1;
        *self.by_severity.entry(facts.severity.clone()).or_default() += 1;
        count_name(&mut self.by_source, &facts.source);
        let identity = match facts.identity.as_str() {
            "" => NO_IDENTITY,
            who => who,
        };
        count_name(&mut self.by_identity, identity);
        let time = format_time(when);
        *self.by_day.entry(time[..10].to_string()).or_default() += 1;

        let placement = facts.placement();
        if placement == Placement::default() {
            return;
        }
        if placement.failed_auth {
            if !facts.actor.is_empty() {
                self.failed_by_user.add(&facts.actor);
            }
            if !facts.address.is_empty() {
                self.failed_by_address.add(&facts.address);
            }
        }
        let row = Row {
            time,
            stream: stream.to_string(),
            seq,
            time_ns: when,
            event_type: facts.event_type,
            severity: facts.severity,
            actor: facts.actor,
            action: facts.action,
            outcome: facts.outcome,
            address: facts.address,
            target: facts.target,
            source: facts.source,
        };
        for (placed, table) in [
            (placement.access, &mut self.access),
            (placement.change, &mut self.changes),
            (placement.failed_auth, &mut self.failed_auth),
            (placement.security, &mut self.security),
        ] {
            if placed {
                table.push(&row);
            }
        }
    }

    pub(super) fn finish(self, checks: Vec<(&Source, Report)>) -> ReportData {
        let request = self.request;
        let verification = verification(&self.streams, &checks);
        let rule = request.framework.retention();
        let retention = retention(
            &rule,
            request.retention.as_deref(),
            self.oldest,
            self.newest,
        );
        ReportData {
            report_format: 1,
            generator: format!("vellum {}", env!("CARGO_PKG_VERSION")),
            generated_at: format_instant(
                crate::event::now_unix_nano() / 1_000_000_000 * 1_000_000_000,
            ),
            framework: FrameworkInfo {
                id: request.framework.id(),
                name: request.framework.name(),
                controls: request.framework.controls(),
                retention: rule,
            },
            period: request.period.clone(),
            sources: request.sources.clone(),
            totals: self.totals,
            by_event_type: self.by_event_type,
            by_severity: self.by_severity,
            by_event_type_and_severity: self.by_type_and_severity,
            by_source: self.by_source,
            by_day: self.by_day,
            by_identity: self.by_identity,
            streams: self.streams.into_values().collect(),
            access: self.access.into_table(),
            changes: self.changes.into_table(),
            failed_auth: FailedAuth {
                table: self.failed_auth.into_table(),
                by_user: self.failed_by_user.top(TOP_KEYS),
                by_address: self.failed_by_address.top(TOP_KEYS),
                untallied: self.failed_by_user.untallied + self.failed_by_address.untallied,
            },
            security: self.security.into_table(),
            verification,
            retention,
        }
    }
}

fn verification(
    streams: &BTreeMap<String, StreamStats>,
    checks: &[(&Source, Report)],
) -> Verification {
    let in_period = |stream: &str, seq: Option<u64>| {
        let stats = streams.get(stream);
        match (
            stats.and_then(|s| s.first_seq),
            stats.and_then(|s| s.last_seq),
            seq,
        ) {
            (Some(first), Some(last), Some(seq)) => first <= seq && seq <= last,
            _ => false,
        }
    };
    let mut findings_per_stream: HashMap<&str, u64> = HashMap::new();
    let mut confirmed: HashMap<&str, u64> = HashMap::new();
    let mut directories = Vec::new();
    for (source, report) in checks {
        for finding in &report.findings {
            if in_period(&finding.stream, finding.seq) {
                *findings_per_stream
                    .entry(finding.stream.as_str())
                    .or_default() += 1;
            }
        }
        for (stream, &size) in &report.confirmed_sizes {
            let best = confirmed.entry(stream.as_str()).or_default();
            *best = (*best).max(size);
        }
        directories.push(DirectoryCheck {
            directory: source.directory.clone(),
            passed: report.is_ok(),
            summary: report.summary(),
            streams: report.streams,
            entries: report.entries,
            checkpoints: report.checkpoints,
            checkpoints_confirmed: report.checkpoints_confirmed,
            findings_total: report.findings.len() as u64 + report.findings_not_shown,
            findings: report
                .findings
                .iter()
                .take(MAX_FINDINGS_LISTED)
                .map(|f| FindingRow {
                    stream: f.stream.clone(),
                    seq: f.seq,
                    file: f.file.clone(),
                    line: f.line,
                    problem: f.problem.clone(),
                    in_period: in_period(&f.stream, f.seq),
                })
                .collect(),
            notes: report.notes.clone(),
        });
    }
    let coverage: Vec<StreamCoverage> = streams
        .values()
        .map(|s| {
            let confirmed_size = confirmed.get(s.stream.as_str()).copied();
            StreamCoverage {
                stream: s.stream.clone(),
                in_period: s.in_period,
                first_seq: s.first_seq,
                last_seq: s.last_seq,
                confirmed_size,
                covered: match (s.last_seq, confirmed_size) {
                    (Some(last), Some(size)) => last < size,
                    (None, _) => true,
                    _ => false,
                },
                findings_in_period: findings_per_stream
                    .get(s.stream.as_str())
                    .copied()
                    .unwrap_or(0),
            }
        })
        .collect();
    let passed = directories.iter().all(|d| d.passed);
    Verification {
        status: if passed { "passed" } else { "failed" },
        macs_checked: checks.iter().all(|(_, r)| r.macs_checked),
        signatures_checked: checks.iter().all(|(_, r)| r.signatures_checked),
        findings_in_period: coverage.iter().map(|c| c.findings_in_period).sum(),
        directories,
        streams: coverage,
    }
}

/// Reads the sources of `request` (verifying them in the same pass) into a report.
pub fn collect(request: &Request) -> Result<ReportData, ReportError> {
    let mut collector = Collector::new(request);
    let mut checks = Vec::with_capacity(request.sources.len());
    for source in &request.sources {
        let report = verify_dir_visiting(&source.path, &request.options, &mut |stream, line| {
            collector.entry(stream, line)
        })?;
        checks.push((source, report));
    }
    Ok(collector.finish(checks))
}
