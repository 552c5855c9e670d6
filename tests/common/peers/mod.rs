//! Real peers the daemon talks to, run by the tests themselves: local sinks that speak
//! each vendor's documented protocol (Splunk HEC, Datadog, a webhook receiver) on a
//! server that injects faults, and a real S3-compatible server (moto).
//!
//! Besides the Rust peers this folder holds `otel_send.py` (the OpenTelemetry Python
//! SDK as a client), `requirements.txt` (what scripts/test.sh installs in the test
//! venv for it and for moto) and `fail_fsync.c` (an `LD_PRELOAD` shim whose `fsync`
//! fails on demand).

pub mod datadog;
pub mod http_faults;
pub mod moto;
pub mod otlp_sink;
pub mod splunk_hec;
pub mod tls_sink;
pub mod webhook;
