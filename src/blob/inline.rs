//! Small blobs, kept inline in the database instead of in the blob store.
//!
//! Storing a blob in a store costs about the same whatever its size: a
//! file, an inode, a directory entry and their fsyncs on a local disk; a
//! PUT of a few milliseconds on object storage. A thumbnail or an API
//! payload of a few KiB pays that many times over. So blobs at or under
//! the server's inline size (`--inline-max-size`, 64 KiB by default) live
//! in the database, in the `inline_blobs` table, keyed by the same BLAKE3
//! as their `blobs` row, which keeps counting their references: a small
//! upload becomes a row in its batch's transaction, made durable by the
//! commit it needed anyway.
//!
//! The placement is decided before any store is involved (the library
//! stages a small upload as [`MemStaged`], never asking the store), so
//! every [`super::BlobStore`] — the local directory now, object storage
//! later — only ever sees blobs above the inline size. Reads of inline
//! bytes come back as a [`MemReader`], which the download path sends
//! without a trip to the blocking pool.

use std::{any::Any, fmt, io};

use bytes::Bytes;

use super::{BlobReader, StagedBlob};

/// Largest inline size the server accepts: rows bigger than this would
/// make the database the blob store (SQLite keeps a row's pages inline
/// with the table, PostgreSQL moves values past 2 KiB to TOAST anyway).
/// Reads look for inline bytes for sizes up to this, so that lowering the
/// inline size later never hides blobs stored inline before.
pub const INLINE_MAX: u64 = 1024 * 1024;

/// Bytes of a small upload, held in memory until the commit writes them
/// to the database.
#[derive(Default)]
pub struct MemStaged {
    data: Vec<u8>,
}

impl MemStaged {
    /// Staged bytes, from one buffer.
    pub fn new(data: Vec<u8>) -> Self {
        Self { data }
    }

    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.data
    }
}

impl fmt::Debug for MemStaged {
    // The payload stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemStaged")
            .field("len", &self.data.len())
            .finish()
    }
}

impl StagedBlob for MemStaged {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(copy_at(&self.data, buf, offset))
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn in_memory(&self) -> bool {
        true
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// The bytes of a staged blob that [`StagedBlob::in_memory`] says are in
/// memory; `None` (and the blob gone) for any other.
pub fn take_in_memory(staged: Box<dyn StagedBlob>) -> Option<Vec<u8>> {
    staged
        .into_any()
        .downcast::<MemStaged>()
        .ok()
        .map(|m| m.into_inner())
}

/// A blob read from the database.
pub struct MemReader(Bytes);

impl MemReader {
    /// A reader over `data`.
    pub fn new(data: Bytes) -> Self {
        Self(data)
    }
}

impl fmt::Debug for MemReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemReader").field(&self.0.len()).finish()
    }
}

impl BlobReader for MemReader {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(copy_at(&self.0, buf, offset))
    }

    fn bytes(&self) -> Option<Bytes> {
        Some(self.0.clone())
    }

    fn read_bytes(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        Ok(self.0.slice(super::range_in(offset, len, self.0.len())?))
    }
}

/// Copies what `data` has at `offset` into `buf`; 0 past the end.
fn copy_at(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| data.get(o..)) else {
        return 0;
    };
    let n = rest.len().min(buf.len());
    buf[..n].copy_from_slice(&rest[..n]);
    n
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_any_offset_and_stop_at_the_end() {
        let mut staged = MemStaged::default();
        staged.write(b"hello ").unwrap();
        staged.write(b"world").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(staged.read_at(&mut buf, 6).unwrap(), 4);
        assert_eq!(&buf, b"worl");
        assert_eq!(staged.read_at(&mut buf, 9).unwrap(), 2);
        assert_eq!(staged.read_at(&mut buf, 11).unwrap(), 0);
        assert_eq!(staged.read_at(&mut buf, u64::MAX).unwrap(), 0);
        let boxed: Box<dyn StagedBlob> = Box::new(staged);
        assert!(boxed.in_memory());
        let data = take_in_memory(boxed).unwrap();
        let reader = MemReader::new(Bytes::from(data));
        assert_eq!(reader.len(), 11);
        assert_eq!(reader.bytes().unwrap(), &b"hello world"[..]);
        assert_eq!(reader.read_at(&mut buf, 0).unwrap(), 4);
        assert_eq!(&buf, b"hell");
    }
}
