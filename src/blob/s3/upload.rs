//! Resumable uploads' bytes in the object store, where every replica
//! finds them.
//!
//! S3 objects cannot grow, so an upload is a run of segments
//! (`uploads/<id>/<start>`), each closed once it holds a part's worth of
//! bytes (at least S3's 5 MiB minimum, so the segments can later be the
//! parts of one object), and one open segment (`.../<start>.open`), put
//! again whole at each sync. The open segment's bytes are also held in
//! memory (at most about a part), so appends and syncs need no reads.
//!
//! A closed segment and an open one never share a key: a sync still
//! running when a segment closes can only leave a stale `.open` object,
//! which a closed segment at the same start outranks. Opening an upload
//! lists its segments and keeps exactly the `held` bytes the database
//! recorded: a segment past them is deleted, one across them becomes the
//! open segment again, cut.
//!
//! Finishing joins the segments inside the store into the blob's object
//! (`UploadPartCopy`), and sends the open segment's bytes as the last part.

use std::{any::Any, io, sync::Arc, time::SystemTime};

use bytes::Bytes;

use super::{Piece, Shared};
use crate::blob::{StagedBlob, UploadFile};

/// Suffix of the open segment's key.
const OPEN: &str = ".open";

/// The key prefix of upload `id`'s objects; `id` must be a plain name.
fn dir(shared: &Shared, id: &str) -> io::Result<String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{id:?} is not an upload id"),
        ));
    }
    Ok(format!("{}uploads/{id}/", shared.prefix))
}

fn segment_key(dir: &str, start: u64) -> String {
    format!("{dir}{start:020}")
}

fn open_key(dir: &str, start: u64) -> String {
    format!("{dir}{start:020}{OPEN}")
}

/// Creates upload `id`: an empty open segment at 0, which marks it as
/// existing.
pub(super) fn create(shared: &Shared, id: &str) -> io::Result<()> {
    let dir = dir(shared, id)?;
    shared.block(shared.put(&open_key(&dir, 0), Bytes::new()))
}

/// Removes every object of upload `id`.
pub(super) fn remove(shared: &Shared, id: &str) -> io::Result<()> {
    let dir = dir(shared, id)?;
    shared.block(async {
        for (key, _, _) in shared.list(&dir).await? {
            shared.delete(&key).await?;
        }
        Ok(())
    })
}

/// Every upload present, and when its objects last changed.
pub(super) fn list(shared: &Shared) -> io::Result<Vec<(String, SystemTime)>> {
    let prefix = format!("{}uploads/", shared.prefix);
    let listed = shared.block(shared.list(&prefix))?;
    let mut out: Vec<(String, SystemTime)> = Vec::new();
    for (key, _, changed) in listed {
        let Some((id, _)) = key.strip_prefix(&prefix).and_then(|r| r.split_once('/')) else {
            continue;
        };
        match out.last_mut() {
            Some((last, when)) if last == id => *when = (*when).max(changed),
            _ => out.push((id.to_string(), changed)),
        }
    }
    Ok(out)
}

/// Opens upload `id` holding exactly `held` bytes.
pub(super) fn open(shared: &Arc<Shared>, id: &str, held: u64) -> io::Result<S3Upload> {
    let dir = dir(shared, id)?;
    shared.block(async {
        let mut closed: Vec<(u64, u64)> = Vec::new();
        let mut open: Vec<(u64, u64)> = Vec::new();
        for (key, size, _) in shared.list(&dir).await? {
            let Some(name) = key.strip_prefix(&dir) else {
                continue;
            };
            let (digits, is_open) = match name.strip_suffix(OPEN) {
                Some(d) => (d, true),
                None => (name, false),
            };
            let Ok(start) = digits.parse::<u64>() else {
                continue;
            };
            if is_open { &mut open } else { &mut closed }.push((start, size));
        }
        if closed.is_empty() && open.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("upload {id} has no objects in the store"),
            ));
        }
        closed.sort_unstable();
        // The closed segments that lie wholly within `held`, in a run
        // from 0.
        let mut segments = Vec::new();
        let mut at = 0;
        let mut stale = Vec::new();
        for (start, len) in closed {
            if start == at && start + len <= held {
                segments.push((start, len));
                at += len;
            } else {
                stale.push(segment_key(&dir, start));
            }
        }
        // The rest of `held` comes from the segment that starts at `at`:
        // a closed one cut at `held` (its later bytes were never
        // recorded), else the open one.
        let rest = usize::try_from(held - at.min(held)).map_err(io::Error::other)?;
        let from = if stale.contains(&segment_key(&dir, at)) {
            segment_key(&dir, at)
        } else {
            open_key(&dir, at)
        };
        let tail = if rest == 0 {
            Vec::new()
        } else {
            let bytes = shared.get_range(&from, 0, rest).await?;
            if bytes.len() < rest {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "upload {id} holds {} bytes in the store, fewer than the {held} recorded",
                        at + bytes.len() as u64
                    ),
                ));
            }
            bytes.to_vec()
        };
        // Bytes cut from a closed segment are put back as the open one
        // before that segment goes: they are recorded, so never absent.
        if rest > 0 && from != open_key(&dir, at) {
            shared
                .put(&open_key(&dir, at), Bytes::copy_from_slice(&tail))
                .await?;
        }
        for key in stale {
            shared.delete(&key).await?;
        }
        for (start, _) in open {
            if start != at {
                shared.delete(&open_key(&dir, start)).await?;
            }
        }
        Ok(S3Upload {
            shared: Arc::clone(shared),
            dir,
            segments,
            start: at,
            tail,
            synced: rest,
        })
    })
}

/// An unfinished upload's bytes.
pub(super) struct S3Upload {
    shared: Arc<Shared>,
    /// Key prefix of its objects.
    dir: String,
    /// Closed segments: start and length, in order from 0.
    segments: Vec<(u64, u64)>,
    /// Where the open segment starts.
    start: u64,
    /// The open segment's bytes.
    tail: Vec<u8>,
    /// How many of them its `.open` object holds.
    synced: usize,
}

impl std::fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Upload")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("start", &self.start)
            .field("tail", &self.tail.len())
            .finish_non_exhaustive()
    }
}

impl S3Upload {
    /// Closes the open segment: its bytes become a segment of their own.
    fn close(&mut self) -> io::Result<()> {
        let s = &self.shared;
        let bytes = Bytes::from(std::mem::take(&mut self.tail));
        let len = bytes.len() as u64;
        let key = segment_key(&self.dir, self.start);
        let stale = open_key(&self.dir, self.start);
        s.block(async {
            s.put(&key, bytes).await?;
            s.delete(&stale).await
        })?;
        self.segments.push((self.start, len));
        self.start += len;
        self.synced = 0;
        Ok(())
    }
}

impl UploadFile for S3Upload {
    fn len(&self) -> u64 {
        self.start + self.tail.len() as u64
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.tail.extend_from_slice(data);
        if self.tail.len() >= self.shared.part_size {
            self.close()?;
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.start {
            let from = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
            let Some(rest) = self.tail.get(from..) else {
                return Ok(0);
            };
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            return Ok(n);
        }
        let Some(&(start, len)) = self
            .segments
            .iter()
            .find(|(start, len)| offset >= *start && offset < start + len)
        else {
            return Ok(0);
        };
        let n = usize::try_from(start + len - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let s = &self.shared;
        let bytes = s.block(s.get_range(&segment_key(&self.dir, start), offset - start, n))?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    fn sync(&mut self) -> io::Result<()> {
        // An empty open segment needs no object: its start is the end of
        // the closed ones.
        if self.synced == self.tail.len() {
            return Ok(());
        }
        let s = &self.shared;
        let key = open_key(&self.dir, self.start);
        s.block(s.put(&key, Bytes::copy_from_slice(&self.tail)))?;
        self.synced = self.tail.len();
        Ok(())
    }

    fn sync_handle(&self) -> io::Result<Box<dyn FnOnce() -> io::Result<()> + Send>> {
        let shared = Arc::clone(&self.shared);
        let key = open_key(&self.dir, self.start);
        let bytes = Bytes::copy_from_slice(&self.tail);
        Ok(Box::new(move || shared.block(shared.put(&key, bytes))))
    }

    fn into_staged(self: Box<Self>) -> Box<dyn StagedBlob> {
        Box::new(Finished { upload: *self })
    }
}

/// A finished upload, staged: its bytes stay where they are until
/// `publish` joins them into the blob's object.
#[derive(Debug)]
pub(super) struct Finished {
    upload: S3Upload,
}

impl Finished {
    /// Makes `key` of the upload's bytes, inside the store where it can.
    /// Its segments are removed then, as a finished local upload's file
    /// becomes the blob.
    pub(super) async fn publish(self, shared: &Shared, key: &str) -> io::Result<()> {
        let u = self.upload;
        let dir = u.dir.clone();
        let made = match (u.segments.as_slice(), u.tail.is_empty()) {
            // Nothing in the store yet, or only the open segment: send it.
            ([], _) => shared.put(key, Bytes::from(u.tail)).await,
            // One closed segment: copy it.
            ([(start, len)], true) => shared.copy(&segment_key(&u.dir, *start), key, *len).await,
            (segments, _) => {
                let mut pieces: Vec<Piece> = segments
                    .iter()
                    .map(|(start, _)| Piece::Copy {
                        key: segment_key(&u.dir, *start),
                        range: None,
                    })
                    .collect();
                if !u.tail.is_empty() {
                    pieces.push(Piece::Bytes(Bytes::from(u.tail)));
                }
                shared.join(key, pieces).await
            }
        };
        made?;
        for (segment, _, _) in shared.list(&dir).await? {
            shared.delete(&segment).await?;
        }
        Ok(())
    }
}

impl StagedBlob for Finished {
    fn write(&mut self, _data: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a finished upload takes no more bytes",
        ))
    }

    fn len(&self) -> u64 {
        self.upload.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.upload.read_at(buf, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.upload.sync()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
