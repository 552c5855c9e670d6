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
//! `by_identity` (records per `attributes["vellum.client.identity"]`, the sender the
//! receiver authenticated; `(none)` for records without one),
//! `access`/`changes`/`security` `{total, rows[]}`, `failed_auth {total, rows[], by_user[],
//! by_address[]}`, `verification {status, macs_checked, signatures_checked,
//! directories[], streams[], findings_in_period}`, `retention {configured, minimum_days,
//! required, status, stores[], oldest_entry, newest_entry, references[]}`. Rows are
//! `{time, stream, seq, event_type, severity, actor, action, outcome, address, target,
//! source}`, newest first; cells longer than 200 characters are cut with `…`.
//!
//! **Files.** [`cli`] runs the command (arguments to files), [`period`] parses the
//! period, [`collect`] reads the sources in one verifying pass, [`facts`] reads one
//! entry, [`policy`] places it in sections and judges retention, [`model`] is the report
//! as serialized, and [`html`] renders it; [`frameworks`] holds each framework's controls
//! and periods.

pub mod cli;
pub mod collect;
pub mod facts;
pub mod frameworks;
pub mod html;
pub mod model;
pub mod period;
pub mod policy;

pub use cli::{Invocation, ReportError, run};
pub use collect::{Request, Source, collect, retention_from_config, sources_from_config};
pub use facts::{EntryView, Facts};
pub use frameworks::{Framework, ReferencePeriod, RetentionRule, Section};
pub use model::*;
pub use period::Period;
pub use policy::{Placement, check_store};

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
/// The identity of a record whose receiver authenticated no sender.
pub const NO_IDENTITY: &str = "(none)";

#[cfg(test)]
mod tests;
