//! Serving HTTP/1 on a TCP listener with the limits a hostile client meets: every
//! receiver's HTTP endpoint, the query API and the telemetry server go through
//! [`serve`].
//!
//! | setting | default | what a client must do |
//! |---|---|---|
//! | `read_header_timeout` | 10s | send a whole request head within this of its first byte |
//! | `read_timeout` | 30s | send the whole body within this of the head… |
//! | `min_body_rate` | 1KiB | …never slower than this many bytes per second after a 5 s start |
//! | `idle_timeout` | 60s | start its next request within this (a new connection: its first) |
//! | `max_connections` | 128 | (the listener) at most this many connections are served at once |
//!
//! A request cut while its body arrives is answered 408 and the connection closed; a
//! connection cut while idle or in its head is closed. Both are counted in
//! `vellum_listener_timeouts_total{listener, phase}` (`idle`, `header`, `body`).
//! When every slot is taken, a new connection takes the slot of the connection that has
//! been idle, or sending its head, the longest; if every connection is receiving a body
//! or waiting for its answer, the new one is closed at once and counted in
//! `vellum_listener_refused_connections_total{listener}`. So slow clients can hold slots
//! only while they keep sending bodies at `min_body_rate`, for at most `read_timeout`.
//!
//! On shutdown the listener stops accepting, closes connections that are idle or still
//! sending a request (nothing of theirs was acknowledged), and lets the requests already
//! read finish their answer: how long shutdown waits never depends on what clients do.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Time a body gets before `min_body_rate` applies: slow starts (TCP slow start, a
/// client preparing its body) are not slow clients.
const BODY_GRACE: Duration = Duration::from_secs(5);

/// The limits of one HTTP listener (see the module table). Receivers take them as
/// settings in the Collector's names; the query API and telemetry use the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_read_header_timeout", with = "humantime_serde")]
    pub read_header_timeout: Duration,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    #[serde(default = "default_min_body_rate")]
    #[schemars(with = "crate::config::schema::Size")]
    pub min_body_rate: bytesize::ByteSize,
    #[schemars(with = "crate::config::schema::HumanDuration")]
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

pub fn default_read_header_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn default_min_body_rate() -> bytesize::ByteSize {
    bytesize::ByteSize::kib(1)
}
pub fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn default_max_connections() -> usize {
    128
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            read_header_timeout: default_read_header_timeout(),
            read_timeout: default_read_timeout(),
            min_body_rate: default_min_body_rate(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl ListenerLimits {
    /// Values the listener cannot use, as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (field, value) in [
            ("read_header_timeout", self.read_header_timeout),
            ("read_timeout", self.read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                out.push((field.into(), "must be longer than zero".into()));
            }
        }
        if self.min_body_rate.as_u64() == 0 {
            out.push((
                "min_body_rate".into(),
                "must be at least 1 byte per second".into(),
            ));
        }
        if self.max_connections == 0 {
            out.push(("max_connections".into(), "must be at least 1".into()));
        }
        out
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; the task ends once the
/// answers in flight are sent. `name` labels the metrics and the log.
pub fn serve(
    name: String,
    listener: TcpListener,
    app: axum::Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(accept_loop(Arc::new(name), listener, app, limits, shutdown))
}

async fn accept_loop(
    name: Arc<String>,
    listener: TcpListener,
    app: axum::Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    let mut live: HashMap<tokio::task::Id, Arc<Connection>> = HashMap::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(done) = connections.join_next_with_id() => {
                forget(&mut live, &name, done);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory: wait rather than spin on the error.
                    tracing::warn!(listener = %name, %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let serving = live.values().filter(|c| !c.cut.is_cancelled()).count();
        if serving >= limits.max_connections && !evict_one(&live) {
            metrics::counter!("vellum_listener_refused_connections_total", "listener" => name.to_string())
                .increment(1);
            tracing::debug!(listener = %name, %peer, "connection refused: every slot is serving a request");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let connection = Arc::new(Connection::new(name.clone(), limits));
        let handle = connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            connection.clone(),
            shutdown.clone(),
        ));
        live.insert(handle.id(), connection);
    }
    drop(listener);
    while let Some(done) = connections.join_next_with_id().await {
        forget(&mut live, &name, done);
    }
}

fn forget(
    live: &mut HashMap<tokio::task::Id, Arc<Connection>>,
    name: &str,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    match done {
        Ok((id, ())) => {
            live.remove(&id);
        }
        Err(error) => {
            live.remove(&error.id());
            tracing::error!(listener = %name, %error, "connection task failed");
        }
    }
}

/// Cuts the connection idle or in its head the longest; false when there is none.
fn evict_one(live: &HashMap<tokio::task::Id, Arc<Connection>>) -> bool {
    let victim = live
        .values()
        .filter(|c| !c.cut.is_cancelled() && !c.phase().in_request())
        .min_by_key(|c| c.since());
    match victim {
        Some(c) => {
            c.cut.cancel();
            true
        }
        None => false,
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    connection: Arc<Connection>,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(TimedStream::new(stream, connection.clone()));
    let state = connection.clone();
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let state = state.clone();
        let app = app.clone();
        async move {
            state.set_phase(Phase::Body);
            let mut request = request.map(|body| Body::new(TimedBody::new(body, state.clone())));
            // Handlers that record who called (the query API's access stream) read it here.
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = app.oneshot(request).await;
            let response = if state.body_timed_out.load(Ordering::Relaxed) {
                request_timeout()
            } else {
                response.unwrap_or_else(|never| match never {})
            };
            state.set_phase(Phase::Idle);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    // hyper's own head timer would also run while a kept-alive connection waits, cutting
    // it before `idle_timeout`: the stream keeps both deadlines instead.
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let outcome = tokio::select! {
        served = conn.as_mut() => Some(served),
        () = connection.cut.cancelled() => None,
        () = shutdown.cancelled() => {
            // A request read whole may be waiting for durability: let it be answered.
            if connection.phase() == Phase::Answer {
                conn.as_mut().graceful_shutdown();
                Some(conn.await)
            } else {
                None
            }
        }
    };
    if let Some(Err(error)) = outcome {
        tracing::debug!(listener = %connection.name, %peer, %error, "connection ended");
    }
}

fn request_timeout() -> Response<Body> {
    let body = serde_json::json!({
        "error": "the request body did not arrive within read_timeout, or slower than min_body_rate"
    });
    let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Where a connection is: what it must do next, and by when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Between requests (or before the first): the next must start within `idle_timeout`.
    Idle = 0,
    /// A request head has begun: it must be whole within `read_header_timeout`.
    Head = 1,
    /// The head is read, the body is arriving under `read_timeout` and `min_body_rate`.
    Body = 2,
    /// The request is read whole; its answer is being prepared.
    Answer = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Head,
            2 => Phase::Body,
            _ => Phase::Answer,
        }
    }

    fn in_request(self) -> bool {
        matches!(self, Phase::Body | Phase::Answer)
    }

    fn label(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Head => "header",
            Phase::Body | Phase::Answer => "body",
        }
    }
}

/// What the stream, the body and the listener share about one connection.
struct Connection {
    name: Arc<String>,
    limits: ListenerLimits,
    phase: AtomicU8,
    since: Mutex<Instant>,
    body_timed_out: AtomicBool,
    /// Cancelled to free the connection's slot for a newcomer.
    cut: CancellationToken,
}

impl Connection {
    fn new(name: Arc<String>, limits: ListenerLimits) -> Connection {
        Connection {
            name,
            limits,
            phase: AtomicU8::new(Phase::Idle as u8),
            since: Mutex::new(Instant::now()),
            body_timed_out: AtomicBool::new(false),
            cut: CancellationToken::new(),
        }
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn since(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// The deadline the stream enforces in the current phase; none once a request is read.
    fn read_deadline(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Idle => Some(self.since() + self.limits.idle_timeout),
            Phase::Head => Some(self.since() + self.limits.read_header_timeout),
            Phase::Body | Phase::Answer => None,
        }
    }

    fn timed_out(&self, phase: Phase) {
        metrics::counter!("vellum_listener_timeouts_total", "listener" => self.name.to_string(), "phase" => phase.label())
            .increment(1);
    }
}

/// The TCP stream with the idle and head deadlines: neither restarts on a lone byte.
struct TimedStream {
    inner: TcpStream,
    connection: Arc<Connection>,
    timer: Pin<Box<Sleep>>,
}

impl TimedStream {
    fn new(inner: TcpStream, connection: Arc<Connection>) -> TimedStream {
        let deadline = Instant::now() + connection.limits.idle_timeout;
        TimedStream {
            inner,
            connection,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && self.connection.phase() == Phase::Idle {
                    self.connection.set_phase(Phase::Head);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = self.connection.read_deadline() else {
                    return Poll::Pending;
                };
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
                ready!(self.timer.as_mut().poll(cx));
                let phase = self.connection.phase();
                self.connection.timed_out(phase);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no whole request {} in time", phase.label()),
                )))
            }
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that must arrive within `read_timeout` and, after [`BODY_GRACE`], at
/// `min_body_rate` or faster: each byte received buys `1 / min_body_rate` more time.
struct TimedBody {
    inner: hyper::body::Incoming,
    connection: Arc<Connection>,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

/// Why a body was cut (the client is answered 408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimeout;

impl TimedBody {
    fn new(inner: hyper::body::Incoming, connection: Arc<Connection>) -> TimedBody {
        let started = Instant::now();
        if inner.is_end_stream() {
            connection.set_phase(Phase::Answer);
        }
        let mut body = TimedBody {
            inner,
            connection,
            started,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(started)),
        };
        let deadline = body.deadline();
        body.timer.as_mut().reset(deadline);
        body
    }

    fn deadline(&self) -> Instant {
        let limits = &self.connection.limits;
        let rate = limits.min_body_rate.as_u64().max(1) as f64;
        let by_rate = BODY_GRACE + Duration::from_secs_f64(self.received as f64 / rate);
        self.started + by_rate.min(limits.read_timeout)
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    let deadline = self.deadline();
                    self.timer.as_mut().reset(deadline);
                }
                if self.inner.is_end_stream() {
                    self.connection.set_phase(Phase::Answer);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                self.connection.set_phase(Phase::Answer);
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                self.connection.timed_out(Phase::Body);
                self.connection
                    .body_timed_out
                    .store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_have_documented_defaults_and_refuse_zero() {
        let limits: ListenerLimits = serde_json::from_str("{}").unwrap();
        assert_eq!(limits, ListenerLimits::default());
        assert_eq!(limits.read_header_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections, 128);
        let zero: ListenerLimits = serde_json::from_value(serde_json::json!({
            "read_header_timeout": "0s", "read_timeout": "0s", "idle_timeout": "0s",
            "min_body_rate": 0, "max_connections": 0
        }))
        .unwrap();
        let fields: Vec<String> = zero.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "read_header_timeout",
                "read_timeout",
                "idle_timeout",
                "min_body_rate",
                "max_connections"
            ]
        );
    }
}
