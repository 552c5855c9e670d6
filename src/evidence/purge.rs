//! Purge records: how retention says, inside the chain itself, what it removed.
//!
//! A purge is an ordinary entry of the stream (sealed, chained, MACed, checkpointed and
//! exported like any other) whose `event_type` is [`EVENT_TYPE`]. Its `attributes`:
//!
//! ```json
//! {"store": "file/evidence", "pipeline": "logs/audit",
//!  "first_seq": 0, "last_seq": 99, "hash": "<hex hash of entry 99>",
//!  "frontier": ["<hex>", "..."],
//!  "cutoff": "2026-10-24T12:00:00.000000000Z", "reason": "retention_days=30", "files": 2}
//! ```
//!
//! For evidence (`store` is an exporter id) the record declares that entries
//! `first_seq..=last_seq` were removed, the `hash` of entry `last_seq`, and `frontier`:
//! the RFC 9162 compact range of leaves `[0, last_seq + 1)`, the roots of its perfect
//! subtrees largest first (one per set bit of `last_seq + 1`). That is exactly the state
//! a verifier would hold after reading entries `0..=last_seq`, so it can check a stream
//! that now starts at `last_seq + 1`: `prev` of the first entry must equal `hash`, and
//! every remaining checkpoint's root is recomputed from `frontier` plus the remaining
//! leaves. A forged frontier therefore fails at the next signed checkpoint, and a forged
//! purge record fails its own `hash`/`mac` like any entry. The journal's own purges
//! (`store` = [`JOURNAL_STORE`]) carry journal indexes instead and declare nothing
//! about evidence.

use serde_json::{Map, Value};

use super::merkle::{Frontier, Hash, parse_hex_hash};
use super::seal::Head;

/// `event_type` of a purge record.
pub const EVENT_TYPE: &str = "vellum.retention.purge";

/// `attributes.store` of a purge of the journal (not of evidence).
pub const JOURNAL_STORE: &str = "journal";

/// `source` of the records retention writes.
pub const SOURCE: &str = "vellum/retention";

/// What an evidence purge record declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidencePurge {
    /// The exporter whose evidence was pruned.
    pub store: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// `hash` of entry `last_seq`.
    pub hash: Hash,
    /// The compact range of leaves `[0, last_seq + 1)`.
    pub frontier: Frontier,
}

impl EvidencePurge {
    /// The chain state just after the purged range: what a verifier resumes from.
    pub fn head(&self) -> Head {
        Head {
            next_seq: self.last_seq + 1,
            prev: self.hash,
            frontier: self.frontier.clone(),
        }
    }

    /// The attributes of its purge record (besides `pipeline`, `cutoff`, `reason`).
    pub fn attributes(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("store".into(), Value::from(self.store.clone()));
        m.insert("first_seq".into(), Value::from(self.first_seq));
        m.insert("last_seq".into(), Value::from(self.last_seq));
        m.insert("hash".into(), Value::from(hex::encode(self.hash)));
        m.insert(
            "frontier".into(),
            Value::Array(
                self.frontier
                    .to_hex()
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        );
        m
    }

    /// Reads the declaration of an entry: `None` when the entry is not an evidence purge
    /// record, an error when it is one but malformed.
    pub fn from_entry(entry: &Map<String, Value>) -> Option<Result<EvidencePurge, String>> {
        if entry.get("event_type").and_then(Value::as_str) != Some(EVENT_TYPE) {
            return None;
        }
        let attributes = entry.get("attributes").and_then(Value::as_object)?;
        let store = attributes.get("store").and_then(Value::as_str)?;
        if store == JOURNAL_STORE {
            return None;
        }
        Some(Self::from_attributes(store, attributes))
    }

    fn from_attributes(store: &str, a: &Map<String, Value>) -> Result<EvidencePurge, String> {
        let number = |name: &str| {
            a.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("purge record has no integer `{name}`"))
        };
        let first_seq = number("first_seq")?;
        let last_seq = number("last_seq")?;
        if first_seq > last_seq {
            return Err(format!(
                "purge record declares first_seq {first_seq} after last_seq {last_seq}"
            ));
        }
        let hash = a
            .get("hash")
            .and_then(Value::as_str)
            .and_then(parse_hex_hash)
            .ok_or("purge record's `hash` is not 64 lowercase hex digits")?;
        let nodes: Vec<&str> = a
            .get("frontier")
            .and_then(Value::as_array)
            .and_then(|n| n.iter().map(Value::as_str).collect())
            .ok_or("purge record's `frontier` is not an array of hex strings")?;
        let size = last_seq + 1;
        let frontier = Frontier::from_hex(size, &nodes)
            .map_err(|e| format!("purge record's `frontier`: {e}"))?;
        // With an odd size the last subtree is the last leaf itself: it must be `hash`.
        if size % 2 == 1 && frontier.nodes().last() != Some(&hash) {
            return Err("purge record's `frontier` does not end with its `hash`".into());
        }
        Ok(EvidencePurge {
            store: store.to_string(),
            first_seq,
            last_seq,
            hash,
            frontier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::merkle::leaf_hash;

    fn declared(size: u64) -> EvidencePurge {
        let mut frontier = Frontier::new();
        let mut last = [0; 32];
        for i in 0..size {
            last = leaf_hash(&i.to_le_bytes());
            frontier.push(last);
        }
        EvidencePurge {
            store: "file/evidence".into(),
            first_seq: 0,
            last_seq: size - 1,
            hash: last,
            frontier,
        }
    }

    fn entry(attributes: Map<String, Value>) -> Map<String, Value> {
        let mut e = Map::new();
        e.insert("event_type".into(), Value::from(EVENT_TYPE));
        e.insert("attributes".into(), Value::Object(attributes));
        e
    }

    #[test]
    fn a_declaration_round_trips_through_its_attributes() {
        for size in [1, 2, 7, 8, 100] {
            let purge = declared(size);
            let back = EvidencePurge::from_entry(&entry(purge.attributes()))
                .expect("a purge record")
                .expect("well formed");
            assert_eq!(back, purge);
            assert_eq!(back.head().next_seq, size);
        }
    }

    #[test]
    fn other_records_and_journal_purges_declare_nothing() {
        let mut other = entry(declared(3).attributes());
        other.insert("event_type".into(), Value::from("login.failed"));
        assert!(EvidencePurge::from_entry(&other).is_none());
        let mut journal = declared(3).attributes();
        journal.insert("store".into(), Value::from(JOURNAL_STORE));
        assert!(EvidencePurge::from_entry(&entry(journal)).is_none());
    }

    #[test]
    fn malformed_declarations_are_errors() {
        type Change = Box<dyn Fn(&mut Map<String, Value>)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "a frontier of the wrong size",
                Box::new(|a| {
                    a.insert("last_seq".into(), Value::from(4));
                }),
            ),
            (
                "a hash that is not the last leaf",
                Box::new(|a| {
                    a.insert("hash".into(), Value::from("ab".repeat(32)));
                }),
            ),
            (
                "a range backwards",
                Box::new(|a| {
                    a.insert("first_seq".into(), Value::from(9));
                }),
            ),
            (
                "no frontier",
                Box::new(|a| {
                    a.remove("frontier");
                }),
            ),
        ];
        for (what, change) in cases {
            let mut attributes = declared(7).attributes();
            change(&mut attributes);
            assert!(
                matches!(EvidencePurge::from_entry(&entry(attributes)), Some(Err(_))),
                "{what}"
            );
        }
    }
}
