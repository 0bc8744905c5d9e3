//! What a media URL serves, and who may have it: the HTTP edge's one call
//! into the library per request.
//!
//! A URL is answered from a small cache of what recent requests resolved
//! (the media's owner, whether it is public, the representation's name,
//! type and hash, and the bytes themselves when small), so that a hot
//! thumbnail costs no query at all. An entry lives [`SERVED_TTL`] at most,
//! and any change this process makes to media or folders (a delete, an
//! edit, a move, a folder made private, a scrub's quarantine) drops every
//! entry at once: here a change shows in the very next answer, and a
//! change made through another replica within [`SERVED_TTL`].

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::{Library, RenditionRequest, UrlAccess, UrlMedia, UrlRefusal, UrlRequest, UrlTarget};
use crate::{
    blob::BlobReader,
    domain::{ContentHash, MediaId, TenantId},
    error::{Error, Reason, Resource, Result},
};

/// Longest time an answer may reflect the state of media before a change
/// made through another replica.
pub const SERVED_TTL: Duration = Duration::from_secs(2);
/// Largest representation kept in memory whole (thumbnails, icons).
const SMALL: u64 = 256 * 1024;
/// Most entries; past that the cache starts over.
const MAX_ENTRIES: usize = 10_000;
/// Most bytes held by entries; past that the cache starts over.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// What a URL serves.
#[derive(Clone)]
pub struct Served {
    /// The media's owner.
    pub tenant: TenantId,
    /// The media.
    pub media: MediaId,
    /// Whether the media is public (itself or by a folder).
    pub public: bool,
    /// The name of the representation's bytes, and its ETag: the same
    /// bytes of the same tenant always have the same name.
    pub hash: ContentHash,
    /// Its size.
    pub len: u64,
    /// Its MIME type.
    pub mime: String,
    /// The name a saved copy gets.
    pub filename: String,
    /// When it was made, µs since the epoch.
    pub created_at: i64,
    /// All of it, when small.
    pub bytes: Option<Bytes>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything but the bytes, which never go to a log.
        f.debug_struct("Served")
            .field("tenant", &self.tenant)
            .field("media", &self.media)
            .field("public", &self.public)
            .field("hash", &self.hash)
            .field("len", &self.len)
            .field("mime", &self.mime)
            .field("filename", &self.filename)
            .field("in_memory", &self.bytes.is_some())
            .finish_non_exhaustive()
    }
}

/// Recently resolved URLs, by media and representation.
#[derive(Debug, Default)]
pub(super) struct ServedCache {
    entries: Mutex<Entries>,
    /// Bumped by every change that may alter an answer.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(UrlMedia, String), (Instant, u64, std::sync::Arc<Served>)>,
    bytes: usize,
}

impl ServedCache {
    fn get(&self, key: &(UrlMedia, String)) -> Option<std::sync::Arc<Served>> {
        let generation = self.generation.load(Ordering::Acquire);
        let entries = self.entries.lock().ok()?;
        let (at, g, served) = entries.map.get(key)?;
        (*g == generation && at.elapsed() < SERVED_TTL).then(|| std::sync::Arc::clone(served))
    }

    fn put(&self, key: (UrlMedia, String), generation: u64, served: std::sync::Arc<Served>) {
        let size = served.bytes.as_ref().map_or(0, Bytes::len);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.map.len() >= MAX_ENTRIES || entries.bytes + size > MAX_BYTES {
                *entries = Entries::default();
            }
            entries.bytes += size;
            if let Some((_, _, old)) = entries
                .map
                .insert(key, (Instant::now(), generation, served))
            {
                entries.bytes -= old.bytes.as_ref().map_or(0, Bytes::len);
            }
        }
    }

    /// Drops every entry: something they may reflect changed.
    pub(super) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            *entries = Entries::default();
        }
    }
}

impl Library {
    /// What `request` serves and under which access, checked at `now`
    /// (Unix seconds): a signed URL must carry a valid, unexpired
    /// signature (its media then serves whoever owns it); an unsigned one
    /// serves a public media only. Renditions meet GetRendition's limits
    /// and are made if not cached.
    pub async fn resolve_url(
        &self,
        request: &UrlRequest,
        now: u64,
    ) -> std::result::Result<(std::sync::Arc<Served>, UrlAccess), UrlRefusal> {
        let access = self.check_signature(request, now)?;
        // The cache key: the normalised request, so that a preset and the
        // same size spelled out share an entry.
        let (target, key) = match &request.target {
            UrlTarget::Original => (None, String::new()),
            // Rendered as asked (a preset stays a preset: its size need
            // not be one of `--rendition-sizes`), keyed as normalised.
            UrlTarget::Rendition(wanted) => {
                let spec = self.check_request(wanted.clone())?;
                (Some(wanted.clone()), spec.key())
            }
        };
        let key = (request.media.clone(), key);
        let served = match self.inner.served.get(&key) {
            Some(served) => served,
            None => {
                let generation = self.inner.served.generation.load(Ordering::Acquire);
                let served = std::sync::Arc::new(self.resolve(request, target).await?);
                self.inner
                    .served
                    .put(key, generation, std::sync::Arc::clone(&served));
                served
            }
        };
        match access {
            Some(signed) => Ok((served, signed)),
            None if served.public => Ok((served, UrlAccess::Public)),
            // The same answer as for a media that does not exist.
            None => Err(UrlRefusal::NotFound),
        }
    }

    /// Reads what `request` serves from the database (rendering it if
    /// need be); `rendition` is its checked rendition request.
    async fn resolve(
        &self,
        request: &UrlRequest,
        rendition: Option<RenditionRequest>,
    ) -> Result<Served> {
        let id = match &request.media {
            UrlMedia::Id(id) => *id,
            // What the slot or code holds now; the cache forgets it at any
            // upload here, within its lifetime elsewhere.
            UrlMedia::Named { tenant, by } => self.media_id_by(*tenant, by).await?,
        };
        let tenant = self
            .inner
            .repo
            .media_tenant(id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Media, id.to_string()))?;
        let public = self.inner.repo.public_media_owner(id).await? == Some(tenant);
        // A private media asked for without a signature is refused before
        // anything is read or rendered for it.
        if !public && request.signature.is_none() {
            return Err(Error::not_found(Resource::Media, id.to_string()));
        }
        let (served, reader) = match rendition {
            None => {
                let opened = self.open_content(self.get(tenant, id).await?).await?;
                let m = opened.media;
                let served = Served {
                    tenant,
                    media: id,
                    public,
                    hash: m.blob,
                    len: m.size,
                    mime: m.mime_type,
                    filename: m.filename,
                    created_at: m.created_at,
                    bytes: None,
                };
                (served, opened.reader)
            }
            Some(wanted) => {
                let opened = self.rendition(tenant, id, wanted).await?;
                let r = opened.rendition;
                let served = Served {
                    tenant,
                    media: id,
                    public,
                    hash: r.blob,
                    len: r.size,
                    filename: rendition_name(&opened.media.filename, &r.mime_type),
                    mime: r.mime_type,
                    created_at: r.created_at,
                    bytes: None,
                };
                (served, opened.reader)
            }
        };
        let bytes = if served.len <= SMALL {
            Some(whole(reader, served.len).await?)
        } else {
            None
        };
        Ok(Served { bytes, ..served })
    }

    /// Opens the bytes of `served` (when they are not in memory already).
    pub async fn open_served(&self, served: &Served) -> Result<Box<dyn BlobReader>> {
        match self.open_blob(&served.hash, served.len).await? {
            Some(reader) => Ok(reader),
            None => {
                let lost = Error::data_loss(
                    Reason::BlobMissing,
                    format!(
                        "the content of media {} (blob {}) is missing from storage",
                        served.media, served.hash
                    ),
                );
                match self.inner.repo.media_tenant(served.media).await? {
                    Some(_) => Err(lost),
                    None => Err(Error::not_found(Resource::Media, served.media.to_string())),
                }
            }
        }
    }
}

/// All `len` bytes of `reader`.
async fn whole(reader: Box<dyn BlobReader>, len: u64) -> Result<Bytes> {
    if let Some(bytes) = reader.bytes() {
        return Ok(bytes);
    }
    // At most SMALL, so it fits.
    let len = len as usize;
    super::upload::blocking(move || {
        reader
            .read_bytes(0, len)
            .map_err(|e| Error::reading("reading a small representation", e))
    })
    .await
}

/// The name a rendition is saved under: the media's, with the
/// rendition's extension.
fn rendition_name(filename: &str, mime: &str) -> String {
    let stem = filename.rsplit_once('.').map_or(filename, |(s, _)| s);
    let ext = match mime {
        "image/png" => "png",
        "image/webp" => "webp",
        _ => "jpg",
    };
    format!("{stem}.{ext}")
}
