//! Parsing and type checking: tokens into an [`Expr`], refusing what can never hold.

use super::MAX_DEPTH;
use super::expr::{CmpOp, Expr, Literal, Test};
use super::fields::{Field, Kind, field_name, field_source, parse_field};
use super::lexer::{Tok, Token};
use super::literals::{LiteralSet, Pattern};
use super::{ConditionError, err};
use crate::event::Severity;

pub(super) const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "matches", "contains", "exists", "true", "false", "null",
];

pub(super) struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    depth: usize,
}

impl<'t> Parser<'t> {
    pub(super) fn new(tokens: &'t [Token]) -> Parser<'t> {
        Parser {
            tokens,
            at: 0,
            depth: 0,
        }
    }

    pub(super) fn peek(&self) -> &'t Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    pub(super) fn bump(&mut self) -> &'t Token {
        let t = self.peek();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }

    pub(super) fn at_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, Tok::Word(w) if w == word)
    }

    pub(super) fn or(&mut self) -> Result<Expr, ConditionError> {
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

    pub(super) fn and(&mut self) -> Result<Expr, ConditionError> {
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

    pub(super) fn nested<T>(
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

    pub(super) fn unary(&mut self) -> Result<Expr, ConditionError> {
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

    pub(super) fn predicate(
        &mut self,
        field: Field,
        field_column: usize,
    ) -> Result<Expr, ConditionError> {
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

    pub(super) fn literal(&mut self, field: &Field) -> Result<(Literal, usize), ConditionError> {
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

    pub(super) fn list(
        &mut self,
        field: &Field,
        in_column: usize,
    ) -> Result<LiteralSet, ConditionError> {
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

pub(super) fn misplaced_severity(column: usize) -> Result<(), ConditionError> {
    // Severity literals are only produced for the `severity` field; kept as an error
    // rather than a panic should that ever change.
    Err(err(
        column,
        "a severity word is only a value for `severity`",
    ))
}

/// Refuses comparisons that can never hold or make no sense for the field's type.
pub(super) fn check_compare(
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

pub(super) fn severity_word(word: &str, column: usize) -> Result<Severity, ConditionError> {
    Severity::parse(word).ok_or_else(|| {
        err(
            column,
            format!("`{word}` is not a severity: expected info, low, medium, high or critical"),
        )
    })
}

pub(super) fn regex_message(e: &regex::Error) -> String {
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

#[cfg(test)]
mod tests {
    use crate::conditions::test_support::parse_err;
    use crate::conditions::{Condition, MAX_DEPTH};

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
}
