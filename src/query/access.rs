//! The access stream: every query answered is itself sealed as an audit record.
//!
//! When the query API is on, the daemon runs one more pipeline, `vellum/access`, that no
//! receiver feeds. Each authenticated request that passes its token's rate limit is
//! sealed there *before* it is answered; if the record cannot be made durable, the
//! caller gets 503 and no entries. The stream is chained, checkpointed and exported like
//! any other, so `vellum verify` checks it:
//!
//! | what | where, under `service.storage.directory` |
//! |---|---|
//! | journal | `pipelines/vellum%2Faccess/journal` |
//! | evidence files (`*.jsonl`, `*.note`) | `access/evidence/vellum%2Faccess/` |
//! | checkpoint key, verifier key | `keys/vellum%2Faccess.key`, `keys/vellum%2Faccess.vkey` |
//!
//! Its checkpoint origin and cadence are those of the first pipeline's `hash_chain`
//! (pipelines in name order), else `vellum.local` and the defaults. Journal retention
//! (`service.storage.retention_days`) applies to it; its evidence files are kept.
//!
//! One record per request:
//!
//! | member | value |
//! |---|---|
//! | `event_type`, `source` | `data_access`, `query_api` |
//! | `severity` | `info`; `medium` for a request refused as out of scope (403) |
//! | `attributes["vellum.client.identity"]` | the token's `name` |
//! | `attributes["vellum.client.address"]` | the caller's address and port |
//! | `attributes.action`, `attributes.outcome` | `query`; `success`, `denied` (403), `refused` (400, 413) or `failure` (500) |
//! | `attributes["http.response.status_code"]`, `attributes["http.request.method"]` | the answer's status, `GET` or `POST` |
//! | `attributes["query.pipeline"]` | the pipeline searched, or the one asked for when refused |
//! | `attributes["query.filters"]` | the parameters as given, `cursor` included (over 16 KiB: their size and SHA-256) |
//! | `attributes["query.returned"]` | how many entries the answer held |
//!
//! Requests without a valid token (401) and over their rate limit (429) are counted, not
//! sealed: sealing them would let anyone who reaches the port grow the evidence.
//! The access stream is queried like any other, with `pipeline=vellum/access`, by a
//! token whose scope names it ([`super::auth`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::component::SubmitError;
use crate::config::ComponentId;
use crate::config::component::DecodeError;
use crate::event::{Record, Severity};
use crate::exporters::{DeliverySettings, ExporterConfig};
use crate::pipeline::PipelinePlan;
use crate::pipeline::intake::PipelineIntake;
use crate::processors::hash_chain::{CheckpointConfig, HashChainConfig, SigningKey};

/// The access stream, and the id of the pipeline that writes it.
pub const ACCESS_STREAM: &str = "vellum/access";
/// The id of the exporter that writes its evidence files.
const ACCESS_EXPORTER: &str = "file/vellum_access";
/// The origin of its checkpoints when no pipeline has a `hash_chain` to borrow it from.
pub const DEFAULT_ORIGIN: &str = "vellum.local";
/// Filters larger than this, as JSON, are sealed as their size and digest.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;

/// Where the access stream's evidence files go.
pub fn evidence_directory(storage: &Path) -> PathBuf {
    storage.join("access").join("evidence")
}

/// The pipeline that writes the access stream: a chain like `like`'s, and a `file`
/// exporter into [`evidence_directory`].
pub fn pipeline_plan(
    storage: &Path,
    like: Option<&HashChainConfig>,
) -> Result<PipelinePlan, String> {
    let chain = HashChainConfig {
        origin: like.map_or_else(|| DEFAULT_ORIGIN.to_string(), |c| c.origin.clone()),
        stream: None,
        checkpoint: like.map_or_else(CheckpointConfig::default, |c| c.checkpoint.clone()),
        signing_key: SigningKey::Auto,
    };
    let factory =
        crate::exporters::registry::find("file").ok_or("the `file` exporter is not registered")?;
    let settings = (factory.decode)(json!({ "directory": evidence_directory(storage) })).map_err(
        |e| match e {
            DecodeError::Invalid { path, message } => {
                format!("the access stream's evidence exporter: {path}: {message}")
            }
            DecodeError::UnknownType(_) => "the `file` exporter is not registered".into(),
        },
    )?;
    let exporter = ExporterConfig {
        type_name: factory.type_name,
        settings,
        delivery: DeliverySettings::default(),
    };
    Ok(PipelinePlan {
        id: ACCESS_STREAM.into(),
        stream: ACCESS_STREAM.into(),
        processors: Vec::new(),
        chain: Some(chain),
        signer: None,
        keys: None,
        exporters: vec![(ComponentId::parse(ACCESS_EXPORTER)?, exporter, None)],
    })
}

/// One request, as the access stream records it.
#[derive(Debug, Clone)]
pub struct Access {
    pub token: String,
    pub peer: Option<SocketAddr>,
    pub method: &'static str,
    pub pipeline: Option<String>,
    pub filters: Value,
    pub status: u16,
    pub returned: usize,
}

impl Access {
    fn outcome(&self) -> &'static str {
        match self.status {
            200..=299 => "success",
            403 => "denied",
            400..=499 => "refused",
            _ => "failure",
        }
    }

    pub fn into_record(self) -> Record {
        let mut r = Record::new("query_api");
        r.event_type = Some("data_access".into());
        r.severity = Some(if self.status == 403 {
            Severity::Medium
        } else {
            Severity::Info
        });
        let outcome = self.outcome();
        let a = &mut r.attributes;
        a.insert("vellum.client.identity".into(), json!(self.token));
        if let Some(peer) = self.peer {
            a.insert("vellum.client.address".into(), json!(peer.to_string()));
        }
        a.insert("action".into(), json!("query"));
        a.insert("outcome".into(), json!(outcome));
        a.insert("http.request.method".into(), json!(self.method));
        a.insert("http.response.status_code".into(), json!(self.status));
        if let Some(p) = self.pipeline {
            a.insert("query.pipeline".into(), json!(p));
        }
        a.insert("query.filters".into(), bounded(self.filters));
        a.insert("query.returned".into(), json!(self.returned));
        r
    }
}

/// The filters, or their size and digest when they are too large to seal whole.
fn bounded(filters: Value) -> Value {
    let text = filters.to_string();
    if text.len() <= MAX_FILTER_BYTES {
        return filters;
    }
    json!({
        "omitted_bytes": text.len(),
        "sha256": hex::encode(Sha256::digest(text.as_bytes())),
    })
}

/// Where access records are sealed.
#[derive(Clone)]
pub struct AccessLog {
    intake: Arc<PipelineIntake>,
}

impl AccessLog {
    pub fn new(intake: Arc<PipelineIntake>) -> AccessLog {
        AccessLog { intake }
    }

    /// Seals the record of one request; returns once it is durable.
    pub async fn seal(&self, access: Access) -> Result<(), SubmitError> {
        let token = access.token.clone();
        let result = self
            .intake
            .submit_internal(vec![access.into_record()])
            .await;
        let outcome = if result.is_ok() { "sealed" } else { "failed" };
        metrics::counter!("vellum_query_access_records_total", "token" => token, "outcome" => outcome)
            .increment(1);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(status: u16, filters: Value) -> Access {
        Access {
            token: "auditor".into(),
            peer: Some("127.0.0.1:5000".parse().unwrap()),
            method: "GET",
            pipeline: Some("logs/a".into()),
            filters,
            status,
            returned: 3,
        }
    }

    #[test]
    fn a_record_says_who_asked_what_and_what_came_back() {
        let r = access(200, json!({"user_id": ["u1"]})).into_record();
        assert_eq!(r.event_type.as_deref(), Some("data_access"));
        assert_eq!(r.attributes["vellum.client.identity"], "auditor");
        assert_eq!(r.attributes["vellum.client.address"], "127.0.0.1:5000");
        assert_eq!(r.attributes["outcome"], "success");
        assert_eq!(r.attributes["query.filters"], json!({"user_id": ["u1"]}));
        assert_eq!(r.attributes["query.returned"], 3);
        let denied = access(403, Value::Null).into_record();
        assert_eq!(denied.attributes["outcome"], "denied");
        assert_eq!(denied.severity, Some(Severity::Medium));
        assert_eq!(
            access(400, Value::Null).into_record().attributes["outcome"],
            "refused"
        );
    }

    #[test]
    fn oversized_filters_are_sealed_as_size_and_digest() {
        let big = json!({"user_id": vec!["x".repeat(100); 500]});
        let text = big.to_string();
        let r = access(200, big).into_record();
        let f = &r.attributes["query.filters"];
        assert_eq!(f["omitted_bytes"], text.len());
        assert_eq!(f["sha256"], hex::encode(Sha256::digest(text.as_bytes())));
    }

    #[test]
    fn the_access_pipeline_borrows_the_origin_and_writes_under_the_storage() {
        let like = HashChainConfig {
            origin: "audit.example".into(),
            stream: None,
            checkpoint: CheckpointConfig::default(),
            signing_key: SigningKey::Auto,
        };
        let plan = pipeline_plan(Path::new("/var/lib/vellum"), Some(&like)).unwrap();
        assert_eq!(plan.stream, ACCESS_STREAM);
        let chain = plan.chain.unwrap();
        assert_eq!(
            chain.origin_line(&plan.stream),
            "audit.example/vellum/access"
        );
        let store = plan.exporters[0].1.capabilities().evidence;
        assert!(
            matches!(store, Some(crate::exporters::EvidenceStore::Directory { ref directory, .. })
                if directory == Path::new("/var/lib/vellum/access/evidence")),
            "{store:?}"
        );
        let fallback = pipeline_plan(Path::new("/s"), None).unwrap();
        assert_eq!(fallback.chain.unwrap().origin, DEFAULT_ORIGIN);
    }
}
