//! Storage integrity: garbage collection and scrubbing.
//!
//! Garbage collection removes what no row needs: blob files without a
//! referencing media (a crash between a publish and its commit, or between
//! a delete's commit and its file removal), staged files of crashed
//! uploads, and files of resumable uploads that are no longer active. A
//! blob file is only removed under the same row lock an upload of those
//! bytes would take, and only once it is older than a grace period longer
//! than any commit, so a commit in flight never loses its bytes.
//!
//! The scrub reads every referenced blob back and re-hashes it, wherever
//! it is (inline in the database or in the store). A blob whose bytes no
//! longer match its BLAKE3 (its name, or the one its row records beside a
//! tenant-scoped name) is moved to quarantine: reading its
//! media then fails with DATA_LOSS instead of returning wrong bytes, and
//! later scrubs report it as missing until an operator restores it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{Library, upload::blocking};
use crate::{
    blob::BlobReader,
    domain::{ContentHash, UploadId},
    error::{Error, Result},
    repo::{BlobClaim, StoredRow},
};

/// Files younger than this are left alone by garbage collection: a commit
/// takes milliseconds, an upload's staged file is written to continuously.
pub const GC_GRACE: Duration = Duration::from_secs(3600);
/// Blobs read per page of the scrub's walk.
const SCRUB_PAGE: u64 = 500;
/// Block size for re-hashing.
const READ_BLOCK: usize = 1 << 20;

/// What garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Blob files no media referenced.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Staged files of crashed uploads.
    pub staged: u64,
    /// Files of resumable uploads no longer active.
    pub upload_files: u64,
}

/// Where a scrub is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blobs checked so far.
    pub checked: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Referenced blobs whose file is missing.
    pub missing: Vec<ContentHash>,
    /// Blobs whose bytes did not match their name, now quarantined.
    pub corrupt: Vec<ContentHash>,
}

impl ScrubReport {
    /// True when every referenced blob was present and correct.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }
}

/// What re-reading one blob found.
enum Check {
    Good,
    Missing,
    Corrupt,
}

impl Library {
    /// Removes what no row needs and that has not changed for `grace`.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport> {
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = GcReport::default();
        // Rows left at zero references (a crash between a delete's commit
        // and the removal of its file).
        loop {
            let unreferenced = self.inner.repo.unreferenced_blobs(1000).await?;
            if unreferenced.is_empty() {
                break;
            }
            let gone = self.release_blobs(&unreferenced).await?;
            report.blobs += gone;
            if gone < unreferenced.len() as u64 {
                break;
            }
        }
        for shard in 0..=255u8 {
            let store = Arc::clone(&self.inner.blobs);
            let mut stored = blocking(move || {
                store
                    .list_shard(shard)
                    .map_err(|e| Error::io("listing stored blobs", e))
            })
            .await?;
            stored.retain(|b| b.changed < cutoff);
            stored.sort_by_key(|b| b.hash);
            let hashes: Vec<ContentHash> = stored.iter().map(|b| b.hash).collect();
            let used = self.inner.repo.referenced_among(&hashes).await?;
            let orphans: Vec<BlobClaim<'_>> = stored
                .iter()
                .filter(|b| !used.contains(&b.hash))
                .map(|b| BlobClaim {
                    hash: b.hash,
                    // Unknown for a file without a row, which goes in this
                    // transaction unless an upload holds it, whose row then
                    // keeps the BLAKE3 it recorded.
                    content: b.hash,
                    size: b.size,
                    md5: None,
                    count: 0,
                })
                .collect();
            if orphans.is_empty() {
                continue;
            }
            // Claiming no references takes the row lock an upload of these
            // bytes would take (creating rows for files that have none);
            // then only blobs still unreferenced are removed.
            let mut tx = self.inner.repo.begin().await?;
            tx.claim_blobs(&orphans).await?;
            let candidates: Vec<ContentHash> = orphans.iter().map(|c| c.hash).collect();
            let gone = tx.remove_unused_blobs(&candidates).await?;
            self.remove_bytes(&mut tx, &gone).await?;
            tx.commit().await?;
            report.blobs += gone.len() as u64;
            report.blob_bytes += stored
                .iter()
                .filter(|b| gone.contains(&b.hash))
                .map(|b| b.size)
                .sum::<u64>();
        }
        let store = Arc::clone(&self.inner.blobs);
        report.staged = blocking(move || {
            store
                .remove_stale_staging(cutoff)
                .map_err(|e| Error::io("removing stale staged files", e))
        })
        .await? as u64;
        report.upload_files = self.remove_inactive_upload_files(cutoff).await?;
        Ok(report)
    }

    /// Removes files of uploads that are not active and that have not
    /// changed since `before` (a file younger than that may belong to an
    /// upload whose row is being written). Returns how many.
    pub(super) async fn remove_inactive_upload_files(&self, before: SystemTime) -> Result<u64> {
        let store = Arc::clone(&self.inner.blobs);
        let files = blocking(move || {
            store
                .upload_files()
                .map_err(|e| Error::io("listing upload files", e))
        })
        .await?;
        let mut removed = 0;
        for (name, changed) in files {
            if changed >= before {
                continue;
            }
            let active = match uuid::Uuid::try_parse(&name) {
                Ok(u) => self.inner.repo.upload_active(UploadId(u)).await?,
                Err(_) => false,
            };
            if !active {
                let store = Arc::clone(&self.inner.blobs);
                blocking(move || {
                    store
                        .remove_upload(&name)
                        .map_err(|e| Error::io("removing an upload file", e))
                })
                .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Re-reads every referenced blob and checks it against its BLAKE3,
    /// quarantining those that differ. `progress` hears the report after
    /// each page of blobs, and may stop the scrub there by returning an
    /// error (a cancelled job does).
    pub async fn scrub(
        &self,
        mut progress: impl FnMut(&ScrubReport) -> Result<()>,
    ) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        let mut after = None;
        loop {
            let page = self
                .inner
                .repo
                .referenced_blobs_after(after, SCRUB_PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.name);
            for StoredRow {
                name: hash,
                size,
                content,
            } in page
            {
                let reader = self.open_blob(&hash, size).await?;
                // Only inline bytes come back in memory.
                let inline = reader.as_ref().is_some_and(|r| r.bytes().is_some());
                let check = match reader {
                    None => Check::Missing,
                    Some(r) => {
                        blocking(move || check_blob(r.as_ref(), &hash, &content, size)).await?
                    }
                };
                match check {
                    Check::Good => {}
                    Check::Missing => {
                        // Deleted since the page was read, or really lost.
                        if self
                            .inner
                            .repo
                            .referenced_among(&[hash])
                            .await?
                            .contains(&hash)
                        {
                            tracing::error!(blob = %hash, "scrub: a referenced blob is missing");
                            report.missing.push(hash);
                        }
                    }
                    Check::Corrupt => {
                        if self.quarantine(&hash, inline).await? {
                            tracing::error!(blob = %hash, "scrub: blob content does not match its name; quarantined");
                            report.corrupt.push(hash);
                        }
                    }
                }
                report.checked += 1;
                report.bytes += size;
            }
            progress(&report)?;
        }
        Ok(report)
    }

    /// Moves a blob's bytes out of reach, keeping them for inspection.
    /// Returns false when they were gone already (deleted with their last
    /// media meanwhile).
    async fn quarantine(&self, hash: &ContentHash, inline: bool) -> Result<bool> {
        // Bytes held in memory for URLs must not outlive their quarantine.
        self.inner.served.changed();
        if inline {
            let mut tx = self.inner.repo.begin().await?;
            let moved = tx.quarantine_inline(hash).await?;
            tx.commit().await?;
            return Ok(moved);
        }
        let store = Arc::clone(&self.inner.blobs);
        let hash = *hash;
        blocking(move || match store.quarantine(&hash) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("quarantining blob {hash}"), e)),
        })
        .await
    }

    /// Deletes blob files (their rows are gone or locked by the caller).
    pub(super) async fn delete_blob_files(&self, hashes: &[ContentHash]) -> Result<()> {
        let store = Arc::clone(&self.inner.blobs);
        let files = hashes.to_vec();
        blocking(move || {
            for h in &files {
                store
                    .delete(h)
                    .map_err(|e| Error::io(format!("deleting blob {h}"), e))?;
            }
            Ok(())
        })
        .await
    }
}

/// Re-hashes the blob named `hash`, whose bytes must have the BLAKE3
/// `content` (the name itself, unless tenant-scoped).
fn check_blob(
    reader: &dyn BlobReader,
    hash: &ContentHash,
    content: &ContentHash,
    size: u64,
) -> Result<Check> {
    if reader.len() != size {
        return Ok(Check::Corrupt);
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_BLOCK];
    let mut at = 0u64;
    loop {
        let n = reader
            .read_at(&mut buf, at)
            .map_err(|e| Error::io(format!("reading blob {hash}"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    let got: ContentHash = hasher.finalize().into();
    Ok(if at == size && got == *content {
        Check::Good
    } else {
        Check::Corrupt
    })
}
