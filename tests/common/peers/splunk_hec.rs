//! A local Splunk HTTP Event Collector that speaks the documented protocol:
//!
//! - `POST /services/collector/event` (and `/services/collector`): `Authorization: Splunk
//!   <token>`, JSON event objects concatenated in the body, plain or gzip; each needs a
//!   non-blank `event`, an allowed `index`, `fields` of strings (or arrays of strings).
//! - indexer acknowledgement for a token with `useACK`: every request names a channel
//!   (`X-Splunk-Request-Channel` or `?channel=`, a GUID), each post answers
//!   `{"text":"Success","code":0,"ackId":N}` with ids counting from 0 per channel, and
//!   `POST /services/collector/ack` with `{"acks":[…]}` answers `{"acks":{"N":bool}}`;
//!   an id reported true is forgotten, as Splunk does.
//! - `GET /services/collector/health`.
//! - errors as `{"text":…,"code":…}` with Splunk's status for each code.
//!
//! Events count as indexed (kept in `events`) when the request is taken; with acks, the
//! ack turns true on the first poll at least `index_delay` later. `lose_acks` makes the
//! next posts vanish as an indexer crash would: their events are not kept and their ack
//! never turns true. Only a post of several events that is answered at once is lost, so
//! that nothing but the ack can tell.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::http_faults::{Faults, Plan, decode_body};

pub struct Hec {
    pub token: String,
    /// The token has indexer acknowledgement on.
    pub use_ack: bool,
    /// Indexes the token may write to; `None` allows any.
    pub allowed_indexes: Option<Vec<String>>,
    pub index_delay: Duration,
    /// Every indexed event, in the order taken.
    pub events: Mutex<Vec<Value>>,
    /// Posts taken (events) and ack polls answered.
    pub posts: AtomicUsize,
    pub ack_polls: AtomicUsize,
    /// Requests refused, by HEC code.
    pub refused: Mutex<Vec<i64>>,
    /// The next this many posts are lost with their acks.
    pub lose_acks: AtomicUsize,
    /// An administrator disabled the token: every request is refused with code 1.
    pub revoked: AtomicBool,
    channels: Mutex<HashMap<String, Channel>>,
    pub faults: Arc<Faults>,
}

#[derive(Default)]
struct Channel {
    next_ack: u64,
    /// ackId → when it was posted, or `None` when lost.
    pending: BTreeMap<u64, Option<Instant>>,
}

impl Hec {
    pub fn new(token: &str, use_ack: bool) -> Hec {
        Hec {
            token: token.into(),
            use_ack,
            allowed_indexes: None,
            index_delay: Duration::from_millis(30),
            events: Mutex::new(Vec::new()),
            posts: AtomicUsize::new(0),
            ack_polls: AtomicUsize::new(0),
            refused: Mutex::new(Vec::new()),
            lose_acks: AtomicUsize::new(0),
            revoked: AtomicBool::new(false),
            channels: Mutex::new(HashMap::new()),
            faults: Arc::default(),
        }
    }

    pub fn router(self: &Arc<Hec>) -> Router {
        Router::new()
            .route("/services/collector/event", post(event))
            .route("/services/collector/event/1.0", post(event))
            .route("/services/collector", post(event))
            .route("/services/collector/ack", post(ack))
            .route("/services/collector/health", get(health))
            .with_state(self.clone())
    }

    fn refuse(&self, code: i64) -> Response {
        self.refused.lock().unwrap().push(code);
        reply(code)
    }

    /// The token check every endpoint makes: codes 1, 2, 3, 4.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), i64> {
        let Some(value) = headers.get("authorization") else {
            return Err(2);
        };
        let value = value.to_str().map_err(|_| 3)?;
        let Some(token) = value.strip_prefix("Splunk ") else {
            return Err(3);
        };
        if token.trim() != self.token {
            return Err(4);
        }
        if self.revoked.load(Ordering::SeqCst) {
            return Err(1);
        }
        Ok(())
    }

    /// The channel of a request, checked when the token uses acks: codes 10, 11.
    fn channel(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
    ) -> Result<Option<String>, i64> {
        let named = headers
            .get("x-splunk-request-channel")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| query.get("channel").cloned());
        match named {
            None if self.use_ack => Err(10),
            None => Ok(None),
            Some(c) if !is_guid(&c) => Err(11),
            Some(c) => Ok(Some(c.to_ascii_lowercase())),
        }
    }

    /// The events of a body, or the HEC code that refuses it: 5, 6, 7, 12, 13, 15.
    fn parse_events(&self, body: &[u8]) -> Result<Vec<Value>, (i64, Option<usize>)> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err((5, None));
        }
        let mut events = Vec::new();
        for (n, parsed) in serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .enumerate()
        {
            let Ok(Value::Object(event)) = parsed else {
                return Err((6, Some(n)));
            };
            match event.get("event") {
                None => return Err((12, Some(n))),
                Some(Value::Null) => return Err((13, Some(n))),
                Some(Value::String(s)) if s.trim().is_empty() => return Err((13, Some(n))),
                _ => {}
            }
            if let Some(index) = event.get("index") {
                let allowed = match (&self.allowed_indexes, index.as_str()) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(list), Some(i)) => list.iter().any(|a| a == i),
                };
                if !allowed {
                    return Err((7, Some(n)));
                }
            }
            if let Some(time) = event.get("time") {
                let ok =
                    time.is_number() || time.as_str().is_some_and(|t| t.parse::<f64>().is_ok());
                if !ok {
                    return Err((6, Some(n)));
                }
            }
            if let Some(fields) = event.get("fields") {
                let flat = fields.as_object().is_some_and(|f| {
                    f.values().all(|v| {
                        v.is_string()
                            || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                    })
                });
                if !flat {
                    return Err((15, Some(n)));
                }
            }
            events.push(Value::Object(event));
        }
        Ok(events)
    }

    /// Seqs of the entries indexed, in the order taken.
    pub fn seqs(&self) -> Vec<u64> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e["event"]["seq"].as_u64())
            .collect()
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Splunk's status and text for a HEC code.
fn code_status_text(code: i64) -> (u16, &'static str) {
    match code {
        0 => (200, "Success"),
        1 => (403, "Token disabled"),
        2 => (401, "Token is required"),
        3 => (401, "Invalid authorization"),
        4 => (403, "Invalid token"),
        5 => (400, "No data"),
        6 => (400, "Invalid data format"),
        7 => (400, "Incorrect index"),
        8 => (500, "Internal server error"),
        9 => (503, "Server is busy"),
        10 => (400, "Data channel is missing"),
        11 => (400, "Invalid data channel"),
        12 => (400, "Event field is required"),
        13 => (400, "Event field cannot be blank"),
        14 => (400, "ACK is disabled"),
        15 => (400, "Error in handling indexed fields"),
        16 => (400, "Query string authorization is not enabled"),
        17 => (200, "HEC is healthy"),
        18 => (503, "HEC is unhealthy, queues are full"),
        23 => (503, "Server is shutting down"),
        26 => (
            429,
            "HEC queue is at capacity and cannot process any more requests",
        ),
        _ => (500, "Internal server error"),
    }
}

/// Splunk's answer for a HEC code; a refused event names its number in the body.
pub fn reply_at(code: i64, invalid_event: Option<usize>) -> Response {
    let (status, text) = code_status_text(code);
    let mut body = json!({"text": text, "code": code});
    if let Some(n) = invalid_event {
        body["invalid-event-number"] = json!(n);
    }
    (
        StatusCode::from_u16(status).expect("a valid status"),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn reply(code: i64) -> Response {
    reply_at(code, None)
}

/// A HEC error body, for scripted faults.
pub fn error_body(code: i64) -> String {
    json!({"text": code_status_text(code).1, "code": code}).to_string()
}

async fn event(
    State(hec): State<Arc<Hec>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (delay, reset) = match hec.faults.plan() {
        Plan::Answer(r) => return r,
        Plan::Handle { delay, reset } => (delay, reset),
    };
    if let Err(code) = hec.authorize(&headers) {
        return hec.refuse(code);
    }
    let channel = match hec.channel(&headers, &query) {
        Ok(c) => c,
        Err(code) => return hec.refuse(code),
    };
    let Ok(body) = decode_body(&headers, &body) else {
        return hec.refuse(6);
    };
    let events = match hec.parse_events(&body) {
        Ok(e) => e,
        Err((code, invalid)) => {
            hec.refused.lock().unwrap().push(code);
            return reply_at(code, invalid);
        }
    };
    hec.posts.fetch_add(1, Ordering::SeqCst);
    // Only a post answered at once can be lost quietly: then nothing but the ack tells.
    let lost = delay.is_none()
        && !reset
        && events.len() > 1
        && hec
            .lose_acks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if !lost {
        hec.events.lock().unwrap().extend(events);
    }
    let answer = match channel.filter(|_| hec.use_ack) {
        Some(channel) => {
            let mut channels = hec.channels.lock().unwrap();
            let ch = channels.entry(channel).or_default();
            let id = ch.next_ack;
            ch.next_ack += 1;
            ch.pending.insert(id, (!lost).then(Instant::now));
            json!({"text": "Success", "code": 0, "ackId": id})
        }
        None => json!({"text": "Success", "code": 0}),
    };
    hec.faults.finish(delay, reset).await;
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

async fn ack(
    State(hec): State<Arc<Hec>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (delay, reset) = match hec.faults.plan() {
        Plan::Answer(r) => return r,
        Plan::Handle { delay, reset } => (delay, reset),
    };
    if let Err(code) = hec.authorize(&headers) {
        return hec.refuse(code);
    }
    if !hec.use_ack {
        return hec.refuse(14);
    }
    let channel = match hec.channel(&headers, &query) {
        Ok(Some(c)) => c,
        Ok(None) => return hec.refuse(10),
        Err(code) => return hec.refuse(code),
    };
    let ids: Vec<u64> = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v["acks"].as_array() {
            Some(a) if a.iter().all(Value::is_u64) => a.iter().filter_map(Value::as_u64).collect(),
            _ => return hec.refuse(6),
        },
        Err(_) => return hec.refuse(6),
    };
    hec.ack_polls.fetch_add(1, Ordering::SeqCst);
    let mut acks = serde_json::Map::new();
    {
        let mut channels = hec.channels.lock().unwrap();
        let ch = channels.entry(channel).or_default();
        for id in ids {
            let indexed =
                matches!(ch.pending.get(&id), Some(Some(at)) if at.elapsed() >= hec.index_delay);
            if indexed {
                ch.pending.remove(&id);
            }
            acks.insert(id.to_string(), Value::Bool(indexed));
        }
    }
    hec.faults.finish(delay, reset).await;
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({ "acks": acks }).to_string(),
    )
        .into_response()
}

async fn health() -> Response {
    reply(17)
}
