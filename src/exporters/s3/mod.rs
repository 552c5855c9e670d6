//! `s3`: evidence bundles (evidence format §4) in S3 or an S3-compatible store, each
//! object written with a SHA-256 checksum and, when configured, under Object Lock.
//!
//! ```yaml
//! exporters:
//!   s3/evidence:
//!     bucket: audit-evidence
//!     prefix: evidence/%Y/%m/%d/         # UTC date templates: %Y %m %d %H, and %%
//!     region: eu-west-1                  # default: AWS_REGION, the profile, or us-east-1
//!     endpoint: https://s3.example.net   # an S3-compatible service; default AWS
//!     force_path_style: false            # path-style URLs (most S3-compatible services)
//!     access_key_id: ${env:EVIDENCE_KEY_ID}       # optional, with secret_access_key
//!     secret_access_key: ${env:EVIDENCE_SECRET}   # (and session_token); without
//!                                                 # them the standard AWS chain
//!     object_lock: { mode: COMPLIANCE, retain_days: 2555 }   # or GOVERNANCE
//!     tls: { ca_file: /etc/vellum/minio-ca.pem }   # a private S3 (MinIO, Ceph); mTLS too
//!     batch: { max_records: 10000, max_bytes: 16MiB }
//!     timeout: 30s
//! ```
//!
//! One bundle is written per batch. The driver hands this exporter batches that end with
//! a signed checkpoint, so each bundle's manifest carries the checkpoint of its last
//! entry; the batch limits decide how many checkpoint intervals one bundle spans. The
//! artifact goes first, then its manifest: a manifest never names an artifact that is
//! not there. Key layout: see [`bundle`].
//!
//! Resuming. Manifests chain by `prev_manifest_sha256`, so the exporter keeps the last
//! manifest's key, SHA-256 and last `seq` in memory and in `bundle-head.json` under its
//! state directory (written after each bundle). On start it also lists the keys after
//! that one under the fixed part of the prefix, in case a bundle was written but the
//! file not updated; without the file it lists the whole prefix. A batch delivered again
//! after a restart is cut to the entries after the last bundle, and a put whose key
//! already holds the same bytes (`If-None-Match: *` refused) counts as done, so a
//! bundle is never written twice and the chain of manifests never forks.
//!
//! Failures. This exporter keeps no dead letters: a bundle set aside would be a gap in
//! the evidence. Every failure holds the cursor and is retried with backoff; refused
//! credentials or permissions (`AccessDenied`, `InvalidAccessKeyId`,
//! `SignatureDoesNotMatch`, `ExpiredToken`, any 401/403) also make `/readyz` name it at
//! once, and other refusals are logged as errors until the configuration is fixed.
//!
//! TLS: `tls:` takes the exporters' client settings (`net::tls::client`: `ca_file`,
//! `cert_file`/`key_file`, `server_name_override`, `min_version`,
//! `insecure_skip_verify`) for an `https://` endpoint; with any of them the SDK sends
//! through a client built on that rustls configuration, without them through its own
//! with the system's roots.
//!
//! Permissions: `s3:PutObject` and `s3:PutObjectRetention` (with Object Lock) to write,
//! `s3:GetObject` and `s3:ListBucket` to resume; without `s3:ListBucket` the exporter
//! resumes from its state file alone. `vellum verify s3://…` needs `s3:GetObject` and
//! `s3:ListBucket`. The pipeline needs `hash_chain` with `checkpoint:`, since bundles
//! end at checkpoints.

pub mod bundle;
pub mod client;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::bundle::{KeyLayout, MANIFEST_SUFFIX, Manifest, NO_PREVIOUS, build_artifact};
use self::client::{Connection, StaticCredentials, classify, status_of};
use super::{ExportError, Exporter, ExporterContext, Item};
use crate::config::secret::Secret;
use crate::net::tls::client::ClientTls;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub session_token: Option<Secret>,
    #[serde(default)]
    pub object_lock: Option<ObjectLockConfig>,
    #[serde(default)]
    pub tls: ClientTls,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectLockConfig {
    pub mode: LockMode,
    /// Days each object stays locked after it is written.
    pub retain_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum LockMode {
    #[serde(rename = "COMPLIANCE")]
    Compliance,
    #[serde(rename = "GOVERNANCE")]
    Governance,
}

impl LockMode {
    fn sdk(self) -> ObjectLockMode {
        match self {
            LockMode::Compliance => ObjectLockMode::Compliance,
            LockMode::Governance => ObjectLockMode::Governance,
        }
    }
}

/// S3 rules for bucket names (the common subset every S3-compatible service accepts).
fn is_valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl S3Config {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !is_valid_bucket(&self.bucket) {
            out.push((
                "bucket".into(),
                "give a bucket name: 3 to 63 lowercase letters, digits, `.` or `-`".into(),
            ));
        }
        if let Err(e) = bundle::check_prefix(&self.prefix) {
            out.push(("prefix".into(), e));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            out.push((
                "endpoint".into(),
                "give a URL starting with https:// or http://".into(),
            ));
        }
        if self.region.as_deref().is_some_and(str::is_empty) {
            out.push(("region".into(), "must not be empty".into()));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => out.push((
                "secret_access_key".into(),
                "give it together with access_key_id".into(),
            )),
            (None, Some(_)) => out.push((
                "access_key_id".into(),
                "give it together with secret_access_key".into(),
            )),
            _ => {}
        }
        if self.session_token.is_some() && self.access_key_id.is_none() {
            out.push((
                "session_token".into(),
                "only goes with access_key_id and secret_access_key".into(),
            ));
        }
        if let Some(lock) = &self.object_lock
            && lock.retain_days == 0
        {
            out.push((
                "object_lock.retain_days".into(),
                "must be at least 1".into(),
            ));
        }
        // Without an endpoint the SDK talks to AWS over https.
        let endpoint = self.endpoint.as_deref().unwrap_or("https://");
        out.extend(
            self.tls
                .problems("tls", crate::exporters::http::url_scheme(endpoint)),
        );
        out
    }

    /// The rustls configuration of the `tls` settings, when any is given.
    pub fn tls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ExportError> {
        if self.tls == ClientTls::default() || self.tls.plaintext() {
            return Ok(None);
        }
        let config = self
            .tls
            .config()
            .map_err(|p| ExportError::Permanent(p.to_string()))?;
        crate::exporters::http::warn_if_unverified(&self.tls);
        Ok(Some(Arc::new(config)))
    }

    pub fn connection(&self) -> Connection {
        Connection {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            force_path_style: self.force_path_style,
            credentials: match (&self.access_key_id, &self.secret_access_key) {
                (Some(id), Some(secret)) => Some(StaticCredentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: self.session_token.clone(),
                }),
                _ => None,
            },
            timeout: None,
            tls: None,
        }
    }
}

/// The newest bundle of the stream: what the next manifest chains to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BundleHead {
    manifest_key: String,
    manifest_sha256: String,
    last_seq: u64,
    last_hash: String,
}

const HEAD_FILE: &str = "bundle-head.json";

/// A manifest is a few KiB; anything much larger is not one.
const MAX_MANIFEST_BYTES: i64 = 1 << 20;

pub struct S3Exporter {
    id: String,
    stream: String,
    bucket: String,
    connection: Connection,
    layout: KeyLayout,
    lock: Option<ObjectLockConfig>,
    head_file: PathBuf,
    client: Option<Client>,
    /// `None` until recovered from the state file and the bucket; then `Some(None)`
    /// before the stream's first bundle.
    head: Option<Option<BundleHead>>,
}

/// How a write-once put ended.
enum Put {
    Written,
    /// The key already held an object; these are its bytes.
    Exists(Bytes),
}

impl S3Exporter {
    /// Checks the configuration; the bucket is first contacted on the first batch, so
    /// that a store that is down delays delivery instead of stopping the daemon.
    pub fn open(cfg: &S3Config, context: &ExporterContext) -> Result<S3Exporter, ExportError> {
        let layout = KeyLayout::new(&cfg.prefix, &context.stream)
            .map_err(|e| ExportError::Permanent(format!("prefix {:?}: {e}", cfg.prefix)))?;
        std::fs::create_dir_all(&context.state_dir).map_err(|e| {
            ExportError::Permanent(format!(
                "cannot create {}: {e}",
                context.state_dir.display()
            ))
        })?;
        Ok(S3Exporter {
            id: context.id.clone(),
            stream: context.stream.clone(),
            bucket: cfg.bucket.clone(),
            connection: Connection {
                tls: cfg.tls_config()?,
                ..cfg.connection()
            },
            layout,
            lock: cfg.object_lock.clone(),
            head_file: context.state_dir.join(HEAD_FILE),
            client: None,
            head: None,
        })
    }

    async fn client(&mut self) -> Client {
        if let Some(c) = &self.client {
            return c.clone();
        }
        let c = self.connection.client().await;
        self.client = Some(c.clone());
        c
    }

    async fn deliver(&mut self, batch: &[Item]) -> Result<(), ExportError> {
        let Some(Item::Checkpoint { size, note, .. }) = batch.last() else {
            return Err(ExportError::Permanent(
                "a bundle must end with a checkpoint and this batch does not".into(),
            ));
        };
        let client = self.client().await;
        let head = match &self.head {
            Some(h) => h.clone(),
            None => {
                let recovered = self.recover(&client).await?;
                self.head = Some(recovered.clone());
                recovered
            }
        };
        // After a restart the driver may hand over again what is already in the bucket.
        let after = head.as_ref().map(|h| h.last_seq);
        let entries: Vec<(u64, &[u8])> = batch
            .iter()
            .filter_map(|item| match item {
                Item::Entry { seq, line, .. } if after.is_none_or(|a| *seq > a) => {
                    Some((*seq, &line[..]))
                }
                _ => None,
            })
            .collect();
        let (Some(&(first_seq, _)), Some(&(last_seq, _))) = (entries.first(), entries.last())
        else {
            return Ok(());
        };
        if *size != last_seq + 1 {
            return Err(ExportError::Permanent(format!(
                "the batch's last checkpoint has size {size}, but its entries end at seq {last_seq}: a bundle's checkpoint must cover exactly its entries"
            )));
        }
        if let Some(a) = after
            && first_seq != a + 1
        {
            tracing::warn!(exporter = %self.id, stream = %self.stream, missing_from = a + 1, missing_to = first_seq - 1, "entries are missing between the last bundle and this one; the evidence will show the gap");
        }

        let stream = self.stream.clone();
        let artifact = tokio::task::block_in_place(|| build_artifact(&stream, &entries))
            .map_err(ExportError::Permanent)?;
        let artifact_key = self.layout.artifact_key(
            time::OffsetDateTime::now_utc(),
            artifact.first_seq,
            artifact.last_seq,
        );
        let manifest = Manifest {
            v: 1,
            stream: self.stream.clone(),
            first_seq: artifact.first_seq,
            last_seq: artifact.last_seq,
            count: artifact.count,
            artifact_key: artifact_key.clone(),
            artifact_sha256: hex::encode(artifact.sha256),
            first_prev: artifact.first_prev.clone(),
            last_hash: artifact.last_hash.clone(),
            checkpoint: note.clone(),
            prev_manifest_sha256: head
                .as_ref()
                .map_or(NO_PREVIOUS.to_string(), |h| h.manifest_sha256.clone()),
        };
        let manifest_bytes = Bytes::from(manifest.to_bytes());
        let manifest_sha: [u8; 32] = Sha256::digest(&manifest_bytes).into();
        let manifest_key = format!("{artifact_key}{MANIFEST_SUFFIX}");

        let put = self
            .put_once(
                &client,
                &artifact_key,
                artifact.bytes.clone(),
                &artifact.sha256,
            )
            .await?;
        if let Put::Exists(existing) = put {
            let found: [u8; 32] = Sha256::digest(&existing).into();
            if found != artifact.sha256 {
                return Err(ExportError::Permanent(format!(
                    "{artifact_key} already holds other bytes (sha256 {}, this bundle's is {}); it is left as it is",
                    hex::encode(found),
                    hex::encode(artifact.sha256)
                )));
            }
        }
        let mut new_head = BundleHead {
            manifest_key: manifest_key.clone(),
            manifest_sha256: hex::encode(manifest_sha),
            last_seq: artifact.last_seq,
            last_hash: artifact.last_hash.clone(),
        };
        let put = self
            .put_once(
                &client,
                &manifest_key,
                manifest_bytes.clone(),
                &manifest_sha,
            )
            .await?;
        if let Put::Exists(existing) = put
            && existing != manifest_bytes
        {
            // Written before a restart whose state was older: it describes the same
            // artifact, so it is this bundle's manifest and the chain goes on from it.
            match Manifest::parse(&existing) {
                Ok(m)
                    if m.artifact_sha256 == manifest.artifact_sha256
                        && m.first_seq == manifest.first_seq
                        && m.last_seq == manifest.last_seq =>
                {
                    new_head.manifest_sha256 = hex::encode(Sha256::digest(&existing));
                }
                _ => {
                    return Err(ExportError::Permanent(format!(
                        "{manifest_key} already holds a manifest of another artifact; it is left as it is"
                    )));
                }
            }
        }
        self.save_head(&new_head);
        self.head = Some(Some(new_head));
        metrics::counter!("vellum_s3_bundles_total", "exporter" => self.id.clone()).increment(1);
        metrics::counter!("vellum_s3_bytes_total", "exporter" => self.id.clone())
            .increment((artifact.bytes.len() + manifest_bytes.len()) as u64);
        Ok(())
    }

    /// Puts `body` at `key` unless the key already holds an object: with Object Lock a
    /// second put would not replace the first but add a version after it.
    async fn put_once(
        &self,
        client: &Client,
        key: &str,
        body: Bytes,
        sha256: &[u8; 32],
    ) -> Result<Put, ExportError> {
        let content_type = if key.ends_with(MANIFEST_SUFFIX) {
            "application/json"
        } else {
            "application/gzip"
        };
        let mut put = client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(BASE64.encode(sha256))
            .if_none_match("*")
            .body(ByteStream::from(body));
        if let Some(lock) = &self.lock {
            let until =
                time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(lock.retain_days));
            put = put
                .object_lock_mode(lock.mode.sdk())
                .object_lock_retain_until_date(DateTime::from_secs(until.unix_timestamp()));
        }
        match put.send().await {
            Ok(_) => Ok(Put::Written),
            Err(e) if status_of(&e) == Some(412) => {
                let existing = self.get(client, key, None).await?;
                Ok(Put::Exists(existing))
            }
            Err(e) => Err(classify(&format!("put {key}"), &e)),
        }
    }

    async fn get(
        &self,
        client: &Client,
        key: &str,
        max_bytes: Option<i64>,
    ) -> Result<Bytes, ExportError> {
        let out = client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&format!("get {key}"), &e))?;
        if let Some(max) = max_bytes
            && out.content_length().is_some_and(|len| len > max)
        {
            return Err(ExportError::Permanent(format!(
                "{key} is larger than {max} bytes: not a manifest"
            )));
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ExportError::retryable(format!("get {key}: {e}")))?;
        Ok(body.into_bytes())
    }

    /// Finds the newest bundle: the state file, then any newer manifest in the bucket.
    async fn recover(&self, client: &Client) -> Result<Option<BundleHead>, ExportError> {
        let saved = self.load_head();
        let fixed = self.layout.fixed_prefix();
        // Keys sort by sequence within a date, and dates sort in time when the templates
        // go from year to hour: only keys after the saved one can be newer.
        let start_after = saved
            .as_ref()
            .map(|h| h.manifest_key.as_str())
            .filter(|k| k.starts_with(fixed));
        let mut newest: Option<(String, u64)> = None;
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(fixed)
            .set_start_after(start_after.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                // A writer allowed to put but not to list resumes from its own record.
                Err(e) if status_of(&e) == Some(403) && saved.is_some() => {
                    tracing::warn!(exporter = %self.id, error = %classify(&format!("list {fixed}"), &e), "cannot list the bucket; resuming after the last bundle this exporter recorded");
                    return Ok(saved);
                }
                Err(e) => return Err(classify(&format!("list {fixed}"), &e)),
            };
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if let Some((_, last)) = self.layout.manifest_range(key)
                    && newest.as_ref().is_none_or(|(_, n)| last > *n)
                {
                    newest = Some((key.to_string(), last));
                }
            }
        }
        let Some((key, last)) = newest else {
            return Ok(saved);
        };
        if saved.as_ref().is_some_and(|s| s.last_seq >= last) {
            return Ok(saved);
        }
        let bytes = self.get(client, &key, Some(MAX_MANIFEST_BYTES)).await?;
        let manifest =
            Manifest::parse(&bytes).map_err(|e| ExportError::Permanent(format!("{key}: {e}")))?;
        let head = BundleHead {
            manifest_key: key,
            manifest_sha256: hex::encode(Sha256::digest(&bytes)),
            last_seq: manifest.last_seq,
            last_hash: manifest.last_hash,
        };
        tracing::info!(exporter = %self.id, stream = %self.stream, manifest = %head.manifest_key, last_seq = head.last_seq, "resuming after the newest bundle in the bucket");
        self.save_head(&head);
        Ok(Some(head))
    }

    fn load_head(&self) -> Option<BundleHead> {
        let text = match std::fs::read(&self.head_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(exporter = %self.id, file = %self.head_file.display(), error = %e, "cannot read the last bundle's record; listing the bucket instead");
                return None;
            }
        };
        match serde_json::from_slice(&text) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(exporter = %self.id, file = %self.head_file.display(), error = %e, "the last bundle's record is unreadable; listing the bucket instead");
                None
            }
        }
    }

    /// Best effort: when the file is lost or stale, listing the bucket finds the head.
    fn save_head(&self, head: &BundleHead) {
        let written = serde_json::to_vec(head)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::durable::replace(&self.head_file, &bytes));
        if let Err(e) = written {
            tracing::warn!(exporter = %self.id, file = %self.head_file.display(), error = %e, "cannot record the last bundle; the next start lists the bucket");
        }
    }
}

impl Exporter for S3Exporter {
    fn export<'a>(&'a mut self, batch: &'a [Item]) -> BoxFuture<'a, Result<usize, ExportError>> {
        Box::pin(async move {
            self.deliver(batch).await?;
            Ok(batch.len())
        })
    }
}

impl super::ExporterSettings for S3Config {
    fn problems(&self) -> Vec<(String, String)> {
        S3Config::problems(self)
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            needs_chain: Some("writes bundles that end at signed checkpoints"),
            accepts_when: false,
            checkpoint_aligned: true,
            dead_letters: false,
            evidence: Some(super::EvidenceStore::Objects),
            retention: Some(super::RetentionSetting {
                key: "object_lock.retain_days",
                days: self.object_lock.as_ref().map(|lock| lock.retain_days),
            }),
        }
    }

    fn build(&self, context: &ExporterContext) -> Result<Box<dyn Exporter>, ExportError> {
        Ok(Box::new(S3Exporter::open(self, context)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Result<S3Config, String> {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    fn problem_paths(yaml: &str) -> Vec<String> {
        config(yaml)
            .unwrap()
            .problems()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn a_full_configuration_decodes() {
        let c = config(
            "bucket: audit-evidence\nprefix: evidence/%Y/%m/%d/\nregion: eu-west-1\n\
             endpoint: http://127.0.0.1:9000\nforce_path_style: true\n\
             access_key_id: AKID\nsecret_access_key: s3cr3t\n\
             object_lock: { mode: GOVERNANCE, retain_days: 30 }\n",
        )
        .unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let lock = c.object_lock.as_ref().unwrap();
        assert_eq!((lock.mode, lock.retain_days), (LockMode::Governance, 30));
        let conn = c.connection();
        assert!(conn.force_path_style);
        assert_eq!(
            conn.credentials.unwrap().secret_access_key.expose(),
            "s3cr3t"
        );
    }

    #[test]
    fn mistakes_are_named_by_their_key() {
        assert!(config("bucket: b\nobject_lock: { mode: compliance, retain_days: 1 }").is_err());
        assert!(config("bucket: b\nunknown: 1").is_err());
        assert_eq!(
            problem_paths(
                "bucket: Bad_Bucket\nprefix: /x/%q\nendpoint: s3.example\nregion: ''\n\
                 access_key_id: a\nobject_lock: { mode: COMPLIANCE, retain_days: 0 }"
            ),
            [
                "bucket",
                "prefix",
                "endpoint",
                "region",
                "secret_access_key",
                "object_lock.retain_days"
            ]
        );
        assert_eq!(
            problem_paths("bucket: b12\nsession_token: t"),
            ["session_token"]
        );
    }

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        for good in ["abc", "audit-evidence.2025", "a1b"] {
            assert!(is_valid_bucket(good), "{good}");
        }
        for bad in ["ab", "Abc", "abc-", "-abc", "a_b", &"a".repeat(64)] {
            assert!(!is_valid_bucket(bad), "{bad}");
        }
    }

    fn entry(seq: u64) -> Item {
        Item::Entry {
            index: seq,
            seq,
            line: Bytes::from(format!(
                r#"{{"hash":"h{seq}","prev":"p{seq}","seq":{seq},"stream":"s"}}"#
            )),
        }
    }

    fn checkpoint(size: u64) -> Item {
        Item::Checkpoint {
            index: size,
            size,
            note: format!("o/s\n{size}\nroot\n\n— o/s sig\n"),
        }
    }

    /// Batches that need no request (already in the bucket, or refused before sending),
    /// and one that does, to a port where nothing listens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn delivered_entries_are_skipped_and_misaligned_batches_refused() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing listens on port 9: any request would fail as retryable, not pass.
        let cfg = config(
            "bucket: abc\nendpoint: http://127.0.0.1:9\nregion: us-east-1\n\
             access_key_id: a\nsecret_access_key: b",
        )
        .unwrap();
        let context = ExporterContext {
            id: "s3/test".into(),
            stream: "s".into(),
            state_dir: tmp.path().to_path_buf(),
        };
        let mut ex = S3Exporter::open(&cfg, &context).unwrap();
        ex.head = Some(Some(BundleHead {
            manifest_key: "s/00000000000000000000-00000000000000000009.jsonl.gz.manifest.json"
                .into(),
            manifest_sha256: "ab".repeat(32),
            last_seq: 9,
            last_hash: "h9".into(),
        }));

        let mut again: Vec<Item> = (5..10).map(entry).collect();
        again.push(checkpoint(10));
        ex.export(&again).await.unwrap();

        let mut misaligned: Vec<Item> = (5..13).map(entry).collect();
        misaligned.push(checkpoint(12));
        match ex.export(&misaligned).await {
            Err(ExportError::Permanent(m)) => {
                assert!(m.contains("size 12") && m.contains("seq 12"), "{m}")
            }
            other => panic!("{other:?}"),
        }

        let open_ended: Vec<Item> = (10..13).map(entry).collect();
        assert!(matches!(
            ex.export(&open_ended).await,
            Err(ExportError::Permanent(_))
        ));

        let mut new: Vec<Item> = (8..13).map(entry).collect();
        new.push(checkpoint(13));
        assert!(matches!(
            ex.export(&new).await,
            Err(ExportError::Retryable { .. })
        ));
    }

    #[test]
    fn the_head_record_survives_a_restart_and_garbage_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config("bucket: abc").unwrap();
        let context = ExporterContext {
            id: "s3/test".into(),
            stream: "s".into(),
            state_dir: tmp.path().join("state"),
        };
        let capabilities = crate::exporters::ExporterSettings::capabilities(&cfg);
        assert!(capabilities.checkpoint_aligned && !capabilities.dead_letters);
        let ex = S3Exporter::open(&cfg, &context).unwrap();
        assert_eq!(ex.load_head(), None);
        let head = BundleHead {
            manifest_key: "s/00000000000000000000-00000000000000000009.jsonl.gz.manifest.json"
                .into(),
            manifest_sha256: "ab".repeat(32),
            last_seq: 9,
            last_hash: "cd".repeat(32),
        };
        ex.save_head(&head);
        let again = S3Exporter::open(&cfg, &context).unwrap();
        assert_eq!(again.load_head(), Some(head));
        std::fs::write(tmp.path().join("state").join(HEAD_FILE), b"{not json").unwrap();
        assert_eq!(again.load_head(), None);
    }
}
