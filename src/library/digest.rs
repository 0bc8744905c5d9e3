//! Background MD5: computed after an upload is acknowledged.
//!
//! MD5 runs at about 0.5 GB/s, slower than the disk and BLAKE3, so it is
//! kept off the upload's path (unless the client asked to verify one). A
//! single OS thread at the lowest scheduling priority reads each new blob
//! and hashes it, so it uses the spare core without slowing uploads; the
//! result is recorded on the blob row, where every media sharing the bytes
//! sees it; results that finish together are recorded in one transaction,
//! retried a few times if it fails. Blobs still missing an MD5 at start-up
//! are queued again.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use md5::Digest as _;
use tokio::sync::mpsc;

use crate::{
    blob::{BlobStore, StagedBlob},
    domain::{ContentHash, Md5Digest},
    repo::Repo,
};

/// Bytes read per step while hashing.
const READ_SIZE: usize = 1024 * 1024;
/// Most digests recorded in one transaction.
const RECORD_BATCH: usize = 500;
/// Tries to record one batch: a failure (the database briefly away, a
/// transaction chosen as a deadlock victim) is retried soon, not left for
/// the next start-up.
const RECORD_ATTEMPTS: u32 = 5;
/// Pause before the first retry; it doubles after each failure.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Most staged copies waiting for their MD5 pass. Each holds an open file
/// and its bytes on disk until it is hashed, and the worker runs only on
/// spare CPU, so under a flood of such uploads the copies past this many
/// are given back to be dropped at once (their pass is for timing's sake).
const MAX_WAITING_COPIES: usize = 64;

/// Sender side of the MD5 queue.
#[derive(Debug, Clone)]
pub(super) struct DigestQueue {
    work: std::sync::mpsc::Sender<Work>,
    /// Copies queued and not yet hashed.
    copies: Arc<AtomicUsize>,
}

/// What the worker hashes.
enum Work {
    /// A stored blob.
    Stored(ContentHash),
    /// A staged copy of the stored blob `.0`, discarded once hashed.
    Copy(ContentHash, Box<dyn StagedBlob>),
}

impl DigestQueue {
    /// Asks for the blob's MD5 to be computed and recorded.
    pub(super) fn enqueue(&self, hash: ContentHash) {
        // The worker only stops when the process does.
        let _ = self.work.send(Work::Stored(hash));
    }

    /// Asks for the MD5 of a staged copy of blob `hash` (bytes another
    /// tenant stored first) to be computed and recorded as the blob's, then
    /// for the copy to be discarded: the same work, after the answer, as
    /// new bytes cause, so that it slows the answers of neither kind more.
    /// Gives the copy back when `MAX_WAITING_COPIES` wait already.
    pub(super) fn enqueue_copy(
        &self,
        hash: ContentHash,
        copy: Box<dyn StagedBlob>,
    ) -> Option<Box<dyn StagedBlob>> {
        if self.copies.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_COPIES {
            self.copies.fetch_sub(1, Ordering::AcqRel);
            return Some(copy);
        }
        match self.work.send(Work::Copy(hash, copy)) {
            Ok(()) => None,
            Err(std::sync::mpsc::SendError(Work::Copy(_, copy))) => {
                self.copies.fetch_sub(1, Ordering::AcqRel);
                Some(copy)
            }
            Err(_) => None,
        }
    }
}

/// Starts the worker thread and the task that records its results.
pub(super) fn spawn(repo: Repo, blobs: Arc<dyn BlobStore>) -> DigestQueue {
    let (tx, rx) = std::sync::mpsc::channel::<Work>();
    let copies = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::clone(&copies);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(ContentHash, Md5Digest)>();
    let runtime = tokio::runtime::Handle::current();
    let inline = repo.clone();
    let spawned = std::thread::Builder::new()
        .name("md5-digest".into())
        .spawn(move || {
            lower_priority();
            while let Ok(work) = rx.recv() {
                let hash = match work {
                    Work::Stored(hash) => hash,
                    Work::Copy(hash, copy) => {
                        let digest = md5_of(|b, at| copy.read_at(b, at));
                        // Its removal is committed with the digest's
                        // record, as a new blob's record commits nothing
                        // more.
                        drop(copy);
                        waiting.fetch_sub(1, Ordering::AcqRel);
                        match digest {
                            Ok(md5) if done_tx.send((hash, md5)).is_err() => return,
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(blob = %hash, error = %e, "computing MD5 failed")
                            }
                        }
                        continue;
                    }
                };
                // Blobs stored inline are read from the database (uploads
                // and renditions stored inline record their MD5 as they
                // are made; this covers any row that lacks one).
                let digest = match blobs.open(&hash) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        match runtime.block_on(inline.inline_blob(&hash)) {
                            Ok(Some(data)) => Ok(Md5Digest(md5::Md5::digest(&data).into())),
                            Ok(None) => Err(e),
                            Err(db) => Err(io::Error::other(db.to_string())),
                        }
                    }
                    opened => opened.and_then(|reader| md5_of(|b, at| reader.read_at(b, at))),
                };
                match digest {
                    Ok(md5) => {
                        if done_tx.send((hash, md5)).is_err() {
                            return;
                        }
                    }
                    // Deleted meanwhile: nothing to record.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(blob = %hash, error = %e, "computing MD5 failed"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the MD5 worker; MD5 fields stay empty");
    }
    tokio::spawn(async move {
        let mut done = Vec::new();
        while done_rx.recv_many(&mut done, RECORD_BATCH).await > 0 {
            let digests: Vec<(ContentHash, String)> =
                done.drain(..).map(|(h, m)| (h, m.to_hex())).collect();
            record(&repo, &digests).await;
        }
    });
    DigestQueue { work: tx, copies }
}

/// Records a batch of digests, retrying a failure a few times.
async fn record(repo: &Repo, digests: &[(ContentHash, String)]) {
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=RECORD_ATTEMPTS {
        match repo.set_md5s(digests).await {
            Ok(()) => return,
            Err(e) if attempt < RECORD_ATTEMPTS => {
                tracing::warn!(blobs = digests.len(), attempt, error = %e, "recording MD5s failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => tracing::error!(
                blobs = digests.len(),
                error = %e,
                "recording MD5s failed; they are computed again at the next start"
            ),
        }
    }
}

/// The MD5 of the bytes `read_at` reads (a blob's or a staged copy's).
fn md5_of(read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>) -> io::Result<Md5Digest> {
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; READ_SIZE];
    let mut offset = 0;
    loop {
        let n = read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(Md5Digest(md5.finalize().into()))
}

/// Gives the calling thread the lowest CPU priority (nice 19), so that the
/// digest only uses time no request wants.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 affects only the
    // calling thread on Linux; it takes plain integers and touches no memory.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::fs::FsBlobStore;

    #[test]
    fn copies_past_the_bound_come_back_to_be_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::staging_only(dir.path()).expect("store");
        // A worker that never runs: every copy sent stays waiting.
        let (work, _rx) = std::sync::mpsc::channel();
        let queue = DigestQueue {
            work,
            copies: Arc::new(AtomicUsize::new(0)),
        };
        let hash = ContentHash([7; 32]);
        for _ in 0..MAX_WAITING_COPIES {
            let copy = store.stage().expect("stage");
            assert!(queue.enqueue_copy(hash, copy).is_none());
        }
        let copy = store.stage().expect("stage");
        assert!(queue.enqueue_copy(hash, copy).is_some());
        assert_eq!(queue.copies.load(Ordering::Acquire), MAX_WAITING_COPIES);
    }
}
