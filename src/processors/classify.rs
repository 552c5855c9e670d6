//! `classify`: names what each record is (`event_type`) and how much it matters
//! (`severity`) from ordered rules, and escalates bursts seen within a time window.
//!
//! ```yaml
//! processors:
//!   classify:
//!     rules: builtin                 # the built-in pack for AI-gateway audit events, or a list
//!     extra_rules:                   # checked before `rules`: refine or override the pack
//!       - { name: model_invoke, when: "attributes.action == 'model.invoke'", event_type: model_request, severity: info }
//!     default: { event_type: other, severity: info }
//!     overwrite: false               # keep an event_type / severity the record already has
//!     windows:                       # `builtin` (the default), `[]` for none, or a list
//!       - name: failed_login_burst
//!         when: "event_type == 'authentication' and attributes.outcome == 'failure'"
//!         key: attributes.user_id    # or a list of paths: the first one present is used
//!         threshold: 5
//!         within: 1m
//!         severity: high
//!         tag: failed_login_burst    # default: the window's name
//!     max_tracked_keys: 10000        # per window; the least recently seen key is evicted
//! ```
//!
//! **Rules.** `extra_rules` then `rules` are tried in order; the first rule whose `when`
//! matches decides, setting its `event_type` and/or `severity`. A rule that would set nothing
//! the record still lacks is skipped. What no rule set comes from `default`. Setting a
//! severity sets `severity` and `severity_number` (its OTLP number: info 9, low 13,
//! medium 17, high 20, critical 21); `severity_text` keeps what the source said.
//!
//! **What the source set is kept.** A record that arrives with an `event_type` (as `redact`'s
//! `pii_blocked` records do) or a `severity` keeps it unless `overwrite: true`; rules still
//! see it in their conditions and fill in what is missing.
//!
//! **Windows.** After the rules, each window counts the records matching its `when`, per
//! key value. The N-th record (N = `threshold`) of a key whose last N arrivals all fall
//! within `within`, and every further one while that rate holds, is escalated: its severity
//! is raised to the window's `severity` (never lowered, whatever `overwrite` says) and the
//! window's `tag` is added to `tags`. Time is the arrival time at this processor, from a
//! monotonic clock, not the events' own timestamps, which sources may skew or replay.
//! Records of one batch arrive together, in order. A record without the key (missing, empty,
//! null, a list or a map) is not counted. Each window tracks at most `max_tracked_keys` keys,
//! keeping for each the times of its last `threshold` arrivals; when a new key would exceed
//! that, the key seen least recently is forgotten (counted in
//! `vellum_classify_window_evictions_total`) and starts again from zero if it returns. State
//! lives in memory and starts empty on restart.
//!
//! The built-in pack ([`BUILTIN_PACK`], documented in `docs/conditions.md`) classifies the
//! audit events of OpenAI organizations, LiteLLM, Portkey, Kong AI Gateway and Cloudflare AI
//! Gateway, OpenTelemetry GenAI spans and the dotted `action` names (`login.failed`,
//! `api_key.rotated`, …) that gateways post to the `http` receiver.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::component::Processor;
use crate::event::{Record, Severity};
use crate::processors::condition::{Condition, FieldPath};

/// The built-in rules and windows, as YAML.
pub const BUILTIN_PACK: &str = include_str!("classify_builtin.yaml");

/// The largest `threshold` a window may have: each tracked key keeps that many times.
pub const MAX_THRESHOLD: u32 = 10_000;

/// Where time comes from for windows: nanoseconds on a clock that never goes back.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The `classify` processor's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    #[serde(default)]
    pub rules: Pack<RuleConfig>,
    #[serde(default)]
    pub extra_rules: Vec<RuleConfig>,
    #[serde(default)]
    pub default: DefaultConfig,
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub windows: Pack<WindowConfig>,
    #[serde(default = "default_max_tracked_keys")]
    pub max_tracked_keys: usize,
}

fn default_max_tracked_keys() -> usize {
    10_000
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig {
            rules: Pack::Builtin,
            extra_rules: Vec::new(),
            default: DefaultConfig::default(),
            overwrite: false,
            windows: Pack::Builtin,
            max_tracked_keys: default_max_tracked_keys(),
        }
    }
}

/// `builtin`, or a list of one's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Pack<T> {
    #[default]
    Builtin,
    List(Vec<T>),
}

/// One classification rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// For people reading the configuration and its errors.
    #[serde(default)]
    pub name: Option<String>,
    pub when: String,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "some_severity")]
    pub severity: Option<Severity>,
}

/// What a record gets when no rule sets a field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultConfig {
    #[serde(default = "default_event_type")]
    pub event_type: String,
    #[serde(default = "default_severity", deserialize_with = "severity")]
    pub severity: Severity,
}

fn default_event_type() -> String {
    "other".into()
}
fn default_severity() -> Severity {
    Severity::Info
}

impl Default for DefaultConfig {
    fn default() -> Self {
        DefaultConfig { event_type: default_event_type(), severity: default_severity() }
    }
}

/// A windowed escalation rule: `threshold` matching records of one key within `within`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub name: String,
    pub when: String,
    pub key: KeyPaths,
    pub threshold: u32,
    #[serde(with = "humantime_serde")]
    pub within: Duration,
    #[serde(default, deserialize_with = "some_severity")]
    pub severity: Option<Severity>,
    /// Added to escalated records' tags; the window's name when absent.
    #[serde(default)]
    pub tag: Option<String>,
}

/// One field path, or a list of them of which the first present one is used.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPaths(pub Vec<String>);

/// The built-in pack's file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinPack {
    rules: Vec<RuleConfig>,
    windows: Vec<WindowConfig>,
}

/// What is wrong with a `classify` configuration: where (a path inside the component's
/// settings, such as `rules[3].when`), and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ClassifyConfigError {
    pub path: String,
    /// The 1-based column within the condition, for condition errors.
    pub column: Option<usize>,
    pub message: String,
}

impl ClassifyConfig {
    /// Every problem serde cannot see, as (path inside the component, message) pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        match compile(self) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }
}

/// The `classify` processor.
pub struct Classifier {
    id: String,
    rules: Vec<Rule>,
    default: DefaultConfig,
    overwrite: bool,
    windows: Vec<Window>,
    clock: Clock,
}

struct Rule {
    when: Condition,
    event_type: Option<String>,
    severity: Option<Severity>,
}

struct Window {
    name: String,
    when: Condition,
    keys: Vec<FieldPath>,
    threshold: usize,
    within: u64,
    severity: Option<Severity>,
    tag: String,
    max_keys: usize,
    state: Mutex<WindowState>,
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("id", &self.id)
            .field("rules", &self.rules.len())
            .field("windows", &self.windows.iter().map(|w| &w.name).collect::<Vec<_>>())
            .finish()
    }
}

impl Classifier {
    /// Builds the processor; windows read a monotonic clock.
    pub fn new(id: &str, cfg: &ClassifyConfig) -> Result<Classifier, ClassifyConfigError> {
        Classifier::with_clock(id, cfg, monotonic_clock())
    }

    /// Builds the processor with the clock its windows read (tests drive time this way).
    pub fn with_clock(id: &str, cfg: &ClassifyConfig, clock: Clock) -> Result<Classifier, ClassifyConfigError> {
        let compiled = compile(cfg).map_err(|mut errors| errors.remove(0))?;
        Ok(Classifier {
            id: id.to_string(),
            rules: compiled.rules,
            default: cfg.default.clone(),
            overwrite: cfg.overwrite,
            windows: compiled.windows,
            clock,
        })
    }

    fn apply_rules(&self, record: &mut Record) {
        let wants_type = self.overwrite || record.event_type.is_none();
        let wants_severity = self.overwrite || record.severity.is_none();
        if !wants_type && !wants_severity {
            return;
        }
        let decisive = self.rules.iter().find(|rule| {
            let useful = (wants_type && rule.event_type.is_some()) || (wants_severity && rule.severity.is_some());
            useful && rule.when.eval(record)
        });
        if let Some(rule) = decisive {
            if let (true, Some(t)) = (wants_type, &rule.event_type) {
                record.event_type = Some(t.clone());
            }
            if let (true, Some(s)) = (wants_severity, rule.severity) {
                set_severity(record, s);
            }
        }
        if record.event_type.is_none() {
            record.event_type = Some(self.default.event_type.clone());
        }
        if record.severity.is_none() {
            set_severity(record, self.default.severity);
        }
    }
}

fn set_severity(record: &mut Record, severity: Severity) {
    record.severity = Some(severity);
    record.severity_number = severity.otlp_number();
}

impl Processor for Classifier {
    fn process(&self, mut records: Vec<Record>) -> Vec<Record> {
        for record in &mut records {
            self.apply_rules(record);
        }
        if !self.windows.is_empty() && !records.is_empty() {
            let now = (self.clock)();
            for window in &self.windows {
                window.observe(&self.id, &mut records, now);
            }
        }
        records
    }
}

// ---------------------------------------------------------------------------------------
// Windows

/// The recent arrivals of each tracked key, and which key was seen least recently.
#[derive(Default)]
struct WindowState {
    keys: HashMap<Box<str>, Arrivals>,
    /// Last-seen order: a key's `seen` → the key. The first entry is the next to evict.
    by_recency: BTreeMap<u64, Box<str>>,
    clock_ticks: u64,
}

struct Arrivals {
    /// Arrival times, oldest first, at most `threshold` of them.
    times: VecDeque<u64>,
    seen: u64,
}

impl Window {
    fn observe(&self, component: &str, records: &mut [Record], now: u64) {
        let mut escalated = 0u64;
        let mut evicted = 0u64;
        {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for record in records.iter_mut() {
                if !self.when.eval(record) {
                    continue;
                }
                let Some(key) = self.keys.iter().find_map(|k| k.key(record)) else { continue };
                let (burst, evictions) = state.arrive(&key, now, self.within, self.threshold, self.max_keys);
                evicted += evictions;
                if burst {
                    escalated += 1;
                    self.escalate(record);
                }
            }
        }
        if escalated > 0 {
            metrics::counter!("vellum_classify_escalated_records_total", "component" => component.to_string(), "window" => self.name.clone())
                .increment(escalated);
        }
        if evicted > 0 {
            metrics::counter!("vellum_classify_window_evictions_total", "component" => component.to_string(), "window" => self.name.clone())
                .increment(evicted);
        }
    }

    fn escalate(&self, record: &mut Record) {
        if let Some(s) = self.severity {
            if record.severity.is_none_or(|current| current < s) {
                set_severity(record, s);
            }
        }
        if !record.tags.iter().any(|t| *t == self.tag) {
            record.tags.push(self.tag.clone());
        }
    }
}

impl WindowState {
    /// Records an arrival of `key` at `now`; returns whether it completes a burst, and how
    /// many keys were evicted to make room.
    fn arrive(&mut self, key: &str, now: u64, within: u64, threshold: usize, max_keys: usize) -> (bool, u64) {
        self.clock_ticks += 1;
        let seen = self.clock_ticks;
        let mut evicted = 0;
        if let Some(arrivals) = self.keys.get_mut(key) {
            if let Some(owned) = self.by_recency.remove(&arrivals.seen) {
                self.by_recency.insert(seen, owned);
            }
            arrivals.seen = seen;
        } else {
            while self.keys.len() >= max_keys.max(1) {
                let Some((_, oldest)) = self.by_recency.pop_first() else { break };
                self.keys.remove(&oldest);
                evicted += 1;
            }
            self.keys.insert(key.into(), Arrivals { times: VecDeque::with_capacity(threshold.min(16)), seen });
            self.by_recency.insert(seen, key.into());
        }
        let Some(arrivals) = self.keys.get_mut(key) else { return (false, evicted) };
        while arrivals.times.front().is_some_and(|&t| now.saturating_sub(t) >= within) {
            arrivals.times.pop_front();
        }
        arrivals.times.push_back(now);
        if arrivals.times.len() > threshold {
            arrivals.times.pop_front();
        }
        (arrivals.times.len() >= threshold, evicted)
    }
}

fn monotonic_clock() -> Clock {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    Arc::new(move || u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------
// Compiling a configuration

struct Compiled {
    rules: Vec<Rule>,
    windows: Vec<Window>,
}

fn builtin_pack() -> Result<&'static BuiltinPack, ClassifyConfigError> {
    static PACK: OnceLock<Result<BuiltinPack, String>> = OnceLock::new();
    PACK.get_or_init(|| serde_saphyr::from_str::<BuiltinPack>(BUILTIN_PACK).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ClassifyConfigError {
            path: "rules".into(),
            column: None,
            message: format!("the built-in pack does not load: {e}"),
        })
}

fn compile(cfg: &ClassifyConfig) -> Result<Compiled, Vec<ClassifyConfigError>> {
    let mut errors = Vec::new();
    let mut problem = |path: String, column: Option<usize>, message: String| {
        errors.push(ClassifyConfigError { path, column, message });
    };
    let needs_pack = cfg.rules == Pack::Builtin || cfg.windows == Pack::Builtin;
    let pack = if needs_pack {
        match builtin_pack() {
            Ok(pack) => Some(pack),
            Err(e) => return Err(vec![e]),
        }
    } else {
        None
    };

    let mut rule_sources: Vec<(String, &RuleConfig)> = Vec::new();
    for (i, rule) in cfg.extra_rules.iter().enumerate() {
        rule_sources.push((format!("extra_rules[{i}]"), rule));
    }
    match (&cfg.rules, pack) {
        (Pack::List(list), _) => rule_sources.extend(list.iter().enumerate().map(|(i, r)| (format!("rules[{i}]"), r))),
        (Pack::Builtin, Some(pack)) => {
            rule_sources.extend(pack.rules.iter().enumerate().map(|(i, r)| (format!("rules (built-in rule {i})"), r)))
        }
        (Pack::Builtin, None) => {}
    }
    let mut rules = Vec::new();
    for (path, rule) in rule_sources {
        let named = |path: &str| match &rule.name {
            Some(n) => format!("{path} `{n}`"),
            None => path.to_string(),
        };
        if rule.event_type.is_none() && rule.severity.is_none() {
            problem(path.clone(), None, format!("{} sets nothing: give it an `event_type`, a `severity` or both", named("the rule")));
        }
        if let Some(t) = &rule.event_type {
            if let Err(message) = check_word(t, "an event_type") {
                problem(format!("{path}.event_type"), None, message);
            }
        }
        match Condition::parse(&rule.when) {
            Ok(when) => rules.push(Rule { when, event_type: rule.event_type.clone(), severity: rule.severity }),
            Err(e) => problem(format!("{path}.when"), Some(e.column), format!("column {} of the condition: {}", e.column, e.message)),
        }
    }
    if let Err(message) = check_word(&cfg.default.event_type, "an event_type") {
        problem("default.event_type".into(), None, message);
    }

    let window_sources: Vec<(String, &WindowConfig)> = match (&cfg.windows, pack) {
        (Pack::List(list), _) => list.iter().enumerate().map(|(i, w)| (format!("windows[{i}]"), w)).collect(),
        (Pack::Builtin, Some(pack)) => {
            pack.windows.iter().enumerate().map(|(i, w)| (format!("windows (built-in window {i})"), w)).collect()
        }
        (Pack::Builtin, None) => Vec::new(),
    };
    if cfg.max_tracked_keys == 0 {
        problem("max_tracked_keys".into(), None, "must be at least 1".into());
    }
    let mut names = std::collections::BTreeSet::new();
    let mut windows = Vec::new();
    for (path, w) in window_sources {
        if let Err(message) = check_word(&w.name, "a window name") {
            problem(format!("{path}.name"), None, message);
        } else if !names.insert(w.name.as_str()) {
            problem(format!("{path}.name"), None, format!("another window is already named `{}`", w.name));
        }
        if w.threshold == 0 || w.threshold > MAX_THRESHOLD {
            problem(format!("{path}.threshold"), None, format!("must be from 1 to {MAX_THRESHOLD}"));
        }
        if w.within.is_zero() {
            problem(format!("{path}.within"), None, "must be longer than 0s".into());
        }
        let tag = w.tag.clone().unwrap_or_else(|| w.name.clone());
        if let Err(message) = check_word(&tag, "a tag") {
            problem(format!("{path}.tag"), None, message);
        }
        if w.key.0.is_empty() {
            problem(format!("{path}.key"), None, "name at least one field path".into());
        }
        let mut keys = Vec::new();
        for (k, key) in w.key.0.iter().enumerate() {
            let key_path = if w.key.0.len() == 1 { format!("{path}.key") } else { format!("{path}.key[{k}]") };
            match FieldPath::parse(key) {
                Ok(p) => keys.push(p),
                Err(e) => problem(key_path, Some(e.column), e.message),
            }
        }
        match Condition::parse(&w.when) {
            Ok(when) => windows.push(Window {
                name: w.name.clone(),
                when,
                keys,
                threshold: w.threshold.clamp(1, MAX_THRESHOLD) as usize,
                within: u64::try_from(w.within.as_nanos()).unwrap_or(u64::MAX),
                severity: w.severity,
                tag,
                max_keys: cfg.max_tracked_keys,
                state: Mutex::new(WindowState::default()),
            }),
            Err(e) => problem(format!("{path}.when"), Some(e.column), format!("column {} of the condition: {}", e.column, e.message)),
        }
    }
    if errors.is_empty() {
        Ok(Compiled { rules, windows })
    } else {
        Err(errors)
    }
}

/// Event types, tags and window names are identifiers: lowercase letters, digits, `_`,
/// `.` and `-`, at most 64 of them.
fn check_word(word: &str, what: &str) -> Result<(), String> {
    let ok = !word.is_empty()
        && word.len() <= 64
        && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{word}` is not {what}: use 1 to 64 lowercase letters, digits, `_`, `.` or `-`"))
    }
}

// ---------------------------------------------------------------------------------------
// Deserialising

fn severity<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let word = String::deserialize(d)?;
    Severity::parse(&word).ok_or_else(|| {
        de::Error::custom(format!("`{word}` is not a severity: expected info, low, medium, high or critical"))
    })
}

fn some_severity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Severity>, D::Error> {
    severity(d).map(Some)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pack<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pack<T>, D::Error> {
        struct PackVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for PackVisitor<T> {
            type Value = Pack<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`builtin` or a list")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Pack<T>, E> {
                if s == "builtin" {
                    Ok(Pack::Builtin)
                } else {
                    Err(E::custom(format!("`{s}`: expected `builtin` or a list")))
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Pack<T>, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Pack::List)
            }
        }

        d.deserialize_any(PackVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for KeyPaths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyPaths, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyPaths;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field path such as `attributes.user_id`, or a list of them")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyPaths, E> {
                Ok(KeyPaths(vec![s.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<KeyPaths, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(KeyPaths)
            }
        }

        d.deserialize_any(KeyVisitor)
    }
}
