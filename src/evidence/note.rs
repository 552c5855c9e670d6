//! Signed notes (C2SP `signed-note` v1.0.0) with Ed25519 keys, and the checkpoint body
//! they carry (C2SP `tlog-checkpoint`).
//!
//! A signed checkpoint looks like this:
//!
//! ```text
//! vellum.example/audit/default
//! 1024
//! <base64 of the 32-byte Merkle root of the first 1024 entries>
//!
//! — vellum.example/audit <base64 of 4-byte key hash || 64-byte Ed25519 signature>
//! ```
//!
//! (origin `<configured prefix>/<stream>`, tree size, root; then the signature over
//! those three lines).
//!
//! Key strings are those of Go's `golang.org/x/mod/sumdb/note`, so keys made by either
//! tool work with the other:
//!
//! - verifier key (vkey): `<name>+<8 hex key hash>+<base64(0x01 || 32-byte public key)>`
//! - signer key (skey): `PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 || 32-byte seed)>`
//!
//! where the key hash is the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as BASE64};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Signature type byte of Ed25519 keys in key strings and key hashes.
pub const ALG_ED25519: u8 = 0x01;

/// A note with more signature lines than this is refused (as Go's implementation does).
pub const MAX_SIGNATURES: usize = 100;

const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Standard base64 that, like Go's `base64.StdEncoding`, ignores non-zero padding bits.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key name {0:?} is invalid: it must be non-empty and contain no spaces and no `+`")]
    BadName(String),
    #[error("a signer key starts with `PRIVATE+KEY+`")]
    NotPrivateKey,
    #[error("a key string has the form <name>+<8 hex digits>+<base64 key>")]
    Shape,
    #[error("key hash {0:?} is not 8 hex digits")]
    BadKeyHash(String),
    #[error("the key part is not valid base64")]
    BadBase64,
    #[error("key type {0:#04x} is not supported; only Ed25519 (0x01) is")]
    UnsupportedType(u8),
    #[error("an Ed25519 key is 32 bytes after its type byte, this one is {0}")]
    BadLength(usize),
    #[error(
        "key hash {declared:08x} does not belong to this name and key (expected {computed:08x})"
    )]
    HashMismatch { declared: u32, computed: u32 },
    #[error("the public key is not a valid Ed25519 point")]
    BadPublicKey,
    #[error("no randomness available to generate a key: {0}")]
    Randomness(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("invalid signature for key {name}+{key_hash:08x}")]
    InvalidSignature { name: String, key_hash: u32 },
    #[error("no signature by a known key; the note is signed by: {}", .signers.join(", "))]
    NoKnownSignature { signers: Vec<String> },
    #[error("ambiguous key {name}+{key_hash:08x}: two different verifier keys share name and hash")]
    AmbiguousKey { name: String, key_hash: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint origin {0:?} is invalid: one non-empty line without control characters")]
    BadOrigin(String),
    #[error("a checkpoint has at least three lines: origin, size and root hash")]
    TooShort,
    #[error("checkpoint size {0:?} is not a decimal number without leading zeros")]
    BadSize(String),
    #[error("checkpoint root {0:?} is not the base64 of 32 bytes")]
    BadRoot(String),
    #[error("checkpoint extension lines must not be empty")]
    EmptyExtension,
    #[error("checkpoint text must end with a newline")]
    NoFinalNewline,
}

/// Whether `name` may name a key: non-empty, no Unicode white space, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn key_hash(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn typed_key(raw: &[u8; 32]) -> String {
    let mut typed = [0u8; 33];
    typed[0] = ALG_ED25519;
    typed[1..].copy_from_slice(raw);
    BASE64.encode(typed)
}

/// Splits `<name>+<hash>+<base64>`, decodes the key and checks its type and length.
fn parse_key_parts(s: &str) -> Result<(String, u32, [u8; 32]), KeyError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hash_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(KeyError::Shape);
    };
    if !is_valid_key_name(name) {
        return Err(KeyError::BadName(name.to_string()));
    }
    if hash_hex.len() != 8 || !hash_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::BadKeyHash(hash_hex.to_string()));
    }
    let declared = u32::from_str_radix(hash_hex, 16)
        .map_err(|_| KeyError::BadKeyHash(hash_hex.to_string()))?;
    let typed = LENIENT_BASE64
        .decode(key_b64)
        .map_err(|_| KeyError::BadBase64)?;
    let Some((&key_type, raw)) = typed.split_first() else {
        return Err(KeyError::BadLength(0));
    };
    if key_type != ALG_ED25519 {
        return Err(KeyError::UnsupportedType(key_type));
    }
    let raw: [u8; 32] = raw.try_into().map_err(|_| KeyError::BadLength(raw.len()))?;
    Ok((name.to_string(), declared, raw))
}

/// Makes a new Ed25519 key pair named `name`: `(skey, vkey)`.
pub fn generate(name: &str) -> Result<(String, String), KeyError> {
    if !is_valid_key_name(name) {
        return Err(KeyError::BadName(name.to_string()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Randomness(e.to_string()))?;
    let signer = NoteSigner::from_seed(name, seed)?;
    Ok((signer.skey(), signer.verifier().vkey()))
}

/// A signing key with its name.
pub struct NoteSigner {
    name: String,
    key_hash: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.key_hash)
    }
}

impl NoteSigner {
    /// Parses a signer key string `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`.
    /// Errors never repeat the key material.
    pub fn parse(skey: &str) -> Result<NoteSigner, KeyError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::NotPrivateKey)?;
        let (name, declared, seed) = parse_key_parts(rest)?;
        let signer = NoteSigner::from_seed(&name, seed)?;
        if signer.key_hash != declared {
            return Err(KeyError::HashMismatch {
                declared,
                computed: signer.key_hash,
            });
        }
        Ok(signer)
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_string()));
        }
        let key = SigningKey::from_bytes(&seed);
        let key_hash = key_hash(name, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_string(),
            key_hash,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// The signer key string (secret: store it as such).
    pub fn skey(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_hash,
            typed_key(&self.key.to_bytes())
        )
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_hash: self.key_hash,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline) into a note with one signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        let mut blob = Vec::with_capacity(4 + signature.len());
        blob.extend_from_slice(&self.key_hash.to_be_bytes());
        blob.extend_from_slice(&signature);
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        ))
    }
}

/// A public key that can check note signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_hash: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key string `<name>+<hash>+<base64(0x01 || public key)>`.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, KeyError> {
        let (name, declared, raw) = parse_key_parts(vkey.trim())?;
        let computed = key_hash(&name, &raw);
        if computed != declared {
            return Err(KeyError::HashMismatch { declared, computed });
        }
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::BadPublicKey)?;
        Ok(NoteVerifier {
            name,
            key_hash: computed,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    pub fn vkey(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_hash,
            typed_key(self.key.as_bytes())
        )
    }

    fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify(text, &signature).is_ok()
    }
}

/// Text of a note: UTF-8 ending in a newline, with no control characters but newlines.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("the text holds control characters"));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub key_hash: u32,
    /// The signature bytes after the 4-byte key hash.
    pub signature: Vec<u8>,
}

/// Splits a note into its text and signature lines, checking its syntax but no
/// signature.
pub fn split(note: &str) -> Result<(&str, Vec<SignatureLine>), NoteError> {
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("the note holds control characters"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, block) = (&note[..split + 1], &note[split + 2..]);
    if block.is_empty() || !block.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the signature block does not end with a newline",
        ));
    }
    let mut lines = Vec::new();
    for line in block[..block.len() - 1].split('\n') {
        if lines.len() == MAX_SIGNATURES {
            return Err(NoteError::Malformed("more than 100 signatures"));
        }
        let line = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::Malformed(
                "a signature line does not start with an em dash and a space",
            ))?;
        let (name, b64) = line.split_once(' ').ok_or(NoteError::Malformed(
            "a signature line has no space between name and signature",
        ))?;
        if !is_valid_key_name(name) || b64.is_empty() {
            return Err(NoteError::Malformed(
                "a signature line has an invalid key name or no signature",
            ));
        }
        let blob = LENIENT_BASE64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("a signature is not valid base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("a signature is shorter than 5 bytes"));
        }
        lines.push(SignatureLine {
            name: name.to_string(),
            key_hash: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
            signature: blob[4..].to_vec(),
        });
    }
    Ok((text, lines))
}

/// Opens a signed note: returns its text when every signature by a known key is valid
/// and at least one known key signed. Signatures by unknown keys are ignored, as the
/// signed-note spec requires, unless no known key signed at all.
pub fn open<'a>(note: &'a str, verifiers: &[NoteVerifier]) -> Result<&'a str, NoteError> {
    let (text, lines) = split(note)?;
    let mut verified: Vec<(&str, u32)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for line in &lines {
        let (name, key_hash) = (line.name.as_str(), line.key_hash);
        let mut candidates = verifiers
            .iter()
            .filter(|v| v.name == name && v.key_hash == key_hash);
        let Some(verifier) = candidates.next() else {
            let id = format!("{name}+{key_hash:08x}");
            if !unknown.contains(&id) {
                unknown.push(id);
            }
            continue;
        };
        if candidates.any(|other| other.key != verifier.key) {
            return Err(NoteError::AmbiguousKey {
                name: name.to_string(),
                key_hash,
            });
        }
        if verified.contains(&(name, key_hash)) {
            continue;
        }
        if !verifier.verifies(text.as_bytes(), &line.signature) {
            return Err(NoteError::InvalidSignature {
                name: name.to_string(),
                key_hash,
            });
        }
        verified.push((name, key_hash));
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature { signers: unknown });
    }
    Ok(text)
}

/// The body of a checkpoint (C2SP `tlog-checkpoint`), without extension lines.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", BASE64.encode(root))
}

/// Whether `origin` can be a checkpoint's first line.
pub fn is_valid_origin(origin: &str) -> bool {
    !origin.is_empty() && !origin.chars().any(char::is_control)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Lines after the root hash, kept verbatim.
    pub extensions: Vec<String>,
}

/// Parses a checkpoint body (the text of an opened note).
pub fn parse_checkpoint(text: &str) -> Result<Checkpoint, CheckpointError> {
    let body = text
        .strip_suffix('\n')
        .ok_or(CheckpointError::NoFinalNewline)?;
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(CheckpointError::TooShort);
    };
    if !is_valid_origin(origin) {
        return Err(CheckpointError::BadOrigin(origin.to_string()));
    }
    let canonical_decimal = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let size_value = size
        .parse::<u64>()
        .ok()
        .filter(|_| canonical_decimal)
        .ok_or_else(|| CheckpointError::BadSize(size.to_string()))?;
    let root_bytes: Hash = LENIENT_BASE64
        .decode(root)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CheckpointError::BadRoot(root.to_string()))?;
    let extensions: Vec<String> = lines.map(str::to_string).collect();
    if extensions.iter().any(String::is_empty) {
        return Err(CheckpointError::EmptyExtension);
    }
    Ok(Checkpoint {
        origin: origin.to_string(),
        size: size_value,
        root: root_bytes,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published example of Go's golang.org/x/mod/sumdb/note (package doc and tests).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
    // Example of the C2SP signed-note specification.
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).unwrap()
    }

    #[test]
    fn signing_the_published_example_reproduces_it_byte_for_byte() {
        let signer = NoteSigner::parse(PETER_SKEY).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_hash(), 0xc74f20a3);
        assert_eq!(signer.verifier().vkey(), PETER_VKEY);
        assert_eq!(signer.skey(), PETER_SKEY);
        // Ed25519 is deterministic (RFC 8032), so this is a true known answer.
        assert_eq!(signer.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
        assert_eq!(
            signer.sign("abc"),
            Err(NoteError::Malformed("the text does not end with a newline"))
        );
    }

    #[test]
    fn published_notes_open_with_their_keys() {
        let spec = NoteVerifier::parse(SPEC_VKEY).unwrap();
        assert_eq!(spec.vkey(), SPEC_VKEY);
        assert_eq!(
            open(SPEC_NOTE, &[spec]).unwrap(),
            "This is an example message.\n"
        );
        let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(open(&both, &[peter()]).unwrap(), TEXT);
        let enoch = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        assert_eq!(open(&both, &[peter(), enoch.clone()]).unwrap(), TEXT);
        assert_eq!(open(&both, &[enoch]).unwrap(), TEXT);
    }

    #[test]
    fn unknown_keys_alone_do_not_open_a_note() {
        let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(
            open(&both, &[]),
            Err(NoteError::NoKnownSignature {
                signers: vec!["PeterNeumann+c74f20a3".into(), "EnochRoot+af0cfe78".into()]
            })
        );
        let spec = NoteVerifier::parse(SPEC_VKEY).unwrap();
        assert!(matches!(
            open(&both, &[spec]),
            Err(NoteError::NoKnownSignature { .. })
        ));
    }

    #[test]
    fn a_bad_signature_by_a_known_key_is_refused_even_next_to_a_good_one() {
        // The Go test's corruption: four characters inserted into the signature.
        let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert_eq!(
            open(&bad, &[peter()]),
            Err(NoteError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_hash: 0xc74f20a3
            })
        );
        let enoch = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        let mixed = format!(
            "{TEXT}\n{ENOCH_SIG}{}ABCD{}",
            &PETER_SIG[..60],
            &PETER_SIG[60..]
        );
        assert!(matches!(
            open(&mixed, &[peter(), enoch]),
            Err(NoteError::InvalidSignature { .. })
        ));
        let changed_text = format!("{}\n{PETER_SIG}", TEXT.replace("answer", "answers"));
        assert!(matches!(
            open(&changed_text, &[peter()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let bad = [
            TEXT.to_string(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
            format!("{TEXT}\n\u{2014} PeterNeumann AAAA\n"),
        ];
        for note in bad {
            assert!(
                matches!(open(&note, &[peter()]), Err(NoteError::Malformed(_))),
                "accepted {note:?}"
            );
        }
        // Repeating a valid signature is not an error.
        let twice = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}");
        assert_eq!(open(&twice, &[peter()]).unwrap(), TEXT);
    }

    #[test]
    fn key_strings_are_parsed_strictly() {
        assert_eq!(
            NoteVerifier::parse("PeterNeumann+c74f20a3"),
            Err(KeyError::Shape)
        );
        assert_eq!(
            NoteVerifier::parse(
                "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::BadName("Peter Neumann".into()))
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::HashMismatch {
                declared: 0xc74f20a4,
                computed: 0xc74f20a3
            })
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::BadKeyHash("c74f20a".into()))
        );
        // From Go's tests: a wrong-length key and an unknown type, hashes adjusted.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(KeyError::BadLength(36))
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::UnsupportedType(0x65))
        );
        assert_eq!(
            NoteSigner::parse(PETER_VKEY).err(),
            Some(KeyError::NotPrivateKey)
        );
        // Every single-character change and every truncation of the keys is refused.
        for key in [PETER_VKEY, PETER_SKEY] {
            let parse = |k: &str| {
                if key == PETER_SKEY {
                    NoteSigner::parse(k).map(|_| ())
                } else {
                    NoteVerifier::parse(k).map(|_| ())
                }
            };
            for i in 0..key.len() {
                let mut b = key.as_bytes().to_vec();
                b[i] = b[i].wrapping_add(1);
                if let Ok(changed) = String::from_utf8(b) {
                    assert!(parse(&changed).is_err(), "accepted {changed}");
                }
                assert!(parse(&key[..i]).is_err(), "accepted {}", &key[..i]);
            }
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let (skey, vkey) = generate("vellum.example/audit").unwrap();
        assert!(skey.starts_with("PRIVATE+KEY+vellum.example/audit+"));
        let signer = NoteSigner::parse(&skey).unwrap();
        let verifier = NoteVerifier::parse(&vkey).unwrap();
        assert_eq!(signer.verifier(), verifier);
        let note = signer.sign("hello\n").unwrap();
        assert_eq!(open(&note, &[verifier]).unwrap(), "hello\n");
        let (_, other) = generate("vellum.example/audit").unwrap();
        let other = NoteVerifier::parse(&other).unwrap();
        assert!(matches!(
            open(&note, &[other]),
            Err(NoteError::NoKnownSignature { .. })
        ));
        assert_eq!(generate("a+b"), Err(KeyError::BadName("a+b".into())));
        assert!(!format!("{signer:?}").contains(&skey[30..]));
    }

    #[test]
    fn checkpoints_round_trip_and_bad_bodies_are_refused() {
        let root: Hash = core::array::from_fn(|i| i as u8);
        let text = checkpoint_text("example.com/log", 7, &root);
        // base64 of bytes 0..32, computed by hand from the alphabet.
        assert_eq!(
            text,
            "example.com/log\n7\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        );
        let parsed = parse_checkpoint(&text).unwrap();
        assert_eq!(
            parsed,
            Checkpoint {
                origin: "example.com/log".into(),
                size: 7,
                root,
                extensions: vec![]
            }
        );
        let with_ext = format!("{text}ext one\n");
        assert_eq!(
            parse_checkpoint(&with_ext).unwrap().extensions,
            vec!["ext one"]
        );
        // The sum.golang.org checkpoint quoted in public test suites.
        let go = parse_checkpoint(
            "go.sum database tree\n13485\n/ZWur4obeiqK+ASdnPK+/Rmz6LPQMUeSmHh0+UkL54Y=\n",
        )
        .unwrap();
        assert_eq!(go.size, 13485);
        let root_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        for (bad, err) in [
            ("o\n7\n".to_string(), CheckpointError::TooShort),
            (
                format!("o\n07\n{root_b64}\n"),
                CheckpointError::BadSize("07".into()),
            ),
            (
                format!("o\n-1\n{root_b64}\n"),
                CheckpointError::BadSize("-1".into()),
            ),
            (
                format!("o\n18446744073709551616\n{root_b64}\n"),
                CheckpointError::BadSize("18446744073709551616".into()),
            ),
            (
                "o\n1\nAAAA\n".to_string(),
                CheckpointError::BadRoot("AAAA".into()),
            ),
            (
                format!("\n1\n{root_b64}\n"),
                CheckpointError::BadOrigin("".into()),
            ),
            (
                format!("o\n1\n{root_b64}\n\nx\n"),
                CheckpointError::EmptyExtension,
            ),
            (format!("o\n1\n{root_b64}"), CheckpointError::NoFinalNewline),
        ] {
            assert_eq!(parse_checkpoint(&bad), Err(err), "{bad:?}");
        }
    }
}
