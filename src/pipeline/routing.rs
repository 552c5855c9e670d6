//! `when:` on an exporter: the records it receives.
//!
//! ```yaml
//! exporters:
//!   - file/evidence
//!   - { id: webhook/pager, when: "severity >= high and event_type == 'security'" }
//! ```
//!
//! Routing happens as an exporter reads the journal, not as records are written: the
//! journal and the chain always hold every record, and an exporter added later can be
//! routed without rewriting anything. A record the condition does not match is skipped
//! for that exporter only.

use crate::conditions::Condition;
use crate::event::Record;

pub struct Route {
    condition: Condition,
}

/// Checks a condition's syntax and types: `Err((column, message))`.
pub fn check(source: &str) -> Result<(), (usize, String)> {
    Route::new(source).map(|_| ())
}

impl Route {
    pub fn new(source: &str) -> Result<Route, (usize, String)> {
        Condition::parse(source)
            .map(|condition| Route { condition })
            .map_err(|e| (e.column, e.message.clone()))
    }

    /// Whether a sealed entry's JSON line matches. A line that is not an entry matches
    /// nothing, so a damaged record is never sent where it was not meant to go.
    pub fn matches(&self, line: &[u8]) -> bool {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line) {
            Ok(entry) => self.condition.eval(&Record::from_entry(entry)),
            Err(_) => false,
        }
    }
}
