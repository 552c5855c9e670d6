//! Who may query what: named tokens, their scopes and their rate limits.
//!
//! ```yaml
//! service:
//!   api:
//!     auth:
//!       tokens:
//!         - name: auditor                       # sealed in the access stream as who asked
//!           token: ${env:VELLUM_AUDITOR_TOKEN}  # at least 16 characters
//!           pipelines: ["*"]                    # every pipeline but the access stream
//!           streams: [vellum/access]            # and the access stream, named explicitly
//!           rate_limit: { requests_per_second: 50, burst: 500 }   # the default
//!         - name: siem
//!           token: ${file:/run/secrets/siem_query_token}
//!           streams: [logs/gateway]
//! ```
//!
//! | scope | the token reads |
//! |---|---|
//! | `pipelines: [a, b]` | the journals of pipelines `a` and `b` |
//! | `streams: [s]` | the journal of the pipeline that writes stream `s` |
//! | `pipelines: ["*"]` or `streams: ["*"]` | every pipeline except the access stream |
//! | `vellum/access` in `pipelines` or `streams` | the access stream ([`super::access`]) |
//! | neither, or both empty | nothing: `validate` refuses such a token |
//!
//! A scope is an allow list: what it does not name, the token cannot read; a name that
//! matches no configured pipeline or stream is refused by `validate` (a typo would leave
//! the token with only 403s). The access stream is never reached through `*`, so
//! reading who queried what is always a deliberate grant.
//!
//! The single `token:` of earlier versions keeps working: it is a token named `default`
//! with `pipelines: ["*"]` and the default rate limit. `token` and `auth` together are
//! refused. A token whose value is empty (`${env:VAR:-}` with the variable unset) is off;
//! with no token on, the API does not listen.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::access::ACCESS_STREAM;
use super::rate::{Bucket, RateLimit};
use crate::config::Secret;

/// The shortest token taken: anything shorter is guessable.
pub const MIN_TOKEN_CHARS: usize = 16;
/// The name the single `token:` of earlier versions gets.
pub const LEGACY_TOKEN_NAME: &str = "default";
/// The longest token name: it is a metric label and a sealed attribute.
pub const MAX_NAME_CHARS: usize = 64;
/// Matches every pipeline except the access stream.
pub const EVERY_PIPELINE: &str = "*";

/// `service.api.auth`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

/// One entry of `service.api.auth.tokens`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub token: Secret,
    #[serde(default)]
    pub pipelines: Vec<String>,
    #[serde(default)]
    pub streams: Vec<String>,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

impl TokenConfig {
    /// The token of the single `token:` key.
    pub fn legacy(token: Secret) -> TokenConfig {
        TokenConfig {
            name: LEGACY_TOKEN_NAME.into(),
            token,
            pipelines: vec![EVERY_PIPELINE.into()],
            streams: Vec::new(),
            rate_limit: RateLimit::default(),
        }
    }

    /// Whether the token is given (an empty value turns it off).
    pub fn is_on(&self) -> bool {
        !self.token.expose().is_empty()
    }

    /// Problems serde cannot see, as (path inside the token, message); never the token.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let chars = self.token.expose().chars().count();
        if self.is_on() && chars < MIN_TOKEN_CHARS {
            out.push((
                "token".into(),
                format!(
                    "the token has {chars} characters; at least {MIN_TOKEN_CHARS} are required"
                ),
            ));
        }
        if let Some(problem) = name_problem(&self.name) {
            out.push(("name".into(), problem));
        }
        if self.pipelines.is_empty() && self.streams.is_empty() {
            out.push((
                "pipelines".into(),
                "the token may read nothing: list the `pipelines` or `streams` it may read (`*` for every pipeline)".into(),
            ));
        }
        out.extend(
            self.rate_limit
                .problems()
                .into_iter()
                .map(|(path, m)| (format!("rate_limit.{path}"), m)),
        );
        out
    }
}

fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Some(format!("a token name has 1 to {MAX_NAME_CHARS} characters"));
    }
    name.chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '/' | ':')))
        .then(|| "a token name is letters, digits and `.`, `_`, `-`, `@`, `/`, `:`".into())
}

/// Problems across tokens: names and values must each be distinct.
pub fn duplicate_problems(tokens: &[TokenConfig]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    let mut digests = BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        if !names.insert(t.name.as_str()) {
            out.push((
                format!("auth.tokens[{i}].name"),
                format!("another token is also named `{}`", t.name),
            ));
        }
        if t.is_on() && !digests.insert(digest(t.token.expose())) {
            out.push((
                format!("auth.tokens[{i}].token"),
                "another token has the same value; each name needs its own token".into(),
            ));
        }
    }
    out
}

/// Scope names that match no pipeline or stream of `known` (id, stream): a typo would
/// otherwise leave the token reading nothing, with only 403s to show for it.
pub fn unknown_scope_names(
    tokens: &[TokenConfig],
    known: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let special = |n: &str| n == EVERY_PIPELINE || n == ACCESS_STREAM;
    for t in tokens {
        for n in t.pipelines.iter().filter(|n| !special(n)) {
            if !known.iter().any(|(id, _)| id == n) {
                out.push((
                    "auth.tokens".to_string(),
                    format!(
                        "token `{}` lists pipeline `{n}`, which is not configured",
                        t.name
                    ),
                ));
            }
        }
        for n in t.streams.iter().filter(|n| !special(n)) {
            if !known.iter().any(|(_, stream)| stream == n) {
                out.push((
                    "auth.tokens".to_string(),
                    format!(
                        "token `{}` lists stream `{n}`, which no pipeline writes",
                        t.name
                    ),
                ));
            }
        }
    }
    out
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What one token may read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pipelines: BTreeSet<String>,
    streams: BTreeSet<String>,
}

impl Scope {
    pub fn new(pipelines: &[String], streams: &[String]) -> Scope {
        Scope {
            pipelines: pipelines.iter().cloned().collect(),
            streams: streams.iter().cloned().collect(),
        }
    }

    /// Whether the token may read the journal of `pipeline`, which writes `stream`.
    pub fn allows(&self, pipeline: &str, stream: &str) -> bool {
        let named = self.pipelines.contains(pipeline) || self.streams.contains(stream);
        if stream == ACCESS_STREAM || pipeline == ACCESS_STREAM {
            return named;
        }
        named || self.pipelines.contains(EVERY_PIPELINE) || self.streams.contains(EVERY_PIPELINE)
    }
}

/// A token the API takes, as it runs.
pub struct Caller {
    pub name: String,
    /// SHA-256 of the token: comparing digests takes the same time whatever the lengths.
    digest: [u8; 32],
    pub scope: Scope,
    bucket: Mutex<Bucket>,
}

impl Caller {
    pub fn new(config: &TokenConfig) -> Caller {
        Caller {
            name: config.name.clone(),
            digest: digest(config.token.expose()),
            scope: Scope::new(&config.pipelines, &config.streams),
            bucket: Mutex::new(Bucket::new(&config.rate_limit, Instant::now())),
        }
    }

    /// Takes one request from the token's budget; `Err` holds how long until one is free.
    pub fn admit(&self, now: Instant) -> Result<(), std::time::Duration> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.take(now)
    }
}

/// The index of the caller whose token is `given`, comparing against every token in
/// constant time.
pub fn identify(callers: &[Caller], given: &str) -> Option<usize> {
    let presented = digest(given);
    let mut found = None;
    for (i, caller) in callers.iter().enumerate() {
        if bool::from(presented.ct_eq(&caller.digest)) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, value: &str, pipelines: &[&str], streams: &[&str]) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            token: Secret::new(value),
            pipelines: pipelines.iter().map(|s| s.to_string()).collect(),
            streams: streams.iter().map(|s| s.to_string()).collect(),
            rate_limit: RateLimit::default(),
        }
    }

    #[test]
    fn a_wildcard_never_reaches_the_access_stream_and_names_do() {
        let every = Scope::new(&["*".into()], &[]);
        assert!(every.allows("logs/a", "logs/a"));
        assert!(!every.allows(ACCESS_STREAM, ACCESS_STREAM));
        let one = Scope::new(&[], &["logs/a".into()]);
        assert!(one.allows("logs/x", "logs/a"), "by the stream it writes");
        assert!(!one.allows("logs/b", "logs/b"));
        let access = Scope::new(&[], &[ACCESS_STREAM.into()]);
        assert!(access.allows(ACCESS_STREAM, ACCESS_STREAM));
        assert!(!access.allows("logs/a", "logs/a"));
        assert!(!Scope::default().allows("logs/a", "logs/a"));
    }

    #[test]
    fn scope_names_that_match_nothing_are_problems() {
        let tokens = [
            token(
                "a",
                "aaaaaaaaaaaaaaaaaaaa",
                &["*", "logs/a", "logs/typo"],
                &[],
            ),
            token(
                "b",
                "bbbbbbbbbbbbbbbbbbbb",
                &[],
                &["s", ACCESS_STREAM, "nope"],
            ),
        ];
        let known = [("logs/a", "s")];
        let messages: Vec<String> = unknown_scope_names(&tokens, &known)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            messages,
            [
                "token `a` lists pipeline `logs/typo`, which is not configured",
                "token `b` lists stream `nope`, which no pipeline writes",
            ]
        );
    }

    #[test]
    fn tokens_are_found_by_value_and_problems_never_echo_them() {
        let configs = [
            token("a", "aaaaaaaaaaaaaaaaaaaa", &["*"], &[]),
            token("b", "bbbbbbbbbbbbbbbbbbbb", &[], &["s"]),
        ];
        let callers: Vec<Caller> = configs.iter().map(Caller::new).collect();
        assert_eq!(
            identify(&callers, "bbbbbbbbbbbbbbbbbbbb").map(|i| callers[i].name.as_str()),
            Some("b")
        );
        assert!(identify(&callers, "bbbbbbbbbbbbbbbbbbb").is_none());
        assert!(identify(&callers, "").is_none());

        let bad = token("bad name!", "short-secret", &[], &[]);
        let problems = bad.problems();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["token", "name", "pipelines"]);
        assert!(problems.iter().all(|(_, m)| !m.contains("short-secret")));

        let twice = [
            token("a", "same-value-same-value", &["*"], &[]),
            token("a", "same-value-same-value", &["*"], &[]),
        ];
        let dup = duplicate_problems(&twice);
        assert_eq!(dup.len(), 2, "{dup:?}");
        assert!(dup.iter().all(|(_, m)| !m.contains("same-value")));
    }
}
