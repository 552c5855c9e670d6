//! HMAC-SHA256 key rings: the keys that sign entries (`kid`, `mac`) and check them.
//!
//! The first key of a ring signs; every key verifies, so rotating means putting the new
//! key first and keeping the old ones for as long as their entries must verify.
//!
//! Key ring file (`vellum verify --hmac-keys FILE`): one `kid=key` per line, where `key`
//! is a configured key string (its UTF-8 bytes, or `hex:…` / `base64:…`, at least 32
//! bytes). Blank lines and lines starting with `#` are ignored; white space around the
//! kid and the key is dropped.
//!
//! ```text
//! # current key first
//! k2026=hex:8f2a…(64 hex digits or more)
//! k2025=base64:q1Zk…
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

use super::key::{MIN_KEY_BYTES, key_bytes};
use super::merkle::Hash;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("the key ring is empty")]
    Empty,
    #[error("key id {0:?} is invalid: a key id is a non-empty word without spaces or `=`")]
    BadKid(String),
    #[error("key id `{0}` appears twice")]
    DuplicateKid(String),
    #[error("key `{kid}`: {reason}")]
    BadKey { kid: String, reason: String },
    #[error("line {line}: expected `kid=key`")]
    BadLine { line: usize },
    #[error("line {line}: {source}")]
    AtLine {
        line: usize,
        #[source]
        source: Box<KeyRingError>,
    },
    #[error("cannot read key ring {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("mac was made with key `{0}`, which the key ring does not hold")]
    UnknownKid(String),
    #[error("mac is not 64 lowercase hex digits")]
    Malformed,
    #[error("mac does not match key `{0}`")]
    Mismatch(String),
}

/// HMAC-SHA256 keys by id; each is kept keyed, so a mac costs two SHA-256 blocks.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, HmacSha256)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether `kid` can name a key: non-empty, no white space, no `=`.
pub fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty() && !kid.chars().any(|c| c.is_whitespace() || c == '=')
}

impl KeyRing {
    /// A ring of decoded keys, the first of which signs.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Result<KeyRing, KeyRingError> {
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let mut ring = Vec::with_capacity(keys.len());
        for (kid, key) in keys {
            if !is_valid_kid(&kid) {
                return Err(KeyRingError::BadKid(kid));
            }
            if ring.iter().any(|(k, _)| k == &kid) {
                return Err(KeyRingError::DuplicateKid(kid));
            }
            if key.len() < MIN_KEY_BYTES {
                let reason = format!(
                    "key is {} bytes; at least {MIN_KEY_BYTES} are required",
                    key.len()
                );
                return Err(KeyRingError::BadKey { kid, reason });
            }
            let mac = HmacSha256::new_from_slice(&key).map_err(|e| KeyRingError::BadKey {
                kid: kid.clone(),
                reason: e.to_string(),
            })?;
            ring.push((kid, mac));
        }
        Ok(KeyRing { keys: ring })
    }

    /// A ring from `(kid, configured key string)` pairs.
    pub fn from_strings<K: Into<String>, S: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, S)>,
    ) -> Result<KeyRing, KeyRingError> {
        let mut keys = Vec::new();
        for (kid, key) in pairs {
            let kid = kid.into();
            let bytes = key_bytes(key.as_ref()).map_err(|reason| KeyRingError::BadKey {
                kid: kid.clone(),
                reason,
            })?;
            keys.push((kid, bytes));
        }
        KeyRing::new(keys)
    }

    /// Parses the key ring file format described in the module documentation.
    pub fn parse(text: &str) -> Result<KeyRing, KeyRingError> {
        let mut keys = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let (kid, key) = parse_pair(content).map_err(|_| KeyRingError::BadLine { line })?;
            let at_line = |source| KeyRingError::AtLine {
                line,
                source: Box::new(source),
            };
            if !is_valid_kid(&kid) {
                return Err(at_line(KeyRingError::BadKid(kid)));
            }
            if keys.iter().any(|(k, _)| k == &kid) {
                return Err(at_line(KeyRingError::DuplicateKid(kid)));
            }
            let bytes = key_bytes(&key).map_err(|reason| {
                at_line(KeyRingError::BadKey {
                    kid: kid.clone(),
                    reason,
                })
            })?;
            keys.push((kid, bytes));
        }
        KeyRing::new(keys)
    }

    /// Reads and parses a key ring file.
    pub fn load(path: &Path) -> Result<KeyRing, KeyRingError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyRingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        KeyRing::parse(&text)
    }

    /// Parses one `--hmac-key kid=key` argument into `(kid, key string)`.
    pub fn parse_arg(arg: &str) -> Result<(String, String), KeyRingError> {
        let (kid, key) = parse_pair(arg.trim()).map_err(|_| KeyRingError::BadLine { line: 1 })?;
        if !is_valid_kid(&kid) {
            return Err(KeyRingError::BadKid(kid));
        }
        Ok((kid, key))
    }

    /// The id of the signing key.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].0
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == kid)
    }

    /// The signing key's id and its raw mac of `leaf`.
    pub fn sign_raw(&self, leaf: &Hash) -> (&str, Hash) {
        let (kid, keyed) = &self.keys[0];
        let mut mac = keyed.clone();
        mac.update(leaf);
        (kid, mac.finalize().into_bytes().into())
    }

    /// The signing key's id and the lowercase hex mac of `leaf`, as entries carry them.
    pub fn sign(&self, leaf: &Hash) -> (&str, String) {
        let (kid, mac) = self.sign_raw(leaf);
        (kid, hex::encode(mac))
    }

    /// Checks an entry's `mac` (lowercase hex) for `leaf` with key `kid`, in constant time.
    pub fn verify(&self, kid: &str, leaf: &Hash, mac_hex: &str) -> Result<(), MacError> {
        let Some((_, keyed)) = self.keys.iter().find(|(k, _)| k == kid) else {
            return Err(MacError::UnknownKid(kid.to_string()));
        };
        let expected = super::merkle::parse_hex_hash(mac_hex).ok_or(MacError::Malformed)?;
        let mut mac = keyed.clone();
        mac.update(leaf);
        mac.verify_slice(&expected)
            .map_err(|_| MacError::Mismatch(kid.to_string()))
    }
}

fn parse_pair(s: &str) -> Result<(String, String), ()> {
    let (kid, key) = s.split_once('=').ok_or(())?;
    Ok((kid.trim().to_string(), key.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 ("Jefe") has a key shorter than 32 bytes, so the known answer
    /// used here is test case 6: a 131-byte key of 0xaa.
    #[test]
    fn rfc4231_known_answer() {
        let ring = KeyRing::new(vec![("k".into(), vec![0xaa; 131])]).unwrap();
        let mut mac = ring.keys[0].1.clone();
        mac.update(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let ring = KeyRing::from_strings([
            ("new", "n".repeat(32)),
            ("old", format!("hex:{}", "01".repeat(32))),
        ])
        .unwrap();
        let old = KeyRing::from_strings([("old", format!("hex:{}", "01".repeat(32)))]).unwrap();
        let leaf = [7u8; 32];
        let (kid, mac) = ring.sign(&leaf);
        assert_eq!(kid, "new");
        assert_eq!(ring.verify("new", &leaf, &mac), Ok(()));
        let (old_kid, old_mac) = old.sign(&leaf);
        assert_eq!(ring.verify(old_kid, &leaf, &old_mac), Ok(()));
        assert_eq!(
            ring.verify("old", &leaf, &mac),
            Err(MacError::Mismatch("old".into()))
        );
        assert_eq!(
            ring.verify("new", &[8u8; 32], &mac),
            Err(MacError::Mismatch("new".into()))
        );
        assert_eq!(
            ring.verify("gone", &leaf, &mac),
            Err(MacError::UnknownKid("gone".into()))
        );
        assert_eq!(
            ring.verify("new", &leaf, &mac.to_uppercase()),
            Err(MacError::Malformed)
        );
        assert_eq!(
            ring.verify("new", &leaf, &mac[..62]),
            Err(MacError::Malformed)
        );
    }

    #[test]
    fn key_ring_files_parse_and_errors_name_the_line_but_never_the_key() {
        let text = format!(
            "# keys\n\n k2026 = hex:{} \nk2025=base64:{}\n",
            "ab".repeat(32),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(ring.kids().collect::<Vec<_>>(), ["k2026", "k2025"]);
        assert_eq!(ring.signing_kid(), "k2026");

        let err = KeyRing::parse("a=short-secret\n").unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("key `a`") && !err.contains("short-secret"),
            "{err}"
        );
        let err = KeyRing::parse(&format!("# c\nnoequals{}\n", "x".repeat(40)))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "line 2: expected `kid=key`");
        let key = "k".repeat(32);
        let err = KeyRing::parse(&format!("a={key}\na={key}\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "line 2: key id `a` appears twice");
        assert!(matches!(
            KeyRing::parse("# nothing\n"),
            Err(KeyRingError::Empty)
        ));
        assert!(!format!("{ring:?}").contains("abab"));
    }

    #[test]
    fn command_line_pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            KeyRing::parse_arg("k1=base64:AAAA==").unwrap(),
            ("k1".to_string(), "base64:AAAA==".to_string())
        );
        assert!(matches!(
            KeyRing::parse_arg("=x"),
            Err(KeyRingError::BadKid(_))
        ));
        assert!(matches!(
            KeyRing::parse_arg("nokey"),
            Err(KeyRingError::BadLine { .. })
        ));
    }
}
