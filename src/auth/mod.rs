//! Who is calling: the edge that turns a request's credentials into a
//! [`Principal`] and checks the scope its RPC needs, once, before any
//! handler runs.
//!
//! [`Authenticate`] is a tower layer around every service. It reads the
//! RPC's [`rules::Rule`], authenticates the `authorization: Bearer <key>`
//! metadata through the library (which caches keys briefly) or, without
//! one, the client certificate the TLS layer verified ([`certs`]), checks
//! the scope, and puts the principal in the request's extensions, where the
//! handlers take it from ([`crate::service::principal_of`]). A call that
//! fails never reaches a handler: it is answered UNAUTHENTICATED or
//! PERMISSION_DENIED here, with the same error details as every other
//! error.

pub mod certs;
pub mod limit;
pub mod rules;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::HeaderMap;
use tonic::{
    Status,
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

use self::{
    certs::{CertNames, SharedCertPrincipals},
    limit::{Caller, RateLimiter},
    rules::Rule,
};
use crate::{
    domain::{Principal, hash_secret},
    error::{Error, Reason, Result},
    library::Library,
};

/// How calls are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every call but health and reflection needs a valid key.
    Keys,
    /// `--insecure-no-auth`: every call acts as the default tenant with
    /// every scope.
    Off,
}

/// Decides who a call is and whether it may proceed; cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    library: Library,
    mode: Mode,
    /// Per-key rate limits, when configured.
    limiter: Option<Arc<RateLimiter>>,
    /// Client certificates' principals, when the server runs mutual TLS.
    certificates: Option<SharedCertPrincipals>,
}

impl Authenticator {
    /// An authenticator over the library's keys.
    pub fn new(library: Library, mode: Mode) -> Self {
        Self {
            library,
            mode,
            limiter: None,
            certificates: None,
        }
    }

    /// Lets a call without a key act as the principal its client
    /// certificate maps to in `map`.
    pub fn with_certificates(mut self, map: SharedCertPrincipals) -> Self {
        self.certificates = Some(map);
        self
    }

    /// Limits each key to `rate` calls a second, `burst` at once.
    pub fn with_rate_limit(mut self, rate: f64, burst: f64) -> Self {
        self.limiter = Some(Arc::new(RateLimiter::new(rate, burst)));
        self
    }

    /// The principal of a call to `path` with `headers`, over a connection
    /// whose verified client certificate (DER) is `peer`: `None` for an
    /// open service, an error if the call must be refused. A key, when
    /// sent, decides; without one the certificate does.
    pub async fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
        peer: Option<&[u8]>,
    ) -> Result<Option<Principal>> {
        let rule = rules::rule_for(path);
        if rule == Rule::Open {
            return Ok(None);
        }
        let principal = match self.mode {
            Mode::Off => Principal::unauthenticated(),
            Mode::Keys if headers.contains_key(http::header::AUTHORIZATION) => {
                let hash = bearer_key(headers)?;
                self.library.authenticate(hash).await?
            }
            Mode::Keys => match self.certificate_principal(peer) {
                Some(Ok(principal)) => principal,
                // No credentials at all on a read public media answer: the
                // handler looks for a public media's owner.
                _ if matches!(rule, Rule::ScopeOrPublic(_)) => {
                    return Ok(Some(Principal::anonymous()));
                }
                Some(Err(unmapped)) => return Err(unmapped),
                None => return Err(missing()),
            },
        };
        if let Rule::Scope(scope) | Rule::ScopeOrPublic(scope) = rule {
            principal.require(scope)?;
        }
        // Keys and certificates' principals have buckets; anonymous reads
        // of public media and --insecure-no-auth callers have no identity
        // to count against.
        let caller = match principal.key {
            Some(key) => Some(Caller::Key(key)),
            None if self.mode == Mode::Keys && !principal.public_only => Some(Caller::Certificate(
                principal.tenant,
                principal.name.clone(),
            )),
            None => None,
        };
        if let (Some(limiter), Some(caller)) = (&self.limiter, caller)
            && let Err(retry_after) = limiter.take(caller, std::time::Instant::now())
        {
            return Err(Error::RateLimited {
                retry_after,
                message: format!(
                    "{:?} is over the server's rate limit; retry in {} ms",
                    principal.name,
                    retry_after.as_millis().max(1)
                ),
            });
        }
        Ok(Some(principal))
    }

    /// The principal the client certificate `peer` maps to: `None`
    /// without a certificate or a map, an error naming the certificate
    /// when no entry matches it.
    fn certificate_principal(&self, peer: Option<&[u8]>) -> Option<Result<Principal>> {
        let (map, der) = (self.certificates.as_ref()?, peer?);
        let names = CertNames::read(der)?;
        Some(
            map.get()
                .principal(&names)
                .ok_or_else(|| Error::Unauthenticated {
                    reason: Reason::CertificateUnmapped,
                    message: format!(
                        "the client certificate ({}) matches no entry of the server's principals \
                     file; send `authorization: Bearer <key>` metadata, or ask an operator to \
                     map the certificate",
                        names.describe()
                    ),
                }),
        )
    }
}

/// The answer to a call without any credentials.
fn missing() -> Error {
    Error::Unauthenticated {
        reason: Reason::CredentialsMissing,
        message: "this call needs an API key: send `authorization: Bearer <key>` metadata \
                  (grpcurl: -H \"authorization: Bearer $KEY\")"
            .to_string(),
    }
}

/// The hash of the key in `authorization: Bearer <key>`.
fn bearer_key(headers: &HeaderMap) -> Result<crate::domain::KeyHash> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(missing());
    };
    let malformed = || Error::Unauthenticated {
        reason: Reason::CredentialsMalformed,
        message: "the authorization metadata must be `Bearer <key>`, with a key as the server \
                  issued it (msk_ and 43 characters)"
            .to_string(),
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, key) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    hash_secret(key.trim()).ok_or_else(malformed)
}

/// The tower service that authorizes each call before the inner service
/// sees it.
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    auth: Authenticator,
}

impl<S> Authenticate<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, auth: Authenticator) -> Self {
        Self { inner, auth }
    }
}

/// [`Authenticate`] as a layer for the tonic server builder.
#[derive(Debug, Clone)]
pub struct AuthLayer(pub Authenticator);

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate::new(inner, self.0.clone())
    }
}

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for Authenticate<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // The clone takes the place of the service that was made ready;
        // the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            // The certificate the TLS layer verified, if any (tonic puts
            // the connection's details in every request's extensions).
            let peer = req
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(TlsConnectInfo::peer_certs);
            let leaf = peer.as_deref().and_then(|chain| chain.first());
            match auth
                .authorize(req.uri().path(), req.headers(), leaf.map(|c| c.as_ref()))
                .await
            {
                Ok(Some(principal)) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Ok(None) => inner.call(req).await,
                Err(e) => {
                    tracing::debug!(error = %e, path = req.uri().path(), "call refused");
                    Ok(Status::from(e).into_http())
                }
            }
        })
    }
}
