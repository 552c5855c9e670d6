//! `http`: JSON audit events as gateways send them.
//!
//! ```yaml
//! receivers:
//!   http/gateway:
//!     endpoint: 127.0.0.1:8088
//!     path: /v1/events
//!     max_request_body_size: 4MiB
//!     max_records_per_request: 10000     # more events in one request: 413
//!     bearer_token: ${env:GATEWAY_TOKEN}   # optional; without it no auth is asked
//!     read_header_timeout: 10s           # and read_timeout, min_body_rate, idle_timeout,
//!     max_connections: 128               # as every HTTP listener (src/net/listener.rs)
//! ```
//!
//! A request with more than `max_records_per_request` events is refused whole with 413,
//! before its events are built; an event whose stored size (body, attributes and
//! resource, as JSON) is over `service.storage.max_record_size` makes the request a 400
//! naming it, so nothing that reaches the journal can be refused there.
//!
//! `POST` one JSON object, an array of objects, or NDJSON (one object per line), plain
//! or gzip. The request is atomic: if any event is malformed nothing is kept and the 400
//! names each bad line or index, so the client can fix and resend the whole batch. 200
//! answers `{"accepted": n}` once the events are durable; 429/503 carry `Retry-After`.
//!
//! Mapping of an event object onto a record:
//!
//! | event key | record field |
//! |---|---|
//! | `time`, `timestamp`, `@timestamp` | `time`: RFC 3339 string, or Unix time as a number in s, ms, µs or ns (told apart by magnitude) |
//! | `severity_text`, `severity`, `level` | `severity_text`, and `severity_number` from the usual words (`debug` … `fatal`) |
//! | `body` | `body`, any JSON |
//! | `message`, `msg` | `body` when there is no `body` |
//! | `attributes` (object) | merged into `attributes` |
//! | `resource` (object) | `resource` |
//! | `trace_id`, `span_id` | the ids, when they are hex of the right length |
//! | anything else | `attributes.<key>`, value kept as JSON |
//!
//! So a gateway's `{"action": "login.failed", "user_id": "u1", "ip": "10.0.0.7"}`
//! becomes `attributes.action`, `attributes.user_id`, `attributes.ip`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{Limits, Transport, count_accepted, count_refused, refusal_reason};
use crate::component::{Intake, ReceiverHandle};
use crate::config::{component::Endpoint, secret::Secret};
use crate::event::{Record, json_safe, now_unix_nano, parse_time};
use crate::net::listener::ListenerLimits;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub endpoint: Endpoint,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_max_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_request_body_size: bytesize::ByteSize,
    #[serde(default = "super::default_max_records_per_request")]
    pub max_records_per_request: usize,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_read_header_timeout",
        with = "humantime_serde"
    )]
    pub read_header_timeout: std::time::Duration,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_read_timeout",
        with = "humantime_serde"
    )]
    pub read_timeout: std::time::Duration,
    #[serde(default = "crate::net::listener::default_min_body_rate")]
    #[schemars(with = "crate::config::schema::Size")]
    pub min_body_rate: bytesize::ByteSize,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(
        default = "crate::net::listener::default_idle_timeout",
        with = "humantime_serde"
    )]
    pub idle_timeout: std::time::Duration,
    #[serde(default = "crate::net::listener::default_max_connections")]
    pub max_connections: usize,
}

fn default_path() -> String {
    "/v1/events".into()
}
fn default_max_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(4)
}

impl HttpConfig {
    pub fn listener_limits(&self) -> ListenerLimits {
        ListenerLimits {
            read_header_timeout: self.read_header_timeout,
            read_timeout: self.read_timeout,
            min_body_rate: self.min_body_rate,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }

    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = self.listener_limits().problems();
        if self.max_records_per_request == 0 {
            out.push((
                "max_records_per_request".into(),
                "must be at least 1".into(),
            ));
        }
        if !self.path.starts_with('/') || self.path.contains(['{', '}', '*']) {
            out.push((
                "path".into(),
                "a path starts with `/` and has no `{`, `}` or `*`".into(),
            ));
        }
        if self
            .bearer_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            out.push((
                "bearer_token".into(),
                "a bearer token has at least 16 characters".into(),
            ));
        }
        out
    }
}

/// The most events one request may name as malformed before the list is cut.
const MAX_REPORTED: usize = 10;

#[derive(Clone)]
struct HttpState {
    id: String,
    intake: Intake,
    max_body: usize,
    max_record_bytes: usize,
    max_records: usize,
    bearer: Option<Secret>,
}

pub async fn start(
    id: String,
    cfg: HttpConfig,
    intake: Intake,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<ReceiverHandle> {
    let listener = crate::net::bind(&id, cfg.endpoint.as_str()).await?;
    let addr = listener.local_addr()?;
    let max_body = cfg.max_request_body_size.as_u64() as usize;
    let state = HttpState {
        id: id.clone(),
        intake,
        max_body,
        max_record_bytes: limits.max_record_bytes,
        max_records: cfg.max_records_per_request,
        bearer: cfg.bearer_token.clone(),
    };
    let app = axum::Router::new()
        .route(&cfg.path, axum::routing::post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    let task =
        crate::net::listener::serve(id.clone(), listener, app, cfg.listener_limits(), shutdown);
    tracing::info!(receiver = %id, %addr, path = %cfg.path, "HTTP JSON receiver listening");
    Ok(ReceiverHandle {
        id,
        local_addrs: vec![addr],
        task,
    })
}

fn refuse(status: StatusCode, message: impl Into<String>, problems: Vec<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if !problems.is_empty() {
        body["problems"] = json!(problems);
    }
    (status, axum::Json(body)).into_response()
}

async fn receive(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let id = &state.id;
    if let Some(token) = &state.bearer {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            count_refused(id, Transport::Http, "unauthorized", 1);
            let mut r = refuse(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
                Vec::new(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    let body = match super::decode_body(&headers, body, state.max_body) {
        Ok(b) => b,
        Err(e) => {
            count_refused(id, Transport::Http, e.reason(), 1);
            return refuse(e.status(), e.to_string(), Vec::new());
        }
    };
    let events = match parse_events(&body, state.max_records) {
        Ok(events) => events,
        Err(Refusal::TooMany) => {
            count_refused(id, Transport::Http, "too_many_records", 1);
            let limit = state.max_records;
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request holds more than max_records_per_request ({limit}) events; nothing was kept: send them in smaller requests"
                ),
                Vec::new(),
            );
        }
        Err(Refusal::Malformed(problems)) => {
            count_refused(id, Transport::Http, "malformed", 1);
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed events; nothing was kept",
                problems,
            );
        }
    };
    let now = now_unix_nano();
    let mut records = Vec::with_capacity(events.len());
    let mut problems = Vec::new();
    let (mut malformed, mut too_large) = (0, 0);
    for (where_, event) in events {
        let problem = match to_record(id, event, now) {
            Ok(r) => match oversized(&r, state.max_record_bytes) {
                None => {
                    records.push(r);
                    continue;
                }
                Some(p) => {
                    too_large += 1;
                    p
                }
            },
            Err(p) => {
                malformed += 1;
                p
            }
        };
        if problems.len() < MAX_REPORTED {
            problems.push(format!("{where_}: {problem}"));
        }
    }
    if malformed + too_large > 0 {
        // The request is taken whole or not at all; an event too large alone is a 413.
        let (status, reason, what) = if malformed == 0 {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                "events too large",
            )
        } else {
            (StatusCode::BAD_REQUEST, "malformed", "malformed events")
        };
        count_refused(
            id,
            Transport::Http,
            reason,
            records.len() + malformed + too_large,
        );
        return refuse(status, format!("{what}; nothing was kept"), problems);
    }
    let n = records.len();
    if n == 0 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body holds no event",
            Vec::new(),
        );
    }
    match state.intake.submit(records).await {
        Ok(()) => {
            count_accepted(id, Transport::Http, n);
            (StatusCode::OK, axum::Json(json!({ "accepted": n }))).into_response()
        }
        Err(e) => {
            count_refused(id, Transport::Http, refusal_reason(&e), n);
            let (status, headers, message) = super::submit_error_response(&e);
            (status, headers, axum::Json(json!({ "error": message }))).into_response()
        }
    }
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= (x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// An event and where it stood in the body (`line 3`, `[2]`), for error messages.
type LocatedEvent = (String, Map<String, Value>);

/// Why a body's events were refused.
#[derive(Debug)]
enum Refusal {
    /// More events than `max_records_per_request`.
    TooMany,
    /// The problems found, at most [`MAX_REPORTED`].
    Malformed(Vec<String>),
}

impl super::ReceiverSettings for HttpConfig {
    fn problems(&self) -> Vec<(String, String)> {
        HttpConfig::problems(self)
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
        Box::pin(async move { Ok(vec![start(id, config, intake, limits, shutdown).await?]) })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
impl Refusal {
    fn problems(self) -> Vec<String> {
        match self {
            Refusal::Malformed(problems) => problems,
            Refusal::TooMany => vec!["too many".into()],
        }
    }
}

impl From<Vec<String>> for Refusal {
    fn from(problems: Vec<String>) -> Refusal {
        Refusal::Malformed(problems)
    }
}

/// Splits a body into events: an object, an array of objects, or NDJSON; more than
/// `max_events` are refused before they are all built.
fn parse_events(body: &[u8], max_events: usize) -> Result<Vec<LocatedEvent>, Refusal> {
    let text = std::str::from_utf8(body)
        .map_err(|e| vec![format!("the body is not valid UTF-8 ({e})")])?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(vec!["the body is empty".to_string()].into());
    }
    if trimmed.starts_with('[') {
        let items = bounded_array(text, max_events)?;
        let mut problems = Vec::new();
        let mut events = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::Object(m) => events.push((format!("[{i}]"), m)),
                other if problems.len() < MAX_REPORTED => problems.push(format!(
                    "[{i}]: an event is a JSON object, not {}",
                    kind(&other)
                )),
                _ => {}
            }
        }
        return if problems.is_empty() {
            Ok(events)
        } else {
            Err(problems.into())
        };
    }
    // One object spanning lines, or NDJSON: try the whole body first.
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
        return Ok(vec![("event".into(), m)]);
    }
    let mut problems = Vec::new();
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if events.len() + problems.len() >= max_events {
            return Err(Refusal::TooMany);
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => events.push((format!("line {}", i + 1), m)),
            Ok(other) if problems.len() < MAX_REPORTED => problems.push(format!(
                "line {}: an event is a JSON object, not {}",
                i + 1,
                kind(&other)
            )),
            Err(e) if problems.len() < MAX_REPORTED => {
                problems.push(format!("line {}: {e}", i + 1))
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(events)
    } else {
        Err(problems.into())
    }
}

/// A JSON array of at most `max` items, refused as soon as one more is seen, so that a
/// body of tiny items never becomes a vector of a million values.
fn bounded_array(text: &str, max: usize) -> Result<Vec<Value>, Refusal> {
    use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
    use std::cell::Cell;

    struct Bounded<'a> {
        max: usize,
        exceeded: &'a Cell<bool>,
    }
    impl<'de> Visitor<'de> for Bounded<'_> {
        type Value = Vec<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {} events", self.max)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Value>()? {
                if items.len() == self.max {
                    self.exceeded.set(true);
                    return Err(serde::de::Error::custom("too many events"));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    impl<'de> DeserializeSeed<'de> for Bounded<'_> {
        type Value = Vec<Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
            d.deserialize_seq(self)
        }
    }

    let exceeded = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Bounded {
        max,
        exceeded: &exceeded,
    }
    .deserialize(&mut de)
    .and_then(|items| de.end().map(|()| items));
    match parsed {
        Ok(items) => Ok(items),
        Err(_) if exceeded.get() => Err(Refusal::TooMany),
        Err(e) => Err(vec![format!("invalid JSON array: {e}")].into()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Maps one event object onto a record (see the table in the module docs).
fn to_record(source: &str, event: Map<String, Value>, now: u64) -> Result<Record, String> {
    let mut r = Record {
        observed_time_unix_nano: now,
        source: source.to_string(),
        ..Record::default()
    };
    let mut message = None;
    for (key, value) in event {
        let value = json_safe(value);
        match key.as_str() {
            "time" | "timestamp" | "@timestamp" => {
                r.time_unix_nano = event_time(&value).ok_or_else(|| {
                    format!("`{key}` is neither an RFC 3339 time nor a Unix timestamp")
                })?
            }
            "severity_text" | "severity" | "level" => match value {
                Value::String(s) => {
                    r.severity_number = severity_number(&s);
                    r.severity_text = s;
                }
                _ => return Err(format!("`{key}` must be a string")),
            },
            "body" => r.body = value,
            "message" | "msg" => message = Some(value),
            "attributes" => match value {
                Value::Object(m) => r.attributes.extend(m),
                _ => return Err("`attributes` must be an object".into()),
            },
            "resource" => match value {
                Value::Object(m) => r.resource = m,
                _ => return Err("`resource` must be an object".into()),
            },
            "trace_id" | "span_id" => {
                let len = if key == "trace_id" { 32 } else { 16 };
                let id = value
                    .as_str()
                    .filter(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()));
                match id {
                    Some(s) => {
                        let s = s.to_ascii_lowercase();
                        if key == "trace_id" {
                            r.trace_id = Some(s)
                        } else {
                            r.span_id = Some(s)
                        }
                    }
                    None => return Err(format!("`{key}` must be {len} hex digits")),
                }
            }
            _ => {
                r.attributes.insert(key, value);
            }
        }
    }
    if r.body.is_null() {
        r.body = message.unwrap_or(Value::Null);
    } else if let Some(m) = message {
        r.attributes.insert("message".into(), m);
    }
    Ok(r)
}

/// The size check, apart from the others: an event too large is answered 413.
fn oversized(record: &Record, max_bytes: usize) -> Option<String> {
    let size = super::stored_size(record);
    (size > max_bytes).then(|| format!("the event is {size} bytes; the limit is {max_bytes}"))
}

/// RFC 3339, or a Unix timestamp whose unit is read from its size: seconds up to
/// 10^11 (year 5138), milliseconds up to 10^14, microseconds up to 10^17, else ns.
fn event_time(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => parse_time(s),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if !(0.0..1.9e19).contains(&f) {
                return None;
            }
            let scale: u64 = if f < 1e11 {
                1_000_000_000
            } else if f < 1e14 {
                1_000_000
            } else if f < 1e17 {
                1_000
            } else {
                1
            };
            // Integers scale exactly; only fractional inputs go through f64.
            match n.as_u64() {
                Some(i) => i.checked_mul(scale),
                None => Some((f * scale as f64).round() as u64),
            }
        }
        _ => None,
    }
}

/// OTLP severity numbers for the words logs use.
fn severity_number(text: &str) -> i32 {
    match text.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" | "information" | "notice" => 9,
        "warn" | "warning" => 13,
        "error" | "err" => 17,
        "critical" | "crit" | "alert" | "emergency" | "emerg" | "fatal" => 21,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_onto_records_as_documented() {
        let event = json!({
            "timestamp": "2026-11-23T10:00:00.5+01:00", "level": "WARN", "message": "denied",
            "action": "login.failed", "user_id": "u1", "attributes": {"ip": "10.0.0.7"},
            "resource": {"service.name": "gw"}, "trace_id": "5B8EFFF798038103D269B633813FC60C",
            "big": 9007199254740993u64
        });
        let Value::Object(m) = event else {
            unreachable!()
        };
        let r = to_record("http/gateway", m, 7).unwrap();
        assert_eq!(r.time_unix_nano, 1_795_424_400_500_000_000);
        assert_eq!((r.severity_text.as_str(), r.severity_number), ("WARN", 13));
        assert_eq!(r.body, json!("denied"));
        assert_eq!(
            Value::Object(r.attributes),
            json!({"action": "login.failed", "user_id": "u1", "ip": "10.0.0.7", "big": "9007199254740993"})
        );
        assert_eq!(r.resource["service.name"], json!("gw"));
        assert_eq!(
            r.trace_id.as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(r.observed_time_unix_nano, 7);
    }

    #[test]
    fn numeric_times_are_read_by_magnitude() {
        let t = 1_795_424_400u64;
        assert_eq!(event_time(&json!(t)), Some(t * 1_000_000_000));
        assert_eq!(
            event_time(&json!(t * 1000 + 5)),
            Some(t * 1_000_000_000 + 5_000_000)
        );
        assert_eq!(event_time(&json!(t * 1_000_000)), Some(t * 1_000_000_000));
        assert_eq!(
            event_time(&json!(t * 1_000_000_000)),
            Some(t * 1_000_000_000)
        );
        assert_eq!(event_time(&json!(1.5)), Some(1_500_000_000));
        assert_eq!(event_time(&json!(-5)), None);
        assert_eq!(event_time(&json!("yesterday")), None);
    }

    #[test]
    fn bodies_split_into_events_and_name_bad_lines() {
        assert_eq!(parse_events(br#"{"a":1}"#, 100).unwrap().len(), 1);
        assert_eq!(parse_events(b"{\n \"a\": 1\n}", 100).unwrap().len(), 1);
        assert_eq!(parse_events(br#"[{"a":1},{"b":2}]"#, 100).unwrap().len(), 2);
        let events = parse_events(b"{\"a\":1}\n\n{\"b\":2}\n", 100).unwrap();
        assert_eq!(events[1].0, "line 3");
        let problems = parse_events(b"{\"a\":1}\n{oops\n[1]\n", 100)
            .unwrap_err()
            .problems();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("line 2: "), "{problems:?}");
        assert!(problems[1].contains("line 3: an event is a JSON object, not an array"));
        assert!(
            parse_events(br#"[1, {"a":2}]"#, 100)
                .unwrap_err()
                .problems()[0]
                .starts_with("[0]")
        );
        assert!(parse_events(b"\xff\xfe", 100).unwrap_err().problems()[0].contains("UTF-8"));
        assert!(parse_events(b"  ", 100).is_err());
    }

    #[test]
    fn more_events_than_the_limit_are_refused_in_every_shape() {
        let ndjson = "{}\n".repeat(4);
        assert_eq!(parse_events(ndjson.as_bytes(), 4).unwrap().len(), 4);
        assert!(matches!(
            parse_events(ndjson.as_bytes(), 3),
            Err(Refusal::TooMany)
        ));
        assert_eq!(parse_events(b"[{},{},{}]", 3).unwrap().len(), 3);
        assert!(matches!(
            parse_events(b"[{},{},{},{}]", 3),
            Err(Refusal::TooMany)
        ));
        // A malformed array is still named as such, not as too long.
        assert!(matches!(
            parse_events(b"[{},{}", 3),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn the_resource_counts_towards_the_record_size() {
        let Value::Object(m) = json!({"resource": {"blob": "x".repeat(200)}, "a": 1}) else {
            unreachable!()
        };
        let record = to_record("http/gateway", m, 7).unwrap();
        let problem = oversized(&record, 100).unwrap();
        assert!(problem.contains("the limit is 100"), "{problem}");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-12", b"secret-token-123"));
        assert!(!constant_time_eq(b"", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-124", b"secret-token-123"));
    }
}
