//! Receivers: where audit events enter. Each one binds at start (a bad or busy endpoint
//! fails the start), answers clients only once their records are durable, and keeps
//! serving whatever a client sends.

mod grpc_limits;
pub mod http;
pub mod otlp;
mod otlp_count;
mod otlp_grpc;
pub mod registry;
pub mod syslog;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use sha2::Digest;

use crate::component::{Intake, ReceiverHandle, SubmitError};
use crate::config::component::{ComponentConfig, ComponentId, DecodeError};
pub use registry::ReceiverSettings;

/// A receiver's settings: its registered type and its own settings.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The registered type name: `otlp`.
    pub type_name: &'static str,
    pub settings: Arc<dyn ReceiverSettings>,
    /// SHA-256 of the settings as given (canonical JSON, secrets included): a reload
    /// keeps a receiver's sockets only when this is unchanged. Debug output cannot
    /// serve, since it hides secrets: a new token would go unnoticed.
    pub fingerprint: [u8; 32],
}

impl ComponentConfig for ReceiverConfig {
    fn decode(id: &ComponentId, json: serde_json::Value) -> Result<ReceiverConfig, DecodeError> {
        let factory =
            registry::find(id.kind()).ok_or(DecodeError::UnknownType(registry::type_names()))?;
        let fingerprint = sha2::Sha256::digest(json.to_string().as_bytes()).into();
        Ok(ReceiverConfig {
            type_name: factory.type_name,
            settings: (factory.decode)(json)?,
            fingerprint,
        })
    }

    fn problems(&self) -> Vec<(String, String)> {
        self.settings.problems()
    }
}

impl ReceiverConfig {
    /// Binds and starts serving; the returned handles end after `shutdown` is cancelled.
    pub async fn start(
        &self,
        id: &ComponentId,
        intake: Intake,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> std::io::Result<Vec<ReceiverHandle>> {
        self.settings
            .start(id.to_string(), intake, limits, shutdown)
            .await
    }
}

/// The most records one request may carry unless a receiver says otherwise: each record
/// costs memory well beyond its bytes on the wire (an empty `{}` event or OTLP log
/// record becomes a record of several hundred bytes), so a count bounds that.
pub const DEFAULT_MAX_RECORDS_PER_REQUEST: usize = 10_000;

pub fn default_max_records_per_request() -> usize {
    DEFAULT_MAX_RECORDS_PER_REQUEST
}

/// How much the records of one request may take, estimated as [`stored_size`] plus
/// [`RECORD_OVERHEAD`] each, in multiples of the receiver's request body limit. OTLP
/// copies a request's resource and scope into each of its records; this bounds what
/// that copying can cost, whatever the request holds.
pub const EXPANSION_FACTOR: usize = 4;

/// What a record costs in memory beyond its content (its struct, maps and strings).
pub const RECORD_OVERHEAD: usize = 512;

/// The bytes a record's content takes once serialized as the journal stores it: body,
/// attributes, resource, scope and the short fields. Receivers compare this, not the
/// size of what they were sent, with the record size limit.
pub fn stored_size(record: &crate::event::Record) -> usize {
    json_len(&record.body)
        + json_len(&record.attributes)
        + json_len(&record.resource)
        + json_len(&record.scope)
        + record.severity_text.len()
        + record.source.len()
}

/// The length of `value` serialized as JSON, without building the text.
pub fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Limits every receiver applies on top of its own: what the journal takes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_record_bytes: usize,
}

/// How records came in: the `transport` label of the Collector-named receiver counters,
/// as the Collector sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// Counts records by outcome, with the receiver id and a fixed reason as the only labels
/// (and the transport on the Collector-named counters). Every record counted is also
/// counted as received, so received = accepted + refused + dropped.
pub fn count_accepted(receiver: &str, transport: Transport, n: usize) {
    count_received(receiver, n);
    metrics::counter!("vellum_receiver_accepted_records_total", "receiver" => receiver.to_string())
        .increment(n as u64);
    metrics::counter!("otelcol_receiver_accepted_log_records_total", "receiver" => receiver.to_string(), "transport" => transport.as_str())
        .increment(n as u64);
}

/// Records refused with an answer the sender sees (a status, a code, a closed
/// connection), so that it can send them again.
pub fn count_refused(receiver: &str, transport: Transport, reason: &'static str, n: usize) {
    count_received(receiver, n);
    metrics::counter!("vellum_receiver_refused_records_total", "receiver" => receiver.to_string(), "reason" => reason)
        .increment(n as u64);
    metrics::counter!("otelcol_receiver_refused_log_records_total", "receiver" => receiver.to_string(), "transport" => transport.as_str())
        .increment(n as u64);
}

/// Records not stored that the sender is never told about (datagrams, messages read
/// while shutting down): lost unless the sender keeps its own copy.
pub fn count_dropped(receiver: &str, reason: &'static str, n: usize) {
    count_received(receiver, n);
    metrics::counter!("vellum_receiver_dropped_records_total", "receiver" => receiver.to_string(), "reason" => reason)
        .increment(n as u64);
}

fn count_received(receiver: &str, n: usize) {
    metrics::counter!("vellum_receiver_received_records_total", "receiver" => receiver.to_string())
        .increment(n as u64);
}

/// The metric reason for a refused submission.
pub fn refusal_reason(e: &SubmitError) -> &'static str {
    match e {
        SubmitError::Overloaded { .. } => "overloaded",
        SubmitError::ShuttingDown => "shutting_down",
        SubmitError::Storage(_) => "storage",
        SubmitError::RecordTooLarge { .. } => "oversized",
    }
}

/// How an HTTP receiver answers a refused submission: 429 with `Retry-After` when the
/// backlog is full, 503 with `Retry-After` while draining or when storage fails (the OTLP
/// spec's retryable codes), so a client keeps its records and tries again; 413 for a
/// record the journal cannot take, which no retry would change.
pub fn submit_error_response(e: &SubmitError) -> (StatusCode, HeaderMap, String) {
    let mut headers = HeaderMap::new();
    let (status, retry_after) = match e {
        SubmitError::Overloaded { retry_after } => (StatusCode::TOO_MANY_REQUESTS, *retry_after),
        SubmitError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(5)),
        SubmitError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(5)),
        SubmitError::RecordTooLarge { .. } => {
            return (StatusCode::PAYLOAD_TOO_LARGE, headers, e.to_string());
        }
    };
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    (status, headers, e.to_string())
}

/// Why an HTTP body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported Content-Encoding `{0}`: send gzip or identity")]
    UnsupportedEncoding(String),
    #[error("the gzip body is corrupt: {0}")]
    BadGzip(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::BadGzip(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "oversized",
            _ => "malformed",
        }
    }
}

/// Decodes `Content-Encoding: gzip` with the same limit on the decoded size, so a small
/// compressed body cannot expand without bound.
pub fn decode_body(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, BodyError> {
    if body.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body),
        "gzip" | "x-gzip" => {
            use std::io::Read;
            let mut out = Vec::new();
            let mut decoder = flate2::read::MultiGzDecoder::new(&body[..]).take(limit as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| BodyError::BadGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            Ok(Bytes::from(out))
        }
        other => Err(BodyError::UnsupportedEncoding(other.to_string())),
    }
}

/// The media type of a request without its parameters, lowercased.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn gzip_bodies_decode_within_the_limit_and_bombs_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            decode_body(&h, gzip(b"hello"), 100).unwrap(),
            Bytes::from_static(b"hello")
        );
        let bomb = gzip(&vec![0u8; 10_000]);
        assert!(bomb.len() < 100);
        assert!(matches!(
            decode_body(&h, bomb, 1000),
            Err(BodyError::TooLarge { limit: 1000 })
        ));
        assert!(matches!(
            decode_body(&h, Bytes::from_static(b"not gzip"), 100),
            Err(BodyError::BadGzip(_))
        ));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(matches!(
            decode_body(&h, Bytes::new(), 100),
            Err(BodyError::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn refusals_map_to_retryable_codes_with_retry_after() {
        let (status, headers, _) = submit_error_response(&SubmitError::Overloaded {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "2");
        let (status, headers, _) = submit_error_response(&SubmitError::ShuttingDown);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(header::RETRY_AFTER));
    }
}
