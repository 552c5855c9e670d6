//! A YAML document as a tree of located nodes.
//!
//! Typed deserialization stops at the first error and forgets where it was; validation
//! wants every problem at once with its YAML path and line. So the loader parses into this
//! tree first (every node keeps its line and column), expands `${env:…}`/`${file:…}` in
//! scalars, and only then hands each component's subtree to serde.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// Where a node starts in the source: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::Str(s) => Value::String(s.clone()),
        }
    }
}

/// The value a serde path (`keys[0].key`) names inside `json`.
pub fn json_at_mut<'a>(json: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut at = json;
    for segment in split_path(path) {
        at = match (at, segment) {
            (Value::Object(map), PathSegment::Key(k)) => map.get_mut(k)?,
            (Value::Array(items), PathSegment::Index(i)) => items.get_mut(i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Removes from `json` the map entry a serde path names, or, for a path ending in list
/// indexes, the whole list (dropping one item would renumber the next ones' problems).
/// Returns the path removed; `None` when nothing could be (the path names the root).
pub fn remove_json_at(json: &mut Value, path: &str) -> Option<String> {
    let mut target = path;
    while target.ends_with(']') {
        target = &target[..target.rfind('[')?];
    }
    let (parent, key) = match target.rfind('.') {
        Some(dot) => (&target[..dot], &target[dot + 1..]),
        None => ("", target),
    };
    if key.is_empty() {
        return None;
    }
    match json_at_mut(json, parent)? {
        Value::Object(map) => map.remove(key).map(|_| target.to_string()),
        _ => None,
    }
}

/// Whether serde path `inner` is `outer` or lies below it (`a.b` holds `a.b.c`, `a.b[0]`).
pub fn path_within(inner: &str, outer: &str) -> bool {
    outer.is_empty()
        || inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Keys keep their own positions so that "unknown key" points at the key.
    Map(Vec<(String, Pos, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

impl Node {
    /// The child at a map key, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, n)| n),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Pos, Node)] {
        match &self.kind {
            NodeKind::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(Scalar::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Scalar(Scalar::Null))
    }

    /// The position of the node a serde path (`protocols.grpc.endpoint`, `keys[0].id`)
    /// names below this one; the deepest node that exists when the path runs out.
    pub fn locate(&self, path: &str) -> Pos {
        let mut node = self;
        for segment in split_path(path) {
            let next = match (&node.kind, segment) {
                (NodeKind::Map(_), PathSegment::Key(k)) => node.get(k),
                (NodeKind::Seq(items), PathSegment::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// The position of the key a serde path ends in (`telemetry.log` → where `log:` is
    /// written), for problems with the key itself; the value's position otherwise.
    pub fn locate_key(&self, path: &str) -> Pos {
        let (parent, key) = match path.rfind('.') {
            Some(dot) => (&path[..dot], &path[dot + 1..]),
            None => ("", path),
        };
        let mut node = self;
        for segment in split_path(parent) {
            let next = match (&node.kind, segment) {
                (NodeKind::Map(_), PathSegment::Key(k)) => node.get(k),
                (NodeKind::Seq(items), PathSegment::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return self.locate(path),
            }
        }
        node.entries()
            .iter()
            .find(|(k, _, _)| k == key)
            .map_or_else(|| self.locate(path), |(_, pos, _)| *pos)
    }

    /// The node as a JSON value, the form serde deserializes component configs from.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(scalar) => scalar.to_json(),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Visits every string scalar mutably with its path, for `${…}` expansion.
    pub fn for_each_string_mut(
        &mut self,
        path: &mut String,
        f: &mut dyn FnMut(&str, Pos, &mut Scalar),
    ) {
        let pos = self.pos;
        match &mut self.kind {
            NodeKind::Scalar(s @ Scalar::Str(_)) => f(path, pos, s),
            NodeKind::Scalar(_) => {}
            NodeKind::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    item.for_each_string_mut(path, f);
                    path.truncate(len);
                }
            }
            NodeKind::Map(entries) => {
                for (k, _, v) in entries.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    v.for_each_string_mut(path, f);
                    path.truncate(len);
                }
            }
        }
    }
}

enum PathSegment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into segments. Component ids contain `/` but never `.`, so a dot
/// always separates keys.
fn split_path(path: &str) -> impl Iterator<Item = PathSegment<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let mut out = Vec::new();
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(PathSegment::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(PathSegment::Index(i));
            }
            rest = &rest[end + 1..];
        }
        out
    })
}

/// A YAML syntax error, with where the parser stopped.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty document is an empty map.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            pos: Pos { line: 1, column: 1 },
            kind: NodeKind::Map(Vec::new()),
        });
    }
    match serde_saphyr::from_str::<Spanned<Node>>(text) {
        Ok(s) => Ok(with_pos(s)),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .unwrap_or_default();
            // The rendered message repeats a snippet of the source; the first line is the gist.
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .to_string();
            Err(SyntaxError {
                pos,
                message: plain_message(first),
            })
        }
    }
}

/// The parser's message without its own position prefix (the caller prints one) and in
/// the project's words where the parser speaks of its options.
fn plain_message(first: String) -> String {
    let message = match first
        .strip_prefix("error: ")
        .and_then(|m| m.split_once(": "))
    {
        Some((location, rest)) if location.starts_with("line ") => rest.to_string(),
        _ => first,
    };
    match message.strip_prefix("duplicate mapping key: ") {
        Some(rest) => format!(
            "duplicate key `{}`",
            rest.split(", set ").next().unwrap_or(rest)
        ),
        None => message,
    }
}

fn with_pos(s: Spanned<Node>) -> Node {
    let mut node = s.value;
    node.pos = Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    };
    node
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn scalar(s: Scalar) -> Node {
    Node {
        pos: Pos::default(),
        kind: NodeKind::Scalar(s),
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(scalar(Scalar::Null))
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(scalar(Scalar::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(scalar(Scalar::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|i| scalar(Scalar::Int(i)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(scalar(Scalar::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(scalar(Scalar::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(scalar(Scalar::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(with_pos(item));
        }
        Ok(Node {
            pos: Pos::default(),
            kind: NodeKind::Seq(items),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Pos, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = with_pos(map.next_value::<Spanned<Node>>()?);
            let key_pos = Pos {
                line: key.referenced.line(),
                column: key.referenced.column(),
            };
            if entries.iter().any(|(k, _, _)| *k == key.value) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}` at {key_pos}",
                    key.value
                )));
            }
            entries.push((key.value, key_pos, value));
        }
        Ok(Node {
            pos: Pos::default(),
            kind: NodeKind::Map(entries),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_their_lines_and_columns() {
        let doc = "receivers:\n  otlp:\n    protocols:\n      grpc: { endpoint: 127.0.0.1:4317 }\nlist: [1, two, 3.5, true, ~]\n";
        let root = parse(doc).unwrap();
        let grpc = root.get("receivers").unwrap().get("otlp").unwrap();
        assert_eq!(
            root.locate("receivers.otlp.protocols.grpc.endpoint"),
            Pos {
                line: 4,
                column: 25
            }
        );
        assert_eq!(grpc.pos.line, 3);
        assert_eq!(
            root.locate("list[1]"),
            Pos {
                line: 5,
                column: 11
            }
        );
        assert_eq!(
            root.get("list").unwrap().to_json(),
            serde_json::json!([1, "two", 3.5, true, null])
        );
    }

    #[test]
    fn quoted_numbers_stay_strings_and_duplicates_are_refused() {
        let root = parse("a: '5514'\nb: 5514\n").unwrap();
        assert_eq!(root.get("a").unwrap().as_str(), Some("5514"));
        assert!(matches!(
            root.get("b").unwrap().kind,
            NodeKind::Scalar(Scalar::Int(5514))
        ));
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.message, "duplicate key `a`");
        assert_eq!(err.pos.line, 3);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
