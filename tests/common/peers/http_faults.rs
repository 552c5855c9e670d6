//! What the local HTTP sinks share: a server that can be taken down and brought back on
//! the same port, and scripted faults — an error status (with `Retry-After`), an answer
//! slower than the exporter waits, a connection reset instead of an answer.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One scripted misbehaviour, used by the next request that reaches a sink.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, body and headers without taking the request.
    Status {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// Take the request, then answer only after this long.
    Slow(Duration),
    /// Take the request, then reset the connection instead of answering.
    Reset,
}

impl Fault {
    pub fn status(status: u16, body: impl Into<String>) -> Fault {
        Fault::Status {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// The same answer with one more header (`Retry-After`, a rate-limit header).
    pub fn with(self, name: &'static str, value: impl Into<String>) -> Fault {
        match self {
            Fault::Status {
                status,
                body,
                mut headers,
            } => {
                headers.push((name, value.into()));
                Fault::Status {
                    status,
                    body,
                    headers,
                }
            }
            other => other,
        }
    }
}

#[derive(Default)]
pub struct Faults {
    queue: Mutex<VecDeque<Fault>>,
    /// The next response written on any connection resets it instead.
    reset_armed: AtomicBool,
    /// How many scripted faults were used.
    pub used: AtomicUsize,
    /// How many connections were reset instead of answered.
    pub resets: AtomicUsize,
}

/// What a handler does with a request, given the next fault.
pub enum Plan {
    /// Answer this without looking at the request.
    Answer(Response),
    /// Handle the request, then wait `delay` and reset the connection if `reset`.
    Handle {
        delay: Option<Duration>,
        reset: bool,
    },
}

impl Faults {
    pub fn push(&self, fault: Fault) {
        self.queue.lock().unwrap().push_back(fault);
    }

    pub fn pending(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    pub fn plan(&self) -> Plan {
        let Some(fault) = self.queue.lock().unwrap().pop_front() else {
            return Plan::Handle {
                delay: None,
                reset: false,
            };
        };
        self.used.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Status {
                status,
                body,
                headers,
            } => {
                let mut response = (
                    StatusCode::from_u16(status).expect("a valid status"),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_str(&value).expect("a header value"));
                }
                Plan::Answer(response)
            }
            Fault::Slow(d) => Plan::Handle {
                delay: Some(d),
                reset: false,
            },
            Fault::Reset => Plan::Handle {
                delay: None,
                reset: true,
            },
        }
    }

    /// Runs a handled request's tail of the plan: the delay, and arming the reset.
    pub async fn finish(&self, delay: Option<Duration>, reset: bool) {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if reset {
            self.reset_armed.store(true, Ordering::SeqCst);
        }
    }
}

/// A connection whose next write fails with a reset (RST on the wire) when armed.
pub struct FaultyStream {
    inner: TcpStream,
    faults: Arc<Faults>,
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.faults.reset_armed.swap(false, Ordering::SeqCst) {
            // Closing with a zero linger sends RST instead of FIN.
            let _ = self.inner.set_zero_linger();
            self.faults.resets.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct FaultyListener {
    inner: TcpListener,
    faults: Arc<Faults>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = FaultyStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (FaultyStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    return (
                        FaultyStream {
                            inner,
                            faults: self.faults.clone(),
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A sink on a fixed loopback address that can go down and come back.
pub struct Server {
    pub addr: SocketAddr,
    app: Router,
    faults: Arc<Faults>,
    rt: Handle,
    running: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
}

impl Server {
    /// Serves `app` on `addr` (port 0 picks one) from the runtime `rt`.
    pub fn start(rt: &Handle, addr: SocketAddr, app: Router, faults: Arc<Faults>) -> Server {
        let listener = rt
            .block_on(TcpListener::bind(addr))
            .expect("bind the sink's address");
        let addr = listener.local_addr().expect("local address");
        let server = Server {
            addr,
            app,
            faults,
            rt: rt.clone(),
            running: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, inner: TcpListener) {
        let listener = FaultyListener {
            inner,
            faults: self.faults.clone(),
        };
        let stop = CancellationToken::new();
        let app = self.app.clone();
        let until = stop.clone().cancelled_owned();
        let task = self.rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await;
        });
        *self.running.lock().unwrap() = Some((stop, task));
    }

    /// Stops listening and closes every connection: clients see "connection refused".
    pub fn down(&self) {
        if let Some((stop, task)) = self.running.lock().unwrap().take() {
            stop.cancel();
            let _ = self.rt.block_on(task);
        }
    }

    /// Listens again on the same address.
    pub fn up(&self) {
        let listener = self
            .rt
            .block_on(TcpListener::bind(self.addr))
            .expect("bind the sink's address again");
        self.serve(listener);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.lock().unwrap().take() {
            stop.cancel();
            task.abort();
        }
    }
}

/// Decodes a request body by its `Content-Encoding` (gzip, deflate, or none).
pub fn decode_body(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    let mut out = Vec::new();
    match encoding.as_str() {
        "identity" => out.extend_from_slice(body),
        "gzip" => {
            flate2::read::MultiGzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip: {e}"))?;
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad deflate: {e}"))?;
        }
        other => return Err(format!("unsupported Content-Encoding {other}")),
    }
    Ok(out)
}
