//! The `s3` exporter against a real S3-compatible server (`moto_server`, from the test
//! venv that scripts/test.sh sets up): bundles under Object Lock with checksums,
//! `vellum verify s3://…` passing on them and failing on a changed or a removed bundle,
//! and delivery through a faulty network path (500s, 429 with Retry-After, stalls past
//! the timeout, resets, refused connections, a crash in the middle) that loses nothing
//! and writes nothing twice.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectLockMode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use common::peers;
use common::*;
use peers::moto::{Moto, connection, create_locked_bucket, objects};

const PREFIX: &str = "evidence/%Y/%m/%d/";

fn config(dir: &Path, gateway: u16, endpoint: &str, bucket: &str) -> String {
    format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events }}
processors:
  hash_chain:
    origin: test.vellum
    checkpoint: {{ every_records: 50, every: 1s }}
exporters:
  s3/evidence:
    bucket: {bucket}
    prefix: {PREFIX}
    endpoint: {endpoint}
    region: us-east-1
    force_path_style: true
    access_key_id: testing
    secret_access_key: testing
    object_lock: {{ mode: GOVERNANCE, retain_days: 1 }}
    timeout: 2s
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 1s }}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [s3/evidence]
"#,
        state = dir.join("state").display(),
    )
}

async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The manifests in the bucket, read by this test on its own.
async fn manifests(client: &Client, bucket: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for key in objects(client, bucket).await {
        if key.ends_with(".manifest.json") {
            let m: Value = serde_json::from_slice(&get(client, bucket, &key).await).unwrap();
            out.push((key, m));
        }
    }
    out.sort_by_key(|(_, m)| m["first_seq"].as_u64());
    out
}

/// The `seq` after the last bundle in the bucket.
async fn delivered(client: &Client, bucket: &str) -> u64 {
    manifests(client, bucket)
        .await
        .iter()
        .map(|(_, m)| m["last_seq"].as_u64().unwrap() + 1)
        .max()
        .unwrap_or(0)
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Every entry of every artifact, in the order of the bundles.
async fn bundled_entries(client: &Client, bucket: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (_, m) in manifests(client, bucket).await {
        let artifact = get(client, bucket, m["artifact_key"].as_str().unwrap()).await;
        for line in gunzip(&artifact).lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

/// Records `0..n` each once, in `seq` order, as sent.
fn assert_all_once_in_order(entries: &[Value], n: usize) {
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..n as u64).collect::<Vec<_>>());
    for (i, e) in entries.iter().enumerate() {
        let text = e.to_string();
        assert!(text.contains(&format!("\"u{i}\"")), "seq {i}: {text}");
    }
}

fn verify_s3(endpoint: &str, bucket: &str, vkeys: &[String]) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["verify", &format!("s3://{bucket}/evidence/")])
        .args([
            "--endpoint",
            endpoint,
            "--region",
            "us-east-1",
            "--force-path-style",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    verify_with(cmd, vkeys, &[])
}

fn gateway_ready(port: u16) -> [SocketAddr; 1] {
    [SocketAddr::from(([127, 0, 0, 1], port))]
}

#[test]
fn locked_bundles_verify_and_a_changed_or_removed_bundle_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(connection(&moto.url()).client());
    let bucket = "evidence-locked";
    rt.block_on(create_locked_bucket(&s3, bucket));

    let gateway = free_port();
    let mut daemon = Daemon::start(
        tmp.path(),
        &config(tmp.path(), gateway, &moto.url(), bucket),
        &gateway_ready(gateway),
    );
    // Each request is smaller than a checkpoint interval and is bundled before the next.
    for from in (0..230).step_by(46) {
        send_logins(gateway, from, 46);
        wait_until("the request in a bundle", Duration::from_secs(30), || {
            rt.block_on(delivered(&s3, bucket)) == from as u64 + 46
        });
    }
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let bundles = rt.block_on(manifests(&s3, bucket));
    assert!(bundles.len() >= 5, "one bundle per checkpoint: {bundles:?}");
    let today = time::OffsetDateTime::now_utc();
    let dated = format!(
        "evidence/{:04}/{:02}/{:02}/logs%2Faudit/",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    let mut previous_manifest = "0".repeat(64);
    for (key, m) in &bundles {
        let artifact_key = m["artifact_key"].as_str().unwrap();
        assert_eq!(key, &format!("{artifact_key}.manifest.json"));
        assert!(artifact_key.starts_with(&dated), "{artifact_key}");
        let (first, last) = (
            m["first_seq"].as_u64().unwrap(),
            m["last_seq"].as_u64().unwrap(),
        );
        assert!(artifact_key.ends_with(&format!("/{first:020}-{last:020}.jsonl.gz")));
        let artifact = rt.block_on(get(&s3, bucket, artifact_key));
        assert_eq!(m["artifact_sha256"], hex::encode(Sha256::digest(&artifact)));
        let checkpoint = m["checkpoint"].as_str().unwrap();
        let size_line = checkpoint.lines().nth(1).unwrap();
        assert_eq!(size_line, (last + 1).to_string(), "{checkpoint}");
        assert_eq!(m["prev_manifest_sha256"], previous_manifest.as_str());
        previous_manifest = hex::encode(Sha256::digest(rt.block_on(get(&s3, bucket, key))));

        // Both objects are locked, with the checksum that was sent.
        for object in [artifact_key, key.as_str()] {
            let head = rt
                .block_on(
                    s3.head_object()
                        .bucket(bucket)
                        .key(object)
                        .checksum_mode(ChecksumMode::Enabled)
                        .send(),
                )
                .unwrap();
            assert_eq!(
                head.object_lock_mode(),
                Some(&ObjectLockMode::Governance),
                "{object}"
            );
            let until = head
                .object_lock_retain_until_date()
                .expect("a retain-until date")
                .secs();
            let now = today.unix_timestamp();
            assert!(
                until > now + 23 * 3600 && until <= now + 25 * 3600,
                "{object}: retained until {until}, now {now}"
            );
            let bytes = rt.block_on(get(&s3, bucket, object));
            assert_eq!(
                head.checksum_sha256(),
                Some(BASE64.encode(Sha256::digest(&bytes)).as_str()),
                "{object}"
            );
            // A locked version cannot be deleted without the governance bypass.
            let version = head.version_id().expect("a versioned bucket").to_string();
            let deleted = rt.block_on(
                s3.delete_object()
                    .bucket(bucket)
                    .key(object)
                    .version_id(&version)
                    .send(),
            );
            assert!(deleted.is_err(), "{object} version {version} was deleted");
        }
    }
    assert_all_once_in_order(&rt.block_on(bundled_entries(&s3, bucket)), 230);

    let vkeys = vkeys(&tmp.path().join("state"));
    let (ok, out) = verify_s3(&moto.url(), bucket, &vkeys);
    assert!(ok, "{out}");
    assert!(out.contains("230 entries"), "{out}");
    assert!(
        out.contains(&format!(
            "{} checkpoint(s) ({} confirmed)",
            bundles.len(),
            bundles.len()
        )),
        "{out}"
    );

    // A new version of the second artifact with one entry changed.
    let (_, second) = &bundles[1];
    let second_key = second["artifact_key"].as_str().unwrap().to_string();
    let text = gunzip(&rt.block_on(get(&s3, bucket, &second_key)));
    let changed_line = 3;
    let original = text.lines().nth(changed_line - 1).unwrap();
    let changed_seq = serde_json::from_str::<Value>(original).unwrap()["seq"]
        .as_u64()
        .unwrap();
    let forged = text.replacen(
        &format!("\"u{changed_seq}\""),
        &format!("\"u{changed_seq}-forged\""),
        1,
    );
    assert_ne!(forged, text);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(forged.as_bytes()).unwrap();
    let forged = gz.finish().unwrap();
    rt.block_on(
        s3.put_object()
            .bucket(bucket)
            .key(&second_key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(forged))
            .send(),
    )
    .unwrap();
    let (ok, out) = verify_s3(&moto.url(), bucket, &vkeys);
    assert!(!ok, "{out}");
    let place = format!("s3://{bucket}/{second_key}");
    assert!(
        out.lines()
            .any(|l| l.contains(&place) && l.contains("SHA-256")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "stream logs/audit, seq {changed_seq}, {place} line {changed_line}: "
        ))),
        "{out}"
    );

    // The fourth bundle removed (delete markers hide both objects).
    let (fourth_manifest, fourth) = &bundles[3];
    let fourth_key = fourth["artifact_key"].as_str().unwrap();
    for key in [fourth_key, fourth_manifest.as_str()] {
        rt.block_on(s3.delete_object().bucket(bucket).key(key).send())
            .unwrap();
    }
    let (first, last) = (
        fourth["first_seq"].as_u64().unwrap(),
        fourth["last_seq"].as_u64().unwrap(),
    );
    let (fifth_manifest, fifth) = &bundles[4];
    let (ok, out) = verify_s3(&moto.url(), bucket, &vkeys);
    assert!(!ok, "{out}");
    let missing = format!("seq {first}..={last}");
    let next_artifact = format!("s3://{bucket}/{}", fifth["artifact_key"].as_str().unwrap());
    assert!(
        out.lines()
            .any(|l| l.contains(&missing) && l.contains(&next_artifact) && l.contains("missing")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("s3://{bucket}/{fifth_manifest}"))
                && l.contains("prev_manifest_sha256")),
        "{out}"
    );
}

/// What the proxy does with the connections it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    /// Answers every request with this status.
    Status(u16),
    /// Answers 429 with `Retry-After: 1`.
    TooMany,
    /// Reads the request and never answers.
    Stall,
    /// Resets the connection at once.
    Reset,
    /// Stops listening: connections are refused.
    Down,
}

/// A TCP proxy in front of the store whose faults the test switches on and off.
struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
    /// The mode each connection met, and when.
    seen: Arc<Mutex<Vec<(Mode, Instant)>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, watcher) = watch::channel(Mode::Pass);
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(accept_loop(listener, port, upstream, watcher, seen.clone()));
        Proxy { port, mode, seen }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    fn count(&self, mode: Mode) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| *m == mode)
            .count()
    }

    fn times(&self, mode: Mode) -> Vec<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, t)| *t)
            .collect()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    upstream: u16,
    mut mode: watch::Receiver<Mode>,
    seen: Arc<Mutex<Vec<(Mode, Instant)>>>,
) {
    let mut listener = Some(listener);
    loop {
        let current = *mode.borrow_and_update();
        if current == Mode::Down {
            listener = None;
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match TcpListener::bind(("127.0.0.1", port)).await {
                        Ok(l) => break listener.insert(l),
                        Err(e) => {
                            assert!(Instant::now() < deadline, "cannot listen again: {e}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                seen.lock().unwrap().push((current, Instant::now()));
                tokio::spawn(serve(socket, current, upstream, mode.clone()));
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

async fn serve(
    mut socket: TcpStream,
    mode: Mode,
    upstream: u16,
    mut change: watch::Receiver<Mode>,
) {
    match mode {
        Mode::Pass => {
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            // A mode change cuts open connections, so that the next request meets it.
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut socket, &mut up) => {}
                _ = change.changed() => {}
            }
        }
        Mode::Status(_) | Mode::TooMany => {
            read_request(&mut socket).await;
            let answer = match mode {
                Mode::TooMany => "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n".to_string(),
                Mode::Status(code) => format!("HTTP/1.1 {code} Internal Server Error\r\n"),
                _ => unreachable!(),
            };
            let _ = socket
                .write_all(
                    format!("{answer}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                )
                .await;
            let _ = socket.shutdown().await;
        }
        Mode::Stall => {
            let mut sink = [0u8; 4096];
            tokio::select! {
                _ = async { while socket.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => {}
                _ = change.changed() => {}
            }
        }
        Mode::Reset | Mode::Down => {
            let _ = socket.set_zero_linger();
        }
    }
}

/// Reads one request's head and body, so that the answer is not lost to a reset.
async fn read_request(socket: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("expect: 100-continue") {
        return;
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf.len() - head_end;
    while body < length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body += n,
        }
    }
}

#[test]
fn faults_at_the_sink_lose_nothing_and_a_restart_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(connection(&moto.url()).client());
    let bucket = "evidence-faults";
    rt.block_on(create_locked_bucket(&s3, bucket));
    let proxy = rt.block_on(Proxy::start(moto.port));

    let gateway = free_port();
    let yaml = config(tmp.path(), gateway, &proxy.url(), bucket);
    let mut daemon = Daemon::start(tmp.path(), &yaml, &gateway_ready(gateway));
    let mut sent = 0;
    let mut send_more = |n: usize| {
        send_logins(gateway, sent, n);
        sent += n;
        sent as u64
    };
    let wait_delivered = |what: &str, n: u64, daemon: &Daemon| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while rt.block_on(delivered(&s3, bucket)) < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {n} entries not delivered in 60s:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let wait_for_faults = |mode: Mode, n: usize| {
        wait_until(
            &format!("{n} connections meeting {mode:?}"),
            Duration::from_secs(30),
            || proxy.count(mode) >= n,
        );
    };

    let n = send_more(100);
    wait_delivered("healthy", n, &daemon);

    for fault in [
        Mode::Status(500),
        Mode::Status(503),
        Mode::TooMany,
        Mode::Stall,
        Mode::Reset,
    ] {
        proxy.set(fault);
        let n = send_more(60);
        // Stalls end only at the 2s timeout: two of them take the longest.
        wait_for_faults(fault, if fault == Mode::Stall { 2 } else { 3 });
        proxy.set(Mode::Pass);
        wait_delivered(&format!("after {fault:?}"), n, &daemon);
    }
    let answers = proxy.times(Mode::TooMany);
    for pair in answers.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 not honoured: {gap:?}"
        );
    }

    // The store goes away; the daemon dies with records not yet delivered and comes back
    // while the store is still away.
    proxy.set(Mode::Down);
    send_more(80);
    daemon.kill9();
    let mut daemon = Daemon::start(tmp.path(), &yaml, &gateway_ready(gateway));
    let n = send_more(40);
    wait_until(
        "the restarted daemon to meet the refusal",
        Duration::from_secs(30),
        || daemon.log_text().contains("Connection refused"),
    );
    proxy.set(Mode::Pass);
    wait_delivered("after the restart", n, &daemon);
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    // Forget where delivery stood, on both sides: everything in the journal is handed
    // over again and must be recognised as already in the bucket.
    let state = tmp.path().join("state");
    for path in files_under(&state) {
        let p = path.to_string_lossy();
        if p.contains("/cursors/") || p.ends_with("bundle-head.json") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let before = rt.block_on(objects(&s3, bucket));
    let delivered_before = rt.block_on(delivered(&s3, bucket));
    let mut daemon = Daemon::start(tmp.path(), &yaml, &gateway_ready(gateway));
    let n = send_more(30);
    wait_delivered("after forgetting the cursor", n, &daemon);
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let new: Vec<String> = rt
        .block_on(objects(&s3, bucket))
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    assert!(!new.is_empty());
    for key in &new {
        let first = key.rsplit('/').next().unwrap()[..20]
            .parse::<u64>()
            .unwrap();
        assert!(first >= delivered_before, "{key} repeats bundled entries");
    }

    assert_all_once_in_order(&rt.block_on(bundled_entries(&s3, bucket)), sent);
    let (ok, out) = verify_s3(&moto.url(), bucket, &vkeys(&state));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{sent} entries")), "{out}");
}
