//! Hostile clients, failing disks and failing sinks, tried on the real binary: each
//! case is a way the daemon could lose an acknowledged record, fork its chain, leak a
//! secret or fall over, and each test shows that it does not.
//!
//! The cases are grouped by the part of the daemon under attack.

// A test crate that is a folder finds its modules inside it; the shared tree is named.
#[path = "../common/mod.rs"]
mod common;

mod config;
mod exporters;
mod receivers;
mod storage;
