//! The parsed form of a condition: what the parser builds and evaluation walks.

use std::cmp::Ordering;

use super::fields::Field;
use super::literals::{LiteralSet, Pattern};
use crate::event::Severity;

#[derive(Clone)]
pub(super) enum Expr {
    Const(bool),
    Not(Box<Expr>),
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
    Test(Field, Test),
}

#[derive(Clone)]
pub(super) enum Test {
    Compare(CmpOp, Literal),
    In(LiteralSet),
    Matches(Pattern),
    Contains(Literal),
    Exists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub(super) fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }

    pub(super) fn holds(self, ord: Ordering) -> bool {
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
pub(super) enum Literal {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Severity(Severity),
}
