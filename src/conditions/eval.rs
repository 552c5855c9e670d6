//! Evaluation: a parsed condition against one record, borrowing from it.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::expr::{CmpOp, Expr, Literal, Test};
use super::fields::{AttributeIndex, Field};
use crate::event::{Record, Severity};

/// What a field holds in one record, borrowed from it.
#[derive(Clone, Copy)]
pub(super) enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Severity(Severity),
    Tags(&'a [String]),
    Json(&'a Value),
}

impl<'a> Val<'a> {
    /// Order against a literal of a comparable type; `None` across types.
    pub(super) fn compare(self, lit: &Literal) -> Option<Ordering> {
        match (self, lit) {
            (Val::Severity(s), Literal::Severity(l)) => Some(s.cmp(l)),
            (Val::Str(s), Literal::Str(l)) => Some(s.cmp(&**l)),
            (Val::Int(i), Literal::Int(l)) => Some(i.cmp(l)),
            (Val::Int(i), Literal::Float(l)) => (i as f64).partial_cmp(l),
            (Val::Json(v), _) => compare_json(v, lit),
            _ => None,
        }
    }

    pub(super) fn equals(self, lit: &Literal) -> bool {
        match (self.string(), lit) {
            // Byte equality checks the lengths first, which ordering cannot.
            (Some(s), Literal::Str(l)) => s == &**l,
            _ => self.compare(lit) == Some(Ordering::Equal),
        }
    }

    /// The value as a string, when it is one.
    pub(super) fn string(self) -> Option<&'a str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// What `matches` reads: strings, and the severity's name.
    pub(super) fn text(self) -> Option<&'a str> {
        match self {
            Val::Severity(s) => Some(s.as_str()),
            other => other.string(),
        }
    }
}

pub(super) fn compare_json(v: &Value, lit: &Literal) -> Option<Ordering> {
    match (v, lit) {
        (Value::String(s), Literal::Str(l)) => Some(s.as_str().cmp(&**l)),
        (Value::Number(n), Literal::Int(l)) => compare_number(n, *l),
        (Value::Number(n), Literal::Float(l)) => n.as_f64()?.partial_cmp(l),
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::Null, Literal::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// A JSON number against an integer literal, exactly when both are integers.
pub(super) fn compare_number(n: &Number, l: i64) -> Option<Ordering> {
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
    pub(super) fn eval(&self, r: &Record, index: AttributeIndex) -> bool {
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
    pub(super) fn may_hold(&self, index: AttributeIndex) -> bool {
        match self {
            Expr::Test(Field::Attributes { head, .. }, _) => index.has(*head),
            _ => true,
        }
    }

    /// Attribute heads of which at least one must be present for this to hold. Every test
    /// of a missing field is false, so a test of an attribute needs its head; `or` needs one
    /// of its branches' heads, `and` those of any one child (the shortest list is kept), and
    /// `not` nothing. `Some(empty)` never holds.
    pub(super) fn required_heads(&self) -> Option<Vec<u128>> {
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
    pub(super) fn eval(&self, value: Val<'_>) -> bool {
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

#[cfg(test)]
mod tests {
    use crate::conditions::Condition;
    use crate::conditions::test_support::{eval, record};
    use crate::event::Record;
    use serde_json::{Value, json};
    use std::cmp::Ordering;

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
}
