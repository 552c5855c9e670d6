//! Record fields as conditions name them: parsing a path into a [`Field`], reading it
//! from a record without allocating, [`FieldPath`] for `classify` windows and the
//! [`AttributeIndex`] that rules out tests of absent attributes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::eval::Val;
use super::lexer::{is_word_char, is_word_start};
use super::{ConditionError, err};
use crate::event::{Record, lookup, lookup_map};

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

    /// The filter's bits.
    pub(super) fn bits(self) -> u128 {
        self.0
    }

    /// Whether a head (its two bits) may be present.
    pub(super) fn has(self, head: u128) -> bool {
        self.0 & head == head
    }
}

/// The two filter bits of a name's head (its bytes before the first dot). The hash reads
/// the head's length and its first and last eight bytes, not every byte: it runs for every
/// attribute of every record, and a rare collision only costs a lookup.
pub(super) fn head_bits(name: &str) -> u128 {
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

pub(super) fn eight_bytes(b: &[u8]) -> u64 {
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

/// A record field a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field {
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

impl Field {
    pub(super) fn resolve<'a>(&self, r: &'a Record) -> Option<Val<'a>> {
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

    pub(super) fn kind(&self) -> Kind {
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
pub(super) enum Kind {
    Severity,
    Number,
    String,
    Tags,
    Json,
}

/// Maps up to this size are read in one pass by [`find_in_map`]; larger ones by lookups.
pub(super) const SCAN_LIMIT: usize = 16;

/// [`lookup_map`]'s answer, found in one pass over a small map: the key equal to `path`,
/// else the longest key that is a prefix of `path` ending at a dot and under which the rest
/// of the path is found. `lookup_map` asks the map once per such prefix, and in a typical
/// audit event (a few keys, paths three or four segments deep) one pass is much cheaper.
pub(super) fn find_in_map<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
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
pub(super) fn find_value<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
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

pub(super) const SCALAR_FIELDS: &[&str] = &[
    "severity",
    "severity_number",
    "severity_text",
    "event_type",
    "source",
    "trace_id",
    "span_id",
    "tags",
];

pub(super) fn parse_field(path: &str, column: usize) -> Result<Field, ConditionError> {
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

pub(super) fn field_source(field: &Field) -> String {
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

pub(super) fn field_name(field: &Field) -> String {
    format!("`{}`", field_source(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Condition;
    use serde_json::json;

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
}
