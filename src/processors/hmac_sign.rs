//! `hmac_sign`: adds `kid` and `mac` to every sealed entry.
//!
//! ```yaml
//! processors:
//!   hmac_sign:
//!     keys:                  # a key ring; the first key signs, all of them verify
//!       - { id: k2026, key: "${env:AUDIT_HMAC_KEY}" }
//!       - { id: k2025, key: "${file:/etc/vellum/hmac-2025.key}" }
//! ```
//!
//! `mac = HMAC-SHA256(key, leaf)` over the 32-byte leaf hash (evidence format §1). A key
//! is at least 32 bytes: its UTF-8 text, or binary as `hex:…` / `base64:…`. Rotating a
//! key means putting the new one first; entries signed with older keys still verify as
//! long as the ring given to `vellum verify` holds them.

use serde::Deserialize;

use crate::config::secret::Secret;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacSignConfig {
    /// The key ring, `{ id, key }` each: the first key signs, all of them verify.
    pub keys: Vec<KeyEntry>,
}

#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key's name, written as `kid` in each entry it signs.
    pub id: String,
    /// At least 32 bytes: its UTF-8 text, or binary as `hex:…` / `base64:…`.
    pub key: Secret,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl KeyEntry {
    /// The key's bytes (its text, or `hex:` / `base64:` decoded); the error never
    /// quotes the key.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        crate::evidence::key::key_bytes(self.key.expose())
    }
}

impl HmacSignConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.keys.is_empty() {
            out.push((
                "keys".into(),
                "the key ring is empty: give at least one `{ id, key }`".into(),
            ));
        }
        for (i, k) in self.keys.iter().enumerate() {
            if k.id.is_empty() || k.id.chars().any(|c| c.is_whitespace() || c == '=') {
                out.push((
                    format!("keys[{i}].id"),
                    "a key id is a non-empty word without spaces or `=`".into(),
                ));
            }
            if let Err(problem) = k.bytes() {
                out.push((format!("keys[{i}].key"), problem));
            }
            if self.keys[..i].iter().any(|o| o.id == k.id) {
                out.push((
                    format!("keys[{i}].id"),
                    format!("key id `{}` appears twice", k.id),
                ));
            }
        }
        out
    }
}

impl super::ProcessorSettings for HmacSignConfig {
    fn problems(&self) -> Vec<(String, String)> {
        HmacSignConfig::problems(self)
    }

    fn capabilities(&self) -> super::ProcessorCapabilities {
        super::ProcessorCapabilities {
            seals: Some(super::Seal::Sign),
            ..Default::default()
        }
    }

    fn build(&self, id: &str) -> Result<super::Stage, String> {
        let ring = self
            .keys
            .iter()
            .map(|k| (k.id.clone(), k.bytes().unwrap_or_default()))
            .collect();
        crate::evidence::hmac::KeyRing::new(ring)
            .map(super::Stage::Sign)
            .map_err(|e| {
                let _ = id;
                e.to_string()
            })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
