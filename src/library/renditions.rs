//! Renditions of image media: served from the cache when made before,
//! else rendered (a few at a time, on the blocking pool), stored as a
//! blob and recorded, then served.
//!
//! A rendition is keyed by its tenant, its source's content hash and the
//! normalised request, so a tenant's identical uploads share renditions
//! and a repeated request never decodes again; another tenant renders its
//! own (sharing the bytes, not the row), so nothing about a rendition, not
//! its `cached` flag nor its speed, tells one tenant what another asked.
//! Recording follows the upload's order: bytes durable under their name,
//! then the row, in a transaction that holds the source's row so a
//! concurrent release cannot orphan the rendition.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use md5::Digest as _;

use super::{Library, upload::blocking};
use crate::{
    blob::BlobReader,
    domain::{
        ContentHash, Md5Digest, Media, MediaId, MediaType, NewJob, Rendition, TenantId, now_micros,
    },
    error::{Error, Reason, Resource, Result},
    render::{self, Bounds, RenderError, RenditionSpec},
    repo::BlobClaim,
};

/// The job kind that makes a new image's eager presets.
pub const EAGER_RENDITIONS: &str = "eager_renditions";

/// Largest source a rendition is made from: sources are read whole.
const MAX_SOURCE_BYTES: u64 = 256 * 1024 * 1024;

/// What renditions a server makes.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionSettings {
    /// Named requests clients may ask for by name.
    pub presets: BTreeMap<String, RenditionSpec>,
    /// Presets made for every image as it is uploaded.
    pub eager: Vec<String>,
    /// Largest width or height a request may ask for.
    pub max_dimension: u32,
    /// When set, the only `width`x`height` pairs a request may ask for
    /// (presets aside), so clients cannot fill the disk with sizes.
    pub sizes: Option<Vec<(u32, u32)>>,
    /// Decoder limits.
    pub bounds: Bounds,
}

impl Default for RenditionSettings {
    fn default() -> Self {
        let thumbnail = RenditionSpec {
            width: 256,
            height: 0,
            fit: render::Fit::ScaleDown,
            format: render::OutputFormat::Jpeg,
            quality: 80,
        };
        Self {
            presets: BTreeMap::from([("thumbnail".to_string(), thumbnail)]),
            eager: vec!["thumbnail".to_string()],
            max_dimension: 4096,
            sizes: None,
            bounds: Bounds::default(),
        }
    }
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum RenditionRequest {
    /// A configured preset, by name.
    Preset(String),
    /// An explicit request.
    Spec(RenditionSpec),
}

/// A rendition ready to stream.
#[derive(Debug)]
pub struct OpenedRendition {
    /// What it is.
    pub rendition: Rendition,
    /// Whether it came from the cache (no decoding).
    pub cached: bool,
    /// Its bytes.
    pub reader: Box<dyn BlobReader>,
    /// The media it was made of.
    pub media: Media,
}

/// The answer to a rendition of a media that is not an image.
pub(super) fn not_an_image(media: &Media) -> Error {
    Error::precondition(
        Reason::NotAnImage,
        format!(
            "media {} is {}, not an image; renditions are made of images only",
            media.id, media.mime_type
        ),
    )
}

impl Library {
    /// Opens the rendition of media `id` that `request` asks for, making
    /// it if it is not cached.
    pub async fn rendition(
        &self,
        tenant: TenantId,
        id: MediaId,
        request: RenditionRequest,
    ) -> Result<OpenedRendition> {
        let spec = self.check_request(request)?;
        let media = self.get(tenant, id).await?;
        if media.media_type != MediaType::Image {
            return Err(not_an_image(&media));
        }
        let key = spec.key();
        if let Some(r) = self
            .inner
            .repo
            .find_rendition(tenant, &media.blob, &key)
            .await?
        {
            match self.open_blob(&r.blob, r.size).await? {
                Some(reader) => {
                    self.inner.metrics.rendition_hits.inc();
                    return Ok(OpenedRendition {
                        rendition: r,
                        cached: true,
                        reader,
                        media,
                    });
                }
                // A cache entry whose bytes are gone (quarantined by a
                // scrub, say) is forgotten and made again.
                None => self.forget_rendition(tenant, &r).await?,
            }
        }
        self.inner.metrics.rendition_misses.inc();
        // A delete racing this request removes the source's bytes and its
        // renditions: that is the media being gone, not a loss.
        let rendition = match self.make_rendition(&media, spec).await {
            Err(e @ Error::DataLoss { .. }) => return Err(self.unless_deleted(&media, e).await),
            r => r?,
        };
        let Some(reader) = self.open_blob(&rendition.blob, rendition.size).await? else {
            let lost = Error::data_loss(
                Reason::BlobMissing,
                format!("rendition blob {} vanished as it was made", rendition.blob),
            );
            return Err(self.unless_deleted(&media, lost).await);
        };
        Ok(OpenedRendition {
            rendition,
            cached: false,
            reader,
            media,
        })
    }

    /// Removes a cache entry and, when nothing else references them, its
    /// bytes' row.
    async fn forget_rendition(&self, tenant: TenantId, r: &Rendition) -> Result<()> {
        tracing::warn!(source = %r.source, key = %r.key, blob = %r.blob, "a cached rendition's bytes are missing; making it again");
        let mut tx = self.inner.repo.begin().await?;
        if let Some(blob) = tx.remove_rendition(tenant, &r.source, &r.key).await? {
            let gone = tx.remove_unused_blobs(&[blob]).await?;
            self.remove_bytes(&mut tx, &gone).await?;
        }
        tx.commit().await?;
        self.inner.served.changed();
        Ok(())
    }

    /// The cached renditions of `media`'s content its tenant has, by key.
    pub async fn renditions_of(&self, media: &Media) -> Result<Vec<Rendition>> {
        let mut all = self
            .inner
            .repo
            .renditions_of(media.tenant, &media.blob)
            .await?;
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// How many renditions this process has decoded a source for (cache
    /// hits do not count): for tests and metrics.
    pub fn renders(&self) -> u64 {
        self.inner.renders.load(Ordering::Relaxed)
    }

    /// The job that makes the eager presets of a new image, if it is one
    /// and the server has eager presets: queued in the upload's own
    /// commit, so it survives a crash and any replica may run it.
    pub(super) fn eager_job(&self, media: &Media) -> Option<NewJob> {
        let settings = &self.inner.limits.renditions;
        if media.media_type != MediaType::Image || settings.eager.is_empty() {
            return None;
        }
        let payload = serde_json::json!({
            "media_id": media.id.to_string(),
            "presets": settings.eager,
        });
        let mut job = NewJob::new(media.tenant, EAGER_RENDITIONS, payload, &media.created_by);
        // Behind work clients asked for; a lost rendition is made on demand.
        job.priority = -10;
        Some(job)
    }

    /// Makes the named presets of media `id` (an eager renditions job);
    /// returns how many were made or found made. Presets the server no
    /// longer has are skipped; a media deleted meanwhile makes none.
    pub async fn render_presets(
        &self,
        tenant: TenantId,
        id: MediaId,
        presets: &[String],
    ) -> Result<u64> {
        let Some(media) = self.inner.repo.get_media(tenant, id).await? else {
            return Ok(0);
        };
        let settings = &self.inner.limits.renditions;
        let specs: Vec<RenditionSpec> = presets
            .iter()
            .filter_map(|name| settings.presets.get(name).map(|s| s.normalized()))
            .collect();
        // One image's presets at a time, so a burst of image uploads
        // leaves the other slots to their analyses and to renditions
        // clients are waiting for.
        let _turn = self
            .inner
            .eager_turn
            .acquire()
            .await
            .map_err(|_| Error::shutting_down("the server is shutting down"))?;
        let mut made = 0;
        // `make_rendition` skips those already cached.
        for spec in specs {
            match self.make_rendition(&media, spec).await {
                Ok(_) => made += 1,
                // Not an image after all, too large, undecodable: the
                // rendition is refused on demand too; nothing to retry.
                Err(e @ Error::FailedPrecondition { .. }) => {
                    tracing::debug!(media = %media.id, error = %e, "no eager rendition");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(made)
    }

    /// Validates a request against the configured presets and limits.
    pub(super) fn check_request(&self, request: RenditionRequest) -> Result<RenditionSpec> {
        let settings = &self.inner.limits.renditions;
        let spec = match request {
            RenditionRequest::Preset(name) => {
                return settings
                    .presets
                    .get(&name)
                    .map(|s| s.normalized())
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            settings.presets.keys().map(String::as_str).collect();
                        Error::bad(
                            Reason::RenditionPresetUnknown,
                            "preset",
                            format!(
                                "there is no preset {name:?}; this server has: {}",
                                known.join(", ")
                            ),
                        )
                    });
            }
            RenditionRequest::Spec(spec) => spec,
        };
        for (field, v) in [("width", spec.width), ("height", spec.height)] {
            if v > settings.max_dimension {
                return Err(Error::bad(
                    Reason::RenditionSizeNotAllowed,
                    field,
                    format!(
                        "{field} {v} is more than the {} pixels this server renders",
                        settings.max_dimension
                    ),
                ));
            }
        }
        if let Some(sizes) = &settings.sizes
            && !sizes.contains(&(spec.width, spec.height))
        {
            let list: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
            return Err(Error::bad(
                Reason::RenditionSizeNotAllowed,
                "width",
                format!(
                    "{}x{} is not a size this server renders; ask for one of {} or a preset",
                    spec.width,
                    spec.height,
                    list.join(", ")
                ),
            ));
        }
        Ok(spec.normalized())
    }

    /// Renders, stores and records a rendition; returns what is recorded
    /// (another request's, when one won the race).
    async fn make_rendition(&self, media: &Media, spec: RenditionSpec) -> Result<Rendition> {
        let _slot = self.analysis_slot().await?;
        let key = spec.key();
        // Made while this request waited for a slot?
        if let Some(r) = self
            .inner
            .repo
            .find_rendition(media.tenant, &media.blob, &key)
            .await?
        {
            return Ok(r);
        }
        if media.size > MAX_SOURCE_BYTES {
            return Err(Error::precondition(
                Reason::ImageTooLarge,
                format!(
                    "media {} has {} bytes; renditions are made of images up to {MAX_SOURCE_BYTES} bytes",
                    media.id, media.size
                ),
            ));
        }
        let source = media.blob;
        let reader = self.open_blob(&source, media.size).await?.ok_or_else(|| {
            Error::data_loss(
                Reason::BlobMissing,
                format!("the source blob {source} is missing from storage"),
            )
        })?;
        let mime = media.mime_type.clone();
        let orientation = media
            .analysis
            .orientation
            .and_then(|o| u8::try_from(o).ok())
            .unwrap_or(1);
        let bounds = self.inner.limits.renditions.bounds;
        self.inner.renders.fetch_add(1, Ordering::Relaxed);
        let (out, hash, md5) = blocking(move || {
            let data = read_whole(reader.as_ref(), &source)?;
            let out = render::render(&data, &mime, orientation, &spec, &bounds)
                .map_err(|e| render_error(&e))?;
            let hash = ContentHash::from(blake3::hash(&out.bytes));
            // Both hashes here, while the bytes are at hand: a rendition is
            // small, and the MD5 worker need not read it back.
            let md5 = Md5Digest(md5::Md5::digest(&out.bytes).into()).to_hex();
            Ok((out, hash, md5))
        })
        .await?;
        // Under a tenant scope the rendition's bytes get a name of the
        // tenant's own too: no tenant's render reuses another's bytes.
        let blob = self
            .inner
            .limits
            .dedupe_scope
            .blob_name(media.tenant, &hash);
        let rendition = Rendition {
            source,
            key,
            blob,
            content: hash,
            mime_type: spec.format.mime().to_string(),
            width: out.width,
            height: out.height,
            size: out.bytes.len() as u64,
            created_at: now_micros(),
        };
        let mut tx = self.inner.repo.begin().await?;
        if !tx.insert_rendition(media.tenant, &rendition).await? {
            drop(tx);
            return self
                .inner
                .repo
                .find_rendition(media.tenant, &source, &rendition.key)
                .await?
                .ok_or_else(|| Error::not_found(Resource::Media, media.id.to_string()));
        }
        let counts = tx
            .claim_blobs(&[BlobClaim {
                hash: blob,
                content: hash,
                size: rendition.size,
                md5: Some(&md5),
                count: 1,
            }])
            .await?;
        if counts.first() == Some(&1) {
            // New bytes: stored (durable, if in the blob store) before the
            // row commits.
            self.store_new_bytes(&mut tx, blob, out.bytes).await?;
        }
        tx.commit().await?;
        Ok(rendition)
    }
}

/// Reads a whole blob.
fn read_whole(reader: &dyn BlobReader, hash: &ContentHash) -> Result<Vec<u8>> {
    // The media's recorded size was checked against MAX_SOURCE_BYTES; the
    // file's own length is checked too before it is read whole.
    let len = usize::try_from(reader.len())
        .ok()
        .filter(|&n| n as u64 <= MAX_SOURCE_BYTES)
        .ok_or_else(|| {
            Error::precondition(
                Reason::ImageTooLarge,
                format!(
                    "blob {hash} has {} bytes; renditions are made of images up to {MAX_SOURCE_BYTES} bytes",
                    reader.len()
                ),
            )
        })?;
    let mut data = vec![0u8; len];
    crate::blob::read_exact_at(|b, at| reader.read_at(b, at), &mut data, 0)
        .map_err(|e| Error::reading(format!("reading blob {hash}"), e))?;
    Ok(data)
}

fn render_error(e: &RenderError) -> Error {
    let reason = match e {
        RenderError::TooLarge(_) => Reason::ImageTooLarge,
        RenderError::Unsupported(_) => Reason::RenditionUnsupported,
        RenderError::Corrupt(_) => Reason::ImageUnreadable,
    };
    Error::precondition(reason, format!("no rendition can be made: {e}"))
}
