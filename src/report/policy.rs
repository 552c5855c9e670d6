//! The rules of the report: which section a record belongs in, and whether each
//! store keeps evidence as long as the framework asks.

use super::facts::Facts;
use super::frameworks::{self, RetentionRule};
use super::model::{Retention, RetentionStatus, StoreCheck, StoreKind, StoreSetting};
use super::period::format_instant;

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

pub(super) fn retention(
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

impl Facts {
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
