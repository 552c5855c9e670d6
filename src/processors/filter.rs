//! `filter`: keeps or drops records by condition.
//!
//! ```yaml
//! processors:
//!   filter/violations:            # a high-volume SIEM index gets policy violations only
//!     keep: "event_type == 'security' or severity >= high"
//!   filter/noise:
//!     drop:
//!       - { name: health_checks, when: "attributes.action == 'healthcheck'" }
//!       - "source == 'syslog/udp' and severity_text == 'DEBUG'"
//! ```
//!
//! `keep` and `drop` each take one condition or a list; an entry is a condition, or
//! `{ name, when }` to name it. A record passes when it matches none of `drop` and, if
//! `keep` is given, at least one `keep` entry. Conditions use the language of
//! `docs/conditions.md`.
//!
//! Every dropped record is counted once in `vellum_filter_dropped_records_total{component,
//! rule}`: `rule` is the first `drop` entry it matched (its name, or else its place: `drop`
//! for a single condition, `drop[2]` in a list), or `keep` when it matched no `keep` entry.
//! `drop` is checked first. Names are lowercase words; `keep` and `drop` are reserved.
//!
//! A filter must come before `hash_chain` in a pipeline: once a record is sealed, dropping
//! it would leave a gap in the chain. Routing records to some exporters and not others is
//! `when:` on the exporter, which leaves the journal whole.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::component::Processor;
use crate::conditions::Condition;
use crate::event::Record;

/// The metric label of records dropped for matching no `keep` entry.
pub const KEEP_LABEL: &str = "keep";

/// The `filter` processor's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    #[serde(default)]
    pub keep: Option<FilterRules>,
    #[serde(default)]
    pub drop: Option<FilterRules>,
}

/// One condition or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterRules {
    pub rules: Vec<FilterRule>,
    /// Written as a list, so that errors name `drop[2]` rather than `drop`.
    listed: bool,
}

/// A condition, optionally named for the `rule` label of the drop counter.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterRule {
    #[serde(default)]
    pub name: Option<String>,
    pub when: String,
    /// Written as a bare condition rather than `{name, when}`.
    #[serde(skip)]
    bare: bool,
}

impl FilterRule {
    fn bare(when: &str) -> FilterRule {
        FilterRule {
            name: None,
            when: when.to_string(),
            bare: true,
        }
    }
}

/// What is wrong with a `filter` configuration: where (`drop[2].when`), and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterConfigError {
    pub path: String,
    /// The 1-based column within the condition, for condition errors.
    pub column: Option<usize>,
    pub message: String,
}

impl FilterConfig {
    /// Every problem serde cannot see, as (path inside the component, message) pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        match compile(self) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }
}

/// The `filter` processor.
pub struct Filter {
    id: String,
    keep: Option<Vec<Condition>>,
    drop: Vec<(String, Condition)>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("id", &self.id)
            .field("keep", &self.keep.as_ref().map(Vec::len))
            .field(
                "drop",
                &self.drop.iter().map(|(label, _)| label).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Filter {
    pub fn new(id: &str, cfg: &FilterConfig) -> Result<Filter, FilterConfigError> {
        let (keep, drop) = compile(cfg).map_err(|mut errors| errors.remove(0))?;
        Ok(Filter {
            id: id.to_string(),
            keep,
            drop,
        })
    }

    /// Why a record is dropped: the index of its `rule` label (`drop.len()` for `keep`).
    fn verdict(&self, record: &Record) -> Option<usize> {
        if let Some(i) = self.drop.iter().position(|(_, c)| c.eval(record)) {
            return Some(i);
        }
        match &self.keep {
            Some(keep) if !keep.iter().any(|c| c.eval(record)) => Some(self.drop.len()),
            _ => None,
        }
    }
}

impl Processor for Filter {
    fn process(&self, mut records: Vec<Record>) -> Vec<Record> {
        let mut dropped = vec![0u64; self.drop.len() + 1];
        records.retain(|record| match self.verdict(record) {
            Some(rule) => {
                dropped[rule] += 1;
                false
            }
            None => true,
        });
        for (rule, &count) in dropped.iter().enumerate() {
            if count > 0 {
                let label = self
                    .drop
                    .get(rule)
                    .map_or(KEEP_LABEL, |(label, _)| label.as_str());
                metrics::counter!("vellum_filter_dropped_records_total", "component" => self.id.clone(), "rule" => label.to_string())
                    .increment(count);
            }
        }
        records
    }
}

type Compiled = (Option<Vec<Condition>>, Vec<(String, Condition)>);

fn compile(cfg: &FilterConfig) -> Result<Compiled, Vec<FilterConfigError>> {
    let mut errors = Vec::new();
    if cfg.keep.is_none() && cfg.drop.is_none() {
        errors.push(FilterConfigError {
            path: String::new(),
            column: None,
            message: "a filter needs `keep`, `drop` or both".into(),
        });
    }
    let keep = cfg.keep.as_ref().map(|k| {
        compile_section("keep", k, &mut errors)
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    });
    let drop = cfg
        .drop
        .as_ref()
        .map(|d| compile_section("drop", d, &mut errors))
        .unwrap_or_default();
    if errors.is_empty() {
        Ok((keep, drop))
    } else {
        Err(errors)
    }
}

/// A section's conditions with their labels: the rule's name, or its path (`drop[2]`).
fn compile_section(
    section: &str,
    rules: &FilterRules,
    errors: &mut Vec<FilterConfigError>,
) -> Vec<(String, Condition)> {
    let mut problem = |path: String, column: Option<usize>, message: String| {
        errors.push(FilterConfigError {
            path,
            column,
            message,
        });
    };
    if rules.rules.is_empty() {
        problem(
            section.into(),
            None,
            "an empty list: give at least one condition, or leave the key out".into(),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, rule) in rules.rules.iter().enumerate() {
        let at = if rules.listed {
            format!("{section}[{i}]")
        } else {
            section.to_string()
        };
        if let Some(name) = &rule.name {
            let message = if !is_label(name) {
                Some(format!(
                    "`{name}` is not a rule name: use 1 to 64 lowercase letters, digits, `_`, `-` or `.`"
                ))
            } else if name == KEEP_LABEL || name == "drop" {
                Some(format!(
                    "`{name}` is reserved for unnamed rules; choose another name"
                ))
            } else if !names.insert(name.as_str()) {
                Some(format!("another rule is already named `{name}`"))
            } else {
                None
            };
            if let Some(message) = message {
                problem(format!("{at}.name"), None, message);
            }
        }
        let when_path = if rule.bare {
            at.clone()
        } else {
            format!("{at}.when")
        };
        match Condition::parse(&rule.when) {
            Ok(c) => out.push((rule.name.clone().unwrap_or(at), c)),
            Err(e) => problem(
                when_path,
                Some(e.column),
                format!("column {} of the condition: {}", e.column, e.message),
            ),
        }
    }
    out
}

fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

impl<'de> Deserialize<'de> for FilterRules {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FilterRules, D::Error> {
        struct RulesVisitor;

        impl<'de> Visitor<'de> for RulesVisitor {
            type Value = FilterRules;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition, `{name, when}`, or a list of them")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<FilterRules, E> {
                Ok(FilterRules {
                    rules: vec![FilterRule::bare(s)],
                    listed: false,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FilterRules, A::Error> {
                FilterRule::deserialize(de::value::MapAccessDeserializer::new(map)).map(|r| {
                    FilterRules {
                        rules: vec![r],
                        listed: false,
                    }
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FilterRules, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element::<RuleEntry>()? {
                    rules.push(rule.0);
                }
                Ok(FilterRules {
                    rules,
                    listed: true,
                })
            }
        }

        d.deserialize_any(RulesVisitor)
    }
}

/// A list entry: a bare condition or `{name, when}`.
struct RuleEntry(FilterRule);

impl<'de> Deserialize<'de> for RuleEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RuleEntry, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RuleEntry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition or `{name, when}`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<RuleEntry, E> {
                Ok(RuleEntry(FilterRule::bare(s)))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RuleEntry, A::Error> {
                FilterRule::deserialize(de::value::MapAccessDeserializer::new(map)).map(RuleEntry)
            }
        }

        d.deserialize_any(EntryVisitor)
    }
}

impl super::ProcessorSettings for FilterConfig {
    fn problems(&self) -> Vec<(String, String)> {
        FilterConfig::problems(self)
    }

    fn capabilities(&self) -> super::ProcessorCapabilities {
        super::ProcessorCapabilities {
            drops_records: true,
            ..Default::default()
        }
    }

    fn build(&self, id: &str) -> Result<super::Stage, String> {
        Filter::new(id, self)
            .map(|p| super::Stage::Process(std::sync::Arc::new(p)))
            .map_err(|e| e.to_string())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl schemars::JsonSchema for FilterRules {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "filter_rules".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let rule = g.subschema_for::<FilterRule>();
        schemars::json_schema!({
            "description": "a condition, `{ name, when }`, or a list of them",
            "anyOf": [
                { "type": "string", "format": "condition" },
                rule,
                { "type": "array", "items": { "anyOf": [{ "type": "string", "format": "condition" }, rule] } },
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;
    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// Counters by `name{label=value,...}`, for checking what a filter counted.
    #[derive(Default)]
    struct CountingRecorder(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

    impl CountingRecorder {
        fn counts(&self) -> BTreeMap<String, u64> {
            let counters = self.0.lock().unwrap();
            counters
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::SeqCst)))
                .collect()
        }
    }

    impl Recorder for CountingRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(self.0.lock().unwrap().entry(name).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn record(event_type: &str, severity: Severity, action: &str) -> Record {
        let mut r = Record::new("http/gateway");
        r.event_type = Some(event_type.into());
        r.severity = Some(severity);
        r.attributes.insert("action".into(), json!(action));
        r
    }

    fn batch() -> Vec<Record> {
        vec![
            record("security", Severity::Medium, "guardrail.violation"),
            record("model_request", Severity::Info, "model.invoke"),
            record("other", Severity::Info, "healthcheck"),
            record("authentication", Severity::High, "login.failed"),
            record("model_request", Severity::Info, "model.invoke"),
            record("other", Severity::Info, "healthcheck"),
        ]
    }

    fn actions(records: &[Record]) -> Vec<&str> {
        records
            .iter()
            .map(|r| r.attributes["action"].as_str().unwrap())
            .collect()
    }

    fn filter(yaml: &str) -> Filter {
        let cfg: FilterConfig = serde_saphyr::from_str(yaml).unwrap();
        Filter::new("filter/test", &cfg).unwrap()
    }

    #[test]
    fn keep_passes_only_matching_records_in_order() {
        let f = filter("keep: \"event_type == 'security' or severity >= high\"");
        assert_eq!(
            actions(&f.process(batch())),
            ["guardrail.violation", "login.failed"]
        );
    }

    #[test]
    fn drop_removes_matching_records_and_counts_them_per_rule() {
        let recorder = CountingRecorder::default();
        let f = filter(
            r#"
drop:
  - { name: health_checks, when: "attributes.action == 'healthcheck'" }
  - "event_type == 'model_request'"
  - "attributes.action == 'healthcheck' or severity >= high"
"#,
        );
        let out = metrics::with_local_recorder(&recorder, || f.process(batch()));
        assert_eq!(actions(&out), ["guardrail.violation"]);
        let counts = recorder.counts();
        let expected: BTreeMap<String, u64> = [
            (
                "vellum_filter_dropped_records_total{component=filter/test,rule=health_checks}"
                    .to_string(),
                2,
            ),
            (
                "vellum_filter_dropped_records_total{component=filter/test,rule=drop[1]}"
                    .to_string(),
                2,
            ),
            (
                "vellum_filter_dropped_records_total{component=filter/test,rule=drop[2]}"
                    .to_string(),
                1,
            ),
        ]
        .into();
        assert_eq!(counts, expected);
    }

    #[test]
    fn keep_and_drop_combine_and_keep_drops_are_labelled_keep() {
        let recorder = CountingRecorder::default();
        let f = filter(
            r#"
keep: ["event_type == 'security'", "event_type == 'authentication'", "attributes.action == 'healthcheck'"]
drop: { name: health_checks, when: "attributes.action == 'healthcheck'" }
"#,
        );
        let out = metrics::with_local_recorder(&recorder, || f.process(batch()));
        assert_eq!(actions(&out), ["guardrail.violation", "login.failed"]);
        let counts = recorder.counts();
        assert_eq!(
            counts.get(
                "vellum_filter_dropped_records_total{component=filter/test,rule=health_checks}"
            ),
            Some(&2)
        );
        assert_eq!(
            counts.get("vellum_filter_dropped_records_total{component=filter/test,rule=keep}"),
            Some(&2)
        );
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn nothing_dropped_counts_nothing() {
        let recorder = CountingRecorder::default();
        let f = filter("drop: \"severity == critical\"");
        let out = metrics::with_local_recorder(&recorder, || f.process(batch()));
        assert_eq!(out.len(), 6);
        assert!(recorder.counts().is_empty());
    }

    #[test]
    fn records_missing_the_field_follow_the_language_rules() {
        // A missing field fails every test: `keep` on it drops, `drop` on it keeps.
        let mut unclassified = Record::new("otlp");
        unclassified.attributes.insert("action".into(), json!("x"));
        assert!(
            filter("keep: \"severity >= info\"")
                .process(vec![unclassified.clone()])
                .is_empty()
        );
        assert_eq!(
            filter("drop: \"severity < high\"")
                .process(vec![unclassified.clone()])
                .len(),
            1
        );
        assert!(
            filter("drop: \"not severity >= high\"")
                .process(vec![unclassified])
                .is_empty()
        );
    }

    #[test]
    fn config_errors_name_the_entry_and_column() {
        let cfg: FilterConfig = serde_saphyr::from_str(
            r#"
keep: "severity == 'bogus'"
drop:
  - "event_type == 'a'"
  - { name: noisy, when: "attributes.x ==" }
  - { name: noisy, when: "true" }
  - { name: keep, when: "true" }
  - { name: "Bad Name", when: "true" }
"#,
        )
        .unwrap();
        let problems = cfg.problems();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "keep",
                "drop[1].when",
                "drop[2].name",
                "drop[3].name",
                "drop[4].name"
            ]
        );
        assert!(
            problems[0].1.starts_with("column 13 of the condition"),
            "{}",
            problems[0].1
        );
        assert!(
            problems[1].1.starts_with("column 16 of the condition"),
            "{}",
            problems[1].1
        );
        let e = Filter::new("filter", &cfg).unwrap_err();
        assert_eq!((e.path.as_str(), e.column), ("keep", Some(13)));

        // A single entry is named by the key itself.
        let single: FilterConfig =
            serde_saphyr::from_str("drop: { name: noisy, when: 'severity == 3' }").unwrap();
        assert_eq!(single.problems()[0].0, "drop.when");
        let single: FilterConfig =
            serde_saphyr::from_str("drop: { when: 'true', name: drop }").unwrap();
        assert_eq!(single.problems()[0].0, "drop.name");

        let empty: FilterConfig = serde_saphyr::from_str("{}").unwrap();
        assert!(empty.problems()[0].1.contains("needs `keep`, `drop`"));
        let empty_list: FilterConfig = serde_saphyr::from_str("drop: []").unwrap();
        assert_eq!(empty_list.problems()[0].0, "drop");
        let e = serde_saphyr::from_str::<FilterConfig>("keeep: 'true'")
            .unwrap_err()
            .to_string();
        assert!(e.contains("keeep"), "{e}");
        let e = serde_saphyr::from_str::<FilterConfig>("drop: [{ when: 'true', label: x }]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("label"), "{e}");
    }

    #[test]
    fn config_decodes_from_json_as_the_loader_gives_it() {
        let cfg: FilterConfig = serde_json::from_value(
            json!({"drop": ["severity == info", {"name": "n", "when": "true"}]}),
        )
        .unwrap();
        let drop = cfg.drop.unwrap();
        assert!(drop.listed);
        assert_eq!(drop.rules[0], FilterRule::bare("severity == info"));
        assert_eq!(drop.rules[1].name.as_deref(), Some("n"));
        assert!(!drop.rules[1].bare);
    }
}
