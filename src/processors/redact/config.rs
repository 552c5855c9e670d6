//! The `redact` processor's configuration and its errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// What happens to a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Replace it with `[REDACTED:<detector>]`.
    Redact,
    /// Replace it with `[<detector>:hmac:<16 hex>]`, a keyed token that correlates.
    Hash,
    /// Drop the record and emit a `pii_blocked` record in its place.
    Block,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Redact => "redact",
            Policy::Hash => "hash",
            Policy::Block => "block",
        }
    }
}

/// `policy:` is either one policy for every detector or a map from detector name (or
/// `default`) to a policy: `{default: redact, email: hash, private_key: block}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyConfig {
    Uniform(Policy),
    PerDetector(BTreeMap<String, Policy>),
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::Uniform(Policy::Redact)
    }
}

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PolicyVisitor;

        impl<'de> Visitor<'de> for PolicyVisitor {
            type Value = PolicyConfig;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`redact`, `hash` or `block`, or a map from detector name (or `default`) to one of them",
                )
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<PolicyConfig, E> {
                Policy::deserialize(de::value::StrDeserializer::<E>::new(s))
                    .map(PolicyConfig::Uniform)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyConfig, A::Error> {
                let mut policies = BTreeMap::new();
                while let Some((name, policy)) = map.next_entry::<String, Policy>()? {
                    if policies.insert(name.clone(), policy).is_some() {
                        return Err(de::Error::custom(format!(
                            "policy for `{name}` given twice"
                        )));
                    }
                }
                Ok(PolicyConfig::PerDetector(policies))
            }
        }

        deserializer.deserialize_any(PolicyVisitor)
    }
}

/// Field-level rules. Paths are dotted and start at `body` or `attributes`
/// (`attributes.password`, `body.user.ssn`, `body.messages.*.content`); `*` matches any key
/// or array index; a path continues into JSON embedded in a string.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// Replaced whole, whatever the value looks like.
    #[serde(default)]
    pub always_redact: Vec<String>,
    /// Left untouched: neither scanned nor redacted.
    #[serde(default)]
    pub never_scan: Vec<String>,
    /// Key names, anywhere in a record, whose values are replaced whole, in addition to
    /// the built-in list (see the module documentation).
    #[serde(default)]
    pub sensitive_keys: Vec<String>,
}

/// A detector defined by a regular expression (Rust `regex` syntax), matched against each
/// string; every match is a finding.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    pub name: String,
    pub pattern: String,
    #[serde(default)]
    pub policy: Option<Policy>,
}

#[derive(Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Built-in detectors to run; all of them when absent.
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
    /// Key for `hash`: a string of at least 32 bytes, or `hex:`/`base64:` binary.
    #[serde(default)]
    pub hash_key: Option<crate::config::secret::Secret>,
    #[serde(default)]
    pub fields: FieldsConfig,
    #[serde(default)]
    pub custom: Vec<CustomDetectorConfig>,
}

impl fmt::Debug for RedactConfig {
    // Written by hand so that the hash key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactConfig")
            .field("policy", &self.policy)
            .field("detectors", &self.detectors)
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<set>"))
            .field("fields", &self.fields)
            .field("custom", &self.custom)
            .finish()
    }
}

/// Why a `redact` configuration was refused. Messages name the processor and the
/// offending item; they never repeat the hash key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactConfigError {
    #[error("redact processor `{id}`: unknown detector `{name}`; built-in detectors are {known}")]
    UnknownDetector {
        id: String,
        name: String,
        known: String,
    },
    #[error("redact processor `{id}`: detector `{name}` is listed twice")]
    DuplicateDetector { id: String, name: String },
    #[error(
        "redact processor `{id}`: custom detector name `{name}` must be lowercase letters, digits and `_`, start with a letter, and differ from built-in and other custom detectors"
    )]
    InvalidCustomName { id: String, name: String },
    #[error("redact processor `{id}`: custom detector `{name}` has an invalid pattern: {reason}")]
    InvalidPattern {
        id: String,
        name: String,
        reason: String,
    },
    #[error("redact processor `{id}`: at most {max} custom detectors are supported")]
    TooManyCustomDetectors { id: String, max: usize },
    #[error("redact processor `{id}`: custom detector `{name}` matches the empty string")]
    EmptyMatch { id: String, name: String },
    #[error(
        "redact processor `{id}`: policy `hash` is used by {detectors} but `hash_key` is not set"
    )]
    MissingHashKey { id: String, detectors: String },
    #[error("redact processor `{id}`: hash_key: {reason}")]
    InvalidHashKey { id: String, reason: String },
    #[error("redact processor `{id}`: `policy` names `{name}`, which is not an enabled detector")]
    PolicyForUnknownDetector { id: String, name: String },
    #[error(
        "redact processor `{id}`: custom detector `{name}` has a policy both in `policy` and in its own entry"
    )]
    PolicyGivenTwice { id: String, name: String },
    #[error(
        "redact processor `{id}`: field path `{path}` must be `body`, or start with `body.` or `attributes.`"
    )]
    InvalidFieldPath { id: String, path: String },
    #[error(
        "redact processor `{id}`: field path `{path}` is in both `always_redact` and `never_scan`"
    )]
    ConflictingFieldPath { id: String, path: String },
    #[error("redact processor `{id}`: `fields.sensitive_keys` holds an empty name")]
    EmptySensitiveKey { id: String },
    #[error("redact processor `{id}`: the detectors' patterns cannot be combined: {reason}")]
    Prefilter { id: String, reason: String },
}

impl RedactConfigError {
    /// Where in `cfg` the problem is, as a path inside the component (`custom[1].pattern`,
    /// `detectors[0]`), for the loader to locate in the YAML.
    pub fn path_in(&self, cfg: &RedactConfig) -> String {
        use RedactConfigError as E;
        let custom = |name: &str, key: &str| match cfg.custom.iter().position(|c| c.name == name) {
            Some(i) => format!("custom[{i}].{key}"),
            None => "custom".into(),
        };
        let detector = |name: &str| {
            let listed: Vec<&String> = cfg.detectors.iter().flatten().collect();
            // The last one: for a name listed twice, the second is the problem.
            match listed.iter().rposition(|d| *d == name) {
                Some(i) => format!("detectors[{i}]"),
                None => "detectors".into(),
            }
        };
        let field = |path: &str| {
            let at = |list: &[String], key: &str| {
                list.iter()
                    .position(|p| p == path)
                    .map(|i| format!("fields.{key}[{i}]"))
            };
            at(&cfg.fields.never_scan, "never_scan")
                .or_else(|| at(&cfg.fields.always_redact, "always_redact"))
                .unwrap_or_else(|| "fields".into())
        };
        match self {
            E::UnknownDetector { name, .. } | E::DuplicateDetector { name, .. } => detector(name),
            E::InvalidCustomName { name, .. } => custom(name, "name"),
            E::InvalidPattern { name, .. } | E::EmptyMatch { name, .. } => {
                if cfg.custom.iter().any(|c| &c.name == name) {
                    custom(name, "pattern")
                } else {
                    "fields.sensitive_keys".into()
                }
            }
            E::TooManyCustomDetectors { .. } => "custom".into(),
            E::MissingHashKey { .. } | E::InvalidHashKey { .. } => "hash_key".into(),
            E::PolicyForUnknownDetector { name, .. } => format!("policy.{name}"),
            E::PolicyGivenTwice { name, .. } => custom(name, "policy"),
            E::InvalidFieldPath { path, .. } | E::ConflictingFieldPath { path, .. } => field(path),
            E::EmptySensitiveKey { .. } => "fields.sensitive_keys".into(),
            E::Prefilter { .. } => String::new(),
        }
    }
}

impl schemars::JsonSchema for PolicyConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "redact_policy".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let policy = g.subschema_for::<Policy>();
        schemars::json_schema!({
            "description": "one policy for every detector, or a map from detector name (or `default`) to a policy",
            "anyOf": [policy, { "type": "object", "additionalProperties": policy }]
        })
    }
}
