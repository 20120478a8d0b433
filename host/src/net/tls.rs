//! The federation listener: TLS (rustls) in front of the federation router, one hyper HTTP/1.1
//! connection per accepted socket. Its certificate is the configured one or, on a loopback
//! address with none configured, a self-signed one made in the data dir on first start (the
//! listen IP and `localhost` as names), so that two servers on one machine federate with no
//! set-up. Connection caps are the client listener's business (see `net::serve`); the peers
//! here are servers, bounded by the handshake and header timeouts.

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Config;

/// A TLS handshake must be done within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error(
        "the federation listener on {0} needs [federation] tls_certificate and \
         tls_private_key (a self-signed certificate is made only on a loopback address)"
    )]
    NoCertificate(std::net::SocketAddr),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("the certificate and key do not go together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate and key files the listener uses: the configured ones, else (on loopback)
/// the self-signed pair in the data dir, made when missing.
fn certificate_files(config: &Config) -> Result<(PathBuf, PathBuf), TlsError> {
    let f = &config.federation;
    if let (Some(cert), Some(key)) = (&f.tls_certificate, &f.tls_private_key) {
        return Ok((cert.clone(), key.clone()));
    }
    if !f.listen.ip().is_loopback() {
        return Err(TlsError::NoCertificate(f.listen));
    }
    let cert = config.data_dir.join("federation.crt");
    let key = config.data_dir.join("federation.key");
    if !cert.exists() || !key.exists() {
        let names = vec![f.listen.ip().to_string(), "localhost".to_string()];
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { what, path, source }
        };
        // The key first: a crash between the two leaves no certificate without its key.
        let _ = std::fs::remove_file(&key);
        crate::service::keys::signing::write_private_file(
            &key,
            made.signing_key.serialize_pem().as_bytes(),
        )
        .map_err(io("cannot write", &key))?;
        std::fs::write(&cert, made.cert.pem()).map_err(io("cannot write", &cert))?;
        tracing::info!(path = %cert.display(), "made a self-signed certificate for the federation listener");
    }
    Ok((cert, key))
}

/// The rustls configuration of the federation listener.
pub(crate) fn acceptor(config: &Config) -> Result<TlsAcceptor, TlsError> {
    let (cert_path, key_path) = certificate_files(config)?;
    let pem = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustls::pki_types::pem::Error| TlsError::Pem {
            path,
            why: e.to_string(),
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(pem(&cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(&cert_path))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(pem(&key_path))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Serves `router` over TLS on `listener` until `stop` turns true, then waits (a while) for
/// the requests in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            acceptor.clone(),
            router.clone(),
            header_timeout,
            stop.clone(),
        ));
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        connections.abort_all();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        router.clone().oneshot(req.map(Body::new))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(tls), service);
    let mut conn = pin!(conn);
    let stopping = tokio::select! {
        _ = conn.as_mut() => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// A future that resolves when `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
