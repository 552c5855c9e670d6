//! `otlp`: forwards sealed entries to another collector over OTLP, so agents can feed a
//! central tier (another Vellum, or any OpenTelemetry Collector).
//!
//! ```yaml
//! exporters:
//!   otlp/central:
//!     endpoint: central.example.com:4317   # https:// unless tls.insecure; or a full URL
//!     protocol: grpc            # the default; `http` posts protobuf to <endpoint>/v1/logs
//!     compression: gzip         # or none
//!     headers: { authorization: "Bearer ${env:CENTRAL_TOKEN}" }   # gRPC metadata or HTTP headers
//!     tls:                      # the Collector's configtls client keys (net::tls::client)
//!       ca_file: /etc/vellum/central-ca.pem
//!       cert_file: /etc/vellum/agent.crt
//!       key_file: /etc/vellum/agent.key
//!   otlphttp/central:           # the Collector's name for `otlp` with `protocol: http`
//!     endpoint: https://central.example.com:4318   # /v1/logs is appended
//!     logs_endpoint: https://central.example.com:4318/custom/logs   # instead, as is
//!     headers: { x-tenant: acme }
//! ```
//!
//! | endpoint as written | gRPC connects to | OTLP/HTTP posts to |
//! |---|---|---|
//! | `host:4317` (no scheme, as the Collector's gRPC exporter takes it) | TLS, or clear text with `tls.insecure: true` | refused: give a URL |
//! | `https://host:port` | TLS | `https://host:port/v1/logs` |
//! | `http://host:port` | clear text | `http://host:port/v1/logs` |
//! | with `logs_endpoint` | refused: HTTP only | `logs_endpoint` as is |
//!
//! Over gRPC, TLS is done by the exporter's own rustls connector (`tls` settings,
//! client certificate included) and the channel carries `:scheme http` inside it.
//!
//! **Mapping** (the inverse of the `otlp` receiver's): `time`, `observed_time`,
//! `severity_number`, `severity_text`, `trace_id`, `span_id` go to their `LogRecord`
//! fields; `body` and `attributes` become `AnyValue`s (objects to key-value lists);
//! `resource` becomes the resource's attributes and `scope` the instrumentation scope
//! (consecutive records that share both share one `ResourceLogs`/`ScopeLogs`, so order
//! is kept). What OTLP has no field for travels as attributes:
//!
//! | attribute | from the entry |
//! |---|---|
//! | `vellum.v`, `vellum.stream`, `vellum.seq`, `vellum.prev`, `vellum.hash`, `vellum.kid`, `vellum.mac` | the integrity fields, as sealed here |
//! | `vellum.severity`, `vellum.event_type`, `vellum.source`, `vellum.tags`, `vellum.redaction` | the record fields, when present |
//!
//! A Vellum receiving these seals them into its own chain, and the first tier's integrity
//! fields stay with each record as `attributes."vellum.hash"` etc.: the central evidence
//! verifies on its own, and every record names the stream, `seq` and hash it had at the
//! edge, so the edge's own evidence can be matched against it (and duplicates from a
//! retry told apart). Checkpoints are not forwarded: the receiving tier signs its own.
//!
//! **Answers.** Over HTTP the shared table applies (`http` module; OTLP retries 429, 502,
//! 503, 504, and 408 and the other 5xx are retried here too). Over gRPC:
//!
//! | status | outcome |
//! |---|---|
//! | OK | delivered; a partial success that rejected records is permanent (OTLP forbids retrying them) |
//! | CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS | retryable (as OTLP says) |
//! | RESOURCE_EXHAUSTED | retryable, after the `RetryInfo` delay when the server gives one |
//! | UNKNOWN, INTERNAL | retryable: a connection reset surfaces as these, and they are gRPC's 5xx |
//! | UNAUTHENTICATED, PERMISSION_DENIED | unauthorized: retried with backoff, `/readyz` names the exporter |
//! | INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, UNIMPLEMENTED | permanent |
//!
//! OTLP itself would drop on RESOURCE_EXHAUSTED without `RetryInfo`; an audit record is
//! retried instead.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::{self, ClientTls, Compression, Headers};
use super::{ExportError, Exporter, ExporterContext, Item};
use crate::event::Record;
use crate::net::tls::client::TlsConnector;

/// The integrity fields of an entry, forwarded as `vellum.<name>` attributes.
pub const INTEGRITY_FIELDS: [&str; 7] = ["v", "stream", "seq", "prev", "hash", "kid", "mac"];

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    pub endpoint: String,
    /// OTLP/HTTP only: the full URL to post to, instead of `<endpoint>/v1/logs`.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// gRPC unless said; `otlphttp` sets HTTP.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub tls: ClientTls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Grpc,
    Http,
}

/// `otlphttp`: the Collector's exporter name for OTLP/HTTP, the `otlp` settings with
/// `protocol: http`.
#[derive(Debug, Clone, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct OtlpHttpConfig(pub OtlpConfig);

impl<'de> Deserialize<'de> for OtlpHttpConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OtlpHttpConfig, D::Error> {
        let mut cfg = OtlpConfig::deserialize(d)?;
        match cfg.protocol {
            None | Some(Protocol::Http) => cfg.protocol = Some(Protocol::Http),
            Some(Protocol::Grpc) => {
                return Err(serde::de::Error::custom(
                    "otlphttp speaks OTLP/HTTP only; use an otlp exporter for gRPC",
                ));
            }
        }
        Ok(OtlpHttpConfig(cfg))
    }
}

impl OtlpConfig {
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_default()
    }

    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let (key, url) = match (self.protocol(), &self.logs_endpoint) {
            (Protocol::Http, Some(logs)) => ("logs_endpoint", logs.clone()),
            (Protocol::Http, None) => ("endpoint", self.endpoint.clone()),
            (Protocol::Grpc, _) => ("endpoint", self.grpc_url()),
        };
        if let Some(p) = http::url_problem(&url) {
            out.push((key.into(), p));
        }
        if self.protocol() == Protocol::Grpc && self.logs_endpoint.is_some() {
            out.push((
                "logs_endpoint".into(),
                "is for OTLP/HTTP only; gRPC sends to endpoint".into(),
            ));
        }
        let reserved: &[&str] = match self.protocol() {
            Protocol::Grpc => &[
                "content-type",
                "grpc-encoding",
                "grpc-accept-encoding",
                "te",
            ],
            Protocol::Http => &["content-type", "content-encoding", "content-length", "host"],
        };
        out.extend(self.headers.problems("headers", reserved));
        out.extend(self.tls.problems("tls", http::url_scheme(&url)));
        out
    }

    /// The gRPC endpoint as a URL: one without a scheme (the Collector's `host:port`)
    /// is `https://`, or `http://` with `tls.insecure`.
    fn grpc_url(&self) -> String {
        if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.tls.plaintext() {
            format!("http://{}", self.endpoint)
        } else {
            format!("https://{}", self.endpoint)
        }
    }

    /// Where OTLP/HTTP posts: `logs_endpoint` as is, else `<endpoint>/v1/logs` (unless
    /// the endpoint already ends so).
    fn http_url(&self) -> String {
        if let Some(url) = &self.logs_endpoint {
            return url.clone();
        }
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/v1/logs") {
            base.to_string()
        } else {
            format!("{base}/v1/logs")
        }
    }
}

enum Transport {
    Grpc {
        endpoint: Box<tonic::transport::Endpoint>,
        /// TLS by the `tls` settings, for an https endpoint.
        tls: Option<TlsConnector>,
        compression: Compression,
        /// Made on the first delivery: a channel needs the runtime, building does not.
        client: Option<LogsServiceClient<tonic::transport::Channel>>,
        metadata: HeaderMap,
    },
    Http {
        client: reqwest::Client,
        url: reqwest::Url,
        headers: HeaderMap,
        compression: Compression,
    },
}

pub struct OtlpExporter {
    id: String,
    transport: Transport,
}

impl OtlpExporter {
    pub fn new(cfg: &OtlpConfig, context: &ExporterContext) -> Result<OtlpExporter, ExportError> {
        let headers = cfg.headers.to_header_map()?;
        let transport = match cfg.protocol() {
            Protocol::Grpc => Transport::Grpc {
                endpoint: Box::new(grpc_endpoint(cfg)?),
                tls: grpc_tls(cfg)?,
                compression: cfg.compression,
                client: None,
                metadata: headers,
            },
            Protocol::Http => Transport::Http {
                client: http::client(&cfg.tls)?,
                url: http::parse_url(&cfg.http_url())?,
                headers,
                compression: cfg.compression,
            },
        };
        Ok(OtlpExporter {
            id: context.id.clone(),
            transport,
        })
    }

    async fn deliver(&mut self, batch: &[Item]) -> Result<(), ExportError> {
        let request = to_request(batch)?;
        let records: usize = batch
            .iter()
            .filter(|i| matches!(i, Item::Entry { .. }))
            .count();
        if records == 0 {
            return Ok(());
        }
        let response = match &mut self.transport {
            Transport::Grpc {
                endpoint,
                tls,
                compression,
                client,
                metadata,
            } => {
                let client =
                    client.get_or_insert_with(|| grpc_client(endpoint, tls.as_ref(), *compression));
                let mut call = tonic::Request::new(request);
                *call.metadata_mut() = tonic::metadata::MetadataMap::from_headers(metadata.clone());
                client
                    .export(call)
                    .await
                    .map_err(|s| grpc_error(&s))?
                    .into_inner()
            }
            Transport::Http {
                client,
                url,
                headers,
                compression,
            } => {
                let post = client
                    .post(url.clone())
                    .headers(headers.clone())
                    .header(CONTENT_TYPE, "application/x-protobuf");
                let post = http::with_body(post, request.encode_to_vec(), *compression);
                let answer = http::send(&self.id, post).await?;
                http::classify(&answer, SystemTime::now())?;
                // A 200 whose body is not a response still took the records.
                ExportLogsServiceResponse::decode(answer.body).unwrap_or_default()
            }
        };
        match response.partial_success {
            Some(p) if p.rejected_log_records > 0 => Err(ExportError::Permanent(format!(
                "the collector rejected {} of {records} records: {}",
                p.rejected_log_records, p.error_message
            ))),
            Some(p) if !p.error_message.is_empty() => {
                tracing::warn!(exporter = %self.id, message = %p.error_message, "the collector accepted the records with a warning");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn grpc_endpoint(cfg: &OtlpConfig) -> Result<tonic::transport::Endpoint, ExportError> {
    let url = cfg.grpc_url();
    let bad = |e: &dyn std::error::Error| {
        ExportError::Permanent(crate::config::secret::redact_url(&format!(
            "endpoint `{url}`: {}",
            http::chain(e)
        )))
    };
    let uri: ::http::Uri = url.parse().map_err(|e| bad(&e))?;
    // TLS is the connector's (module doc): the channel itself is told http.
    let channel_url = match (uri.scheme_str(), uri.authority()) {
        (Some("https"), Some(authority)) => format!(
            "http://{}:{}{}",
            authority.host(),
            authority.port_u16().unwrap_or(443),
            uri.path()
        ),
        _ => url.clone(),
    };
    Ok(tonic::transport::Endpoint::from_shared(channel_url)
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true))
}

/// The TLS connector for an https endpoint, speaking HTTP/2.
fn grpc_tls(cfg: &OtlpConfig) -> Result<Option<TlsConnector>, ExportError> {
    if http::url_scheme(&cfg.grpc_url()) != "https" {
        return Ok(None);
    }
    let mut config = cfg
        .tls
        .config()
        .map_err(|p| ExportError::Permanent(p.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    http::warn_if_unverified(&cfg.tls);
    Ok(Some(TlsConnector::new(config)))
}

fn grpc_client(
    endpoint: &tonic::transport::Endpoint,
    tls: Option<&TlsConnector>,
    compression: Compression,
) -> LogsServiceClient<tonic::transport::Channel> {
    let channel = match tls {
        Some(tls) => endpoint.connect_with_connector_lazy(tls.clone()),
        None => endpoint.connect_lazy(),
    };
    let client = LogsServiceClient::new(channel)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(usize::MAX);
    match compression {
        Compression::Gzip => client.send_compressed(tonic::codec::CompressionEncoding::Gzip),
        Compression::None => client,
    }
}

/// The gRPC table (module doc).
fn grpc_error(status: &tonic::Status) -> ExportError {
    use tonic::Code;
    use tonic_types::StatusExt;
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss
        | Code::Unknown
        | Code::Internal => ExportError::retryable(message),
        Code::ResourceExhausted => ExportError::Retryable {
            message,
            retry_after: status
                .get_details_retry_info()
                .and_then(|r| r.retry_delay)
                .map(|d| d.min(http::MAX_RETRY_AFTER)),
        },
        Code::PermissionDenied | Code::Unauthenticated => ExportError::Unauthorized(message),
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::Unimplemented => ExportError::Permanent(message),
    }
}

/// The batch's entries as one export request, in order.
pub fn to_request(batch: &[Item]) -> Result<ExportLogsServiceRequest, ExportError> {
    let mut resource_logs: Vec<ResourceLogs> = Vec::new();
    // The resource and scope of the last group, to tell when a new one starts.
    let mut last: Option<(Map<String, Value>, Map<String, Value>)> = None;
    for item in batch {
        let Item::Entry { index, line, .. } = item else {
            continue;
        };
        let (record, log) = to_log_record(line, *index)?;
        let same = last
            .as_ref()
            .is_some_and(|(r, s)| *r == record.resource && *s == record.scope);
        if !same {
            resource_logs.push(ResourceLogs {
                resource: Some(Resource {
                    attributes: key_values(record.resource.clone()),
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope(&record.scope)),
                    ..Default::default()
                }],
                ..Default::default()
            });
            last = Some((record.resource, record.scope));
        }
        if let Some(scope_logs) = resource_logs
            .last_mut()
            .and_then(|r| r.scope_logs.last_mut())
        {
            scope_logs.log_records.push(log);
        }
    }
    Ok(ExportLogsServiceRequest { resource_logs })
}

/// One entry as a `LogRecord` (and the record, for its resource and scope).
fn to_log_record(line: &[u8], index: u64) -> Result<(Record, LogRecord), ExportError> {
    let mut entry: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
        ExportError::Permanent(format!(
            "journal record {index} is not a sealed entry ({e}); it cannot be forwarded"
        ))
    })?;
    let integrity: Vec<(&str, Value)> = INTEGRITY_FIELDS
        .iter()
        .filter_map(|k| Some((*k, entry.remove(*k)?)))
        .collect();
    let record = Record::from_entry(entry);
    let mut attributes = key_values(record.attributes.clone());
    let mut extra = |name: &str, value: Value| {
        attributes.push(KeyValue {
            key: format!("vellum.{name}"),
            value: Some(any_value(value)),
            ..Default::default()
        })
    };
    for (name, value) in integrity {
        extra(name, value);
    }
    if let Some(s) = record.severity {
        extra("severity", Value::String(s.as_str().into()));
    }
    if let Some(t) = &record.event_type {
        extra("event_type", Value::String(t.clone()));
    }
    if !record.source.is_empty() {
        extra("source", Value::String(record.source.clone()));
    }
    if !record.tags.is_empty() {
        extra(
            "tags",
            Value::Array(record.tags.iter().cloned().map(Value::String).collect()),
        );
    }
    if let Some(r) = &record.redaction {
        extra("redaction", r.clone());
    }
    let id = |hex_id: &Option<String>| {
        hex_id
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default()
    };
    let log = LogRecord {
        time_unix_nano: record.time_unix_nano,
        observed_time_unix_nano: record.observed_time_unix_nano,
        severity_number: record.severity_number,
        severity_text: record.severity_text.clone(),
        body: Some(any_value(record.body.clone())),
        attributes,
        trace_id: id(&record.trace_id),
        span_id: id(&record.span_id),
        ..Default::default()
    };
    Ok((record, log))
}

fn scope(m: &Map<String, Value>) -> InstrumentationScope {
    let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    InstrumentationScope {
        name: text("name"),
        version: text("version"),
        attributes: match m.get("attributes") {
            Some(Value::Object(a)) => key_values(a.clone()),
            _ => Vec::new(),
        },
        ..Default::default()
    }
}

fn key_values(m: Map<String, Value>) -> Vec<KeyValue> {
    m.into_iter()
        .map(|(key, v)| KeyValue {
            key,
            value: Some(any_value(v)),
            ..Default::default()
        })
        .collect()
}

/// JSON as an OTLP `AnyValue`: integers that fit stay integers, other numbers doubles,
/// objects key-value lists; `null` is the empty value.
pub fn any_value(v: Value) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(V::StringValue(s)),
        Value::Array(a) => Some(V::ArrayValue(ArrayValue {
            values: a.into_iter().map(any_value).collect(),
        })),
        Value::Object(m) => Some(V::KvlistValue(KeyValueList {
            values: key_values(m),
        })),
    };
    AnyValue { value }
}

impl Exporter for OtlpExporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>> {
        Box::pin(async move {
            self.deliver(batch).await?;
            Ok(batch.len())
        })
    }
}

impl super::ExporterSettings for OtlpConfig {
    fn problems(&self) -> Vec<(String, String)> {
        OtlpConfig::problems(self)
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::sink()
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(OtlpExporter::new(self, context)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl super::ExporterSettings for OtlpHttpConfig {
    fn problems(&self) -> Vec<(String, String)> {
        self.0.problems()
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::sink()
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(OtlpExporter::new(&self.0, context)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn entry(index: u64, line: Value) -> Item {
        Item::Entry {
            index,
            seq: line["seq"].as_u64().unwrap_or(0),
            line: Bytes::from(line.to_string()),
        }
    }

    fn attr<'a>(log: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        log.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn an_entry_becomes_a_log_record_with_its_integrity_fields_as_attributes() {
        let line = json!({
            "v": 1, "stream": "logs/audit", "seq": 7, "prev": "0".repeat(64), "hash": "ab".repeat(32),
            "kid": "k1", "mac": "cd".repeat(32),
            "time": "2023-11-14T22:13:20.000000001Z", "observed_time": "2023-11-14T22:13:21.000000000Z",
            "severity_number": 17, "severity_text": "ERROR", "severity": "high", "event_type": "security",
            "body": {"msg": "denied", "n": 3, "ratio": 0.5, "list": [true, null]},
            "attributes": {"user_id": "u1"}, "resource": {"service.name": "gw"},
            "scope": {"name": "audit", "version": "2"}, "trace_id": "01".repeat(16),
            "source": "http/gateway", "tags": ["burst"], "redaction": {"email": 1}
        });
        let request = to_request(&[entry(0, line)]).unwrap();
        let rl = &request.resource_logs[0];
        assert_eq!(
            rl.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let sl = &rl.scope_logs[0];
        assert_eq!(
            (
                sl.scope.as_ref().unwrap().name.as_str(),
                sl.scope.as_ref().unwrap().version.as_str()
            ),
            ("audit", "2")
        );
        let log = &sl.log_records[0];
        assert_eq!(log.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(log.observed_time_unix_nano, 1_700_000_001_000_000_000);
        assert_eq!(
            (log.severity_number, log.severity_text.as_str()),
            (17, "ERROR")
        );
        assert_eq!(log.trace_id, vec![1u8; 16]);
        assert!(log.span_id.is_empty());
        use any_value::Value as V;
        assert_eq!(attr(log, "user_id"), Some(&V::StringValue("u1".into())));
        assert_eq!(
            attr(log, "vellum.stream"),
            Some(&V::StringValue("logs/audit".into()))
        );
        assert_eq!(attr(log, "vellum.seq"), Some(&V::IntValue(7)));
        assert_eq!(attr(log, "vellum.v"), Some(&V::IntValue(1)));
        assert_eq!(
            attr(log, "vellum.hash"),
            Some(&V::StringValue("ab".repeat(32)))
        );
        assert_eq!(attr(log, "vellum.kid"), Some(&V::StringValue("k1".into())));
        assert_eq!(
            attr(log, "vellum.severity"),
            Some(&V::StringValue("high".into()))
        );
        assert_eq!(
            attr(log, "vellum.source"),
            Some(&V::StringValue("http/gateway".into()))
        );
        assert!(matches!(attr(log, "vellum.tags"), Some(V::ArrayValue(a)) if a.values.len() == 1));
        // The body goes through the receiver's own mapping unchanged.
        let back = crate::receivers::otlp::any_value(log.body.clone().unwrap());
        assert_eq!(
            back,
            json!({"msg": "denied", "n": 3, "ratio": 0.5, "list": [true, null]})
        );
    }

    #[test]
    fn consecutive_records_share_a_resource_until_it_changes() {
        let line = |seq: u64, svc: &str| {
            json!({"v": 1, "stream": "s", "seq": seq, "hash": "h", "prev": "p",
                   "time": "2023-11-14T22:13:20Z", "body": seq, "resource": {"service.name": svc}})
        };
        let batch = [
            entry(0, line(0, "a")),
            entry(1, line(1, "a")),
            Item::Checkpoint {
                index: 2,
                size: 2,
                note: "n".into(),
            },
            entry(3, line(2, "b")),
            entry(4, line(3, "a")),
        ];
        let request = to_request(&batch).unwrap();
        let sizes: Vec<usize> = request
            .resource_logs
            .iter()
            .map(|r| r.scope_logs[0].log_records.len())
            .collect();
        assert_eq!(sizes, [2, 1, 1], "order is kept: a a | b | a");
    }

    #[test]
    fn grpc_codes_map_as_documented() {
        use tonic::Code;
        let retry = [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unknown,
            Code::Internal,
        ];
        let refuse = [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::Unimplemented,
        ];
        for code in retry {
            assert!(
                matches!(
                    grpc_error(&tonic::Status::new(code, "x")),
                    ExportError::Retryable { .. }
                ),
                "{code:?}"
            );
        }
        for code in [Code::PermissionDenied, Code::Unauthenticated] {
            assert!(
                matches!(
                    grpc_error(&tonic::Status::new(code, "x")),
                    ExportError::Unauthorized(_)
                ),
                "{code:?}"
            );
        }
        for code in refuse {
            assert!(
                matches!(
                    grpc_error(&tonic::Status::new(code, "x")),
                    ExportError::Permanent(_)
                ),
                "{code:?}"
            );
        }
        use tonic_types::{ErrorDetails, StatusExt};
        let status = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "backlog full",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        match grpc_error(&status) {
            ExportError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn otlphttp_is_otlp_over_http_and_refuses_grpc() {
        let cfg: OtlpHttpConfig =
            serde_json::from_value(json!({"endpoint": "https://c:4318"})).unwrap();
        assert_eq!(cfg.0.protocol(), Protocol::Http);
        assert_eq!(cfg.0.http_url(), "https://c:4318/v1/logs");
        let e = serde_json::from_value::<OtlpHttpConfig>(
            json!({"endpoint": "https://c:4318", "protocol": "grpc"}),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("otlphttp speaks OTLP/HTTP only"),
            "{e}"
        );
    }

    #[test]
    fn an_exporter_is_built_outside_any_runtime() {
        // The daemon builds exporters before their drivers run; a gRPC channel waits for
        // the first delivery.
        let cfg: OtlpConfig =
            serde_json::from_value(json!({"endpoint": "http://127.0.0.1:4317"})).unwrap();
        let context = ExporterContext {
            id: "otlp/central".into(),
            stream: "logs/audit".into(),
            state_dir: std::env::temp_dir(),
        };
        assert!(OtlpExporter::new(&cfg, &context).is_ok());
    }

    #[test]
    fn config_urls_and_problems() {
        let cfg: OtlpConfig =
            serde_json::from_value(json!({"endpoint": "http://c:4318", "protocol": "http"}))
                .unwrap();
        assert_eq!(cfg.http_url(), "http://c:4318/v1/logs");
        let cfg: OtlpConfig = serde_json::from_value(
            json!({"endpoint": "http://c:4318/v1/logs/", "protocol": "http"}),
        )
        .unwrap();
        assert_eq!(cfg.http_url(), "http://c:4318/v1/logs");
        let cfg: OtlpConfig = serde_json::from_value(json!({"endpoint": "c:4317",
            "tls": {"insecure": true}, "headers": {"te": "x"}}))
        .unwrap();
        assert_eq!(cfg.grpc_url(), "http://c:4317");
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["headers.te"]);
        let cfg: OtlpConfig = serde_json::from_value(json!({"endpoint": "c:4318",
            "protocol": "http", "logs_endpoint": "ftp://c/logs"}))
        .unwrap();
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["logs_endpoint"]);
        assert_eq!(cfg.http_url(), "ftp://c/logs");
        let cfg: OtlpConfig = serde_json::from_value(json!({"endpoint": "c:4317",
            "logs_endpoint": "http://c/logs"}))
        .unwrap();
        assert_eq!(cfg.grpc_url(), "https://c:4317");
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["logs_endpoint"]);
        assert!(
            serde_json::from_value::<OtlpConfig>(
                json!({"endpoint": "http://c", "protocol": "udp"})
            )
            .is_err()
        );
    }
}
