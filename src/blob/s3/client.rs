//! A small S3 client: the dozen calls the blob store makes, signed with
//! SigV4, over HTTP/1.1 connections kept in a pool.
//!
//! Why not a general S3 crate: the store needs `UploadPartCopy` (to join
//! a resumable upload's segments inside the store) and
//! `ListMultipartUploads` (to find the unfinished uploads of a crashed
//! replica), which `object_store` does not offer, and the AWS SDK would
//! bring a second HTTP stack and TLS library into the build. hyper, rustls
//! and the signature's HMAC are already here; the responses read are a
//! handful of flat XML documents ([`super::xml`]).
//!
//! Calls are retried on connection failures and on `429`, `500`, `502`,
//! `503` and `504` answers (S3's "slow down" among them), three attempts
//! with a growing pause: every call the store makes may be repeated
//! safely. What still fails for the store's sake (not the object's) is
//! marked [`StoreUnavailable`], which clients see as UNAVAILABLE.

use std::{
    io,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

use super::{
    sign::{Signer, UNSIGNED_PAYLOAD, amz_date, uri_encode},
    xml,
};
use crate::error::StoreUnavailable;

/// Attempts of one call.
const ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each later one.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Idle connections kept per client.
const MAX_IDLE: usize = 32;

/// Where the bucket is and how to reach it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http` or `https`.
    pub https: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The bucket.
    pub bucket: String,
    /// `/{bucket}/{key}` (MinIO, Garage, Ceph) rather than
    /// `{bucket}.{host}/{key}` (AWS's default).
    pub path_style: bool,
}

/// An answer read whole.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// The S3 client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    signer: Signer,
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("signer", &self.inner.signer)
            .finish_non_exhaustive()
    }
}

/// A request to make.
#[derive(Debug, Default)]
pub struct Call<'a> {
    /// Object key; empty for a call on the bucket.
    pub key: &'a str,
    /// Query parameters (decoded).
    pub query: Vec<(String, String)>,
    /// Extra headers (lowercase names); `x-amz-*` ones are signed.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
}

impl<'a> Call<'a> {
    /// A call on `key` with nothing else.
    pub fn on(key: &'a str) -> Self {
        Self {
            key,
            ..Self::default()
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }
}

impl Client {
    /// A client of `endpoint` signing with `signer`; TLS with `roots` for
    /// https endpoints; every call given up after `timeout`.
    pub fn new(
        endpoint: Endpoint,
        signer: Signer,
        roots: rustls::RootCertStore,
        timeout: Duration,
    ) -> io::Result<Self> {
        let tls = if endpoint.https {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(io::Error::other)?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                signer,
                tls,
                idle: Mutex::new(Vec::new()),
                timeout,
            }),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.endpoint.bucket
    }

    /// The request path of `key`.
    fn path(&self, key: &str) -> String {
        let e = &self.inner.endpoint;
        match (e.path_style, key.is_empty()) {
            (true, true) => format!("/{}", uri_encode(&e.bucket, true)),
            (true, false) => format!(
                "/{}/{}",
                uri_encode(&e.bucket, true),
                uri_encode(key, false)
            ),
            (false, _) => format!("/{}", uri_encode(key, false)),
        }
    }

    /// The `Host` header.
    fn host(&self) -> String {
        let e = &self.inner.endpoint;
        let default_port = if e.https { 443 } else { 80 };
        let host = if e.path_style {
            e.host.clone()
        } else {
            format!("{}.{}", e.bucket, e.host)
        };
        if e.port == default_port {
            host
        } else {
            format!("{host}:{}", e.port)
        }
    }

    /// Makes `call` with `method`; answers other than 2xx are errors
    /// (`NotFound` for 404). Retries as the module says.
    pub async fn send(&self, method: Method, call: &Call<'_>) -> io::Result<Answer> {
        let mut pause = RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            let res = tokio::time::timeout(self.inner.timeout, self.send_once(&method, call))
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", self.inner.timeout),
                    ))
                });
            let retry = match &res {
                Ok(a) => matches!(a.status.as_u16(), 429 | 500 | 502 | 503 | 504),
                Err(_) => true,
            };
            if !retry || attempt == ATTEMPTS {
                // A call that could not be made (refused, reset, timed
                // out) after every attempt: the store is unreachable.
                let answer = res.map_err(|e| {
                    let cause = StoreUnavailable::of(&e)
                        .map_or_else(|| "ConnectionFailed".to_string(), |m| m.cause);
                    StoreUnavailable::error(
                        e.kind(),
                        cause,
                        format!("S3 {method} {}: {e}", self.describe(call.key)),
                    )
                })?;
                return self.check(&method, call.key, answer);
            }
            tracing::debug!(%method, key = call.key, attempt, "retrying an S3 call");
            tokio::time::sleep(pause).await;
            pause *= 2;
            attempt += 1;
        }
    }

    /// `bucket/key`, for messages.
    fn describe(&self, key: &str) -> String {
        format!("{}/{key}", self.inner.endpoint.bucket)
    }

    /// An answer as a result: 2xx passes; 404 is `NotFound` (a missing
    /// object); the rest are errors naming S3's code and message. Answers
    /// that say the store, not the object, is at fault (5xx, throttling,
    /// refused credentials, a missing bucket) carry the
    /// [`StoreUnavailable`] mark.
    fn check(&self, method: &Method, key: &str, a: Answer) -> io::Result<Answer> {
        if a.status.is_success() {
            return Ok(a);
        }
        let text = String::from_utf8_lossy(&a.body);
        let code = xml::first(&text, "Code").unwrap_or_default();
        let message = xml::first(&text, "Message").unwrap_or_default();
        let text = format!(
            "S3 {method} {}: {} {code} {message}",
            self.describe(key),
            a.status
        );
        let store_fault = a.status.is_server_error()
            || matches!(
                a.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
            )
            || code == "NoSuchBucket"
            || code == "SlowDown";
        let kind = match a.status {
            StatusCode::NOT_FOUND if code != "NoSuchBucket" => io::ErrorKind::NotFound,
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        if store_fault {
            let cause = if code.is_empty() {
                a.status.as_u16().to_string()
            } else {
                code.to_string()
            };
            return Err(StoreUnavailable::error(kind, cause, text));
        }
        Err(io::Error::new(kind, text))
    }

    async fn send_once(&self, method: &Method, call: &Call<'_>) -> io::Result<Answer> {
        let path = self.path(call.key);
        let host = self.host();
        let date = amz_date(SystemTime::now());
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host.clone()),
            ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
            ("x-amz-date".into(), date.clone()),
        ];
        for (k, v) in &call.headers {
            if k.starts_with("x-amz-") {
                signed.push(((*k).to_string(), v.clone()));
            }
        }
        let auth = self.inner.signer.authorization(
            method.as_str(),
            &path,
            &call.query,
            &signed,
            &date,
            UNSIGNED_PAYLOAD,
        );
        let query: Vec<String> = call
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect();
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(http::header::HOST, host)
            .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
            .header("x-amz-date", date)
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_LENGTH, call.body.len());
        for (k, v) in &call.headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(call.body.clone()))
            .map_err(io::Error::other)?;
        let mut sender = self.connection().await?;
        let resp = sender.send_request(req).await.map_err(io::Error::other)?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        // A connection whose answer was read whole can carry the next call.
        if !sender.is_closed() {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        }
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<Full<Bytes>>>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle pooled connection, or a new one.
    async fn connection(&self) -> io::Result<SendRequest<Full<Bytes>>> {
        loop {
            let Some(mut sender) = self.idle().pop() else {
                break;
            };
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let e = &self.inner.endpoint;
        let tcp = tokio::net::TcpStream::connect((e.host.as_str(), e.port)).await?;
        tcp.set_nodelay(true)?;
        match &self.inner.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(e.host.clone())
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                    .connect(name, tcp)
                    .await?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }
}

/// An HTTP/1.1 connection over `io`, driven by a task of its own.
async fn handshake<T>(io: T) -> io::Result<SendRequest<Full<Bytes>>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "an S3 connection ended");
        }
    });
    Ok(sender)
}
