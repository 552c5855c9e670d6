//! RFC 8785 JSON Canonicalization Scheme (JCS) of a `serde_json::Value`.
//!
//! Entry hashes are computed over this form, so any verifier that implements RFC 8785
//! reproduces them byte for byte:
//!
//! - no whitespace; object members sorted by their names compared as sequences of UTF-16
//!   code units (RFC 8785 §3.2.3), which differs from byte order only for names holding
//!   both characters above U+FFFF and characters in U+E000..=U+FFFF;
//! - strings escaped as ECMAScript `JSON.stringify` does: `\"`, `\\`, `\b`, `\t`, `\n`,
//!   `\f`, `\r`, other controls below U+0020 as `\u00xx` (lowercase hex), everything else
//!   written as its UTF-8 (§3.2.2.2);
//! - numbers written as ECMAScript `Number.prototype.toString` writes the IEEE-754 double
//!   (§3.2.2.3), via the `ryu-js` crate; integers up to 2^53 are exact doubles and print
//!   as their digits.
//!
//! Written here rather than taken from `serde_json_canonicalizer`: that crate is correct
//! on the RFC examples but serialises every object member into buffers of its own and
//! re-parses each key to sort it, which costs several times what the whole sealing step
//! may spend on a record.

use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object_filtered(map, |_| true, out),
    }
}

/// Appends the canonical bytes of the object `map` restricted to the members whose
/// names pass `keep` (the verifier uses it to canonicalise an entry without `hash`/`mac`).
pub fn write_object_filtered(
    map: &Map<String, Value>,
    keep: impl Fn(&str) -> bool,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.push(b'{');
    // `serde_json::Map` iterates in byte order (or insertion order with the
    // `preserve_order` feature), which is nearly always the canonical order: write in
    // that order and start over sorted only if a name turns out to be out of place.
    let mut previous: Option<&str> = None;
    for (name, value) in map.iter().filter(|(name, _)| keep(name)) {
        if let Some(previous) = previous {
            if cmp_utf16(previous, name) != Ordering::Less {
                out.truncate(start + 1);
                let mut members: Vec<(&String, &Value)> =
                    map.iter().filter(|(name, _)| keep(name)).collect();
                members.sort_by(|a, b| cmp_utf16(a.0, b.0));
                for (i, (name, value)) in members.into_iter().enumerate() {
                    write_member(i, name, value, out);
                }
                out.push(b'}');
                return;
            }
            out.push(b',');
        }
        previous = Some(name);
        write_str(name, out);
        out.push(b':');
        write(value, out);
    }
    out.push(b'}');
}

fn write_member(index: usize, name: &str, value: &Value, out: &mut Vec<u8>) {
    if index > 0 {
        out.push(b',');
    }
    write_str(name, out);
    out.push(b':');
    write(value, out);
}

/// Whether `names` are in strictly increasing UTF-16 order.
pub fn is_sorted_utf16<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    let Some(mut prev) = names.next() else {
        return true;
    };
    for name in names {
        if cmp_utf16(prev, name) != Ordering::Less {
            return false;
        }
        prev = name;
    }
    true
}

/// Compares two strings as sequences of UTF-16 code units, the order RFC 8785 sorts
/// member names in, without transcoding them.
///
/// UTF-8 byte order equals code point order, and code point order equals UTF-16 order
/// except that characters above U+FFFF (surrogate pairs, units 0xD800..=0xDBFF first)
/// sort before U+E000..=U+FFFF in UTF-16. In UTF-8 those two groups are told apart by
/// their lead byte (0xF0..=0xF4 versus 0xEE..=0xEF), and at the first differing byte of
/// two valid strings either both bytes are continuation bytes of characters sharing a
/// lead byte, or both are lead/ASCII bytes, so remapping the lead bytes is enough.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).position(|(x, y)| x != y) {
        None => a.len().cmp(&b.len()),
        Some(i) => utf16_rank(a[i]).cmp(&utf16_rank(b[i])),
    }
}

fn utf16_rank(byte: u8) -> u8 {
    match byte {
        0xEE..=0xEF => byte + 0x10, // U+E000..=U+FFFF: after the surrogates
        0xF0..=0xF4 => byte - 0x02, // above U+FFFF: lead surrogates 0xD800..=0xDBFF
        _ => byte,
    }
}

/// Escape action per byte: 0 = copy, `u` = `\u00xx`, otherwise the letter after `\`.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a canonical JSON string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip eight bytes at a time while none of them needs escaping.
        if let Some(word) = bytes.get(i..i + 8)
            && !word_needs_escape(word)
        {
            i += 8;
            continue;
        }
        let byte = bytes[i];
        let escape = ESCAPES[byte as usize];
        if escape != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if escape == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(byte >> 4) as usize]);
                out.push(HEX[(byte & 0xF) as usize]);
            } else {
                out.push(b'\\');
                out.push(escape);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of eight bytes is below 0x20, `"` or `\` (bit tricks on a u64: a byte
/// `b` makes `(b - n) & !b & 0x80` non-zero exactly when some byte is below `n`).
fn word_needs_escape(word: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut eight = [0u8; 8];
    eight.copy_from_slice(word);
    let w = u64::from_le_bytes(eight);
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    (below(w, 0x20) | below(w ^ (ONES * 0x22), 1) | below(w ^ (ONES * 0x5C), 1)) != 0
}

/// 2^53: every integer up to it is an exact double, printed by ECMAScript as its digits.
const EXACT_INTEGER_LIMIT: u64 = 1 << 53;

/// Appends `n` as ECMAScript prints the double nearest to it.
pub fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64() {
        if u <= EXACT_INTEGER_LIMIT {
            return write_digits(u, out);
        }
    } else if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= EXACT_INTEGER_LIMIT
    {
        out.push(b'-');
        return write_digits(i.unsigned_abs(), out);
    }
    // serde_json keeps every number it holds as u64, i64 or a finite f64, so `as_f64`
    // always answers and the value is finite; JSON has no spelling for anything else.
    match n.as_f64() {
        Some(f) if f.is_finite() => {
            let mut buffer = ryu_js::Buffer::new();
            out.extend_from_slice(buffer.format_finite(f).as_bytes());
        }
        _ => out.extend_from_slice(b"null"),
    }
}

fn write_digits(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Byte ranges of one member of a top-level object in canonical text: the name between
/// its quotes (as written, escapes and all) and the value's JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSpan {
    pub name: (usize, usize),
    pub value: (usize, usize),
}

impl MemberSpan {
    /// The member's whole text, `"name":value`.
    pub fn text(&self) -> (usize, usize) {
        (self.name.0 - 1, self.value.1)
    }
}

/// Nesting deeper than this is refused (as `serde_json` refuses it), keeping recursion
/// bounded on hostile input.
const MAX_DEPTH: u32 = 128;

/// Whether `text` is exactly the canonical form of some JSON object; if so, `members`
/// receives the spans of its top-level members, in order.
///
/// Canonical text is the common case for a verifier (Vellum writes nothing else), and
/// checking it in place is several times cheaper than parsing it into a `Value` and
/// writing it out again: when this says yes, `to_vec(&parse(text)) == text`.
pub fn canonical_object(text: &[u8], members: &mut Vec<MemberSpan>) -> bool {
    members.clear();
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let mut scan = Scan {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    scan.bytes.first() == Some(&b'{') && scan.object(Some(members)) && scan.at == scan.bytes.len()
}

struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl Scan<'_> {
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.at) == Some(&byte);
        self.at += found as usize;
        found
    }

    fn value(&mut self) -> bool {
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(None),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.bytes[self.at..].starts_with(word);
        self.at += if found { word.len() } else { 0 };
        found
    }

    fn object(&mut self, mut spans: Option<&mut Vec<MemberSpan>>) -> bool {
        if self.depth == MAX_DEPTH {
            return false;
        }
        self.depth += 1;
        self.at += 1;
        if !self.eat(b'}') {
            let mut previous: Option<(usize, usize, bool)> = None;
            loop {
                let Some(name) = self.string() else {
                    return false;
                };
                if let Some(previous) = previous
                    && !self.names_increase(previous, name)
                {
                    return false;
                }
                previous = Some(name);
                if !self.eat(b':') {
                    return false;
                }
                let value_start = self.at;
                if !self.value() {
                    return false;
                }
                if let Some(spans) = spans.as_deref_mut() {
                    spans.push(MemberSpan {
                        name: (name.0, name.1),
                        value: (value_start, self.at),
                    });
                }
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return false;
                }
            }
        }
        self.depth -= 1;
        true
    }

    fn array(&mut self) -> bool {
        if self.depth == MAX_DEPTH {
            return false;
        }
        self.depth += 1;
        self.at += 1;
        if !self.eat(b']') {
            loop {
                if !self.value() {
                    return false;
                }
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return false;
                }
            }
        }
        self.depth -= 1;
        true
    }

    /// A string in canonical spelling; returns the range between its quotes and
    /// whether it holds escapes.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        let mut escaped = false;
        loop {
            if let Some(word) = self.bytes.get(self.at..self.at + 8)
                && !word_needs_escape(word)
            {
                self.at += 8;
                continue;
            }
            // Something in these eight bytes (often the closing quote) needs a look.
            let window_end = self.at + 8;
            while self.at < window_end {
                match *self.bytes.get(self.at)? {
                    b'"' => {
                        self.at += 1;
                        return Some((start, self.at - 1, escaped));
                    }
                    b'\\' => {
                        escaped = true;
                        self.escape()?;
                    }
                    0x00..=0x1F => return None,
                    _ => self.at += 1,
                }
            }
        }
    }

    /// Steps over one escape sequence in canonical spelling: the short forms, and
    /// `\u00xx` (lowercase) only for controls that have no short form.
    fn escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.at + 1)? {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let digits = self.bytes.get(self.at + 2..self.at + 6)?;
                let low = match digits[3] {
                    d @ b'0'..=b'9' => d - b'0',
                    d @ b'a'..=b'f' => d - b'a' + 10,
                    _ => return None,
                };
                let code = match &digits[..3] {
                    b"000" => low,
                    b"001" => 0x10 + low,
                    _ => return None,
                };
                if matches!(code, 0x08 | 0x09 | 0x0A | 0x0C | 0x0D) {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    fn number(&mut self) -> bool {
        let start = self.at;
        self.eat(b'-');
        let integer_start = self.at;
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return false,
        }
        let integer = &self.bytes[integer_start..self.at];
        let mut fraction: Option<&[u8]> = None;
        if self.eat(b'.') {
            let fraction_start = self.at;
            self.digits();
            if self.at == fraction_start {
                return false;
            }
            fraction = Some(&self.bytes[fraction_start..self.at]);
        }
        let mut exponent = false;
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            exponent = true;
            self.at += 1;
            let _ = self.eat(b'+') || self.eat(b'-');
            let exponent_start = self.at;
            self.digits();
            if self.at == exponent_start {
                return false;
            }
        }
        let text = &self.text[start..self.at];
        if !exponent && let Some(canonical) = short_decimal_is_canonical(integer, fraction) {
            return canonical && text != "-0";
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => ryu_js::Buffer::new().format_finite(f) == text,
            _ => false,
        }
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn names_increase(&self, a: (usize, usize, bool), b: (usize, usize, bool)) -> bool {
        let (Some(raw_a), Some(raw_b)) = (self.text.get(a.0..a.1), self.text.get(b.0..b.1)) else {
            return false;
        };
        if !a.2 && !b.2 {
            return cmp_utf16(raw_a, raw_b) == Ordering::Less;
        }
        match (unescape(raw_a), unescape(raw_b)) {
            (Some(x), Some(y)) => cmp_utf16(&x, &y) == Ordering::Less,
            _ => false,
        }
    }
}

/// Whether a number written without exponent is canonical, answered without converting
/// it when it has at most 15 significant digits (`None` otherwise).
///
/// Distinct decimals of at most 15 significant digits are distinct doubles (DBL_DIG),
/// so such a literal is the shortest text of its double, which ECMAScript prints in
/// fixed notation from 1e-6 up to 1e21: it is canonical exactly when its fraction has
/// no trailing zero and, below 1, at most five zeros after the point.
fn short_decimal_is_canonical(integer: &[u8], fraction: Option<&[u8]>) -> Option<bool> {
    let fraction = fraction.unwrap_or_default();
    let (significant, leading_zeros) = if integer == b"0" {
        let zeros = fraction.iter().take_while(|&&d| d == b'0').count();
        (fraction.len() - zeros, zeros)
    } else {
        (integer.len() + fraction.len(), 0)
    };
    if significant > 15 {
        return None;
    }
    if fraction.is_empty() {
        return Some(true);
    }
    let canonical = fraction.last() != Some(&b'0') && (integer != b"0" || leading_zeros <= 5);
    Some(canonical)
}

/// The text of a canonically escaped string's content.
fn unescape(raw: &str) -> Option<String> {
    serde_json::from_str(&format!("\"{raw}\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canonical(v: &Value) -> String {
        String::from_utf8(to_vec(v)).unwrap()
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let vectors: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, want) in vectors {
            let v = Value::Number(Number::from_f64(f64::from_bits(bits)).unwrap());
            assert_eq!(canonical(&v), want, "{bits:016x}");
        }
        // NaN and the infinities (the two remaining Appendix B rows) are not JSON values.
        assert!(Number::from_f64(f64::from_bits(0x7fffffffffffffff)).is_none());
        assert!(Number::from_f64(f64::from_bits(0x7ff0000000000000)).is_none());
    }

    #[test]
    fn integers_print_like_the_doubles_they_equal() {
        assert_eq!(canonical(&json!(0)), "0");
        assert_eq!(canonical(&json!(-7)), "-7");
        assert_eq!(canonical(&json!(9007199254740992u64)), "9007199254740992");
        // Beyond 2^53 the integer becomes its nearest double: 2^53 + 1 rounds to 2^53.
        assert_eq!(canonical(&json!(9007199254740993u64)), "9007199254740992");
        assert_eq!(canonical(&json!(-9007199254740993i64)), "-9007199254740992");
        // 2^68 (Appendix B) reached as an integer: 295147905179352825856 is not a u64, so
        // use the largest u64, whose double is 2^64 = 18446744073709551616.
        assert_eq!(canonical(&json!(u64::MAX)), "18446744073709552000");
        assert_eq!(canonical(&json!(1.0)), "1");
        assert_eq!(canonical(&json!(-0.0)), "0");
    }

    /// RFC 8785 §3.2.2 example: literals, numbers and string escaping.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canonical(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    /// RFC 8785 §3.2.3 example: member names sorted by UTF-16 code units, where the emoji
    /// (a surrogate pair) sorts before U+FB33 although its code point is larger.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canonical(&v),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    #[test]
    fn every_control_character_is_escaped_and_nothing_else_is() {
        let all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        let text = canonical(&Value::String(all + "\u{7f}\u{2028}\u{2029}\u{fffd}"));
        let expected = "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\
                        \\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\
                        \x20!\\\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\
                        \u{7f}\u{7f}\u{2028}\u{2029}\u{fffd}\"";
        assert_eq!(text, expected);
    }

    #[test]
    fn nested_structures_have_no_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": "x"}], "a": {}, "c": []});
        assert_eq!(
            canonical(&v),
            r#"{"a":{},"b":[1,{"a":"x","z":null}],"c":[]}"#
        );
        let mut out = Vec::new();
        write_object_filtered(v.as_object().unwrap(), |k| k != "b", &mut out);
        assert_eq!(out, br#"{"a":{},"c":[]}"#);
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(Value::Number),
            "\\PC*|[\u{0}-\u{1f}\u{e000}-\u{ffff}\u{10000}-\u{10ffff}\"\\\\]{0,8}"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    "[a-c\u{e000}\u{ffff}\u{10000}\u{1f600}]{0,3}",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn is_canonical(text: &[u8]) -> bool {
        canonical_object(text, &mut Vec::new())
    }

    #[test]
    fn canonical_text_is_recognised_and_its_members_located() {
        let text = br#"{"a":{"z":[1,-2,0.5,1e+30,"x\u001f\n"]},"b\"c":null,"d":true}"#;
        let mut members = Vec::new();
        assert!(canonical_object(text, &mut members));
        let names: Vec<&[u8]> = members.iter().map(|m| &text[m.name.0..m.name.1]).collect();
        assert_eq!(names, [&b"a"[..], b"b\\\"c", b"d"]);
        let m = members[1];
        assert_eq!(&text[m.value.0..m.value.1], b"null");
        assert_eq!(&text[m.text().0..m.text().1], br#""b\"c":null"#);
        assert!(is_canonical(b"{}"));
    }

    #[test]
    fn other_spellings_of_the_same_json_are_not_canonical() {
        for text in [
            &br#"{"a": 1}"#[..],
            br#"{"b":1,"a":2}"#,
            br#"{"a":1,"a":1}"#,
            br#"{"a":1.0}"#,
            br#"{"a":1E+30}"#,
            br#"{"a":-0}"#,
            br#"{"a":0.10}"#,
            br#"{"a":01}"#,
            br#"{"a":10000000000000001}"#,
            br#"{"a":"\u0041"}"#,
            br#"{"a":"\u000A"}"#,
            br#"{"a":"\u000a"}"#,
            br#"{"a":"\/"}"#,
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\xff\"}",
            br#"{"a":1}x"#,
            br#"{"a":tru}"#,
            br#"[1]"#,
            br#"{"\ud83d\ude00":1}"#,
            "{\"\u{fb33}\":1,\"\u{1f600}\":2}".as_bytes(),
            b"",
        ] {
            assert!(!is_canonical(text), "{}", String::from_utf8_lossy(text));
        }
        assert!(is_canonical("{\"\u{1f600}\":2,\"\u{fb33}\":1}".as_bytes()));
        assert!(is_canonical(
            br#"{"a":9007199254740992,"b":1e+21,"c":295147905179352830000}"#
        ));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(!is_canonical(deep.as_bytes()));
    }

    proptest! {
        #[test]
        fn utf16_order_matches_transcoding(a in "\\PC{0,6}", b in "[a\u{e000}\u{ffff}\u{10000}\u{10ffff}\u{7ff}\u{800}]{0,4}") {
            prop_assert_eq!(cmp_utf16(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
            prop_assert_eq!(cmp_utf16(&b, &a), b.encode_utf16().cmp(a.encode_utf16()));
        }

        /// Differential test against an independent implementation of RFC 8785.
        #[test]
        fn agrees_with_serde_json_canonicalizer(v in any_json()) {
            let theirs = serde_json_canonicalizer::to_vec(&v).unwrap();
            prop_assert_eq!(String::from_utf8(to_vec(&v)).unwrap(), String::from_utf8(theirs).unwrap());
        }

        /// The validator agrees with canonicalising: text is canonical exactly when
        /// writing what it parses to gives the text back, for canonical text and for
        /// every single-byte change of it.
        #[test]
        fn validator_agrees_with_round_trip(
            v in prop::collection::btree_map("[a-c\u{e000}\u{10000}]{0,3}", any_json(), 0..6),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let text = to_vec(&Value::Object(v.into_iter().collect()));
            prop_assert!(is_canonical(&text));
            let mut changed = text.clone();
            let i = at.index(changed.len());
            changed[i] ^= flip;
            let round_trips = serde_json::from_slice::<Value>(&changed)
                .is_ok_and(|v| v.is_object() && to_vec(&v) == changed);
            prop_assert_eq!(is_canonical(&changed), round_trips, "{}", String::from_utf8_lossy(&changed));
        }

        /// Number spellings, canonical or not, are judged as canonicalising judges them.
        #[test]
        fn numbers_are_judged_like_round_trips(
            number in "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?"
        ) {
            let text = format!("{{\"n\":{number}}}");
            let round_trips = serde_json::from_str::<Value>(&text)
                .is_ok_and(|v| to_vec(&v) == text.as_bytes());
            prop_assert_eq!(is_canonical(text.as_bytes()), round_trips, "{}", text);
        }

        /// The canonical text parses back to the same value (up to doubles).
        #[test]
        fn canonical_text_is_json_of_the_same_value(v in any_json()) {
            let text = to_vec(&v);
            let back: Value = serde_json::from_slice(&text).unwrap();
            prop_assert_eq!(to_vec(&back), text);
        }
    }
}
