//! Who may query what, on the real daemon: named tokens see only their pipelines, a token
//! over its rate limit gets 429, and every query is sealed in the `vellum/access` stream,
//! which is queried (by identity too), verified by `vellum verify` and counted per
//! identity by `vellum report`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ALPHA: &str = "alpha-token-0123456789-abcdef";
const BETA: &str = "beta-token-0123456789-abcdef";
const WILD: &str = "wild-token-0123456789-abcdef";
const AUDITOR: &str = "auditor-token-0123456789-abcdef";
const EVENTS_A: usize = 7;
const EVENTS_B: usize = 5;

fn config(dir: &Path, a: u16, b: u16, api: u16, metrics: u16) -> String {
    format!(
        r#"
receivers:
  http/a: {{ endpoint: 127.0.0.1:{a}, path: /v1/events }}
  http/b: {{ endpoint: 127.0.0.1:{b}, path: /v1/events }}
processors:
  hash_chain:
    origin: test.vellum
    checkpoint: {{ every_records: 100, every: 1s }}
exporters:
  file/evidence: {{ directory: {evidence} }}
service:
  storage: {{ directory: {state} }}
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  api:
    endpoint: 127.0.0.1:{api}
    auth:
      tokens:
        - {{ name: alpha, token: "{ALPHA}", pipelines: [logs/a] }}
        - name: beta
          token: "{BETA}"
          streams: [logs/b]
          rate_limit: {{ requests_per_second: 0.5, burst: 2 }}
        - {{ name: wild, token: "{WILD}", pipelines: ["*"] }}
        - {{ name: auditor, token: "{AUDITOR}", pipelines: ["*"], streams: [vellum/access] }}
  pipelines:
    logs/a: {{ receivers: [http/a], processors: [hash_chain], exporters: [file/evidence] }}
    logs/b: {{ receivers: [http/b], processors: [hash_chain], exporters: [file/evidence] }}
"#,
        evidence = dir.join("evidence").display(),
        state = dir.join("state").display(),
    )
}

fn send(port: u16, n: usize, tag: &str) {
    let body: String = (0..n)
        .map(|i| format!("{{\"action\":\"model.invoke\",\"user_id\":\"{tag}{i}\"}}\n"))
        .collect();
    let (status, text) = http_post(
        &format!("http://127.0.0.1:{port}/v1/events"),
        Some("application/x-ndjson"),
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
}

/// (status, Retry-After, raw body, JSON body) of a GET.
fn get(api: u16, token: &str, params: &[(&str, &str)]) -> (u16, Option<String>, String, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    // After a reload or a restart the API listens again a moment after the daemon
    // says it is ready: a refused connection is retried until a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut r = loop {
        let mut req = agent
            .get(&format!("http://127.0.0.1:{api}/api/v1/audit"))
            .header("Authorization", &format!("Bearer {token}"));
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        match req.call() {
            Err(ureq::Error::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other.expect("the API answers"),
        }
    };
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (r.status().as_u16(), retry, text, json)
}

fn attr<'a>(entry: &'a Value, name: &str) -> &'a Value {
    &entry["attributes"][name]
}

fn no_token_in(text: &str) {
    for t in [ALPHA, BETA, WILD, AUDITOR] {
        assert!(!text.contains(t), "a token is echoed: {text}");
    }
}

/// The access stream's entries, oldest first, as the auditor reads them.
fn access_entries(api: u16, extra: &[(&str, &str)]) -> Vec<Value> {
    let mut params = vec![
        ("pipeline", "vellum/access"),
        ("order", "oldest_first"),
        ("limit", "1000"),
    ];
    params.extend_from_slice(extra);
    let (status, _, text, body) = get(api, AUDITOR, &params);
    assert_eq!(status, 200, "{text}");
    assert!(body["next_cursor"].is_null(), "one page holds them: {text}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["verification"]["hash_valid"], true, "{e}");
            e["entry"].clone()
        })
        .collect()
}

#[test]
fn tokens_read_only_their_scope_and_every_query_is_sealed_verifiable_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, api, metrics) = (free_port(), free_port(), free_port(), free_port());
    let ready = [a, b, api, metrics].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let yaml = config(tmp.path(), a, b, api, metrics);
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    send(a, EVENTS_A, "a");
    send(b, EVENTS_B, "b");

    // alpha reads logs/a (its only pipeline, so it need not name it), nothing else.
    wait_until(
        "alpha to see every event of logs/a",
        Duration::from_secs(30),
        || {
            let (status, _, _, body) = get(api, ALPHA, &[]);
            status == 200 && body["complete"] == true && body["count"] == json!(EVENTS_A)
        },
    );
    let (_, _, _, body) = get(api, ALPHA, &[("limit", "1000")]);
    assert_eq!(body["pipeline"], "logs/a");
    let users: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["attributes"]["user_id"].as_str().unwrap())
        .collect();
    assert!(users.iter().all(|u| u.starts_with('a')), "{users:?}");
    for other in ["logs/b", "vellum/access", "logs/nonexistent"] {
        let (status, _, text, body) = get(api, ALPHA, &[("pipeline", other)]);
        assert_eq!(status, 403, "alpha reading {other}: {text}");
        assert_eq!(body["parameter"], "pipeline");
        assert!(text.contains("it may read: logs/a"), "{text}");
        no_token_in(&text);
    }

    // `*` is every pipeline but the access stream.
    let (status, _, text, body) = get(api, WILD, &[]);
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("pipeline")),
        "{text}"
    );
    assert!(
        text.contains("logs/a, logs/b") && !text.contains("vellum/access"),
        "{text}"
    );
    let (status, _, text, _) = get(api, WILD, &[("pipeline", "vellum/access")]);
    assert_eq!(status, 403, "{text}");
    let (status, _, _, body) = get(api, WILD, &[("pipeline", "logs/b"), ("limit", "1000")]);
    assert_eq!(
        (status, body["count"].as_u64()),
        (200, Some(EVENTS_B as u64))
    );

    // beta (scoped by its stream) has a burst of 2, refilled at one every 2 s.
    for _ in 0..2 {
        let (status, _, text, _) = get(api, BETA, &[("limit", "1")]);
        assert_eq!(status, 200, "{text}");
    }
    let (status, retry, text, _) = get(api, BETA, &[("limit", "1")]);
    assert_eq!(status, 429, "{text}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    no_token_in(&text);
    let (_, text) = http_get(&format!("http://127.0.0.1:{metrics}/metrics"));
    let limited: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("vellum_query_rate_limited_total"))
        .collect();
    assert_eq!(
        limited,
        [r#"vellum_query_rate_limited_total{token="beta"} 1"#],
        "{text}"
    );
    // Other tokens have their own budget.
    assert_eq!(get(api, ALPHA, &[("limit", "1")]).0, 200);
    // A wrong token is refused and not sealed.
    assert_eq!(get(api, "not-a-token-not-a-token-0000", &[]).0, 401);

    // Every authenticated request within its limit is in the access stream, in order.
    let access = access_entries(api, &[]);
    let seen: Vec<(String, u64, String)> = access
        .iter()
        .map(|e| {
            (
                attr(e, "vellum.client.identity")
                    .as_str()
                    .unwrap()
                    .to_string(),
                attr(e, "http.response.status_code").as_u64().unwrap(),
                attr(e, "query.pipeline").as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let tail: Vec<(&str, u64, &str)> = vec![
        ("alpha", 200, "logs/a"),
        ("alpha", 403, "logs/b"),
        ("alpha", 403, "vellum/access"),
        ("alpha", 403, "logs/nonexistent"),
        ("wild", 400, ""),
        ("wild", 403, "vellum/access"),
        ("wild", 200, "logs/b"),
        ("beta", 200, "logs/b"),
        ("beta", 200, "logs/b"),
        ("alpha", 200, "logs/a"),
    ];
    // The polls before the first full answer are alpha's; then the requests above.
    let (polls, rest) = seen.split_at(seen.len() - tail.len());
    assert!(
        polls
            .iter()
            .all(|(who, status, p)| who == "alpha" && *status == 200 && p == "logs/a"),
        "{polls:?}"
    );
    let rest: Vec<(&str, u64, &str)> = rest
        .iter()
        .map(|(w, s, p)| (w.as_str(), *s, p.as_str()))
        .collect();
    assert_eq!(rest, tail);
    let full = &access[polls.len()];
    assert_eq!(attr(full, "query.returned"), &json!(EVENTS_A));
    assert_eq!(attr(full, "query.filters"), &json!({"limit": ["1000"]}));
    assert_eq!(attr(full, "outcome"), "success");
    assert!(
        attr(full, "vellum.client.address")
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let denied = &access[polls.len() + 1];
    assert_eq!(
        (
            attr(denied, "outcome").as_str(),
            denied["severity"].as_str()
        ),
        (Some("denied"), Some("medium"))
    );
    assert_eq!(attr(denied, "query.returned"), &json!(0));
    for e in &access {
        no_token_in(&e.to_string());
    }

    // The identity filter picks one sender's records out of the stream.
    for who in ["alpha", "beta", "wild"] {
        let by_filter = access_entries(api, &[("identity", who)]);
        let by_hand: Vec<&Value> = access
            .iter()
            .filter(|e| attr(e, "vellum.client.identity") == who)
            .collect();
        assert!(!by_hand.is_empty());
        assert_eq!(by_filter.iter().collect::<Vec<_>>(), by_hand, "{who}");
    }
    assert!(access_entries(api, &[("identity", "nobody")]).is_empty());

    // Stopped, the daemon signs a last checkpoint and exports the stream as evidence.
    assert!(daemon.terminate().success(), "{}", daemon.log_text());
    let state = tmp.path().join("state");
    let evidence = state.join("access").join("evidence");
    let sealed = evidence_entries(&evidence);
    let auditor_queries = 1 + 3 + 1; // the read above, three identities, one nobody
    assert_eq!(
        sealed.len(),
        access.len() + auditor_queries,
        "{}",
        daemon.log_text()
    );
    assert!(sealed.iter().all(|e| e["stream"] == "vellum/access"));
    assert_eq!(&sealed[..access.len()], &access[..]);
    let (ok, out) = verify(&evidence, &vkeys(&state), &[]);
    assert!(ok, "{out}");

    // The report counts each identity's records in the period.
    let today = time::OffsetDateTime::now_utc().date();
    let (from, to) = (
        today.to_string(),
        (today + time::Duration::days(1)).to_string(),
    );
    let json_path = tmp.path().join("access-report.json");
    let out = Command::new(BIN)
        .args([
            "report",
            "--framework",
            "soc2",
            "--from",
            &from,
            "--to",
            &to,
            "--evidence",
        ])
        .arg(&evidence)
        .arg("--out")
        .arg(tmp.path().join("access-report.html"))
        .arg("--json")
        .arg(&json_path)
        .args(
            vkeys(&state)
                .iter()
                .flat_map(|k| ["--vkey".to_string(), k.clone()]),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let mut by_hand: BTreeMap<String, u64> = BTreeMap::new();
    for e in &sealed {
        let who = attr(e, "vellum.client.identity").as_str().unwrap();
        *by_hand.entry(who.to_string()).or_default() += 1;
    }
    let reported: BTreeMap<String, u64> =
        serde_json::from_value(report["by_identity"].clone()).unwrap();
    assert_eq!(reported, by_hand);
    assert_eq!(by_hand["beta"], 2, "the 429 is not sealed");
    let html = std::fs::read_to_string(tmp.path().join("access-report.html")).unwrap();
    assert!(
        html.contains("auditor") && html.contains("By identity"),
        "the HTML lists identities"
    );

    // A changed entry no longer verifies.
    let file = files_under(&evidence)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen("\"wild\"", "\"WILD\"", 1);
    assert_ne!(changed, text);
    std::fs::write(&file, changed).unwrap();
    let (ok, out) = verify(&evidence, &vkeys(&state), &[]);
    assert!(!ok, "{out}");
}

#[test]
fn a_pipeline_may_not_take_the_access_streams_name() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = config(
        tmp.path(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    )
    .replace("logs/b: {", "vellum/access: {");
    let path = tmp.path().join("vellum.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("`vellum/access` is the query API's access stream"),
        "{text}"
    );
    no_token_in(&text);
}

#[test]
fn validate_locates_each_tokens_problem_and_never_prints_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = config(
        tmp.path(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    )
    .replace(
        &format!("token: \"{WILD}\", pipelines: [\"*\"]"),
        "token: short-wild, pipelines: []",
    )
    .replace("requests_per_second: 0.5", "requests_per_second: 0")
    .replace(
        &format!("name: auditor, token: \"{AUDITOR}\""),
        &format!("name: alpha, token: \"{ALPHA}\""),
    );
    let path = tmp.path().join("vellum.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    let line_of = |needle: &str| {
        yaml.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} in {yaml}"))
    };
    for (path, line) in [
        (
            "service.api.auth.tokens[1].rate_limit.requests_per_second",
            line_of("rate_limit:"),
        ),
        ("service.api.auth.tokens[2].token", line_of("short-wild")),
        (
            "service.api.auth.tokens[2].pipelines",
            line_of("short-wild"),
        ),
        (
            "service.api.auth.tokens[3].name",
            line_of(&format!(
                "name: alpha, token: \"{ALPHA}\", pipelines: [\"*\"]"
            )),
        ),
        (
            "service.api.auth.tokens[3].token",
            line_of(&format!(
                "name: alpha, token: \"{ALPHA}\", pipelines: [\"*\"]"
            )),
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(path) && l.contains(&format!("(line {line}, "))),
            "{path} at line {line} in:\n{text}"
        );
    }
    no_token_in(&text);
    assert!(!text.contains("short-wild"), "{text}");
}

fn sighup(daemon: &Daemon) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(daemon.child.id() as i32, libc::SIGHUP);
    }
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn the_access_stream_is_one_chain_across_a_reload_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, api, metrics) = (free_port(), free_port(), free_port(), free_port());
    let ready = [a, b, api, metrics].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let yaml = config(tmp.path(), a, b, api, metrics);
    let mut daemon = Daemon::start(tmp.path(), &yaml, &ready);
    for _ in 0..2 {
        assert_eq!(get(api, ALPHA, &[]).0, 200);
    }

    // The reload takes alpha's token away and gives gamma one.
    const GAMMA: &str = "gamma-token-0123456789-abcdef";
    let reloaded = yaml.replace(
        &format!("name: alpha, token: \"{ALPHA}\", pipelines: [logs/a]"),
        &format!("name: gamma, token: \"{GAMMA}\", pipelines: [logs/b]"),
    );
    assert_ne!(reloaded, yaml);
    std::fs::write(&daemon.config, &reloaded).unwrap();
    sighup(&daemon);
    wait_until("gamma's token to be taken", Duration::from_secs(30), || {
        get(api, GAMMA, &[("limit", "1")]).0 == 200
    });
    assert_eq!(get(api, ALPHA, &[]).0, 401, "alpha's token is gone");
    let access = access_entries(api, &[]);
    let who: Vec<&str> = access
        .iter()
        .map(|e| attr(e, "vellum.client.identity").as_str().unwrap())
        .collect();
    assert_eq!(&who[..2], ["alpha", "alpha"]);
    assert!(who[2..].iter().all(|w| *w == "gamma"), "{who:?}");
    assert_eq!(seqs(&access), (0..access.len() as u64).collect::<Vec<_>>());
    assert!(daemon.terminate().success(), "{}", daemon.log_text());

    // After a restart the stream goes on from the next seq.
    let mut daemon = Daemon::start_with(tmp.path(), &daemon.config.clone(), &ready);
    wait_until(
        "the access index to catch up",
        Duration::from_secs(30),
        || {
            let (status, _, _, body) = get(api, AUDITOR, &[("pipeline", "vellum/access")]);
            status == 200 && body["complete"] == true
        },
    );
    let after = access_entries(api, &[]);
    let expected: Vec<u64> = (0..after.len() as u64).collect();
    assert_eq!(seqs(&after), expected, "one chain, no gap");
    assert!(after.len() > access.len() + 1);
    assert!(daemon.terminate().success(), "{}", daemon.log_text());

    let state = tmp.path().join("state");
    let evidence = state.join("access").join("evidence");
    let sealed = evidence_entries(&evidence);
    assert_eq!(seqs(&sealed), (0..sealed.len() as u64).collect::<Vec<_>>());
    assert_eq!(&sealed[..after.len()], &after[..]);
    let (ok, out) = verify(&evidence, &vkeys(&state), &[]);
    assert!(ok, "{out}");
}
