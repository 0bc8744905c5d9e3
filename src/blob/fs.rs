//! Blobs as files in a local directory.
//!
//! Layout under the data directory:
//! - `blobs/ab/<64 hex>`: a blob, sharded by the first byte of its hash
//!   into 256 directories created at start-up, so a directory holds
//!   1/256 of the files and a batch's directory fsyncs stay few.
//! - `tmp/<uuid>.part`: staged bytes; on the same file system as `blobs/`,
//!   so publishing is an atomic `rename`.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::{BlobReader, BlobStore, StagedBlob};
use crate::domain::ContentHash;

/// Start kernel writeback after this many unflushed bytes, so the final
/// fsync of a large upload has little left to do and the disk works while
/// the network is still delivering.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// The local-directory blob store.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    /// `<data>/blobs`.
    blobs: PathBuf,
    /// `<data>/tmp`.
    staging: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let blobs = data_dir.join("blobs");
        let staging = data_dir.join("tmp");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&staging)?;
        let mut created = false;
        for shard in 0..=255u8 {
            let dir = blobs.join(format!("{shard:02x}"));
            if !dir.is_dir() {
                fs::create_dir(&dir)?;
                created = true;
            }
        }
        if created {
            sync_dir(&blobs)?;
            sync_dir(data_dir)?;
        }
        Ok(Self { blobs, staging })
    }

    fn shard_dir(&self, hash: &ContentHash) -> PathBuf {
        self.blobs.join(format!("{:02x}", hash.0[0]))
    }

    /// Where the blob named `hash` lives.
    pub fn path_of(&self, hash: &ContentHash) -> PathBuf {
        self.shard_dir(hash).join(hash.to_hex())
    }
}

/// fsyncs a directory so the names in it (renames, creations) are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobStore for FsBlobStore {
    fn stage(&self) -> io::Result<Box<dyn StagedBlob>> {
        let path = self
            .staging
            .join(format!("{}.part", uuid::Uuid::now_v7().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Box::new(FsStaged {
            file,
            path,
            final_dir: self.blobs.clone(),
            len: 0,
            flushed_to: 0,
            published: false,
        }))
    }

    fn sync_published(&self, hashes: &[ContentHash]) -> io::Result<()> {
        let mut shards: Vec<u8> = hashes.iter().map(|h| h.0[0]).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            sync_dir(&self.blobs.join(format!("{shard:02x}")))?;
        }
        Ok(())
    }

    fn open(&self, hash: &ContentHash) -> io::Result<Box<dyn BlobReader>> {
        let file = File::open(self.path_of(hash))?;
        let len = file.metadata()?.len();
        Ok(Box::new(FsReader { file, len }))
    }

    fn exists(&self, hash: &ContentHash) -> io::Result<bool> {
        self.path_of(hash).try_exists()
    }

    fn delete(&self, hash: &ContentHash) -> io::Result<()> {
        match fs::remove_file(self.path_of(hash)) {
            Ok(()) => sync_dir(&self.shard_dir(hash)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn clean_staging(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.staging)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn health_check(&self) -> io::Result<()> {
        let probe = self.staging.join(".health");
        fs::write(&probe, b"ok")?;
        fs::remove_file(&probe)
    }
}

/// A staged file in `tmp/`.
#[derive(Debug)]
struct FsStaged {
    file: File,
    path: PathBuf,
    /// `<data>/blobs`, to compute the final name at publish time.
    final_dir: PathBuf,
    len: u64,
    /// Bytes already handed to kernel writeback.
    flushed_to: u64,
    /// Set once renamed, so `Drop` leaves the final file alone.
    published: bool,
}

impl StagedBlob for FsStaged {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        if self.len - self.flushed_to >= WRITEBACK_STEP {
            start_writeback(&self.file, self.flushed_to, self.len - self.flushed_to);
            self.flushed_to = self.len;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn publish(mut self: Box<Self>, hash: &ContentHash) -> io::Result<()> {
        let dir = self.final_dir.join(format!("{:02x}", hash.0[0]));
        let target = dir.join(hash.to_hex());
        if target.try_exists()? {
            // Same name, same bytes: keep the blob in place and let `Drop`
            // remove the staged copy.
            return Ok(());
        }
        fs::rename(&self.path, &target)?;
        self.published = true;
        Ok(())
    }
}

impl Drop for FsStaged {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Asks the kernel to start writing a range back to disk without waiting,
/// so data streams to the disk during the upload instead of all at the end.
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the fd is
    // owned by `file`, which outlives the call. It is a hint: errors are
    // ignored because the final fsync reports any real I/O failure.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// An open blob file.
#[derive(Debug)]
struct FsReader {
    file: File,
    len: u64,
}

impl BlobReader for FsReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_is_idempotent_and_drop_cleans_staging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        let hash = ContentHash::from(blake3::hash(b"hello"));
        for _ in 0..2 {
            let mut s = store.stage().expect("stage");
            s.write(b"hello").expect("write");
            s.sync().expect("sync");
            s.publish(&hash).expect("publish");
        }
        store.sync_published(&[hash]).expect("sync dirs");
        assert!(store.exists(&hash).expect("exists"));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);
        let r = store.open(&hash).expect("open");
        let mut buf = [0u8; 16];
        let n = r.read_at(&mut buf, 1).expect("read");
        assert_eq!(&buf[..n], b"ello");

        let mut abandoned = store.stage().expect("stage");
        abandoned.write(b"partial").expect("write");
        drop(abandoned);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);

        store.delete(&hash).expect("delete");
        store.delete(&hash).expect("delete twice is fine");
        assert!(!store.exists(&hash).expect("exists"));
    }
}
