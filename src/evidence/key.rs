//! Key material as configured: a string used as its UTF-8 bytes, or `hex:…` / `base64:…`
//! for binary keys (evidence format §1). Shared by HMAC signing and keyed PII hashing.

use base64::Engine;

/// The shortest key accepted for HMAC-SHA256, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// Decodes a configured key string. The error never repeats the key itself.
pub fn key_bytes(configured: &str) -> Result<Vec<u8>, String> {
    let bytes = if let Some(h) = configured.strip_prefix("hex:") {
        hex::decode(h.trim())
            // The decoder's message names a character of the key: not repeated.
            .map_err(|_| "key has a `hex:` prefix but is not valid hex".to_string())?
    } else if let Some(b) = configured.strip_prefix("base64:") {
        base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|_| "key has a `base64:` prefix but is not valid base64".to_string())?
    } else {
        configured.as_bytes().to_vec()
    };
    if bytes.len() < MIN_KEY_BYTES {
        return Err(format!(
            "key is {} bytes; at least {MIN_KEY_BYTES} are required",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_decode_and_short_keys_are_refused_without_echoing_them() {
        assert_eq!(
            key_bytes(&format!("hex:{}", "ab".repeat(32))).unwrap(),
            vec![0xab; 32]
        );
        assert_eq!(
            key_bytes("base64:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap(),
            vec![0; 32]
        );
        assert_eq!(key_bytes(&"k".repeat(32)).unwrap(), vec![b'k'; 32]);
        let err = key_bytes("short-secret").unwrap_err();
        assert!(
            err.contains("12 bytes") && !err.contains("short-secret"),
            "{err}"
        );
        assert!(key_bytes("hex:zz").is_err());
    }
}
