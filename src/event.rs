//! The record model: one audit event, shaped like an OTLP `LogRecord`, and its JSON form.
//!
//! Receivers turn what they accept into [`Record`]s; processors change them; the journal
//! writer seals them into *entries*, the JSON objects defined by the evidence format
//! (`v`, `stream`, `seq`, `prev`, `hash`, `kid`, `mac` plus the record's own fields).
//!
//! JSON form of a record (top-level fields of an entry besides the integrity fields):
//!
//! | field | JSON | from |
//! |---|---|---|
//! | `time` | RFC 3339 UTC string with 9 fractional digits | OTLP `time_unix_nano`, syslog timestamp, or receipt time |
//! | `observed_time` | same | when Vellum received it |
//! | `severity_number` | integer 0..=24 (OTLP scale) | OTLP / syslog severity / `classify` |
//! | `severity_text` | string, omitted when empty | |
//! | `severity` | `info`, `low`, `medium`, `high`, `critical`; omitted until classified | `classify` |
//! | `event_type` | string, omitted until classified | `classify` or the source |
//! | `body` | any JSON | |
//! | `attributes` | object | |
//! | `resource` | object, omitted when empty | OTLP resource attributes |
//! | `scope` | object `{name, version}`, omitted when empty | OTLP instrumentation scope |
//! | `trace_id`, `span_id` | lowercase hex, omitted when absent | |
//! | `source` | id of the receiver that accepted it | |
//! | `redaction` | summary object, omitted when nothing was scanned | `redact` |
//! | `tags` | array of strings, omitted when empty | `classify` |
//!
//! Numbers are kept exactly representable as IEEE-754 doubles: integers beyond
//! ±(2^53−1) become decimal strings (see [`json_safe`]).

use serde_json::{Map, Value};

/// The largest integer magnitude a JSON number may carry in an entry (2^53 − 1).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Severity as security teams grade it; `classify` sets it and maps it onto the OTLP scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The OTLP severity number this grade maps to: INFO, WARN, ERROR, ERROR4, FATAL.
    pub fn otlp_number(self) -> i32 {
        match self {
            Severity::Info => 9,
            Severity::Low => 13,
            Severity::Medium => 17,
            Severity::High => 20,
            Severity::Critical => 21,
        }
    }
}

/// One audit event before sealing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// When the event happened, Unix nanoseconds; 0 when the source did not say.
    pub time_unix_nano: u64,
    /// When Vellum received it, Unix nanoseconds.
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: String,
    pub severity: Option<Severity>,
    pub event_type: Option<String>,
    pub body: Value,
    pub attributes: Map<String, Value>,
    pub resource: Map<String, Value>,
    pub scope: Map<String, Value>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Id of the receiver that accepted the record (`otlp`, `syslog/tcp`, …).
    pub source: String,
    /// Summary written by `redact`: counts per detector and the policy, never values.
    pub redaction: Option<Value>,
    pub tags: Vec<String>,
}

impl Record {
    /// A record with `observed_time` set to now and nothing else.
    pub fn new(source: impl Into<String>) -> Record {
        Record {
            observed_time_unix_nano: now_unix_nano(),
            source: source.into(),
            ..Record::default()
        }
    }

    /// The record's JSON fields, in the form entries carry them.
    pub fn to_json(&self) -> Map<String, Value> {
        self.clone().into_json()
    }

    /// The JSON fields, consuming the record: what the writer seals, without copying
    /// the body and attribute maps.
    pub fn into_json(self) -> Map<String, Value> {
        let mut m = Map::new();
        let time = if self.time_unix_nano == 0 {
            self.observed_time_unix_nano
        } else {
            self.time_unix_nano
        };
        m.insert("time".into(), Value::String(format_time(time)));
        m.insert(
            "observed_time".into(),
            Value::String(format_time(self.observed_time_unix_nano)),
        );
        m.insert("severity_number".into(), Value::from(self.severity_number));
        if !self.severity_text.is_empty() {
            m.insert("severity_text".into(), Value::String(self.severity_text));
        }
        if let Some(s) = self.severity {
            m.insert("severity".into(), Value::String(s.as_str().into()));
        }
        if let Some(t) = self.event_type {
            m.insert("event_type".into(), Value::String(t));
        }
        m.insert("body".into(), self.body);
        m.insert("attributes".into(), Value::Object(self.attributes));
        if !self.resource.is_empty() {
            m.insert("resource".into(), Value::Object(self.resource));
        }
        if !self.scope.is_empty() {
            m.insert("scope".into(), Value::Object(self.scope));
        }
        if let Some(t) = self.trace_id {
            m.insert("trace_id".into(), Value::String(t));
        }
        if let Some(s) = self.span_id {
            m.insert("span_id".into(), Value::String(s));
        }
        m.insert("source".into(), Value::String(self.source));
        if let Some(r) = self.redaction {
            m.insert("redaction".into(), r);
        }
        if !self.tags.is_empty() {
            m.insert(
                "tags".into(),
                Value::Array(self.tags.into_iter().map(Value::String).collect()),
            );
        }
        m
    }

    /// A record back from an entry's JSON (integrity fields are ignored): what routing
    /// conditions and queries evaluate. Unknown or malformed fields are left default.
    pub fn from_entry(mut entry: Map<String, Value>) -> Record {
        let mut take_str = |k: &str| match entry.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let time = take_str("time").and_then(|t| parse_time(&t)).unwrap_or(0);
        let observed = take_str("observed_time")
            .and_then(|t| parse_time(&t))
            .unwrap_or(0);
        let severity_text = take_str("severity_text").unwrap_or_default();
        let severity = take_str("severity").and_then(|s| Severity::parse(&s));
        let event_type = take_str("event_type");
        let trace_id = take_str("trace_id");
        let span_id = take_str("span_id");
        let source = take_str("source").unwrap_or_default();
        let mut take_map = |k: &str| match entry.remove(k) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let attributes = take_map("attributes");
        let resource = take_map("resource");
        let scope = take_map("scope");
        let tags = match entry.remove("tags") {
            Some(Value::Array(a)) => a
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Record {
            time_unix_nano: time,
            observed_time_unix_nano: observed,
            severity_number: entry
                .get("severity_number")
                .and_then(Value::as_i64)
                .unwrap_or(0) as i32,
            severity_text,
            severity,
            event_type,
            body: entry.remove("body").unwrap_or(Value::Null),
            attributes,
            resource,
            scope,
            trace_id,
            span_id,
            source,
            redaction: entry.remove("redaction"),
            tags,
        }
    }

    /// The value at a dotted field path, as the condition language and `redact` name
    /// fields: `body`, `body.status`, `attributes.user_id`, `resource.service.name`,
    /// `severity`, `event_type`, `source`. Map keys that themselves contain dots
    /// (`service.name`) are matched whole before descending.
    pub fn get_path(&self, path: &str) -> Option<Value> {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let scalar = |v: Value| if rest.is_none() { Some(v) } else { None };
        match head {
            "severity" => scalar(Value::String(self.severity?.as_str().into())),
            "severity_number" => scalar(Value::from(self.severity_number)),
            "severity_text" => scalar(Value::String(self.severity_text.clone())),
            "event_type" => scalar(Value::String(self.event_type.clone()?)),
            "source" => scalar(Value::String(self.source.clone())),
            "trace_id" => scalar(Value::String(self.trace_id.clone()?)),
            "span_id" => scalar(Value::String(self.span_id.clone()?)),
            "body" => match rest {
                None => Some(self.body.clone()),
                Some(r) => lookup(&self.body, r).cloned(),
            },
            "attributes" => lookup_map(&self.attributes, rest?).cloned(),
            "resource" => lookup_map(&self.resource, rest?).cloned(),
            "scope" => lookup_map(&self.scope, rest?).cloned(),
            _ => None,
        }
    }
}

/// Descends a dotted path into a JSON value; see [`Record::get_path`].
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => lookup_map(m, path),
        Value::Array(a) => {
            let (head, rest) = match path.split_once('.') {
                Some((h, r)) => (h, Some(r)),
                None => (path, None),
            };
            let item = a.get(head.parse::<usize>().ok()?)?;
            match rest {
                None => Some(item),
                Some(r) => lookup(item, r),
            }
        }
        _ => None,
    }
}

/// Descends a dotted path into a JSON object, preferring the longest key that matches
/// (so `service.name` finds the OTLP attribute named exactly that).
pub fn lookup_map<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = m.get(path) {
        return Some(v);
    }
    let mut split = path.len();
    while let Some(i) = path[..split].rfind('.') {
        if let Some(v) = m.get(&path[..i])
            && let Some(found) = lookup(v, &path[i + 1..])
        {
            return Some(found);
        }
        split = i;
    }
    None
}

/// Makes a JSON value safe for an entry: integers beyond ±(2^53−1) become decimal
/// strings, as the evidence format requires (serde_json never yields NaN or infinity).
pub fn json_safe(v: Value) -> Value {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE_INTEGER as u64 {
                    return Value::String(i.to_string());
                }
            } else if let Some(u) = n.as_u64()
                && u > MAX_SAFE_INTEGER as u64
            {
                return Value::String(u.to_string());
            }
            Value::Number(n)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(json_safe).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, json_safe(v))).collect()),
        other => other,
    }
}

/// An i64 as an entry carries it: a number when exactly representable, else a string.
pub fn int_value(i: i64) -> Value {
    if i.unsigned_abs() > MAX_SAFE_INTEGER as u64 {
        Value::String(i.to_string())
    } else {
        Value::from(i)
    }
}

/// An f64 as an entry carries it: NaN and infinities, which JSON cannot hold, as strings.
pub fn float_value(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None => Value::String(f.to_string()),
    }
}

pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with exactly nine fractional digits: `2026-11-23T18:55:00.000000001Z`.
/// A fixed width keeps the text of a time unique, which a hashed format wants.
pub fn format_time(unix_nano: u64) -> String {
    let secs = (unix_nano / 1_000_000_000) as i64;
    let nanos = (unix_nano % 1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses RFC 3339 (any offset, any fraction) into Unix nanoseconds; `None` before 1970
/// or when malformed.
pub fn parse_time(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

impl schemars::JsonSchema for Severity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "severity".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_formats_with_nine_digits_and_round_trips_through_the_time_crate() {
        for ns in [0u64, 1, 951_782_400_123_456_789, 1_795_000_000_000_000_000] {
            let s = format_time(ns);
            assert_eq!(s.len(), 30, "{s}");
            assert_eq!(parse_time(&s), Some(ns), "{s}");
        }
        assert_eq!(
            format_time(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn entries_read_back_into_the_records_they_were_made_from() {
        let mut r = Record::new("syslog/tcp");
        r.time_unix_nano = 1_700_000_000_123_456_789;
        r.severity_number = 17;
        r.severity_text = "ERROR".into();
        r.severity = Some(Severity::High);
        r.event_type = Some("security".into());
        r.body = json!({"msg": "x"});
        r.attributes.insert("user_id".into(), json!("u1"));
        r.resource.insert("host.name".into(), json!("gw-1"));
        r.scope.insert("name".into(), json!("audit"));
        r.trace_id = Some("ab".repeat(16));
        r.redaction = Some(json!({"email": 1}));
        r.tags = vec!["burst".into()];
        let mut entry = r.to_json();
        entry.insert("seq".into(), json!(4));
        entry.insert("hash".into(), json!("00"));
        assert_eq!(Record::from_entry(entry), r);
    }

    #[test]
    fn large_integers_become_strings() {
        let v = json_safe(
            json!({"a": 9007199254740991i64, "b": 9007199254740992i64, "c": [-9007199254740993i64], "d": u64::MAX}),
        );
        assert_eq!(
            v,
            json!({"a": 9007199254740991i64, "b": "9007199254740992", "c": ["-9007199254740993"], "d": "18446744073709551615"})
        );
        assert_eq!(float_value(f64::NAN), json!("NaN"));
    }

    #[test]
    fn paths_reach_dotted_keys_nested_maps_and_arrays() {
        let mut r = Record::new("otlp");
        r.resource.insert("service.name".into(), json!("gw"));
        r.attributes
            .insert("user".into(), json!({"id": "u1", "roles": ["admin"]}));
        r.body = json!({"status": 401});
        assert_eq!(r.get_path("resource.service.name"), Some(json!("gw")));
        assert_eq!(r.get_path("attributes.user.id"), Some(json!("u1")));
        assert_eq!(r.get_path("attributes.user.roles.0"), Some(json!("admin")));
        assert_eq!(r.get_path("body.status"), Some(json!(401)));
        assert_eq!(r.get_path("severity"), None);
        assert_eq!(r.get_path("source"), Some(json!("otlp")));
        assert_eq!(r.get_path("attributes.missing"), None);
    }
}
