//! Deadlines answered `DEADLINE_EXCEEDED`, every time.
//!
//! tonic's server enforces a call's `grpc-timeout` itself, but answers an
//! expired one `CANCELLED 'Timeout expired'` (tonic 0.14: its
//! `GrpcTimeout` layer fails the call with `TimeoutExpired`, which
//! `Status::from_error` maps to `Code::Cancelled`). The gRPC protocol says
//! `DEADLINE_EXCEEDED`, and clients retry on that code. This layer runs
//! inside tonic's: its `call` starts a clock before tonic's starts, a
//! millisecond shorter, and its future is polled before tonic's looks at
//! its own clock, so this one always answers first. It also covers what
//! tonic leaves alone: a server stream still sending at the deadline ends
//! with `DEADLINE_EXCEEDED` in its trailers instead of running on.
//!
//! When the deadline passes, the handler's future (or the response body)
//! is dropped: a client-streaming upload then stores nothing, unless its
//! positive end had already reached the commit.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};
use tonic::{Status, body::Body};

use crate::error::Error;

/// How much sooner than tonic's clock this layer's clock runs out. Tokio's
/// timers tick in whole milliseconds, so one tick apart is enough for this
/// deadline to be handled first.
const HEAD_START: Duration = Duration::from_millis(1);

/// A service whose calls past their deadline answer `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    /// The server's own limit on a call (`--request-timeout-secs`), which
    /// applies when the client's deadline is later or absent.
    max: Option<Duration>,
}

impl<S> Deadline<S> {
    /// Wraps `inner`, cutting every call at `max` at the latest.
    pub fn new(inner: S, max: Option<Duration>) -> Self {
        Self { inner, max }
    }
}

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for Deadline<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // Read before the inner service sees the request, and before
        // tonic's clock starts (it starts after this call returns).
        let asked = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| parse_timeout(v.as_bytes()));
        let limit = match (asked, self.max) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        };
        let deadline = limit.map(|t| Instant::now() + t.saturating_sub(HEAD_START));
        DeadlineFuture {
            inner: self.inner.call(req),
            deadline,
            sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future, cut at the deadline.
    #[derive(Debug)]
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        deadline: Option<Instant>,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res.map(|resp| match *this.deadline {
                Some(deadline) => resp.map(|body| {
                    Body::new(DeadlineBody {
                        inner: body,
                        sleep: Box::pin(tokio::time::sleep_until(deadline)),
                        done: false,
                    })
                }),
                None => resp,
            }));
        }
        if let Some(sleep) = this.sleep {
            ready!(sleep.as_mut().poll(cx));
            return Poll::Ready(Ok(expired().into_http()));
        }
        Poll::Pending
    }
}

/// A response body that ends with `DEADLINE_EXCEEDED` trailers if it is
/// still sending at the deadline.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    /// The body has ended, by itself or at the deadline.
    done: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // The clock first: a body whose next frame is always ready (a
        // download read ahead) would otherwise run past its deadline.
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            let mut trailers = http::HeaderMap::new();
            // A status made here always encodes.
            let _ = expired().add_header(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.done = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }
}

/// The answer to a call whose deadline passed.
fn expired() -> Status {
    Error::DeadlineExpired(
        "the call's deadline (its grpc-timeout, or the server's --request-timeout-secs) passed \
         before it completed"
            .into(),
    )
    .into()
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), as the gRPC-over-HTTP/2 protocol defines it.
/// Anything else is ignored, as tonic ignores it.
fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_the_protocol_writes_them() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"1x",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
