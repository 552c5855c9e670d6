//! What the query index reads from a sealed entry: its time and the fields queries filter on.
//!
//! Gateways name the same thing differently, so each field is read from the first of
//! several paths that is present, in this order (the paths `classify`'s built-in pack
//! reads; dotted keys such as OTLP's `user.id` attribute are matched whole first):
//!
//! | filter | entry paths, first present wins |
//! |---|---|
//! | `start`, `end` | `time` (the event's time, which is the observed time when the source gave none), else `observed_time` |
//! | `event_type` | `event_type` (set by `classify` or the source) |
//! | `severity` | `severity` (`info` … `critical`, set by `classify`) |
//! | `user_id` | `attributes.user_id`, `attributes.actor.session.user.id`, `attributes.user.id`, `attributes.enduser.id`, `attributes.user.name`, `attributes.user`, `attributes.username`, `attributes.email`, `attributes.metadata.user_api_key_user_id`, `attributes.consumer.username` |
//! | `action` | `attributes.action`, `attributes.type`, `attributes.event.action`, `attributes.event.name` |
//! | `status` | `attributes.status`, `attributes.outcome`, `attributes.event.outcome`, `attributes.response_status_code`, `attributes.http.response.status_code`, `attributes.status_code` |
//! | `identity` | `attributes["vellum.client.identity"]`: who the receiver authenticated (a certificate's SAN or CN, or a token's name) |
//! | `ip` | `attributes.ip`, `attributes.client_ip`, `attributes.ip_address`, `attributes.source.ip`, `attributes.client.address`, `attributes.actor.session.ip_address` |
//!
//! A value is indexed when it is a non-empty string of at most [`MAX_VALUE_BYTES`] bytes
//! or a number (kept as its decimal text, so `status=403` finds `403` and `"403"`);
//! matching is exact and case-sensitive. An `ip` is an IPv4 or IPv6 address, optionally
//! with a port (`203.0.113.9:443`, `[2001:db8::1]:443`); IPv4-mapped IPv6 addresses count
//! as IPv4. A value that does not fit is simply not indexed: queries on that field
//! never return the entry.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{Severity, lookup_map, parse_time};

/// Longer values are not indexed: they cost memory and no one types them into a query.
pub const MAX_VALUE_BYTES: usize = 1024;

// Where who, what, outcome and address stand in an entry's attributes, first present
// wins: the gateway vocabularies classify's built-in pack reads (OpenAI, LiteLLM,
// Portkey, Kong, Cloudflare, OTel/ECS, the `http` receiver). `vellum report` reads the
// same paths, so a report and a query agree on who did what.
pub const USER_ID_PATHS: &[&str] = &[
    "user_id",
    "actor.session.user.id",
    "actor.api_key.user.id",
    "actor.api_key.service_account.id",
    "user.id",
    "user.name",
    "user.email",
    "user",
    "username",
    "email",
    "changed_by",
    "consumer.username",
    "consumer.id",
    "metadata.user_api_key_user_id",
    "enduser.id",
];
pub const ACTION_PATHS: &[&str] = &[
    "action",
    "type",
    "event.name",
    "event.action",
    "call_type",
    "gen_ai.operation.name",
    "method",
];
pub const STATUS_PATHS: &[&str] = &[
    "outcome",
    "event.outcome",
    "status",
    "result",
    "response_status_code",
    "status_code",
    "http.response.status_code",
];
/// Where the receiver seals who sent a record: the identity it authenticated.
pub const IDENTITY_PATH: &str = "vellum.client.identity";
pub const IP_PATHS: &[&str] = &[
    "ip",
    "client_ip",
    "ip_address",
    "source.ip",
    "client.address",
    "actor.session.ip_address",
    "remote_addr",
];

/// The indexed fields of one entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryFields {
    /// Unix nanoseconds; 0 when the entry has no readable time.
    pub time: u64,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub user_id: Option<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub ip: Option<IpAddr>,
    pub identity: Option<String>,
}

/// The members of an entry the index reads; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Indexed<'a> {
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    observed_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    severity: Option<Cow<'a, str>>,
    #[serde(default)]
    attributes: Option<Value>,
}

impl EntryFields {
    /// Reads the fields of an entry line (its JSON text). `None` when the line is not a
    /// JSON object; a member of the wrong type is treated as absent.
    pub fn from_line(line: &[u8]) -> Option<EntryFields> {
        // Members of an unexpected type would fail the typed parse; fall back to a
        // generic one so that one odd member does not lose the entry's other fields.
        let indexed: Indexed = match serde_json::from_slice(line) {
            Ok(i) => i,
            Err(_) => return EntryFields::from_value(serde_json::from_slice(line).ok()?),
        };
        let time = indexed
            .time
            .as_deref()
            .and_then(parse_time)
            .or_else(|| indexed.observed_time.as_deref().and_then(parse_time))
            .unwrap_or(0);
        let attributes = match &indexed.attributes {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        Some(EntryFields::from_parts(
            time,
            indexed.event_type.as_deref(),
            indexed.severity.as_deref(),
            attributes,
        ))
    }

    fn from_value(value: Value) -> Option<EntryFields> {
        let Value::Object(entry) = value else {
            return None;
        };
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        let time = text("time")
            .and_then(parse_time)
            .or_else(|| text("observed_time").and_then(parse_time))
            .unwrap_or(0);
        let attributes = entry.get("attributes").and_then(Value::as_object);
        Some(EntryFields::from_parts(
            time,
            text("event_type"),
            text("severity"),
            attributes,
        ))
    }

    fn from_parts(
        time: u64,
        event_type: Option<&str>,
        severity: Option<&str>,
        attributes: Option<&Map<String, Value>>,
    ) -> EntryFields {
        let first = |paths: &[&str]| {
            let attributes = attributes?;
            paths
                .iter()
                .find_map(|p| lookup_map(attributes, p).and_then(indexable))
        };
        EntryFields {
            time,
            event_type: event_type.filter(|t| fits(t)).map(str::to_string),
            severity: severity.and_then(Severity::parse),
            user_id: first(USER_ID_PATHS),
            action: first(ACTION_PATHS),
            status: first(STATUS_PATHS),
            identity: first(&[IDENTITY_PATH]),
            ip: attributes.and_then(|a| {
                IP_PATHS
                    .iter()
                    .find_map(|p| lookup_map(a, p).and_then(Value::as_str).and_then(parse_ip))
            }),
        }
    }
}

fn fits(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_VALUE_BYTES
}

/// A string or number as the index keeps it.
fn indexable(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if fits(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An address, with or without a port; IPv4-mapped IPv6 as IPv4.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip = s
        .parse::<IpAddr>()
        .or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Record;
    use serde_json::json;

    fn line(attributes: Value) -> Vec<u8> {
        let mut r = Record::new("http/gateway");
        r.time_unix_nano = 1_700_000_000_000_000_001;
        r.event_type = Some("authentication".into());
        r.severity = Some(Severity::High);
        if let Value::Object(m) = attributes {
            r.attributes = m;
        }
        serde_json::to_vec(&r.into_json()).unwrap()
    }

    #[test]
    fn a_gateway_event_maps_onto_every_field() {
        let f = EntryFields::from_line(&line(
            json!({"action": "login.failed", "user_id": "u1", "ip": "10.0.0.7", "outcome": "failure",
                   "vellum.client.identity": "spiffe://example.org/gw"}),
        ))
        .unwrap();
        assert_eq!(
            f,
            EntryFields {
                time: 1_700_000_000_000_000_001,
                event_type: Some("authentication".into()),
                severity: Some(Severity::High),
                user_id: Some("u1".into()),
                action: Some("login.failed".into()),
                status: Some("failure".into()),
                ip: Some("10.0.0.7".parse().unwrap()),
                identity: Some("spiffe://example.org/gw".into()),
            }
        );
    }

    #[test]
    fn other_shapes_use_the_later_paths() {
        // OpenAI's audit log: nested actor, `type` as the action.
        let f = EntryFields::from_line(&line(json!({"type": "api_key.created",
            "actor": {"session": {"user": {"id": "user-abc"}, "ip_address": "2001:db8::7"}}})))
        .unwrap();
        assert_eq!(f.user_id.as_deref(), Some("user-abc"));
        assert_eq!(f.action.as_deref(), Some("api_key.created"));
        assert_eq!(f.ip, Some("2001:db8::7".parse().unwrap()));
        // OTLP semantic conventions: flat dotted keys, numeric status, address with port.
        let f = EntryFields::from_line(&line(json!({"enduser.id": "bob", "event.name": "x.y",
            "http.response.status_code": 403, "client.address": "[::ffff:198.51.100.4]:443"})))
        .unwrap();
        assert_eq!(f.user_id.as_deref(), Some("bob"));
        assert_eq!(f.action.as_deref(), Some("x.y"));
        assert_eq!(f.status.as_deref(), Some("403"));
        assert_eq!(
            f.ip,
            Some("198.51.100.4".parse().unwrap()),
            "mapped v4 is v4"
        );
    }

    #[test]
    fn unusable_values_are_left_out_and_odd_members_do_not_lose_the_rest() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let f = EntryFields::from_line(&line(
            json!({"user_id": "", "user": {"id": ["a"]}, "username": long, "email": "e@x",
                   "action": true, "ip": "not an ip", "client_ip": "203.0.113.1"}),
        ))
        .unwrap();
        assert_eq!(f.user_id.as_deref(), Some("e@x"));
        assert_eq!(f.action, None);
        assert_eq!(f.ip, Some("203.0.113.1".parse().unwrap()));

        let odd = br#"{"time": 5, "observed_time": "2024-01-01T00:00:00Z", "severity": 3,
            "event_type": "security", "attributes": {"user_id": "u"}}"#;
        let f = EntryFields::from_line(odd).unwrap();
        assert_eq!(f.time, 1_704_067_200_000_000_000);
        assert_eq!(f.severity, None);
        assert_eq!(f.event_type.as_deref(), Some("security"));
        assert_eq!(f.user_id.as_deref(), Some("u"));
        assert_eq!(EntryFields::from_line(b"[1]"), None);
        assert_eq!(EntryFields::from_line(b"{"), None);
        assert_eq!(
            EntryFields::from_line(b"{}").unwrap(),
            EntryFields::default()
        );
    }
}
