//! Connecting to S3 or an S3-compatible service, and reading its failures as the export
//! driver needs them: retry (with the service's `Retry-After` when it gives one) or never.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;

use crate::config::secret::Secret;
use crate::exporters::ExportError;

/// Where the service is and who we are to it. Without static keys the standard AWS
/// chain is used: environment, shared profile files, web identity, ECS, EC2 instance
/// metadata.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Without it: `AWS_REGION`, the profile, or `us-east-1`.
    pub region: Option<String>,
    /// An S3-compatible service's URL (`http://127.0.0.1:9000`); without it, AWS.
    pub endpoint: Option<String>,
    /// `https://host/bucket/key` instead of `https://bucket.host/key`.
    pub force_path_style: bool,
    pub credentials: Option<StaticCredentials>,
    /// How long one request may take, connecting included.
    pub timeout: Option<Duration>,
    /// The exporter's `tls` settings, built; without them the SDK's own rustls client
    /// with the system's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The region S3 answers for when nothing else names one.
const FALLBACK_REGION: &str = "us-east-1";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// Builds a client. The SDK's own retries are off: the export driver retries, with
    /// its cursor, and a retry inside the SDK would only hide a sink that is down.
    pub async fn client(&self) -> Client {
        let http = match &self.tls {
            Some(config) => SharedHttpClient::new(RustlsClient::new(config)),
            None => aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::disabled());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose().to_string(),
                c.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "vellum configuration",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        let shared = loader.load().await;
        let mut timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT);
        if let Some(t) = self.timeout {
            timeouts = timeouts.operation_attempt_timeout(t);
        }
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.force_path_style)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.build())
            // Checksums are chosen per request (SHA-256 of what is put) and checked by
            // the verifier over the bytes as stored.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if shared.region().is_none() {
            config = config.region(Region::new(FALLBACK_REGION));
        }
        Client::from_conf(config.build())
    }
}

/// The S3 client's HTTP with the exporter's own rustls config (client certificate,
/// private CA, `server_name_override`…): hyper-util's pooled client over hyper-rustls.
#[derive(Clone)]
struct RustlsClient {
    client: LegacyClient<HttpsConnector<TcpConnector>, SdkBody>,
}

impl std::fmt::Debug for RustlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustlsClient")
    }
}

impl RustlsClient {
    fn new(config: &rustls::ClientConfig) -> RustlsClient {
        let mut http = TcpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // hyper-rustls sets ALPN from the protocols enabled, and panics on one set before.
        let mut config = config.clone();
        config.alpn_protocols.clear();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = LegacyClient::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        RustlsClient { client }
    }
}

impl HttpConnector for RustlsClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            let response = sent.await.map_err(|e| ConnectorError::io(e.into()))?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for RustlsClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// What a failed request means for delivery.
pub fn classify<E>(what: &str, err: &SdkError<E>) -> ExportError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code();
            let detail = context.err().message().unwrap_or_default();
            let message = format!(
                "{what}: HTTP {status}{}{}",
                code.map(|c| format!(" {c}")).unwrap_or_default(),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            );
            if is_unauthorized(status, code) {
                ExportError::Unauthorized(message)
            } else if is_retryable(status, code) {
                let retry_after = context
                    .raw()
                    .headers()
                    .get("retry-after")
                    .and_then(parse_retry_after);
                ExportError::Retryable {
                    message,
                    retry_after,
                }
            } else {
                ExportError::Permanent(message)
            }
        }
        SdkError::ConstructionFailure(_) => {
            ExportError::Permanent(format!("{what}: {}", DisplayErrorContext(err)))
        }
        // Timeouts, refused or reset connections, truncated answers.
        _ => ExportError::retryable(format!("{what}: {}", DisplayErrorContext(err))),
    }
}

/// The HTTP status of a service error, if the failure is one.
pub fn status_of<E>(err: &SdkError<E>) -> Option<u16> {
    match err {
        SdkError::ServiceError(context) => Some(context.raw().status().as_u16()),
        _ => None,
    }
}

/// 5xx, 429 and 408 may clear up; so may a few 4xx S3 uses for passing conditions.
/// Whether S3 refuses the credentials or their permissions: a revoked key or a changed
/// bucket policy, fixed by an operator while the evidence waits.
fn is_unauthorized(status: u16, code: Option<&str>) -> bool {
    status == 401
        || status == 403
        || matches!(
            code,
            Some(
                "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "AccountProblem"
                    | "AllAccessDisabled"
            )
        )
}

fn is_retryable(status: u16, code: Option<&str>) -> bool {
    status >= 500
        || status == 429
        || status == 408
        || matches!(
            code,
            Some(
                "RequestTimeout"
                    | "SlowDown"
                    | "ExpiredToken"
                    | "TokenRefreshRequired"
                    | "OperationAborted"
                    | "ConditionalRequestConflict"
            )
        )
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let wait = at - time::OffsetDateTime::now_utc();
    Some(wait.try_into().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        // A date in the past means: now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let text = later.format(&format).unwrap();
        let wait = parse_retry_after(&text).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn server_trouble_is_retried_and_refusals_are_not() {
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(is_retryable(status, None), "{status}");
        }
        for (status, code) in [
            (403, "AccessDenied"),
            (404, "NoSuchBucket"),
            (400, "InvalidRequest"),
            (400, "InvalidArgument"),
            (412, "PreconditionFailed"),
        ] {
            assert!(!is_retryable(status, Some(code)), "{status} {code}");
        }
        assert!(is_retryable(400, Some("RequestTimeout")));
    }

    #[test]
    fn refused_credentials_and_permissions_are_unauthorized_not_malformed() {
        for (status, code) in [
            (403, Some("AccessDenied")),
            (403, Some("InvalidAccessKeyId")),
            (403, Some("SignatureDoesNotMatch")),
            (400, Some("ExpiredToken")),
            (400, Some("InvalidToken")),
            (403, None),
            (401, None),
        ] {
            assert!(is_unauthorized(status, code), "{status} {code:?}");
        }
        for (status, code) in [
            (404, Some("NoSuchBucket")),
            (400, Some("InvalidRequest")),
            (412, Some("PreconditionFailed")),
            (503, Some("SlowDown")),
        ] {
            assert!(!is_unauthorized(status, code), "{status} {code:?}");
        }
    }

    #[test]
    fn static_credentials_do_not_print_the_secret() {
        let c = StaticCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG"),
            session_token: Some(Secret::new("token")),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalr") && !shown.contains("token"));
    }
}
