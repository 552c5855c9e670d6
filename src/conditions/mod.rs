//! The condition language shared by `classify`, `filter` and routing (`when:` on exporters).
//!
//! ```yaml
//! processors:
//!   filter/violations:
//!     keep: "event_type == 'security' or severity >= high"
//! service:
//!   pipelines:
//!     logs/audit:
//!       exporters:
//!         - { id: webhook/pager, when: "severity >= high and attributes.action matches '^(login|role)\\.'" }
//! ```
//!
//! Grammar (keywords are lowercase; `not` binds tighter than `and`, `and` tighter than `or`):
//!
//! ```text
//! condition  := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" condition ")" | "true" | "false" | predicate
//! predicate  := path ( ("==" | "!=" | "<" | "<=" | ">" | ">=") literal
//!                    | "in" "[" literal ("," literal)* "]"
//!                    | "matches" string
//!                    | "contains" literal
//!                    | "exists" )
//! literal    := string | number | "true" | "false" | "null" | severity word (after `severity`)
//! ```
//!
//! Paths name a record's fields as its JSON form does: `severity`, `severity_number`,
//! `severity_text`, `event_type`, `source`, `trace_id`, `span_id`, `tags`, `body[.…]`,
//! `attributes.…`, `resource.…`, `scope.…`, `redaction[.…]`. Below `body`, `attributes`,
//! `resource`, `scope` and `redaction` a path descends maps (a key that itself holds dots,
//! like `service.name`, is matched whole first) and arrays by index (`roles.0`).
//!
//! Semantics, chosen so that a condition never matches by accident:
//! - A missing field makes every test on it false (`!=` included); `not` of such a test is true.
//!   `exists` is true for any present value, `null` included.
//! - Values of different JSON types are never equal: `'401' == 401` is false, and `!=` is
//!   true for a present value of another type. Numbers compare by value (`1 == 1.0`).
//! - `<`, `<=`, `>`, `>=` order numbers by value and strings by their bytes; across types
//!   they are false. `severity` is ordered `info < low < medium < high < critical`.
//! - `matches` takes a regular expression (Rust `regex` syntax, unanchored) and tests
//!   strings only. `contains` tests a string for a substring, or an array for an element
//!   equal to the literal; `tags contains 'x'` tests the record's tags.
//! - In strings, `\\` is a backslash and `\'` / `\"` a quote; any other backslash is kept,
//!   so regular expressions read as usual: `matches '^key\.(created|deleted)$'`.
//!
//! What can be checked when the condition is parsed is: unknown fields, comparisons that
//! can never hold (`severity == 'bogus'`, `event_type > 3`, `severity_number == 'x'`),
//! invalid regular expressions and syntax. Errors carry the 1-based column they point at.
//!
//! Evaluation borrows from the record and allocates nothing.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::event::{Record, Severity, lookup, lookup_map};

/// Parentheses and `not`s nested deeper than this are refused, so that a hostile or
/// mistaken condition cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Why a condition was refused: where (1-based column, in characters) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConditionError {
    pub column: usize,
    pub message: String,
}

/// A parsed, type-checked condition, ready to test records.
#[derive(Clone)]
pub struct Condition {
    source: String,
    expr: Expr,
    /// Attribute heads (see [`AttributeIndex`]) of which a record must have at least one
    /// for the condition to hold, and all their bits together; `None` when no such set is
    /// known.
    required: Option<(u128, Box<[u128]>)>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Condition {
    /// Parses and type-checks a condition.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        let tokens = lex(source)?;
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        let next = parser.peek();
        if next.kind != Tok::End {
            return Err(err(
                next.column,
                format!("expected `and`, `or` or the end, found {}", next.kind),
            ));
        }
        let required = expr.required_heads().map(|mut heads| {
            heads.sort_unstable();
            heads.dedup();
            let any = heads.iter().fold(0, |bits, h| bits | h);
            (any, heads.into_boxed_slice())
        });
        Ok(Condition {
            source: source.to_string(),
            expr,
            required,
        })
    }

    /// Whether the record matches.
    pub fn eval(&self, record: &Record) -> bool {
        self.expr.eval(record, AttributeIndex::UNKNOWN)
    }

    /// Whether the record matches, given its [`AttributeIndex`]: the same answer as
    /// [`Condition::eval`], faster when many conditions test one record.
    pub fn eval_indexed(&self, record: &Record, index: AttributeIndex) -> bool {
        if let Some((any, heads)) = &self.required
            && (index.0 & any == 0 || !heads.iter().any(|&h| index.has(h)))
        {
            return false;
        }
        self.expr.may_hold(index) && self.expr.eval(record, index)
    }

    /// The text the condition was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Which top-level attribute names a record has, as a 128-bit Bloom filter of the part of
/// each name before its first dot (its head). A path below `attributes` can only be found
/// when its own head is among them: every key `lookup_map` tries for it shares that head.
/// Most tests in a large rule set are of absent fields, and this turns each into a bit test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeIndex(u128);

impl AttributeIndex {
    /// An index that rules nothing out.
    pub const UNKNOWN: AttributeIndex = AttributeIndex(u128::MAX);

    pub fn of(record: &Record) -> AttributeIndex {
        AttributeIndex(
            record
                .attributes
                .keys()
                .fold(0, |bits, key| bits | head_bits(key)),
        )
    }

    /// Whether a head (its two bits) may be present.
    fn has(self, head: u128) -> bool {
        self.0 & head == head
    }
}

/// The two filter bits of a name's head (its bytes before the first dot). The hash reads
/// the head's length and its first and last eight bytes, not every byte: it runs for every
/// attribute of every record, and a rare collision only costs a lookup.
fn head_bits(name: &str) -> u128 {
    let bytes = name.as_bytes();
    let head = &bytes[..bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len())];
    let (first, last) = match head.len() {
        0..=7 => (
            head.iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b)),
            0,
        ),
        n => (eight_bytes(&head[..8]), eight_bytes(&head[n - 8..])),
    };
    let mut hash = (first ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash = (hash.rotate_left(31) ^ last ^ head.len() as u64).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 29;
    (1u128 << (hash >> 57)) | (1u128 << ((hash >> 50) & 127))
}

fn eight_bytes(b: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[..8]);
    u64::from_le_bytes(word)
}

/// One field path on its own: what a `classify` window groups records by.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    source: String,
    field: Field,
}

impl FieldPath {
    /// Parses a path such as `attributes.user_id` or `resource.host.name`.
    pub fn parse(path: &str) -> Result<FieldPath, ConditionError> {
        let mut chars = path.chars();
        match chars.next() {
            Some(c) if is_word_start(c) => {}
            _ => return Err(err(1, format!("`{path}` is not a field path"))),
        }
        if let Some(i) = path.chars().position(|c| !is_word_char(c)) {
            return Err(err(
                i + 1,
                format!("`{path}` is not a field path: unexpected character"),
            ));
        }
        Ok(FieldPath {
            source: path.to_string(),
            field: parse_field(path, 1)?,
        })
    }

    /// The field's value as a grouping key: a string as it is, a number or boolean as its
    /// JSON text, a severity as its name. `None` when the field is missing, empty, null, an
    /// array or a map: such records belong to no group.
    pub fn key<'a>(&self, record: &'a Record, index: AttributeIndex) -> Option<Cow<'a, str>> {
        if let Field::Attributes { head, .. } = self.field
            && !index.has(head)
        {
            return None;
        }
        let key = match self.field.resolve(record)? {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Json(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Val::Severity(s) => Cow::Borrowed(s.as_str()),
            Val::Int(i) => Cow::Owned(i.to_string()),
            Val::Json(v @ (Value::Number(_) | Value::Bool(_))) => Cow::Owned(v.to_string()),
            Val::Json(_) | Val::Tags(_) => return None,
        };
        (!key.is_empty()).then_some(key)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

fn err(column: usize, message: impl Into<String>) -> ConditionError {
    ConditionError {
        column,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

#[derive(Clone)]
enum Expr {
    Const(bool),
    Not(Box<Expr>),
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
    Test(Field, Test),
}

#[derive(Clone)]
enum Test {
    Compare(CmpOp, Literal),
    In(LiteralSet),
    Matches(Pattern),
    Contains(Literal),
    Exists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Severity(Severity),
}

/// The members of an `in [...]` list; strings are sorted for a binary search, and their
/// lengths and first bytes noted so that most values are turned away without comparing.
#[derive(Clone)]
struct LiteralSet {
    strings: Box<[Box<str>]>,
    /// Bit `n` is set when a member string is `n` bytes long (`n` < 63), bit 63 for longer.
    lengths: u64,
    starts: FirstBytes,
    others: Box<[Literal]>,
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// The set of first bytes of some strings; the empty string counts as starting with any.
#[derive(Clone, Default)]
struct FirstBytes {
    bits: [u64; 4],
    empty: bool,
}

impl FirstBytes {
    fn of<'a>(strings: impl Iterator<Item = &'a str>) -> FirstBytes {
        let mut set = FirstBytes::default();
        for s in strings {
            match s.as_bytes().first() {
                Some(&b) => set.bits[usize::from(b >> 6)] |= 1 << (b & 63),
                None => set.empty = true,
            }
        }
        set
    }

    /// Whether `s` may start with one of the strings.
    fn admits(&self, s: &str) -> bool {
        match s.as_bytes().first() {
            _ if self.empty => true,
            Some(&b) => self.bits[usize::from(b >> 6)] & (1 << (b & 63)) != 0,
            None => false,
        }
    }
}

impl LiteralSet {
    fn new(items: Vec<Literal>) -> LiteralSet {
        let mut strings = Vec::new();
        let mut others = Vec::new();
        for item in items {
            match item {
                Literal::Str(s) => strings.push(s),
                other => others.push(other),
            }
        }
        strings.sort();
        strings.dedup();
        let lengths = strings.iter().fold(0, |bits, s| bits | length_bit(s.len()));
        let starts = FirstBytes::of(strings.iter().map(|s| &**s));
        LiteralSet {
            strings: strings.into(),
            lengths,
            starts,
            others: others.into(),
        }
    }

    fn has_str(&self, s: &str) -> bool {
        self.lengths & length_bit(s.len()) != 0
            && self.starts.admits(s)
            && self
                .strings
                .binary_search_by(|probe| (**probe).cmp(s))
                .is_ok()
    }

    fn has(&self, value: Val<'_>) -> bool {
        match value.string() {
            Some(s) => self.has_str(s),
            None => self.others.iter().any(|l| value.equals(l)),
        }
    }
}

/// What `matches` tests strings with. A regular expression anchored at the start whose
/// matches form a small finite set of literals, such as `^(api_key|key)\.(created|deleted)$`
/// or `^budget\.`, is expanded into those literals when it is parsed: testing a set is
/// several times cheaper than running the expression. Anything else runs the expression.
#[derive(Clone)]
enum Pattern {
    /// Exactly these strings (the expression was anchored at both ends).
    Whole(LiteralSet),
    /// Strings starting with one of these.
    Prefixes(Box<[Box<str>]>, FirstBytes),
    Regex(Regex),
}

/// The most literals an expression is expanded into.
const MAX_EXPANSION: usize = 512;

impl Pattern {
    fn new(source: &str) -> Result<Pattern, regex::Error> {
        let regex = Regex::new(source)?;
        Ok(expand_literals(source).unwrap_or(Pattern::Regex(regex)))
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Whole(set) => set.has_str(s),
            Pattern::Prefixes(prefixes, starts) => {
                starts.admits(s) && prefixes.iter().any(|p| s.starts_with(&**p))
            }
            Pattern::Regex(re) => re.is_match(s),
        }
    }
}

/// The literals of an expression of the form `^<finite>` or `^<finite>$`, where
/// `<finite>` has no other assertion and matches a finite set of strings.
fn expand_literals(source: &str) -> Option<Pattern> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::{Hir, HirKind, Look};

    let hir = regex_syntax::parse(source).ok()?;
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let (first, rest) = parts.split_first()?;
    if !matches!(first.kind(), HirKind::Look(Look::Start)) {
        return None;
    }
    let (whole, inner) = match rest.split_last() {
        Some((last, inner)) if matches!(last.kind(), HirKind::Look(Look::End)) => (true, inner),
        _ => (false, rest),
    };
    let inner = Hir::concat(inner.to_vec());
    if !inner.properties().look_set().is_empty() {
        return None;
    }
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_total(MAX_EXPANSION);
    let seq = extractor.extract(&inner);
    let literals = seq.literals()?;
    if literals.is_empty() || !literals.iter().all(|l| l.is_exact()) {
        return None;
    }
    let strings: Vec<Box<str>> = literals
        .iter()
        .map(|l| std::str::from_utf8(l.as_bytes()).ok().map(Box::from))
        .collect::<Option<_>>()?;
    Some(if whole {
        Pattern::Whole(LiteralSet::new(
            strings.into_iter().map(Literal::Str).collect(),
        ))
    } else {
        let starts = FirstBytes::of(strings.iter().map(|s| &**s));
        Pattern::Prefixes(strings.into(), starts)
    })
}

/// A record field a condition reads.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Severity,
    SeverityNumber,
    SeverityText,
    EventType,
    Source,
    TraceId,
    SpanId,
    Tags,
    Body(Option<Box<str>>),
    Attributes {
        path: Box<str>,
        head: u128,
        dotted: bool,
    },
    Resource(Box<str>),
    Scope(Box<str>),
    Redaction(Option<Box<str>>),
}

/// What a field holds in one record, borrowed from it.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Severity(Severity),
    Tags(&'a [String]),
    Json(&'a Value),
}

impl Field {
    fn resolve<'a>(&self, r: &'a Record) -> Option<Val<'a>> {
        match self {
            Field::Severity => r.severity.map(Val::Severity),
            Field::SeverityNumber => Some(Val::Int(i64::from(r.severity_number))),
            Field::SeverityText => Some(Val::Str(&r.severity_text)),
            Field::EventType => r.event_type.as_deref().map(Val::Str),
            Field::Source => Some(Val::Str(&r.source)),
            Field::TraceId => r.trace_id.as_deref().map(Val::Str),
            Field::SpanId => r.span_id.as_deref().map(Val::Str),
            Field::Tags => Some(Val::Tags(&r.tags)),
            Field::Body(None) => Some(Val::Json(&r.body)),
            Field::Body(Some(p)) => find_value(&r.body, p).map(Val::Json),
            Field::Attributes {
                path,
                dotted: false,
                ..
            } => r.attributes.get(&**path).map(Val::Json),
            Field::Attributes { path, .. } => find_in_map(&r.attributes, path).map(Val::Json),
            Field::Resource(p) => find_in_map(&r.resource, p).map(Val::Json),
            Field::Scope(p) => find_in_map(&r.scope, p).map(Val::Json),
            Field::Redaction(None) => r.redaction.as_ref().map(Val::Json),
            Field::Redaction(Some(p)) => r
                .redaction
                .as_ref()
                .and_then(|v| find_value(v, p))
                .map(Val::Json),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Field::Severity => Kind::Severity,
            Field::SeverityNumber => Kind::Number,
            Field::SeverityText
            | Field::EventType
            | Field::Source
            | Field::TraceId
            | Field::SpanId => Kind::String,
            Field::Tags => Kind::Tags,
            _ => Kind::Json,
        }
    }
}

/// The static type of a field, for checking conditions as they are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Severity,
    Number,
    String,
    Tags,
    Json,
}

impl<'a> Val<'a> {
    /// Order against a literal of a comparable type; `None` across types.
    fn compare(self, lit: &Literal) -> Option<Ordering> {
        match (self, lit) {
            (Val::Severity(s), Literal::Severity(l)) => Some(s.cmp(l)),
            (Val::Str(s), Literal::Str(l)) => Some(s.cmp(&**l)),
            (Val::Int(i), Literal::Int(l)) => Some(i.cmp(l)),
            (Val::Int(i), Literal::Float(l)) => (i as f64).partial_cmp(l),
            (Val::Json(v), _) => compare_json(v, lit),
            _ => None,
        }
    }

    fn equals(self, lit: &Literal) -> bool {
        match (self.string(), lit) {
            // Byte equality checks the lengths first, which ordering cannot.
            (Some(s), Literal::Str(l)) => s == &**l,
            _ => self.compare(lit) == Some(Ordering::Equal),
        }
    }

    /// The value as a string, when it is one.
    fn string(self) -> Option<&'a str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// What `matches` reads: strings, and the severity's name.
    fn text(self) -> Option<&'a str> {
        match self {
            Val::Severity(s) => Some(s.as_str()),
            other => other.string(),
        }
    }
}

fn compare_json(v: &Value, lit: &Literal) -> Option<Ordering> {
    match (v, lit) {
        (Value::String(s), Literal::Str(l)) => Some(s.as_str().cmp(&**l)),
        (Value::Number(n), Literal::Int(l)) => compare_number(n, *l),
        (Value::Number(n), Literal::Float(l)) => n.as_f64()?.partial_cmp(l),
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::Null, Literal::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// Maps up to this size are read in one pass by [`find_in_map`]; larger ones by lookups.
const SCAN_LIMIT: usize = 16;

/// [`lookup_map`]'s answer, found in one pass over a small map: the key equal to `path`,
/// else the longest key that is a prefix of `path` ending at a dot and under which the rest
/// of the path is found. `lookup_map` asks the map once per such prefix, and in a typical
/// audit event (a few keys, paths three or four segments deep) one pass is much cheaper.
fn find_in_map<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if m.len() > SCAN_LIMIT {
        return lookup_map(m, path);
    }
    let bytes = path.as_bytes();
    // Keys that are a prefix of the path at a dot: (length, value), at most four of them.
    let mut prefixes: [(usize, Option<&Value>); 4] = [(0, None); 4];
    let mut count = 0;
    for (key, value) in m {
        let len = key.len();
        if len > bytes.len()
            || (len < bytes.len() && bytes[len] != b'.')
            || key.as_bytes() != &bytes[..len]
        {
            continue;
        }
        if len == bytes.len() {
            return Some(value);
        }
        if count == prefixes.len() {
            return lookup_map(m, path);
        }
        prefixes[count] = (len, Some(value));
        count += 1;
    }
    let prefixes = &mut prefixes[..count];
    prefixes.sort_unstable_by_key(|&(len, _)| std::cmp::Reverse(len));
    prefixes
        .iter()
        .find_map(|&(len, value)| find_value(value?, &path[len + 1..]))
}

/// [`lookup`], with maps read by [`find_in_map`].
fn find_value<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => find_in_map(m, path),
        Value::Array(items) => {
            let (head, rest) = match path.split_once('.') {
                Some((h, r)) => (h, Some(r)),
                None => (path, None),
            };
            let item = items.get(head.parse::<usize>().ok()?)?;
            match rest {
                None => Some(item),
                Some(r) => find_value(item, r),
            }
        }
        _ => lookup(v, path),
    }
}

/// A JSON number against an integer literal, exactly when both are integers.
fn compare_number(n: &Number, l: i64) -> Option<Ordering> {
    if let Some(i) = n.as_i64() {
        Some(i.cmp(&l))
    } else if n.as_u64().is_some() {
        // Only integers above i64::MAX fail `as_i64` yet pass `as_u64`.
        Some(Ordering::Greater)
    } else {
        n.as_f64()?.partial_cmp(&(l as f64))
    }
}

impl Expr {
    fn eval(&self, r: &Record, index: AttributeIndex) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Not(e) => !e.eval(r, index),
            Expr::And(es) => es.iter().all(|e| e.may_hold(index) && e.eval(r, index)),
            Expr::Or(es) => es.iter().any(|e| e.may_hold(index) && e.eval(r, index)),
            Expr::Test(field, test) => {
                let Some(value) = field.resolve(r) else {
                    return false;
                };
                test.eval(value)
            }
        }
    }

    /// False when the index shows this is a test of an absent attribute. Checked before
    /// descending, so that the common case, a test of a field the record does not have,
    /// costs a bit test rather than a call.
    #[inline(always)]
    fn may_hold(&self, index: AttributeIndex) -> bool {
        match self {
            Expr::Test(Field::Attributes { head, .. }, _) => index.has(*head),
            _ => true,
        }
    }

    /// Attribute heads of which at least one must be present for this to hold. Every test
    /// of a missing field is false, so a test of an attribute needs its head; `or` needs one
    /// of its branches' heads, `and` those of any one child (the shortest list is kept), and
    /// `not` nothing. `Some(empty)` never holds.
    fn required_heads(&self) -> Option<Vec<u128>> {
        match self {
            Expr::Const(true) | Expr::Not(_) => None,
            Expr::Const(false) => Some(Vec::new()),
            Expr::Test(Field::Attributes { head, .. }, _) => Some(vec![*head]),
            Expr::Test(..) => None,
            Expr::Or(es) => {
                es.iter()
                    .map(Expr::required_heads)
                    .try_fold(Vec::new(), |mut all, heads| {
                        all.extend(heads?);
                        Some(all)
                    })
            }
            Expr::And(es) => es
                .iter()
                .filter_map(Expr::required_heads)
                .min_by_key(Vec::len),
        }
    }
}

impl Test {
    fn eval(&self, value: Val<'_>) -> bool {
        match self {
            Test::Exists => match value {
                Val::Tags(tags) => !tags.is_empty(),
                _ => true,
            },
            Test::Compare(CmpOp::Eq, lit) => value.equals(lit),
            Test::Compare(CmpOp::Ne, lit) => !value.equals(lit),
            Test::Compare(op, lit) => value.compare(lit).is_some_and(|ord| op.holds(ord)),
            Test::In(set) => set.has(value),
            Test::Matches(pattern) => value.text().is_some_and(|s| pattern.is_match(s)),
            Test::Contains(lit) => match (value, lit) {
                (Val::Tags(tags), Literal::Str(l)) => tags.iter().any(|t| **t == **l),
                (Val::Json(Value::Array(items)), _) => items
                    .iter()
                    .any(|v| compare_json(v, lit) == Some(Ordering::Equal)),
                (_, Literal::Str(l)) => value.string().is_some_and(|s| s.contains(&**l)),
                _ => false,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Str(s) => write!(f, "the string '{s}'"),
            Tok::Int(i) => write!(f, "the number {i}"),
            Tok::Float(x) => write!(f, "the number {x}"),
            Tok::Op(op) => write!(f, "`{}`", op.as_str()),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBracket => f.write_str("`[`"),
            Tok::RBracket => f.write_str("`]`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::End => f.write_str("the end of the condition"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    column: usize,
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || matches!(c, '_' | '@' | '$')
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '@' | '$' | '-' | '.')
}

fn lex(source: &str) -> Result<Vec<Token>, ConditionError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let single = |kind| Token { kind, column };
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => tokens.push(single(Tok::LParen)),
            ')' => tokens.push(single(Tok::RParen)),
            '[' => tokens.push(single(Tok::LBracket)),
            ']' => tokens.push(single(Tok::RBracket)),
            ',' => tokens.push(single(Tok::Comma)),
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (CmpOp::Eq, 2),
                    ('!', Some('=')) => (CmpOp::Ne, 2),
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', _) => (CmpOp::Gt, 1),
                    ('=', _) => {
                        return Err(err(column, "`=` is not an operator: use `==` to compare"));
                    }
                    _ => {
                        return Err(err(
                            column,
                            "`!` is not an operator: use `not` to negate, `!=` to compare",
                        ));
                    }
                };
                tokens.push(single(Tok::Op(op)));
                i += len;
                continue;
            }
            '&' | '|' => {
                let word = if c == '&' { "and" } else { "or" };
                return Err(err(
                    column,
                    format!("`{c}` is not an operator: use `{word}`"),
                ));
            }
            '\'' | '"' => {
                let (text, end) = lex_string(&chars, i)?;
                tokens.push(single(Tok::Str(text)));
                i = end;
                continue;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let (kind, end) = lex_number(&chars, i)?;
                tokens.push(single(kind));
                i = end;
                continue;
            }
            c if is_word_start(c) => {
                let mut end = i;
                while end < chars.len() && is_word_char(chars[end]) {
                    end += 1;
                }
                tokens.push(single(Tok::Word(chars[i..end].iter().collect())));
                i = end;
                continue;
            }
            other => return Err(err(column, format!("unexpected character `{other}`"))),
        }
        i += 1;
    }
    tokens.push(Token {
        kind: Tok::End,
        column: chars.len() + 1,
    });
    Ok(tokens)
}

/// A quoted string starting at `start`; returns its text and the index after the quote.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), ConditionError> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if matches!(chars.get(i + 1), Some('\\' | '\'' | '"')) => {
                text.push(chars[i + 1]);
                i += 2;
            }
            c if c == quote => return Ok((text, i + 1)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err(err(
        start + 1,
        format!("the string that starts here is never closed: add a closing {quote}"),
    ))
}

fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize), ConditionError> {
    let mut end = start + 1;
    let digits = |end: &mut usize| {
        while *end < chars.len() && chars[*end].is_ascii_digit() {
            *end += 1;
        }
    };
    digits(&mut end);
    let mut float = false;
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(|d| d.is_ascii_digit()) {
        float = true;
        end += 1;
        digits(&mut end);
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let mut exp = end + 1;
        if matches!(chars.get(exp), Some('+' | '-')) {
            exp += 1;
        }
        if chars.get(exp).is_some_and(|d| d.is_ascii_digit()) {
            float = true;
            end = exp;
            digits(&mut end);
        }
    }
    let text: String = chars[start..end].iter().collect();
    if chars.get(end).is_some_and(|&c| is_word_char(c)) {
        let mut word_end = end;
        while word_end < chars.len() && is_word_char(chars[word_end]) {
            word_end += 1;
        }
        let word: String = chars[start..word_end].iter().collect();
        return Err(err(
            start + 1,
            format!("`{word}` is not a number; quote it if it is a string: '{word}'"),
        ));
    }
    let kind = if float {
        Tok::Float(
            text.parse()
                .map_err(|_| err(start + 1, format!("`{text}` is not a number")))?,
        )
    } else {
        match text.parse::<i64>() {
            Ok(i) => Tok::Int(i),
            Err(_) => {
                return Err(err(
                    start + 1,
                    format!("`{text}` is too large for an integer"),
                ));
            }
        }
    };
    Ok((kind, end))
}

// ---------------------------------------------------------------------------------------
// Parsing and type checking

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "matches", "contains", "exists", "true", "false", "null",
];

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    depth: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &'t Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> &'t Token {
        let t = self.peek();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn at_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, Tok::Word(w) if w == word)
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and()?];
        while self.at_word("or") {
            self.bump();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items.into())
        })
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.unary()?];
        while self.at_word("and") {
            self.bump();
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items.into())
        })
    }

    fn nested<T>(
        &mut self,
        column: usize,
        f: impl FnOnce(&mut Self) -> Result<T, ConditionError>,
    ) -> Result<T, ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                column,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn unary(&mut self) -> Result<Expr, ConditionError> {
        let token = self.bump();
        match &token.kind {
            Tok::Word(w) if w == "not" => {
                self.nested(token.column, |p| Ok(Expr::Not(Box::new(p.unary()?))))
            }
            Tok::LParen => self.nested(token.column, |p| {
                let inner = p.or()?;
                let close = p.bump();
                if close.kind != Tok::RParen {
                    return Err(err(
                        close.column,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            token.column, close.kind
                        ),
                    ));
                }
                Ok(inner)
            }),
            Tok::Word(w) if w == "true" || w == "false" => Ok(Expr::Const(w == "true")),
            Tok::Word(w) if KEYWORDS.contains(&w.as_str()) => Err(err(
                token.column,
                format!("expected a field or `(`, found the keyword `{w}`"),
            )),
            Tok::Word(w) => {
                let field = parse_field(w, token.column)?;
                self.predicate(field, token.column)
            }
            other => Err(err(
                token.column,
                format!("expected a field, `not` or `(`, found {other}"),
            )),
        }
    }

    fn predicate(&mut self, field: Field, field_column: usize) -> Result<Expr, ConditionError> {
        let token = self.bump();
        let test = match &token.kind {
            Tok::Op(op) => {
                let (lit, column) = self.literal(&field)?;
                check_compare(&field, *op, &lit, column)?;
                Test::Compare(*op, lit)
            }
            Tok::Word(w) if w == "in" => Test::In(self.list(&field, token.column)?),
            Tok::Word(w) if w == "exists" => Test::Exists,
            Tok::Word(w) if w == "matches" => {
                let pattern = self.bump();
                let Tok::Str(text) = &pattern.kind else {
                    return Err(err(
                        pattern.column,
                        format!(
                            "`matches` takes a quoted regular expression, found {}",
                            pattern.kind
                        ),
                    ));
                };
                if matches!(field.kind(), Kind::Number | Kind::Tags) {
                    return Err(err(
                        token.column,
                        format!(
                            "{} is not a string; `matches` tests strings",
                            field_name(&field)
                        ),
                    ));
                }
                let compiled = Pattern::new(text).map_err(|e| {
                    err(
                        pattern.column,
                        format!("invalid regular expression: {}", regex_message(&e)),
                    )
                })?;
                Test::Matches(compiled)
            }
            Tok::Word(w) if w == "contains" => {
                if matches!(field.kind(), Kind::Severity | Kind::Number) {
                    return Err(err(
                        token.column,
                        format!(
                            "`contains` tests strings and arrays, not {}",
                            field_name(&field)
                        ),
                    ));
                }
                let (lit, column) = self.literal(&field)?;
                match (field.kind(), &lit) {
                    (Kind::Json, Literal::Severity(_)) => misplaced_severity(column)?,
                    (Kind::Tags | Kind::String, lit) if !matches!(lit, Literal::Str(_)) => {
                        return Err(err(
                            column,
                            format!(
                                "{} holds strings: `contains` takes a quoted string",
                                field_name(&field)
                            ),
                        ));
                    }
                    _ => {}
                }
                Test::Contains(lit)
            }
            Tok::End => {
                return Err(err(
                    token.column,
                    format!(
                        "`{}` needs a test after it: `==`, `in [..]`, `matches '..'`, `contains`, `exists`, …",
                        field_source(&field)
                    ),
                ));
            }
            other => {
                return Err(err(
                    token.column,
                    format!(
                        "expected a test on the field at column {field_column} (`==`, `!=`, `<`, `in`, `matches`, `contains`, `exists`), found {other}"
                    ),
                ));
            }
        };
        Ok(Expr::Test(field, test))
    }

    fn literal(&mut self, field: &Field) -> Result<(Literal, usize), ConditionError> {
        let token = self.bump();
        let column = token.column;
        let severity_field = field.kind() == Kind::Severity;
        let lit = match &token.kind {
            Tok::Str(s) if severity_field => Literal::Severity(severity_word(s, column)?),
            Tok::Str(s) => Literal::Str(s.as_str().into()),
            Tok::Int(i) => Literal::Int(*i),
            Tok::Float(x) => Literal::Float(*x),
            Tok::Word(w) if w == "true" || w == "false" => Literal::Bool(w == "true"),
            Tok::Word(w) if w == "null" => Literal::Null,
            Tok::Word(w) if severity_field => Literal::Severity(severity_word(w, column)?),
            Tok::Word(w) => {
                let hint = if Severity::parse(w).is_some() {
                    " (bare severity words are only for `severity`)"
                } else {
                    ""
                };
                return Err(err(
                    column,
                    format!("`{w}` is not a value: quote strings, as in '{w}'{hint}"),
                ));
            }
            other => {
                return Err(err(
                    column,
                    format!(
                        "expected a value (a quoted string, a number, true, false or null), found {other}"
                    ),
                ));
            }
        };
        Ok((lit, column))
    }

    fn list(&mut self, field: &Field, in_column: usize) -> Result<LiteralSet, ConditionError> {
        let open = self.bump();
        if open.kind != Tok::LBracket {
            return Err(err(
                open.column,
                format!("`in` takes a list like ['a', 'b'], found {}", open.kind),
            ));
        }
        if field.kind() == Kind::Tags {
            return Err(err(
                in_column,
                "`tags` is a list: test it with `tags contains '...'`",
            ));
        }
        let mut items = Vec::new();
        loop {
            if self.peek().kind == Tok::RBracket && items.is_empty() {
                return Err(err(
                    self.peek().column,
                    "an empty list never matches; name at least one value",
                ));
            }
            let (lit, column) = self.literal(field)?;
            check_compare(field, CmpOp::Eq, &lit, column)?;
            items.push(lit);
            let sep = self.bump();
            match sep.kind {
                Tok::Comma if self.peek().kind == Tok::RBracket => {
                    self.bump();
                    break;
                }
                Tok::Comma => continue,
                Tok::RBracket => break,
                ref other => {
                    return Err(err(
                        sep.column,
                        format!("expected `,` or `]` in the list, found {other}"),
                    ));
                }
            }
        }
        Ok(LiteralSet::new(items))
    }
}

fn misplaced_severity(column: usize) -> Result<(), ConditionError> {
    // Severity literals are only produced for the `severity` field; kept as an error
    // rather than a panic should that ever change.
    Err(err(
        column,
        "a severity word is only a value for `severity`",
    ))
}

/// Refuses comparisons that can never hold or make no sense for the field's type.
fn check_compare(
    field: &Field,
    op: CmpOp,
    lit: &Literal,
    column: usize,
) -> Result<(), ConditionError> {
    let name = field_name(field);
    match (field.kind(), lit) {
        (Kind::Severity, Literal::Severity(_)) => Ok(()),
        (Kind::Severity, _) => Err(err(
            column,
            "`severity` is compared with info, low, medium, high or critical",
        )),
        (Kind::Number, Literal::Int(_) | Literal::Float(_)) => Ok(()),
        (Kind::Number, _) => Err(err(
            column,
            format!("{name} is a number; compare it with a number"),
        )),
        (Kind::String, Literal::Str(_)) => Ok(()),
        (Kind::String, _) => Err(err(
            column,
            format!("{name} is a string; compare it with a quoted string"),
        )),
        (Kind::Tags, _) => Err(err(
            column,
            "`tags` is a list: test it with `tags contains '...'`",
        )),
        (Kind::Json, Literal::Bool(_) | Literal::Null) if op.is_ordering() => Err(err(
            column,
            format!("`{}` orders numbers and strings only", op.as_str()),
        )),
        (Kind::Json, Literal::Severity(_)) => misplaced_severity(column),
        (Kind::Json, _) => Ok(()),
    }
}

fn severity_word(word: &str, column: usize) -> Result<Severity, ConditionError> {
    Severity::parse(word).ok_or_else(|| {
        err(
            column,
            format!("`{word}` is not a severity: expected info, low, medium, high or critical"),
        )
    })
}

fn regex_message(e: &regex::Error) -> String {
    // The syntax error's own text spans several lines with a caret diagram; keep its
    // last line, which says what is wrong.
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

const SCALAR_FIELDS: &[&str] = &[
    "severity",
    "severity_number",
    "severity_text",
    "event_type",
    "source",
    "trace_id",
    "span_id",
    "tags",
];

fn parse_field(path: &str, column: usize) -> Result<Field, ConditionError> {
    if path.starts_with('.') || path.ends_with('.') || path.contains("..") {
        return Err(err(
            column,
            format!("`{path}` has an empty segment between dots"),
        ));
    }
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let rest_box = rest.map(Box::<str>::from);
    let needs_key = |f: fn(Box<str>) -> Field| match rest {
        Some(r) => Ok(f(r.into())),
        None => Err(err(
            column,
            format!("`{head}` is a map: name a key, as in `{head}.<key>`"),
        )),
    };
    let scalar = |f: Field| match rest {
        None => Ok(f),
        Some(_) => Err(err(column, format!("`{head}` has no fields below it"))),
    };
    match head {
        "severity" => scalar(Field::Severity),
        "severity_number" => scalar(Field::SeverityNumber),
        "severity_text" => scalar(Field::SeverityText),
        "event_type" => scalar(Field::EventType),
        "source" => scalar(Field::Source),
        "trace_id" => scalar(Field::TraceId),
        "span_id" => scalar(Field::SpanId),
        "tags" => scalar(Field::Tags),
        "body" => Ok(Field::Body(rest_box)),
        "redaction" => Ok(Field::Redaction(rest_box)),
        "attributes" => needs_key(|path| Field::Attributes {
            head: head_bits(&path),
            dotted: path.contains('.'),
            path,
        }),
        "resource" => needs_key(Field::Resource),
        "scope" => needs_key(Field::Scope),
        _ => {
            let hint = match head {
                "attribute" | "attrs" | "attr" => format!(
                    "; did you mean `attributes{}`?",
                    rest.map(|r| format!(".{r}")).unwrap_or_default()
                ),
                _ => format!(
                    "; an event's own keys live under `attributes`, as in `attributes.{path}`"
                ),
            };
            Err(err(
                column,
                format!(
                    "unknown field `{path}`: a path starts with `attributes.`, `body`, `resource.`, `scope.` or `redaction`, or is one of {}{hint}",
                    SCALAR_FIELDS.join(", ")
                ),
            ))
        }
    }
}

fn field_source(field: &Field) -> String {
    let with = |head: &str, rest: &Option<Box<str>>| match rest {
        Some(r) => format!("{head}.{r}"),
        None => head.to_string(),
    };
    match field {
        Field::Severity => "severity".into(),
        Field::SeverityNumber => "severity_number".into(),
        Field::SeverityText => "severity_text".into(),
        Field::EventType => "event_type".into(),
        Field::Source => "source".into(),
        Field::TraceId => "trace_id".into(),
        Field::SpanId => "span_id".into(),
        Field::Tags => "tags".into(),
        Field::Body(r) => with("body", r),
        Field::Redaction(r) => with("redaction", r),
        Field::Attributes { path, .. } => format!("attributes.{path}"),
        Field::Resource(r) => format!("resource.{r}"),
        Field::Scope(r) => format!("scope.{r}"),
    }
}

fn field_name(field: &Field) -> String {
    format!("`{}`", field_source(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Record {
        let mut r = Record::new("http/gateway");
        r.severity = Some(Severity::High);
        r.severity_number = 20;
        r.event_type = Some("authentication".into());
        r.attributes.insert("action".into(), json!("login.failed"));
        r.attributes.insert("user_id".into(), json!("u-17"));
        r.attributes.insert("status".into(), json!(401));
        r.attributes.insert("status_text".into(), json!("401"));
        r.attributes.insert("ratio".into(), json!(0.25));
        r.attributes.insert("admin".into(), json!(true));
        r.attributes.insert("nothing".into(), json!(null));
        r.attributes
            .insert("roles".into(), json!(["viewer", "admin"]));
        r.attributes.insert("huge".into(), json!(u64::MAX));
        r.attributes.insert(
            "actor".into(),
            json!({"session": {"user": {"id": "user-abc"}, "ip_address": "10.0.0.7"}}),
        );
        r.attributes.insert(
            "login.failed".into(),
            json!({"error_code": "invalid_credentials"}),
        );
        r.resource
            .insert("service.name".into(), json!("litellm-proxy"));
        r.body = json!({"status": "denied", "items": [{"id": 3}]});
        r.tags = vec!["failed_login_burst".into()];
        r
    }

    fn eval(src: &str) -> bool {
        match Condition::parse(src) {
            Ok(c) => c.eval(&record()),
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn parse_err(src: &str) -> ConditionError {
        match Condition::parse(src) {
            Ok(_) => panic!("{src} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn equality_on_strings_numbers_booleans_and_null() {
        assert!(eval("attributes.action == 'login.failed'"));
        assert!(eval("attributes.action == \"login.failed\""));
        assert!(!eval("attributes.action == 'login.succeeded'"));
        assert!(eval("attributes.status == 401"));
        assert!(eval("attributes.status == 401.0"));
        assert!(eval("attributes.ratio == 0.25"));
        assert!(eval("attributes.admin == true"));
        assert!(!eval("attributes.admin == false"));
        assert!(eval("attributes.nothing == null"));
        assert!(eval("body.status == 'denied'"));
        assert!(eval("body.items.0.id == 3"));
        assert!(eval("resource.service.name == 'litellm-proxy'"));
        assert!(eval("attributes.actor.session.user.id == 'user-abc'"));
        assert!(eval(
            "attributes.login.failed.error_code == 'invalid_credentials'"
        ));
        assert!(eval("event_type == 'authentication'"));
        assert!(eval("source == 'http/gateway'"));
    }

    #[test]
    fn strings_and_numbers_are_never_equal() {
        assert!(!eval("attributes.status == '401'"));
        assert!(!eval("attributes.status_text == 401"));
        assert!(eval("attributes.status != '401'"));
        assert!(eval("attributes.status_text != 401"));
        assert!(!eval("attributes.status < '5'"));
        assert!(!eval("attributes.admin == 1"));
    }

    #[test]
    fn missing_fields_fail_every_test_and_not_inverts_that() {
        for test in [
            "== 'x'",
            "!= 'x'",
            "< 3",
            ">= 'a'",
            "in ['x', 1]",
            "matches '.*'",
            "contains 'x'",
            "exists",
        ] {
            assert!(!eval(&format!("attributes.missing {test}")), "{test}");
            assert!(eval(&format!("not attributes.missing {test}")), "{test}");
        }
        let mut unclassified = record();
        unclassified.severity = None;
        unclassified.event_type = None;
        for src in [
            "severity >= info",
            "severity != high",
            "event_type != 'x'",
            "event_type exists",
        ] {
            assert!(!Condition::parse(src).unwrap().eval(&unclassified), "{src}");
        }
        assert!(eval("attributes.nothing exists"));
    }

    #[test]
    fn ordering_numbers_by_value_and_strings_by_bytes() {
        assert!(eval("attributes.status >= 400 and attributes.status < 500"));
        assert!(eval("attributes.status > 400.5"));
        assert!(!eval("attributes.status > 401"));
        assert!(eval("attributes.ratio < 1"));
        assert!(eval("attributes.huge > 9223372036854775807"));
        assert!(eval(
            "attributes.user_id > 'u-1' and attributes.user_id < 'u-2'"
        ));
        assert!(eval("severity_number >= 17"));
        assert!(eval("attributes.status > -1"));
    }

    #[test]
    fn severity_compares_on_its_scale() {
        assert!(eval("severity >= high"));
        assert!(eval("severity > medium"));
        assert!(!eval("severity > high"));
        assert!(eval("severity == 'high'"));
        assert!(eval("severity < critical"));
        assert!(eval("severity in [high, critical]"));
        assert!(!eval("severity in [info, 'low']"));
        assert!(eval("severity matches '^hi'"));
    }

    #[test]
    fn in_lists_matches_and_contains() {
        assert!(eval(
            "attributes.action in ['login.failed', 'logout.failed']"
        ));
        assert!(eval("attributes.status in [400, 401, 403]"));
        assert!(!eval("attributes.status in ['401']"));
        assert!(eval(
            "attributes.action matches '^login\\.(failed|denied)$'"
        ));
        assert!(!eval("attributes.status matches '401'"));
        assert!(eval("attributes.roles contains 'admin'"));
        assert!(!eval("attributes.roles contains 'owner'"));
        assert!(eval("attributes.action contains 'fail'"));
        assert!(eval("tags contains 'failed_login_burst'"));
        assert!(eval("tags exists"));
        assert!(eval("event_type contains 'auth'"));
    }

    #[test]
    fn string_escapes_keep_regex_backslashes() {
        assert!(eval(r"attributes.action matches 'login\.failed'"));
        let mut r = record();
        r.attributes
            .insert("q".into(), json!("it's \"quoted\" \\ here"));
        let c = Condition::parse(r#"attributes.q == 'it\'s "quoted" \\ here'"#).unwrap();
        assert!(c.eval(&r));
        let c = Condition::parse(r#"attributes.q == "it's \"quoted\" \\ here""#).unwrap();
        assert!(c.eval(&r));
    }

    #[test]
    fn boolean_structure_and_precedence() {
        assert!(eval("true"));
        assert!(!eval("false"));
        // `not` binds tighter than `and`, `and` tighter than `or`.
        assert!(eval(
            "attributes.status == 1 or attributes.status == 401 and severity == high"
        ));
        assert!(!eval(
            "(attributes.status == 1 or attributes.status == 401) and severity == low"
        ));
        assert!(eval(
            "not attributes.status == 1 and not (severity == low or severity == info)"
        ));
        assert!(eval("not not attributes.admin == true"));
        assert!(!eval("attributes.admin == true and false"));
    }

    /// An independent reference: the same three-valued rules written directly against
    /// `Record::get_path`, checked on random combinations.
    #[test]
    fn agrees_with_a_direct_reading_of_the_rules() {
        use proptest::prelude::*;
        let values = [
            json!("a"),
            json!("b"),
            json!(1),
            json!(2.5),
            json!(true),
            json!(null),
        ];
        let literals = ["'a'", "'b'", "1", "2.5", "true", "null"];
        let reference = |v: Option<&Value>, op: &str, lit: &Value| -> bool {
            let Some(v) = v else { return false };
            let eq = match (v, lit) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => v == lit,
            };
            let ord = match (v, lit) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => None,
            };
            match op {
                "==" => eq,
                "!=" => !eq,
                "<" => ord == Some(Ordering::Less),
                ">=" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                _ => unreachable!(),
            }
        };
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(0..7usize, 0..6usize, 0..4usize, any::<bool>()),
                |(vi, li, oi, negate)| {
                    let op = ["==", "!=", "<", ">="][oi];
                    if (literals[li] == "true" || literals[li] == "null")
                        && (op == "<" || op == ">=")
                    {
                        return Ok(());
                    }
                    let mut r = Record::default();
                    if vi < values.len() {
                        r.attributes.insert("x".into(), values[vi].clone());
                    }
                    let lit: Value =
                        serde_json::from_str(&literals[li].replace('\'', "\"")).unwrap();
                    let src = format!(
                        "{}attributes.x {op} {}",
                        if negate { "not " } else { "" },
                        literals[li]
                    );
                    let expected =
                        reference(r.get_path("attributes.x").as_ref(), op, &lit) != negate;
                    prop_assert_eq!(
                        Condition::parse(&src).unwrap().eval(&r),
                        expected,
                        "{}",
                        src
                    );
                    Ok(())
                },
            )
            .unwrap();
    }

    /// `find_in_map` must answer exactly as `event::lookup_map`, dotted keys, arrays and
    /// dead ends included.
    #[test]
    fn one_pass_lookup_agrees_with_lookup_map() {
        use proptest::prelude::*;
        let segment = prop::sample::select(vec!["a", "b", "c", "0", "1"]);
        let key = prop::collection::vec(segment.clone(), 1..4).prop_map(|s| s.join("."));
        let leaf = prop_oneof![Just(json!(1)), Just(json!("x")), Just(json!(null))];
        let value = leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::btree_map(key.clone(), inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(inner, 0..3).prop_map(Value::Array),
            ]
        });
        let path = prop::collection::vec(segment, 1..6).prop_map(|s| s.join("."));
        // More prefixes of one path than the single pass keeps: it hands over to lookup_map.
        let nested: Map<String, Value> = serde_json::from_value(json!({
            "a": {"b": 1}, "a.b": {"c": 2}, "a.b.c": {"x": 3}, "a.b.c.d": {"e": {"f": 4}}, "a.b.c.d.e": {"g": 5}
        }))
        .unwrap();
        for path in ["a.b.c.d.e.f", "a.b.c.d.e.g", "a.b.c", "a.b", "a.b.c.d.e.h"] {
            assert_eq!(
                find_in_map(&nested, path),
                lookup_map(&nested, path),
                "{path}"
            );
        }
        assert_eq!(find_in_map(&nested, "a.b.c.d.e.f"), Some(&json!(4)));

        let mut runner =
            proptest::test_runner::TestRunner::new(proptest::test_runner::Config::with_cases(2000));
        runner
            .run(&(value, path), |(v, path)| {
                let Value::Object(m) = &v else { return Ok(()) };
                let expected = lookup_map(m, &path).map(|x| x as *const Value);
                let got = find_in_map(m, &path).map(|x| x as *const Value);
                prop_assert_eq!(got, expected, "{} in {}", path, v);
                Ok(())
            })
            .unwrap();
    }

    /// Expanded patterns must match exactly what the regular expression matches.
    #[test]
    fn expanded_patterns_agree_with_the_regular_expression() {
        let patterns = [
            r"^(api_key|key|keys|virtual_key)\.(created|rotated|deleted)$",
            r"^guardrails?\.(deleted|disabled)$",
            r"^(budget|rate_limit|quota)\.",
            r"^/v1/(api-keys|virtual-keys)",
            r"^/v1/admin/(users|workspaces/[^/]+/users)",
            r"^login$",
            r"^$",
            r"^(a|ab|abc)$",
            r"^(|x)y?",
            r"^(|é)$",
            r"^a?b$",
            r"^(?i)key\.created$",
            r"^x\.(\d)$",
            r"login\.failed",
            r"^k(e|ey)y\b",
        ];
        let inputs = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "b",
            "login",
            "login.failed",
            "xlogin",
            "key.created",
            "KEY.created",
            "key.created.x",
            "keys.rotated",
            "virtual_key.deleted",
            "api_key.rotated ",
            "guardrail.deleted",
            "guardrails.disabled",
            "guardrails.removed",
            "budget.updated",
            "budget",
            "quota.",
            "rate_limit.x",
            "/v1/api-keys/ws",
            "/v1/virtual-keys",
            "/v2/api-keys",
            "/v1/admin/users",
            "/v1/admin/workspaces/w1/users",
            "x.1",
            "x.12",
            "kkey",
            "keey",
            "key",
            "\u{212A}ey.created",
            "é",
            "éy",
            "y",
            "xy",
        ];
        for source in patterns {
            let regex = Regex::new(source).unwrap();
            let pattern = Pattern::new(source).unwrap();
            for input in inputs {
                assert_eq!(
                    pattern.is_match(input),
                    regex.is_match(input),
                    "{source} on {input:?}"
                );
            }
        }
        assert!(matches!(
            Pattern::new(patterns[0]).unwrap(),
            Pattern::Whole(_)
        ));
        assert!(matches!(
            Pattern::new(patterns[2]).unwrap(),
            Pattern::Prefixes(..)
        ));
        assert!(matches!(
            Pattern::new(patterns[4]).unwrap(),
            Pattern::Regex(_)
        ));
        assert!(matches!(
            Pattern::new(patterns[11]).unwrap(),
            Pattern::Regex(_)
        ));
    }

    /// The attribute index only saves work: with it, every condition answers as without.
    #[test]
    fn the_attribute_index_never_changes_an_answer() {
        use proptest::prelude::*;
        let key = prop::sample::select(vec!["a", "b", "a.b", "b.c", "ab", "c", "a.b.c"]);
        let attributes = prop::collection::btree_map(
            key,
            prop_oneof![
                Just(json!(1)),
                Just(json!({"b": 1, "c": {"d": 1}})),
                Just(json!([1, {"b": 1}]))
            ],
            0..5,
        );
        let path = prop::sample::select(vec![
            "a", "b", "a.b", "a.b.c", "b.c", "ab", "c.d", "a.0", "a.1.b", "x",
        ]);
        let test = prop::sample::select(vec!["exists", "== 1", "!= 1", "in [1, 2]"]);
        let atom = (path, test).prop_map(|(p, t)| format!("attributes.{p} {t}"));
        let condition = atom.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
                inner.prop_map(|a| format!("not {a}")),
            ]
        });
        let mut runner =
            proptest::test_runner::TestRunner::new(proptest::test_runner::Config::with_cases(3000));
        runner
            .run(&(attributes, condition), |(attributes, source)| {
                let r = Record {
                    attributes: attributes
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    ..Record::default()
                };
                let c = Condition::parse(&source).unwrap();
                prop_assert_eq!(
                    c.eval_indexed(&r, AttributeIndex::of(&r)),
                    c.eval(&r),
                    "{}",
                    source
                );
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = parse_err("severity == 'bogus'");
        assert_eq!(e.column, 13);
        assert!(e.message.contains("not a severity"), "{}", e.message);
        assert_eq!(parse_err("severity >= 3").column, 13);
        assert_eq!(parse_err("event_type == 3").column, 15);
        assert_eq!(parse_err("severity_number == 'x'").column, 20);
        let e = parse_err("user_id == 'x'");
        assert_eq!(e.column, 1);
        assert!(e.message.contains("attributes.user_id"), "{}", e.message);
        let e = parse_err("attributes.action matches '(unclosed'");
        assert_eq!(e.column, 27);
        assert!(
            e.message.contains("invalid regular expression"),
            "{}",
            e.message
        );
        let e = parse_err("attributes.a == 'x' and");
        assert_eq!(e.column, 24);
        let e = parse_err("attributes.a == 'x");
        assert_eq!(e.column, 17);
        assert!(e.message.contains("never closed"));
        assert_eq!(parse_err("attributes.a = 'x'").column, 14);
        assert!(
            parse_err("attributes.a == 'x' && true")
                .message
                .contains("use `and`")
        );
        assert_eq!(parse_err("(attributes.a == 1").column, 19);
        assert_eq!(parse_err("attributes.a == 1)").column, 18);
        assert!(
            parse_err("attributes.a == admin")
                .message
                .contains("quote strings")
        );
        assert!(
            parse_err("attributes.a == high")
                .message
                .contains("only for `severity`")
        );
        assert_eq!(parse_err("attributes.a in []").column, 18);
        assert_eq!(parse_err("attributes.a > true").column, 16);
        assert!(parse_err("attributes").message.contains("name a key"));
        assert!(
            parse_err("severity.x == high")
                .message
                .contains("no fields below")
        );
        assert!(parse_err("tags == 'x'").message.contains("tags contains"));
        assert_eq!(parse_err("severity contains 'hi'").column, 10);
        assert_eq!(parse_err("tags contains 3").column, 15);
        assert_eq!(parse_err("attributes.a == 5m").column, 17);
        assert_eq!(parse_err("attributes.x..y exists").column, 1);
        assert!(parse_err("attributes.a").message.contains("needs a test"));
        assert_eq!(parse_err("attributes.a == 1 attributes.b == 2").column, 19);
        // Columns count characters, not bytes.
        assert_eq!(parse_err("attributes.é == 'é' and ?").column, 25);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = parse_err(&deep);
        assert!(e.message.contains("nested more than"), "{}", e.message);
        let nots = format!("{}true", "not ".repeat(10_000));
        assert!(parse_err(&nots).message.contains("nested more than"));
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Condition::parse(&ok).is_ok());
    }

    #[test]
    fn source_is_kept_for_messages() {
        let c = Condition::parse("severity >= high").unwrap();
        assert_eq!(c.source(), "severity >= high");
        assert_eq!(c.to_string(), "severity >= high");
    }
}
