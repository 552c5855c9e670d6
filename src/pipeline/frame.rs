//! What a pipeline stores in each journal record.
//!
//! The journal frames opaque payloads; a pipeline's payload is one of:
//!
//! ```text
//! b'E' | seq (u64 little-endian) | the entry's JSON line (RFC 8785, no newline)
//! b'C' | a JSON CheckpointFrame
//! ```
//!
//! The `seq` is repeated outside the JSON so that readers find it without parsing.
//! Checkpoints travel through the journal like entries, so every exporter sees them in
//! order, after the entries they cover, and the chain can resume from the newest one.

use serde::{Deserialize, Serialize};

const ENTRY: u8 = b'E';
const CHECKPOINT: u8 = b'C';

/// A signed checkpoint and the chain state it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointFrame {
    pub stream: String,
    /// Entries covered: `seq` 0 to `size - 1`.
    pub size: u64,
    /// The signed note text.
    pub note: String,
    /// Hex hash of entry `size - 1` (the chain head at the checkpoint).
    pub head: String,
    /// The Merkle frontier after `size` leaves, hex, so the tree resumes without replay.
    pub frontier: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    Entry { seq: u64, line: &'a [u8] },
    Checkpoint(CheckpointFrame),
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("empty journal record")]
    Empty,
    #[error("journal record of unknown kind {0:#04x}")]
    UnknownKind(u8),
    #[error("entry record shorter than its header")]
    Short,
    #[error("checkpoint record is not valid JSON: {0}")]
    Checkpoint(String),
}

impl Frame<'_> {
    pub fn decode(payload: &[u8]) -> Result<Frame<'_>, FrameError> {
        match payload.first() {
            None => Err(FrameError::Empty),
            Some(&ENTRY) => {
                let seq = payload.get(1..9).ok_or(FrameError::Short)?;
                let seq = u64::from_le_bytes(seq.try_into().map_err(|_| FrameError::Short)?);
                Ok(Frame::Entry {
                    seq,
                    line: &payload[9..],
                })
            }
            Some(&CHECKPOINT) => serde_json::from_slice(&payload[1..])
                .map(Frame::Checkpoint)
                .map_err(|e| FrameError::Checkpoint(e.to_string())),
            Some(&other) => Err(FrameError::UnknownKind(other)),
        }
    }
}

/// Appends an entry payload to `out` (cleared first).
pub fn encode_entry(seq: u64, line: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(9 + line.len());
    out.push(ENTRY);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(line);
}

pub fn encode_checkpoint(c: &CheckpointFrame) -> Vec<u8> {
    let mut out = vec![CHECKPOINT];
    // Serializing a struct of strings and integers cannot fail.
    out.extend_from_slice(&serde_json::to_vec(c).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_an_error() {
        let mut buf = Vec::new();
        encode_entry(0x0102_0304_0506_0708, br#"{"seq":1}"#, &mut buf);
        assert_eq!(&buf[..9], &[b'E', 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(
            Frame::decode(&buf).unwrap(),
            Frame::Entry {
                seq: 0x0102_0304_0506_0708,
                line: br#"{"seq":1}"#
            }
        );
        let c = CheckpointFrame {
            stream: "s".into(),
            size: 3,
            note: "n".into(),
            head: "ab".into(),
            frontier: vec!["cd".into()],
        };
        assert_eq!(
            Frame::decode(&encode_checkpoint(&c)).unwrap(),
            Frame::Checkpoint(c)
        );
        assert!(matches!(Frame::decode(b""), Err(FrameError::Empty)));
        assert!(matches!(Frame::decode(b"E\x01"), Err(FrameError::Short)));
        assert!(matches!(
            Frame::decode(b"X"),
            Err(FrameError::UnknownKind(b'X'))
        ));
        assert!(matches!(
            Frame::decode(b"C{"),
            Err(FrameError::Checkpoint(_))
        ));
    }
}
