//! The HTTP side of the query API: authorization, parameters, pages and verification.
//!
//! `GET /api/v1/audit?…` and `POST /api/v1/audit/query` take the same filters (see the
//! [module docs](super) for the list); both answer one page:
//!
//! ```json
//! {"pipeline": "logs/audit", "stream": "logs/audit", "order": "newest_first",
//!  "complete": true, "count": 1,
//!  "entries": [{"entry": {…the sealed entry, byte for byte…},
//!               "verification": {"hash": "…", "hash_valid": true, "mac_valid": true, "checkpoint": 200}}],
//!  "next_cursor": "AQAB…"}
//! ```
//!
//! `complete` says whether the index had read everything the journal had committed when
//! the query ran (it is false while the index is built at start). Errors are JSON
//! `{"error": "…", "parameter": "limit"}`:
//!
//! | status | when |
//! |---|---|
//! | 400 | a parameter cannot be used (`parameter` names it) |
//! | 401 | no token, or not one of the configured tokens (`WWW-Authenticate: Bearer`) |
//! | 403 | `pipeline` names a pipeline outside the token's scope (or none runs by that name), or the token may read none that runs |
//! | 413 | a body over 64 KiB |
//! | 429 | the token's rate limit is spent (`Retry-After` in seconds) |
//! | 500 | the journal is unreadable |
//! | 503 | the query's access record could not be sealed: nothing is answered unaudited |
//!
//! Refusals name the parameter or the pipeline asked for, never a token.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::access::{Access, AccessLog};
use super::auth::{Caller, Scope, identify};
use super::fields::MAX_VALUE_BYTES;
use super::index::{Filter, IpRange, Order, PageRequest, SharedIndex};
use crate::event::{Severity, parse_time};
use crate::evidence::hmac::KeyRing;
use crate::evidence::merkle::{Hash, leaf_hash, parse_hex_hash};
use crate::evidence::{jcs, verify::parse_entry};
use crate::journal::Journal;
use crate::pipeline::frame::Frame;

pub const GET_PATH: &str = "/api/v1/audit";
pub const POST_PATH: &str = "/api/v1/audit/query";
/// The largest `POST` body taken.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1000;
/// The most values one filter may list.
pub const MAX_VALUES: usize = 1000;

/// One pipeline's journal, its index and what verifying its entries needs.
pub struct Source {
    pub pipeline: String,
    pub stream: String,
    pub journal: Journal,
    pub keys: Option<KeyRing>,
    pub index: SharedIndex,
}

#[derive(Clone)]
pub struct ApiState {
    pub callers: Arc<Vec<Caller>>,
    pub sources: Arc<Vec<Source>>,
    pub access: AccessLog,
}

/// The caller of a request that passed authentication and its rate limit.
#[derive(Clone, Copy)]
struct Who {
    /// Its index in [`ApiState::callers`].
    caller: usize,
    peer: Option<std::net::SocketAddr>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(GET_PATH, axum::routing::get(get_audit))
        .route(POST_PATH, axum::routing::post(post_query))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

fn count(outcome: &'static str) {
    metrics::counter!("vellum_query_requests_total", "outcome" => outcome).increment(1);
}

fn refuse(status: StatusCode, parameter: Option<&str>, message: impl Into<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(p) = parameter {
        body["parameter"] = json!(p);
    }
    (status, axum::Json(body)).into_response()
}

async fn authorize(
    State(state): State<ApiState>,
    mut request: axum::extract::Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let (message, challenge) = match given.map(|t| identify(&state.callers, t)) {
        Some(Some(caller)) => {
            if let Err(wait) = state.callers[caller].admit(std::time::Instant::now()) {
                return rate_limited(&state.callers[caller], wait);
            }
            let peer = request
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0);
            request.extensions_mut().insert(Who { caller, peer });
            return next.run(request).await;
        }
        Some(None) => (
            "wrong bearer token",
            r#"Bearer realm="vellum", error="invalid_token""#,
        ),
        None => (
            "this API needs `Authorization: Bearer <token>`",
            r#"Bearer realm="vellum""#,
        ),
    };
    count("unauthorized");
    let mut response = refuse(StatusCode::UNAUTHORIZED, None, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// 429 for a token whose budget is spent, counted under its name.
fn rate_limited(caller: &Caller, wait: std::time::Duration) -> Response {
    count("rate_limited");
    metrics::counter!("vellum_query_rate_limited_total", "token" => caller.name.clone())
        .increment(1);
    let seconds = super::rate::retry_after_seconds(wait);
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        format!("this token's rate limit is spent; retry after {seconds} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The token of an `Authorization` value of the `Bearer` scheme (named in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn get_audit(
    State(state): State<ApiState>,
    Extension(who): Extension<Who>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let (filters, answer) = match query {
        Ok(Query(pairs)) => {
            let filters = pairs_as_json(&pairs);
            let answer = match RawRequest::from_pairs(pairs) {
                Ok(raw) => answer(&state, who, raw).await,
                Err(bad) => Answer::refused(bad.response(), None),
            };
            (filters, answer)
        }
        Err(e) => {
            count("bad_request");
            let response = refuse(
                StatusCode::BAD_REQUEST,
                None,
                format!("the query string cannot be read: {e}"),
            );
            (Value::Null, Answer::refused(response, None))
        }
    };
    audited(&state, who, "GET", filters, answer).await
}

async fn post_query(
    State(state): State<ApiState>,
    Extension(who): Extension<Who>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            count(if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "bad_request"
            });
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the body is over {MAX_BODY_BYTES} bytes")
            } else {
                e.body_text()
            };
            let answer = Answer::refused(refuse(status, None, message), None);
            return audited(&state, who, "POST", Value::Null, answer).await;
        }
    };
    let filters = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| json!({ "unreadable_body_bytes": body.len() }));
    let answer = match RawRequest::from_json(&body) {
        Ok(raw) => answer(&state, who, raw).await,
        Err(bad) => Answer::refused(bad.response(), None),
    };
    audited(&state, who, "POST", filters, answer).await
}

/// A query string's parameters as the access stream records them: each name with its
/// values in the order given.
fn pairs_as_json(pairs: &[(String, String)]) -> Value {
    let mut out = serde_json::Map::new();
    for (name, value) in pairs {
        match out.get_mut(name) {
            Some(Value::Array(values)) => values.push(json!(value)),
            _ => {
                out.insert(name.clone(), json!([value]));
            }
        }
    }
    Value::Object(out)
}

/// The response to a request, and what the access stream records of it.
struct Answer {
    response: Response,
    pipeline: Option<String>,
    returned: usize,
}

impl Answer {
    fn refused(response: Response, pipeline: Option<String>) -> Answer {
        Answer {
            response,
            pipeline,
            returned: 0,
        }
    }
}

/// Seals the request in the access stream, then lets the answer out; if the record
/// cannot be made durable, the caller gets 503 instead.
async fn audited(
    state: &ApiState,
    who: Who,
    method: &'static str,
    filters: Value,
    answer: Answer,
) -> Response {
    let access = Access {
        token: state.callers[who.caller].name.clone(),
        peer: who.peer,
        method,
        pipeline: answer.pipeline,
        filters,
        status: answer.response.status().as_u16(),
        returned: answer.returned,
    };
    match state.access.seal(access).await {
        Ok(()) => answer.response,
        Err(e) => {
            count("unaudited");
            tracing::error!(error = %e, "query API: the access record could not be sealed; the query is not answered");
            let mut response = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the access record of this query could not be sealed, and no query is answered unaudited; retry later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

async fn answer(state: &ApiState, who: Who, raw: RawRequest) -> Answer {
    let scope = &state.callers[who.caller].scope;
    let source = match pick_source(raw.pipeline.as_deref(), &state.sources, scope) {
        Ok(i) => i,
        Err(bad) => return Answer::refused(bad.response(), raw.pipeline.clone()),
    };
    let pipeline = Some(state.sources[source].pipeline.clone());
    let request = match raw.validate(&state.sources, source) {
        Ok(r) => r,
        Err(bad) => return Answer::refused(bad.response(), pipeline),
    };
    let sources = state.sources.clone();
    let response =
        match tokio::task::spawn_blocking(move || run(&sources[request.source], &request)).await {
            Ok(Ok(page)) => {
                count("ok");
                let returned = page.count;
                let response = (StatusCode::OK, axum::Json(page)).into_response();
                return Answer {
                    response,
                    pipeline,
                    returned,
                };
            }
            Ok(Err(e)) => {
                count("error");
                tracing::error!(error = %e, "query API: cannot read the journal");
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "cannot read the journal; see the daemon's log",
                )
            }
            Err(e) => {
                count("error");
                tracing::error!(error = %e, "query API: the query task failed");
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "the query failed; see the daemon's log",
                )
            }
        };
    Answer::refused(response, pipeline)
}

/// The source a request searches: the pipeline it names if the token may read it, or
/// the only one the token may read.
fn pick_source(
    pipeline: Option<&str>,
    sources: &[Source],
    scope: &Scope,
) -> Result<usize, BadParameter> {
    let visible: Vec<usize> = (0..sources.len())
        .filter(|&i| scope.allows(&sources[i].pipeline, &sources[i].stream))
        .collect();
    let names = || {
        let names: Vec<&str> = visible
            .iter()
            .map(|&i| sources[i].pipeline.as_str())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match (pipeline, visible.as_slice()) {
        (Some(id), _) => visible
            .iter()
            .copied()
            .find(|&i| sources[i].pipeline == id)
            .ok_or_else(|| {
                BadParameter::forbidden(format!(
                    "this token may not read a pipeline `{}`; it may read: {}",
                    shown(id),
                    names()
                ))
            }),
        (None, [one]) => Ok(*one),
        (None, []) => Err(BadParameter::forbidden(
            "this token may read none of the pipelines that run".into(),
        )),
        (None, _) => Err(BadParameter::new(
            "pipeline",
            format!(
                "this token may read several pipelines; name one of: {}",
                names()
            ),
        )),
    }
}

/// A parameter that cannot be used, and why.
#[derive(Debug, PartialEq)]
pub struct BadParameter {
    pub parameter: String,
    pub message: String,
    /// 400, or 403 for a pipeline outside the token's scope.
    pub status: StatusCode,
}

impl BadParameter {
    fn new(parameter: &str, message: impl Into<String>) -> BadParameter {
        BadParameter {
            parameter: parameter.to_string(),
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    fn forbidden(message: String) -> BadParameter {
        BadParameter {
            parameter: "pipeline".into(),
            message,
            status: StatusCode::FORBIDDEN,
        }
    }

    fn response(&self) -> Response {
        count(if self.status == StatusCode::FORBIDDEN {
            "forbidden"
        } else {
            "bad_request"
        });
        refuse(
            self.status,
            Some(&self.parameter),
            format!("`{}`: {}", self.parameter, self.message),
        )
    }
}

/// A value as the user gave it, cut short for an error message.
fn shown(value: &str) -> String {
    let mut end = value.len().min(80);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    if end < value.len() {
        format!("{}…", &value[..end])
    } else {
        value.to_string()
    }
}

/// A filter's values: a string, a number, or a list of them.
#[derive(Debug, Default, PartialEq)]
struct Values(Vec<String>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        let scalar = |v: Value| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let wrong = || serde::de::Error::custom("expected a string, a number, or a list of them");
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| scalar(v).ok_or_else(wrong))
                .collect::<Result<_, _>>()
                .map(Values),
            other => scalar(other).map(|s| Values(vec![s])).ok_or_else(wrong),
        }
    }
}

/// A request as given, before its values are checked: the query string of a `GET` or
/// the JSON body of a `POST`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    start: Option<String>,
    end: Option<String>,
    #[serde(default)]
    event_type: Values,
    #[serde(default)]
    severity: Values,
    #[serde(default)]
    user_id: Values,
    #[serde(default)]
    action: Values,
    #[serde(default)]
    status: Values,
    #[serde(default)]
    ip: Values,
    #[serde(default)]
    identity: Values,
    pipeline: Option<String>,
    order: Option<String>,
    limit: Option<u64>,
    cursor: Option<String>,
}

const PARAMETERS: &str = "start, end, event_type, severity, user_id, action, status, ip, identity, pipeline, order, limit, cursor";

impl RawRequest {
    /// From a query string's pairs: a filter named again adds a value (any of them
    /// matches); any other parameter may appear once.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<RawRequest, BadParameter> {
        let mut raw = RawRequest::default();
        for (name, value) in pairs {
            let once = |slot: &mut Option<String>, value: String| match slot {
                Some(_) => Err(BadParameter::new(&name, "is given more than once")),
                None => {
                    *slot = Some(value);
                    Ok(())
                }
            };
            match name.as_str() {
                "start" => once(&mut raw.start, value)?,
                "end" => once(&mut raw.end, value)?,
                "pipeline" => once(&mut raw.pipeline, value)?,
                "order" => once(&mut raw.order, value)?,
                "cursor" => once(&mut raw.cursor, value)?,
                "limit" => {
                    if raw.limit.is_some() {
                        return Err(BadParameter::new("limit", "is given more than once"));
                    }
                    raw.limit = Some(value.parse().map_err(|_| {
                        BadParameter::new(
                            "limit",
                            format!(
                                "`{}` is not a whole number from 1 to {MAX_LIMIT}",
                                shown(&value)
                            ),
                        )
                    })?);
                }
                "event_type" => raw.event_type.0.push(value),
                "severity" => raw.severity.0.push(value),
                "user_id" => raw.user_id.0.push(value),
                "action" => raw.action.0.push(value),
                "status" => raw.status.0.push(value),
                "ip" => raw.ip.0.push(value),
                "identity" => raw.identity.0.push(value),
                other => {
                    return Err(BadParameter::new(
                        other,
                        format!("unknown parameter; the parameters are {PARAMETERS}"),
                    ));
                }
            }
        }
        Ok(raw)
    }

    fn from_json(body: &[u8]) -> Result<RawRequest, BadParameter> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: RawRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            if let Some(name) = unknown_field(&message) {
                return BadParameter::new(
                    &name,
                    format!("unknown parameter; the parameters are {PARAMETERS}"),
                );
            }
            match path
                .split(['.', '['])
                .next()
                .filter(|p| !p.is_empty() && *p != "?")
            {
                Some(parameter) => BadParameter::new(parameter, message),
                None => BadParameter::new(
                    "body",
                    format!("expected a JSON object of parameters: {message}"),
                ),
            }
        })?;
        de.end().map_err(|e| {
            BadParameter::new(
                "body",
                format!("expected one JSON object of parameters: {e}"),
            )
        })?;
        Ok(raw)
    }

    /// Checks the parameters of a request that searches `sources[source]`.
    fn validate(self, sources: &[Source], source: usize) -> Result<Request, BadParameter> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|t| {
                    parse_time(t).ok_or_else(|| {
                        BadParameter::new(
                            name,
                            format!(
                                "`{}` is not an RFC 3339 time such as 2026-01-31T12:00:00Z",
                                shown(t)
                            ),
                        )
                    })
                })
                .transpose()
        };
        let start = time("start", &self.start)?;
        let end = time("end", &self.end)?;
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(BadParameter::new("end", "is before `start`"));
        }
        let mut filter = Filter {
            start,
            end,
            event_type: strings("event_type", self.event_type)?,
            severity: severities(self.severity)?,
            user_id: strings("user_id", self.user_id)?,
            action: strings("action", self.action)?,
            status: strings("status", self.status)?,
            ip: ip_ranges(self.ip)?,
            identity: strings("identity", self.identity)?,
        };
        filter.severity.sort();
        filter.severity.dedup();
        let order = match self.order.as_deref() {
            None | Some("newest_first") | Some("desc") => Order::NewestFirst,
            Some("oldest_first") | Some("asc") => Order::OldestFirst,
            Some(other) => {
                return Err(BadParameter::new(
                    "order",
                    format!(
                        "`{}` is neither `newest_first` (`desc`) nor `oldest_first` (`asc`)",
                        shown(other)
                    ),
                ));
            }
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(BadParameter::new(
                "limit",
                format!("{limit} is not from 1 to {MAX_LIMIT}"),
            ));
        }
        let fingerprint = fingerprint(&sources[source].pipeline, &filter);
        let after = match &self.cursor {
            None => None,
            Some(text) => Some(Cursor::decode(text, order, fingerprint)?),
        };
        Ok(Request {
            source,
            filter,
            page: PageRequest {
                order,
                after,
                limit: limit as usize,
            },
            fingerprint,
        })
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn strings(name: &str, values: Values) -> Result<Vec<String>, BadParameter> {
    let mut values = values.0;
    if values.len() > MAX_VALUES {
        return Err(BadParameter::new(
            name,
            format!("{} values; at most {MAX_VALUES} are taken", values.len()),
        ));
    }
    if values.iter().any(|v| v.is_empty()) {
        return Err(BadParameter::new(name, "a value is empty"));
    }
    if let Some(v) = values.iter().find(|v| v.len() > MAX_VALUE_BYTES) {
        return Err(BadParameter::new(
            name,
            format!(
                "`{}` is longer than {MAX_VALUE_BYTES} bytes, which no indexed value is",
                shown(v)
            ),
        ));
    }
    values.sort();
    values.dedup();
    Ok(values)
}

/// Severity names, each alone or as `>=name` (that grade or above).
fn severities(values: Values) -> Result<Vec<Severity>, BadParameter> {
    let mut out = Vec::new();
    for value in strings("severity", values)? {
        let (at_least, name) = match value.strip_prefix(">=") {
            Some(name) => (true, name.trim()),
            None => (false, value.as_str()),
        };
        let Some(severity) = Severity::parse(name) else {
            return Err(BadParameter::new(
                "severity",
                format!(
                    "`{}` is not one of info, low, medium, high, critical (alone or after `>=`)",
                    shown(&value)
                ),
            ));
        };
        if at_least {
            out.extend(Severity::ALL.into_iter().filter(|s| *s >= severity));
        } else {
            out.push(severity);
        }
    }
    Ok(out)
}

/// Addresses and CIDR blocks, IPv4 or IPv6.
fn ip_ranges(values: Values) -> Result<Vec<IpRange>, BadParameter> {
    let mut out = Vec::new();
    for value in strings("ip", values)? {
        let net = value
            .parse::<ipnet::IpNet>()
            .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                BadParameter::new("ip", format!("`{}` is neither an IP address nor a CIDR block such as 10.0.0.0/8 or 2001:db8::/32", shown(&value)))
            })?;
        out.push(IpRange::from_net(net));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A request checked and resolved.
#[derive(Debug)]
struct Request {
    source: usize,
    filter: Filter,
    page: PageRequest,
    fingerprint: [u8; 8],
}

/// Ties a cursor to the pipeline and filters it was made for, so that it is never
/// used to page through another query's results.
fn fingerprint(pipeline: &str, f: &Filter) -> [u8; 8] {
    let ips: Vec<String> = f.ip.iter().map(|r| format!("{r:?}")).collect();
    let severities: Vec<&str> = f.severity.iter().map(|s| s.as_str()).collect();
    let normal = json!([
        pipeline,
        f.start,
        f.end,
        f.event_type,
        severities,
        f.user_id,
        f.action,
        f.status,
        ips,
        f.identity
    ]);
    let digest = Sha256::digest(normal.to_string().as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The opaque `cursor`: format version, order, the journal index the page ended at, and
/// the query's fingerprint, in URL-safe base64.
struct Cursor;

const CURSOR_VERSION: u8 = 1;

impl Cursor {
    fn encode(order: Order, last: u64, fingerprint: [u8; 8]) -> String {
        let mut bytes = Vec::with_capacity(18);
        bytes.push(CURSOR_VERSION);
        bytes.push(match order {
            Order::NewestFirst => 0,
            Order::OldestFirst => 1,
        });
        bytes.extend_from_slice(&last.to_le_bytes());
        bytes.extend_from_slice(&fingerprint);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn decode(text: &str, order: Order, fingerprint: [u8; 8]) -> Result<u64, BadParameter> {
        let bad = |m: &str| BadParameter::new("cursor", m);
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| bad("is not a cursor this API gave"))?;
        let [version, order_byte, rest @ ..] = bytes.as_slice() else {
            return Err(bad("is not a cursor this API gave"));
        };
        if *version != CURSOR_VERSION || rest.len() != 16 || *order_byte > 1 {
            return Err(bad("is not a cursor this API gave"));
        }
        let made_for = if *order_byte == 0 {
            Order::NewestFirst
        } else {
            Order::OldestFirst
        };
        if made_for != order {
            return Err(bad(
                "was made for the other `order`; repeat the query's parameters with it",
            ));
        }
        if rest[8..] != fingerprint {
            return Err(bad(
                "was made for a query with other filters or another pipeline; repeat that query's parameters with it",
            ));
        }
        let mut last = [0u8; 8];
        last.copy_from_slice(&rest[..8]);
        Ok(u64::from_le_bytes(last))
    }
}

#[derive(Serialize)]
struct Page {
    pipeline: String,
    stream: String,
    order: &'static str,
    complete: bool,
    count: usize,
    entries: Vec<PageEntry>,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct PageEntry {
    /// The entry as sealed; null in the unexpected case that it is not JSON.
    entry: Option<Box<RawValue>>,
    verification: Verification,
}

/// What the API checked of one entry.
#[derive(Debug, Serialize, PartialEq)]
pub struct Verification {
    /// The leaf hash recomputed from the entry: SHA-256(0x00 || JCS(entry without
    /// `hash` and `mac`)), hex; null when the entry is not a JSON object.
    pub hash: Option<String>,
    /// Whether the entry's `hash` is that leaf hash.
    pub hash_valid: bool,
    /// Whether the entry's `mac` is the HMAC of the leaf hash under its `kid`; null when
    /// the pipeline signs with no key.
    pub mac_valid: Option<bool>,
    /// The size of the first signed checkpoint that covers the entry; null before one is.
    pub checkpoint: Option<u64>,
}

/// Checks an entry line against the evidence format (§1): its leaf hash and its mac.
pub fn verify_entry(line: &[u8], keys: Option<&KeyRing>, checkpoint: Option<u64>) -> Verification {
    let Ok(mut entry) = parse_entry(line) else {
        return Verification {
            hash: None,
            hash_valid: false,
            mac_valid: keys.map(|_| false),
            checkpoint,
        };
    };
    let claimed = entry.remove("hash");
    let mac = entry.remove("mac");
    let entry = Value::Object(entry);
    let leaf: Hash = leaf_hash(&jcs::to_vec(&entry));
    let hash_valid = claimed
        .as_ref()
        .and_then(Value::as_str)
        .and_then(parse_hex_hash)
        == Some(leaf);
    let mac_valid = keys.map(|ring| {
        match (
            entry.get("kid").and_then(Value::as_str),
            mac.as_ref().and_then(Value::as_str),
        ) {
            (Some(kid), Some(mac)) => ring.verify(kid, &leaf, mac).is_ok(),
            _ => false,
        }
    });
    Verification {
        hash: Some(hex::encode(leaf)),
        hash_valid,
        mac_valid,
        checkpoint,
    }
}

/// Runs a request: the index finds the page, the journal gives its entries.
fn run(source: &Source, request: &Request) -> Result<Page, crate::journal::JournalError> {
    let floor = source.journal.first_index();
    let (found, indexed_end) = {
        let index = source.index.read();
        (
            index.search(&request.filter, &request.page, floor),
            index.end(),
        )
    };
    let complete = indexed_end >= source.journal.committed_end();
    let mut fetcher = source.journal.fetcher();
    let mut lines = Vec::with_capacity(found.hits.len());
    for hit in &found.hits {
        // None: purged since the search; the page is shorter, the cursor still right.
        if let Some(payload) = fetcher.read(hit.index, hit.near)? {
            match Frame::decode(&payload) {
                Ok(Frame::Entry { seq, line }) => lines.push((seq, line.to_vec())),
                _ => {
                    tracing::warn!(pipeline = %source.pipeline, index = hit.index, "query API: an indexed record is not an entry")
                }
            }
        }
    }
    let checkpoints: Vec<Option<u64>> = {
        let index = source.index.read();
        lines
            .iter()
            .map(|(seq, _)| index.checkpoint_covering(*seq))
            .collect()
    };
    let entries = lines
        .into_iter()
        .zip(checkpoints)
        .map(|((_, line), checkpoint)| {
            let verification = verify_entry(&line, source.keys.as_ref(), checkpoint);
            let entry = String::from_utf8(line)
                .ok()
                .and_then(|text| RawValue::from_string(text).ok());
            PageEntry {
                entry,
                verification,
            }
        })
        .collect::<Vec<_>>();
    let next_cursor = found
        .more
        .then(|| found.hits.last())
        .flatten()
        .map(|last| Cursor::encode(request.page.order, last.index, request.fingerprint));
    Ok(Page {
        pipeline: source.pipeline.clone(),
        stream: source.stream.clone(),
        order: match request.page.order {
            Order::NewestFirst => "newest_first",
            Order::OldestFirst => "oldest_first",
        },
        complete,
        count: entries.len(),
        entries,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::seal::Chain;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn checked(raw: RawRequest) -> Result<Request, BadParameter> {
        // Validation needs sources only to name pipelines; an empty journal will do.
        let dir = tempfile::tempdir().unwrap();
        let (_writer, journal, _) = crate::journal::open(dir.path(), Default::default()).unwrap();
        let sources = vec![Source {
            pipeline: "logs/audit".into(),
            stream: "logs/audit".into(),
            journal,
            keys: None,
            index: SharedIndex::default(),
        }];
        let every = Scope::new(&["*".into()], &[]);
        let source = pick_source(raw.pipeline.as_deref(), &sources, &every)?;
        raw.validate(&sources, source)
    }

    fn bad_get(q: &[(&str, &str)]) -> String {
        match RawRequest::from_pairs(pairs(q)).and_then(checked) {
            Err(b) => b.parameter,
            Ok(r) => panic!("accepted {q:?} as {r:?}"),
        }
    }

    fn bad_post(body: &str) -> String {
        match RawRequest::from_json(body.as_bytes()).and_then(checked) {
            Err(b) => b.parameter,
            Ok(r) => panic!("accepted {body} as {r:?}"),
        }
    }

    #[test]
    fn each_bad_parameter_is_named() {
        assert_eq!(bad_get(&[("limit", "0")]), "limit");
        assert_eq!(bad_get(&[("limit", "1001")]), "limit");
        assert_eq!(bad_get(&[("limit", "ten")]), "limit");
        assert_eq!(bad_get(&[("limit", "5"), ("limit", "6")]), "limit");
        assert_eq!(bad_get(&[("start", "yesterday")]), "start");
        assert_eq!(
            bad_get(&[
                ("start", "2026-01-02T00:00:00Z"),
                ("end", "2026-01-01T00:00:00Z")
            ]),
            "end"
        );
        assert_eq!(bad_get(&[("severity", "severe")]), "severity");
        assert_eq!(bad_get(&[("severity", ">=")]), "severity");
        assert_eq!(bad_get(&[("ip", "10.0.0.0/33")]), "ip");
        assert_eq!(bad_get(&[("user_id", "")]), "user_id");
        assert_eq!(bad_get(&[("order", "sideways")]), "order");
        assert_eq!(bad_get(&[("pipeline", "logs/other")]), "pipeline");
        assert_eq!(bad_get(&[("cursor", "!!!")]), "cursor");
        assert_eq!(bad_get(&[("cursor", "AQ")]), "cursor");
        assert_eq!(bad_get(&[("usr", "u1")]), "usr");
        assert_eq!(bad_post(r#"{"limit": "ten"}"#), "limit");
        assert_eq!(bad_post(r#"{"ip": ["10.0.0.0/8", "nope"]}"#), "ip");
        assert_eq!(bad_post(r#"{"user_id": [{"a": 1}]}"#), "user_id");
        assert_eq!(bad_post(r#"{"users": ["a"]}"#), "users");
        assert_eq!(bad_post(r#"{"limit": 5} trailing"#), "body");
        assert_eq!(bad_post(r#"[1, 2]"#), "body");
        assert_eq!(bad_post(r#"{"limit": -1}"#), "limit");
    }

    #[test]
    fn get_and_post_give_the_same_filter_and_so_the_same_cursors() {
        let get = RawRequest::from_pairs(pairs(&[
            ("user_id", "u2"),
            ("user_id", "u1"),
            ("status", "403"),
            ("severity", ">=high"),
            ("ip", "10.0.0.0/8"),
            ("start", "2026-01-01T00:00:00+01:00"),
            ("limit", "5"),
        ]))
        .and_then(checked)
        .unwrap();
        let post = RawRequest::from_json(
            br#"{"user_id": ["u1", "u2", "u1"], "status": 403, "severity": ["critical", "high"],
                 "ip": ["10.1.2.3/8"], "start": "2025-12-31T23:00:00Z", "limit": 5}"#,
        )
        .and_then(checked)
        .unwrap();
        assert_eq!(get.filter, post.filter);
        assert_eq!(get.filter.severity, [Severity::High, Severity::Critical]);
        assert_eq!(get.filter.start, Some(1_767_222_000_000_000_000));
        assert_eq!(get.fingerprint, post.fingerprint);
        assert_eq!(get.page.limit, 5);
    }

    #[test]
    fn cursors_round_trip_and_refuse_another_query_or_order() {
        let fp = [1, 2, 3, 4, 5, 6, 7, 8];
        let text = Cursor::encode(Order::NewestFirst, 123_456_789, fp);
        assert_eq!(
            Cursor::decode(&text, Order::NewestFirst, fp),
            Ok(123_456_789)
        );
        assert!(Cursor::decode(&text, Order::OldestFirst, fp).is_err());
        assert!(Cursor::decode(&text, Order::NewestFirst, [0; 8]).is_err());
        assert!(Cursor::decode("", Order::NewestFirst, fp).is_err());
    }

    #[test]
    fn verification_recomputes_the_leaf_and_checks_the_mac() {
        let keys = KeyRing::new(vec![("k1".into(), vec![7; 32])]).unwrap();
        let mut chain = Chain::new("s", Some(keys.clone())).unwrap();
        let mut record = crate::event::Record::new("test");
        record.attributes.insert("user_id".into(), json!("ü-1"));
        let sealed = chain.seal(record.into_json());
        let good = verify_entry(&sealed.line, Some(&keys), Some(10));
        assert_eq!(
            good,
            Verification {
                hash: Some(hex::encode(sealed.leaf)),
                hash_valid: true,
                mac_valid: Some(true),
                checkpoint: Some(10),
            }
        );
        assert_eq!(verify_entry(&sealed.line, None, None).mac_valid, None);
        let other = KeyRing::new(vec![("k1".into(), vec![8; 32])]).unwrap();
        assert_eq!(
            verify_entry(&sealed.line, Some(&other), None).mac_valid,
            Some(false)
        );

        let text = String::from_utf8(sealed.line.clone()).unwrap();
        let tampered = text.replace("ü-1", "ü-2");
        let v = verify_entry(tampered.as_bytes(), Some(&keys), None);
        assert_eq!((v.hash_valid, v.mac_valid), (false, Some(false)));
        let v = verify_entry(b"not json", Some(&keys), None);
        assert_eq!(
            (v.hash, v.hash_valid, v.mac_valid),
            (None, false, Some(false))
        );
    }

    /// A router over one empty pipeline, with one token per config, whose access records
    /// go to an intake that is `open` or closed (as it is while the daemon shuts down).
    fn api(tokens: &[super::super::auth::TokenConfig], open: bool) -> (Router, tempfile::TempDir) {
        use crate::pipeline::intake::PipelineIntake;
        let dir = tempfile::tempdir().unwrap();
        let (_w, journal, _) =
            crate::journal::open(&dir.path().join("a"), Default::default()).unwrap();
        let (_w2, access_journal, _) =
            crate::journal::open(&dir.path().join("b"), Default::default()).unwrap();
        let (queue, requests) = std::sync::mpsc::channel::<crate::pipeline::writer::WriteRequest>();
        // Stands in for the writer: every record is durable at once.
        std::thread::spawn(move || {
            for r in requests {
                let _ = r.done.send(Ok(()));
            }
        });
        let intake = Arc::new(PipelineIntake::new(
            "vellum/access".into(),
            Vec::new(),
            queue,
            access_journal,
            Vec::new(),
            u64::MAX,
        ));
        if !open {
            intake.close();
        }
        let state = ApiState {
            callers: Arc::new(tokens.iter().map(Caller::new).collect()),
            sources: Arc::new(vec![Source {
                pipeline: "logs/a".into(),
                stream: "logs/a".into(),
                journal,
                keys: None,
                index: SharedIndex::default(),
            }]),
            access: AccessLog::new(intake),
        };
        (router(state), dir)
    }

    fn token(rate: f64, burst: u32) -> super::super::auth::TokenConfig {
        super::super::auth::TokenConfig {
            name: "t".into(),
            token: crate::config::Secret::new("0123456789abcdef-t"),
            pipelines: vec!["*".into()],
            streams: Vec::new(),
            rate_limit: super::super::rate::RateLimit {
                requests_per_second: rate,
                burst,
            },
        }
    }

    async fn call(app: &Router) -> Response {
        use tower::ServiceExt;
        let request = axum::http::Request::get(GET_PATH)
            .header("authorization", "Bearer 0123456789abcdef-t")
            .body(axum::body::Body::empty())
            .unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn nothing_is_answered_when_its_access_record_cannot_be_sealed() {
        let (open, _d1) = api(&[token(10.0, 10)], true);
        assert_eq!(call(&open).await.status(), StatusCode::OK);
        let (closed, _d2) = api(&[token(10.0, 10)], false);
        let response = call(&closed).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body.get("entries").is_none(), "{body}");
    }

    #[tokio::test]
    async fn a_spent_budget_is_429_with_retry_after_in_whole_seconds() {
        let (app, _d) = api(&[token(0.25, 1)], true);
        assert_eq!(call(&app).await.status(), StatusCode::OK);
        let response = call(&app).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "4");
    }

    #[test]
    fn bearer_tokens_are_read_from_either_case_of_the_scheme() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
