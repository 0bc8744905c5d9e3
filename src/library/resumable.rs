//! Resumable uploads: bytes sent over many streams, kept across broken
//! connections and server restarts, finished into a media by the same path
//! as a plain upload.
//!
//! The order that makes a committed size safe to promise: bytes are
//! appended to the upload's own file, the file is fsynced, and only then is
//! the new size recorded in the database. After a crash the database's
//! size is the truth and the file is cut back to it. A stream starts a
//! record every second while bytes flow (its fsync runs on another thread
//! while the stream goes on writing, so the disk flushes while the network
//! delivers) and makes a last one when it ends, however it ends: a client
//! whose connection broke loses nothing it sent, and a client of a server
//! that was killed resumes from the last record.
//!
//! One stream at a time writes to an upload. It holds the upload in the
//! database (a writer id and a deadline, renewed at every record), so the
//! rule holds across replicas; a second stream gets ABORTED with the
//! committed size, and the hold of a server that died lapses by itself.
//!
//! Hashing: each piece is hashed on one thread while another writes it.
//! The running BLAKE3 (and MD5 when the client asked to verify one) of the
//! held bytes stays in memory between streams, so a resumed
//! upload hashes each byte once. Only when that state is missing (after a
//! restart, or on another replica) are the held bytes read back and hashed
//! again, once, at 2-3 GB/s, instead of persisting the hasher, which the
//! `blake3` crate does not expose.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::Digest as _;
use tokio::task::JoinHandle;

use super::{
    Library,
    content::Admitted,
    upload::{Received, UploadOutcome, blocking, too_large, verify},
};
use crate::{
    analyze::sniff::SNIFF_LEN,
    blob::UploadFile,
    domain::{
        Md5Digest, TenantId, UploadId, UploadSession, UploadSpec, UploadState, new_part, now_micros,
    },
    error::{Error, Reason, Resource, Result},
};

/// How often a stream records its progress while bytes flow.
const RECORD_EVERY: Duration = Duration::from_secs(1);
/// Ended uploads are remembered this long, so that a client asking about
/// one hears what became of it rather than NOT_FOUND.
const REMEMBER_ENDED: Duration = Duration::from_secs(24 * 3600);
/// Block size for reading held bytes back (re-hashing, checking re-sent
/// bytes).
const READ_BLOCK: usize = 1 << 20;

/// One message of a write stream.
#[derive(Debug)]
pub struct UploadWrite {
    /// The upload written to.
    pub upload: UploadId,
    /// Offset of `data` in the file.
    pub offset: u64,
    /// Bytes.
    pub data: Bytes,
    /// The last message: store the media.
    pub finish: bool,
}

/// What a write stream achieved.
#[derive(Debug)]
pub struct UploadProgress {
    /// The upload after the stream.
    pub upload: UploadSession,
    /// The media, when the stream finished the upload.
    pub outcome: Option<UploadOutcome>,
}

/// Running hashes of the bytes an upload holds.
#[derive(Debug, Clone)]
pub(super) struct Hashing {
    /// Bytes hashed so far.
    at: u64,
    blake3: blake3::Hasher,
    md5: Option<md5::Md5>,
}

impl Hashing {
    fn new(want_md5: bool) -> Self {
        Self {
            at: 0,
            blake3: blake3::Hasher::new(),
            md5: want_md5.then(md5::Md5::new),
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.blake3.update(data);
        if let Some(m) = &mut self.md5 {
            m.update(data);
        }
        self.at += data.len() as u64;
    }
}

/// Hashes kept between streams, by upload.
pub(super) type Hashes = Mutex<HashMap<UploadId, Hashing>>;

/// The file and hashes of the upload a stream writes, moved into blocking
/// work and back.
struct Open {
    file: Box<dyn UploadFile>,
    hashing: Hashing,
}

impl Library {
    /// Starts a resumable upload of what `spec` describes.
    pub async fn start_upload(&self, spec: UploadSpec) -> Result<UploadSession> {
        self.check_upload(&spec, None).await?;
        let now = now_micros();
        let session = UploadSession {
            id: UploadId::new(),
            tenant: spec.tenant,
            spec,
            committed: 0,
            state: UploadState::Active,
            media: None,
            expires_at: now.saturating_add(micros(self.inner.limits.upload_expiry)),
            created_at: now,
            updated_at: now,
        };
        let store = Arc::clone(&self.inner.blobs);
        let name = session.id.to_string();
        blocking(move || {
            store
                .create_upload(&name)
                .map_err(|e| Error::io("creating an upload file", e))
        })
        .await?;
        if let Err(e) = self.inner.repo.insert_upload(&session).await {
            self.remove_upload_file(session.id).await;
            return Err(e);
        }
        Ok(session)
    }

    /// An upload of the tenant.
    pub async fn query_upload(&self, tenant: TenantId, id: UploadId) -> Result<UploadSession> {
        self.inner
            .repo
            .get_upload(tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Upload, id.to_string()))
    }

    /// Cancels an upload and discards its bytes. Cancelling an ended
    /// upload changes nothing, except that a finished one is refused.
    pub async fn cancel_upload(&self, tenant: TenantId, id: UploadId) -> Result<UploadSession> {
        let upload = self.query_upload(tenant, id).await?;
        match upload.state {
            UploadState::Finished => {
                return Err(Error::precondition(
                    Reason::UploadFinished,
                    format!("upload {id} has finished; delete its media instead"),
                ));
            }
            UploadState::Active => {
                self.end_upload(id, UploadState::Cancelled).await?;
            }
            UploadState::Cancelled | UploadState::Expired => {}
        }
        self.query_upload(tenant, id).await
    }

    /// Receives one write stream of an upload.
    pub async fn write_upload<S>(&self, tenant: TenantId, mut writes: S) -> Result<UploadProgress>
    where
        S: Stream<Item = Result<UploadWrite>> + Unpin + Send + 'static,
    {
        let first = writes.next().await.ok_or_else(|| {
            Error::bad(
                Reason::StreamInvalid,
                "upload_id",
                "the write stream ended before its first message; every message names the upload",
            )
        })??;
        let id = first.upload;
        self.query_upload(tenant, id)
            .await?
            .check_writable(now_micros())?;
        let writer = uuid::Uuid::now_v7();
        if !self
            .inner
            .repo
            .claim_upload(tenant, id, writer, self.hold_deadline())
            .await?
        {
            let now = self.query_upload(tenant, id).await?;
            now.check_writable(now_micros())?;
            return Err(Error::UploadBusy(format!(
                "upload {id} is being written by another stream; the server holds {} bytes of it. \
                 Retry when that stream ends (or after {} s, if it was lost)",
                now.committed,
                self.inner.limits.upload_hold.as_secs()
            )));
        }
        // The stream is received by its own task: when a client goes away
        // mid-stream, the RPC's future is dropped, and the task still
        // records the bytes received and lets go of the upload.
        let this = self.clone();
        tokio::spawn(async move {
            // Re-read now that no other stream can change it.
            let result = match this.query_upload(tenant, id).await {
                Ok(upload) => this.write_stream(upload, writer, first, &mut writes).await,
                Err(e) => Err(e),
            };
            if !matches!(&result, Ok(p) if p.outcome.is_some()) {
                // Best effort: an unreleased hold lapses by itself.
                let _ = this.inner.repo.release_upload(id, writer).await;
            }
            result
        })
        .await
        .map_err(|e| Error::io("an upload stream's task failed", std::io::Error::other(e)))?
    }

    async fn write_stream<S>(
        &self,
        upload: UploadSession,
        writer: uuid::Uuid,
        first: UploadWrite,
        writes: &mut S,
    ) -> Result<UploadProgress>
    where
        S: Stream<Item = Result<UploadWrite>> + Unpin + Send,
    {
        let id = upload.id;
        let declared = upload.spec.declared_size;
        let max = self.inner.limits.max_upload_size;
        let mut open = self.open_upload(&upload).await?;
        // Once the first bytes are held, the content's kind and its size
        // limit are known, and bytes past that limit are refused as they
        // come, not at the finish.
        let mut admitted = None;
        if upload.committed >= SNIFF_LEN as u64 {
            let Open { file, hashing } = open;
            let (file, a) = self.admit_file(&upload.spec, file).await?;
            open = Open { file, hashing };
            match a {
                Ok(a) => admitted = Some(a),
                Err(e) => {
                    drop(open);
                    self.end_upload(id, UploadState::Cancelled).await?;
                    return Err(e);
                }
            }
        }
        // `pos`: bytes in the file; `held`: bytes recorded as durable.
        let mut pos = upload.committed;
        let mut held = upload.committed;
        let mut recorded = Instant::now();
        // A record in progress: the size it will record once its fsync,
        // which runs beside the stream's writes, completes.
        let mut syncing: Option<(u64, JoinHandle<std::io::Result<()>>)> = None;
        let mut current = Some(first);
        let mut finish = false;
        let mut failure: Option<Error> = None;
        while let Some(msg) = current.take() {
            if msg.upload != id {
                failure = Some(Error::bad(
                    Reason::StreamInvalid,
                    "upload_id",
                    format!(
                        "a message named upload {}, but this stream writes upload {id}; \
                         every message of a stream must name the same upload",
                        msg.upload
                    ),
                ));
                break;
            }
            finish = msg.finish;
            if admitted.is_none()
                && pos == 0
                && msg.offset == 0
                && (msg.data.len() >= SNIFF_LEN || msg.finish)
            {
                match self.admit(&upload.spec, &msg.data[..msg.data.len().min(SNIFF_LEN)]) {
                    Ok(a) => admitted = Some(a),
                    Err(e) => {
                        // Refused from its first bytes, as a plain upload
                        // is: the same bytes would be refused at the finish.
                        drop(open);
                        self.end_upload(id, UploadState::Cancelled).await?;
                        return Err(e);
                    }
                }
            }
            let (o, r) = append(open, id, pos, msg, declared, max, admitted.as_ref()).await?;
            open = o;
            match r {
                Ok(end) => pos = end,
                Err(e) => {
                    finish = false;
                    failure = Some(e);
                    break;
                }
            }
            if finish {
                break;
            }
            if syncing.is_none() && recorded.elapsed() >= RECORD_EVERY {
                match open.file.sync_handle() {
                    Ok(sync) => syncing = Some((pos, tokio::task::spawn_blocking(sync))),
                    Err(e) => {
                        failure = Some(Error::io("syncing an upload file", e));
                        break;
                    }
                }
                recorded = Instant::now();
            }
            // The next message; a record whose fsync completes meanwhile is
            // written at once, so that an idle stream's bytes are recorded.
            let next = match syncing.take() {
                None => writes.next().await,
                Some((at, mut sync)) => tokio::select! {
                    m = writes.next() => {
                        syncing = Some((at, sync));
                        m
                    }
                    synced = &mut sync => {
                        match self.recorded(id, writer, at, synced).await {
                            Ok(()) => {
                                held = at;
                                writes.next().await
                            }
                            Err(e) => {
                                failure = Some(e);
                                None
                            }
                        }
                    }
                },
            };
            match next {
                None => {}
                Some(Ok(m)) => current = Some(m),
                Some(Err(e)) => failure = Some(e),
            }
        }
        if let Some((_, done)) = syncing.take() {
            // The final record below covers these bytes too.
            let _ = done.await;
        }
        // Record what the file holds, however the stream ended: a client
        // whose connection broke resumes from here.
        if pos > held || finish {
            let (o, r) = self.record(open, id, writer, pos).await?;
            open = o;
            match r {
                Ok(()) => held = pos,
                Err(e) => {
                    finish = false;
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            self.keep_hashing(id, open.hashing);
            return Err(e);
        }
        if finish {
            return self.finish(upload, open, held).await;
        }
        self.keep_hashing(id, open.hashing);
        Ok(UploadProgress {
            upload: UploadSession {
                committed: held,
                ..upload
            },
            outcome: None,
        })
    }

    /// Completes a record whose fsync ran in the background: on success,
    /// records `at` bytes and renews the hold.
    async fn recorded(
        &self,
        id: UploadId,
        writer: uuid::Uuid,
        at: u64,
        synced: std::result::Result<std::io::Result<()>, tokio::task::JoinError>,
    ) -> Result<()> {
        synced
            .map_err(|e| Error::io("syncing an upload file", std::io::Error::other(e)))?
            .map_err(|e| Error::io("syncing an upload file", e))?;
        self.commit_bytes(id, writer, at).await
    }

    /// Records that `at` bytes are durable and renews the hold.
    async fn commit_bytes(&self, id: UploadId, writer: uuid::Uuid, at: u64) -> Result<()> {
        if self
            .inner
            .repo
            .commit_upload_bytes(id, writer, at, self.hold_deadline())
            .await?
        {
            Ok(())
        } else {
            Err(Error::UploadBusy(format!(
                "upload {id} was cancelled, expired, or taken over by another stream while \
                 this one wrote; QueryUpload tells its state and committed size"
            )))
        }
    }

    /// Makes the file's bytes durable, then records their number and
    /// renews the stream's hold.
    async fn record(
        &self,
        open: Open,
        id: UploadId,
        writer: uuid::Uuid,
        pos: u64,
    ) -> Result<(Open, Result<()>)> {
        let (open, synced) = with_open(open, |o| {
            o.file
                .sync()
                .map_err(|e| Error::io("syncing an upload file", e))
        })
        .await?;
        if let Err(e) = synced {
            return Ok((open, Err(e)));
        }
        let r = self.commit_bytes(id, writer, pos).await;
        Ok((open, r))
    }

    /// Ends a stream that set `finish_write`: checks the size and hashes,
    /// then stores the media as a plain upload does.
    async fn finish(&self, upload: UploadSession, open: Open, size: u64) -> Result<UploadProgress> {
        let id = upload.id;
        if let Some(declared) = upload.spec.declared_size
            && declared != size
        {
            self.keep_hashing(id, open.hashing);
            return Err(Error::bad(
                Reason::SizeMismatch,
                "finish_write",
                format!(
                    "finish_write came after {size} bytes, but the header declared {declared}; \
                     send the rest from write_offset {size}, then finish"
                ),
            ));
        }
        let folder = match self.check_upload(&upload.spec, Some(size)).await {
            Ok((f, _)) => f,
            Err(e) => {
                self.keep_hashing(id, open.hashing);
                return Err(e);
            }
        };
        let Open { file, hashing } = open;
        let hash = hashing.blake3.finalize().into();
        let md5 = hashing.md5.map(|m| Md5Digest(m.finalize().into()));
        let (file, admitted) = match verify(&upload.spec, hash, md5) {
            Ok(()) => self.admit_file(&upload.spec, file).await?,
            Err(e) => (file, Err(e)),
        };
        let admitted = match admitted {
            Ok(a) => a,
            Err(e) => {
                // Wrong bytes stay wrong: nothing of them is kept.
                drop(file);
                self.end_upload(id, UploadState::Cancelled).await?;
                return Err(e);
            }
        };
        let receiving = self.inner.commits.receiving();
        let mut received = Received {
            staged: file.into_staged(),
            hash,
            md5,
            size,
        };
        // A small upload's bytes go inline; its file stays until the
        // media is stored, so a crash before that loses nothing of it.
        let mut file = None;
        if size <= self.inline_max() {
            let (inline, staged) = self.read_into_memory(received).await?;
            received = inline;
            file = Some(staged);
        }
        let stored = self
            .store_received(
                upload.spec.clone(),
                folder,
                received,
                admitted.sniffed,
                Some(id),
                receiving,
            )
            .await;
        drop(file);
        match stored {
            Ok(outcome) => Ok(UploadProgress {
                upload: self.query_upload(upload.tenant, id).await?,
                outcome: Some(outcome),
            }),
            Err(e) => {
                // The bytes went with the failed commit.
                let _ = self.end_upload(id, UploadState::Cancelled).await;
                Err(e)
            }
        }
    }

    /// Opens an upload's file at its committed size, with the hashes of
    /// those bytes: kept from its last stream, else computed again.
    async fn open_upload(&self, upload: &UploadSession) -> Result<Open> {
        let id = upload.id;
        let held = upload.committed;
        let want_md5 = upload.spec.expected_md5.is_some();
        let kept = self
            .hashes()
            .remove(&id)
            .filter(|h| h.at == held && h.md5.is_some() == want_md5);
        let store = Arc::clone(&self.inner.blobs);
        blocking(move || {
            let file = store.open_upload(&id.to_string(), held).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidData => {
                    Error::data_loss(
                        Reason::BlobMissing,
                        format!(
                            "the bytes of upload {id} are missing or cut short ({e}); cancel it and start again"
                        ),
                    )
                }
                _ => Error::io("opening an upload file", e),
            })?;
            let hashing = match kept {
                Some(h) => h,
                None => rehash(file.as_ref(), held, want_md5)?,
            };
            Ok(Open { file, hashing })
        })
        .await
    }

    /// Moves an active upload to `state` and discards its bytes.
    async fn end_upload(&self, id: UploadId, state: UploadState) -> Result<()> {
        self.inner.repo.end_upload(id, state).await?;
        self.hashes().remove(&id);
        self.remove_upload_file(id).await;
        Ok(())
    }

    async fn remove_upload_file(&self, id: UploadId) {
        let store = Arc::clone(&self.inner.blobs);
        let removed = blocking(move || {
            store
                .remove_upload(&id.to_string())
                .map_err(|e| Error::io("removing an upload file", e))
        })
        .await;
        if let Err(e) = removed {
            // The start-up sweep removes files of uploads no longer active.
            tracing::warn!(upload = %id, error = %e, "could not remove an upload's file");
        }
    }

    fn keep_hashing(&self, id: UploadId, hashing: Hashing) {
        self.hashes().insert(id, hashing);
    }

    fn hashes(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Hashing>> {
        // A panic while holding this lock cannot leave a map half-changed.
        self.inner
            .uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hold_deadline(&self) -> i64 {
        now_micros().saturating_add(micros(self.inner.limits.upload_hold))
    }

    /// Discards uploads that expired, and forgets those that ended long
    /// ago. Returns how many expired.
    pub async fn sweep_uploads(&self) -> Result<usize> {
        let now = now_micros();
        let expired = self.inner.repo.expired_uploads(now, 1000).await?;
        for id in &expired {
            self.end_upload(*id, UploadState::Expired).await?;
        }
        self.inner
            .repo
            .forget_uploads(now.saturating_sub(micros(REMEMBER_ENDED)))
            .await?;
        Ok(expired.len())
    }

    /// At start-up: drops holds no live stream has (SQLite: this process is
    /// the only writer) and starts the periodic sweep. (The files of
    /// uploads no longer active go in `recover_store`, which waits for the
    /// store.)
    pub(super) async fn recover_uploads(&self) -> Result<()> {
        self.inner.repo.release_all_uploads().await?;
        let this = self.clone();
        let every = self.inner.limits.upload_sweep;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match this.sweep_uploads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "discarded expired uploads"),
                    Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
                }
            }
        });
        Ok(())
    }
}

/// Runs `f` on the blocking pool with the open upload, and gives it back
/// whatever `f` returns. Only a panicking `f` loses it.
async fn with_open<T, F>(mut open: Open, f: F) -> Result<(Open, Result<T>)>
where
    F: FnOnce(&mut Open) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let r = f(&mut open);
        (open, r)
    })
    .await
    .map_err(|e| Error::io("an upload's storage task failed", std::io::Error::other(e)))
}

/// Appends the new part of one write (the file holds `pos` bytes), hashing
/// it on another thread meanwhile. Returns the open upload and the new size.
/// After a failed write the hashes run ahead of the file, so they are not
/// kept for the next stream (which only takes hashes of exactly the bytes
/// recorded).
async fn append(
    open: Open,
    id: UploadId,
    pos: u64,
    msg: UploadWrite,
    declared: Option<u64>,
    max: u64,
    admitted: Option<&Admitted>,
) -> Result<(Open, Result<u64>)> {
    let part: Range<usize> = match new_part(id, pos, msg.offset, msg.data.len()) {
        Ok(p) => p,
        Err(e) => return Ok((open, Err(e))),
    };
    let end = pos + part.len() as u64;
    if let Some(d) = declared
        && end > d
    {
        let e = Error::bad(
            Reason::SizeMismatch,
            "data",
            format!("the bytes reach offset {end}, past the {d} bytes the header declared"),
        );
        return Ok((open, Err(e)));
    }
    match admitted {
        Some(a) if end > a.limit => return Ok((open, Err(a.over_limit(end, max)))),
        None if end > max => return Ok((open, Err(too_large(end, max)))),
        _ => {}
    }
    let mut open = open;
    if part.start > 0 {
        let resent = msg.data.slice(..part.start);
        let offset = msg.offset;
        let (o, r) = with_open(open, move |o| {
            check_resent(o.file.as_ref(), offset, &resent)
        })
        .await?;
        open = o;
        if let Err(e) = r {
            return Ok((open, Err(e)));
        }
    }
    if part.is_empty() {
        return Ok((open, Ok(end)));
    }
    let new = msg.data.slice(part);
    let Open {
        mut file,
        mut hashing,
    } = open;
    let to_hash = new.clone();
    let writing = tokio::task::spawn_blocking(move || {
        let r = file
            .append(&new)
            .map_err(|e| Error::io("writing an upload file", e));
        (file, r)
    });
    let hashed = tokio::task::spawn_blocking(move || {
        hashing.update(&to_hash);
        hashing
    });
    let (written, hashed) = tokio::join!(writing, hashed);
    let task_failed = |e| Error::io("an upload's storage task failed", std::io::Error::other(e));
    let (file, r) = written.map_err(task_failed)?;
    let hashing = hashed.map_err(task_failed)?;
    Ok((Open { file, hashing }, r.map(|()| end)))
}

/// Checks that bytes re-sent at `offset` are those already held.
fn check_resent(file: &dyn UploadFile, offset: u64, data: &[u8]) -> Result<()> {
    let mut buf = vec![0u8; data.len().min(READ_BLOCK)];
    let mut done = 0;
    while done < data.len() {
        let n = (data.len() - done).min(buf.len());
        read_exact_at(file, &mut buf[..n], offset + done as u64)?;
        if buf[..n] != data[done..done + n] {
            return Err(Error::bad(
                Reason::ResentDataMismatch,
                "data",
                format!(
                    "the bytes re-sent at write_offset {offset} differ from those the server already \
                     holds there; the file changed since the upload started, so start a new upload"
                ),
            ));
        }
        done += n;
    }
    Ok(())
}

/// Hashes the first `held` bytes of the file.
fn rehash(file: &dyn UploadFile, held: u64, want_md5: bool) -> Result<Hashing> {
    let mut hashing = Hashing::new(want_md5);
    let mut buf = vec![0u8; READ_BLOCK];
    while hashing.at < held {
        let n = usize::try_from(held - hashing.at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        read_exact_at(file, &mut buf[..n], hashing.at)?;
        hashing.update(&buf[..n]);
    }
    Ok(hashing)
}

fn read_exact_at(file: &dyn UploadFile, buf: &mut [u8], offset: u64) -> Result<()> {
    crate::blob::read_exact_at(|b, at| file.read_at(b, at), buf, offset)
        .map_err(|e| Error::reading("reading an upload file, shorter than recorded", e))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
