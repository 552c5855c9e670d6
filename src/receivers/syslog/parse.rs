//! One syslog message, RFC 5424 or RFC 3164, parsed into its fields.
//!
//! RFC 5424 is parsed strictly by its ABNF (except the field length limits, which real
//! senders exceed): a message that claims it (`<PRI>1 `) and breaks the grammar is a
//! [`ParseError`]. RFC 3164 only describes what was observed in the wild, so it is read the
//! way its §4.3 tells a relay to: whatever does not fit the expected shape is content.
//! Only an unreadable PRI makes an RFC 3164 message a parse error.

use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Format;

const NILVALUE: &[u8] = b"-";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The two message formats a parsed message can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Rfc5424,
    Rfc3164,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Rfc5424 => "rfc5424",
            Dialect::Rfc3164 => "rfc3164",
        }
    }
}

/// The PRI value split into its two parts (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// 0 (kern) ..= 23 (local7).
    pub facility: u8,
    /// 0 (emerg) ..= 7 (debug).
    pub severity: u8,
}

/// One SD-ELEMENT: its SD-ID and its parameters in the order sent (names may repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

/// A parsed message. Absent and NILVALUE (`-`) fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub dialect: Dialect,
    /// `None` only for an RFC 3164 message sent without PRI.
    pub priority: Option<Priority>,
    pub timestamp_unix_nano: Option<u64>,
    pub hostname: Option<String>,
    /// APP-NAME, or the TAG of an RFC 3164 message.
    pub app_name: Option<String>,
    /// PROCID, or the `[pid]` after an RFC 3164 TAG.
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    pub structured_data: Vec<SdElement>,
    /// MSG without its BOM, `#ooo` control-character escapes decoded; `None` when the
    /// RFC 5424 message ends after STRUCTURED-DATA.
    pub msg: Option<String>,
    /// Some MSG or PARAM-VALUE bytes were not UTF-8 and were replaced by U+FFFD.
    pub invalid_utf8: bool,
}

/// Why a message could not be parsed; the text is what `syslog.parse_error` carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("PRI is missing: an RFC 5424 message starts with `<` 1-3 digits `>`")]
    MissingPri,
    #[error("invalid PRI: expected `<` 1-3 digits `>` with a value of at most 191")]
    InvalidPri,
    #[error("expected VERSION `1` followed by a space after PRI")]
    MissingVersion,
    #[error("unsupported VERSION {0}: only 1 is defined")]
    UnsupportedVersion(String),
    #[error("{0} is missing: the message ends early")]
    MissingField(&'static str),
    #[error("{0} contains a byte outside printable US-ASCII")]
    NotPrintable(&'static str),
    #[error("TIMESTAMP is not an RFC 3339 date-time at or after 1970")]
    InvalidTimestamp,
    #[error("STRUCTURED-DATA must be `-` or start with `[`")]
    StructuredDataStart,
    #[error("STRUCTURED-DATA is malformed: {0}")]
    StructuredData(&'static str),
    #[error("expected a space before MSG")]
    MissingSpaceBeforeMsg,
}

/// Parses one message (framing and trailing line ends already removed).
///
/// `now_unix_nano` and `location` supply what RFC 3164 timestamps leave out: the year
/// and the time zone.
pub fn parse(
    raw: &[u8],
    format: Format,
    now_unix_nano: u64,
    location: &TimeZone,
) -> Result<Message, ParseError> {
    if raw.is_empty() {
        return Err(ParseError::Empty);
    }
    match format {
        Format::Rfc5424 => parse_rfc5424(raw),
        Format::Rfc3164 => parse_rfc3164(raw, now_unix_nano, location),
        Format::Auto => {
            let (pri, rest) = split_pri(raw)?;
            if pri.is_some() && is_rfc5424_version(rest) {
                parse_rfc5424(raw)
            } else {
                parse_rfc3164(raw, now_unix_nano, location)
            }
        }
    }
}

/// `1 ` after PRI marks RFC 5424; RFC 3164 has a month name or an RFC 3339 date there.
fn is_rfc5424_version(after_pri: &[u8]) -> bool {
    after_pri.starts_with(b"1 ")
}

/// Splits `<PRI>` off the front. `Ok(None)` when the message does not start with `<`.
fn split_pri(raw: &[u8]) -> Result<(Option<Priority>, &[u8]), ParseError> {
    let Some(rest) = raw.strip_prefix(b"<") else {
        return Ok((None, raw));
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return Err(ParseError::InvalidPri);
    }
    let value: u16 = rest[..digits]
        .iter()
        .fold(0, |v, d| v * 10 + u16::from(d - b'0'));
    if value > 191 {
        return Err(ParseError::InvalidPri);
    }
    let priority = Priority {
        facility: (value / 8) as u8,
        severity: (value % 8) as u8,
    };
    Ok((Some(priority), &rest[digits + 1..]))
}

fn parse_rfc5424(raw: &[u8]) -> Result<Message, ParseError> {
    let (priority, rest) = split_pri(raw)?;
    let priority = priority.ok_or(ParseError::MissingPri)?;
    let mut cursor = Cursor { rest };

    let version = cursor
        .header_field("VERSION")
        .map_err(|_| ParseError::MissingVersion)?;
    if version != b"1" {
        return Err(
            if !version.is_empty() && version.iter().all(u8::is_ascii_digit) {
                ParseError::UnsupportedVersion(String::from_utf8_lossy(version).into_owned())
            } else {
                ParseError::MissingVersion
            },
        );
    }
    let timestamp = cursor.header_field("TIMESTAMP")?;
    let timestamp_unix_nano = match timestamp {
        NILVALUE => None,
        t => Some(parse_rfc3339(t).ok_or(ParseError::InvalidTimestamp)?),
    };
    let hostname = cursor.optional_text("HOSTNAME")?;
    let app_name = cursor.optional_text("APP-NAME")?;
    let proc_id = cursor.optional_text("PROCID")?;
    let msg_id = cursor.optional_text("MSGID")?;

    let mut invalid_utf8 = false;
    let structured_data = parse_structured_data(&mut cursor, &mut invalid_utf8)?;
    let msg = match cursor.rest {
        [] => None,
        [b' ', msg @ ..] => Some(decode_msg(msg, &mut invalid_utf8)),
        _ => return Err(ParseError::MissingSpaceBeforeMsg),
    };
    Ok(Message {
        dialect: Dialect::Rfc5424,
        priority: Some(priority),
        timestamp_unix_nano,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        msg,
        invalid_utf8,
    })
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A header field and the space after it (the last header field, MSGID, is followed
    /// by the space before STRUCTURED-DATA).
    fn header_field(&mut self, name: &'static str) -> Result<&'a [u8], ParseError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ParseError::MissingField(name))?;
        let field = &self.rest[..end];
        if field.is_empty() {
            return Err(ParseError::MissingField(name));
        }
        if !field.iter().all(|b| (33..=126).contains(b)) {
            return Err(ParseError::NotPrintable(name));
        }
        self.rest = &self.rest[end + 1..];
        Ok(field)
    }

    fn optional_text(&mut self, name: &'static str) -> Result<Option<String>, ParseError> {
        Ok(match self.header_field(name)? {
            NILVALUE => None,
            // Checked to be printable ASCII, hence UTF-8.
            field => Some(String::from_utf8_lossy(field).into_owned()),
        })
    }
}

fn parse_rfc3339(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

/// STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT (RFC 5424 §6.3).
fn parse_structured_data(
    cursor: &mut Cursor<'_>,
    invalid_utf8: &mut bool,
) -> Result<Vec<SdElement>, ParseError> {
    let mut elements = Vec::new();
    match cursor.rest.first() {
        Some(b'-') => {
            cursor.rest = &cursor.rest[1..];
            return Ok(elements);
        }
        Some(b'[') => {}
        Some(_) => return Err(ParseError::StructuredDataStart),
        None => return Err(ParseError::MissingField("STRUCTURED-DATA")),
    }
    while let Some(after_bracket) = cursor.rest.strip_prefix(b"[") {
        cursor.rest = after_bracket;
        let id = sd_name(cursor).ok_or(ParseError::StructuredData(
            "SD-ID is empty or has a forbidden character",
        ))?;
        let mut params = Vec::new();
        loop {
            match cursor.rest {
                [b']', rest @ ..] => {
                    cursor.rest = rest;
                    break;
                }
                [b' ', rest @ ..] => {
                    cursor.rest = rest;
                    let name = sd_name(cursor).ok_or(ParseError::StructuredData(
                        "PARAM-NAME is empty or has a forbidden character",
                    ))?;
                    cursor.rest =
                        cursor
                            .rest
                            .strip_prefix(b"=\"")
                            .ok_or(ParseError::StructuredData(
                                "expected `=\"` after PARAM-NAME",
                            ))?;
                    let value = param_value(cursor, invalid_utf8)?;
                    params.push((name, value));
                }
                [] => {
                    return Err(ParseError::StructuredData(
                        "SD-ELEMENT is not closed by `]`",
                    ));
                }
                _ => {
                    return Err(ParseError::StructuredData(
                        "expected a space or `]` after SD-ID or SD-PARAM",
                    ));
                }
            }
        }
        elements.push(SdElement { id, params });
    }
    Ok(elements)
}

/// SD-NAME = 1*32PRINTUSASCII except `=`, SP, `]`, `"`.
fn sd_name(cursor: &mut Cursor<'_>) -> Option<String> {
    let end = cursor
        .rest
        .iter()
        .position(|&b| !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"'))
        .unwrap_or(cursor.rest.len());
    if end == 0 {
        return None;
    }
    let name = String::from_utf8_lossy(&cursor.rest[..end]).into_owned();
    cursor.rest = &cursor.rest[end..];
    Some(name)
}

/// PARAM-VALUE up to its closing `"`, with `\"`, `\\` and `\]` unescaped; a backslash
/// before any other character stays as sent (RFC 5424 §6.3.3).
fn param_value(cursor: &mut Cursor<'_>, invalid_utf8: &mut bool) -> Result<String, ParseError> {
    let bytes = cursor.rest;
    let special = bytes.iter().position(|&b| b == b'"' || b == b'\\');
    // Most values have no escapes: copy them whole.
    if let Some(end) = special.filter(|&i| bytes[i] == b'"') {
        cursor.rest = &bytes[end + 1..];
        return Ok(utf8_lossy(bytes[..end].to_vec(), invalid_utf8));
    }
    let mut value = Vec::with_capacity(special.unwrap_or(0) + 16);
    let mut i = 0;
    loop {
        match bytes.get(i) {
            None => {
                return Err(ParseError::StructuredData(
                    "PARAM-VALUE is not closed by `\"`",
                ));
            }
            Some(b'"') => break,
            Some(b'\\') => match bytes.get(i + 1) {
                Some(&c @ (b'"' | b'\\' | b']')) => {
                    value.push(c);
                    i += 2;
                }
                _ => {
                    value.push(b'\\');
                    i += 1;
                }
            },
            Some(&b) => {
                value.push(b);
                i += 1;
            }
        }
    }
    cursor.rest = &bytes[i + 1..];
    Ok(utf8_lossy(value, invalid_utf8))
}

fn utf8_lossy(bytes: Vec<u8>, invalid_utf8: &mut bool) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            *invalid_utf8 = true;
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    }
}

/// MSG as text: BOM stripped, invalid UTF-8 replaced (and flagged), rsyslog's escapes undone.
fn decode_msg(msg: &[u8], invalid_utf8: &mut bool) -> String {
    let msg = msg.strip_prefix(UTF8_BOM).unwrap_or(msg);
    unescape_control_characters(utf8_lossy(msg.to_vec(), invalid_utf8))
}

/// Undoes rsyslog's `$EscapeControlCharactersOnReceive` (on by default): a control
/// character arrives as `#` and three octal digits, a line feed as `#012`. Only codes of
/// control characters (0-31 and 127) are decoded, so `#123` stays as sent.
pub fn unescape_control_characters(text: String) -> String {
    if !text.contains('#') {
        return text;
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 4 <= bytes.len() {
        if bytes[i] == b'#' {
            let code = &bytes[i + 1..i + 4];
            if code.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = code.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                if value < 0o40 || value == 0o177 {
                    out.push_str(&text[copied..i]);
                    out.push(char::from(value as u8));
                    i += 4;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn parse_rfc3164(
    raw: &[u8],
    now_unix_nano: u64,
    location: &TimeZone,
) -> Result<Message, ParseError> {
    let (priority, rest) = split_pri(raw)?;
    let mut message = Message {
        dialect: Dialect::Rfc3164,
        priority,
        timestamp_unix_nano: None,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        structured_data: Vec::new(),
        msg: None,
        invalid_utf8: false,
    };
    // RFC 3164 §4.3.2: without a valid TIMESTAMP everything after PRI is content.
    let Some((timestamp, after_timestamp)) =
        bsd_timestamp(rest, now_unix_nano, location).or_else(|| rfc3339_prefix(rest))
    else {
        message.msg = Some(decode_msg(rest, &mut message.invalid_utf8));
        return Ok(message);
    };
    message.timestamp_unix_nano = Some(timestamp);
    let mut content = after_timestamp;
    if let Some((hostname, after_hostname)) = split_hostname(after_timestamp) {
        message.hostname = Some(hostname);
        content = after_hostname;
    }
    if let Some((tag, pid, after_tag)) = split_tag(content) {
        message.app_name = Some(tag);
        message.proc_id = pid;
        content = after_tag;
    }
    message.msg = Some(decode_msg(content, &mut message.invalid_utf8));
    Ok(message)
}

/// How far ahead of the receipt time an RFC 3164 date may be and still be read as this
/// year's: a day covers a sender's clock running ahead and every zone offset (±14 h) of
/// a sender whose zone `location` does not name, so neither costs a whole year.
const RFC3164_FUTURE_SKEW_SECONDS: i64 = 24 * 3600;

/// `Mmm dd hh:mm:ss` (day padded with a space or a zero) and the space after it, read as
/// a wall-clock time in `location`. The year is the one that makes it the most recent
/// date not later than `now` plus [`RFC3164_FUTURE_SKEW_SECONDS`], as rsyslog reads it:
/// a December message read in January belongs to last year, and a February date read in
/// December to this February, never to the next.
fn bsd_timestamp<'a>(
    text: &'a [u8],
    now_unix_nano: u64,
    location: &TimeZone,
) -> Option<(u64, &'a [u8])> {
    let stamp = text.get(..15)?;
    let rest = match &text[15..] {
        [] => &[][..],
        [b' ', rest @ ..] => rest,
        _ => return None,
    };
    let month = month_from_abbreviation(&stamp[..3])?;
    let day = match (stamp[3], stamp[4], stamp[5], stamp[6]) {
        (b' ', b' ', d, b' ') | (b' ', b'0', d, b' ') if d.is_ascii_digit() => d - b'0',
        (b' ', t, d, b' ') if t.is_ascii_digit() && d.is_ascii_digit() => {
            (t - b'0') * 10 + (d - b'0')
        }
        _ => return None,
    };
    let clock = two_digits(&stamp[7..9])
        .zip(two_digits(&stamp[10..12]))
        .zip(two_digits(&stamp[13..15]))
        .filter(|_| stamp[9] == b':' && stamp[12] == b':')?;
    let ((hour, minute), second) = clock;
    let nanos = most_recent_past(month, day, (hour, minute, second), now_unix_nano, location)?;
    Some((u64::try_from(nanos).ok()?, rest))
}

/// The latest of last, this and next year's `month`/`day` at `hms` in `location` that is
/// not later than `now` plus the allowed skew, in Unix nanoseconds.
fn most_recent_past(
    month: u8,
    day: u8,
    (hour, minute, second): (u8, u8, u8),
    now_unix_nano: u64,
    location: &TimeZone,
) -> Option<i128> {
    let now = Timestamp::from_nanosecond(i128::from(now_unix_nano)).ok()?;
    let latest = now.as_nanosecond() + i128::from(RFC3164_FUTURE_SKEW_SECONDS) * 1_000_000_000;
    let this_year = now.to_zoned_datetime(location.clone()).year();
    let time = civil::Time::new(
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        0,
    )
    .ok()?;
    [this_year + 1, this_year, this_year - 1]
        .into_iter()
        .filter_map(|year| civil::Date::new(year, month as i8, day as i8).ok())
        .filter_map(|date| {
            date.to_datetime(time)
                .to_zoned_datetime(location.clone())
                .ok()
        })
        .map(|zoned| zoned.timestamp().as_nanosecond())
        .find(|&t| t <= latest)
}

/// An RFC 3339 timestamp where RFC 3164 has its own, as rsyslog's
/// `RSYSLOG_ForwardFormat` and syslog-ng send it.
fn rfc3339_prefix(text: &[u8]) -> Option<(u64, &[u8])> {
    let looks_like_date =
        text.len() > 10 && text[..4].iter().all(u8::is_ascii_digit) && text[4] == b'-';
    if !looks_like_date {
        return None;
    }
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let nanos = parse_rfc3339(&text[..end])?;
    Some((nanos, text.get(end + 1..).unwrap_or_default()))
}

fn month_from_abbreviation(name: &[u8]) -> Option<u8> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let index = MONTHS
        .iter()
        .position(|m| name.eq_ignore_ascii_case(&m[..]))?;
    Some(index as u8 + 1)
}

fn two_digits(text: &[u8]) -> Option<u8> {
    match text {
        [t, d] if t.is_ascii_digit() && d.is_ascii_digit() => Some((t - b'0') * 10 + (d - b'0')),
        _ => None,
    }
}

/// The HOSTNAME after an RFC 3164 timestamp. Senders that leave it out go straight to the
/// TAG, which ends in `:` or carries `[pid]`: such a word is not taken for a host name.
fn split_hostname(text: &[u8]) -> Option<(String, &[u8])> {
    let end = text.iter().position(|&b| b == b' ')?;
    let word = &text[..end];
    let is_hostname = !word.is_empty()
        && !word.ends_with(b":")
        && word
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'));
    is_hostname.then(|| (String::from_utf8_lossy(word).into_owned(), &text[end + 1..]))
}

/// `TAG: ` or `TAG[PID]: ` at the start of RFC 3164 content (one space after `:` is
/// part of the separator). Returns `None` when the content does not start that way.
fn split_tag(text: &[u8]) -> Option<(String, Option<String>, &[u8])> {
    const MAX_TAG: usize = 128;
    let end = text
        .iter()
        .take(MAX_TAG + 1)
        .position(|&b| matches!(b, b'[' | b':' | b' '))?;
    let tag = &text[..end];
    if tag.is_empty() || !tag.iter().all(|b| (33..=126).contains(b)) {
        return None;
    }
    let (pid, rest) = match text[end] {
        b':' => (None, &text[end + 1..]),
        b'[' => {
            let inside = &text[end + 1..];
            let close = inside.iter().position(|&b| b == b']')?;
            let pid = &inside[..close];
            if pid.is_empty() || !pid.iter().all(|b| (33..=126).contains(b)) {
                return None;
            }
            let rest = inside[close + 1..].strip_prefix(b":")?;
            (Some(String::from_utf8_lossy(pid).into_owned()), rest)
        }
        _ => return None,
    };
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    Some((String::from_utf8_lossy(tag).into_owned(), pid, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2026-06-15T12:00:00Z, from `date -u -d 2026-06-15T12:00:00Z +%s`.
    const MID_2026: u64 = 1_781_524_800 * 1_000_000_000;

    fn sd(id: &str, params: &[(&str, &str)]) -> SdElement {
        SdElement {
            id: id.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    // RFC 5424 §6.5. Expected instants from `date -u -d <timestamp> +%s%N`.

    #[test]
    fn rfc5424_example_1_with_bom_and_no_structured_data() {
        let raw = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";
        let m = parse(raw, Format::Auto, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!(m.dialect, Dialect::Rfc5424);
        assert_eq!(
            m.priority,
            Some(Priority {
                facility: 4,
                severity: 2
            })
        );
        assert_eq!(m.timestamp_unix_nano, Some(1_065_910_455_003_000_000));
        assert_eq!(m.hostname, some("mymachine.example.com"));
        assert_eq!(m.app_name, some("su"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.msg_id, some("ID47"));
        assert!(m.structured_data.is_empty());
        assert_eq!(m.msg, some("'su root' failed for lonvick on /dev/pts/8"));
        assert!(!m.invalid_utf8);
        assert_eq!(parse(raw, Format::Rfc5424, MID_2026, &TimeZone::UTC), Ok(m));
    }

    #[test]
    fn rfc5424_example_2_with_offset_and_microseconds() {
        let raw = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.";
        let m = parse(raw, Format::Auto, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!(
            m.priority,
            Some(Priority {
                facility: 20,
                severity: 5
            })
        );
        assert_eq!(m.timestamp_unix_nano, Some(1_061_727_255_000_003_000));
        assert_eq!(m.hostname, some("192.0.2.1"));
        assert_eq!(m.app_name, some("myproc"));
        assert_eq!(m.proc_id, some("8710"));
        assert_eq!(m.msg_id, None);
        assert_eq!(m.msg, some("%% It's time to make the do-nuts."));
    }

    #[test]
    fn rfc5424_example_3_with_structured_data_and_msg() {
        let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...";
        let m = parse(raw, Format::Auto, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!(m.app_name, some("evntslog"));
        assert_eq!(
            m.structured_data,
            vec![sd(
                "exampleSDID@32473",
                &[
                    ("iut", "3"),
                    ("eventSource", "Application"),
                    ("eventID", "1011")
                ]
            )]
        );
        assert_eq!(m.msg, some("An application event log entry..."));
    }

    #[test]
    fn rfc5424_example_4_with_two_elements_and_no_msg() {
        let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]";
        let m = parse(raw, Format::Auto, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!(
            m.structured_data,
            vec![
                sd(
                    "exampleSDID@32473",
                    &[
                        ("iut", "3"),
                        ("eventSource", "Application"),
                        ("eventID", "1011")
                    ]
                ),
                sd("examplePriority@32473", &[("class", "high")]),
            ]
        );
        assert_eq!(m.msg, None);
    }

    #[test]
    fn rfc5424_param_value_escapes_follow_section_6_3_3() {
        let raw = br#"<13>1 - - - - - [a@1 q="say \"hi\"" b="x\\y" c="[1\]" d="C:\temp"] m"#;
        let m = parse(raw, Format::Rfc5424, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!(
            m.structured_data,
            vec![sd(
                "a@1",
                &[
                    ("q", "say \"hi\""),
                    ("b", "x\\y"),
                    ("c", "[1]"),
                    ("d", "C:\\temp")
                ]
            )]
        );
        assert_eq!(m.timestamp_unix_nano, None);
        assert_eq!(
            (m.hostname, m.app_name, m.proc_id, m.msg_id),
            (None, None, None, None)
        );
        assert_eq!(m.msg, some("m"));
    }

    #[test]
    fn rfc5424_empty_msg_after_space_is_an_empty_string() {
        let m = parse(
            b"<13>1 - - - - - - ",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.msg, some(""));
    }

    #[test]
    fn rfc5424_grammar_violations_are_reported() {
        let cases: &[(&[u8], ParseError)] = &[
            (
                b"<13>1 2003-10-11T22:14:15.003Z host app - ID47",
                ParseError::MissingField("MSGID"),
            ),
            (
                b"<13>1 2003-10-11T22:14:15.003Z host app - ID47 ",
                ParseError::MissingField("STRUCTURED-DATA"),
            ),
            (
                b"<13>1 2003-13-11T22:14:15Z host app - - - m",
                ParseError::InvalidTimestamp,
            ),
            (
                b"<13>1 1969-12-31T23:59:59Z host app - - - m",
                ParseError::InvalidTimestamp,
            ),
            (b"<13>1 - host app - - msg", ParseError::StructuredDataStart),
            (
                b"<13>1 - host app - - [id a=\"1\" =\"2\"]",
                ParseError::StructuredData("PARAM-NAME is empty or has a forbidden character"),
            ),
            (
                b"<13>1 - host app - - [id a=\"1]",
                ParseError::StructuredData("PARAM-VALUE is not closed by `\"`"),
            ),
            (
                b"<13>1 - host app - - [id a=1]",
                ParseError::StructuredData("expected `=\"` after PARAM-NAME"),
            ),
            (
                b"<13>1 - host app - - [] m",
                ParseError::StructuredData("SD-ID is empty or has a forbidden character"),
            ),
            (
                b"<13>1 - host app - - -m",
                ParseError::MissingSpaceBeforeMsg,
            ),
            (
                b"<13>1 - ho\xC3\xA9st app - - - m",
                ParseError::NotPrintable("HOSTNAME"),
            ),
            (b"<192>1 - host app - - - m", ParseError::InvalidPri),
            (b"<1a>1 - - - - - -", ParseError::InvalidPri),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                parse(raw, Format::Auto, MID_2026, &TimeZone::UTC).as_ref(),
                Err(expected),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            parse(
                b"Oct 11 22:14:15 host su: x",
                Format::Rfc5424,
                MID_2026,
                &TimeZone::UTC
            ),
            Err(ParseError::MissingPri)
        );
        assert_eq!(
            parse(
                b"<34>Oct 11 22:14:15 host su: x",
                Format::Rfc5424,
                MID_2026,
                &TimeZone::UTC
            ),
            Err(ParseError::MissingVersion)
        );
        assert_eq!(
            parse(
                b"<13>2 - host app - - - m",
                Format::Rfc5424,
                MID_2026,
                &TimeZone::UTC
            ),
            Err(ParseError::UnsupportedVersion("2".into()))
        );
        assert_eq!(
            parse(b"", Format::Auto, MID_2026, &TimeZone::UTC),
            Err(ParseError::Empty)
        );
    }

    #[test]
    fn auto_takes_only_version_1_for_rfc5424() {
        let m = parse(b"<13>12 apples", Format::Auto, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!((m.dialect, m.msg), (Dialect::Rfc3164, some("12 apples")));
    }

    #[test]
    fn rfc5424_invalid_utf8_in_msg_and_values_is_replaced_and_flagged() {
        let m = parse(
            b"<13>1 - - - - - [a@1 v=\"\xFF\"] caf\xC3\xA9 \xC3",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert!(m.invalid_utf8);
        assert_eq!(m.structured_data, vec![sd("a@1", &[("v", "\u{FFFD}")])]);
        assert_eq!(m.msg, some("café \u{FFFD}"));
    }

    // RFC 3164 §5.4 and what real senders do. Year inference is checked against `now`
    // in mid-2026, so RFC 3164 dates after June land in 2025: the most recent past date.

    #[test]
    fn rfc3164_example_1() {
        let m = parse(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.dialect, Dialect::Rfc3164);
        assert_eq!(
            m.priority,
            Some(Priority {
                facility: 4,
                severity: 2
            })
        );
        // date -u -d 2025-10-11T22:14:15Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_760_220_855 * 1_000_000_000));
        assert_eq!(m.hostname, some("mymachine"));
        assert_eq!(m.app_name, some("su"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.msg, some("'su root' failed for lonvick on /dev/pts/8"));
    }

    #[test]
    fn rfc3164_example_2_without_pri_is_all_content() {
        let m = parse(b"Use the BFG!", Format::Auto, MID_2026, &TimeZone::UTC).unwrap();
        assert_eq!(m.dialect, Dialect::Rfc3164);
        assert_eq!(m.priority, None);
        assert_eq!(m.timestamp_unix_nano, None);
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name, None);
        assert_eq!(m.msg, some("Use the BFG!"));
    }

    #[test]
    fn rfc3164_example_3_reads_the_word_after_the_timestamp_as_hostname() {
        let m = parse(
            b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jigger=OK, Smoker=OK, Deep-Fryer=OK",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(
            m.priority,
            Some(Priority {
                facility: 20,
                severity: 5
            })
        );
        // date -u -d 2025-08-24T05:34:00Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_756_013_640 * 1_000_000_000));
        assert_eq!(m.hostname, some("CST"));
        assert_eq!(m.app_name, None);
        assert_eq!(
            m.msg,
            some(
                "1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jigger=OK, Smoker=OK, Deep-Fryer=OK"
            )
        );
    }

    #[test]
    fn rfc3164_example_4_with_invalid_timestamp_is_all_content() {
        let m = parse(
            b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(
            m.priority,
            Some(Priority {
                facility: 0,
                severity: 0
            })
        );
        assert_eq!(m.timestamp_unix_nano, None);
        assert_eq!(m.hostname, None);
        assert_eq!(
            m.msg,
            some(
                "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!"
            )
        );
    }

    #[test]
    fn rfc3164_space_padded_day_tag_with_pid_and_missing_hostname() {
        let m = parse(
            b"<13>Oct  1 09:05:07 host app[4711]: started",
            Format::Rfc3164,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        // date -u -d 2025-10-01T09:05:07Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_759_309_507 * 1_000_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.proc_id),
            (some("host"), some("app"), some("4711"))
        );
        assert_eq!(m.msg, some("started"));

        let m = parse(
            b"<13>Oct 01 09:05:07 sshd[99]: Accepted publickey",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.timestamp_unix_nano, Some(1_759_309_507 * 1_000_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.proc_id),
            (None, some("sshd"), some("99"))
        );
        assert_eq!(m.msg, some("Accepted publickey"));

        let m = parse(
            b"<13>Oct  1 09:05:07 cron: job done",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!((m.hostname, m.app_name), (None, some("cron")));
        assert_eq!(m.msg, some("job done"));
    }

    #[test]
    fn rfc3164_year_follows_the_receipt_time_across_new_year() {
        // Received 2027-01-01T00:00:05Z (date -u -d 2027-01-01T00:00:05Z +%s).
        let new_year = 1_798_761_605 * 1_000_000_000;
        let m = parse(
            b"<13>Dec 31 23:59:58 h a: x",
            Format::Auto,
            new_year,
            &TimeZone::UTC,
        )
        .unwrap();
        // date -u -d 2026-12-31T23:59:58Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_798_761_598 * 1_000_000_000));
        // A sender whose clock runs ahead, read on 2026-12-31T23:59:58Z.
        let m = parse(
            b"<13>Jan  1 00:00:05 h a: x",
            Format::Auto,
            1_798_761_598 * 1_000_000_000,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.timestamp_unix_nano, Some(new_year));
    }

    #[test]
    fn rfc3164_dates_ahead_of_the_receipt_time_belong_to_the_past_year() {
        // Received 2026-12-04T12:00:00Z (date -u -d 2026-12-04T12:00:00Z +%s).
        let december_4 = 1_796_385_600 * 1_000_000_000;
        let m = parse(
            b"<13>Feb  5 17:32:18 h a: x",
            Format::Auto,
            december_4,
            &TimeZone::UTC,
        )
        .unwrap();
        // date -u -d 2026-02-05T17:32:18Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_770_312_738 * 1_000_000_000));
        // Within the allowed skew a date just ahead stays in this year.
        let m = parse(
            b"<13>Dec  4 20:00:00 h a: x",
            Format::Auto,
            december_4,
            &TimeZone::UTC,
        )
        .unwrap();
        // date -u -d 2026-12-04T20:00:00Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_796_414_400 * 1_000_000_000));
        // Beyond it, last year's.
        let m = parse(
            b"<13>Dec  6 12:00:00 h a: x",
            Format::Auto,
            december_4,
            &TimeZone::UTC,
        )
        .unwrap();
        // date -u -d 2025-12-06T12:00:00Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_765_022_400 * 1_000_000_000));
    }

    #[test]
    fn rfc3164_wall_clock_times_are_read_in_the_configured_location() {
        let berlin = jiff::tz::db().get("Europe/Berlin").unwrap();
        let m = parse(
            b"<13>Oct 11 22:14:15 h a: x",
            Format::Auto,
            MID_2026,
            &berlin,
        )
        .unwrap();
        // Summer time, UTC+2: date -u -d 2025-10-11T20:14:15Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_760_213_655 * 1_000_000_000));
        let m = parse(
            b"<13>Jan 11 22:14:15 h a: x",
            Format::Auto,
            MID_2026,
            &berlin,
        )
        .unwrap();
        // Winter time, UTC+1: date -u -d 2026-01-11T21:14:15Z +%s
        assert_eq!(m.timestamp_unix_nano, Some(1_768_166_055 * 1_000_000_000));
    }

    #[test]
    fn rfc3164_with_rfc3339_timestamp_as_rsyslog_forwards_it() {
        let m = parse(
            b"<86>2003-10-11T22:14:15.003+02:00 web01 sudo[1]: pam_unix",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.dialect, Dialect::Rfc3164);
        // date -u -d 2003-10-11T20:14:15.003Z +%s%N
        assert_eq!(m.timestamp_unix_nano, Some(1_065_903_255_003_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.proc_id),
            (some("web01"), some("sudo"), some("1"))
        );
        assert_eq!(m.msg, some("pam_unix"));
    }

    #[test]
    fn rfc3164_forced_format_reads_an_rfc5424_message_as_content() {
        let m = parse(
            b"<13>1 - - - - - - m",
            Format::Rfc3164,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.dialect, Dialect::Rfc3164);
        assert_eq!(m.msg, some("1 - - - - - - m"));
    }

    #[test]
    fn rfc3164_malformed_pri_is_a_parse_error() {
        for raw in [
            &b"<>Oct 11 22:14:15 h a: x"[..],
            b"<1234>x",
            b"<300>x",
            b"<13 x",
        ] {
            assert_eq!(
                parse(raw, Format::Rfc3164, MID_2026, &TimeZone::UTC),
                Err(ParseError::InvalidPri)
            );
        }
    }

    #[test]
    fn rsyslog_control_character_escapes_are_decoded_in_msg_only() {
        let m = parse(
            b"<13>Oct 11 22:14:15 h app: line one#012line two#011tab #123 #01",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.msg, some("line one\nline two\ttab #123 #01"));
        assert_eq!(
            unescape_control_characters("#177#000#040#8".into()),
            "\u{7f}\u{0}#040#8"
        );
    }

    #[test]
    fn bom_is_stripped_from_rfc3164_content_too() {
        let m = parse(
            b"<13>\xEF\xBB\xBFhello",
            Format::Auto,
            MID_2026,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(m.msg, some("hello"));
    }

    /// Writes a message the way RFC 5424 §6 lays it out, escaping PARAM-VALUEs per §6.3.3.
    fn format_rfc5424(m: &Message) -> Vec<u8> {
        let field = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
        let p = m.priority.unwrap();
        let mut out = format!(
            "<{}>1 - {} {} {} {} ",
            u16::from(p.facility) * 8 + u16::from(p.severity),
            field(&m.hostname),
            field(&m.app_name),
            field(&m.proc_id),
            field(&m.msg_id)
        );
        if m.structured_data.is_empty() {
            out.push('-');
        }
        for e in &m.structured_data {
            out.push_str(&format!("[{}", e.id));
            for (name, value) in &e.params {
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace(']', "\\]");
                out.push_str(&format!(" {name}=\"{escaped}\""));
            }
            out.push(']');
        }
        if let Some(msg) = &m.msg {
            out.push(' ');
            out.push_str(msg);
        }
        out.into_bytes()
    }

    fn arbitrary_rfc5424() -> impl Strategy<Value = Message> {
        let printable = "[!-~]{1,12}";
        let name = "[!-~&&[^=\\]\"]]{1,12}";
        let optional = || proptest::option::of(printable);
        (
            (0u8..24, 0u8..8),
            (optional(), optional(), optional(), optional()),
            proptest::collection::vec(
                (name, proptest::collection::vec((name, "\\PC{0,12}"), 0..4)),
                0..3,
            ),
            proptest::option::of("\\PC{0,40}"),
        )
            .prop_filter("fields are not NILVALUE", |(_, (h, a, p, m), _, _)| {
                [h, a, p, m].iter().all(|f| f.as_deref() != Some("-"))
            })
            .prop_map(
                |((facility, severity), (hostname, app_name, proc_id, msg_id), sd, msg)| Message {
                    dialect: Dialect::Rfc5424,
                    priority: Some(Priority { facility, severity }),
                    timestamp_unix_nano: None,
                    hostname,
                    app_name,
                    proc_id,
                    msg_id,
                    structured_data: sd
                        .into_iter()
                        .map(|(id, params)| SdElement { id, params })
                        .collect(),
                    // A MSG starting with a BOM or holding `#ooo` would not round-trip.
                    msg: msg.filter(|m| !m.starts_with('\u{FEFF}') && !m.contains('#')),
                    invalid_utf8: false,
                },
            )
    }

    proptest! {
        #[test]
        fn rfc5424_messages_written_by_the_rfc_grammar_parse_back(message in arbitrary_rfc5424()) {
            let raw = format_rfc5424(&message);
            prop_assert_eq!(parse(&raw, Format::Auto, MID_2026, &TimeZone::UTC), Ok(message));
        }

        #[test]
        fn arbitrary_bytes_never_panic_in_any_format(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            for format in [Format::Auto, Format::Rfc5424, Format::Rfc3164] {
                let _ = parse(&raw, format, MID_2026, &TimeZone::UTC);
            }
        }

        #[test]
        fn arbitrary_text_after_a_valid_header_never_panics(tail in "\\PC{0,80}", pri in 0u16..192) {
            for head in ["1 ", "1 - - - - - [", "Oct  1 09:05:07 ", "2026-01-01T00:00:00Z h "] {
                let raw = format!("<{pri}>{head}{tail}");
                let _ = parse(raw.as_bytes(), Format::Auto, MID_2026, &TimeZone::UTC);
            }
        }
    }
}
