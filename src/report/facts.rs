//! What the report reads of one entry: the members it needs, and who, what, outcome,
//! address and target, from the vocabularies the query API reads.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{MAX_CELL_CHARS, UNCLASSIFIED};
use crate::event::{Severity, lookup, lookup_map};
use crate::query::fields;

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
    /// Who the receiver authenticated (`attributes["vellum.client.identity"]`); empty
    /// when it authenticated no one.
    pub identity: String,
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
            identity: cell(first(&[fields::IDENTITY_PATH])),
        }
    }
}

/// A string, number or boolean as text; nothing for null, empty strings, lists, maps.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// At most [`MAX_CELL_CHARS`] characters, control characters shown as `�`.
pub(super) fn cell(text: String) -> String {
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
