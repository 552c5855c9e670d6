//! Evidence: everything that makes Vellum's output checkable by a third party
//! (contract: the evidence format, version 1).
//!
//! - [`jcs`]: RFC 8785 canonical JSON, what entry hashes are computed over;
//! - [`merkle`]: RFC 9162 Merkle tree hashing, frontier and proofs;
//! - [`note`]: C2SP signed notes (Ed25519) and `tlog-checkpoint` bodies;
//! - [`hmac`]: HMAC-SHA256 key rings for `kid` / `mac`;
//! - [`key`]: configured key strings;
//! - [`seal`]: turning records into chained, signed entries, and checkpoints of them;
//! - [`verify`]: the verifier of a local evidence directory;
//! - [`prove`]: inclusion and consistency proofs in printable form;
//! - [`purge`]: the purge records retention writes, and what they declare;
//! - [`loss`]: the journal-loss records that declare entries lost to journal damage.

pub mod hmac;
pub mod jcs;
pub mod key;
pub mod loss;
pub mod merkle;
pub mod note;
pub mod prove;
pub mod purge;
pub mod seal;
pub mod verify;
