//! Hostile-input cases: receivers and every HTTP listener. No credentials, the limits a
//! configuration states, and the real binary: amplifying requests must stay within the
//! memory bound the README states (connections × body limit × 8), slow clients are cut
//! at the configured deadlines, a full listener keeps serving, SIGTERM is bounded by the
//! drain timeout, and RFC 3164 dates never land in the future.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{
    Daemon, PipelineConfig, evidence_entries, free_port, http_get, http_post, peak_rss_bytes,
    wait_until,
};

/// The README's bound: one request in flight holds at most this many times the body
/// limit (body, decoded form, records at most 4 × the limit, and their sealed copies).
const MEMORY_FACTOR: u64 = 8;
/// What the daemon's peak may grow by for reasons of its own while a test runs
/// (allocator arenas of threads first used, socket buffers): the bound's constant term.
const RUNTIME_SLACK: u64 = 16 << 20;

const BODY_LIMIT: u64 = 1 << 20;
const MAX_CONNECTIONS: u64 = 4;

struct Ports {
    grpc: u16,
    otlp_http: u16,
    gateway: u16,
    syslog: u16,
    telemetry: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            grpc: free_port(),
            otlp_http: free_port(),
            gateway: free_port(),
            syslog: free_port(),
            telemetry: free_port(),
        }
    }

    fn all(&self) -> Vec<SocketAddr> {
        [
            self.grpc,
            self.otlp_http,
            self.gateway,
            self.syslog,
            self.telemetry,
        ]
        .iter()
        .map(|p| addr(*p))
        .collect()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Every receiver with 1 MiB bodies, 4 connections, and short deadlines.
fn config(dir: &Path, p: &Ports) -> String {
    PipelineConfig::new(dir)
        .receiver(
            "otlp",
            format!(
                r#"
                protocols:
                  grpc: {{ endpoint: 127.0.0.1:{grpc}, max_recv_msg_size: 1MiB, max_connections: 4,
                          read_header_timeout: 1s }}
                  http: {{ endpoint: 127.0.0.1:{http}, max_request_body_size: 1MiB, max_connections: 4,
                          read_header_timeout: 1s, read_timeout: 3s, idle_timeout: 2s }}
                "#,
                grpc = p.grpc,
                http = p.otlp_http,
            ),
        )
        .receiver(
            "http/gateway",
            format!(
                "{{ endpoint: 127.0.0.1:{}, max_request_body_size: 1MiB, max_connections: 4, \
                 read_header_timeout: 1s, read_timeout: 3s, min_body_rate: 1KiB, idle_timeout: 2s }}",
                p.gateway
            ),
        )
        .receiver(
            "syslog/tcp",
            format!(
                "{{ protocol: tcp, endpoint: 127.0.0.1:{}, max_connections: 4, read_timeout: 1s, \
                 location: Europe/Berlin }}",
                p.syslog
            ),
        )
        .chain()
        .file("file/evidence", &dir.join("evidence"))
        .service(&format!(
            "telemetry:\n  metrics: {{ address: 127.0.0.1:{} }}",
            p.telemetry
        ))
        .yaml()
}

fn start(dir: &Path, p: &Ports, args: &[&str]) -> Daemon {
    let path = dir.join("vellum.yaml");
    std::fs::write(&path, config(dir, p)).expect("write config");
    Daemon::start_with_args(dir, &path, &p.all(), args)
}

/// POSTs `body` and returns (status, body text); transport errors are status 0.
fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    http_post(
        &format!("http://127.0.0.1:{port}{path}"),
        Some(content_type),
        body,
    )
}

/// The bound on peak RSS growth for `requests` requests in flight at once.
fn memory_bound(requests: u64) -> u64 {
    requests.min(MAX_CONNECTIONS) * BODY_LIMIT * MEMORY_FACTOR + RUNTIME_SLACK
}

/// Warms every path once, so the baseline includes what the first request allocates.
fn warm_up(p: &Ports) {
    let (status, _) = post(p.gateway, "/v1/events", "application/json", br#"{"a":1}"#);
    assert_eq!(status, 200);
    let one = otlp_json(1, 16);
    let (status, body) = post(p.otlp_http, "/v1/logs", "application/json", &one);
    assert_eq!(status, 200, "{body}");
}

/// An OTLP/JSON request: one resource with a `resource_bytes` attribute, `records` empty
/// log records.
fn otlp_json(records: usize, resource_bytes: usize) -> Vec<u8> {
    let logs = vec!["{}"; records].join(",");
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"blob","value":{{"stringValue":"{}"}}}}]}},"scopeLogs":[{{"logRecords":[{logs}]}}]}}]}}"#,
        "r".repeat(resource_bytes)
    )
    .into_bytes()
}

#[test]
fn a_resource_copied_into_every_log_record_is_refused_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let mut daemon = start(dir.path(), &p, &[]);
    warm_up(&p);
    let before = peak_rss_bytes(daemon.child.id());

    // 64 KiB of resource and 1,000 empty records: 66 KiB sent, 64 MiB once copied.
    let body = otlp_json(1000, 64 << 10);
    assert!((body.len() as u64) < BODY_LIMIT / 8);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| s.spawn(|| post(p.otlp_http, "/v1/logs", "application/json", &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let grpc = grpc_export(p.grpc, 1000, 64 << 10);
    let growth = peak_rss_bytes(daemon.child.id()).saturating_sub(before);
    eprintln!(
        "resource amplification: peak RSS {} MiB before, grew {} KiB",
        before >> 20,
        growth >> 10
    );

    for (status, text) in &answers {
        assert_eq!(*status, 413, "{text}");
        assert!(text.contains("resource"), "{text}");
    }
    let status = grpc.expect_err("the gRPC export was accepted");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        growth <= memory_bound(MAX_CONNECTIONS),
        "peak RSS grew by {growth} bytes, over the bound of {}",
        memory_bound(MAX_CONNECTIONS)
    );
    // The same resource with a few records is kept whole.
    let (status, text) = post(
        p.otlp_http,
        "/v1/logs",
        "application/json",
        &otlp_json(3, 64 << 10),
    );
    assert_eq!(status, 200, "{text}");
    assert!(daemon.alive());
}

#[test]
fn many_grpc_streams_at_once_are_decoded_no_more_than_max_connections_at_a_time() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let mut daemon = start(dir.path(), &p, &[]);
    warm_up(&p);
    assert!(grpc_export(p.grpc, 1, 16).is_ok());
    let before = peak_rss_bytes(daemon.child.id());
    // 32 streams on one connection, each just under the 1 MiB message limit: a 900 KiB
    // resource that every one of its 8,000 records would copy. Each is refused, but only
    // after it is decoded: how many are decoded at once is what memory follows.
    let request: ExportLogsServiceRequest =
        serde_json::from_slice(&otlp_json(8000, 900 << 10)).unwrap();
    let streams = 32;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answers = runtime.block_on(async {
        let client = LogsServiceClient::connect(format!("http://127.0.0.1:{}", p.grpc))
            .await
            .unwrap()
            .max_encoding_message_size(4 << 20);
        let calls = (0..streams).map(|_| {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.export(request).await.map(|_| ()) }
        });
        futures::future::join_all(calls).await
    });
    let growth = peak_rss_bytes(daemon.child.id()).saturating_sub(before);
    eprintln!(
        "{streams} gRPC streams at once: peak RSS grew {} KiB",
        growth >> 10
    );
    for answer in &answers {
        let status = answer
            .as_ref()
            .expect_err("an amplifying export was accepted");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    assert!(
        growth <= memory_bound(MAX_CONNECTIONS),
        "peak RSS grew by {growth} bytes, over the bound of {}",
        memory_bound(MAX_CONNECTIONS)
    );
    assert!(daemon.alive());
}

/// Exports over gRPC what [`otlp_json`] builds, in protobuf.
fn grpc_export(port: u16, records: usize, resource_bytes: usize) -> Result<(), tonic::Status> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    let request: ExportLogsServiceRequest =
        serde_json::from_slice(&otlp_json(records, resource_bytes)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        client.export(request).await.map(|_| ())
    })
}

#[test]
fn hundreds_of_thousands_of_tiny_records_are_refused_by_count_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let mut daemon = start(dir.path(), &p, &[]);
    warm_up(&p);
    let before = peak_rss_bytes(daemon.child.id());

    // 349,000 `{}` lines: just under 1 MiB of NDJSON.
    let ndjson = "{}\n".repeat(349_000);
    assert!((ndjson.len() as u64) < BODY_LIMIT);
    let (status, text) = post(
        p.gateway,
        "/v1/events",
        "application/x-ndjson",
        ndjson.as_bytes(),
    );
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_records_per_request (10000)"), "{text}");
    // 400,000 empty OTLP log records in protobuf: 2 bytes each on the wire.
    let protobuf = empty_log_records_protobuf(400_000);
    assert!((protobuf.len() as u64) < BODY_LIMIT);
    let (status, _) = post(p.otlp_http, "/v1/logs", "application/x-protobuf", &protobuf);
    assert_eq!(status, 413);
    // The same over gRPC, refused before it is decoded.
    let status = grpc_raw_export(p.grpc, protobuf).expect_err("the gRPC export was accepted");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("max_records_per_request"),
        "{status:?}"
    );
    let growth = peak_rss_bytes(daemon.child.id()).saturating_sub(before);
    eprintln!("tiny records: peak RSS grew {} KiB", growth >> 10);
    assert!(
        growth <= memory_bound(1),
        "peak RSS grew by {growth} bytes, over the bound of {}",
        memory_bound(1)
    );
    let metrics = get(p.telemetry, "/metrics");
    assert!(
        metrics.contains(r#"vellum_receiver_refused_records_total{receiver="http/gateway",reason="too_many_records"} 1"#),
        "{metrics}"
    );
    assert!(daemon.alive());
}

/// An `ExportLogsServiceRequest` of one resource and scope with `n` empty log records.
fn empty_log_records_protobuf(n: usize) -> Vec<u8> {
    // ScopeLogs { log_records (2): n × empty } inside ResourceLogs { scope_logs (2) }
    // inside the request's resource_logs (1), each length-delimited.
    let scope: Vec<u8> = [0x12u8, 0x00].repeat(n);
    let resource = [vec![0x12], varint(scope.len()), scope].concat();
    [vec![0x0a], varint(resource.len()), resource].concat()
}

/// Exports encoded protobuf bytes over gRPC as they are, without decoding them here.
fn grpc_raw_export(port: u16, message: Vec<u8>) -> Result<(), tonic::Status> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Raw {}
    #[derive(Default)]
    struct RawCodec;
    struct RawEncoder;
    impl tonic::codec::Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(
            &mut self,
            item: Vec<u8>,
            dst: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            use bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl tonic::codec::Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Raw;
        type Encoder = RawEncoder;
        type Decoder = <tonic_prost::ProstCodec<Raw, Raw> as tonic::codec::Codec>::Decoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> Self::Decoder {
            tonic_prost::ProstCodec::<Raw, Raw>::default().decoder()
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        );
        grpc.unary(tonic::Request::new(message), path, RawCodec)
            .await
            .map(|_| ())
    })
}

fn varint(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn get(port: u16, path: &str) -> String {
    http_get(&format!("http://127.0.0.1:{port}{path}")).1
}

/// Reads until the server closes the connection; returns what it sent and when it closed
/// (None if it was still open after `limit`).
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (lossy(&got), Some(started.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (lossy(&got), Some(started.elapsed())),
        }
    }
    (lossy(&got), None)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_slow_loris_header_is_cut_at_read_header_timeout_on_every_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let _daemon = start(dir.path(), &p, &[]);
    // read_header_timeout is 1s on the receivers; the telemetry server keeps the 10s
    // default. gRPC gets the HTTP/2 connection preface a byte at a time.
    // Header bytes without end for HTTP/1; for HTTP/2, the preface short of its last byte,
    // so that what cuts the connection can only be the deadline.
    let http1: (&[u8], &[u8]) = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\n", b"X");
    let http2: (&[u8], &[u8]) = (b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r");
    for (port, limit, (head, trickle)) in [
        (p.gateway, Duration::from_secs(1), http1),
        (p.otlp_http, Duration::from_secs(1), http1),
        (p.telemetry, Duration::from_secs(10), http1),
        (p.grpc, Duration::from_secs(1), http2),
    ] {
        let mut stream = TcpStream::connect(addr(port)).unwrap();
        stream.write_all(head).unwrap();
        let started = Instant::now();
        // One byte every 200 ms: an idle timer restarted by each would never fire.
        let mut cut = None;
        let mut bytes = trickle.iter().cycle().take(if trickle == b"X" {
            usize::MAX
        } else {
            trickle.len()
        });
        while started.elapsed() < limit * 3 {
            let byte: &[u8] = bytes.next().map(std::slice::from_ref).unwrap_or_default();
            if stream.write_all(byte).is_err() {
                cut = Some(started.elapsed());
                break;
            }
            let (_, closed) = wait_closed(&mut stream, Duration::from_millis(200));
            if closed.is_some() {
                cut = Some(started.elapsed());
                break;
            }
        }
        let cut = cut.unwrap_or_else(|| {
            panic!(
                "port {port}: a trickled header was kept open for {:?}",
                limit * 3
            )
        });
        assert!(
            cut >= limit.mul_f32(0.9),
            "port {port}: cut after {cut:?}, before the timeout"
        );
        assert!(
            cut < limit + Duration::from_secs(2),
            "port {port}: cut after {cut:?}"
        );
    }
}

#[test]
fn a_trickling_body_is_answered_408_at_min_body_rate() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let _daemon = start(dir.path(), &p, &[]);
    let mut stream = TcpStream::connect(addr(p.gateway)).unwrap();
    stream
        .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        .unwrap();
    let started = Instant::now();
    // A byte every 200 ms is 5 B/s, far under min_body_rate (1 KiB/s after a 5 s start),
    // and the whole body could never arrive within read_timeout (3 s).
    let mut answer = String::new();
    let mut closed = None;
    while started.elapsed() < Duration::from_secs(10) {
        let _ = stream.write_all(b" ");
        let (got, at) = wait_closed(&mut stream, Duration::from_millis(200));
        answer.push_str(&got);
        if at.is_some() || answer.contains("\r\n\r\n") {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("a body trickled at 5 B/s was still read after 10 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        closed < Duration::from_secs(3) + Duration::from_secs(2),
        "{closed:?}"
    );
    let metrics = get(p.telemetry, "/metrics");
    assert!(
        metrics
            .contains(r#"vellum_listener_timeouts_total{listener="http/gateway",phase="body"} 1"#),
        "{metrics}"
    );
}

#[test]
fn when_every_slot_is_taken_by_idle_or_slow_clients_a_new_client_is_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let _daemon = start(dir.path(), &p, &[]);
    // Fill every slot: two idle connections, two in the middle of a header.
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|i| {
            let mut s = TcpStream::connect(addr(p.gateway)).unwrap();
            if i % 2 == 1 {
                s.write_all(b"POST /v1/events HTTP/1.1\r\n").unwrap();
            }
            s
        })
        .collect();
    // The kernel queues them before the newcomer, so the daemon accepts them first.
    for i in 0..3 {
        let (status, text) = post(
            p.gateway,
            "/v1/events",
            "application/json",
            format!(r#"{{"n":{i}}}"#).as_bytes(),
        );
        assert_eq!(status, 200, "request {i} while every slot was held: {text}");
    }
    // The slots were freed by closing the held connections, never exceeding the limit.
    let closed = held
        .iter_mut()
        .filter_map(|s| wait_closed(s, Duration::from_millis(300)).1)
        .count();
    assert!(closed >= 1, "no held connection was closed to make room");
}

#[test]
fn sigterm_with_slow_clients_connected_exits_within_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let mut daemon = start(dir.path(), &p, &["--drain-timeout", "2s"]);
    let (status, _) = post(
        p.gateway,
        "/v1/events",
        "application/json",
        br#"{"before":"stop"}"#,
    );
    assert_eq!(status, 200);
    // A partial header, a trickling body and an idle connection on each HTTP listener,
    // and a partial syslog message.
    let mut slow = Vec::new();
    for (port, path) in [
        (p.gateway, "/v1/events"),
        (p.otlp_http, "/v1/logs"),
        (p.telemetry, "/metrics"),
    ] {
        let mut header = TcpStream::connect(addr(port)).unwrap();
        header
            .write_all(format!("POST {path} HTTP/1.1\r\nHo").as_bytes())
            .unwrap();
        let mut body = TcpStream::connect(addr(port)).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n{{"
        );
        body.write_all(head.as_bytes()).unwrap();
        slow.push(header);
        slow.push(body);
        slow.push(TcpStream::connect(addr(port)).unwrap());
    }
    let mut syslog = TcpStream::connect(addr(p.syslog)).unwrap();
    syslog
        .write_all(b"<13>Oct 11 22:14:15 host app: partial")
        .unwrap();
    // Keep the trickle going while the daemon stops.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        let mut bodies: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut bodies {
                    let _ = s.write_all(b" ");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    let status = daemon.terminate();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    trickler.join().unwrap();
    assert!(status.success(), "{status}: {}", daemon.log_text());
    // The drain timeout bounds receivers and exporters together; the margin is the
    // writers' last checkpoint and the process exit.
    assert!(
        took < Duration::from_secs(2) + Duration::from_secs(2),
        "SIGTERM took {took:?} with slow clients connected:\n{}",
        daemon.log_text()
    );
    let entries = evidence_entries(&dir.path().join("evidence"));
    assert!(entries.iter().any(|e| e["attributes"]["before"] == "stop"));
}

#[test]
fn syslog_senders_trickling_a_byte_at_a_time_cannot_hold_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let _daemon = start(dir.path(), &p, &[]);
    let started = Instant::now();
    let mut senders: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr(p.syslog)).unwrap())
        .collect();
    // A byte every 200 ms from each, never a whole message, for up to 5 s.
    let mut open = senders.len();
    while open > 0 && started.elapsed() < Duration::from_secs(5) {
        open = 0;
        for s in &mut senders {
            if s.write_all(b"x").is_ok() && wait_closed(s, Duration::from_millis(50)).1.is_none() {
                open += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        open, 0,
        "trickling senders still held their slots after 5 s"
    );
    assert!(started.elapsed() < Duration::from_secs(1) + Duration::from_secs(2));
    // A real sender gets a slot and its message is sealed.
    let mut sender = TcpStream::connect(addr(p.syslog)).unwrap();
    sender
        .write_all(b"<13>1 - host app - - - served after the trickle\n")
        .unwrap();
    let evidence = dir.path().join("evidence");
    wait_until("the message to be sealed", Duration::from_secs(10), || {
        evidence_entries(&evidence)
            .iter()
            .any(|e| e["body"] == "served after the trickle")
    });
}

#[test]
fn an_rfc3164_date_ahead_of_today_is_sealed_in_the_past_year_in_the_configured_zone() {
    use jiff::{Timestamp, tz::TimeZone};
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let _daemon = start(dir.path(), &p, &[]);
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    // Two months ahead of now, as a Berlin wall-clock time without a year.
    let ahead = Timestamp::now()
        .to_zoned_datetime(berlin.clone())
        .checked_add(jiff::Span::new().days(61))
        .unwrap();
    let stamp = ahead.strftime("%b %e %H:%M:%S").to_string();
    let mut sender = TcpStream::connect(addr(p.syslog)).unwrap();
    sender
        .write_all(format!("<13>{stamp} host app: dated ahead\n").as_bytes())
        .unwrap();
    let evidence = dir.path().join("evidence");
    let mut sealed = None;
    wait_until("the message to be sealed", Duration::from_secs(10), || {
        sealed = evidence_entries(&evidence)
            .into_iter()
            .find(|e| e["body"] == "dated ahead");
        sealed.is_some()
    });
    let time: Timestamp = sealed.unwrap()["time"].as_str().unwrap().parse().unwrap();
    let wall = ahead.datetime();
    let expected = jiff::civil::DateTime::new(
        wall.year() - 1,
        wall.month(),
        wall.day(),
        wall.hour(),
        wall.minute(),
        wall.second(),
        0,
    )
    .unwrap()
    .to_zoned_datetime(berlin)
    .unwrap()
    .timestamp();
    assert!(time < Timestamp::now(), "{time} is in the future");
    assert_eq!(
        time, expected,
        "sealed {time}, expected {stamp} last year in Berlin"
    );
}
