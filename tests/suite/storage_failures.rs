//! The domain tier over a blob store that fails: a full disk mid-upload is
//! reported as RESOURCE_EXHAUSTED, leaves nothing behind, and the next
//! upload still works.

use std::{
    any::Any,
    io,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::common::*;
use bytes::Bytes;
use mediastore::{
    blob::{BlobReader, BlobStore, StagedBlob, UploadFile, fs::FsBlobStore},
    domain::{ContentHash, Principal, TenantId},
    library::{Library, Limits, UploadPart},
    repo::Repo,
    service::convert::upload_spec,
};

/// A local store whose staged writes fail with ENOSPC past a size, while
/// `full` is set.
#[derive(Debug)]
struct FullDisk {
    inner: FsBlobStore,
    full: Arc<AtomicBool>,
}

#[derive(Debug)]
struct FullStaged {
    inner: Box<dyn StagedBlob>,
    full: Arc<AtomicBool>,
}

const ROOM: u64 = 3 * MIB as u64;

impl StagedBlob for FullStaged {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) && self.inner.len() + data.len() as u64 > ROOM {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write(data)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self.inner.into_any()
    }
}

impl BlobStore for FullDisk {
    fn stage(&self) -> io::Result<Box<dyn StagedBlob>> {
        Ok(Box::new(FullStaged {
            inner: self.inner.stage()?,
            full: Arc::clone(&self.full),
        }))
    }
    fn publish(&self, batch: Vec<(Box<dyn StagedBlob>, ContentHash)>) -> io::Result<()> {
        self.inner.publish(batch)
    }
    fn barrier_as_published(
        &self,
        batch: Vec<(Box<dyn StagedBlob>, ContentHash)>,
    ) -> io::Result<Vec<Box<dyn StagedBlob>>> {
        self.inner.barrier_as_published(batch)
    }
    fn open(&self, hash: &ContentHash) -> io::Result<Box<dyn BlobReader>> {
        self.inner.open(hash)
    }
    fn exists(&self, hash: &ContentHash) -> io::Result<bool> {
        self.inner.exists(hash)
    }
    fn delete(&self, hash: &ContentHash) -> io::Result<()> {
        self.inner.delete(hash)
    }
    fn clean_staging(&self) -> io::Result<usize> {
        self.inner.clean_staging()
    }
    fn create_upload(&self, id: &str) -> io::Result<()> {
        self.inner.create_upload(id)
    }
    fn open_upload(&self, id: &str, held: u64) -> io::Result<Box<dyn UploadFile>> {
        self.inner.open_upload(id, held)
    }
    fn remove_upload(&self, id: &str) -> io::Result<()> {
        self.inner.remove_upload(id)
    }
    fn upload_files(&self) -> io::Result<Vec<(String, std::time::SystemTime)>> {
        self.inner.upload_files()
    }
    fn list_shard(&self, shard: u8) -> io::Result<Vec<mediastore::blob::StoredBlob>> {
        self.inner.list_shard(shard)
    }
    fn quarantine(&self, hash: &ContentHash) -> io::Result<()> {
        self.inner.quarantine(hash)
    }
    fn remove_stale_staging(&self, before: std::time::SystemTime) -> io::Result<usize> {
        self.inner.remove_stale_staging(before)
    }
    fn health_check(&self) -> io::Result<()> {
        self.inner.health_check()
    }
}

fn open_staged_fds(staging: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|t| t.starts_with(staging))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_mid_upload_is_resource_exhausted_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = test_database(dir.path()).await;
    let repo = Repo::connect(&url).await.unwrap();
    let full = Arc::new(AtomicBool::new(true));
    let store = FullDisk {
        inner: FsBlobStore::open(dir.path()).unwrap(),
        full: Arc::clone(&full),
    };
    let library = Library::start(repo, Arc::new(store), Limits::new(1 << 30))
        .await
        .unwrap();

    let data = content("full", 8 * MIB);
    let chunks = || {
        let pieces: Vec<mediastore::error::Result<UploadPart>> = data
            .chunks(MIB)
            .map(|c| {
                Ok(UploadPart {
                    data: Bytes::copy_from_slice(c),
                    finish: false,
                })
            })
            .collect();
        futures_util::stream::iter(pieces)
    };
    let spec = upload_spec(&Principal::unauthenticated(), header("big.bin", data.len())).unwrap();
    let err = library.upload(spec, chunks()).await.unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("storage is full"), "{status:?}");
    assert_eq!(open_staged_fds(&dir.path().join("tmp")), 0);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(blob_files(dir.path()), 0);
    assert!(
        library
            .list(TenantId::DEFAULT, &Default::default(), None, 10, false)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // Space comes back: the same upload goes through.
    full.store(false, Ordering::SeqCst);
    let spec = upload_spec(&Principal::unauthenticated(), header("big.bin", data.len())).unwrap();
    let done = library.upload(spec, chunks()).await.unwrap();
    assert_eq!(done.media.blob.to_hex(), blake3_hex(&data));
    assert_eq!(blob_files(dir.path()), 1);
}
