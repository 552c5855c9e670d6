//! The TLS an exporter speaks to its sink, in the OpenTelemetry Collector's `configtls`
//! client shape, built once into a `rustls::ClientConfig` that the HTTP client, the
//! OTLP gRPC channel and the S3 client all use.
//!
//! ```yaml
//! exporters:
//!   otlp/central:
//!     endpoint: https://central.internal:4317
//!     tls:
//!       ca_file: /etc/vellum/central-ca.pem     # the CAs the sink's certificate must chain to
//!       include_system_ca_certs_pool: false     # also trust the system's roots beside ca_file
//!       cert_file: /etc/vellum/agent.crt        # a client certificate (mTLS), with its chain
//!       key_file: /etc/vellum/agent.key         # its private key (PKCS#8, PKCS#1 or SEC1 PEM)
//!       server_name_override: central.internal  # the name the certificate must carry
//!       min_version: "1.2"                      # or "1.3"
//!       insecure: false                         # true: clear text, no TLS at all
//!       insecure_skip_verify: false             # true: any server certificate (test rigs only)
//! ```
//!
//! | setting | effect |
//! |---|---|
//! | nothing | the system's roots (read once per process); TLS 1.2 and 1.3 |
//! | `ca_file` | only these CAs, as the Collector does; with `include_system_ca_certs_pool: true` the system's roots too |
//! | `cert_file` + `key_file` | the client certificate offered when the sink asks (mTLS); one without the other is refused |
//! | `server_name_override` | the sink's certificate is checked against this name instead of the URL's host; SNI still carries the URL's host |
//! | `min_version` | `"1.2"` (default) or `"1.3"`; rustls speaks nothing older, so `"1.0"`/`"1.1"` are refused |
//! | `insecure: true` | clear text, as the Collector's `tls.insecure`; refused beside any other TLS setting and with an `https://` endpoint |
//! | `insecure_skip_verify: true` | the sink's certificate is not checked (its handshake signature still is); a warning is logged at start |
//!
//! The files are read when the exporter is built (at start and at each reload that
//! changes its settings), not watched: a rotated client certificate takes effect at the
//! next reload. Their problems are reported by `validate` under the key that names the
//! file. No error quotes a file's contents: the key file's bytes are never printed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Deserialize;

/// An exporter's `tls:` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// A PEM bundle of the CAs that sign the sink's certificate; replaces the system's
    /// roots unless `include_system_ca_certs_pool` is true.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust the system's roots as well as `ca_file`.
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
    /// The client certificate (PEM) presented for mTLS; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); never printed.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name the sink's certificate is checked against, instead of the endpoint's host.
    #[serde(default)]
    pub server_name_override: Option<String>,
    /// The lowest TLS version offered: "1.2" (the default) or "1.3".
    #[serde(default)]
    pub min_version: Option<String>,
    /// Plain text, no TLS (the Collector's `tls.insecure`).
    #[serde(default)]
    pub insecure: bool,
    /// Accept any server certificate: for test rigs only, it gives up authenticating the
    /// sink that receives audit records (a warning is logged).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A problem with the settings: the key inside `tls` it concerns, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem {
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls.{}: {}", self.key, self.message)
    }
}

impl ClientTls {
    /// Whether the settings ask for clear text (`insecure: true`).
    pub fn plaintext(&self) -> bool {
        self.insecure
    }

    /// Every problem with these settings for an endpoint of `scheme` (`http`, `https`),
    /// as (`<key>.<setting>`, message), the files named read and parsed as at build.
    pub fn problems(&self, key: &str, scheme: &str) -> Vec<(String, String)> {
        let mut out: Vec<TlsProblem> = self.setting_problems(scheme);
        let names_files =
            self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some();
        if out.is_empty()
            && names_files
            && !self.insecure
            && scheme == "https"
            && let Err(p) = self.config()
        {
            out.push(p);
        }
        out.into_iter()
            .map(|p| (format!("{key}.{}", p.key), p.message))
            .collect()
    }

    /// Contradictions between the settings and the endpoint, without reading files.
    fn setting_problems(&self, scheme: &str) -> Vec<TlsProblem> {
        let mut out = Vec::new();
        let problem = |key, message: &str| TlsProblem {
            key,
            message: message.to_string(),
        };
        if self.insecure && scheme == "https" {
            out.push(problem(
                "insecure",
                "the endpoint is https://; insecure: true means clear text, so name an http:// endpoint or drop insecure",
            ));
        }
        if self.insecure && self.first_tls_setting().is_some() {
            out.push(problem(
                "insecure",
                "insecure: true sends in clear text, so the other tls settings would be ignored: remove them or insecure",
            ));
        }
        if let Some(setting) = self.first_tls_setting()
            && !self.insecure
            && scheme == "http"
        {
            out.push(problem(
                setting,
                "tls settings need an https:// endpoint; this one is http:// (clear text)",
            ));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => out.push(problem("key_file", "is needed with cert_file")),
            (None, Some(_)) => out.push(problem("cert_file", "is needed with key_file")),
            _ => {}
        }
        if let Some(name) = &self.server_name_override
            && ServerName::try_from(name.as_str()).is_err()
        {
            out.push(problem(
                "server_name_override",
                "is not a DNS name or IP address",
            ));
        }
        if let Err(message) = self.versions() {
            out.push(TlsProblem {
                key: "min_version",
                message,
            });
        }
        out
    }

    /// The first setting given that only TLS uses.
    fn first_tls_setting(&self) -> Option<&'static str> {
        [
            ("ca_file", self.ca_file.is_some()),
            (
                "include_system_ca_certs_pool",
                self.include_system_ca_certs_pool,
            ),
            ("cert_file", self.cert_file.is_some()),
            ("key_file", self.key_file.is_some()),
            ("server_name_override", self.server_name_override.is_some()),
            ("min_version", self.min_version.is_some()),
            ("insecure_skip_verify", self.insecure_skip_verify),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// The protocol versions from `min_version`.
    fn versions(&self) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
        static FROM_12: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static FROM_13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self.min_version.as_deref() {
            None | Some("1.2") => Ok(FROM_12),
            Some("1.3") => Ok(FROM_13),
            Some("1.0" | "1.1") => {
                Err("TLS below 1.2 is not spoken (rustls); use \"1.2\" or \"1.3\"".into())
            }
            Some(_) => Err("must be \"1.2\" or \"1.3\"".into()),
        }
    }

    /// The rustls configuration for these settings (ring provider, no ALPN: the caller
    /// sets what its protocol needs).
    pub fn config(&self) -> Result<ClientConfig, TlsProblem> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = self.versions().map_err(|message| TlsProblem {
            key: "min_version",
            message,
        })?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsProblem {
                key: "min_version",
                message: e.to_string(),
            })?;
        let verifier = self.verifier(&provider)?;
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certificates("cert_file", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsProblem {
                    key: "key_file",
                    message: format!("{}: no private key read: {e}", key.display()),
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsProblem {
                        key: "key_file",
                        message: format!("does not fit cert_file: {e}"),
                    })
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ServerCertVerifier>, TlsProblem> {
        if self.insecure_skip_verify {
            return Ok(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )));
        }
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_certificates("ca_file", path)? {
                    roots.add(cert).map_err(|e| TlsProblem {
                        key: "ca_file",
                        message: format!("{}: not a CA certificate: {e}", path.display()),
                    })?;
                }
                if self.include_system_ca_certs_pool {
                    roots.extend(system_roots().roots.iter().cloned());
                }
            }
            None => roots.extend(system_roots().roots.iter().cloned()),
        }
        if roots.is_empty() {
            // Only a system without roots gets here (a ca_file holds at least one): an
            // http:// sink still works, an https:// one fails its handshake saying why.
            return Ok(Arc::new(NoRoots(
                provider.signature_verification_algorithms,
            )));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsProblem {
                key: "ca_file",
                message: format!("no CA to trust: {e}"),
            })?;
        Ok(match &self.server_name_override {
            None => webpki,
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|_| TlsProblem {
                    key: "server_name_override",
                    message: "is not a DNS name or IP address".into(),
                })?;
                Arc::new(NameOverride {
                    inner: webpki,
                    name,
                })
            }
        })
    }
}

/// A connector that opens TCP to the URI's host and port and speaks TLS with the
/// exporter's config over it, whatever the URI's scheme: tonic's channel is given an
/// `http://` URI so that it leaves TLS to this connector (its own TLS would read the
/// PEM files its own way and lacks `insecure_skip_verify` and `min_version`).
#[derive(Clone)]
pub struct TlsConnector(tokio_rustls::TlsConnector);

/// A TLS connection made by [`TlsConnector`].
pub type TlsIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl TlsConnector {
    pub fn new(config: ClientConfig) -> TlsConnector {
        TlsConnector(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

impl tower::Service<http::Uri> for TlsConnector {
    type Response = TlsIo;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = std::io::Result<TlsIo>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = self.0.clone();
        Box::pin(async move {
            let invalid = |what: &str| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri}: {what}"))
            };
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            // An IPv6 literal comes bracketed.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|_| invalid("the host is not a DNS name or IP address"))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

/// The certificates of a PEM file; a file holding none is refused.
fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let problem = |message: String| TlsProblem {
        key,
        message: format!("{}: {message}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(problem("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The system's roots, read once per process; what fails to parse is skipped, as an
/// unreadable root cannot be trusted anyway.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, skipped) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                skipped,
                errors = found.errors.len(),
                "no system CA roots found: https exporters need tls.ca_file"
            );
        }
        roots
    })
}

/// Checks the sink's certificate against the configured name instead of the URL's host,
/// for sinks reached by address or through a name their certificate does not carry.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is taken, but the handshake must still be
/// signed by its key, so the connection is at least to whoever holds it.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The verifier of a system without CA roots and no `ca_file`: every certificate is
/// refused, with the fix in the error.
#[derive(Debug)]
struct NoRoots(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(
            "this system has no CA roots (install ca-certificates) and tls.ca_file names none"
                .into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(json: serde_json::Value) -> ClientTls {
        serde_json::from_value(json).unwrap()
    }

    fn keys(problems: &[(String, String)]) -> Vec<&str> {
        problems.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn contradictions_are_refused_under_the_key_that_holds_them() {
        let t = tls(serde_json::json!({"insecure": true, "ca_file": "/x.pem"}));
        assert_eq!(
            keys(&t.problems("tls", "https")),
            ["tls.insecure", "tls.insecure"]
        );
        let t = tls(serde_json::json!({"cert_file": "/c.pem"}));
        assert_eq!(keys(&t.problems("tls", "https")), ["tls.key_file"]);
        let t = tls(serde_json::json!({"min_version": "1.1"}));
        assert_eq!(keys(&t.problems("tls", "https")), ["tls.min_version"]);
        let t = tls(serde_json::json!({"server_name_override": "not a name"}));
        assert_eq!(
            keys(&t.problems("tls", "https")),
            ["tls.server_name_override"]
        );
        let t = tls(serde_json::json!({"insecure_skip_verify": true}));
        assert_eq!(
            keys(&t.problems("tls", "http")),
            ["tls.insecure_skip_verify"]
        );
        assert!(
            tls(serde_json::json!({"insecure": true}))
                .problems("tls", "http")
                .is_empty()
        );
        assert!(ClientTls::default().problems("tls", "https").is_empty());
    }

    #[test]
    fn unreadable_and_malformed_files_name_their_key_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hunter2-private-material\n").unwrap();
        let t = ClientTls {
            ca_file: Some(junk.clone()),
            ..ClientTls::default()
        };
        let problems = t.problems("tls", "https");
        assert_eq!(keys(&problems), ["tls.ca_file"]);
        assert!(!problems[0].1.contains("hunter2"), "{problems:?}");
        let t = ClientTls {
            ca_file: Some(dir.path().join("missing.pem")),
            ..ClientTls::default()
        };
        assert_eq!(keys(&t.problems("tls", "https")), ["tls.ca_file"]);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let e = serde_json::from_value::<ClientTls>(serde_json::json!({"ca": "/x"})).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
