//! The built-in detectors and the key-name rules.
//!
//! Each detector is a regular expression that finds *candidates* plus an acceptance step
//! that checks boundaries and validates the candidate (checksums, ranges, structure) and
//! narrows it to the span that is replaced. The expressions avoid capture groups, `\b` and
//! Unicode classes so that all of them can run together in one lazy-DFA pass (the
//! prefilter) over clean text.
//!
//! | detector | finds | validated by |
//! |---|---|---|
//! | `email` | `local@domain.tld` (ASCII) | label rules; the TLD is alphabetic and not a file extension (`icon@2x.png`) |
//! | `phone` | `+` and 8–15 digits with spaces, dots, dashes, one parenthesised group; NANP `(555) 010-1234`, `555-010-1234`, `1-800-555-0199` | digit count; consistent separators; bare digit runs are never phones |
//! | `ssn` | `123-45-6789`, `123 45 6789`, or nine digits right after `SSN` | the SSA's never-issued areas, groups and serials |
//! | `credit_card` | 13–19 digits, contiguous or in groups of 4–6 split by one kind of separator | Luhn and issuer prefix/length ranges |
//! | `iban` | uppercase IBAN, compact or in groups | country length and mod-97 |
//! | `ipv4` | dotted quad | octets 0–255, no leading zeros, not part of a longer dotted run, not right after a word ending in `version`, `build`, `release`, `rev`, `firmware` |
//! | `ipv6` | full, compressed and IPv4-suffixed forms | parsed by the standard library |
//! | `jwt` | `eyJ….eyJ….sig` | header decodes to a JSON object with `alg` |
//! | `bearer_token` | `Bearer <token>`, `Basic <credentials>` (the credential only) | bearer: ≥ 16 chars with letters and digits; basic: base64 of `user:password` |
//! | `aws_access_key` | access key ids (`AKIA…`, `ASIA…`, …) and 40-char secret keys after `aws_secret_access_key=` | boundaries |
//! | `api_key` | provider-prefixed keys (OpenAI/Anthropic `sk-`, Stripe `sk_live_`, GitHub `ghp_`/`github_pat_`, GitLab `glpat-`, Slack `xox?-`, Google `AIza`, Hugging Face `hf_`, SendGrid, npm, PyPI) and the value of `api_key=` / `x-api-key:` | the random part holds a digit |
//! | `private_key` | PEM/OpenSSH/PGP private key blocks (to the end of the text when the END line is missing) | — |
//! | `url_credentials` | the `user:password` of `scheme://user:password@host` | — |
//!
//! Known limits: emails are ASCII; IBANs uppercase; a phone number needs a `+` or NANP
//! punctuation (bare digit runs look like ids); a four-part version such as `1.2.3.4` with
//! no version word before it is taken for an IPv4 address.
//!
//! Hashing first brings a value to a canonical form so that spellings of one value
//! correlate: emails lowercased, phones as `+` and digits (NANP numbers without a country
//! code get `+1`), card numbers and SSNs as digits, IBANs compact, IPv6 in RFC 5952 form.

use std::borrow::Cow;
use std::net::Ipv6Addr;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use base64::Engine;

use super::validate;

/// A detector that ships with Vellum, named in `detectors:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Email,
    Phone,
    Ssn,
    CreditCard,
    Iban,
    Ipv4,
    Ipv6,
    Jwt,
    BearerToken,
    AwsAccessKey,
    ApiKey,
    PrivateKey,
    UrlCredentials,
}

impl Builtin {
    pub const ALL: [Builtin; 13] = [
        Builtin::Email,
        Builtin::Phone,
        Builtin::Ssn,
        Builtin::CreditCard,
        Builtin::Iban,
        Builtin::Ipv4,
        Builtin::Ipv6,
        Builtin::Jwt,
        Builtin::BearerToken,
        Builtin::AwsAccessKey,
        Builtin::ApiKey,
        Builtin::PrivateKey,
        Builtin::UrlCredentials,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::Phone => "phone",
            Builtin::Ssn => "ssn",
            Builtin::CreditCard => "credit_card",
            Builtin::Iban => "iban",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
            Builtin::Jwt => "jwt",
            Builtin::BearerToken => "bearer_token",
            Builtin::AwsAccessKey => "aws_access_key",
            Builtin::ApiKey => "api_key",
            Builtin::PrivateKey => "private_key",
            Builtin::UrlCredentials => "url_credentials",
        }
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Which detector names a span when two find exactly the same one: the more specific
    /// first (a JWT after `Bearer` is a `jwt`; a password that looks like an email is a
    /// `sensitive_key` finding, which ranks at [`SENSITIVE_TEXT_RANK`]).
    pub fn rank(self) -> u8 {
        match self {
            Builtin::PrivateKey => 10,
            Builtin::Jwt => 11,
            Builtin::AwsAccessKey => 12,
            Builtin::ApiKey => 13,
            Builtin::UrlCredentials => 14,
            Builtin::BearerToken => 15,
            Builtin::Email => 20,
            Builtin::Iban => 21,
            Builtin::CreditCard => 22,
            Builtin::Ssn => 23,
            Builtin::Phone => 24,
            Builtin::Ipv6 => 25,
            Builtin::Ipv4 => 26,
        }
    }

    /// Whether the pattern holds text rare in clean records (`eyJ`, `-----BEGIN`, `@`,
    /// `://`, key prefixes) that a literal search can jump to.
    pub fn has_rare_literal(self) -> bool {
        matches!(
            self,
            Builtin::Email
                | Builtin::Jwt
                | Builtin::BearerToken
                | Builtin::AwsAccessKey
                | Builtin::ApiKey
                | Builtin::PrivateKey
                | Builtin::UrlCredentials
        )
    }

    pub fn pattern(self) -> &'static str {
        match self {
            Builtin::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
            Builtin::Phone => concat!(
                r"\+[0-9]{1,3}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){2,6}",
                r"|(?:1[ .-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}",
            ),
            Builtin::Ssn => {
                r"[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}|(?i-u:ssn)[^0-9A-Za-z\n]{0,3}[0-9]{9}"
            }
            Builtin::CreditCard => r"[0-9](?:[ -]?[0-9]){12,}",
            Builtin::Iban => r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11}(?: ?[A-Z0-9])*",
            Builtin::Ipv4 => r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}",
            Builtin::Ipv6 => concat!(
                r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
                r"|(?:[0-9A-Fa-f]{1,4}:){6}[0-9]{1,3}(?:\.[0-9]{1,3}){3}",
                r"|(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?::",
                r"(?:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9]{1,3}(?:\.[0-9]{1,3}){3}",
                r"|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?",
            ),
            Builtin::Jwt => r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            Builtin::BearerToken => r"(?i-u:bearer|basic)[ \t]+[A-Za-z0-9._~+/=-]{8,}",
            Builtin::AwsAccessKey => concat!(
                r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z2-7]{16}",
                r#"|(?i-u:(?:aws[_-]?)?secret[_-]?access[_-]?key)["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}"#,
            ),
            Builtin::ApiKey => concat!(
                r"sk-(?:proj-|svcacct-|admin-|ant-[a-z]+[0-9]{2}-)?[A-Za-z0-9_-]{20,}",
                r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
                r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}",
                r"|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}",
                r"|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}",
                r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}",
                r#"|(?i-u:api[_-]?key|api[_-]?token)["']?\s*[:=]\s*["']?[A-Za-z0-9._~+/-]{8,}"#,
            ),
            Builtin::PrivateKey => concat!(
                r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----",
                r"(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
            ),
            Builtin::UrlCredentials => {
                r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"'<>]+:[^\s/?#@"'<>]+@"#
            }
        }
    }

    /// A pattern that matches every text in which this detector accepts something: a
    /// necessary condition, simpler than [`Self::pattern`], so that all detectors' triggers
    /// run together in one cheap pass and only the detectors they point at run in full.
    pub fn trigger(self) -> &'static str {
        match self {
            Builtin::Email => r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+\.[A-Za-z0-9-]",
            Builtin::Phone => r"\+[0-9]|\([2-9][0-9]{2}\)|[0-9]{3}[ .-][0-9]{3}[ .-][0-9]{4}",
            Builtin::Ssn => r"[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}|(?i-u:ssn)",
            Builtin::CreditCard => r"[0-9]{13}|[0-9]{4}[ -][0-9]{4}",
            Builtin::Iban => r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11}",
            Builtin::Ipv4 => r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]",
            Builtin::Ipv6 => r"::|(?:[0-9A-Fa-f]{1,4}:){6}",
            Builtin::Jwt => r"eyJ[A-Za-z0-9_-]+\.eyJ",
            Builtin::BearerToken => r"(?i-u:bearer|basic)[ \t]",
            Builtin::AwsAccessKey => {
                r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA|SCA)|(?i-u:secret[_-]?access[_-]?key)"
            }
            Builtin::ApiKey => concat!(
                r"sk-|[sr]k_(?:live|test)_|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|AIza|hf_",
                r"|SG\.|npm_|pypi-|(?i-u:api[_-]?(?:key|token))",
            ),
            Builtin::PrivateKey => "-----BEGIN",
            Builtin::UrlCredentials => r"://[^\s/?#@]+@",
        }
    }

    /// Checks a candidate the pattern found at `m` and pushes the span(s) to replace.
    pub fn accept(self, text: &str, m: Range<usize>, out: &mut Vec<Range<usize>>) {
        let found = match self {
            Builtin::Email => accept_email(text, m),
            Builtin::Phone => accept_phone(text, m),
            Builtin::Ssn => accept_ssn(text, m),
            Builtin::CreditCard => return accept_cards(text, m, out),
            Builtin::Iban => return accept_ibans(text, m, out),
            Builtin::Ipv4 => accept_ipv4(text, m),
            Builtin::Ipv6 => accept_ipv6(text, m),
            Builtin::Jwt => accept_jwt(text, m),
            Builtin::BearerToken => accept_bearer(text, m),
            Builtin::AwsAccessKey => accept_aws(text, m),
            Builtin::ApiKey => accept_api_key(text, m),
            Builtin::PrivateKey => Some(m),
            Builtin::UrlCredentials => accept_url_credentials(text, m),
        };
        out.extend(found);
    }

    /// The form a value is hashed in, so that spellings of one value give one token.
    pub fn canonical(self, value: &str) -> Cow<'_, str> {
        match self {
            Builtin::Email => Cow::Owned(value.to_ascii_lowercase()),
            Builtin::Phone => {
                let digits: String = value.chars().filter(char::is_ascii_digit).collect();
                if value.starts_with('+') {
                    Cow::Owned(format!("+{digits}"))
                } else {
                    // NANP without a country code: 10 digits, or 11 with the leading 1.
                    let national = digits.strip_prefix('1').filter(|d| d.len() == 10);
                    Cow::Owned(format!("+1{}", national.unwrap_or(&digits)))
                }
            }
            Builtin::CreditCard | Builtin::Ssn => {
                Cow::Owned(value.chars().filter(char::is_ascii_digit).collect())
            }
            Builtin::Iban => Cow::Owned(value.chars().filter(|c| *c != ' ').collect()),
            Builtin::Ipv6 => match value.parse::<Ipv6Addr>() {
                Ok(addr) => Cow::Owned(addr.to_string()),
                Err(_) => Cow::Borrowed(value),
            },
            _ => Cow::Borrowed(value),
        }
    }
}

/// Rank of the `sensitive_key` detector's text rule (`password=…`), between the
/// credential detectors and the personal-data ones.
pub const SENSITIVE_TEXT_RANK: u8 = 16;

fn byte_before(text: &str, at: usize) -> Option<u8> {
    at.checked_sub(1).map(|i| text.as_bytes()[i])
}

fn byte_at(text: &str, at: usize) -> Option<u8> {
    text.as_bytes().get(at).copied()
}

/// True when the byte before `at` is absent or none of: an ASCII letter or digit, or one of `extra`.
fn clear_before(text: &str, at: usize, extra: &[u8]) -> bool {
    byte_before(text, at).is_none_or(|b| !b.is_ascii_alphanumeric() && !extra.contains(&b))
}

/// True when the byte at `at` is absent or none of: an ASCII letter or digit, one of
/// `extra`, or a `.`/`-` that continues the run with a digit (`1.2.3.4.5`, `123-45-6789-0`).
fn clear_after(text: &str, at: usize, extra: &[u8]) -> bool {
    match byte_at(text, at) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || extra.contains(&b) => false,
        Some(b'.' | b'-') => !byte_at(text, at + 1).is_some_and(|b| b.is_ascii_digit()),
        Some(_) => true,
    }
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).collect()
}

fn count_digits(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

/// File extensions that follow `@` in asset names (`logo@2x.png`) but are not TLDs in use.
const NOT_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "css", "js", "mjs", "ts", "json",
    "txt", "html", "htm", "xml", "yaml", "yml", "csv", "log", "pdf", "gz", "tgz", "zip", "tar",
    "map", "woff", "woff2", "ttf", "mp3", "mp4", "wav", "md", "rs", "py", "go", "java", "lock",
];

fn accept_email(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let s = &text[m.clone()];
    let leading_dots = s.len() - s.trim_start_matches('.').len();
    let s = &s[leading_dots..];
    let (local, domain) = s.split_once('@')?;
    if local.is_empty() || local.len() > 64 || local.ends_with('.') || local.contains("..") {
        return None;
    }
    if domain.len() > 253 {
        return None;
    }
    let labels_ok = domain
        .split('.')
        .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'));
    // At least two labels: the TLD follows a dot.
    let (_, tld) = domain.rsplit_once('.')?;
    let tld_ok = (2..=24).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && !NOT_TLDS.iter().any(|ext| tld.eq_ignore_ascii_case(ext));
    (labels_ok && tld_ok).then_some(m.start + leading_dots..m.end)
}

fn accept_phone(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let mut m = m;
    if text[m.clone()].starts_with('+') {
        // The pattern may run on into following numbers: drop trailing groups past 15 digits.
        while count_digits(&text[m.clone()]) > 15 {
            m.end = m.start + text[m.clone()].rfind([' ', '.', '-'])?;
        }
    }
    let s = &text[m.clone()];
    let digits = count_digits(s);
    if s.starts_with('+') {
        // `+` is also base64 and URL-encoding material: `a+12345678` is not a phone.
        let opens = s.matches('(').count();
        let ok = clear_before(text, m.start, b"+/=_.-\\")
            && clear_after(text, m.end, b"_")
            && (8..=15).contains(&digits)
            && opens <= 1
            && opens == s.matches(')').count();
        return ok.then_some(m);
    }
    let separators: Vec<char> = s
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '(' && *c != ')')
        .collect();
    let consistent = s.contains('(') || separators.windows(2).all(|w| w[0] == w[1]);
    let ok = clear_before(text, m.start, b"-.+/_")
        && clear_after(text, m.end, b"_")
        && consistent
        && (digits == 10 || digits == 11);
    ok.then_some(m)
}

fn accept_ssn(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let s = &text[m.clone()];
    let span = if s.as_bytes()[0].is_ascii_digit() {
        let b = s.as_bytes();
        if b[3] != b[6] || !clear_before(text, m.start, b"-._/") {
            return None;
        }
        m
    } else {
        // `SSN: 123456789`: the digits after the label.
        if !clear_before(text, m.start, b"_") {
            return None;
        }
        m.end - 9..m.end
    };
    let ok =
        clear_after(text, span.end, b"_") && validate::ssn_valid(&digits_of(&text[span.clone()]));
    ok.then_some(span)
}

/// A run of digits with single spaces or dashes may hold one or more card numbers, as one
/// group (`4111111111111111`) or as groups (`4111 1111 1111 1111`, `3782 822463 10005`).
/// Each run of whole groups that validates is a finding.
fn accept_cards(text: &str, m: Range<usize>, out: &mut Vec<Range<usize>>) {
    if !clear_before(text, m.start, b"._") || !clear_after(text, m.end, b"_") {
        return;
    }
    let bytes = text.as_bytes();
    let mut groups: Vec<Range<usize>> = Vec::new();
    let mut start = m.start;
    for i in m.clone() {
        if !bytes[i].is_ascii_digit() {
            groups.push(start..i);
            start = i + 1;
        }
    }
    groups.push(start..m.end);

    let mut first = 0;
    while first < groups.len() {
        // `6011 1111 1111 1117 12/26`: the 18 digits up to `12` may pass Luhn too, so the
        // usual lengths go first.
        let mut matched: Option<(usize, Range<usize>)> = None;
        for last in first..groups.len() {
            if let Some(span) = card_in_groups(text, &groups[first..=last]) {
                let better = matched.as_ref().is_none_or(|(_, best)| {
                    card_length_preference(digit_count(text, &span))
                        < card_length_preference(digit_count(text, best))
                });
                if better {
                    matched = Some((last, span));
                }
            }
        }
        match matched {
            Some((last, span)) => {
                out.push(span);
                first = last + 1;
            }
            None => first += 1,
        }
    }
}

fn card_length_preference(digits: usize) -> usize {
    [16, 15, 19, 14, 13, 17, 18]
        .iter()
        .position(|&n| n == digits)
        .unwrap_or(usize::MAX)
}

fn digit_count(text: &str, span: &Range<usize>) -> usize {
    text[span.clone()]
        .bytes()
        .filter(u8::is_ascii_digit)
        .count()
}

fn card_in_groups(text: &str, groups: &[Range<usize>]) -> Option<Range<usize>> {
    let total: usize = groups.iter().map(|g| g.len()).sum();
    if !(13..=19).contains(&total) {
        return None;
    }
    if groups.len() > 1 {
        let bytes = text.as_bytes();
        let separator = bytes[groups[0].end];
        let same_separator = groups[..groups.len() - 1]
            .iter()
            .all(|g| bytes[g.end] == separator);
        let (last, inner) = groups.split_last()?;
        let card_like = groups[0].len() == 4
            && inner.iter().all(|g| (4..=6).contains(&g.len()))
            && (1..=6).contains(&last.len());
        if !same_separator || !card_like {
            return None;
        }
    }
    let span = groups[0].start..groups[groups.len() - 1].end;
    let digits = digits_of(&text[span.clone()]);
    (validate::luhn_valid(&digits) && validate::card_issuer_valid(&digits)).then_some(span)
}

/// Candidates may run into following words (`DE89 3704 0044 0532 0130 00 EUR`) or hold
/// two IBANs; each token start is tried with its country's length.
fn accept_ibans(text: &str, m: Range<usize>, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut at = m.start;
    while at + 4 <= m.end {
        let token_start = at == m.start || bytes[at - 1] == b' ';
        if token_start
            && clear_before(text, at, b"_-")
            && let Some(span) = iban_at(text, at, m.end)
        {
            at = span.end;
            out.push(span);
            continue;
        }
        at += 1;
    }
}

fn iban_at(text: &str, start: usize, limit: usize) -> Option<Range<usize>> {
    let bytes = text.as_bytes();
    let head = bytes.get(start..start + 4)?;
    if !head[..2].iter().all(u8::is_ascii_uppercase) || !head[2..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = validate::iban_length(&head[..2])?;
    let mut compact = Vec::with_capacity(length);
    let mut at = start;
    while compact.len() < length && at < limit {
        match bytes[at] {
            b' ' if bytes.get(at + 1) != Some(&b' ') => {}
            b if b.is_ascii_alphanumeric() => compact.push(b),
            _ => return None,
        }
        at += 1;
    }
    let ok =
        compact.len() == length && clear_after(text, at, b"_") && validate::iban_valid(&compact);
    ok.then_some(start..at)
}

/// Whether the word before `at` says a dotted quad is a version: `AssemblyVersion 1.0.0.0`,
/// `build: 4.2.0.1`, `"firmware": "2.1.0.3"`.
fn after_version_word(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches([' ', ':', '=', '"', '\'']);
    let word_start = before
        .rfind(|c: char| !c.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    // ASCII letters only, so any byte index is a char boundary.
    let word = &before[word_start..];
    let version_suffix = word.len().checked_sub("version".len());
    version_suffix.is_some_and(|at| word[at..].eq_ignore_ascii_case("version"))
        || ["ver", "build", "release", "rev", "revision", "firmware"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
}

fn accept_ipv4(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let ok = clear_before(text, m.start, b"._-")
        && !after_version_word(text, m.start)
        && clear_after(text, m.end, b"_")
        && validate::ipv4_valid(&text[m.clone()]);
    ok.then_some(m)
}

fn accept_ipv6(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let s = &text[m.clone()];
    let ok = clear_before(text, m.start, b":._")
        && clear_after(text, m.end, b":_")
        && s.bytes().any(|b| b.is_ascii_hexdigit())
        && s.parse::<Ipv6Addr>().is_ok();
    ok.then_some(m)
}

fn accept_jwt(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    if !clear_before(text, m.start, b"_-") || !clear_after(text, m.end, b"_-") {
        return None;
    }
    let header = text[m.clone()].split('.').next()?;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&decoded).ok()?;
    object.contains_key("alg").then_some(m)
}

fn accept_bearer(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    if !clear_before(text, m.start, b"_-") {
        return None;
    }
    let s = &text[m.clone()];
    let scheme_len = s.find([' ', '\t'])?;
    let token_offset = s.len() - s[scheme_len..].trim_start().len();
    let token = &s[token_offset..];
    let ok = if s[..scheme_len].eq_ignore_ascii_case("basic") {
        let padding = base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
        base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, padding)
            .decode(token)
            .is_ok_and(|credentials| credentials.contains(&b':'))
    } else {
        token.len() >= 16
            && token.bytes().any(|b| b.is_ascii_digit())
            && token.bytes().any(|b| b.is_ascii_alphabetic())
    };
    ok.then_some(m.start + token_offset..m.end)
}

/// The value after the first `:` or `=` of an assignment match, without quotes.
fn assigned_value(text: &str, m: &Range<usize>) -> Option<usize> {
    let s = &text[m.clone()];
    let separator = s.find([':', '='])?;
    let value =
        s[separator + 1..].trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
    Some(m.end - value.len())
}

fn accept_aws(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let s = &text[m.clone()];
    if s.contains([':', '=']) {
        let ok = clear_after(text, m.end, b"/+=_");
        return ok.then_some(m.end - 40..m.end);
    }
    let ok = clear_before(text, m.start, b"_") && clear_after(text, m.end, b"_");
    ok.then_some(m)
}

fn accept_api_key(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let s = &text[m.clone()];
    if s.contains([':', '=']) {
        // `api_key=…`, `x-api-key: …`: the value, whatever it looks like.
        return Some(assigned_value(text, &m)?..m.end);
    }
    let body = s.split_once(['-', '_', '.']).map_or(s, |(_, rest)| rest);
    let ok = clear_before(text, m.start, b"_-")
        && clear_after(text, m.end, b"_-")
        && body.bytes().any(|b| b.is_ascii_digit());
    ok.then_some(m)
}

fn accept_url_credentials(text: &str, m: Range<usize>) -> Option<Range<usize>> {
    let s = &text[m.clone()];
    let userinfo_start = s.find("://")? + 3;
    Some(m.start + userinfo_start..m.end - 1)
}

/// Key names whose values are secrets whatever they look like.
///
/// A key is compared after lowercasing, turning `-`, `.` and spaces into `_`, and dropping
/// a leading `x_` (`X-Api-Key` → `api_key`). It is sensitive when it
/// - contains `password`, `passwd`, `passphrase`, `secret`, `api_key`, `apikey`,
///   `private_key`, `privatekey`, `authorization` or `cookie`;
/// - is `token`, `pwd`, `pass`, `pin`, `otp`, `totp`, `auth`, `session`, `sessionid`,
///   `session_id`, `credential`, `credentials`, `signature`, `access_key`, `secret_key`,
///   `signing_key`, `encryption_key`, `master_key`, `client_key` or `auth_key`;
/// - ends with `_token`, `_pwd`, `_pass`, `_pin`, `_otp`, `_sessionid`, `_session_id` or
///   `_signature` (`access_token`, `x-amz-security-token`, `X-Amz-Signature`);
/// - or is one of the names configured in `fields.sensitive_keys` (compared the same way).
///
/// `max_tokens`, `token_count` or `input_tokens` are not sensitive.
#[derive(Debug, Clone)]
pub struct SensitiveKeys {
    extra: Vec<String>,
    /// Hashes of the first three (normalised) bytes of every key word and configured name:
    /// a key holding none of them is not sensitive, which most keys show in a few
    /// instructions a byte.
    leading_trigrams: Box<[u64; TRIGRAM_WORDS]>,
    /// `KEY_SUBSTRINGS`, in normalised keys.
    substrings: AhoCorasick,
}

const TRIGRAM_WORDS: usize = 512;

fn trigram_bit(a: u8, b: u8, c: u8) -> usize {
    (usize::from(a) * 961 + usize::from(b) * 31 + usize::from(c)) % (TRIGRAM_WORDS * 64)
}

/// A byte as it is in a normalised key: ASCII lowercased; `-`, `.` and space as `_`.
const NORMALIZED: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'-' | b'.' | b' ' => b'_',
            c => c.to_ascii_lowercase(),
        };
        b += 1;
    }
    table
};

fn normalized_byte(b: u8) -> u8 {
    NORMALIZED[usize::from(b)]
}

const KEY_SUBSTRINGS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "api_key",
    "apikey",
    "private_key",
    "privatekey",
    "authorization",
    "cookie",
];
const KEY_EXACT: &[&str] = &[
    "token",
    "pwd",
    "pass",
    "pin",
    "otp",
    "totp",
    "auth",
    "session",
    "sessionid",
    "session_id",
    "credential",
    "credentials",
    "signature",
    "access_key",
    "secret_key",
    "signing_key",
    "encryption_key",
    "master_key",
    "client_key",
    "auth_key",
];
const KEY_SUFFIXES: &[&str] = &[
    "_token",
    "_pwd",
    "_pass",
    "_pin",
    "_otp",
    "_sessionid",
    "_session_id",
    "_signature",
];
/// Every sensitive built-in name contains one of these; the text rule looks for them.
const KEY_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "session",
    "credential",
    "pin",
    "otp",
    "signature",
];

/// Keys up to this length are normalised on the stack.
const SHORT_KEY: usize = 64;

/// Lowercases ASCII, turns `-`, `.` and spaces into `_` and drops a leading `x_`
/// (`X-Api-Key` → `api_key`).
pub fn normalize_key(key: &str) -> String {
    let mut out = vec![0; key.len()];
    let len = normalize_key_into(key.as_bytes(), &mut out);
    out.truncate(len);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`normalize_key`] into `out` (at least as long as `key`); returns the length written.
fn normalize_key_into(key: &[u8], out: &mut [u8]) -> usize {
    let x_prefix = key.len() > 2
        && key[0].eq_ignore_ascii_case(&b'x')
        && matches!(key[1], b'-' | b'.' | b' ' | b'_');
    let key = if x_prefix { &key[2..] } else { key };
    for (o, b) in out.iter_mut().zip(key) {
        *o = normalized_byte(*b);
    }
    key.len()
}

fn ascii_automaton(patterns: &[&str]) -> Result<AhoCorasick, aho_corasick::BuildError> {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .prefilter(false)
        .build(patterns)
}

impl SensitiveKeys {
    pub fn new(extra: &[String]) -> Result<SensitiveKeys, aho_corasick::BuildError> {
        let extra: Vec<String> = extra.iter().map(|k| normalize_key(k)).collect();
        let mut leading_trigrams = Box::new([0u64; TRIGRAM_WORDS]);
        for word in KEY_WORDS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            // A name shorter than three bytes has no trigram: then every key is checked.
            let bit = match word.as_bytes() {
                [a, b, c, ..] => trigram_bit(*a, *b, *c),
                _ => {
                    leading_trigrams.fill(u64::MAX);
                    break;
                }
            };
            leading_trigrams[bit / 64] |= 1 << (bit % 64);
        }
        Ok(SensitiveKeys {
            extra,
            leading_trigrams,
            substrings: ascii_automaton(KEY_SUBSTRINGS)?,
        })
    }

    fn may_mention_a_name(&self, key: &str) -> bool {
        let (mut before_last, mut last) = (0, 0);
        for (i, b) in key.bytes().enumerate() {
            let b = normalized_byte(b);
            if i >= 2 {
                let bit = trigram_bit(before_last, last, b);
                if self.leading_trigrams[bit / 64] & (1 << (bit % 64)) != 0 {
                    return true;
                }
            }
            (before_last, last) = (last, b);
        }
        false
    }

    pub fn is_sensitive(&self, key: &str) -> bool {
        if !self.may_mention_a_name(key) {
            return false;
        }
        let mut short = [0u8; SHORT_KEY];
        let long;
        let normalized: &[u8] = if key.len() <= SHORT_KEY {
            let len = normalize_key_into(key.as_bytes(), &mut short);
            &short[..len]
        } else {
            long = normalize_key(key);
            long.as_bytes()
        };
        self.substrings.is_match(normalized)
            || KEY_EXACT.iter().any(|e| e.as_bytes() == normalized)
            || KEY_SUFFIXES
                .iter()
                .any(|s| normalized.ends_with(s.as_bytes()))
            || self.extra.iter().any(|e| e.as_bytes() == normalized)
    }

    /// The text rule: `name=value`, `name: value`, `"name": "value"` where the name
    /// contains one of the key words (the acceptance step applies [`Self::is_sensitive`]).
    pub fn text_pattern(&self) -> String {
        format!(
            r#"[A-Za-z0-9_.-]*{}[A-Za-z0-9_.-]*["']?\s*[:=]\s*(?:"[^"\n]*"|'[^'\n]*'|[^\s"'&,;]+)"#,
            self.words_pattern()
        )
    }

    /// The text rule's trigger (see [`Builtin::trigger`]).
    pub fn text_trigger(&self) -> String {
        format!(r#"{}[A-Za-z0-9_.-]*["']?\s*[:=]"#, self.words_pattern())
    }

    /// The key words and configured names, as they may be written in a key or in text:
    /// every sensitive key name holds one.
    pub fn words_pattern(&self) -> String {
        let words = format!("(?i-u:{})", KEY_WORDS.join("|"));
        if self.extra.is_empty() {
            return words;
        }
        // Names are compared normalised; in text `_` may be written `-`, `.` or a space.
        let extra: Vec<String> = self
            .extra
            .iter()
            .map(|k| {
                k.split('_')
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join("[-_. ]")
            })
            .collect();
        format!("(?:{words}|(?i:{}))", extra.join("|"))
    }

    /// Accepts a text-rule candidate whose name is sensitive; the span is its value.
    /// `Authorization: Bearer …` is left to `bearer_token`/`jwt`; other schemes are taken
    /// with their credential, and cookie headers to the end of the line.
    pub fn accept_text(&self, text: &str, m: Range<usize>) -> Option<Range<usize>> {
        let s = &text[m.clone()];
        let name_len =
            s.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ':' | '='))?;
        let name = &s[..name_len];
        if !self.is_sensitive(name) {
            return None;
        }
        let separator = name_len + s[name_len..].find([':', '='])?;
        let after = &s[separator + 1..];
        let value_offset = separator + 1 + (after.len() - after.trim_start().len());
        let mut start = m.start + value_offset;
        let mut end = m.end;
        let quoted = matches!(text.as_bytes()[start], b'"' | b'\'');
        if quoted {
            start += 1;
            end -= 1;
        }
        let value = &text[start..end];
        if value.is_empty() {
            return None;
        }
        let normalized = normalize_key(name);
        if normalized.contains("authorization") || normalized == "auth" {
            let scheme = value.split_whitespace().next().unwrap_or("");
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic") {
                return None;
            }
            if !quoted && value.bytes().all(|b| b.is_ascii_alphabetic()) {
                end = extend_over_next_word(text, end);
            }
        } else if normalized.contains("cookie") && !quoted {
            end += text[end..].find(['\n', '"']).unwrap_or(text.len() - end);
            end = start + text[start..end].trim_end().len();
        }
        Some(start..end)
    }
}

/// `Digest abc`: the position after the word following `at` on the same line.
fn extend_over_next_word(text: &str, at: usize) -> usize {
    let rest = &text[at..];
    let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let word = rest[spaces..]
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ',' | ';'))
        .unwrap_or(rest.len() - spaces);
    if word == 0 { at } else { at + spaces + word }
}
