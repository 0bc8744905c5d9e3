//! The group committer: makes finished uploads durable in batches.
//!
//! Each upload arrives here with its bytes already fsynced in staging. One
//! task takes every upload that is waiting and commits them together:
//!
//! 1. one transaction claims each blob row (in hash order, so concurrent
//!    replicas never deadlock) and inserts each media row;
//! 2. new small blobs (staged in memory) are written inline, as rows of
//!    the same transaction; the blob store makes the other new blobs'
//!    bytes durable, names them by content and makes the names durable,
//!    with barriers shared by the whole batch (see `blob::fs`);
//! 3. the transaction commits (one database fsync for the batch);
//! 4. every upload in the batch is acknowledged.
//!
//! While one batch commits, the uploads that finish meanwhile queue up and
//! form the next batch, so batches grow with the load. When other uploads
//! are still receiving, the committer also lingers up to 2 ms for them; a
//! lone upload is never delayed. An upload whose caller gave up while it
//! waited (a reset stream, an expired deadline) is dropped from the batch,
//! not stored. If the database refuses the
//! batch before anything was published, each upload is retried alone so
//! that one bad upload cannot fail the others.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::{
    digest::DigestQueue,
    upload::{UploadOutcome, blocking},
};
use crate::{
    blob::{BlobStore, StagedBlob, inline::take_in_memory},
    domain::{ContentHash, Media, MediaId, NewJob, SlotPolicy, UploadId},
    error::{Error, Reason, Result, StoreUnavailable},
    repo::{BlobClaim, Repo},
};

/// Most uploads committed in one transaction.
const MAX_BATCH: usize = 256;
/// Uploads that may wait for the committer; senders wait when it is full.
const QUEUE_DEPTH: usize = 1024;

/// One finished upload waiting to be committed.
#[derive(Debug)]
pub(super) struct CommitJob {
    staged: Box<dyn StagedBlob>,
    media: Media,
    /// What happens to the media in the slot this one takes.
    policy: SlotPolicy,
    /// A job queued in the same commit (the eager renditions of an image).
    follow_up: Option<NewJob>,
    /// The resumable upload this finishes, if any.
    upload: Option<UploadId>,
    reply: oneshot::Sender<Result<UploadOutcome>>,
}

impl CommitJob {
    /// A job and the receiver of its outcome.
    pub(super) fn new(
        staged: Box<dyn StagedBlob>,
        media: Media,
        policy: SlotPolicy,
        follow_up: Option<NewJob>,
        upload: Option<UploadId>,
    ) -> (Self, oneshot::Receiver<Result<UploadOutcome>>) {
        let (reply, rx) = oneshot::channel();
        (
            Self {
                staged,
                media,
                policy,
                follow_up,
                upload,
                reply,
            },
            rx,
        )
    }
}

/// Longest the committer waits for uploads still being received to join
/// a batch. Bounded so that a long upload in flight delays a lone small
/// one by at most this much.
const LINGER: Duration = Duration::from_millis(2);

/// Handle to the group committer.
#[derive(Debug, Clone)]
pub(super) struct Committer {
    queue: mpsc::Sender<CommitJob>,
    /// Uploads currently receiving bytes: the committer lingers briefly for
    /// them, so concurrent uploads share one batch instead of forming many
    /// small ones (the batch's durability barriers cost about the same
    /// whatever its size).
    receiving: Arc<AtomicUsize>,
}

/// Counts an upload as receiving until dropped.
#[derive(Debug)]
pub(super) struct Receiving(Arc<AtomicUsize>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Committer {
    /// Marks an upload as receiving bytes, until the guard is dropped.
    pub(super) fn receiving(&self) -> Receiving {
        self.receiving.fetch_add(1, Ordering::AcqRel);
        Receiving(Arc::clone(&self.receiving))
    }

    /// Queues a finished upload; `receiving` is released once it is queued.
    pub(super) async fn submit(
        &self,
        job: CommitJob,
        receiving: Receiving,
    ) -> Result<(), mpsc::error::SendError<CommitJob>> {
        let res = self.queue.send(job).await;
        drop(receiving);
        res
    }
}

/// Starts the committer; it stops when every sender is gone, after
/// committing what was queued.
/// What the committer writes to: rows, bytes, and the MD5 worker, which
/// hashes new bytes (and copies of stored ones) after the answer.
struct Stores {
    repo: Repo,
    blobs: Arc<dyn BlobStore>,
    digests: DigestQueue,
}

pub(super) fn spawn(repo: Repo, blobs: Arc<dyn BlobStore>, digests: DigestQueue) -> Committer {
    let stores = Stores {
        repo,
        blobs,
        digests,
    };
    let (queue, mut rx) = mpsc::channel::<CommitJob>(QUEUE_DEPTH);
    let receiving = Arc::new(AtomicUsize::new(0));
    let pending = Arc::clone(&receiving);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH && pending.load(Ordering::Acquire) > 0 {
                let room = MAX_BATCH - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let jobs = std::mem::take(&mut batch);
            commit_jobs(&stores, jobs).await;
        }
    });
    Committer { queue, receiving }
}

async fn commit_jobs(stores: &Stores, mut jobs: Vec<CommitJob>) {
    // An upload whose caller went away while it waited here (the client
    // reset the stream, its deadline passed, the connection dropped) is
    // not stored: nobody would hear of it, and the client, which gave up,
    // would not expect it. Its staged bytes go with the job. (A resumable
    // upload's finish waits on its own task, so it is always stored: its
    // `finish_write` was explicit, and QueryUpload reports the media.)
    jobs.retain(|j| {
        let abandoned = j.reply.is_closed();
        if abandoned {
            tracing::info!(media_id = %j.media.id, "upload abandoned by its client before its commit; not stored");
        }
        !abandoned
    });
    // Uploads into one slot, or with one code, go in order, one per
    // batch: the slot moves from each to the next; the code goes to the
    // first and the next is refused.
    while !jobs.is_empty() {
        let mut names = std::collections::HashSet::new();
        let (first, rest): (Vec<CommitJob>, Vec<CommitJob>) = jobs.into_iter().partition(|j| {
            let m = &j.media;
            let slot = m
                .slot
                .as_ref()
                .map(|s| (m.tenant, 's', s.resource.clone(), s.key.clone()));
            let code = m
                .code
                .as_ref()
                .map(|c| (m.tenant, 'c', c.clone(), String::new()));
            [slot, code]
                .into_iter()
                .flatten()
                .all(|name| names.insert(name))
        });
        commit_apart(stores, first).await;
        jobs = rest;
    }
}

/// Commits jobs no two of which take the same slot or code.
async fn commit_apart(stores: &Stores, mut jobs: Vec<CommitJob>) {
    if jobs.is_empty() {
        return;
    }
    jobs.sort_by_key(|j| j.media.blob);
    let Err(Retry::Each(jobs, err)) = commit_batch(stores, jobs).await else {
        return;
    };
    if jobs.len() > 1 {
        tracing::warn!(batch = jobs.len(), error = %err, "batch refused; committing its uploads one by one");
        for job in jobs {
            if let Err(Retry::Each(one, err)) = commit_batch(stores, vec![job]).await {
                reply_all(one, err);
            }
        }
    } else {
        reply_all(jobs, err);
    }
}

/// Takes the slot `m` goes into (returning the media displaced for
/// deletion) and checks its code is free.
async fn take_names(
    tx: &mut crate::repo::WriteTx,
    m: &Media,
    policy: SlotPolicy,
) -> Result<Vec<MediaId>> {
    if let Some(code) = &m.code {
        tx.check_code_free(m.tenant, code).await?;
    }
    match &m.slot {
        Some(slot) => tx.take_slot(m.tenant, slot, policy).await,
        None => Ok(Vec::new()),
    }
}

/// Tells the jobs of a refused batch of one (or several) why.
fn reply_all(jobs: Vec<CommitJob>, err: Error) {
    let mut err = Some(err);
    for job in jobs {
        let e = err.take().unwrap_or_else(|| Error::Unavailable {
            reason: Reason::DatabaseUnavailable,
            message: "the database refused to record the upload; retry it".into(),
        });
        let _ = job.reply.send(Err(e));
    }
}

/// Why a batch did not commit.
enum Retry {
    /// The database refused it before any file was published: the jobs
    /// come back intact, with the error, and may be retried one by one.
    Each(Vec<CommitJob>, Error),
    /// Publishing or committing failed; every job has been told.
    Failed,
}

async fn commit_batch(stores: &Stores, jobs: Vec<CommitJob>) -> std::result::Result<(), Retry> {
    let Stores {
        repo,
        blobs,
        digests,
    } = stores;
    // Database first: claims and rows. Nothing is published yet, so a
    // refusal here leaves the staged bytes for a retry.
    let mut tx = match repo.begin().await {
        Ok(tx) => tx,
        Err(e) => return Err(Retry::Each(jobs, e)),
    };
    // Slots move to their new media and codes are checked in this
    // transaction, so a reader of a slot sees the old media or the new.
    // First: a displaced media's row is locked before any blob row, the
    // order every writer keeps (see `repo`), so this never deadlocks.
    let mut replaced = Vec::with_capacity(jobs.len());
    for job in &jobs {
        match take_names(&mut tx, &job.media, job.policy).await {
            Ok(r) => replaced.push(r),
            Err(e) => return Err(Retry::Each(jobs, e)),
        }
    }
    // Jobs are sorted by hash: one claim per distinct blob.
    let mut claims: Vec<BlobClaim<'_>> = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let m = &job.media;
        match claims.last_mut() {
            Some(c) if c.hash == m.blob => {
                c.count += 1;
                c.md5 = c.md5.or(m.md5.as_deref());
            }
            _ => claims.push(BlobClaim {
                hash: m.blob,
                content: m.content,
                size: m.size,
                md5: m.md5.as_deref(),
                count: 1,
            }),
        }
    }
    let after = match tx.claim_blobs(&claims).await {
        Ok(after) => after,
        Err(e) => return Err(Retry::Each(jobs, e)),
    };
    // The first upload of a blob nobody referenced before publishes it;
    // every other one shares the bytes.
    let mut fresh = Vec::with_capacity(jobs.len());
    for (claim, refs) in claims.iter().zip(after) {
        let count = usize::try_from(claim.count).unwrap_or(0);
        fresh.push(refs == claim.count);
        fresh.extend(std::iter::repeat_n(false, count.saturating_sub(1)));
    }
    // Which tenants held the batch's blobs, read before its rows go in:
    // `deduplicated` speaks only of the caller's own tenant. Asked of new
    // blobs too (no media names them yet), so that the look-up costs
    // new bytes what it costs bytes another tenant holds: asked of the
    // latter alone, it made their uploads measurably slower (80 us).
    let all: Vec<ContentHash> = claims.iter().map(|c| c.hash).collect();
    let mut held = match tx.tenants_holding(&all).await {
        Ok(held) => held,
        Err(e) => return Err(Retry::Each(jobs, e)),
    };
    let mut own = Vec::with_capacity(jobs.len());
    for job in &jobs {
        // A second upload of the same bytes by the same tenant in this
        // batch finds the first.
        own.push(!held.insert((job.media.tenant, job.media.blob)));
    }
    let rows: Vec<&Media> = jobs.iter().map(|j| &j.media).collect();
    if let Err(e) = tx.insert_media(&rows).await {
        return Err(Retry::Each(jobs, e));
    }
    for job in &jobs {
        if let Some(upload) = job.upload
            && let Err(e) = tx.finish_upload(upload, job.media.id).await
        {
            return Err(Retry::Each(jobs, e));
        }
    }
    let follow_ups: Vec<NewJob> = jobs.iter().filter_map(|j| j.follow_up.clone()).collect();
    if let Err(e) = tx.insert_jobs(&follow_ups).await {
        return Err(Retry::Each(jobs, e));
    }

    // Then the bytes: new blobs are made durable and named, once for the
    // whole batch.
    let mut replies = Vec::with_capacity(jobs.len());
    let mut to_publish = Vec::new();
    // Staged copies of bytes stored already, dropped once the batch is
    // answered (freeing a large file's blocks takes a while). Those only
    // other tenants held first pay what new bytes cost, so that the caller
    // cannot tell from the time that someone else had them: the barrier a
    // publish would, and after the answer the MD5 pass new bytes get
    // (whose CPU and database write would otherwise slow only the answers
    // of new bytes). Small blobs in memory go inline, in this transaction.
    // Copies of bytes only other tenants held are written again too (the
    // same bytes under the same name): the statement costs a measurable
    // fraction of a lone small upload's time.
    let (mut cover, mut unneeded, mut inline) = (Vec::new(), Vec::new(), Vec::new());
    // Per cover copy: its blob, and whether new bytes there would get an
    // MD5 pass (the upload brought none).
    let mut cover_md5 = Vec::new();
    for (((job, fresh), own), replaced) in jobs.into_iter().zip(fresh).zip(own).zip(replaced) {
        if own && !fresh {
            unneeded.push(job.staged);
        } else if job.staged.in_memory() {
            if let Some(bytes) = take_in_memory(job.staged) {
                inline.push((job.media.blob, bytes));
            }
        } else if fresh {
            to_publish.push((job.staged, job.media.blob));
        } else {
            cover_md5.push((job.media.blob, job.media.md5.is_none()));
            cover.push((job.staged, job.media.blob));
        }
        replies.push((
            job.reply,
            UploadOutcome {
                media: job.media,
                deduplicated: own,
                shared: !fresh,
                replaced,
            },
        ));
    }
    // Jobs are in hash order: one row per blob (PostgreSQL refuses an
    // upsert that names a row twice).
    inline.dedup_by_key(|(hash, _)| *hash);
    let mut published = tx.put_inline(inline).await;
    let mut covered = Vec::new();
    if published.is_ok() && (!to_publish.is_empty() || !cover.is_empty()) {
        let store = Arc::clone(blobs);
        published = blocking(move || {
            // Each only when it has blobs: an empty call would still be
            // timed as a publish (and, for the local store's cover, pay a
            // directory fsync that new bytes alone never need).
            let publish = || {
                if !to_publish.is_empty() {
                    store.publish(to_publish)?;
                }
                if cover.is_empty() {
                    Ok(Vec::new())
                } else {
                    store.barrier_as_published(cover)
                }
            };
            publish().map_err(|e| Error::io("publishing a batch of blobs", e))
        })
        .await
        .map(|paid| covered = paid);
    }

    // Finally the commit; only now is any upload acknowledged.
    let result = match published {
        Ok(()) => tx.commit().await,
        Err(e) => Err(e),
    };
    let answered = match result {
        Ok(()) => {
            for (reply, outcome) in replies {
                let _ = reply.send(Ok(outcome));
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "committing a batch of uploads failed");
            // A store that could not take the bytes is said so to each
            // upload (STORAGE_UNAVAILABLE), anything else as the database.
            let store = match &e {
                Error::Io { source, .. } => StoreUnavailable::of(source),
                _ => None,
            };
            for (reply, _) in replies {
                let _ = reply.send(Err(match &store {
                    Some(u) => Error::io(
                        "storing the upload",
                        StoreUnavailable::error(
                            std::io::ErrorKind::Other,
                            u.cause.clone(),
                            u.message.clone(),
                        ),
                    ),
                    None => Error::Unavailable {
                        reason: Reason::DatabaseUnavailable,
                        message: "storing the upload failed on the server; retry it".into(),
                    },
                }));
            }
            Err(Retry::Failed)
        }
    };
    // Once the uploads are answered: the cover copies' MD5 pass, as new
    // bytes get theirs (`Library::store_received`), and the unneeded
    // copies go, on the blocking pool.
    for (copy, (hash, md5)) in covered.into_iter().zip(cover_md5) {
        let back = if md5 && answered.is_ok() {
            digests.enqueue_copy(hash, copy)
        } else {
            Some(copy)
        };
        unneeded.extend(back);
    }
    if !unneeded.is_empty() {
        drop(tokio::task::spawn_blocking(move || drop(unneeded)));
    }
    answered
}
