//! Hostile and malformed input gets a precise refusal, the daemon keeps serving, and
//! nothing it accepted before or after is lost.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

/// Every receiver with 64 KiB bodies, the chain and `file/evidence`.
fn config(dir: &std::path::Path, ports: Ports) -> String {
    let (grpc, http, gateway) = (ports.grpc, ports.http, ports.gateway);
    PipelineConfig::standard(dir, ports)
        .edit("otlp", |_| {
            format!(
                r#"
                protocols:
                  grpc: {{ endpoint: 127.0.0.1:{grpc}, max_recv_msg_size: 64KiB }}
                  http: {{ endpoint: 127.0.0.1:{http}, max_request_body_size: 64KiB }}
                "#
            )
        })
        .edit("http/gateway", |_| {
            format!(
                "{{ endpoint: 127.0.0.1:{gateway}, path: /v1/events, max_request_body_size: 64KiB }}"
            )
        })
        .yaml()
}

fn request_with_body(text: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(text.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// POSTs and returns (status, body text), whatever the status.
fn post(url: &str, content_type: &str, encoding: Option<&str>, body: &[u8]) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = agent.post(url).header("Content-Type", content_type);
    if let Some(e) = encoding {
        req = req.header("Content-Encoding", e);
    }
    match req.send(body) {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        // The server may close a connection whose body it refused before reading it all.
        Err(e) => (0, e.to_string()),
    }
}

/// Sends raw bytes as the message of `LogsService/Export` over gRPC.
fn grpc_raw(port: u16, message: Vec<u8>) -> tonic::Status {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        );
        let result: Result<tonic::Response<Vec<u8>>, tonic::Status> = grpc
            .unary(tonic::Request::new(message), path, RawCodec)
            .await;
        match result {
            Ok(_) => tonic::Status::ok("accepted"),
            Err(status) => status,
        }
    })
}

/// A codec that sends and receives message bytes as they are.
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

#[test]
fn malformed_oversized_and_hostile_input_is_refused_precisely_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready: Vec<SocketAddr> = [ports.grpc, ports.http, ports.gateway]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let mut daemon = Daemon::start(tmp.path(), &config(tmp.path(), ports), &ready);
    let otlp = format!("http://127.0.0.1:{}/v1/logs", ports.http);
    let gateway = format!("http://127.0.0.1:{}/v1/events", ports.gateway);

    // Accepted before the abuse.
    assert_eq!(
        post(&gateway, "application/json", None, br#"{"event":"before"}"#).0,
        200
    );

    // OTLP/HTTP.
    let (status, body) = post(
        &otlp,
        "application/x-protobuf",
        None,
        b"\xff\xff\xff garbage",
    );
    assert_eq!(status, 400, "{body}");
    let rpc = tonic_types::Status::decode(body.as_bytes())
        .map(|s| s.message)
        .unwrap_or(body.clone());
    assert!(rpc.contains("invalid OTLP protobuf"), "{rpc}");
    let utf8 = request_with_body("AB").encode_to_vec();
    let at = utf8.windows(2).position(|w| w == b"AB").unwrap();
    let mut bad_utf8 = utf8.clone();
    bad_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    assert_eq!(
        post(&otlp, "application/x-protobuf", None, &bad_utf8).0,
        400
    );
    let (status, body) = post(&otlp, "application/json", None, br#"{"resourceLogs": 5}"#);
    assert_eq!(status, 400);
    assert!(body.contains("invalid OTLP/JSON"), "{body}");
    assert_eq!(post(&otlp, "text/plain", None, b"hello").0, 415);
    let big = request_with_body(&"x".repeat(100 * 1024)).encode_to_vec();
    let (status, _) = post(&otlp, "application/x-protobuf", None, &big);
    assert!(
        status == 413 || status == 0,
        "an oversized body is refused, got {status}"
    );
    let bomb = gzip(&request_with_body(&"y".repeat(1 << 20)).encode_to_vec());
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(
        post(&otlp, "application/x-protobuf", Some("gzip"), &bomb).0,
        413,
        "a gzip bomb is cut at the limit"
    );
    assert_eq!(
        post(
            &otlp,
            "application/x-protobuf",
            Some("gzip"),
            b"not gzip at all"
        )
        .0,
        400
    );
    assert_eq!(
        post(&otlp, "application/x-protobuf", Some("zstd"), &utf8).0,
        415
    );

    // OTLP/gRPC.
    let status = grpc_raw(ports.grpc, b"\xff\xff\xff garbage".to_vec());
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        grpc_raw(ports.grpc, bad_utf8).code(),
        tonic::Code::InvalidArgument
    );
    let status = grpc_raw(ports.grpc, big);
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );

    // The gateway's JSON.
    let (status, body) = post(&gateway, "application/json", None, b"{\"a\":1}\n{broken\n");
    assert_eq!(status, 400);
    assert!(body.contains("line 2"), "{body}");
    let (status, body) = post(&gateway, "application/json", None, b"[1, {\"a\": 2}]");
    assert_eq!(status, 400);
    assert!(body.contains("[0]: an event is a JSON object"), "{body}");
    assert_eq!(post(&gateway, "application/json", None, b"\xc3\x28").0, 400);
    assert_eq!(post(&gateway, "application/json", None, b"").0, 400);
    let (status, _) = post(
        &gateway,
        "application/json",
        None,
        format!("{{\"a\":\"{}\"}}", "z".repeat(100 * 1024)).as_bytes(),
    );
    assert!(status == 413 || status == 0, "got {status}");

    // Still serving, and it kept exactly what it accepted.
    assert!(daemon.alive(), "{}", daemon.log_text());
    assert_eq!(
        post(&gateway, "application/json", None, br#"{"event":"after"}"#).0,
        200
    );
    let evidence = tmp.path().join("evidence");
    wait_until("2 entries", Duration::from_secs(20), || {
        evidence_entries(&evidence).len() >= 2
    });
    assert_eq!(daemon.terminate().code(), Some(0));
    let events: Vec<String> = evidence_entries(&evidence)
        .iter()
        .map(|e| e["attributes"]["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(events, ["before", "after"]);
}

#[test]
fn garbage_on_the_syslog_port_is_kept_marked_and_logger_still_gets_through() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.syslog))];
    let mut daemon = Daemon::start(
        tmp.path(),
        &PipelineConfig::standard(tmp.path(), ports).yaml(),
        &ready,
    );

    let mut noise = std::net::TcpStream::connect(("127.0.0.1", ports.syslog)).unwrap();
    noise
        .write_all(b"\x00\xff\xfe binary noise \x01\x02\n<999>not syslog\n")
        .unwrap();
    drop(noise);
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"\xde\xad\xbe\xef", ("127.0.0.1", ports.syslog))
        .unwrap();
    let logger = std::process::Command::new("logger")
        .args([
            "--tcp",
            "--rfc5424",
            "-n",
            "127.0.0.1",
            "-P",
            &ports.syslog.to_string(),
            "-t",
            "gateway",
            "admin login failed",
        ])
        .status()
        .expect("util-linux logger (installed by scripts/test.sh)");
    assert!(logger.success());

    let evidence = tmp.path().join("evidence");
    wait_until("4 syslog records", Duration::from_secs(20), || {
        evidence_entries(&evidence).len() >= 4
    });
    assert!(daemon.alive());
    assert_eq!(daemon.terminate().code(), Some(0));
    let entries = evidence_entries(&evidence);
    assert_eq!(
        entries.len(),
        4,
        "garbage is kept, never dropped: {entries:#?}"
    );
    let tagged = |e: &serde_json::Value, tag: &str| {
        e["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == tag))
    };
    let bad_pri = entries
        .iter()
        .find(|e| e["body"] == "<999>not syslog")
        .expect("the line with a bad PRI, raw");
    assert!(
        tagged(bad_pri, "unparsed") && bad_pri["attributes"]["syslog.parse_error"].is_string(),
        "{bad_pri:#}"
    );
    // RFC 3164 accepts text without a PRI, so noise is a message, flagged for its bytes.
    let binary = entries
        .iter()
        .filter(|e| e["attributes"]["syslog.invalid_utf8"] == true)
        .count();
    assert_eq!(binary, 2, "{entries:#?}");
    let good = entries
        .iter()
        .find(|e| e["body"] == "admin login failed")
        .expect("the logger message");
    assert_eq!(good["attributes"]["syslog.app_name"], "gateway");
    assert_eq!(good["source"], "syslog/tcp");
}
