//! Networking shared by every listener: binding with a named error, and serving HTTP/1
//! under the limits a hostile client meets (`listener`), and TLS (`tls`).

pub mod listener;
pub mod tls;

/// Binds a TCP listener, naming the endpoint in the error.
pub async fn bind(component: &str, endpoint: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(endpoint).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("{component}: cannot listen on {endpoint}: {e}"),
        )
    })
}
