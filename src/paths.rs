//! Names on disk derived from names in configuration or records.

/// Percent-encodes a stream name into a folder name. Configuration refuses names that
/// are not path-safe (`hash_chain::check_stream_name`); whatever the name, the folder is
/// one ordinary path component: a leading dot is encoded (so never `.`, `..` or hidden)
/// and an empty name becomes `%`, which no other name encodes to.
pub fn stream_folder(stream: &str) -> String {
    if stream.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(stream.len());
    for (i, b) in stream.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::stream_folder;

    #[test]
    fn stream_names_become_unambiguous_folders() {
        assert_eq!(stream_folder("logs/audit"), "logs%2Faudit");
        assert_eq!(stream_folder("a_b-c.d"), "a_b-c.d");
        // Never the folder itself, its parent, a hidden one, or a path.
        assert_eq!(stream_folder(".."), "%2E.");
        assert_eq!(stream_folder("."), "%2E");
        assert_eq!(stream_folder(".x"), "%2Ex");
        assert_eq!(stream_folder(""), "%");
        assert_eq!(stream_folder("../../etc"), "%2E.%2F..%2Fetc");
        assert_eq!(stream_folder("a\\b\0"), "a%5Cb%00");
        assert_ne!(stream_folder("logs/a"), stream_folder("logs%2Fa"));
    }
}
