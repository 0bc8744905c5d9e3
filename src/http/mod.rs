//! The HTTP edge: serves media and renditions to browsers and CDNs at the
//! URLs the library makes (`/image/{width}x{height}/{media_id}`, see
//! [`crate::library::UrlRequest`]), with HTTP's caching and range rules.
//!
//! Like the gRPC services it only translates: the library says what a URL
//! serves and who may have it ([`Library::resolve_url`]: the signature,
//! the media's publicity, GetRendition's limits, renditions made if need
//! be, small answers kept in memory briefly), and opens the bytes, which
//! stream from the blob store in bounded chunks ([`crate::blob::stream`]). The rules of
//! conditional and range requests are in [`preconditions`], those of
//! `Content-Disposition` in [`disposition`].

pub mod disposition;
mod media;
pub mod preconditions;
pub mod scrape;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    middleware::Next,
    response::Response,
    routing::get,
};
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::{
    library::Library,
    metrics::{CountedBody, HttpLabels, Metrics},
};

/// Which origins may read answers from scripts (CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// None: `<img>` and `<video>` need no CORS, `fetch` gets no access.
    Off,
    /// Any origin (`*`): fine for public media; signed URLs stay secret
    /// only as long as their holders keep them so.
    Any,
    /// These origins (`scheme://host[:port]`), exactly.
    Origins(Vec<String>),
}

impl Cors {
    /// Reads `--http-cors-origins`: unset or empty for none, `*` for any,
    /// else a comma-separated list.
    pub fn parse(value: Option<&str>) -> Self {
        let origins: Vec<String> = value
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.iter().any(|o| o == "*") {
            Self::Any
        } else if origins.is_empty() {
            Self::Off
        } else {
            Self::Origins(origins)
        }
    }
}

/// What every request's handler shares.
#[derive(Debug, Clone)]
struct Http {
    library: Library,
    cors: Cors,
}

/// The routes: media URLs (GET, HEAD and CORS preflights); anything else
/// is 404.
pub fn router(library: Library, cors: Cors) -> Router {
    let metrics = Arc::clone(library.metrics());
    Router::new()
        // `{*key}`: a slot's or code's key has segments of its own
        // (`s/{tenant}/{resource}/{key}`); the library reads the path.
        .route(
            "/image/{size}/{*key}",
            get(media::get).options(media::preflight),
        )
        .layer(axum::middleware::from_fn(span))
        .layer(axum::middleware::from_fn_with_state(metrics, count))
        .with_state(Http { library, cors })
}

/// Counts each response by status, and its body's bytes as they are
/// sent (a download cut short counts what left).
async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    metrics
        .http
        .responses
        .get_or_create(&HttpLabels {
            code: response.status().as_u16(),
        })
        .inc();
    let sent = metrics.http.sent_bytes.clone();
    response.map(|body| axum::body::Body::new(CountedBody::new(body, sent)))
}

/// Runs each request in an `http` span, the gRPC `rpc` span's sibling, so
/// logs of both edges read alike; the handler records the media id.
async fn span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        media_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    async move {
        let response = next.run(request).await;
        tracing::Span::current().record("status", response.status().as_u16());
        response
    }
    .instrument(span)
    .await
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and lets requests in flight finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Nagle's algorithm off, as on the gRPC port: a small answer must not
    // wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        res = &mut server => return res,
        _ = stopping_rx => {}
    }
    match tokio::time::timeout(grace, server).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!("HTTP grace period over; abandoning the downloads still running");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_settings() {
        assert_eq!(Cors::parse(None), Cors::Off);
        assert_eq!(Cors::parse(Some(" ")), Cors::Off);
        assert_eq!(Cors::parse(Some("https://a.example, *")), Cors::Any);
        assert_eq!(
            Cors::parse(Some("https://a.example/, http://b.example:8080")),
            Cors::Origins(vec![
                "https://a.example".into(),
                "http://b.example:8080".into()
            ])
        );
    }
}
