//! The query index at ten million records, built directly (not through the daemon).
//!
//! The records look like a day of a busy gateway: ten million journal indexes over 24
//! hours (a checkpoint every 10,000), event times a little out of order, 20,000 users of
//! very unequal activity, 60 actions, mostly model requests at `info`, addresses from
//! 100,000 IPv4 hosts across 10.0.0.0/8 and 50,000 IPv6 hosts across 2001:db8::/32.
//!
//! Printed once: the build rate and the memory the index holds per record (bytes
//! allocated, counted by this bench's allocator, and the growth of the resident set).
//! Measured by criterion: one page (100 entries, newest first) of representative
//! queries, the second page through a cursor, and, on a real journal of 200,000 sealed
//! and HMAC-signed entries, a page with its entries fetched and verified as the API
//! does, after indexing that journal from its records (parse and insert).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use vellum::event::{Record, Severity};
use vellum::evidence::hmac::KeyRing;
use vellum::evidence::seal::Chain;
use vellum::journal::{self, Journal, JournalOptions};
use vellum::pipeline::frame::{CheckpointFrame, Frame, encode_checkpoint, encode_entry};
use vellum::query::api::verify_entry;
use vellum::query::fields::EntryFields;
use vellum::query::index::{Filter, Index, IpRange, Item, Order, PageRequest};

/// Counts the bytes allocated and not yet freed, to weigh the index.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RECORDS: u64 = 10_000_000;
const CHECKPOINT_EVERY: u64 = 10_000;
/// 2026-03-01T00:00:00Z in nanoseconds.
const DAY_START: u64 = 1_772_323_200_000_000_000;
const DAY: u64 = 86_400_000_000_000;
const USERS: u64 = 20_000;
const V4_HOSTS: u64 = 100_000;
const V6_HOSTS: u64 = 50_000;

fn mix(mut x: u64) -> u64 {
    // SplitMix64's finaliser: a different, well-spread number for every input.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Picks from `weights` (percentages summing to 100) with `r` in 0..100.
fn pick<T: Copy>(r: u64, weights: &[(T, u64)]) -> T {
    let mut acc = 0;
    for &(v, w) in weights {
        acc += w;
        if r < acc {
            return v;
        }
    }
    weights[weights.len() - 1].0
}

fn time_of(i: u64) -> u64 {
    // Spread over the day, up to two seconds early or late.
    DAY_START + i * (DAY / RECORDS) + mix(i ^ 1) % 4_000_000_000 - 2_000_000_000
}

/// The synthetic record at journal index `i`.
fn fields(i: u64) -> EntryFields {
    let r = mix(i);
    let event_type = pick(
        r % 100,
        &[
            ("model_request", 70),
            ("authentication", 12),
            ("authorization", 5),
            ("configuration_change", 4),
            ("credential_change", 3),
            ("security", 3),
            ("other", 3),
        ],
    );
    let severity = pick(
        (r >> 8) % 100,
        &[
            (Severity::Info, 70),
            (Severity::Low, 12),
            (Severity::Medium, 10),
            (Severity::High, 6),
            (Severity::Critical, 2),
        ],
    );
    // A square makes low ids far busier than high ones, as a few users are.
    let u = (r >> 16) % 1_000_000;
    let user = u * u * USERS / 1_000_000_000_000;
    let status = pick(
        (r >> 36) % 100,
        &[("success", 80), ("failure", 10), ("403", 5), ("500", 5)],
    );
    let host = r >> 44;
    let ip = match (r >> 40) % 20 {
        0..=14 => Some(IpAddr::V4(std::net::Ipv4Addr::from(
            0x0a00_0000u32 + (host % V4_HOSTS) as u32 * 167,
        ))),
        15..=18 => Some(IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_u128 << 96 | u128::from(host % V6_HOSTS) << 72 | u128::from(host % 977),
        ))),
        _ => None,
    };
    EntryFields {
        time: time_of(i),
        event_type: Some(event_type.to_string()),
        severity: Some(severity),
        user_id: Some(format!("user-{user:05}")),
        action: Some(format!("action.{}", (r >> 28) % 60)),
        status: Some(status.to_string()),
        ip,
        identity: Some(format!("spiffe://example.org/gateway-{}", user % 8)),
    }
}

fn item(i: u64) -> Item {
    if i % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
        Item::Checkpoint { size: i }
    } else {
        Item::Entry(fields(i))
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn build_index() -> Index {
    let (allocated_before, resident_before) = (ALLOCATED.load(Ordering::Relaxed), resident_bytes());
    let started = Instant::now();
    let mut index = Index::new(0);
    for i in 0..RECORDS {
        let position = Some(journal::RecordPosition {
            segment: i / 100_000 * 100_000,
            offset: i % 100_000 * 600,
        });
        index
            .push(i, item(i), position)
            .expect("rows for ten million records");
    }
    let took = started.elapsed();
    let allocated = ALLOCATED.load(Ordering::Relaxed) - allocated_before;
    let resident = resident_bytes().saturating_sub(resident_before);
    println!(
        "query index: {RECORDS} records ({} entries) inserted in {:.2} s = {:.0} records/s; \
         holds {:.1} bytes/record allocated ({} MiB), resident set grew {:.1} bytes/record",
        index.len(),
        took.as_secs_f64(),
        RECORDS as f64 / took.as_secs_f64(),
        allocated as f64 / RECORDS as f64,
        allocated >> 20,
        resident as f64 / RECORDS as f64,
    );
    index
}

fn net(s: &str) -> IpRange {
    IpRange::from_net(s.parse().expect("a CIDR block"))
}

fn first_page(order: Order) -> PageRequest {
    PageRequest {
        order,
        after: None,
        limit: 100,
    }
}

fn queries(c: &mut Criterion) {
    let index = build_index();
    let hour = |h: u64| DAY_START + h * 3_600_000_000_000;
    let cases: Vec<(&str, Filter)> = vec![
        (
            "user",
            Filter {
                user_id: vec!["user-05000".into()],
                ..Filter::default()
            },
        ),
        (
            "event_type+severity>=high+1h",
            Filter {
                event_type: vec!["authentication".into()],
                severity: vec![Severity::High, Severity::Critical],
                start: Some(hour(12)),
                end: Some(hour(13)),
                ..Filter::default()
            },
        ),
        (
            "cidr_v4_/16",
            Filter {
                ip: vec![net("10.20.0.0/16")],
                ..Filter::default()
            },
        ),
        (
            "cidr_v4_/8+failure",
            Filter {
                ip: vec![net("10.0.0.0/8")],
                status: vec!["failure".into()],
                ..Filter::default()
            },
        ),
        (
            "cidr_v6_/42+v4_/24",
            Filter {
                ip: vec![net("2001:db8:40::/42"), net("10.1.2.0/24")],
                ..Filter::default()
            },
        ),
        (
            "1min_no_filter",
            Filter {
                start: Some(hour(6)),
                end: Some(hour(6) + 60_000_000_000),
                ..Filter::default()
            },
        ),
        (
            "critical+action+user_rare",
            Filter {
                severity: vec![Severity::Critical],
                action: vec!["action.7".into()],
                user_id: vec!["user-19000".into(), "user-18000".into()],
                ..Filter::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("query_10M");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    for (name, filter) in &cases {
        let page = first_page(Order::NewestFirst);
        let found = index.search(filter, &page, 0);
        println!(
            "{name}: {} hits on the first page, more: {}",
            found.hits.len(),
            found.more
        );
        group.bench_function(*name, |b| {
            b.iter(|| black_box(index.search(black_box(filter), &page, 0)))
        });
    }
    let by_type = Filter {
        event_type: vec!["authentication".into()],
        ..Filter::default()
    };
    let first = index.search(&by_type, &first_page(Order::NewestFirst), 0);
    let second = PageRequest {
        after: first.hits.last().map(|h| h.index),
        ..first_page(Order::NewestFirst)
    };
    group.bench_function("page_2_via_cursor", |b| {
        b.iter(|| black_box(index.search(&by_type, &second, 0)))
    });
    let oldest = first_page(Order::OldestFirst);
    let second_oldest = PageRequest {
        after: index
            .search(&cases[0].1, &oldest, 0)
            .hits
            .last()
            .map(|h| h.index),
        ..oldest
    };
    group.bench_function("user_page_2_oldest_first", |b| {
        b.iter(|| black_box(index.search(&cases[0].1, &second_oldest, 0)))
    });
    group.finish();
    drop(index);
}

const JOURNAL_ENTRIES: u64 = 200_000;

/// A journal of sealed, HMAC-signed entries shaped like the synthetic records.
fn write_journal(dir: &std::path::Path, keys: &KeyRing) -> Journal {
    let (mut writer, journal, _) =
        journal::open(dir, JournalOptions::default()).expect("open a journal");
    let mut chain = Chain::new("logs/audit", Some(keys.clone())).expect("a chain");
    let mut payload = Vec::new();
    for i in 0..JOURNAL_ENTRIES {
        let f = fields(i);
        let mut r = Record::new("http/gateway");
        r.time_unix_nano = f.time;
        r.severity = f.severity;
        r.event_type = f.event_type;
        r.body = json!({"message": "gateway audit event", "request_id": format!("req-{i:08}")});
        r.attributes.insert("user_id".into(), json!(f.user_id));
        r.attributes.insert("action".into(), json!(f.action));
        r.attributes.insert("status".into(), json!(f.status));
        r.attributes
            .insert("ip".into(), json!(f.ip.map(|ip| ip.to_string())));
        r.attributes.insert("model".into(), json!("gpt-4o-mini"));
        let sealed = chain.seal(r.into_json());
        encode_entry(sealed.seq, &sealed.line, &mut payload);
        writer.append(&payload).expect("append");
        if (i + 1) % CHECKPOINT_EVERY == 0 {
            let frame = CheckpointFrame {
                stream: "logs/audit".into(),
                size: i + 1,
                note: String::new(),
                head: String::new(),
                frontier: Vec::new(),
            };
            writer.append(&encode_checkpoint(&frame)).expect("append");
            writer.commit().expect("commit");
        }
    }
    writer.commit().expect("commit");
    drop(writer);
    journal
}

fn index_journal(journal: &Journal) -> Index {
    let mut index = Index::new(journal.first_index());
    let mut reader = journal.reader(journal.first_index()).expect("a reader");
    while let Some(record) = reader.next() {
        let (at, payload) = record.expect("a record");
        let item = match Frame::decode(&payload) {
            Ok(Frame::Entry { line, .. }) => {
                Item::Entry(EntryFields::from_line(line).expect("fields"))
            }
            Ok(Frame::Checkpoint(c)) => Item::Checkpoint { size: c.size },
            Err(_) => Item::Other,
        };
        index.push(at, item, reader.last_position()).expect("rows");
    }
    index
}

fn fetched_pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keys = KeyRing::new(vec![("k1".into(), vec![7; 32])]).expect("a key ring");
    let journal = write_journal(dir.path(), &keys);
    let started = Instant::now();
    let index = index_journal(&journal);
    let took = started.elapsed();
    println!(
        "query index from a journal: {JOURNAL_ENTRIES} sealed entries read, parsed and indexed in {:.2} s = {:.0} records/s ({} MiB on disk)",
        took.as_secs_f64(),
        JOURNAL_ENTRIES as f64 / took.as_secs_f64(),
        journal.disk_bytes() >> 20,
    );
    let filter = Filter {
        event_type: vec!["authentication".into()],
        ..Filter::default()
    };
    let page = first_page(Order::NewestFirst);
    let mut group = c.benchmark_group("query_page_fetched");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("100_entries_fetched_and_verified", |b| {
        b.iter(|| {
            let found = index.search(&filter, &page, journal.first_index());
            let mut fetcher = journal.fetcher();
            let mut valid = 0;
            for hit in &found.hits {
                let payload = fetcher
                    .read(hit.index, hit.near)
                    .expect("readable")
                    .expect("present");
                if let Ok(Frame::Entry { seq, line }) = Frame::decode(&payload) {
                    let v = verify_entry(line, Some(&keys), index.checkpoint_covering(seq));
                    valid += usize::from(v.hash_valid && v.mac_valid == Some(true));
                }
            }
            assert_eq!(valid, 100);
            black_box(valid)
        })
    });
    group.finish();
}

criterion_group!(benches, queries, fetched_pages);
criterion_main!(benches);
