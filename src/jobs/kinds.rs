//! What each kind of job does: its handler, which calls library
//! operations and reports progress.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use serde_json::json;

use super::JobContext;
use crate::{
    domain::{FolderId, MediaId, MediaQuery, UploadSpec},
    error::{Error, Result},
    fetch::Fetcher,
    library::{DELETE_FOLDER, EAGER_RENDITIONS, GC_GRACE, Reanalysis},
};

/// Reanalysis of media: a list of ids, a folder (recursively or not), or
/// every media of the tenant.
pub const REANALYZE: &str = "reanalyze";
/// Garbage collection of the whole store.
pub const COLLECT_GARBAGE: &str = "collect_garbage";
/// A scrub of every referenced blob.
pub const SCRUB: &str = "scrub";
/// An import of a file from a URL.
pub const IMPORT: &str = "import";
/// A job that only waits and answers: operators and the benchmark use it
/// to check that workers run jobs end to end and to measure the queue.
/// Its payload may ask it to sleep (`sleep_ms`) and to fail its first
/// attempts (`fail_attempts`), which shows retries working.
pub const PROBE: &str = "probe";

/// Media read per page of a reanalysis walk.
const REANALYZE_PAGE: u64 = 200;
/// Errors a reanalysis keeps in its result (the count keeps them all).
const KEPT_ERRORS: usize = 20;
/// Longest sleep a probe may ask for.
const MAX_PROBE_SLEEP: Duration = Duration::from_secs(3600);
/// A sleeping probe's checkpoints are this far apart.
const PROBE_STEP: Duration = Duration::from_millis(20);

/// One kind's work.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + fmt::Debug {
    /// Runs one attempt; the value is the job's result.
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value>;
}

/// The handlers workers know, by kind.
#[derive(Debug, Clone)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

impl Default for Registry {
    /// Every kind, imports with the default import settings.
    fn default() -> Self {
        Self::new(Fetcher::new(crate::fetch::FetchSettings::default()).ok())
    }
}

impl Registry {
    /// Every kind this server runs; imports through `fetcher` (without
    /// one, an import job fails saying so).
    pub fn new(fetcher: Option<Fetcher>) -> Self {
        let mut handlers: HashMap<&'static str, Arc<dyn Handler>> = HashMap::new();
        handlers.insert(REANALYZE, Arc::new(Reanalyze));
        handlers.insert(COLLECT_GARBAGE, Arc::new(CollectGarbage));
        handlers.insert(SCRUB, Arc::new(Scrub));
        handlers.insert(PROBE, Arc::new(Probe));
        handlers.insert(IMPORT, Arc::new(Import { fetcher }));
        handlers.insert(EAGER_RENDITIONS, Arc::new(EagerRenditions));
        handlers.insert(DELETE_FOLDER, Arc::new(DeleteFolder));
        Self { handlers }
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// The kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }
}

/// Every kind this server runs, sorted: what `ListJobs` accepts. Read
/// from a registry without an import client: the names are all it needs,
/// and building a client loads the TLS roots.
pub fn known_kinds() -> Vec<&'static str> {
    Registry::new(None).kinds()
}

/// What a reanalysis job is asked to walk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReanalyzeTarget {
    /// These media; when empty, `folder_id` or the whole tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_ids: Vec<MediaId>,
    /// This folder's media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<FolderId>,
    /// And its subfolders'.
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug)]
struct Reanalyze;

/// Tallies of a reanalysis, its result.
#[derive(Debug, Default)]
struct Tally {
    analyzed: u64,
    changed: u64,
    skipped: u64,
    failed: u64,
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, id: MediaId, outcome: Result<Reanalysis>) -> Result<()> {
        match outcome {
            Ok(r) => {
                self.analyzed += 1;
                match r {
                    Reanalysis::Changed => self.changed += 1,
                    Reanalysis::Unchanged => {}
                    Reanalysis::Skipped => self.skipped += 1,
                }
            }
            // Deleted meanwhile: nothing to do.
            Err(Error::NotFound { .. }) => {}
            // The whole job stops for these; the rest are the media's.
            Err(e @ (Error::Cancelled(_) | Error::Unavailable { .. } | Error::Database(_))) => {
                return Err(e);
            }
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < KEPT_ERRORS {
                    self.errors.push(format!("media {id}: {e}"));
                }
            }
        }
        Ok(())
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "analyzed": self.analyzed,
            "changed": self.changed,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": self.errors,
        })
    }
}

#[async_trait::async_trait]
impl Handler for Reanalyze {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let tenant = ctx.job.tenant;
        let library = &ctx.library;
        let target: ReanalyzeTarget = serde_json::from_value(ctx.job.payload.clone())
            .map_err(|e| Error::invalid("payload", format!("a malformed reanalysis: {e}")))?;
        let mut tally = Tally::default();
        if !target.media_ids.is_empty() {
            let (found, _) = library.get_many(tenant, &target.media_ids).await?;
            let total = found.len() as u64;
            for (i, media) in found.iter().enumerate() {
                ctx.checkpoint()?;
                tally.add(media.id, library.reanalyze(media).await)?;
                ctx.report_steps(i as u64 + 1, total, format!("{} of {total} media", i + 1));
            }
            return Ok(tally.to_json());
        }
        let query = MediaQuery {
            folder: target.folder_id,
            recursive: target.recursive,
            ..MediaQuery::default()
        };
        let total = library
            .list(tenant, &query, None, 0, true)
            .await?
            .1
            .unwrap_or(0);
        let mut after = None;
        let mut seen = 0u64;
        loop {
            let page = library
                .media_to_reanalyze(tenant, &query, after.as_ref(), REANALYZE_PAGE)
                .await?;
            for media in &page {
                ctx.checkpoint()?;
                tally.add(media.id, library.reanalyze(media).await)?;
                seen += 1;
                // Media added during the walk may take it past the count.
                ctx.report_steps(seen, total.max(seen), format!("{seen} of {total} media"));
            }
            let full = page.len() as u64 == REANALYZE_PAGE;
            match page.into_iter().last() {
                Some(last) if full => after = Some(last),
                _ => break,
            }
        }
        Ok(tally.to_json())
    }
}

/// What an import job is asked to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImportTarget {
    /// The source URL, checked when the job was asked for and again, with
    /// every address it resolves to, when it runs.
    pub url: String,
    /// The new media's header, validated as an upload's.
    pub spec: UploadSpec,
}

#[derive(Debug)]
struct Import {
    fetcher: Option<Fetcher>,
}

#[async_trait::async_trait]
impl Handler for Import {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let fetcher = self.fetcher.as_ref().ok_or_else(|| {
            Error::precondition(
                crate::error::Reason::SourceFailed,
                "this server cannot import: its import settings are unusable (see its log)",
            )
        })?;
        let target: ImportTarget = serde_json::from_value(ctx.job.payload.clone())
            .map_err(|e| Error::invalid("payload", format!("a malformed import: {e}")))?;
        let url = fetcher.check_url("source_url", &target.url)?;
        ctx.report(
            0,
            format!("connecting to {}", url.host_str().unwrap_or_default()),
        );
        let download = fetcher.open(url).await?;
        let source = download.url.to_string();
        let mut spec = target.spec;
        if spec.declared_size.is_none() {
            spec.declared_size = download.length;
        }
        let total = download.length;
        let mut received = 0u64;
        // Progress by bytes, and the job's cancellation, at every chunk.
        let parts = futures_util::StreamExt::map(download.into_parts(), move |part| {
            let part = part?;
            ctx.checkpoint()?;
            received += part.data.len() as u64;
            match total {
                Some(t) => ctx.report_steps(received, t, format!("{received} of {t} bytes")),
                None => ctx.report(0, format!("{received} bytes")),
            }
            Ok(part)
        });
        let stored = ctx.library.upload(spec, parts).await?;
        let m = &stored.media;
        Ok(json!({
            "media_id": m.id.to_string(),
            "blake3": m.content.to_string(),
            "size_bytes": m.size,
            "mime_type": m.mime_type,
            "source_url": source,
            "deduplicated": stored.deduplicated,
        }))
    }
}

/// The presets an upload's commit queued for its image.
#[derive(Debug)]
struct EagerRenditions;

#[derive(serde::Deserialize)]
struct EagerTarget {
    media_id: MediaId,
    presets: Vec<String>,
}

#[async_trait::async_trait]
impl Handler for EagerRenditions {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let target: EagerTarget = serde_json::from_value(ctx.job.payload.clone())
            .map_err(|e| Error::invalid("payload", format!("malformed eager renditions: {e}")))?;
        let made = ctx
            .library
            .render_presets(ctx.job.tenant, target.media_id, &target.presets)
            .await?;
        Ok(json!({ "renditions": made }))
    }
}

/// The media and folders of a deleted folder's subtree.
#[derive(Debug)]
struct DeleteFolder;

#[async_trait::async_trait]
impl Handler for DeleteFolder {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let id: FolderId = ctx.param("folder_id")?;
        ctx.report(0, "deleting the folder's media");
        let (media, blobs) = ctx
            .library
            .finish_folder_deletion(ctx.job.tenant, id)
            .await?;
        Ok(json!({ "deleted_media_count": media, "removed_blob_count": blobs }))
    }
}

#[derive(Debug)]
struct CollectGarbage;

#[async_trait::async_trait]
impl Handler for CollectGarbage {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let grace = match ctx.param::<Option<u64>>("min_age_secs")? {
            Some(s) => Duration::from_secs(s),
            None => GC_GRACE,
        };
        ctx.report(0, "collecting garbage");
        let r = ctx.library.collect_garbage(grace).await?;
        Ok(json!({
            "blobs_removed": r.blobs,
            "blob_bytes_removed": r.blob_bytes,
            "staged_files_removed": r.staged,
            "upload_files_removed": r.upload_files,
        }))
    }
}

#[derive(Debug)]
struct Scrub;

#[async_trait::async_trait]
impl Handler for Scrub {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let r = ctx
            .library
            .scrub(|r| {
                ctx.report(
                    0,
                    format!("{} blobs ({} bytes) checked", r.checked, r.bytes),
                );
                ctx.checkpoint()
            })
            .await?;
        let hex = |v: &[crate::domain::ContentHash]| -> Vec<String> {
            v.iter().map(ToString::to_string).collect()
        };
        Ok(json!({
            "blobs_checked": r.checked,
            "bytes_checked": r.bytes,
            "missing_blake3": hex(&r.missing),
            "corrupt_blake3": hex(&r.corrupt),
        }))
    }
}

#[derive(Debug)]
struct Probe;

#[async_trait::async_trait]
impl Handler for Probe {
    async fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        let sleep = Duration::from_millis(ctx.param::<u64>("sleep_ms")?).min(MAX_PROBE_SLEEP);
        let fail_attempts = ctx.param::<u32>("fail_attempts")?;
        let started = tokio::time::Instant::now();
        while started.elapsed() < sleep {
            ctx.checkpoint()?;
            let left = sleep.saturating_sub(started.elapsed());
            tokio::time::sleep(left.min(PROBE_STEP)).await;
            let done = started.elapsed().as_millis().min(sleep.as_millis());
            ctx.report_steps(
                u64::try_from(done).unwrap_or(u64::MAX),
                u64::try_from(sleep.as_millis()).unwrap_or(u64::MAX),
                format!("slept {done} ms"),
            );
        }
        ctx.checkpoint()?;
        if ctx.job.attempts <= fail_attempts {
            // A failure worth retrying, as a real job's I/O error is.
            return Err(Error::io(
                "probe",
                std::io::Error::other(format!(
                    "attempt {} fails, as the payload asks of the first {fail_attempts}",
                    ctx.job.attempts
                )),
            ));
        }
        Ok(json!({ "attempt": ctx.job.attempts }))
    }
}
