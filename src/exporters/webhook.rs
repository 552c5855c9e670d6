//! `webhook`: batches of sealed entries as JSON to any URL.
//!
//! ```yaml
//! exporters:
//!   webhook/soc:
//!     url: https://soc.example.com/hooks/vellum
//!     auth:                         # optional
//!       type: hmac                  # signs each request; or `bearer`
//!       secret: ${env:WEBHOOK_SECRET}
//!     # auth: { type: bearer, token: ${env:WEBHOOK_TOKEN} }
//!     headers: { X-Tenant: acme }   # sent with every request
//!     compression: none             # the default; or gzip
//!     tls: { ca_file: /etc/vellum/soc-ca.pem }
//! ```
//!
//! Routing by `when:` is the pipeline's (`exporters: [{ id: webhook/soc, when: … }]`).
//!
//! Each batch is one `POST` with `Content-Type: application/json`:
//!
//! ```json
//! {"stream":"logs/audit","entries":[{…sealed entry…},…],
//!  "checkpoints":[{"size":1000,"note":"…signed note…"}]}
//! ```
//!
//! `entries` are the sealed entries byte for byte, in `seq` order; each carries its
//! `stream` and `seq`, which a receiver de-duplicates on, since a batch may come twice
//! after a failure. `checkpoints` are the signed checkpoints read with the batch
//! (usually none).
//!
//! **Authentication.** `bearer` sends `Authorization: Bearer <token>`. `hmac` sends
//!
//! ```text
//! X-Vellum-Timestamp: 1700000000                     (Unix seconds, when sent)
//! X-Vellum-Signature: sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! where `<body>` is the JSON as above, before any `Content-Encoding`, and the secret is
//! its UTF-8 bytes. A receiver recomputes the signature, compares it in constant time,
//! and rejects a timestamp too far from its clock (five minutes, say): a captured request
//! cannot be replayed later. Every retry is signed anew, but a retry within the same
//! second carries the same signature, so a receiver must not refuse a signature it has
//! seen; a replay inside the window only repeats entries it de-duplicates by
//! `stream` + `seq` anyway.
//!
//! **Answers** follow the shared HTTP table (`http` module): 2xx delivered; 408, 429 and
//! 5xx retried (honouring `Retry-After`); 401 and 403 retried while `/readyz` names the
//! exporter (a revoked token is not the records' fault); other 4xx and redirects
//! dead-lettered.

use std::time::SystemTime;

use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::Sha256;

use super::http::{self, ClientTls, Compression, Headers, Secret};
use super::{ExportError, Exporter, ExporterContext, Item};

pub const SIGNATURE_HEADER: &str = "x-vellum-signature";
pub const TIMESTAMP_HEADER: &str = "x-vellum-timestamp";

/// The headers the exporter sets itself; configured `headers` may not override them
/// (nor `Authorization` when `auth` sets it).
const RESERVED: [&str; 6] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
];

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub auth: Option<WebhookAuth>,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default = "no_compression")]
    pub compression: Compression,
    #[serde(default)]
    pub tls: ClientTls,
}

fn no_compression() -> Compression {
    Compression::None
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum WebhookAuth {
    Bearer { token: Secret },
    Hmac { secret: Secret },
}

impl WebhookConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = http::url_problem(&self.url) {
            out.push(("url".into(), p));
        }
        match &self.auth {
            Some(WebhookAuth::Bearer { token }) => {
                if token.expose().trim().is_empty() {
                    out.push(("auth.token".into(), "give the bearer token".into()));
                } else if HeaderValue::from_str(token.expose()).is_err() {
                    out.push((
                        "auth.token".into(),
                        "holds characters a header cannot carry".into(),
                    ));
                }
            }
            Some(WebhookAuth::Hmac { secret }) if secret.expose().len() < 16 => {
                out.push((
                    "auth.secret".into(),
                    "an HMAC secret has at least 16 bytes".into(),
                ));
            }
            _ => {}
        }
        let mut reserved = RESERVED.to_vec();
        if self.auth.is_some() {
            reserved.push("authorization");
        }
        out.extend(self.headers.problems("headers", &reserved));
        out.extend(self.tls.problems("tls", http::url_scheme(&self.url)));
        out
    }
}

/// `sha256=<hex>`: HMAC-SHA256 over `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct WebhookExporter {
    id: String,
    stream: String,
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    hmac_secret: Option<Secret>,
    compression: Compression,
}

impl WebhookExporter {
    pub fn new(
        cfg: &WebhookConfig,
        context: &ExporterContext,
    ) -> Result<WebhookExporter, ExportError> {
        let mut headers = cfg.headers.to_header_map()?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut hmac_secret = None;
        match &cfg.auth {
            Some(WebhookAuth::Bearer { token }) => {
                headers.insert(
                    AUTHORIZATION,
                    http::sensitive(&format!("Bearer {}", token.expose()))?,
                );
            }
            Some(WebhookAuth::Hmac { secret }) => hmac_secret = Some(secret.clone()),
            None => {}
        }
        Ok(WebhookExporter {
            id: context.id.clone(),
            stream: context.stream.clone(),
            client: http::client(&cfg.tls)?,
            url: http::parse_url(&cfg.url)?,
            headers,
            hmac_secret,
            compression: cfg.compression,
        })
    }

    /// The batch as the JSON object in the module doc, entries spliced in verbatim.
    fn body(&self, batch: &[Item]) -> Vec<u8> {
        let size: usize = batch
            .iter()
            .map(|i| match i {
                Item::Entry { line, .. } => line.len() + 1,
                Item::Checkpoint { note, .. } => note.len() + 40,
            })
            .sum();
        let mut out = Vec::with_capacity(size + 64);
        out.extend_from_slice(b"{\"stream\":");
        http::push_json_str(&mut out, &self.stream);
        out.extend_from_slice(b",\"entries\":[");
        let mut first = true;
        for item in batch {
            if let Item::Entry { line, .. } = item {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(line);
                first = false;
            }
        }
        out.extend_from_slice(b"],\"checkpoints\":[");
        let mut first = true;
        for item in batch {
            if let Item::Checkpoint { size, note, .. } = item {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(format!("{{\"size\":{size},\"note\":").as_bytes());
                http::push_json_str(&mut out, note);
                out.push(b'}');
                first = false;
            }
        }
        out.extend_from_slice(b"]}");
        out
    }

    async fn deliver(&self, batch: &[Item]) -> Result<(), ExportError> {
        let body = self.body(batch);
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone());
        if let Some(secret) = &self.hmac_secret {
            let timestamp = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request
                .header(HeaderName::from_static(TIMESTAMP_HEADER), timestamp)
                .header(
                    HeaderName::from_static(SIGNATURE_HEADER),
                    signature(secret.expose().as_bytes(), timestamp, &body),
                );
        }
        let answer = http::send(&self.id, http::with_body(request, body, self.compression)).await?;
        http::classify(&answer, SystemTime::now())
    }
}

impl Exporter for WebhookExporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>> {
        Box::pin(async move {
            self.deliver(batch).await?;
            Ok(batch.len())
        })
    }
}

impl super::ExporterSettings for WebhookConfig {
    fn problems(&self) -> Vec<(String, String)> {
        WebhookConfig::problems(self)
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::sink()
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(WebhookExporter::new(self, context)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::{Value, json};
    use sha2::Digest;

    /// HMAC-SHA256 written out from RFC 2104, independent of the `hmac` crate.
    fn rfc2104(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.map(|b| b ^ byte);
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .into()
    }

    #[test]
    fn the_reference_hmac_meets_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(rfc2104(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_covers_timestamp_dot_body() {
        let body = br#"{"stream":"s","entries":[],"checkpoints":[]}"#;
        let secret = b"a-webhook-secret-of-some-length";
        let expected = rfc2104(secret, &[b"1700000000.".as_slice(), body].concat());
        assert_eq!(
            signature(secret, 1_700_000_000, body),
            format!("sha256={}", hex::encode(expected))
        );
        assert_ne!(
            signature(secret, 1_700_000_001, body),
            signature(secret, 1_700_000_000, body)
        );
    }

    fn exporter(cfg: Value) -> WebhookExporter {
        let cfg: WebhookConfig = serde_json::from_value(cfg).unwrap();
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        WebhookExporter::new(
            &cfg,
            &ExporterContext {
                id: "webhook/soc".into(),
                stream: "logs/audit".into(),
                state_dir: std::env::temp_dir(),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_batch_is_one_object_with_the_entries_verbatim() {
        let e = exporter(json!({"url": "https://soc.example/hook"}));
        let line = |seq: u64| format!(r#"{{"hash":"h","seq":{seq},"stream":"logs/audit","v":1}}"#);
        let batch = [
            Item::Entry {
                index: 0,
                seq: 0,
                line: Bytes::from(line(0)),
            },
            Item::Checkpoint {
                index: 1,
                size: 1,
                note: "o\n1\nr=\n\n— k sig\n".into(),
            },
            Item::Entry {
                index: 2,
                seq: 1,
                line: Bytes::from(line(1)),
            },
        ];
        let body = String::from_utf8(e.body(&batch)).unwrap();
        assert_eq!(
            body,
            format!(
                r#"{{"stream":"logs/audit","entries":[{},{}],"checkpoints":[{{"size":1,"note":"o\n1\nr=\n\n— k sig\n"}}]}}"#,
                line(0),
                line(1)
            )
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["checkpoints"][0]["note"], "o\n1\nr=\n\n— k sig\n");
    }

    #[test]
    fn authorization_is_free_without_auth_and_reserved_with_it() {
        let e = exporter(json!({"url": "https://x.example/h",
            "headers": {"Authorization": "Basic dXNlcjpwYXNz"}}));
        assert_eq!(e.headers["authorization"], "Basic dXNlcjpwYXNz");
        assert!(e.headers["authorization"].is_sensitive());
    }

    #[test]
    fn bearer_auth_and_custom_headers_are_sent_and_redacted() {
        let cfg = json!({"url": "https://soc.example/hook",
            "auth": {"type": "bearer", "token": "tok-123456789"}, "headers": {"X-Tenant": "acme"}});
        let e = exporter(cfg.clone());
        assert_eq!(e.headers["authorization"], "Bearer tok-123456789");
        assert!(e.headers["authorization"].is_sensitive());
        assert_eq!(e.headers["x-tenant"], "acme");
        let parsed: WebhookConfig = serde_json::from_value(cfg).unwrap();
        let shown = format!("{parsed:?}");
        assert!(
            !shown.contains("tok-123456789") && !shown.contains("acme"),
            "{shown}"
        );
    }

    #[test]
    fn config_problems() {
        let cfg: WebhookConfig = serde_json::from_value(json!({"url": "mailto:x",
            "auth": {"type": "hmac", "secret": "short"},
            "headers": {"X-Vellum-Signature": "forged", "Authorization": "x"}}))
        .unwrap();
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "url",
                "auth.secret",
                "headers.Authorization",
                "headers.X-Vellum-Signature"
            ]
        );
        for bad in [
            json!({"url": "https://x", "auth": {"type": "basic", "token": "t"}}),
            json!({"url": "https://x", "auth": {"type": "bearer", "token": "t", "extra": 1}}),
            json!({"url": "https://x", "method": "PUT"}),
        ] {
            assert!(
                serde_json::from_value::<WebhookConfig>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
