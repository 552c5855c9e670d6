//! The period a report covers: `--from` inclusive, `--to` exclusive, a bare `--to`
//! date including its whole day.

use serde::Serialize;

use crate::event::{format_time, parse_time};

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

pub(super) fn bound(text: &str, end_of_day: bool) -> Result<u64, String> {
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
pub(super) fn format_instant(unix_nano: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format_time(unix_nano))
}
