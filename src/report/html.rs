//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no
//! script, no external fetch (a Content-Security-Policy forbids both), laid out to print
//! on A4 landscape (the audit tables are wide). Every value from the evidence is hostile
//! and goes through maud's escaping.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{
    DirectoryCheck, KeyCount, ReportData, RetentionStatus, Row, Section, Table, UNCLASSIFIED,
};
use crate::event::{Severity, format_time, parse_time};

/// Longer labels are cut in charts (the tables show them whole).
const CHART_LABEL_CHARS: usize = 28;
/// Periods longer than this many days are charted by month rather than by day…
const MAX_DAILY_BARS: u64 = 62;
/// …and longer than this many months, by year.
const MAX_MONTHLY_BARS: u64 = 120;
/// Periods longer than this many days are charted over the days that have records.
const LONGEST_CHARTED_DAYS: u64 = 3660;
const DAY: u64 = 86_400 * 1_000_000_000;

const CSS: &str = r#"
:root { --ink: #1e293b; --muted: #64748b; --line: #e2e8f0; --accent: #1d4ed8; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #f8fafc; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 18px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 6px 0; }
.sub { color: var(--muted); }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin-top: 8px; font-size: 13px; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; break-inside: avoid; }
.card .n { font-size: 22px; font-weight: 700; }
.card .l { color: var(--muted); font-size: 12px; }
.badge { white-space: nowrap; display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: var(--muted); }
.ok { background: var(--ok); } .bad { background: var(--bad); } .warn { background: var(--warn); }
.text-ok { color: var(--ok); } .text-bad { color: var(--bad); } .text-warn { color: var(--warn); }
.sev-critical { background: #7f1d1d; } .sev-high { background: #c2410c; } .sev-medium { background: #b45309; }
.sev-low { background: #1d4ed8; } .sev-info { background: #64748b; } .sev-unclassified { background: #94a3b8; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { background: #f1f5f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
tr { break-inside: avoid; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.chart svg { display: block; max-width: 100%; height: auto; }
.note { color: var(--muted); font-size: 12.5px; }
.split { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
code { font-size: 12px; background: #f1f5f9; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
footer { margin-top: 36px; border-top: 1px solid var(--line); padding-top: 10px; color: var(--muted); font-size: 12px; }
a { color: var(--accent); text-decoration: none; }
table.rows { table-layout: fixed; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  .chart, .card, .split > div { break-inside: avoid; }
  h2 { break-after: avoid; }
  section { break-inside: auto; }
  .badge, .sev-critical, .sev-high, .sev-medium, .sev-low, .sev-info, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The whole page.
pub fn render(data: &ReportData) -> String {
    page(data).into_string()
}

fn page(data: &ReportData) -> Markup {
    let title = format!("{} compliance report", data.framework.name);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    (header(data))
                    (cards(data))
                    (controls(data))
                    (counts(data))
                    (table_section(Section::Access, &data.access,
                        "Who accessed what: sign-ins, data access, model and tool calls, denied attempts."))
                    (table_section(Section::Changes, &data.changes,
                        "Configuration, credential, role, permission and membership changes."))
                    (failed_auth(data))
                    (table_section(Section::Security, &data.security,
                        "Security classifications (prompt injection, guardrails, PII blocks) and every high or critical record."))
                    (verification(data))
                    (retention(data))
                    (footer(data))
                }
            }
        }
    }
}

fn header(data: &ReportData) -> Markup {
    html! {
        header {
            h1 { "Audit evidence report" }
            div.sub { (data.framework.name) }
            dl.meta {
                dt { "Period" }
                dd { (data.period.from) " to " (data.period.to) " (end exclusive)" }
                dt { "Evidence" }
                dd {
                    @for (i, source) in data.sources.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (source.directory) }
                        @if let Some(exporter) = &source.exporter { " (" (exporter) ")" }
                    }
                }
                dt { "Generated" }
                dd { (data.generated_at) " by " (data.generator) }
            }
        }
    }
}

fn cards(data: &ReportData) -> Markup {
    let v = &data.verification;
    let r = &data.retention;
    html! {
        div.cards {
            (card(data.totals.in_period, "records in the period"))
            (card(data.access.total, "access records"))
            (card(data.changes.total, "changes"))
            (card(data.failed_auth.table.total, "failed authentications"))
            (card(data.security.total, "security events"))
            div.card {
                div.n {
                    @if v.passed() { span.badge.ok { "verified" } }
                    @else { span.badge.bad { "FAILED" } }
                }
                div.l { "evidence verification" }
                div.n style="margin-top:6px" { (retention_badge(r.status)) }
                div.l { "retention" }
            }
        }
    }
}

fn card(n: u64, label: &str) -> Markup {
    html! { div.card { div.n { (n) } div.l { (label) } } }
}

fn retention_badge(status: RetentionStatus) -> Markup {
    match status {
        RetentionStatus::Meets => html! { span.badge.ok { "meets minimum" } },
        RetentionStatus::Short => html! { span.badge.bad { "SHORT" } },
        RetentionStatus::Unknown => html! { span.badge.warn { "unknown" } },
        RetentionStatus::NoMinimum => html! { span.badge { "no minimum" } },
    }
}

fn controls(data: &ReportData) -> Markup {
    html! {
        section #controls {
            h2 { "Controls covered" }
            table {
                thead { tr { th { "Control" } th { "Title" } th { "What it asks" } th { "Evidence in this report" } } }
                tbody {
                    @for c in &data.framework.controls {
                        tr {
                            td { b { (c.id) } }
                            td { (c.title) }
                            td { (c.requirement) }
                            td {
                                @for (i, s) in c.sections.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    a href={ "#" (s.id()) } { (s.title()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn counts(data: &ReportData) -> Markup {
    let mut types: Vec<(String, u64)> = data
        .by_event_type
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let severities = severity_order();
    let severity_bars: Vec<(String, u64)> = severities
        .iter()
        .map(|s| {
            (
                s.to_string(),
                data.by_severity.get(*s).copied().unwrap_or(0),
            )
        })
        .collect();
    let t = &data.totals;
    html! {
        section #(Section::Counts.id()) {
            h2 { (Section::Counts.title()) }
            p.note {
                (t.in_period) " records in the period, of " (t.entries_read) " entries read ("
                (t.before_period) " before, " (t.after_period) " after"
                @if t.undated > 0 { ", " (t.undated) " without a time" }
                @if t.unreadable > 0 { ", " (t.unreadable) " unreadable" }
                @if t.duplicates > 0 { ", " (t.duplicates) " counted already" }
                ")."
            }
            div.charts {
                div.chart { h3 { "By event type" } (bar_chart(&types, |_| "#1d4ed8")) }
                div.chart { h3 { "By severity" } (bar_chart(&severity_bars, severity_colour)) }
            }
            div.chart { h3 { "Over time" } (timeline(data)) }
            h3 { "Event type by severity" }
            table {
                thead {
                    tr {
                        th { "Event type" }
                        @for s in &severities { th.num { (s) } }
                        th.num { "total" }
                    }
                }
                tbody {
                    @for (event_type, total) in &types {
                        tr {
                            td { (event_type) }
                            @for s in &severities {
                                td.num {
                                    (data.by_event_type_and_severity.get(event_type)
                                        .and_then(|m| m.get(*s)).copied().unwrap_or(0))
                                }
                            }
                            td.num { b { (total) } }
                        }
                    }
                }
            }
            @if !data.by_source.is_empty() {
                h3 { "By receiver" }
                table {
                    thead { tr { th { "Source" } th.num { "records" } } }
                    tbody {
                        @for (source, n) in &data.by_source {
                            tr { td { (source) } td.num { (n) } }
                        }
                    }
                }
            }
            @if !data.by_identity.is_empty() {
                h3 { "By identity" }
                table {
                    thead { tr { th { "Sender identity" } th.num { "records" } } }
                    tbody {
                        @for (identity, n) in &data.by_identity {
                            tr { td { (identity) } td.num { (n) } }
                        }
                    }
                }
            }
        }
    }
}

fn severity_order() -> Vec<&'static str> {
    let mut order: Vec<&'static str> = Severity::ALL.iter().rev().map(|s| s.as_str()).collect();
    order.push(UNCLASSIFIED);
    order
}

fn severity_colour(name: &str) -> &'static str {
    match name {
        "critical" => "#7f1d1d",
        "high" => "#c2410c",
        "medium" => "#b45309",
        "low" => "#1d4ed8",
        "info" => "#64748b",
        _ => "#94a3b8",
    }
}

fn short_label(label: &str) -> String {
    if label.chars().count() <= CHART_LABEL_CHARS {
        return label.to_string();
    }
    let mut s: String = label.chars().take(CHART_LABEL_CHARS - 1).collect();
    s.push('…');
    s
}

/// Horizontal bars with their labels and counts.
fn bar_chart(bars: &[(String, u64)], colour: impl Fn(&str) -> &'static str) -> Markup {
    const WIDTH: u64 = 520;
    const LABEL: u64 = 190;
    const ROW: u64 = 22;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let height = ROW * bars.len().max(1) as u64 + 4;
    let span = WIDTH - LABEL - 60;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(height)
            viewBox={ "0 0 " (WIDTH) " " (height) } role="img" {
            @if bars.is_empty() {
                text x="0" y="16" fill="#64748b" font-size="12" { "no records" }
            }
            @for (i, (label, n)) in bars.iter().enumerate() {
                @let y = i as u64 * ROW + 2;
                @let w = if *n == 0 { 0 } else { (n * span / max).max(2) };
                text x=(LABEL - 8) y=(y + 15) text-anchor="end" font-size="12" fill="#1e293b" { (short_label(label)) }
                rect x=(LABEL) y=(y + 3) width=(w) height=(ROW - 6) rx="2" fill=(colour(label)) {}
                text x=(LABEL + w + 6) y=(y + 15) font-size="12" fill="#1e293b" { (n) }
            }
        }
    }
}

/// The timeline's bars: every day of the period (months past [`MAX_DAILY_BARS`] days,
/// years past [`MAX_MONTHLY_BARS`] months), empty ones included. A period far longer
/// than its records is charted over the records' days only.
fn timeline_buckets(data: &ReportData) -> (&'static str, Vec<(String, u64)>) {
    let (mut start, mut end) = (data.period.from_ns, data.period.to_ns);
    if end - start > LONGEST_CHARTED_DAYS * DAY {
        let day_start = |day: &str| parse_time(&format!("{day}T00:00:00Z"));
        if let (Some(first), Some(last)) = (
            data.by_day.keys().next().and_then(|d| day_start(d)),
            data.by_day.keys().next_back().and_then(|d| day_start(d)),
        ) {
            (start, end) = (first, last + DAY);
        }
    }
    start -= start % DAY;
    let days = (end - start).div_ceil(DAY);
    let (unit, key_len) = if days <= MAX_DAILY_BARS {
        ("day", 10)
    } else if days <= MAX_MONTHLY_BARS * 31 {
        ("month", 7)
    } else {
        ("year", 4)
    };
    let mut buckets: Vec<(String, u64)> = Vec::new();
    let mut t = start;
    while t < end {
        let key = &format_time(t)[..key_len];
        if buckets.last().is_none_or(|(k, _)| k != key) {
            let count = data
                .by_day
                .range(key.to_string()..)
                .take_while(|(day, _)| day.starts_with(key))
                .map(|(_, n)| n)
                .sum();
            buckets.push((key.to_string(), count));
        }
        t += DAY;
    }
    (unit, buckets)
}

/// Vertical bars of records over time.
fn timeline(data: &ReportData) -> Markup {
    let (unit, buckets) = timeline_buckets(data);
    const WIDTH: u64 = 1100;
    const HEIGHT: u64 = 150;
    const AXIS: u64 = 20;
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let n = buckets.len().max(1) as u64;
    let slot = (WIDTH / n).max(1);
    let bar = (slot * 3 / 4).max(1);
    let label_every = buckets.len().div_ceil(12).max(1);
    html! {
        @if buckets.iter().all(|(_, n)| *n == 0) {
            p.note { "No records in the period." }
        } @else {
            p.note { "Records per " (unit) " (UTC); the tallest bar is " (max) "." }
            svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT + AXIS)
                viewBox={ "0 0 " (WIDTH) " " (HEIGHT + AXIS) } role="img" {
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#cbd5e1" {}
                @for (i, (key, count)) in buckets.iter().enumerate() {
                    @let h = (count * (HEIGHT - 10) / max).max(if *count > 0 { 2 } else { 0 });
                    @let x = i as u64 * slot;
                    rect x=(x) y=(HEIGHT - h) width=(bar) height=(h) fill="#1d4ed8" {
                        title { (key) ": " (count) }
                    }
                    @if i % label_every == 0 {
                        text x=(x) y=(HEIGHT + 14) font-size="10" fill="#64748b" { (key) }
                    }
                }
            }
        }
    }
}

fn rows_table(table: &Table) -> Markup {
    html! {
        @if table.rows.is_empty() {
            p.note { "No records." }
        } @else {
            table.rows {
                colgroup {
                    col style="width:13%"; col style="width:13%"; col style="width:8%";
                    col style="width:11%"; col style="width:14%"; col style="width:8%";
                    col style="width:11%"; col style="width:10%"; col style="width:12%";
                }
                thead {
                    tr {
                        th { "Time (UTC)" } th { "Event type" } th { "Severity" } th { "Actor" }
                        th { "Action" } th { "Outcome" } th { "Client address" } th { "Target" }
                        th { "Stream / seq" }
                    }
                }
                tbody { @for row in &table.rows { (row_markup(row)) } }
            }
        }
    }
}

fn row_markup(row: &Row) -> Markup {
    html! {
        tr {
            td.time { (row.time.get(..19).unwrap_or(&row.time).replace('T', " ")) }
            td { (row.event_type) }
            td { span class={ "badge sev-" (severity_class(&row.severity)) } { (row.severity) } }
            td { (row.actor) }
            td { (row.action) }
            td { (row.outcome) }
            td { (row.address) }
            td { (row.target) }
            td.time { (row.stream) " #" (row.seq) }
        }
    }
}

fn severity_class(severity: &str) -> &'static str {
    match Severity::parse(severity) {
        Some(s) => s.as_str(),
        None => UNCLASSIFIED,
    }
}

fn shown(table: &Table) -> Markup {
    html! {
        p.note {
            (table.total) " record" @if table.total != 1 { "s" } " in the period"
            @if (table.rows.len() as u64) < table.total {
                "; the latest " (table.rows.len()) " are listed"
            }
            "."
        }
    }
}

fn table_section(section: Section, table: &Table, what: &str) -> Markup {
    html! {
        section #(section.id()) {
            h2 { (section.title()) }
            p { (what) }
            (shown(table))
            (rows_table(table))
        }
    }
}

fn key_counts(title: &str, column: &str, counts: &[KeyCount]) -> Markup {
    html! {
        div {
            h3 { (title) }
            @if counts.is_empty() {
                p.note { "None recorded." }
            } @else {
                table {
                    thead { tr { th { (column) } th.num { "failures" } } }
                    tbody { @for c in counts { tr { td { (c.key) } td.num { (c.count) } } } }
                }
            }
        }
    }
}

fn failed_auth(data: &ReportData) -> Markup {
    let f = &data.failed_auth;
    html! {
        section #(Section::FailedAuth.id()) {
            h2 { (Section::FailedAuth.title()) }
            p { "Authentication attempts that failed: wrong passwords, invalid keys or tokens, denied sign-ins." }
            (shown(&f.table))
            div.split {
                (key_counts("Accounts with most failures", "Account", &f.by_user))
                (key_counts("Client addresses with most failures", "Address", &f.by_address))
            }
            @if f.untallied > 0 {
                p.note { (f.untallied) " failures came from accounts or addresses beyond the tallied ones." }
            }
            (rows_table(&f.table))
        }
    }
}

fn directory_row(d: &DirectoryCheck) -> Markup {
    html! {
        tr {
            td { code { (d.directory) } }
            td {
                @if d.passed { span.badge.ok { "passed" } } @else { span.badge.bad { "failed" } }
            }
            td.num { (d.streams) }
            td.num { (d.entries) }
            td.num { (d.checkpoints_confirmed) " / " (d.checkpoints) }
            td.num { (d.findings_total) }
            td { (d.summary) }
        }
    }
}

fn verification(data: &ReportData) -> Markup {
    let v = &data.verification;
    let findings: Vec<_> = v
        .directories
        .iter()
        .flat_map(|d| d.findings.iter())
        .collect();
    let listed_all = v
        .directories
        .iter()
        .all(|d| d.findings.len() as u64 == d.findings_total);
    html! {
        section #(Section::Verification.id()) {
            h2 { (Section::Verification.title()) }
            p {
                "Status: "
                @if v.passed() {
                    span.badge.ok { "passed" }
                    " Every entry's hash, chain link and sequence"
                    @if v.macs_checked { ", its HMAC" }
                    " and every checkpoint"
                    @if v.signatures_checked { "'s signature and" }
                    " Merkle root check out."
                } @else {
                    span.badge.bad { "failed" }
                    " The evidence does not verify: the findings below say where. "
                    b { (v.findings_in_period) } " of them concern entries of the period."
                }
            }
            @if !v.macs_checked {
                p.text-warn { "HMACs were not checked: give the key ring with --hmac-key or --hmac-keys." }
            }
            @if !v.signatures_checked {
                p.text-warn { "Checkpoint signatures were not checked: give the verifier keys with --vkey." }
            }
            table {
                thead { tr { th { "Directory" } th { "Status" } th.num { "streams" } th.num { "entries" } th.num { "checkpoints confirmed" } th.num { "findings" } th { "Summary" } } }
                tbody { @for d in &v.directories { (directory_row(d)) } }
            }
            h3 { "Coverage of the period" }
            table {
                thead { tr { th { "Stream" } th.num { "records" } th { "seq range" } th { "Largest confirmed checkpoint" } th { "Period covered" } th.num { "findings in period" } } }
                tbody {
                    @for s in &v.streams {
                        tr {
                            td { (s.stream) }
                            td.num { (s.in_period) }
                            td {
                                @if let (Some(a), Some(b)) = (s.first_seq, s.last_seq) { (a) " – " (b) } @else { "—" }
                            }
                            td { @if let Some(size) = s.confirmed_size { "size " (size) } @else { "none" } }
                            td {
                                @if s.covered { span.text-ok { "yes" } }
                                @else { span.text-warn { "no: later entries rest on the hash chain only" } }
                            }
                            td.num { (s.findings_in_period) }
                        }
                    }
                }
            }
            @if !findings.is_empty() {
                h3 { "Findings" }
                @if !listed_all { p.note { "Only the first findings of each directory are listed." } }
                table {
                    thead { tr { th { "Stream" } th.num { "seq" } th { "File" } th.num { "line" } th { "Problem" } th { "In period" } } }
                    tbody {
                        @for f in &findings {
                            tr {
                                td { (f.stream) }
                                td.num { @if let Some(seq) = f.seq { (seq) } }
                                td { code { (f.file) } }
                                td.num { @if let Some(line) = f.line { (line) } }
                                td { (f.problem) }
                                td { @if f.in_period { b.text-bad { "yes" } } @else { "no" } }
                            }
                        }
                    }
                }
            }
            @let notes: Vec<&String> = v.directories.iter().flat_map(|d| d.notes.iter()).collect();
            @if !notes.is_empty() {
                h3 { "Notes" }
                ul.note { @for n in notes { li { (n) } } }
            }
        }
    }
}

fn retention(data: &ReportData) -> Markup {
    let r = &data.retention;
    html! {
        section #(Section::Retention.id()) {
            h2 { (Section::Retention.title()) }
            p {
                "Framework period: "
                @match r.minimum_days {
                    Some(days) => {
                        b { (days) " days" }
                        @if r.required { " (required, " (r.citation) ")" }
                        @else { " (common practice, not required: " (r.citation) ")" }
                    }
                    None => { b { "none" } " (" (r.citation) ")" }
                }
                ". Status: " (retention_badge(r.status)) " " (r.explanation) "."
            }
            p.note { (r.note) }
            @if r.configured {
                table {
                    thead { tr { th { "Store" } th { "Setting" } th.num { "days" } th { "Status" } th { "Explanation" } } }
                    tbody {
                        @for s in &r.stores {
                            tr {
                                td { (s.setting.store) }
                                td { code { (s.setting.setting) } }
                                td.num {
                                    @match s.setting.days {
                                        Some(0) if s.forever => "0 (forever)",
                                        Some(d) => (d),
                                        None => "—",
                                    }
                                }
                                td { (retention_badge(s.status)) }
                                td { (s.explanation) }
                            }
                        }
                    }
                }
            } @else {
                p.text-warn { "Retention settings unknown: no configuration was given (--config)." }
            }
            p.note {
                "Oldest entry read: " (r.oldest_entry.as_deref().unwrap_or("—"))
                "; newest: " (r.newest_entry.as_deref().unwrap_or("—")) "."
            }
            h3 { "Fixed periods of other regimes, for comparison" }
            table {
                thead { tr { th { "Regime" } th.num { "years" } th.num { "days compared" } th { "Source" } } }
                tbody {
                    @for p in &r.references {
                        tr { td { (p.regime) } td.num { (p.years) } td.num { (p.days) } td { (p.citation) } }
                    }
                }
            }
            p.note { "N years are compared as N × 365 days plus the leap days they may hold (⌈N/4⌉)." }
        }
    }
}

fn footer(data: &ReportData) -> Markup {
    html! {
        footer {
            p {
                "This report summarises the evidence; it is not evidence itself. Anyone can re-check the "
                "evidence with " code { "vellum verify DIR --vkey …" } " or the evidence format's "
                "reference verifier. Records are placed in sections by their classified event type "
                "and severity; a record may appear in several sections."
            }
            p { (data.generator) ", report format " (data.report_format) "." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::collect::Collector;
    use super::super::*;
    use super::*;
    use crate::evidence::verify::Options;
    use std::path::Path;

    fn hostile_row() -> Row {
        Row {
            time: "2026-11-02T10:00:00.000000000Z".into(),
            stream: "logs/audit".into(),
            seq: 7,
            event_type: "authentication".into(),
            severity: "medium\" onmouseover=\"x".into(),
            actor: "<script>alert(1)</script>".into(),
            action: "login.failed".into(),
            outcome: "failure".into(),
            address: "\"><img src=x onerror=alert(2)>".into(),
            target: "a&b".into(),
            source: "http/gateway".into(),
            time_ns: 0,
        }
    }

    fn data_with(row: Row) -> ReportData {
        let period = Period::parse("2026-11-01", "2026-11-30").unwrap();
        let request = Request {
            framework: Framework::Hipaa,
            period,
            sources: vec![Source::new(Path::new("/ev/<b>"), None)],
            options: Options::default(),
            retention: None,
            max_rows: 10,
        };
        let mut data = Collector::new(&request).finish(Vec::new());
        data.by_event_type.insert("<svg onload=x>".into(), 3);
        data.failed_auth.table = Table {
            total: 1,
            rows: vec![row],
        };
        data.failed_auth.by_user = vec![KeyCount {
            key: "<i>u</i>".into(),
            count: 1,
        }];
        data
    }

    #[test]
    fn record_content_is_escaped_as_text_everywhere() {
        let page = render(&data_with(hostile_row()));
        for raw in [
            "<script>",
            "<img",
            "<svg onload",
            "<i>u</i>",
            "/ev/<b>",
            "onmouseover=\"x",
        ] {
            assert!(!page.contains(raw), "{raw} appears unescaped");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
        assert!(page.contains("a&amp;b"));
        // The severity class is chosen from a fixed set, never copied from the record.
        assert!(page.contains("badge sev-unclassified"));
    }

    #[test]
    fn the_page_fetches_nothing_and_runs_nothing() {
        let page = render(&data_with(hostile_row()));
        assert!(page.contains("Content-Security-Policy"));
        assert!(page.contains("default-src 'none'"));
        let lower = page.to_ascii_lowercase();
        for external in [
            "src=\"http",
            "href=\"http",
            "url(",
            "@import",
            "<script",
            "<link",
        ] {
            assert!(!lower.contains(external), "{external}");
        }
        // Every link is to an anchor of the page itself.
        for (i, _) in lower.match_indices("href=\"") {
            assert_eq!(&lower[i + 6..i + 7], "#", "{}", &lower[i..i + 30]);
        }
    }

    #[test]
    fn every_section_is_there_and_long_periods_chart_by_month() {
        let mut data = data_with(hostile_row());
        for section in [
            Section::Counts,
            Section::Access,
            Section::Changes,
            Section::FailedAuth,
            Section::Security,
            Section::Verification,
            Section::Retention,
        ] {
            assert!(
                render(&data).contains(&format!("<section id=\"{}\">", section.id())),
                "{section:?}"
            );
        }
        for day in 1..=28 {
            for month in ["2026-01", "2026-02", "2026-03"] {
                data.by_day.insert(format!("{month}-{day:02}"), 1);
            }
        }
        data.period = Period::parse("2026-01-01", "2026-03-31").unwrap();
        let page = render(&data);
        assert!(page.contains("Records per month"));
        assert!(page.contains("<title>2026-02: 28</title>"));
        // A short period shows each of its days, those without records too.
        data.period = Period::parse("2026-03-27", "2026-03-30").unwrap();
        let page = render(&data);
        assert!(page.contains("Records per day"));
        let bars: Vec<&str> = page
            .match_indices("<title>2026-")
            .map(|(i, _)| &page[i + 7..i + 17])
            .collect();
        assert_eq!(
            bars,
            ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
        );
        assert!(page.contains("<title>2026-03-28: 1</title>"));
        assert!(page.contains("<title>2026-03-29: 0</title>"));
        // A period of decades is charted over the months that have records.
        data.period = Period::parse("1970-01-01", "2100-01-01").unwrap();
        let page = render(&data);
        assert!(page.contains("Records per month"));
        assert_eq!(page.matches("<title>2026-").count(), 3);
    }
}
