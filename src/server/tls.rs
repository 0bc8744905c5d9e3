//! TLS on the gRPC listener, and mutual TLS when a client CA is set.
//!
//! tonic's own TLS settings are fixed for the server's life, and a
//! certificate renewed by cert-manager or an ACME client must be taken up
//! without a restart. So the server accepts TLS itself: each new
//! connection's handshake uses the rustls config of the moment, and a
//! reload (SIGHUP, or the files' contents changing, checked every
//! `--tls-reload-secs`) swaps in a new config. Connections already open
//! keep the session they made; none is dropped. A reload that fails (a
//! key that does not match the certificate, a file half-written) is
//! logged and the previous config stays in force.
//!
//! Handshakes run in their own tasks with a time limit, so a client that
//! connects and says nothing holds no other client up. The verified
//! client certificate reaches the authenticator through tonic's
//! [`tonic::transport::server::TlsConnectInfo`]; the principals file that
//! maps it to a tenant is reloaded with the certificates.

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        RootCertStore, ServerConfig,
        crypto::CryptoProvider,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
        server::WebPkiClientVerifier,
    },
    server::TlsStream,
};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};

use crate::{
    auth::certs::{CertPrincipals, SharedCertPrincipals},
    config::Config,
    library::Library,
};

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the TLS settings are read from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM, that client certificates must chain to;
    /// `None` for no client certificates.
    pub client_ca: Option<PathBuf>,
    /// Accept connections without a client certificate (they then need a
    /// bearer key); otherwise the handshake refuses them.
    pub client_optional: bool,
    /// The certificate-to-principal map (see [`crate::auth::certs`]).
    pub principals: Option<PathBuf>,
}

impl TlsFiles {
    /// The configured files, if the server runs TLS.
    pub fn from_config(config: &Config) -> Option<Self> {
        Some(Self {
            cert: config.tls_cert.clone()?,
            key: config.tls_key.clone()?,
            client_ca: config.tls_client_ca.clone(),
            client_optional: config.tls_client_optional,
            principals: config.tls_principals.clone(),
        })
    }
}

/// The files' contents, as read at one moment.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
    principals: Option<String>,
    /// Of all of them: tells whether anything changed since the last load.
    fingerprint: blake3::Hash,
}

/// The TLS settings in force, and how to reload them.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    library: Library,
    config: RwLock<Arc<ServerConfig>>,
    principals: SharedCertPrincipals,
    fingerprint: Mutex<blake3::Hash>,
}

impl Tls {
    /// Reads the files and builds the first config; the error names the
    /// file at fault.
    pub async fn load(files: TlsFiles, library: Library) -> Result<Arc<Self>, String> {
        let contents = read(&files).await?;
        let (config, map) = build(&files, &contents, &library).await?;
        let principals = SharedCertPrincipals::default();
        principals.set(map);
        Ok(Arc::new(Self {
            files,
            library,
            config: RwLock::new(Arc::new(config)),
            principals,
            fingerprint: Mutex::new(contents.fingerprint),
        }))
    }

    /// The certificate-to-principal map, kept current by reloads.
    pub fn principals(&self) -> SharedCertPrincipals {
        self.principals.clone()
    }

    /// Re-reads the files and, if they changed (or `force`), puts them in
    /// force for new connections. `Ok(true)` when a new config took over.
    pub async fn reload(&self, force: bool) -> Result<bool, String> {
        let contents = read(&self.files).await?;
        if !force && *lock(&self.fingerprint) == contents.fingerprint {
            return Ok(false);
        }
        let (config, map) = build(&self.files, &contents, &self.library).await?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        self.principals.set(map);
        *lock(&self.fingerprint) = contents.fingerprint;
        Ok(true)
    }

    /// An acceptor with the config of the moment.
    fn acceptor(&self) -> TlsAcceptor {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(Arc::clone(&config))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("reading the {what} {}: {e}", path.display()))
}

async fn read(files: &TlsFiles) -> Result<Contents, String> {
    let cert = read_file("TLS certificate", &files.cert).await?;
    let key = read_file("TLS key", &files.key).await?;
    let client_ca = match &files.client_ca {
        Some(p) => Some(read_file("client CA", p).await?),
        None => None,
    };
    let principals = match &files.principals {
        Some(p) => Some(
            String::from_utf8(read_file("principals file", p).await?)
                .map_err(|_| format!("the principals file {} is not UTF-8", p.display()))?,
        ),
        None => None,
    };
    let mut h = blake3::Hasher::new();
    for part in [
        Some(cert.as_slice()),
        Some(key.as_slice()),
        client_ca.as_deref(),
        principals.as_deref().map(str::as_bytes),
    ] {
        // Each part's length first, so that bytes moving from one file to
        // the next still change the fingerprint.
        let part = part.unwrap_or_default();
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    Ok(Contents {
        fingerprint: h.finalize(),
        cert,
        key,
        client_ca,
        principals,
    })
}

/// The rustls config and the principals map from the files' contents.
async fn build(
    files: &TlsFiles,
    contents: &Contents,
    library: &Library,
) -> Result<(ServerConfig, CertPrincipals), String> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let certs = pem_certs(&contents.cert)
        .map_err(|e| format!("the TLS certificate {}: {e}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .map_err(|e| format!("the TLS key {}: {e}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let builder = match (&contents.client_ca, &files.client_ca) {
        (Some(ca), Some(path)) => builder.with_client_cert_verifier(
            client_verifier(ca, files.client_optional, provider)
                .map_err(|e| format!("the client CA {}: {e}", path.display()))?,
        ),
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "the TLS certificate {} and key {}: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let map = match (&contents.principals, &files.principals) {
        (Some(text), Some(path)) => CertPrincipals::load(text, library)
            .await
            .map_err(|e| format!("the principals file {}: {e}", path.display()))?,
        _ => CertPrincipals::default(),
    };
    Ok((config, map))
}

/// Every certificate of a PEM file; at least one.
pub fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

/// Verifies client certificates against the CAs in `ca_pem`.
fn client_verifier(
    ca_pem: &[u8],
    optional: bool,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn tokio_rustls::rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in pem_certs(ca_pem)? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if optional {
        verifier = verifier.allow_unauthenticated();
    }
    verifier.build().map_err(|e| e.to_string())
}

/// Accepted, handshaken TLS connections on `listener`, for tonic's
/// `serve_with_incoming`. Accepting stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Tls>,
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut tcp = super::incoming(listener);
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = tcp.next() => accepted,
            };
            let stream = match accepted {
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    // Out of file descriptors, most likely: pause rather
                    // than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                None => return,
            };
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                let peer = stream.peer_addr().ok();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(?peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Reloads the TLS files on SIGHUP, and every `every` if their contents
/// changed; the future runs until aborted. The signal handler is installed
/// before this returns, so a SIGHUP sent once the server answers never
/// meets the default action (which ends the process).
pub fn watch(tls: Arc<Tls>, every: Option<Duration>) -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; TLS files reload only when they change");
            None
        }
    };
    let mut ticks = every.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    async move {
        loop {
            let hangup = async {
                #[cfg(unix)]
                if let Some(h) = hangups.as_mut() {
                    h.recv().await;
                    return;
                }
                std::future::pending::<()>().await;
            };
            let tick = async {
                match ticks.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let force = tokio::select! {
                () = hangup => true,
                () = tick => false,
            };
            match tls.reload(force).await {
                Ok(true) => tracing::info!("TLS certificates and principals reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; the previous settings stay");
                }
            }
        }
    }
}
