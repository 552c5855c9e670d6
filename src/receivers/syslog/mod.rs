//! The syslog receiver: RFC 5424 and RFC 3164 messages over TCP or UDP.
//!
//! ```yaml
//! receivers:
//!   syslog/tcp:
//!     protocol: tcp              # tcp | udp
//!     endpoint: 127.0.0.1:5514
//!     format: auto               # auto | rfc5424 | rfc3164
//!     max_message_bytes: 64KiB   # larger messages are truncated and marked
//!     max_connections: 1024      # tcp: connections past this are closed at once
//!     idle_timeout: 5m           # tcp: a connection that completes no message this long is closed
//!     read_timeout: 30s          # tcp: a message begun must be whole within this
//!     location: UTC              # IANA time zone of RFC 3164 timestamps
//!   syslog/udp: { protocol: udp, endpoint: 127.0.0.1:5514 }
//! ```
//!
//! **Framing.** Over TCP (RFC 6587) the first byte of a connection picks its framing: a
//! digit means octet counting (`MSG-LEN SP MSG`; a line feed inside the count, as rsyslog
//! sends it, is dropped), `<` or anything else means one message per line. Over UDP every
//! datagram is one message. Trailing CR, LF and NUL are removed; empty messages ignored.
//!
//! **Format.** `auto` reads a message as RFC 5424 when `1 ` follows its PRI and as
//! RFC 3164 otherwise; `rfc5424` and `rfc3164` force one. rsyslog's `#ooo` escapes of
//! control characters (`#012` for a line feed) are decoded in MSG; so a literal `#012`
//! in a message also becomes a line feed, as rsyslog cannot tell them apart either.
//!
//! **Records.** Each message becomes one record, with `source` the receiver id:
//!
//! | syslog | record |
//! |---|---|
//! | PRI severity | `severity_number`: emerg 23, alert 22, crit 21 (FATAL), err 17 (ERROR), warning 13 (WARN), notice 10, info 9 (INFO), debug 5 (DEBUG); `severity_text`: the keyword (`err`); `attributes["syslog.severity"]`: 0-7 |
//! | PRI facility | `attributes["syslog.facility"]`: 0-23 |
//! | (format) | `attributes["syslog.format"]`: `rfc5424` or `rfc3164` |
//! | TIMESTAMP | `time_unix_nano`; none or `-`: 0, so the entry shows the receipt time |
//! | HOSTNAME | `resource["host.name"]` (the OpenTelemetry convention; exporters map it to their host field) |
//! | APP-NAME, RFC 3164 TAG | `attributes["syslog.app_name"]` |
//! | PROCID, RFC 3164 `[pid]` | `attributes["syslog.proc_id"]` |
//! | MSGID | `attributes["syslog.msg_id"]` |
//! | STRUCTURED-DATA | `attributes["syslog.structured_data"][SD-ID][PARAM-NAME]` = value (string); a name repeated within an element gives an array of its values in order |
//! | MSG | `body`: string without BOM; null when an RFC 5424 message has no MSG |
//! | sender | `attributes["network.peer.address"]`: the IP address the message came from |
//!
//! RFC 3164 timestamps carry neither year nor zone: they are read as wall-clock times in
//! `location` (an IANA zone such as `Europe/Berlin`; default `UTC`), in the year that
//! makes them the most recent date not more than a day ahead of the receipt time, as
//! rsyslog does (so a `Dec 31` message read on January 1st is dated last year, and a
//! `Feb  5` message read on December 4th is this February's, not next year's). The day
//! of allowed skew covers clocks running ahead and senders in any zone. An RFC 3164 message without PRI has no
//! facility or severity (`severity_number` 0) rather than the `user.notice` a relay would
//! invent. Absent fields and the NILVALUE `-` leave their attribute out.
//!
//! **Bad input is kept and marked, never dropped silently.** A message that does not
//! parse becomes a record whose `body` is the raw text, with `attributes["syslog.parse_error"]`
//! giving the reason and the tag `unparsed`. Bytes that are not UTF-8 are replaced by
//! U+FFFD and marked `attributes["syslog.invalid_utf8"] = true`. A message over
//! `max_message_bytes` keeps its first `max_message_bytes` bytes and is marked
//! `attributes["syslog.truncated"] = true` and `["syslog.original_length"]` (bytes); the
//! rest is skipped, by its octet count or up to the next line feed, so the stream stays
//! in step. A TCP stream whose octet counting breaks cannot be resynchronised: the
//! connection is closed with a warning.
//!
//! **Slow senders.** A TCP connection's idle timer restarts only when a whole message
//! has arrived, never on a lone byte, and a message once begun must be complete within
//! `read_timeout`: a sender trickling a byte every few minutes is closed after at most
//! `read_timeout` (counted as `refused{reason="timeout"}`), so a thousand such senders
//! cannot hold `max_connections` slots for longer than that.
//!
//! **Backpressure.** Syslog has no acknowledgements. Over TCP a connection's messages are
//! batched (up to 1000 messages or 2 ms) and nothing more is read from it until the batch
//! is durable, so TCP flow control slows the sender; an overloaded pipeline is retried
//! after its `retry_after` with the same batch. Over UDP nothing can push back: datagrams
//! the pipeline refuses are dropped and counted.
//!
//! **Metrics** (label `receiver` = the receiver id):
//! `vellum_receiver_accepted_records_total`, of which
//! `vellum_receiver_unparsed_records_total` and `vellum_receiver_truncated_records_total`;
//! `vellum_receiver_refused_records_total{reason="framing"}` (one per connection closed
//! for broken framing); `vellum_receiver_dropped_records_total{reason}` with `reason` one
//! of `overloaded` (UDP), `shutting_down`, `storage` (UDP), for messages read that the
//! pipeline did not take: the sender is never told; `vellum_receiver_received_records_total`
//! (all of these); `vellum_receiver_refused_connections_total` (past `max_connections`).

mod framing;
pub mod parse;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::component::{Intake, ReceiverHandle, SubmitError};
use crate::event::{Record, now_unix_nano};
pub use framing::{Frame, FrameDecoder, FramingError};
use parse::{Message, ParseError};

/// Settings of a `syslog` receiver.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub protocol: Protocol,
    /// `host:port` to listen on.
    pub endpoint: crate::config::component::Endpoint,
    #[serde(default)]
    pub format: Format,
    /// The largest message kept whole; longer ones are truncated and marked.
    #[serde(default = "default_max_message_bytes")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_message_bytes: bytesize::ByteSize,
    /// TCP connections served at once; further ones are closed on arrival.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP connection that completes no message for this long is closed.
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A TCP message begun must be complete within this; its connection is closed if not.
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    /// The IANA time zone RFC 3164 timestamps are read in.
    #[serde(default = "default_location")]
    pub location: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Auto,
    Rfc5424,
    Rfc3164,
}

fn default_max_message_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::kib(64)
}
fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_location() -> String {
    "UTC".into()
}

/// The zone named by `location`, from the system's tzdb or the bundled one.
fn time_zone(location: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::db().get(location).map_err(|_| {
        format!("`{location}` is not an IANA time zone name (such as `UTC` or `Europe/Berlin`)")
    })
}

/// Above this a single connection could hold too much memory for one message.
const MAX_MESSAGE_BYTES_LIMIT: u64 = 16 << 20;

impl SyslogConfig {
    /// Values serde accepts but the receiver cannot use, as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let size = self.max_message_bytes.as_u64();
        if size == 0 || size > MAX_MESSAGE_BYTES_LIMIT {
            problems.push((
                "max_message_bytes".into(),
                format!("must be between 1 byte and 16 MiB, not {size} bytes"),
            ));
        }
        if self.max_connections == 0 {
            problems.push(("max_connections".into(), "must be at least 1".into()));
        }
        if self.idle_timeout.is_zero() {
            problems.push(("idle_timeout".into(), "must be longer than zero".into()));
        }
        if self.read_timeout.is_zero() {
            problems.push(("read_timeout".into(), "must be longer than zero".into()));
        }
        if let Err(message) = time_zone(&self.location) {
            problems.push(("location".into(), message));
        }
        problems
    }
}

/// A TCP connection's batch is submitted once it holds this many messages…
const BATCH_MAX_RECORDS: usize = 1000;
/// …or this many bytes…
const BATCH_MAX_BYTES: usize = 1 << 20;
/// …or this long after its first message was read.
const BATCH_WINDOW: Duration = Duration::from_millis(2);
/// Bounds on how long to wait before submitting a refused TCP batch again.
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Wait before retrying after a storage failure, which carries no hint of its own.
const STORAGE_RETRY: Duration = Duration::from_secs(1);
const READ_BUFFER_BYTES: usize = 64 << 10;
/// Larger than any UDP payload, so the kernel never cuts a datagram short unseen.
const DATAGRAM_BUFFER_BYTES: usize = 1 << 16;
/// At most one warning this often about UDP datagrams dropped for overload.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Binds the endpoint, then serves it in a spawned task until `shutdown` is cancelled.
///
/// On shutdown the receiver stops accepting and reading, submits what it has already
/// read, and ends. Fails when the endpoint cannot be bound (malformed, in use, denied).
pub async fn start(
    id: String,
    cfg: SyslogConfig,
    intake: Intake,
    shutdown: CancellationToken,
) -> std::io::Result<ReceiverHandle> {
    let bind_error = |e: std::io::Error| {
        let protocol = if cfg.protocol == Protocol::Tcp {
            "tcp"
        } else {
            "udp"
        };
        std::io::Error::new(
            e.kind(),
            format!("{id}: cannot listen on {protocol} {}: {e}", cfg.endpoint),
        )
    };
    let location = time_zone(&cfg.location).map_err(|message| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{id}: location: {message}"),
        )
    })?;
    let receiver = Arc::new(Receiver {
        id: id.clone(),
        transport: match cfg.protocol {
            Protocol::Tcp => super::Transport::Tcp,
            Protocol::Udp => super::Transport::Udp,
        },
        format: cfg.format,
        location,
        max_message_bytes: usize::try_from(cfg.max_message_bytes.as_u64()).unwrap_or(usize::MAX),
        idle_timeout: cfg.idle_timeout,
        read_timeout: cfg.read_timeout,
        intake,
    });
    let (local_addr, task) = match cfg.protocol {
        Protocol::Tcp => {
            let listener = TcpListener::bind(cfg.endpoint.as_str())
                .await
                .map_err(bind_error)?;
            let local_addr = listener.local_addr()?;
            let task = tokio::spawn(serve_tcp(receiver, listener, cfg.max_connections, shutdown));
            (local_addr, task)
        }
        Protocol::Udp => {
            let socket = UdpSocket::bind(cfg.endpoint.as_str())
                .await
                .map_err(bind_error)?;
            let local_addr = socket.local_addr()?;
            let task = tokio::spawn(serve_udp(receiver, socket, shutdown));
            (local_addr, task)
        }
    };
    tracing::info!(receiver = %id, address = %local_addr, protocol = ?cfg.protocol, "syslog receiver listening");
    Ok(ReceiverHandle {
        id,
        local_addrs: vec![local_addr],
        task,
    })
}

struct Receiver {
    id: String,
    transport: super::Transport,
    format: Format,
    location: jiff::tz::TimeZone,
    max_message_bytes: usize,
    idle_timeout: Duration,
    read_timeout: Duration,
    intake: Intake,
}

/// A message as read, before parsing.
struct Received {
    frame: Frame,
    peer: IpAddr,
    observed_unix_nano: u64,
}

/// Records built from a batch, with how many of them are marked.
struct Built {
    records: Vec<Record>,
    unparsed: u64,
    truncated: u64,
}

impl Receiver {
    fn build_records(&self, batch: &[Received]) -> Built {
        let mut built = Built {
            records: Vec::with_capacity(batch.len()),
            unparsed: 0,
            truncated: 0,
        };
        for received in batch {
            let record = self.record_from(received);
            built.unparsed += u64::from(record.tags.iter().any(|t| t == UNPARSED_TAG));
            built.truncated += u64::from(received.frame.is_truncated());
            built.records.push(record);
        }
        built
    }

    fn record_from(&self, received: &Received) -> Record {
        message_record(
            &self.id,
            self.format,
            &self.location,
            &received.frame,
            received.peer,
            received.observed_unix_nano,
        )
    }

    fn count_accepted(&self, built: &Built, records: usize) {
        let receiver = self.id.clone();
        super::count_accepted(&receiver, self.transport, records);
        if built.unparsed > 0 {
            metrics::counter!("vellum_receiver_unparsed_records_total", "receiver" => receiver.clone())
                .increment(built.unparsed);
        }
        if built.truncated > 0 {
            metrics::counter!("vellum_receiver_truncated_records_total", "receiver" => receiver)
                .increment(built.truncated);
        }
    }

    fn count_refused(&self, records: usize, reason: &'static str) {
        super::count_refused(&self.id, self.transport, reason, records);
    }

    /// Messages the sender already handed over and will not send again: syslog has no
    /// acknowledgement, so a refusal after reading is a drop.
    fn count_dropped(&self, records: usize, reason: &'static str) {
        super::count_dropped(&self.id, reason, records);
    }

    /// Submits a batch read over TCP until the pipeline takes it: those bytes were taken
    /// from the sender, which will not send them again. Returns `false` when the
    /// connection must stop because the pipeline is shutting down.
    async fn submit_until_accepted(
        &self,
        batch: &[Received],
        shutdown: &CancellationToken,
    ) -> bool {
        loop {
            let last_attempt = shutdown.is_cancelled();
            let mut built = self.build_records(batch);
            let records = std::mem::take(&mut built.records);
            let count = records.len();
            let (wait, reason) = match self.intake.submit(records).await {
                Ok(()) => {
                    self.count_accepted(&built, count);
                    return true;
                }
                Err(SubmitError::ShuttingDown) => {
                    self.count_dropped(count, "shutting_down");
                    tracing::warn!(receiver = %self.id, records = count, "syslog messages refused: the pipeline is shutting down");
                    return false;
                }
                Err(SubmitError::Overloaded { retry_after }) => {
                    (retry_after.clamp(RETRY_MIN, RETRY_MAX), "overloaded")
                }
                Err(SubmitError::Storage(error)) => {
                    // The journal logs its failure once; this would repeat it per batch.
                    tracing::debug!(receiver = %self.id, records = count, %error, "syslog messages not stored, retrying");
                    (STORAGE_RETRY, "storage")
                }
                Err(e @ SubmitError::RecordTooLarge { .. }) => {
                    self.count_dropped(count, "oversized");
                    tracing::warn!(receiver = %self.id, records = count, error = %e, "syslog messages refused");
                    return true;
                }
            };
            if last_attempt {
                self.count_dropped(count, reason);
                tracing::warn!(receiver = %self.id, records = count, reason, "syslog messages read before shutdown were refused");
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
}

const UNPARSED_TAG: &str = "unparsed";

/// The record for one message read by receiver `source` from `peer`, as the module
/// documentation lays it out: parsed, or kept raw and marked when it does not parse.
pub fn message_record(
    source: &str,
    format: Format,
    location: &jiff::tz::TimeZone,
    frame: &Frame,
    peer: IpAddr,
    observed_unix_nano: u64,
) -> Record {
    let raw = trim_line_end(&frame.bytes);
    let mut record = Record {
        observed_time_unix_nano: observed_unix_nano,
        source: source.to_owned(),
        ..Record::default()
    };
    match parse::parse(raw, format, observed_unix_nano, location) {
        Ok(message) => fill_record(&mut record, message),
        Err(error) => mark_unparsed(&mut record, raw, &error),
    }
    let attributes = &mut record.attributes;
    // A dual-stack listener sees IPv4 senders as `::ffff:a.b.c.d`; name them as IPv4.
    let peer = peer.to_canonical().to_string();
    attributes.insert("network.peer.address".into(), Value::String(peer));
    if frame.is_truncated() {
        attributes.insert("syslog.truncated".into(), Value::Bool(true));
        attributes.insert(
            "syslog.original_length".into(),
            Value::from(frame.original_len),
        );
    }
    record
}

/// rsyslog counts the line feed that ends a message; line framing may leave a CR.
fn trim_line_end(mut raw: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b'\0'] = raw {
        raw = rest;
    }
    raw
}

/// Syslog severity code → (keyword, OTLP severity number).
const SEVERITIES: [(&str, i32); 8] = [
    ("emerg", 23),
    ("alert", 22),
    ("crit", 21),
    ("err", 17),
    ("warning", 13),
    ("notice", 10),
    ("info", 9),
    ("debug", 5),
];

fn fill_record(record: &mut Record, message: Message) {
    let attributes = &mut record.attributes;
    attributes.insert(
        "syslog.format".into(),
        Value::String(message.dialect.as_str().into()),
    );
    if let Some(priority) = message.priority {
        let (keyword, number) = SEVERITIES[usize::from(priority.severity)];
        record.severity_number = number;
        record.severity_text = keyword.into();
        attributes.insert("syslog.facility".into(), Value::from(priority.facility));
        attributes.insert("syslog.severity".into(), Value::from(priority.severity));
    }
    record.time_unix_nano = message.timestamp_unix_nano.unwrap_or(0);
    if let Some(hostname) = message.hostname {
        record
            .resource
            .insert("host.name".into(), Value::String(hostname));
    }
    for (key, value) in [
        ("syslog.app_name", message.app_name),
        ("syslog.proc_id", message.proc_id),
        ("syslog.msg_id", message.msg_id),
    ] {
        if let Some(value) = value {
            attributes.insert(key.into(), Value::String(value));
        }
    }
    if !message.structured_data.is_empty() {
        attributes.insert(
            "syslog.structured_data".into(),
            structured_data_json(message.structured_data),
        );
    }
    if message.invalid_utf8 {
        attributes.insert("syslog.invalid_utf8".into(), Value::Bool(true));
    }
    record.body = message.msg.map_or(Value::Null, Value::String);
}

/// `{SD-ID: {PARAM-NAME: value}}`; a repeated name collects its values in an array.
fn structured_data_json(elements: Vec<parse::SdElement>) -> Value {
    let mut by_id: Map<String, Value> = Map::new();
    for element in elements {
        let params = by_id
            .entry(element.id)
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(params) = params else {
            continue;
        };
        for (name, value) in element.params {
            let value = Value::String(value);
            match params.get_mut(&name) {
                None => {
                    params.insert(name, value);
                }
                Some(Value::Array(values)) => values.push(value),
                Some(first) => *first = Value::Array(vec![first.take(), value]),
            }
        }
    }
    Value::Object(by_id)
}

fn mark_unparsed(record: &mut Record, raw: &[u8], error: &ParseError) {
    let body = match std::str::from_utf8(raw) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            record
                .attributes
                .insert("syslog.invalid_utf8".into(), Value::Bool(true));
            String::from_utf8_lossy(raw).into_owned()
        }
    };
    record.body = Value::String(body);
    record.attributes.insert(
        "syslog.parse_error".into(),
        Value::String(error.to_string()),
    );
    record.tags.push(UNPARSED_TAG.into());
}

async fn serve_tcp(
    receiver: Arc<Receiver>,
    listener: TcpListener,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let connection_slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory: wait rather than spin on the error.
                    tracing::warn!(receiver = %receiver.id, %error, "cannot accept a syslog connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while let Some(finished) = connections.try_join_next() {
            log_connection_panic(&receiver.id, finished);
        }
        let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
            tracing::warn!(receiver = %receiver.id, %peer, max_connections, "closing syslog connection: too many connections");
            metrics::counter!("vellum_receiver_refused_connections_total", "receiver" => receiver.id.clone())
                .increment(1);
            continue;
        };
        let receiver = receiver.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(&receiver, stream, peer, &shutdown).await;
            drop(slot);
        });
    }
    drop(listener);
    while let Some(finished) = connections.join_next().await {
        log_connection_panic(&receiver.id, finished);
    }
}

fn log_connection_panic(id: &str, finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        tracing::error!(receiver = %id, %error, "syslog connection task failed");
    }
}

enum ConnectionEvent {
    Read(std::io::Result<usize>),
    BatchDue,
    Idle,
    /// A message begun was not complete within `read_timeout`.
    Slow,
    Shutdown,
}

/// When a connection must have progressed: a whole message within `idle_timeout` of the
/// last one, and the rest of a message begun within `read_timeout` of its first byte.
/// Neither restarts on a lone byte, so a trickling sender cannot keep a slot.
struct Deadlines {
    last_message: Instant,
    message_begun: Option<Instant>,
}

impl Deadlines {
    fn next(&self, receiver: &Receiver) -> (Instant, ConnectionEvent) {
        let idle = self.last_message + receiver.idle_timeout;
        match self.message_begun {
            Some(begun) if begun + receiver.read_timeout < idle => {
                (begun + receiver.read_timeout, ConnectionEvent::Slow)
            }
            _ => (idle, ConnectionEvent::Idle),
        }
    }

    fn after_read(&mut self, completed_messages: bool, pending_bytes: u64) {
        let now = Instant::now();
        if completed_messages {
            self.last_message = now;
            self.message_begun = None;
        }
        if pending_bytes == 0 {
            self.message_begun = None;
        } else if self.message_begun.is_none() {
            self.message_begun = Some(now);
        }
    }
}

async fn serve_connection(
    receiver: &Receiver,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) {
    let mut decoder = FrameDecoder::new(receiver.max_message_bytes);
    let mut read_buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut frames = Vec::new();
    let mut batch: Vec<Received> = Vec::new();
    let mut batch_bytes = 0;
    let mut batch_due: Option<Instant> = None;
    let mut deadlines = Deadlines {
        last_message: Instant::now(),
        message_begun: None,
    };
    loop {
        let (deadline, on_deadline) = deadlines.next(receiver);
        let (wake_at, on_wake) = match batch_due {
            Some(due) if due <= deadline => (due, ConnectionEvent::BatchDue),
            _ => (deadline, on_deadline),
        };
        let event = tokio::select! {
            biased;
            () = shutdown.cancelled() => ConnectionEvent::Shutdown,
            () = tokio::time::sleep_until(wake_at) => on_wake,
            read = stream.read(&mut read_buffer) => ConnectionEvent::Read(read),
        };
        let mut close = false;
        let mut batch_is_due = false;
        match event {
            ConnectionEvent::Read(Ok(0)) => {
                match decoder.finish() {
                    Ok(last) => frames.extend(last),
                    Err(error) => framing_failed(receiver, peer, &error),
                }
                close = true;
            }
            ConnectionEvent::Read(Ok(n)) => {
                if let Err(error) = decoder.feed(&read_buffer[..n], &mut frames) {
                    framing_failed(receiver, peer, &error);
                    close = true;
                }
                deadlines.after_read(!frames.is_empty(), decoder.pending_bytes());
            }
            ConnectionEvent::Read(Err(error)) => {
                tracing::debug!(receiver = %receiver.id, %peer, %error, "syslog connection failed");
                close = true;
            }
            ConnectionEvent::BatchDue => batch_is_due = true,
            ConnectionEvent::Idle => {
                tracing::debug!(receiver = %receiver.id, %peer, "closing idle syslog connection");
                close = true;
            }
            ConnectionEvent::Slow => {
                receiver.count_refused(1, "timeout");
                tracing::debug!(receiver = %receiver.id, %peer, bytes = decoder.pending_bytes(), "closing syslog connection: a message was not complete within read_timeout");
                close = true;
            }
            ConnectionEvent::Shutdown => {
                let pending = decoder.pending_bytes();
                if pending > 0 {
                    receiver.count_dropped(1, "shutting_down");
                    tracing::info!(receiver = %receiver.id, %peer, bytes = pending, "shutdown: dropping a syslog message not fully received");
                }
                close = true;
            }
        }
        let observed_unix_nano = now_unix_nano();
        for frame in frames.drain(..) {
            if trim_line_end(&frame.bytes).is_empty() {
                continue;
            }
            batch_bytes += frame.bytes.len();
            batch.push(Received {
                frame,
                peer: peer.ip(),
                observed_unix_nano,
            });
        }
        let batch_is_full = batch.len() >= BATCH_MAX_RECORDS || batch_bytes >= BATCH_MAX_BYTES;
        if !batch.is_empty() && (close || batch_is_due || batch_is_full) {
            let accepted = receiver.submit_until_accepted(&batch, shutdown).await;
            batch.clear();
            batch_bytes = 0;
            batch_due = None;
            close |= !accepted;
        } else if !batch.is_empty() && batch_due.is_none() {
            batch_due = Some(Instant::now() + BATCH_WINDOW);
        }
        if close {
            return;
        }
    }
}

fn framing_failed(receiver: &Receiver, peer: SocketAddr, error: &FramingError) {
    receiver.count_refused(1, "framing");
    tracing::warn!(receiver = %receiver.id, %peer, %error, "closing syslog connection: its framing is broken");
}

async fn serve_udp(receiver: Arc<Receiver>, socket: UdpSocket, shutdown: CancellationToken) {
    let mut buffer = vec![0u8; DATAGRAM_BUFFER_BYTES];
    let mut batch = Vec::new();
    let mut dropped_unreported = 0usize;
    let mut last_drop_warning: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buffer) => received,
        };
        let mut received = Some(first);
        // Take what else is already queued, without waiting, into the same batch.
        while let Some(result) = received.take() {
            let (len, peer) = match result {
                Ok(datagram) => datagram,
                Err(error) => {
                    tracing::debug!(receiver = %receiver.id, %error, "syslog datagram not received");
                    break;
                }
            };
            let datagram = &buffer[..len];
            if !trim_line_end(datagram).is_empty() {
                let kept = &datagram[..len.min(receiver.max_message_bytes)];
                batch.push(Received {
                    frame: Frame {
                        bytes: kept.to_vec(),
                        original_len: len as u64,
                    },
                    peer: peer.ip(),
                    observed_unix_nano: now_unix_nano(),
                });
            }
            if batch.len() >= BATCH_MAX_RECORDS {
                break;
            }
            received = match socket.try_recv_from(&mut buffer) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => None,
                other => Some(other),
            };
        }
        if batch.is_empty() {
            continue;
        }
        let mut built = receiver.build_records(&batch);
        let records = std::mem::take(&mut built.records);
        let count = records.len();
        batch.clear();
        match receiver.intake.submit(records).await {
            Ok(()) => receiver.count_accepted(&built, count),
            Err(SubmitError::Overloaded { .. }) => {
                receiver.count_dropped(count, "overloaded");
                dropped_unreported += count;
                if last_drop_warning.is_none_or(|at| at.elapsed() >= DROP_WARNING_INTERVAL) {
                    tracing::warn!(receiver = %receiver.id, datagrams = dropped_unreported, "syslog datagrams dropped: the pipeline is overloaded");
                    dropped_unreported = 0;
                    last_drop_warning = Some(Instant::now());
                }
            }
            Err(SubmitError::ShuttingDown) => {
                receiver.count_dropped(count, "shutting_down");
                break;
            }
            Err(SubmitError::Storage(error)) => {
                receiver.count_dropped(count, "storage");
                tracing::debug!(receiver = %receiver.id, datagrams = count, %error, "syslog datagrams dropped: not stored");
            }
            Err(e @ SubmitError::RecordTooLarge { .. }) => {
                receiver.count_dropped(count, "oversized");
                tracing::warn!(receiver = %receiver.id, datagrams = count, error = %e, "syslog datagrams dropped");
            }
        }
    }
}

impl super::ReceiverSettings for SyslogConfig {
    fn problems(&self) -> Vec<(String, String)> {
        SyslogConfig::problems(self)
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
        Box::pin(async move {
            let _ = limits;
            Ok(vec![start(id, config, intake, shutdown).await?])
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::{Submit, SubmitFuture};
    use serde_json::json;
    use std::sync::Mutex;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::watch;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// A pipeline stand-in: refuses with the queued errors first, then keeps every record.
    struct Collector {
        records: watch::Sender<Vec<Record>>,
        attempts: watch::Sender<usize>,
        refusals: Mutex<Vec<SubmitError>>,
    }

    impl Collector {
        fn new() -> Arc<Collector> {
            Collector::refusing(Vec::new())
        }

        fn refusing(refusals: Vec<SubmitError>) -> Arc<Collector> {
            Arc::new(Collector {
                records: watch::Sender::new(Vec::new()),
                attempts: watch::Sender::new(0),
                refusals: Mutex::new(refusals),
            })
        }

        async fn wait_for_records(&self, count: usize) -> Vec<Record> {
            let mut seen = self.records.subscribe();
            let waited = tokio::time::timeout(DEADLINE, seen.wait_for(|r| r.len() >= count)).await;
            match waited {
                Ok(Ok(records)) => records.clone(),
                _ => panic!("expected {count} records, got {:?}", *self.records.borrow()),
            }
        }

        async fn wait_for_attempts(&self, count: usize) {
            let mut attempts = self.attempts.subscribe();
            let waited = tokio::time::timeout(DEADLINE, attempts.wait_for(|n| *n >= count)).await;
            assert!(
                matches!(waited, Ok(Ok(_))),
                "expected {count} submit attempts"
            );
        }

        fn bodies(&self) -> Vec<Value> {
            self.records
                .borrow()
                .iter()
                .map(|r| r.body.clone())
                .collect()
        }
    }

    impl Submit for Collector {
        fn submit(&self, records: Vec<Record>) -> SubmitFuture {
            let refusal = {
                let mut refusals = self.refusals.lock().unwrap();
                (!refusals.is_empty()).then(|| refusals.remove(0))
            };
            let result = match refusal {
                Some(error) => Err(error),
                None => {
                    self.records.send_modify(|all| all.extend(records));
                    Ok(())
                }
            };
            self.attempts.send_modify(|n| *n += 1);
            Box::pin(std::future::ready(result))
        }
    }

    fn config(settings: Value) -> SyslogConfig {
        serde_json::from_value(settings).unwrap()
    }

    async fn start_on_loopback(
        settings: Value,
        collector: &Arc<Collector>,
    ) -> (ReceiverHandle, CancellationToken) {
        let mut settings = settings;
        settings["endpoint"] = json!("127.0.0.1:0");
        let shutdown = CancellationToken::new();
        let handle = start(
            "syslog/test".into(),
            config(settings),
            collector.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        (handle, shutdown)
    }

    async fn stop(handle: ReceiverHandle, shutdown: CancellationToken) {
        shutdown.cancel();
        tokio::time::timeout(DEADLINE, handle.task)
            .await
            .expect("receiver did not stop")
            .unwrap();
    }

    /// Waits until the server closes the connection (read returns end of stream).
    async fn wait_closed_by_server(stream: &mut TcpStream) {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("connection stayed open");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "expected the connection closed, read {read:?}"
        );
    }

    fn receiver(format: Format, max_message_bytes: usize) -> Receiver {
        Receiver {
            id: "syslog/test".into(),
            transport: crate::receivers::Transport::Tcp,
            format,
            location: jiff::tz::TimeZone::UTC,
            max_message_bytes,
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            intake: Collector::new(),
        }
    }

    fn received(bytes: &[u8]) -> Received {
        Received {
            frame: Frame {
                bytes: bytes.to_vec(),
                original_len: bytes.len() as u64,
            },
            peer: IpAddr::from([192, 0, 2, 7]),
            // 2026-06-15T12:00:00Z
            observed_unix_nano: 1_781_524_800_000_000_000,
        }
    }

    #[test]
    fn config_defaults_and_human_units() {
        let c = config(json!({"protocol": "tcp", "endpoint": "127.0.0.1:5514"}));
        assert_eq!((c.protocol, c.format), (Protocol::Tcp, Format::Auto));
        assert_eq!(c.max_message_bytes.as_u64(), 65_536);
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.read_timeout, Duration::from_secs(30));
        assert_eq!(c.location, "UTC");
        assert!(c.problems().is_empty());

        let c = config(json!({
            "protocol": "udp", "endpoint": "[::1]:514", "format": "rfc3164",
            "max_message_bytes": "8KiB", "max_connections": 3, "idle_timeout": "1m 30s"
        }));
        assert_eq!((c.protocol, c.format), (Protocol::Udp, Format::Rfc3164));
        assert_eq!(c.max_message_bytes.as_u64(), 8192);
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(
            config(json!({"protocol": "tcp", "endpoint": "h:1", "max_message_bytes": 100}))
                .max_message_bytes
                .as_u64(),
            100
        );
    }

    #[test]
    fn config_rejects_unknown_keys_bad_values_and_unusable_limits() {
        for bad in [
            json!({"protocol": "tcp", "endpoint": "h:1", "port": 514}),
            json!({"protocol": "sctp", "endpoint": "h:1"}),
            json!({"protocol": "tcp", "endpoint": "h:1", "format": "rfc9999"}),
            json!({"protocol": "tcp", "endpoint": "h:1", "idle_timeout": "soon"}),
            json!({"protocol": "tcp"}),
        ] {
            assert!(
                serde_json::from_value::<SyslogConfig>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let c = config(
            json!({"protocol": "tcp", "endpoint": "h:1", "max_message_bytes": 0, "max_connections": 0, "idle_timeout": "0s"}),
        );
        let fields: Vec<String> = c.problems().into_iter().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            ["max_message_bytes", "max_connections", "idle_timeout"]
        );
        let c = config(
            json!({"protocol": "tcp", "endpoint": "h:1", "read_timeout": "0s", "location": "Mars/Olympus"}),
        );
        let fields: Vec<String> = c.problems().into_iter().map(|(field, _)| field).collect();
        assert_eq!(fields, ["read_timeout", "location"]);
    }

    #[test]
    fn rfc5424_message_maps_onto_the_record_as_documented() {
        let r = receiver(Format::Auto, 1024).record_from(&received(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 77 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"][examplePriority@32473 class=\"high\"] \xEF\xBB\xBFAn application event log entry...\n",
        ));
        assert_eq!(r.source, "syslog/test");
        assert_eq!(r.time_unix_nano, 1_065_910_455_003_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_781_524_800_000_000_000);
        assert_eq!(
            (r.severity_number, r.severity_text.as_str()),
            (10, "notice")
        );
        assert_eq!(r.body, json!("An application event log entry..."));
        assert_eq!(
            Value::Object(r.resource),
            json!({"host.name": "mymachine.example.com"})
        );
        assert_eq!(
            Value::Object(r.attributes),
            json!({
                "syslog.format": "rfc5424",
                "syslog.facility": 20,
                "syslog.severity": 5,
                "syslog.app_name": "evntslog",
                "syslog.proc_id": "77",
                "syslog.msg_id": "ID47",
                "syslog.structured_data": {
                    "exampleSDID@32473": {"iut": "3", "eventSource": "Application"},
                    "examplePriority@32473": {"class": "high"}
                },
                "network.peer.address": "192.0.2.7"
            })
        );
        assert!(r.tags.is_empty());
    }

    #[test]
    fn severities_map_onto_the_otlp_scale() {
        // OTLP: DEBUG 5, INFO 9, INFO2 10, WARN 13, ERROR 17, FATAL 21, FATAL2 22, FATAL3 23.
        let expected = [
            (23, "emerg"),
            (22, "alert"),
            (21, "crit"),
            (17, "err"),
            (13, "warning"),
            (10, "notice"),
            (9, "info"),
            (5, "debug"),
        ];
        let r = receiver(Format::Auto, 1024);
        for (code, (number, text)) in expected.into_iter().enumerate() {
            let record = r.record_from(&received(
                format!("<{}>1 - - - - - -", 16 * 8 + code).as_bytes(),
            ));
            assert_eq!(
                (record.severity_number, record.severity_text.as_str()),
                (number, text),
                "severity {code}"
            );
            assert_eq!(record.attributes["syslog.facility"], json!(16));
            assert_eq!(record.body, Value::Null);
        }
    }

    #[test]
    fn repeated_parameter_names_collect_into_an_array() {
        let r = receiver(Format::Auto, 1024)
            .record_from(&received(br#"<13>1 - - - - - [origin ip="192.0.2.1" ip="192.0.2.2"][origin ip="192.0.2.3" software="x"] m"#));
        assert_eq!(
            r.attributes["syslog.structured_data"],
            json!({"origin": {"ip": ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "software": "x"}})
        );
    }

    #[test]
    fn rfc3164_message_without_pri_has_no_severity_and_keeps_its_text() {
        let r = receiver(Format::Auto, 1024).record_from(&received(b"Use the BFG!\r\n"));
        assert_eq!(
            (
                r.severity_number,
                r.severity_text.as_str(),
                r.time_unix_nano
            ),
            (0, "", 0)
        );
        assert_eq!(r.body, json!("Use the BFG!"));
        assert_eq!(r.attributes["syslog.format"], json!("rfc3164"));
        assert!(!r.attributes.contains_key("syslog.facility"));
        assert!(r.resource.is_empty());
    }

    #[test]
    fn malformed_message_is_kept_raw_with_the_reason_and_tag() {
        let r = receiver(Format::Rfc5424, 1024)
            .record_from(&received(b"<13>Oct 11 22:14:15 host su: \xFFx\n"));
        assert_eq!(r.body, json!("<13>Oct 11 22:14:15 host su: \u{FFFD}x"));
        assert_eq!(
            r.attributes["syslog.parse_error"],
            json!(ParseError::MissingVersion.to_string())
        );
        assert_eq!(r.attributes["syslog.invalid_utf8"], json!(true));
        assert_eq!(r.tags, ["unparsed"]);
        assert_eq!(r.severity_number, 0);
    }

    #[test]
    fn truncated_message_is_marked_with_its_original_length() {
        let mut message = received(b"<13>1 - - - - - - abc");
        message.frame.original_len = 70_000;
        let r = receiver(Format::Auto, 21).record_from(&message);
        assert_eq!(r.body, json!("abc"));
        assert_eq!(r.attributes["syslog.truncated"], json!(true));
        assert_eq!(r.attributes["syslog.original_length"], json!(70_000));
    }

    #[tokio::test]
    async fn tcp_line_and_octet_framed_connections_deliver_every_message() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(json!({"protocol": "tcp"}), &collector).await;
        let address = handle.local_addrs[0];

        let mut lines = TcpStream::connect(address).await.unwrap();
        lines.write_all(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n<13>1 - h app - - - second\r\n").await.unwrap();
        lines.shutdown().await.unwrap();
        collector.wait_for_records(2).await;

        let mut counted = TcpStream::connect(address).await.unwrap();
        // rsyslog style: the line feed counted in the frame, a #012 escape inside.
        let message = b"<14>1 - h app - - - multi#012line\n";
        let frame = [format!("{} ", message.len()).into_bytes(), message.to_vec()].concat();
        for byte in &frame {
            counted.write_all(std::slice::from_ref(byte)).await.unwrap();
        }
        counted.shutdown().await.unwrap();
        let records = collector.wait_for_records(3).await;

        assert_eq!(records[0].body, json!("'su root' failed"));
        assert_eq!(records[0].resource["host.name"], json!("mymachine"));
        assert_eq!(records[0].attributes["syslog.app_name"], json!("su"));
        assert_eq!(
            records[0].attributes["network.peer.address"],
            json!("127.0.0.1")
        );
        assert_eq!(records[1].body, json!("second"));
        assert_eq!(records[2].body, json!("multi\nline"));
        assert!(
            records
                .iter()
                .all(|r| r.source == "syslog/test" && r.tags.is_empty())
        );
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_overloaded_batches_are_retried_until_accepted_in_order() {
        let overloaded = || SubmitError::Overloaded {
            retry_after: Duration::from_millis(1),
        };
        let collector = Collector::refusing(vec![
            overloaded(),
            overloaded(),
            SubmitError::Storage("disk full".into()),
        ]);
        let (handle, shutdown) = start_on_loopback(json!({"protocol": "tcp"}), &collector).await;
        let mut stream = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        let sent: Vec<String> = (0..50).map(|i| format!("message {i}")).collect();
        for text in &sent {
            stream
                .write_all(format!("<13>1 - - - - - - {text}\n").as_bytes())
                .await
                .unwrap();
        }
        stream.shutdown().await.unwrap();
        collector.wait_for_records(sent.len()).await;
        assert_eq!(
            collector.bodies(),
            sent.iter().map(|t| json!(t)).collect::<Vec<_>>()
        );
        assert!(*collector.attempts.borrow() >= 4);
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_broken_octet_framing_closes_only_that_connection() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(json!({"protocol": "tcp"}), &collector).await;
        let mut broken = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        broken.write_all(b"9 <13>first then garbage").await.unwrap();
        wait_closed_by_server(&mut broken).await;
        let records = collector.wait_for_records(1).await;
        assert_eq!(records[0].body, json!("first"));

        let mut next = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        next.write_all(b"<13>still serving\n").await.unwrap();
        next.shutdown().await.unwrap();
        assert_eq!(
            collector.wait_for_records(2).await[1].body,
            json!("still serving")
        );
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_oversize_frames_are_truncated_and_the_stream_stays_in_step() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(
            json!({"protocol": "tcp", "max_message_bytes": 16}),
            &collector,
        )
        .await;
        let mut stream = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        let long = format!("<13>{}", "x".repeat(100));
        stream
            .write_all(format!("{} {long}9 <13>after", long.len()).as_bytes())
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let records = collector.wait_for_records(2).await;
        assert_eq!(records[0].body, json!("x".repeat(12)));
        assert_eq!(records[0].attributes["syslog.original_length"], json!(104));
        assert_eq!(records[1].body, json!("after"));
        assert!(!records[1].attributes.contains_key("syslog.truncated"));
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_garbage_is_kept_as_records_and_the_receiver_keeps_serving() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(json!({"protocol": "tcp"}), &collector).await;
        let mut noise = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        // Deterministic noise from a linear congruential generator, starting with a non-digit.
        let mut state: u32 = 0x2545_f491;
        let mut bytes = vec![b'<', 0xff, 0x00];
        bytes.extend((0..4096).map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        }));
        noise.write_all(&bytes).await.unwrap();
        noise.shutdown().await.unwrap();
        wait_closed_by_server(&mut noise).await;

        let mut good = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        good.write_all(b"<13>1 - - - - - - fine\n").await.unwrap();
        good.shutdown().await.unwrap();
        let mut seen = collector.records.subscribe();
        tokio::time::timeout(
            DEADLINE,
            seen.wait_for(|r| r.iter().any(|r| r.body == json!("fine"))),
        )
        .await
        .expect("the receiver stopped serving")
        .unwrap();
        let records = collector.records.borrow().clone();
        let noise_records: Vec<&Record> =
            records.iter().filter(|r| r.body != json!("fine")).collect();
        assert!(!noise_records.is_empty());
        assert!(noise_records.iter().all(|r| r.tags == ["unparsed"] || r.attributes.contains_key("syslog.invalid_utf8")));
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_connections_past_the_limit_are_closed() {
        let collector = Collector::new();
        let (handle, shutdown) =
            start_on_loopback(json!({"protocol": "tcp", "max_connections": 1}), &collector).await;
        let mut first = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        first.write_all(b"<13>held\n").await.unwrap();
        collector.wait_for_records(1).await;
        let mut second = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        wait_closed_by_server(&mut second).await;

        first.write_all(b"<13>first still open\n").await.unwrap();
        assert_eq!(
            collector.wait_for_records(2).await[1].body,
            json!("first still open")
        );
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_idle_connection_is_closed() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(
            json!({"protocol": "tcp", "idle_timeout": "50ms"}),
            &collector,
        )
        .await;
        let mut stream = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        wait_closed_by_server(&mut stream).await;
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn tcp_trickled_message_is_cut_at_read_timeout_although_bytes_keep_coming() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(
            json!({"protocol": "tcp", "idle_timeout": "1h", "read_timeout": "300ms"}),
            &collector,
        )
        .await;
        let mut stream = TcpStream::connect(handle.local_addrs[0]).await.unwrap();
        let started = Instant::now();
        // A byte every 50 ms: an idle timer that restarted on each would never fire.
        let mut closed = false;
        for _ in 0..100 {
            if stream.write_all(b"x").await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(closed, "a trickling sender kept its connection for 5 s");
        assert!(started.elapsed() < Duration::from_secs(3));
        stop(handle, shutdown).await;
    }

    #[tokio::test]
    async fn shutdown_ends_the_receiver_with_connections_open() {
        let collector = Collector::new();
        let (handle, shutdown) = start_on_loopback(json!({"protocol": "tcp"}), &collector).await;
        let address = handle.local_addrs[0];
        let mut open = TcpStream::connect(address).await.unwrap();
        open.write_all(b"<13>before shutdown\n").await.unwrap();
        collector.wait_for_records(1).await;
        stop(handle, shutdown).await;
        wait_closed_by_server(&mut open).await;
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still listening after shutdown"
        );
    }

    #[tokio::test]
    async fn binding_a_used_endpoint_fails_at_start() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = taken.local_addr().unwrap().to_string();
        let cfg = config(json!({"protocol": "tcp", "endpoint": endpoint}));
        let error = start(
            "syslog/tcp".into(),
            cfg,
            Collector::new(),
            CancellationToken::new(),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        assert!(error.to_string().contains(&endpoint), "{error}");
        // A malformed endpoint never gets as far as binding: the config refuses it.
        let error = serde_json::from_value::<SyslogConfig>(
            json!({"protocol": "udp", "endpoint": "not an endpoint"}),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("expected `host:port`"), "{error}");
    }

    #[tokio::test]
    async fn udp_datagrams_become_records_and_refused_ones_are_dropped() {
        let collector = Collector::refusing(vec![SubmitError::Overloaded {
            retry_after: Duration::from_secs(1),
        }]);
        let (handle, shutdown) = start_on_loopback(
            json!({"protocol": "udp", "max_message_bytes": 33}),
            &collector,
        )
        .await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(b"<13>1 - - - - - - dropped", handle.local_addrs[0])
            .await
            .unwrap();
        collector.wait_for_attempts(1).await;
        client
            .send_to(
                b"<13>Oct  1 09:05:07 host app: kept\n",
                handle.local_addrs[0],
            )
            .await
            .unwrap();
        client.send_to(b"\n", handle.local_addrs[0]).await.unwrap();
        client
            .send_to(
                b"<13>1 - - - - - - truncated here and beyond",
                handle.local_addrs[0],
            )
            .await
            .unwrap();
        let records = collector.wait_for_records(2).await;
        assert_eq!(records[0].body, json!("kep"));
        assert_eq!(records[0].attributes["syslog.original_length"], json!(35));
        assert_eq!(records[1].body, json!("truncated here "));
        assert_eq!(records[1].attributes["syslog.original_length"], json!(43));
        assert!(!collector.bodies().contains(&json!("dropped")));
        stop(handle, shutdown).await;
    }
}
