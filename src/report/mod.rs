//! `vellum report`: a compliance report of one period, from local evidence.
//!
//! ```sh
//! vellum report --framework hipaa --from 2026-11-01 --to 2026-11-30 \
//!     --config pipeline.yaml --vkey "$(cat state/keys/*.vkey)" --hmac-key k2026=… \
//!     --out report.html --json report.json
//! ```
//!
//! **Sources.** With `--config`, the directories of its `file` exporters are read and its
//! retention settings are compared with the framework's minimum; `--evidence DIR`
//! (repeatable) names directories instead, and without a configuration the retention
//! settings are reported as unknown. Each directory is verified exactly as `vellum verify`
//! does ([`verify_dir_visiting`]), and the same single pass hands every entry line to the
//! report: memory stays flat however large the evidence (tables keep their latest
//! `--max-rows` rows, per-key tallies are capped). A stream found in several directories
//! is counted once.
//!
//! **Period.** `--from` is inclusive, `--to` exclusive; a bare date means midnight UTC,
//! and a bare `--to` date includes that whole day (`--to 2026-11-30` ends at
//! `2026-12-01T00:00:00Z`). Records are placed by their `time` (when the event happened;
//! `observed_time` when `time` is unreadable).
//!
//! **Sections.** Records are placed by the `event_type` and `severity` that `classify`
//! gives them (see `classify_builtin.yaml`), and by their gateway fields as the `http`
//! receiver maps them (`attributes.user_id`, `attributes.action`, `attributes.outcome`,
//! `attributes.ip`, …). A record may appear in more than one section.
//!
//! | section | records |
//! |---|---|
//! | access | `authentication` (neither failed nor a password/MFA change), `data_access`, `model_request`, and `authorization` denials (outcome denied/failed, `*.denied`, 401/403) |
//! | changes | `configuration_change`, `credential_change`, `authorization` other than denials (roles, permissions, members), password/MFA changes, `vellum.retention.*` purge records |
//! | failed_auth | `authentication` that failed: an outcome of failure/denied/error/401/403…, or an action ending in `failed`, `invalid`, `denied` |
//! | security | `event_type` `security` (prompt injection, guardrails, PII blocks) or `pii_blocked` (from `redact`), and every `high` or `critical` record |
//!
//! **Verification.** Status `passed` when every directory verifies without a finding;
//! `failed` otherwise. Per stream it tells the `seq` range of the period, the findings in
//! that range, and whether a signed, confirmed checkpoint covers the whole period.
//!
//! **Retention.** Each store with a setting (the journal's
//! `service.storage.retention_days`, each `file` exporter's `retention_days` where 0 keeps
//! forever, each `s3` exporter's `object_lock.retain_days`) is compared with the
//! framework's period ([`frameworks`]); the overall verdict rests on the evidence stores
//! (`file`, `s3`): met when one of them keeps records long enough.
//!
//! **JSON.** [`ReportData`] serialized as is; `report_format` is 1. Its shape:
//! `framework {id, name, controls[], retention}`, `period {from, to}` (RFC 3339, `to`
//! exclusive), `sources[]`, `totals {entries_read, in_period, before_period,
//! after_period, undated, unreadable, duplicates}`, `by_event_type`, `by_severity`,
//! `by_event_type_and_severity`, `by_source`, `by_day` (maps of counts), `streams[]`,
//! `access`/`changes`/`security` `{total, rows[]}`, `failed_auth {total, rows[], by_user[],
//! by_address[]}`, `verification {status, macs_checked, signatures_checked,
//! directories[], streams[], findings_in_period}`, `retention {configured, minimum_days,
//! required, status, stores[], oldest_entry, newest_entry, references[]}`. Rows are
//! `{time, stream, seq, event_type, severity, actor, action, outcome, address, target,
//! source}`, newest first; cells longer than 200 characters are cut with `…`.

pub mod frameworks;
pub mod html;

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

pub use frameworks::{Framework, ReferencePeriod, RetentionRule, Section};

use crate::config::{Config, ConfigError};
use crate::event::{Severity, format_time, lookup, lookup_map, parse_time};
use crate::evidence::verify::{Options, Report, VerifyError, verify_dir_visiting};
use crate::exporters::EvidenceStore;
use crate::query::fields;

/// Rows kept per table unless `--max-rows` says otherwise.
pub const DEFAULT_MAX_ROWS: usize = 200;
/// Verification findings listed per directory (all are counted).
pub const MAX_FINDINGS_LISTED: usize = 100;
/// Distinct event types and sources counted by name; the rest are counted as `(other)`.
pub const MAX_DISTINCT_NAMES: usize = 500;
/// Distinct users and addresses tallied for failed logins; the rest are counted apart.
pub const MAX_TALLY_KEYS: usize = 10_000;
/// Users and addresses listed in the failed-authentication section.
pub const TOP_KEYS: usize = 10;
/// Characters kept of one table cell.
pub const MAX_CELL_CHARS: usize = 200;
/// The name under which counts beyond [`MAX_DISTINCT_NAMES`] are kept.
pub const OTHER: &str = "(other)";
/// The event type or severity of a record that has none.
pub const UNCLASSIFIED: &str = "unclassified";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Period(String),
    #[error("{}", .0.to_string().trim_end())]
    Config(#[from] ConfigError),
    #[error(
        "no evidence directory to read: give --evidence DIR, or a --config with a `file` exporter"
    )]
    NoSources,
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What `vellum report` was asked.
pub struct Invocation<'a> {
    pub framework: Framework,
    pub from: &'a str,
    pub to: &'a str,
    pub config: Option<&'a Path>,
    /// Directories to read instead of the configuration's `file` exporters.
    pub evidence: &'a [PathBuf],
    pub options: Options,
    pub html: &'a Path,
    pub json: Option<&'a Path>,
    pub max_rows: usize,
}

/// Runs `vellum report`: collects, writes the HTML (and the JSON), returns the data.
pub fn run(invocation: &Invocation) -> Result<ReportData, ReportError> {
    let period = Period::parse(invocation.from, invocation.to).map_err(ReportError::Period)?;
    let config = invocation.config.map(Config::load).transpose()?;
    let sources = if invocation.evidence.is_empty() {
        config.as_ref().map(sources_from_config).unwrap_or_default()
    } else {
        invocation
            .evidence
            .iter()
            .map(|dir| Source::new(dir, None))
            .collect()
    };
    if sources.is_empty() {
        return Err(ReportError::NoSources);
    }
    let request = Request {
        framework: invocation.framework,
        period,
        sources,
        options: invocation.options.clone(),
        retention: config.as_ref().map(retention_from_config),
        max_rows: invocation.max_rows,
    };
    let data = collect(&request)?;
    write(invocation.html, html::render(&data).as_bytes())?;
    if let Some(path) = invocation.json {
        let mut json = serde_json::to_vec_pretty(&data).unwrap_or_default();
        json.push(b'\n');
        write(path, &json)?;
    }
    Ok(data)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

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

/// Where records are kept, as far as Vellum knows how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Journal,
    File,
    S3,
    /// A SIEM or collector: its own retention decides.
    External,
}

/// One store's configured retention.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSetting {
    /// `journal` or the exporter id.
    pub store: String,
    pub kind: StoreKind,
    /// The YAML path of the setting.
    pub setting: String,
    /// Days; 0 keeps forever (journal, file); `None` when Vellum sets none.
    pub days: Option<u32>,
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

/// The period reported on: `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
    #[serde(skip)]
    pub from_ns: u64,
    #[serde(skip)]
    pub to_ns: u64,
}

impl Period {
    /// `from` and `to` as dates (`2026-11-01`, UTC) or RFC 3339 times; a `to` date
    /// includes its whole day.
    pub fn parse(from: &str, to: &str) -> Result<Period, String> {
        let from_ns = bound(from, false).map_err(|e| format!("--from: {e}"))?;
        let to_ns = bound(to, true).map_err(|e| format!("--to: {e}"))?;
        if to_ns <= from_ns {
            return Err(format!(
                "the period is empty: --to {to} does not come after --from {from}"
            ));
        }
        Ok(Period {
            from: format_instant(from_ns),
            to: format_instant(to_ns),
            from_ns,
            to_ns,
        })
    }

    pub fn contains(&self, unix_nano: u64) -> bool {
        self.from_ns <= unix_nano && unix_nano < self.to_ns
    }
}

fn bound(text: &str, end_of_day: bool) -> Result<u64, String> {
    let text = text.trim();
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        let day = if end_of_day {
            date.next_day().ok_or("the date is out of range")?
        } else {
            date
        };
        let ns = day.midnight().assume_utc().unix_timestamp_nanos();
        return u64::try_from(ns).map_err(|_| "dates before 1970 are not supported".to_string());
    }
    parse_time(text).ok_or_else(|| {
        format!(
            "`{text}` is neither a date (2026-11-01) nor an RFC 3339 time (2026-11-01T00:00:00Z) from 1970 on"
        )
    })
}

/// RFC 3339 UTC, with a fraction only when there is one.
fn format_instant(unix_nano: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format_time(unix_nano))
}

/// Everything the report shows; serialized, the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub report_format: u32,
    pub generator: String,
    pub generated_at: String,
    pub framework: FrameworkInfo,
    pub period: Period,
    pub sources: Vec<Source>,
    pub totals: Totals,
    pub by_event_type: BTreeMap<String, u64>,
    /// Keys `critical`, `high`, `medium`, `low`, `info`, `unclassified`, all present.
    pub by_severity: BTreeMap<String, u64>,
    pub by_event_type_and_severity: BTreeMap<String, BTreeMap<String, u64>>,
    pub by_source: BTreeMap<String, u64>,
    /// `YYYY-MM-DD` (UTC) of the records in the period.
    pub by_day: BTreeMap<String, u64>,
    pub streams: Vec<StreamStats>,
    pub access: Table,
    pub changes: Table,
    pub failed_auth: FailedAuth,
    pub security: Table,
    pub verification: Verification,
    pub retention: Retention,
}

impl ReportData {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let v = &self.verification;
        let verified = if v.passed() {
            "verification passed".to_string()
        } else {
            format!(
                "verification FAILED ({} finding(s))",
                v.directories.iter().map(|d| d.findings_total).sum::<u64>()
            )
        };
        format!(
            "{} report, {} to {}: {} records ({} access, {} changes, {} failed logins, {} security); {verified}; retention {}",
            self.framework.id,
            self.period.from,
            self.period.to,
            self.totals.in_period,
            self.access.total,
            self.changes.total,
            self.failed_auth.table.total,
            self.security.total,
            self.retention.status.as_str()
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameworkInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub controls: Vec<frameworks::Control>,
    pub retention: RetentionRule,
}

/// What was read, and where it fell.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Entry lines read from the evidence.
    pub entries_read: u64,
    pub in_period: u64,
    pub before_period: u64,
    pub after_period: u64,
    /// Entries with neither a readable `time` nor `observed_time`.
    pub undated: u64,
    /// Lines that are not JSON objects with a `seq`.
    pub unreadable: u64,
    /// Entries of a stream already counted (a `seq` seen before).
    pub duplicates: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamStats {
    pub stream: String,
    /// Entries read, in or out of the period.
    pub entries: u64,
    pub in_period: u64,
    /// The `seq` range of the period's entries.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// One record in a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub time: String,
    pub stream: String,
    pub seq: u64,
    pub event_type: String,
    pub severity: String,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub address: String,
    pub target: String,
    pub source: String,
    #[serde(skip)]
    pub time_ns: u64,
}

impl Row {
    fn key(&self) -> (u64, &str, u64) {
        (self.time_ns, &self.stream, self.seq)
    }
}

/// Orders rows by time, then stream and `seq`.
#[derive(Debug, PartialEq, Eq)]
struct ByTime(Row);

impl Ord for ByTime {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key().cmp(&other.0.key())
    }
}

impl PartialOrd for ByTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A section's records: how many, and the latest ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub total: u64,
    /// The latest rows, newest first.
    pub rows: Vec<Row>,
}

/// Keeps the latest `max` rows of a table.
struct Latest {
    max: usize,
    total: u64,
    heap: BinaryHeap<Reverse<ByTime>>,
}

impl Latest {
    fn new(max: usize) -> Latest {
        Latest {
            max,
            total: 0,
            heap: BinaryHeap::new(),
        }
    }

    fn push(&mut self, row: &Row) {
        self.total += 1;
        if self.max == 0 {
            return;
        }
        if self.heap.len() >= self.max {
            match self.heap.peek() {
                Some(Reverse(oldest)) if oldest.0.key() < row.key() => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Reverse(ByTime(row.clone())));
    }

    fn into_table(self) -> Table {
        // Ascending order of `Reverse` is newest first.
        let rows = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(ByTime(row))| row)
            .collect();
        Table {
            total: self.total,
            rows,
        }
    }
}

/// Failed authentications, with the accounts and addresses they came from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailedAuth {
    #[serde(flatten)]
    pub table: Table,
    /// The accounts with most failures, most first.
    pub by_user: Vec<KeyCount>,
    /// The client addresses with most failures, most first.
    pub by_address: Vec<KeyCount>,
    /// Failures whose account or address was beyond [`MAX_TALLY_KEYS`] distinct ones.
    pub untallied: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// Counts per key, for at most [`MAX_TALLY_KEYS`] keys.
#[derive(Default)]
struct Tally {
    counts: HashMap<String, u64>,
    untallied: u64,
}

impl Tally {
    fn add(&mut self, key: &str) {
        if let Some(count) = self.counts.get_mut(key) {
            *count += 1;
        } else if self.counts.len() < MAX_TALLY_KEYS {
            self.counts.insert(key.to_string(), 1);
        } else {
            self.untallied += 1;
        }
    }

    fn top(&self, n: usize) -> Vec<KeyCount> {
        let mut all: Vec<KeyCount> = self
            .counts
            .iter()
            .map(|(key, &count)| KeyCount {
                key: key.clone(),
                count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        all.truncate(n);
        all
    }
}

/// Adds 1 to `name`, or to [`OTHER`] once [`MAX_DISTINCT_NAMES`] names are known;
/// returns the name counted.
fn count_name<'a>(map: &mut BTreeMap<String, u64>, name: &'a str) -> &'a str {
    if let Some(count) = map.get_mut(name) {
        *count += 1;
        return name;
    }
    let name = if map.len() < MAX_DISTINCT_NAMES {
        name
    } else {
        OTHER
    };
    *map.entry(name.to_string()).or_default() += 1;
    name
}

/// The status of the evidence the report rests on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// `passed` or `failed`.
    pub status: &'static str,
    pub macs_checked: bool,
    pub signatures_checked: bool,
    pub directories: Vec<DirectoryCheck>,
    pub streams: Vec<StreamCoverage>,
    /// Findings about entries of the period, over all directories.
    pub findings_in_period: u64,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.status == "passed"
    }
}

/// `vellum verify` of one directory.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryCheck {
    pub directory: String,
    pub passed: bool,
    /// `vellum verify`'s summary line.
    pub summary: String,
    pub streams: u64,
    pub entries: u64,
    pub checkpoints: u64,
    pub checkpoints_confirmed: u64,
    pub findings_total: u64,
    /// The first [`MAX_FINDINGS_LISTED`] findings.
    pub findings: Vec<FindingRow>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    pub stream: String,
    pub seq: Option<u64>,
    pub file: String,
    pub line: Option<u64>,
    pub problem: String,
    /// Whether the finding is about an entry of the period.
    pub in_period: bool,
}

/// How well the period's entries of one stream are covered.
#[derive(Debug, Clone, Serialize)]
pub struct StreamCoverage {
    pub stream: String,
    pub in_period: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The largest confirmed checkpoint's size, over all directories.
    pub confirmed_size: Option<u64>,
    /// Whether that checkpoint covers every entry of the period.
    pub covered: bool,
    pub findings_in_period: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionStatus {
    Meets,
    Short,
    Unknown,
    /// The framework sets no period to compare with.
    NoMinimum,
}

impl RetentionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionStatus::Meets => "meets",
            RetentionStatus::Short => "short",
            RetentionStatus::Unknown => "unknown",
            RetentionStatus::NoMinimum => "no_minimum",
        }
    }
}

/// One store's retention against the framework's period.
#[derive(Debug, Clone, Serialize)]
pub struct StoreCheck {
    #[serde(flatten)]
    pub setting: StoreSetting,
    pub forever: bool,
    pub status: RetentionStatus,
    pub explanation: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    /// Whether settings were known (a `--config` was given).
    pub configured: bool,
    pub minimum_days: Option<u32>,
    /// Whether the framework itself sets the period (else common practice).
    pub required: bool,
    pub citation: &'static str,
    pub note: &'static str,
    pub status: RetentionStatus,
    pub explanation: String,
    pub stores: Vec<StoreCheck>,
    /// The oldest and newest `time` among all entries read.
    pub oldest_entry: Option<String>,
    pub newest_entry: Option<String>,
    pub references: Vec<ReferencePeriod>,
}

/// Compares one store's setting with `minimum` days.
pub fn check_store(setting: &StoreSetting, minimum: Option<u32>) -> StoreCheck {
    use RetentionStatus::*;
    let forever =
        matches!(setting.kind, StoreKind::Journal | StoreKind::File) && setting.days == Some(0);
    let (status, explanation) = match (setting.kind, setting.days, minimum) {
        (StoreKind::External, _, _) => (
            Unknown,
            "kept as long as the destination's own retention says".to_string(),
        ),
        (StoreKind::S3, None, _) => (
            Unknown,
            "no object lock: the bucket's lifecycle rules decide how long objects stay".to_string(),
        ),
        (_, _, _) if forever => (
            if minimum.is_some() { Meets } else { NoMinimum },
            "kept forever (0)".to_string(),
        ),
        (kind, Some(days), None) => (NoMinimum, kept(kind, days)),
        (kind, Some(days), Some(min)) if days >= min => (
            Meets,
            format!("{}, at least the {min} days", kept(kind, days)),
        ),
        (kind, Some(days), Some(min)) => {
            let mut text = format!("{}: {} days short of {min}", kept(kind, days), min - days);
            if kind == StoreKind::S3 {
                text.push_str("; objects stay after that unless a lifecycle rule deletes them");
            }
            (Short, text)
        }
        (_, None, _) => (Unknown, "not set".to_string()),
    };
    StoreCheck {
        setting: setting.clone(),
        forever,
        status,
        explanation,
    }
}

fn kept(kind: StoreKind, days: u32) -> String {
    match kind {
        StoreKind::S3 => format!("locked {days} days"),
        _ => format!("kept {days} days"),
    }
}

fn retention(
    rule: &RetentionRule,
    settings: Option<&[StoreSetting]>,
    oldest: Option<u64>,
    newest: Option<u64>,
) -> Retention {
    let minimum = rule.minimum_days();
    let stores: Vec<StoreCheck> = settings
        .unwrap_or_default()
        .iter()
        .map(|s| check_store(s, minimum))
        .collect();
    let evidence: Vec<&StoreCheck> = stores
        .iter()
        .filter(|s| matches!(s.setting.kind, StoreKind::File | StoreKind::S3))
        .collect();
    let (status, explanation) = if settings.is_none() {
        (
            RetentionStatus::Unknown,
            "settings unknown: give --config to compare them".to_string(),
        )
    } else if minimum.is_none() {
        (
            RetentionStatus::NoMinimum,
            "the framework sets no minimum period".to_string(),
        )
    } else if let Some(met) = evidence.iter().find(|s| s.status == RetentionStatus::Meets) {
        (
            RetentionStatus::Meets,
            format!("met by {}", met.setting.store),
        )
    } else if evidence.is_empty() {
        (
            RetentionStatus::Unknown,
            "no `file` or `s3` exporter keeps evidence".to_string(),
        )
    } else if evidence
        .iter()
        .any(|s| s.status == RetentionStatus::Unknown)
    {
        (
            RetentionStatus::Unknown,
            "no evidence store is known to keep records long enough".to_string(),
        )
    } else {
        (
            RetentionStatus::Short,
            "every evidence store keeps records for less than the period".to_string(),
        )
    };
    Retention {
        configured: settings.is_some(),
        minimum_days: minimum,
        required: rule.required,
        citation: rule.citation,
        note: rule.note,
        status,
        explanation,
        stores,
        oldest_entry: oldest.map(format_instant),
        newest_entry: newest.map(format_instant),
        references: frameworks::reference_periods(),
    }
}

/// What the report needs of one entry, read from its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub event_type: String,
    pub severity: String,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub address: String,
    pub target: String,
    pub source: String,
}

// Who, what, outcome and address come from the vocabularies the query API reads
// (`query::fields`); what was acted on, first present wins:
const TARGET_PATHS: &[&str] = &[
    "target",
    "resource_id",
    "resource",
    "table_name",
    "uri",
    "url.path",
    "path",
    "gen_ai.request.model",
    "model",
    "ai.proxy.meta.request_model",
    "gen_ai.tool.name",
    "tool",
];

const FAILURE_WORDS: &[&str] = &[
    "failure",
    "failed",
    "fail",
    "denied",
    "deny",
    "error",
    "rejected",
    "unauthorized",
    "forbidden",
    "invalid",
    "401",
    "403",
];

/// The members of an entry the report reads; the rest (hashes, macs, resource) are
/// skipped unparsed, and strings without escapes are borrowed from the line.
#[derive(Debug, Default, serde::Deserialize)]
pub struct EntryView<'a> {
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub observed_time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub event_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub severity: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub source: Option<Cow<'a, str>>,
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default)]
    pub body: Option<Value>,
}

impl Facts {
    pub fn of(entry: &EntryView) -> Facts {
        let empty = Map::new();
        let attributes = entry.attributes.as_ref().unwrap_or(&empty);
        let first = |paths: &[&str]| {
            paths
                .iter()
                .find_map(|p| lookup_map(attributes, p).and_then(scalar_text))
                .unwrap_or_default()
        };
        let mut action = first(fields::ACTION_PATHS);
        if action.is_empty() {
            // A record without an action (a `pii_blocked` record, plain syslog) is
            // described by its body's message.
            action = entry
                .body
                .as_ref()
                .and_then(|b| scalar_text(b).or_else(|| lookup(b, "message").and_then(scalar_text)))
                .unwrap_or_default();
        }
        let event_type = entry.event_type.as_deref().unwrap_or_default();
        let severity = entry.severity.as_deref().unwrap_or_default();
        Facts {
            event_type: if event_type.is_empty() {
                UNCLASSIFIED.into()
            } else {
                cell(event_type.to_string())
            },
            severity: match Severity::parse(severity) {
                Some(s) => s.as_str().into(),
                None => UNCLASSIFIED.into(),
            },
            actor: cell(first(fields::USER_ID_PATHS)),
            action: cell(action),
            outcome: cell(first(fields::STATUS_PATHS)),
            address: cell(first(fields::IP_PATHS)),
            target: cell(first(TARGET_PATHS)),
            source: cell(entry.source.as_deref().unwrap_or_default().to_string()),
        }
    }

    /// The sections the record belongs in (see the module documentation).
    pub fn placement(&self) -> Placement {
        let failed = is_failure_word(&self.outcome) || ends_in_failure(&self.action);
        let mut placement = Placement {
            security: matches!(self.event_type.as_str(), "security" | "pii_blocked")
                || matches!(self.severity.as_str(), "high" | "critical"),
            ..Placement::default()
        };
        match self.event_type.as_str() {
            "authentication" if failed => placement.failed_auth = true,
            "authentication" if is_credential_setting(&self.action) => placement.change = true,
            "authentication" | "data_access" | "model_request" => placement.access = true,
            "authorization" if failed => placement.access = true,
            "authorization" | "configuration_change" | "credential_change" => {
                placement.change = true
            }
            t if t.starts_with("vellum.retention") => placement.change = true,
            _ if self.action.starts_with("vellum.retention") => placement.change = true,
            _ => {}
        }
        placement
    }
}

/// Which sections a record is listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    pub access: bool,
    pub change: bool,
    pub failed_auth: bool,
    pub security: bool,
}

fn is_failure_word(text: &str) -> bool {
    FAILURE_WORDS.iter().any(|w| text.eq_ignore_ascii_case(w))
}

/// `login.failed`, `api_key.invalid`, `access_denied`, …
fn ends_in_failure(action: &str) -> bool {
    action
        .rsplit(['.', '_', ':', '/', ' '])
        .next()
        .is_some_and(|last| is_failure_word(last) && !last.chars().all(|c| c.is_ascii_digit()))
}

/// `password.changed`, `user.mfa.disabled`, `two_factor.disabled`, …
fn is_credential_setting(action: &str) -> bool {
    let action = action.strip_prefix("user.").unwrap_or(action);
    let object = action.split('.').next().unwrap_or_default();
    matches!(object, "password" | "mfa" | "two_factor" | "2fa") && action.contains('.')
}

/// A string, number or boolean as text; nothing for null, empty strings, lists, maps.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// At most [`MAX_CELL_CHARS`] characters, control characters shown as `�`.
fn cell(text: String) -> String {
    let needs_work = text.len() > MAX_CELL_CHARS || text.chars().any(char::is_control);
    if !needs_work {
        return text;
    }
    let mut out: String = text
        .chars()
        .take(MAX_CELL_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(MAX_CELL_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Folds entries into the report as the verifier reads them.
struct Collector<'r> {
    request: &'r Request,
    totals: Totals,
    next_seq: HashMap<String, u64>,
    streams: BTreeMap<String, StreamStats>,
    by_event_type: BTreeMap<String, u64>,
    by_severity: BTreeMap<String, u64>,
    by_type_and_severity: BTreeMap<String, BTreeMap<String, u64>>,
    by_source: BTreeMap<String, u64>,
    by_day: BTreeMap<String, u64>,
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
    fn new(request: &'r Request) -> Collector<'r> {
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

    fn entry(&mut self, stream: &str, line: &[u8]) {
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

    fn finish(self, checks: Vec<(&Source, Report)>) -> ReportData {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::seal::Chain;
    use serde_json::json;

    const DAY: u64 = 86_400 * 1_000_000_000;
    /// 2026-11-01T00:00:00Z.
    const NOV_1: u64 = 1_793_491_200 * 1_000_000_000;

    #[test]
    fn a_to_date_includes_its_day_and_a_to_time_is_exclusive() {
        let p = Period::parse("2026-11-01", "2026-11-30").unwrap();
        assert_eq!(p.from, "2026-11-01T00:00:00Z");
        assert_eq!(p.to, "2026-12-01T00:00:00Z");
        assert_eq!(p.from_ns, NOV_1);
        assert_eq!(p.to_ns, NOV_1 + 30 * DAY);
        assert!(p.contains(NOV_1));
        assert!(p.contains(NOV_1 + 30 * DAY - 1));
        assert!(!p.contains(NOV_1 - 1));
        assert!(!p.contains(NOV_1 + 30 * DAY));

        let p = Period::parse("2026-11-01T12:00:00+01:00", "2026-11-02T00:00:00.5Z").unwrap();
        assert_eq!(p.from, "2026-11-01T11:00:00Z");
        assert_eq!(p.to_ns, NOV_1 + DAY + 500_000_000);
        assert!(!p.contains(p.to_ns));
        // One day: from and to the same date.
        let p = Period::parse("2026-11-05", "2026-11-05").unwrap();
        assert_eq!(p.to_ns - p.from_ns, DAY);
    }

    #[test]
    fn bad_periods_say_which_bound_is_wrong() {
        let err = Period::parse("2026-13-01", "2026-11-30").unwrap_err();
        assert!(err.starts_with("--from:"), "{err}");
        let err = Period::parse("2026-11-01", "yesterday").unwrap_err();
        assert!(
            err.starts_with("--to:") && err.contains("yesterday"),
            "{err}"
        );
        let err = Period::parse("2026-11-02", "2026-11-01").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        assert!(Period::parse("1969-12-01", "2026-11-01").is_err());
    }

    fn facts(event_type: &str, severity: &str, attributes: Value) -> Facts {
        let entry =
            json!({"event_type": event_type, "severity": severity, "attributes": attributes});
        facts_of(entry)
    }

    fn facts_of(entry: Value) -> Facts {
        let text = entry.to_string();
        Facts::of(&serde_json::from_str(&text).unwrap())
    }

    fn placed(event_type: &str, severity: &str, attributes: Value) -> [bool; 4] {
        let p = facts(event_type, severity, attributes).placement();
        [p.access, p.change, p.failed_auth, p.security]
    }

    #[test]
    fn records_go_to_the_sections_the_mapping_documents() {
        //                                                                     access change failed security
        let cases = [
            (
                placed(
                    "authentication",
                    "medium",
                    json!({"action": "login.failed"}),
                ),
                [false, false, true, false],
            ),
            (
                placed("authentication", "high", json!({"action": "login.failed"})),
                [false, false, true, true],
            ),
            (
                placed(
                    "authentication",
                    "medium",
                    json!({"action": "login", "outcome": "DENIED"}),
                ),
                [false, false, true, false],
            ),
            (
                placed(
                    "authentication",
                    "medium",
                    json!({"action": "api_key.invalid"}),
                ),
                [false, false, true, false],
            ),
            (
                placed(
                    "authentication",
                    "info",
                    json!({"action": "login.succeeded"}),
                ),
                [true, false, false, false],
            ),
            (
                placed("authentication", "high", json!({"action": "mfa.disabled"})),
                [false, true, false, true],
            ),
            (
                placed(
                    "authorization",
                    "medium",
                    json!({"action": "access.denied"}),
                ),
                [true, false, false, false],
            ),
            (
                placed(
                    "authorization",
                    "medium",
                    json!({"uri": "/v1/x", "response_status_code": 403}),
                ),
                [true, false, false, false],
            ),
            (
                placed("authorization", "high", json!({"action": "role.assigned"})),
                [false, true, false, true],
            ),
            (
                placed(
                    "configuration_change",
                    "low",
                    json!({"action": "config.updated"}),
                ),
                [false, true, false, false],
            ),
            (
                placed(
                    "credential_change",
                    "medium",
                    json!({"action": "api_key.rotated"}),
                ),
                [false, true, false, false],
            ),
            (
                placed("model_request", "info", json!({"action": "model.invoke"})),
                [true, false, false, false],
            ),
            (
                placed("data_access", "low", json!({"action": "logs.exported"})),
                [true, false, false, false],
            ),
            (
                placed(
                    "security",
                    "high",
                    json!({"action": "prompt_injection.detected"}),
                ),
                [false, false, false, true],
            ),
            (
                placed("pii_blocked", "medium", json!({})),
                [false, false, false, true],
            ),
            (
                placed("other", "info", json!({"action": "vellum.retention.purge"})),
                [false, true, false, false],
            ),
            (
                placed("other", "critical", json!({})),
                [false, false, false, true],
            ),
            (
                placed("other", "info", json!({"action": "login.failed"})),
                [false, false, false, false],
            ),
        ];
        for (i, (got, want)) in cases.iter().enumerate() {
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn facts_come_from_the_gateway_vocabularies_and_are_cut_to_size() {
        let f = facts(
            "",
            "severe",
            json!({"actor": {"session": {"user": {"id": "u7"}, "ip_address": "198.51.100.4"}},
                   "type": "login.failed", "event": {"outcome": "failure"},
                   "uri": "x".repeat(500)}),
        );
        assert_eq!(f.event_type, UNCLASSIFIED);
        assert_eq!(f.severity, UNCLASSIFIED);
        assert_eq!(f.actor, "u7");
        assert_eq!(f.address, "198.51.100.4");
        assert_eq!(f.action, "login.failed");
        assert_eq!(f.outcome, "failure");
        assert_eq!(f.target.chars().count(), MAX_CELL_CHARS + 1);
        assert!(f.target.ends_with('…'));
        // Without an action, the body's message says what happened; controls are masked.
        let entry = json!({"body": {"message": "blocked\u{7}"}, "attributes": {"user": {"id": 5}}});
        let f = facts_of(entry);
        assert_eq!(f.action, "blocked\u{fffd}");
        assert_eq!(f.actor, "5");
    }

    #[test]
    fn stores_are_compared_with_the_minimum_and_zero_means_forever() {
        let store = |kind, days| StoreSetting {
            store: "x".into(),
            kind,
            setting: "s".into(),
            days,
        };
        let status = |kind, days, min| check_store(&store(kind, days), min).status;
        use RetentionStatus::*;
        assert_eq!(status(StoreKind::File, Some(0), Some(2192)), Meets);
        assert_eq!(status(StoreKind::Journal, Some(0), Some(2192)), Meets);
        assert_eq!(status(StoreKind::File, Some(2192), Some(2192)), Meets);
        assert_eq!(status(StoreKind::File, Some(2191), Some(2192)), Short);
        assert_eq!(status(StoreKind::S3, Some(2555), Some(2557)), Short);
        assert_eq!(status(StoreKind::S3, Some(2557), Some(2557)), Meets);
        // Object lock 0 is not "forever": it is no lock at all.
        assert_eq!(status(StoreKind::S3, Some(0), Some(366)), Short);
        assert_eq!(status(StoreKind::S3, None, Some(366)), Unknown);
        assert_eq!(status(StoreKind::External, None, Some(366)), Unknown);
        assert_eq!(status(StoreKind::File, Some(30), None), NoMinimum);
        let short = check_store(&store(StoreKind::File, Some(400)), Some(2192));
        assert_eq!(short.explanation, "kept 400 days: 1792 days short of 2192");

        let rule = Framework::Hipaa.retention();
        let journal_only = [
            store(StoreKind::Journal, Some(0)),
            store(StoreKind::File, Some(30)),
        ];
        let r = retention(&rule, Some(&journal_only), None, None);
        assert_eq!(r.status, Short, "the journal is not an evidence store");
        let r = retention(&rule, None, None, None);
        assert_eq!((r.status, r.configured), (Unknown, false));
        let r = retention(
            &Framework::Gdpr.retention(),
            Some(&journal_only),
            None,
            None,
        );
        assert_eq!(r.status, NoMinimum);
    }

    /// Seals `records` as stream `stream` into `dir/<stream>/…jsonl`.
    fn write_evidence(dir: &Path, stream: &str, records: &[Value]) -> Vec<Vec<u8>> {
        let mut chain = Chain::new(stream, None).unwrap();
        let lines: Vec<Vec<u8>> = records
            .iter()
            .map(|r| chain.seal(r.as_object().cloned().unwrap()).line)
            .collect();
        let folder = dir.join(stream);
        std::fs::create_dir_all(&folder).unwrap();
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        std::fs::write(folder.join("00000000000000000000.jsonl"), text).unwrap();
        lines
    }

    fn record(at: u64, event_type: &str, severity: &str, action: &str, user: &str) -> Value {
        json!({"time": format_time(at), "observed_time": format_time(at), "severity_number": 9,
               "event_type": event_type, "severity": severity, "source": "http/gateway",
               "body": null, "attributes": {"action": action, "user_id": user}})
    }

    fn request(dirs: &[&Path], max_rows: usize) -> Request {
        Request {
            framework: Framework::Soc2,
            period: Period::parse("2026-11-01", "2026-11-30").unwrap(),
            sources: dirs.iter().map(|d| Source::new(d, None)).collect(),
            options: Options::default(),
            retention: None,
            max_rows,
        }
    }

    #[test]
    fn collection_counts_the_period_keeps_the_latest_rows_and_counts_a_stream_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let mut records = vec![
            record(
                NOV_1 - 1,
                "authentication",
                "medium",
                "login.failed",
                "early",
            ),
            record(
                NOV_1 + 30 * DAY,
                "authentication",
                "medium",
                "login.failed",
                "late",
            ),
        ];
        for i in 0..5u64 {
            records.push(record(
                NOV_1 + i * DAY,
                "authentication",
                "medium",
                "login.failed",
                &format!("u{}", i % 2),
            ));
        }
        records.push(record(
            NOV_1 + 3 * DAY,
            "configuration_change",
            "low",
            "config.updated",
            "admin",
        ));
        records.push(json!({"seq": "not a record"}));
        write_evidence(&a, "logs", &records);
        // A second copy of the same stream, and a stream of its own.
        write_evidence(&b, "logs", &records);
        write_evidence(
            &b,
            "other",
            &[record(
                NOV_1 + DAY,
                "security",
                "high",
                "prompt_injection.detected",
                "m",
            )],
        );

        let data = collect(&request(&[&a, &b], 3)).unwrap();
        let t = &data.totals;
        assert_eq!(
            (
                t.entries_read,
                t.in_period,
                t.before_period,
                t.after_period,
                t.duplicates
            ),
            (19, 7, 1, 1, 9)
        );
        assert_eq!(t.undated, 1, "the record without a time");
        assert_eq!(data.by_event_type["authentication"], 5);
        assert_eq!(data.by_event_type["configuration_change"], 1);
        assert_eq!(data.by_severity["medium"], 5);
        assert_eq!(data.by_severity["critical"], 0);
        assert_eq!(data.by_event_type_and_severity["security"]["high"], 1);
        assert_eq!(data.by_day["2026-11-04"], 2);
        let f = &data.failed_auth;
        assert_eq!(f.table.total, 5);
        let latest: Vec<&str> = f.table.rows.iter().map(|r| r.time.as_str()).collect();
        assert_eq!(
            latest,
            [
                format_time(NOV_1 + 4 * DAY),
                format_time(NOV_1 + 3 * DAY),
                format_time(NOV_1 + 2 * DAY)
            ]
        );
        assert_eq!(
            f.by_user,
            [
                KeyCount {
                    key: "u0".into(),
                    count: 3
                },
                KeyCount {
                    key: "u1".into(),
                    count: 2
                }
            ]
        );
        assert_eq!(
            (data.changes.total, data.security.total, data.access.total),
            (1, 1, 0)
        );
        let logs = &data.streams[0];
        assert_eq!(
            (logs.stream.as_str(), logs.first_seq, logs.last_seq),
            ("logs", Some(2), Some(7))
        );
        assert!(data.verification.passed(), "{:?}", data.verification);
        assert!(
            !data.verification.streams[0].covered,
            "no checkpoint was written"
        );
    }

    #[test]
    fn a_changed_line_fails_verification_and_is_placed_in_the_period() {
        let tmp = tempfile::tempdir().unwrap();
        let records: Vec<Value> = (0..4u64)
            .map(|i| {
                record(
                    NOV_1 + i * DAY,
                    "authentication",
                    "info",
                    "login.succeeded",
                    "u",
                )
            })
            .collect();
        let lines = write_evidence(tmp.path(), "logs", &records);
        let file = tmp.path().join("logs/00000000000000000000.jsonl");
        let text = String::from_utf8(lines.join(&b'\n')).unwrap();
        std::fs::write(
            &file,
            text.replacen("\"user_id\":\"u\"", "\"user_id\":\"v\"", 2),
        )
        .unwrap();

        let data = collect(&request(&[tmp.path()], 10)).unwrap();
        let v = &data.verification;
        assert!(!v.passed());
        assert_eq!(v.status, "failed");
        assert_eq!(v.findings_in_period, v.directories[0].findings_total);
        let seqs: Vec<Option<u64>> = v.directories[0].findings.iter().map(|f| f.seq).collect();
        assert!(
            seqs.contains(&Some(0)) && seqs.contains(&Some(1)),
            "{seqs:?}"
        );
        assert!(v.directories[0].findings.iter().all(|f| f.in_period));
        assert_eq!(data.access.total, 4, "changed records are still reported");
    }
}
