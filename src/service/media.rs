//! `mediastore.v1.MediaService`.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    convert, download, jobs, page_token, principal_of,
    query::{self, MEDIA_FIELDS},
    reader_media, record_media_id, tenant_of, upload,
};
use crate::{
    domain::{FolderId, MediaId, MediaRef, PageCursor},
    error::{Error, Resource},
    fetch::Fetcher,
    jobs::kinds::{self, ReanalyzeTarget},
    library::{Library, OpenedRendition, UrlTarget},
    pb::v1 as pb,
};

/// Fields `UpdateMedia` may change.
const UPDATABLE: &[&str] = &[
    "title",
    "tags",
    "author",
    "copyright",
    "metadata",
    "public",
    "project_id",
];

/// The service implementation.
#[derive(Debug, Clone)]
pub struct MediaApi {
    library: Library,
    /// Checks import sources before their job is queued.
    fetcher: Fetcher,
}

impl MediaApi {
    /// A service over `library`, checking import sources with `fetcher`.
    pub fn new(library: Library, fetcher: Fetcher) -> Self {
        Self { library, fetcher }
    }
}

/// The name an import's media gets when its header gives none: the last
/// segment of the URL's path, decoded, or the host.
fn filename_of(url: &url::Url) -> String {
    let segment = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        });
    segment.unwrap_or_else(|| url.host_str().unwrap_or("download").to_string())
}

/// Most media one reanalysis may name.
const MAX_REANALYZE_IDS: usize = 1000;

/// What a `ReanalyzeMedia` asks to walk.
fn reanalyze_target(req: &pb::ReanalyzeMediaRequest) -> crate::error::Result<ReanalyzeTarget> {
    if req.media_ids.len() > MAX_REANALYZE_IDS {
        return Err(Error::invalid(
            "media_ids",
            format!(
                "at most {MAX_REANALYZE_IDS} media per call, not {}; name a folder to reanalyse more",
                req.media_ids.len()
            ),
        ));
    }
    if !req.media_ids.is_empty() && !req.folder_id.is_empty() {
        return Err(Error::bad(
            crate::error::Reason::FieldConflict,
            "folder_id",
            "name media_ids or folder_id, not both",
        ));
    }
    if req.recursive && req.folder_id.is_empty() {
        return Err(Error::bad(
            crate::error::Reason::FieldConflict,
            "recursive",
            "recursive needs a folder_id; without one every media is reanalysed",
        ));
    }
    Ok(ReanalyzeTarget {
        media_ids: req
            .media_ids
            .iter()
            .enumerate()
            .map(|(i, s)| MediaId::parse(&format!("media_ids[{i}]"), s))
            .collect::<crate::error::Result<_>>()?,
        folder_id: (!req.folder_id.is_empty())
            .then(|| FolderId::parse("folder_id", &req.folder_id))
            .transpose()?,
        recursive: req.recursive,
    })
}

#[tonic::async_trait]
impl pb::media_service_server::MediaService for MediaApi {
    async fn upload_media(
        &self,
        request: Request<Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::UploadMediaResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        Ok(Response::new(
            upload::upload(&self.library, &principal, request.into_inner()).await?,
        ))
    }

    type ReadMediaStream =
        Pin<Box<dyn Stream<Item = Result<pb::ReadMediaResponse, Status>> + Send + 'static>>;

    async fn read_media(
        &self,
        request: Request<pb::ReadMediaRequest>,
    ) -> Result<Response<Self::ReadMediaStream>, Status> {
        let (tenant, id) = reader_media(&self.library, &request).await?;
        let req = request.into_inner();
        let opened = self
            .library
            .open(tenant, id, req.read_offset, req.read_limit)
            .await?;
        Ok(Response::new(Box::pin(download::stream(
            &self.library,
            opened,
        ))))
    }

    type GetRenditionStream =
        Pin<Box<dyn Stream<Item = Result<pb::GetRenditionResponse, Status>> + Send + 'static>>;

    async fn get_rendition(
        &self,
        request: Request<pb::GetRenditionRequest>,
    ) -> Result<Response<Self::GetRenditionStream>, Status> {
        let (tenant, id) = reader_media(&self.library, &request).await?;
        let req = request.into_inner();
        let wanted = convert::rendition_request(&req)?;
        let opened = self.library.rendition(tenant, id, wanted).await?;
        let OpenedRendition {
            rendition,
            cached,
            reader,
            ..
        } = opened;
        let length = rendition.size;
        let first = pb::GetRenditionResponse {
            rendition: Some(convert::rendition_to_pb(rendition)),
            cached,
            data: Bytes::new(),
        };
        let what = format!("a rendition of media {id}");
        Ok(Response::new(Box::pin(download::stream_blob(
            reader,
            0,
            length,
            what,
            first,
            |data| pb::GetRenditionResponse {
                rendition: None,
                cached: false,
                data,
            },
        ))))
    }

    async fn reanalyze_media(
        &self,
        request: Request<pb::ReanalyzeMediaRequest>,
    ) -> Result<Response<pb::ReanalyzeMediaResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        let req = request.into_inner();
        let target = reanalyze_target(&req)?;
        if let Some(folder) = target.folder_id {
            // NOT_FOUND now rather than a job that fails.
            self.library.folder(principal.tenant, folder).await?;
        }
        let job = jobs::start(
            &self.library,
            &principal,
            kinds::REANALYZE,
            &target,
            req.options,
            None,
        )
        .await?;
        Ok(Response::new(pb::ReanalyzeMediaResponse { job: Some(job) }))
    }

    async fn import_media(
        &self,
        request: Request<pb::ImportMediaRequest>,
    ) -> Result<Response<pb::ImportMediaResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        let req = request.into_inner();
        let url = self.fetcher.check_url("source_url", &req.source_url)?;
        let mut header = req.header.unwrap_or_default();
        if header.filename.is_empty() {
            header.filename = filename_of(&url);
        }
        let spec = convert::upload_spec(&principal, header)?;
        if let Some(folder) = spec.folder {
            // NOT_FOUND now rather than a job that fails.
            self.library.folder(principal.tenant, folder).await?;
        }
        let target = kinds::ImportTarget {
            url: url.to_string(),
            spec,
        };
        let job = jobs::start(
            &self.library,
            &principal,
            kinds::IMPORT,
            &target,
            req.options,
            None,
        )
        .await?;
        Ok(Response::new(pb::ImportMediaResponse { job: Some(job) }))
    }

    async fn get_media_url(
        &self,
        request: Request<pb::GetMediaUrlRequest>,
    ) -> Result<Response<pb::GetMediaUrlResponse>, Status> {
        let (tenant, id) = reader_media(&self.library, &request).await?;
        let req = request.into_inner();
        let by = match (&req.slot, req.code.is_empty()) {
            (Some(s), _) => Some(MediaRef::Slot(convert::slot("slot", s)?)),
            (None, false) => Some(MediaRef::Code(req.code.clone())),
            (None, true) => None,
        };
        let fields = convert::RenditionFields {
            preset: &req.preset,
            width: req.width,
            height: req.height,
            fit: req.fit,
            format: req.format,
            quality: req.quality,
        };
        let target = if fields.any() {
            UrlTarget::Rendition(convert::rendition_fields(&fields)?)
        } else {
            UrlTarget::Original
        };
        let ttl = (req.expires_in_seconds > 0)
            .then(|| std::time::Duration::from_secs(req.expires_in_seconds.into()));
        let made = self
            .library
            .media_url(tenant, id, by, target, ttl, req.always_sign)
            .await?;
        Ok(Response::new(pb::GetMediaUrlResponse {
            url: made.url,
            signed: made.expires_at.is_some(),
            expire_time: made.expires_at.map(|secs| prost_types::Timestamp {
                seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        }))
    }

    async fn list_renditions(
        &self,
        request: Request<pb::ListRenditionsRequest>,
    ) -> Result<Response<pb::ListRenditionsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = MediaId::parse("media_id", &request.get_ref().media_id)?;
        record_media_id(&id);
        let media = self.library.get(tenant, id).await?;
        let renditions = self.library.renditions_of(&media).await?;
        Ok(Response::new(pb::ListRenditionsResponse {
            renditions: renditions
                .into_iter()
                .map(convert::rendition_to_pb)
                .collect(),
        }))
    }

    async fn get_media(
        &self,
        request: Request<pb::GetMediaRequest>,
    ) -> Result<Response<pb::GetMediaResponse>, Status> {
        let (tenant, id) = reader_media(&self.library, &request).await?;
        let media = self.library.get(tenant, id).await?;
        let renditions = self.library.renditions_of(&media).await?;
        let mut media = convert::media_out(&self.library, media);
        media.renditions = renditions
            .into_iter()
            .map(convert::rendition_to_pb)
            .collect();
        Ok(Response::new(pb::GetMediaResponse { media: Some(media) }))
    }

    async fn batch_get_media(
        &self,
        request: Request<pb::BatchGetMediaRequest>,
    ) -> Result<Response<pb::BatchGetMediaResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let ids = query::batch_ids("media_ids", &request.get_ref().media_ids)?;
        let (found, missing) = self.library.get_many(tenant, &ids).await?;
        Ok(Response::new(pb::BatchGetMediaResponse {
            media: found
                .into_iter()
                .map(|m| convert::media_out(&self.library, m))
                .collect(),
            not_found_media_ids: missing.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn list_media(
        &self,
        request: Request<pb::ListMediaRequest>,
    ) -> Result<Response<pb::ListMediaResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let req = request.into_inner();
        let page_size = query::page_size("page_size", req.page_size)?;
        let q = query::media_query(&req)?;
        let fingerprint = page_token::fingerprint(&format!("{q:?}"));
        let after = page_token::decode_media("page_token", &req.page_token, fingerprint)?;
        let keep = query::mask_paths("read_mask", req.read_mask.as_ref(), MEDIA_FIELDS)?;
        // One extra row tells whether another page exists.
        let (mut items, total) = self
            .library
            .list(
                tenant,
                &q,
                after.as_ref(),
                page_size + 1,
                req.include_total_size,
            )
            .await?;
        let next_page_token = page_token::next_page(&mut items, page_size, |m| {
            page_token::encode_media(
                fingerprint,
                &PageCursor {
                    value: q.order.value_of(m),
                    id: m.id,
                },
            )
        });
        let media = items
            .into_iter()
            .map(|m| {
                let mut m = convert::media_out(&self.library, m);
                if !keep.is_empty() {
                    query::apply_read_mask(&mut m, &keep);
                }
                m
            })
            .collect();
        Ok(Response::new(pb::ListMediaResponse {
            media,
            next_page_token,
            total_size: total.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        }))
    }

    async fn update_media(
        &self,
        request: Request<pb::UpdateMediaRequest>,
    ) -> Result<Response<pb::UpdateMediaResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        let tenant = principal.tenant;
        let req = request.into_inner();
        let media = req.media.ok_or_else(|| {
            Error::required("media", "send the media with its id and the new values")
        })?;
        let id = MediaId::parse("media.id", &media.id)?;
        record_media_id(&id);
        let paths = query::mask_paths("update_mask", req.update_mask.as_ref(), UPDATABLE)?;
        let patch = convert::media_patch(&principal, media, &paths)?;
        let media = self.library.update(tenant, id, patch).await?;
        Ok(Response::new(pb::UpdateMediaResponse {
            media: Some(convert::media_out(&self.library, media)),
        }))
    }

    async fn move_media(
        &self,
        request: Request<pb::MoveMediaRequest>,
    ) -> Result<Response<pb::MoveMediaResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let req = request.get_ref();
        let id = MediaId::parse("media_id", &req.media_id)?;
        record_media_id(&id);
        let dest = query::optional_folder("parent_folder_id", &req.parent_folder_id)?;
        let (_, missing) = self.library.move_media(tenant, &[id], dest).await?;
        if !missing.is_empty() {
            return Err(Error::not_found(Resource::Media, id.to_string()).into());
        }
        let media = self.library.get(tenant, id).await?;
        Ok(Response::new(pb::MoveMediaResponse {
            media: Some(convert::media_out(&self.library, media)),
        }))
    }

    async fn batch_move_media(
        &self,
        request: Request<pb::BatchMoveMediaRequest>,
    ) -> Result<Response<pb::BatchMoveMediaResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let req = request.get_ref();
        let ids = query::batch_ids("media_ids", &req.media_ids)?;
        let dest = query::optional_folder("parent_folder_id", &req.parent_folder_id)?;
        let (moved, missing) = self.library.move_media(tenant, &ids, dest).await?;
        Ok(Response::new(pb::BatchMoveMediaResponse {
            moved_media_count: moved,
            not_found_media_ids: missing.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn batch_delete_media(
        &self,
        request: Request<pb::BatchDeleteMediaRequest>,
    ) -> Result<Response<pb::BatchDeleteMediaResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let req = request.get_ref();
        let ids = query::batch_ids("media_ids", &req.media_ids)?;
        let done = self.library.delete_many(tenant, &ids, req.force).await?;
        tracing::info!(
            deleted = done.deleted,
            removed_blobs = done.blobs,
            "media deleted"
        );
        Ok(Response::new(pb::BatchDeleteMediaResponse {
            deleted_media_count: done.deleted,
            not_found_media_ids: done.not_found.iter().map(ToString::to_string).collect(),
            removed_blob_count: done.blobs,
        }))
    }

    async fn delete_media(
        &self,
        request: Request<pb::DeleteMediaRequest>,
    ) -> Result<Response<pb::DeleteMediaResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = MediaId::parse("media_id", &request.get_ref().media_id)?;
        record_media_id(&id);
        let blob_removed = self
            .library
            .delete(tenant, id, request.get_ref().force)
            .await?;
        tracing::info!(media_id = %id, blob_removed, "media deleted");
        Ok(Response::new(pb::DeleteMediaResponse { blob_removed }))
    }
}
