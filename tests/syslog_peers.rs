//! Real syslog senders against the syslog receiver: util-linux `logger` over TCP (line
//! and octet-counted framing) and UDP in RFC 5424 and RFC 3164, and rsyslog forwarding
//! with `omfwd` and octet-counted framing. Every message must arrive with its fields.
//!
//! The receiver runs in-process on loopback and hands records to a collecting pipeline.
//! `scripts/test.sh` installs both peers; where one is missing the test says so and is
//! skipped, except under CI (`CI` set), where a missing peer fails it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vellum::component::{ReceiverHandle, Submit, SubmitFuture};
use vellum::event::Record;
use vellum::receivers::syslog::{SyslogConfig, start};

const DEADLINE: Duration = Duration::from_secs(30);

/// Keeps every record submitted and lets the test wait for the ones it expects.
struct Collector {
    records: watch::Sender<Vec<Record>>,
}

impl Submit for Collector {
    fn submit(&self, records: Vec<Record>) -> SubmitFuture {
        self.records.send_modify(|all| all.extend(records));
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Collector {
    /// Waits until a record whose body satisfies `wanted` has arrived and returns it.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&Record) -> bool) -> Record {
        let mut seen = self.records.subscribe();
        let found =
            tokio::time::timeout(DEADLINE, seen.wait_for(|all| all.iter().any(&wanted))).await;
        match found {
            Ok(Ok(all)) => all.iter().find(|r| wanted(r)).cloned().unwrap_or_default(),
            _ => panic!(
                "timed out waiting for {what}; received bodies: {:?}",
                self.bodies()
            ),
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.records
            .borrow()
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }
}

struct Receivers {
    collector: Arc<Collector>,
    tcp: ReceiverHandle,
    udp: ReceiverHandle,
    shutdown: CancellationToken,
}

impl Receivers {
    async fn start() -> Receivers {
        let collector = Arc::new(Collector {
            records: watch::Sender::new(Vec::new()),
        });
        let shutdown = CancellationToken::new();
        let config = |protocol: &str| -> SyslogConfig {
            serde_json::from_value(
                json!({"protocol": protocol, "endpoint": "127.0.0.1:0", "format": "auto"}),
            )
            .expect("a valid syslog config")
        };
        let tcp = start(
            "syslog/tcp".into(),
            config("tcp"),
            collector.clone(),
            shutdown.clone(),
        )
        .await
        .expect("start the TCP receiver");
        let udp = start(
            "syslog/udp".into(),
            config("udp"),
            collector.clone(),
            shutdown.clone(),
        )
        .await
        .expect("start the UDP receiver");
        Receivers {
            collector,
            tcp,
            udp,
            shutdown,
        }
    }

    fn port(handle: &ReceiverHandle) -> u16 {
        handle.local_addrs[0].port()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for handle in [self.tcp, self.udp] {
            tokio::time::timeout(DEADLINE, handle.task)
                .await
                .expect("the receiver stops on shutdown")
                .expect("the receiver task does not panic");
        }
    }
}

/// The program's path, or `None` (with a message) when it is not installed; under CI a
/// missing peer is a failure, never a silent pass.
fn peer(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let message = format!(
            "`{name}` is not installed (Debian package `{package}`; scripts/test.sh installs it)"
        );
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

/// Whether a HOSTNAME names this machine. Senders differ in which form they send:
/// `logger` sends RFC 3164 hosts up to the first dot, rsyslog the short name unless told
/// to keep the domain, and an RFC 5424 sender may qualify it.
fn names_this_host(name: &Value) -> bool {
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("read the host name");
    let full = full.trim();
    let short = full.split('.').next().unwrap_or_default();
    name.as_str()
        .is_some_and(|n| n == full || n == short || n.starts_with(&format!("{short}.")))
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn attribute<'a>(record: &'a Record, key: &str) -> &'a Value {
    record.attributes.get(key).unwrap_or(&Value::Null)
}

fn assert_clean(record: &Record) {
    assert!(
        record.tags.is_empty(),
        "tags {:?} on {:?}",
        record.tags,
        record.body
    );
    assert!(
        !record.attributes.contains_key("syslog.parse_error"),
        "{record:?}"
    );
    assert!(
        !record.attributes.contains_key("syslog.invalid_utf8"),
        "{record:?}"
    );
    assert_eq!(
        attribute(record, "network.peer.address"),
        &json!("127.0.0.1")
    );
}

/// Times a sender stamped, to the second for RFC 3164, lie within the test's run.
fn assert_time_between(record: &Record, started: u64, ended: u64) {
    const SLACK: u64 = 2_000_000_000;
    assert!(
        record.time_unix_nano + SLACK >= started && record.time_unix_nano <= ended + SLACK,
        "time {} outside [{started}, {ended}] for {:?}",
        record.time_unix_nano,
        record.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_messages_arrive_over_tcp_and_udp_with_fields_intact() {
    let Some(logger) = peer("logger", "bsdutils") else {
        return;
    };
    let receivers = Receivers::start().await;
    let started = now_unix_nano();

    // (transport, framing, format)
    let cases = [
        ("tcp", None, "rfc5424"),
        ("tcp", Some("--octet-count"), "rfc5424"),
        ("tcp", None, "rfc3164"),
        ("tcp", Some("--octet-count"), "rfc3164"),
        ("udp", None, "rfc5424"),
        ("udp", None, "rfc3164"),
    ];
    let mut sent = Vec::new();
    for (index, (transport, framing, format)) in cases.into_iter().enumerate() {
        let body = format!(
            "case {index}: {transport} {} {format} – grüße \"quoted\"",
            framing.unwrap_or("lines")
        );
        let port = if transport == "tcp" {
            Receivers::port(&receivers.tcp)
        } else {
            Receivers::port(&receivers.udp)
        };
        let mut command = Command::new(&logger);
        // RFC 3164 timestamps carry no zone; the receiver reads them as UTC.
        command
            .env("TZ", "UTC")
            .args(["-n", "127.0.0.1", "-P", &port.to_string()]);
        command
            .args([format!("--{transport}"), format!("--{format}")])
            .args(framing);
        command.args(["-t", "vtest", "--id=4242", "-p", "local4.warning"]);
        if format == "rfc5424" {
            command.args([
                "--msgid",
                "ID47",
                "--sd-id",
                "exampleSDID@32473",
                "--sd-param",
                "iut=\"3\"",
            ]);
        }
        let output =
            tokio::task::spawn_blocking(move || command.arg(&body).output().map(|o| (o, body)))
                .await
                .expect("run logger");
        let (output, body) = output.expect("start logger");
        assert!(
            output.status.success(),
            "logger failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        sent.push((body, format));
    }

    for (body, format) in &sent {
        let record = receivers
            .collector
            .wait_for(body, |r| r.body == json!(body))
            .await;
        let ended = now_unix_nano();
        assert_clean(&record);
        assert_eq!(
            attribute(&record, "syslog.format"),
            &json!(format),
            "{body}"
        );
        assert_eq!(
            (record.severity_number, record.severity_text.as_str()),
            (13, "warning"),
            "{body}"
        );
        assert_eq!(attribute(&record, "syslog.facility"), &json!(20), "{body}");
        assert_eq!(
            attribute(&record, "syslog.app_name"),
            &json!("vtest"),
            "{body}"
        );
        assert_eq!(
            attribute(&record, "syslog.proc_id"),
            &json!("4242"),
            "{body}"
        );
        assert_time_between(&record, started, ended);
        let host = record.resource.get("host.name").unwrap_or(&Value::Null);
        assert!(names_this_host(host), "host.name {host} for {body}");
        if *format == "rfc5424" {
            assert_eq!(
                attribute(&record, "syslog.msg_id"),
                &json!("ID47"),
                "{body}"
            );
            let sd = attribute(&record, "syslog.structured_data");
            assert_eq!(sd["exampleSDID@32473"], json!({"iut": "3"}), "{body}");
            assert_eq!(sd["timeQuality"]["tzKnown"], json!("1"), "{body}");
        }
    }
    assert_eq!(
        receivers.collector.records.borrow().len(),
        sent.len(),
        "nothing arrives twice"
    );
    receivers.stop().await;
}

/// Stops rsyslogd when the test ends, however it ends.
struct Rsyslogd(Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_octet_counted_messages_that_arrive_intact() {
    let Some(rsyslogd) = peer("rsyslogd", "rsyslog") else {
        return;
    };
    let receivers = Receivers::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("create rsyslog's work directory");
    let input = dir.path().join("audit.log");
    let lines: Vec<String> = (0..3)
        .map(|i| format!("audit line {i}: user=u{i} action=login – ok"))
        .collect();
    write(
        &input,
        &lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    let imtcp_port_file = dir.path().join("imtcp.port");

    // No imuxsock or imklog: rsyslogd needs no privileges and touches nothing global.
    // Three forwards: RFC 5424 and the traditional RFC 3164 format over octet-counted
    // TCP, and RFC 5424 over UDP. imtcp takes a multi-line message that rsyslog
    // forwards with its line feed escaped as #012.
    let config = format!(
        r#"
global(workDirectory="{work}")
module(load="imfile")
module(load="imtcp")
input(type="imfile" file="{input}" tag="vtest:" facility="local3" severity="warning")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{port_file}")
action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_TraditionalForwardFormat")
action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp" template="RSYSLOG_SyslogProtocol23Format")
"#,
        work = work.display(),
        input = input.display(),
        port_file = imtcp_port_file.display(),
        tcp = Receivers::port(&receivers.tcp),
        udp = Receivers::port(&receivers.udp),
    );
    let config_path = dir.path().join("rsyslog.conf");
    write(&config_path, &config);
    let started = now_unix_nano();
    let child = Command::new(&rsyslogd)
        .env("TZ", "UTC")
        .arg("-n")
        .arg("-f")
        .arg(&config_path)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    let mut rsyslog = Rsyslogd(child);

    // imtcp writes its port to the file once it listens.
    let imtcp_port = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(status) = rsyslog.0.try_wait().expect("poll rsyslogd") {
                panic!("rsyslogd exited early with {status}");
            }
            let text = std::fs::read_to_string(&imtcp_port_file).unwrap_or_default();
            if let Ok(port) = text.trim().parse::<u16>() {
                break port;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("rsyslogd's imtcp listens");
    let multi_line = b"<13>1 - relay.example app 77 - - first line\nsecond line";
    let mut sender =
        std::net::TcpStream::connect(("127.0.0.1", imtcp_port)).expect("connect to imtcp");
    std::io::Write::write_all(
        &mut sender,
        &[
            format!("{} ", multi_line.len()).into_bytes(),
            multi_line.to_vec(),
        ]
        .concat(),
    )
    .expect("send to imtcp");
    drop(sender);

    let collector = &receivers.collector;
    for line in &lines {
        for (format, receiver) in [
            ("rfc5424", "syslog/tcp"),
            ("rfc3164", "syslog/tcp"),
            ("rfc5424", "syslog/udp"),
        ] {
            let what = format!("{line} as {format} via {receiver}");
            let record = collector
                .wait_for(&what, |r| {
                    r.body == json!(line)
                        && r.source == receiver
                        && attribute(r, "syslog.format") == &json!(format)
                })
                .await;
            assert_clean(&record);
            assert_eq!(
                (record.severity_number, record.severity_text.as_str()),
                (13, "warning"),
                "{what}"
            );
            assert_eq!(attribute(&record, "syslog.facility"), &json!(19), "{what}");
            assert_eq!(
                attribute(&record, "syslog.app_name"),
                &json!("vtest"),
                "{what}"
            );
            let host = record.resource.get("host.name").unwrap_or(&Value::Null);
            assert!(names_this_host(host), "host.name {host} for {what}");
            assert_time_between(&record, started, now_unix_nano());
        }
    }
    for (format, receiver) in [
        ("rfc5424", "syslog/tcp"),
        ("rfc3164", "syslog/tcp"),
        ("rfc5424", "syslog/udp"),
    ] {
        let what = format!("the multi-line message as {format} via {receiver}");
        let record = collector
            .wait_for(&what, |r| {
                r.body
                    .as_str()
                    .is_some_and(|b| b.ends_with("first line\nsecond line"))
                    && r.source == receiver
                    && attribute(r, "syslog.format") == &json!(format)
            })
            .await;
        assert_clean(&record);
        assert_eq!(
            record.resource.get("host.name"),
            Some(&json!("relay.example")),
            "{what}"
        );
        assert_eq!(record.severity_number, 10, "{what}: user.notice");
        if format == "rfc5424" {
            assert_eq!(record.body, json!("first line\nsecond line"), "{what}");
            assert_eq!(
                attribute(&record, "syslog.app_name"),
                &json!("app"),
                "{what}"
            );
            assert_eq!(attribute(&record, "syslog.proc_id"), &json!("77"), "{what}");
        }
    }
    // rsyslogd forwards its own start-up notice too; whatever it sent must parse.
    for record in collector.records.borrow().iter() {
        assert!(record.tags.is_empty(), "{record:?}");
    }
    drop(rsyslog);
    receivers.stop().await;
}
