//! `hash_chain`: seals every record into its stream's chain and Merkle tree.
//!
//! ```yaml
//! processors:
//!   hash_chain:
//!     origin: audit.example.com        # checkpoint origin prefix: `<origin>/<stream>`
//!     stream: logs/audit               # default: the pipeline's id; letters, digits, `._-`, `/` between parts
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

use crate::config::secret::Secret;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashChainConfig {
    /// The checkpoint origin prefix, a schema-less URL: checkpoints are signed for
    /// `<origin>/<stream>`.
    pub origin: String,
    /// The stream this pipeline's records are chained in; default: the pipeline's id.
    /// Parts of letters, digits, `.`, `_` and `-` joined by `/`.
    #[serde(default)]
    pub stream: Option<String>,
    /// When a signed checkpoint is written: whichever comes first.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub signing_key: SigningKey,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// A checkpoint after this many records.
    #[serde(default = "default_every_records")]
    pub every_records: u64,
    /// A checkpoint after this long.
    #[schemars(with = "crate::config::schema::HumanDuration")]
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
    Given(Secret),
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SigningKey, D::Error> {
        let text = Secret::deserialize(d)?;
        Ok(if text.expose() == "auto" {
            SigningKey::Auto
        } else {
            SigningKey::Given(Secret::new(text.expose().trim()))
        })
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Auto => f.write_str("Auto"),
            SigningKey::Given(key) => write!(f, "Given({key:?})"),
        }
    }
}

/// The longest stream name: with its percent-encoded `/`, a folder name stays far
/// below the 255 bytes file systems allow.
pub const MAX_STREAM_NAME: usize = 128;

/// Whether `stream` may name a stream: it becomes a folder (file exporter, journal,
/// keys), an S3 key part and a checkpoint origin line, so it is parts of ASCII letters,
/// digits, `.`, `_` and `-` joined by `/`, no part empty or starting with a dot (which
/// also rules out `.` and `..`), at most [`MAX_STREAM_NAME`] bytes.
pub fn check_stream_name(stream: &str) -> Result<(), String> {
    const RULE: &str = "a stream name is parts of letters, digits, `.`, `_` and `-` joined by `/`";
    if stream.len() > MAX_STREAM_NAME {
        return Err(format!(
            "a stream name is at most {MAX_STREAM_NAME} bytes; this one has {}",
            stream.len()
        ));
    }
    if let Some(c) = stream
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(format!("{} is not allowed: {RULE}", describe(c)));
    }
    for part in stream.split('/') {
        if part.is_empty() {
            return Err(format!(
                "`{stream}` has an empty part (a leading, trailing or doubled `/`): {RULE}"
            ));
        }
        if part.starts_with('.') {
            return Err(format!(
                "`{part}` starts with a dot, which names a hidden, current or parent folder: {RULE}"
            ));
        }
    }
    Ok(())
}

/// A character for a message: control characters by code, never raw.
fn describe(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
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
        if let Some(Err(problem)) = self.stream.as_deref().map(check_stream_name) {
            out.push(("stream".into(), problem));
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
        if let Some(Err(problem)) = self.signer() {
            out.push(("signing_key".into(), problem));
        }
        out
    }

    /// The checkpoint signer when the key is given (`None` for `auto`); the error never
    /// quotes the key.
    pub fn signer(&self) -> Option<Result<crate::evidence::note::NoteSigner, String>> {
        match &self.signing_key {
            SigningKey::Auto => None,
            SigningKey::Given(text) => Some(
                crate::evidence::note::NoteSigner::parse(text.expose()).map_err(|e| e.to_string()),
            ),
        }
    }

    /// The stream a pipeline writes: its chain's `stream`, or else the pipeline's id.
    pub fn stream_of(chain: Option<&HashChainConfig>, pipeline: &str) -> String {
        chain
            .and_then(|c| c.stream.clone())
            .unwrap_or_else(|| pipeline.to_string())
    }

    /// The checkpoint origin line for a stream.
    pub fn origin_line(&self, stream: &str) -> String {
        format!("{}/{stream}", self.origin)
    }

    /// The signer of `stream`'s checkpoints when the key is given (`None` for `auto`):
    /// its name must be the stream's origin line. The error never quotes the key.
    pub fn signer_for(
        &self,
        stream: &str,
    ) -> Result<Option<crate::evidence::note::NoteSigner>, String> {
        let Some(signer) = self.signer().transpose()? else {
            return Ok(None);
        };
        let origin = self.origin_line(stream);
        if signer.name() != origin {
            return Err(format!(
                "the key is named `{}` but this pipeline's checkpoint origin is `{origin}`; \
                 make one with `vellum keygen --name {origin}`",
                signer.name()
            ));
        }
        Ok(Some(signer))
    }
}

impl super::ProcessorSettings for HashChainConfig {
    fn problems(&self) -> Vec<(String, String)> {
        HashChainConfig::problems(self)
    }

    fn capabilities(&self) -> super::ProcessorCapabilities {
        super::ProcessorCapabilities {
            seals: Some(super::Seal::Chain),
            ..Default::default()
        }
    }

    fn build(&self, id: &str) -> Result<super::Stage, String> {
        let _ = id;
        Ok(super::Stage::Chain(self.clone()))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl schemars::JsonSchema for SigningKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "signing_key".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::config::schema::text(
            "secret",
            "`auto` (generated on first start, kept in the storage directory), or a \
             private key as `vellum keygen` prints it; never logged",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_that_are_not_path_safe_are_refused_with_the_reason() {
        for good in ["logs/audit", "audit", "a.b_c-d/e1", &"a".repeat(128)] {
            assert_eq!(check_stream_name(good), Ok(()), "{good}");
        }
        let refused = [
            ("", "empty part"),
            ("..", "`..` starts with a dot"),
            (".", "`.` starts with a dot"),
            ("logs/../x", "`..` starts with a dot"),
            (".hidden", "starts with a dot"),
            ("/abs", "empty part"),
            ("a//b", "empty part"),
            ("a/", "empty part"),
            ("a\\b", "`\\` is not allowed"),
            ("a\0b", "U+0000 is not allowed"),
            ("a\nb", "U+000A is not allowed"),
            ("a\u{1b}b", "U+001B is not allowed"),
            ("a b", "U+0020 is not allowed"),
            ("a+b", "`+` is not allowed"),
            ("caf\u{e9}", "`\u{e9}` is not allowed"),
        ];
        for (bad, reason) in refused {
            let problem = check_stream_name(bad).expect_err(bad);
            assert!(problem.contains(reason), "{bad:?}: {problem}");
        }
        let long = "a".repeat(129);
        let problem = check_stream_name(&long).unwrap_err();
        assert!(problem.contains("at most 128 bytes"), "{problem}");
    }
}
