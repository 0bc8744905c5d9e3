//! Downloads for imports: an HTTP/1.1 client that connects only where the
//! guard allows, follows redirects by checking every hop, and bounds
//! redirects and time.
//!
//! The client resolves a source's host itself, checks every address
//! ([`guard`]), and connects to the first allowed one; the request then
//! goes over that connection (TLS with the host name for https), so no
//! second resolution can swap the address. Bytes are handed on as a
//! stream of upload parts, which the library stores through the same
//! path as an upload: the size limits, the content policy and the quota
//! apply as they do to an upload, and a download cut short stores nothing.

pub mod guard;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_rustls::rustls;
use url::Url;

pub use self::guard::{Allowlist, Ports};
use crate::{
    error::{Error, Reason, Result},
    library::UploadPart,
};

/// Default redirects followed at most.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
/// Default time a whole download may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time to connect (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 4096;
/// Sent as `User-Agent`, so source operators can tell who fetches.
const USER_AGENT: &str = concat!("mediastore/", env!("CARGO_PKG_VERSION"), " (import)");

/// How imports may reach their sources.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Hosts and ranges opened despite the address rules.
    pub allow: Allowlist,
    /// Ports a source may be on.
    pub ports: Ports,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Time the whole download may take, connection included.
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Certificates of private CAs trusted besides the public roots (DER).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            allow: Allowlist::default(),
            ports: Ports::default(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_roots: Vec::new(),
        }
    }
}

/// The import client; cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    settings: Arc<FetchSettings>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A source that answered 200 and is sending its bytes.
#[derive(Debug)]
pub struct Download {
    /// Where the bytes come from, after redirects.
    pub url: Url,
    /// `Content-Length`, if sent.
    pub length: Option<u64>,
    /// The `Content-Type` essence, lower case, if sent.
    pub content_type: Option<String>,
    body: hyper::body::Incoming,
    deadline: Instant,
}

impl Fetcher {
    /// A client with `settings`, trusting the public roots and any extra
    /// ones.
    pub fn new(settings: FetchSettings) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &settings.extra_roots {
            roots.add(cert.clone()).map_err(|e| {
                Error::invalid(
                    "import_ca_file",
                    format!("a CA certificate is unusable: {e}"),
                )
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid("import_ca_file", e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            settings: Arc::new(settings),
            tls: Arc::new(tls),
        })
    }

    /// Checks a source URL a client sent in `field` as far as can be done
    /// without resolving it: http or https, an allowed port, and, for an
    /// address written in the URL, an allowed address.
    pub fn check_url(&self, field: &str, s: &str) -> Result<Url> {
        if s.is_empty() {
            return Err(Error::required(field, "the URL to import from is required"));
        }
        if s.len() > MAX_URL_BYTES {
            return Err(Error::invalid(
                field,
                format!("the URL is {} bytes; at most {MAX_URL_BYTES}", s.len()),
            ));
        }
        let url = Url::parse(s).map_err(|e| {
            Error::invalid(
                field,
                format!(
                    "{:?} is not an absolute URL: {e}",
                    crate::domain::truncate_for_message(s)
                ),
            )
        })?;
        self.check_target(&url).map_err(|m| refused(field, m))?;
        Ok(url)
    }

    /// Scheme, port and (for a literal address) the address.
    fn check_target(&self, url: &Url) -> std::result::Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "only http and https sources can be imported, not {}:",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a source URL may not carry credentials".to_string());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.settings.ports.allows(port) {
            return Err(format!(
                "port {port} is not among the ports imports may use (the operator sets them with --import-ports)"
            ));
        }
        match url.host() {
            None => Err("the URL has no host".to_string()),
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip), None),
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip), None),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// Whether the source may be at `ip` (reached through `host`, if a
    /// name).
    fn check_address(&self, ip: IpAddr, host: Option<&str>) -> std::result::Result<(), String> {
        if self.settings.allow.allows_ip(ip)
            || host.is_some_and(|h| self.settings.allow.allows_host(h))
        {
            return Ok(());
        }
        match guard::classify(ip) {
            None => Ok(()),
            Some(class) => Err(match host {
                Some(h) => format!("{h} resolves to {ip}, {class}; imports may not reach it"),
                None => format!("{ip} is {class}; imports may not reach it"),
            }),
        }
    }

    /// Requests `url`, following redirects (each hop checked), until a
    /// source answers 200.
    pub async fn open(&self, url: Url) -> Result<Download> {
        let deadline = Instant::now() + self.settings.timeout;
        let mut url = url;
        for hop in 0..=self.settings.max_redirects {
            self.check_target(&url)
                .map_err(|m| refused("source_url", m))?;
            let response = tokio::time::timeout_at(deadline, self.request(&url))
                .await
                .map_err(|_| unavailable(&url, "timed out"))??;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(hyper::header::LOCATION)
            {
                if hop == self.settings.max_redirects {
                    return Err(failed(
                        &url,
                        &format!("more than {} redirects", self.settings.max_redirects),
                    ));
                }
                let location = location
                    .to_str()
                    .ok()
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| failed(&url, "a redirect to a malformed location"))?;
                url = location;
                continue;
            }
            if status == hyper::StatusCode::OK {
                let header = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                        .map(str::to_string)
                };
                let length = header(hyper::header::CONTENT_LENGTH).and_then(|l| l.parse().ok());
                let content_type = header(hyper::header::CONTENT_TYPE).map(|t| {
                    t.split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase()
                });
                return Ok(Download {
                    url,
                    length,
                    content_type,
                    body: response.into_body(),
                    deadline,
                });
            }
            let why = format!("it answered HTTP {status}");
            // Overload and server trouble may pass; a refusal will not.
            return Err(
                if status.is_server_error() || status == hyper::StatusCode::TOO_MANY_REQUESTS {
                    unavailable(&url, &why)
                } else {
                    failed(&url, &why)
                },
            );
        }
        Err(failed(&url, "too many redirects"))
    }

    /// One GET of `url` on a connection of its own.
    async fn request(&self, url: &Url) -> Result<hyper::Response<hyper::body::Incoming>> {
        let host = url
            .host_str()
            .ok_or_else(|| failed(url, "the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = self.resolve(url, &host, port).await?;
        let tcp = tokio::time::timeout(
            self.settings.connect_timeout,
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| unavailable(url, "connecting timed out"))?
        .map_err(|e| unavailable(url, &format!("cannot connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::ACCEPT, "*/*")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| failed(url, &format!("cannot make the request: {e}")))?;
        if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| failed(url, "the host is not a valid TLS server name"))?;
            let tls = tokio::time::timeout(
                self.settings.connect_timeout,
                tokio_rustls::TlsConnector::from(Arc::clone(&self.tls)).connect(name, tcp),
            )
            .await
            .map_err(|_| unavailable(url, "the TLS handshake timed out"))?
            .map_err(|e| failed(url, &format!("the TLS handshake failed: {e}")))?;
            send(url, TokioIo::new(tls), request).await
        } else {
            send(url, TokioIo::new(tcp), request).await
        }
    }

    /// The address to connect to: `host`'s first allowed address.
    async fn resolve(&self, url: &Url, host: &str, port: u16) -> Result<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_address(ip, None)
                .map_err(|m| refused("source_url", m))?;
            return Ok(SocketAddr::new(ip, port));
        }
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            self.settings.connect_timeout,
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| unavailable(url, "resolving its host timed out"))?
        .map_err(|e| unavailable(url, &format!("cannot resolve {host}: {e}")))?
        .collect();
        // Every address must pass: a name with one internal address is
        // refused even if another is public, so that which one a
        // connection would take never decides.
        for a in &addrs {
            self.check_address(a.ip(), Some(host))
                .map_err(|m| refused("source_url", m))?;
        }
        addrs
            .first()
            .copied()
            .ok_or_else(|| unavailable(url, &format!("{host} has no address")))
    }
}

/// Sends `request` over `io` and waits for the answer's head.
async fn send<I>(
    url: &Url,
    io: I,
    request: hyper::Request<http_body_util::Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| unavailable(url, &format!("the connection failed: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(url, &format!("the request failed: {e}")))
}

impl Download {
    /// The body as upload parts, the last one finishing the upload, each
    /// within the download's deadline.
    pub fn into_parts(self) -> impl Stream<Item = Result<UploadPart>> + Send + Unpin {
        let url = self.url;
        let deadline = self.deadline;
        Box::pin(futures_util::stream::unfold(Some(self.body), move |body| {
            let url = url.clone();
            async move {
                let mut body = body?;
                loop {
                    let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                        Err(_) => {
                            return Some((Err(unavailable(&url, "the download timed out")), None));
                        }
                        Ok(None) => {
                            let last = UploadPart {
                                data: Bytes::new(),
                                finish: true,
                            };
                            return Some((Ok(last), None));
                        }
                        Ok(Some(Err(e))) => {
                            return Some((
                                Err(unavailable(&url, &format!("the download broke: {e}"))),
                                None,
                            ));
                        }
                        Ok(Some(Ok(frame))) => frame,
                    };
                    if let Ok(data) = frame.into_data() {
                        let part = UploadPart {
                            data,
                            finish: false,
                        };
                        return Some((Ok(part), Some(body)));
                    }
                    // Trailers: nothing to store.
                }
            }
        }))
    }
}

/// INVALID_ARGUMENT (`SOURCE_NOT_ALLOWED`) on `field`.
fn refused(field: &str, message: String) -> Error {
    Error::bad(Reason::SourceNotAllowed, field, message)
}

/// FAILED_PRECONDITION (`SOURCE_FAILED`): the source refused, in a way a
/// retry will not change.
fn failed(url: &Url, why: &str) -> Error {
    Error::precondition(
        Reason::SourceFailed,
        format!("importing {url} failed: {why}"),
    )
}

/// UNAVAILABLE (`SOURCE_UNAVAILABLE`): the source could not be reached or
/// was overloaded; a retry may work.
fn unavailable(url: &Url, why: &str) -> Error {
    Error::Unavailable {
        reason: Reason::SourceUnavailable,
        message: format!("importing {url} failed: {why}"),
    }
}
