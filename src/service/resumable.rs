//! `mediastore.v1.UploadService`: resumable uploads.

use futures_util::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{convert, principal_of, record_media_id, tenant_of, upload::stream_error};
use crate::{
    domain::{TenantId, UploadId, UploadSession, now_micros},
    error::{Error, Result},
    library::{Library, UploadWrite},
    pb::v1 as pb,
};

/// The service implementation.
#[derive(Debug, Clone)]
pub struct UploadApi {
    library: Library,
}

impl UploadApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }

    /// The upload as the API shows it, with its media once finished.
    async fn to_pb(&self, tenant: TenantId, u: UploadSession) -> Result<pb::Upload> {
        let media = match u.media {
            Some(id) => {
                record_media_id(&id);
                match self.library.get(tenant, id).await {
                    Ok(m) => Some(convert::media_out(&self.library, m)),
                    // Deleted since the upload finished.
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        Ok(upload_to_pb(u, media))
    }
}

fn upload_to_pb(u: UploadSession, media: Option<pb::Media>) -> pb::Upload {
    use crate::domain::UploadState as S;
    let state = match u.state_at(now_micros()) {
        S::Active => pb::UploadState::Active,
        S::Finished => pb::UploadState::Finished,
        S::Cancelled => pb::UploadState::Cancelled,
        S::Expired => pb::UploadState::Expired,
    };
    pb::Upload {
        id: u.id.to_string(),
        state: state as i32,
        committed_size: u.committed,
        size_bytes: u.spec.declared_size,
        expire_time: Some(convert::timestamp(u.expires_at)),
        media,
    }
}

#[tonic::async_trait]
impl pb::upload_service_server::UploadService for UploadApi {
    async fn start_upload(
        &self,
        request: Request<pb::StartUploadRequest>,
    ) -> Result<Response<pb::StartUploadResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        let header = request.into_inner().header.ok_or_else(|| {
            Error::required("header", "a header is required: what is being uploaded")
        })?;
        let spec = convert::upload_spec(&principal, header)?;
        let upload = self.library.start_upload(spec).await?;
        tracing::info!(upload = %upload.id, "resumable upload started");
        Ok(Response::new(pb::StartUploadResponse {
            upload: Some(upload_to_pb(upload, None)),
        }))
    }

    async fn write_upload(
        &self,
        request: Request<Streaming<pb::WriteUploadRequest>>,
    ) -> Result<Response<pb::WriteUploadResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let writes = request.into_inner().map(|msg| -> Result<UploadWrite> {
            let msg = msg.map_err(|s| {
                stream_error(s, "the bytes received are kept: QueryUpload tells how many")
            })?;
            Ok(UploadWrite {
                upload: UploadId::parse("upload_id", &msg.upload_id)?,
                offset: msg.write_offset,
                data: msg.data,
                finish: msg.finish_write,
            })
        });
        let progress = self.library.write_upload(tenant, writes).await?;
        let media = progress.outcome.map(|o| {
            record_media_id(&o.media.id);
            tracing::info!(media_id = %o.media.id, size = o.media.size, "resumable upload stored");
            convert::media_out(&self.library, o.media)
        });
        Ok(Response::new(pb::WriteUploadResponse {
            upload: Some(upload_to_pb(progress.upload, media)),
        }))
    }

    async fn query_upload(
        &self,
        request: Request<pb::QueryUploadRequest>,
    ) -> Result<Response<pb::QueryUploadResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = UploadId::parse("upload_id", &request.get_ref().upload_id)?;
        let upload = self.library.query_upload(tenant, id).await?;
        Ok(Response::new(pb::QueryUploadResponse {
            upload: Some(self.to_pb(tenant, upload).await?),
        }))
    }

    async fn cancel_upload(
        &self,
        request: Request<pb::CancelUploadRequest>,
    ) -> Result<Response<pb::CancelUploadResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = UploadId::parse("upload_id", &request.get_ref().upload_id)?;
        let upload = self.library.cancel_upload(tenant, id).await?;
        Ok(Response::new(pb::CancelUploadResponse {
            upload: Some(upload_to_pb(upload, None)),
        }))
    }
}
