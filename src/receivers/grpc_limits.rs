//! A connection limit and a handshake deadline for the gRPC listener: tonic serves
//! whatever its incoming stream yields, so connections past `max_connections` are closed
//! before tonic sees them (counted in `vellum_listener_refused_connections_total`), and a
//! connection whose HTTP/2 preface is not whole within `read_header_timeout` of its
//! accept is cut (`vellum_listener_timeouts_total{phase="header"}`). Once the preface is
//! in, keepalive pings find dead peers and the request timeout bounds slow ones.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The client's HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE_BYTES: usize = 24;

/// `incoming` with at most `max` connections open at once, each of which must send its
/// preface within `handshake`.
pub fn limit_connections<S>(
    listener: &str,
    incoming: S,
    max: usize,
    handshake: Duration,
) -> impl Stream<Item = std::io::Result<Limited>> + Send + 'static
where
    S: Stream<Item = std::io::Result<TcpStream>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    let listener = listener.to_string();
    incoming.filter_map(move |accepted| {
        let slot = slots.clone().try_acquire_owned();
        let listener = listener.clone();
        async move {
            match (accepted, slot) {
                (Ok(stream), Ok(slot)) => Some(Ok(Limited {
                    stream,
                    _slot: slot,
                    listener,
                    received: 0,
                    handshake: Box::pin(tokio::time::sleep(handshake)),
                })),
                (Ok(_), Err(_)) => {
                    metrics::counter!("vellum_listener_refused_connections_total", "listener" => listener)
                        .increment(1);
                    None
                }
                (Err(e), _) => Some(Err(e)),
            }
        }
    })
}

/// A connection holding one of the listener's slots until it closes.
pub struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    listener: String,
    received: usize,
    handshake: Pin<Box<Sleep>>,
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.received += buf.filled().len() - before;
                Poll::Ready(result)
            }
            Poll::Pending if self.received >= PREFACE_BYTES => Poll::Pending,
            Poll::Pending => {
                ready!(self.handshake.as_mut().poll(cx));
                metrics::counter!("vellum_listener_timeouts_total", "listener" => self.listener.clone(), "phase" => "header")
                    .increment(1);
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the HTTP/2 preface did not arrive within read_header_timeout",
                )))
            }
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
