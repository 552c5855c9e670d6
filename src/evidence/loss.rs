//! Journal-loss records: how the daemon says, inside the chain itself, that entries
//! were lost to journal damage before anything could export them.
//!
//! When the journal is damaged after its newest checkpoint (bit rot, a bad sector), the
//! damaged records are quarantined at open and the entries they held are gone: their
//! hashes, and so the chain's Merkle tree, cannot be rebuilt from the journal. Refusing
//! to start would stop the audit trail for good; starting at the lost `seq`s again would
//! fork the chain wherever an exporter had already delivered them. So the daemon starts,
//! never reuses a lost `seq`, and seals a journal-loss record: an ordinary entry whose
//! `event_type` is [`EVENT_TYPE`] and whose `attributes` declare the range:
//!
//! ```json
//! {"first_seq": 120, "last_seq": 131,
//!  "journal_first_index": 245, "journal_last_index": 258,
//!  "reason": "journal records 245..=258 were damaged and quarantined"}
//! ```
//!
//! The record also carries `hash`, the hash of the entry just before it, and `frontier`,
//! the RFC 9162 compact range of the leaves before it, as the daemon's tree holds them
//! (for a lost leaf it could not read from a later checkpoint, [`lost_leaf`]). As with
//! a purge record, that is the state a verifier resumes from: checkpoints signed after
//! the loss are checked against it, and a forged frontier fails at the next one. A
//! verifier that meets a gap in `seq` which a later journal-loss record of the same
//! stream declares reports it as a declared loss, not as tampering, and fails unless it
//! is told to accept declared losses.

use serde_json::{Map, Value};

use super::merkle::{Frontier, Hash, leaf_hash, parse_hex_hash};

/// `event_type` of a journal-loss record.
pub const EVENT_TYPE: &str = "vellum.journal_loss";

/// `source` of the records the journal writer seals about itself.
pub const SOURCE: &str = "vellum/journal";

/// The leaf the writer's own tree takes for an entry it lost and cannot know:
/// `SHA-256(0x00)`. Verifiers need not know it: they resume from the frontier the
/// journal-loss record declares.
pub fn lost_leaf() -> Hash {
    leaf_hash(&[])
}

/// What a journal-loss record declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredLoss {
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A declaration and the chain state just before the record that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossRecord {
    pub declared: DeclaredLoss,
    /// `hash` of the entry before the record.
    pub hash: Hash,
    /// The compact range of the leaves before the record.
    pub frontier: Frontier,
}

impl LossRecord {
    /// The attributes of its record, besides where the journal lost it and why.
    pub fn attributes(&self) -> Map<String, Value> {
        let mut m = self.declared.attributes();
        m.insert("hash".into(), Value::from(hex::encode(self.hash)));
        let nodes = self
            .frontier
            .to_hex()
            .into_iter()
            .map(Value::String)
            .collect();
        m.insert("frontier".into(), Value::Array(nodes));
        m
    }

    /// Reads an entry that is a journal-loss record (see [`DeclaredLoss::from_entry`]).
    pub fn from_entry(entry: &Map<String, Value>) -> Option<Result<LossRecord, String>> {
        let declared = match DeclaredLoss::from_entry(entry)? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let seq = entry.get("seq").and_then(Value::as_u64).unwrap_or_default();
        let a = entry.get("attributes").and_then(Value::as_object)?;
        let read = || -> Result<LossRecord, String> {
            let hash = a
                .get("hash")
                .and_then(Value::as_str)
                .and_then(parse_hex_hash)
                .ok_or("journal-loss record's `hash` is not 64 lowercase hex digits")?;
            let nodes: Vec<&str> = a
                .get("frontier")
                .and_then(Value::as_array)
                .and_then(|n| n.iter().map(Value::as_str).collect())
                .ok_or("journal-loss record's `frontier` is not an array of hex strings")?;
            let frontier = Frontier::from_hex(seq, &nodes)
                .map_err(|e| format!("journal-loss record's `frontier`: {e}"))?;
            if seq % 2 == 1 && frontier.nodes().last() != Some(&hash) {
                return Err("journal-loss record's `frontier` does not end with its `hash`".into());
            }
            Ok(LossRecord {
                declared,
                hash,
                frontier,
            })
        };
        Some(read())
    }
}

impl DeclaredLoss {
    pub fn contains(&self, seq: u64) -> bool {
        (self.first_seq..=self.last_seq).contains(&seq)
    }

    /// The attributes of its record, besides where the journal lost it and why.
    pub fn attributes(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("first_seq".into(), Value::from(self.first_seq));
        m.insert("last_seq".into(), Value::from(self.last_seq));
        m
    }

    /// Reads the declaration of an entry: `None` when the entry is not a journal-loss
    /// record, an error when it is one but malformed.
    pub fn from_entry(entry: &Map<String, Value>) -> Option<Result<DeclaredLoss, String>> {
        if entry.get("event_type").and_then(Value::as_str) != Some(EVENT_TYPE) {
            return None;
        }
        let Some(a) = entry.get("attributes").and_then(Value::as_object) else {
            return Some(Err("journal-loss record has no `attributes`".into()));
        };
        let number = |name: &str| {
            a.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("journal-loss record has no integer `{name}`"))
        };
        let declared = number("first_seq").and_then(|first_seq| {
            let last_seq = number("last_seq")?;
            if first_seq > last_seq {
                return Err(format!(
                    "journal-loss record declares first_seq {first_seq} after last_seq {last_seq}"
                ));
            }
            Ok(DeclaredLoss {
                first_seq,
                last_seq,
            })
        });
        let seq = entry.get("seq").and_then(Value::as_u64);
        Some(declared.and_then(|d| match seq {
            Some(seq) if seq > d.last_seq => Ok(d),
            _ => Err("a journal-loss record must come after the range it declares".into()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lost_leaf_is_the_rfc_9162_hash_of_an_empty_leaf() {
        assert_eq!(
            hex::encode(lost_leaf()),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn declarations_are_read_only_from_well_formed_records_after_their_range() {
        let entry = |v: Value| v.as_object().unwrap().clone();
        let good = entry(serde_json::json!({"seq": 9, "event_type": EVENT_TYPE,
            "attributes": {"first_seq": 3, "last_seq": 5}}));
        assert_eq!(
            DeclaredLoss::from_entry(&good),
            Some(Ok(DeclaredLoss {
                first_seq: 3,
                last_seq: 5
            }))
        );
        let other = entry(serde_json::json!({"seq": 9, "event_type": "login"}));
        assert_eq!(DeclaredLoss::from_entry(&other), None);
        for bad in [
            serde_json::json!({"seq": 4, "event_type": EVENT_TYPE, "attributes": {"first_seq": 3, "last_seq": 5}}),
            serde_json::json!({"seq": 9, "event_type": EVENT_TYPE, "attributes": {"first_seq": 6, "last_seq": 5}}),
            serde_json::json!({"seq": 9, "event_type": EVENT_TYPE, "attributes": {"first_seq": 3}}),
        ] {
            assert!(matches!(
                DeclaredLoss::from_entry(&entry(bad)),
                Some(Err(_))
            ));
        }
    }
}
