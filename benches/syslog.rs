//! Cost of the syslog receiver's per-message work: splitting a TCP stream into frames,
//! and turning one message into a record (parse plus mapping), for typical RFC 5424 and
//! RFC 3164 audit messages.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::IpAddr;
use vellum::receivers::syslog::{Format, Frame, FrameDecoder, message_record};

const RFC5424: &[u8] = b"<86>1 2026-11-23T18:55:00.123456Z gw-01.example.com ai-gateway 4711 AUDIT [audit@32473 user=\"u-1f2e3d4c\" route=\"/v1/chat/completions\" status=\"200\"][origin ip=\"192.0.2.10\"] \xEF\xBB\xBFchat completion served model=gpt-4o-mini prompt_tokens=812 completion_tokens=164\n";
const RFC3164: &[u8] = b"<86>Nov 23 18:55:00 gw-01 sshd[4711]: Accepted publickey for deploy from 192.0.2.10 port 51234 ssh2: ED25519 SHA256:3q2+7w\n";
/// 2026-11-23T18:55:00Z.
const NOW: u64 = 1_795_460_100_000_000_000;

fn frame(bytes: &[u8]) -> Frame {
    Frame {
        bytes: bytes.to_vec(),
        original_len: bytes.len() as u64,
    }
}

fn records(c: &mut Criterion) {
    let peer = IpAddr::from([192, 0, 2, 10]);
    let mut group = c.benchmark_group("syslog_record");
    group.throughput(Throughput::Elements(1));
    for (name, message) in [("rfc5424", RFC5424), ("rfc3164", RFC3164)] {
        let frame = frame(message);
        group.bench_function(name, |b| {
            b.iter(|| {
                message_record(
                    "syslog/tcp",
                    Format::Auto,
                    &jiff::tz::TimeZone::UTC,
                    black_box(&frame),
                    peer,
                    NOW,
                )
            })
        });
    }
    group.finish();
}

fn framing(c: &mut Criterion) {
    let mut stream = Vec::new();
    for _ in 0..1000 {
        stream.extend_from_slice(format!("{} ", RFC5424.len()).as_bytes());
        stream.extend_from_slice(RFC5424);
    }
    let lines: Vec<u8> = RFC5424.repeat(1000);
    let mut group = c.benchmark_group("syslog_framing_1000_messages");
    for (name, input) in [("octet_counted", &stream), ("line_feed", &lines)] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(64 << 10);
                let mut frames = Vec::with_capacity(1000);
                // 64 KiB reads, as the receiver does.
                for chunk in black_box(input).chunks(64 << 10) {
                    decoder
                        .feed(chunk, &mut frames)
                        .map_err(|e| e.to_string())?;
                }
                Ok::<usize, String>(frames.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, records, framing);
criterion_main!(benches);
