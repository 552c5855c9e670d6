//! Fast membership tests: the literal set of `in [...]`, and `matches` patterns that
//! are a finite set of literals in disguise.

use regex::Regex;

use super::eval::Val;
use super::expr::Literal;

/// The members of an `in [...]` list; strings are sorted for a binary search, and their
/// lengths and first bytes noted so that most values are turned away without comparing.
#[derive(Clone)]
pub(super) struct LiteralSet {
    strings: Box<[Box<str>]>,
    /// Bit `n` is set when a member string is `n` bytes long (`n` < 63), bit 63 for longer.
    lengths: u64,
    starts: FirstBytes,
    others: Box<[Literal]>,
}

pub(super) fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// The set of first bytes of some strings; the empty string counts as starting with any.
#[derive(Clone, Default)]
pub(super) struct FirstBytes {
    bits: [u64; 4],
    empty: bool,
}

impl FirstBytes {
    pub(super) fn of<'a>(strings: impl Iterator<Item = &'a str>) -> FirstBytes {
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
    pub(super) fn admits(&self, s: &str) -> bool {
        match s.as_bytes().first() {
            _ if self.empty => true,
            Some(&b) => self.bits[usize::from(b >> 6)] & (1 << (b & 63)) != 0,
            None => false,
        }
    }
}

impl LiteralSet {
    pub(super) fn new(items: Vec<Literal>) -> LiteralSet {
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

    pub(super) fn has_str(&self, s: &str) -> bool {
        self.lengths & length_bit(s.len()) != 0
            && self.starts.admits(s)
            && self
                .strings
                .binary_search_by(|probe| (**probe).cmp(s))
                .is_ok()
    }

    pub(super) fn has(&self, value: Val<'_>) -> bool {
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
pub(super) enum Pattern {
    /// Exactly these strings (the expression was anchored at both ends).
    Whole(LiteralSet),
    /// Strings starting with one of these.
    Prefixes(Box<[Box<str>]>, FirstBytes),
    Regex(Regex),
}

/// The most literals an expression is expanded into.
pub(super) const MAX_EXPANSION: usize = 512;

impl Pattern {
    pub(super) fn new(source: &str) -> Result<Pattern, regex::Error> {
        let regex = Regex::new(source)?;
        Ok(expand_literals(source).unwrap_or(Pattern::Regex(regex)))
    }

    pub(super) fn is_match(&self, s: &str) -> bool {
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
pub(super) fn expand_literals(source: &str) -> Option<Pattern> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
