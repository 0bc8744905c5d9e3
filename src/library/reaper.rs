//! The reaper: removes blobs whose last reference a delete dropped, after
//! the delete has answered.
//!
//! Whether a delete drops the *last* reference to some bytes depends on
//! every tenant's media, not only the caller's. Removing the bytes (the
//! blob row, the file or object, the renditions made from them) inside
//! the call would make a delete of bytes nobody else holds measurably
//! slower than a delete of bytes another tenant also stores, and so tell
//! the caller what other tenants store. A delete therefore only drops its
//! references and hands the blobs that reached zero to this task, which
//! removes them off the request path. Nothing is lost if the process dies
//! first: the rows stay at zero references and garbage collection (at the
//! next start and every `--gc-interval`) removes them the same way.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{Notify, mpsc};

use super::Library;
use crate::domain::ContentHash;

/// Most hashes released in one transaction.
const BATCH: usize = 1000;

/// Handle to the reaper: hands it blobs to remove when unreferenced.
#[derive(Debug, Clone)]
pub(super) struct Reaper {
    queue: mpsc::UnboundedSender<ContentHash>,
    progress: Arc<Progress>,
}

/// How far the reaper is, for [`Reaper::settled`].
#[derive(Debug, Default)]
struct Progress {
    /// Hashes queued so far.
    queued: AtomicU64,
    /// Hashes handled so far (removed, kept or failed).
    handled: AtomicU64,
    /// Woken after each batch.
    batch_done: Notify,
}

/// The receiving end, until the library exists to run it.
#[derive(Debug)]
pub(super) struct ReaperQueue(mpsc::UnboundedReceiver<ContentHash>, Arc<Progress>);

/// A reaper and the queue its task will read.
pub(super) fn channel() -> (Reaper, ReaperQueue) {
    let (queue, rx) = mpsc::unbounded_channel();
    let progress = Arc::new(Progress::default());
    (
        Reaper {
            queue,
            progress: Arc::clone(&progress),
        },
        ReaperQueue(rx, progress),
    )
}

impl Reaper {
    /// Queues blobs that may have lost their last reference; those still
    /// referenced when the reaper gets to them (an upload claimed them
    /// again meanwhile) stay.
    pub(super) fn release(&self, hashes: impl IntoIterator<Item = ContentHash>) {
        for hash in hashes {
            // Only fails once the task is gone (the runtime is stopping):
            // garbage collection then removes the rows left at zero.
            if self.queue.send(hash).is_ok() {
                self.progress.queued.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Waits until every blob queued before this call has been handled.
    pub(super) async fn settled(&self) {
        let p = &self.progress;
        let target = p.queued.load(Ordering::Acquire);
        loop {
            let woken = p.batch_done.notified();
            if p.handled.load(Ordering::Acquire) >= target {
                return;
            }
            woken.await;
        }
    }
}

/// Runs the reaper for `library` until every sender is gone.
pub(super) fn spawn(library: Library, ReaperQueue(mut rx, progress): ReaperQueue) {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let taken = batch.len() as u64;
            batch.sort_unstable_by_key(|h| h.0);
            batch.dedup();
            match library.release_blobs(&batch).await {
                Ok(gone) if gone > 0 => {
                    tracing::debug!(blobs = gone, "released unreferenced blobs")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    blobs = batch.len(),
                    error = %e,
                    "releasing unreferenced blobs failed; garbage collection will remove them"
                ),
            }
            batch.clear();
            progress.handled.fetch_add(taken, Ordering::AcqRel);
            progress.batch_done.notify_waiters();
        }
    });
}
