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
//!
//! | module | its job |
//! |---|---|
//! | `lexer` | the text into tokens, each with its column |
//! | `parse` | tokens into the parsed form, refusing what can never hold |
//! | `expr` | the parsed form: `Expr`, `Test`, `CmpOp`, `Literal` |
//! | `fields` | field paths and reading them from a record; [`FieldPath`], [`AttributeIndex`] |
//! | `literals` | `in [...]` sets, and `matches` patterns expanded into literals |
//! | `eval` | a parsed condition against one record |

mod eval;
mod expr;
mod fields;
mod lexer;
mod literals;
mod parse;
#[cfg(test)]
mod test_support;

use std::fmt;

use crate::event::Record;

pub use fields::{AttributeIndex, FieldPath};

use expr::Expr;
use lexer::{Tok, lex};
use parse::Parser;

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
        let mut parser = Parser::new(&tokens);
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
            && (index.bits() & any == 0 || !heads.iter().any(|&h| index.has(h)))
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

fn err(column: usize, message: impl Into<String>) -> ConditionError {
    ConditionError {
        column,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_kept_for_messages() {
        let c = Condition::parse("severity >= high").unwrap();
        assert_eq!(c.source(), "severity >= high");
        assert_eq!(c.to_string(), "severity >= high");
    }
}
