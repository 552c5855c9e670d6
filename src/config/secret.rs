//! Secrets from the configuration (tokens, keys, passwords) and URLs fit to print.
//!
//! Every credential a component reads from its settings is a [`Secret`]: its value is
//! reachable only through [`Secret::expose`], `Debug` prints `Secret(***)`, there is no
//! `Display`, the memory is zeroed when it is dropped, and a value of the wrong type is
//! refused without quoting it. [`redact_url`] is the one way a URL is printed: in
//! configuration problems, logs, dead-letter reasons and health answers.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use zeroize::Zeroizing;

/// A credential: used, never shown.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value, for the one place that sends or uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Constant time: comparing settings at a reload must not time a token.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.0.len() && bool::from(self.0.as_bytes().ct_eq(other.0.as_bytes()))
    }
}

impl Eq for Secret {}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

/// What every wrong type hears: serde's own message would quote the value.
fn not_a_string<E: de::Error>() -> E {
    E::custom("a secret must be a string (quote it in YAML); the value is not shown")
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(not_a_string())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(not_a_string())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(not_a_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(not_a_string())
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(not_a_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Secret, E> {
        Err(not_a_string())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(not_a_string())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(not_a_string())
    }
}

/// `message` with every expanded value (of 4 characters or more: shorter ones would
/// garble the message and guard nothing) shown as the reference it came from.
pub fn unquote_expanded<'a>(
    message: &str,
    expansions: impl Iterator<Item = &'a super::expand::Expansion>,
) -> String {
    let mut out = message.to_string();
    for e in expansions {
        if e.value.chars().count() >= 4 && out.contains(&e.value) {
            out = out.replace(&e.value, &e.reference);
        }
    }
    redact_url(&out)
}

/// `text` with the password of every URL in it replaced by `***` and the values of its
/// query parameters by `***` (`https://user:***@host/path?token=***`). Text that holds
/// no URL comes back as it is, so messages that merely mention one are safe to pass.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters before `://`.
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | '<' | '>' | ')'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&redact_one(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// One URL, `scheme://…` up to its end.
fn redact_one(url: &str) -> String {
    let Some(at) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, after) = url.split_at(at + 3);
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(authority_end);
    // A user name alone may be the token itself (`https://TOKEN@host`).
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}=***"),
                    None => pair.to_string(),
                })
                .collect();
            let mut t = format!("{path}?{}", query.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_shown_and_refuses_other_types_without_quoting_them() {
        let s: Secret = serde_json::from_value(serde_json::json!("hunter2-hunter2")).unwrap();
        assert_eq!(s.expose(), "hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(***))");
        assert_eq!(s, Secret::new("hunter2-hunter2"));
        assert_ne!(s, Secret::new("hunter2-hunter3"));
        for wrong in [
            serde_json::json!(918273645),
            serde_json::json!(3.25),
            serde_json::json!(true),
        ] {
            let e = serde_json::from_value::<Secret>(wrong.clone())
                .unwrap_err()
                .to_string();
            assert!(e.contains("a secret must be a string"), "{e}");
            assert!(!e.contains(&wrong.to_string()), "{e}");
        }
    }

    #[test]
    fn urls_are_printed_without_passwords_or_query_values() {
        let cases = [
            (
                "https://user:pa55@host:8088/p?token=abc&x",
                "https://user:***@host:8088/p?token=***&x",
            ),
            ("http://:pa55@host/", "http://:***@host/"),
            ("https://host/hook", "https://host/hook"),
            ("https://host/h?sig=1#frag", "https://host/h?sig=***#frag"),
            (
                "error sending request for url (https://u:p%40ss@h/x?k=v): refused",
                "error sending request for url (https://u:***@h/x?k=***): refused",
            ),
            (
                "`s3://key:secret@bucket` and `https://tok@b/`",
                "`s3://key:***@bucket` and `https://***@b/`",
            ),
            ("no url here: a=b", "no url here: a=b"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_url(text), expected, "{text}");
        }
    }
}

#[cfg(test)]
mod loading {
    use crate::config::Config;
    use crate::config::expand::Source;

    struct Env;
    impl Source for Env {
        fn env(&self, name: &str) -> Option<String> {
            match name {
                "GATEWAY_TOKEN" => Some("0000918273645501".into()),
                "EVERY" => Some("250".into()),
                "SHORT" => Some("77777".into()),
                _ => None,
            }
        }
        fn file(&self, path: &str) -> Result<String, String> {
            Err(format!("cannot read `{path}`"))
        }
    }

    fn yaml(token: &str, every: &str) -> String {
        format!(
            r#"
receivers:
  http: {{ endpoint: 127.0.0.1:0, bearer_token: "{token}" }}
processors:
  hash_chain: {{ origin: a.example, checkpoint: {{ every_records: "{every}" }} }}
exporters:
  file: {{ directory: /tmp/e }}
service:
  storage: {{ directory: /tmp/s }}
  pipelines:
    logs/a: {{ receivers: [http], processors: [hash_chain], exporters: [file] }}
"#
        )
    }

    #[test]
    fn a_reference_gives_a_string_to_a_string_setting_and_a_number_to_a_number_setting() {
        let config = Config::from_yaml(
            &yaml("${env:GATEWAY_TOKEN}", "${env:EVERY}"),
            "t.yaml",
            &Env,
        )
        .unwrap();
        let (_, receiver) = config.receivers.iter().next().unwrap();
        let Some(http) = receiver
            .settings
            .as_any()
            .downcast_ref::<crate::receivers::http::HttpConfig>()
        else {
            panic!("{receiver:?}")
        };
        // All digits with leading zeros: a number would have lost them.
        assert_eq!(
            http.bearer_token.as_ref().map(|t| t.expose()),
            Some("0000918273645501")
        );
        let (_, processor) = config.processors.iter().next().unwrap();
        let Some(chain) = processor
            .settings
            .as_any()
            .downcast_ref::<crate::processors::hash_chain::HashChainConfig>()
        else {
            panic!("{processor:?}")
        };
        assert_eq!(chain.checkpoint.every_records, 250);
    }

    #[test]
    fn problems_show_the_reference_never_the_expanded_value() {
        let e = Config::from_yaml(
            &yaml("${env:SHORT}", "${env:GATEWAY_TOKEN}x"),
            "t.yaml",
            &Env,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("receivers.http.bearer_token"), "{text}");
        assert!(
            text.contains("processors.hash_chain.checkpoint.every_records"),
            "{text}"
        );
        assert!(text.contains("${env:GATEWAY_TOKEN}x"), "{text}");
        assert!(!text.contains("0000918273645501"), "{text}");
        assert!(!text.contains("77777"), "{text}");
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "secret".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        super::schema::text(
            "secret",
            "a secret string, best given as `${env:NAME}` or `${file:/path}`; never logged",
        )
    }
}
