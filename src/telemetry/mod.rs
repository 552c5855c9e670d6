//! The daemon's own telemetry: Prometheus metrics, liveness and readiness, on one port.
//!
//! ```yaml
//! service:
//!   telemetry:
//!     logs: { level: info, encoding: json }  # or console; `format:` is the same key
//!     metrics:
//!       address: 127.0.0.1:8888          # absent: no telemetry server
//!       readiness:
//!         exporter_stuck_after: 5m       # failing without delivering, with a backlog
//! ```
//!
//! The server answers three paths:
//!
//! - `GET /metrics`: every metric below in the Prometheus text format.
//! - `GET /healthz`: 200 while the process is alive and serving.
//! - `GET /readyz`: 200 when every receiver is listening, every journal is writable (its
//!   writer thread is alive and its last commit succeeded), no sink refuses an
//!   exporter's credentials (that needs an operator: it is reported at once), and no
//!   exporter has been failing without delivering, while records wait for it, for
//!   longer than `exporter_stuck_after`; otherwise 503 with a JSON body naming each failing check
//!   and component. While no pipeline service runs (starting, reloading, stopping) it
//!   is 503 too.
//!
//! The server is started once per process, before the first pipeline service, and
//! outlives reloads: each running [`crate::pipeline::Service`] attaches itself to the
//! shared [`Status`] board, and detaches when it starts to shut down. A changed
//! `metrics.address` takes effect at the next start of the process;
//! `exporter_stuck_after` at the next reload.
//!
//! # Metrics
//!
//! Label values are component ids, pipeline ids, stream names and fixed reason words,
//! never anything taken from a record. Counters count as events happen; gauges are
//! computed from the status board each time `/metrics` is scraped.
//!
//! | Name | Type | Labels | Meaning |
//! |---|---|---|---|
//! | `vellum_receiver_received_records_total` | counter | `receiver` | Records that reached a receiver: accepted + refused + dropped (a request that could not be split into records counts once) |
//! | `vellum_receiver_accepted_records_total` | counter | `receiver` | Records made durable in every journal they were routed to, then acknowledged |
//! | `vellum_receiver_refused_records_total` | counter | `receiver`, `reason` | Records refused with an answer the sender sees (HTTP status, gRPC code, closed connection), so it can send them again |
//! | `vellum_receiver_dropped_records_total` | counter | `receiver`, `reason` | Records not stored that the sender is never told about: syslog datagrams, syslog messages read while shutting down |
//! | `vellum_receiver_unparsed_records_total` | counter | `receiver` | Syslog messages kept whole because they did not parse |
//! | `vellum_receiver_truncated_records_total` | counter | `receiver` | Syslog messages cut to the receiver's size limit |
//! | `vellum_receiver_refused_connections_total` | counter | `receiver` | Syslog connections closed at once: too many connections |
//! | `vellum_exporter_sent_records_total` | counter | `pipeline`, `exporter` | Entries the sink took |
//! | `vellum_exporter_failed_records_total` | counter | `pipeline`, `exporter` | Entries in delivery attempts that failed, each attempt counted |
//! | `vellum_exporter_retried_records_total` | counter | `pipeline`, `exporter` | Entries in failed attempts that will be tried again |
//! | `vellum_exporter_dead_lettered_records_total` | counter | `pipeline`, `exporter` | Entries the sink rejected as malformed, written to the dead-letter file (never for refused credentials, never for `s3`) |
//! | `vellum_exporter_http_responses_total` | counter | `exporter`, `status` | Answers of HTTP sinks by status code |
//! | `vellum_exporter_lag_records` | gauge | `pipeline`, `exporter` | Journal records committed but not yet delivered (or skipped by `when:`) by the exporter |
//! | `vellum_exporter_failing_seconds` | gauge | `pipeline`, `exporter` | How long the exporter has been failing without delivering; 0 when its last attempt succeeded |
//! | `vellum_s3_bundles_total`, `vellum_s3_bytes_total` | counter | `exporter` | Evidence bundles and bytes written to S3 |
//! | `vellum_journal_disk_bytes` | gauge | `pipeline` | Bytes of the pipeline's journal segments on disk |
//! | `vellum_journal_commit_seconds` | histogram | `stream` | Time to seal, append and fsync one group of batches |
//! | `vellum_chain_head_seq` | gauge | `stream` | `seq` of the newest committed entry (absent before the first) |
//! | `vellum_chain_checkpoint_age_seconds` | gauge | `stream` | Seconds since the newest checkpoint was committed (absent before the first) |
//! | `vellum_filter_dropped_records_total` | counter | `component`, `rule` | Records a `filter` processor dropped |
//! | `vellum_redact_findings_total` | counter | `component`, `detector` | Values a `redact` processor found, by detector |
//! | `vellum_redact_blocked_total` | counter | `component` | Records a `redact` processor replaced by a tombstone (`block`) |
//! | `vellum_classify_escalated_records_total` | counter | `component`, `window` | Records a windowed `classify` rule escalated |
//! | `vellum_classify_window_evictions_total` | counter | `component`, `window` | Keys a `classify` window forgot to stay within its size |
//!
//! Under the OpenTelemetry Collector's names, for its stock dashboards:
//!
//! | Name | Type | Labels | Meaning |
//! |---|---|---|---|
//! | `otelcol_receiver_accepted_log_records_total` | counter | `receiver`, `transport` (`grpc`, `http`, `tcp`, `udp`) | As `vellum_receiver_accepted_records_total` |
//! | `otelcol_receiver_refused_log_records_total` | counter | `receiver`, `transport` | As `vellum_receiver_refused_records_total`, every reason |
//! | `otelcol_exporter_sent_log_records_total` | counter | `exporter` | As `vellum_exporter_sent_records_total` |
//! | `otelcol_exporter_send_failed_log_records_total` | counter | `exporter` | As `vellum_exporter_failed_records_total` |
//! | `otelcol_exporter_queue_size` | gauge | `exporter` | As `vellum_exporter_lag_records`: the journal is the exporter's queue |
//! | `otelcol_exporter_queue_capacity` | gauge | `exporter` | Records that may wait for the exporter before receivers push back: its `sending_queue.queue_size`, at most `service.storage.max_backlog_records` |
//! | `otelcol_process_*`, `vellum_build_info`, `target_info` | gauge | | See [`process`] |
//!
//! The Collector's `health_check` extension answers from the same board as `/readyz`:
//! see [`health_check`].
//!
//! Gauges of components a reload removed disappear from `/metrics` a minute after.

pub mod health_check;
pub mod process;
pub mod server;
pub mod status;

use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use metrics_util::MetricKindMask;
use serde::Deserialize;

use crate::config::Endpoint;

pub use health_check::{ExtensionsConfig, HealthCheckConfig};
pub use server::{TelemetryServer, serve};
pub use status::Status;

/// `service.telemetry.metrics`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; absent: nowhere.
    #[serde(default)]
    pub address: Option<Endpoint>,
    #[serde(default)]
    pub readiness: ReadinessConfig,
}

/// `service.telemetry.metrics.readiness`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadinessConfig {
    /// How long an exporter may fail without delivering, while records wait for it,
    /// before `/readyz` reports the daemon not ready.
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_stuck_after", with = "humantime_serde")]
    pub exporter_stuck_after: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        ReadinessConfig {
            exporter_stuck_after: default_stuck_after(),
        }
    }
}

fn default_stuck_after() -> Duration {
    Duration::from_secs(300)
}

/// Upper bounds of the commit latency buckets, in seconds: an fdatasync on a fast SSD
/// takes tens of microseconds, on a busy disk or network volume up to seconds.
pub const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// How long a gauge nobody sets any more (its component was removed by a reload) stays.
const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The Prometheus recorder Vellum's metrics go to, not yet installed.
pub fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
        .set_buckets_for_metric(
            Matcher::Full("vellum_journal_commit_seconds".into()),
            COMMIT_SECONDS_BUCKETS,
        );
    match builder {
        Ok(b) => b.build_recorder(),
        // Only an empty bucket list is refused, and the one above is not empty.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    }
}

/// The Collector's own counters, under its names, for its stock dashboards.
const COLLECTOR_COUNTERS: &[(&str, &str)] = &[
    (
        "otelcol_receiver_accepted_log_records_total",
        "Log records made durable and acknowledged (Collector name).",
    ),
    (
        "otelcol_receiver_refused_log_records_total",
        "Log records refused with an answer the sender sees (Collector name).",
    ),
    (
        "otelcol_exporter_sent_log_records_total",
        "Log records the sink took (Collector name).",
    ),
    (
        "otelcol_exporter_send_failed_log_records_total",
        "Log records in failed delivery attempts, each attempt counted (Collector name).",
    ),
];

fn describe_collector_gauges() {
    describe_gauge!(
        "otelcol_exporter_queue_size",
        Unit::Count,
        "Journal records waiting for the exporter: the journal is its queue (Collector name)."
    );
    describe_gauge!(
        "otelcol_exporter_queue_capacity",
        Unit::Count,
        "Records that may wait for the exporter before receivers push back (Collector name)."
    );
    describe_gauge!(
        "otelcol_process_uptime",
        Unit::Seconds,
        "Uptime of the process (Collector name)."
    );
    describe_gauge!(
        "otelcol_process_cpu_seconds",
        Unit::Seconds,
        "User and system CPU time of the process (Collector name)."
    );
    describe_gauge!(
        "otelcol_process_memory_rss",
        Unit::Bytes,
        "Resident set size of the process (Collector name)."
    );
    describe_gauge!("vellum_build_info", "Always 1; the version in its label.");
    describe_gauge!("target_info", "Always 1; the service in its labels.");
}

/// Gives every metric its help text and unit; call with the recorder in place.
pub fn describe() {
    process::mark_start();
    let counters: &[(&'static str, &'static str)] = &[
        (
            "vellum_receiver_received_records_total",
            "Records that reached a receiver: accepted + refused + dropped.",
        ),
        (
            "vellum_receiver_accepted_records_total",
            "Records made durable in every journal they were routed to, then acknowledged.",
        ),
        (
            "vellum_receiver_refused_records_total",
            "Records refused with an answer the sender sees, so it can send them again.",
        ),
        (
            "vellum_receiver_dropped_records_total",
            "Records not stored that the sender is never told about (syslog datagrams, messages read while shutting down).",
        ),
        (
            "vellum_receiver_unparsed_records_total",
            "Syslog messages kept whole because they did not parse.",
        ),
        (
            "vellum_receiver_truncated_records_total",
            "Syslog messages cut to the receiver's size limit.",
        ),
        (
            "vellum_receiver_refused_connections_total",
            "Syslog connections closed at once because there were too many.",
        ),
        (
            "vellum_listener_refused_connections_total",
            "HTTP and gRPC connections closed at once: every slot was serving a request.",
        ),
        (
            "vellum_listener_timeouts_total",
            "HTTP connections cut for not sending in time, by phase: idle, header, body.",
        ),
        (
            "vellum_exporter_sent_records_total",
            "Entries the sink took.",
        ),
        (
            "vellum_exporter_failed_records_total",
            "Entries in delivery attempts that failed, each attempt counted.",
        ),
        (
            "vellum_exporter_retried_records_total",
            "Entries in failed delivery attempts that will be tried again.",
        ),
        (
            "vellum_exporter_dead_lettered_records_total",
            "Entries the sink refused for good, written to the dead-letter file.",
        ),
        (
            "vellum_exporter_http_responses_total",
            "Answers of HTTP sinks by status code.",
        ),
        ("vellum_s3_bundles_total", "Evidence bundles written to S3."),
        ("vellum_s3_bytes_total", "Bytes of evidence written to S3."),
        (
            "vellum_filter_dropped_records_total",
            "Records a filter processor dropped.",
        ),
        (
            "vellum_redact_findings_total",
            "Values a redact processor found, by detector.",
        ),
        (
            "vellum_redact_blocked_total",
            "Records a redact processor replaced by a tombstone.",
        ),
        (
            "vellum_classify_escalated_records_total",
            "Records a windowed classify rule escalated.",
        ),
        (
            "vellum_classify_window_evictions_total",
            "Keys a classify window forgot to stay within its size.",
        ),
    ];
    for (name, help) in counters.iter().chain(COLLECTOR_COUNTERS) {
        describe_counter!(*name, *help);
    }
    describe_collector_gauges();
    describe_gauge!(
        "vellum_exporter_lag_records",
        Unit::Count,
        "Journal records committed but not yet delivered by the exporter."
    );
    describe_gauge!(
        "vellum_exporter_failing_seconds",
        Unit::Seconds,
        "How long the exporter has been failing without delivering; 0 when its last attempt succeeded."
    );
    describe_gauge!(
        "vellum_journal_disk_bytes",
        Unit::Bytes,
        "Bytes of the pipeline's journal segments on disk."
    );
    describe_gauge!(
        "vellum_chain_head_seq",
        "Seq of the newest committed entry of the stream."
    );
    describe_gauge!(
        "vellum_chain_checkpoint_age_seconds",
        Unit::Seconds,
        "Seconds since the stream's newest checkpoint was committed."
    );
    describe_histogram!(
        "vellum_journal_commit_seconds",
        Unit::Seconds,
        "Time to seal, append and fsync one group of batches."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_defaults_to_no_server_and_a_five_minute_threshold() {
        let c: MetricsConfig = serde_json::from_str("{}").unwrap();
        assert!(c.address.is_none());
        assert_eq!(
            c.readiness.exporter_stuck_after,
            Duration::from_secs(5 * 60)
        );
        let c: MetricsConfig = serde_json::from_str(
            r#"{"address":"127.0.0.1:8888","readiness":{"exporter_stuck_after":"1s"}}"#,
        )
        .unwrap();
        assert_eq!(c.address.unwrap().as_str(), "127.0.0.1:8888");
        assert_eq!(c.readiness.exporter_stuck_after, Duration::from_secs(1));
        let e = serde_json::from_str::<MetricsConfig>(r#"{"address":"127.0.0.1"}"#).unwrap_err();
        assert!(e.to_string().contains("host:port"), "{e}");
        let e = serde_json::from_str::<MetricsConfig>(r#"{"port":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn commit_latency_is_a_histogram_with_the_chosen_buckets_and_help() {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            metrics::histogram!("vellum_journal_commit_seconds", "stream" => "s").record(0.003);
            metrics::histogram!("vellum_journal_commit_seconds", "stream" => "s").record(7.0);
        });
        let text = handle.render();
        assert!(
            text.contains("# TYPE vellum_journal_commit_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("# HELP vellum_journal_commit_seconds Time to seal"),
            "{text}"
        );
        // 0.003 s falls in the 5 ms bucket and above; 7 s only in +Inf.
        assert!(
            text.contains(r#"vellum_journal_commit_seconds_bucket{stream="s",le="0.0025"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vellum_journal_commit_seconds_bucket{stream="s",le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vellum_journal_commit_seconds_bucket{stream="s",le="5"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vellum_journal_commit_seconds_bucket{stream="s",le="+Inf"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vellum_journal_commit_seconds_count{stream="s"} 2"#),
            "{text}"
        );
    }
}
