//! Sinks behind TLS for the exporters' client TLS tests: a CA and its certificates made
//! here with rcgen, and any axum router served over rustls, optionally requiring a
//! client certificate from a given CA (mTLS). The sink keeps what each handshake
//! showed: the client certificate it got, or why the handshake failed.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// A certificate authority whose files are on disk.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub cert_file: PathBuf,
}

/// A certificate and its key, on disk and in memory.
pub struct Leaf {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let cert_file = dir.join(format!("{name}.pem"));
        std::fs::write(&cert_file, issuer.pem()).unwrap();
        Ca { issuer, cert_file }
    }

    /// A certificate for `names` (DNS names or IP addresses), its subject `name`.
    pub fn issue(&self, dir: &Path, name: &str, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Leaf {
            cert_file,
            key_file,
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

/// What the sink saw of each TLS handshake.
#[derive(Default)]
pub struct Handshakes {
    /// The client certificate of each connection that completed (empty without one).
    pub clients: Mutex<Vec<Vec<u8>>>,
    /// Why each failed handshake failed.
    pub failed: Mutex<Vec<String>>,
}

pub struct TlsSink {
    pub addr: SocketAddr,
    pub handshakes: Arc<Handshakes>,
}

/// The rustls server configuration of a sink with `server`'s certificate, requiring a
/// client certificate from `client_ca` when given.
pub fn server_config(
    server: &Leaf,
    client_ca: Option<&Ca>,
    alpn: &[&[u8]],
) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der.clone()));
    let mut config = builder
        .with_single_cert(vec![server.der.clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Serves `app` over TLS on a loopback port from the runtime `rt`.
pub fn serve(rt: &Handle, app: Router, server: &Leaf, client_ca: Option<&Ca>) -> TlsSink {
    let (sink, accepted) = listen(rt, server_config(server, client_ca, &[b"http/1.1"]));
    let addr = sink.addr;
    rt.spawn(async move {
        let _ = axum::serve(Handshaken { accepted, addr }, app).await;
    });
    sink
}

/// Serves `app` over TLS 1.2 only, without asking for a client certificate.
pub fn serve_tls12_only(rt: &Handle, app: Router, server: &Leaf) -> TlsSink {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server.der.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (sink, accepted) = listen(rt, config);
    let addr = sink.addr;
    rt.spawn(async move {
        let _ = axum::serve(Handshaken { accepted, addr }, app).await;
    });
    sink
}

/// A loopback TLS listener with `config`: the connections whose handshake completed.
pub fn listen(
    rt: &Handle,
    config: rustls::ServerConfig,
) -> (TlsSink, mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>) {
    listen_on(rt, config, 0)
}

/// As [`listen`], on loopback port `port` (0: any).
pub fn listen_on(
    rt: &Handle,
    config: rustls::ServerConfig,
    port: u16,
) -> (TlsSink, mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>) {
    let tcp = rt
        .block_on(TcpListener::bind(("127.0.0.1", port)))
        .expect("bind the sink");
    let addr = tcp.local_addr().unwrap();
    let handshakes = Arc::new(Handshakes::default());
    let (ready, accepted) = mpsc::channel(64);
    rt.spawn(accept_loop(
        tcp,
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        handshakes.clone(),
        ready,
    ));
    (TlsSink { addr, handshakes }, accepted)
}

/// Accepts TCP connections and runs each handshake on its own task, so that a client
/// that stalls holds up no other.
async fn accept_loop(
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: Arc<Handshakes>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    while let Ok((stream, peer)) = tcp.accept().await {
        let (acceptor, handshakes, ready) = (acceptor.clone(), handshakes.clone(), ready.clone());
        tokio::spawn(async move {
            match acceptor.accept(stream).await {
                Ok(tls) => {
                    let client = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.to_vec())
                        .unwrap_or_default();
                    handshakes.clients.lock().unwrap().push(client);
                    let _ = ready.send((tls, peer)).await;
                }
                Err(e) => handshakes.failed.lock().unwrap().push(e.to_string()),
            }
        });
    }
}

/// The connections whose handshake completed, as axum's listener.
struct Handshaken {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for Handshaken {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept loop is gone: nothing will come any more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
