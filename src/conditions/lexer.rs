//! Lexing: a condition's text into tokens, each with the 1-based column it starts at.

use std::fmt;

use super::expr::CmpOp;
use super::{ConditionError, err};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) kind: Tok,
    pub(super) column: usize,
}

pub(super) fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || matches!(c, '_' | '@' | '$')
}

pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '@' | '$' | '-' | '.')
}

pub(super) fn lex(source: &str) -> Result<Vec<Token>, ConditionError> {
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
pub(super) fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), ConditionError> {
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

pub(super) fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize), ConditionError> {
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

#[cfg(test)]
mod tests {
    use crate::conditions::Condition;
    use crate::conditions::test_support::{eval, record};
    use serde_json::json;

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
}
