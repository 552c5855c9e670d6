//! The query API: search the local journal over HTTP, each entry with its verification.
//!
//! ```yaml
//! service:
//!   api:
//!     endpoint: 127.0.0.1:8090              # the default
//!     auth:
//!       tokens:
//!         - name: auditor                   # who asked, in the access stream
//!           token: ${env:VELLUM_API_TOKEN}  # at least 16 characters
//!           pipelines: ["*"]                # what it may read; see `auth`
//! ```
//!
//! Without an `api` section, or when no token has a value (`${env:VELLUM_API_TOKEN:-}`
//! with the variable unset), nothing listens. Every request needs
//! `Authorization: Bearer <token>`; tokens are compared in constant time. Each token
//! reads only the pipelines its scope names and has its own rate limit ([`auth`],
//! [`rate`]); every request it makes is sealed in the access stream before it is
//! answered ([`access`]). The single `token:` of earlier versions still works (a token
//! named `default` that reads every pipeline but the access stream).
//!
//! ```text
//! GET  /api/v1/audit?start=…&end=…&event_type=…&severity=…&user_id=…&action=…&status=…&ip=…&limit=…&cursor=…
//! POST /api/v1/audit/query   {"user_id": ["u1", "u2"], "ip": ["10.0.0.0/8", "2001:db8::/32"], "severity": ">=high", …}
//! ```
//!
//! | parameter | meaning |
//! |---|---|
//! | `start`, `end` | RFC 3339 times; entries whose time is at or after `start` and before `end` |
//! | `event_type`, `user_id`, `action`, `status` | exact values (see [`fields`] for where each is read from an entry) |
//! | `identity` | the authenticated sender: `attributes["vellum.client.identity"]`, exact |
//! | `severity` | `info`, `low`, `medium`, `high`, `critical`, or `>=high` for that grade and above |
//! | `ip` | an address or a CIDR block, IPv4 or IPv6 |
//! | `pipeline` | the pipeline whose journal is searched; needed only when the token may read several |
//! | `order` | `newest_first` (the default; also `desc`) or `oldest_first` (`asc`), in journal order |
//! | `limit` | entries per page, 1 to 1000, default 100 |
//! | `cursor` | `next_cursor` of the previous page, with the same filters and order |
//!
//! Filters combine (all must hold); a filter given several values (a list in the JSON
//! body, or the parameter repeated in the query string) matches any of them. A page ends
//! where it ends in the journal and the next starts right after, so following
//! `next_cursor` returns every matching entry exactly once, even while new entries
//! arrive (newest first, they are above the first page; oldest first, they come last).
//! Cursors survive restarts; entries that retention purged are simply gone. Each entry
//! comes with a [`verification`](api::Verification): its leaf hash recomputed, whether
//! its `hash` and `mac` hold, and the first signed checkpoint that covers it.
//!
//! The [`index`] lives in memory: at start it reads each pipeline's journal from the
//! first record (answers say `"complete": false` until it has caught up), then follows
//! every commit.

pub mod access;
pub mod api;
pub mod auth;
pub mod fields;
pub mod index;
pub mod rate;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Endpoint, Secret};
use crate::evidence::hmac::KeyRing;
use crate::journal::Journal;
use crate::pipeline::intake::PipelineIntake;
use access::AccessLog;
use auth::{AuthConfig, Caller, TokenConfig};
use index::{Index, SharedIndex};

pub use auth::MIN_TOKEN_CHARS;

/// `service.api`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: Endpoint,
    /// The single token of earlier versions: see [`TokenConfig::legacy`].
    #[serde(default)]
    pub token: Option<ApiToken>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

fn default_endpoint() -> Endpoint {
    Endpoint("127.0.0.1:8090".into())
}

impl ApiConfig {
    /// Problems serde cannot see, as (path inside `service.api`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(t) = &self.token {
            let legacy = TokenConfig::legacy(t.clone());
            out.extend(
                legacy
                    .problems()
                    .into_iter()
                    .filter(|(path, _)| path == "token"),
            );
            if self.auth.is_some() {
                out.push((
                    "token".into(),
                    "give either `token` or `auth.tokens`, not both: move this token into `auth.tokens` with a name".into(),
                ));
            }
        }
        if let Some(auth) = &self.auth {
            for (i, t) in auth.tokens.iter().enumerate() {
                out.extend(
                    t.problems()
                        .into_iter()
                        .map(|(path, m)| (format!("auth.tokens[{i}].{path}"), m)),
                );
            }
            out.extend(auth::duplicate_problems(&auth.tokens));
        }
        out
    }

    /// The tokens that have a value: the API listens when there is one.
    pub fn tokens(&self) -> Vec<TokenConfig> {
        let legacy = self.token.iter().cloned().map(TokenConfig::legacy);
        let named = self.auth.iter().flat_map(|a| a.tokens.iter().cloned());
        legacy.chain(named).filter(TokenConfig::is_on).collect()
    }

    pub fn is_on(&self) -> bool {
        !self.tokens().is_empty()
    }
}

/// The bearer token: a [`Secret`].
pub type ApiToken = Secret;

/// A pipeline whose journal the API searches.
pub struct QuerySource {
    pub pipeline: String,
    pub stream: String,
    pub journal: Journal,
    /// The pipeline's HMAC key ring, to check entries' macs.
    pub keys: Option<KeyRing>,
}

/// The running API: its server and one index follower per pipeline.
pub struct QueryApi {
    local_addr: SocketAddr,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    followers: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the API when `config` has a token; `Ok(None)` when it is off. Every request
/// is sealed through `access` (the intake of the access stream) before it is answered.
pub async fn start(
    config: Option<&ApiConfig>,
    sources: Vec<QuerySource>,
    access: Option<Arc<PipelineIntake>>,
) -> std::io::Result<Option<QueryApi>> {
    let Some((config, tokens)) = config
        .map(|c| (c, c.tokens()))
        .filter(|(_, tokens)| !tokens.is_empty())
    else {
        tracing::info!("query API is off: no token is configured under `service.api`");
        return Ok(None);
    };
    let Some(access) = access else {
        return Err(std::io::Error::other(
            "the access stream is not running, and the query API does not answer unaudited",
        ));
    };
    let listener = crate::net::bind("query API", config.endpoint.as_str()).await?;
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let mut followers = Vec::new();
    let mut api_sources = Vec::new();
    for s in sources {
        let index = SharedIndex::new(Index::new(s.journal.first_index()));
        followers.push(tokio::spawn(index::follow(
            s.pipeline.clone(),
            s.journal.clone(),
            index.clone(),
            stop.child_token(),
        )));
        api_sources.push(api::Source {
            pipeline: s.pipeline,
            stream: s.stream,
            journal: s.journal,
            keys: s.keys,
            index,
        });
    }
    let state = api::ApiState {
        callers: Arc::new(tokens.iter().map(Caller::new).collect()),
        sources: Arc::new(api_sources),
        access: AccessLog::new(access),
    };
    let app = api::router(state);
    let shutdown = stop.clone();
    let server = crate::net::listener::serve(
        "query API".into(),
        listener,
        app,
        crate::net::listener::ListenerLimits::default(),
        shutdown,
    );
    let names: Vec<&str> = tokens.iter().map(|t| t.name.as_str()).collect();
    tracing::info!(addr = %local_addr, tokens = ?names, "query API listening");
    Ok(Some(QueryApi {
        local_addr,
        stop,
        server,
        followers,
    }))
}

impl QueryApi {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops answering (requests in flight finish) and stops following the journals;
    /// the port is free once this returns.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.server.await;
        for f in self.followers {
            let _ = f.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(yaml: serde_json::Value) -> Result<ApiConfig, String> {
        serde_json::from_value(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn short_tokens_are_a_problem_and_no_token_is_not() {
        let c = decode(serde_json::json!({"token": "short-secret"})).unwrap();
        let problems = c.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "token");
        assert!(!problems[0].1.contains("short-secret"), "never echoed");
        assert!(
            decode(serde_json::json!({"token": "0123456789abcdef"}))
                .unwrap()
                .problems()
                .is_empty()
        );
        let off = decode(serde_json::json!({"token": ""})).unwrap();
        assert!(off.problems().is_empty());
        let none = decode(serde_json::json!({})).unwrap();
        assert_eq!(none.endpoint.as_str(), "127.0.0.1:8090");
        assert!(none.token.is_none());
        let wrong = decode(serde_json::json!({"token": 1234567890123456789u64})).unwrap_err();
        assert!(!wrong.contains("1234567890123456789"), "{wrong}");
        let both = decode(serde_json::json!({"token": "0123456789abcdef",
            "auth": {"tokens": [{"name": "a", "token": "fedcba9876543210", "streams": ["s"]}]}}))
        .unwrap();
        let problems = both.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("either `token` or `auth.tokens`"));
        let named = decode(serde_json::json!({"auth": {"tokens": [
            {"name": "a", "token": "fedcba9876543210", "pipelines": ["*"]},
            {"name": "b", "token": "", "pipelines": ["*"]},
            {"name": "c", "token": "short", "pipelines": []}]}}))
        .unwrap();
        let paths: Vec<String> = named.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["auth.tokens[2].token", "auth.tokens[2].pipelines"]);
        let on: Vec<String> = named.tokens().into_iter().map(|t| t.name).collect();
        assert_eq!(on, ["a", "c"], "an empty token is off");
        let shown = format!(
            "{:?}",
            decode(serde_json::json!({"token": "0123456789abcdef"})).unwrap()
        );
        assert!(
            shown.contains("Secret(***)") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn without_a_token_nothing_listens_and_with_one_it_stops_and_binds_again() {
        let off = ApiConfig {
            endpoint: Endpoint("127.0.0.1:0".into()),
            token: None,
            auth: None,
        };
        assert!(start(Some(&off), Vec::new(), None).await.unwrap().is_none());
        assert!(start(None, Vec::new(), None).await.unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let (_writer, journal, _) = crate::journal::open(dir.path(), Default::default()).unwrap();
        let (queue, _requests) = std::sync::mpsc::channel();
        let access = Arc::new(PipelineIntake::new(
            access::ACCESS_STREAM.into(),
            Vec::new(),
            queue,
            journal,
            Vec::new(),
            u64::MAX,
        ));

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let on = ApiConfig {
            endpoint: Endpoint(format!("127.0.0.1:{port}")),
            token: Some(Secret::new("0123456789abcdef")),
            auth: None,
        };
        assert!(
            start(Some(&on), Vec::new(), None).await.is_err(),
            "never unaudited"
        );
        for _ in 0..2 {
            let api = start(Some(&on), Vec::new(), Some(access.clone()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(api.local_addr().port(), port);
            assert!(
                tokio::net::TcpStream::connect(api.local_addr())
                    .await
                    .is_ok()
            );
            api.shutdown().await;
            assert!(
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_err()
            );
        }
    }
}
