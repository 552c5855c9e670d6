//! A local Datadog Logs intake (API v2) that speaks the documented protocol:
//! `POST /api/v2/logs` with the key in `DD-API-KEY`, a JSON array of logs (or one log),
//! plain, gzip or deflate; `202 {}` when taken. Limits per request, as documented: 5 MB
//! uncompressed, 1,000 logs, 1 MB per log — a larger log is taken but truncated, which
//! is what an exporter must never let happen to an audit record. Errors are
//! `{"errors":[{"status","title","detail"}]}` with 400 (bad JSON), 401 (no key), 403
//! (wrong key), 413 (too large).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::http_faults::{Faults, Plan, decode_body};

pub const MAX_PAYLOAD_BYTES: usize = 5_000_000;
pub const MAX_LOGS: usize = 1000;
pub const MAX_LOG_BYTES: usize = 1_000_000;

pub struct Intake {
    pub api_key: String,
    /// Every log taken, in order.
    pub logs: Mutex<Vec<Value>>,
    /// Logs Datadog would have truncated.
    pub truncated: AtomicUsize,
    /// Requests taken, and the most logs one held.
    pub requests: AtomicUsize,
    pub largest_request: AtomicUsize,
    /// Statuses of refused requests.
    pub refused: Mutex<Vec<u16>>,
    pub faults: Arc<Faults>,
}

impl Intake {
    pub fn new(api_key: &str) -> Intake {
        Intake {
            api_key: api_key.into(),
            logs: Mutex::new(Vec::new()),
            truncated: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            largest_request: AtomicUsize::new(0),
            refused: Mutex::new(Vec::new()),
            faults: Arc::default(),
        }
    }

    pub fn router(self: &Arc<Intake>) -> Router {
        Router::new()
            .route("/api/v2/logs", post(logs))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(self.clone())
    }

    fn refuse(&self, status: u16, title: &str, detail: &str) -> Response {
        self.refused.lock().unwrap().push(status);
        error(status, title, detail)
    }

    /// Logs with `vellum.seq`, in the order taken.
    pub fn seqs(&self) -> Vec<u64> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l["vellum"]["seq"].as_u64())
            .collect()
    }
}

/// Datadog's error body.
pub fn error(status: u16, title: &str, detail: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("a valid status"),
        [("content-type", "application/json")],
        json!({"errors": [{"status": status.to_string(), "title": title, "detail": detail}]})
            .to_string(),
    )
        .into_response()
}

async fn logs(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Bytes) -> Response {
    let (delay, reset) = match intake.faults.plan() {
        Plan::Answer(r) => return r,
        Plan::Handle { delay, reset } => (delay, reset),
    };
    match headers.get("dd-api-key").and_then(|v| v.to_str().ok()) {
        None => return intake.refuse(401, "Unauthorized", "API key is missing"),
        Some(k) if k != intake.api_key => {
            return intake.refuse(403, "Forbidden", "API key is invalid");
        }
        Some(_) => {}
    }
    let body = match decode_body(&headers, &body) {
        Ok(b) => b,
        Err(e) => return intake.refuse(400, "Bad Request", &e),
    };
    if body.len() > MAX_PAYLOAD_BYTES {
        return intake.refuse(413, "Payload Too Large", "batch is above 5MB uncompressed");
    }
    let logs = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_object) => a,
        Ok(one @ Value::Object(_)) => vec![one],
        _ => return intake.refuse(400, "Bad Request", "invalid JSON payload"),
    };
    if logs.len() > MAX_LOGS {
        return intake.refuse(413, "Payload Too Large", "more than 1000 logs in one array");
    }
    intake.requests.fetch_add(1, Ordering::SeqCst);
    intake
        .largest_request
        .fetch_max(logs.len(), Ordering::SeqCst);
    let mut taken = Vec::with_capacity(logs.len());
    for mut log in logs {
        if log.to_string().len() > MAX_LOG_BYTES {
            intake.truncated.fetch_add(1, Ordering::SeqCst);
            if let Some(Value::String(m)) = log.get_mut("message") {
                let mut cut = MAX_LOG_BYTES / 2;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
        }
        taken.push(log);
    }
    intake.logs.lock().unwrap().extend(taken);
    intake.faults.finish(delay, reset).await;
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        "{}",
    )
        .into_response()
}
