//! Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW,
//! Garage, R2), so that several replicas share one set of bytes.
//!
//! Layout under the configured prefix:
//! - `blobs/ab/<64 hex>`: a blob, by content hash (the local store's
//!   layout, so listings walk one shard at a time).
//! - `uploads/<upload id>/<start, 20 digits>`: the closed segments of an
//!   unfinished resumable upload, each at least one part long; and
//!   `.../<start>.open`, the open segment's bytes as last synced. Any
//!   replica can open the upload, read it back (to rebuild its hashes)
//!   and finish it.
//! - `quarantine/<64 hex>.<unix time>`: blobs a scrub found corrupt.
//! - `health/<uuid>`: the readiness probe's object, removed at once.
//! - `staging/<uuid>`: an upload sent ahead while it arrived, until it
//!   is copied to its name ([`spool`]).
//!
//! Writing: the content-addressed name is known only at the end, so an
//! upload larger than a part is sent on while it arrives, as a multipart
//! upload under a temporary key; it is completed when the upload ends
//! (analysis reads it there), and `publish` copies it to its name inside
//! the store. One of at most a part is spooled to a local file and sent
//! by one PUT ([`spool`]). A finished resumable upload is joined inside
//! the store from its segments (`UploadPartCopy`), without the bytes
//! coming back through the server. S3 acknowledges an object once it is
//! durable, which is the barrier the database commit waits for.
//!
//! Leftovers (a replica killed while sending): the local spool is cleaned
//! as the local store's is; garbage collection aborts a multipart upload
//! that has received no part for its grace period (one still receiving
//! parts is an upload in progress, however long ago it began) and deletes
//! a temporary object older than that.
//!
//! Reads are ranged GETs; a sequential read (a download) keeps a few GETs
//! in flight ahead of it ([`reader`]).
//!
//! The trait is blocking: each call runs the async client on the runtime
//! (`Handle::block_on`) from the blocking pool, where the library calls
//! the store.

pub mod client;
pub mod garage;
mod reader;
pub mod sign;
mod spool;
mod upload;
pub mod xml;

use std::{
    any::Any,
    io,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use http::Method;
use tokio::runtime::Handle;
use tokio_rustls::rustls;

use self::{
    client::{Call, Client, Endpoint},
    sign::Signer,
};
use super::{BlobReader, BlobStore, StagedBlob, StoredBlob, UploadFile, fs::FsBlobStore};
use crate::domain::ContentHash;

/// The smallest part S3 accepts (but for the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default part size: large enough for throughput, small enough that
/// parts in flight stay a few tens of MiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Default parts in memory per upload (in flight, and the one filled).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Most parts of one upload (S3's limit).
const MAX_PARTS: u64 = 10_000;
/// Largest object `CopyObject` copies in one call (S3's limit); larger
/// ones are copied in parts.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// Keys per listing page (S3's limit).
const LIST_PAGE: &str = "1000";

/// Where the store is and how to reach it.
#[derive(Clone)]
pub struct S3Settings {
    /// `http(s)://host[:port]` of the service.
    pub endpoint: String,
    /// Region the requests are signed for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Prefix of every key (`""`, or `"mediastore/"`, say).
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`).
    pub path_style: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Part size of multipart uploads.
    pub part_size: usize,
    /// Parts in memory per upload: in flight, and the one being filled
    /// (or calls at once, for batches).
    pub concurrency: usize,
    /// Time one request may take.
    pub timeout: Duration,
    /// Certificates of private CAs trusted besides the public roots.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// What the store's parts share.
#[derive(Debug)]
struct Shared {
    client: Client,
    prefix: String,
    part_size: usize,
    concurrency: usize,
    rt: Handle,
}

impl Shared {
    fn blob_key(&self, hash: &ContentHash) -> String {
        format!("{}blobs/{:02x}/{hash}", self.prefix, hash.0[0])
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    async fn put(&self, key: &str, body: Bytes) -> io::Result<()> {
        self.client
            .send(Method::PUT, &Call::on(key).body(body))
            .await
            .map(drop)
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match self.client.send(Method::DELETE, &Call::on(key)).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The size of `key`; `NotFound` when absent.
    async fn head(&self, key: &str) -> io::Result<u64> {
        let a = self.client.send(Method::HEAD, &Call::on(key)).await?;
        a.headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other(format!("S3 HEAD {key}: no Content-Length")))
    }

    /// `len` bytes of `key` at `offset`.
    async fn get_range(&self, key: &str, offset: u64, len: usize) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let last = offset + len as u64 - 1;
        let a = self
            .client
            .send(
                Method::GET,
                &Call::on(key).header("range", format!("bytes={offset}-{last}")),
            )
            .await?;
        if a.status != http::StatusCode::PARTIAL_CONTENT && offset > 0 {
            return Err(io::Error::other(format!(
                "S3 GET {key}: a range request answered {}",
                a.status
            )));
        }
        let mut body = a.body;
        body.truncate(len);
        Ok(body)
    }

    /// Every object under `prefix`: key, size, last change.
    async fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64, SystemTime)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::on("")
                .query("list-type", "2")
                .query("prefix", prefix)
                .query("max-keys", LIST_PAGE);
            if let Some(t) = &token {
                call = call.query("continuation-token", t.clone());
            }
            let a = self.client.send(Method::GET, &call).await?;
            let doc = String::from_utf8_lossy(&a.body);
            for item in xml::blocks(&doc, "Contents") {
                let key = xml::first(item, "Key").unwrap_or_default();
                let size = xml::first(item, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let changed = xml::first(item, "LastModified")
                    .and_then(|t| sign::parse_iso8601(&t))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((key, size, changed));
            }
            token = xml::first(&doc, "NextContinuationToken");
            if xml::first(&doc, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn create_multipart(&self, key: &str) -> io::Result<String> {
        let a = self
            .client
            .send(Method::POST, &Call::on(key).query("uploads", ""))
            .await?;
        xml::first(&String::from_utf8_lossy(&a.body), "UploadId")
            .ok_or_else(|| io::Error::other(format!("S3 CreateMultipartUpload {key}: no UploadId")))
    }

    async fn upload_part(&self, key: &str, id: &str, n: u64, body: Bytes) -> io::Result<String> {
        let call = Call::on(key)
            .query("partNumber", n.to_string())
            .query("uploadId", id)
            .body(body);
        let a = self.client.send(Method::PUT, &call).await?;
        etag(&a.headers, key)
    }

    /// Part `n` of upload `id` copied from `range` of `source`, in the
    /// store.
    async fn upload_part_copy(
        &self,
        key: &str,
        id: &str,
        n: u64,
        source: &str,
        range: Option<(u64, u64)>,
    ) -> io::Result<String> {
        let mut call = Call::on(key)
            .query("partNumber", n.to_string())
            .query("uploadId", id)
            .header("x-amz-copy-source", self.copy_source(source));
        if let Some((from, to)) = range {
            call = call.header("x-amz-copy-source-range", format!("bytes={from}-{to}"));
        }
        let a = self.client.send(Method::PUT, &call).await?;
        let doc = String::from_utf8_lossy(&a.body);
        xml::first(&doc, "ETag").ok_or_else(|| {
            io::Error::other(format!("S3 UploadPartCopy {key} from {source}: no ETag"))
        })
    }

    async fn complete_multipart(&self, key: &str, id: &str, etags: &[String]) -> io::Result<()> {
        let mut doc = String::from("<CompleteMultipartUpload>");
        for (i, tag) in etags.iter().enumerate() {
            doc.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml_escape(tag)
            ));
        }
        doc.push_str("</CompleteMultipartUpload>");
        let a = self
            .client
            .send(
                Method::POST,
                &Call::on(key).query("uploadId", id).body(Bytes::from(doc)),
            )
            .await?;
        // S3 may answer 200 with an error document once it has started
        // answering.
        let text = String::from_utf8_lossy(&a.body);
        if let Some(code) = xml::first(&text, "Code") {
            return Err(io::Error::other(format!(
                "S3 CompleteMultipartUpload {key}: {code} {}",
                xml::first(&text, "Message").unwrap_or_default()
            )));
        }
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, id: &str) -> io::Result<()> {
        self.client
            .send(Method::DELETE, &Call::on(key).query("uploadId", id))
            .await
            .map(drop)
    }

    /// Unfinished multipart uploads under the prefix: key, id, start.
    async fn multipart_uploads(&self) -> io::Result<Vec<(String, String, SystemTime)>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut call = Call::on("")
                .query("uploads", "")
                .query("prefix", self.prefix.clone());
            if let Some((k, u)) = &markers {
                call = call
                    .query("key-marker", k.clone())
                    .query("upload-id-marker", u.clone());
            }
            let a = self.client.send(Method::GET, &call).await?;
            let doc = String::from_utf8_lossy(&a.body);
            for item in xml::blocks(&doc, "Upload") {
                let (Some(key), Some(id)) = (xml::first(item, "Key"), xml::first(item, "UploadId"))
                else {
                    continue;
                };
                let started = xml::first(item, "Initiated")
                    .and_then(|t| sign::parse_iso8601(&t))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((key, id, started));
            }
            let next = (
                xml::first(&doc, "NextKeyMarker"),
                xml::first(&doc, "NextUploadIdMarker"),
            );
            match (xml::first(&doc, "IsTruncated").as_deref(), next) {
                (Some("true"), (Some(k), Some(u))) => markers = Some((k, u)),
                _ => return Ok(out),
            }
        }
    }

    /// What unfinished transfers left under the prefix: multipart
    /// uploads (key, id, start) and temporary objects (key, size, last
    /// change) of uploads sent ahead ([`spool`]).
    async fn leftovers(
        &self,
    ) -> io::Result<(
        Vec<(String, String, SystemTime)>,
        Vec<(String, u64, SystemTime)>,
    )> {
        let uploads = self.multipart_uploads().await?;
        let temporary = self.list(&format!("{}staging/", self.prefix)).await?;
        Ok((uploads, temporary))
    }

    /// When the latest part of multipart upload `id` of `key` arrived
    /// (`None` before the first).
    async fn last_part_at(&self, key: &str, id: &str) -> io::Result<Option<SystemTime>> {
        let mut latest = None;
        let mut marker: Option<String> = None;
        loop {
            let mut call = Call::on(key).query("uploadId", id);
            if let Some(m) = &marker {
                call = call.query("part-number-marker", m.clone());
            }
            let a = self.client.send(Method::GET, &call).await?;
            let doc = String::from_utf8_lossy(&a.body);
            for part in xml::blocks(&doc, "Part") {
                let at = xml::first(part, "LastModified").and_then(|t| sign::parse_iso8601(&t));
                latest = latest.max(at);
            }
            marker = xml::first(&doc, "NextPartNumberMarker");
            if xml::first(&doc, "IsTruncated").as_deref() != Some("true") || marker.is_none() {
                return Ok(latest);
            }
        }
    }

    /// `x-amz-copy-source` of `key`.
    fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.client.bucket(), sign::uri_encode(key, false))
    }

    /// Copies `source` (`len` bytes) to `dest` inside the store.
    async fn copy(&self, source: &str, dest: &str, len: u64) -> io::Result<()> {
        if len <= MAX_COPY {
            let call = Call::on(dest).header("x-amz-copy-source", self.copy_source(source));
            let a = self.client.send(Method::PUT, &call).await?;
            let text = String::from_utf8_lossy(&a.body);
            if let Some(code) = xml::first(&text, "Code") {
                return Err(io::Error::other(format!(
                    "S3 CopyObject {source} to {dest}: {code}"
                )));
            }
            return Ok(());
        }
        let pieces: Vec<Piece> = (0..len)
            .step_by(1 << 30)
            .map(|from| Piece::Copy {
                key: source.to_string(),
                range: Some((from, (from + (1 << 30)).min(len) - 1)),
            })
            .collect();
        self.join(dest, pieces).await
    }

    /// Makes `dest` of `pieces` in order, as one multipart upload.
    async fn join(&self, dest: &str, pieces: Vec<Piece>) -> io::Result<()> {
        let pieces = &pieces;
        self.multipart(dest, pieces.len() as u64, |id, n| async move {
            // Each number is asked for once; a clone of a piece is a
            // reference count or a key.
            match pieces[n as usize - 1].clone() {
                Piece::Bytes(b) => self.upload_part(dest, &id, n, b).await,
                Piece::Copy { key, range } => {
                    self.upload_part_copy(dest, &id, n, &key, range).await
                }
            }
        })
        .await
    }

    /// One multipart upload to `key` of `count` parts, `part(id, n)`
    /// sending part `n` (from 1), `concurrency` at a time. An upload that
    /// fails is aborted (or left to garbage collection if even that fails).
    async fn multipart<'a, F, Fut>(&'a self, key: &'a str, count: u64, part: F) -> io::Result<()>
    where
        F: Fn(String, u64) -> Fut,
        Fut: std::future::Future<Output = io::Result<String>> + 'a,
    {
        let id = self.create_multipart(key).await?;
        let id: &str = &id;
        let parts = stream::iter(1..=count)
            .map(|n| part(id.to_string(), n))
            .buffered(self.concurrency)
            .try_collect::<Vec<String>>()
            .await;
        let done = match parts {
            Ok(etags) => self.complete_multipart(key, id, &etags).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            if let Err(abort) = self.abort_multipart(key, id).await {
                tracing::warn!(key, error = %abort, "cannot abort a failed multipart upload; garbage collection will");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// One part of a joined object.
#[derive(Debug, Clone)]
enum Piece {
    /// Bytes sent from here.
    Bytes(Bytes),
    /// Bytes copied inside the store from `key` (a range of it, or all).
    Copy {
        key: String,
        range: Option<(u64, u64)>,
    },
}

fn etag(headers: &http::HeaderMap, key: &str) -> io::Result<String> {
    headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("S3 UploadPart {key}: no ETag")))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The S3-compatible blob store.
#[derive(Debug)]
pub struct S3BlobStore {
    shared: Arc<Shared>,
    /// Local staging for incoming bytes (`<data>/s3-spool/tmp`).
    spool: FsBlobStore,
}

impl S3BlobStore {
    /// A store on `settings`, spooling into `<data_dir>/s3-spool`, running
    /// its requests on `rt`. Checks nothing remote: the first call (the
    /// health check) does.
    pub fn open(settings: &S3Settings, data_dir: &std::path::Path, rt: Handle) -> io::Result<Self> {
        let url = url::Url::parse(&settings.endpoint).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the S3 endpoint {:?} is not a URL: {e}", settings.endpoint),
            )
        })?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the S3 endpoint's scheme is {other:?}; use http or https"),
                ));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "the S3 endpoint has no host")
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        if settings.part_size < MIN_PART_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the S3 part size {} is below S3's minimum of {MIN_PART_SIZE} bytes",
                    settings.part_size
                ),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &settings.extra_roots {
            roots.add(cert.clone()).map_err(io::Error::other)?;
        }
        let client = Client::new(
            Endpoint {
                https,
                host,
                port,
                bucket: settings.bucket.clone(),
                path_style: settings.path_style,
            },
            Signer {
                access_key: settings.access_key.clone(),
                secret_key: settings.secret_key.clone(),
                region: settings.region.clone(),
            },
            roots,
            settings.timeout,
        )?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                prefix: settings.prefix.clone(),
                part_size: settings.part_size,
                concurrency: settings.concurrency.max(1),
                rt,
            }),
            spool: FsBlobStore::staging_only(&data_dir.join("s3-spool"))?,
        })
    }

    /// How many unfinished multipart uploads and temporary objects are
    /// under the prefix now: those of transfers in progress, and any a
    /// killed process left (which garbage collection removes once older
    /// than its grace period).
    pub fn leftovers(&self) -> io::Result<usize> {
        let s = &self.shared;
        let (uploads, temporary) = s.block(s.leftovers())?;
        Ok(uploads.len() + temporary.len())
    }

    /// Sends one staged blob to its name.
    async fn publish_one(&self, staged: Box<dyn StagedBlob>, hash: ContentHash) -> io::Result<()> {
        let s = &self.shared;
        let key = s.blob_key(&hash);
        let any: Box<dyn Any + Send> = staged.into_any();
        let any = match any.downcast::<spool::Spooled>() {
            Ok(spooled) => return spooled.publish(&key).await,
            Err(other) => other,
        };
        match any.downcast::<upload::Finished>() {
            Ok(finished) => finished.publish(s, &key).await,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a staged blob of another store was given to the S3 store",
            )),
        }
    }
}

impl BlobStore for S3BlobStore {
    fn stage(&self) -> io::Result<Box<dyn StagedBlob>> {
        Ok(Box::new(spool::Spooled::new(
            self.spool.stage()?,
            Arc::clone(&self.shared),
        )))
    }

    fn publish(&self, batch: Vec<(Box<dyn StagedBlob>, ContentHash)>) -> io::Result<()> {
        let concurrency = self.shared.concurrency;
        self.shared.block(async {
            stream::iter(batch)
                .map(|(staged, hash)| self.publish_one(staged, hash))
                .buffer_unordered(concurrency)
                .try_collect::<Vec<()>>()
                .await
                .map(drop)
        })
    }

    fn barrier_as_published(
        &self,
        batch: Vec<(Box<dyn StagedBlob>, ContentHash)>,
    ) -> io::Result<Vec<Box<dyn StagedBlob>>> {
        // The barrier of this store is the transfer itself; sending the
        // same bytes to their own name again costs what publishing them
        // would, and changes nothing (a content-addressed object is
        // replaced by identical bytes).
        let count = batch.len();
        self.publish(batch)?;
        Ok(Vec::with_capacity(count))
    }

    fn open(&self, hash: &ContentHash) -> io::Result<Box<dyn BlobReader>> {
        let s = &self.shared;
        let key = s.blob_key(hash);
        let len = s.block(s.head(&key))?;
        Ok(Box::new(reader::S3Reader::new(Arc::clone(s), key, len)))
    }

    fn exists(&self, hash: &ContentHash) -> io::Result<bool> {
        let s = &self.shared;
        match s.block(s.head(&s.blob_key(hash))) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, hash: &ContentHash) -> io::Result<()> {
        let s = &self.shared;
        s.block(s.delete(&s.blob_key(hash)))
    }

    fn clean_staging(&self) -> io::Result<usize> {
        // Only the local spool: other replicas may be sending multipart
        // uploads right now; garbage collection aborts old ones.
        self.spool.clean_staging()
    }

    fn create_upload(&self, id: &str) -> io::Result<()> {
        upload::create(&self.shared, id)
    }

    fn open_upload(&self, id: &str, held: u64) -> io::Result<Box<dyn UploadFile>> {
        Ok(Box::new(upload::open(&self.shared, id, held)?))
    }

    fn remove_upload(&self, id: &str) -> io::Result<()> {
        upload::remove(&self.shared, id)
    }

    fn upload_files(&self) -> io::Result<Vec<(String, SystemTime)>> {
        upload::list(&self.shared)
    }

    fn list_shard(&self, shard: u8) -> io::Result<Vec<StoredBlob>> {
        let s = &self.shared;
        let prefix = format!("{}blobs/{shard:02x}/", s.prefix);
        let listed = s.block(s.list(&prefix))?;
        Ok(listed
            .into_iter()
            .filter_map(|(key, size, changed)| {
                let hex = key.strip_prefix(&prefix)?;
                let hash = ContentHash(*blake3::Hash::from_hex(hex).ok()?.as_bytes());
                Some(StoredBlob {
                    hash,
                    size,
                    changed,
                })
            })
            .collect())
    }

    fn quarantine(&self, hash: &ContentHash) -> io::Result<()> {
        let s = &self.shared;
        let key = s.blob_key(hash);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let dest = format!("{}quarantine/{hash}.{now}", s.prefix);
        s.block(async {
            let len = s.head(&key).await?;
            s.copy(&key, &dest, len).await?;
            s.delete(&key).await
        })
    }

    fn remove_stale_staging(&self, before: SystemTime) -> io::Result<usize> {
        let mut removed = self.spool.remove_stale_staging(before)?;
        let s = &self.shared;
        let (uploads, temporary) = s.block(s.leftovers())?;
        for (key, id, started) in uploads {
            // An upload still receiving parts is not stale however long
            // ago it began (a large file over a slow link).
            if started < before
                && s.block(s.last_part_at(&key, &id))?
                    .is_none_or(|t| t < before)
            {
                s.block(s.abort_multipart(&key, &id))?;
                removed += 1;
            }
        }
        for (key, _, changed) in temporary {
            if changed < before {
                s.block(s.delete(&key))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn health_check(&self) -> io::Result<()> {
        let s = &self.shared;
        let key = format!("{}health/{}", s.prefix, uuid::Uuid::now_v7());
        s.block(async {
            s.put(&key, Bytes::from_static(b"ok")).await?;
            s.delete(&key).await
        })
    }
}
