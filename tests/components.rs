//! The component contract: every registered receiver, processor and exporter, with a
//! minimal configuration, passes `vellum validate`, and a daemon running all of them
//! starts, reloads and stops cleanly. A component added to a registry without an entry
//! here fails the first test, so none escapes the contract.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A minimal configuration of each registered type, as YAML flow mappings; `{closed}`
/// is a local port nothing listens on, `{dir}` the test's folder, `{port}` a free port,
/// `{generation}` what tells one configuration from the next.
const RECEIVERS: &[(&str, &str)] = &[
    (
        "otlp",
        "{ protocols: { http: { endpoint: 127.0.0.1:{port} } } }",
    ),
    ("http", "{ endpoint: 127.0.0.1:{port} }"),
    ("syslog", "{ protocol: tcp, endpoint: 127.0.0.1:{port} }"),
];
const PROCESSORS: &[(&str, &str)] = &[
    ("redact", "{}"),
    ("classify", "{}"),
    ("filter", "{ drop: 'attributes.drop == \"yes\"' }"),
    ("hash_chain", "{ origin: contract.vellum }"),
    (
        "hmac_sign",
        "{ keys: [{ id: k1, key: 'hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' }] }",
    ),
];
const EXPORTERS: &[(&str, &str)] = &[
    ("file", "{ directory: {dir}/evidence-{generation} }"),
    (
        "s3",
        "{ bucket: contract-bucket, endpoint: 'http://127.0.0.1:{closed}', region: us-east-1, force_path_style: true, access_key_id: AKIDCONTRACT, secret_access_key: contract-secret-key }",
    ),
    (
        "splunk_hec",
        "{ endpoint: 'http://127.0.0.1:{closed}', token: 00000000-0000-0000-0000-000000000000 }",
    ),
    (
        "datadog",
        "{ endpoint: 'http://127.0.0.1:{closed}', api_key: 0123456789abcdef0123456789abcdef }",
    ),
    ("webhook", "{ url: 'http://127.0.0.1:{closed}/hook' }"),
    (
        "otlp",
        "{ endpoint: 'http://127.0.0.1:{closed}', protocol: http }",
    ),
    ("otlphttp", "{ endpoint: 'http://127.0.0.1:{closed}' }"),
];

fn names(table: &[(&'static str, &'static str)]) -> Vec<&'static str> {
    table.iter().map(|(n, _)| *n).collect()
}

fn names_of(it: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    it.collect()
}

#[test]
fn every_registered_component_has_a_minimal_configuration_in_the_contract() {
    assert_eq!(
        names_of(
            vellum::receivers::registry::RECEIVERS
                .iter()
                .map(|f| f.type_name)
        ),
        names(RECEIVERS)
    );
    assert_eq!(
        names_of(
            vellum::processors::registry::PROCESSORS
                .iter()
                .map(|f| f.type_name)
        ),
        names(PROCESSORS)
    );
    assert_eq!(
        names_of(
            vellum::exporters::registry::EXPORTERS
                .iter()
                .map(|f| f.type_name)
        ),
        names(EXPORTERS)
    );
}

/// Every component in one configuration: each receiver on its own port, every processor
/// in one pipeline, every exporter fed by it; ids are `<type>/<generation>`.
fn contract_config(dir: &Path, ports: &[u16], generation: &str) -> String {
    let closed = free_port().to_string();
    let fill = |body: &str, port: u16| {
        body.replace("{dir}", &dir.display().to_string())
            .replace("{generation}", generation)
            .replace("{closed}", &closed)
            .replace("{port}", &port.to_string())
    };
    let id = |name: &str| format!("{name}/{generation}");
    let mut config = PipelineConfig::new(dir);
    for ((name, body), port) in RECEIVERS.iter().zip(ports) {
        config = config.receiver(&id(name), fill(body, *port));
    }
    for (name, body) in PROCESSORS {
        config = config.processor(&id(name), fill(body, 0));
    }
    for (name, body) in EXPORTERS {
        config = config.exporter(&id(name), fill(body, 0));
    }
    config.yaml()
}

fn local(ports: &[u16]) -> Vec<SocketAddr> {
    ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect()
}

fn listens(addr: &SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok()
}

fn sighup(daemon: &Daemon) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) };
}

#[test]
fn every_component_validates_and_the_daemon_runs_reloads_and_stops_with_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = RECEIVERS.iter().map(|_| free_port()).collect();
    let yaml = contract_config(dir.path(), &ports, "contract");
    let config = dir.path().join("vellum.yaml");
    std::fs::write(&config, &yaml).unwrap();

    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validate refused the contract configuration:\n{yaml}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let ready = local(&ports);
    let mut daemon = Daemon::start_with(dir.path(), &config, &ready);
    // The same file again: every receiver is kept, the pipeline replaced.
    sighup(&daemon);
    wait_until("the reload to be applied", Duration::from_secs(30), || {
        daemon.log_text().contains("configuration reloaded")
    });
    assert!(
        daemon.alive(),
        "vellum died on reload:\n{}",
        daemon.log_text()
    );
    for addr in &ready {
        assert!(
            listens(addr),
            "{addr} stopped listening after the reload:\n{}",
            daemon.log_text()
        );
    }

    // Every component under a new id, receivers on new ports: each one of every type is
    // stopped and a new one built and started through its registry.
    let moved: Vec<u16> = RECEIVERS.iter().map(|_| free_port()).collect();
    std::fs::write(&config, contract_config(dir.path(), &moved, "moved")).unwrap();
    sighup(&daemon);
    wait_until(
        "the second reload to be applied",
        Duration::from_secs(30),
        || daemon.log_text().matches("configuration reloaded").count() == 2,
    );
    let log = daemon.log_text();
    let summary = log
        .lines()
        .filter(|l| l.contains("configuration reloaded"))
        .nth(1)
        .expect("the second reload's summary");
    assert!(summary.contains("receivers kept: none;"), "{summary}");
    for (name, _) in RECEIVERS {
        let started = summary.split("started: ").nth(1).unwrap_or_default();
        let stopped = summary.split("stopped: ").nth(1).unwrap_or_default();
        assert!(started.contains(&format!("{name}/moved")), "{summary}");
        assert!(stopped.contains(&format!("{name}/contract")), "{summary}");
    }
    for addr in local(&moved) {
        assert!(
            listens(&addr),
            "{addr} does not listen after the move:\n{log}"
        );
    }
    for addr in &ready {
        assert!(
            !listens(addr),
            "{addr} still listens after the move:\n{log}"
        );
    }
    let status = daemon.terminate();
    assert!(
        status.success(),
        "vellum stopped with {status}:\n{}",
        daemon.log_text()
    );
}
