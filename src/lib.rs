//! mediastore: a gRPC media storage service.
//!
//! Other services call it to upload, organise and serve images, videos,
//! audio and documents. Bytes are stored once per content (named by their
//! BLAKE3), made durable before an upload is acknowledged, and streamed in
//! both directions through bounded memory.
//!
//! # Layout
//!
//! - [`config`]: flags and `MEDIASTORE_*` environment variables.
//! - [`cli`]: the `tenants` and `keys` administration subcommands.
//! - [`telemetry`]: logging setup.
//! - [`metrics`]: what the server counts for operators (calls, bytes,
//!   blob store timings, rendition cache, queue depth), scraped by
//!   Prometheus at `--metrics-listen`.
//! - [`server`]: the tonic server (services, health, reflection, shutdown).
//! - [`auth`]: who is calling (API keys) and what each RPC needs (the
//!   scope table); the principal every operation acts for.
//! - [`service`]: gRPC handlers; they translate, the library decides.
//! - [`http`]: the HTTP edge: media and renditions for browsers and CDNs
//!   at the URLs the library makes, with caching and range requests.
//! - [`jobs`]: the workers that run the job queue (reanalysis, garbage
//!   collection, scrubs) with leases, retries and cancellation; the queue
//!   itself is the library's and the repository's.
//! - [`library`]: the domain operations (upload, resumable upload, read,
//!   delete, folders, listing and search, moves, edits, bindings, garbage
//!   collection, scrub, media URLs and their signatures, slots and codes,
//!   reanalysis, the job queue) and their
//!   ordering rules: staging, group commit, reference counting, batched
//!   recursive deletes.
//! - [`analyze`]: what uploaded bytes are (sniffing) and what they tell
//!   (dimensions, EXIF, GPS); pure functions over a reader.
//! - [`domain`]: validated types (`MediaId`, `ContentHash`, `Filename`,
//!   `FolderName`, `FolderPath`, `MediaQuery`, ...).
//! - [`render`]: renditions: decode with shrink-on-load, SIMD resize,
//!   orient, encode; pure functions over bytes.
//! - [`repo`]: SeaORM repository over SQLite or PostgreSQL: rows, the one
//!   media query engine, folder trees, bindings.
//! - [`blob`]: content-addressed blob storage (local directory), with the
//!   files of resumable uploads and a quarantine for corrupt blobs; small
//!   blobs skip it and live inline in the database (`blob::inline`); a
//!   blob's bytes as a bounded stream of chunks (`blob::stream`); every
//!   store timed for the metrics (`blob::metered`).
//! - [`fetch`]: downloads for imports from a URL, refusing internal
//!   addresses (the request forgery guard) on every redirect hop.
//! - [`error`]: the error type and its single mapping to `tonic::Status`.
//! - [`pb`]: generated protobuf code and the reflection descriptor set.
//! - `fuzzing`: the parsers of uploaded bytes as the fuzz targets in
//!   `fuzz/` run them.

pub mod analyze;
pub mod auth;
pub mod blob;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod fetch;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod jobs;
pub mod library;
pub mod metrics;
pub mod pb;
pub mod render;
pub mod repo;
pub mod server;
pub mod service;
pub mod telemetry;
