//! Blobs as files in a local directory.
//!
//! Layout under the data directory:
//! - `blobs/ab/<64 hex>`: a blob, sharded by the first byte of its hash
//!   into 256 directories created at start-up, so a directory holds
//!   1/256 of the files and a batch's directory fsyncs stay few.
//! - `tmp/`: staging, on the same file system as `blobs/`. A staged blob is
//!   an unnamed `O_TMPFILE` inode there: creating one takes no directory
//!   lock (32 concurrent uploads creating named files in one directory
//!   spend most of their time spinning on its lock), and a crash leaves
//!   nothing behind. It gets its content name with `linkat`. Where the file
//!   system lacks `O_TMPFILE`, staging falls back to `tmp/<uuid>.part`
//!   files published by `rename`, which start-up removes after a crash.
//!
//! - `uploads/<upload id>`: the bytes of an unfinished resumable upload;
//!   renamed into `blobs/` when it finishes.
//! - `quarantine/<64 hex>.<unix time>`: blobs a scrub found not matching
//!   their name, kept for inspection.
//!
//! Durability per batch: the blobs are linked to their names, then one
//! barrier makes bytes and names durable together: one `syncfs` for a large
//! batch, or fsyncs of the few files and directories of a small one. A
//! file-at-a-time writer pays two fsyncs per file instead. Bytes need not
//! be durable before their name because nothing trusts a name until the
//! database row that references it commits, after the barrier.

use std::{
    any::Any,
    collections::BTreeSet,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{BlobReader, BlobStore, StagedBlob, StoredBlob, UploadFile};
use crate::domain::ContentHash;

/// Start kernel writeback after this many unflushed bytes, so the final
/// fsync of a large upload has little left to do and the disk works while
/// the network is still delivering.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;
/// Above this many touched shard directories, one `syncfs` is cheaper than
/// fsyncing each file and directory.
const DIR_FSYNC_LIMIT: usize = 8;

/// The local-directory blob store.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    /// `<data>/blobs`.
    blobs: PathBuf,
    /// `<data>/tmp`.
    staging: PathBuf,
    /// `<data>/uploads`.
    uploads: PathBuf,
    /// `<data>/quarantine`: blobs whose bytes no longer match their name.
    quarantine: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let blobs = data_dir.join("blobs");
        let staging = data_dir.join("tmp");
        let uploads = data_dir.join("uploads");
        let quarantine = data_dir.join("quarantine");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&staging)?;
        for dir in [&uploads, &quarantine] {
            if !dir.is_dir() {
                fs::create_dir(dir)?;
                sync_dir(data_dir)?;
            }
        }
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
        Ok(Self {
            blobs,
            staging,
            uploads,
            quarantine,
        })
    }

    /// Only the staging area of a store in `dir` (`dir/tmp`): for a store
    /// that keeps its blobs elsewhere ([`super::s3`]) and spools incoming
    /// bytes on local disk. Only `stage`, `clean_staging` and
    /// `remove_stale_staging` apply to it.
    pub fn staging_only(dir: &Path) -> io::Result<Self> {
        let staging = dir.join("tmp");
        fs::create_dir_all(&staging)?;
        Ok(Self {
            blobs: dir.join("blobs"),
            staging,
            uploads: dir.join("uploads"),
            quarantine: dir.join("quarantine"),
        })
    }

    /// A staged file: unnamed if the file system allows, else named.
    fn create_staged(&self) -> io::Result<(File, Option<PathBuf>)> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_TMPFILE)
            .open(&self.staging)
        {
            Ok(file) => return Ok((file, None)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) => {}
            Err(e) => return Err(e),
        }
        let path = self
            .staging
            .join(format!("{}.part", uuid::Uuid::now_v7().simple()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((file, Some(path)))
    }

    fn shard_dir(&self, hash: &ContentHash) -> PathBuf {
        self.blobs.join(format!("{:02x}", hash.0[0]))
    }

    /// Where the bytes of upload `id` live; `id` must be a plain name.
    fn upload_path(&self, id: &str) -> io::Result<PathBuf> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not an upload id"),
            ));
        }
        Ok(self.uploads.join(id))
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

/// The staged blobs of a batch, as this store's own type.
fn own_staged(
    batch: Vec<(Box<dyn StagedBlob>, ContentHash)>,
) -> io::Result<Vec<(Box<FsStaged>, ContentHash)>> {
    batch
        .into_iter()
        .map(|(blob, hash)| {
            blob.into_any()
                .downcast::<FsStaged>()
                .map(|b| (b, hash))
                .map_err(|_| io::Error::other("a staged blob from another store"))
        })
        .collect()
}

impl FsBlobStore {
    /// Makes the bytes of `staged` and the entries of the `shards`
    /// directories durable: each file's fsync (unless done) and each
    /// directory's, or one `syncfs` when the shards are too many for that
    /// to be cheaper.
    ///
    /// `width` is how many shard directories a publish of the batch names
    /// blobs in: it decides between the two, so that a batch of copies
    /// named in `dirs` = staging pays what its publish would have.
    fn barrier(
        &self,
        staged: &[(Box<FsStaged>, ContentHash)],
        dirs: &BTreeSet<PathBuf>,
        width: usize,
    ) -> io::Result<()> {
        if width > DIR_FSYNC_LIMIT {
            sync_fs(&self.blobs)
        } else {
            for (blob, _) in staged {
                if !blob.synced {
                    blob.file.sync_all()?;
                }
            }
            dirs.iter().try_for_each(|d| sync_dir(d))
        }
    }
}

/// Flushes every dirty page and inode of the file system holding `dir`.
fn sync_fs(dir: &Path) -> io::Result<()> {
    rustix::fs::syncfs(File::open(dir)?).map_err(io::Error::from)
}

impl BlobStore for FsBlobStore {
    fn stage(&self) -> io::Result<Box<dyn StagedBlob>> {
        let (file, path) = self.create_staged()?;
        Ok(Box::new(FsStaged {
            file,
            path,
            len: 0,
            flushed_to: 0,
            synced: false,
        }))
    }

    fn publish(&self, batch: Vec<(Box<dyn StagedBlob>, ContentHash)>) -> io::Result<()> {
        let mut staged = own_staged(batch)?;
        let mut shards = BTreeSet::new();
        for (blob, hash) in &mut staged {
            let dir = self.shard_dir(hash);
            blob.link_as(&dir.join(hash.to_hex()))?;
            shards.insert(dir);
        }
        // One barrier for the bytes and the names alike: until it returns
        // no row names these blobs, and a name left without its bytes by a
        // crash is replaced by the next publish of that hash.
        self.barrier(&staged, &shards, shards.len())
    }

    fn barrier_as_published(
        &self,
        batch: Vec<(Box<dyn StagedBlob>, ContentHash)>,
    ) -> io::Result<Vec<Box<dyn StagedBlob>>> {
        if batch.is_empty() {
            // Nothing to pay for (a batch with only new bytes).
            return Ok(Vec::new());
        }
        let mut staged = own_staged(batch)?;
        let width = staged
            .iter()
            .map(|(_, h)| self.shard_dir(h))
            .collect::<BTreeSet<_>>()
            .len();
        // A publish writes a name, so its directory fsync commits one;
        // with no name written that fsync finds nothing to do and the
        // upload was measurably quicker (0.92 of new bytes at 1 MiB). So
        // each copy gets a throwaway name in staging, made durable by the
        // same barrier, and removed when the copy is dropped after the
        // answer (or by start-up's cleaning of staging after a crash).
        for (blob, _) in &mut staged {
            blob.name_in(&self.staging)?;
        }
        let dirs = BTreeSet::from([self.staging.clone()]);
        self.barrier(&staged, &dirs, width)?;
        Ok(staged
            .into_iter()
            .map(|(blob, _)| blob as Box<dyn StagedBlob>)
            .collect())
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

    fn create_upload(&self, id: &str) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.upload_path(id)?)?;
        file.sync_all()?;
        sync_dir(&self.uploads)
    }

    fn open_upload(&self, id: &str, held: u64) -> io::Result<Box<dyn UploadFile>> {
        let path = self.upload_path(id)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        if len < held {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "upload file {} has {len} bytes, fewer than the {held} recorded",
                    path.display()
                ),
            ));
        }
        if len > held {
            file.set_len(held)?;
        }
        Ok(Box::new(FsUpload {
            file,
            path,
            len: held,
            flushed_to: held,
        }))
    }

    fn remove_upload(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.upload_path(id)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn upload_files(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.uploads)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                files.push((name.to_string(), changed(&entry.metadata()?)));
            }
        }
        Ok(files)
    }

    fn list_shard(&self, shard: u8) -> io::Result<Vec<StoredBlob>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(self.blobs.join(format!("{shard:02x}")))? {
            let entry = entry?;
            let Some(hash) = entry
                .file_name()
                .to_str()
                .and_then(|n| blake3::Hash::from_hex(n).ok())
            else {
                continue;
            };
            let meta = entry.metadata()?;
            if meta.is_file() {
                found.push(StoredBlob {
                    hash: hash.into(),
                    size: meta.len(),
                    changed: changed(&meta),
                });
            }
        }
        Ok(found)
    }

    fn quarantine(&self, hash: &ContentHash) -> io::Result<()> {
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let target = self.quarantine.join(format!("{}.{stamp}", hash.to_hex()));
        fs::rename(self.path_of(hash), target)?;
        sync_dir(&self.quarantine)?;
        sync_dir(&self.shard_dir(hash))
    }

    fn remove_stale_staging(&self, before: SystemTime) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.staging)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && changed(&meta) < before {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    fn health_check(&self) -> io::Result<()> {
        // The same path an upload takes, dropped before it gets a name.
        let mut probe = self.stage()?;
        probe.write(b"ok")?;
        probe.sync()
    }
}

/// A staged file in `tmp/`.
#[derive(Debug)]
struct FsStaged {
    file: File,
    /// `None` for an unnamed `O_TMPFILE` inode; else the temporary name,
    /// removed on drop unless it was renamed.
    path: Option<PathBuf>,
    len: u64,
    /// Bytes already handed to kernel writeback.
    flushed_to: u64,
    /// Whether the bytes were fsynced.
    synced: bool,
}

impl FsStaged {
    /// Gives the bytes the name `target`, replacing a file already there:
    /// the caller publishes only hashes that no committed row names, so
    /// such a file is an orphan a crash left, possibly incomplete.
    fn link_as(&mut self, target: &Path) -> io::Result<()> {
        if let Some(path) = &self.path {
            fs::rename(path, target)?;
            self.path = None;
            return Ok(());
        }
        match self.link(target) {
            Err(rustix::io::Errno::EXIST) => {
                fs::remove_file(target)?;
                self.link(target).map_err(io::Error::from)
            }
            res => res.map_err(io::Error::from),
        }
    }

    /// Gives an unnamed file a fresh `<uuid>.part` name in `staging`, the
    /// names that start-up removes; a named one keeps its name there.
    fn name_in(&mut self, staging: &Path) -> io::Result<()> {
        if self.path.is_none() {
            let path = staging.join(format!("{}.part", uuid::Uuid::now_v7().simple()));
            self.link(&path)?;
            self.path = Some(path);
        }
        Ok(())
    }

    /// Links the unnamed file to `target`.
    fn link(&self, target: &Path) -> rustix::io::Result<()> {
        use std::os::fd::AsRawFd;
        rustix::fs::linkat(
            rustix::fs::CWD,
            format!("/proc/self/fd/{}", self.file.as_raw_fd()),
            rustix::fs::CWD,
            target,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
    }
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

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()?;
        self.synced = true;
        Ok(())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl Drop for FsStaged {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }
}

/// When a file last changed: its inode change time, which naming it
/// (rename, link) and writing it both move.
fn changed(meta: &fs::Metadata) -> SystemTime {
    let secs = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

/// The file of a resumable upload.
#[derive(Debug)]
struct FsUpload {
    file: File,
    path: PathBuf,
    len: u64,
    /// Bytes already handed to kernel writeback.
    flushed_to: u64,
}

impl UploadFile for FsUpload {
    fn len(&self) -> u64 {
        self.len
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, self.len)?;
        self.len += data.len() as u64;
        if self.len - self.flushed_to >= WRITEBACK_STEP {
            start_writeback(&self.file, self.flushed_to, self.len - self.flushed_to);
            self.flushed_to = self.len;
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_handle(&self) -> io::Result<Box<dyn FnOnce() -> io::Result<()> + Send>> {
        let file = self.file.try_clone()?;
        Ok(Box::new(move || file.sync_data()))
    }

    fn into_staged(self: Box<Self>) -> Box<dyn StagedBlob> {
        Box::new(FsStaged {
            file: self.file,
            path: Some(self.path),
            len: self.len,
            flushed_to: self.len,
            synced: true,
        })
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

/// A mapped range of a blob file, owned by the `Bytes` a download sends:
/// the bytes go from the page cache into the response frame in one copy,
/// where a read into a buffer first would copy twice. Each chunk maps only
/// its own range and unmaps when sent, so a download holds no more of the
/// file than its read-ahead. Blob files are never written or truncated
/// once named (content-addressed; a scrub moves one, a delete unlinks it,
/// and neither changes the mapped inode), so a mapping cannot shrink under
/// its reader.
struct MappedChunk(memmap2::Mmap);

impl AsRef<[u8]> for MappedChunk {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl BlobReader for FsReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn read_bytes(&self, offset: u64, len: usize) -> io::Result<bytes::Bytes> {
        let in_file = usize::try_from(self.len).unwrap_or(usize::MAX);
        super::range_in(offset, len, in_file)?;
        if len == 0 {
            return Ok(bytes::Bytes::new());
        }
        // SAFETY: the file is a named blob, which nothing writes or
        // truncates (see `MappedChunk`); the map is only read.
        #[allow(unsafe_code)]
        let mapped = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map(&self.file)
        };
        match mapped {
            Ok(map) => {
                // Read ahead: the chunk is about to be copied whole.
                let _ = map.advise(memmap2::Advice::WillNeed);
                Ok(bytes::Bytes::from_owner(MappedChunk(map)))
            }
            // A file system without mmap: the plain way.
            Err(_) => super::read_new(|b, at| self.read_at(b, at), offset, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replaces_orphans_and_drop_cleans_staging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        let hash = ContentHash::from(blake3::hash(b"hello"));
        // A crash left a name with incomplete bytes; publishing replaces it.
        fs::write(store.path_of(&hash), b"hel").expect("orphan");
        let mut s = store.stage().expect("stage");
        s.write(b"hello").expect("write");
        store.publish(vec![(s, hash)]).expect("publish");
        assert_eq!(fs::read(store.path_of(&hash)).expect("read"), b"hello");
        let r = store.open(&hash).expect("open");
        let mut buf = [0u8; 16];
        let n = r.read_at(&mut buf, 1).expect("read");
        assert_eq!(&buf[..n], b"ello");

        let mut abandoned = store.stage().expect("stage");
        abandoned.write(b"partial").expect("write");
        drop(abandoned);
        // A batch large enough for the syncfs barrier.
        let mut batch = Vec::new();
        for i in 0..(DIR_FSYNC_LIMIT as u8 * 3) {
            let mut s = store.stage().expect("stage");
            s.write(&[i; 10]).expect("write");
            batch.push((s, ContentHash::from(blake3::hash(&[i; 10]))));
        }
        let hashes: Vec<ContentHash> = batch.iter().map(|(_, h)| *h).collect();
        store.publish(batch).expect("publish");
        for h in &hashes {
            assert!(store.exists(h).expect("exists"));
            store.delete(h).expect("delete");
        }
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);

        store.delete(&hash).expect("delete");
        store.delete(&hash).expect("delete twice is fine");
        assert!(!store.exists(&hash).expect("exists"));
    }

    #[test]
    fn a_copy_given_the_barrier_and_dropped_leaves_the_blob_and_nothing_staged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        let hash = ContentHash::from(blake3::hash(b"held"));
        let mut s = store.stage().expect("stage");
        s.write(b"held").expect("write");
        store.publish(vec![(s, hash)]).expect("publish");
        let mut copy = store.stage().expect("stage");
        copy.write(b"held").expect("write");
        let back = store
            .barrier_as_published(vec![(copy, hash)])
            .expect("barrier");
        assert_eq!(back.len(), 1);
        // It was given a name, as a publish would: the barrier commits one.
        let named = fs::read_dir(dir.path().join("tmp")).expect("ls").count();
        assert_eq!(named, 1);
        drop(back);
        assert_eq!(fs::read(store.path_of(&hash)).expect("read"), b"held");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);
    }
}
