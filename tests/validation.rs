//! `vellum validate` reports every problem of a configuration in one pass, each with its
//! YAML path, line and column: decoding problems, what the components' constructors
//! would refuse (patterns, conditions, keys) and graph problems alike, and a broken
//! section hides nothing elsewhere.

mod common;

use std::process::Command;

use common::BIN;

/// A problem as `vellum validate` prints it: `path: message (line L, column C)`.
#[derive(Debug)]
struct Reported {
    path: String,
    message: String,
    line: usize,
    column: usize,
}

fn validate(yaml: &str) -> (i32, String, Vec<Reported>) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let reported = stderr.lines().filter_map(parse).collect();
    (out.status.code().unwrap_or(-1), stderr, reported)
}

fn parse(line: &str) -> Option<Reported> {
    let line = line.strip_prefix("  ")?;
    let (path, rest) = line.split_once(": ")?;
    let (message, place) = rest.rsplit_once(" (line ")?;
    let (l, c) = place.strip_suffix(')')?.split_once(", column ")?;
    Some(Reported {
        path: path.to_string(),
        message: message.to_string(),
        line: l.parse().ok()?,
        column: c.parse().ok()?,
    })
}

/// The 1-based line and column where `needle` starts in `yaml`, counted in the text the
/// test wrote (the `nth` occurrence, from 0).
fn place_of(yaml: &str, needle: &str, nth: usize) -> (usize, usize) {
    let (line, text) = yaml
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` is not in the test's YAML"));
    let column = text.find(needle).unwrap() + 1;
    (line + 1, column)
}

/// Checks that exactly `expected` (path, text the message holds, where in the YAML) were
/// reported.
fn assert_reported(yaml: &str, expected: &[(&str, &str, (usize, usize))]) {
    let (code, stderr, reported) = validate(yaml);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{} problems", expected.len())),
        "{stderr}"
    );
    for (path, text, (line, column)) in expected {
        let found = reported.iter().find(|r| r.path == *path);
        let Some(r) = found else {
            panic!("no problem at `{path}`:\n{stderr}");
        };
        assert!(
            r.message.contains(text),
            "`{path}`: {}\n{stderr}",
            r.message
        );
        assert_eq!((r.line, r.column), (*line, *column), "`{path}`:\n{stderr}");
    }
    assert_eq!(reported.len(), expected.len(), "{stderr}");
}

#[test]
fn a_new_users_config_gets_its_bad_endpoint_unknown_key_and_undefined_receiver_at_once() {
    // Written as a Collector user would: `metrics.level` is the Collector's, not ours,
    // and it sits in `service`, the section that also holds the pipelines.
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: localhost4317
exporters:
  file:
    directory: ./evidence
service:
  telemetry:
    metrics:
      level: detailed
  pipelines:
    logs:
      receivers: [otlp, syslog]
      exporters: [file]
";
    let (line, column) = place_of(yaml, "syslog", 0);
    assert_reported(
        yaml,
        &[
            (
                "receivers.otlp.protocols.grpc.endpoint",
                "expected `host:port`",
                place_of(yaml, "localhost4317", 0),
            ),
            (
                "service.telemetry.metrics.level",
                "unknown field `level`",
                place_of(yaml, "level", 0),
            ),
            (
                "service.pipelines.logs.receivers[1]",
                "`syslog` is not defined under `receivers`",
                (line, column),
            ),
        ],
    );
}

#[test]
fn constructor_refusals_are_located_alongside_graph_problems() {
    let secret = "c2VjcmV0LXNlZWQ!!";
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:4317 }}
processors:
  redact:
    custom:
      - name: ticket
        pattern: \"TKT-[0-9\"
  filter:
    drop: \"severity >=> high\"
  hash_chain/x:
    origin: audit.example.com
    signing_key: \"PRIVATE+KEY+audit.example.com/logs+01234567+{secret}\"
exporters:
  file: {{ directory: ./evidence }}
service:
  pipelines:
    logs:
      receivers: [otlp, nothere]
      processors: [redact, filter, hash_chain/x]
      exporters: [file]
"
    );
    assert_reported(
        &yaml,
        &[
            (
                "processors.redact.custom[0].pattern",
                "column 5 of the pattern: unclosed character class",
                place_of(&yaml, "\"TKT-", 0),
            ),
            (
                "processors.filter.drop",
                "column 12 of the condition",
                place_of(&yaml, "\"severity", 0),
            ),
            (
                "processors.hash_chain/x.signing_key",
                "not valid base64",
                place_of(&yaml, "\"PRIVATE+KEY+", 0),
            ),
            (
                "service.pipelines.logs.receivers[1]",
                "`nothere` is not defined",
                place_of(&yaml, "nothere", 0),
            ),
        ],
    );
    let (_, stderr, _) = validate(&yaml);
    assert!(!stderr.contains(secret), "a key is never echoed: {stderr}");
}

#[test]
fn a_pipeline_level_refusal_names_the_real_hash_chain_id_and_its_line() {
    let signer = Command::new(BIN)
        .args(["keygen", "--name", "elsewhere.example"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&signer.stdout).into_owned();
    let skey = stdout.lines().next().unwrap().trim();
    let yaml = format!(
        "\
receivers:
  http: {{ endpoint: 127.0.0.1:0 }}
processors:
  hash_chain/x:
    origin: audit.example.com
    signing_key: \"{skey}\"
exporters:
  s3/archive: {{ bucket: audit-archive, region: us-east-1 }}
  file: {{ directory: ./evidence }}
service:
  storage: {{ retention_check_interval: 0s }}
  pipelines:
    logs/a:
      receivers: [http]
      processors: [hash_chain/x]
      exporters: [file]
    logs/b:
      receivers: [http]
      exporters: [s3/archive]
"
    );
    assert_reported(
        &yaml,
        &[
            (
                "processors.hash_chain/x.signing_key",
                "the key is named `elsewhere.example` but this pipeline's checkpoint origin is `audit.example.com/logs/a`",
                place_of(&yaml, "\"PRIVATE+KEY+", 0),
            ),
            (
                "service.storage.retention_check_interval",
                "at least 1s",
                place_of(&yaml, "0s }", 0),
            ),
            (
                "service.pipelines.logs/b.exporters[0]",
                "add `hash_chain`",
                place_of(&yaml, "s3/archive", 1),
            ),
        ],
    );
}
