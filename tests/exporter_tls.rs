//! Client TLS on the exporters, against sinks behind rustls that the tests run with
//! certificates they make: mTLS to a webhook, to Splunk HEC, to an OTLP collector over
//! gRPC and over HTTP (`otlphttp`); a sink whose certificate comes from another CA is
//! refused and its records wait in the journal until it is trusted; and
//! `insecure_skip_verify` takes any certificate; `s3` writes bundles to moto_server
//! behind TLS with a private CA (moto cannot ask for a client certificate).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::peers;
use common::*;
use peers::tls_sink::{self, Ca, Leaf};

const WAIT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the sinks")
}

/// The gateway, the hash chain and `exporter` (YAML under `exporters:`, indented two
/// spaces, with the id `id`) on the pipeline `logs/audit`.
fn config(dir: &Path, gateway: u16, exporter: &str, id: &str) -> String {
    format!(
        r#"
receivers:
  http/gateway: {{ endpoint: 127.0.0.1:{gateway}, path: /v1/events }}
processors:
  hash_chain:
    origin: edge.vellum
    checkpoint: {{ every_records: 1000, every: 1h }}
exporters:
{exporter}
service:
  storage: {{ directory: {state} }}
  pipelines:
    logs/audit:
      receivers: [http/gateway]
      processors: [hash_chain]
      exporters: [{id}]
"#,
        state = dir.join("state").display(),
    )
}

fn start(dir: &Path, gateway: u16, yaml: &str, env: &[(&str, &str)]) -> Daemon {
    let path = dir.join("vellum.yaml");
    std::fs::write(&path, yaml).unwrap();
    // A sink that is refused holds its batch: stopping does not wait for it.
    Daemon::launch(
        dir,
        &path,
        &[SocketAddr::from(([127, 0, 0, 1], gateway))],
        &["--drain-timeout", "1s"],
        env,
    )
}

/// Every seq of `0..n`, each at least once.
fn all_of(seqs: &[u64], n: u64) -> bool {
    (0..n).all(|s| seqs.contains(&s))
}

/// A CA, a sink certificate for `localhost` and 127.0.0.1, and a client certificate.
struct Pki {
    ca: Ca,
    server: Leaf,
    client: Leaf,
}

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new(dir, "sink-ca");
    let server = ca.issue(dir, "sink", &["localhost", "127.0.0.1"]);
    let client = ca.issue(dir, "agent", &["agent.vellum.test"]);
    Pki { ca, server, client }
}

/// `tls:` with the CA and the client certificate, as flow YAML.
fn mtls(p: &Pki) -> String {
    format!(
        "{{ ca_file: {}, cert_file: {}, key_file: {} }}",
        p.ca.cert_file.display(),
        p.client.cert_file.display(),
        p.client.key_file.display()
    )
}

#[test]
fn webhook_over_mtls_delivers_every_record_with_its_headers() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let mut hook = Receiver::new("/hook", Auth::Bearer("hook-token-123".into()));
    hook.required_headers = vec![("x-tenant".into(), "tenant-secret-7f3a".into())];
    let hook = Arc::new(hook);
    let sink = tls_sink::serve(rt.handle(), hook.router(), &p.server, Some(&p.ca));

    let gateway = free_port();
    let exporter = format!(
        "  webhook/soc:\n    url: https://localhost:{}/hook\n    auth: {{ type: bearer, token: hook-token-123 }}\n    headers: {{ X-Tenant: \"${{env:TENANT_KEY}}\" }}\n    tls: {}\n",
        sink.addr.port(),
        mtls(&p)
    );
    let daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "webhook/soc"),
        &[("TENANT_KEY", "tenant-secret-7f3a")],
    );
    send_logins(gateway, 0, 50);
    wait_until("the webhook has every record", WAIT, || {
        all_of(&hook.seqs(), 50)
    });
    assert!(
        hook.refused.lock().unwrap().is_empty(),
        "{:?}",
        hook.refused.lock().unwrap()
    );
    let clients = sink.handshakes.clients.lock().unwrap().clone();
    assert!(!clients.is_empty());
    assert!(
        clients
            .iter()
            .all(|c| c.as_slice() == p.client.der.as_ref()),
        "every connection showed the agent's certificate"
    );
    let log = daemon.log_text();
    assert!(
        !log.contains("tenant-secret-7f3a"),
        "a header value was logged:\n{log}"
    );
}

#[test]
fn a_sink_certificate_from_another_ca_is_refused_and_its_records_wait_until_trusted() {
    use peers::splunk_hec::Hec;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let other = Ca::new(tmp.path(), "other-ca");
    let hec = Arc::new(Hec::new("8d1f2e3a-4b5c-4d6e-8f70-8192a3b4c5d6", false));
    let sink = tls_sink::serve(rt.handle(), hec.router(), &p.server, Some(&p.ca));
    let gateway = free_port();
    let exporter = |ca: &Path| {
        format!(
            "  splunk_hec/siem:\n    endpoint: https://localhost:{}\n    token: 8d1f2e3a-4b5c-4d6e-8f70-8192a3b4c5d6\n    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}\n    tls: {{ ca_file: {}, cert_file: {}, key_file: {} }}\n",
            sink.addr.port(),
            ca.display(),
            p.client.cert_file.display(),
            p.client.key_file.display()
        )
    };
    let wrong = config(
        tmp.path(),
        gateway,
        &exporter(&other.cert_file),
        "splunk_hec/siem",
    );
    let mut daemon = start(tmp.path(), gateway, &wrong, &[]);
    send_logins(gateway, 0, 30);
    wait_until("a refused handshake on the sink", WAIT, || {
        !sink.handshakes.failed.lock().unwrap().is_empty()
    });
    wait_until("the daemon names the certificate problem", WAIT, || {
        daemon.log_text().contains("invalid peer certificate")
    });
    assert!(
        hec.seqs().is_empty(),
        "nothing may reach a sink that is not trusted"
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status}");

    // Trusted now: the records the journal kept are delivered, none lost.
    let right = config(
        tmp.path(),
        gateway,
        &exporter(&p.ca.cert_file),
        "splunk_hec/siem",
    );
    let _daemon = start(tmp.path(), gateway, &right, &[]);
    wait_until("every record reaches Splunk once trusted", WAIT, || {
        all_of(&hec.seqs(), 30)
    });
}

#[test]
fn insecure_skip_verify_delivers_to_a_sink_no_trusted_ca_signed() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let hook = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = tls_sink::serve(rt.handle(), hook.router(), &p.server, None);
    let gateway = free_port();
    let exporter = format!(
        "  webhook/soc:\n    url: https://127.0.0.1:{}/hook\n    tls: {{ insecure_skip_verify: true }}\n",
        sink.addr.port()
    );
    let daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "webhook/soc"),
        &[],
    );
    send_logins(gateway, 0, 20);
    wait_until("the webhook has every record", WAIT, || {
        all_of(&hook.seqs(), 20)
    });
    assert!(
        daemon.log_text().contains("insecure_skip_verify"),
        "the daemon warns that the sink is not verified"
    );
}

#[test]
fn otlp_grpc_over_mtls_delivers_to_a_tls_collector_named_without_a_scheme() {
    use peers::otlp_sink::Collector;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let collector = Collector::new("x-tenant");
    let sink = collector.serve_grpc(rt.handle(), &p.server, Some(&p.ca));
    let gateway = free_port();
    // The Collector's form: host:port, TLS implied.
    let exporter = format!(
        "  otlp/central:\n    endpoint: localhost:{}\n    headers: {{ x-tenant: acme }}\n    tls: {}\n",
        sink.addr.port(),
        mtls(&p)
    );
    let _daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "otlp/central"),
        &[],
    );
    send_logins(gateway, 0, 40);
    wait_until("the collector has every record over gRPC", WAIT, || {
        all_of(&collector.seqs(), 40)
    });
    assert!(
        collector.header.lock().unwrap().iter().all(|h| h == "acme"),
        "each request carried the configured metadata"
    );
    let clients = sink.handshakes.clients.lock().unwrap().clone();
    assert!(
        clients
            .iter()
            .all(|c| c.as_slice() == p.client.der.as_ref())
    );
}

#[test]
fn otlp_grpc_to_a_collector_from_another_ca_is_refused_naming_the_certificate() {
    use peers::otlp_sink::Collector;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let other = Ca::new(tmp.path(), "other-ca");
    let collector = Collector::new("x-tenant");
    let sink = collector.serve_grpc(rt.handle(), &p.server, Some(&p.ca));
    let gateway = free_port();
    let exporter = format!(
        "  otlp/central:\n    endpoint: https://localhost:{}\n    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}\n    tls: {{ ca_file: {}, cert_file: {}, key_file: {} }}\n",
        sink.addr.port(),
        other.cert_file.display(),
        p.client.cert_file.display(),
        p.client.key_file.display()
    );
    let daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "otlp/central"),
        &[],
    );
    send_logins(gateway, 0, 5);
    wait_until("the daemon names the certificate problem", WAIT, || {
        daemon.log_text().contains("invalid peer certificate")
    });
    assert!(collector.seqs().is_empty());
}

#[test]
fn validate_names_a_mismatched_or_unreadable_key_file_without_printing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let junk = tmp.path().join("junk.key");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n",
    )
    .unwrap();
    let exporters = format!(
        "  webhook/a:\n    url: https://localhost:1/hook\n    tls: {{ ca_file: {ca}, cert_file: {cert}, key_file: {other} }}\n  webhook/b:\n    url: https://localhost:1/hook\n    tls: {{ ca_file: {ca}, cert_file: {cert}, key_file: {junk} }}\n",
        ca = p.ca.cert_file.display(),
        cert = p.client.cert_file.display(),
        other = p.server.key_file.display(),
        junk = junk.display(),
    );
    let yaml = config(tmp.path(), free_port(), &exporters, "webhook/a, webhook/b");
    let path = tmp.path().join("vellum.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("exporters.webhook/a.tls.key_file"), "{text}");
    assert!(text.contains("does not fit cert_file"), "{text}");
    assert!(text.contains("exporters.webhook/b.tls.key_file"), "{text}");
    let key = std::fs::read_to_string(&p.server.key_file).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    for secret in [
        key_body,
        "c2VjcmV0LWtleS1tYXRlcmlhbA",
        "secret-key-material",
    ] {
        assert!(!text.contains(secret), "key material printed:\n{text}");
    }
}

#[test]
fn otlphttp_over_mtls_posts_gzipped_protobuf_with_its_headers() {
    use peers::otlp_sink::Collector;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let collector = Collector::new("x-tenant");
    let sink = tls_sink::serve(
        rt.handle(),
        collector.http_router("/v1/logs"),
        &p.server,
        Some(&p.ca),
    );
    let gateway = free_port();
    let exporter = format!(
        "  otlphttp/central:\n    endpoint: https://localhost:{}\n    headers: {{ x-tenant: acme }}\n    tls: {}\n",
        sink.addr.port(),
        mtls(&p)
    );
    let _daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "otlphttp/central"),
        &[],
    );
    send_logins(gateway, 0, 40);
    wait_until("the collector has every record over HTTP", WAIT, || {
        all_of(&collector.seqs(), 40)
    });
    assert!(collector.header.lock().unwrap().iter().all(|h| h == "acme"));
}

#[test]
fn server_name_override_checks_the_sinks_certificate_against_the_configured_name() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let ca = Ca::new(tmp.path(), "private-ca");
    // The certificate names only sink.internal, which does not resolve here.
    let server = ca.issue(tmp.path(), "sink", &["sink.internal"]);
    let hook = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = tls_sink::serve(rt.handle(), hook.router(), &server, None);
    let gateway = free_port();
    let exporter = |override_line: &str| {
        format!(
            "  webhook/soc:\n    url: https://127.0.0.1:{}/hook\n    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}\n    tls: {{ ca_file: {}{override_line} }}\n",
            sink.addr.port(),
            ca.cert_file.display()
        )
    };
    let by_address = config(tmp.path(), gateway, &exporter(""), "webhook/soc");
    let mut daemon = start(tmp.path(), gateway, &by_address, &[]);
    send_logins(gateway, 0, 10);
    wait_until(
        "the address is refused: the certificate does not name it",
        WAIT,
        || daemon.log_text().contains("invalid peer certificate"),
    );
    assert!(hook.seqs().is_empty());
    assert!(daemon.terminate().success());

    let named = config(
        tmp.path(),
        gateway,
        &exporter(", server_name_override: sink.internal"),
        "webhook/soc",
    );
    let _daemon = start(tmp.path(), gateway, &named, &[]);
    wait_until(
        "every record once the name is checked instead",
        WAIT,
        || all_of(&hook.seqs(), 10),
    );
}

#[test]
fn min_version_1_3_refuses_a_sink_that_speaks_only_tls_1_2() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let hook = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = tls_sink::serve_tls12_only(rt.handle(), hook.router(), &p.server);
    let gateway = free_port();
    let exporter = |min: &str| {
        format!(
            "  webhook/soc:\n    url: https://localhost:{}/hook\n    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}\n    tls: {{ ca_file: {}, min_version: \"{min}\" }}\n",
            sink.addr.port(),
            p.ca.cert_file.display()
        )
    };
    let mut daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter("1.3"), "webhook/soc"),
        &[],
    );
    send_logins(gateway, 0, 10);
    wait_until("the sink sees a handshake it cannot meet", WAIT, || {
        !sink.handshakes.failed.lock().unwrap().is_empty()
    });
    assert!(hook.seqs().is_empty());
    assert!(daemon.terminate().success());
    // The same sink with the default minimum, 1.2: delivered.
    let _daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter("1.2"), "webhook/soc"),
        &[],
    );
    wait_until("every record over TLS 1.2", WAIT, || {
        all_of(&hook.seqs(), 10)
    });
}

#[test]
fn a_client_without_the_sinks_required_certificate_is_refused_by_the_sink() {
    use peers::webhook::{Auth, Receiver};
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let hook = Arc::new(Receiver::new("/hook", Auth::None));
    let sink = tls_sink::serve(rt.handle(), hook.router(), &p.server, Some(&p.ca));
    let gateway = free_port();
    let exporter = format!(
        "  webhook/soc:\n    url: https://localhost:{}/hook\n    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}\n    tls: {{ ca_file: {} }}\n",
        sink.addr.port(),
        p.ca.cert_file.display()
    );
    let daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "webhook/soc"),
        &[],
    );
    send_logins(gateway, 0, 5);
    wait_until(
        "the sink refuses a handshake without a client certificate",
        WAIT,
        || !sink.handshakes.failed.lock().unwrap().is_empty(),
    );
    wait_until("the daemon logs the failed delivery", WAIT, || {
        daemon.log_text().contains("webhook/soc")
    });
    assert!(hook.seqs().is_empty());
}

/// `moto_server` over TLS with `server`'s certificate, stopped when dropped.
struct TlsMoto(std::process::Child);

impl Drop for TlsMoto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tls_moto(dir: &Path, server: &Leaf) -> (TlsMoto, u16) {
    let moto = peers::moto::Moto::server().expect(
        "moto_server is missing: run scripts/test.sh, which installs moto[server] in the test venv",
    );
    let port = free_port();
    let log = std::fs::File::create(dir.join("moto.log")).unwrap();
    let child = std::process::Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-s"])
        .arg("-c")
        .arg(&server.cert_file)
        .arg("-k")
        .arg(&server.key_file)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut moto = TlsMoto(child);
    wait_until("moto_server to listen", WAIT, || {
        assert!(matches!(moto.0.try_wait(), Ok(None)), "moto_server exited");
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (moto, port)
}

#[test]
fn s3_writes_bundles_to_a_store_behind_tls_with_a_private_ca() {
    use vellum::net::tls::client::ClientTls;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let (_moto, port) = start_tls_moto(tmp.path(), &p.server);
    let url = format!("https://localhost:{port}");
    let tls = ClientTls {
        ca_file: Some(p.ca.cert_file.clone()),
        ..ClientTls::default()
    };
    let rustls_config = tls.config().unwrap();
    let connection = vellum::exporters::s3::client::Connection {
        tls: Some(Arc::new(rustls_config)),
        ..peers::moto::connection(&url)
    };
    let client = rt.block_on(connection.client());
    rt.block_on(peers::moto::create_locked_bucket(&client, "tls-evidence"));

    let gateway = free_port();
    let exporter = format!(
        "  s3/evidence:\n    bucket: tls-evidence\n    endpoint: {url}\n    region: us-east-1\n    force_path_style: true\n    access_key_id: testing\n    secret_access_key: testing\n    tls: {{ ca_file: {} }}\n",
        p.ca.cert_file.display()
    );
    let yaml = config_with_checkpoints(&config(tmp.path(), gateway, &exporter, "s3/evidence"));
    let _daemon = start(tmp.path(), gateway, &yaml, &[]);
    send_logins(gateway, 0, 30);
    wait_until("a bundle and its manifest in the bucket", WAIT, || {
        let keys = rt.block_on(peers::moto::objects(&client, "tls-evidence"));
        keys.iter().any(|k| k.contains("manifest"))
    });
}

/// Checkpoints every second, as the `s3` exporter's bundles end at one.
fn config_with_checkpoints(yaml: &str) -> String {
    yaml.replace(
        "checkpoint: { every_records: 1000, every: 1h }",
        "checkpoint: { every_records: 10, every: 1s }",
    )
}

#[test]
#[ignore = "a measurement: cargo test --test exporter_tls -- --ignored --nocapture"]
fn otlp_grpc_exporter_drains_a_backlog_over_mtls_near_the_plaintext_rate() {
    const N: u64 = 20_000;
    let plain = drain_rate(false, N);
    let mtls = drain_rate(true, N);
    println!(
        "otlp gRPC exporter, {N} records: plaintext {plain:.0} records/s, mTLS {mtls:.0} records/s ({:.0}%)",
        100.0 * mtls / plain
    );
}

/// Records per second the `otlp` exporter delivers from a backlog of `n` once its
/// collector comes up, over mTLS or in clear text.
fn drain_rate(tls: bool, n: u64) -> f64 {
    use peers::otlp_sink::Collector;
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let p = pki(tmp.path());
    let (gateway, port) = (free_port(), free_port());
    let endpoint = if tls {
        format!("localhost:{port}\n    tls: {}", mtls(&p))
    } else {
        format!("http://127.0.0.1:{port}")
    };
    let exporter = format!(
        "  otlp/central:\n    retry_on_failure: {{ initial_interval: 10ms, max_interval: 20ms }}\n    endpoint: {endpoint}\n"
    );
    let _daemon = start(
        tmp.path(),
        gateway,
        &config(tmp.path(), gateway, &exporter, "otlp/central"),
        &[],
    );
    for from in (0..n).step_by(1000) {
        send_logins(gateway, from as usize, 1000);
    }
    let collector = Collector::new("x-tenant");
    let started = std::time::Instant::now();
    if tls {
        collector.serve_grpc_on(rt.handle(), &p.server, Some(&p.ca), port);
    } else {
        collector.serve_grpc_plain_on(rt.handle(), port);
    }
    wait_until("the backlog delivered", Duration::from_secs(300), || {
        collector.seqs.lock().unwrap().len() as u64 >= n
    });
    n as f64 / started.elapsed().as_secs_f64()
}
