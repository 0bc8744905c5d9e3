//! `mediastore.v1.MediaService`.

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::{convert::media_to_pb, download, page_token, tenant_of, upload};
use crate::{domain::MediaId, library::Library, pb::v1 as pb, repo::Cursor};

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page; larger requests are cut to it (AIP-158).
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The service implementation.
#[derive(Debug, Clone)]
pub struct MediaApi {
    library: Library,
}

impl MediaApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }
}

/// Records the media id on the current RPC's span.
pub(super) fn record_media_id(id: &MediaId) {
    tracing::Span::current().record("media_id", tracing::field::display(id));
}

#[tonic::async_trait]
impl pb::media_service_server::MediaService for MediaApi {
    async fn upload_media(
        &self,
        request: Request<Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::UploadMediaResponse>, Status> {
        let tenant = tenant_of(&request);
        Ok(Response::new(
            upload::upload(&self.library, tenant, request.into_inner()).await?,
        ))
    }

    type ReadMediaStream =
        Pin<Box<dyn Stream<Item = Result<pb::ReadMediaResponse, Status>> + Send + 'static>>;

    async fn read_media(
        &self,
        request: Request<pb::ReadMediaRequest>,
    ) -> Result<Response<Self::ReadMediaStream>, Status> {
        let tenant = tenant_of(&request);
        let req = request.into_inner();
        let id = MediaId::parse("id", &req.id)?;
        record_media_id(&id);
        let opened = self
            .library
            .open(tenant, id, req.read_offset, req.read_limit)
            .await?;
        Ok(Response::new(Box::pin(download::stream(opened))))
    }

    async fn get_media(
        &self,
        request: Request<pb::GetMediaRequest>,
    ) -> Result<Response<pb::GetMediaResponse>, Status> {
        let tenant = tenant_of(&request);
        let id = MediaId::parse("id", &request.get_ref().id)?;
        record_media_id(&id);
        let media = self.library.get(tenant, id).await?;
        Ok(Response::new(pb::GetMediaResponse {
            media: Some(media_to_pb(media)),
        }))
    }

    async fn list_media(
        &self,
        request: Request<pb::ListMediaRequest>,
    ) -> Result<Response<pb::ListMediaResponse>, Status> {
        let tenant = tenant_of(&request);
        let req = request.into_inner();
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(crate::error::Error::invalid(
                    "page_size",
                    format!("page_size {n} is negative; use 1-{MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}"),
                )
                .into());
            }
            n => (n as u64).min(MAX_PAGE_SIZE),
        };
        let after = page_token::decode("page_token", &req.page_token)?;
        // One extra row tells whether another page exists.
        let mut items = self.library.list(tenant, after, page_size + 1).await?;
        let next_page_token = if items.len() as u64 > page_size {
            items.truncate(page_size as usize);
            items
                .last()
                .map(|m| {
                    page_token::encode(&Cursor {
                        created_at: m.created_at,
                        id: m.id,
                    })
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListMediaResponse {
            media: items.into_iter().map(media_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn delete_media(
        &self,
        request: Request<pb::DeleteMediaRequest>,
    ) -> Result<Response<pb::DeleteMediaResponse>, Status> {
        let tenant = tenant_of(&request);
        let id = MediaId::parse("id", &request.get_ref().id)?;
        record_media_id(&id);
        let blob_removed = self.library.delete(tenant, id).await?;
        tracing::info!(media_id = %id, blob_removed, "media deleted");
        Ok(Response::new(pb::DeleteMediaResponse { blob_removed }))
    }
}
