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

use std::{io, sync::Arc};

use md5::Digest as _;
use tokio::sync::mpsc;

use crate::{
    blob::{BlobReader, BlobStore},
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

/// Sender side of the MD5 queue.
#[derive(Debug, Clone)]
pub(super) struct DigestQueue(std::sync::mpsc::Sender<ContentHash>);

impl DigestQueue {
    /// Asks for the blob's MD5 to be computed and recorded.
    pub(super) fn enqueue(&self, hash: ContentHash) {
        // The worker only stops when the process does.
        let _ = self.0.send(hash);
    }
}

/// Starts the worker thread and the task that records its results.
pub(super) fn spawn(repo: Repo, blobs: Arc<dyn BlobStore>) -> DigestQueue {
    let (tx, rx) = std::sync::mpsc::channel::<ContentHash>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(ContentHash, Md5Digest)>();
    let runtime = tokio::runtime::Handle::current();
    let inline = repo.clone();
    let spawned = std::thread::Builder::new()
        .name("md5-digest".into())
        .spawn(move || {
            lower_priority();
            while let Ok(hash) = rx.recv() {
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
                    opened => opened.and_then(|reader| md5_of(reader.as_ref())),
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
    DigestQueue(tx)
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

fn md5_of(reader: &dyn BlobReader) -> io::Result<Md5Digest> {
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; READ_SIZE];
    let mut offset = 0;
    loop {
        let n = reader.read_at(&mut buf, offset)?;
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
