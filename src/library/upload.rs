//! Receiving an upload: limits, hashing, staging, then the group commit.
//!
//! Small uploads (the common case for thumbnails, documents and API
//! payloads) are gathered in memory and hashed, written and fsynced in one
//! blocking call. Larger ones switch to a pipeline of two blocking threads
//! fed through bounded channels: one hashes (BLAKE3, and MD5 only when the
//! client asked to verify one), one writes to the staged file and starts
//! kernel writeback as it goes. Each chunk is shared between them without a
//! copy, and the network, the hash and the disk all progress at once.
//! Memory stays bounded by the channel depth whatever the file size.

use std::{io, sync::Arc};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::Digest as _;
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    Library,
    commit::{CommitJob, Receiving},
    content::{Admitted, too_large_for},
};
use crate::{
    analyze::{Sniffed, sniff::SNIFF_LEN},
    blob::{BlobStore, StagedBlob, inline::MemStaged},
    domain::{
        ContentHash, FolderId, Md5Digest, Media, MediaId, UploadId, UploadSpec, now_micros,
        year_month,
    },
    error::{Error, Reason, Resource, Result},
};

/// Uploads up to this size are buffered and stored in one blocking call,
/// left for the group commit to make durable with the rest of its batch.
const SMALL_UPLOAD: usize = 512 * 1024;
/// Inline uploads up to this size are hashed on the task that received
/// them: BLAKE3 and MD5 take about 10 µs for 4 KiB, less than a trip to
/// the blocking pool and back; larger ones (MD5 runs near 0.5 GB/s) go
/// to the pool so that no task holds its thread much longer than that.
const HASH_ON_TASK: u64 = 8 * 1024;
/// Chunks queued per pipeline thread: bounds memory per upload.
const PIPELINE_DEPTH: usize = 4;

/// A stored upload.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    /// The new media.
    pub media: Media,
    /// Whether the caller's tenant already held these bytes (in another
    /// media), which now share them. Bytes only another tenant holds are
    /// shared as well, but reported as new: nothing may tell one tenant
    /// what another stores.
    pub deduplicated: bool,
    /// Whether the bytes were stored already, by any tenant (their MD5 is
    /// then known or queued).
    pub shared: bool,
    /// Media this one displaced from its slot, to be deleted.
    pub replaced: Vec<MediaId>,
}

/// What a pipeline thread is told.
enum Msg {
    Data(Bytes),
    /// All bytes were sent; finish and report. A channel that closes
    /// without `Finish` means the upload was abandoned.
    Finish,
}

/// One message of an upload stream: the next bytes, and whether they are
/// the last.
#[derive(Debug, Clone, Default)]
pub struct UploadPart {
    /// The next bytes of the file, in order; may be empty.
    pub data: Bytes,
    /// No more bytes follow: store the upload.
    pub finish: bool,
}

/// Bytes staged durably, with their hashes.
pub(super) struct Received {
    pub(super) staged: Box<dyn StagedBlob>,
    pub(super) hash: ContentHash,
    pub(super) md5: Option<Md5Digest>,
    pub(super) size: u64,
}

impl Library {
    /// Stores the bytes of `parts` as a new media described by `spec`,
    /// once the stream ends positively: a part with `finish` set, or the
    /// stream's clean end after exactly the declared size. An error from
    /// the stream (a reset, a cancellation) stores nothing, whatever came
    /// before. Nothing remains of a failed or abandoned upload.
    pub async fn upload<S>(&self, spec: UploadSpec, mut parts: S) -> Result<UploadOutcome>
    where
        S: Stream<Item = Result<UploadPart>> + Unpin + Send,
    {
        let (folder, room) = self.check_upload(&spec, None).await?;
        let receiving = self.inner.commits.receiving();
        let want_md5 = spec.expected_md5.is_some();
        let (staging, admitted) = self.receive(&spec, &mut parts, want_md5, room).await?;
        let received = match staging {
            Staging::Small(small) => {
                let size: u64 = small.iter().map(|c| c.len() as u64).sum();
                if size > self.inline_max() {
                    let store = Arc::clone(&self.inner.blobs);
                    blocking(move || store_small(store.as_ref(), &small, want_md5)).await?
                } else if size <= HASH_ON_TASK {
                    stage_in_memory(&small)?
                } else {
                    blocking(move || stage_in_memory(&small)).await?
                }
            }
            Staging::Piped(p) => p.finish().await?,
        };
        verify(&spec, received.hash, received.md5)?;
        self.store_received(spec, folder, received, admitted.sniffed, None, receiving)
            .await
    }

    /// Checks what can be checked of an upload before its bytes: the
    /// folder exists, and the declared size (or `size`, once known) is
    /// within the server's limit and the tenant's quota. Returns the folder
    /// and the most bytes the quota leaves room for (`None`: no limit).
    pub(super) async fn check_upload(
        &self,
        spec: &UploadSpec,
        size: Option<u64>,
    ) -> Result<(FolderId, Option<u64>)> {
        let folder = match spec.folder {
            Some(f) => {
                if !self.inner.repo.folder_exists(spec.tenant, f).await? {
                    return Err(Error::not_found(Resource::Folder, f.to_string()));
                }
                f
            }
            None => self.root_folder(spec.tenant).await?,
        };
        let max = self.inner.limits.max_upload_size;
        let size = size.or(spec.declared_size);
        if let Some(declared) = size
            && declared > max
        {
            return Err(too_large(declared, max));
        }
        let room = self.quota_room(spec.tenant, size).await?;
        self.check_names(spec).await?;
        Ok((folder, room))
    }

    /// Creates the media for bytes received, verified and admitted as
    /// `sniffed`: the one path by which both plain and resumable uploads
    /// end. The bytes are analysed first, so the row is written once.
    /// `upload` is the resumable upload this finishes, marked finished in
    /// the same transaction as the media is inserted.
    pub(super) async fn store_received(
        &self,
        spec: UploadSpec,
        folder: FolderId,
        received: Received,
        sniffed: Sniffed,
        upload: Option<UploadId>,
        receiving: Receiving,
    ) -> Result<UploadOutcome> {
        let (staged, mut analysis) = self.analyze_staged(received.staged, &sniffed).await?;
        let now = now_micros();
        if analysis.taken_year.is_none() {
            // Without a date taken, group by upload date.
            let (year, month) = year_month(now);
            analysis.taken_year = Some(year);
            analysis.taken_month = Some(month);
        }
        let policy = spec.slot_policy;
        let title = if spec.title.is_empty() {
            spec.filename.stem().to_string()
        } else {
            spec.title
        };
        let media = Media {
            id: MediaId::new(),
            tenant: spec.tenant,
            folder,
            blob: self
                .inner
                .limits
                .dedupe_scope
                .blob_name(spec.tenant, &received.hash),
            content: received.hash,
            media_type: sniffed.kind,
            title,
            filename: spec.filename.name,
            original_filename: spec.filename.original,
            mime_type: sniffed.mime,
            size: received.size,
            md5: received.md5.map(|m| m.to_hex()),
            analysis,
            tags: spec.tags,
            author: spec.author,
            copyright: spec.copyright,
            metadata: spec.metadata,
            public: spec.public,
            ready: true,
            created_at: now,
            updated_at: now,
            updated_by: spec.created_by.clone(),
            created_by: spec.created_by,
            created_role: spec.created_role,
            project_id: spec.project_id,
            slot: spec.slot,
            code: spec.code,
        };
        let follow_up = self.eager_job(&media);
        let queued = follow_up.is_some();
        let (job, reply) = CommitJob::new(staged, media, policy, follow_up, upload);
        self.inner
            .commits
            .submit(job, receiving)
            .await
            .map_err(|_| shutting_down())?;
        let outcome = reply.await.map_err(|_| shutting_down())??;
        self.folders_changed(outcome.media.tenant);
        self.release_replaced(outcome.media.tenant, &outcome.replaced)
            .await;
        if queued {
            self.job_wakeup().notify_one();
        }
        // A shared blob already has its MD5, or had it queued by the upload
        // that stored it (and again at start-up if that was lost).
        if outcome.media.md5.is_none() && !outcome.shared {
            self.inner.digests.enqueue(outcome.media.blob);
        }
        Ok(outcome)
    }
}

fn shutting_down() -> Error {
    Error::shutting_down("the server is shutting down; retry the upload")
}

impl Library {
    /// Receives every chunk, enforcing the content policy (from the first
    /// bytes) and the declared and maximum sizes. On failure it waits
    /// until anything staged is removed, so that when the client hears of
    /// the failure nothing is left.
    async fn receive<S>(
        &self,
        spec: &UploadSpec,
        chunks: &mut S,
        want_md5: bool,
        room: Option<u64>,
    ) -> Result<(Staging, Admitted)>
    where
        S: Stream<Item = Result<UploadPart>> + Unpin + Send,
    {
        let mut pipeline: Option<Pipeline> = None;
        match self
            .receive_into(spec, chunks, want_md5, room, &mut pipeline)
            .await
        {
            Ok((small, admitted)) => Ok((
                match pipeline {
                    Some(p) => Staging::Piped(p),
                    None => Staging::Small(small),
                },
                admitted,
            )),
            Err(e) => {
                if let Some(p) = pipeline {
                    p.abort().await;
                }
                Err(e)
            }
        }
    }

    async fn receive_into<S>(
        &self,
        spec: &UploadSpec,
        chunks: &mut S,
        want_md5: bool,
        room: Option<u64>,
        pipeline: &mut Option<Pipeline>,
    ) -> Result<(Vec<Bytes>, Admitted)>
    where
        S: Stream<Item = Result<UploadPart>> + Unpin + Send,
    {
        let max = self.inner.limits.max_upload_size;
        let mut total: u64 = 0;
        let mut small: Vec<Bytes> = Vec::new();
        // The first bytes, until the policy has seen enough of them.
        let mut head: Vec<u8> = Vec::new();
        let mut admitted: Option<Admitted> = None;
        let mut finished = false;
        while let Some(part) = chunks.next().await {
            let UploadPart {
                data: chunk,
                finish,
            } = part?;
            finished = finish;
            if chunk.is_empty() {
                if finish {
                    break;
                }
                continue;
            }
            total += chunk.len() as u64;
            if let Some(declared) = spec.declared_size
                && total > declared
            {
                return Err(Error::bad(
                    Reason::SizeMismatch,
                    "header.size_bytes",
                    format!("more bytes arrived than the {declared} declared in header.size_bytes"),
                ));
            }
            if admitted.is_none() {
                let take = (SNIFF_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() == SNIFF_LEN {
                    admitted = Some(self.admit(spec, &head)?);
                }
            }
            match &admitted {
                Some(a) if total > a.limit => return Err(a.over_limit(total, max)),
                None if total > max => return Err(too_large(total, max)),
                _ => {}
            }
            if let Some(room) = room
                && total > room
            {
                return Err(super::access::quota_over_bytes(total, room));
            }
            match pipeline {
                Some(p) => p.send(chunk).await?,
                None if total as usize <= SMALL_UPLOAD => small.push(chunk),
                None => {
                    let p =
                        pipeline.insert(Pipeline::start(Arc::clone(&self.inner.blobs), want_md5));
                    for c in small.drain(..) {
                        p.send(c).await?;
                    }
                    p.send(chunk).await?;
                }
            }
            if finish {
                break;
            }
        }
        match spec.declared_size {
            Some(declared) if total < declared => {
                let end = if finished {
                    "finish_write came"
                } else {
                    "the stream ended"
                };
                return Err(Error::bad(
                    Reason::SizeMismatch,
                    "header.size_bytes",
                    format!(
                        "{end} after {total} bytes, short of the {declared} declared in header.size_bytes; nothing was stored"
                    ),
                ));
            }
            None if !finished => {
                return Err(Error::bad(
                    Reason::FinishWriteMissing,
                    "finish_write",
                    format!(
                        "the stream ended after {total} bytes without finish_write, and the header \
                         declared no size_bytes, so a complete upload cannot be told from a cut one; \
                         nothing was stored. Set finish_write on the last message, or declare \
                         header.size_bytes"
                    ),
                ));
            }
            _ => {}
        }
        let admitted = match admitted {
            Some(a) => a,
            // A file shorter than the sniffing window.
            None => {
                let a = self.admit(spec, &head)?;
                if total > a.limit {
                    return Err(too_large_for(&a.sniffed, total, a.limit));
                }
                a
            }
        };
        Ok((small, admitted))
    }
}

/// Where received bytes are.
enum Staging {
    /// Still in memory (small upload).
    Small(Vec<Bytes>),
    /// Written by the pipeline.
    Piped(Pipeline),
}

pub(super) fn too_large(size: u64, max: u64) -> Error {
    Error::ResourceExhausted {
        reason: Reason::UploadTooLarge,
        subject: "max_upload_size".into(),
        message: format!(
            "the upload is {size} bytes or more; this server accepts at most {max} bytes per upload"
        ),
    }
}

/// Checks the hashes of received bytes against those the header expects.
pub(super) fn verify(spec: &UploadSpec, hash: ContentHash, md5: Option<Md5Digest>) -> Result<()> {
    if let Some(expected) = spec.expected_blake3
        && expected != hash
    {
        return Err(Error::bad(
            Reason::ChecksumMismatch,
            "header.expected_blake3",
            format!(
                "the received bytes have BLAKE3 {hash}, not the expected {expected}; the upload was discarded"
            ),
        ));
    }
    if let (Some(expected), Some(got)) = (spec.expected_md5, md5)
        && expected != got
    {
        return Err(Error::bad(
            Reason::ChecksumMismatch,
            "header.expected_md5",
            format!(
                "the received bytes have MD5 {}, not the expected {}; the upload was discarded",
                got.to_hex(),
                expected.to_hex()
            ),
        ));
    }
    Ok(())
}

/// Runs blocking file work on Tokio's blocking pool.
pub(super) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io("a storage task failed", io::Error::other(e)))?
}

fn writer_stopped() -> Error {
    Error::io("staging", io::Error::other("the writer stopped early"))
}

fn staging_err(e: io::Error) -> Error {
    Error::io("writing the upload to staging", e)
}

fn store_small(store: &dyn BlobStore, chunks: &[Bytes], want_md5: bool) -> Result<Received> {
    // No fsync here: the group committer's barrier makes the bytes of the
    // whole batch durable at once.
    stage_hashed(store.stage().map_err(staging_err)?, chunks, want_md5)
}

/// Stages bytes to be stored inline (at most the inline size) and hashes
/// them. MD5 is always computed, so the blob row has it from the start
/// and the background worker never reads the bytes back from the
/// database.
fn stage_in_memory(chunks: &[Bytes]) -> Result<Received> {
    let size = chunks.iter().map(Bytes::len).sum();
    stage_hashed(
        Box::new(MemStaged::new(Vec::with_capacity(size))),
        chunks,
        true,
    )
}

/// Writes buffered chunks to `staged`, hashing them (MD5 too with
/// `want_md5`).
fn stage_hashed(
    mut staged: Box<dyn StagedBlob>,
    chunks: &[Bytes],
    want_md5: bool,
) -> Result<Received> {
    let mut hasher = blake3::Hasher::new();
    let mut md5 = want_md5.then(md5::Md5::new);
    for c in chunks {
        hasher.update(c);
        if let Some(m) = &mut md5 {
            m.update(c);
        }
        staged.write(c).map_err(staging_err)?;
    }
    Ok(Received {
        size: staged.len(),
        staged,
        hash: hasher.finalize().into(),
        md5: md5.map(|m| Md5Digest(m.finalize().into())),
    })
}

/// The two-thread pipeline for large uploads.
struct Pipeline {
    to_writer: mpsc::Sender<Msg>,
    to_hasher: mpsc::Sender<Msg>,
    /// Taken once awaited (a `JoinHandle` must not be polled again).
    writer: Option<JoinHandle<io::Result<Box<dyn StagedBlob>>>>,
    hasher: JoinHandle<(ContentHash, Option<Md5Digest>)>,
}

impl Pipeline {
    fn start(store: Arc<dyn BlobStore>, want_md5: bool) -> Self {
        let (to_writer, mut writer_rx) = mpsc::channel::<Msg>(PIPELINE_DEPTH);
        let (to_hasher, mut hasher_rx) = mpsc::channel::<Msg>(PIPELINE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || {
            let mut staged = store.stage()?;
            while let Some(msg) = writer_rx.blocking_recv() {
                match msg {
                    Msg::Data(b) => staged.write(&b)?,
                    Msg::Finish => {
                        staged.sync()?;
                        return Ok(staged);
                    }
                }
            }
            Err(io::Error::other("upload abandoned"))
        });
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hasher = blake3::Hasher::new();
            let mut md5 = want_md5.then(md5::Md5::new);
            while let Some(Msg::Data(b)) = hasher_rx.blocking_recv() {
                hasher.update(&b);
                if let Some(m) = &mut md5 {
                    m.update(&b);
                }
            }
            (
                hasher.finalize().into(),
                md5.map(|m| Md5Digest(m.finalize().into())),
            )
        });
        Self {
            to_writer,
            to_hasher,
            writer: Some(writer),
            hasher,
        }
    }

    async fn send(&mut self, chunk: Bytes) -> Result<()> {
        let to_hasher = self.to_hasher.send(Msg::Data(chunk.clone()));
        let to_writer = self.to_writer.send(Msg::Data(chunk));
        let (h, w) = tokio::join!(to_hasher, to_writer);
        if h.is_err() || w.is_err() {
            // A thread stopped early: its result says why.
            return Err(self.fail().await);
        }
        Ok(())
    }

    async fn fail(&mut self) -> Error {
        match self.writer.take() {
            Some(writer) => match writer.await {
                Ok(Err(e)) => staging_err(e),
                Ok(Ok(_)) => writer_stopped(),
                Err(e) => Error::io("staging", io::Error::other(e)),
            },
            None => writer_stopped(),
        }
    }

    /// Stops both threads and waits until the staged bytes are removed.
    async fn abort(self) {
        drop(self.to_writer);
        drop(self.to_hasher);
        if let Some(writer) = self.writer {
            let _ = writer.await;
        }
        let _ = self.hasher.await;
    }

    async fn finish(mut self) -> Result<Received> {
        let _ = self.to_writer.send(Msg::Finish).await;
        let _ = self.to_hasher.send(Msg::Finish).await;
        let staged = self
            .writer
            .take()
            .ok_or_else(writer_stopped)?
            .await
            .map_err(|e| Error::io("staging", io::Error::other(e)))?
            .map_err(staging_err)?;
        let (hash, md5) = self
            .hasher
            .await
            .map_err(|e| Error::io("hashing", io::Error::other(e)))?;
        Ok(Received {
            size: staged.len(),
            staged,
            hash,
            md5,
        })
    }
}
