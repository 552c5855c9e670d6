//! The HTTP exporters against local sinks that speak each vendor's protocol, with the
//! faults a sink really has: 5xx, 429 with `Retry-After`, answers slower than the
//! exporter's timeout, connection resets, a sink down for a while, lost Splunk acks —
//! and the daemon itself killed or stopped in the middle. After each: every record
//! arrived at least once, first arrivals in `seq` order, exactly as sealed.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::peers;
use common::*;
use peers::http_faults::{Fault, Server};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the sinks")
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The gateway, the hash chain, the file exporter and `exporters` (YAML, indented two
/// spaces) on the pipeline `logs/audit`.
fn config(dir: &Path, gateway: u16, exporters: &str, ids: &str) -> String {
    format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events }}
processors:
  hash_chain:
    origin: edge.vellum
    checkpoint: {{ every_records: 100, every: 1s }}
exporters:
  file/evidence: {{ directory: {evidence} }}
{exporters}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [file/evidence, {ids}]
"#,
        evidence = dir.join("evidence").display(),
        state = dir.join("state").display(),
    )
}

/// Posts records `from..from + n` to the gateway as NDJSON; each carries `n`.
fn send(port: u16, from: u64, n: u64) {
    let body: String = (from..from + n)
        .map(|i| format!("{{\"action\":\"model.invoke\",\"user_id\":\"u{i}\",\"n\":{i}}}\n"))
        .collect();
    post(port, body.as_bytes());
}

fn post(port: u16, body: &[u8]) {
    let status = ureq::post(&format!("http://127.0.0.1:{port}/v1/events"))
        .send(body)
        .expect("the gateway takes the records")
        .status();
    assert_eq!(status.as_u16(), 200);
}

fn start(dir: &Path, gateway: u16, yaml: &str) -> Daemon {
    Daemon::start(dir, yaml, &[SocketAddr::from(([127, 0, 0, 1], gateway))])
}

fn evidence(dir: &Path) -> Vec<Value> {
    evidence_entries(&dir.join("evidence"))
}

/// Each seq at its first arrival, in arrival order.
fn first_arrivals(seqs: &[u64]) -> Vec<u64> {
    let mut seen = HashSet::new();
    seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
}

fn distinct(seqs: &[u64]) -> usize {
    seqs.iter().collect::<HashSet<_>>().len()
}

/// Every seq of `0..n` arrived, and each first arrived after all smaller ones.
fn assert_all_in_order(seqs: &[u64], n: u64, sink: &str) {
    assert_eq!(
        first_arrivals(seqs),
        (0..n).collect::<Vec<_>>(),
        "{sink}: first arrivals must be every seq, in order"
    );
}

/// The checkpoint note the file exporter wrote for `size`.
fn checkpoint_note(dir: &Path, size: u64) -> Option<String> {
    std::fs::read_to_string(
        dir.join("evidence/logs%2Faudit/checkpoints")
            .join(format!("{size:020}.note")),
    )
    .ok()
}

fn dead_letter_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("state"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("dead-letter"))
        .collect()
}

const HEC_TOKEN: &str = "8d1f2e3a-4b5c-4d6e-8f70-8192a3b4c5d6";

#[test]
fn splunk_hec_with_indexer_acks_gets_every_record_through_faults_and_a_crash() {
    use peers::splunk_hec::{Hec, error_body};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let hec = Arc::new(Hec::new(HEC_TOKEN, true));
    let sink = Server::start(rt.handle(), loopback(), hec.router(), hec.faults.clone());
    // Taken by whichever request comes next, an event post or an ack poll.
    hec.faults.push(Fault::status(500, error_body(8)));
    hec.faults
        .push(Fault::status(503, error_body(9)).with("retry-after", "1"));
    hec.faults.push(Fault::status(429, error_body(26)));
    hec.faults.push(Fault::Reset);
    hec.faults.push(Fault::Slow(Duration::from_secs(3)));
    hec.faults.push(Fault::status(503, error_body(18)));

    let gateway = free_port();
    let exporter = format!(
        r#"  splunk_hec/siem:
    endpoint: {url}
    token: {HEC_TOKEN}
    index: audit
    indexer_ack: true
    ack_poll_interval: 20ms
    timeout: 1s
    retry_on_failure: {{ initial_interval: 20ms, max_interval: 300ms }}
    batch: {{ max_records: 50 }}"#,
        url = sink.url()
    );
    let yaml = config(tmp.path(), gateway, &exporter, "splunk_hec/siem");
    let mut daemon = start(tmp.path(), gateway, &yaml);
    for b in 0..6 {
        send(gateway, b * 50, 50);
    }
    wait_until("300 events indexed, every fault used", WAIT, || {
        hec.faults.pending() == 0 && distinct(&hec.seqs()) == 300
    });
    // The indexer loses a post it answered: only the missing ack tells, and the batch
    // must go again.
    hec.lose_acks.store(1, Ordering::SeqCst);
    send(gateway, 300, 100);
    wait_until("400 events indexed despite the lost post", WAIT, || {
        distinct(&hec.seqs()) == 400
    });
    assert_eq!(hec.lose_acks.load(Ordering::SeqCst), 0, "a post was lost");

    // The sink goes down; records keep coming; the daemon dies while it is down.
    sink.down();
    send(gateway, 400, 100);
    wait_until("500 entries on disk", WAIT, || {
        evidence(tmp.path()).len() >= 500
    });
    daemon.kill9();
    assert_eq!(
        distinct(&hec.seqs()),
        400,
        "nothing reached a sink that was down"
    );
    sink.up();
    let mut daemon = start(tmp.path(), gateway, &yaml);
    send(gateway, 500, 100);
    wait_until("600 events indexed", WAIT, || distinct(&hec.seqs()) == 600);
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    let entries = evidence(tmp.path());
    assert_eq!(entries.len(), 600);
    assert_all_in_order(&hec.seqs(), 600, "splunk");
    let events = hec.events.lock().unwrap();
    let mut checked = HashSet::new();
    let mut checkpoints = 0;
    for e in events.iter() {
        if e["sourcetype"] == "vellum:checkpoint" {
            let size = e["event"]["checkpoint"]["size"].as_u64().unwrap();
            assert_eq!(e["fields"]["vellum_checkpoint_size"], size.to_string());
            assert_eq!(
                e["event"]["checkpoint"]["note"].as_str(),
                checkpoint_note(tmp.path(), size).as_deref(),
                "checkpoint {size}"
            );
            checkpoints += 1;
            continue;
        }
        let seq = e["event"]["seq"].as_u64().unwrap();
        let sealed = &entries[seq as usize];
        assert_eq!(&e["event"], sealed, "the event is the sealed entry");
        assert_eq!(e["fields"]["vellum_stream"], "logs/audit");
        assert_eq!(e["fields"]["vellum_seq"], seq.to_string());
        assert_eq!(e["fields"]["vellum_hash"], sealed["hash"]);
        assert_eq!(
            (e["index"].as_str(), e["sourcetype"].as_str()),
            (Some("audit"), Some("_json"))
        );
        assert_eq!(e["source"], "vellum:logs/audit");
        assert!(e["time"].is_f64() && e["host"].as_str().is_some_and(|h| !h.is_empty()));
        checked.insert(seq);
    }
    assert_eq!(checked.len(), 600);
    assert!(checkpoints > 0, "signed checkpoints go to Splunk too");
    assert!(hec.ack_polls.load(Ordering::SeqCst) > 0);
    assert_eq!(
        hec.faults.resets.load(Ordering::SeqCst),
        1,
        "one connection was reset"
    );
    assert!(
        hec.refused.lock().unwrap().is_empty(),
        "the exporter always authenticated and named its channel: {:?}",
        hec.refused.lock().unwrap()
    );
    assert!(
        dead_letter_files(tmp.path()).is_empty(),
        "no batch was refused for good"
    );
}

#[test]
fn splunk_hec_refusing_the_token_holds_the_records_and_dead_letters_nothing() {
    use peers::splunk_hec::Hec;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let hec = Arc::new(Hec::new(HEC_TOKEN, false));
    let sink = Server::start(rt.handle(), loopback(), hec.router(), hec.faults.clone());
    let gateway = free_port();
    let exporter = format!(
        "  splunk_hec/siem: {{ endpoint: {}, token: not-the-token, compression: none }}",
        sink.url()
    );
    let mut daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "splunk_hec/siem"),
    );
    send(gateway, 0, 20);
    wait_until("the token refused again and again", WAIT, || {
        hec.refused.lock().unwrap().len() >= 3
    });
    let log = daemon.log_text();
    assert!(
        log.contains("HEC code 4") && log.contains("Invalid token"),
        "{log}"
    );
    assert!(
        !log.contains("not-the-token"),
        "the token never shows in the log"
    );
    daemon.kill9();
    assert!(hec.refused.lock().unwrap().iter().all(|c| *c == 4));
    assert!(hec.events.lock().unwrap().is_empty());
    assert!(
        dead_letter_files(tmp.path()).is_empty(),
        "refused credentials are not the records' fault"
    );
}

const DD_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn datadog_gets_every_record_within_its_limits_through_faults_and_a_crash() {
    use peers::datadog::{Intake, MAX_LOGS};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let intake = Arc::new(Intake::new(DD_KEY));
    let sink = Server::start(
        rt.handle(),
        loopback(),
        intake.router(),
        intake.faults.clone(),
    );
    // Down from the start, so a backlog builds into batches larger than Datadog takes.
    sink.down();

    let gateway = free_port();
    let exporter = format!(
        r#"  datadog/logs:
    api_key: {DD_KEY}
    endpoint: {url}
    service: ai-gateway
    ddtags: [env:test, team:security]
    timeout: 30s
    retry_on_failure: {{ initial_interval: 20ms, max_interval: 300ms }}
    batch: {{ max_records: 2048, max_bytes: 16MiB }}"#,
        url = sink.url()
    );
    let yaml = config(tmp.path(), gateway, &exporter, "datadog/logs");
    let mut daemon = start(tmp.path(), gateway, &yaml);
    for b in 0..5 {
        send(gateway, b * 500, 500);
    }
    // One record of 1.5 MB, quotes and line breaks in it: past Datadog's 1 MB per log.
    let big = "a \"quoted\" line\n".repeat(96_000);
    let big_record = serde_json::json!({"action": "upload", "n": 2500, "body": &big}).to_string();
    post(gateway, big_record.as_bytes());
    send(gateway, 2501, 20);
    wait_until("2521 entries on disk", WAIT, || {
        evidence(tmp.path()).len() >= 2521
    });

    intake
        .faults
        .push(Fault::status(500, r#"{"errors":[{"status":"500"}]}"#));
    intake
        .faults
        .push(Fault::status(503, r#"{"errors":[{"status":"503"}]}"#).with("retry-after", "1"));
    intake
        .faults
        .push(Fault::status(408, r#"{"errors":[{"status":"408"}]}"#));
    intake.faults.push(
        Fault::status(429, r#"{"errors":[{"status":"429"}]}"#).with("x-ratelimit-reset", "1"),
    );
    intake.faults.push(Fault::Reset);
    sink.up();
    wait_until("some requests taken", WAIT, || {
        intake.requests.load(Ordering::SeqCst) >= 2
    });
    daemon.kill9();
    let mut daemon = start(tmp.path(), gateway, &yaml);
    send(gateway, 2521, 100);
    wait_until("every record at Datadog", WAIT, || {
        distinct(&intake.seqs()) == 2621
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    assert_eq!(intake.faults.pending(), 0);
    assert_eq!(intake.faults.resets.load(Ordering::SeqCst), 1);
    assert!(
        intake.refused.lock().unwrap().is_empty(),
        "{:?}",
        intake.refused.lock().unwrap()
    );
    assert_eq!(
        intake.truncated.load(Ordering::SeqCst),
        0,
        "no log was over 1 MB"
    );
    assert_eq!(
        intake.largest_request.load(Ordering::SeqCst),
        MAX_LOGS,
        "the backlog went in requests of at most 1000 logs, filled"
    );
    let entries = evidence(tmp.path());
    assert_eq!(entries.len(), 2621);
    assert_all_in_order(&intake.seqs(), 2621, "datadog");

    // Each entry's message, its pieces joined in part order, is the sealed entry.
    let logs = intake.logs.lock().unwrap();
    let mut messages: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
    let mut parts_of: BTreeMap<u64, u64> = BTreeMap::new();
    for log in logs.iter() {
        let v = &log["vellum"];
        let Some(seq) = v["seq"].as_u64() else {
            assert!(v["checkpoint_size"].is_u64(), "{log}");
            continue;
        };
        assert_eq!(v["stream"], "logs/audit");
        assert_eq!(v["hash"], entries[seq as usize]["hash"]);
        assert_eq!(log["ddsource"], "vellum");
        assert_eq!(log["ddtags"], "env:test,team:security");
        assert_eq!(log["service"], "ai-gateway");
        let part = v["part"].as_u64().unwrap_or(1);
        parts_of.insert(seq, v["parts"].as_u64().unwrap_or(1));
        messages
            .entry(seq)
            .or_default()
            .entry(part)
            .or_insert_with(|| log["message"].as_str().unwrap().to_string());
    }
    for (seq, parts) in &messages {
        assert_eq!(parts.len() as u64, parts_of[seq], "seq {seq}: every part");
        let joined: String = parts.values().cloned().collect();
        let entry: Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(entry, entries[*seq as usize], "seq {seq}");
    }
    assert!(parts_of[&2500] >= 2, "the 1.5 MB record went in parts");
    assert_eq!(entries[2500]["body"], Value::String(big));
    assert!(dead_letter_files(tmp.path()).is_empty());
}

const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef0123456789";

#[test]
fn webhook_batches_arrive_signed_through_faults_and_a_restart_and_refusals_are_dead_lettered() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut soc = Receiver::new(
        "/hooks/vellum",
        Auth::Hmac(WEBHOOK_SECRET.as_bytes().to_vec()),
    );
    soc.required_headers = vec![("x-tenant".into(), "acme".into())];
    let soc = Arc::new(soc);
    let sink = Server::start(rt.handle(), loopback(), soc.router(), soc.faults.clone());
    let strict = Arc::new(Receiver::new("/in", Auth::Bearer("the-right-token".into())));
    // This receiver finds every batch malformed: refused for good, so dead-lettered.
    for _ in 0..400 {
        strict
            .faults
            .push(Fault::status(422, "unprocessable: schema mismatch"));
    }
    let strict_sink = Server::start(
        rt.handle(),
        loopback(),
        strict.router(),
        strict.faults.clone(),
    );

    soc.faults.push(Fault::status(500, "oops"));
    soc.faults.push(Fault::Reset);
    soc.faults.push(Fault::Slow(Duration::from_secs(3)));
    let in_two_seconds = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    soc.faults
        .push(Fault::status(429, "slow down").with("retry-after", in_two_seconds));
    soc.faults.push(Fault::status(503, "maintenance"));

    let gateway = free_port();
    let exporters = format!(
        r#"  webhook/soc:
    url: {soc_url}/hooks/vellum
    auth: {{ type: hmac, secret: {WEBHOOK_SECRET} }}
    headers: {{ X-Tenant: acme }}
    compression: gzip
    timeout: 1s
    retry_on_failure: {{ initial_interval: 20ms, max_interval: 300ms }}
    batch: {{ max_records: 40 }}
  webhook/strict:
    url: {strict_url}/in
    auth: {{ type: bearer, token: the-right-token }}
    batch: {{ max_records: 40 }}"#,
        soc_url = sink.url(),
        strict_url = strict_sink.url()
    );
    let yaml = config(
        tmp.path(),
        gateway,
        &exporters,
        "webhook/soc, webhook/strict",
    );
    let mut daemon = start(tmp.path(), gateway, &yaml);
    for b in 0..4 {
        send(gateway, b * 40, 40);
    }
    wait_until("a first batch taken", WAIT, || !soc.seqs().is_empty());
    // A clean stop in the middle: the rest goes after the restart.
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let mut daemon = start(tmp.path(), gateway, &yaml);
    for b in 4..8 {
        send(gateway, b * 40, 40);
    }
    wait_until("320 entries at the receiver", WAIT, || {
        distinct(&soc.seqs()) == 320
    });
    wait_until("320 entries dead-lettered", WAIT, || {
        let dead: Vec<u64> = dead_letter_files(tmp.path())
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64())
                    .collect::<Vec<_>>()
            })
            .collect();
        distinct(&dead) == 320
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());

    assert_eq!(soc.faults.pending(), 0);
    assert_eq!(soc.faults.resets.load(Ordering::SeqCst), 1);
    assert!(
        soc.refused.lock().unwrap().is_empty(),
        "{:?}",
        soc.refused.lock().unwrap()
    );
    assert_all_in_order(&soc.seqs(), 320, "webhook");
    let entries = evidence(tmp.path());
    let batches = soc.batches.lock().unwrap();
    assert_eq!(
        soc.signed.load(Ordering::SeqCst),
        batches.len(),
        "every batch was signed and verified"
    );
    let mut notes = 0;
    for batch in batches.iter() {
        assert_eq!(batch["stream"], "logs/audit");
        for e in batch["entries"].as_array().unwrap() {
            assert_eq!(e, &entries[e["seq"].as_u64().unwrap() as usize]);
        }
        for c in batch["checkpoints"].as_array().unwrap() {
            let size = c["size"].as_u64().unwrap();
            assert_eq!(
                c["note"].as_str(),
                checkpoint_note(tmp.path(), size).as_deref()
            );
            notes += 1;
        }
    }
    assert!(notes > 0, "checkpoints travel with the batches");
    assert!(strict.batches.lock().unwrap().is_empty());
    let reasons: String = dead_letter_files(tmp.path())
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(reasons.contains("422"), "{reasons}");
}

/// A second Vellum with the OTLP receiver, sealing what it gets into its own chain.
fn central_config(dir: &Path, grpc: u16, http: u16) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  hash_chain:
    origin: central.vellum
    checkpoint: {{ every_records: 100, every: 1s }}
exporters:
  file/evidence: {{ directory: {evidence} }}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/central:
      receivers: [otlp]
      processors: [hash_chain]
      exporters: [file/evidence]
"#,
        evidence = dir.join("evidence").display(),
        state = dir.join("state").display(),
    )
}

/// Forwards from an edge Vellum to a central one, crashing the central one and
/// restarting the edge in the middle.
fn forward(protocol: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (edge_dir, central_dir) = (tmp.path().join("edge"), tmp.path().join("central"));
    std::fs::create_dir_all(&edge_dir).unwrap();
    std::fs::create_dir_all(&central_dir).unwrap();
    let (grpc, http, gateway) = (free_port(), free_port(), free_port());
    let central_yaml = central_config(&central_dir, grpc, http);
    let central_ready = [
        SocketAddr::from(([127, 0, 0, 1], grpc)),
        SocketAddr::from(([127, 0, 0, 1], http)),
    ];
    let mut central = Daemon::start(&central_dir, &central_yaml, &central_ready);
    let port = if protocol == "grpc" { grpc } else { http };
    let exporter = format!(
        r#"  otlp/central:
    endpoint: http://127.0.0.1:{port}
    protocol: {protocol}
    timeout: 2s
    retry_on_failure: {{ initial_interval: 20ms, max_interval: 300ms }}
    batch: {{ max_records: 50 }}"#
    );
    let edge_yaml = config(&edge_dir, gateway, &exporter, "otlp/central");
    let mut edge = start(&edge_dir, gateway, &edge_yaml);
    let forwarded = |dir: &Path| -> Vec<u64> {
        evidence(dir)
            .iter()
            .filter_map(|e| e["attributes"]["vellum.seq"].as_u64())
            .collect()
    };
    send(gateway, 0, 150);
    wait_until("some records at the centre", WAIT, || {
        forwarded(&central_dir).len() >= 50
    });
    central.kill9();
    send(gateway, 150, 100);
    let mut central = Daemon::start_with(
        &central_dir,
        &central_dir.join("vellum.yaml"),
        &central_ready,
    );
    wait_until("250 entries at the edge", WAIT, || {
        evidence(&edge_dir).len() >= 250
    });
    assert_eq!(edge.terminate().code(), Some(0), "{}", edge.log_text());
    let mut edge = start(&edge_dir, gateway, &edge_yaml);
    send(gateway, 250, 100);
    wait_until("every edge record at the centre", WAIT, || {
        distinct(&forwarded(&central_dir)) == 350
    });
    assert_eq!(edge.terminate().code(), Some(0), "{}", edge.log_text());
    assert_eq!(
        central.terminate().code(),
        Some(0),
        "{}",
        central.log_text()
    );

    let edge_entries = evidence(&edge_dir);
    let central_entries = evidence(&central_dir);
    assert_eq!(edge_entries.len(), 350);
    let (ok, report) = verify(
        &central_dir.join("evidence"),
        &vkeys(&central_dir.join("state")),
        &[],
    );
    assert!(ok, "the central evidence verifies:\n{report}");
    let (ok, report) = verify(
        &edge_dir.join("evidence"),
        &vkeys(&edge_dir.join("state")),
        &[],
    );
    assert!(ok, "the edge evidence verifies:\n{report}");

    let mut found = HashSet::new();
    for c in &central_entries {
        let attrs = c["attributes"].as_object().unwrap();
        let seq = attrs["vellum.seq"].as_u64().unwrap();
        let e = &edge_entries[seq as usize];
        for field in ["stream", "seq", "prev", "hash", "v"] {
            assert_eq!(
                attrs[&format!("vellum.{field}")],
                e[field],
                "seq {seq}: {field}"
            );
        }
        assert_eq!(attrs["vellum.source"], e["source"]);
        let own: serde_json::Map<String, Value> = attrs
            .iter()
            .filter(|(k, _)| !k.starts_with("vellum."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(Value::Object(own), e["attributes"], "seq {seq}: attributes");
        assert_eq!(
            (&c["time"], &c["body"]),
            (&e["time"], &e["body"]),
            "seq {seq}"
        );
        assert_eq!(c["stream"], "logs/central");
        found.insert(seq);
    }
    assert_eq!(found.len(), 350);
}

#[test]
fn one_vellum_forwards_to_another_over_otlp_grpc_and_the_second_evidence_verifies() {
    forward("grpc");
}

#[test]
fn one_vellum_forwards_to_another_over_otlp_http_and_the_second_evidence_verifies() {
    forward("http");
}

/// The seqs of the entries in the dead-letter files.
fn dead_lettered_seqs(dir: &Path) -> Vec<u64> {
    dead_letter_files(dir)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn validate(path: &Path, yaml: &str) -> (Option<i32>, String) {
    std::fs::write(path, yaml).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["validate", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_collector_retry_keys_are_accepted_and_evidence_exporters_refuse_to_give_up() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vellum.yaml");
    let collector = r#"  webhook/soc:
    url: http://127.0.0.1:9/hook
    retry_on_failure:
      enabled: true
      initial_interval: 5s
      max_interval: 30s
      max_elapsed_time: 300s"#;
    let (code, err) = validate(
        &path,
        &config(tmp.path(), free_port(), collector, "webhook/soc"),
    );
    assert_eq!(code, Some(0), "{err}");

    let yaml = config(tmp.path(), free_port(), collector, "webhook/soc").replace(
        "file/evidence: {",
        "file/evidence: { retry_on_failure: { enabled: false, max_elapsed_time: 1m }, ",
    );
    let (code, err) = validate(&path, &yaml);
    assert_ne!(code, Some(0), "{err}");
    for key in [
        "retry_on_failure.enabled",
        "retry_on_failure.max_elapsed_time",
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains("file/evidence") && l.contains(key) && l.contains("evidence")),
            "{key} refused for file/evidence:\n{err}"
        );
    }
}

#[test]
fn with_retries_off_a_failed_webhook_request_is_dead_lettered_and_delivery_goes_on() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let soc = Arc::new(Receiver::new("/hook", Auth::Bearer("t0k3n".into())));
    let sink = Server::start(rt.handle(), loopback(), soc.router(), soc.faults.clone());
    soc.faults.push(Fault::status(503, "maintenance"));
    let gateway = free_port();
    let exporters = format!(
        r#"  webhook/soc:
    url: {url}/hook
    auth: {{ type: bearer, token: t0k3n }}
    retry_on_failure: {{ enabled: false }}"#,
        url = sink.url()
    );
    let yaml = config(tmp.path(), gateway, &exporters, "webhook/soc");
    let mut daemon = start(tmp.path(), gateway, &yaml);
    send(gateway, 0, 40);
    wait_until("the first request refused and set aside", WAIT, || {
        !dead_lettered_seqs(tmp.path()).is_empty()
    });
    send(gateway, 40, 40);
    wait_until("every record delivered or set aside", WAIT, || {
        distinct(&soc.seqs()) + distinct(&dead_lettered_seqs(tmp.path())) == 80
    });
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let (delivered, dead) = (soc.seqs(), dead_lettered_seqs(tmp.path()));
    assert_eq!(soc.faults.pending(), 0, "the 503 was answered");
    assert_eq!(delivered.len(), distinct(&delivered), "nothing sent twice");
    assert!(
        dead.iter().all(|s| !delivered.contains(s)),
        "what was set aside was never delivered"
    );
    assert!(dead.contains(&0), "{dead:?}");
    let reason = std::fs::read_to_string(&dead_letter_files(tmp.path())[0]).unwrap();
    assert!(
        reason
            .lines()
            .next()
            .unwrap_or("")
            .contains("retries are off"),
        "{reason}"
    );
}
