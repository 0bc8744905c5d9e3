//! What the server counts for operators, in Prometheus' text format.
//!
//! One [`Metrics`] per server process (the library makes it; tests run
//! several servers in one process, each with its own). The edges count
//! calls and bytes ([`crate::server::observe`], [`crate::http`]), the
//! library counts rendition cache hits and misses, and the blob store is
//! timed by a decorator ([`crate::blob::metered`]). What lives in the
//! database (upload sessions, the job queue) is read when scraped, so
//! every replica reports the same shared state and none keeps a copy.
//!
//! Names follow the conventions dashboards expect: gRPC calls as
//! `grpc_server_started_total`, `grpc_server_handled_total` and
//! `grpc_server_handling_seconds` (go-grpc-prometheus' names and labels),
//! everything else under `mediastore_`.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Buf;
use http_body::Frame;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The content type of a scrape's answer (Prometheus' text format).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An RPC, as its labels name it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The full service name, e.g. `mediastore.v1.MediaService`;
    /// `unknown` for a path the server does not serve (so a client cannot
    /// make up label values).
    pub grpc_service: String,
    /// The method, e.g. `UploadMedia`.
    pub grpc_method: String,
}

/// An RPC and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    /// As in [`RpcLabels`].
    pub grpc_service: String,
    /// As in [`RpcLabels`].
    pub grpc_method: String,
    /// The gRPC status code's name: `OK`, `NotFound`, ...
    pub grpc_code: String,
}

/// An HTTP response's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The status code, e.g. `200`, `304`, `404`.
    pub code: u16,
}

/// A blob store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `stage`, `publish`, `open`, `read`, `exists`, `delete`, ...
    pub op: &'static str,
}

/// A database pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `read` or `write`.
    pub pool: &'static str,
}

/// Why the server reports NOT_SERVING.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnreadyLabels {
    /// `database`, `blob_store`, or `storage` when the check of both
    /// timed out.
    pub component: &'static str,
    /// What it said: the blob store's S3 error code (`InvalidAccessKeyId`,
    /// `NoSuchBucket`, `SlowDown`) or connection failure
    /// (`ConnectionRefused`, `TimedOut`); `error` for anything else.
    pub cause: String,
}

/// Readiness, as `grpc.health.v1` reports it.
#[derive(Debug, Clone, Default)]
pub struct HealthMetrics {
    /// 1 while SERVING, 0 while NOT_SERVING.
    pub serving: Gauge,
    /// 1 for the reason of the current NOT_SERVING; none while serving.
    pub unready: Family<UnreadyLabels, Gauge>,
}

/// Counts of gRPC calls.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    /// Calls received.
    pub started: Family<RpcLabels, Counter>,
    /// Calls ended, by code.
    pub handled: Family<HandledLabels, Counter>,
    /// Time from the call to its status (a stream's whole length).
    pub seconds: Family<RpcLabels, Histogram>,
    /// Calls whose answer has not ended yet (open streams included).
    pub in_flight: Family<RpcLabels, Gauge>,
    /// Request body bytes (gRPC frames: messages and their 5-byte
    /// prefixes) received.
    pub received_bytes: Family<RpcLabels, Counter>,
    /// Response body bytes sent.
    pub sent_bytes: Family<RpcLabels, Counter>,
}

/// Counts of the HTTP edge's answers.
#[derive(Debug, Clone, Default)]
pub struct HttpMetrics {
    /// Responses, by status.
    pub responses: Family<HttpLabels, Counter>,
    /// Response body bytes sent.
    pub sent_bytes: Counter,
}

/// Timings and failures of the blob store.
#[derive(Debug, Clone)]
pub struct BlobMetrics {
    /// Each operation's duration.
    pub seconds: Family<OpLabels, Histogram>,
    /// Operations that failed (an absent blob answered by `open` is not a
    /// failure).
    pub errors: Family<OpLabels, Counter>,
}

/// What the database holds, read at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    /// Resumable uploads accepting bytes.
    pub upload_sessions: Gauge,
    /// Jobs queued and due.
    pub jobs_queued: Gauge,
    /// Jobs running.
    pub jobs_running: Gauge,
    /// How long the oldest due job has waited, in seconds (0 for none).
    pub jobs_oldest_wait_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Connections open in each pool.
    pub db_connections: Family<PoolLabels, Gauge>,
    /// Of those, idle.
    pub db_idle_connections: Family<PoolLabels, Gauge>,
    /// Each pool's limit.
    pub db_max_connections: Family<PoolLabels, Gauge>,
    /// Scrapes whose database reads failed (the gauges then keep their
    /// last values).
    pub sample_errors: Counter,
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// gRPC calls.
    pub rpc: RpcMetrics,
    /// HTTP delivery.
    pub http: HttpMetrics,
    /// The blob store.
    pub blobs: BlobMetrics,
    /// Renditions served from the cache.
    pub rendition_hits: Counter,
    /// Renditions made because none was cached.
    pub rendition_misses: Counter,
    /// Read from the database at each scrape.
    pub sampled: Sampled,
    /// Readiness and why not.
    pub health: HealthMetrics,
}

/// Buckets of call durations: 1 ms to about 65 s, doubling (17 buckets).
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Buckets of blob store operations: 100 µs to about 26 s, doubling.
fn op_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let rpc = RpcMetrics {
            started: Family::default(),
            handled: Family::default(),
            seconds: Family::new_with_constructor(call_buckets),
            in_flight: Family::default(),
            received_bytes: Family::default(),
            sent_bytes: Family::default(),
        };
        registry.register(
            "grpc_server_started",
            "gRPC calls received",
            rpc.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "gRPC calls ended, by status code",
            rpc.handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a gRPC call to its status",
            rpc.seconds.clone(),
        );
        let own = registry.sub_registry_with_prefix("mediastore");
        own.register(
            "grpc_in_flight_calls",
            "gRPC calls whose answer has not ended (open streams included)",
            rpc.in_flight.clone(),
        );
        own.register(
            "grpc_received_bytes",
            "gRPC request bytes received",
            rpc.received_bytes.clone(),
        );
        own.register(
            "grpc_sent_bytes",
            "gRPC response bytes sent",
            rpc.sent_bytes.clone(),
        );
        let http = HttpMetrics::default();
        own.register(
            "http_responses",
            "HTTP delivery responses, by status",
            http.responses.clone(),
        );
        own.register(
            "http_sent_bytes",
            "HTTP delivery body bytes sent",
            http.sent_bytes.clone(),
        );
        let blobs = BlobMetrics {
            seconds: Family::new_with_constructor(op_buckets),
            errors: Family::default(),
        };
        own.register(
            "blob_operation_seconds",
            "Duration of blob store operations",
            blobs.seconds.clone(),
        );
        own.register(
            "blob_operation_errors",
            "Blob store operations that failed",
            blobs.errors.clone(),
        );
        let rendition_hits = Counter::default();
        let rendition_misses = Counter::default();
        own.register(
            "rendition_cache_hits",
            "Renditions served from the cache",
            rendition_hits.clone(),
        );
        own.register(
            "rendition_cache_misses",
            "Renditions made because none was cached",
            rendition_misses.clone(),
        );
        let sampled = Sampled::default();
        own.register(
            "upload_sessions",
            "Resumable uploads accepting bytes (all replicas)",
            sampled.upload_sessions.clone(),
        );
        own.register(
            "jobs_queued",
            "Jobs queued and due (all replicas)",
            sampled.jobs_queued.clone(),
        );
        own.register(
            "jobs_running",
            "Jobs running (all replicas)",
            sampled.jobs_running.clone(),
        );
        own.register(
            "jobs_oldest_wait_seconds",
            "How long the oldest due job has waited",
            sampled.jobs_oldest_wait_seconds.clone(),
        );
        own.register(
            "db_pool_connections",
            "Database connections open, by pool",
            sampled.db_connections.clone(),
        );
        own.register(
            "db_pool_idle_connections",
            "Database connections idle, by pool",
            sampled.db_idle_connections.clone(),
        );
        own.register(
            "db_pool_max_connections",
            "Database connections allowed, by pool",
            sampled.db_max_connections.clone(),
        );
        own.register(
            "metrics_sample_errors",
            "Scrapes whose database reads failed",
            sampled.sample_errors.clone(),
        );
        let health = HealthMetrics::default();
        own.register(
            "serving",
            "1 while grpc.health.v1 reports SERVING, 0 while NOT_SERVING",
            health.serving.clone(),
        );
        own.register(
            "not_serving_reason",
            "1 for the component and cause of the current NOT_SERVING",
            health.unready.clone(),
        );
        Self {
            registry,
            rpc,
            http,
            blobs,
            rendition_hits,
            rendition_misses,
            sampled,
            health,
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// Records a blob store operation that took `took`.
    pub fn blob_op(&self, op: &'static str, took: Duration, failed: bool) {
        let labels = OpLabels { op };
        self.blobs
            .seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.blobs.errors.get_or_create(&labels).inc();
        }
    }
}

pin_project_lite::pin_project! {
    /// A body whose data frames' bytes are added to a counter as they pass
    /// (a transfer cut short counts what went through): the bytes-in and
    /// bytes-out counters of both edges.
    #[derive(Debug)]
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        counter: Counter,
    }
}

impl<B> CountedBody<B> {
    /// `inner`, counted into `counter`.
    pub fn new(inner: B, counter: Counter) -> Self {
        Self { inner, counter }
    }
}

impl<B: http_body::Body> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(data) = f.data_ref()
        {
            this.counter.inc_by(data.remaining() as u64);
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
