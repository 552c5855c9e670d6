//! `redact`: finds personal data and secrets in records and neutralises them before
//! anything is sealed or exported.
//!
//! ```yaml
//! processors:
//!   redact/pii:
//!     policy: {default: redact, email: hash, private_key: block}   # or one word: redact | hash | block
//!     detectors: [email, phone, ssn, credit_card, iban, ipv4, ipv6, jwt, bearer_token,
//!                 aws_access_key, api_key, private_key, url_credentials]   # all when absent
//!     hash_key: ${env:PII_HASH_KEY}     # needed when any policy is `hash`; >= 32 bytes
//!     fields:
//!       always_redact: [attributes.password, attributes.authorization, body.api_key]
//!       never_scan:    [attributes.request_id]
//!       sensitive_keys: [employee_pin]  # key names added to the built-in list
//!     custom:
//!       - { name: employee_id, pattern: 'EMP-\d{6}', policy: hash }
//! ```
//!
//! **What is scanned.** Every string in `body` and `attributes`, at any depth in maps and
//! arrays, map keys included; integers as their decimal text (a card number sent as a JSON
//! number); strings that hold a JSON object or array are parsed, scanned inside and written
//! back (compactly, keys sorted, numbers beyond 64-bit integers as floats) when something
//! changed. `resource` and `scope` describe the
//! emitting service and are not scanned. Values nested deeper than 64 levels are replaced
//! by `[REDACTED:too_deep]`.
//!
//! **Keys matter.** A value under a sensitive key name (`password`, `api_key`,
//! `authorization`, `cookie`, `access_token`, … — the full rule is on
//! [`detectors::SensitiveKeys`]) or at an `always_redact` path is replaced whole, whatever
//! it looks like (null and booleans are kept); `name=value` / `name: value` pairs inside
//! text follow the same rule. These findings are counted as the detector `sensitive_key`,
//! which is always on. `never_scan` paths are left untouched; an `always_redact` path wins
//! over a `never_scan` one, and a `never_scan` path over a key name.
//!
//! **Policies.** `redact` writes `[REDACTED:<detector>]`. `hash` writes
//! `[<detector>:hmac:<h>]` where `h` is the first 16 hex digits of
//! HMAC-SHA256(hash_key, `<detector>` 0x00 `<canonical value>`); the canonical forms are
//! listed in [`detectors`], and for a `sensitive_key` value that is not a string it is the
//! value's compact JSON. `block` drops the record and emits in its place a record with
//! `event_type: "pii_blocked"`, WARN severity (13), the original's time, observed time,
//! source, resource, scope, trace and span ids and tags plus `pii_blocked`, and a body
//! ```json
//! {"message": "...", "processor": "redact/pii", "original_event_type": "llm.request",
//!  "blocked_by": ["ssn"],
//!  "findings": [{"field": "body.user.ssn", "detector": "ssn", "count": 1, "policy": "block"}]}
//! ```
//! (`findings` is capped at 100 entries, `findings_truncated: true` then; a finding in a
//! map key is reported at the map's path). `policy` may be one word or a map with
//! `default` and detector names (built-in, custom, `sensitive_key`); a custom detector may
//! instead carry its own `policy`. Unnamed detectors use `default`, itself `redact` when
//! absent. When findings overlap, the one that starts first (then the longest, then the
//! most specific detector) is replaced and the others are dropped.
//!
//! **Summary.** Each processed record gets `redaction`:
//! ```json
//! {"processors": ["redact/pii"], "total": 3,
//!  "findings": {"email": {"count": 2, "policy": "hash"}, "sensitive_key": {"count": 1, "policy": "redact"}}}
//! ```
//! A later `redact` processor appends its id and adds its counts. Values never appear in
//! the summary, the `pii_blocked` record, errors, logs or metric labels.
//!
//! **Metrics.** `vellum_redact_findings_total{component, detector}` and
//! `vellum_redact_blocked_total{component}`.
//!
//! **Cost.** Each detector has a trigger, a simple necessary condition of its findings.
//! All triggers, and the key words every sensitive key name holds, form one lazy DFA
//! that each text (string, key, integer) goes through once, byte by byte, collecting
//! which patterns matched: a text where none did costs that pass and nothing more; else
//! only the detectors whose triggers matched run in full, with their validation, and a
//! key's name is checked only when it holds a key word. Nothing is allocated for a text
//! without findings. Embedded JSON without escapes is parsed only when its raw text has
//! a finding.

pub mod config;
pub mod detectors;
mod validate;

use std::fmt::Write as _;
use std::ops::Range;

use hmac::{Hmac, Mac};
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache as LazyDfaCache, DFA as LazyDfa};
use regex_automata::util::pool::{Pool, PoolGuard};
use regex_automata::{Input, MatchKind, PatternSet, meta};
use serde_json::{Map, Value};
use sha2::Sha256;

pub use config::{
    CustomDetectorConfig, FieldsConfig, Policy, PolicyConfig, RedactConfig, RedactConfigError,
};
use detectors::{Builtin, SENSITIVE_TEXT_RANK, SensitiveKeys};

use crate::component::Processor;
use crate::event::Record;

/// The detector that key names and `always_redact` paths report as.
pub const SENSITIVE_KEY: &str = "sensitive_key";
/// `event_type` of the record that replaces a blocked one.
pub const PII_BLOCKED: &str = "pii_blocked";

const MAX_DEPTH: usize = 64;
const MAX_REPORTED_LOCATIONS: usize = 100;
const TOO_DEEP: &str = "too_deep";
const SEVERITY_WARN: i32 = 13;
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
/// Detectors are tracked as bits of a `u64`: 13 built-in, `sensitive_key` and these.
const MAX_CUSTOM_DETECTORS: usize = 50;
/// Custom patterns are user input; this bounds their compiled size.
const PATTERN_SIZE_LIMIT: usize = 16 << 20;
/// Room for the lazy DFAs' states: once warm, scanning builds none and costs a table
/// lookup per byte; a cache too small is cleared and rebuilt over and over.
const DFA_CACHE_LIMIT: usize = 16 << 20;

type HmacSha256 = Hmac<Sha256>;

/// The `redact` processor.
pub struct Redactor {
    id: String,
    /// In priority order: custom detectors, then built-ins by [`Builtin::rank`].
    detectors: Vec<Detector>,
    /// All detectors' triggers in one automaton; pattern `i` is `detectors[i]`'s. Says
    /// which detectors to run on one text when `triggers` cannot.
    prefilter: meta::Regex,
    /// The same triggers and the key words as one lazy DFA walked byte by byte: the fast
    /// way to the same answer. `None` when a custom pattern needs what a lazy DFA lacks.
    triggers: Option<Triggers>,
    sensitive_key: usize,
    keys: SensitiveKeys,
    fields: Vec<FieldPath>,
    hmac: Option<HmacSha256>,
    /// Whether no custom pattern is anchored, so that a text's matches are also matches in
    /// a larger text holding it: the raw text of embedded JSON.
    anchor_free: bool,
    /// Whether any policy is `block`: only then are finding locations kept, for the
    /// `pii_blocked` record.
    reports_locations: bool,
}

type CacheFactory = Box<dyn Fn() -> LazyDfaCache + Send + Sync>;

/// The lazy DFA of all triggers: pattern `i < key_word` is `detectors[i]`'s trigger,
/// pattern `key_word` the key words of [`SensitiveKeys`].
struct Triggers {
    dfa: LazyDfa,
    key_word: usize,
    /// The DFA's states are built as texts need them and kept in a cache, which must be
    /// reused across records and batches (a fresh one rebuilds them, at a cost of many
    /// records); the pool hands each thread one.
    caches: Pool<LazyDfaCache, CacheFactory>,
}

/// What the triggers say about one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Triggered {
    /// The detectors to run, as bits.
    detectors: u64,
    /// Whether a key word occurs, so that as a key name the text may be sensitive.
    key_word: bool,
}

/// A thread's trigger-pass state, taken from the pool on the first text of a batch and
/// given back when the batch is done.
struct TriggerCache<'r> {
    cache: PoolGuard<'r, LazyDfaCache, CacheFactory>,
    /// The start state, the same for every text (texts are searched whole, unanchored),
    /// and the cache's clear count it belongs to: a cleared cache invalidates it.
    start: Option<(LazyStateID, usize)>,
}

struct Detector {
    name: String,
    kind: DetectorKind,
    regex: meta::Regex,
    policy: Policy,
    marker: String,
}

/// A detector as configured, before its patterns are compiled.
struct DetectorSpec {
    name: String,
    kind: DetectorKind,
    pattern: String,
    /// A necessary condition of `pattern`'s accepted findings (see [`Builtin::trigger`]).
    trigger: String,
    own_policy: Option<Policy>,
    rank: u8,
}

#[derive(Clone, Copy)]
enum DetectorKind {
    Custom,
    Builtin(Builtin),
    SensitiveText,
}

/// Where a detector found something in a text passed to [`Redactor::scan_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'r> {
    pub detector: &'r str,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldRule {
    AlwaysRedact,
    NeverScan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Body,
    Attributes,
}

struct FieldPath {
    root: Root,
    /// The path below the root; empty for `body` itself.
    rest: String,
    rule: FieldRule,
}

/// A configured path partly walked: what remains below the current value.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    rest: &'a str,
    rule: FieldRule,
}

/// The configured paths where a walk starts.
struct RootCursors<'a> {
    attributes: Vec<Cursor<'a>>,
    /// The rule for `body` itself.
    body_rule: Option<FieldRule>,
    body: Vec<Cursor<'a>>,
}

/// Per-record scanning state, reused across a batch.
#[derive(Default)]
struct Scan<'r> {
    trigger_cache: Option<TriggerCache<'r>>,
    /// Built on the batch's first record.
    roots: Option<RootCursors<'r>>,
    /// Findings per detector, sized on the first finding.
    counts: Vec<u32>,
    too_deep: u32,
    blocked: bool,
    replacements: usize,
    locations: Vec<Location>,
    /// Dotted path of the value being scanned, for `pii_blocked` reports; kept only when
    /// the processor reports locations.
    path: String,
    /// An integer's decimal text, written here so that scanning it allocates nothing.
    digits: String,
    key_memo: KeyMemo,
    find_buffers: FindBuffers,
    /// Which detectors' triggers matched the text being scanned, when `triggers` is `None`.
    triggered: Option<PatternSet>,
}

/// What finding in one text needs, kept from text to text so that it allocates once.
#[derive(Default)]
struct FindBuffers {
    /// Accepted findings and their detectors.
    found: Vec<(Range<usize>, usize)>,
    /// One candidate's accepted spans.
    spans: Vec<Range<usize>>,
}

/// Key names repeat from record to record (a source sends one schema), and most hold
/// nothing to redact: that a key found nothing, and whether its name is sensitive, is
/// kept for the rest of the batch, so that each distinct key is scanned about once.
/// Direct-mapped by a hash of the key: a slot holds the last key that fell in it.
#[derive(Default)]
struct KeyMemo {
    /// `KEY_MEMO_SLOTS` once used: a key and whether it is sensitive.
    slots: Vec<Option<(String, bool)>>,
}

/// A power of two (see [`KeyMemo::slot`]).
const KEY_MEMO_SLOTS: usize = 256;
/// Longer keys are scanned each time, which bounds the memo's size.
const KEY_MEMO_MAX_LEN: usize = 64;

impl KeyMemo {
    /// The length and the first and last eight bytes, mixed: they tell apart most keys
    /// of a schema (`gen_ai.request.model`, `gen_ai.usage.input_tokens`) at a cost that
    /// does not grow with the key. Keys that share a slot are only scanned more often.
    fn slot(key: &str) -> usize {
        let bytes = key.as_bytes();
        let word = |part: &[u8]| {
            let mut word = [0u8; 8];
            word[..part.len()].copy_from_slice(part);
            u64::from_le_bytes(word)
        };
        let head = word(&bytes[..bytes.len().min(8)]);
        let tail = word(&bytes[bytes.len().saturating_sub(8)..]);
        let mixed =
            (head ^ tail.rotate_left(29) ^ bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The top bits are the best mixed.
        (mixed >> (u64::BITS - KEY_MEMO_SLOTS.trailing_zeros())) as usize
    }

    /// Whether `key` is sensitive, when it was remembered as holding nothing to redact.
    fn recall(&self, key: &str) -> Option<bool> {
        if self.slots.is_empty() || key.len() > KEY_MEMO_MAX_LEN {
            return None;
        }
        match &self.slots[Self::slot(key)] {
            Some((remembered, sensitive)) if remembered == key => Some(*sensitive),
            _ => None,
        }
    }

    /// Notes that `key` holds nothing to redact.
    fn remember(&mut self, key: &str, sensitive: bool) {
        if key.len() > KEY_MEMO_MAX_LEN {
            return;
        }
        if self.slots.is_empty() {
            self.slots.resize(KEY_MEMO_SLOTS, None);
        }
        let slot = &mut self.slots[Self::slot(key)];
        match slot {
            Some((remembered, was_sensitive)) => {
                remembered.clear();
                remembered.push_str(key);
                *was_sensitive = sensitive;
            }
            None => *slot = Some((key.to_string(), sensitive)),
        }
    }
}

struct Location {
    field: String,
    detector: usize,
    count: u32,
}

impl Scan<'_> {
    fn reset(&mut self) {
        self.counts.clear();
        self.too_deep = 0;
        self.blocked = false;
        self.replacements = 0;
        self.locations.clear();
        self.path.clear();
    }

    fn record(&mut self, detector: usize, detectors: usize, with_location: bool) {
        if self.counts.is_empty() {
            self.counts.resize(detectors, 0);
        }
        self.counts[detector] += 1;
        self.replacements += 1;
        if !with_location {
            return;
        }
        match self.locations.last_mut() {
            Some(last) if last.detector == detector && last.field == self.path => last.count += 1,
            _ => self.locations.push(Location {
                field: self.path.clone(),
                detector,
                count: 1,
            }),
        }
    }
}

impl Redactor {
    pub fn new(id: &str, cfg: &RedactConfig) -> Result<Redactor, RedactConfigError> {
        let err_id = || id.to_string();
        let mut specs: Vec<DetectorSpec> = Vec::new();

        if cfg.custom.len() > MAX_CUSTOM_DETECTORS {
            return Err(RedactConfigError::TooManyCustomDetectors {
                id: err_id(),
                max: MAX_CUSTOM_DETECTORS,
            });
        }
        for custom in &cfg.custom {
            let valid_name = custom.name.starts_with(|c: char| c.is_ascii_lowercase())
                && custom
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && Builtin::from_name(&custom.name).is_none()
                && ![SENSITIVE_KEY, TOO_DEEP, "default"].contains(&custom.name.as_str())
                && !specs.iter().any(|s| s.name == custom.name);
            if !valid_name {
                return Err(RedactConfigError::InvalidCustomName {
                    id: err_id(),
                    name: custom.name.clone(),
                });
            }
            specs.push(DetectorSpec {
                name: custom.name.clone(),
                kind: DetectorKind::Custom,
                pattern: custom.pattern.clone(),
                trigger: custom.pattern.clone(),
                own_policy: custom.policy,
                rank: 0,
            });
        }

        let enabled: Vec<Builtin> = match &cfg.detectors {
            None => Builtin::ALL.to_vec(),
            Some(names) => {
                let mut enabled = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    if names[..i].contains(name) {
                        return Err(RedactConfigError::DuplicateDetector {
                            id: err_id(),
                            name: name.clone(),
                        });
                    }
                    match Builtin::from_name(name) {
                        Some(b) => enabled.push(b),
                        // Always on; naming them does no harm.
                        None if name == SENSITIVE_KEY
                            || cfg.custom.iter().any(|c| &c.name == name) => {}
                        None => {
                            let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
                            return Err(RedactConfigError::UnknownDetector {
                                id: err_id(),
                                name: name.clone(),
                                known: known.join(", "),
                            });
                        }
                    }
                }
                enabled
            }
        };

        if cfg
            .fields
            .sensitive_keys
            .iter()
            .any(|k| k.trim().is_empty())
        {
            return Err(RedactConfigError::EmptySensitiveKey { id: err_id() });
        }
        let keys = SensitiveKeys::new(&cfg.fields.sensitive_keys).map_err(|e| {
            RedactConfigError::Prefilter {
                id: err_id(),
                reason: e.to_string(),
            }
        })?;

        let mut builtins: Vec<DetectorSpec> = enabled
            .iter()
            .map(|b| DetectorSpec {
                name: b.name().to_string(),
                kind: DetectorKind::Builtin(*b),
                pattern: b.pattern().to_string(),
                trigger: b.trigger().to_string(),
                own_policy: None,
                rank: b.rank(),
            })
            .collect();
        builtins.push(DetectorSpec {
            name: SENSITIVE_KEY.to_string(),
            kind: DetectorKind::SensitiveText,
            pattern: keys.text_pattern(),
            trigger: keys.text_trigger(),
            own_policy: None,
            rank: SENSITIVE_TEXT_RANK,
        });
        builtins.sort_by_key(|s| s.rank);
        specs.extend(builtins);

        let policies = resolve_policies(id, &cfg.policy, &specs)?;

        let hash_users: Vec<&str> = specs
            .iter()
            .zip(&policies)
            .filter(|(_, p)| **p == Policy::Hash)
            .map(|(s, _)| s.name.as_str())
            .collect();
        let hmac = match &cfg.hash_key {
            Some(configured) => {
                let key =
                    crate::evidence::key::key_bytes(configured.expose()).map_err(|reason| {
                        RedactConfigError::InvalidHashKey {
                            id: err_id(),
                            reason,
                        }
                    })?;
                Some(HmacSha256::new_from_slice(&key).map_err(|e| {
                    RedactConfigError::InvalidHashKey {
                        id: err_id(),
                        reason: e.to_string(),
                    }
                })?)
            }
            None if !hash_users.is_empty() => {
                return Err(RedactConfigError::MissingHashKey {
                    id: err_id(),
                    detectors: hash_users.join(", "),
                });
            }
            None => None,
        };

        let mut detectors = Vec::with_capacity(specs.len());
        let mut triggers = Vec::with_capacity(specs.len());
        for (
            DetectorSpec {
                name,
                kind,
                pattern,
                trigger,
                ..
            },
            policy,
        ) in specs.into_iter().zip(policies)
        {
            // Literal prefilters pay off for patterns that start with rare text (`eyJ`,
            // `-----BEGIN`, `@` inside); for digit shapes the plain lazy DFA is faster.
            let literal_prefilter = match kind {
                DetectorKind::Builtin(b) => b.has_rare_literal(),
                DetectorKind::Custom => true,
                DetectorKind::SensitiveText => false,
            };
            let regex = meta::Regex::builder()
                .configure(regex_config().auto_prefilter(literal_prefilter))
                .build(&pattern)
                .map_err(|e| RedactConfigError::InvalidPattern {
                    id: err_id(),
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            if regex.is_match("") {
                return Err(RedactConfigError::EmptyMatch { id: err_id(), name });
            }
            let marker = format!("[REDACTED:{name}]");
            triggers.push(trigger);
            detectors.push(Detector {
                name,
                kind,
                regex,
                policy,
                marker,
            });
        }
        let prefilter = meta::Regex::builder()
            .configure(
                regex_config()
                    .auto_prefilter(false)
                    .match_kind(MatchKind::All)
                    .nfa_size_limit(Some(PATTERN_SIZE_LIMIT * 4))
                    .hybrid_cache_capacity(DFA_CACHE_LIMIT * 4),
            )
            .build_many(&triggers)
            .map_err(|e| RedactConfigError::Prefilter {
                id: err_id(),
                reason: e.to_string(),
            })?;
        let sensitive_key = detectors
            .iter()
            .position(|d| matches!(d.kind, DetectorKind::SensitiveText))
            .unwrap_or_default();
        let anchor_free = !cfg.custom.iter().any(|c| {
            c.pattern.contains(['^', '$']) || c.pattern.contains("\\A") || c.pattern.contains("\\z")
        });
        let key_word = triggers.len();
        triggers.push(keys.words_pattern());
        // Without it each text goes through `prefilter`: slower, same findings. A custom
        // pattern with a Unicode `\b` still gets it: the DFA then gives up on non-ASCII
        // texts, which take that slower way.
        let triggers = Triggers::new(&triggers, key_word, DFA_CACHE_LIMIT * 4);

        Ok(Redactor {
            id: id.to_string(),
            prefilter,
            sensitive_key,
            keys,
            fields: parse_field_paths(id, &cfg.fields)?,
            hmac,
            triggers,
            anchor_free,
            reports_locations: detectors.iter().any(|d| d.policy == Policy::Block),
            detectors,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Redacts one record. Returns it with findings replaced and `redaction` set, or, when
    /// a finding's policy is `block`, the `pii_blocked` record that takes its place.
    pub fn redact(&self, record: Record) -> Record {
        self.redact_with(record, &mut Scan::default())
    }

    /// Where the detectors find something in one text, merged as they would be replaced.
    /// Key-name rules apply to record fields only and are not part of this.
    pub fn scan_text(&self, text: &str) -> Vec<Finding<'_>> {
        self.find(text)
            .into_iter()
            .map(|(span, i)| Finding {
                detector: &self.detectors[i].name,
                span,
            })
            .collect()
    }

    fn redact_with<'r>(&'r self, mut record: Record, cx: &mut Scan<'r>) -> Record {
        cx.reset();
        self.walk(&mut record, cx);
        let summary = self.summary(cx, record.redaction.take());
        if cx.blocked {
            return self.blocked_record(record, cx, summary);
        }
        record.redaction = Some(summary);
        record
    }

    /// Scans attributes and body.
    fn walk<'r>(&'r self, record: &mut Record, cx: &mut Scan<'r>) {
        let roots = cx.roots.take().unwrap_or_else(|| self.root_cursors());
        if self.reports_locations {
            cx.path.push_str("attributes");
        }
        self.scan_map(&mut record.attributes, &roots.attributes, cx, 1);

        cx.path.clear();
        if self.reports_locations {
            cx.path.push_str("body");
        }
        self.scan_field(&mut record.body, roots.body_rule, false, &roots.body, cx, 1);
        cx.roots = Some(roots);
    }

    fn root_cursors(&self) -> RootCursors<'_> {
        let mut roots = RootCursors {
            attributes: Vec::new(),
            body_rule: None,
            body: Vec::new(),
        };
        for f in &self.fields {
            let cursor = Cursor {
                rest: &f.rest,
                rule: f.rule,
            };
            match f.root {
                Root::Attributes => roots.attributes.push(cursor),
                Root::Body if f.rest.is_empty() => {
                    roots.body_rule = strongest(roots.body_rule, f.rule)
                }
                Root::Body => roots.body.push(cursor),
            }
        }
        roots
    }

    fn scan_field<'r>(
        &'r self,
        value: &mut Value,
        rule: Option<FieldRule>,
        sensitive_key: bool,
        cursors: &[Cursor<'_>],
        cx: &mut Scan<'r>,
        depth: usize,
    ) {
        match rule {
            Some(FieldRule::AlwaysRedact) => self.replace_whole(value, cx),
            Some(FieldRule::NeverScan) => {}
            None if sensitive_key => self.replace_whole(value, cx),
            None => self.scan_value(value, cursors, cx, depth),
        }
    }

    fn scan_value<'r>(
        &'r self,
        value: &mut Value,
        cursors: &[Cursor<'_>],
        cx: &mut Scan<'r>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            if !matches!(value, Value::Null | Value::Bool(_)) {
                *value = Value::String(format!("[REDACTED:{TOO_DEEP}]"));
                cx.too_deep += 1;
                cx.replacements += 1;
            }
            return;
        }
        match value {
            Value::Object(map) => self.scan_map(map, cursors, cx, depth),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let (rule, children) = if cursors.is_empty() {
                        (None, Vec::new())
                    } else {
                        step(cursors, &i.to_string())
                    };
                    let parent = cx.path.len();
                    if self.reports_locations {
                        let _ = write!(cx.path, ".{i}");
                    }
                    self.scan_field(item, rule, false, &children, cx, depth + 1);
                    cx.path.truncate(parent);
                }
            }
            Value::String(text) => {
                if let Some(redacted) = self.scan_string(text, cursors, cx, depth) {
                    *text = redacted;
                }
            }
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                let mut digits = std::mem::take(&mut cx.digits);
                digits.clear();
                let _ = write!(digits, "{n}");
                if let Some(redacted) = self.redact_text(&digits, cx) {
                    *value = Value::String(redacted);
                }
                cx.digits = digits;
            }
            _ => {}
        }
    }

    fn scan_map<'r>(
        &'r self,
        map: &mut Map<String, Value>,
        cursors: &[Cursor<'_>],
        cx: &mut Scan<'r>,
        depth: usize,
    ) {
        let mut renamed: Vec<(String, String)> = Vec::new();
        for (key, value) in map.iter_mut() {
            let (rule, children) = step(cursors, key);
            let (new_key, sensitive) = if rule == Some(FieldRule::NeverScan) {
                (None, false)
            } else if let Some(sensitive) = cx.key_memo.recall(key) {
                (None, sensitive)
            } else {
                let triggered = self.triggered(key, cx);
                let new_key = self.redact_triggered(key, triggered.detectors, cx);
                // Every sensitive name holds a key word, which the trigger pass looked for.
                let sensitive = triggered.key_word && self.keys.is_sensitive(key);
                if triggered.detectors == 0 {
                    cx.key_memo.remember(key, sensitive);
                }
                (new_key, sensitive)
            };
            // Path rules win over the key's name.
            let sensitive = sensitive && rule.is_none();
            let parent = cx.path.len();
            if self.reports_locations {
                cx.path.push('.');
                cx.path.push_str(new_key.as_deref().unwrap_or(key));
            }
            self.scan_field(value, rule, sensitive, &children, cx, depth + 1);
            cx.path.truncate(parent);
            if let Some(new_key) = new_key {
                renamed.push((key.clone(), new_key));
            }
        }
        for (old, new) in renamed {
            if let Some(value) = map.remove(&old) {
                let mut key = new.clone();
                let mut n = 2;
                while map.contains_key(&key) {
                    key = format!("{new}#{n}");
                    n += 1;
                }
                map.insert(key, value);
            }
        }
    }

    /// A string: JSON inside it is scanned as JSON, anything else as text.
    fn scan_string<'r>(
        &'r self,
        text: &str,
        cursors: &[Cursor<'_>],
        cx: &mut Scan<'r>,
        depth: usize,
    ) -> Option<String> {
        let triggered = self.triggered(text, cx).detectors;
        if !looks_like_json(text) {
            return self.redact_triggered(text, triggered, cx);
        }
        // Without escapes every string inside is verbatim in the raw text, so a raw text
        // with no finding (key-name pairs included) has none once parsed either.
        let may_skip = self.anchor_free && cursors.is_empty() && !text.contains('\\');
        if may_skip && (triggered == 0 || !self.finds_any(text, triggered, cx)) {
            return None;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(mut inner) if inner.is_object() || inner.is_array() => {
                let before = cx.replacements;
                self.scan_value(&mut inner, cursors, cx, depth + 1);
                if cx.replacements == before {
                    return None;
                }
                Some(serde_json::to_string(&inner).unwrap_or_else(|_| {
                    // Serialising a Value cannot fail; should it ever, nothing leaks.
                    format!("[REDACTED:{SENSITIVE_KEY}]")
                }))
            }
            _ => self.redact_triggered(text, triggered, cx),
        }
    }

    fn redact_text<'r>(&'r self, text: &str, cx: &mut Scan<'r>) -> Option<String> {
        let triggered = self.triggered(text, cx).detectors;
        self.redact_triggered(text, triggered, cx)
    }

    fn redact_triggered(&self, text: &str, triggered: u64, cx: &mut Scan<'_>) -> Option<String> {
        if triggered == 0 {
            return None;
        }
        let mut buffers = std::mem::take(&mut cx.find_buffers);
        self.find_into(text, triggered, &mut buffers);
        let redacted = self.replace_findings(text, &buffers.found, cx);
        cx.find_buffers = buffers;
        redacted
    }

    fn finds_any(&self, text: &str, triggered: u64, cx: &mut Scan<'_>) -> bool {
        self.find_into(text, triggered, &mut cx.find_buffers);
        !cx.find_buffers.found.is_empty()
    }

    /// What the triggers say about `text`: from one pass of the trigger DFA, else (no DFA,
    /// or it gave up on this text) from `prefilter`, which cannot tell key words.
    fn triggered<'r>(&'r self, text: &str, cx: &mut Scan<'r>) -> Triggered {
        if let Some(triggers) = &self.triggers {
            let trigger_cache = cx.trigger_cache.get_or_insert_with(|| TriggerCache {
                cache: triggers.caches.get(),
                start: None,
            });
            if let Some(triggered) = triggers.scan(text.as_bytes(), trigger_cache) {
                return triggered;
            }
        }
        let set = cx
            .triggered
            .get_or_insert_with(|| PatternSet::new(self.detectors.len()));
        set.clear();
        if self.prefilter.is_match(text) {
            self.prefilter
                .which_overlapping_matches(&Input::new(text), set);
        }
        Triggered {
            detectors: set.iter().fold(0, |mask, p| mask | 1 << p.as_usize()),
            key_word: true,
        }
    }

    fn replace_findings(
        &self,
        text: &str,
        findings: &[(Range<usize>, usize)],
        cx: &mut Scan<'_>,
    ) -> Option<String> {
        if findings.is_empty() {
            return None;
        }
        let replaced: usize = findings.iter().map(|(span, _)| span.len()).sum();
        let replacements: usize = findings.iter().map(|(_, d)| self.replacement_len(*d)).sum();
        let mut out = String::with_capacity(text.len() - replaced + replacements);
        let mut copied = 0;
        for (span, detector) in findings {
            out.push_str(&text[copied..span.start]);
            self.write_replacement(&mut out, *detector, &text[span.clone()], cx);
            copied = span.end;
        }
        out.push_str(&text[copied..]);
        Some(out)
    }

    /// Replaces a value under a sensitive key or at an `always_redact` path.
    fn replace_whole(&self, value: &mut Value, cx: &mut Scan<'_>) {
        let text = match value {
            Value::Null | Value::Bool(_) => return,
            Value::String(s) if s.is_empty() => return,
            Value::String(s) => std::mem::take(s),
            ref other => other.to_string(),
        };
        let mut out = String::new();
        self.write_replacement(&mut out, self.sensitive_key, &text, cx);
        *value = Value::String(out);
    }

    /// The length of what [`Self::write_replacement`] writes for `detector`.
    fn replacement_len(&self, detector: usize) -> usize {
        let d = &self.detectors[detector];
        match (d.policy, &self.hmac) {
            // `[<name>:hmac:<16 hex>]`
            (Policy::Hash, Some(_)) => d.name.len() + 24,
            _ => d.marker.len(),
        }
    }

    /// Writes the marker or keyed token that stands for `value`, and counts the finding.
    fn write_replacement(&self, out: &mut String, detector: usize, value: &str, cx: &mut Scan<'_>) {
        let d = &self.detectors[detector];
        cx.record(detector, self.detectors.len(), self.reports_locations);
        match (d.policy, &self.hmac) {
            (Policy::Hash, Some(hmac)) => {
                let canonical = match d.kind {
                    DetectorKind::Builtin(b) => b.canonical(value),
                    _ => value.into(),
                };
                let mut mac = hmac.clone();
                mac.update(d.name.as_bytes());
                mac.update(&[0]);
                mac.update(canonical.as_bytes());
                let tag = mac.finalize().into_bytes();
                out.push('[');
                out.push_str(&d.name);
                out.push_str(":hmac:");
                for byte in &tag[..8] {
                    out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
                    out.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
                }
                out.push(']');
            }
            (Policy::Block, _) => {
                cx.blocked = true;
                out.push_str(&d.marker);
            }
            _ => out.push_str(&d.marker),
        }
    }

    /// Accepted findings in `text`, sorted, without overlaps.
    fn find(&self, text: &str) -> Vec<(Range<usize>, usize)> {
        let triggered = self.triggered(text, &mut Scan::default());
        self.find_with(text, triggered.detectors)
    }

    /// What [`Self::find`] does once the triggers have chosen the detectors (bits).
    fn find_with(&self, text: &str, detectors: u64) -> Vec<(Range<usize>, usize)> {
        let mut buffers = FindBuffers::default();
        self.find_into(text, detectors, &mut buffers);
        buffers.found
    }

    /// [`Self::find_with`] into `buffers.found`.
    fn find_into(&self, text: &str, detectors: u64, buffers: &mut FindBuffers) {
        let FindBuffers { found, spans } = buffers;
        found.clear();
        let mut remaining = detectors;
        while remaining != 0 {
            let i = remaining.trailing_zeros() as usize;
            remaining &= remaining - 1;
            let Some(detector) = self.detectors.get(i) else {
                break;
            };
            for m in detector.regex.find_iter(text) {
                match detector.kind {
                    DetectorKind::Builtin(b) => b.accept(text, m.range(), spans),
                    DetectorKind::SensitiveText => {
                        spans.extend(self.keys.accept_text(text, m.range()))
                    }
                    DetectorKind::Custom => spans.push(m.range()),
                }
                found.extend(spans.drain(..).filter(|s| !s.is_empty()).map(|s| (s, i)));
            }
        }
        found.sort_unstable_by_key(|(span, detector)| {
            (span.start, std::cmp::Reverse(span.end), *detector)
        });
        // A finding that overlaps an earlier kept one is dropped: part of its value is
        // replaced already, so it cannot survive whole, and `pw@host` in `user:pw@host` is
        // no email.
        found.dedup_by(|later, kept| later.0.start < kept.0.end);
    }

    fn summary(&self, cx: &Scan, previous: Option<Value>) -> Value {
        let mut summary = match previous {
            Some(Value::Object(mut m)) if m.get("findings").is_some_and(Value::is_object) => {
                match m.get_mut("processors") {
                    Some(Value::Array(ids)) => ids.push(Value::String(self.id.clone())),
                    _ => {
                        m.insert(
                            "processors".into(),
                            Value::Array(vec![Value::String(self.id.clone())]),
                        );
                    }
                }
                m
            }
            _ => {
                let mut fresh = Map::new();
                fresh.insert(
                    "processors".into(),
                    Value::Array(vec![Value::String(self.id.clone())]),
                );
                fresh.insert("findings".into(), Value::Object(Map::new()));
                fresh
            }
        };
        let counted = cx
            .counts
            .iter()
            .enumerate()
            .map(|(i, n)| (i, u64::from(*n)))
            .chain(std::iter::once((usize::MAX, u64::from(cx.too_deep))))
            .filter(|(_, n)| *n > 0);
        let mut total = 0;
        if let Some(Value::Object(findings)) = summary.get_mut("findings") {
            for (detector, count) in counted {
                let (name, policy) = match self.detectors.get(detector) {
                    Some(d) => (d.name.as_str(), d.policy),
                    None => (TOO_DEEP, Policy::Redact),
                };
                let before = findings
                    .get(name)
                    .and_then(|f| f.get("count"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let mut entry = Map::new();
                entry.insert("count".into(), Value::from(before + count));
                entry.insert("policy".into(), Value::String(policy.as_str().into()));
                findings.insert(name.to_string(), Value::Object(entry));
            }
            total = findings
                .values()
                .filter_map(|f| f.get("count").and_then(Value::as_u64))
                .sum();
        }
        summary.insert("total".into(), Value::from(total));
        Value::Object(summary)
    }

    fn blocked_record(&self, original: Record, cx: &Scan, summary: Value) -> Record {
        let blocked_by: Vec<Value> = cx
            .counts
            .iter()
            .zip(&self.detectors)
            .filter(|(n, d)| **n > 0 && d.policy == Policy::Block)
            .map(|(_, d)| Value::String(d.name.clone()))
            .collect();
        let findings: Vec<Value> = cx
            .locations
            .iter()
            .take(MAX_REPORTED_LOCATIONS)
            .map(|l| {
                let d = &self.detectors[l.detector];
                let mut f = Map::new();
                f.insert("field".into(), Value::String(l.field.clone()));
                f.insert("detector".into(), Value::String(d.name.clone()));
                f.insert("count".into(), Value::from(l.count));
                f.insert("policy".into(), Value::String(d.policy.as_str().into()));
                Value::Object(f)
            })
            .collect();
        let mut body = Map::new();
        body.insert(
            "message".into(),
            Value::String(format!(
                "record blocked by redact processor `{}`: it holds data whose policy is `block`",
                self.id
            )),
        );
        body.insert("processor".into(), Value::String(self.id.clone()));
        if let Some(t) = &original.event_type {
            body.insert("original_event_type".into(), Value::String(t.clone()));
        }
        body.insert("blocked_by".into(), Value::Array(blocked_by));
        body.insert("findings".into(), Value::Array(findings));
        if cx.locations.len() > MAX_REPORTED_LOCATIONS {
            body.insert("findings_truncated".into(), Value::Bool(true));
        }
        let mut tags = original.tags;
        if !tags.iter().any(|t| t == PII_BLOCKED) {
            tags.push(PII_BLOCKED.to_string());
        }
        Record {
            time_unix_nano: original.time_unix_nano,
            observed_time_unix_nano: original.observed_time_unix_nano,
            severity_number: SEVERITY_WARN,
            severity_text: "WARN".into(),
            severity: None,
            event_type: Some(PII_BLOCKED.into()),
            body: Value::Object(body),
            attributes: Map::new(),
            resource: original.resource,
            scope: original.scope,
            trace_id: original.trace_id,
            span_id: original.span_id,
            source: original.source,
            redaction: Some(summary),
            tags,
        }
    }
}

impl Triggers {
    fn new(patterns: &[String], key_word: usize, cache_capacity: usize) -> Option<Triggers> {
        let dfa = LazyDfa::builder()
            .configure(
                LazyDfa::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(cache_capacity)
                    // A cache below what the DFA needs is raised to that (tests use it).
                    .skip_cache_capacity_check(true),
            )
            .build_many(patterns)
            .ok()?;
        let for_caches = dfa.clone();
        let factory: CacheFactory = Box::new(move || for_caches.create_cache());
        Some(Triggers {
            dfa,
            key_word,
            caches: Pool::new(factory),
        })
    }

    /// Runs the DFA over `text` once and notes every pattern that matched somewhere in it;
    /// `None` when the DFA gave up on it (a quit byte: non-ASCII under a Unicode `\b`).
    ///
    /// This walks the lazy DFA's transitions by hand rather than through an overlapping
    /// search: that search returns to its caller at every match and checks more per byte,
    /// and all that is needed here is the set of patterns, which one loop over the bytes
    /// collects at a few instructions a byte.
    fn scan(&self, text: &[u8], trigger_cache: &mut TriggerCache<'_>) -> Option<Triggered> {
        let cache = &mut *trigger_cache.cache;
        let mut sid = match trigger_cache.start {
            Some((start, clears)) if clears == cache.clear_count() => start,
            _ => {
                let start = self
                    .dfa
                    .start_state_forward(cache, &Input::new(text))
                    .ok()?;
                trigger_cache.start = Some((start, cache.clear_count()));
                start
            }
        };
        let mut found = Triggered {
            detectors: 0,
            key_word: false,
        };
        // Runs of digits pass through one match state again and again: its patterns are
        // noted once. A state's id names it only until the cache is cleared.
        let mut noted = None;
        let mut at = 0;
        while at < text.len() {
            if !sid.is_tagged() {
                let (reached, consumed) = self.follow_built(cache, sid, &text[at..]);
                sid = reached;
                at += consumed;
                if at == text.len() {
                    break;
                }
            }
            // A tagged state or transition: a match, a transition not built yet, quit or
            // dead. The checked step builds what is missing.
            sid = self.dfa.next_state(cache, sid, text[at]).ok()?;
            at += 1;
            if sid.is_match() {
                let this = Some((sid, cache.clear_count()));
                if noted != this {
                    self.note_matches(cache, sid, &mut found);
                    noted = this;
                }
            } else if sid.is_quit() {
                return None;
            } else if sid.is_dead() {
                return Some(found);
            }
        }
        // Matches show one byte late: those ending with the text appear on its end.
        sid = self.dfa.next_eoi_state(cache, sid).ok()?;
        if sid.is_match() {
            self.note_matches(cache, sid, &mut found);
        }
        Some(found)
    }

    /// Follows transitions already built between untagged states, from `sid` along
    /// `bytes`, and stops before the first tagged one; returns the state reached and how
    /// many bytes it took. Most bytes go this way: one table lookup each, in a loop that
    /// only reads the cache and calls nothing, so that all it needs stays in registers.
    #[inline(never)]
    fn follow_built(
        &self,
        cache: &LazyDfaCache,
        mut sid: LazyStateID,
        bytes: &[u8],
    ) -> (LazyStateID, usize) {
        // Four steps at a time spare three loop tests in four.
        let mut chunks = bytes.chunks_exact(4);
        let mut at = 0;
        for chunk in &mut chunks {
            for &byte in chunk {
                let next = self.dfa.next_state_untagged(cache, sid, byte);
                if next.is_tagged() {
                    return (sid, at);
                }
                sid = next;
                at += 1;
            }
        }
        for &byte in chunks.remainder() {
            let next = self.dfa.next_state_untagged(cache, sid, byte);
            if next.is_tagged() {
                return (sid, at);
            }
            sid = next;
            at += 1;
        }
        (sid, at)
    }

    fn note_matches(&self, cache: &LazyDfaCache, sid: LazyStateID, found: &mut Triggered) {
        for i in 0..self.dfa.match_len(cache, sid) {
            match self.dfa.match_pattern(cache, sid, i).as_usize() {
                p if p == self.key_word => found.key_word = true,
                p => found.detectors |= 1 << p,
            }
        }
    }
}

impl Processor for Redactor {
    fn process(&self, records: Vec<Record>) -> Vec<Record> {
        let mut cx = Scan::default();
        let mut findings = vec![0u64; self.detectors.len()];
        let mut blocked = 0u64;
        let out = records
            .into_iter()
            .map(|record| {
                let record = self.redact_with(record, &mut cx);
                for (total, n) in findings.iter_mut().zip(&cx.counts) {
                    *total += u64::from(*n);
                }
                blocked += u64::from(cx.blocked);
                record
            })
            .collect();
        for (detector, n) in self.detectors.iter().zip(findings) {
            if n > 0 {
                metrics::counter!(
                    "vellum_redact_findings_total",
                    "component" => self.id.clone(),
                    "detector" => detector.name.clone()
                )
                .increment(n);
            }
        }
        if blocked > 0 {
            metrics::counter!("vellum_redact_blocked_total", "component" => self.id.clone())
                .increment(blocked);
        }
        out
    }
}

/// Each detector's policy: its own (custom), else the map's entry for its name, else the
/// map's `default`, else `redact`.
fn resolve_policies(
    id: &str,
    config: &PolicyConfig,
    specs: &[DetectorSpec],
) -> Result<Vec<Policy>, RedactConfigError> {
    let map = match config {
        PolicyConfig::Uniform(p) => {
            return Ok(specs.iter().map(|s| s.own_policy.unwrap_or(*p)).collect());
        }
        PolicyConfig::PerDetector(map) => map,
    };
    for name in map.keys() {
        if name != "default" && !specs.iter().any(|s| &s.name == name) {
            return Err(RedactConfigError::PolicyForUnknownDetector {
                id: id.to_string(),
                name: name.clone(),
            });
        }
    }
    let default = map.get("default").copied().unwrap_or(Policy::Redact);
    specs
        .iter()
        .map(|s| match (s.own_policy, map.get(&s.name)) {
            (Some(_), Some(_)) => Err(RedactConfigError::PolicyGivenTwice {
                id: id.to_string(),
                name: s.name.clone(),
            }),
            (Some(own), None) => Ok(own),
            (None, Some(mapped)) => Ok(*mapped),
            (None, None) => Ok(default),
        })
        .collect()
}

fn parse_field_paths(id: &str, fields: &FieldsConfig) -> Result<Vec<FieldPath>, RedactConfigError> {
    let mut parsed = Vec::new();
    for (paths, rule) in [
        (&fields.always_redact, FieldRule::AlwaysRedact),
        (&fields.never_scan, FieldRule::NeverScan),
    ] {
        for path in paths {
            let (root, rest) = if path == "body" {
                (Root::Body, "")
            } else if let Some(rest) = path.strip_prefix("body.") {
                (Root::Body, rest)
            } else if let Some(rest) = path.strip_prefix("attributes.") {
                (Root::Attributes, rest)
            } else {
                (Root::Body, ".")
            };
            if path != "body" && rest.split('.').any(str::is_empty) {
                return Err(RedactConfigError::InvalidFieldPath {
                    id: id.to_string(),
                    path: path.clone(),
                });
            }
            if rule == FieldRule::NeverScan && fields.always_redact.contains(path) {
                return Err(RedactConfigError::ConflictingFieldPath {
                    id: id.to_string(),
                    path: path.clone(),
                });
            }
            parsed.push(FieldPath {
                root,
                rest: rest.to_string(),
                rule,
            });
        }
    }
    Ok(parsed)
}

/// Where a key (or array index) leads from the cursors: the rule of a path that ends here,
/// and the paths that continue below.
fn step<'a>(cursors: &[Cursor<'a>], key: &str) -> (Option<FieldRule>, Vec<Cursor<'a>>) {
    let mut rule = None;
    let mut children = Vec::new();
    for c in cursors {
        for segment in [key, "*"] {
            match c.rest.strip_prefix(segment) {
                Some("") => rule = strongest(rule, c.rule),
                Some(after) => {
                    if let Some(below) = after.strip_prefix('.') {
                        children.push(Cursor {
                            rest: below,
                            rule: c.rule,
                        });
                    }
                }
                None => {}
            }
        }
    }
    (rule, children)
}

fn strongest(current: Option<FieldRule>, next: FieldRule) -> Option<FieldRule> {
    match current {
        Some(FieldRule::AlwaysRedact) => current,
        _ => Some(next),
    }
}

fn regex_config() -> meta::Config {
    meta::Config::new()
        .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
        .hybrid_cache_capacity(DFA_CACHE_LIMIT)
}

fn looks_like_json(text: &str) -> bool {
    matches!(
        (
            text.as_bytes().trim_ascii().first(),
            text.as_bytes().trim_ascii().last()
        ),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    )
}

impl crate::processors::ProcessorSettings for RedactConfig {
    /// The constructor's refusal, located: it compiles every pattern, as `build` will.
    fn problems(&self) -> Vec<(String, String)> {
        // Every pattern's syntax first, each with its column: the constructor stops at
        // the first refusal and the regex engine's message does not say where.
        let syntax: Vec<(String, String)> = self
            .custom
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let e = regex_syntax::ast::parse::Parser::new()
                    .parse(&c.pattern)
                    .err()?;
                let column = e.span().start.column;
                let message = format!("column {column} of the pattern: {}", e.kind());
                Some((format!("custom[{i}].pattern"), message))
            })
            .collect();
        if !syntax.is_empty() {
            return syntax;
        }
        const ID: &str = "-";
        match Redactor::new(ID, self) {
            Ok(_) => Vec::new(),
            Err(e) => {
                let text = e.to_string();
                let prefix = format!("redact processor `{ID}`: ");
                let message = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
                vec![(e.path_in(self), message)]
            }
        }
    }

    fn build(&self, id: &str) -> Result<crate::processors::Stage, String> {
        Redactor::new(id, self)
            .map(|p| crate::processors::Stage::Process(std::sync::Arc::new(p)))
            .map_err(|e| e.to_string())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sha2::Digest;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn redactor(yaml: &str) -> Redactor {
        let cfg: RedactConfig = serde_saphyr::from_str(yaml).unwrap();
        Redactor::new("redact/test", &cfg).unwrap()
    }

    fn config_error(yaml: &str) -> RedactConfigError {
        let cfg: RedactConfig = serde_saphyr::from_str(yaml).unwrap();
        match Redactor::new("redact/test", &cfg) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e,
        }
    }

    /// The substrings each detector flags, in order.
    fn flagged<'t>(r: &Redactor, text: &'t str) -> Vec<(String, &'t str)> {
        r.scan_text(text)
            .into_iter()
            .map(|f| (f.detector.to_string(), &text[f.span]))
            .collect()
    }

    fn assert_flags(r: &Redactor, detector: &str, text: &str, expected: &[&str]) {
        let got: Vec<&str> = flagged(r, text)
            .into_iter()
            .filter(|(d, _)| d == detector)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, expected, "{detector} in {text:?}");
    }

    fn assert_clean(r: &Redactor, text: &str) {
        assert_eq!(flagged(r, text), vec![], "{text:?}");
    }

    /// HMAC-SHA256 written out from RFC 2104 on top of SHA-256, to check the token format
    /// without going through the `hmac` crate the processor uses.
    fn rfc2104_hmac_token(detector: &str, canonical: &str) -> String {
        let mut block = [0u8; 64];
        block[..KEY.len()].copy_from_slice(KEY.as_bytes());
        let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let mut message = detector.as_bytes().to_vec();
        message.push(0);
        message.extend_from_slice(canonical.as_bytes());
        let inner = sha2::Sha256::digest([inner_pad, message].concat());
        let outer = sha2::Sha256::digest([outer_pad, inner.to_vec()].concat());
        format!("[{detector}:hmac:{}]", hex::encode(&outer[..8]))
    }

    fn record_with(attributes: Value, body: Value) -> Record {
        let mut r = Record::new("http/json");
        r.attributes = attributes.as_object().cloned().unwrap_or_default();
        r.body = body;
        r
    }

    #[test]
    fn issue_example_config_parses_and_builds() {
        let r = redactor(
            r#"
policy: redact
detectors: [email, phone, ssn, credit_card, iban, ipv4, ipv6, jwt, bearer_token,
            aws_access_key, api_key, private_key, url_credentials]
hash_key: "0123456789abcdef0123456789abcdef"
fields:
  always_redact: [attributes.password, attributes.authorization, body.api_key]
  never_scan:    [attributes.request_id]
custom:
  - { name: employee_id, pattern: 'EMP-\d{6}', policy: hash }
"#,
        );
        let out = r.redact(record_with(
            json!({"note": "badge EMP-004211"}),
            json!(null),
        ));
        assert_eq!(
            out.attributes["note"],
            json!(format!(
                "badge {}",
                rfc2104_hmac_token("employee_id", "EMP-004211")
            ))
        );
    }

    #[test]
    fn policy_is_a_word_or_a_map_with_default() {
        let cfg: RedactConfig = serde_saphyr::from_str("policy: hash\nhash_key: x").unwrap();
        assert_eq!(cfg.policy, PolicyConfig::Uniform(Policy::Hash));
        let r = redactor(&format!(
            "policy: {{default: hash, email: redact, ssn: block}}\nhash_key: {KEY}"
        ));
        let policy = |name: &str| r.detectors.iter().find(|d| d.name == name).unwrap().policy;
        assert_eq!(policy("email"), Policy::Redact);
        assert_eq!(policy("ssn"), Policy::Block);
        assert_eq!(policy("phone"), Policy::Hash);
        assert_eq!(policy(SENSITIVE_KEY), Policy::Hash);
        assert!(serde_saphyr::from_str::<RedactConfig>("policy: scrub").is_err());
        assert!(serde_saphyr::from_str::<RedactConfig>("policy: redact\nunknown: 1").is_err());
        assert!(serde_saphyr::from_str::<RedactConfig>("fields: {never: [body]}").is_err());
    }

    #[test]
    fn configuration_errors_are_precise_and_never_echo_the_key() {
        let e = config_error("custom: [{name: badge, pattern: 'EMP-(\\d'}]");
        assert!(
            matches!(&e, RedactConfigError::InvalidPattern { name, .. } if name == "badge"),
            "{e}"
        );
        assert!(e.to_string().contains("`badge`"), "{e}");

        let e = config_error("policy: {default: redact, email: hash}");
        assert!(
            matches!(&e, RedactConfigError::MissingHashKey { detectors, .. } if detectors == "email"),
            "{e}"
        );

        let e = config_error("policy: hash\nhash_key: tiny-secret-value");
        let text = e.to_string();
        assert!(
            matches!(e, RedactConfigError::InvalidHashKey { .. }),
            "{text}"
        );
        assert!(
            text.contains("17 bytes") && !text.contains("tiny-secret-value"),
            "{text}"
        );

        let e = config_error("detectors: [email, passport]");
        assert!(
            matches!(&e, RedactConfigError::UnknownDetector { name, .. } if name == "passport"),
            "{e}"
        );
        assert!(e.to_string().contains("credit_card"), "{e}");

        assert!(matches!(
            config_error("detectors: [email, email]"),
            RedactConfigError::DuplicateDetector { .. }
        ));
        assert!(matches!(
            config_error("detectors: [email]\npolicy: {phone: block}"),
            RedactConfigError::PolicyForUnknownDetector { name, .. } if name == "phone"
        ));
        assert!(matches!(
            config_error("custom: [{name: email, pattern: x}]"),
            RedactConfigError::InvalidCustomName { .. }
        ));
        assert!(matches!(
            config_error("custom: [{name: any, pattern: 'x*'}]"),
            RedactConfigError::EmptyMatch { .. }
        ));
        assert!(matches!(
            config_error("custom: [{name: b, pattern: x, policy: block}]\npolicy: {b: redact}"),
            RedactConfigError::PolicyGivenTwice { .. }
        ));
        assert!(matches!(
            config_error("fields: {always_redact: [resource.host]}"),
            RedactConfigError::InvalidFieldPath { .. }
        ));
        assert!(matches!(
            config_error("fields: {always_redact: [body.a], never_scan: [body.a]}"),
            RedactConfigError::ConflictingFieldPath { .. }
        ));
    }

    #[test]
    fn emails_with_plus_tags_and_subdomains() {
        let r = redactor("{}");
        assert_flags(
            &r,
            "email",
            "to Bob.Smith+billing@mail.corp.example.co.uk, cc: x_y-z@sub.example.org.",
            &[
                "Bob.Smith+billing@mail.corp.example.co.uk",
                "x_y-z@sub.example.org",
            ],
        );
        for clean in [
            "logo@2x.png",
            "user@localhost",
            "lodash@4.17.21",
            "a@b",
            "@scope/pkg",
        ] {
            assert_clean(&r, clean);
        }
    }

    #[test]
    fn phones_in_international_and_nanp_forms() {
        let r = redactor("{}");
        for phone in [
            "+1 (555) 010-1234",
            "+44 20 7946 0958",
            "+15550101234",
            "+49 30 901820",
            "(555) 010-1234",
            "555-010-1234",
            "555.010.1234",
            "1-800-555-0199",
        ] {
            assert_flags(&r, "phone", &format!("call {phone} now"), &[phone]);
        }
        for clean in [
            "2024-05-01",
            "12:30:45",
            "ts 1714567890",
            "123-456-7890",  // no area code starts with 1
            "555-010.1234",  // mixed separators
            "+1 555",        // too short
            "a+15550101234", // base64 / URL-encoded material
            "build 20240501123",
        ] {
            assert_clean(&r, clean);
        }
    }

    #[test]
    fn ssns_outside_the_never_issued_ranges() {
        let r = redactor("{}");
        assert_flags(
            &r,
            "ssn",
            "ssn 123-45-6789 or 234 56 7890",
            &["123-45-6789", "234 56 7890"],
        );
        assert_flags(&r, "ssn", "SSN: 123456789", &["123456789"]);
        for clean in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45-67890",
            "123-45 6789",
            "ssn: 1234567890",
            "lessn 123456789",
        ] {
            assert_clean(&r, clean);
        }
    }

    #[test]
    fn cards_with_spaces_dashes_and_grouping() {
        let r = redactor("{}");
        for card in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "3782 822463 10005",
            "5555555555554444",
        ] {
            assert_flags(
                &r,
                "credit_card",
                &format!("card {card}, exp 12/26"),
                &[card],
            );
        }
        assert_flags(
            &r,
            "credit_card",
            "order 2024 4111111111111111 5555555555554444",
            &["4111111111111111", "5555555555554444"],
        );
        for clean in [
            "4111111111111112",     // Luhn fails
            "1234567812345670",     // Luhn holds, no issuer starts with 1
            "4111 1111 1111-1111",  // mixed separators
            "0.4111111111111111",   // a fraction
            "41111111111111111111", // 20 digits
            "id_4111111111111111",
        ] {
            assert_clean(&r, clean);
        }
    }

    #[test]
    fn ibans_by_country_length_and_mod97() {
        let r = redactor("{}");
        assert_flags(
            &r,
            "iban",
            "pay DE89 3704 0044 0532 0130 00 EUR, or GB29NWBK60161331926819.",
            &["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819"],
        );
        assert_clean(&r, "DE89370400440532013001");
        assert_clean(&r, "XX89370400440532013000");
    }

    #[test]
    fn ipv4_octets_in_range_and_not_part_of_longer_runs() {
        let r = redactor("{}");
        assert_flags(
            &r,
            "ipv4",
            "from 203.0.113.7:443 via 10.0.0.1/8",
            &["203.0.113.7", "10.0.0.1"],
        );
        for clean in [
            "256.1.1.1",
            "1.2.3.4.5",
            "v1.2.3.4",
            "01.02.03.04",
            "version 10.0.19041.1",
        ] {
            assert_clean(&r, clean);
        }
    }

    #[test]
    fn ipv6_full_compressed_and_mapped() {
        let r = redactor("{}");
        for addr in [
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8::1",
            "::1",
            "fe80::1",
            "::ffff:192.0.2.128",
            "2001:db8::8a2e:370:7334",
        ] {
            assert_flags(&r, "ipv6", &format!("peer [{addr}]:443"), &[addr]);
        }
        assert_flags(&r, "ipv6", "fe80::1%eth0", &["fe80::1"]);
        for clean in [
            "12:30:45",
            "std::vec::Vec",
            "00:1a:2b:3c:4d:5e",
            "a :: b",
            "Face::new()",
        ] {
            assert_clean(&r, clean);
        }
    }

    #[test]
    fn credentials_and_tokens() {
        let r = redactor("{}");
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_flags(&r, "jwt", &format!("Authorization: Bearer {jwt}"), &[jwt]);
        // A header without `alg` is not a JWT.
        assert_clean(&r, "eyJub3RfYV9qd3QiOjF9.eyJzdWIiOiIxIn0.c2ln");

        assert_flags(
            &r,
            "bearer_token",
            "Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543",
            &["8f14e45fceea167a5a36dedd4bea2543"],
        );
        assert_flags(
            &r,
            "bearer_token",
            "basic dXNlcjpwYXNzd29yZA==",
            &["dXNlcjpwYXNzd29yZA=="],
        );
        assert_clean(&r, "Bearer authentication is required");
        assert_clean(&r, "Basic bm8gY29sb24gaGVyZQ==");

        assert_flags(
            &r,
            "aws_access_key",
            "key AKIAIOSFODNN7EXAMPLE.",
            &["AKIAIOSFODNN7EXAMPLE"],
        );
        assert_flags(
            &r,
            "aws_access_key",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            &["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        );
        assert_clean(&r, "AKIAIOSFODNN7EXAMPLEX1");

        for key in [
            "sk-proj-4f9aQ2mZ8xL1vB7nK3pR6tY0wE5uI9oA",
            "sk_live_51H8xKjL2mN4pQ6rS8tU",
            "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
            "xoxb-2048-1234567890-AbCdEfGhIjKl",
            "AIzaSyD1x2c3v4b5n6m7a8s9d0f1g2h3j4k5l6z",
        ] {
            assert_flags(&r, "api_key", &format!("using {key} today"), &[key]);
        }
        assert_flags(
            &r,
            "api_key",
            "GET /v1?api_key=abcd1234efgh5678&q=1",
            &["abcd1234efgh5678"],
        );
        for clean in [
            "task-management-system-for-teams-2024",
            "sk-short",
            "disk-0123456789abcdefghij",
        ] {
            assert_clean(&r, clean);
        }

        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_flags(&r, "private_key", &format!("key:\n{pem}\ndone"), &[pem]);
        let truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA";
        assert_flags(&r, "private_key", truncated, &[truncated]);
        assert_clean(
            &r,
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        );

        assert_flags(
            &r,
            "url_credentials",
            "dsn postgres://admin:s3cr3t@db.internal:5432/app",
            &["admin:s3cr3t"],
        );
        assert_flags(&r, "url_credentials", "https://user@example.com/a:b", &[]);
    }

    #[test]
    fn sensitive_names_in_text_and_their_look_alikes() {
        let r = redactor("{}");
        assert_flags(
            &r,
            SENSITIVE_KEY,
            r#"login password=hunter2 "db_password": "p@ss w0rd" token: abc"#,
            &["hunter2", "p@ss w0rd", "abc"],
        );
        assert_flags(
            &r,
            SENSITIVE_KEY,
            "Cookie: sid=31d4d96e; theme=dark",
            &["sid=31d4d96e; theme=dark"],
        );
        assert_flags(
            &r,
            SENSITIVE_KEY,
            "Authorization: Digest abc123",
            &["Digest abc123"],
        );
        assert_clean(
            &r,
            r#"{"max_tokens": 1024, "token_count": 7, "keyboard": "qwerty"}"#,
        );
    }

    #[test]
    fn overlapping_findings_go_to_the_earliest() {
        let r = redactor("{}");
        // `pw@ftp.example.com` overlaps the credentials and is not an email.
        let text = "ftp://user:pw@ftp.example.com/file";
        assert_eq!(
            r.redact(record_with(json!({"u": text}), json!(null)))
                .attributes["u"],
            json!("ftp://[REDACTED:url_credentials]@ftp.example.com/file")
        );
        // An email under a password assignment is a sensitive value first.
        assert_flags(
            &r,
            SENSITIVE_KEY,
            "password=a@example.com",
            &["a@example.com"],
        );
    }

    #[test]
    fn key_names_paths_nesting_arrays_and_embedded_json() {
        let r = redactor(
            r#"
fields:
  always_redact: [attributes.http.request.body, body.messages.*.name]
  never_scan: [attributes.request_id, body.debug]
  sensitive_keys: [Employee-PIN]
"#,
        );
        let attributes = json!({
            "Password": "correct horse battery staple",
            "X-Api-Key": 12345678,
            "http.request.body": "anything at all",
            "request_id": "user bob@example.com",
            "user": {"contact": ["alice@example.com", {"employee_pin": "0000"}], "active": true},
            "max_tokens": 1024,
            "session_token": null,
            "bob@example.com": 1,
        });
        let body = json!({
            "messages": [
                {"name": "Ada", "content": "my card is 4111 1111 1111 1111"},
                {"name": "Bob", "content": "ok"}
            ],
            "debug": "password=left-alone",
            "request": "{\"user\": {\"email\": \"carol@example.com\", \"password\": \"x\"}, \"n\": 1}",
            "unchanged": "{ \"model\": \"gpt-4o\",  \"n\": 2 }",
        });
        let out = r.redact(record_with(attributes, body));
        let sk = "[REDACTED:sensitive_key]";
        assert_eq!(
            Value::Object(out.attributes.clone()),
            json!({
                "Password": sk,
                "X-Api-Key": sk,
                "http.request.body": sk,
                "request_id": "user bob@example.com",
                "user": {"contact": ["[REDACTED:email]", {"employee_pin": sk}], "active": true},
                "max_tokens": 1024,
                "session_token": null,
                "[REDACTED:email]": 1,
            })
        );
        assert_eq!(
            out.body,
            json!({
                "messages": [
                    {"name": sk, "content": "my card is [REDACTED:credit_card]"},
                    {"name": sk, "content": "ok"}
                ],
                "debug": "password=left-alone",
                "request": "{\"n\":1,\"user\":{\"email\":\"[REDACTED:email]\",\"password\":\"[REDACTED:sensitive_key]\"}}",
                "unchanged": "{ \"model\": \"gpt-4o\",  \"n\": 2 }",
            })
        );
        assert_eq!(
            out.redaction,
            Some(json!({
                "processors": ["redact/test"],
                "total": 11,
                "findings": {
                    "email": {"count": 3, "policy": "redact"},
                    "credit_card": {"count": 1, "policy": "redact"},
                    "sensitive_key": {"count": 7, "policy": "redact"},
                }
            }))
        );
    }

    #[test]
    fn integers_are_scanned_as_their_digits() {
        let r = redactor("{}");
        let out = r.redact(record_with(
            json!({"pan": 4111111111111111u64, "count": 4111}),
            json!(null),
        ));
        assert_eq!(out.attributes["pan"], json!("[REDACTED:credit_card]"));
        assert_eq!(out.attributes["count"], json!(4111));
    }

    #[test]
    fn hash_tokens_are_keyed_canonical_and_correlate_spellings() {
        let r = redactor(&format!("policy: hash\nhash_key: {KEY}"));
        let out = r.redact(record_with(
            json!({
                "a": "Mail Bob@Example.COM",
                "b": "mail bob@example.com",
                "c": "+1 (555) 010-1234",
                "d": "555.010.1234",
                "e": "4111-1111-1111-1111",
                "password": {"nested": true},
            }),
            json!("peer 2001:DB8:0:0::1"),
        ));
        let email = rfc2104_hmac_token("email", "bob@example.com");
        assert_eq!(out.attributes["a"], json!(format!("Mail {email}")));
        assert_eq!(out.attributes["b"], json!(format!("mail {email}")));
        let phone = rfc2104_hmac_token("phone", "+15550101234");
        assert_eq!(out.attributes["c"], json!(phone));
        assert_eq!(out.attributes["d"], json!(phone));
        assert_eq!(
            out.attributes["e"],
            json!(rfc2104_hmac_token("credit_card", "4111111111111111"))
        );
        assert_eq!(
            out.attributes["password"],
            json!(rfc2104_hmac_token(SENSITIVE_KEY, r#"{"nested":true}"#))
        );
        assert_eq!(
            out.body,
            json!(format!(
                "peer {}",
                rfc2104_hmac_token("ipv6", "2001:db8::1")
            ))
        );
        // Another key gives other tokens.
        let other = redactor(&format!("policy: hash\nhash_key: hex:{}", "00".repeat(32)));
        let out2 = other.redact(record_with(
            json!({"b": "mail bob@example.com"}),
            json!(null),
        ));
        assert_ne!(out2.attributes["b"], json!(format!("mail {email}")));
    }

    #[test]
    fn block_replaces_the_record_with_a_pii_blocked_record_without_values() {
        let r = redactor("policy: {default: redact, ssn: block}");
        let mut original = record_with(
            json!({"user": {"ssn": "ssn 123-45-6789"}, "email": "bob@example.com"}),
            json!({"text": "SSN: 234567890"}),
        );
        original.time_unix_nano = 1_700_000_000_000_000_000;
        original.event_type = Some("llm.request".into());
        original
            .resource
            .insert("service.name".into(), json!("gateway"));
        original.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        original.tags = vec!["prod".into()];
        let blocked = r.redact(original.clone());

        assert_eq!(blocked.event_type.as_deref(), Some(PII_BLOCKED));
        assert_eq!(blocked.severity_number, 13);
        assert_eq!(blocked.time_unix_nano, original.time_unix_nano);
        assert_eq!(
            blocked.observed_time_unix_nano,
            original.observed_time_unix_nano
        );
        assert_eq!(blocked.source, "http/json");
        assert_eq!(blocked.resource, original.resource);
        assert_eq!(blocked.trace_id, original.trace_id);
        assert_eq!(
            blocked.tags,
            vec!["prod".to_string(), PII_BLOCKED.to_string()]
        );
        assert!(blocked.attributes.is_empty());
        assert_eq!(blocked.body["processor"], json!("redact/test"));
        assert_eq!(blocked.body["original_event_type"], json!("llm.request"));
        assert_eq!(blocked.body["blocked_by"], json!(["ssn"]));
        assert_eq!(
            blocked.body["findings"],
            json!([
                {"field": "attributes.email", "detector": "email", "count": 1, "policy": "redact"},
                {"field": "attributes.user.ssn", "detector": "ssn", "count": 1, "policy": "block"},
                {"field": "body.text", "detector": "ssn", "count": 1, "policy": "block"},
            ])
        );
        let text = serde_json::to_string(&blocked.to_json()).unwrap();
        for value in ["123-45-6789", "234567890", "bob@example.com"] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }

    #[test]
    fn summaries_of_successive_processors_add_up() {
        let first = redactor("detectors: [email]");
        let second = Redactor::new(
            "redact/second",
            &serde_saphyr::from_str("detectors: [email, ipv4]").unwrap(),
        )
        .unwrap();
        let out = second.redact(first.redact(record_with(
            json!({"a": "x@example.com 10.0.0.1"}),
            json!(null),
        )));
        assert_eq!(
            out.redaction,
            Some(json!({
                "processors": ["redact/test", "redact/second"],
                "total": 2,
                "findings": {"email": {"count": 1, "policy": "redact"}, "ipv4": {"count": 1, "policy": "redact"}}
            }))
        );
        assert_eq!(
            out.attributes["a"],
            json!("[REDACTED:email] [REDACTED:ipv4]")
        );
    }

    #[test]
    fn custom_patterns_with_anchors_and_unicode_word_boundaries() {
        let r = redactor(
            r#"
custom:
  - { name: order, pattern: '^ORD-\d{4}$' }
  - { name: badge, pattern: '\bB\d{3}\b' }
"#,
        );
        // A Unicode `\b` makes the trigger DFA give up on non-ASCII text only.
        assert!(r.triggers.is_some());
        let out = r.redact(record_with(
            json!({
                "whole": "ORD-1234",
                "inside": "see ORD-1234 now",
                "ascii": "B123 and B1234",
                "unicode": "Grüße B123 und xB123",
            }),
            json!(null),
        ));
        assert_eq!(out.attributes["whole"], json!("[REDACTED:order]"));
        assert_eq!(out.attributes["inside"], json!("see ORD-1234 now"));
        assert_eq!(out.attributes["ascii"], json!("[REDACTED:badge] and B1234"));
        assert_eq!(
            out.attributes["unicode"],
            json!("Grüße [REDACTED:badge] und xB123")
        );
    }

    #[test]
    fn keys_seen_again_in_a_batch_are_judged_as_the_first_time() {
        let r = redactor("{}");
        let record = || {
            record_with(
                json!({"Password": "hunter2", "bob@example.com": 1, "max_tokens": 12}),
                json!({"items": [{"password": "a"}, {"password": "b"}]}),
            )
        };
        let out = r.process(vec![record(), record(), record()]);
        for record in out {
            assert_eq!(
                record.attributes,
                json!({
                    "Password": "[REDACTED:sensitive_key]",
                    "[REDACTED:email]": 1,
                    "max_tokens": 12,
                })
                .as_object()
                .cloned()
                .unwrap()
            );
            assert_eq!(
                record.body,
                json!({"items": [
                    {"password": "[REDACTED:sensitive_key]"},
                    {"password": "[REDACTED:sensitive_key]"},
                ]})
            );
        }
    }

    #[test]
    fn values_nested_too_deep_are_replaced() {
        let r = redactor("{}");
        let mut deep = json!("bob@example.com");
        for _ in 0..100 {
            deep = json!([deep]);
        }
        let out = r.redact(record_with(json!({}), deep));
        let text = out.body.to_string();
        assert!(!text.contains("bob@example.com") && text.contains("[REDACTED:too_deep]"));
    }

    /// Texts made of values each detector accepts, their near misses, and filler.
    fn assorted_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const PIECES: &[&str] = &[
            "bob.smith+x@mail.example.co.uk",
            "icon@2x.png",
            "+1 (555) 010-1234",
            "555.010.1234",
            "1-800-555-0199",
            "+44 20 7946 0958",
            "123-45-6789",
            "SSN 234567890",
            "000-12-3456",
            "4111 1111 1111 1111",
            "3782-822463-10005",
            "4111111111111111",
            "1234567812345670",
            "DE89 3704 0044 0532 0130 00",
            "GB29NWBK60161331926819",
            "10.0.0.1",
            "1.2.3.4.5",
            "version 1.0.0.0",
            "2001:db8::1",
            "::ffff:192.0.2.128",
            "fe80::1%eth0",
            "12:30:45",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "Bearer 8f14e45fceea167a5a36",
            "Basic dXNlcjpwYXNzd29yZA==",
            "AKIAIOSFODNN7EXAMPLE",
            "sk-proj-4f9aQ2mZ8xL1vB7nK3pR",
            "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
            "api_key=abcd1234efgh",
            "x-api-key: k1k2k3k4k5",
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
            "redis://app:s3cr3t@cache:6379",
            "password=hunter2",
            "\"db_password\": \"x y\"",
            "Cookie: sid=1; a=b",
            "Authorization: Digest abc",
            "max_tokens: 12",
            "2024-05-01T12:30:45Z",
        ];
        let piece = prop_oneof![
            proptest::sample::select(PIECES).prop_map(str::to_string),
            "[ -~]{0,6}",
            "[0-9 .:+()-]{0,12}",
        ];
        proptest::collection::vec(piece, 1..8).prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// The trigger DFA walked by hand, which also spares the key-name check of keys
        /// without a key word, and keys remembered across a batch change nothing: records
        /// come out as they do one by one, each text through the `regex` crate's
        /// multi-pattern search and every key checked.
        #[test]
        fn the_trigger_dfa_finds_what_the_multi_pattern_regex_finds(
            records in proptest::collection::vec(assorted_record(), 1..4)
        ) {
            const CONFIG: &str = "policy: {default: hash, ssn: block}\nhash_key: 0123456789abcdef0123456789abcdef\n\
                fields: {always_redact: [attributes.debug], never_scan: [body.request_id, attributes.items.1], \
                sensitive_keys: [employee_ref]}";
            static WITH_DFA: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| redactor(CONFIG));
            static WITHOUT: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| {
                let mut r = redactor(CONFIG);
                r.triggers = None;
                r
            });
            proptest::prop_assert!(WITH_DFA.triggers.is_some());
            let one_by_one: Vec<Record> = records.iter().map(|r| WITHOUT.redact(r.clone())).collect();
            proptest::prop_assert_eq!(WITH_DFA.process(records), one_by_one);
        }

        /// Per text, the DFA reports the detectors the multi-pattern regex reports, and a
        /// key word in every name the key rules call sensitive.
        #[test]
        fn the_trigger_dfa_agrees_with_the_regex_and_the_key_rules(text in assorted_text(), key in 0..KEYS.len()) {
            static R: std::sync::LazyLock<Redactor> =
                std::sync::LazyLock::new(|| redactor("fields: {sensitive_keys: [employee_ref]}"));
            triggers_agree(&R, text, key)?;
        }

        /// The same with a cache so small that it is cleared again and again, which
        /// invalidates the states the pass remembers (the start, the last match).
        #[test]
        fn the_trigger_dfa_agrees_while_its_cache_is_cleared(text in assorted_text(), key in 0..KEYS.len()) {
            static R: std::sync::LazyLock<Redactor> =
                std::sync::LazyLock::new(redactor_with_the_smallest_trigger_cache);
            triggers_agree(&R, text, key)?;
        }

        /// Triggers are necessary conditions: running only the detectors they point at
        /// finds exactly what running every detector finds.
        #[test]
        fn triggers_never_hide_a_finding(text in assorted_text()) {
            static R: std::sync::LazyLock<Redactor> =
                std::sync::LazyLock::new(|| redactor("fields: {sensitive_keys: [employee_ref]}"));
            let all = R.find_with(&text, u64::MAX);
            proptest::prop_assert_eq!(R.find(&text), all);
        }
    }

    /// Per text (a key name, key and text, the text), the trigger DFA reports the detectors
    /// `prefilter` reports, and a key word in every name the key rules call sensitive.
    fn triggers_agree(
        r: &Redactor,
        text: String,
        key: usize,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let Some(triggers) = &r.triggers else {
            return Err(proptest::test_runner::TestCaseError::fail("no trigger DFA"));
        };
        let mut cache = TriggerCache {
            cache: triggers.caches.get(),
            start: None,
        };
        for text in [KEYS[key].to_string(), format!("{}{text}", KEYS[key]), text] {
            let mut set = PatternSet::new(r.detectors.len());
            r.prefilter
                .which_overlapping_matches(&Input::new(&text), &mut set);
            let expected = set.iter().fold(0u64, |mask, p| mask | 1 << p.as_usize());
            let found = triggers.scan(text.as_bytes(), &mut cache);
            proptest::prop_assert_eq!(found.map(|f| f.detectors), Some(expected), "{:?}", text);
            proptest::prop_assert!(
                found.is_some_and(|f| f.key_word) || !r.keys.is_sensitive(&text),
                "{:?}",
                text
            );
        }
        Ok(())
    }

    fn redactor_with_the_smallest_trigger_cache() -> Redactor {
        let mut r = redactor("fields: {sensitive_keys: [employee_ref]}");
        let mut patterns: Vec<String> = r
            .detectors
            .iter()
            .map(|d| match d.kind {
                DetectorKind::Builtin(b) => b.trigger().to_string(),
                DetectorKind::SensitiveText => r.keys.text_trigger(),
                DetectorKind::Custom => unreachable!("no custom detector configured"),
            })
            .collect();
        patterns.push(r.keys.words_pattern());
        r.triggers = Triggers::new(&patterns, patterns.len() - 1, 0);
        r
    }

    #[test]
    fn the_smallest_trigger_cache_is_cleared_and_still_agrees() {
        let r = redactor_with_the_smallest_trigger_cache();
        let text = "mail bob@example.com, call +1 (555) 010-1234, card 4111 1111 1111 1111, \
                    SSN 234567890, IBAN DE89 3704 0044 0532 0130 00, host 10.0.0.1 and 2001:db8::1, \
                    Bearer 8f14e45fceea167a5a36 api_key=abcd1234efgh password=hunter2";
        for key in 0..KEYS.len() {
            if let Err(e) = triggers_agree(&r, text.to_string(), key) {
                panic!("{e}");
            }
        }
        let Some(triggers) = &r.triggers else {
            panic!("no trigger DFA");
        };
        assert!(triggers.caches.get().clear_count() > 0);
    }

    /// Key names, sensitive or not, by the built-in rules or as `employee_ref` is configured.
    const KEYS: &[&str] = &[
        "note",
        "password",
        "user.email",
        "X-Api-Key",
        "max_tokens",
        "bob@example.com",
        "request_id",
        "Authorization",
        "debug",
        "items",
        "4111111111111111",
        "X-Employee-Ref",
        "employee ref",
        "x.amz.security.TOKEN",
        "Session_ID",
        "cookie",
        "PIN",
        "input_tokens",
    ];

    /// Records with texts from [`assorted_text`] under assorted keys, nested, in arrays,
    /// as integers and as embedded JSON.
    fn assorted_record() -> impl proptest::strategy::Strategy<Value = Record> {
        use proptest::prelude::*;
        let field = || (0..KEYS.len(), 0..7usize, assorted_text(), any::<i64>());
        let value_of = |(kind, text, n): (usize, String, i64)| match kind {
            0 | 1 => json!(text),
            2 => json!(n),
            3 => json!({"inner": text, "token": n}),
            4 => json!([text, n, null, true]),
            5 => json!(json!({"content": text, "password": "p4ss"}).to_string()),
            _ => json!(format!("{{\"raw\": \"{}\"", text.replace('"', "'"))),
        };
        (proptest::collection::vec(field(), 0..6), field()).prop_map(move |(fields, body)| {
            let mut r = Record::new("test");
            for (key, kind, text, n) in fields {
                r.attributes.insert(KEYS[key].to_string(), value_of((kind, text, n)));
            }
            let (key, kind, text, n) = body;
            r.body = json!({ KEYS[key]: value_of((kind, text.clone(), n)), "list": [value_of((kind, text, n))] });
            r
        })
    }

    /// A counter as registered: name, labels, value.
    type CounterEntry = (String, Vec<(String, String)>, u64);

    /// Collects counter registrations and increments, to check what metrics carry.
    #[derive(Default)]
    struct Counters(std::sync::Mutex<Vec<CounterEntry>>);

    struct CounterHandle {
        index: usize,
        sink: std::sync::Arc<Counters>,
    }

    impl metrics::CounterFn for CounterHandle {
        fn increment(&self, value: u64) {
            self.sink.0.lock().unwrap()[self.index].2 += value;
        }
        fn absolute(&self, value: u64) {
            self.sink.0.lock().unwrap()[self.index].2 = value;
        }
    }

    struct TestRecorder(std::sync::Arc<Counters>);

    impl metrics::Recorder for TestRecorder {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            let mut all = self.0.0.lock().unwrap();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            all.push((key.name().to_string(), labels, 0));
            metrics::Counter::from_arc(std::sync::Arc::new(CounterHandle {
                index: all.len() - 1,
                sink: self.0.clone(),
            }))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn process_counts_findings_and_blocks_with_id_and_detector_labels_only() {
        let r = redactor("policy: {default: redact, private_key: block}");
        let batch = vec![
            record_with(
                json!({"a": "bob@example.com and eve@example.com"}),
                json!(null),
            ),
            record_with(
                json!({"k": "-----BEGIN PRIVATE KEY-----\nabc"}),
                json!(null),
            ),
            record_with(json!({"a": "nothing here"}), json!(null)),
        ];
        let sink = std::sync::Arc::new(Counters::default());
        let out = metrics::with_local_recorder(&TestRecorder(sink.clone()), || r.process(batch));
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].event_type.as_deref(), Some(PII_BLOCKED));
        assert_eq!(
            out[2].redaction,
            Some(json!({"processors": ["redact/test"], "findings": {}, "total": 0}))
        );
        let mut counters = sink.0.lock().unwrap().clone();
        counters.sort();
        let labels = |detector: Option<&str>| {
            let mut l = vec![("component".to_string(), "redact/test".to_string())];
            l.extend(detector.map(|d| ("detector".to_string(), d.to_string())));
            l
        };
        assert_eq!(
            counters,
            vec![
                ("vellum_redact_blocked_total".to_string(), labels(None), 1),
                (
                    "vellum_redact_findings_total".to_string(),
                    labels(Some("email")),
                    2
                ),
                (
                    "vellum_redact_findings_total".to_string(),
                    labels(Some("private_key")),
                    1
                ),
            ]
        );
    }
}
