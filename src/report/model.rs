//! The report as it is serialized (the JSON report) and rendered, and the bounded
//! tables and tallies it is built with.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::Serialize;

use super::collect::Source;
use super::frameworks::{self, ReferencePeriod, RetentionRule};
use super::period::Period;
use super::{MAX_DISTINCT_NAMES, MAX_TALLY_KEYS, OTHER};

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
    /// Records of the period per sender identity (`(none)`: not authenticated), at most
    /// [`MAX_DISTINCT_NAMES`] by name, the rest under `(other)`.
    pub by_identity: BTreeMap<String, u64>,
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
pub(super) struct Latest {
    max: usize,
    total: u64,
    heap: BinaryHeap<Reverse<ByTime>>,
}

impl Latest {
    pub(super) fn new(max: usize) -> Latest {
        Latest {
            max,
            total: 0,
            heap: BinaryHeap::new(),
        }
    }

    pub(super) fn push(&mut self, row: &Row) {
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

    pub(super) fn into_table(self) -> Table {
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
pub(super) struct Tally {
    counts: HashMap<String, u64>,
    pub(super) untallied: u64,
}

impl Tally {
    pub(super) fn add(&mut self, key: &str) {
        if let Some(count) = self.counts.get_mut(key) {
            *count += 1;
        } else if self.counts.len() < MAX_TALLY_KEYS {
            self.counts.insert(key.to_string(), 1);
        } else {
            self.untallied += 1;
        }
    }

    pub(super) fn top(&self, n: usize) -> Vec<KeyCount> {
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
pub(super) fn count_name<'a>(map: &mut BTreeMap<String, u64>, name: &'a str) -> &'a str {
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
