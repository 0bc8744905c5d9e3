//! `mediastore.v1.FolderService`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tonic::{Request, Response, Status};

use super::{
    convert::{folder_to_pb, tree_node_to_pb},
    page_token, principal_of,
    query::{optional_folder, page_size},
    tenant_of,
};
use crate::{
    domain::{Folder, FolderId, FolderName, FolderPath, MAX_FOLDER_DEPTH, TenantId},
    error::Error,
    library::Library,
    pb::v1::{self as pb, get_folder_request::Lookup},
};

/// The service implementation.
#[derive(Debug, Clone)]
pub struct FolderApi {
    library: Library,
    /// Each tenant's whole tree as the API shows it, made once per tree
    /// the library reads: a tree of 10,000 folders takes milliseconds to
    /// convert, most of a tree response's time on the server.
    trees: Arc<Mutex<HashMap<TenantId, ConvertedTree>>>,
}

/// A tree from the library, and its nodes as the API shows them.
type ConvertedTree = (Arc<Vec<Folder>>, Arc<Vec<pb::FolderTreeNode>>);

impl FolderApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self {
            library,
            trees: Arc::default(),
        }
    }

    /// The nodes of `folders` (a tree of `tenant`), converted once per
    /// tree: the library hands out the same `Arc` until the tree changes.
    fn tree_nodes(&self, tenant: TenantId, folders: &Arc<Vec<Folder>>) -> Vec<pb::FolderTreeNode> {
        if let Ok(trees) = self.trees.lock()
            && let Some((tree, nodes)) = trees.get(&tenant)
            && Arc::ptr_eq(tree, folders)
        {
            return nodes.as_ref().clone();
        }
        let base = folders.first().map_or(0, |f| f.depth);
        let nodes: Vec<pb::FolderTreeNode> =
            folders.iter().map(|f| tree_node_to_pb(f, base)).collect();
        if let Ok(mut trees) = self.trees.lock() {
            trees.insert(tenant, (Arc::clone(folders), Arc::new(nodes.clone())));
        }
        nodes
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
        let folder = self.library.root(tenant_of(&request)?).await?;
        Ok(Response::new(pb::GetRootFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn get_folder(
        &self,
        request: Request<pb::GetFolderRequest>,
    ) -> Result<Response<pb::GetFolderResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let folder = match &request.get_ref().lookup {
            Some(Lookup::FolderId(id)) => {
                let id = FolderId::parse("folder_id", id)?;
                record_folder_id(&id);
                self.library.folder(tenant, id).await?
            }
            Some(Lookup::Path(path)) => {
                let path = FolderPath::parse("path", path)?;
                self.library.folder_at(tenant, &path).await?
            }
            None => {
                return Err(Error::required("folder_id", "set either folder_id or path").into());
            }
        };
        Ok(Response::new(pb::GetFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn list_folders(
        &self,
        request: Request<pb::ListFoldersRequest>,
    ) -> Result<Response<pb::ListFoldersResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let req = request.get_ref();
        let parent = optional_folder("parent_folder_id", &req.parent_folder_id)?;
        let limit = page_size("page_size", req.page_size)?;
        // A token belongs to the parent it was issued for.
        let fingerprint = page_token::fingerprint(&format!("folders {parent:?}"));
        let after = page_token::decode_folder("page_token", &req.page_token, fingerprint)?;
        // One extra row tells whether another page exists.
        let mut folders = self
            .library
            .child_folders(tenant, parent, after.as_deref(), limit + 1)
            .await?;
        let next_page_token = page_token::next_page(&mut folders, limit, |f| {
            page_token::encode_folder(fingerprint, &f.name)
        });
        Ok(Response::new(pb::ListFoldersResponse {
            folders: folders.into_iter().map(folder_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_folder_tree(
        &self,
        request: Request<pb::GetFolderTreeRequest>,
    ) -> Result<Response<pb::GetFolderTreeResponse>, Status> {
        let tenant = tenant_of(&request)?;
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
        let nodes = if top.is_none() && levels == 0 {
            self.tree_nodes(tenant, &folders)
        } else {
            let base = folders.first().map_or(0, |f| f.depth);
            folders.iter().map(|f| tree_node_to_pb(f, base)).collect()
        };
        Ok(Response::new(pb::GetFolderTreeResponse { nodes }))
    }

    async fn create_folder(
        &self,
        request: Request<pb::CreateFolderRequest>,
    ) -> Result<Response<pb::CreateFolderResponse>, Status> {
        let by = principal_of(&request)?;
        let req = request.get_ref();
        let parent = optional_folder("parent_folder_id", &req.parent_folder_id)?;
        let name = FolderName::parse("name", &req.name)?;
        let folder = self
            .library
            .create_folder(by, parent, &name, req.public)
            .await?;
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
        let by = principal_of(&request)?;
        let req = request.get_ref();
        let id = FolderId::parse("folder_id", &req.folder_id)?;
        record_folder_id(&id);
        let name = FolderName::parse("name", &req.name)?;
        let folder = self.library.rename_folder(by, id, &name).await?;
        Ok(Response::new(pb::RenameFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn set_folder_public(
        &self,
        request: Request<pb::SetFolderPublicRequest>,
    ) -> Result<Response<pb::SetFolderPublicResponse>, Status> {
        let by = principal_of(&request)?;
        let req = request.get_ref();
        let id = optional_folder("folder_id", &req.folder_id)?;
        if let Some(id) = &id {
            record_folder_id(id);
        }
        let folder = self.library.set_folder_public(by, id, req.public).await?;
        tracing::info!(
            path = folder.path.as_str(),
            public = folder.public,
            "folder visibility set"
        );
        Ok(Response::new(pb::SetFolderPublicResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn move_folder(
        &self,
        request: Request<pb::MoveFolderRequest>,
    ) -> Result<Response<pb::MoveFolderResponse>, Status> {
        let by = principal_of(&request)?;
        let req = request.get_ref();
        let id = FolderId::parse("folder_id", &req.folder_id)?;
        record_folder_id(&id);
        let parent = optional_folder("parent_folder_id", &req.parent_folder_id)?;
        let folder = self.library.move_folder(by, id, parent).await?;
        Ok(Response::new(pb::MoveFolderResponse {
            folder: Some(folder_to_pb(folder)),
        }))
    }

    async fn delete_folder(
        &self,
        request: Request<pb::DeleteFolderRequest>,
    ) -> Result<Response<pb::DeleteFolderResponse>, Status> {
        let principal = super::principal_of(&request)?;
        let tenant = principal.tenant;
        let req = request.get_ref();
        let id = FolderId::parse("folder_id", &req.folder_id)?;
        record_folder_id(&id);
        if req.in_background {
            let (folders, job) = self
                .library
                .delete_folder_later(tenant, id, req.force, &principal.name)
                .await?;
            return Ok(Response::new(pb::DeleteFolderResponse {
                deleted_folder_count: folders,
                job: Some(super::jobs::job_to_pb(job)),
                ..Default::default()
            }));
        }
        let done = self.library.delete_folder(tenant, id, req.force).await?;
        tracing::info!(
            folders = done.folders,
            media = done.media,
            blobs = done.blobs,
            "folder deleted"
        );
        Ok(Response::new(pb::DeleteFolderResponse {
            deleted_folder_count: done.folders,
            deleted_media_count: done.media,
            removed_blob_count: done.blobs,
            job: None,
        }))
    }
}
