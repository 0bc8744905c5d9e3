//! Counts every gRPC call for the metrics: started, ended by status code,
//! its duration, the bytes each way, and the calls open right now.
//!
//! The outermost layer, so it sees every answer: the authenticator's
//! refusals and expired deadlines as well as the handlers'. A call's
//! status is in the response's headers when it ended at once
//! (trailers-only) and in its trailers otherwise; a call whose client
//! went away before either counts as `Cancelled`. Label values come only
//! from the methods the server serves: any other path counts as
//! `unknown`, so a client cannot grow the label set.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use bytes::Bytes;
use http_body::Frame;
use prometheus_client::metrics::counter::Counter;
use tonic::{Code, Status, body::Body};

use crate::metrics::{CountedBody, HandledLabels, Metrics, RpcLabels};

/// The label values of paths the server does not serve.
const UNKNOWN: &str = "unknown";

/// The RPCs served, as `package.Service/Method`.
#[derive(Debug)]
pub struct KnownRpcs(HashSet<String>);

impl KnownRpcs {
    /// The mediastore services' methods and those of health and
    /// reflection.
    pub fn served() -> Self {
        let mut known: HashSet<String> = crate::auth::rules::served_rpcs().into_iter().collect();
        for extra in [
            "grpc.health.v1.Health/Check",
            "grpc.health.v1.Health/Watch",
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            known.insert(extra.to_string());
        }
        Self(known)
    }

    /// The labels of a request to `path` (`/package.Service/Method`).
    fn labels(&self, path: &str) -> RpcLabels {
        let rpc = path.strip_prefix('/').unwrap_or(path);
        match rpc.split_once('/') {
            Some((service, method)) if self.0.contains(rpc) => RpcLabels {
                grpc_service: service.to_string(),
                grpc_method: method.to_string(),
            },
            _ => RpcLabels {
                grpc_service: UNKNOWN.to_string(),
                grpc_method: UNKNOWN.to_string(),
            },
        }
    }
}

/// A service whose calls are counted into [`Metrics`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    known: Arc<KnownRpcs>,
}

impl<S> Observe<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Arc<Metrics>, known: Arc<KnownRpcs>) -> Self {
        Self {
            inner,
            metrics,
            known,
        }
    }
}

impl<S> tower_service::Service<http::Request<Body>> for Observe<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let labels = self.known.labels(req.uri().path());
        let rpc = &self.metrics.rpc;
        rpc.started.get_or_create(&labels).inc();
        rpc.in_flight.get_or_create(&labels).inc();
        let received = rpc.received_bytes.get_or_create_owned(&labels);
        let req = req.map(|body| Body::new(CountedBody::new(body, received)));
        ObservedFuture {
            inner: self.inner.call(req),
            call: Some(Call {
                metrics: Arc::clone(&self.metrics),
                labels,
                start: Instant::now(),
                ended: false,
            }),
        }
    }
}

/// One call until its status is known; dropped before, it counts as
/// cancelled.
struct Call {
    metrics: Arc<Metrics>,
    labels: RpcLabels,
    start: Instant,
    ended: bool,
}

impl Call {
    /// Records the call's end with `code`.
    fn end(&mut self, code: Code) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let rpc = &self.metrics.rpc;
        rpc.in_flight.get_or_create(&self.labels).dec();
        rpc.seconds
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
        rpc.handled
            .get_or_create(&HandledLabels {
                grpc_service: self.labels.grpc_service.clone(),
                grpc_method: self.labels.grpc_method.clone(),
                grpc_code: code_name(code),
            })
            .inc();
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

/// A code's name as go-grpc-prometheus writes it (`OK`, `NotFound`).
fn code_name(code: Code) -> String {
    match code {
        Code::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    }
}

/// The status a header map carries, if it carries one.
fn status_in(headers: &http::HeaderMap) -> Option<Code> {
    let v = headers.get("grpc-status")?;
    let n: i32 = v.to_str().ok()?.parse().ok()?;
    Some(Code::from_i32(n))
}

pin_project_lite::pin_project! {
    /// The inner service's future; its answer's body is watched for the
    /// status.
    pub struct ObservedFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, E> Future for ObservedFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        let Some(mut call) = this.call.take() else {
            return Poll::Ready(res);
        };
        Poll::Ready(match res {
            Ok(resp) => {
                if let Some(code) = status_in(resp.headers()) {
                    call.end(code);
                }
                let sent = call
                    .metrics
                    .rpc
                    .sent_bytes
                    .get_or_create_owned(&call.labels);
                Ok(resp.map(|body| {
                    Body::new(ObservedBody {
                        inner: body,
                        call,
                        sent,
                    })
                }))
            }
            Err(e) => {
                call.end(Code::Internal);
                Err(e)
            }
        })
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("labels", &self.labels)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// A response body whose bytes are counted and whose trailers end the
/// call.
struct ObservedBody {
    inner: Body,
    call: Call,
    sent: Counter,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    self.sent.inc_by(data.len() as u64);
                } else if let Some(trailers) = f.trailers_ref() {
                    let code = status_in(trailers).unwrap_or(Code::Unknown);
                    self.call.end(code);
                }
            }
            Some(Err(status)) => self.call.end(status.code()),
            // An end without trailers, after a trailers-only answer
            // (already counted) or a broken one.
            None => self.call.end(Code::Unknown),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_become_labels() {
        let known = KnownRpcs::served();
        let l = known.labels("/mediastore.v1.MediaService/UploadMedia");
        assert_eq!(l.grpc_service, "mediastore.v1.MediaService");
        assert_eq!(l.grpc_method, "UploadMedia");
        let l = known.labels("/grpc.health.v1.Health/Check");
        assert_eq!(l.grpc_method, "Check");
        for made_up in [
            "/mediastore.v1.MediaService/Nope",
            "/x/y",
            "/",
            "",
            "/mediastore.v1.MediaService",
        ] {
            let l = known.labels(made_up);
            assert_eq!(
                (l.grpc_service.as_str(), l.grpc_method.as_str()),
                (UNKNOWN, UNKNOWN),
                "{made_up}"
            );
        }
    }

    #[test]
    fn codes_are_named_as_dashboards_expect() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::NotFound), "NotFound");
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
    }
}
