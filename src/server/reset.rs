//! A client's reset of its request stream reaches the handler as an error.
//!
//! When a client cancels a call (`call.cancel()`, its deadline, a killed
//! process with the connection still up), its HTTP/2 stack sends
//! `RST_STREAM(CANCEL)`. h2 ends the request body with that error and
//! hyper passes it on (it swallows only `NO_ERROR` resets), but tonic's
//! `Streaming` then reports the end of the request exactly as a clean
//! half-close: tonic 0.14's `codec/decode.rs` turns a request-side body
//! error whose code is `Cancelled` into `Ok(None)`. A client-streaming
//! handler therefore cannot tell an upload the client finished from one it
//! abandoned after its last chunk; an upload without a declared size was
//! stored as complete.
//!
//! This layer sits between hyper and tonic's codec and re-labels such a
//! body error `ABORTED`, so `Streaming` yields it as an error and the
//! handler stores nothing. A reset with `NO_ERROR` stays invisible (hyper
//! reports it as the body's end); the upload's own rule covers it: only
//! `finish_write`, or exactly the declared size, stores an upload.

use std::task::{Context, Poll};

use http_body_util::BodyExt;
use tonic::{Code, Status, body::Body};

/// A service whose handlers see a reset request stream as an error.
#[derive(Debug, Clone)]
pub struct ResetVisible<S> {
    inner: S,
}

impl<S> ResetVisible<S> {
    /// Wraps `inner` (as a layer: `tower_layer::layer_fn(ResetVisible::new)`).
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> tower_service::Service<http::Request<Body>> for ResetVisible<S>
where
    S: tower_service::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.inner
            .call(req.map(|body| Body::new(body.map_err(reset_is_error))))
    }
}

/// A `CANCEL` reset of the request body, re-labelled so that tonic passes
/// it on as an error; any other body error unchanged.
fn reset_is_error(status: Status) -> Status {
    if status.code() == Code::Cancelled {
        Status::aborted(format!(
            "the client reset the request stream ({})",
            status.message()
        ))
    } else {
        status
    }
}
