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
//! **Memory.** A key value longer than [`MAX_KEY_BYTES`] (64) bytes is tracked by its
//! SHA-256 instead, so a key costs at most 65 bytes whatever a client sends (a 1 MiB user
//! id too). A window holds at most `max_tracked_keys × (threshold × 8 + 256)` bytes
//! ([`window_bound`]: the arrival times, the key and the bookkeeping of each key), and a
//! configuration whose window could need more than [`MAX_WINDOW_BYTES`] (256 MiB) is
//! refused. The built-in windows at the default 10,000 keys take under 3 MiB each.
//!
//! The built-in pack ([`BUILTIN_PACK`], documented in `docs/conditions.md`) classifies the
//! audit events of OpenAI organizations, LiteLLM, Portkey, Kong AI Gateway and Cloudflare AI
//! Gateway, OpenTelemetry GenAI spans and the dotted `action` names (`login.failed`,
//! `api_key.rotated`, …) that gateways post to the `http` receiver.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::component::Processor;
use crate::conditions::{AttributeIndex, Condition, FieldPath};
use crate::event::{Record, Severity};

/// The built-in rules and windows, as YAML.
pub const BUILTIN_PACK: &str = include_str!("classify_builtin.yaml");

/// The largest `threshold` a window may have: each tracked key keeps that many times.
pub const MAX_THRESHOLD: u32 = 10_000;

/// The longest key value a window tracks as it is; longer values are tracked by their
/// SHA-256.
pub const MAX_KEY_BYTES: usize = 64;

/// What one tracked key may cost besides its arrival times: the key (at most 65 bytes
/// in a shared allocation), its slot and its hash-map entry, rounded up.
const KEY_OVERHEAD_BYTES: u64 = 256;

/// The most memory one window may be configured to hold.
pub const MAX_WINDOW_BYTES: u64 = 256 << 20;

/// The most memory a window tracking `max_keys` keys with `threshold` may hold.
pub fn window_bound(max_keys: usize, threshold: u32) -> u64 {
    (max_keys as u64).saturating_mul(u64::from(threshold) * 8 + KEY_OVERHEAD_BYTES)
}

/// Where time comes from for windows: nanoseconds on a clock that never goes back.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The `classify` processor's settings.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    /// `builtin` (the AI-gateway pack, the default) or a list of rules.
    #[serde(default)]
    pub rules: Pack<RuleConfig>,
    /// Rules tried before `rules`: refine or override the pack.
    #[serde(default)]
    pub extra_rules: Vec<RuleConfig>,
    #[serde(default)]
    pub default: DefaultConfig,
    /// Whether rules replace an `event_type` or `severity` the record already has.
    #[serde(default)]
    pub overwrite: bool,
    /// Windows that escalate bursts: `builtin` (the default), `[]` for none, or a list.
    #[serde(default)]
    pub windows: Pack<WindowConfig>,
    /// The most keys each window remembers.
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
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
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
        DefaultConfig {
            event_type: default_event_type(),
            severity: default_severity(),
        }
    }
}

/// A windowed escalation rule: `threshold` matching records of one key within `within`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub name: String,
    pub when: String,
    pub key: KeyPaths,
    pub threshold: u32,
    #[schemars(with = "crate::config::schema::HumanDuration")]
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
    /// The windows' conditions, each distinct text once: windows sharing a condition
    /// (the built-in failed-login windows, keyed by user and by address) test it once.
    window_conditions: Vec<Condition>,
    clock: Clock,
}

struct Rule {
    when: Condition,
    event_type: Option<String>,
    severity: Option<Severity>,
}

struct Window {
    name: String,
    /// Index into `Classifier::window_conditions`.
    when: usize,
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
            .field(
                "windows",
                &self.windows.iter().map(|w| &w.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Classifier {
    /// Builds the processor; windows read a monotonic clock.
    pub fn new(id: &str, cfg: &ClassifyConfig) -> Result<Classifier, ClassifyConfigError> {
        Classifier::with_clock(id, cfg, monotonic_clock())
    }

    /// Builds the processor with the clock its windows read (tests drive time this way).
    pub fn with_clock(
        id: &str,
        cfg: &ClassifyConfig,
        clock: Clock,
    ) -> Result<Classifier, ClassifyConfigError> {
        let compiled = compile(cfg).map_err(|mut errors| errors.remove(0))?;
        Ok(Classifier {
            id: id.to_string(),
            rules: compiled.rules,
            default: cfg.default.clone(),
            overwrite: cfg.overwrite,
            windows: compiled.windows,
            window_conditions: compiled.window_conditions,
            clock,
        })
    }

    fn apply_rules(&self, record: &mut Record, index: AttributeIndex) {
        let wants_type = self.overwrite || record.event_type.is_none();
        let wants_severity = self.overwrite || record.severity.is_none();
        if !wants_type && !wants_severity {
            return;
        }
        let decisive = self.rules.iter().find(|rule| {
            let useful = (wants_type && rule.event_type.is_some())
                || (wants_severity && rule.severity.is_some());
            useful && rule.when.eval_indexed(record, index)
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
        let indexes: Vec<AttributeIndex> = records
            .iter_mut()
            .map(|record| {
                let index = AttributeIndex::of(record);
                self.apply_rules(record, index);
                index
            })
            .collect();
        if !self.windows.is_empty() && !records.is_empty() {
            self.count_windows(&mut records, &indexes);
        }
        records
    }
}

impl Classifier {
    fn count_windows(&self, records: &mut [Record], indexes: &[AttributeIndex]) {
        let now = (self.clock)();
        let mut escalated = vec![0u64; self.windows.len()];
        let mut evicted = vec![0u64; self.windows.len()];
        let mut verdicts: Vec<Option<bool>> = vec![None; self.window_conditions.len()];
        {
            // Windows are locked for the whole batch, always in the same order, so that
            // concurrent batches cannot deadlock and each sees the others' records as wholes.
            let mut states: Vec<_> = self
                .windows
                .iter()
                .map(|w| {
                    w.state
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                })
                .collect();
            for (record, &index) in records.iter_mut().zip(indexes) {
                verdicts.fill(None);
                for (i, window) in self.windows.iter().enumerate() {
                    let holds = *verdicts[window.when].get_or_insert_with(|| {
                        self.window_conditions[window.when].eval_indexed(record, index)
                    });
                    if !holds {
                        continue;
                    }
                    let (burst, evictions) = window.count(&mut states[i], record, index, now);
                    evicted[i] += evictions;
                    if burst {
                        escalated[i] += 1;
                        window.escalate(record);
                        // The record changed, and later windows' conditions may read what did.
                        verdicts.fill(None);
                    }
                }
            }
        }
        for (i, window) in self.windows.iter().enumerate() {
            if escalated[i] > 0 {
                metrics::counter!("vellum_classify_escalated_records_total", "component" => self.id.clone(), "window" => window.name.clone())
                    .increment(escalated[i]);
            }
            if evicted[i] > 0 {
                metrics::counter!("vellum_classify_window_evictions_total", "component" => self.id.clone(), "window" => window.name.clone())
                    .increment(evicted[i]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Windows

/// The recent arrivals of each tracked key, in a slab of slots linked from the most to the
/// least recently seen key, so that finding, refreshing and evicting a key are O(1).
struct WindowState {
    slots: Vec<Slot>,
    by_key: HashMap<Arc<[u8]>, usize>,
    /// The most and the least recently seen slots; `NIL` when empty.
    newest: usize,
    oldest: usize,
}

const NIL: usize = usize::MAX;

struct Slot {
    key: Arc<[u8]>,
    /// Arrival times, oldest first, at most `threshold` of them.
    times: VecDeque<u64>,
    newer: usize,
    older: usize,
}

impl Window {
    /// Counts a record that matched the window's condition; returns whether it completes a
    /// burst, and how many keys were evicted to make room for it.
    fn count(
        &self,
        state: &mut WindowState,
        record: &Record,
        index: AttributeIndex,
        now: u64,
    ) -> (bool, u64) {
        match self.keys.iter().find_map(|k| k.key(record, index)) {
            Some(value) => {
                let key = WindowKey::of(&value);
                state.arrive(
                    key.as_bytes(),
                    now,
                    self.within,
                    self.threshold,
                    self.max_keys,
                )
            }
            None => (false, 0),
        }
    }

    fn escalate(&self, record: &mut Record) {
        if let Some(s) = self.severity
            && record.severity.is_none_or(|current| current < s)
        {
            set_severity(record, s);
        }
        if !record.tags.contains(&self.tag) {
            record.tags.push(self.tag.clone());
        }
    }
}

/// What a window stores for a key value: the value itself up to [`MAX_KEY_BYTES`], else
/// its SHA-256, each behind a tag byte so that a short value never equals a digest.
struct WindowKey {
    bytes: [u8; 1 + MAX_KEY_BYTES],
    len: usize,
}

impl WindowKey {
    fn of(value: &str) -> WindowKey {
        let mut bytes = [0u8; 1 + MAX_KEY_BYTES];
        let len = if value.len() <= MAX_KEY_BYTES {
            bytes[0] = b'v';
            bytes[1..=value.len()].copy_from_slice(value.as_bytes());
            1 + value.len()
        } else {
            use sha2::Digest;
            bytes[0] = b'h';
            bytes[1..33].copy_from_slice(&sha2::Sha256::digest(value.as_bytes()));
            33
        };
        WindowKey { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl WindowState {
    fn new() -> WindowState {
        WindowState {
            slots: Vec::new(),
            by_key: HashMap::new(),
            newest: NIL,
            oldest: NIL,
        }
    }

    /// Records an arrival of `key` at `now`; returns whether it completes a burst, and how
    /// many keys were evicted to make room.
    fn arrive(
        &mut self,
        key: &[u8],
        now: u64,
        within: u64,
        threshold: usize,
        max_keys: usize,
    ) -> (bool, u64) {
        let mut evicted = 0;
        let slot = match self.by_key.get(key) {
            Some(&slot) => {
                self.unlink(slot);
                slot
            }
            None if self.by_key.len() >= max_keys.max(1) && self.oldest != NIL => {
                // Reuse the least recently seen key's slot, and its buffer.
                let slot = self.oldest;
                self.unlink(slot);
                self.by_key.remove(&self.slots[slot].key);
                evicted = 1;
                let key: Arc<[u8]> = key.into();
                self.by_key.insert(key.clone(), slot);
                self.slots[slot].key = key;
                self.slots[slot].times.clear();
                slot
            }
            None => {
                let key: Arc<[u8]> = key.into();
                self.by_key.insert(key.clone(), self.slots.len());
                let times = VecDeque::with_capacity(threshold.min(16));
                self.slots.push(Slot {
                    key,
                    times,
                    newer: NIL,
                    older: NIL,
                });
                self.slots.len() - 1
            }
        };
        self.push_newest(slot);
        let times = &mut self.slots[slot].times;
        while times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= within)
        {
            times.pop_front();
        }
        times.push_back(now);
        if times.len() > threshold {
            times.pop_front();
        }
        (times.len() >= threshold, evicted)
    }

    fn unlink(&mut self, slot: usize) {
        let Slot { newer, older, .. } = self.slots[slot];
        match newer {
            NIL => self.newest = older,
            n => self.slots[n].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o].newer = newer,
        }
    }

    fn push_newest(&mut self, slot: usize) {
        self.slots[slot].newer = NIL;
        self.slots[slot].older = self.newest;
        match self.newest {
            NIL => self.oldest = slot,
            n => self.slots[n].newer = slot,
        }
        self.newest = slot;
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
    window_conditions: Vec<Condition>,
}

fn builtin_pack() -> Result<&'static BuiltinPack, ClassifyConfigError> {
    static PACK: OnceLock<Result<BuiltinPack, String>> = OnceLock::new();
    PACK.get_or_init(|| {
        serde_saphyr::from_str::<BuiltinPack>(BUILTIN_PACK).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| ClassifyConfigError {
        path: "rules".into(),
        column: None,
        message: format!("the built-in pack does not load: {e}"),
    })
}

/// The problems found while compiling a configuration.
#[derive(Default)]
struct Problems(Vec<ClassifyConfigError>);

impl Problems {
    fn add(&mut self, path: String, message: impl Into<String>) {
        self.0.push(ClassifyConfigError {
            path,
            column: None,
            message: message.into(),
        });
    }

    /// Parses the condition at `path` (`rules[2].when`), noting why it does not parse.
    fn condition(&mut self, path: String, source: &str) -> Option<Condition> {
        Condition::parse(source)
            .map_err(|e| {
                self.0.push(ClassifyConfigError {
                    path,
                    column: Some(e.column),
                    message: format!("column {} of the condition: {}", e.column, e.message),
                })
            })
            .ok()
    }
}

fn compile(cfg: &ClassifyConfig) -> Result<Compiled, Vec<ClassifyConfigError>> {
    let pack = if cfg.rules == Pack::Builtin || cfg.windows == Pack::Builtin {
        Some(builtin_pack().map_err(|e| vec![e])?)
    } else {
        None
    };
    let mut problems = Problems::default();
    let rules = compile_rules(cfg, pack, &mut problems);
    if let Err(message) = check_word(&cfg.default.event_type, "an event_type") {
        problems.add("default.event_type".into(), message);
    }
    let (windows, window_conditions) = compile_windows(cfg, pack, &mut problems);
    if cfg.max_tracked_keys == 0 {
        problems.add("max_tracked_keys".into(), "must be at least 1");
    }
    if problems.0.is_empty() {
        Ok(Compiled {
            rules,
            windows,
            window_conditions,
        })
    } else {
        Err(problems.0)
    }
}

/// `extra_rules`, then `rules` or the pack's, each with its path for error messages.
fn compile_rules(
    cfg: &ClassifyConfig,
    pack: Option<&BuiltinPack>,
    problems: &mut Problems,
) -> Vec<Rule> {
    let extra = cfg
        .extra_rules
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("extra_rules[{i}]"), r));
    let main: Vec<(String, &RuleConfig)> = match (&cfg.rules, pack) {
        (Pack::List(list), _) => list
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("rules[{i}]"), r))
            .collect(),
        (Pack::Builtin, Some(pack)) => pack
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("rules (built-in rule {i})"), r))
            .collect(),
        (Pack::Builtin, None) => Vec::new(),
    };
    let mut rules = Vec::new();
    for (path, rule) in extra.chain(main) {
        if rule.event_type.is_none() && rule.severity.is_none() {
            let which = rule
                .name
                .as_ref()
                .map(|n| format!("the rule `{n}`"))
                .unwrap_or("the rule".into());
            problems.add(
                path.clone(),
                format!("{which} sets nothing: give it an `event_type`, a `severity` or both"),
            );
        }
        if let Some(t) = &rule.event_type
            && let Err(message) = check_word(t, "an event_type")
        {
            problems.add(format!("{path}.event_type"), message);
        }
        if let Some(when) = problems.condition(format!("{path}.when"), &rule.when) {
            rules.push(Rule {
                when,
                event_type: rule.event_type.clone(),
                severity: rule.severity,
            });
        }
    }
    rules
}

/// The windows, and their distinct conditions.
fn compile_windows(
    cfg: &ClassifyConfig,
    pack: Option<&BuiltinPack>,
    problems: &mut Problems,
) -> (Vec<Window>, Vec<Condition>) {
    let sources: Vec<(String, &WindowConfig)> = match (&cfg.windows, pack) {
        (Pack::List(list), _) => list
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("windows[{i}]"), w))
            .collect(),
        (Pack::Builtin, Some(pack)) => pack
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("windows (built-in window {i})"), w))
            .collect(),
        (Pack::Builtin, None) => Vec::new(),
    };
    let mut names = std::collections::BTreeSet::new();
    let mut windows = Vec::new();
    let mut conditions: Vec<Condition> = Vec::new();
    for (path, w) in sources {
        if let Err(message) = check_word(&w.name, "a window name") {
            problems.add(format!("{path}.name"), message);
        } else if !names.insert(w.name.as_str()) {
            problems.add(
                format!("{path}.name"),
                format!("another window is already named `{}`", w.name),
            );
        }
        if w.threshold == 0 || w.threshold > MAX_THRESHOLD {
            problems.add(
                format!("{path}.threshold"),
                format!("must be from 1 to {MAX_THRESHOLD}"),
            );
        }
        if w.within.is_zero() {
            problems.add(format!("{path}.within"), "must be longer than 0s");
        }
        let bound = window_bound(cfg.max_tracked_keys, w.threshold);
        if bound > MAX_WINDOW_BYTES {
            let at = match cfg.windows {
                Pack::List(_) => format!("{path}.threshold"),
                Pack::Builtin => "max_tracked_keys".into(),
            };
            problems.add(
                at,
                format!(
                    "tracking {} keys of {} arrivals each may take {} MiB; a window may take at most {} MiB (lower `max_tracked_keys` or `threshold`)",
                    cfg.max_tracked_keys,
                    w.threshold,
                    bound >> 20,
                    MAX_WINDOW_BYTES >> 20
                ),
            );
        }
        let tag = w.tag.clone().unwrap_or_else(|| w.name.clone());
        if let Err(message) = check_word(&tag, "a tag") {
            problems.add(format!("{path}.tag"), message);
        }
        if w.key.0.is_empty() {
            problems.add(format!("{path}.key"), "name at least one field path");
        }
        let mut keys = Vec::new();
        for (k, key) in w.key.0.iter().enumerate() {
            match FieldPath::parse(key) {
                Ok(p) => keys.push(p),
                Err(e) => problems.0.push(ClassifyConfigError {
                    path: if w.key.0.len() == 1 {
                        format!("{path}.key")
                    } else {
                        format!("{path}.key[{k}]")
                    },
                    column: Some(e.column),
                    message: e.message,
                }),
            }
        }
        let when = match conditions.iter().position(|c| c.source() == w.when) {
            Some(shared) => shared,
            None => match problems.condition(format!("{path}.when"), &w.when) {
                Some(c) => {
                    conditions.push(c);
                    conditions.len() - 1
                }
                None => continue,
            },
        };
        windows.push(Window {
            name: w.name.clone(),
            when,
            keys,
            threshold: w.threshold.clamp(1, MAX_THRESHOLD) as usize,
            within: u64::try_from(w.within.as_nanos()).unwrap_or(u64::MAX),
            severity: w.severity,
            tag,
            max_keys: cfg.max_tracked_keys,
            state: Mutex::new(WindowState::new()),
        });
    }
    (windows, conditions)
}

/// Event types, tags and window names are identifiers: lowercase letters, digits, `_`,
/// `.` and `-`, at most 64 of them.
fn check_word(word: &str, what: &str) -> Result<(), String> {
    let ok = !word.is_empty()
        && word.len() <= 64
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{word}` is not {what}: use 1 to 64 lowercase letters, digits, `_`, `.` or `-`"
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Deserialising

fn severity<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let word = String::deserialize(d)?;
    Severity::parse(&word).ok_or_else(|| {
        de::Error::custom(format!(
            "`{word}` is not a severity: expected info, low, medium, high or critical"
        ))
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

impl super::ProcessorSettings for ClassifyConfig {
    fn problems(&self) -> Vec<(String, String)> {
        ClassifyConfig::problems(self)
    }

    fn build(&self, id: &str) -> Result<super::Stage, String> {
        Classifier::new(id, self)
            .map(|p| super::Stage::Process(std::sync::Arc::new(p)))
            .map_err(|e| e.to_string())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Pack<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("pack_of_{}", T::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let item = g.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [{ "const": "builtin" }, { "type": "array", "items": item }]
        })
    }
}

impl schemars::JsonSchema for KeyPaths {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "key_paths".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "a field path, or a list of them: the first one present is used",
            "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::atomic::{AtomicU64, Ordering};

    const SECOND: u64 = 1_000_000_000;

    /// A record as the `http` receiver makes it from a gateway's JSON event: every key the
    /// receiver does not map to a record field becomes an attribute.
    fn gateway_event(event: Value) -> Record {
        let mut r = Record::new("http/gateway");
        if let Value::Object(m) = event {
            r.attributes = m;
        }
        r
    }

    fn classify_with(cfg: &ClassifyConfig, records: Vec<Record>) -> Vec<Record> {
        Classifier::new("classify", cfg).unwrap().process(records)
    }

    fn classify_one(event: Value) -> (String, Severity) {
        let out = classify_with(&ClassifyConfig::default(), vec![gateway_event(event)]);
        (out[0].event_type.clone().unwrap(), out[0].severity.unwrap())
    }

    fn config(yaml: &str) -> ClassifyConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    /// Expected classifications, one per documented event shape; the expectation is what a
    /// security team would want, written down before running the pack.
    #[test]
    fn builtin_pack_classifies_documented_gateway_events() {
        use Severity::*;
        let session_actor = json!({"type": "session", "session": {
            "user": {"id": "user-abc", "email": "user@example.com"},
            "ip_address": "203.0.113.7", "user_agent": "Mozilla/5.0"}});
        let key_actor = json!({"type": "api_key", "api_key": {"id": "key_abc", "type": "user",
            "user": {"id": "user-abc", "email": "user@example.com"}}});
        let cases: Vec<(&str, Value, &str, Severity)> = vec![
            // OpenAI organization audit log (GET /v1/organization/audit_logs).
            (
                "openai login.failed",
                json!({"id": "audit_log-1", "type": "login.failed", "effective_at": 1722461446,
                "actor": session_actor, "login.failed": {"error_code": "invalid_credentials", "error_message": "Invalid credentials"}}),
                "authentication",
                Medium,
            ),
            (
                "openai login.succeeded",
                json!({"id": "audit_log-2", "type": "login.succeeded", "actor": session_actor}),
                "authentication",
                Info,
            ),
            (
                "openai logout.failed",
                json!({"type": "logout.failed", "actor": session_actor,
                "logout.failed": {"error_code": "x", "error_message": "y"}}),
                "authentication",
                Low,
            ),
            (
                "openai api_key.created",
                json!({"type": "api_key.created", "actor": session_actor,
                "api_key.created": {"id": "key_xxxx", "data": {"scopes": ["resource.operation"]}}}),
                "credential_change",
                Medium,
            ),
            (
                "openai api_key.updated",
                json!({"id": "audit_log-yyy__20240101", "type": "api_key.updated", "effective_at": 1720804190,
                "actor": session_actor, "api_key.updated": {"id": "key_xxxx", "data": {"scopes": ["resource_2.operation_2"]}}}),
                "credential_change",
                Medium,
            ),
            (
                "openai api_key.deleted",
                json!({"type": "api_key.deleted", "actor": key_actor, "api_key.deleted": {"id": "key_xxxx"}}),
                "credential_change",
                Medium,
            ),
            (
                "openai rate_limit.updated",
                json!({"type": "rate_limit.updated", "actor": session_actor,
                "rate_limit.updated": {"id": "rl-xxx", "changes_requested": {"max_requests_per_1_minute": 100}}}),
                "configuration_change",
                Medium,
            ),
            (
                "openai role granted",
                json!({"type": "user.updated", "actor": session_actor,
                "user.updated": {"id": "user-def", "changes_requested": {"role": "owner"}}}),
                "authorization",
                High,
            ),
            (
                "openai user renamed",
                json!({"type": "user.updated", "actor": session_actor,
                "user.updated": {"id": "user-def", "changes_requested": {"name": "Dee"}}}),
                "authorization",
                Low,
            ),
            (
                "openai role.assignment.created",
                json!({"type": "role.assignment.created", "actor": session_actor,
                "role.assignment.created": {"id": "role_assignment_role-admin", "principal_id": "user-def", "principal_type": "user"}}),
                "authorization",
                High,
            ),
            (
                "openai invite.sent",
                json!({"type": "invite.sent", "invite.sent": {"id": "invite-1", "data": {"email": "new@example.com", "role": "reader"}}}),
                "authorization",
                Low,
            ),
            (
                "openai ip_allowlist.config.deactivated",
                json!({"type": "ip_allowlist.config.deactivated", "actor": session_actor}),
                "configuration_change",
                High,
            ),
            (
                "openai project.created",
                json!({"type": "project.created", "project.created": {"id": "proj_abc", "data": {"name": "p", "title": "P"}}}),
                "configuration_change",
                Low,
            ),
            // LiteLLM proxy audit log (LiteLLM_AuditLogs).
            (
                "litellm key rotated",
                json!({"id": "6a1f", "updated_at": "2025-05-01T10:00:00Z", "changed_by": "admin-1",
                "changed_by_api_key": "88dc28", "action": "rotated", "table_name": "LiteLLM_VerificationToken",
                "object_id": "sk-hash-1", "before_value": "{\"key_alias\": \"ci\"}", "updated_values": "{\"key_alias\": \"ci\"}"}),
                "credential_change",
                Medium,
            ),
            (
                "litellm key deleted",
                json!({"changed_by": "admin-1", "action": "deleted", "table_name": "LiteLLM_VerificationToken",
                "object_id": "d5265fc7"}),
                "credential_change",
                Medium,
            ),
            (
                "litellm key blocked",
                json!({"changed_by": "admin-1", "action": "blocked", "table_name": "LiteLLM_VerificationToken",
                "object_id": "d5265fc7"}),
                "credential_change",
                Medium,
            ),
            (
                "litellm team budget",
                json!({"changed_by": "krrish@berri.ai", "action": "updated", "table_name": "LiteLLM_TeamTable",
                "object_id": "team-1", "updated_values": "{\"team_id\": \"team-1\", \"max_budget\": 100.0}"}),
                "configuration_change",
                Medium,
            ),
            (
                "litellm key tpm limit (object form)",
                json!({"changed_by": "admin-1", "action": "updated",
                "table_name": "LiteLLM_VerificationToken", "object_id": "k1", "updated_values": {"tpm_limit": 1000}}),
                "configuration_change",
                Medium,
            ),
            (
                "litellm user made admin",
                json!({"changed_by": "admin-1", "action": "updated", "table_name": "LiteLLM_UserTable",
                "object_id": "u-1", "updated_values": "{\"user_id\": \"u-1\", \"user_role\": \"proxy_admin\"}"}),
                "authorization",
                High,
            ),
            (
                "litellm user created",
                json!({"changed_by": "admin-1", "action": "created", "table_name": "LiteLLM_UserTable",
                "object_id": "u-2"}),
                "authorization",
                Low,
            ),
            (
                "litellm model added",
                json!({"changed_by": "admin-1", "action": "created", "table_name": "LiteLLM_ProxyModelTable",
                "object_id": "m-1"}),
                "configuration_change",
                Low,
            ),
            // LiteLLM request logs (StandardLoggingPayload).
            (
                "litellm guardrail intervened",
                json!({"call_type": "acompletion", "model": "gpt-4o", "status": "failure",
                "guardrail_information": {"guardrail_name": "lakera-pre", "guardrail_mode": "pre_call",
                "guardrail_status": "guardrail_intervened"}}),
                "security",
                Medium,
            ),
            (
                "litellm prompt injection",
                json!({"call_type": "completion", "status": "failure",
                "error_str": "Rejected message. This is a prompt injection attack."}),
                "security",
                High,
            ),
            (
                "litellm request",
                json!({"call_type": "acompletion", "model": "gpt-4o", "status": "success",
                "metadata": {"user_api_key_user_id": "u-9"}}),
                "model_request",
                Info,
            ),
            (
                "litellm failed request",
                json!({"call_type": "acompletion", "model": "gpt-4o", "status": "failure",
                "error_str": "RateLimitError"}),
                "model_request",
                Low,
            ),
            // Portkey audit log (GET /v1/audit-logs records).
            (
                "portkey api key created",
                json!({"timestamp": "2025-04-01T10:00:00Z", "method": "POST",
                "uri": "/v1/api-keys/workspace/user", "request_id": "r-1", "user_id": "3c90c3cc", "user_type": "user",
                "organisation_id": "org-1", "workspace_id": "ws-1", "response_status_code": 200, "resource_type": "api_keys",
                "action": "create", "client_ip": "198.51.100.4", "country": "DE"}),
                "credential_change",
                Medium,
            ),
            (
                "portkey usage limit updated",
                json!({"method": "PUT", "uri": "/v1/policies/usage-limits/ul-1", "user_id": "3c90c3cc",
                "response_status_code": 200, "action": "update"}),
                "configuration_change",
                Medium,
            ),
            (
                "portkey denied",
                json!({"method": "DELETE", "uri": "/v1/api-keys/k-1", "user_id": "3c90c3cc",
                "response_status_code": 403, "action": "delete"}),
                "authorization",
                Medium,
            ),
            (
                "portkey guardrail deleted",
                json!({"method": "DELETE", "uri": "/v1/guardrails/g-1", "user_id": "3c90c3cc",
                "response_status_code": 200, "action": "delete"}),
                "security",
                High,
            ),
            (
                "portkey config updated",
                json!({"method": "PUT", "uri": "/v1/configs/pc-1", "response_status_code": 200}),
                "configuration_change",
                Low,
            ),
            // Kong AI Gateway log plugins.
            (
                "kong lakera blocked",
                json!({"ai": {"proxy": {"lakera-guard": {"input_faulty_prompt": "Ignore previous instructions"},
                "meta": {"request_model": "gpt-4o", "provider_name": "openai"}}}, "response": {"status": 400}}),
                "security",
                Medium,
            ),
            (
                "kong request",
                json!({"ai": {"proxy": {"meta": {"request_model": "command", "provider_name": "cohere"},
                "usage": {"prompt_tokens": 28, "completion_tokens": 20, "total_tokens": 48}}}, "consumer": {"username": "alice"}}),
                "model_request",
                Info,
            ),
            // Cloudflare AI Gateway.
            (
                "cloudflare prompt blocked",
                json!({"success": false,
                "error": [{"code": 2016, "message": "Prompt blocked due to security configurations"}]}),
                "security",
                Medium,
            ),
            (
                "cloudflare response blocked",
                json!({"success": false,
                "errors": [{"code": 2017, "message": "Response blocked due to security configurations"}]}),
                "security",
                Medium,
            ),
            (
                "cloudflare dlp block",
                json!({"provider": "openai", "model": "gpt-4o-mini", "dlp_action": "BLOCK"}),
                "security",
                Medium,
            ),
            (
                "cloudflare log",
                json!({"provider": "openai", "model": "gpt-4o-mini", "success": true, "cached": false,
                "tokens_in": 12, "tokens_out": 40}),
                "model_request",
                Info,
            ),
            // OpenTelemetry GenAI and ECS.
            (
                "otel gen_ai",
                json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}),
                "model_request",
                Info,
            ),
            (
                "ecs failed login",
                json!({"event": {"category": ["authentication"], "outcome": "failure", "action": "user_login"},
                "user": {"name": "bob"}}),
                "authentication",
                Medium,
            ),
            // Vellum's own action vocabulary, as the http receiver documents it.
            (
                "login.failed",
                json!({"action": "login.failed", "user_id": "u1", "ip": "10.0.0.7"}),
                "authentication",
                Medium,
            ),
            (
                "login with outcome",
                json!({"action": "login", "outcome": "failure", "user_id": "u1"}),
                "authentication",
                Medium,
            ),
            (
                "mfa.disabled",
                json!({"action": "mfa.disabled", "user_id": "u1"}),
                "authentication",
                High,
            ),
            (
                "key.rotated",
                json!({"action": "key.rotated", "key_id": "k1"}),
                "credential_change",
                Medium,
            ),
            (
                "api_key.created",
                json!({"action": "api_key.created"}),
                "credential_change",
                Medium,
            ),
            (
                "role.assigned",
                json!({"action": "role.assigned", "role": "admin"}),
                "authorization",
                High,
            ),
            (
                "user.role.updated",
                json!({"action": "user.role.updated"}),
                "authorization",
                High,
            ),
            (
                "permission.granted",
                json!({"action": "permission.granted"}),
                "authorization",
                High,
            ),
            (
                "budget.updated",
                json!({"action": "budget.updated", "max_budget": 500}),
                "configuration_change",
                Medium,
            ),
            (
                "rate_limit.changed",
                json!({"action": "rate_limit.changed"}),
                "configuration_change",
                Medium,
            ),
            (
                "guardrail.violation",
                json!({"action": "guardrail.violation", "guardrail": "toxicity"}),
                "security",
                Medium,
            ),
            (
                "prompt_injection.detected",
                json!({"action": "prompt_injection.detected"}),
                "security",
                High,
            ),
            (
                "jailbreak.detected",
                json!({"action": "jailbreak.detected"}),
                "security",
                High,
            ),
            (
                "pii.blocked",
                json!({"action": "pii.blocked"}),
                "security",
                Medium,
            ),
            (
                "audit_log.disabled",
                json!({"action": "audit_log.disabled"}),
                "security",
                Critical,
            ),
            (
                "model.invoke",
                json!({"action": "model.invoke", "model": "gpt-4o"}),
                "model_request",
                Info,
            ),
            (
                "logs.exported",
                json!({"action": "logs.exported"}),
                "data_access",
                Low,
            ),
            ("unknown", json!({"action": "heartbeat"}), "other", Info),
            ("empty", json!({}), "other", Info),
        ];
        let pack = builtin_pack().unwrap();
        let conditions: Vec<Condition> = pack
            .rules
            .iter()
            .map(|r| &r.when)
            .chain(pack.windows.iter().map(|w| &w.when))
            .map(|when| Condition::parse(when).unwrap())
            .collect();
        let mut failures = Vec::new();
        for (name, event, event_type, severity) in cases {
            // The attribute index only ever saves work: every answer is the plain one.
            let record = gateway_event(event.clone());
            let index = AttributeIndex::of(&record);
            for c in &conditions {
                assert_eq!(
                    c.eval_indexed(&record, index),
                    c.eval(&record),
                    "{name}: {c}"
                );
            }
            let got = classify_one(event);
            if got != (event_type.to_string(), severity) {
                failures.push(format!(
                    "{name}: expected {event_type}/{}, got {}/{}",
                    severity.as_str(),
                    got.0,
                    got.1.as_str()
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn severity_sets_the_otlp_number_and_keeps_severity_text() {
        let mut r = gateway_event(json!({"action": "role.assigned"}));
        r.severity_text = "NOTICE".into();
        r.severity_number = 10;
        let out = classify_with(&ClassifyConfig::default(), vec![r]);
        assert_eq!(out[0].severity, Some(Severity::High));
        assert_eq!(out[0].severity_number, 20);
        assert_eq!(out[0].severity_text, "NOTICE");
    }

    #[test]
    fn pii_blocked_records_keep_their_event_type_and_get_a_severity() {
        let mut r = Record::new("http/gateway");
        r.event_type = Some("pii_blocked".into());
        r.severity_number = 13;
        r.tags = vec!["pii_blocked".into()];
        let out = classify_with(&ClassifyConfig::default(), vec![r]);
        assert_eq!(out[0].event_type.as_deref(), Some("pii_blocked"));
        assert_eq!(out[0].severity, Some(Severity::Medium));
        assert_eq!(out[0].severity_number, 17);
    }

    #[test]
    fn what_the_source_set_is_kept_unless_overwrite() {
        let source_set = || {
            let mut r = gateway_event(json!({"action": "login.failed"}));
            r.event_type = Some("sso".into());
            r.severity = Some(Severity::Low);
            r
        };
        let out = classify_with(&ClassifyConfig::default(), vec![source_set()]);
        assert_eq!(
            (out[0].event_type.as_deref(), out[0].severity),
            (Some("sso"), Some(Severity::Low))
        );

        let overwrite = config("overwrite: true\nwindows: []");
        let out = classify_with(&overwrite, vec![source_set()]);
        assert_eq!(
            (out[0].event_type.as_deref(), out[0].severity),
            (Some("authentication"), Some(Severity::Medium))
        );

        // Only the missing severity is filled in, by the first rule that sets one.
        let mut typed = gateway_event(json!({"action": "login.failed"}));
        typed.event_type = Some("sso".into());
        let out = classify_with(&ClassifyConfig::default(), vec![typed]);
        assert_eq!(
            (out[0].event_type.as_deref(), out[0].severity),
            (Some("sso"), Some(Severity::Medium))
        );
    }

    #[test]
    fn extra_rules_come_first_and_first_match_wins() {
        let cfg = config(
            r#"
rules: builtin
extra_rules:
  - { name: model_invoke, when: "attributes.action == 'model.invoke'", event_type: model_request, severity: low }
  - { when: "attributes.action == 'login.failed' and attributes.user_id == 'svc-ci'", severity: info }
  - { when: "attributes.action == 'model.invoke'", event_type: never_reached, severity: critical }
default: { event_type: unclassified, severity: low }
"#,
        );
        let out = classify_with(
            &cfg,
            vec![
                gateway_event(json!({"action": "model.invoke"})),
                gateway_event(json!({"action": "login.failed", "user_id": "svc-ci"})),
                gateway_event(json!({"action": "login.failed", "user_id": "alice"})),
                gateway_event(json!({"action": "heartbeat"})),
            ],
        );
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.event_type.as_deref().unwrap(), r.severity.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("model_request", Severity::Low),
                // The deciding rule set no event_type: it comes from `default`.
                ("unclassified", Severity::Info),
                ("authentication", Severity::Medium),
                ("unclassified", Severity::Low),
            ]
        );
    }

    #[test]
    fn a_rule_with_nothing_left_to_set_is_passed_over() {
        let cfg = config(
            r#"
rules:
  - { when: "true", event_type: catch_all }
  - { when: "attributes.action == 'login.failed'", severity: medium }
windows: []
"#,
        );
        let mut typed = gateway_event(json!({"action": "login.failed"}));
        typed.event_type = Some("sso".into());
        let out = classify_with(
            &cfg,
            vec![typed, gateway_event(json!({"action": "login.failed"}))],
        );
        assert_eq!(
            (out[0].event_type.as_deref(), out[0].severity),
            (Some("sso"), Some(Severity::Medium)),
            "the catch-all only sets an event_type, which the record has"
        );
        assert_eq!(
            (out[1].event_type.as_deref(), out[1].severity),
            (Some("catch_all"), Some(Severity::Info)),
            "first match wins: the catch-all decides and the severity is the default"
        );
    }

    #[test]
    fn a_list_of_rules_replaces_the_pack() {
        let cfg = config(
            r#"
rules:
  - { when: "attributes.status >= 500", event_type: availability, severity: medium }
windows: []
"#,
        );
        let out = classify_with(
            &cfg,
            vec![
                gateway_event(json!({"status": 503})),
                gateway_event(json!({"action": "login.failed"})),
            ],
        );
        assert_eq!(out[0].event_type.as_deref(), Some("availability"));
        assert_eq!(out[1].event_type.as_deref(), Some("other"));
    }

    struct TestClock(Arc<AtomicU64>);

    impl TestClock {
        fn new() -> (TestClock, Clock) {
            let now = Arc::new(AtomicU64::new(0));
            let reader = now.clone();
            (
                TestClock(now),
                Arc::new(move || reader.load(Ordering::SeqCst)),
            )
        }
        fn set_seconds(&self, s: u64) {
            self.0.store(s * SECOND, Ordering::SeqCst);
        }
    }

    fn failed_login(user: &str) -> Record {
        gateway_event(json!({"action": "login.failed", "user_id": user}))
    }

    fn burst_config(max_keys: usize) -> ClassifyConfig {
        config(&format!(
            r#"
windows:
  - name: failed_login_burst
    when: "event_type == 'authentication' and severity >= medium"
    key: attributes.user_id
    threshold: 5
    within: 1m
    severity: high
max_tracked_keys: {max_keys}
"#
        ))
    }

    fn escalated(r: &Record) -> bool {
        r.tags.iter().any(|t| t == "failed_login_burst")
    }

    #[test]
    fn a_window_escalates_the_nth_event_within_the_period_and_the_ones_after() {
        let (clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(100), reader).unwrap();
        // Arrivals (seconds) and whether each should be escalated: 5 arrivals within 60 s.
        let script = [
            (0, false),
            (10, false),
            (20, false),
            (30, false),
            (40, true),
            (65, true),
            (125, false),
            (126, false),
        ];
        for (at, expected) in script {
            clock.set_seconds(at);
            let out = c.process(vec![failed_login("u1")]);
            assert_eq!(escalated(&out[0]), expected, "arrival at {at}s");
            let severity = if expected {
                Severity::High
            } else {
                Severity::Medium
            };
            assert_eq!(out[0].severity, Some(severity), "arrival at {at}s");
            assert_eq!(out[0].severity_number, severity.otlp_number());
        }
    }

    #[test]
    fn long_key_values_are_tracked_by_their_digest_in_bounded_space() {
        let (clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(100), reader).unwrap();
        let long = |fill: char| fill.to_string().repeat(1 << 20);
        // The same 1 MiB user five times within the minute is a burst; another 1 MiB
        // user that differs only in its last byte is counted apart.
        let mut other = long('a');
        other.pop();
        other.push('b');
        for at in 0..4 {
            clock.set_seconds(at);
            assert!(!escalated(&c.process(vec![failed_login(&long('a'))])[0]));
            assert!(!escalated(&c.process(vec![failed_login(&other)])[0]));
        }
        clock.set_seconds(4);
        assert!(escalated(&c.process(vec![failed_login(&long('a'))])[0]));
        // A 64-byte value is kept as it is; one byte more is kept as a digest.
        let at_limit = "u".repeat(MAX_KEY_BYTES);
        c.process(vec![failed_login(&at_limit), failed_login(&long('z'))]);
        let state = c.windows[0].state.lock().unwrap();
        let mut sizes: Vec<usize> = state.by_key.keys().map(|k| k.len()).collect();
        sizes.sort();
        assert_eq!(sizes, [33, 33, 33, 1 + MAX_KEY_BYTES]);
        assert!(state.by_key.contains_key(format!("v{at_limit}").as_bytes()));
    }

    #[test]
    fn a_window_that_could_outgrow_its_memory_bound_is_refused() {
        assert_eq!(window_bound(10_000, 5), 10_000 * (5 * 8 + 256));
        let refused = config(
            r#"
windows:
  - { name: slow_burn, when: "true", key: attributes.user_id, threshold: 10000, within: 1d }
max_tracked_keys: 10000
"#,
        );
        let problems = refused.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "windows[0].threshold");
        assert!(
            problems[0]
                .1
                .contains("may take 765 MiB; a window may take at most 256 MiB"),
            "{}",
            problems[0].1
        );
        let fits = config(
            r#"
windows:
  - { name: slow_burn, when: "true", key: attributes.user_id, threshold: 10000, within: 1d }
max_tracked_keys: 3000
"#,
        );
        assert_eq!(fits.problems(), Vec::<(String, String)>::new());
        assert_eq!(
            ClassifyConfig::default().problems(),
            Vec::<(String, String)>::new()
        );
    }

    #[test]
    fn arrivals_exactly_one_period_apart_are_not_within_it() {
        let (clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(100), reader).unwrap();
        for at in [0, 15, 30, 45] {
            clock.set_seconds(at);
            assert!(!escalated(&c.process(vec![failed_login("u1")])[0]));
        }
        clock.set_seconds(60);
        assert!(
            !escalated(&c.process(vec![failed_login("u1")])[0]),
            "0 s and 60 s span the full minute"
        );
        clock.set_seconds(61);
        assert!(
            escalated(&c.process(vec![failed_login("u1")])[0]),
            "15..61 s: five within the minute"
        );
    }

    #[test]
    fn keys_count_separately_and_records_without_the_key_do_not_count() {
        let (_clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(100), reader).unwrap();
        let mut batch = Vec::new();
        for _ in 0..4 {
            batch.push(failed_login("alice"));
            batch.push(failed_login("bob"));
            batch.push(gateway_event(json!({"action": "login.failed"})));
            batch.push(gateway_event(
                json!({"action": "login.failed", "user_id": ""}),
            ));
            batch.push(gateway_event(
                json!({"action": "login.succeeded", "user_id": "alice"}),
            ));
        }
        batch.push(failed_login("alice"));
        let out = c.process(batch);
        let tagged: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, r)| escalated(r))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(tagged, [20], "only alice's fifth failure");
    }

    #[test]
    fn within_one_batch_the_records_from_the_nth_on_are_escalated() {
        let (_clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(100), reader).unwrap();
        let out = c.process((0..7).map(|_| failed_login("u1")).collect());
        let flags: Vec<bool> = out.iter().map(escalated).collect();
        assert_eq!(flags, [false, false, false, false, true, true, true]);
    }

    #[test]
    fn escalation_raises_but_never_lowers_and_tags_once() {
        let (_clock, reader) = TestClock::new();
        let cfg = config(
            r#"
windows:
  - { name: noisy, when: "attributes.action exists", key: attributes.user_id, threshold: 1, within: 1s, severity: medium }
  - { name: noisy_again, when: "attributes.action exists", key: attributes.user_id, threshold: 1, within: 1s, tag: noisy }
"#,
        );
        let c = Classifier::with_clock("classify", &cfg, reader).unwrap();
        let out = c.process(vec![
            gateway_event(json!({"action": "role.assigned", "user_id": "u1"})),
            gateway_event(json!({"action": "heartbeat", "user_id": "u1"})),
        ]);
        assert_eq!(out[0].severity, Some(Severity::High), "high stays high");
        assert_eq!(out[1].severity, Some(Severity::Medium), "info is raised");
        assert_eq!(out[0].tags, ["noisy"]);
        assert_eq!(out[1].tags, ["noisy"]);
    }

    #[test]
    fn windows_sharing_a_condition_see_what_an_earlier_window_changed() {
        let (_clock, reader) = TestClock::new();
        let cfg = config(
            r#"
windows:
  - { name: first, when: "not tags contains 'first'", key: attributes.user_id, threshold: 1, within: 1m }
  - { name: second, when: "not tags contains 'first'", key: attributes.user_id, threshold: 1, within: 1m }
"#,
        );
        let c = Classifier::with_clock("classify", &cfg, reader).unwrap();
        assert_eq!(
            c.window_conditions.len(),
            1,
            "one condition, tested once per record"
        );
        let out = c.process(vec![gateway_event(json!({"user_id": "u1"}))]);
        assert_eq!(
            out[0].tags,
            ["first"],
            "the second window saw the tag the first one added"
        );
    }

    #[test]
    fn concurrent_batches_are_all_counted() {
        let (_clock, reader) = TestClock::new();
        let c = Arc::new(Classifier::with_clock("classify", &burst_config(100), reader).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| c.process((0..5).map(|_| failed_login("u1")).collect()))
                        .map(|out| out.iter().filter(|r| escalated(r)).count())
                        .sum::<usize>()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // 1000 failures at one instant: all but the first four complete a burst, whatever
        // the interleaving.
        assert_eq!(total, 1000 - 4);
    }

    #[test]
    fn the_least_recently_seen_key_is_evicted_and_starts_over() {
        let (clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(2), reader).unwrap();
        for at in 0..4 {
            clock.set_seconds(at);
            c.process(vec![failed_login("alice")]);
            c.process(vec![failed_login("bob")]);
        }
        // Carol makes a third key: alice, seen least recently, is forgotten.
        c.process(vec![failed_login("carol")]);
        clock.set_seconds(5);
        let out = c.process(vec![failed_login("bob"), failed_login("alice")]);
        assert!(escalated(&out[0]), "bob kept his four earlier failures");
        assert!(!escalated(&out[1]), "alice starts again from one");
    }

    #[test]
    fn a_window_key_may_name_several_paths_the_first_present_wins() {
        let (_clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &ClassifyConfig::default(), reader).unwrap();
        // OpenAI's login.failed carries the user under actor.session; the built-in window
        // finds it there.
        let openai = |ip: &str| {
            gateway_event(json!({"type": "login.failed", "actor": {"type": "session",
                "session": {"user": {"id": "user-abc"}, "ip_address": ip}}}))
        };
        let out = c.process((0..5).map(|i| openai(&format!("203.0.113.{i}"))).collect());
        assert_eq!(
            out.iter()
                .map(|r| r.tags.contains(&"failed_login_burst".to_string()))
                .collect::<Vec<_>>(),
            [false, false, false, false, true]
        );
        assert_eq!(out[4].severity, Some(Severity::High));
    }

    #[test]
    fn builtin_windows_catch_credential_stuffing_and_mass_deletion() {
        let (_clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &ClassifyConfig::default(), reader).unwrap();
        let stuffing: Vec<Record> = (0..20)
            .map(|i| gateway_event(json!({"action": "login.failed", "user_id": format!("victim-{i}"), "client_ip": "198.51.100.9"})))
            .collect();
        let out = c.process(stuffing);
        assert!(out[..19].iter().all(|r| r.tags.is_empty()));
        assert_eq!(out[19].tags, ["failed_login_burst_by_ip"]);

        let deletions: Vec<Record> = (0..5)
            .map(|i| {
                gateway_event(json!({"changed_by": "admin-7", "action": "deleted",
                "table_name": "LiteLLM_VerificationToken", "object_id": format!("k{i}")}))
            })
            .collect();
        let out = c.process(deletions);
        assert_eq!(out[4].tags, ["mass_credential_deletion"]);
        assert_eq!(out[4].severity, Some(Severity::Critical));
        assert_eq!(out[4].severity_number, 21);
        assert!(out[3].tags.is_empty());
    }

    #[test]
    fn window_memory_is_bounded_by_the_key_cap() {
        let (_clock, reader) = TestClock::new();
        let c = Classifier::with_clock("classify", &burst_config(50), reader).unwrap();
        for i in 0..1_000 {
            c.process(vec![failed_login(&format!("spray-{i}"))]);
        }
        let state = c.windows[0].state.lock().unwrap();
        assert_eq!(state.by_key.len(), 50);
        assert_eq!(state.slots.len(), 50);
        let has = |user: &str| state.by_key.contains_key(format!("v{user}").as_bytes());
        assert!(has("spray-999") && !has("spray-949"));
        // The recency list holds every slot once, newest first.
        let mut order = Vec::new();
        let mut at = state.newest;
        while at != NIL {
            order.push(String::from_utf8_lossy(&state.slots[at].key[1..]).into_owned());
            at = state.slots[at].older;
        }
        let expected: Vec<String> = (950..1_000).rev().map(|i| format!("spray-{i}")).collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn config_reads_the_documented_yaml() {
        let cfg = config(
            r#"
rules: builtin
extra_rules:
  - { when: "attributes.action == 'model.invoke'", event_type: model_request, severity: info }
default: { event_type: other, severity: info }
windows:
  - { name: failed_login_burst, when: "event_type == 'authentication' and attributes.outcome == 'failure'", key: attributes.user_id, threshold: 5, within: 1m, severity: high, tag: failed_login_burst }
max_tracked_keys: 10000
"#,
        );
        assert_eq!(cfg.rules, Pack::Builtin);
        let Pack::List(windows) = &cfg.windows else {
            panic!("windows: {:?}", cfg.windows)
        };
        assert_eq!(windows[0].within, Duration::from_secs(60));
        assert_eq!(windows[0].key, KeyPaths(vec!["attributes.user_id".into()]));
        assert!(cfg.problems().is_empty());
        assert!(Classifier::new("classify", &cfg).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_words_are_refused_by_serde() {
        let e = serde_saphyr::from_str::<ClassifyConfig>("rulez: builtin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rulez"), "{e}");
        let e = serde_saphyr::from_str::<ClassifyConfig>("rules: built-in")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected `builtin` or a list"), "{e}");
        let e = serde_saphyr::from_str::<ClassifyConfig>("default: { severity: severe }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a severity"), "{e}");
        let e = serde_saphyr::from_str::<ClassifyConfig>(
            "rules: [{ when: 'true', severity: high, colour: red }]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn problems_name_the_rule_the_field_and_the_column() {
        let cfg = config(
            r#"
rules:
  - { when: "attributes.a == 1", severity: high }
  - { when: "severity == 'bogus'", event_type: x }
  - { when: "attributes.a == 1" }
  - { when: "true", event_type: "Not Allowed" }
extra_rules:
  - { when: "usr == 'x'", severity: low }
windows:
  - { name: w, when: "true", key: "attributes.u", threshold: 0, within: 0s }
  - { name: w, when: "(", key: ["attributes.u", "bogus.path"], threshold: 10001, within: 1m, tag: "Bad Tag" }
max_tracked_keys: 0
"#,
        );
        let problems = cfg.problems();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "extra_rules[0].when",
                "rules[1].when",
                "rules[2]",
                "rules[3].event_type",
                "windows[0].threshold",
                "windows[0].within",
                "windows[1].name",
                "windows[1].threshold",
                "windows[1].tag",
                "windows[1].key[1]",
                "windows[1].when",
                "max_tracked_keys",
            ]
        );
        assert!(
            problems[1]
                .1
                .starts_with("column 13 of the condition: `bogus` is not a severity"),
            "{}",
            problems[1].1
        );
        assert!(
            problems[0].1.contains("attributes.usr"),
            "{}",
            problems[0].1
        );
        let e = Classifier::new("classify", &cfg).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.column),
            ("extra_rules[0].when", Some(1))
        );
    }

    #[test]
    fn builtin_failed_login_windows_count_what_the_login_failed_rule_matches() {
        let pack = builtin_pack().unwrap();
        let rule = pack
            .rules
            .iter()
            .find(|r| r.name.as_deref() == Some("login_failed"))
            .unwrap();
        // No quoted string in these conditions holds whitespace, so none is significant.
        let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        let expected = squash(&format!(
            "event_type == 'authentication' and ({})",
            rule.when
        ));
        for name in ["failed_login_burst", "failed_login_burst_by_ip"] {
            let window = pack.windows.iter().find(|w| w.name == name).unwrap();
            assert_eq!(
                squash(&window.when),
                expected,
                "{name} must test the login_failed rule's condition"
            );
        }
    }

    #[test]
    fn the_builtin_pack_loads_and_every_rule_is_reachable() {
        let pack = builtin_pack().unwrap();
        assert!(pack.rules.len() >= 15);
        let mut names = std::collections::BTreeSet::new();
        for rule in &pack.rules {
            let name = rule.name.as_deref().unwrap();
            assert!(names.insert(name), "duplicate rule name {name}");
            assert!(
                rule.event_type.is_some() && rule.severity.is_some(),
                "{name} sets both fields"
            );
        }
        assert!(ClassifyConfig::default().problems().is_empty());
    }
}
