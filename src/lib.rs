//! Vellum turns the audit events of AI gateways and API services into evidence that
//! anyone can verify: receivers feed processors, records are sealed into a hash chain
//! and made durable in a journal before any client is acknowledged, and exporters
//! deliver them from the journal, each from its own cursor.

pub mod app;
pub mod cli;
pub mod component;
pub mod conditions;
pub mod config;
pub mod durable;
pub mod event;
pub mod evidence;
pub mod exporters;
pub mod journal;
pub mod net;
pub mod paths;
pub mod pipeline;
pub mod processors;
pub mod query;
pub mod receivers;
pub mod report;
pub mod telemetry;
