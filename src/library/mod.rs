//! The domain's operations on media: upload, read, delete.
//!
//! [`Library`] owns the rules that tie the repository and the blob store
//! together: the order of writes that makes an upload durable, the
//! reference counting that lets identical bytes be stored once, and the
//! locking that keeps a delete from removing bytes another upload is about
//! to reference. The gRPC services only translate to and from it.

mod access;
mod catalog;
mod commit;
mod content;
mod digest;
mod folders;
mod integrity;
mod jobs;
mod reanalyze;
mod reaper;
mod renditions;
mod resumable;
mod served;
mod slots;
mod stored;
mod upload;
mod url_keys;
mod urls;

use std::sync::Arc;

pub use self::renditions::{
    EAGER_RENDITIONS, OpenedRendition, RenditionRequest, RenditionSettings,
};
pub use self::{
    access::{BOOTSTRAP_KEY_NAME, KEY_CACHE_TTL},
    catalog::BatchDeletion,
    folders::{DELETE_FOLDER, MAX_TREE_NODES},
    integrity::{GC_GRACE, GcReport, ScrubReport},
    jobs::{JobSignals, WATCH_POLL},
    reanalyze::Reanalysis,
    resumable::{UploadProgress, UploadWrite},
    served::{SERVED_TTL, Served},
    upload::{UploadOutcome, UploadPart},
    url_keys::{GENERATED_KEY_ID, MIN_SECRET_CHARS, UrlKeys},
    urls::{
        BaseUrl, Delivery, MediaUrl, UrlAccess, UrlMedia, UrlRefusal, UrlRequest, UrlTarget,
        unix_now,
    },
};
use crate::{
    blob::{BlobReader, BlobStore},
    domain::{ContentHash, FolderId, Media, MediaId, TenantId, TypePolicy},
    error::{Error, Reason, Resource, Result},
    repo::{Removed, Repo},
};

/// Default largest blob kept inline in the database: 64 KiB holds most
/// thumbnails, avatars and API payloads (BENCHMARKS.md has the figures).
pub const DEFAULT_INLINE_MAX_SIZE: u64 = 64 * 1024;

/// Limits that protect the server from oversized requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted upload, in bytes.
    pub max_upload_size: u64,
    /// Accepted content types and their size limits.
    pub policy: TypePolicy,
    /// Rendition presets and limits.
    pub renditions: RenditionSettings,
    /// Time a resumable upload has to finish.
    pub upload_expiry: std::time::Duration,
    /// How long a resumable upload's writing stream holds it without news.
    pub upload_hold: std::time::Duration,
    /// Time between sweeps of expired resumable uploads.
    pub upload_sweep: std::time::Duration,
    /// Time between background garbage collections.
    pub gc_every: std::time::Duration,
    /// Blobs up to this size live inline in the database (see
    /// `blob::inline`); at most `blob::inline::INLINE_MAX`, 0 for none.
    pub inline_max_size: u64,
    /// Which uploads share stored bytes.
    pub dedupe_scope: crate::domain::DedupeScope,
    /// How media URLs are made and checked.
    pub delivery: Delivery,
}

impl Limits {
    /// The defaults, with `max_upload_size`.
    pub fn new(max_upload_size: u64) -> Self {
        Self {
            max_upload_size,
            policy: TypePolicy::accept_all(),
            renditions: RenditionSettings::default(),
            upload_expiry: std::time::Duration::from_secs(7 * 24 * 3600),
            upload_hold: std::time::Duration::from_secs(30),
            upload_sweep: std::time::Duration::from_secs(60),
            gc_every: std::time::Duration::from_secs(3600),
            inline_max_size: DEFAULT_INLINE_MAX_SIZE,
            dedupe_scope: crate::domain::DedupeScope::Global,
            delivery: Delivery::default(),
        }
    }
}

/// What a read will send.
#[derive(Debug)]
pub struct OpenedMedia {
    /// The media's metadata.
    pub media: Media,
    /// First byte to send.
    pub start: u64,
    /// Number of bytes to send.
    pub length: u64,
    /// The open blob.
    pub reader: Box<dyn BlobReader>,
}

/// Entry point of the domain logic; cheap to clone.
#[derive(Debug, Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Rows: media, blobs and their reference counts.
    repo: Repo,
    /// Bytes, by content hash.
    blobs: Arc<dyn BlobStore>,
    /// Configured limits.
    limits: Limits,
    /// Queue of the group committer, which makes finished uploads durable
    /// in batches.
    commits: commit::Committer,
    /// Queue of the background MD5 worker.
    digests: digest::DigestQueue,
    /// Queue of the task that removes blobs deletes left unreferenced,
    /// after the deletes answered (see `reaper`).
    reaper: reaper::Reaper,
    /// Each tenant's root folder, which never changes once created: saves
    /// a query on every upload to the root.
    roots: std::sync::RwLock<std::collections::HashMap<TenantId, FolderId>>,
    /// Each tenant's folder tree, read from the database at most once a
    /// second while nothing in this process changes it.
    trees: folders::TreeCache,
    /// Running hashes of resumable uploads between their streams.
    uploads: resumable::Hashes,
    /// Analyses and renders running at once: each holds a blocking thread
    /// and may read a whole file, so they are bounded by the cores.
    analysis_slots: Arc<tokio::sync::Semaphore>,
    /// Renditions decoded by this process (cache hits do not count).
    renders: std::sync::atomic::AtomicU64,
    /// Taken by the background task making one upload's eager renditions.
    eager_turn: tokio::sync::Semaphore,
    /// API keys recently used, for at most `KEY_CACHE_TTL`.
    keys: access::KeyCache,
    /// Tenants' quotas, for at most `KEY_CACHE_TTL`.
    quotas: access::QuotaCache,
    /// What media URLs resolved to recently, for at most `SERVED_TTL`.
    served: served::ServedCache,
    /// What this process's job workers and API calls share.
    jobs: jobs::JobBoard,
    /// What this server counts for operators; the blob store above is
    /// timed into it already.
    metrics: Arc<crate::metrics::Metrics>,
}

/// Longest pause between two tries of the start-up recovery that waits
/// for the blob store.
const STORE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a scrape waits for the database's counts.
const SAMPLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A count as a gauge's value.
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Library {
    /// Starts the library's background tasks (group committer, MD5 worker)
    /// and cleans up what a crash may have left: staged files and blobs
    /// whose last reference was dropped just before the crash.
    pub async fn start(repo: Repo, blobs: Arc<dyn BlobStore>, limits: Limits) -> Result<Self> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let blobs: Arc<dyn BlobStore> = Arc::new(crate::blob::metered::Metered::new(
            blobs,
            Arc::clone(&metrics),
        ));
        let store = Arc::clone(&blobs);
        let removed = tokio::task::spawn_blocking(move || store.clean_staging())
            .await
            .map_err(|e| Error::io("cleaning staged files", std::io::Error::other(e)))?
            .map_err(|e| Error::io("cleaning staged files", e))?;
        if removed > 0 {
            tracing::info!(removed, "removed staged files left by an interrupted run");
        }
        let digests = digest::spawn(repo.clone(), Arc::clone(&blobs));
        let commits = commit::spawn(repo.clone(), Arc::clone(&blobs), digests.clone());
        let (reaper, reaped) = reaper::channel();
        let library = Self {
            inner: Arc::new(Inner {
                repo,
                blobs,
                limits,
                commits,
                digests,
                reaper,
                roots: Default::default(),
                trees: Default::default(),
                uploads: Default::default(),
                analysis_slots: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, usize::from),
                )),
                renders: Default::default(),
                eager_turn: tokio::sync::Semaphore::new(1),
                keys: Default::default(),
                quotas: Default::default(),
                served: Default::default(),
                jobs: Default::default(),
                metrics,
            }),
        };
        library.recover().await?;
        reaper::spawn(library.clone(), reaped);
        Ok(library)
    }

    async fn recover(&self) -> Result<()> {
        for (tenant, top) in self.inner.repo.pending_folder_deletions().await? {
            // Finish in the background: the server can serve meanwhile.
            let this = self.clone();
            tokio::spawn(async move {
                let tomb = crate::domain::FolderPath::tombstone(top);
                match this.empty_subtree(tenant, &tomb).await {
                    Ok((media, blobs)) => {
                        tracing::info!(folder = %top, media, blobs, "finished an interrupted folder deletion")
                    }
                    Err(e) => {
                        tracing::error!(folder = %top, error = %e, "an interrupted folder deletion failed again; it resumes at the next start")
                    }
                }
            });
        }
        self.recover_uploads().await?;
        self.sweep_replaced().await?;
        let this = self.clone();
        let every = self.inner.limits.gc_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match this.collect_garbage(GC_GRACE).await {
                    Ok(r) if r == GcReport::default() => {}
                    Ok(r) => tracing::info!(
                        blobs = r.blobs,
                        blob_bytes = r.blob_bytes,
                        staged = r.staged,
                        upload_files = r.upload_files,
                        "garbage collected"
                    ),
                    Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                }
            }
        });
        for hash in self.inner.repo.blobs_missing_md5(100_000).await? {
            self.inner.digests.enqueue(hash);
        }
        // A store that does not answer yet (a bucket down, wrong
        // credentials, a missing bucket) must not stop the start: the
        // server serves NOT_SERVING (see `check_health`), uploads answer
        // UNAVAILABLE, and this part of the recovery runs once the store
        // answers. A crash loop of every replica would help nobody.
        match self.recover_store().await {
            Ok(()) => {}
            Err(e) if e.is_store_unavailable() => {
                tracing::warn!(error = %e, "the blob store does not answer; recovering its leftovers once it does");
                let this = self.clone();
                tokio::spawn(async move { this.recover_store_later().await });
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// What recovery needs of the blob store: removes the blobs whose last
    /// reference a crash left (their rows at zero) and the files of
    /// uploads no longer active.
    async fn recover_store(&self) -> Result<()> {
        let unreferenced = self.inner.repo.unreferenced_blobs(10_000).await?;
        self.release_blobs(&unreferenced).await?;
        // Files of uploads a crash left without an active row; a minute
        // is far longer than another replica takes from creating an
        // upload's file to recording its row.
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        self.remove_inactive_upload_files(before).await?;
        Ok(())
    }

    /// Retries [`Self::recover_store`] until the store answers, pausing
    /// longer each time (up to `STORE_RETRY_MAX`).
    async fn recover_store_later(&self) {
        let mut pause = crate::error::RETRY_DELAY;
        loop {
            tokio::time::sleep(pause).await;
            match self.recover_store().await {
                Ok(()) => {
                    tracing::info!("the blob store answers; its leftovers are recovered");
                    return;
                }
                Err(e) if e.is_store_unavailable() => {
                    tracing::debug!(error = %e, "the blob store still does not answer");
                    pause = (pause * 2).min(STORE_RETRY_MAX);
                }
                Err(e) => {
                    tracing::error!(error = %e, "recovering the blob store's leftovers failed; garbage collection retries");
                    return;
                }
            }
        }
    }

    /// Waits until the blobs that deletes before this call left
    /// unreferenced are removed (or failed to be, and wait for garbage
    /// collection): for tests and admin tools that count what is stored.
    pub async fn deletions_settled(&self) {
        self.inner.reaper.settled().await;
    }

    /// The repository (for admin tools and tests).
    pub fn repo(&self) -> &Repo {
        &self.inner.repo
    }

    /// The blob store (for admin tools and tests).
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    /// The tenant's root folder.
    pub async fn root_folder(&self, tenant: TenantId) -> Result<FolderId> {
        if let Some(root) = self.cached_root(tenant) {
            return Ok(root);
        }
        let root = self
            .inner
            .repo
            .root_folder(tenant)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Tenant, tenant.0.to_string()))?;
        if let Ok(mut roots) = self.inner.roots.write() {
            roots.insert(tenant, root);
        }
        Ok(root)
    }

    fn cached_root(&self, tenant: TenantId) -> Option<FolderId> {
        self.inner.roots.read().ok()?.get(&tenant).copied()
    }

    /// The tenant owning media `id` if it is public, itself or through a
    /// public folder above it; NOT_FOUND otherwise, exactly as for a media
    /// that does not exist.
    pub async fn public_owner(&self, id: MediaId) -> Result<TenantId> {
        self.inner
            .repo
            .public_media_owner(id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Media, id.to_string()))
    }

    /// What this server counts for operators.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// Reads into the metrics' gauges what the database holds (upload
    /// sessions, the job queue) and this process's pool use. A database
    /// that does not answer within `SAMPLE_TIMEOUT` leaves the gauges as
    /// they were and counts a sample error: a scrape must not hang.
    pub async fn sample_metrics(&self) {
        let sampled = &self.inner.metrics.sampled;
        let now = crate::domain::now_micros();
        let read = tokio::time::timeout(SAMPLE_TIMEOUT, self.inner.repo.queue_stats(now)).await;
        match read {
            Ok(Ok(q)) => {
                sampled.upload_sessions.set(gauge(q.upload_sessions));
                sampled.jobs_queued.set(gauge(q.jobs_queued));
                sampled.jobs_running.set(gauge(q.jobs_running));
                let waited = q.oldest_due.map_or(0, |due| now.saturating_sub(due).max(0));
                sampled.jobs_oldest_wait_seconds.set(waited as f64 / 1e6);
            }
            Ok(Err(e)) => {
                sampled.sample_errors.inc();
                tracing::warn!(error = %e, "metrics: reading the queue's state failed");
            }
            Err(_) => {
                sampled.sample_errors.inc();
                tracing::warn!("metrics: the database did not answer in time");
            }
        }
        for p in self.inner.repo.pool_stats() {
            let labels = crate::metrics::PoolLabels { pool: p.pool };
            sampled
                .db_connections
                .get_or_create(&labels)
                .set(i64::from(p.size));
            sampled
                .db_idle_connections
                .get_or_create(&labels)
                .set(i64::from(p.idle));
            sampled
                .db_max_connections
                .get_or_create(&labels)
                .set(i64::from(p.max));
        }
    }

    /// Checks that the database answers and the blob store can be written.
    pub async fn check_health(&self) -> Result<()> {
        self.inner.repo.ping().await?;
        let store = Arc::clone(&self.inner.blobs);
        upload::blocking(move || {
            store
                .health_check()
                .map_err(|e| Error::io("writing a probe to the blob store", e))
        })
        .await
    }

    /// One media.
    pub async fn get(&self, tenant: TenantId, id: MediaId) -> Result<Media> {
        self.inner
            .repo
            .get_media(tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Media, id.to_string()))
    }

    /// What bytes found missing mean for `media`: NOT_FOUND when the media
    /// was deleted meanwhile (a race any client can cause, which operators
    /// must not be paged for), else `lost`, a real loss.
    pub(super) async fn unless_deleted(&self, media: &Media, lost: Error) -> Error {
        match self.inner.repo.get_media(media.tenant, media.id).await {
            Ok(None) => Error::not_found(Resource::Media, media.id.to_string()),
            Ok(Some(_)) => lost,
            Err(e) => e,
        }
    }

    /// Opens a media for reading `offset..offset+limit` (`limit` 0: to the
    /// end; negative `offset`: from the end).
    pub async fn open(
        &self,
        tenant: TenantId,
        id: MediaId,
        offset: i64,
        limit: u64,
    ) -> Result<OpenedMedia> {
        let media = self.get(tenant, id).await?;
        let size = media.size;
        let start = if offset >= 0 {
            let start = offset.unsigned_abs();
            if start > size {
                return Err(Error::OutOfRange {
                    reason: Reason::ReadOffsetPastEnd,
                    field: "read_offset".into(),
                    message: format!(
                        "read_offset {start} is past the end of media {id}, which has {size} bytes"
                    ),
                });
            }
            start
        } else {
            size.saturating_sub(offset.unsigned_abs())
        };
        let rest = size - start;
        let length = if limit == 0 { rest } else { limit.min(rest) };
        let opened = self.open_content(media).await?;
        Ok(OpenedMedia {
            start,
            length,
            ..opened
        })
    }

    /// Opens the whole content of `media`, as [`Library::get`] gave it.
    pub async fn open_content(&self, media: Media) -> Result<OpenedMedia> {
        let (id, size, hash) = (media.id, media.size, media.blob);
        let Some(reader) = self.open_blob(&hash, size).await? else {
            // Deleted between the lookup and the open, or lost.
            let lost = Error::data_loss(
                Reason::BlobMissing,
                format!("the content of media {id} (blob {hash}) is missing from storage"),
            );
            return Err(self.unless_deleted(&media, lost).await);
        };
        if reader.len() != size {
            return Err(Error::data_loss(
                Reason::BlobTruncated,
                format!(
                    "the stored content of media {id} has {} bytes, not the {size} recorded",
                    reader.len()
                ),
            ));
        }
        Ok(OpenedMedia {
            media,
            start: 0,
            length: size,
            reader,
        })
    }

    /// Deletes a media; removes its bytes when no other media shares them.
    /// Returns whether the bytes were removed. Unless `force`, a bound media
    /// is refused.
    pub async fn delete(&self, tenant: TenantId, id: MediaId, force: bool) -> Result<bool> {
        let done = self.delete_many(tenant, &[id], force).await?;
        if done.deleted == 0 {
            return Err(Error::not_found(Resource::Media, id.to_string()));
        }
        Ok(done.blobs > 0)
    }

    /// After media of `tenant` were deleted (and committed): drops the
    /// tenant's renditions of the bytes it no longer holds and hands every
    /// blob that may have lost its last reference to the reaper, which
    /// removes it after the call answers. Returns what the tenant no
    /// longer references: its bytes and renditions, counted from the
    /// tenant's own rows only, never from whether other tenants share them
    /// (the count, and the time this takes, would tell the caller what
    /// other tenants store).
    pub(super) async fn release_deleted(&self, tenant: TenantId, removed: &Removed) -> Result<u64> {
        let mut released = removed.released.len() as u64;
        // The tenant's renditions first, then the reaper: once it has a
        // source it removes every tenant's renditions of it, so this count
        // would otherwise depend on whether it got there first, which it
        // can only when no other tenant holds the bytes.
        if !removed.released.is_empty() {
            let mut tx = self.inner.repo.begin().await?;
            // Blob rows first, in hash order, as the reaper (which may be
            // releasing the same bytes for another delete) and every
            // writer lock them.
            tx.lock_blobs(&removed.released, true).await?;
            let (renditions, blobs) = tx
                .remove_unheld_renditions(tenant, &removed.released)
                .await?;
            tx.commit().await?;
            released += renditions;
            self.inner.reaper.release(blobs);
        }
        self.inner
            .reaper
            .release(removed.unreferenced.iter().copied());
        Ok(released)
    }

    /// Removes blobs that no media references. Their rows are deleted first
    /// and kept locked while the files go, so an upload of the same bytes
    /// either claims a row before (and the file stays) or after (and
    /// publishes its own copy). A crash in between leaves a row without a
    /// file, which the next claim repairs and the next start-up removes.
    /// Returns how many went.
    pub(super) async fn release_blobs(&self, hashes: &[ContentHash]) -> Result<u64> {
        if hashes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.inner.repo.begin().await?;
        tx.lock_blobs(hashes, true).await?;
        let mut gone = tx.remove_unused_blobs(hashes).await?;
        // Renditions go with their source, and so do their bytes unless
        // something else references them (even renditions of renditions,
        // should someone upload one).
        let mut released = gone.clone();
        while !released.is_empty() {
            let freed = tx.remove_renditions_of(&released).await?;
            released = tx.remove_unused_blobs(&freed).await?;
            gone.extend_from_slice(&released);
        }
        self.remove_bytes(&mut tx, &gone).await?;
        tx.commit().await?;
        Ok(gone.len() as u64)
    }
}
