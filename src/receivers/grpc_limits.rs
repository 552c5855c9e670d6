//! A connection limit for the gRPC listener: tonic serves whatever its incoming stream
//! yields, so connections past `max_connections` are closed before tonic sees them and
//! counted in `vellum_listener_refused_connections_total{listener}`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// `incoming` with at most `max` connections open at once.
pub fn limit_connections<S>(
    listener: &str,
    incoming: S,
    max: usize,
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
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
