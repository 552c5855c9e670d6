//! A webhook receiver as the `webhook` exporter's documentation asks one to be written:
//! it checks the bearer token, or recomputes `X-Vellum-Signature` (HMAC-SHA256 over
//! `<X-Vellum-Timestamp>.<body>`, compared in constant time) and rejects a timestamp more
//! than five minutes from its clock, then keeps the batch. Refusals are 401.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::http_faults::{Faults, Plan, decode_body};

pub const TOLERANCE: Duration = Duration::from_secs(300);

pub enum Auth {
    None,
    Bearer(String),
    Hmac(Vec<u8>),
}

pub struct Receiver {
    pub path: String,
    pub auth: Auth,
    /// Headers every request must carry, lowercase names.
    pub required_headers: Vec<(String, String)>,
    /// Every batch taken, in order.
    pub batches: Mutex<Vec<Value>>,
    /// Why requests were refused.
    pub refused: Mutex<Vec<String>>,
    pub signed: AtomicUsize,
    pub faults: Arc<Faults>,
}

impl Receiver {
    pub fn new(path: &str, auth: Auth) -> Receiver {
        Receiver {
            path: path.into(),
            auth,
            required_headers: Vec::new(),
            batches: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            signed: AtomicUsize::new(0),
            faults: Arc::default(),
        }
    }

    pub fn router(self: &Arc<Receiver>) -> Router {
        Router::new()
            .route(&self.path, post(hook))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(self.clone())
    }

    fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        for (name, value) in &self.required_headers {
            if header(name) != Some(value.as_str()) {
                return Err(format!("header {name} missing or wrong"));
            }
        }
        if header("content-type") != Some("application/json") {
            return Err("not application/json".into());
        }
        match &self.auth {
            Auth::None => Ok(()),
            Auth::Bearer(token) => match header("authorization") {
                Some(v) if v.strip_prefix("Bearer ") == Some(token.as_str()) => Ok(()),
                _ => Err("bad bearer token".into()),
            },
            Auth::Hmac(secret) => {
                let timestamp = header("x-vellum-timestamp").ok_or("no timestamp")?;
                let sent: u64 = timestamp.parse().map_err(|_| "timestamp is not a number")?;
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if now.abs_diff(sent) > TOLERANCE.as_secs() {
                    return Err("timestamp outside the tolerance: a replay?".into());
                }
                let signature = header("x-vellum-signature")
                    .and_then(|s| s.strip_prefix("sha256="))
                    .and_then(|h| hex::decode(h).ok())
                    .ok_or("no signature")?;
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(&signature)
                    .map_err(|_| "signature does not match".to_string())?;
                self.signed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    /// Seqs of every entry received, in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b["entries"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["seq"].as_u64())
            .collect()
    }
}

async fn hook(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let (delay, reset) = match receiver.faults.plan() {
        Plan::Answer(r) => return r,
        Plan::Handle { delay, reset } => (delay, reset),
    };
    let body = match decode_body(&headers, &body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if let Err(why) = receiver.check(&headers, &body) {
        receiver.refused.lock().unwrap().push(why.clone());
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let batch: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return (StatusCode::BAD_REQUEST, "not a JSON object").into_response(),
    };
    receiver.batches.lock().unwrap().push(batch);
    receiver.faults.finish(delay, reset).await;
    StatusCode::NO_CONTENT.into_response()
}
