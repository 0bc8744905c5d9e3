//! The metrics listener (`--metrics-listen`): `GET /metrics` in
//! Prometheus' text format, on its own port so that the media port a CDN
//! or browsers reach never shows it.

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{library::Library, metrics::CONTENT_TYPE};

/// `/metrics`; anything else is 404.
pub fn router(library: Library) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(library)
}

/// Reads what the database holds into the gauges, then answers every
/// metric.
async fn metrics(State(library): State<Library>) -> Response {
    library.sample_metrics().await;
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        library.metrics().encode(),
    )
        .into_response()
}
