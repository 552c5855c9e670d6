//! `hash_chain`: seals every record into its stream's chain and Merkle tree.
//!
//! ```yaml
//! processors:
//!   hash_chain:
//!     origin: audit.example.com        # checkpoint origin prefix: `<origin>/<stream>`
//!     stream: logs/audit               # default: the pipeline's id
//!     checkpoint: { every_records: 10000, every: 60s }
//!     signing_key: ${file:/etc/vellum/checkpoint.key}   # default `auto`
//! ```
//!
//! Each entry gets `stream`, `seq`, `prev` and `hash` (evidence format §1) on the single
//! ordered path into the journal; its head is whatever the journal last made durable, so
//! a crash can neither skip, repeat nor fork a `seq`. Checkpoints (§2) are C2SP signed
//! notes whose key name is the origin line `<origin>/<stream>`, as tlog-checkpoint
//! recommends. `signing_key: auto` generates a key on first start and keeps it in the
//! storage directory (`keys/<stream>.key`, with its `.vkey` beside it for verifiers).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashChainConfig {
    pub origin: String,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub signing_key: SigningKey,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    #[serde(default = "default_every_records")]
    pub every_records: u64,
    #[serde(default = "default_every", with = "humantime_serde")]
    pub every: Duration,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            every_records: default_every_records(),
            every: default_every(),
        }
    }
}

fn default_every_records() -> u64 {
    10_000
}
fn default_every() -> Duration {
    Duration::from_secs(60)
}

/// The checkpoint signing key: `auto`, or a C2SP signed-note private key
/// (`PRIVATE+KEY+<name>+<hash>+<base64>`, as `vellum keygen` prints it).
#[derive(Clone, Default)]
pub enum SigningKey {
    #[default]
    Auto,
    Given(String),
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SigningKey, D::Error> {
        let text = String::deserialize(d)?;
        Ok(if text == "auto" {
            SigningKey::Auto
        } else {
            SigningKey::Given(text.trim().to_string())
        })
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Auto => f.write_str("Auto"),
            SigningKey::Given(_) => f.write_str("Given(<redacted>)"),
        }
    }
}

impl HashChainConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.origin.is_empty() || self.origin.chars().any(|c| c.is_whitespace() || c == '+') {
            out.push((
                "origin".into(),
                "an origin is a schema-less URL without spaces or `+`, e.g. `audit.example.com`"
                    .into(),
            ));
        }
        if let Some(s) = &self.stream
            && (s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '+'))
        {
            out.push((
                "stream".into(),
                "a stream name is non-empty, without spaces or `+`".into(),
            ));
        }
        if self.checkpoint.every_records == 0 {
            out.push((
                "checkpoint.every_records".into(),
                "must be at least 1".into(),
            ));
        }
        if self.checkpoint.every.is_zero() {
            out.push(("checkpoint.every".into(), "must be longer than 0s".into()));
        }
        out
    }

    /// The checkpoint origin line for a stream.
    pub fn origin_line(&self, stream: &str) -> String {
        format!("{}/{stream}", self.origin)
    }
}
