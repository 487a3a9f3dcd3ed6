//! Serving an axum app on a TCP listener with the bounds `axum::serve` lacks: a
//! header-read timeout (a client that sends its request head slowly, or nothing
//! at all, is dropped), the same bound on a TLS handshake, a cap on concurrent
//! connections, a lingering close (an early 413 is not lost to a reset), and
//! optional TLS (rustls with ring, the process's one crypto
//! provider; certificate chain and key from PEM files). The reply listener and
//! `/metrics` both serve through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

/// How long a client may take to send a request head (and, with TLS, to finish
/// the handshake before it): enough for a real client on a slow link, short
/// enough that idle or dribbling connections cannot pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue. Both
/// listeners see a handful of requests a minute.
pub const MAX_CONNECTIONS: usize = 64;

/// The bounds a listener serves under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Where a listener's certificate chain and private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate and key could not be made into a TLS config. Never carries
/// key material, only paths and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a PEM certificate chain: {why}", path.display())]
    BadCertificate { path: PathBuf, why: String },
    #[error("{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: not a PEM private key: {why}", path.display())]
    BadKey { path: PathBuf, why: String },
    #[error("certificate {} and key {} cannot be used together: {why}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads and checks the certificate chain and key: a server config for TLS 1.2
/// and 1.3 with ring, HTTP/1.1 by ALPN. A key that does not belong to the
/// certificate is refused here, at startup, not at the first handshake.
pub fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(&files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: files.cert.clone(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        other => TlsError::BadKey {
            path: files.key.clone(),
            why: other.to_string(),
        },
    })?;
    let unusable = |e: rustls::Error| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        why: e.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(unusable)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(unusable)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` over HTTP/1.1 (over TLS when `tls` is given) under
/// `limits`, until the task is dropped. Errors on one connection end that
/// connection only.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // Never closed, so acquiring only waits for a connection to end.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: wait
                // a little rather than spin.
                debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => connection(stream, app, limits).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => connection(tls, app, limits).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// One connection: hyper's HTTP/1.1 server with the header-read timeout, which
/// runs from the moment it waits for a request head (the first one, and each
/// one after a keep-alive response), so a silent client is dropped too.
async fn connection<S>(io: S, app: Router, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .without_shutdown()
        .await;
    match result {
        Ok(parts) => linger(parts.io.into_inner()).await,
        Err(e) => debug!(error = %e, "connection ended"),
    }
}

/// At most this long, and this many bytes, are read and dropped after the last
/// response before the socket is closed.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// Closes a finished connection gently. A response sent before the request
/// body was read (413 for an oversized body) is otherwise lost: closing a
/// socket with unread bytes makes the kernel send RST, which can discard the
/// response before the client reads it. So the write side is shut first and
/// what the client still sends is read and dropped for a bounded moment, as
/// web servers' "lingering close" does.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if io.shutdown().await.is_err() {
        return;
    }
    let mut buf = [0u8; 8192];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn app() -> Router {
        Router::new()
            .route("/ping", axum::routing::get(|| async { "pong" }))
            .route(
                "/small",
                axum::routing::post(|b: axum::body::Bytes| async move { b.len().to_string() })
                    .layer(axum::extract::DefaultBodyLimit::max(1024)),
            )
    }

    /// A self-signed certificate for 127.0.0.1 made by Debian's `openssl` CLI
    /// (only the tool: nothing here links OpenSSL).
    fn self_signed(dir: &Path) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=splitguard test",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                // A leaf, not a CA (webpki refuses a CA as the server's own).
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
                "-keyout",
            ])
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert)
            .output()
            .expect("the openssl CLI runs (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        files
    }

    async fn start(tls: Option<Arc<rustls::ServerConfig>>, limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, app(), tls, limits));
        addr
    }

    fn short() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            max_connections: 4,
        }
    }

    /// Reads until the server closes the connection; how long that took.
    async fn time_to_close(mut s: tokio::net::TcpStream, began: Instant) -> Duration {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the server kept the connection open 15 s");
        began.elapsed()
    }

    #[tokio::test]
    async fn silent_and_slow_header_clients_are_cut_off() {
        let addr = start(None, short()).await;

        // Connects and says nothing.
        let began = Instant::now();
        let silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let took = time_to_close(silent, began).await;
        assert!(took < Duration::from_secs(4), "silent client held {took:?}");

        // Sends a head line by line, a line every 400 ms, never the blank line.
        let began = Instant::now();
        let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let dribble = async {
            for line in [
                "GET /ping HTTP/1.1\r\n",
                "Host: x\r\n",
                "X-A: 1\r\n",
                "X-B: 2\r\n",
            ]
            .iter()
            .cycle()
            .take(30)
            {
                if slow.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(15), dribble)
            .await
            .expect("dribbling is bounded");
        let took = time_to_close(slow, began).await;
        assert!(took < Duration::from_secs(4), "slow client held {took:?}");

        // A prompt client is served as before.
        let mut ok = tokio::net::TcpStream::connect(addr).await.expect("connect");
        ok.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), ok.read_to_string(&mut answer))
            .await
            .expect("answered")
            .expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("pong"),
            "{answer}"
        );
    }

    /// The 413 for an oversized body reaches a client that sends the whole body
    /// before reading (as urllib does): the server drains what it will not
    /// use instead of closing over it, which would reset the connection under
    /// the client's feet. A small send buffer keeps the body in flight.
    #[tokio::test]
    async fn an_early_413_is_read_by_a_client_still_sending() {
        let addr = start(None, short()).await;
        for _ in 0..5 {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_send_buffer_size(4096).expect("SO_SNDBUF");
            let mut s = socket.connect(addr).await.expect("connect");
            let body = vec![b'x'; 200 * 1024];
            let head = format!(
                "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.expect("head");
            tokio::time::timeout(Duration::from_secs(5), s.write_all(&body))
                .await
                .expect("the body is taken in time")
                .expect("the whole body is taken, not reset");
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
        }
    }

    #[tokio::test]
    async fn a_silent_tls_client_is_cut_off_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = load_tls(&self_signed(dir.path())).expect("loads");
        let addr = start(Some(tls), short()).await;
        let began = Instant::now();
        let silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let took = time_to_close(silent, began).await;
        assert!(
            took < Duration::from_secs(4),
            "silent TLS client held {took:?}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(2),
            max_connections: 1,
        };
        let addr = start(None, limits).await;
        let _hog = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let began = Instant::now();
        let mut next = tokio::net::TcpStream::connect(addr).await.expect("queued");
        next.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), next.read_to_string(&mut answer))
            .await
            .expect("answered once the hog was dropped")
            .expect("read");
        assert!(answer.ends_with("pong"), "{answer}");
        // Served only after the silent one was cut off at its bound.
        assert!(
            began.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn https_round_trip_with_the_test_certificate_as_the_only_root() {
        crate::io::channels::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let files = self_signed(dir.path());
        let addr = start(Some(load_tls(&files).expect("loads")), Limits::default()).await;
        let root = reqwest::Certificate::from_pem(&std::fs::read(&files.cert).expect("cert"))
            .expect("PEM");
        let client = reqwest::Client::builder()
            .tls_certs_only([root])
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let resp = client
            .get(format!("https://{addr}/ping"))
            .send()
            .await
            .expect("HTTPS request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "pong");
        // Plain HTTP to the TLS port gets no answer.
        let plain = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        assert!(
            plain
                .get(format!("http://{addr}/ping"))
                .send()
                .await
                .is_err()
        );
    }

    #[test]
    fn bad_tls_files_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = self_signed(dir.path());
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: good.key.clone(),
        };
        let e = load_tls(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem: cannot read"), "{e}");

        let swapped = TlsFiles {
            cert: good.key.clone(),
            key: good.cert.clone(),
        };
        let e = load_tls(&swapped).unwrap_err().to_string();
        assert!(e.contains("key.pem: no PEM certificate"), "{e}");

        let other = dir.path().join("other");
        std::fs::create_dir(&other).expect("dir");
        let other = self_signed(&other);
        let mismatched = TlsFiles {
            cert: good.cert.clone(),
            key: other.key.clone(),
        };
        let e = load_tls(&mismatched).unwrap_err().to_string();
        assert!(e.contains("cannot be used together"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem").expect("write");
        let e = load_tls(&TlsFiles {
            cert: good.cert.clone(),
            key: garbage,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("garbage.pem: no PEM private key"), "{e}");
    }
}
