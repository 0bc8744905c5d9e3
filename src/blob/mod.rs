//! Content-addressed blob storage.
//!
//! A blob is named by the BLAKE3 of its bytes, so identical content is
//! stored once and a name always means the same bytes. Writing goes through
//! a staging area: bytes land in a [`StagedBlob`]; then
//! [`BlobStore::publish`] names a whole batch of them and makes bytes and
//! names durable, before the database rows that reference them are
//! committed. Durability barriers are per batch, not per blob, so many
//! small uploads share their cost. A crash at any point leaves only staged
//! files (removed at start-up) or unreferenced blobs, which no row trusts.
//!
//! The API is blocking: callers run it on Tokio's blocking pool, where file
//! I/O belongs. The local directory store is [`fs::FsBlobStore`]; an
//! S3-compatible store implements the same traits.
//!
//! Blobs at or under the inline size never reach a store: they live in
//! the database ([`inline`]).
//!
//! Resumable uploads keep their bytes in an [`UploadFile`] each, named by
//! the upload, which becomes a staged blob when the upload finishes.

pub mod fs;
pub mod inline;
pub mod metered;
pub mod s3;
pub mod stream;

use std::{any::Any, fmt, io, time::SystemTime};

use crate::domain::ContentHash;

/// Bytes being written, not yet visible under any name. Dropping a staged
/// blob without publishing it removes it.
pub trait StagedBlob: Send + Sync + fmt::Debug {
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Bytes written so far.
    fn len(&self) -> u64;
    /// True when nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads up to `buf.len()` written bytes at `offset`; 0 means the end.
    /// Analysis reads the content here, before it is published.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Makes the written bytes durable now. Optional: `publish` makes any
    /// unsynced bytes durable anyway; a large upload calls it from its own
    /// writer thread so that the batch's barrier finds little left to do.
    fn sync(&mut self) -> io::Result<()>;
    /// True for bytes held in memory ([`inline::MemStaged`]): the commit
    /// writes them to the database instead of publishing them.
    fn in_memory(&self) -> bool {
        false
    }
    /// For the store that made it, to recover its own type in `publish`.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// The file of a resumable upload: the bytes received so far, kept across
/// streams and restarts until the upload finishes or is discarded.
pub trait UploadFile: Send + Sync + fmt::Debug {
    /// Bytes in the file.
    fn len(&self) -> u64;
    /// True when nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends bytes.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; 0 means end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Makes every byte written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// A call that makes every byte written before it durable, to run on
    /// another thread while writing goes on.
    fn sync_handle(&self) -> io::Result<Box<dyn FnOnce() -> io::Result<()> + Send>>;
    /// The (synced) bytes as a staged blob, for [`BlobStore::publish`].
    fn into_staged(self: Box<Self>) -> Box<dyn StagedBlob>;
}

/// A blob as listed by [`BlobStore::list_shard`].
#[derive(Debug, Clone, Copy)]
pub struct StoredBlob {
    /// Its name.
    pub hash: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last named or written: a blob younger than a commit's
    /// longest duration may belong to a commit still running.
    pub changed: SystemTime,
}

/// Random access to one stored blob.
pub trait BlobReader: Send + Sync + fmt::Debug {
    /// Size of the blob in bytes.
    fn len(&self) -> u64;
    /// True for the empty blob.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads up to `buf.len()` bytes at `offset`; 0 means end of blob.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The whole blob, when it is in memory already: a reader can then
    /// send it without reading (or a trip to the blocking pool).
    fn bytes(&self) -> Option<bytes::Bytes> {
        None
    }
    /// `len` bytes at `offset`, as one buffer to send: a store may hand
    /// out its own memory (a mapped file) instead of copying into a new
    /// one. Bytes that end first are `ErrorKind::UnexpectedEof`.
    fn read_bytes(&self, offset: u64, len: usize) -> io::Result<bytes::Bytes> {
        read_new(|b, at| self.read_at(b, at), offset, len)
    }
}

/// `len` bytes at `offset` through `read_at`, in a new buffer.
pub fn read_new(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    offset: u64,
    len: usize,
) -> io::Result<bytes::Bytes> {
    let mut buf = bytes::BytesMut::zeroed(len);
    read_exact_at(read_at, &mut buf, offset)?;
    Ok(buf.freeze())
}

/// The range of `len` bytes at `offset` in a blob of `size` bytes;
/// `ErrorKind::UnexpectedEof` when it passes the end.
pub fn range_in(offset: u64, len: usize, size: usize) -> io::Result<std::ops::Range<usize>> {
    usize::try_from(offset)
        .ok()
        .and_then(|from| Some(from..from.checked_add(len)?))
        .filter(|r| r.end <= size)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{len} bytes at {offset} are past the end of a blob of {size} bytes"),
            )
        })
}

/// A place that stores blobs by content hash.
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// Opens a new staging area for incoming bytes.
    fn stage(&self) -> io::Result<Box<dyn StagedBlob>>;
    /// Durably names each staged blob by its hash, with durability barriers
    /// shared by the whole batch. Callers pass only hashes that no committed
    /// row names yet (while holding their rows' locks), so a blob already
    /// stored under such a name is a leftover of a crash and is replaced.
    fn publish(&self, batch: Vec<(Box<dyn StagedBlob>, ContentHash)>) -> io::Result<()>;
    /// Pays, for staged copies of blobs stored already, the durability
    /// barriers [`Self::publish`] would have paid, without naming them, and
    /// gives them back to be dropped: an upload of bytes only another
    /// tenant holds must take as long as one of new bytes, or its time
    /// would tell that someone else has them.
    fn barrier_as_published(
        &self,
        batch: Vec<(Box<dyn StagedBlob>, ContentHash)>,
    ) -> io::Result<Vec<Box<dyn StagedBlob>>>;
    /// Opens a blob for reading; `ErrorKind::NotFound` if it is absent.
    fn open(&self, hash: &ContentHash) -> io::Result<Box<dyn BlobReader>>;
    /// Whether a blob of that name is stored.
    fn exists(&self, hash: &ContentHash) -> io::Result<bool>;
    /// Removes a blob; removing an absent blob is not an error.
    fn delete(&self, hash: &ContentHash) -> io::Result<()>;
    /// Removes staged bytes left by a crash or a killed process. Called at
    /// start-up, before any upload can be in flight.
    fn clean_staging(&self) -> io::Result<usize>;
    /// Creates the empty file of upload `id`, durably.
    fn create_upload(&self, id: &str) -> io::Result<()>;
    /// Opens the file of upload `id`, cut to `held` bytes: bytes past what
    /// was recorded as durable were never acknowledged. A missing file, or
    /// one shorter than `held`, is `ErrorKind::NotFound` / `InvalidData`.
    fn open_upload(&self, id: &str, held: u64) -> io::Result<Box<dyn UploadFile>>;
    /// Removes the file of upload `id`; an absent file is not an error.
    fn remove_upload(&self, id: &str) -> io::Result<()>;
    /// Every upload file present: its upload id and when it last changed.
    fn upload_files(&self) -> io::Result<Vec<(String, SystemTime)>>;
    /// The blobs stored whose hash starts with byte `shard` (one 256th of
    /// the store, so a walk of the whole store holds little at a time).
    fn list_shard(&self, shard: u8) -> io::Result<Vec<StoredBlob>>;
    /// Moves a blob out of the store, keeping its bytes aside for
    /// inspection: its name is free for a correct copy, and reads of it
    /// fail until one arrives.
    fn quarantine(&self, hash: &ContentHash) -> io::Result<()>;
    /// Removes staged files untouched since `before` (a crashed upload's,
    /// where the file system lacks unnamed temporary files). Returns how
    /// many.
    fn remove_stale_staging(&self, before: SystemTime) -> io::Result<usize>;
    /// Checks that the store can be written (for the health service),
    /// leaving nothing behind.
    fn health_check(&self) -> io::Result<()>;
}

/// Fills `buf` with the bytes at `offset` through `read_at` (any of the
/// `read_at` methods above), retrying interrupted reads. Bytes that end
/// first are `ErrorKind::UnexpectedEof`, naming where they ended.
pub fn read_exact_at(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset + done as u64;
        match read_at(&mut buf[done..], at) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the bytes end at {at}, short of {}",
                        offset + buf.len() as u64
                    ),
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
