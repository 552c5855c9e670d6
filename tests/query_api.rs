//! The query API on the real daemon: gateway events go in through the HTTP receiver,
//! `classify`, the hash chain and `hmac_sign`; the API's answers are compared with a
//! filter the test computes itself over the sealed entries the file exporter wrote.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::config::quoted;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "query-api-test-token-0123456789";
const HMAC_KEY: &str = "a-test-hmac-key-that-is-32-bytes";
const EVENTS: usize = 400;
/// 2026-03-01T00:00:00Z, the first event time.
const BASE_SECONDS: u64 = 1_772_323_200;

/// The gateway through `classify`, the chain (a checkpoint every 50 records) and
/// `hmac_sign` into `file/evidence`; the query API on `api_port` with `token`.
fn config(dir: &Path, ports: Ports, api_port: u16, token: Option<&str>) -> String {
    let config = PipelineConfig::new(dir)
        .gateway(ports.gateway)
        .processor("classify", "{}")
        .chain_every(50)
        .hmac(&format!("[{{ id: k1, key: \"{HMAC_KEY}\" }}]"))
        .file("file/evidence", &dir.join("evidence"));
    match token {
        Some(t) => config.service(&format!(
            "api: {{ endpoint: 127.0.0.1:{api_port}, token: {} }}",
            quoted(t)
        )),
        None => config,
    }
    .yaml()
}

fn rfc3339(seconds: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(seconds as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Event `i`: its time is scattered, not in arrival order; some have no user, the
/// address sits under `ip` or `client_ip`, the status is a word or a number.
fn event(i: usize) -> Value {
    let actions = [
        "login.failed",
        "api_key.created",
        "role.assigned",
        "model.invoke",
        "heartbeat",
        "guardrail.violation",
    ];
    let mut e = json!({
        "time": rfc3339(BASE_SECONDS + ((i * 7919) % EVENTS) as u64 * 60),
        "action": actions[i % actions.len()],
        "request_id": format!("r{i}"),
    });
    if !i.is_multiple_of(11) {
        e["user_id"] = json!(format!("u{}", i % 9));
    }
    e["status"] = match i % 4 {
        0 => json!("success"),
        1 => json!("failure"),
        2 => json!(403),
        _ => json!(200),
    };
    let ip = match i % 5 {
        0 => format!("10.0.{}.{}", i % 3, i % 250),
        1 => format!("192.168.1.{}", i % 250),
        2 => format!("2001:db8:a::{:x}", i),
        3 => format!("2001:db8:b::{:x}", i),
        _ => String::new(),
    };
    if !ip.is_empty() {
        e[if i.is_multiple_of(2) {
            "ip"
        } else {
            "client_ip"
        }] = json!(ip);
    }
    e
}

fn send_events(port: u16) {
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(50) {
        let body: String = chunk.iter().map(|&i| format!("{}\n", event(i))).collect();
        let status = ureq::post(&format!("http://127.0.0.1:{port}/v1/events"))
            .send(body.as_bytes())
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// (status, WWW-Authenticate, JSON body) of a GET with the given parameters.
fn get(port: u16, token: Option<&str>, params: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let mut req = agent().get(&format!("http://127.0.0.1:{port}/api/v1/audit"));
    for (k, v) in params {
        req = req.query(*k, *v);
    }
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.call().expect("the API answers");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (
        r.status().as_u16(),
        challenge,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn post(port: u16, body: &[u8]) -> (u16, Value) {
    let r = agent()
        .post(&format!("http://127.0.0.1:{port}/api/v1/audit/query"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body);
    match r {
        Ok(mut r) => {
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                r.status().as_u16(),
                serde_json::from_str(&text).unwrap_or(Value::Null),
            )
        }
        Err(e) => panic!("the API did not answer the POST: {e}"),
    }
}

/// Every page of a query, following `next_cursor`: the entries in the order given.
fn all_pages(
    mut cursor: Option<String>,
    mut page: impl FnMut(Option<&str>) -> Value,
) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let body = page(cursor.as_deref());
        let entries = body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no entries in {body}"));
        assert_eq!(body["count"].as_u64(), Some(entries.len() as u64));
        out.extend(entries);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("more than 1000 pages");
}

fn get_all(port: u16, params: &[(&str, &str)]) -> Vec<Value> {
    get_all_from(port, params, None)
}

/// Every page of a GET query from the page after `cursor`.
fn get_all_from(port: u16, params: &[(&str, &str)], cursor: Option<String>) -> Vec<Value> {
    all_pages(cursor, |cursor| {
        let mut p = params.to_vec();
        if let Some(c) = cursor {
            p.push(("cursor", c));
        }
        let (status, _, body) = get(port, Some(TOKEN), &p);
        assert_eq!(status, 200, "{params:?}: {body}");
        body
    })
}

fn post_all(port: u16, query: Value) -> Vec<Value> {
    all_pages(None, |cursor| {
        let mut q = query.clone();
        if let Some(c) = cursor {
            q["cursor"] = json!(c);
        }
        let (status, body) = post(port, q.to_string().as_bytes());
        assert_eq!(status, 200, "{q}: {body}");
        body
    })
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries
        .iter()
        .map(|e| e["entry"]["seq"].as_u64().expect("seq"))
        .collect()
}

/// The seqs of the sealed entries that `keep` selects, newest first.
fn expected(sealed: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<u64> {
    let mut out: Vec<u64> = sealed
        .iter()
        .filter(|e| keep(e))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    out.reverse();
    out
}

fn attr<'a>(e: &'a Value, name: &str) -> Option<&'a Value> {
    e["attributes"].get(name)
}

fn ip_of(e: &Value) -> Option<IpAddr> {
    attr(e, "ip")
        .or(attr(e, "client_ip"))?
        .as_str()?
        .parse()
        .ok()
}

fn parse(t: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
}

fn time_of(e: &Value) -> time::OffsetDateTime {
    parse(e["time"].as_str().unwrap())
}

fn checkpoint_sizes(evidence: &Path) -> BTreeSet<u64> {
    files_under(evidence)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "note"))
        .filter_map(|p| {
            std::fs::read_to_string(p)
                .ok()?
                .lines()
                .nth(1)?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn queries_match_an_independent_filter_page_exactly_once_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let api = free_port();
    let ready = [
        SocketAddr::from(([127, 0, 0, 1], ports.gateway)),
        SocketAddr::from(([127, 0, 0, 1], api)),
    ];
    let yaml = config(tmp.path(), ports, api, Some(TOKEN));
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    send_events(ports.gateway);
    let evidence = tmp.path().join("evidence");
    wait_until(
        "every event in the evidence files and a checkpoint over them",
        Duration::from_secs(30),
        || {
            evidence_entries(&evidence).len() == EVENTS
                && checkpoint_sizes(&evidence).last() == Some(&(EVENTS as u64))
        },
    );
    let sealed = evidence_entries(&evidence);
    let sent: BTreeSet<String> = (0..EVENTS).map(|i| format!("r{i}")).collect();
    let got: BTreeSet<String> = sealed
        .iter()
        .map(|e| attr(e, "request_id").unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, sent, "the sealed entries are the events sent");
    wait_until(
        "the index to hold every entry and the last checkpoint",
        Duration::from_secs(30),
        || {
            let (status, _, body) = get(api, Some(TOKEN), &[("limit", "1")]);
            status == 200
                && body["complete"] == true
                && body["entries"][0]["entry"]["seq"] == json!(EVENTS - 1)
                && body["entries"][0]["verification"]["checkpoint"] == json!(EVENTS)
        },
    );

    // Everything, newest first and oldest first, over small pages.
    let everything = get_all(api, &[("limit", "7")]);
    assert_eq!(seqs(&everything), expected(&sealed, |_| true));
    let mut oldest = get_all(api, &[("limit", "9"), ("order", "oldest_first")]);
    oldest.reverse();
    assert_eq!(seqs(&oldest), seqs(&everything));

    // The entries are the sealed ones byte for byte (as parsed JSON), each verified.
    let notes = checkpoint_sizes(&evidence);
    for (answer, entry) in everything.iter().rev().zip(&sealed) {
        assert_eq!(&answer["entry"], entry);
        let v = &answer["verification"];
        assert_eq!(v["hash_valid"], true, "{answer}");
        assert_eq!(v["mac_valid"], true, "{answer}");
        assert_eq!(v["hash"], entry["hash"]);
        let seq = entry["seq"].as_u64().unwrap();
        let covering = notes.iter().find(|&&size| size > seq).copied();
        assert_eq!(
            v["checkpoint"].as_u64(),
            covering,
            "seq {seq}, notes {notes:?}"
        );
    }

    // Single filters and combinations, by GET.
    let by_user = get_all(api, &[("user_id", "u4"), ("limit", "5")]);
    assert_eq!(
        seqs(&by_user),
        expected(&sealed, |e| attr(e, "user_id") == Some(&json!("u4")))
    );
    assert!(!by_user.is_empty());

    let start = rfc3339(BASE_SECONDS + 100 * 60);
    let end = rfc3339(BASE_SECONDS + 300 * 60);
    let combined = get_all(
        api,
        &[
            ("event_type", "authentication"),
            ("severity", ">=medium"),
            ("start", &start),
            ("end", &end),
            ("limit", "3"),
        ],
    );
    let ranked = |s: &Value| ["medium", "high", "critical"].contains(&s.as_str().unwrap_or(""));
    assert_eq!(
        seqs(&combined),
        expected(&sealed, |e| e["event_type"] == "authentication"
            && ranked(&e["severity"])
            && time_of(e) >= parse(&start)
            && time_of(e) < parse(&end))
    );
    assert!(!combined.is_empty());

    let status_403 = get_all(api, &[("status", "403"), ("action", "role.assigned")]);
    assert_eq!(
        seqs(&status_403),
        expected(&sealed, |e| attr(e, "status") == Some(&json!(403))
            && attr(e, "action") == Some(&json!("role.assigned")))
    );
    let in_cidr = get_all(api, &[("ip", "10.0.1.0/24"), ("limit", "4")]);
    let net: ipnet::IpNet = "10.0.1.0/24".parse().unwrap();
    assert_eq!(
        seqs(&in_cidr),
        expected(&sealed, |e| ip_of(e).is_some_and(|ip| net.contains(&ip)))
    );
    assert!(!in_cidr.is_empty());

    // POST: lists, and CIDR blocks of both families.
    let query = json!({
        "user_id": ["u1", "u2", "u7"],
        "ip": ["192.168.1.0/25", "2001:db8:a::/48"],
        "status": ["failure", 200],
        "limit": 4,
    });
    let v4: ipnet::IpNet = "192.168.1.0/25".parse().unwrap();
    let v6: ipnet::IpNet = "2001:db8:a::/48".parse().unwrap();
    let posted = post_all(api, query);
    assert_eq!(
        seqs(&posted),
        expected(&sealed, |e| ["u1", "u2", "u7"].iter().any(|u| attr(
            e, "user_id"
        ) == Some(
            &json!(u)
        )) && ip_of(e)
            .is_some_and(|ip| v4.contains(&ip) || v6.contains(&ip))
            && (attr(e, "status") == Some(&json!("failure"))
                || attr(e, "status") == Some(&json!(200))))
    );
    assert!(seqs(&posted).len() >= 2, "{}", seqs(&posted).len());
    let posted_v6 = post_all(
        api,
        json!({"ip": "2001:db8:b::/48", "order": "oldest_first"}),
    );
    let mut expected_v6 = expected(&sealed, |e| {
        ip_of(e).is_some_and(|ip| ip.is_ipv6() && ip.to_string().starts_with("2001:db8:b:"))
    });
    expected_v6.reverse();
    assert_eq!(seqs(&posted_v6), expected_v6);
    assert!(!expected_v6.is_empty());

    // Each filter selected some entries, not all.
    for (name, found) in [
        ("user", &by_user),
        ("combined", &combined),
        ("status", &status_403),
        ("cidr", &in_cidr),
        ("post", &posted),
    ] {
        assert!(
            !found.is_empty() && found.len() < EVENTS / 2,
            "{name}: {}",
            found.len()
        );
    }

    // Nothing matches: an empty page without a cursor.
    let (status, _, none) = get(api, Some(TOKEN), &[("user_id", "nobody")]);
    assert_eq!(
        (status, none["count"].as_u64(), &none["next_cursor"]),
        (200, Some(0), &Value::Null)
    );

    // Authorization.
    let (status, challenge, body) = get(api, None, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    let (status, challenge, _) = get(api, Some("wrong-token-wrong-token-wrong"), &[]);
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    let unauthorized = agent()
        .post(&format!("http://127.0.0.1:{api}/api/v1/audit/query"))
        .send(b"{}".as_slice())
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(unauthorized, 401);

    // Bad parameters name themselves; a cursor from another query is refused.
    for (params, name) in [
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "5000")], "limit"),
        (vec![("severity", "urgent")], "severity"),
        (vec![("start", "last tuesday")], "start"),
        (vec![("ip", "10.0.0.0/99")], "ip"),
        (vec![("colour", "red")], "colour"),
        (vec![("user_id", "u4"), ("cursor", "AAAA")], "cursor"),
    ] {
        let (status, _, body) = get(api, Some(TOKEN), &params);
        assert_eq!(
            (status, body["parameter"].as_str()),
            (400, Some(name)),
            "{params:?}: {body}"
        );
    }
    let (_, _, first) = get(api, Some(TOKEN), &[("user_id", "u4"), ("limit", "2")]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (status, _, body) = get(
        api,
        Some(TOKEN),
        &[("user_id", "u5"), ("limit", "2"), ("cursor", &cursor)],
    );
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("cursor")),
        "{body}"
    );
    let (status, body) = post(api, br#"{"user_id": ["u1"], "limit": "many"}"#);
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("limit")),
        "{body}"
    );
    let (status, body) = post(api, br#"{"ip": ["not-an-ip"]}"#);
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("ip")),
        "{body}"
    );
    let (status, body) = post(
        api,
        format!("{{\"user_id\": [\"{}\"]}}", "u".repeat(100 * 1024)).as_bytes(),
    );
    assert_eq!(status, 413, "{body}");

    // A restart rebuilds the index from the journal; a cursor from before still pages on.
    let u4 = [("user_id", "u4"), ("limit", "2")];
    let rest_before = get_all_from(api, &u4, Some(cursor.clone()));
    let mut whole = seqs(first["entries"].as_array().unwrap());
    whole.extend(seqs(&rest_before));
    assert_eq!(whole, seqs(&by_user));
    assert_eq!(daemon.terminate().code(), Some(0), "{}", daemon.log_text());
    let _daemon = Daemon::start(tmp.path(), &yaml, &ready);
    wait_until("the rebuilt index", Duration::from_secs(30), || {
        get(api, Some(TOKEN), &[("limit", "1")]).2["complete"] == true
    });
    let after_restart = get_all_from(api, &u4, Some(cursor));
    assert_eq!(seqs(&after_restart), seqs(&rest_before));
}

#[test]
fn without_a_token_the_api_is_off() {
    let tmp = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let api = free_port();
    let ready = [SocketAddr::from(([127, 0, 0, 1], ports.gateway))];
    let mut daemon = Daemon::start(tmp.path(), &config(tmp.path(), ports, api, None), &ready);
    send_logins(ports.gateway, 0, 3);
    let refused = std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], api)),
        Duration::from_secs(2),
    );
    assert!(refused.is_err(), "something listens on the API port");
    assert_eq!(daemon.terminate().code(), Some(0));
    assert!(
        daemon.log_text().contains("query API is off"),
        "{}",
        daemon.log_text()
    );
}
