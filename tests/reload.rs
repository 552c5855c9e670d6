//! Hot reload: SIGHUP and `--watch` replace the configuration while clients keep
//! sending; nothing acknowledged is lost or duplicated, the chain continues, and an
//! invalid configuration is refused with the messages `vellum validate` prints.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vellum");

/// The gateway receiver, plus `extra_receivers` (id, settings), through the chain and
/// `hmac_sign` into `file/evidence` and each of `extra_exporters` (a `file` exporter in
/// `dir/<id with - for />`).
fn config(
    dir: &Path,
    gateway: u16,
    extra_exporters: &[&str],
    extra_receivers: &[(&str, String)],
) -> PipelineConfig {
    let mut config = PipelineConfig::new(dir).gateway(gateway);
    for (id, settings) in extra_receivers {
        config = config.receiver(id, settings.clone());
    }
    config = config
        .processor(
            "hash_chain",
            "{ origin: test.vellum, checkpoint: { every_records: 200, every: 1s } }",
        )
        .hmac(r#"[{ id: k1, key: "0123456789abcdef0123456789abcdef" }]"#)
        .file("file/evidence", &dir.join("evidence"));
    for e in extra_exporters {
        config = config.file(e, &dir.join(e.replace('/', "-")));
    }
    config
}

fn sighup(daemon: &Daemon) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(daemon.child.id() as i32, libc::SIGHUP);
    }
}

/// How many times `needle` occurs in the daemon's log.
fn count_in_log(daemon: &Daemon, needle: &str) -> usize {
    daemon.log_text().matches(needle).count()
}

/// What a sender saw: acknowledged record ids, and every answer that was not a 200.
#[derive(Default)]
struct Sent {
    acked: Vec<String>,
    refusals: Vec<String>,
}

/// Posts batches of 20 gateway events with unique ids until `stop`; a batch that is
/// not acknowledged is sent again (a gateway's retry), so its ids may arrive twice only
/// if the daemon acknowledged nothing.
fn send_until(port: u16, stop: Arc<AtomicBool>, sent: Arc<Mutex<Sent>>) {
    let agent = ureq::Agent::new_with_defaults();
    let mut batch = 0u64;
    while !stop.load(Ordering::Acquire) {
        let ids: Vec<String> = (0..20).map(|i| format!("load-{batch}-{i}")).collect();
        let body: String = ids
            .iter()
            .map(|id| {
                format!("{{\"action\":\"doc.read\",\"user_id\":\"u1\",\"request_id\":\"{id}\"}}\n")
            })
            .collect();
        loop {
            let answer = agent
                .post(&format!("http://127.0.0.1:{port}/v1/events"))
                .config()
                .http_status_as_error(false)
                .build()
                .send(body.as_bytes());
            match answer {
                Ok(r) if r.status().as_u16() == 200 => {
                    sent.lock().unwrap().acked.extend(ids.iter().cloned());
                    break;
                }
                Ok(r) => sent
                    .lock()
                    .unwrap()
                    .refusals
                    .push(format!("status {}", r.status())),
                Err(e) => sent.lock().unwrap().refusals.push(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        batch += 1;
    }
}

/// Request ids in an evidence directory, with how often each occurs.
fn ids_in(dir: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for e in evidence_entries(dir) {
        if let Some(id) = e.pointer("/attributes/request_id").and_then(|v| v.as_str()) {
            *seen.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

/// Lines written in full to the `.jsonl` files under `dir` (read while being written).
fn complete_lines(dir: &Path) -> usize {
    files_under(dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .map(|p| std::fs::read(p).unwrap_or_default())
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .sum()
}

#[test]
fn reload_under_load_loses_and_duplicates_nothing_and_keeps_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = free_port();
    let syslog = free_port();
    let addr = format!("127.0.0.1:{gateway}").parse().unwrap();
    let mut daemon = Daemon::start(dir, &config(dir, gateway, &[], &[]).yaml(), &[addr]);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || send_until(gateway, stop, sent))
    };
    let acked_now = || sent.lock().unwrap().acked.len();

    // Three reloads while records flow: an exporter added, a receiver added, the
    // exporter removed again; each waits for the log to confirm it and for more records.
    let syslog_tcp = (
        "syslog/tcp",
        format!("{{ protocol: tcp, endpoint: 127.0.0.1:{syslog} }}"),
    );
    // Each step: the extra exporters, and the extra receivers (id, settings).
    type Step<'a> = (&'a [&'a str], &'a [(&'a str, String)]);
    let steps: [Step; 3] = [
        (&["file/second"], &[]),
        (&["file/second"], std::slice::from_ref(&syslog_tcp)),
        (&[], &[]),
    ];
    for (i, (exporters, receivers)) in steps.iter().enumerate() {
        let before = acked_now();
        wait_until("records flowing", Duration::from_secs(30), || {
            acked_now() >= before + 200
        });
        let yaml = config(dir, gateway, exporters, receivers).yaml();
        std::fs::write(&daemon.config, yaml).unwrap();
        sighup(&daemon);
        wait_until(
            &format!("reload {} to be applied", i + 1),
            Duration::from_secs(30),
            || count_in_log(&daemon, "configuration reloaded") == i + 1,
        );
        assert!(daemon.alive(), "{}", daemon.log_text());
    }
    let before = acked_now();
    wait_until(
        "records after the last reload",
        Duration::from_secs(30),
        || acked_now() >= before + 200,
    );
    stop.store(true, Ordering::Release);
    sender.join().unwrap();
    let sent = std::mem::take(&mut *sent.lock().unwrap());

    // The gateway receiver was kept across every reload: not one refusal, not one reset.
    assert!(
        sent.refusals.is_empty(),
        "the sender was refused during reloads: {:?}",
        &sent.refusals[..sent.refusals.len().min(5)]
    );
    // The syslog receiver started by the second reload listened.
    assert!(
        daemon.log_text().contains("syslog/tcp"),
        "{}",
        daemon.log_text()
    );

    let status = daemon.terminate();
    assert!(status.success(), "{status}: {}", daemon.log_text());
    let seen = ids_in(&dir.join("evidence"));
    let missing: Vec<&String> = sent
        .acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing from the evidence, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "records in the evidence twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert_eq!(
        seen.len(),
        sent.acked.len(),
        "nothing unacknowledged either"
    );

    // One stream, seq without gaps, links and checkpoints intact.
    let entries = evidence_entries(&dir.join("evidence"));
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    let (ok, report) = verify(
        &dir.join("evidence"),
        &vkeys(&dir.join("state")),
        &["k1=0123456789abcdef0123456789abcdef".to_string()],
    );
    assert!(ok, "{report}");

    // The exporter added by the first reload started from the beginning of the journal
    // and delivered the records that were in it, in order, while it was configured.
    let second = evidence_entries(&dir.join("file-second"));
    assert!(!second.is_empty());
    let second_seqs: Vec<u64> = second.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        second_seqs,
        (0..second_seqs.len() as u64).collect::<Vec<_>>()
    );
}

#[test]
fn an_invalid_configuration_is_refused_with_the_validate_messages_and_the_old_one_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = free_port();
    let addr = format!("127.0.0.1:{gateway}").parse().unwrap();
    let mut daemon = Daemon::start(dir, &config(dir, gateway, &[], &[]).yaml(), &[addr]);
    send_logins(gateway, 0, 10);

    // Two problems: an unknown key, and an exporter setting out of range.
    let broken = config(dir, gateway, &[], &[])
        .edit("file/evidence", |s| {
            s.replace("{ ", "{ max_file_size: 10, ")
        })
        .pipeline(
            "logs/audit",
            Pipeline::new()
                .receivers(&["http/gateway"])
                .processors(&["hash_chain", "hmac_sign"])
                .exporters(&["file/evidence"])
                .setting("colour: blue"),
        )
        .yaml();
    let broken_path = dir.join("broken.yaml");
    std::fs::write(&broken_path, &broken).unwrap();
    let validate = std::process::Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&broken_path)
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(2));
    let problems: Vec<String> = String::from_utf8_lossy(&validate.stderr)
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");

    std::fs::write(&daemon.config, &broken).unwrap();
    sighup(&daemon);
    wait_until("the reload to be refused", Duration::from_secs(30), || {
        daemon.log_text().contains("reload refused")
    });
    let log = daemon.log_text();
    for p in &problems {
        assert!(log.contains(p.as_str()), "log lacks `{p}`:\n{log}");
    }
    assert!(!log.contains("configuration reloaded"));

    // The old configuration still serves and seals.
    send_logins(gateway, 10, 10);
    let status = daemon.terminate();
    assert!(status.success());
    let entries = evidence_entries(&dir.join("evidence"));
    assert_eq!(entries.len(), 20);
}

#[test]
fn watch_reloads_when_the_file_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gateway = free_port();
    let config_path = dir.join("vellum.yaml");
    std::fs::write(&config_path, config(dir, gateway, &[], &[]).yaml()).unwrap();
    let log = std::fs::File::create(dir.join("vellum.log")).unwrap();
    let child = std::process::Command::new(BIN)
        .args(["run", "--watch", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child,
        config: config_path.clone(),
        log: dir.join("vellum.log"),
    };
    wait_until("the daemon to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", gateway)).is_ok()
    });
    send_logins(gateway, 0, 30);

    std::fs::write(
        &config_path,
        config(dir, gateway, &["file/second"], &[]).yaml(),
    )
    .unwrap();
    wait_until("the change to be noticed", Duration::from_secs(30), || {
        count_in_log(&daemon, "configuration reloaded") == 1
    });
    send_logins(gateway, 30, 30);
    wait_until(
        "the new exporter to catch up",
        Duration::from_secs(30),
        || complete_lines(&dir.join("file-second")) == 60,
    );
    assert!(daemon.terminate().success());
    assert_eq!(evidence_entries(&dir.join("evidence")).len(), 60);
}

/// Posts one event with `token` as its bearer token; returns the status.
fn post_with_token(gateway: u16, token: &str) -> u16 {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    agent
        .post(&format!("http://127.0.0.1:{gateway}/v1/events"))
        .header("Authorization", &format!("Bearer {token}"))
        .send(br#"{"action":"login.failed","user_id":"u1"}"#.as_slice())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn a_new_bearer_token_takes_effect_at_a_reload_though_secrets_never_print() {
    const OLD: &str = "old-token-0123456789";
    const NEW: &str = "new-token-9876543210";
    let tmp = tempfile::tempdir().unwrap();
    let gateway = free_port();
    let yaml = |token: &str| {
        PipelineConfig::new(tmp.path())
            .receiver(
                "http/gateway",
                format!(
                    "{{ endpoint: 127.0.0.1:{gateway}, path: /v1/events, bearer_token: {token} }}"
                ),
            )
            .processor("hash_chain", "{ origin: test.vellum }")
            .file("file/evidence", &tmp.path().join("evidence"))
            .yaml()
    };
    let mut daemon = Daemon::start(
        tmp.path(),
        &yaml(OLD),
        &[std::net::SocketAddr::from(([127, 0, 0, 1], gateway))],
    );
    assert_eq!(post_with_token(gateway, OLD), 200);
    std::fs::write(&daemon.config, yaml(NEW)).unwrap();
    sighup(&daemon);
    wait_until("the reload", Duration::from_secs(30), || {
        count_in_log(&daemon, "configuration reloaded") == 1
    });
    assert_eq!(
        post_with_token(gateway, OLD),
        401,
        "the old token is revoked"
    );
    assert_eq!(post_with_token(gateway, NEW), 200, "the new token is taken");
    assert!(daemon.terminate().success());
    let log = daemon.log_text();
    assert!(!log.contains(OLD) && !log.contains(NEW), "{log}");
}
