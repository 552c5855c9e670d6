//! What the HTTP exporters (`splunk_hec`, `datadog`, `webhook`, `otlp` over HTTP) share:
//! the client, gzip, how an answer is classified, `Retry-After`, credentials that never
//! show in logs, and the few entry fields their envelopes need.
//!
//! The client speaks TLS through rustls with the ring provider (no OpenSSL), with the
//! exporter's `tls:` settings (the Collector's `configtls` client keys: CAs, a client
//! certificate for mTLS, `server_name_override`, `min_version`, `insecure`; see
//! `net::tls::client`), and follows no redirect: a credential must not travel to a host
//! the configuration did not name, and a `POST` turned into a `GET` by a 302 would lose
//! the batch. Proxies from `HTTPS_PROXY`/`HTTP_PROXY` apply.
//!
//! ```yaml
//! exporters:
//!   splunk_hec/siem:
//!     endpoint: https://splunk.example.com:8088
//!     token: "${env:SPLUNK_HEC_TOKEN}"
//!     headers: { X-Tenant: audit }         # added to every request
//!     tls:
//!       ca_file: /etc/vellum/splunk-ca.pem   # the CAs that sign the sink's certificate
//! ```
//!
//! `headers:` adds headers to every request; values may use `${env:…}` and are kept as
//! secrets (never in logs or `Debug`). A header the exporter sets itself (its body's
//! type and length, its credential) is refused by `validate` under `headers.<name>`.
//!
//! One table decides every HTTP answer unless an exporter knows its sink better (Splunk's
//! HEC codes, Datadog's rate-limit header):
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | delivered |
//! | 408, 429, 5xx | retryable; `Retry-After` (seconds or HTTP-date) sets the least wait |
//! | 401, 403 | unauthorized: retried with backoff, the cursor holds, `/readyz` names the exporter |
//! | any other 4xx | permanent: the batch goes to the dead-letter file with the answer |
//! | 1xx, 3xx | permanent: redirects are not followed, fix the configured URL |
//! | refused, reset, TLS failure, cut body, no answer | retryable |
//!
//! A `Retry-After` longer than an hour is cut to an hour, so a sink's mistake cannot stall
//! an exporter for days; a date in the past means "now" and the usual backoff applies.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use super::ExportError;

/// The longest wait a `Retry-After` may impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of an answer's body is read: enough for any error message.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub use crate::config::secret::Secret;
use crate::config::secret::redact_url;

/// Extra headers from the configuration. Their values may be credentials, so `Debug`
/// shows the names only and every value is marked sensitive on the wire.
#[derive(Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, Secret>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl Headers {
    /// Names that fail to parse, values that cannot be sent, and names the exporter sets
    /// itself (`reserved`, lowercase).
    pub fn problems(&self, key: &str, reserved: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in &self.0 {
            let path = format!("{key}.{name}");
            match HeaderName::from_bytes(name.as_bytes()) {
                Err(_) => out.push((path, "is not a valid HTTP header name".into())),
                Ok(n) if reserved.contains(&n.as_str()) => {
                    out.push((path, "is set by the exporter itself".into()))
                }
                Ok(_) => {}
            }
            if HeaderValue::from_str(value.expose()).is_err() {
                out.push((
                    format!("{key}.{name}"),
                    "the value must be visible ASCII without line breaks".into(),
                ));
            }
        }
        out
    }

    /// The headers to send; invalid ones were refused by [`Headers::problems`].
    pub fn to_header_map(&self) -> Result<HeaderMap, ExportError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.0 {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ExportError::Permanent(format!("invalid header name `{name}`")))?;
            map.insert(name, sensitive(value.expose())?);
        }
        Ok(map)
    }
}

/// A header value holding a credential: marked so the HTTP stack never logs it.
pub fn sensitive(value: &str) -> Result<HeaderValue, ExportError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        ExportError::Permanent("a credential holds characters a header cannot carry".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

pub use crate::net::tls::client::ClientTls;

/// Whether request bodies are gzip-compressed (`Content-Encoding: gzip`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// Checks an `http://` or `https://` URL from the configuration; the message shows it
/// without its password or query values.
pub fn url_problem(url: &str) -> Option<String> {
    let shown = redact_url(url);
    match reqwest::Url::parse(url) {
        Err(e) => Some(format!("`{shown}` is not a URL: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some(format!("`{shown}`: the scheme must be http or https"))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Some(format!("`{shown}`: the host is missing"))
        }
        Ok(_) => None,
    }
}

/// The scheme of a configured URL, for the `tls` checks: `https`, `http` or `` when it
/// is neither (reported by [`url_problem`]).
pub fn url_scheme(url: &str) -> &'static str {
    let lower = url.trim_start().get(..8).unwrap_or("").to_ascii_lowercase();
    if lower.starts_with("https://") {
        "https"
    } else if lower.starts_with("http://") {
        "http"
    } else {
        ""
    }
}

/// Parses a URL that [`url_problem`] accepted.
pub fn parse_url(url: &str) -> Result<reqwest::Url, ExportError> {
    reqwest::Url::parse(url)
        .map_err(|e| ExportError::Permanent(format!("`{}`: {e}", redact_url(url))))
}

/// The client every HTTP exporter uses: rustls with the exporter's `tls` settings
/// (`net::tls::client`), no redirects, bounded connection setup.
pub fn client(tls: &ClientTls) -> Result<reqwest::Client, ExportError> {
    // An http:// sink never uses it; the defaults keep one code path.
    let tls = if tls.plaintext() {
        &ClientTls::default()
    } else {
        tls
    };
    let mut config = tls
        .config()
        .map_err(|p| ExportError::Permanent(p.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    warn_if_unverified(tls);
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .user_agent(concat!("vellum/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        // Below the 60 s idle timeout of most load balancers, so a pooled connection is
        // rarely closed under a request.
        .pool_idle_timeout(Duration::from_secs(50))
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| {
            ExportError::Permanent(format!("cannot set up the HTTP client: {}", chain(&e)))
        })
}

/// `insecure_skip_verify` gives up knowing who receives the records: said once per build.
pub fn warn_if_unverified(tls: &ClientTls) {
    if tls.insecure_skip_verify {
        tracing::warn!(
            "tls.insecure_skip_verify is set: the sink's certificate is not checked, so anyone on the path can receive these records"
        );
    }
}

/// gzip at the fast level: audit JSON shrinks about tenfold even so, and the CPU is
/// better spent on throughput.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// Sets the body, gzipped when asked.
pub fn with_body(
    request: reqwest::RequestBuilder,
    body: Vec<u8>,
    compression: Compression,
) -> reqwest::RequestBuilder {
    match compression {
        Compression::Gzip => request
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(gzip(&body)),
        Compression::None => request.body(body),
    }
}

/// What a sink answered: its status, headers and the start of its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends a request and reads the answer; failures to get one are retryable.
pub async fn send(exporter: &str, request: reqwest::RequestBuilder) -> Result<Answer, ExportError> {
    let mut response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status();
    metrics::counter!(
        "vellum_exporter_http_responses_total",
        "exporter" => exporter.to_string(),
        "status" => status.as_str().to_string()
    )
    .increment(1);
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    // A body cut short (reset after a 200, say) leaves the outcome unknown: retry.
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(Answer {
        status,
        headers,
        body: Bytes::from(body),
    })
}

/// A request that got no answer. Only a request that could not even be built (a bad
/// URL) is permanent; everything else may clear up. reqwest names the URL, which goes
/// into logs, dead-letter reasons and `/readyz`: it is shown without its secrets.
pub fn transport_error(e: &reqwest::Error) -> ExportError {
    let message = redact_url(&chain(e));
    if e.is_builder() {
        ExportError::Permanent(message)
    } else {
        ExportError::retryable(message)
    }
}

/// An error and its causes on one line: reqwest's own message rarely names the cause.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether a status asks to try again later.
pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Whether a status says the credentials are missing, wrong, revoked or not allowed:
/// an operator's fix, never the records' fault.
pub fn is_unauthorized(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// The shared table (module doc) applied to an answer.
pub fn classify(answer: &Answer, now: SystemTime) -> Result<(), ExportError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(());
    }
    let message = describe(answer);
    if is_retryable(status) {
        Err(ExportError::Retryable {
            message,
            retry_after: retry_after(&answer.headers, now),
        })
    } else if is_unauthorized(status) {
        Err(ExportError::Unauthorized(message))
    } else if status.is_redirection() {
        Err(ExportError::Permanent(format!(
            "{message} (redirects are not followed: configure the final URL)"
        )))
    } else {
        Err(ExportError::Permanent(message))
    }
}

/// `"503 Service Unavailable: <start of the body>"`; a URL the sink echoes is shown
/// without its secrets.
pub fn describe(answer: &Answer) -> String {
    let body = redact_url(&excerpt(&answer.body));
    if body.is_empty() {
        answer.status.to_string()
    } else {
        format!("{}: {body}", answer.status)
    }
}

/// The start of a body as one line of text, for error messages.
pub fn excerpt(body: &[u8]) -> String {
    const MAX_CHARS: usize = 300;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = out.char_indices().nth(MAX_CHARS) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// `Retry-After` as RFC 9110 §10.2.3 defines it: delay-seconds or an HTTP-date (IMF-fixdate,
/// or the obsolete RFC 850 and asctime forms), capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is a very long time.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The fields of a sealed entry that the HTTP exporters lift into their envelopes,
/// read without building the entry's JSON tree.
#[derive(Debug, Deserialize)]
pub struct EntryHead<'a> {
    #[serde(borrow)]
    pub stream: Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
    #[serde(borrow, default)]
    pub time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub severity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub severity_text: Option<Cow<'a, str>>,
    #[serde(default)]
    pub resource: Option<ResourceHead>,
}

/// The resource attributes that name where a record came from.
#[derive(Debug, Default, Deserialize)]
pub struct ResourceHead {
    #[serde(rename = "host.name", default)]
    pub host_name: Option<Value>,
    #[serde(rename = "service.name", default)]
    pub service_name: Option<Value>,
}

impl<'a> EntryHead<'a> {
    /// Reads a journal entry's head; an entry that is not a sealed entry cannot be sent.
    pub fn parse(line: &'a [u8], index: u64) -> Result<EntryHead<'a>, ExportError> {
        serde_json::from_slice(line).map_err(|e| {
            ExportError::Permanent(format!(
                "journal record {index} is not a sealed entry ({e}); it cannot be delivered"
            ))
        })
    }

    /// The record's time in Unix nanoseconds.
    pub fn time_unix_nano(&self) -> Option<u64> {
        crate::event::parse_time(self.time.as_deref()?)
    }

    pub fn host_name(&self) -> Option<&str> {
        self.resource.as_ref()?.host_name.as_ref()?.as_str()
    }

    pub fn service_name(&self) -> Option<&str> {
        self.resource.as_ref()?.service_name.as_ref()?.as_str()
    }
}

/// This machine's host name, for envelopes whose record names none.
pub fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer outlives the call and its length is passed; gethostname writes
    // at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if !name.is_empty() => name.to_string(),
        _ => "localhost".into(),
    }
}

/// Writes `s` as a JSON string.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(crate::event::parse_time(rfc3339).unwrap())
    }

    #[test]
    fn retry_after_takes_seconds_and_each_http_date_form() {
        // RFC 9110 §5.6.7 gives one instant in its three forms: 1994-11-06 08:49:37 UTC.
        let now = at("1994-11-06T08:49:00Z");
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            let a = answer(503, &[("retry-after", value)], "");
            assert_eq!(
                retry_after(&a.headers, now),
                Some(Duration::from_secs(37)),
                "{value}"
            );
        }
        let a = answer(429, &[("retry-after", "120")], "");
        assert_eq!(retry_after(&a.headers, now), Some(Duration::from_secs(120)));
        let past = answer(503, &[("retry-after", "Sat, 05 Nov 1994 08:49:37 GMT")], "");
        assert_eq!(retry_after(&past.headers, now), Some(Duration::ZERO));
        let huge = answer(503, &[("retry-after", "99999999999999999999999")], "");
        assert_eq!(retry_after(&huge.headers, now), Some(MAX_RETRY_AFTER));
        for bad in ["soon", "-5", "1.5", ""] {
            let a = answer(503, &[("retry-after", bad)], "");
            assert_eq!(retry_after(&a.headers, now), None, "{bad:?}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_split_into_delivered_retryable_and_permanent() {
        let now = SystemTime::now();
        for ok in [200, 201, 202, 204] {
            assert!(classify(&answer(ok, &[], ""), now).is_ok(), "{ok}");
        }
        for retry in [408, 429, 500, 502, 503, 504, 599] {
            assert!(
                matches!(
                    classify(&answer(retry, &[], ""), now),
                    Err(ExportError::Retryable { .. })
                ),
                "{retry}"
            );
        }
        for unauthorized in [401, 403] {
            assert!(
                matches!(
                    classify(&answer(unauthorized, &[], ""), now),
                    Err(ExportError::Unauthorized(_))
                ),
                "{unauthorized}"
            );
        }
        for permanent in [301, 302, 307, 400, 404, 405, 409, 413, 422] {
            assert!(
                matches!(
                    classify(&answer(permanent, &[], ""), now),
                    Err(ExportError::Permanent(_))
                ),
                "{permanent}"
            );
        }
        match classify(&answer(429, &[("retry-after", "7")], "slow down"), now) {
            Err(ExportError::Retryable {
                message,
                retry_after,
            }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert_eq!(message, "429 Too Many Requests: slow down");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let headers = Headers(BTreeMap::from([(
            "Authorization".to_string(),
            Secret::new("Bearer hunter2"),
        )]));
        let shown = format!("{headers:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
        let map = headers.to_header_map().unwrap();
        assert!(map["authorization"].is_sensitive());
    }

    #[test]
    fn header_problems_name_the_bad_ones() {
        let headers = Headers(BTreeMap::from([
            ("X-Ok".to_string(), Secret::new("fine")),
            ("bad name".to_string(), Secret::new("v")),
            ("X-Split".to_string(), Secret::new("a\r\nb")),
            ("Content-Type".to_string(), Secret::new("text/plain")),
        ]));
        let problems = headers.problems("headers", &["content-type"]);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "headers.Content-Type",
                "headers.X-Split",
                "headers.bad name"
            ]
        );
    }

    #[test]
    fn gzip_round_trips_through_an_independent_decoder() {
        use std::io::Read;
        let body = br#"{"seq":1}"#.repeat(1000);
        let packed = gzip(&body);
        assert!(packed.len() < body.len() / 10);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn entry_heads_read_what_envelopes_need_and_skip_the_rest() {
        let line = br#"{"attributes":{"a":[1,{"b":2}]},"body":"x","hash":"ab","prev":"00","resource":{"host.name":"gw-1","service.name":7,"k8s":{"pod":"p"}},"seq":12,"severity":"high","stream":"logs/audit","time":"2024-01-02T03:04:05.000000006Z","v":1}"#;
        let head = EntryHead::parse(line, 0).unwrap();
        assert_eq!((head.stream.as_ref(), head.seq), ("logs/audit", 12));
        assert_eq!(head.hash, "ab");
        assert_eq!(head.host_name(), Some("gw-1"));
        // A resource value that is not a string names nothing.
        assert_eq!(head.service_name(), None);
        assert_eq!(head.time_unix_nano(), Some(1_704_164_645_000_000_006));
        assert!(matches!(
            EntryHead::parse(b"{\"seq\":1}", 9),
            Err(ExportError::Permanent(m)) if m.contains("journal record 9")
        ));
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(b"  a\n b\t c "), "a b c");
        let long = "é".repeat(400);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert_eq!(url_problem("https://splunk.example.com:8088"), None);
        assert!(url_problem("ftp://x").is_some());
        assert!(url_problem("splunk:8088").is_some());
        assert!(url_problem("not a url").is_some());
    }
}
