//! `datadog`: sealed entries to Datadog's Logs intake (API v2).
//!
//! ```yaml
//! exporters:
//!   datadog/logs:
//!     api_key: ${env:DD_API_KEY}
//!     site: datadoghq.eu        # → https://http-intake.logs.datadoghq.eu/api/v2/logs
//!     # endpoint: https://dd-proxy.internal:8443   # instead of `site`: /api/v2/logs is added
//!     service: ai-gateway       # default: the record's resource `service.name`
//!     ddsource: vellum          # the default
//!     ddtags: [env:prod, team:security]
//!     hostname: gw-1            # default: the record's resource `host.name`, else this machine
//!     compression: gzip         # or none
//!     headers: { X-Proxy-Tenant: acme }   # extra headers; values may be ${env:…}
//!     tls: { ca_file: /etc/vellum/proxy-ca.pem }
//! ```
//!
//! Batches are `POST`ed as JSON arrays to `/api/v2/logs` with the key in `DD-API-KEY`.
//! Each entry becomes one log:
//!
//! ```json
//! {"ddsource":"vellum","ddtags":"env:prod,team:security","hostname":"gw-1",
//!  "service":"ai-gateway","status":"error","timestamp":1700000000123,
//!  "vellum":{"stream":"logs/audit","seq":42,"hash":"9f…"},
//!  "message":"{…the sealed entry, as a string…}"}
//! ```
//!
//! `message` is the sealed entry byte for byte, so a log found in Datadog can be checked
//! against the chain; `vellum.stream` + `vellum.seq` let a query de-duplicate what a retry
//! sent twice. `status` comes from the record's graded severity (critical → `critical`,
//! high → `error`, medium → `warning`, low → `notice`, info → `info`) and is left out for
//! ungraded records. `timestamp` (Unix ms) is the record's time, except that a record more
//! than 18 hours old — Datadog's ingestion window — is sent without one, so Datadog
//! stamps it with the intake time rather than dropping it; its own time stays in the
//! message. A signed checkpoint becomes a log whose message is the note, with
//! `vellum: {stream, checkpoint_size}`.
//!
//! **Datadog's limits** per request: 5 MB uncompressed, 1,000 logs, 1 MB per log (Datadog
//! truncates a larger one). A batch is cut into requests within those limits. An entry
//! whose log would exceed 1 MB is split, never truncated: its message is cut on character
//! boundaries into pieces that each fit, sent in order as logs that carry
//! `vellum.part` (1-based) and `vellum.parts`; joining the messages of parts 1…n gives the
//! entry back. The driver retries only the request that failed: those before it were
//! accepted and are not sent again.
//!
//! **Answers** (Datadog's documented statuses):
//!
//! | status | meaning | outcome |
//! |---|---|---|
//! | 200, 202 | accepted | delivered |
//! | 400 | bad request (payload format) | permanent |
//! | 401 | unauthorized (missing API key) | unauthorized: retried, `/readyz` names the exporter |
//! | 403 | forbidden (invalid API key) | unauthorized: retried, `/readyz` names the exporter |
//! | 408 | request timeout | retryable |
//! | 413 | payload too large | permanent (Vellum stays under 5 MB; a proxy's lower limit?) |
//! | 429 | too many requests | retryable, after `Retry-After` or `X-RateLimit-Reset` seconds |
//! | 500, 503, other 5xx | server error, unavailable | retryable |
//! | other 4xx | | permanent |

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::http::{
    self, Answer, ClientTls, Compression, EntryHead, Headers, Secret, push_json_str,
};
use super::{ExportError, Exporter, ExporterContext, Item};

/// Datadog's limits per request (decimal megabytes, the smaller reading of "MB").
pub const MAX_PAYLOAD_BYTES: usize = 5_000_000;
pub const MAX_LOGS_PER_PAYLOAD: usize = 1000;
pub const MAX_LOG_BYTES: usize = 1_000_000;

/// How old a timestamp Datadog still ingests.
const INGESTION_WINDOW: Duration = Duration::from_secs(18 * 3600);

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    pub api_key: Secret,
    #[serde(default = "default_site")]
    pub site: String,
    /// A base URL used instead of the site's intake (a proxy, a test intake).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default = "default_ddsource")]
    pub ddsource: String,
    #[serde(default)]
    pub ddtags: Vec<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub compression: Compression,
    /// Extra headers; `DD-API-KEY` and the body's headers are the exporter's own.
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub tls: ClientTls,
}

/// The headers the exporter sets itself; configured `headers` may not override them.
const RESERVED: [&str; 5] = [
    "dd-api-key",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
];

fn default_site() -> String {
    "datadoghq.com".into()
}
fn default_ddsource() -> String {
    "vellum".into()
}

impl DatadogConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.api_key.expose().trim().is_empty() {
            out.push(("api_key".into(), "give the Datadog API key".into()));
        } else if HeaderValue::from_str(self.api_key.expose()).is_err() {
            out.push((
                "api_key".into(),
                "holds characters a header cannot carry".into(),
            ));
        }
        if self.site.is_empty()
            || !self
                .site
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            out.push((
                "site".into(),
                "give the site's domain, e.g. datadoghq.eu; a full URL goes in `endpoint`".into(),
            ));
        }
        if let Some(p) = self.endpoint.as_deref().and_then(http::url_problem) {
            out.push(("endpoint".into(), p));
        }
        for (i, tag) in self.ddtags.iter().enumerate() {
            if tag.is_empty() || tag.contains(',') {
                out.push((
                    format!("ddtags[{i}]"),
                    "a tag is not empty and has no comma".into(),
                ));
            }
        }
        for (key, value) in [("service", &self.service), ("hostname", &self.hostname)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                out.push((key.into(), "must not be empty; leave it out instead".into()));
            }
        }
        out.extend(self.headers.problems("headers", &RESERVED));
        out.extend(
            self.tls
                .problems("tls", http::url_scheme(&self.intake_url())),
        );
        out
    }

    /// Where logs are posted: the endpoint's, or the site's intake.
    pub fn intake_url(&self) -> String {
        let base = match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://http-intake.logs.{}", self.site),
        };
        format!("{base}/api/v2/logs")
    }
}

/// Datadog's status for a graded severity.
fn status(severity: &str) -> Option<&'static str> {
    Some(match severity {
        "critical" => "critical",
        "high" => "error",
        "medium" => "warning",
        "low" => "notice",
        "info" => "info",
        _ => return None,
    })
}

/// One request's worth of logs.
struct Payload {
    body: Vec<u8>,
    logs: usize,
}

impl Payload {
    fn new() -> Payload {
        Payload {
            body: b"[".to_vec(),
            logs: 0,
        }
    }

    fn fits(&self, log: &[u8]) -> bool {
        // A comma before the log, the closing bracket after it.
        self.logs < MAX_LOGS_PER_PAYLOAD && self.body.len() + log.len() + 2 <= MAX_PAYLOAD_BYTES
    }

    fn push(&mut self, log: &[u8]) {
        if self.logs > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(log);
        self.logs += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.body.push(b']');
        self.body
    }
}

pub struct DatadogExporter {
    id: String,
    stream: String,
    client: reqwest::Client,
    url: reqwest::Url,
    api_key: HeaderValue,
    headers: HeaderMap,
    compression: Compression,
    /// `"ddsource":…,"ddtags":…` as JSON, the same for every log.
    fixed: Vec<u8>,
    hostname: Option<String>,
    local_hostname: String,
    service: Option<String>,
}

impl DatadogExporter {
    pub fn new(
        cfg: &DatadogConfig,
        context: &ExporterContext,
    ) -> Result<DatadogExporter, ExportError> {
        let mut fixed = b"\"ddsource\":".to_vec();
        push_json_str(&mut fixed, &cfg.ddsource);
        if !cfg.ddtags.is_empty() {
            fixed.extend_from_slice(b",\"ddtags\":");
            push_json_str(&mut fixed, &cfg.ddtags.join(","));
        }
        Ok(DatadogExporter {
            id: context.id.clone(),
            stream: context.stream.clone(),
            client: http::client(&cfg.tls)?,
            url: http::parse_url(&cfg.intake_url())?,
            api_key: http::sensitive(cfg.api_key.expose())?,
            headers: cfg.headers.to_header_map()?,
            compression: cfg.compression,
            fixed,
            hostname: cfg.hostname.clone(),
            local_hostname: http::local_hostname(),
            service: cfg.service.clone(),
        })
    }

    /// The fields before `vellum`, shared by every log of an item.
    fn push_envelope(&self, out: &mut Vec<u8>, host: Option<&str>, service: Option<&str>) {
        out.push(b'{');
        out.extend_from_slice(&self.fixed);
        out.extend_from_slice(b",\"hostname\":");
        let host = self
            .hostname
            .as_deref()
            .or(host)
            .unwrap_or(&self.local_hostname);
        push_json_str(out, host);
        if let Some(service) = self.service.as_deref().or(service) {
            out.extend_from_slice(b",\"service\":");
            push_json_str(out, service);
        }
    }

    /// The logs of one item: one, or the pieces of an entry too large for one.
    fn logs(&self, item: &Item, now: SystemTime) -> Result<Vec<Vec<u8>>, ExportError> {
        let (mut head, message) = match item {
            Item::Entry { index, line, .. } => {
                let entry = EntryHead::parse(line, *index)?;
                let message = std::str::from_utf8(line).map_err(|_| {
                    ExportError::Permanent(format!("journal record {index} is not UTF-8"))
                })?;
                let mut head = Vec::new();
                self.push_envelope(&mut head, entry.host_name(), entry.service_name());
                if let Some(s) = entry.severity.as_deref().and_then(status) {
                    head.extend_from_slice(format!(",\"status\":\"{s}\"").as_bytes());
                }
                if let Some(ns) = entry.time_unix_nano() {
                    let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(ns);
                    let age = now.duration_since(time).unwrap_or(Duration::ZERO);
                    if age < INGESTION_WINDOW {
                        head.extend_from_slice(
                            format!(",\"timestamp\":{}", ns / 1_000_000).as_bytes(),
                        );
                    }
                }
                head.extend_from_slice(b",\"vellum\":{\"stream\":");
                push_json_str(&mut head, &entry.stream);
                head.extend_from_slice(format!(",\"seq\":{},\"hash\":", entry.seq).as_bytes());
                push_json_str(&mut head, &entry.hash);
                (head, message)
            }
            Item::Checkpoint { size, note, .. } => {
                let mut head = Vec::new();
                self.push_envelope(&mut head, None, None);
                head.extend_from_slice(b",\"vellum\":{\"stream\":");
                push_json_str(&mut head, &self.stream);
                head.extend_from_slice(format!(",\"checkpoint_size\":{size}").as_bytes());
                (head, note.as_str())
            }
        };
        let whole = |head: &[u8], message: &str| {
            let mut log = head.to_vec();
            log.extend_from_slice(b"},\"message\":");
            push_json_str(&mut log, message);
            log.push(b'}');
            log
        };
        let log = whole(&head, message);
        if log.len() <= MAX_LOG_BYTES {
            return Ok(vec![log]);
        }
        // Room for `,"part":N,"parts":N` with up to 7 digits each, and the closing bytes.
        let overhead = head.len() + ",\"part\":,\"parts\":},\"message\":\"\"}".len() + 14;
        let pieces = split_for_json(message, MAX_LOG_BYTES.saturating_sub(overhead).max(1024));
        let n = pieces.len();
        let base = head.len();
        Ok(pieces
            .into_iter()
            .enumerate()
            .map(|(i, piece)| {
                head.truncate(base);
                head.extend_from_slice(format!(",\"part\":{},\"parts\":{n}", i + 1).as_bytes());
                whole(&head, piece)
            })
            .collect())
    }

    /// The payloads of one delivery: the logs of the leading items, as many as fit in
    /// one request, and how many items they hold. Only an entry split into more pieces
    /// than one request takes needs several payloads: they go together, so an entry is
    /// delivered whole or not at all.
    fn first_request(
        &self,
        batch: &[Item],
        now: SystemTime,
    ) -> Result<(Vec<Vec<u8>>, usize), ExportError> {
        let mut full = Vec::new();
        let mut current = Payload::new();
        for (taken, item) in batch.iter().enumerate() {
            // Where this item's logs start, to take them out again if they do not all fit.
            let mark = (current.body.len(), current.logs);
            for log in self.logs(item, now)? {
                if !current.fits(&log) && current.logs > 0 {
                    if taken > 0 {
                        current.body.truncate(mark.0);
                        current.logs = mark.1;
                        return Ok((vec![current.finish()], taken));
                    }
                    full.push(std::mem::replace(&mut current, Payload::new()).finish());
                }
                current.push(&log);
            }
            if taken == 0 && !full.is_empty() {
                full.push(current.finish());
                return Ok((full, 1));
            }
        }
        if current.logs > 0 {
            full.push(current.finish());
        }
        Ok((full, batch.len()))
    }

    async fn deliver(&mut self, batch: &[Item]) -> Result<usize, ExportError> {
        let (payloads, items) = self.first_request(batch, SystemTime::now())?;
        for body in payloads {
            let request = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header(HeaderName::from_static("dd-api-key"), self.api_key.clone())
                .header(CONTENT_TYPE, "application/json");
            let request = http::with_body(request, body, self.compression);
            let answer = http::send(&self.id, request).await?;
            judge(&answer, SystemTime::now())?;
        }
        Ok(items)
    }
}

/// Datadog's table (module doc): the shared one, plus its rate-limit header on a 429.
fn judge(answer: &Answer, now: SystemTime) -> Result<(), ExportError> {
    match http::classify(answer, now) {
        Err(ExportError::Retryable {
            message,
            retry_after: None,
        }) => Err(ExportError::Retryable {
            message,
            retry_after: answer
                .headers
                .get("x-ratelimit-reset")
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(http::MAX_RETRY_AFTER)),
        }),
        other => other,
    }
}

/// Cuts `text` on character boundaries into pieces whose JSON string escaping (as
/// serde_json writes it) takes at most `budget` bytes each.
fn split_for_json(text: &str, budget: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, c) in text.char_indices() {
        let cost = match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if used + cost > budget && i > start {
            pieces.push(&text[start..i]);
            start = i;
            used = 0;
        }
        used += cost;
    }
    pieces.push(&text[start..]);
    pieces
}

impl Exporter for DatadogExporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>> {
        Box::pin(self.deliver(batch))
    }
}

impl super::ExporterSettings for DatadogConfig {
    fn problems(&self) -> Vec<(String, String)> {
        DatadogConfig::problems(self)
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::sink()
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(DatadogExporter::new(self, context)?))
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
    use serde_json::{Value, json};

    fn exporter(extra: Value) -> DatadogExporter {
        let mut cfg = json!({"api_key": "0123456789abcdef0123456789abcdef"});
        if let (Value::Object(m), Value::Object(e)) = (&mut cfg, extra) {
            m.extend(e);
        }
        let cfg: DatadogConfig = serde_json::from_value(cfg).unwrap();
        DatadogExporter::new(
            &cfg,
            &ExporterContext {
                id: "datadog/logs".into(),
                stream: "logs/audit".into(),
                state_dir: std::env::temp_dir(),
            },
        )
        .unwrap()
    }

    fn entry_line(seq: u64, body: &str) -> String {
        json!({"v": 1, "stream": "logs/audit", "seq": seq, "prev": "00", "hash": format!("h{seq}"),
               "time": "2023-11-14T22:13:20.123456789Z", "severity": "high",
               "resource": {"host.name": "gw-7", "service.name": "gateway"}, "body": body})
        .to_string()
    }

    fn entry(index: u64, seq: u64, body: &str) -> Item {
        Item::Entry {
            index,
            seq,
            line: Bytes::from(entry_line(seq, body)),
        }
    }

    /// 2023-11-14T23:13:20Z: an hour after the entries' time.
    fn soon_after() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_003_600)
    }

    #[test]
    fn an_entry_becomes_a_log_carrying_it_as_the_message() {
        let e = exporter(json!({"ddtags": ["env:prod", "team:sec"]}));
        let logs = e.logs(&entry(0, 42, "login failed"), soon_after()).unwrap();
        assert_eq!(logs.len(), 1);
        let log: Value = serde_json::from_slice(&logs[0]).unwrap();
        assert_eq!(
            log,
            json!({"ddsource": "vellum", "ddtags": "env:prod,team:sec", "hostname": "gw-7",
                   "service": "gateway", "status": "error", "timestamp": 1_700_000_000_123u64,
                   "vellum": {"stream": "logs/audit", "seq": 42, "hash": "h42"},
                   "message": entry_line(42, "login failed")})
        );
    }

    #[test]
    fn records_older_than_the_ingestion_window_go_without_a_timestamp() {
        let e = exporter(json!({"hostname": "fixed", "service": "svc"}));
        let a_day_later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_086_400);
        let log: Value =
            serde_json::from_slice(&e.logs(&entry(0, 1, "x"), a_day_later).unwrap()[0]).unwrap();
        assert!(log.get("timestamp").is_none(), "{log}");
        assert_eq!(
            (log["hostname"].as_str(), log["service"].as_str()),
            (Some("fixed"), Some("svc"))
        );
    }

    #[test]
    fn an_entry_over_one_megabyte_is_split_into_parts_that_join_back() {
        let e = exporter(json!({}));
        // Quotes and newlines double in JSON: the split must count the escaped size.
        let body = "ab\"c\n".repeat(500_000);
        let item = entry(5, 9, &body);
        let logs = e.logs(&item, soon_after()).unwrap();
        // Each `ab"c<LF>` is 7 bytes in the entry (`ab\"c\n`) and 10 in the message
        // (`ab\\\"c\\n`): 5 MB escaped, a little over five pieces of under 1 MB.
        assert_eq!(logs.len(), 6);
        let mut joined = String::new();
        for (i, log) in logs.iter().enumerate() {
            assert!(log.len() <= MAX_LOG_BYTES, "part {i}: {}", log.len());
            let v: Value = serde_json::from_slice(log).unwrap();
            assert_eq!(v["vellum"]["part"], json!(i + 1));
            assert_eq!(v["vellum"]["parts"], json!(6));
            assert_eq!(v["vellum"]["seq"], json!(9));
            joined.push_str(v["message"].as_str().unwrap());
        }
        assert_eq!(joined, entry_line(9, &body));
    }

    #[test]
    fn splits_fall_on_character_boundaries() {
        let text = "é€𝄞\"".repeat(100);
        let pieces = split_for_json(&text, 7);
        assert_eq!(pieces.concat(), text);
        for p in &pieces {
            assert!(serde_json::to_string(p).unwrap().len() - 2 <= 7, "{p:?}");
        }
    }

    /// Cuts a whole batch the way the driver does: request after request, each on what
    /// the previous left. Gives each request's payloads and item count.
    fn cut(e: &DatadogExporter, batch: &[Item]) -> Vec<(Vec<Vec<u8>>, usize)> {
        let mut out = Vec::new();
        let mut rest = batch;
        while !rest.is_empty() {
            let (payloads, items) = e.first_request(rest, soon_after()).unwrap();
            assert!(items > 0);
            rest = &rest[items..];
            out.push((payloads, items));
        }
        out
    }

    fn log_count(payload: &[u8]) -> usize {
        serde_json::from_slice::<Vec<Value>>(payload).unwrap().len()
    }

    #[test]
    fn payloads_keep_to_a_thousand_logs_and_five_megabytes() {
        let e = exporter(json!({}));
        let small: Vec<Item> = (0..2500).map(|i| entry(i, i, "x")).collect();
        let requests = cut(&e, &small);
        let counts: Vec<(usize, usize)> = requests
            .iter()
            .map(|(p, items)| (p.iter().map(|b| log_count(b)).sum(), *items))
            .collect();
        assert_eq!(counts, [(1000, 1000), (1000, 1000), (500, 500)]);
        // 900 KB entries: five fit in 5 MB, the sixth starts the next payload.
        let big: Vec<Item> = (0..7).map(|i| entry(i, i, &"y".repeat(900_000))).collect();
        let requests = cut(&e, &big);
        let counts: Vec<usize> = requests.iter().map(|(_, items)| *items).collect();
        assert_eq!(counts, [5, 2]);
        assert!(
            requests
                .iter()
                .flat_map(|(p, _)| p)
                .all(|b| b.len() <= MAX_PAYLOAD_BYTES)
        );
    }

    #[test]
    fn an_entry_is_never_cut_between_two_requests() {
        let e = exporter(json!({}));
        // A small entry, then one split into six logs (about 5.5 MB): the large one
        // does not fit beside the small one, and alone it takes two payloads.
        let batch = vec![
            entry(0, 0, "x"),
            entry(1, 1, &"z".repeat(5_500_000)),
            entry(2, 2, "x"),
        ];
        let requests = cut(&e, &batch);
        let shape: Vec<(usize, usize)> = requests.iter().map(|(p, n)| (p.len(), *n)).collect();
        assert_eq!(shape, [(1, 1), (2, 1), (1, 1)]);
        let logs: Vec<usize> = requests[1].0.iter().map(|b| log_count(b)).collect();
        assert_eq!(logs.iter().sum::<usize>(), 6, "{logs:?}");
        assert_eq!(
            log_count(&requests[0].0[0]),
            1,
            "no piece of the large entry rides along"
        );
    }

    #[test]
    fn the_site_names_the_intake_host() {
        let e = exporter(json!({"site": "datadoghq.eu"}));
        assert_eq!(
            e.url.as_str(),
            "https://http-intake.logs.datadoghq.eu/api/v2/logs"
        );
        let e = exporter(json!({"site": "us3.datadoghq.com"}));
        assert_eq!(
            e.url.as_str(),
            "https://http-intake.logs.us3.datadoghq.com/api/v2/logs"
        );
        let e = exporter(json!({"endpoint": "http://127.0.0.1:9000/"}));
        assert_eq!(e.url.as_str(), "http://127.0.0.1:9000/api/v2/logs");
    }

    #[test]
    fn datadog_statuses_map_as_documented() {
        let now = SystemTime::now();
        let answer = |status: u16, headers: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in headers {
                map.insert(*k, HeaderValue::from_static(v));
            }
            Answer {
                status: StatusCode::from_u16(status).unwrap(),
                headers: map,
                body: Bytes::from_static(
                    br#"{"errors":[{"status":"x","title":"t","detail":"d"}]}"#,
                ),
            }
        };
        for (status, want) in [
            (200, "ok"),
            (202, "ok"),
            (400, "refuse"),
            (401, "unauthorized"),
            (403, "unauthorized"),
            (408, "retry"),
            (413, "refuse"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
        ] {
            let got = match judge(&answer(status, &[]), now) {
                Ok(()) => "ok",
                Err(ExportError::Retryable { .. }) => "retry",
                Err(ExportError::Permanent(_)) => "refuse",
                Err(ExportError::Unauthorized(_)) => "unauthorized",
            };
            assert_eq!(got, want, "{status}");
        }
        match judge(&answer(429, &[("x-ratelimit-reset", "12")]), now) {
            Err(ExportError::Retryable { retry_after, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(12)))
            }
            other => panic!("{other:?}"),
        }
        match judge(
            &answer(429, &[("retry-after", "3"), ("x-ratelimit-reset", "12")]),
            now,
        ) {
            Err(ExportError::Retryable { retry_after, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_problems() {
        let cfg: DatadogConfig = serde_json::from_value(json!({
            "api_key": "", "site": "https://datadoghq.eu", "ddtags": ["a,b"], "endpoint": "x"
        }))
        .unwrap();
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["api_key", "site", "endpoint", "ddtags[0]"]);
        let cfg: DatadogConfig =
            serde_json::from_value(json!({"api_key": "secret-key-value"})).unwrap();
        assert!(cfg.problems().is_empty());
        assert!(!format!("{cfg:?}").contains("secret-key-value"));
    }
}
