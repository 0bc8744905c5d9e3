//! The group committer: makes finished uploads durable in batches.
//!
//! Each upload arrives here with its bytes already fsynced in staging. One
//! task takes every upload that is waiting and commits them together:
//!
//! 1. one transaction claims each blob row (in hash order, so concurrent
//!    replicas never deadlock) and inserts each media row;
//! 2. each new blob is renamed to its content name, then the touched
//!    shard directories are fsynced once for the whole batch;
//! 3. the transaction commits (one database fsync for the batch);
//! 4. every upload in the batch is acknowledged.
//!
//! No deliberate wait is added: while one batch commits, the uploads that
//! finish meanwhile queue up and form the next batch, so batches grow with
//! the load and a lone upload is not delayed. If the database refuses the
//! batch before anything was published, each upload is retried alone so
//! that one bad upload cannot fail the others.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::upload::{UploadOutcome, blocking};
use crate::{
    blob::{BlobStore, StagedBlob},
    domain::Media,
    error::{Error, Result},
    repo::Repo,
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
    reply: oneshot::Sender<Result<UploadOutcome>>,
}

impl CommitJob {
    /// A job and the receiver of its outcome.
    pub(super) fn new(
        staged: Box<dyn StagedBlob>,
        media: Media,
    ) -> (Self, oneshot::Receiver<Result<UploadOutcome>>) {
        let (reply, rx) = oneshot::channel();
        (
            Self {
                staged,
                media,
                reply,
            },
            rx,
        )
    }
}

/// Starts the committer; it stops when every sender is gone, after
/// committing what was queued.
pub(super) fn spawn(repo: Repo, blobs: Arc<dyn BlobStore>) -> mpsc::Sender<CommitJob> {
    let (tx, mut rx) = mpsc::channel::<CommitJob>(QUEUE_DEPTH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let jobs = std::mem::take(&mut batch);
            commit_jobs(&repo, &blobs, jobs).await;
        }
    });
    tx
}

async fn commit_jobs(repo: &Repo, blobs: &Arc<dyn BlobStore>, mut jobs: Vec<CommitJob>) {
    jobs.sort_by(|a, b| a.media.blob.cmp(&b.media.blob));
    let Err(Retry::Each(jobs, err)) = commit_batch(repo, blobs, jobs).await else {
        return;
    };
    if jobs.len() > 1 {
        tracing::warn!(batch = jobs.len(), error = %err, "batch refused; committing its uploads one by one");
        for job in jobs {
            if let Err(Retry::Each(one, err)) = commit_batch(repo, blobs, vec![job]).await {
                reply_all(one, err);
            }
        }
    } else {
        reply_all(jobs, err);
    }
}

/// Tells the jobs of a refused batch of one (or several) why.
fn reply_all(jobs: Vec<CommitJob>, err: Error) {
    let mut err = Some(err);
    for job in jobs {
        let e = err.take().unwrap_or_else(|| {
            Error::Unavailable("the database refused to record the upload; retry it".into())
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

async fn commit_batch(
    repo: &Repo,
    blobs: &Arc<dyn BlobStore>,
    jobs: Vec<CommitJob>,
) -> std::result::Result<(), Retry> {
    // Database first: claims and rows. Nothing is published yet, so a
    // refusal here leaves the staged bytes for a retry.
    let mut tx = match repo.begin().await {
        Ok(tx) => tx,
        Err(e) => return Err(Retry::Each(jobs, e)),
    };
    let mut fresh = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let m = &job.media;
        match tx.claim_blob(&m.blob, m.size, m.md5.as_deref()).await {
            Ok(refs) => fresh.push(refs == 1),
            Err(e) => return Err(Retry::Each(jobs, e)),
        }
    }
    for job in &jobs {
        if let Err(e) = tx.insert_media(&job.media).await {
            return Err(Retry::Each(jobs, e));
        }
    }

    // Then the bytes: new blobs get their names, made durable once.
    let mut replies = Vec::with_capacity(jobs.len());
    let mut to_publish = Vec::new();
    let mut hashes = Vec::new();
    for (job, fresh) in jobs.into_iter().zip(fresh) {
        if fresh {
            hashes.push(job.media.blob);
            to_publish.push((job.staged, job.media.blob));
        }
        // A staged copy of bytes already stored is dropped (removed) here.
        replies.push((
            job.reply,
            UploadOutcome {
                media: job.media,
                deduplicated: !fresh,
            },
        ));
    }
    let store = Arc::clone(blobs);
    let published = blocking(move || {
        for (staged, hash) in to_publish {
            staged
                .publish(&hash)
                .map_err(|e| Error::io(format!("publishing blob {hash}"), e))?;
        }
        store
            .sync_published(&hashes)
            .map_err(|e| Error::io("syncing blob directories", e))
    })
    .await;

    // Finally the commit; only now is any upload acknowledged.
    let result = match published {
        Ok(()) => tx.commit().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            for (reply, outcome) in replies {
                let _ = reply.send(Ok(outcome));
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "committing a batch of uploads failed");
            for (reply, _) in replies {
                let _ = reply.send(Err(Error::Unavailable(
                    "storing the upload failed on the server; retry it".into(),
                )));
            }
            Err(Retry::Failed)
        }
    }
}
