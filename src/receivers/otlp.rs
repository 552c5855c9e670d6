//! `otlp`: OTLP logs over gRPC (`LogsService/Export`) and HTTP (`POST /v1/logs`).
//!
//! ```yaml
//! receivers:
//!   otlp:
//!     protocols:
//!       grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size: 4MiB }
//!       http: { endpoint: 127.0.0.1:4318, max_request_body_size: 4MiB }
//! ```
//!
//! Both protocols also take `max_records_per_request` (10000) and `max_connections`
//! (128); HTTP takes `read_header_timeout` (10s), `read_timeout` (30s), `min_body_rate`
//! (1KiB) and `idle_timeout` (60s) as every HTTP listener does (src/net/listener.rs); gRPC
//! takes `read_header_timeout` (10s: the HTTP/2 preface must arrive within it of the
//! connection), `read_timeout` (30s: a request must be whole and answered within it),
//! `idle_timeout` (60s: keepalive pings every half of it, a peer that does not answer
//! one within 10 s is closed) and `max_concurrent_streams` (16 per connection).
//!
//! **Bounded memory.** A log record costs far more decoded than sent, and every record
//! carries a copy of its resource and scope, so three checks come before any of that is
//! built: a request with more than `max_records_per_request` log records (or resource
//! and scope entries) is refused whole (HTTP 413 / gRPC `INVALID_ARGUMENT`, naming the
//! limit), counted on the encoded bytes for HTTP; a record whose stored size (body,
//! attributes, resource and scope as JSON) is over `service.storage.max_record_size` is
//! rejected alone through partial success; and a request whose records would take more
//! than 4 × the body limit once the resource and scope are copied into each is refused
//! whole, with the same codes. So one request holds at most about 8 × its body limit
//! (the body, its decoded form, the records and their sealed copies), and a receiver at
//! most `max_connections` requests at a time: over HTTP one per connection, over gRPC
//! `max_connections` across all streams (the others wait, within `read_timeout`, each
//! holding at most its 256 KiB flow-control window of what it was sent).
//!
//! HTTP takes `application/x-protobuf` and `application/json` (OTLP/JSON), plain or
//! `Content-Encoding: gzip`, and answers in the request's encoding. gRPC accepts gzip.
//! A request is answered only when its records are durable in the journal. Records
//! larger than the journal's record limit are rejected through OTLP partial success
//! (`rejected_log_records` and a message); the rest are kept. When the backlog is full the
//! answer is gRPC `RESOURCE_EXHAUSTED` with a `RetryInfo`, or HTTP 429 with `Retry-After`;
//! while draining, `UNAVAILABLE` / 503: the codes the OTLP spec tells clients to retry.
//!
//! Mapping: `time_unix_nano`, `observed_time_unix_nano` (receipt time when 0),
//! `severity_number`, `severity_text`, `trace_id`, `span_id` keep their meaning; the body
//! and attributes become JSON (`AnyValue` maps to the obvious JSON type; int64 beyond
//! ±2^53 to a decimal string; bytes to base64; key-value lists to objects, the last of
//! duplicate keys winning); resource attributes become `resource`; the scope becomes
//! `scope: {name, version, attributes}`; `event_name` becomes the attribute `event.name`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{Limits, Transport, count_accepted, count_refused, refusal_reason};
use crate::component::{Intake, ReceiverHandle, SubmitError};
use crate::config::component::Endpoint;
use crate::event::{Record, float_value, int_value, now_unix_nano};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    #[serde(default)]
    pub protocols: Protocols,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    pub grpc: Option<GrpcConfig>,
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    #[serde(default = "default_grpc_endpoint")]
    pub endpoint: Endpoint,
    #[serde(default = "default_max_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_recv_msg_size: bytesize::ByteSize,
    #[serde(default = "super::default_max_records_per_request")]
    pub max_records_per_request: usize,
    #[serde(default = "crate::net::listener::default_max_connections")]
    pub max_connections: usize,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_read_header_timeout",
        with = "humantime_serde"
    )]
    pub read_header_timeout: Duration,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_read_timeout",
        with = "humantime_serde"
    )]
    pub read_timeout: Duration,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_idle_timeout",
        with = "humantime_serde"
    )]
    pub idle_timeout: Duration,
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_endpoint")]
    pub endpoint: Endpoint,
    #[serde(default = "default_max_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_request_body_size: bytesize::ByteSize,
    #[serde(default = "super::default_max_records_per_request")]
    pub max_records_per_request: usize,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_read_header_timeout",
        with = "humantime_serde"
    )]
    pub read_header_timeout: Duration,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_read_timeout",
        with = "humantime_serde"
    )]
    pub read_timeout: Duration,
    #[serde(default = "crate::net::listener::default_min_body_rate")]
    #[schemars(with = "crate::config::schema::Size")]
    pub min_body_rate: bytesize::ByteSize,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_idle_timeout",
        with = "humantime_serde"
    )]
    pub idle_timeout: Duration,
    #[serde(default = "crate::net::listener::default_max_connections")]
    pub max_connections: usize,
}

impl HttpConfig {
    fn listener_limits(&self) -> crate::net::listener::ListenerLimits {
        crate::net::listener::ListenerLimits {
            read_header_timeout: self.read_header_timeout,
            read_timeout: self.read_timeout,
            min_body_rate: self.min_body_rate,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// The HTTP/2 flow-control window of one gRPC stream.
const GRPC_STREAM_WINDOW: u32 = 256 * 1024;

fn default_max_concurrent_streams() -> u32 {
    16
}

fn default_grpc_endpoint() -> Endpoint {
    Endpoint("127.0.0.1:4317".into())
}
fn default_http_endpoint() -> Endpoint {
    Endpoint("127.0.0.1:4318".into())
}
fn default_max_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(4)
}

impl OtlpConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            return vec![(
                "protocols".into(),
                "enable at least one of `grpc` and `http`".into(),
            )];
        }
        let mut out = Vec::new();
        let mut problem = |field: &str, message: &str| {
            out.push((format!("protocols.{field}"), message.to_string()));
        };
        if let Some(g) = &self.protocols.grpc {
            for (field, zero) in [
                ("max_records_per_request", g.max_records_per_request == 0),
                ("max_connections", g.max_connections == 0),
                ("max_concurrent_streams", g.max_concurrent_streams == 0),
                ("read_header_timeout", g.read_header_timeout.is_zero()),
                ("read_timeout", g.read_timeout.is_zero()),
                ("idle_timeout", g.idle_timeout.is_zero()),
            ] {
                if zero {
                    problem(&format!("grpc.{field}"), "must be above zero");
                }
            }
        }
        if let Some(h) = &self.protocols.http {
            if h.max_records_per_request == 0 {
                problem("http.max_records_per_request", "must be at least 1");
            }
            for (field, message) in h.listener_limits().problems() {
                problem(&format!("http.{field}"), &message);
            }
        }
        out
    }
}

/// Starts the enabled protocols; one handle each.
pub async fn start(
    id: String,
    cfg: OtlpConfig,
    intake: Intake,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<Vec<ReceiverHandle>> {
    let mut handles = Vec::new();
    if let Some(grpc) = &cfg.protocols.grpc {
        handles.push(start_grpc(&id, grpc, intake.clone(), limits, shutdown.clone()).await?);
    }
    if let Some(http) = &cfg.protocols.http {
        handles.push(start_http(&id, http, intake, limits, shutdown).await?);
    }
    Ok(handles)
}

#[derive(Clone)]
struct Export {
    id: String,
    transport: Transport,
    intake: Intake,
    limits: Limits,
    max_records: usize,
    /// What the records of one request may take ([`super::EXPANSION_FACTOR`] × the body limit).
    expansion_budget: usize,
}

/// Why a whole request was refused before any of it was kept.
#[derive(Debug, PartialEq, Eq)]
enum TooLarge {
    Records { limit: usize },
    Expands { budget: usize },
}

impl TooLarge {
    fn reason(&self) -> &'static str {
        match self {
            TooLarge::Records { .. } => "too_many_records",
            TooLarge::Expands { .. } => "expands",
        }
    }

    fn message(&self) -> String {
        match self {
            TooLarge::Records { limit } => format!(
                "the request holds more than max_records_per_request ({limit}) log records or resource and scope entries; nothing was kept: send them in smaller requests"
            ),
            TooLarge::Expands { budget } => format!(
                "the request's records would take more than {budget} bytes once its resource and scope are copied into each of them; nothing was kept: send fewer records per request or a smaller resource"
            ),
        }
    }
}

/// Why an export failed as a whole.
enum ExportError {
    TooLarge(TooLarge),
    Submit(SubmitError),
}

/// What came of one export request.
struct Outcome {
    rejected: usize,
    message: String,
}

impl Export {
    async fn export(&self, request: ExportLogsServiceRequest) -> Result<Outcome, ExportError> {
        let bounds = Bounds {
            max_record_bytes: self.limits.max_record_bytes,
            max_records: self.max_records,
            expansion_budget: self.expansion_budget,
        };
        let (records, rejected, message) = match to_records(&self.id, request, bounds) {
            Ok(converted) => converted,
            Err(too_large) => {
                count_refused(&self.id, self.transport, too_large.reason(), 1);
                return Err(ExportError::TooLarge(too_large));
            }
        };
        if rejected > 0 {
            count_refused(&self.id, self.transport, "oversized", rejected);
        }
        let n = records.len();
        if n > 0 {
            if let Err(e) = self.intake.submit(records).await {
                count_refused(&self.id, self.transport, refusal_reason(&e), n);
                return Err(ExportError::Submit(e));
            }
            count_accepted(&self.id, self.transport, n);
        }
        Ok(Outcome { rejected, message })
    }
}

fn response(outcome: &Outcome) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (outcome.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: outcome.rejected as i64,
            error_message: outcome.message.clone(),
        }),
    }
}

impl Export {
    /// The gRPC answer to one decoded request.
    async fn grpc_export(
        &self,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, tonic::Status> {
        match self.export(request).await {
            Ok(outcome) => Ok(response(&outcome)),
            Err(ExportError::Submit(e)) => Err(grpc_status(&e)),
            Err(ExportError::TooLarge(t)) => Err(tonic::Status::invalid_argument(t.message())),
        }
    }
}

/// The refusal of a request with more than `limit` log records.
pub(super) fn too_many_records_message(limit: usize) -> String {
    TooLarge::Records { limit }.message()
}

/// tonic answers a request it cannot decode with `INTERNAL`, which a client cannot tell
/// from a server fault; OTLP asks for `INVALID_ARGUMENT`, the caller's error. This
/// wrapper rewrites that one answer and passes everything else through.
#[derive(Clone)]
struct DecodeErrorsAreInvalidArgument<S>(S);

impl<S: tonic::server::NamedService> tonic::server::NamedService
    for DecodeErrorsAreInvalidArgument<S>
{
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for DecodeErrorsAreInvalidArgument<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        use futures::FutureExt;
        Box::pin(
            self.0
                .call(request)
                .map(|r| r.map(decode_errors_are_invalid_argument)),
        )
    }
}

fn decode_errors_are_invalid_argument(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let internal = headers.get("grpc-status").is_some_and(|v| v == "13");
    let decode = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.contains("decode"));
    if internal && decode {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(tonic::Code::InvalidArgument as i32),
        );
    }
    response
}

fn grpc_status(e: &SubmitError) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    match e {
        SubmitError::Overloaded { retry_after } => tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(*retry_after)),
        ),
        SubmitError::ShuttingDown | SubmitError::Storage(_) => tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(Duration::from_secs(5))),
        ),
        SubmitError::RecordTooLarge { .. } => {
            tonic::Status::new(tonic::Code::InvalidArgument, e.to_string())
        }
    }
}

async fn start_grpc(
    id: &str,
    cfg: &GrpcConfig,
    intake: Intake,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<ReceiverHandle> {
    let listener = crate::net::bind(id, cfg.endpoint.as_str()).await?;
    let addr = listener.local_addr()?;
    let max_message = cfg.max_recv_msg_size.as_u64() as usize;
    let export = Arc::new(Export {
        id: id.to_string(),
        transport: Transport::Grpc,
        intake,
        limits,
        max_records: cfg.max_records_per_request,
        expansion_budget: max_message.saturating_mul(super::EXPANSION_FACTOR),
    });
    let service = super::otlp_grpc::LogsServer {
        receiver: Arc::from(id),
        export: Arc::new(move |request| {
            let export = export.clone();
            Box::pin(async move { export.grpc_export(request).await })
        }),
        max_records: cfg.max_records_per_request,
        max_message_bytes: max_message,
        in_flight: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
    };
    // Small answers must not wait for Nagle's algorithm and the client's delayed ACK
    // (40 ms on Linux), which would dominate acknowledgement latency.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let incoming = super::grpc_limits::limit_connections(
        id,
        incoming,
        cfg.max_connections,
        cfg.read_header_timeout,
    );
    let name = id.to_string();
    let builder = tonic::transport::Server::builder()
        .timeout(cfg.read_timeout)
        .max_concurrent_streams(cfg.max_concurrent_streams)
        // Streams waiting for an in-flight slot keep what they were sent unread; a
        // connection window that holds every stream's window leaves room for those being
        // read, so waiting never stalls them, and bounds what a connection buffers.
        .initial_stream_window_size(Some(GRPC_STREAM_WINDOW))
        .initial_connection_window_size(Some(
            GRPC_STREAM_WINDOW.saturating_mul(cfg.max_concurrent_streams.saturating_add(1)),
        ))
        .http2_keepalive_interval(Some(cfg.idle_timeout / 2))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    let task = tokio::spawn(async move {
        let mut builder = builder;
        let served = builder
            .add_service(DecodeErrorsAreInvalidArgument(service))
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(receiver = %name, error = %e, "OTLP gRPC server stopped");
        }
    });
    tracing::info!(receiver = %id, %addr, "OTLP gRPC listening");
    Ok(ReceiverHandle {
        id: format!("{id} (grpc)"),
        local_addrs: vec![addr],
        task,
    })
}

#[derive(Clone)]
struct HttpState {
    export: Export,
    max_body: usize,
}

async fn start_http(
    id: &str,
    cfg: &HttpConfig,
    intake: Intake,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<ReceiverHandle> {
    let listener = crate::net::bind(id, cfg.endpoint.as_str()).await?;
    let addr = listener.local_addr()?;
    let max_body = cfg.max_request_body_size.as_u64() as usize;
    let state = HttpState {
        export: Export {
            id: id.to_string(),
            transport: Transport::Http,
            intake,
            limits,
            max_records: cfg.max_records_per_request,
            expansion_budget: max_body.saturating_mul(super::EXPANSION_FACTOR),
        },
        max_body,
    };
    let app = axum::Router::new()
        .route("/v1/logs", axum::routing::post(http_export))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    let task = crate::net::listener::serve(
        id.to_string(),
        listener,
        app,
        cfg.listener_limits(),
        shutdown,
    );
    tracing::info!(receiver = %id, %addr, "OTLP HTTP listening");
    Ok(ReceiverHandle {
        id: format!("{id} (http)"),
        local_addrs: vec![addr],
        task,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The OTLP/HTTP answer: the message in the request's encoding.
fn encoded<M: Message + serde::Serialize>(
    status: StatusCode,
    encoding: Encoding,
    message: &M,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        body,
    )
        .into_response()
}

/// An error answer: a `google.rpc.Status` in the request's encoding, as OTLP/HTTP says.
fn error(status: StatusCode, encoding: Encoding, headers: HeaderMap, message: String) -> Response {
    let grpc_code = match status {
        StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        _ => tonic::Code::InvalidArgument,
    };
    let rpc = tonic_types::Status {
        code: grpc_code as i32,
        message: message.clone(),
        details: Vec::new(),
    };
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => {
            serde_json::to_vec(&serde_json::json!({ "code": grpc_code as i32, "message": message }))
                .unwrap_or_default()
        }
    };
    let mut response = (status, headers, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

async fn http_export(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let id = &state.export.id;
    let encoding = match super::media_type(&headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            count_refused(id, Transport::Http, "malformed", 1);
            let message = format!(
                "unsupported Content-Type `{other}`: send application/x-protobuf or application/json"
            );
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Encoding::Json,
                HeaderMap::new(),
                message,
            );
        }
    };
    let body = match super::decode_body(&headers, body, state.max_body) {
        Ok(b) => b,
        Err(e) => {
            count_refused(id, Transport::Http, e.reason(), 1);
            return error(e.status(), encoding, HeaderMap::new(), e.to_string());
        }
    };
    let counts = match encoding {
        Encoding::Protobuf => super::otlp_count::protobuf(&body, state.export.max_records),
        Encoding::Json => super::otlp_count::json(&body),
    };
    if counts.is_some_and(|c| c.exceeds(state.export.max_records)) {
        let too_many = TooLarge::Records {
            limit: state.export.max_records,
        };
        count_refused(id, Transport::Http, too_many.reason(), 1);
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            encoding,
            HeaderMap::new(),
            too_many.message(),
        );
    }
    let request = match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("invalid OTLP protobuf: {e}")),
        Encoding::Json => serde_json::from_slice::<ExportLogsServiceRequest>(&body)
            .map_err(|e| format!("invalid OTLP/JSON: {e}")),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            count_refused(id, Transport::Http, "malformed", 1);
            tracing::debug!(receiver = %id, %message, "refused an OTLP/HTTP request");
            return error(StatusCode::BAD_REQUEST, encoding, HeaderMap::new(), message);
        }
    };
    match state.export.export(request).await {
        Ok(outcome) => encoded(StatusCode::OK, encoding, &response(&outcome)),
        Err(ExportError::TooLarge(t)) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            encoding,
            HeaderMap::new(),
            t.message(),
        ),
        Err(ExportError::Submit(e)) => {
            let (status, headers, message) = super::submit_error_response(&e);
            error(status, encoding, headers, message)
        }
    }
}

/// The bounds [`to_records`] keeps a request within.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    max_record_bytes: usize,
    max_records: usize,
    expansion_budget: usize,
}

/// What a record costs beyond its own body and attributes: its share of the request.
struct Shared {
    resource: Map<String, Value>,
    scope: Map<String, Value>,
    /// Stored size of the resource and scope, computed once for all their records.
    bytes: usize,
}

/// Converts a request into records. A record whose stored size (resource and scope
/// included) is over `max_record_bytes` is rejected and counted, never half-kept; a
/// request with too many records, or whose records would take more than the expansion
/// budget once the resource and scope are copied into each, is refused whole before
/// those copies are made.
fn to_records(
    source: &str,
    request: ExportLogsServiceRequest,
    bounds: Bounds,
) -> Result<(Vec<Record>, usize, String), TooLarge> {
    let count: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if count > bounds.max_records {
        return Err(TooLarge::Records {
            limit: bounds.max_records,
        });
    }
    let now = now_unix_nano();
    let mut records = Vec::with_capacity(count);
    let mut rejected = 0usize;
    let mut expanded = 0usize;
    for resource_logs in request.resource_logs {
        let resource = resource_logs
            .resource
            .map(|r| attributes(r.attributes))
            .unwrap_or_default();
        let resource_bytes = super::json_len(&resource);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(scope_map).unwrap_or_default();
            let shared = Shared {
                bytes: resource_bytes + super::json_len(&scope),
                resource: resource.clone(),
                scope,
            };
            for log in scope_logs.log_records {
                let record = to_record(source, log, now);
                let size = shared.bytes
                    + super::json_len(&record.body)
                    + super::json_len(&record.attributes)
                    + record.severity_text.len()
                    + source.len();
                if size > bounds.max_record_bytes {
                    rejected += 1;
                    continue;
                }
                expanded += size;
                if expanded > bounds.expansion_budget {
                    return Err(TooLarge::Expands {
                        budget: bounds.expansion_budget,
                    });
                }
                records.push(Record {
                    resource: shared.resource.clone(),
                    scope: shared.scope.clone(),
                    ..record
                });
            }
        }
    }
    let message = if rejected > 0 {
        format!(
            "{rejected} log record(s) exceed the record size limit of {} bytes (body, attributes, resource and scope as stored)",
            bounds.max_record_bytes
        )
    } else {
        String::new()
    };
    Ok((records, rejected, message))
}

fn scope_map(
    s: opentelemetry_proto::tonic::common::v1::InstrumentationScope,
) -> Map<String, Value> {
    let mut m = Map::new();
    if !s.name.is_empty() {
        m.insert("name".into(), Value::String(s.name));
    }
    if !s.version.is_empty() {
        m.insert("version".into(), Value::String(s.version));
    }
    if !s.attributes.is_empty() {
        m.insert("attributes".into(), Value::Object(attributes(s.attributes)));
    }
    m
}

/// One log record without its resource and scope, which are added once it is kept.
fn to_record(
    source: &str,
    log: opentelemetry_proto::tonic::logs::v1::LogRecord,
    now: u64,
) -> Record {
    let mut attrs = attributes(log.attributes);
    if !log.event_name.is_empty() {
        attrs.insert("event.name".into(), Value::String(log.event_name));
    }
    Record {
        time_unix_nano: log.time_unix_nano,
        observed_time_unix_nano: if log.observed_time_unix_nano == 0 {
            now
        } else {
            log.observed_time_unix_nano
        },
        severity_number: log.severity_number.clamp(0, 24),
        severity_text: log.severity_text,
        body: log.body.map(any_value).unwrap_or(Value::Null),
        attributes: attrs,
        trace_id: id_hex(&log.trace_id, 16),
        span_id: id_hex(&log.span_id, 8),
        source: source.to_string(),
        ..Record::default()
    }
}

/// Trace and span ids as lowercase hex; all-zero or wrongly sized ids are absent.
fn id_hex(bytes: &[u8], len: usize) -> Option<String> {
    (bytes.len() == len && bytes.iter().any(|&b| b != 0)).then(|| hex::encode(bytes))
}

pub fn attributes(kvs: Vec<KeyValue>) -> Map<String, Value> {
    kvs.into_iter()
        .map(|kv| (kv.key, kv.value.map(any_value).unwrap_or(Value::Null)))
        .collect()
}

pub fn any_value(v: AnyValue) -> Value {
    match v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => int_value(i),
        Some(any_value::Value::DoubleValue(f)) => float_value(f),
        Some(any_value::Value::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(any_value).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes(kv.values)),
        // Dictionary references belong to the profiles signal; a log record has no table.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
    }
}

impl super::ReceiverSettings for OtlpConfig {
    fn problems(&self) -> Vec<(String, String)> {
        OtlpConfig::problems(self)
    }

    fn start(
        &self,
        id: String,
        intake: crate::component::Intake,
        limits: super::Limits,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<crate::component::ReceiverHandle>>>
    {
        let config = self.clone();
        Box::pin(async move { start(id, config, intake, limits, shutdown).await })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use serde_json::json;

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    }
    fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v,
            ..Default::default()
        }
    }

    fn bounds(max_record_bytes: usize) -> Bounds {
        Bounds {
            max_record_bytes,
            max_records: 10_000,
            expansion_budget: 1 << 30,
        }
    }

    #[test]
    fn the_resource_counts_towards_each_record_and_the_request_budget() {
        let request = |records: usize, blob: usize| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("blob", s(&"x".repeat(blob)))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); records],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        // Each record alone is tiny on the wire; stored, it carries the resource.
        let (records, rejected, message) =
            to_records("otlp", request(3, 500), bounds(400)).unwrap();
        assert_eq!((records.len(), rejected), (0, 3));
        assert!(message.contains("resource"), "{message}");
        let tight = Bounds {
            max_record_bytes: 1 << 20,
            max_records: 10_000,
            expansion_budget: 100 * 1024,
        };
        assert_eq!(
            to_records("otlp", request(400, 1024), tight).unwrap_err(),
            TooLarge::Expands { budget: 100 * 1024 }
        );
        assert_eq!(
            to_records(
                "otlp",
                request(11, 1),
                Bounds {
                    max_records: 10,
                    ..tight
                }
            )
            .unwrap_err(),
            TooLarge::Records { limit: 10 }
        );
        assert_eq!(
            to_records("otlp", request(50, 1024), tight)
                .unwrap()
                .0
                .len(),
            50
        );
    }

    #[test]
    fn records_carry_every_otlp_field() {
        let body = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv(
                        "big",
                        Some(AnyValue {
                            value: Some(any_value::Value::IntValue(1 << 60)),
                        }),
                    ),
                    kv(
                        "list",
                        Some(AnyValue {
                            value: Some(any_value::Value::ArrayValue(ArrayValue {
                                values: vec![AnyValue {
                                    value: Some(any_value::Value::BoolValue(true)),
                                }],
                            })),
                        }),
                    ),
                    kv(
                        "raw",
                        Some(AnyValue {
                            value: Some(any_value::Value::BytesValue(vec![0xff, 0])),
                        }),
                    ),
                ],
            })),
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("gw"))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "audit".into(),
                        version: "1.2".into(),
                        ..Default::default()
                    }),
                    log_records: vec![LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_001,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(body),
                        attributes: vec![kv("user_id", s("u1")), kv("user_id", s("u2"))],
                        trace_id: vec![1; 16],
                        span_id: vec![0; 8],
                        event_name: "login.failed".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (records, rejected, _) = to_records("otlp", request, bounds(1 << 20)).unwrap();
        assert_eq!(rejected, 0);
        let r = &records[0];
        assert_eq!(r.time_unix_nano, 1_700_000_000_000_000_001);
        assert!(r.observed_time_unix_nano > 0);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (17, "ERROR"));
        assert_eq!(
            r.body,
            json!({"big": "1152921504606846976", "list": [true], "raw": "/wA="})
        );
        assert_eq!(
            Value::Object(r.attributes.clone()),
            json!({"user_id": "u2", "event.name": "login.failed"})
        );
        assert_eq!(
            Value::Object(r.resource.clone()),
            json!({"service.name": "gw"})
        );
        assert_eq!(
            Value::Object(r.scope.clone()),
            json!({"name": "audit", "version": "1.2"})
        );
        assert_eq!(
            r.trace_id.as_deref(),
            Some("01010101010101010101010101010101")
        );
        assert_eq!(r.span_id, None);
    }

    #[test]
    fn oversized_records_are_rejected_alone() {
        let log = |text: &str| LogRecord {
            body: s(text),
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![log("small"), log(&"x".repeat(500)), log("ok")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (records, rejected, message) = to_records("otlp", request, bounds(100)).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(rejected, 1);
        assert!(message.contains("100 bytes"), "{message}");
    }

    #[test]
    fn otlp_json_decodes_with_hex_ids_and_string_ints() {
        let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":9,
            "body":{"stringValue":"hi"},"traceId":"5b8efff798038103d269b633813fc60c",
            "attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}"#;
        let request: ExportLogsServiceRequest = serde_json::from_str(body).unwrap();
        let (records, _, _) = to_records("otlp", request, bounds(1 << 20)).unwrap();
        assert_eq!(records[0].time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(
            records[0].trace_id.as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(records[0].attributes["n"], json!(42));
        assert_eq!(records[0].body, json!("hi"));
    }
}
