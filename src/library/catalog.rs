//! Media management past the upload: listing and search, batch reads,
//! metadata edits, moves, deletes and bindings.

use super::Library;
use crate::{
    domain::{
        Binding, BindingKey, FolderId, Media, MediaId, MediaPatch, MediaQuery, PageCursor,
        TenantId, missing_ids,
    },
    error::{Error, Resource, Result},
    repo::{BindingScope, FolderScope},
};

/// What a batch delete did.
#[derive(Debug, Default)]
pub struct BatchDeletion {
    /// Media deleted.
    pub deleted: u64,
    /// Ids that named no media.
    pub not_found: Vec<MediaId>,
    /// Stored contents the tenant no longer references (no other media of
    /// the tenant has the same bytes), and the tenant's renditions of
    /// them. Other tenants' media never change it.
    pub blobs: u64,
}

impl Library {
    /// Media among `ids`, in their order, and the ids not found.
    pub async fn get_many(
        &self,
        tenant: TenantId,
        ids: &[MediaId],
    ) -> Result<(Vec<Media>, Vec<MediaId>)> {
        let found = self.inner.repo.get_media_many(tenant, ids).await?;
        let missing = missing_ids(ids, found.iter().map(|m| m.id));
        Ok((found, missing))
    }

    /// One page of a query, and the total count if asked.
    pub async fn list(
        &self,
        tenant: TenantId,
        query: &MediaQuery,
        cursor: Option<&PageCursor>,
        limit: u64,
        with_total: bool,
    ) -> Result<(Vec<Media>, Option<u64>)> {
        let scope = match query.folder {
            None => FolderScope::All,
            Some(id) => {
                let f = self.folder(tenant, id).await?;
                match (query.recursive, f.parent) {
                    (false, _) => FolderScope::Folder(id),
                    // The root's subtree is every media: no path join.
                    (true, None) => FolderScope::All,
                    (true, Some(_)) => FolderScope::Subtree(f.path),
                }
            }
        };
        let repo = &self.inner.repo;
        let page = repo
            .list_media(tenant, &scope, query, cursor, limit)
            .await?;
        let total = if with_total {
            Some(repo.count_media(tenant, &scope, query).await?)
        } else {
            None
        };
        Ok((page, total))
    }

    /// Changes a media's descriptive fields.
    pub async fn update(&self, tenant: TenantId, id: MediaId, patch: MediaPatch) -> Result<Media> {
        let mut tx = self.inner.repo.begin().await?;
        tx.update_media(tenant, id, patch).await?;
        tx.commit().await?;
        // `public` or the name a URL answers with may have changed.
        self.inner.served.changed();
        self.get(tenant, id).await
    }

    /// Moves media to a folder (the root when `None`). Returns how many
    /// moved and the ids not found.
    pub async fn move_media(
        &self,
        tenant: TenantId,
        ids: &[MediaId],
        dest: Option<FolderId>,
    ) -> Result<(u64, Vec<MediaId>)> {
        let dest = self.folder_or_root(tenant, dest).await?;
        let mut tx = self.inner.repo.begin().await?;
        let moved = tx.move_media(tenant, ids, dest).await?;
        tx.commit().await?;
        self.folders_changed(tenant);
        Ok(moved)
    }

    /// Deletes media in one transaction, then the tenant's renditions of
    /// bytes it no longer holds; bytes nothing references any more go
    /// after the answer (see `reaper`). Unless `force`, bound media make
    /// the whole call fail.
    pub async fn delete_many(
        &self,
        tenant: TenantId,
        ids: &[MediaId],
        force: bool,
    ) -> Result<BatchDeletion> {
        let mut tx = self.inner.repo.begin().await?;
        let removed = tx.delete_media(tenant, ids, force).await?;
        tx.commit().await?;
        self.folders_changed(tenant);
        let blobs = self.release_deleted(tenant, &removed).await?;
        Ok(BatchDeletion {
            deleted: removed.deleted.len() as u64,
            not_found: removed.not_found,
            blobs,
        })
    }

    /// Binds a media to an object (idempotent).
    pub async fn bind(&self, tenant: TenantId, key: &BindingKey) -> Result<Binding> {
        self.inner.repo.add_binding(tenant, key).await
    }

    /// Removes a binding.
    pub async fn unbind(&self, tenant: TenantId, key: &BindingKey) -> Result<()> {
        if self.inner.repo.remove_binding(tenant, key).await? {
            Ok(())
        } else {
            Err(Error::not_found(
                Resource::Binding,
                format!("{}/{}/{}", key.media, key.module, key.object_id),
            ))
        }
    }

    /// A page of bindings.
    pub async fn bindings(
        &self,
        tenant: TenantId,
        scope: &BindingScope,
        after: Option<&BindingKey>,
        limit: u64,
    ) -> Result<Vec<Binding>> {
        self.inner
            .repo
            .list_bindings(tenant, scope, after, limit)
            .await
    }
}
