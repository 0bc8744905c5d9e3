//! `mediastore.v1.FolderService`.

use tonic::{Request, Response, Status};

use super::{
    convert::{folder_to_pb, tree_node_to_pb},
    query::optional_folder,
    tenant_of,
};
use crate::{
    domain::{FolderId, FolderName, FolderPath, MAX_FOLDER_DEPTH},
    error::Error,
    library::Library,
    pb::v1::{self as pb, get_folder_request::Lookup},
};

/// The service implementation.
#[derive(Debug, Clone)]
pub struct FolderApi {
    library: Library,
}

impl FolderApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }
}

/// Records the folder id on the current RPC's span.
fn record_folder_id(id: &FolderId) {
    tracing::Span::current().record("folder_id", tracing::field::display(id));
}

#[tonic::async_trait]
impl pb::folder_service_server::FolderService for FolderApi {
    async fn get_root_folder(
        &self,
        request: Request<pb::GetRootFolderRequest>,
    ) -> Result<Response<pb::GetRootFolderResponse>, Status> {
        let folder = self.library.root(tenant_of(&request)).await?;
        Ok(Response::new(pb::GetRootFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn get_folder(
        &self,
        request: Request<pb::GetFolderRequest>,
    ) -> Result<Response<pb::GetFolderResponse>, Status> {
        let tenant = tenant_of(&request);
        let folder = match &request.get_ref().lookup {
            Some(Lookup::Id(id)) => {
                let id = FolderId::parse("id", id)?;
                record_folder_id(&id);
                self.library.folder(tenant, id).await?
            }
            Some(Lookup::Path(path)) => {
                let path = FolderPath::parse("path", path)?;
                self.library.folder_at(tenant, &path).await?
            }
            None => {
                return Err(Error::invalid("id", "set either id or path").into());
            }
        };
        Ok(Response::new(pb::GetFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn get_folder_tree(
        &self,
        request: Request<pb::GetFolderTreeRequest>,
    ) -> Result<Response<pb::GetFolderTreeResponse>, Status> {
        let tenant = tenant_of(&request);
        let req = request.get_ref();
        let top = optional_folder("folder_id", &req.folder_id)?;
        let levels = u32::try_from(req.max_depth)
            .ok()
            .filter(|d| *d <= MAX_FOLDER_DEPTH)
            .ok_or_else(|| {
                Error::invalid(
                    "max_depth",
                    format!(
                        "max_depth {} is out of range; use 1-{MAX_FOLDER_DEPTH}, or 0 for all levels",
                        req.max_depth
                    ),
                )
            })?;
        let folders = self.library.folder_tree(tenant, top, levels).await?;
        let base = folders.first().map_or(0, |f| f.depth);
        Ok(Response::new(pb::GetFolderTreeResponse {
            nodes: folders
                .into_iter()
                .map(|f| tree_node_to_pb(f, base))
                .collect(),
        }))
    }

    async fn create_folder(
        &self,
        request: Request<pb::CreateFolderRequest>,
    ) -> Result<Response<pb::CreateFolderResponse>, Status> {
        let tenant = tenant_of(&request);
        let req = request.get_ref();
        let parent = optional_folder("parent_id", &req.parent_id)?;
        let name = FolderName::parse("name", &req.name)?;
        let folder = self.library.create_folder(tenant, parent, &name).await?;
        record_folder_id(&folder.id);
        tracing::info!(path = folder.path.as_str(), "folder created");
        Ok(Response::new(pb::CreateFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn rename_folder(
        &self,
        request: Request<pb::RenameFolderRequest>,
    ) -> Result<Response<pb::RenameFolderResponse>, Status> {
        let tenant = tenant_of(&request);
        let req = request.get_ref();
        let id = FolderId::parse("id", &req.id)?;
        record_folder_id(&id);
        let name = FolderName::parse("name", &req.name)?;
        let folder = self.library.rename_folder(tenant, id, &name).await?;
        Ok(Response::new(pb::RenameFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn move_folder(
        &self,
        request: Request<pb::MoveFolderRequest>,
    ) -> Result<Response<pb::MoveFolderResponse>, Status> {
        let tenant = tenant_of(&request);
        let req = request.get_ref();
        let id = FolderId::parse("id", &req.id)?;
        record_folder_id(&id);
        let parent = optional_folder("new_parent_id", &req.new_parent_id)?;
        let folder = self.library.move_folder(tenant, id, parent).await?;
        Ok(Response::new(pb::MoveFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn delete_folder(
        &self,
        request: Request<pb::DeleteFolderRequest>,
    ) -> Result<Response<pb::DeleteFolderResponse>, Status> {
        let tenant = tenant_of(&request);
        let req = request.get_ref();
        let id = FolderId::parse("id", &req.id)?;
        record_folder_id(&id);
        let done = self.library.delete_folder(tenant, id, req.force).await?;
        tracing::info!(
            folders = done.folders,
            media = done.media,
            blobs = done.blobs,
            "folder deleted"
        );
        Ok(Response::new(pb::DeleteFolderResponse {
            deleted_folders: done.folders,
            deleted_media: done.media,
            removed_blobs: done.blobs,
        }))
    }
}
