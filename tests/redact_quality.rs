//! Detection quality of the `redact` processor on a labeled corpus of gateway audit events,
//! and the property that nothing a detector flags comes out of it.
//!
//! Scoring uses the `hash` policy: each planted value's expected token is computed here,
//! with HMAC-SHA256 written out from RFC 2104, from the canonical form the corpus built the
//! value from. A token in the output that matches a label is a true positive; a label
//! without its token is a false negative; any other token is a false positive.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use common::pii_corpus::{Composer, DETECTORS, Rng, gateway_event};
use proptest::prelude::*;
use regex::Regex;
use serde_json::{Value, json};
use sha2::Digest;
use vellum::event::Record;
use vellum::processors::redact::{RedactConfig, Redactor};

const HASH_KEY: &str = "corpus-hash-key-0123456789abcdef0123";
const SEED: u64 = 0x5EED_2026;
const EVENTS: usize = 6000;
const MIN_PRECISION: f64 = 0.98;
const MIN_RECALL: f64 = 0.98;

fn redactor(policy: &str) -> Redactor {
    let yaml = format!("policy: {policy}\nhash_key: {HASH_KEY}");
    let cfg: RedactConfig = serde_saphyr::from_str(&yaml).expect("test config parses");
    Redactor::new("redact/quality", &cfg).expect("test config is valid")
}

static REDACTING: LazyLock<Redactor> = LazyLock::new(|| redactor("redact"));
static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([a-z0-9_]+):hmac:[0-9a-f]{16}\]").expect("valid"));
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[REDACTED:[a-z0-9_]+\]|\[[a-z0-9_]+:hmac:[0-9a-f]{16}\]").expect("valid")
});

/// `[<detector>:hmac:<16 hex>]` over `<detector>` 0x00 `<canonical>`, per RFC 2104.
fn expected_token(detector: &str, canonical: &str) -> String {
    let mut block = [0u8; 64];
    block[..HASH_KEY.len()].copy_from_slice(HASH_KEY.as_bytes());
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut message = detector.as_bytes().to_vec();
    message.push(0);
    message.extend_from_slice(canonical.as_bytes());
    let inner = sha2::Sha256::digest([pad(0x36), message].concat());
    let outer = sha2::Sha256::digest([pad(0x5c), inner.to_vec()].concat());
    format!("[{detector}:hmac:{}]", hex::encode(&outer[..8]))
}

/// Every string and key of a record's body and attributes, and of JSON inside strings.
fn strings_of(record: &Record) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                out.push(s.clone());
                if let Ok(inner @ (Value::Object(_) | Value::Array(_))) =
                    serde_json::from_str::<Value>(s)
                {
                    walk(&inner, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    walk(v, out);
                }
            }
            Value::Number(n) => out.push(n.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&Value::Object(record.attributes.clone()), &mut out);
    walk(&record.body, &mut out);
    out
}

#[derive(Default)]
struct Tally {
    true_positives: usize,
    false_positives: usize,
    false_negatives: usize,
}

impl Tally {
    fn precision(&self) -> f64 {
        let found = self.true_positives + self.false_positives;
        if found == 0 {
            1.0
        } else {
            self.true_positives as f64 / found as f64
        }
    }
    fn recall(&self) -> f64 {
        let planted = self.true_positives + self.false_negatives;
        if planted == 0 {
            1.0
        } else {
            self.true_positives as f64 / planted as f64
        }
    }
}

#[test]
fn precision_and_recall_per_detector_on_the_labeled_corpus() {
    let hashing = redactor("hash");
    let mut rng = Rng::new(SEED);
    let mut tallies: BTreeMap<String, Tally> = DETECTORS
        .iter()
        .map(|d| (d.to_string(), Tally::default()))
        .collect();
    let mut clean_events = 0;
    for i in 0..EVENTS {
        let sample = gateway_event(&mut rng, i % 2 == 0);
        clean_events += usize::from(sample.labels.is_empty());
        let out = hashing.redact(sample.record);

        // Tokens are scanned in raw strings only: those inside embedded JSON are there too.
        let mut produced: HashMap<(String, String), usize> = HashMap::new();
        let mut raw_strings = Vec::new();
        raw_strings.extend(out.attributes.keys().cloned());
        collect_raw(&Value::Object(out.attributes.clone()), &mut raw_strings);
        collect_raw(&out.body, &mut raw_strings);
        for s in &raw_strings {
            for c in TOKEN.captures_iter(s) {
                *produced
                    .entry((c[1].to_string(), c[0].to_string()))
                    .or_default() += 1;
            }
        }
        let mut expected: HashMap<(String, String), usize> = HashMap::new();
        for label in &sample.labels {
            let token = expected_token(label.detector, &label.canonical);
            *expected
                .entry((label.detector.to_string(), token))
                .or_default() += 1;
        }
        for (key, &planted) in &expected {
            let found = produced.get(key).copied().unwrap_or(0);
            let tally = tallies.entry(key.0.clone()).or_default();
            tally.true_positives += planted.min(found);
            tally.false_negatives += planted.saturating_sub(found);
        }
        for (key, &found) in &produced {
            let planted = expected.get(key).copied().unwrap_or(0);
            tallies.entry(key.0.clone()).or_default().false_positives +=
                found.saturating_sub(planted);
        }
    }

    println!(
        "\nredact quality on {EVENTS} generated gateway events ({clean_events} without planted values), seed {SEED:#x}:"
    );
    println!("| detector | planted | TP | FP | FN | precision | recall |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, t) in &tallies {
        println!(
            "| {name} | {} | {} | {} | {} | {:.4} | {:.4} |",
            t.true_positives + t.false_negatives,
            t.true_positives,
            t.false_positives,
            t.false_negatives,
            t.precision(),
            t.recall()
        );
    }
    for (name, t) in &tallies {
        assert!(
            t.true_positives + t.false_negatives >= 100 || !DETECTORS.contains(&name.as_str()),
            "{name}: too few planted values to measure"
        );
        assert!(
            t.precision() >= MIN_PRECISION,
            "{name}: precision {:.4}",
            t.precision()
        );
        assert!(t.recall() >= MIN_RECALL, "{name}: recall {:.4}", t.recall());
    }
}

fn collect_raw(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_raw(i, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                collect_raw(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn planted_values_do_not_survive_and_look_alikes_do() {
    let mut rng = Rng::new(SEED ^ 1);
    let (mut planted, mut leaked, mut negatives, mut lost) = (0, Vec::new(), 0, Vec::new());
    for i in 0..EVENTS {
        let sample = gateway_event(&mut rng, i % 2 == 0);
        let out = REDACTING.redact(sample.record);
        let text = strings_of(&out).join("\n");
        for label in &sample.labels {
            planted += 1;
            if text.contains(&label.raw) {
                leaked.push(label.detector);
            }
        }
        for negative in &sample.negatives {
            negatives += 1;
            if !text.contains(negative.as_str()) {
                lost.push(negative.clone());
            }
        }
    }
    println!(
        "planted {planted}, leaked {}; look-alikes {negatives}, redacted {}",
        leaked.len(),
        lost.len()
    );
    assert!(leaked.is_empty(), "leaked values of {leaked:?}");
    assert!(lost.is_empty(), "look-alikes redacted: {lost:?}");
}

/// One value of the kind `kind` (an index into the corpus's detectors), drawn from `seed`.
fn pii_value(kind: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut c = Composer::new(&mut rng);
    match kind {
        0 => c.email(),
        1 => c.phone(),
        2 => c.ssn(),
        3 => c.card(),
        4 => c.iban(),
        5 => c.ipv4(),
        6 => c.ipv6(),
        7 => c.jwt(),
        8 => format!("Bearer {}", c.bearer()),
        9 => c.aws_key_id(),
        10 => c.api_key(),
        11 => c.private_key(),
        12 => c.url_with_credentials(),
        13 => format!("password={}", c.secret_word()),
        _ => c.hard_negative(),
    }
}

fn place(text: &str, placement: usize) -> Record {
    let mut r = Record::new("test");
    match placement {
        0 => {
            r.attributes.insert("note".into(), json!(text));
        }
        1 => r.body = json!({"a": [{"b": text}]}),
        _ => r.body = json!({"request": json!({"content": text}).to_string()}),
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever surrounds them, values a detector flags in a text never come out of
    /// `redact`, wherever the text sits in a record.
    #[test]
    fn redact_never_outputs_a_flagged_value(
        parts in prop::collection::vec((0usize..15, any::<u64>(), "[ -~]{0,10}"), 1..6),
        placement in 0usize..3,
    ) {
        let mut text = String::from("t");
        for (kind, seed, filler) in &parts {
            text.push_str(filler);
            text.push(' ');
            text.push_str(&pii_value(*kind, *seed));
            text.push(' ');
        }
        let flagged: Vec<String> = REDACTING
            .scan_text(&text)
            .into_iter()
            .map(|f| text[f.span].to_string())
            .collect();
        let out = REDACTING.redact(place(&text, placement));
        let outputs: Vec<String> = strings_of(&out)
            .iter()
            .map(|s| MARKER.replace_all(s, "\u{1}").into_owned())
            .collect();
        for value in flagged.iter().filter(|v| v.len() >= 6) {
            prop_assert!(
                !outputs.iter().any(|s| s.contains(value.as_str())),
                "{value:?} survived in {outputs:?}"
            );
        }
    }

    /// Any text is handled, and a second pass finds nothing more to change.
    #[test]
    fn redaction_handles_any_text_and_is_idempotent(text in "\\PC{0,120}", key in "\\PC{0,16}") {
        let mut record = Record::new("test");
        record.attributes.insert(key, json!(text));
        record.body = json!([text]);
        let once = REDACTING.redact(record);
        let twice = REDACTING.redact(once.clone());
        prop_assert_eq!(&once.attributes, &twice.attributes);
        prop_assert_eq!(&once.body, &twice.body);
    }
}
