//! Evidence bundles (evidence format §4): where they go, and what they hold.
//!
//! Object keys, for the stream `logs/audit` and `prefix: evidence/%Y/%m/%d/`:
//!
//! ```text
//! evidence/2025/06/01/logs%2Faudit/00000000000000000000-00000000000000000049.jsonl.gz
//! evidence/2025/06/01/logs%2Faudit/00000000000000000000-00000000000000000049.jsonl.gz.manifest.json
//! ```
//!
//! that is `<prefix, rendered at upload time in UTC>/<stream>/<first seq>-<last seq>.jsonl.gz`
//! and the manifest beside it, the stream percent-encoded as the `file` exporter names
//! its folders and the sequence numbers written with 20 digits so that keys sort as the
//! bundles follow each other. The prefix may hold `%Y`, `%m`, `%d`, `%H` (UTC) and `%%`;
//! with the units from the largest to the smallest, keys also sort by time.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;

use crate::evidence::jcs;
use crate::paths::stream_folder;

pub const ARTIFACT_SUFFIX: &str = ".jsonl.gz";
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// `prev_manifest_sha256` of a stream's first bundle.
pub const NO_PREVIOUS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where one stream's bundles are written.
#[derive(Debug, Clone)]
pub struct KeyLayout {
    /// The prefix as configured, ending in `/` unless empty.
    template: String,
    folder: String,
}

impl KeyLayout {
    pub fn new(prefix: &str, stream: &str) -> Result<KeyLayout, String> {
        check_prefix(prefix)?;
        let mut template = prefix.to_string();
        if !template.is_empty() && !template.ends_with('/') {
            template.push('/');
        }
        Ok(KeyLayout {
            template,
            folder: stream_folder(stream),
        })
    }

    /// The part of the prefix that does not change with time: where listing starts.
    pub fn fixed_prefix(&self) -> &str {
        let end = self.template.find('%').unwrap_or(self.template.len());
        &self.template[..end]
    }

    /// The artifact key of entries `first..=last` uploaded at `at`.
    pub fn artifact_key(&self, at: time::OffsetDateTime, first: u64, last: u64) -> String {
        format!(
            "{}{}/{first:020}-{last:020}{ARTIFACT_SUFFIX}",
            render(&self.template, at),
            self.folder
        )
    }

    /// The sequence range of one of this stream's manifests, from its key.
    pub fn manifest_range(&self, key: &str) -> Option<(u64, u64)> {
        let parsed = BundleKey::parse(key)?;
        (parsed.is_manifest && parsed.stream_folder == self.folder)
            .then_some((parsed.first_seq, parsed.last_seq))
    }
}

/// Whether a configured prefix can be used: no leading `/`, known `%` templates only.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.starts_with('/') {
        return Err("must not start with `/` (object keys have no leading slash)".into());
    }
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y' | 'm' | 'd' | 'H' | '%') => {}
                Some(other) => {
                    return Err(format!(
                        "`%{other}` is not a date template: use %Y, %m, %d, %H or %%"
                    ));
                }
                None => return Err("ends in a lone `%`: write `%%` for a percent sign".into()),
            }
        }
    }
    Ok(())
}

/// The prefix with its date templates filled in.
fn render(template: &str, at: time::OffsetDateTime) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", at.year())),
            Some('m') => out.push_str(&format!("{:02}", u8::from(at.month()))),
            Some('d') => out.push_str(&format!("{:02}", at.day())),
            Some('H') => out.push_str(&format!("{:02}", at.hour())),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// What an object key says about the bundle object it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleKey<'a> {
    pub stream_folder: &'a str,
    pub first_seq: u64,
    pub last_seq: u64,
    pub is_manifest: bool,
}

impl<'a> BundleKey<'a> {
    /// Reads `…/<stream>/<20 digits>-<20 digits>.jsonl.gz[.manifest.json]`.
    pub fn parse(key: &'a str) -> Option<BundleKey<'a>> {
        let (artifact, is_manifest) = match key.strip_suffix(MANIFEST_SUFFIX) {
            Some(a) => (a, true),
            None => (key, false),
        };
        let rest = artifact.strip_suffix(ARTIFACT_SUFFIX)?;
        let (dir, name) = rest.rsplit_once('/')?;
        let stream_folder = dir.rsplit('/').next()?;
        let (first, last) = name.split_once('-')?;
        let number = |s: &str| {
            (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        Some(BundleKey {
            stream_folder,
            first_seq: number(first)?,
            last_seq: number(last)?,
            is_manifest,
        })
    }
}

/// A bundle's manifest (evidence format §4), stored as its RFC 8785 canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub v: u64,
    pub stream: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    pub artifact_key: String,
    pub artifact_sha256: String,
    pub first_prev: String,
    pub last_hash: String,
    pub checkpoint: String,
    pub prev_manifest_sha256: String,
}

impl Manifest {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        let value = serde_json::to_value(self).unwrap_or_default();
        jcs::to_vec(&value)
    }

    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not readable: {e}"))
    }
}

/// The gzip JSON Lines artifact of consecutive entries.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub bytes: Bytes,
    pub sha256: [u8; 32],
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    /// `prev` of the first entry and `hash` of the last, as written in them.
    pub first_prev: String,
    pub last_hash: String,
}

/// The integrity fields a bundle's manifest repeats.
#[derive(Deserialize)]
struct Link {
    stream: String,
    prev: String,
    hash: String,
}

/// Compresses `entries` (`seq`, canonical line without newline), which must belong to
/// `stream`, into an artifact.
pub fn build_artifact(stream: &str, entries: &[(u64, &[u8])]) -> Result<Artifact, String> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Err("a bundle needs at least one entry".into());
    };
    let link = |(seq, line): &(u64, &[u8])| -> Result<Link, String> {
        let link: Link = serde_json::from_slice(line)
            .map_err(|e| format!("entry seq {seq} lacks its integrity fields: {e}"))?;
        if link.stream != stream {
            return Err(format!(
                "entry seq {seq} belongs to stream {:?}, not {stream:?}",
                link.stream
            ));
        }
        Ok(link)
    };
    let (head, tail) = (link(first)?, link(last)?);
    let raw: usize = entries.iter().map(|(_, l)| l.len() + 1).sum();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw / 4 + 64),
        flate2::Compression::default(),
    );
    let compressed = (|| {
        for (_, line) in entries {
            gz.write_all(line)?;
            gz.write_all(b"\n")?;
        }
        gz.finish()
    })()
    .map_err(|e| format!("cannot compress the bundle: {e}"))?;
    Ok(Artifact {
        sha256: Sha256::digest(&compressed).into(),
        bytes: Bytes::from(compressed),
        first_seq: first.0,
        last_seq: last.0,
        count: entries.len() as u64,
        first_prev: head.prev,
        last_hash: tail.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn at(y: i32, m: u8, d: u8, h: u8) -> time::OffsetDateTime {
        let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
        date.with_hms(h, 5, 9).unwrap().assume_utc()
    }

    #[test]
    fn keys_render_dates_and_sort_by_sequence() {
        let layout = KeyLayout::new("evidence/%Y/%m/%d/%H", "logs/audit").unwrap();
        assert_eq!(layout.fixed_prefix(), "evidence/");
        let key = layout.artifact_key(at(2025, 6, 1, 7), 0, 49);
        assert_eq!(
            key,
            "evidence/2025/06/01/07/logs%2Faudit/00000000000000000000-00000000000000000049.jsonl.gz"
        );
        let later = layout.artifact_key(at(2025, 6, 1, 7), 50, 1000);
        assert!(later > key);
        let manifest = format!("{later}{MANIFEST_SUFFIX}");
        assert_eq!(layout.manifest_range(&manifest), Some((50, 1000)));
        assert_eq!(layout.manifest_range(&later), None, "an artifact");
        let other = KeyLayout::new("evidence/%Y/%m/%d/%H", "logs/other").unwrap();
        assert_eq!(other.manifest_range(&manifest), None, "another stream");

        let flat = KeyLayout::new("", "s").unwrap();
        assert_eq!(flat.fixed_prefix(), "");
        assert_eq!(
            flat.artifact_key(at(2025, 1, 2, 3), 7, 7),
            "s/00000000000000000007-00000000000000000007.jsonl.gz"
        );
        let pct = KeyLayout::new("a%%b/", "s").unwrap();
        assert_eq!(
            pct.artifact_key(at(2025, 1, 2, 3), 1, 2),
            "a%b/s/00000000000000000001-00000000000000000002.jsonl.gz"
        );
        assert_eq!(pct.fixed_prefix(), "a");
    }

    #[test]
    fn bad_prefixes_are_explained() {
        assert!(check_prefix("evidence/%Y/").is_ok());
        assert!(
            check_prefix("/evidence")
                .unwrap_err()
                .contains("leading slash")
        );
        assert!(check_prefix("ev/%j/").unwrap_err().contains("`%j`"));
        assert!(check_prefix("ev/%").unwrap_err().contains("lone"));
    }

    #[test]
    fn bundle_keys_parse_strictly() {
        let k = BundleKey::parse("p/q/s%2Fx/00000000000000000003-00000000000000000009.jsonl.gz")
            .unwrap();
        assert_eq!(
            k,
            BundleKey {
                stream_folder: "s%2Fx",
                first_seq: 3,
                last_seq: 9,
                is_manifest: false
            }
        );
        for bad in [
            "s/3-9.jsonl.gz",
            "s/00000000000000000003-00000000000000000009.jsonl",
            "00000000000000000003-00000000000000000009.jsonl.gz",
            "s/0000000000000000000x-00000000000000000009.jsonl.gz",
        ] {
            assert_eq!(BundleKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn manifests_are_canonical_json_with_the_contract_fields() {
        let m = Manifest {
            v: 1,
            stream: "s".into(),
            first_seq: 0,
            last_seq: 1,
            count: 2,
            artifact_key: "k.jsonl.gz".into(),
            artifact_sha256: "ab".into(),
            first_prev: "00".into(),
            last_hash: "cd".into(),
            checkpoint: "o\n2\nr\n\n— k s\n".into(),
            prev_manifest_sha256: NO_PREVIOUS.into(),
        };
        let text = String::from_utf8(m.to_bytes()).unwrap();
        // Written by hand: members sorted by name, no whitespace, `\n` escaped.
        let expected = concat!(
            r#"{"artifact_key":"k.jsonl.gz","artifact_sha256":"ab","checkpoint":"o\n2\nr\n\n— k s\n","#,
            r#""count":2,"first_prev":"00","first_seq":0,"last_hash":"cd","last_seq":1,"#,
            r#""prev_manifest_sha256":"0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""stream":"s","v":1}"#
        );
        assert_eq!(text, expected);
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        assert!(Manifest::parse(b"{\"v\":1}").is_err());
    }

    #[test]
    fn artifacts_hold_the_lines_and_the_chain_link() {
        let a = br#"{"hash":"h0","prev":"p0","seq":0,"stream":"s"}"#;
        let b = br#"{"hash":"h1","prev":"h0","seq":1,"stream":"s"}"#;
        let art = build_artifact("s", &[(0, &a[..]), (1, &b[..])]).unwrap();
        assert_eq!((art.first_seq, art.last_seq, art.count), (0, 1, 2));
        assert_eq!(
            (art.first_prev.as_str(), art.last_hash.as_str()),
            ("p0", "h1")
        );
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&art.bytes[..])
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, [&a[..], b"\n", &b[..], b"\n"].concat());
        let digest: [u8; 32] = Sha256::digest(&art.bytes).into();
        assert_eq!(art.sha256, digest);
        // The same entries give the same bytes: a re-sent bundle is recognised.
        let again = build_artifact("s", &[(0, &a[..]), (1, &b[..])]).unwrap();
        assert_eq!(again.bytes, art.bytes);

        assert!(build_artifact("other", &[(0, &a[..])]).is_err());
        assert!(build_artifact("s", &[(0, &b"{}"[..])]).is_err());
        assert!(build_artifact("s", &[]).is_err());
    }
}
