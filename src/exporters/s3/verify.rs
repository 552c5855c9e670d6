//! The verifier of evidence format §5 for S3 bundles: `vellum verify s3://bucket/prefix`.
//!
//! It lists every object under the prefix, reads every manifest (`*.manifest.json`),
//! groups them by stream and walks each stream's bundles in `seq` order:
//!
//! - the manifest's own fields agree (`v`, its artifact's key, `count`);
//! - manifests chain: `prev_manifest_sha256` is the SHA-256 of the previous manifest's
//!   bytes, 64 zeros for the first;
//! - the checkpoint is signed by a given verifier key, names the stream, has size
//!   `last_seq + 1`, and its root is the Merkle root of entries `0..=last_seq`;
//! - the artifact is there and its bytes hash to `artifact_sha256`;
//! - its entries pass every check of a local evidence file ([`StreamVerifier`]: hash,
//!   mac, `seq` without gaps or repeats, `prev` links), which also proves that bundles
//!   join: entries of consecutive bundles link like consecutive lines of one file;
//! - `first_prev` and `last_hash` are the hashes the entries have.
//!
//! An artifact no manifest names is reported unless its entries are in other bundles (a
//! bundle written again after a restart). Findings name the stream, the `seq` and the
//! object (`s3://bucket/key`), and for entries the line within the decompressed artifact.
//! Only the current version of each object is read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};

use aws_sdk_s3::Client;
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::bundle::{ARTIFACT_SUFFIX, BundleKey, MANIFEST_SUFFIX, Manifest, NO_PREVIOUS};
use super::client::Connection;
use crate::evidence::note::{self, parse_checkpoint};
use crate::evidence::verify::{Finding, Options, Report, StreamVerifier};
use crate::paths::stream_folder;

/// A manifest larger than this is not one.
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// Decompressed artifacts larger than this are reported, not read on.
const MAX_ARTIFACT_TEXT: u64 = 1 << 30;

/// Objects fetched at once.
const PARALLEL_GETS: usize = 8;

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

impl Location {
    pub fn parse(url: &str) -> Result<Location, S3VerifyError> {
        let bad = |why: &str| S3VerifyError::Location(format!("{url:?}: {why}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("an S3 location starts with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name after s3://"));
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum S3VerifyError {
    #[error("{0}")]
    Location(String),
    #[error("cannot list s3://{bucket}/{prefix}: {message}")]
    List {
        bucket: String,
        prefix: String,
        message: String,
    },
    #[error("cannot start the verifier's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Verifies the bundles under `url` (`s3://bucket/prefix`), connecting as `connection`
/// says. Errors only when the prefix cannot be listed; everything wrong with what is
/// there is a finding.
pub fn verify_url(
    url: &str,
    connection: &Connection,
    options: &Options,
) -> Result<Report, S3VerifyError> {
    let location = Location::parse(url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(S3VerifyError::Runtime)?;
    runtime.block_on(async {
        let client = connection.client().await;
        verify_bundles(&client, &location, options).await
    })
}

/// A manifest as read.
struct Loaded {
    key: String,
    sha256: [u8; 32],
    manifest: Manifest,
}

enum Fetch {
    Missing,
    Failed(String),
}

async fn fetch(client: &Client, bucket: &str, key: &str) -> Result<Bytes, Fetch> {
    let out = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => {
            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key())
                || super::client::status_of(&e) == Some(404);
            return Err(if missing {
                Fetch::Missing
            } else {
                Fetch::Failed(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
            });
        }
    };
    match out.body.collect().await {
        Ok(body) => Ok(body.into_bytes()),
        Err(e) => Err(Fetch::Failed(e.to_string())),
    }
}

async fn list(client: &Client, location: &Location) -> Result<Vec<String>, S3VerifyError> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(&location.bucket)
        .prefix(&location.prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| S3VerifyError::List {
            bucket: location.bucket.clone(),
            prefix: location.prefix.clone(),
            message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok(keys)
}

fn finding(stream: &str, seq: Option<u64>, file: String, problem: String) -> Finding {
    Finding {
        stream: stream.to_string(),
        seq,
        file,
        line: None,
        problem,
    }
}

/// Verifies the bundles under `location` with an existing client.
pub async fn verify_bundles(
    client: &Client,
    location: &Location,
    options: &Options,
) -> Result<Report, S3VerifyError> {
    let keys = list(client, location).await?;
    let mut report = Report::for_options(options);

    let manifest_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with(MANIFEST_SUFFIX))
        .collect();
    let fetched: Vec<(&String, Result<Bytes, Fetch>)> = futures::stream::iter(manifest_keys)
        .map(|key| async move { (key, fetch(client, &location.bucket, key).await) })
        .buffered(PARALLEL_GETS)
        .collect()
        .await;
    let mut streams: BTreeMap<String, Vec<Loaded>> = BTreeMap::new();
    for (key, result) in fetched {
        let url = location.url(key);
        let bytes = match result {
            Ok(b) if b.len() > MAX_MANIFEST_BYTES => {
                let problem = format!("manifest is {} bytes: too large to be one", b.len());
                report.findings.push(finding("?", None, url, problem));
                continue;
            }
            Ok(b) => b,
            Err(Fetch::Missing) => continue, // deleted while listing
            Err(Fetch::Failed(e)) => {
                let problem = format!("cannot read the manifest: {e}");
                report.findings.push(finding("?", None, url, problem));
                continue;
            }
        };
        match Manifest::parse(&bytes) {
            Ok(manifest) => streams
                .entry(manifest.stream.clone())
                .or_default()
                .push(Loaded {
                    key: key.clone(),
                    sha256: Sha256::digest(&bytes).into(),
                    manifest,
                }),
            Err(problem) => report.findings.push(finding("?", None, url, problem)),
        }
    }
    report.streams = streams.len() as u64;

    for (stream, bundles) in &mut streams {
        bundles.sort_by(|a, b| {
            (a.manifest.first_seq, a.manifest.last_seq, &a.key).cmp(&(
                b.manifest.first_seq,
                b.manifest.last_seq,
                &b.key,
            ))
        });
        report.checkpoints += bundles.len() as u64;
        verify_stream(client, location, stream, bundles, options, &mut report).await;
    }

    let named: BTreeSet<&str> = streams
        .values()
        .flatten()
        .map(|b| b.manifest.artifact_key.as_str())
        .collect();
    for key in keys.iter().filter(|k| k.ends_with(ARTIFACT_SUFFIX)) {
        if named.contains(key.as_str()) {
            continue;
        }
        let url = location.url(key);
        let parsed = BundleKey::parse(key);
        let owner = parsed.as_ref().and_then(|p| {
            streams
                .iter()
                .find(|(s, _)| stream_folder(s) == p.stream_folder)
        });
        let covered = match (&parsed, owner) {
            (Some(p), Some((_, bundles))) => bundles
                .iter()
                .any(|b| b.manifest.first_seq <= p.first_seq && p.last_seq <= b.manifest.last_seq),
            _ => false,
        };
        if covered {
            report.notes.push(format!(
                "{url} is named by no manifest; its entries are in other bundles"
            ));
        } else {
            let stream = owner.map_or("?", |(s, _)| s.as_str());
            let (seq, range) = match &parsed {
                Some(p) => (
                    Some(p.first_seq),
                    format!("seq {}..={}", p.first_seq, p.last_seq),
                ),
                None => (None, "its entries".to_string()),
            };
            let problem = format!("artifact has no manifest: {range} are not in any bundle");
            report.findings.push(finding(stream, seq, url, problem));
        }
    }
    Ok(report)
}

async fn verify_stream(
    client: &Client,
    location: &Location,
    stream: &str,
    bundles: &[Loaded],
    options: &Options,
    report: &mut Report,
) {
    let mut verifier = StreamVerifier::new(stream, options.keys.as_ref());
    let mut artifacts = futures::stream::iter(bundles)
        .map(|b| fetch(client, &location.bucket, &b.manifest.artifact_key))
        .buffered(PARALLEL_GETS);
    let mut previous: Option<&Loaded> = None;
    for bundle in bundles {
        let artifact = artifacts.next().await;
        let m = &bundle.manifest;
        let manifest_url = location.url(&bundle.key);
        let artifact_url = location.url(&m.artifact_key);
        let mut problem = |seq: Option<u64>, file: &str, text: String| {
            report
                .findings
                .push(finding(stream, seq, file.to_string(), text));
        };

        if m.v != 1 {
            problem(None, &manifest_url, format!("`v` is {}, not 1", m.v));
        }
        if bundle.key.strip_suffix(MANIFEST_SUFFIX) != Some(m.artifact_key.as_str()) {
            problem(
                Some(m.first_seq),
                &manifest_url,
                format!(
                    "names the artifact {:?}; a manifest's key is its artifact's key and {MANIFEST_SUFFIX}",
                    m.artifact_key
                ),
            );
        }
        if m.last_seq < m.first_seq || m.count != m.last_seq - m.first_seq + 1 {
            problem(
                Some(m.first_seq),
                &manifest_url,
                format!(
                    "`count` {} does not fit seq {}..={}",
                    m.count, m.first_seq, m.last_seq
                ),
            );
        }
        let expected_prev = previous.map_or(NO_PREVIOUS.to_string(), |p| hex::encode(p.sha256));
        if m.prev_manifest_sha256 != expected_prev {
            let text = match previous {
                None => "`prev_manifest_sha256` is not 64 zeros, but no earlier manifest of the stream is here: bundles before this one are missing".to_string(),
                Some(p) => format!(
                    "`prev_manifest_sha256` is not the SHA-256 of the previous manifest {}: a bundle between them is missing or a manifest was replaced",
                    location.url(&p.key)
                ),
            };
            problem(Some(m.first_seq), &manifest_url, text);
        }
        match checkpoint_problem(stream, m, options) {
            Ok((size, root)) => verifier.add_checkpoint(size, root, &manifest_url),
            Err(text) => problem(Some(m.last_seq), &manifest_url, text),
        }
        let before = verifier.head();
        if before.next_seq == m.first_seq && hex::encode(before.prev) != m.first_prev {
            let text = if m.first_seq == 0 {
                "`first_prev` of seq 0 is not 64 zeros".to_string()
            } else {
                format!(
                    "`first_prev` is not the hash of seq {} in the previous bundle",
                    m.first_seq - 1
                )
            };
            problem(Some(m.first_seq), &manifest_url, text);
        }

        previous = Some(bundle);
        let bytes = match artifact {
            Some(Ok(bytes)) => bytes,
            Some(Err(Fetch::Missing)) => {
                let text = format!(
                    "artifact is missing: seq {}..={} cannot be checked",
                    m.first_seq, m.last_seq
                );
                problem(Some(m.first_seq), &artifact_url, text);
                continue;
            }
            Some(Err(Fetch::Failed(e))) => {
                problem(
                    Some(m.first_seq),
                    &artifact_url,
                    format!("cannot read the artifact: {e}"),
                );
                continue;
            }
            None => continue,
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != m.artifact_sha256 {
            problem(
                None,
                &artifact_url,
                format!(
                    "artifact's SHA-256 is {digest}, its manifest says {}: the artifact was changed",
                    m.artifact_sha256
                ),
            );
        }
        feed_artifact(&bytes, &artifact_url, &mut verifier, options.max_line_bytes);
        let after = verifier.head();
        if after.next_seq != m.last_seq + 1 {
            let text = match after.next_seq.checked_sub(1) {
                Some(last) => format!(
                    "entries run to seq {last}, but the manifest says the bundle ends at seq {}",
                    m.last_seq
                ),
                None => "the artifact holds no entry".to_string(),
            };
            problem(Some(m.last_seq), &artifact_url, text);
        } else if hex::encode(after.prev) != m.last_hash {
            problem(
                Some(m.last_seq),
                &manifest_url,
                format!("`last_hash` is not the hash of seq {}", m.last_seq),
            );
        }
    }
    verifier.finish_into(report);
}

/// The checkpoint's size and root once its signature, origin and size hold.
fn checkpoint_problem(
    stream: &str,
    m: &Manifest,
    options: &Options,
) -> Result<(u64, [u8; 32]), String> {
    let body = if options.vkeys.is_empty() {
        note::split(&m.checkpoint).map(|(body, _)| body)
    } else {
        note::open(&m.checkpoint, &options.vkeys)
    }
    .map_err(|e| format!("checkpoint rejected: {e}"))?;
    let checkpoint =
        parse_checkpoint(body).map_err(|e| format!("checkpoint body rejected: {e}"))?;
    let origin_fits = match &options.origin_prefix {
        Some(prefix) => checkpoint.origin == format!("{prefix}/{stream}"),
        None => {
            checkpoint.origin == stream
                || checkpoint
                    .origin
                    .strip_suffix(stream)
                    .is_some_and(|head| head.ends_with('/'))
        }
    };
    if !origin_fits {
        return Err(format!(
            "checkpoint origin {:?} is not the origin of stream {stream:?}",
            checkpoint.origin
        ));
    }
    if checkpoint.size != m.last_seq + 1 {
        return Err(format!(
            "checkpoint has size {}, but the bundle ends at seq {}: it must be last_seq + 1",
            checkpoint.size, m.last_seq
        ));
    }
    Ok((checkpoint.size, checkpoint.root))
}

/// Feeds the artifact's lines to the stream's checks, numbering lines from 1.
fn feed_artifact(bytes: &[u8], file: &str, verifier: &mut StreamVerifier, max_line: usize) {
    let mut reader = BufReader::new(MultiGzDecoder::new(bytes).take(MAX_ARTIFACT_TEXT + 1));
    let mut line = Vec::new();
    let (mut line_no, mut total) = (0u64, 0u64);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(n) => {
                total += n as u64;
                if total > MAX_ARTIFACT_TEXT {
                    let text = format!("decompresses to more than {MAX_ARTIFACT_TEXT} bytes");
                    return verifier.file_problem(file, Some(line_no + 1), text);
                }
                line_no += 1;
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if line.len() > max_line {
                    let text = format!(
                        "line is {} bytes, longer than the {max_line} allowed",
                        line.len()
                    );
                    verifier.unreadable(file, line_no, text);
                } else {
                    verifier.feed_line(&line, file, line_no);
                }
            }
            Err(e) => {
                let text = format!("reading stopped: {e}");
                return verifier.file_problem(file, Some(line_no + 1), text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_bucket_and_prefix() {
        assert_eq!(
            Location::parse("s3://audit/evidence/2025/").unwrap(),
            Location {
                bucket: "audit".into(),
                prefix: "evidence/2025/".into()
            }
        );
        assert_eq!(Location::parse("s3://audit").unwrap().prefix, "");
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("/tmp/evidence").is_err());
    }

    fn sealed(n: u64) -> (Vec<Vec<u8>>, crate::evidence::note::NoteSigner, String) {
        use crate::evidence::seal::Chain;
        let mut chain = Chain::new("s", None).unwrap();
        let lines = (0..n)
            .map(|i| {
                let fields = serde_json::json!({ "body": format!("event {i}") });
                chain
                    .seal(fields.as_object().cloned().unwrap_or_default())
                    .line
            })
            .collect();
        let (skey, _) = note::generate("test/s").unwrap();
        let signer = note::NoteSigner::parse(&skey).unwrap();
        let body = note::checkpoint_text("test/s", n, &chain.root());
        let signed = signer.sign(&body).unwrap();
        (lines, signer, signed)
    }

    fn manifest(last_seq: u64, checkpoint: String) -> Manifest {
        Manifest {
            v: 1,
            stream: "s".into(),
            first_seq: 0,
            last_seq,
            count: last_seq + 1,
            artifact_key: "s/a.jsonl.gz".into(),
            artifact_sha256: String::new(),
            first_prev: NO_PREVIOUS.into(),
            last_hash: String::new(),
            checkpoint,
            prev_manifest_sha256: NO_PREVIOUS.into(),
        }
    }

    #[test]
    fn checkpoints_must_be_signed_for_the_stream_and_cover_the_bundle() {
        let (_, signer, signed) = sealed(3);
        let with_key = Options {
            vkeys: vec![signer.verifier()],
            ..Options::default()
        };
        assert!(checkpoint_problem("s", &manifest(2, signed.clone()), &with_key).is_ok());
        let err = checkpoint_problem("s", &manifest(3, signed.clone()), &with_key).unwrap_err();
        assert!(err.contains("size 3") && err.contains("seq 3"), "{err}");
        let err = checkpoint_problem("other", &manifest(2, signed.clone()), &with_key).unwrap_err();
        assert!(err.contains("origin"), "{err}");
        let forged = signed.replacen("\n3\n", "\n2\n", 1);
        let err = checkpoint_problem("s", &manifest(1, forged), &with_key).unwrap_err();
        assert!(err.contains("rejected"), "{err}");
        let (_, _, by_another) = sealed(3);
        assert!(checkpoint_problem("s", &manifest(2, by_another.clone()), &with_key).is_err());
        // Without verifier keys only the form is checked.
        assert!(checkpoint_problem("s", &manifest(2, by_another), &Options::default()).is_ok());
    }

    #[test]
    fn artifact_lines_are_numbered_and_checked() {
        use std::io::Write;
        let (lines, _, _) = sealed(3);
        let mut text = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i == 1 {
                // Changed after sealing: the hash no longer matches.
                text.extend_from_slice(
                    &String::from_utf8_lossy(l)
                        .replace("event 1", "event X")
                        .into_bytes(),
                );
            } else {
                text.extend_from_slice(l);
            }
            text.push(b'\n');
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let bytes = gz.finish().unwrap();
        let mut v = StreamVerifier::new("s", None);
        feed_artifact(&bytes, "s3://b/k", &mut v, 1 << 20);
        assert_eq!(v.next_seq(), 3);
        let found: Vec<(Option<u64>, Option<u64>)> =
            v.findings().iter().map(|f| (f.seq, f.line)).collect();
        // seq 1 was changed on line 2: its hash no longer matches its content.
        assert!(found.contains(&(Some(1), Some(2))), "{:?}", v.findings());

        let mut v = StreamVerifier::new("s", None);
        feed_artifact(&bytes[..bytes.len() / 2], "s3://b/k", &mut v, 1 << 20);
        assert!(
            v.findings()
                .iter()
                .any(|f| f.problem.starts_with("reading stopped")),
            "{:?}",
            v.findings()
        );
    }
}
