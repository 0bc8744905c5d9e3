//! A blob store that times every operation for the metrics.
//!
//! It wraps whichever store the server runs on, so the local directory
//! and an object store report the same operations under the same names,
//! and no store implements the counting itself. Reads of an opened blob
//! are timed too: on an object store each is a request.

use std::{io, sync::Arc, time::Instant};

use super::{BlobReader, BlobStore, StagedBlob, StoredBlob, UploadFile};
use crate::{domain::ContentHash, metrics::Metrics};

/// `inner`, timed into `metrics`.
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn BlobStore>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Times `inner`'s operations into `metrics`.
    pub fn new(inner: Arc<dyn BlobStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// Runs `f` as operation `op` into `metrics`: its time, and whether it
/// failed. A `NotFound` answer is not a failure where `absent_ok` says so
/// (a lookup of a blob that is not there is a normal answer).
fn timed<T>(
    metrics: &Metrics,
    op: &'static str,
    absent_ok: bool,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let start = Instant::now();
    let res = f();
    let failed = match &res {
        Ok(_) => false,
        Err(e) => !(absent_ok && e.kind() == io::ErrorKind::NotFound),
    };
    metrics.blob_op(op, start.elapsed(), failed);
    res
}

impl BlobStore for Metered {
    fn stage(&self) -> io::Result<Box<dyn StagedBlob>> {
        timed(&self.metrics, "stage", false, || self.inner.stage())
    }

    fn publish(&self, batch: Vec<(Box<dyn StagedBlob>, ContentHash)>) -> io::Result<()> {
        timed(&self.metrics, "publish", false, || {
            self.inner.publish(batch)
        })
    }

    fn barrier_as_published(
        &self,
        batch: Vec<(Box<dyn StagedBlob>, ContentHash)>,
    ) -> io::Result<Vec<Box<dyn StagedBlob>>> {
        timed(&self.metrics, "publish", false, || {
            self.inner.barrier_as_published(batch)
        })
    }

    fn open(&self, hash: &ContentHash) -> io::Result<Box<dyn BlobReader>> {
        let reader = timed(&self.metrics, "open", true, || self.inner.open(hash))?;
        Ok(Box::new(MeteredReader {
            inner: reader,
            metrics: Arc::clone(&self.metrics),
        }))
    }

    fn exists(&self, hash: &ContentHash) -> io::Result<bool> {
        timed(&self.metrics, "exists", false, || self.inner.exists(hash))
    }

    fn delete(&self, hash: &ContentHash) -> io::Result<()> {
        timed(&self.metrics, "delete", false, || self.inner.delete(hash))
    }

    fn clean_staging(&self) -> io::Result<usize> {
        timed(&self.metrics, "clean_staging", false, || {
            self.inner.clean_staging()
        })
    }

    fn create_upload(&self, id: &str) -> io::Result<()> {
        timed(&self.metrics, "create_upload", false, || {
            self.inner.create_upload(id)
        })
    }

    fn open_upload(&self, id: &str, held: u64) -> io::Result<Box<dyn UploadFile>> {
        timed(&self.metrics, "open_upload", true, || {
            self.inner.open_upload(id, held)
        })
    }

    fn remove_upload(&self, id: &str) -> io::Result<()> {
        timed(&self.metrics, "remove_upload", false, || {
            self.inner.remove_upload(id)
        })
    }

    fn upload_files(&self) -> io::Result<Vec<(String, std::time::SystemTime)>> {
        timed(&self.metrics, "list", false, || self.inner.upload_files())
    }

    fn list_shard(&self, shard: u8) -> io::Result<Vec<StoredBlob>> {
        timed(&self.metrics, "list", false, || {
            self.inner.list_shard(shard)
        })
    }

    fn quarantine(&self, hash: &ContentHash) -> io::Result<()> {
        timed(&self.metrics, "quarantine", false, || {
            self.inner.quarantine(hash)
        })
    }

    fn remove_stale_staging(&self, before: std::time::SystemTime) -> io::Result<usize> {
        timed(&self.metrics, "clean_staging", false, || {
            self.inner.remove_stale_staging(before)
        })
    }

    fn health_check(&self) -> io::Result<()> {
        timed(&self.metrics, "health_check", false, || {
            self.inner.health_check()
        })
    }
}

/// An opened blob whose reads are timed.
#[derive(Debug)]
struct MeteredReader {
    inner: Box<dyn BlobReader>,
    metrics: Arc<Metrics>,
}

impl BlobReader for MeteredReader {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        timed(&self.metrics, "read", false, || {
            self.inner.read_at(buf, offset)
        })
    }

    fn bytes(&self) -> Option<bytes::Bytes> {
        self.inner.bytes()
    }

    fn read_bytes(&self, offset: u64, len: usize) -> io::Result<bytes::Bytes> {
        timed(&self.metrics, "read", false, || {
            self.inner.read_bytes(offset, len)
        })
    }
}
