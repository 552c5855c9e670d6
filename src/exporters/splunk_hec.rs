//! `splunk_hec`: sealed entries to Splunk's HTTP Event Collector.
//!
//! ```yaml
//! exporters:
//!   splunk_hec/siem:
//!     endpoint: https://splunk.example.com:8088   # the HEC base URL
//!     token: ${env:SPLUNK_HEC_TOKEN}
//!     index: audit              # default: the token's default index
//!     source: gateway-audit     # default: vellum:<stream>
//!     sourcetype: _json         # the default; Splunk extracts the event's JSON fields
//!     host: gw-1                # default: the record's resource `host.name`, else this machine
//!     compression: gzip         # or none
//!     indexer_ack: true         # delivered only once Splunk says the events are indexed
//!     ack_poll_interval: 1s
//!     max_request_size: 1MiB    # uncompressed; a larger batch is posted in several requests
//!     headers: { X-Forwarded-For-Tenant: acme }   # extra headers; values may be ${env:…}
//!     tls: { ca_file: /etc/vellum/splunk-ca.pem, cert_file: /etc/vellum/agent.crt, key_file: /etc/vellum/agent.key }
//!     timeout: 60s              # delivery setting; it also bounds the wait for the ack
//! ```
//!
//! Each entry becomes one HEC event, and a batch's events are posted concatenated to
//! `/services/collector/event` with `Authorization: Splunk <token>`:
//!
//! ```json
//! {"time":1700000000.123456,"host":"gw-1","source":"vellum:logs/audit","sourcetype":"_json",
//!  "index":"audit","event":{…the sealed entry…},
//!  "fields":{"vellum_stream":"logs/audit","vellum_seq":"42","vellum_hash":"9f…"}}
//! ```
//!
//! `event` is the sealed entry byte for byte, so an event found in Splunk can be checked
//! against the chain. `fields` are indexed fields (HEC wants string values): a search can
//! de-duplicate on `vellum_stream` + `vellum_seq` the events a retry sent twice. `time` is
//! the record's time in seconds with microseconds. A signed checkpoint becomes an event
//! `{"checkpoint":{"stream","size","note"}}` with sourcetype `vellum:checkpoint` and the
//! indexed fields `vellum_stream`, `vellum_checkpoint_size`.
//!
//! **Indexer acknowledgement.** With `indexer_ack: true` every request carries the header
//! `X-Splunk-Request-Channel: <GUID>` (one random channel per exporter start). Each post
//! answers `{"text":"Success","code":0,"ackId":N}`; the exporter then posts
//! `{"acks":[N,…]}` to `/services/collector/ack` every `ack_poll_interval` until Splunk
//! answers `{"acks":{"N":true}}`. Only then is the request delivered and the cursor
//! moves past it. The delivery `timeout` bounds that wait: an ack that never comes (an
//! indexer lost the data) makes the request go again, so Splunk may hold it twice, which
//! the indexed fields resolve. The driver retries only the request that failed: those
//! before it were acknowledged (or, without acks, answered 200) and are not sent again.
//!
//! **Answers.** HEC's JSON answer `{"text","code"}` decides, as Splunk documents its codes;
//! an answer without a known code falls back to the shared HTTP table (`http` module).
//!
//! | code | HTTP | text | outcome |
//! |---|---|---|---|
//! | 0 | 200 | Success | delivered (after the ack when `indexer_ack`) |
//! | 1 | 403 | Token disabled | unauthorized: retried, `/readyz` names the exporter |
//! | 2 | 401 | Token is required | unauthorized: retried, `/readyz` names the exporter |
//! | 3 | 401 | Invalid authorization | unauthorized: retried, `/readyz` names the exporter |
//! | 4 | 403 | Invalid token | unauthorized: retried, `/readyz` names the exporter |
//! | 5 | 400 | No data | permanent |
//! | 6 | 400 | Invalid data format | permanent |
//! | 7 | 400 | Incorrect index | permanent: the token may not write to `index` |
//! | 8 | 500 | Internal server error | retryable |
//! | 9 | 503 | Server is busy | retryable |
//! | 10 | 400 | Data channel is missing | permanent: the token wants acks, set `indexer_ack: true` |
//! | 11 | 400 | Invalid data channel | permanent |
//! | 12 | 400 | Event field is required | permanent |
//! | 13 | 400 | Event field cannot be blank | permanent |
//! | 14 | 400 | ACK is disabled | permanent: set `indexer_ack: false` or enable acks on the token |
//! | 15 | 400 | Error in handling indexed fields | permanent |
//! | 16 | 400 | Query string authorization is not enabled | permanent |
//! | 17 | 200 | HEC is healthy | delivered |
//! | 18 | 503 | HEC is unhealthy, queues are full | retryable |
//! | 19 | 503 | HEC is unhealthy, ack service unavailable | retryable |
//! | 20 | 503 | HEC is unhealthy, queues are full, ack service unavailable | retryable |
//! | 21 | 400 | Invalid token | unauthorized: retried, `/readyz` names the exporter |
//! | 22 | 400 | Token disabled | unauthorized: retried, `/readyz` names the exporter |
//! | 23 | 503 | Server is shutting down | retryable |
//! | 24 | 200 | HEC queue is approaching its capacity limit | delivered |
//! | 25 | 200 | HEC ACK is approaching its capacity limit | delivered |
//! | 26 | 429 | HEC queue is at capacity | retryable |
//! | 27 | 429 | HEC ACK channel is at capacity | retryable |
//!
//! A `Retry-After` on a retryable answer sets the least wait. With `indexer_ack`, a
//! success without an `ackId` is permanent: the token has acks off, and nothing could
//! ever confirm the batch.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use super::http::{
    self, Answer, ClientTls, Compression, EntryHead, Headers, Secret, push_json_str,
};
use super::{ExportError, Exporter, ExporterContext, Item};

const CHANNEL_HEADER: &str = "x-splunk-request-channel";

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// The HEC base URL, `https://host:8088`; `/services/collector/…` is added.
    pub endpoint: String,
    pub token: Secret,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub indexer_ack: bool,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_ack_poll_interval", with = "humantime_serde")]
    pub ack_poll_interval: Duration,
    #[serde(default = "default_max_request_size")]
    #[schemars(with = "crate::config::schema::Size")]
    pub max_request_size: bytesize::ByteSize,
    /// Extra headers; `Authorization`, the channel and the body's headers are the
    /// exporter's own.
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub tls: ClientTls,
}

/// The headers the exporter sets itself; configured `headers` may not override them.
const RESERVED: [&str; 6] = [
    "authorization",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    CHANNEL_HEADER,
];

fn default_sourcetype() -> String {
    "_json".into()
}
fn default_ack_poll_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_request_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(1)
}

impl SplunkHecConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = http::url_problem(&self.endpoint) {
            out.push(("endpoint".into(), p));
        }
        if self.token.expose().trim().is_empty() {
            out.push(("token".into(), "give the HEC token".into()));
        } else if HeaderValue::from_str(&format!("Splunk {}", self.token.expose())).is_err() {
            out.push((
                "token".into(),
                "holds characters a header cannot carry".into(),
            ));
        }
        for (key, value) in [
            ("index", &self.index),
            ("source", &self.source),
            ("host", &self.host),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                out.push((key.into(), "must not be empty; leave it out instead".into()));
            }
        }
        if self.sourcetype.trim().is_empty() {
            out.push(("sourcetype".into(), "must not be empty".into()));
        }
        if self.ack_poll_interval < Duration::from_millis(10) {
            out.push(("ack_poll_interval".into(), "must be at least 10ms".into()));
        }
        if self.max_request_size.as_u64() < 1024 {
            out.push(("max_request_size".into(), "must be at least 1KiB".into()));
        }
        out.extend(self.headers.problems("headers", &RESERVED));
        out.extend(self.tls.problems("tls", http::url_scheme(&self.endpoint)));
        out
    }
}

/// HEC's base URL without any `/services/collector…` the user may have included.
fn base_url(endpoint: &str) -> &str {
    let trimmed = endpoint.trim_end_matches('/');
    trimmed
        .strip_suffix("/services/collector/event")
        .or_else(|| trimmed.strip_suffix("/services/collector"))
        .unwrap_or(trimmed)
}

/// What a HEC status code means for the batch (module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Retry,
    /// The token is missing, wrong or disabled: an operator's fix, not the records'.
    Unauthorized,
    Refuse,
}

fn verdict(code: i64) -> Option<Verdict> {
    match code {
        0 | 17 | 24 | 25 => Some(Verdict::Accepted),
        8 | 9 | 18 | 19 | 20 | 23 | 26 | 27 => Some(Verdict::Retry),
        1..=4 | 21 | 22 => Some(Verdict::Unauthorized),
        5..=7 | 10..=16 => Some(Verdict::Refuse),
        _ => None,
    }
}

/// What the operator can do about a code that refuses every batch.
fn hint(code: i64) -> &'static str {
    match code {
        7 => " (the token may not write to the configured index)",
        10 => " (the token requires indexer acknowledgement: set indexer_ack: true)",
        14 => {
            " (the token has indexer acknowledgement off: set indexer_ack: false or enable it on the token)"
        }
        1 | 2 | 3 | 4 | 21 | 22 => " (check the token)",
        _ => "",
    }
}

#[derive(Debug, Default, Deserialize)]
struct Reply {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(rename = "ackId", default)]
    ack_id: Option<u64>,
}

/// Reads a HEC answer: its code when it has a known one, else the HTTP status.
fn judge(answer: &Answer, now: SystemTime) -> Result<Reply, ExportError> {
    let reply: Option<Reply> = serde_json::from_slice(&answer.body).ok();
    let known = reply
        .as_ref()
        .and_then(|r| r.code)
        .and_then(|c| Some((c, verdict(c)?)))
        // A success code on an error status is not a success.
        .filter(|(_, v)| *v != Verdict::Accepted || answer.status.is_success());
    let Some((code, v)) = known else {
        http::classify(answer, now)?;
        return Ok(reply.unwrap_or_default());
    };
    let text = reply.as_ref().map_or("", |r| r.text.as_str());
    let message = format!("HEC code {code} \"{text}\" ({})", answer.status);
    match v {
        Verdict::Accepted => Ok(reply.unwrap_or_default()),
        Verdict::Retry => Err(ExportError::Retryable {
            message,
            retry_after: http::retry_after(&answer.headers, now),
        }),
        Verdict::Unauthorized => Err(ExportError::Unauthorized(format!(
            "{message}{}",
            hint(code)
        ))),
        Verdict::Refuse => Err(ExportError::Permanent(format!("{message}{}", hint(code)))),
    }
}

/// One request's worth of events.
/// The envelope values that are the same for every event, as JSON.
struct Envelope {
    host: Option<Vec<u8>>,
    local_host: Vec<u8>,
    source: Vec<u8>,
    sourcetype: Vec<u8>,
    index: Option<Vec<u8>>,
}

fn json_str(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out
}

impl Envelope {
    fn new(cfg: &SplunkHecConfig, stream: &str) -> Envelope {
        Envelope {
            host: cfg.host.as_deref().map(json_str),
            local_host: json_str(&http::local_hostname()),
            source: json_str(
                cfg.source
                    .clone()
                    .unwrap_or_else(|| format!("vellum:{stream}"))
                    .as_str(),
            ),
            sourcetype: json_str(&cfg.sourcetype),
            index: cfg.index.as_deref().map(json_str),
        }
    }

    fn push_common(&self, out: &mut Vec<u8>, host: Option<&str>, sourcetype: &[u8]) {
        out.extend_from_slice(b"\"host\":");
        match (&self.host, host) {
            (Some(configured), _) => out.extend_from_slice(configured),
            (None, Some(h)) => push_json_str(out, h),
            (None, None) => out.extend_from_slice(&self.local_host),
        }
        out.extend_from_slice(b",\"source\":");
        out.extend_from_slice(&self.source);
        out.extend_from_slice(b",\"sourcetype\":");
        out.extend_from_slice(sourcetype);
        if let Some(index) = &self.index {
            out.extend_from_slice(b",\"index\":");
            out.extend_from_slice(index);
        }
    }

    /// Appends one entry's event.
    fn push_entry(&self, out: &mut Vec<u8>, head: &EntryHead<'_>, line: &[u8]) {
        out.push(b'{');
        if let Some(ns) = head.time_unix_nano() {
            let (secs, micros) = (ns / 1_000_000_000, ns % 1_000_000_000 / 1_000);
            out.extend_from_slice(format!("\"time\":{secs}.{micros:06},").as_bytes());
        }
        self.push_common(out, head.host_name(), &self.sourcetype);
        out.extend_from_slice(b",\"event\":");
        out.extend_from_slice(line);
        out.extend_from_slice(b",\"fields\":{\"vellum_stream\":");
        push_json_str(out, &head.stream);
        out.extend_from_slice(
            format!(",\"vellum_seq\":\"{}\",\"vellum_hash\":", head.seq).as_bytes(),
        );
        push_json_str(out, &head.hash);
        out.extend_from_slice(b"}}\n");
    }

    fn push_checkpoint(&self, out: &mut Vec<u8>, stream: &str, size: u64, note: &str) {
        out.push(b'{');
        self.push_common(out, None, b"\"vellum:checkpoint\"");
        out.extend_from_slice(b",\"event\":");
        let event =
            serde_json::json!({"checkpoint": {"stream": stream, "size": size, "note": note}});
        out.extend_from_slice(event.to_string().as_bytes());
        out.extend_from_slice(b",\"fields\":{\"vellum_stream\":");
        push_json_str(out, stream);
        out.extend_from_slice(format!(",\"vellum_checkpoint_size\":\"{size}\"}}}}\n").as_bytes());
    }
}

pub struct SplunkHecExporter {
    id: String,
    stream: String,
    client: reqwest::Client,
    event_url: reqwest::Url,
    ack_url: reqwest::Url,
    authorization: HeaderValue,
    headers: HeaderMap,
    channel: HeaderValue,
    envelope: Envelope,
    compression: Compression,
    indexer_ack: bool,
    ack_poll_interval: Duration,
    max_request_bytes: usize,
}

impl SplunkHecExporter {
    pub fn new(
        cfg: &SplunkHecConfig,
        context: &ExporterContext,
    ) -> Result<SplunkHecExporter, ExportError> {
        let base = base_url(&cfg.endpoint);
        let channel = HeaderValue::from_str(&new_channel())
            .map_err(|_| ExportError::Permanent("cannot make a HEC channel id".into()))?;
        Ok(SplunkHecExporter {
            id: context.id.clone(),
            stream: context.stream.clone(),
            client: http::client(&cfg.tls)?,
            event_url: http::parse_url(&format!("{base}/services/collector/event"))?,
            ack_url: http::parse_url(&format!("{base}/services/collector/ack"))?,
            authorization: http::sensitive(&format!("Splunk {}", cfg.token.expose()))?,
            headers: cfg.headers.to_header_map()?,
            channel,
            envelope: Envelope::new(cfg, &context.stream),
            compression: cfg.compression,
            indexer_ack: cfg.indexer_ack,
            ack_poll_interval: cfg.ack_poll_interval,
            max_request_bytes: cfg.max_request_size.as_u64() as usize,
        })
    }

    /// The body of one request: the events of the leading items, as many as fit in
    /// `max_request_bytes` (a single larger event goes alone), and how many items it holds.
    fn first_request(&self, batch: &[Item]) -> Result<(Vec<u8>, usize), ExportError> {
        let mut body = Vec::new();
        for (taken, item) in batch.iter().enumerate() {
            let start = body.len();
            match item {
                Item::Entry { index, line, .. } => {
                    let head = EntryHead::parse(line, *index)?;
                    self.envelope.push_entry(&mut body, &head, line);
                }
                Item::Checkpoint { size, note, .. } => {
                    self.envelope
                        .push_checkpoint(&mut body, &self.stream, *size, note);
                }
            }
            if body.len() > self.max_request_bytes && start > 0 {
                body.truncate(start);
                return Ok((body, taken));
            }
        }
        Ok((body, batch.len()))
    }

    fn request(&self, url: &reqwest::Url) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(url.clone())
            .headers(self.headers.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json");
        if self.indexer_ack {
            request = request.header(
                HeaderName::from_static(CHANNEL_HEADER),
                self.channel.clone(),
            );
        }
        request
    }

    /// Posts one request and, with `indexer_ack`, waits until Splunk has indexed it.
    async fn deliver(&mut self, batch: &[Item]) -> Result<usize, ExportError> {
        let (body, items) = self.first_request(batch)?;
        if items == 0 {
            return Ok(0);
        }
        let request = http::with_body(self.request(&self.event_url), body, self.compression);
        let answer = http::send(&self.id, request).await?;
        let reply = judge(&answer, SystemTime::now())?;
        if !self.indexer_ack {
            return Ok(items);
        }
        match reply.ack_id {
            Some(ack) => {
                self.wait_for_ack(ack).await?;
                Ok(items)
            }
            None => Err(ExportError::Permanent(format!(
                "HEC accepted the events but gave no ackId ({}): the token has indexer acknowledgement off; set indexer_ack: false or enable it on the token",
                http::describe(&answer)
            ))),
        }
    }

    /// Polls `/services/collector/ack` until the request is indexed; the driver's
    /// delivery timeout bounds the wait.
    async fn wait_for_ack(&self, ack: u64) -> Result<(), ExportError> {
        let body = serde_json::to_vec(&serde_json::json!({ "acks": [ack] }))
            .map_err(|e| ExportError::Permanent(e.to_string()))?;
        loop {
            tokio::time::sleep(self.ack_poll_interval).await;
            let request = self.request(&self.ack_url).body(body.clone());
            let answer = http::send(&self.id, request).await?;
            judge(&answer, SystemTime::now())?;
            let acks = read_acks(&answer.body)?;
            if acks.get(ack.to_string().as_str()) == Some(&Value::Bool(true)) {
                return Ok(());
            }
        }
    }
}

/// The `acks` object of an ack answer: `{"acks":{"0":true,"1":false}}`.
fn read_acks(body: &[u8]) -> Result<serde_json::Map<String, Value>, ExportError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut m)) => match m.remove("acks") {
            Some(Value::Object(acks)) => Ok(acks),
            _ => Err(ExportError::retryable(format!(
                "HEC ack answer without an `acks` object: {}",
                http::excerpt(body)
            ))),
        },
        _ => Err(ExportError::retryable(format!(
            "HEC ack answer is not JSON: {}",
            http::excerpt(body)
        ))),
    }
}

/// A random (version 4) GUID, the form HEC wants for a channel.
fn new_channel() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Unique enough for a channel: the time and the process.
        let now = crate::event::now_unix_nano().to_le_bytes();
        b[..8].copy_from_slice(&now);
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Exporter for SplunkHecExporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>> {
        Box::pin(self.deliver(batch))
    }
}

impl super::ExporterSettings for SplunkHecConfig {
    fn problems(&self) -> Vec<(String, String)> {
        SplunkHecConfig::problems(self)
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::sink()
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(SplunkHecExporter::new(self, context)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    const ENTRY: &str = r#"{"attributes":{},"body":"login failed","hash":"aa11","prev":"0000","resource":{"host.name":"gw-7"},"seq":42,"source":"http/gateway","stream":"logs/audit","time":"2023-11-14T22:13:20.123456789Z","v":1}"#;

    fn config(extra: Value) -> SplunkHecConfig {
        let mut json = serde_json::json!({"endpoint": "https://splunk.example:8088", "token": "00000000-0000-0000-0000-000000000000"});
        if let (Value::Object(m), Value::Object(e)) = (&mut json, extra) {
            m.extend(e);
        }
        serde_json::from_value(json).unwrap()
    }

    fn context() -> ExporterContext {
        ExporterContext {
            id: "splunk_hec/siem".into(),
            stream: "logs/audit".into(),
            state_dir: std::env::temp_dir(),
        }
    }

    fn entry(index: u64, seq: u64) -> Item {
        Item::Entry {
            index,
            seq,
            line: Bytes::from(ENTRY.replace("\"seq\":42", &format!("\"seq\":{seq}"))),
        }
    }

    #[test]
    fn an_entry_becomes_a_hec_event_carrying_it_verbatim() {
        let exporter = SplunkHecExporter::new(
            &config(serde_json::json!({"index": "audit", "sourcetype": "vellum"})),
            &context(),
        )
        .unwrap();
        let (body, items) = exporter.first_request(&[entry(3, 42)]).unwrap();
        assert_eq!(items, 1);
        let expected = format!(
            "{{\"time\":1700000000.123456,\"host\":\"gw-7\",\"source\":\"vellum:logs/audit\",\"sourcetype\":\"vellum\",\"index\":\"audit\",\"event\":{ENTRY},\"fields\":{{\"vellum_stream\":\"logs/audit\",\"vellum_seq\":\"42\",\"vellum_hash\":\"aa11\"}}}}\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn checkpoints_become_events_of_their_own_sourcetype() {
        let exporter =
            SplunkHecExporter::new(&config(serde_json::json!({"host": "h"})), &context()).unwrap();
        let (body, _) = exporter
            .first_request(&[Item::Checkpoint {
                index: 9,
                size: 10,
                note: "o\n10\nr=\n".into(),
            }])
            .unwrap();
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"host": "h", "source": "vellum:logs/audit", "sourcetype": "vellum:checkpoint",
                "event": {"checkpoint": {"stream": "logs/audit", "size": 10, "note": "o\n10\nr=\n"}},
                "fields": {"vellum_stream": "logs/audit", "vellum_checkpoint_size": "10"}})
        );
    }

    #[test]
    fn a_batch_is_cut_into_requests_under_the_size_limit() {
        let exporter = SplunkHecExporter::new(
            &config(serde_json::json!({"max_request_size": "1KiB"})),
            &context(),
        )
        .unwrap();
        let batch: Vec<Item> = (0..10).map(|i| entry(100 + i, i)).collect();
        // Each event is about 430 bytes: two fit under 1 KiB.
        let (body, items) = exporter.first_request(&batch).unwrap();
        assert_eq!(items, 2);
        assert!(body.len() <= 1024, "{}", body.len());
        let seqs: Vec<String> = serde_json::Deserializer::from_slice(&body)
            .into_iter::<Value>()
            .map(|e| e.unwrap()["fields"]["vellum_seq"].to_string())
            .collect();
        assert_eq!(seqs, [r#""0""#, r#""1""#]);
    }

    #[test]
    fn an_event_larger_than_a_request_goes_alone() {
        let exporter = SplunkHecExporter::new(
            &config(serde_json::json!({"max_request_size": "100B"})),
            &context(),
        )
        .unwrap();
        let batch: Vec<Item> = (0..3).map(|i| entry(100 + i, i)).collect();
        let (body, items) = exporter.first_request(&batch).unwrap();
        assert_eq!(items, 1);
        assert!(body.len() > 100);
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn every_documented_hec_code_has_its_outcome() {
        // Splunk's table of HEC status codes (Troubleshoot HTTP Event Collector), with
        // the HTTP status each comes with.
        let table: [(i64, u16, &str, &str); 28] = [
            (0, 200, "Success", "ok"),
            (1, 403, "Token disabled", "unauthorized"),
            (2, 401, "Token is required", "unauthorized"),
            (3, 401, "Invalid authorization", "unauthorized"),
            (4, 403, "Invalid token", "unauthorized"),
            (5, 400, "No data", "refuse"),
            (6, 400, "Invalid data format", "refuse"),
            (7, 400, "Incorrect index", "refuse"),
            (8, 500, "Internal server error", "retry"),
            (9, 503, "Server is busy", "retry"),
            (10, 400, "Data channel is missing", "refuse"),
            (11, 400, "Invalid data channel", "refuse"),
            (12, 400, "Event field is required", "refuse"),
            (13, 400, "Event field cannot be blank", "refuse"),
            (14, 400, "ACK is disabled", "refuse"),
            (15, 400, "Error in handling indexed fields", "refuse"),
            (
                16,
                400,
                "Query string authorization is not enabled",
                "refuse",
            ),
            (17, 200, "HEC is healthy", "ok"),
            (18, 503, "HEC is unhealthy, queues are full", "retry"),
            (
                19,
                503,
                "HEC is unhealthy, ack service unavailable",
                "retry",
            ),
            (
                20,
                503,
                "HEC is unhealthy, queues are full, ack service unavailable",
                "retry",
            ),
            (21, 400, "Invalid token", "unauthorized"),
            (22, 400, "Token disabled", "unauthorized"),
            (23, 503, "Server is shutting down", "retry"),
            (24, 200, "HEC queue is approaching its capacity limit", "ok"),
            (25, 200, "HEC ACK is approaching its capacity limit", "ok"),
            (
                26,
                429,
                "HEC queue is at capacity and cannot process any more requests",
                "retry",
            ),
            (
                27,
                429,
                "HEC ACK channel is at capacity and cannot process any more requests",
                "retry",
            ),
        ];
        let now = SystemTime::now();
        for (code, status, text, want) in table {
            let body = serde_json::json!({"text": text, "code": code}).to_string();
            let got = match judge(&answer(status, &body), now) {
                Ok(_) => "ok",
                Err(ExportError::Retryable { .. }) => "retry",
                Err(ExportError::Permanent(m)) => {
                    assert!(m.contains(text), "{m}");
                    "refuse"
                }
                Err(ExportError::Unauthorized(m)) => {
                    assert!(m.contains(text), "{m}");
                    "unauthorized"
                }
            };
            assert_eq!(got, want, "code {code}");
        }
    }

    #[test]
    fn answers_without_a_known_code_fall_back_to_the_http_status() {
        let now = SystemTime::now();
        assert!(matches!(
            judge(&answer(502, "<html>bad gateway</html>"), now),
            Err(ExportError::Retryable { .. })
        ));
        assert!(matches!(
            judge(&answer(404, "not here"), now),
            Err(ExportError::Permanent(_))
        ));
        assert!(matches!(
            judge(&answer(400, r#"{"text":"new","code":99}"#), now),
            Err(ExportError::Permanent(_))
        ));
        assert!(matches!(
            judge(&answer(503, r#"{"text":"Success","code":0}"#), now),
            Err(ExportError::Retryable { .. })
        ));
        let reply = judge(
            &answer(200, r#"{"text":"Success","code":0,"ackId":7}"#),
            now,
        )
        .unwrap();
        assert_eq!(reply.ack_id, Some(7));
    }

    #[test]
    fn channels_are_version_4_guids() {
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        let (a, b) = (new_channel(), new_channel());
        assert!(re.is_match(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_endpoint_may_name_the_collector_path_or_not() {
        for e in [
            "https://s:8088",
            "https://s:8088/",
            "https://s:8088/services/collector",
            "https://s:8088/services/collector/event",
        ] {
            assert_eq!(base_url(e), "https://s:8088", "{e}");
        }
        assert_eq!(base_url("https://proxy/splunk"), "https://proxy/splunk");
    }

    #[test]
    fn config_problems_and_a_redacted_token() {
        let cfg = config(
            serde_json::json!({"index": " ", "ack_poll_interval": "1ms", "endpoint": "splunk:8088"}),
        );
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["endpoint", "index", "ack_poll_interval"]);
        assert!(!format!("{cfg:?}").contains("0000-0000"));
        let unknown = serde_json::from_value::<SplunkHecConfig>(
            serde_json::json!({"endpoint": "https://s", "token": "t", "tokn": "x"}),
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn headers_may_not_replace_the_token_or_the_channel() {
        let cfg = config(serde_json::json!({"headers": {
            "Authorization": "Splunk forged", "X-Splunk-Request-Channel": "c", "X-Tenant": "acme"}}));
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["headers.Authorization", "headers.X-Splunk-Request-Channel"]
        );
        let cfg = config(serde_json::json!({"headers": {"X-Tenant": "acme"}}));
        let e = SplunkHecExporter::new(&cfg, &context()).unwrap();
        let request = e.request(&e.event_url).build().unwrap();
        assert_eq!(request.headers()["x-tenant"], "acme");
        assert!(request.headers()["x-tenant"].is_sensitive());
        assert!(request.headers()["authorization"].is_sensitive());
    }
}
